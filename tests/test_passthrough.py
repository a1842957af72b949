"""FUSE passthrough (Linux 6.9 and later): a file opened without O_DIRECT is
read and written by the kernel straight from the volume's file, no request
reaching poolfs; O_DIRECT opens stay on poolfs's own path, and every open of
a file takes the mode of those already open (the kernel refuses a mix)."""

import mmap
import os
import re

import pytest

from helpers import DISKS_POOL, MiB, run, wait_for


def count(p, opcode):
    """Requests of OPCODE that poolfs served so far (its -o debug log)."""
    return len(re.findall(rf"opcode: {opcode} \(", p.stderr()))


def aligned(size, fill=None):
    """A page-aligned buffer for O_DIRECT (an anonymous mapping)."""
    buf = mmap.mmap(-1, size)
    if fill is not None:
        buf.write(fill)
        buf.seek(0)
    return buf


@pytest.fixture
def pt(poolfs_factory):
    p = poolfs_factory(["debug"])
    p.expect_stderr(r".")           # the debug log
    wait_for(lambda: "passthrough: on" in p.stderr(), 5,
             "poolfs to say passthrough is on (needs Linux 6.9 or later)")
    return p


def test_a_buffered_file_is_read_and_written_by_the_kernel(pt, virsh, uuid):
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk")
    data = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    with open(path, "rb") as f:
        assert f.read() == data
    assert count(pt, "OPEN") + count(pt, "CREATE") >= 2, "the log is not there"
    assert count(pt, "WRITE") == 0, "writes reached poolfs"
    assert count(pt, "READ") == 0, "reads reached poolfs"
    # It is the volume's file, and libvirt learns the new size.
    vol = f"{uuid}_disk"
    with open(virsh.vol_path(DISKS_POOL, vol), "rb") as f:
        assert f.read() == data
    assert os.stat(path).st_size == 8 * MiB

    def capacity():
        out = virsh("vol-info", "--bytes", "--pool", DISKS_POOL, vol).stdout
        return re.search(r"Capacity:\s+(\d+)", out).group(1) == str(8 * MiB)
    wait_for(capacity, 15, "libvirt to see the new size (pool refreshed)")


def test_an_o_direct_open_joins_a_file_open_in_passthrough(pt, uuid):
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk")
    with open(path, "wb") as f:
        f.truncate(4 * MiB)
    a = os.open(path, os.O_RDWR)                    # passthrough
    try:
        b = os.open(path, os.O_RDWR | os.O_DIRECT)  # must not be EIO
        try:
            os.pwrite(b, aligned(MiB, b"\x5a" * MiB), MiB)
            assert os.pread(a, MiB, MiB) == b"\x5a" * MiB
            os.pwrite(a, b"\xa5" * MiB, 2 * MiB)
            buf = aligned(MiB)
            assert os.preadv(b, [buf], 2 * MiB) == MiB
            assert bytes(buf) == b"\xa5" * MiB
        finally:
            os.close(b)
    finally:
        os.close(a)
    assert count(pt, "WRITE") == 0 and count(pt, "READ") == 0


def test_a_file_first_opened_with_o_direct_stays_on_poolfs(pt, uuid):
    """QEMU's cache=none: poolfs serves it, and a buffered open made
    meanwhile (qemu-img info) joins that path instead of failing."""
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk")
    with open(path, "wb") as f:
        f.truncate(4 * MiB)
    before = count(pt, "WRITE")
    b = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(b, aligned(MiB, b"\x11" * MiB), 0)
        assert count(pt, "WRITE") > before, "the O_DIRECT write skipped poolfs"
        a = os.open(path, os.O_RDWR)                # must not be EIO
        try:
            assert os.pread(a, MiB, 0) == b"\x11" * MiB
            mid = count(pt, "WRITE")
            os.pwrite(a, b"\x22" * 4096, 8192)
            assert count(pt, "WRITE") > mid, "the buffered write skipped poolfs"
            buf = aligned(4096)
            os.preadv(b, [buf], 8192)
            assert bytes(buf) == b"\x22" * 4096
        finally:
            os.close(a)
    finally:
        os.close(b)
    # All closed: the next buffered open is passthrough again.
    with open(path, "r+b") as f:
        mid = count(pt, "WRITE")
        f.write(b"\x33" * MiB)
        f.flush()
        os.fsync(f.fileno())
    assert count(pt, "WRITE") == mid
    with open(path, "rb") as f:
        assert f.read(MiB) == b"\x33" * MiB
        assert f.read(MiB) == bytes(MiB)

def test_mmap_of_a_passthrough_file_is_the_volume_file(pt, virsh, uuid):
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk.config")
    with open(path, "wb") as f:
        f.truncate(MiB)
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), MiB)
        m[4096:4101] = b"hello"
        m.flush()
        m.close()
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_disk.config"), "rb") as f:
        f.seek(4096)
        assert f.read(5) == b"hello"


def test_a_whole_file_copy_into_a_passthrough_file(pt, virsh, uuid):
    """cp's copy_file_range lands in the file the kernel opened (a clone
    of the volume would replace that file under it)."""
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    src, dst = os.path.join(d, "disk"), os.path.join(d, "disk.copy")
    with open(src, "wb") as f:
        f.write(os.urandom(16 * MiB))
    run(["cp", "--reflink=auto", src, dst])
    assert "opcode: COPY_FILE_RANGE" in pt.stderr()
    assert count(pt, "WRITE") == 0
    run(["cmp", src, dst])
    run(["cmp", src, virsh.vol_path(DISKS_POOL, f"{uuid}_disk.copy")])


def test_passthrough_off_serves_every_request(poolfs_factory, uuid):
    p = poolfs_factory(["debug", "passthrough=off"])
    p.expect_stderr(r".")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    with open(os.path.join(d, "disk"), "wb") as f:
        f.write(os.urandom(MiB))
        os.fsync(f.fileno())
    assert count(p, "WRITE") > 0
    assert "passthrough: on" not in p.stderr()


def test_a_remote_style_mount_keeps_its_writeback_cache(poolfs_factory, uuid):
    """io=stream: no file here to pass through."""
    p = poolfs_factory(["debug", "io=stream"])
    p.expect_stderr(r".")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    with open(os.path.join(d, "disk"), "wb") as f:
        f.write(os.urandom(MiB))
    assert count(p, "WRITE") > 0
    assert "passthrough: on" not in p.stderr()
