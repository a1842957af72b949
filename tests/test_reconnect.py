"""libvirtd goes away and comes back (a restart, an upgrade) under a mounted
poolfs: the mount stays, open files keep working through the outage, and
once the daemon is back with the same pools poolfs connects again on its
own, so names can change again with no remount (a remount would need every
guest with a disk open on it stopped)."""

import errno
import os
import socket
import subprocess
import time

import pytest

from conftest import private_node
from helpers import DISKS_POOL, wait_for


@pytest.fixture
def node():
    """A libvirtd of this test's own, which the test stops and starts."""
    with private_node("poolfs-reconnect-") as n:
        yield n


def create_fails_with_eio(path):
    try:
        with open(path, "wb") as f:
            f.write(b"x")
    except OSError as e:
        return e.errno == errno.EIO
    return False


@pytest.mark.parametrize("io", ["auto", "stream"])
def test_libvirtd_restart_is_survived(node, poolfs_factory, io):
    """io=auto: the volumes' files directly (passthrough); io=stream: every
    byte through libvirt, as a remote mount, so the file held open across
    the restart must find its volume on the new connection."""
    p = poolfs_factory(uri=node.uri, options=["refresh=0.5", f"io={io}"])
    p.expect_stderr(r"connection to libvirt at .* is lost")
    p.expect_stderr(r"cannot create volume")
    p.expect_stderr(r"cannot (download|upload|read the size of)")
    mnt = p.mnt
    os.mkdir(os.path.join(mnt, "inst1"))
    with open(os.path.join(mnt, "inst1", "disk"), "wb") as f:
        f.write(b"before")
    with open(os.path.join(mnt, "inst1", "disk.config"), "wb") as f:
        f.write(b"config")
    held = open(os.path.join(mnt, "inst1", "disk"), "r+b")
    try:
        node.stop()
        # The outage: the view and the open file are served; a new name
        # cannot be made (no libvirtd to make the volume) and says so.
        assert sorted(os.listdir(os.path.join(mnt, "inst1"))) == \
            ["disk", "disk.config"]
        if io == "auto":
            assert held.read() == b"before"
            # A rename in a pool of files is rename(2) in its directory:
            # it goes on, and libvirt learns of it once it is back.
            os.rename(os.path.join(mnt, "inst1", "disk.config"),
                      os.path.join(mnt, "inst1", "disk.config.0"))
        wait_for(lambda: create_fails_with_eio(os.path.join(mnt, "inst1", "x")),
                 10, "a create to fail with EIO while libvirtd is away")
        wait_for(lambda: "is lost" in p.stderr(), 10, "the loss to be logged")

        # Back, but the disks pool now has another directory: poolfs's
        # view names files in the old one, so it stays away and says why.
        other = os.path.join(node.root, "elsewhere")
        os.makedirs(other)
        real_disks = node.disks
        node.disks = other
        node.start()
        wait_for(lambda: f"is now a dir pool in {other}" in p.stderr(), 15,
                 "poolfs to refuse the moved pool")
        assert create_fails_with_eio(os.path.join(mnt, "inst1", "y"))

        # The pool where it was: poolfs connects again by itself.
        node.virsh("pool-destroy", DISKS_POOL)
        node.virsh("pool-create-as", DISKS_POOL, "dir", "--target", real_disks)
        node.disks = real_disks
        wait_for(lambda: "connected to libvirt at" in p.stderr(), 15,
                 "poolfs to connect again")
        with open(os.path.join(mnt, "inst1", "disk.info"), "w") as f:
            f.write("{}")
        os.mkdir(os.path.join(mnt, "inst2"))
        vols = node.virsh.vol_list(DISKS_POOL)
        assert "inst1_disk.info" in vols and "inst2_" in vols, vols
        if io == "auto":
            assert "inst1_disk.config.0" in vols, vols
        # The file held open all along still reads and writes its volume.
        held.seek(0)
        held.write(b"after!")
        held.flush()
        os.fsync(held.fileno())
        with open(os.path.join(real_disks, "inst1_disk"), "rb") as f:
            assert f.read() == b"after!"
        # Others' changes reach the view again (events or the re-listing).
        node.virsh("vol-create-as", DISKS_POOL, "inst1_console.log", "1K")
        wait_for(lambda: "console.log" in os.listdir(os.path.join(mnt, "inst1")),
                 10, "a volume made with virsh to show")
        # Every line poolfs said about it: lost, refused, back; once each.
        err = p.stderr()
        assert err.count("connected to libvirt at") == 1, err
        assert err.count("is now a dir pool") == 1, err
    finally:
        held.close()


def test_a_pool_stopped_across_a_restart_does_not_keep_the_others_away(
        node, poolfs_factory):
    """libvirtd comes back with one of the mount's pools (a pool_map pool)
    defined but not started: poolfs connects again all the same, keeps
    that pool's part of the view, and serves the others' changes (it used
    to wait for every pool to be active, the whole mount stuck)."""
    swap = os.path.join(node.root, "swap")
    os.makedirs(swap)
    node.virsh("pool-create-as", "nova-swap-pool", "dir", "--target", swap)
    p = poolfs_factory(uri=node.uri, options=[
        "refresh=0.5", "pool_map=disk.swap:nova-swap-pool"])
    p.expect_stderr(r"connection to libvirt at .* is lost")
    p.expect_stderr(r"cannot list the volumes of storage pool 'nova-swap-pool'")
    p.expect_stderr(r"cannot (create|refresh)")
    mnt = p.mnt
    os.mkdir(os.path.join(mnt, "inst1"))
    with open(os.path.join(mnt, "inst1", "disk.swap"), "wb") as f:
        f.write(b"swap")
    node.stop()
    wait_for(lambda: "is lost" in p.stderr(), 10, "the loss to be logged")
    node.start()
    node.virsh("pool-define-as", "nova-swap-pool", "dir", "--target", swap)
    wait_for(lambda: "connected to libvirt at" in p.stderr(), 15,
             "poolfs to connect again")
    node.virsh("vol-create-as", DISKS_POOL, "inst1_console.log", "1K")
    wait_for(lambda: "console.log" in os.listdir(os.path.join(mnt, "inst1")),
             10, "a volume made with virsh to show")
    assert sorted(os.listdir(os.path.join(mnt, "inst1"))) == \
        ["console.log", "disk.swap"]


def test_unmount_does_not_wait_for_a_daemon_that_does_not_answer(
        node, poolfs_factory):
    """libvirtd is gone, and what now listens on its socket never accepts
    (a full backlog: poolfs's next attempt blocks in connect, as on a
    remote host that does not answer).  An unmount still ends poolfs in
    seconds, saying why it did not wait."""
    p = poolfs_factory(uri=node.uri, options=["refresh=0.5"])
    p.expect_stderr(r"connection to libvirt at .* is lost")
    p.expect_stderr(r"has not answered for")
    node.stop()
    wait_for(lambda: "is lost" in p.stderr(), 10, "the loss to be logged")
    sock_path = os.path.join(node.lv, "libvirt-sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(sock_path)
        listener.listen(0)
        filler.connect(sock_path)       # the backlog is full from here on
        time.sleep(3)                   # poolfs's next attempt is stuck
        t0 = time.monotonic()
        r = subprocess.run(["fusermount3", "-u", p.mnt], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        p.proc.wait(timeout=30)
        took = time.monotonic() - t0
        assert took < 15, f"poolfs took {took:.1f} s to exit"
        assert "has not answered for 5 s" in p.stderr(), p.stderr()
    finally:
        filler.close()
        listener.close()
        if os.path.exists(sock_path):
            os.unlink(sock_path)
