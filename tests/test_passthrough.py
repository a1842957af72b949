"""FUSE passthrough (Linux 6.9 and later): the kernel reads and writes a
file straight from the volume's file, no request reaching poolfs, O_DIRECT
included by default (-o passthrough=all); with -o passthrough=buffered a
file first opened with O_DIRECT stays on poolfs's own path, and every open
of a file takes the mode of those already open (the kernel refuses a
mix)."""

import mmap
import os
import re

import pytest

from helpers import DISKS_POOL, MiB, wait_for

WRITEBACK_CACHE = 1 << 16       # FUSE_WRITEBACK_CACHE in INIT's flags


def count(p, opcode):
    """Requests of OPCODE that poolfs got so far (its -o debug log)."""
    return len(re.findall(rf"opcode: {opcode} \(", p.stderr()))


def wait_released(p, n):
    """Wait until poolfs has answered N RELEASEs: the kernel sends them
    after close(2) returns, and the counts that pick an open's mode go
    down only then."""
    def done():
        log = p.stderr()
        ids = re.findall(r"unique: (\d+), opcode: RELEASE \(", log)
        return len(ids) >= n and all(
            re.search(rf"unique: {u}, (success|error)", log) for u in ids)
    wait_for(done, 10, f"poolfs to answer {n} RELEASEs")


def closed_file(p, uuid, size):
    """MOUNT/UUID/disk, made SIZE bytes long (a hole) and closed, its
    RELEASE answered: the next open of it decides its mode afresh."""
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk")
    n = count(p, "RELEASE")
    with open(path, "wb") as f:
        f.truncate(size)
    wait_released(p, n + 1)
    return path


def init_flags(p):
    """The flags of poolfs's reply to INIT (libfuse's debug lines: the
    reply's are indented, the kernel's request's are not).  The mount shows
    before poolfs has read the kernel's INIT: wait for the reply."""
    pattern = r"poolfs:    INIT: 7\.\d+\npoolfs:    flags=0x([0-9a-f]+)"
    wait_for(lambda: re.search(pattern, p.stderr()), 10,
             "poolfs's reply to INIT in its debug log")
    return int(re.search(pattern, p.stderr()).group(1), 16)


def kernel_has_passthrough():
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (6, 9)


def aligned(size, fill=None):
    """A page-aligned buffer for O_DIRECT (an anonymous mapping)."""
    buf = mmap.mmap(-1, size)
    if fill is not None:
        buf.write(fill)
        buf.seek(0)
    return buf


def mount_pt(poolfs_factory, options=()):
    if not kernel_has_passthrough():
        pytest.skip("FUSE passthrough needs Linux 6.9 or later")
    p = poolfs_factory(["debug", *options])
    p.expect_stderr(r".")           # the debug log
    wait_for(lambda: "passthrough: on" in p.stderr(), 5,
             "poolfs to say passthrough is on")
    assert not init_flags(p) & WRITEBACK_CACHE, "passthrough with wbcache"
    return p


@pytest.fixture
def pt(poolfs_factory):
    return mount_pt(poolfs_factory)


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
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_disk"), "rb") as f:
        assert f.read() == data
    assert os.stat(path).st_size == 8 * MiB


def test_a_file_written_by_the_kernel_refreshes_its_pool(small_pool,
                                                        poolfs_factory,
                                                        virsh, uuid):
    """poolfs does not see the writes, so it compares the file at open and
    at release: libvirt's idea of the pool (its allocation, known only
    after a pool refresh) must follow.  No periodic re-listing here."""
    pool, _ = small_pool
    p = mount_pt(poolfs_factory, [f"disks_pool={pool}", "refresh=3600"])
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    path = os.path.join(d, "disk")
    with open(path, "wb"):
        pass
    virsh.pool_refresh(pool)
    before = int(virsh.pool_info(pool)["allocation"].split()[0])
    n = count(p, "RELEASE")
    with open(path, "r+b") as f:
        f.write(os.urandom(4 * MiB))
    wait_released(p, n + 1)
    assert count(p, "WRITE") == 0

    def grown():
        now = int(virsh.pool_info(pool)["allocation"].split()[0])
        return now - before >= 4 * MiB
    wait_for(grown, 15, "libvirt to see the pool's new allocation")


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


def test_buffered_leaves_o_direct_files_to_poolfs(poolfs_factory, uuid):
    """-o passthrough=buffered, QEMU's cache=none: poolfs serves it, and a
    buffered open made meanwhile (qemu-img info) joins that path instead
    of failing."""
    pt = mount_pt(poolfs_factory, ["passthrough=buffered"])
    path = closed_file(pt, uuid, 4 * MiB)
    n = count(pt, "RELEASE")
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
    wait_released(pt, n + 2)
    # All closed: the next buffered open is passthrough again.
    mid = count(pt, "WRITE")
    with open(path, "r+b") as f:
        f.write(b"\x33" * MiB)
        f.flush()
        os.fsync(f.fileno())
    assert count(pt, "WRITE") == mid, "passthrough did not come back"
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
        assert m[0:4] == bytes(4)
        m.close()
    assert count(pt, "WRITE") == 0 and count(pt, "READ") == 0
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_disk.config"), "rb") as f:
        f.seek(4096)
        assert f.read(5) == b"hello"


def test_a_whole_file_copy_into_a_passthrough_file(pt, virsh, uuid):
    """copy_file_range lands in the file the kernel opened, which the
    same descriptor then reads (a clone of the volume would replace that
    file under it: the reads would find the empty file)."""
    d = os.path.join(pt.mnt, uuid)
    os.mkdir(d)
    src, dst = os.path.join(d, "disk"), os.path.join(d, "disk.copy")
    data = os.urandom(16 * MiB)
    with open(src, "wb") as f:
        f.write(data)
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        done = 0
        while done < len(data):
            n = os.copy_file_range(fi, fo, len(data) - done)
            assert n > 0
            done += n
        assert "opcode: COPY_FILE_RANGE" in pt.stderr()
        assert os.pread(fo, len(data), 0) == data
    finally:
        os.close(fi)
        os.close(fo)
    assert count(pt, "WRITE") == 0
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_disk.copy"), "rb") as f:
        assert f.read() == data


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
    assert init_flags(p) & WRITEBACK_CACHE


def test_a_mount_without_local_files_has_no_writeback_cache(poolfs_factory):
    """io=stream (as a remote mount): nothing to pass through, and no
    writeback cache either: every file is a stream's (direct_io, nothing
    cached), and the kernel would keep its own size of a file over the
    one poolfs gives (test_mapping.py, a remote file grown by others)."""
    p = poolfs_factory(["debug", "io=stream"])
    p.expect_stderr(r".")
    assert "passthrough: on" not in p.stderr()
    assert not init_flags(p) & WRITEBACK_CACHE


def test_o_direct_is_real_direct_io_on_the_volume_file(pt, virsh, uuid):
    """The default (-o passthrough=all): QEMU's cache=none reaches the
    volume's file as real direct I/O, with its alignment rules, and poolfs
    sees none of it."""
    p = pt
    path = closed_file(p, uuid, 4 * MiB)
    b = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(b, aligned(MiB, b"\x44" * MiB), MiB)
        buf = aligned(MiB)
        assert os.preadv(b, [buf], MiB) == MiB and bytes(buf) == b"\x44" * MiB
        # Direct I/O on ext4 and the like: a misaligned offset is EINVAL.
        with pytest.raises(OSError) as e:
            os.pwrite(b, aligned(4096, b"x" * 4096), 100)
        assert e.value.errno == 22
    finally:
        os.close(b)
    assert count(p, "WRITE") == 0 and count(p, "READ") == 0
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_disk"), "rb") as f:
        f.seek(MiB)
        assert f.read(MiB) == b"\x44" * MiB


def test_splice_read_is_left_out_with_passthrough(poolfs_factory, uuid):
    """-o splice_read asks libfuse to splice requests in, which it cannot
    with /dev/fuse taken over for passthrough: it refused the kernel's
    INIT, and the mount answered nothing.  It is left out, and said so."""
    p = poolfs_factory(["splice_read"])
    p.expect_stderr(r"-o splice_read is not used with passthrough")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    data = os.urandom(MiB)
    with open(os.path.join(d, "disk"), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "disk"), "rb") as f:
        assert f.read() == data
    assert "splice_read is not used" in p.stderr()
