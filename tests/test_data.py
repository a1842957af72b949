"""File data and attributes: cp in/out, sparse files, statfs, chmod/utime
(scenarios 4, 5, 12, 13)."""

import errno
import hashlib
import json
import os
import stat
import time

import pytest

from helpers import (DISKS_POOL, MiB, POOLFS_IOC_BACKEND, REFRESH, backend, have,
                     read_file, run, write_file)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


@pytest.mark.parametrize("io", ["auto", "local", "stream"])
def test_cp_in_and_out(poolfs_factory, virsh, env, random_64m, uuid, io):
    opts = [] if io == "auto" else [f"io={io}"]
    mnt = poolfs_factory(opts).mnt
    os.mkdir(os.path.join(mnt, uuid))
    inside = os.path.join(mnt, uuid, "disk")
    run(["cp", random_64m, inside], timeout=60)
    assert os.path.getsize(inside) == 64 * MiB
    out = os.path.join(env.scratch, f"{uuid}-out")
    try:
        run(["cp", inside, out], timeout=60)
        assert sha256(out) == sha256(random_64m)
    finally:
        if os.path.exists(out):
            os.unlink(out)
    info = virsh.vol_xml(DISKS_POOL, f"{uuid}_disk")
    assert "<capacity unit='bytes'>67108864</capacity>" in info, info


@pytest.mark.parametrize("io", ["auto", "stream"])
def test_small_writes_and_overwrite(poolfs_factory, uuid, io):
    """Appends, overwrites in the middle, truncation: what console.log and
    disk.info see."""
    opts = [] if io == "auto" else [f"io={io}"]
    mnt = poolfs_factory(opts).mnt
    os.mkdir(os.path.join(mnt, uuid))
    p = os.path.join(mnt, uuid, "console.log")
    expect = b""
    with open(p, "ab") as f:
        for i in range(200):
            line = f"[{i:5d}] boot message {i}\n".encode()
            f.write(line)
            f.flush()
            expect += line
    assert read_file(p) == expect
    with open(p, "r+b") as f:
        f.seek(100)
        f.write(b"XXXX")
    expect = expect[:100] + b"XXXX" + expect[104:]
    assert read_file(p) == expect
    # Rewritten from scratch (O_TRUNC), as Nova does with disk.info.
    with open(p, "wb") as f:
        f.write(expect[:80])
    assert read_file(p) == expect[:80]
    assert os.path.getsize(p) == 80
    os.truncate(p, 50)
    assert os.path.getsize(p) == 50
    assert read_file(p) == expect[:50]
    os.truncate(p, 4096)
    assert read_file(p) == expect[:50] + bytes(4046)


def make_sparse(path):
    with open(path, "wb") as f:
        f.truncate(256 * MiB)
        f.seek(100 * MiB)
        data = os.urandom(MiB)
        f.write(data)
    return data


def test_holes_of_a_file_being_written_are_not_guessed(mnt, uuid):
    """With the writeback cache, data written through a handle may not have
    reached poolfs when the writer asks where the holes are (the kernel
    does not write it back first): such a handle gets "not supported"
    (cp then copies it all, QEMU takes it as data), never a hole where
    data was written.  A reader's handle still sees the holes."""
    import errno
    os.mkdir(os.path.join(mnt, uuid))
    path = os.path.join(mnt, uuid, "disk")
    data = os.urandom(64 * 1024)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, MiB)
        try:
            off = os.lseek(fd, 0, os.SEEK_DATA)
            assert off <= MiB, f"SEEK_DATA skipped written data: {off}"
        except OSError as e:
            assert e.errno == errno.EOPNOTSUPP, e
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == MiB
        assert os.pread(fd, len(data), MiB) == data
    finally:
        os.close(fd)


def test_sparse_file_stays_sparse(mnt, env, uuid):
    src = os.path.join(env.scratch, f"{uuid}-sparse")
    data = make_sparse(src)
    try:
        os.mkdir(os.path.join(mnt, uuid))
        dst = os.path.join(mnt, uuid, "disk")
        run(["cp", "--sparse=always", src, dst], timeout=60)
    finally:
        os.unlink(src)
    st = os.stat(dst)
    assert st.st_size == 256 * MiB
    assert st.st_blocks * 512 <= 8 * MiB, f"st_blocks {st.st_blocks}: holes were filled"
    fd = os.open(dst, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 100 * MiB
        assert os.lseek(fd, 100 * MiB, os.SEEK_HOLE) == 101 * MiB
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
        try:
            off = os.lseek(fd, 101 * MiB, os.SEEK_DATA)
            raise AssertionError(f"SEEK_DATA past the last data gave {off}, not ENXIO")
        except OSError as e:
            assert e.errno == 6, e  # ENXIO
        assert os.pread(fd, MiB, 100 * MiB) == data
        assert os.pread(fd, 4096, 0) == bytes(4096)
        assert os.pread(fd, 4096, 256 * MiB - 4096) == bytes(4096)
    finally:
        os.close(fd)


@pytest.mark.skipif(not have("qemu-img"), reason="needs qemu-img (qemu-utils)")
def test_qemu_img_map_sees_holes(mnt, env, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    dst = os.path.join(mnt, uuid, "disk")
    make_sparse(dst)
    assert os.stat(dst).st_blocks * 512 <= 8 * MiB
    m = json.loads(run(["qemu-img", "map", "--output=json", "-f", "raw", dst]).stdout)

    def at(off):
        for e in m:
            if e["start"] <= off < e["start"] + e["length"]:
                return e
        raise AssertionError(f"offset {off} not in map {m}")
    assert at(100 * MiB)["data"] is True, m
    assert at(0)["data"] is False, m
    assert at(200 * MiB)["data"] is False, m
    assert sum(e["length"] for e in m) == 256 * MiB, m


def test_statfs_matches_pool_capacity(mnt, virsh):
    info = virsh.pool_info(DISKS_POOL)
    cap = int(info["capacity"])
    avail = int(info["available"])
    sv = os.statvfs(mnt)
    total = sv.f_blocks * sv.f_frsize
    assert abs(total - cap) <= cap * 0.03, f"statvfs total {total}, pool capacity {cap}"
    # libvirt's "available" of a dir pool is the file system's f_bfree.
    free = sv.f_bfree * sv.f_frsize
    assert abs(free - avail) <= cap * 0.03, f"statvfs f_bfree {free}, pool available {avail}"
    assert sv.f_bavail <= sv.f_bfree


def test_control_channel_is_an_ioctl_not_xattrs(mnt, uuid, tmp_path):
    """poolfsctl asks a mount where a path lives with an ioctl; poolfs
    answers no getxattr at all, so the kernel, told so once, stops asking
    for security.capability before every write."""
    import errno
    import fcntl
    os.mkdir(os.path.join(mnt, uuid))
    p = os.path.join(mnt, uuid, "disk")
    write_file(p, b"x" * 4096)
    assert backend(os.path.join(mnt, uuid)) == b"pool"
    assert backend(p) == b"pool"
    for name in ("security.capability", "user.poolfs.backend"):
        with pytest.raises(OSError) as e:
            os.getxattr(p, name)
        assert e.value.errno == errno.EOPNOTSUPP, (name, e.value)
    # Writes still work after that, and other ioctls are refused.
    write_file(p, b"y" * 8192)
    assert read_file(p) == b"y" * 8192
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            fcntl.ioctl(fd, POOLFS_IOC_BACKEND + 1, bytes(16))
        assert e.value.errno == errno.ENOTTY
    finally:
        os.close(fd)
    # Not a poolfs mount: the ioctl is not known there.
    with pytest.raises(OSError) as e:
        backend(str(tmp_path))
    assert e.value.errno == errno.ENOTTY


def test_chmod_and_utime(mnt, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    p = os.path.join(mnt, uuid, "disk.info")
    write_file(p, b"{}")
    os.chmod(p, 0o640)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    os.chmod(p, 0o604)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o604
    # atime is the file's, and libvirt's pool refresh (which poolfs asks
    # for after its own changes, this utime too) reads each volume's
    # header: under relatime that moves an atime at or before mtime or
    # ctime, or a day old, to now.  An atime an hour ahead is none of them.
    atime_ns = (int(time.time()) + 3600) * 10**9 + 250_000_000
    mtime_ns = 1_650_000_000 * 10**9 + 500_000_000
    os.utime(p, ns=(atime_ns, mtime_ns))
    st = os.stat(p)
    assert st.st_mtime_ns == mtime_ns
    assert st.st_atime_ns == atime_ns
    # Still so after poolfs has re-listed the pool.
    time.sleep(REFRESH + 1)
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o604
    assert st.st_mtime_ns == mtime_ns
    assert st.st_atime_ns == atime_ns
    # touch sets the times to now.
    before = time.time()
    os.utime(p)
    assert os.stat(p).st_mtime >= before - 2


@pytest.mark.parametrize("how,io", [("dd", "auto"), ("cp", "auto"),
                                    ("dd", "stream")])
def test_a_full_pool_is_an_error_not_a_short_file(small_pool, poolfs_factory,
                                                   uuid, tmp_path, how, io):
    """A write that stops short (the pool's filesystem is full) fails with
    ENOSPC from write, fsync or close: the kernel's writeback takes a short
    count for success, so poolfs must not pass one on.  The file ends
    inside the 1 MiB write that fills the pool, so no later write fails
    and would give the error away."""
    pool, target = small_pool
    p = poolfs_factory([f"disks_pool={pool}", f"io={io}"])
    if io == "stream":
        p.expect_stderr(r"upload to volume .* failed")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "console.log"), b"boot\n" * 20000)
    st = os.statvfs(target)
    free = st.f_bavail * st.f_frsize
    assert free % MiB, "the free space must end inside a 1 MiB write"
    src = tmp_path / "big"
    src.write_bytes(os.urandom((free // MiB + 1) * MiB))
    dst = os.path.join(d, "disk")
    if how == "dd":
        cmd = ["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=fsync"]
    else:
        cmd = ["sh", "-c", f"cp {src} {dst} && sync {dst}"]
    r = run(cmd, check=False)
    assert r.returncode != 0, f"{os.stat(dst).st_size} bytes of {src.stat().st_size}"
    assert "No space left on device" in r.stderr, r.stderr
    # Smaller files still go in whole once there is room again.
    os.unlink(dst)
    write_file(dst, b"x" * MiB)
    assert read_file(dst) == b"x" * MiB


def test_a_full_pool_fails_a_write_inside_a_remote_file(small_pool,
                                                        poolfs_factory, uuid):
    """Through libvirt alone (io=stream), a write inside the file (into its
    holes here) that the pool has no room for fails too: libvirt loses
    libvirtd's write error when the stream ends, and the volume's length
    says nothing (it does not grow), so poolfs reads the upload's last
    bytes back.  The writer gets an error from write, fsync or close."""
    pool, target = small_pool
    p = poolfs_factory([f"disks_pool={pool}", "io=stream"])
    p.expect_stderr(r"upload to volume .* failed")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    f = os.path.join(d, "disk")
    with open(f, "wb") as out:
        out.truncate(64 * MiB)             # all hole: it takes no room
    st = os.statvfs(target)
    free = st.f_bavail * st.f_frsize
    # Past the room by less than one stream message (256 KiB): the
    # failure is in the last one, with nothing sent after it to fail.
    data = os.urandom(free + 64 * 1024)
    with pytest.raises(OSError) as e:
        fd = os.open(f, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 8 * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
    assert e.value.errno in (errno.EIO, errno.ENOSPC), e.value
    assert os.path.getsize(f) == 64 * MiB


def test_a_shrink_that_does_not_fit_keeps_the_file(small_pool, poolfs_factory,
                                                   virsh, uuid):
    """Through libvirt alone (io=stream) a file cut short becomes a new
    volume holding the head of the old one, copied aside first: when the
    pool has no room for that copy, the truncate fails with the file as it
    was and nothing left beside it."""
    pool, target = small_pool
    p = poolfs_factory([f"disks_pool={pool}", "io=stream"])
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    f = os.path.join(d, "console.log")
    data = os.urandom(5 * MiB)
    write_file(f, data)
    with pytest.raises(OSError) as e:
        os.truncate(f, 4 * MiB)
    assert e.value.errno == errno.ENOSPC, e.value
    p.expect_stderr(r"cannot shrink volume")
    assert read_file(f) == data
    assert virsh.vol_list(pool) == {f"{uuid}_", f"{uuid}_console.log"}
    os.truncate(f, 2 * MiB)
    assert read_file(f) == data[:2 * MiB]
    assert virsh.vol_list(pool) == {f"{uuid}_", f"{uuid}_console.log"}
