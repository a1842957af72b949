"""A whole-file copy inside one mount (copy_file_range, as cp does) becomes
virStorageVolCreateXMLFrom in the pool: no data passes through FUSE."""

import os
import re

import pytest

from helpers import DISKS_POOL, MiB, have, run


def fuse_writes(p):
    """WRITE requests poolfs served so far (its -o debug log)."""
    return len(re.findall(r"opcode: WRITE \(", p.stderr()))


def test_whole_file_copy_is_a_volume_clone(poolfs_factory, virsh, uuid):
    # Without passthrough, so that the writes of the source reach poolfs
    # (and its log) and the copy's would too (test_passthrough.py has the
    # copy with it: in the kernel, the same file kept).
    p = poolfs_factory(["debug", "passthrough=off"])
    p.expect_stderr(r".")       # the debug log is all "unique: ..., error: ..."
    mnt = p.mnt
    src_dir, dst_dir = os.path.join(mnt, uuid), os.path.join(mnt, uuid + "_resize")
    os.mkdir(src_dir)
    os.mkdir(dst_dir)
    src = os.path.join(src_dir, "disk")
    with open(src, "wb") as f:
        # Not sparse: cp copies a sparse file extent by extent instead.
        f.write(os.urandom(16 * MiB))
        os.fsync(f.fileno())
    virsh.pool_refresh(DISKS_POOL)      # libvirt knows it as a raw volume
    before = fuse_writes(p)
    assert before > 0, "the log does not show writes: the check would be void"

    dst = os.path.join(dst_dir, "disk")
    run(["cp", "--reflink=auto", src, dst])

    assert fuse_writes(p) == before, "data went through the FUSE write path"
    assert "opcode: COPY_FILE_RANGE" in p.stderr()
    run(["cmp", src, dst])
    assert f"{uuid}%5Fresize_disk" in virsh.vol_list(DISKS_POOL)

    # Over a file that exists, the copy keeps its owner and mode (the
    # clone replaces the volume: it once came back root's, 0644).
    other = os.path.join(dst_dir, "disk.local")
    with open(other, "wb"):
        pass
    os.chown(other, 4321, 4322)
    os.chmod(other, 0o640)
    run(["cp", "--reflink=auto", src, other])
    assert fuse_writes(p) == before, "data went through the FUSE write path"
    run(["cmp", src, other])
    st = os.stat(other)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4321, 4322, 0o640)


@pytest.mark.skipif(not have("qemu-img"), reason="needs qemu-img")
def test_qcow2_copy_stays_byte_for_byte(poolfs, virsh, uuid):
    """libvirt would convert a qcow2 it clones: such copies go byte by byte."""
    mnt = poolfs.mnt
    os.mkdir(os.path.join(mnt, uuid))
    src = os.path.join(mnt, uuid, "disk")
    run(["qemu-img", "create", "-f", "qcow2", src, "1G"])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 100M 1M", src])
    virsh.pool_refresh(DISKS_POOL)
    dst = os.path.join(mnt, uuid, "disk.copy")
    run(["cp", src, dst])
    run(["cmp", src, dst])
    r = run(["qemu-img", "info", "--output=json", dst])
    assert '"format": "qcow2"' in r.stdout
