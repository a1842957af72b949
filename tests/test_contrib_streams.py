"""contrib/libvirtd-streams.conf: the systemd drop-in that raises glibc's
mmap threshold for libvirt's stream buffers.  glibc ignores a tunable it
does not know, or a malformed GLIBC_TUNABLES, without a word: check that
this glibc takes every setting the drop-in makes, with its value."""

import configparser
import glob
import os
import subprocess

import pytest

from conftest import REPO

DROPIN = os.path.join(REPO, "contrib", "libvirtd-streams.conf")


def dropin_environment():
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str
    with open(DROPIN) as f:
        cp.read_file(f)
    assert cp.sections() == ["Service"], cp.sections()
    env = {}
    for line in cp["Service"]["Environment"].splitlines():
        k, _, v = line.partition("=")
        env[k] = v
    return env


def test_dropin_tunables_are_taken_by_this_glibc():
    env = dropin_environment()
    assert list(env) == ["GLIBC_TUNABLES"], env
    wanted = dict(t.split("=", 1) for t in env["GLIBC_TUNABLES"].split(":"))
    assert wanted, env
    loaders = glob.glob("/lib64/ld-linux-*.so.*") + glob.glob("/lib/ld-linux-*.so.*")
    if not loaders:
        pytest.skip("no glibc dynamic loader to ask")
    p = subprocess.run([loaders[0], "--list-tunables"], capture_output=True, text=True,
                       timeout=20, env={**os.environ, **env})
    assert p.returncode == 0, p.stderr
    seen = {}
    for line in p.stdout.splitlines():
        name, _, rest = line.partition(":")
        seen[name.strip()] = rest.split()[0] if rest.split() else ""
    for name, value in wanted.items():
        assert name in seen, f"{name} is not a tunable of this glibc"
        assert int(seen[name], 16) == int(value), (name, seen[name], value)
