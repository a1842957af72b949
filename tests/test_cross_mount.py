"""Copies from one node's mount to another node's mount: every byte to node
B goes through libvirt volume streams (B's pools mounted with io=stream, the
data path of a qemu+tls:// mount), holes stay holes."""

import os
import signal
import time

import pytest

from helpers import DISKS_POOL, MiB, have, run

FILES = {
    # name: (size, [(offset, length) of data])
    "disk": (1024 * MiB, [(0, MiB), (300 * MiB, 3 * MiB), (1000 * MiB, 2 * MiB)]),
    "disk.local": (256 * MiB, [(100 * MiB, 2 * MiB)]),
    "disk.info": (37, [(0, 37)]),
}


def allocated(path):
    return os.stat(path).st_blocks * 512


def populate(mnt, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    for name, (size, runs) in FILES.items():
        with open(os.path.join(d, name), "wb") as f:
            for off, length in runs:
                f.seek(off)
                f.write(os.urandom(length))
            f.truncate(size)


def check_copied(env, node_b, uuid):
    for name in FILES:
        src = os.path.join(env.disks_dir, f"{uuid}_{name}")
        dst = os.path.join(node_b.disks, f"{uuid}_{name}")
        assert os.path.getsize(dst) == os.path.getsize(src), name
        run(["cmp", src, dst])
        # Holes kept: B allocates what A allocates (give or take a block).
        assert allocated(dst) <= allocated(src) + 64 * 1024, \
            f"{name}: {allocated(dst)} allocated on B, {allocated(src)} on A"
    assert f"{uuid}_disk" in node_b.virsh.vol_list(DISKS_POOL)


@pytest.fixture
def two_mounts(poolfs_factory, nodes):
    a, b = nodes
    ma = poolfs_factory()
    mb = poolfs_factory(["io=stream"], uri=b.uri)
    return ma.mnt, mb.mnt


def test_cp_sparse_across_mounts(two_mounts, env, node_b, uuid):
    ma, mb = two_mounts
    populate(ma, uuid)
    run(["cp", "-r", "--sparse=always", os.path.join(ma, uuid), mb + "/"],
        timeout=120)
    check_copied(env, node_b, uuid)


@pytest.mark.skipif(not have("rsync"), reason="needs rsync")
def test_rsync_sparse_across_mounts(two_mounts, env, node_b, uuid):
    ma, mb = two_mounts
    populate(ma, uuid)
    run(["rsync", "-a", "--sparse", os.path.join(ma, uuid), mb + "/"],
        timeout=120)
    check_copied(env, node_b, uuid)


def test_remote_daemon_gone_is_an_error_not_silence(poolfs_factory, nodes,
                                                    uuid):
    a, b = nodes
    mb = poolfs_factory(["io=stream"], uri=b.uri)
    mb.expect_stderr(r"upload|connect|stream|libvirt|refresh|list")
    os.mkdir(os.path.join(mb.mnt, uuid))
    path = os.path.join(mb.mnt, uuid, "disk")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    failed = None
    try:
        chunk = os.urandom(MiB)
        os.write(fd, chunk)
        os.kill(b.pid, signal.SIGKILL)
        time.sleep(0.2)
        try:
            for _ in range(64):
                os.write(fd, chunk)
            os.fsync(fd)
        except OSError as e:
            failed = e
    finally:
        try:
            os.close(fd)
        except OSError as e:
            failed = failed or e
    assert failed is not None, "writes to a dead node were reported as success"
    b.stop()
    b.start()


def test_stream_writes_inside_a_file_keep_the_rest(poolfs_factory, nodes, uuid):
    """A sparse upload's hole is an ftruncate() at libvirtd's end: a write
    that skips forward inside a file must not send one (it would cut the
    file there).  Write 8 MiB, then 4 KiB at 0 and at 4 MiB: the rest stays."""
    a, b = nodes
    mb = poolfs_factory(["io=stream"], uri=b.uri)
    os.mkdir(os.path.join(mb.mnt, uuid))
    path = os.path.join(mb.mnt, uuid, "disk")
    data = bytearray(os.urandom(8 * MiB))
    with open(path, "wb") as f:
        f.write(data)
    patch = os.urandom(4096)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, patch, 0)
        os.pwrite(fd, patch, 4 * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    data[0:4096] = patch
    data[4 * MiB:4 * MiB + 4096] = patch
    on_b = os.path.join(b.disks, f"{uuid}_disk")
    assert os.path.getsize(on_b) == 8 * MiB
    with open(on_b, "rb") as f:
        assert f.read() == bytes(data)
