"""QEMU itself (not only qemu-img) runs on a qcow2 disk through the mount,
with Nova's default cache=none (O_DIRECT) and with cache=writeback."""

import os
import subprocess

import pytest

from helpers import have, run

pytestmark = pytest.mark.skipif(
    not (have("qemu-system-x86_64") and have("qemu-img") and have("qemu-io")),
    reason="needs qemu-system-x86_64 (qemu-system-x86) and qemu-utils")


def qemu_monitor(disk, cache, *commands):
    """Start QEMU on DISK (no guest: -machine none), run monitor COMMANDS
    (qemu-io on the drive goes through QEMU's block layer and the mount),
    quit, and return what the monitor printed."""
    script = "".join(f"{c}\n" for c in commands) + "quit\n"
    r = subprocess.run(
        ["qemu-system-x86_64", "-machine", "none", "-nodefaults",
         "-display", "none", "-monitor", "stdio",
         "-drive", f"file={disk},format=qcow2,if=none,id=d0,cache={cache}"],
        input=script, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"QEMU failed ({r.returncode}):\n{out}"
    assert "failed" not in out.lower(), out
    return out


@pytest.mark.parametrize("cache", ["none", "writeback"])
def test_qemu_runs_on_overlay_through_mount(mnt, uuid, cache):
    base = os.path.join(mnt, "_base", f"img-{cache}")
    run(["qemu-img", "create", "-f", "raw", base, "32M"])
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", base])
    os.mkdir(os.path.join(mnt, uuid))
    disk = os.path.join(mnt, uuid, "disk")
    run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw", disk, "8G"])

    out = qemu_monitor(disk, cache,
                       'qemu-io d0 "write -P 0xcd 6G 64k"',
                       'qemu-io d0 "read -P 0x5a 0 1M"',
                       'qemu-io d0 "read -P 0xcd 6G 64k"')
    assert "wrote 65536/65536 bytes at offset 6442450944" in out, out
    assert "read 1048576/1048576 bytes at offset 0" in out, out

    # What QEMU wrote is in the volume, and the image is consistent.
    r = run(["qemu-io", "-f", "qcow2", "-c", "read -P 0xcd 6G 64k", disk])
    assert "Pattern verification failed" not in r.stdout + r.stderr
    run(["qemu-img", "check", disk])
