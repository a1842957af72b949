"""Start-up errors, exit statuses and messages (scenario 8)."""

import contextlib
import os
import re
import socket
import subprocess
import time

import pytest

from helpers import fusermount_u, is_mounted, pids_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_poolfs(poolfs_bin, args, mountpoint=None, foreground=True, timeout=15):
    """Run poolfs expecting it to fail fast; never leave anything behind."""
    argv = [poolfs_bin] + (["-f"] if foreground else []) + args
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        if mountpoint:
            fusermount_u(mountpoint, lazy=True)
        raise AssertionError(f"poolfs did not exit within {timeout}s: {argv}")
    finally:
        if mountpoint and is_mounted(mountpoint):
            fusermount_u(mountpoint, lazy=True)
            for pid in pids_of(os.path.basename(poolfs_bin), mountpoint):
                os.kill(pid, 9)
            raise AssertionError(f"{mountpoint} was left mounted by {argv}")
    return p


def one_poolfs_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("poolfs: "), lines[0]
    return lines[0]


@pytest.fixture
def mp(mountpoint_factory):
    return mountpoint_factory()


both_modes = pytest.mark.parametrize("foreground", [True, False], ids=["fg", "daemon"])


@both_modes
def test_missing_disks_pool(poolfs_bin, env, mp, foreground):
    p = run_poolfs(poolfs_bin, ["-o", "disks_pool=nope", env.uri, mp], mp, foreground)
    assert p.returncode == 1, p
    msg = one_poolfs_line(p.stderr)
    assert "nope" in msg


@both_modes
def test_missing_base_pool(poolfs_bin, env, mp, foreground):
    p = run_poolfs(poolfs_bin, ["-o", "base_pool=nope-base", env.uri, mp], mp, foreground)
    assert p.returncode == 1, p
    assert "nope-base" in one_poolfs_line(p.stderr)


@both_modes
def test_unreachable_libvirtd(poolfs_bin, env, mp, foreground):
    uri = f"qemu:///system?socket={env.workdir}/no-such-dir/libvirt-sock"
    p = run_poolfs(poolfs_bin, [uri, mp], mp, foreground)
    assert p.returncode == 1, p
    one_poolfs_line(p.stderr)


@both_modes
def test_inactive_pool(poolfs_bin, env, virsh, mp, foreground):
    target = os.path.join(env.pools_dir, "inactive")
    os.makedirs(target, exist_ok=True)
    virsh("pool-define-as", "inactive-pool", "dir", "--target", target)
    try:
        p = run_poolfs(poolfs_bin, ["-o", "disks_pool=inactive-pool", env.uri, mp], mp,
                       foreground)
    finally:
        virsh("pool-undefine", "inactive-pool")
    assert p.returncode == 1, p
    msg = one_poolfs_line(p.stderr)
    assert "inactive-pool" in msg
    assert re.search(r"inactive|not active|not running", msg, re.I), msg


@both_modes
def test_missing_mountpoint(poolfs_bin, env, mp, foreground):
    missing = os.path.join(mp, "does-not-exist")
    p = run_poolfs(poolfs_bin, [env.uri, missing], missing, foreground)
    assert p.returncode == 1, p
    assert not is_mounted(mp)
    one_poolfs_line(p.stderr)


@both_modes
def test_pool_target_under_mountpoint(poolfs_bin, env, virsh, mp, foreground):
    target = os.path.join(mp, "pooldir")
    os.makedirs(target)
    virsh("pool-create-as", "looped-pool", "dir", "--target", target)
    try:
        p = run_poolfs(poolfs_bin, ["-o", "disks_pool=looped-pool", env.uri, mp], mp,
                       foreground)
    finally:
        virsh("pool-destroy", "looped-pool")
    assert p.returncode == 1, p
    msg = one_poolfs_line(p.stderr)
    assert "looped-pool" in msg or target in msg, msg
    assert re.search(r"mount ?point|under|inside|within|below|beneath", msg, re.I), msg


@pytest.mark.parametrize("args", [
    ["-o", "io=bogus"],
    ["-o", "refresh=abc"],
    ["-o", "refresh=-1"],
    ["-o", "no_such_option=1"],
    ["-o", "readahead=2000000"],
    ["-o", "passthrough=maybe"],
    ["-o", "keepalive=-1"],
    ["-o", "keepalive=5s"],
    ["-o", "keepalive_count=0"],
    ["--no-such-flag"],
], ids=["io-bogus", "refresh-abc", "refresh-negative", "unknown-option",
        "readahead-huge", "passthrough-maybe", "keepalive-negative",
        "keepalive-unit", "keepalive-count-zero", "unknown-flag"])
def test_bad_option_is_usage_error(poolfs_bin, env, mp, args):
    p = run_poolfs(poolfs_bin, args + [env.uri, mp], mp)
    assert p.returncode == 2, p
    msg = one_poolfs_line(p.stderr)
    if "io=bogus" in args:
        assert "io" in msg and "bogus" in msg, msg
    if "readahead=2000000" in args:
        assert "readahead" in msg and "2000000" in msg, msg
    if "passthrough=maybe" in args:
        assert "passthrough" in msg and "maybe" in msg, msg
    if args[-1].startswith("keepalive"):
        assert args[-1] in msg, msg


def bdi_read_ahead_kb(mnt):
    """The kernel's read-ahead of the mount at MNT (its bdi, by device)."""
    with open("/proc/self/mountinfo") as f:
        dev = [line.split()[2] for line in f if line.split()[4] == mnt][-1]
    with open(f"/sys/class/bdi/{dev}/read_ahead_kb") as f:
        return int(f.read())


@pytest.mark.parametrize("opt,kb", [(None, 1008), ("readahead=4096", 4096),
                                    ("readahead=0", 0)])
def test_readahead_option_sets_the_mounts_read_ahead(poolfs_factory, opt, kb):
    pf = poolfs_factory(options=[opt] if opt else [])
    assert bdi_read_ahead_kb(pf.mnt) == kb


@pytest.mark.parametrize("which", ["no-args", "uri-only", "too-many"])
def test_bad_arguments_are_usage_errors(poolfs_bin, env, mp, which):
    args = {"no-args": [], "uri-only": [env.uri], "too-many": [env.uri, mp, mp]}[which]
    p = run_poolfs(poolfs_bin, args, mp)
    assert p.returncode == 2, p
    one_poolfs_line(p.stderr)


def project_version():
    with open(os.path.join(REPO, "meson.build")) as f:
        m = re.search(r"version\s*:\s*'([^']+)'", f.read())
    return m.group(1) if m else None


def test_help_and_version(poolfs_bin):
    p = subprocess.run([poolfs_bin, "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    out = p.stdout + p.stderr
    for word in ("disks_pool", "base_pool", "refresh", "io"):
        assert word in out, f"--help does not mention {word}:\n{out}"
    p = subprocess.run([poolfs_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p
    v = project_version()
    assert v and v in p.stdout + p.stderr, p


def test_mountpoint_still_usable_after_errors(poolfs_bin, env, mp, poolfs_factory):
    """A failed start leaves nothing that stops a proper mount right after."""
    p = run_poolfs(poolfs_bin, ["-o", "disks_pool=nope", env.uri, mp], mp)
    assert p.returncode == 1
    pf = poolfs_factory(mountpoint=mp)
    assert "_base" in os.listdir(pf.mnt)


@contextlib.contextmanager
def mute_listener():
    """A TCP port on loopback whose connections the kernel completes and
    nobody ever takes or answers: a libvirtd that hangs, or one at its
    max_clients."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]
    finally:
        s.close()


def test_a_libvirtd_that_takes_the_connection_and_says_nothing(
        poolfs_bin, poolfsctl, mp):
    """libvirt waits for ever on a connection being opened whose peer never
    answers.  With -o keepalive=1,keepalive_count=3 (poolfsctl: -k 1 -K
    3) the watchdog ends the open 4 s in: one line saying so, exit 1,
    nothing mounted."""
    with mute_listener() as port:
        uri = f"qemu+tcp://127.0.0.1:{port}/system"
        t0 = time.monotonic()
        p = run_poolfs(poolfs_bin, ["-o", "keepalive=1,keepalive_count=3",
                                    uri, mp], mp, timeout=30)
        took = time.monotonic() - t0
        assert p.returncode == 1, p
        msg = one_poolfs_line(p.stderr)
        assert "took the connection, but nothing answered for 4 s" in msg, msg
        assert took < 15, f"{took:.1f} s"
        t0 = time.monotonic()
        r = subprocess.run([poolfsctl, "-k", "1", "-K", "3", "-c", uri,
                            "cache"], capture_output=True, text=True,
                           timeout=30)
        took = time.monotonic() - t0
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1, r
        assert "took the connection, but nothing answered for 4 s" in lines[0], r.stderr
        assert took < 15, f"{took:.1f} s"
