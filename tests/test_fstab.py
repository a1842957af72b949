"""Mounting the fstab way: mount -t fuse.poolfs (scenario 11)."""

import os
import time

import pytest

from helpers import (BASE_POOL, DISKS_POOL, SEEN_WITHIN, fusermount_u, is_mounted,
                     mount_fstype, pids_of, run, wait_for)


# mount(8) runs its helper (mount.fuse3) with PATH removed from the
# environment, and mount.fuse3 then runs "poolfs" through /bin/sh, whose
# default PATH is /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
# Extending PATH alone therefore does not let it find a poolfs that is not
# installed.  So mount(8) runs in a throw-away mount namespace in which a
# directory holding a "poolfs" link to the binary under test is bound over
# /usr/local/sbin; the mountpoint is under the session's shared mount, so the
# FUSE mount made there propagates back to the test's namespace (and
# libvirtd's).  The poolfs daemon stays in that namespace until it exits.
FSTAB_MOUNT = ('mount --bind "$1" /usr/local/sbin && '
               'exec mount -t fuse.poolfs "$2" "$3" -o "$4"')


@pytest.fixture
def fstab_mount(env, poolfs_bin, clean_pools):
    bindir = os.path.join(env.scratch, "fstab-bin")
    os.makedirs(bindir, exist_ok=True)
    link = os.path.join(bindir, "poolfs")
    if not os.path.islink(link):
        os.symlink(poolfs_bin, link)
    vars_ = dict(os.environ)
    vars_["PATH"] = os.path.dirname(poolfs_bin) + os.pathsep + vars_.get("PATH", "")

    def mount(source, mp, opts):
        return run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                    FSTAB_MOUNT, "sh", bindir, source, mp, opts],
                   env=vars_, timeout=30, check=False)
    return mount


def cleanup(mp, poolfs_bin):
    if is_mounted(mp):
        fusermount_u(mp, lazy=True)
    for pid in pids_of(os.path.basename(poolfs_bin), mp):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_mount_t_fuse_poolfs(env, virsh, poolfs_bin, fstab_mount, mountpoint_factory, uuid):
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk", "1M", "raw")
    virsh.vol_create_as(BASE_POOL, "base-image", "2M", "raw")
    mp = mountpoint_factory()
    opts = f"disks_pool={DISKS_POOL},base_pool={BASE_POOL},allow_other"
    try:
        r = fstab_mount(env.uri, mp, opts)
        assert r.returncode == 0, f"mount failed ({r.returncode}): {r.stderr}"
        assert is_mounted(mp)
        assert mount_fstype(mp) == "fuse.poolfs", mount_fstype(mp)
        # The tree shows this libvirtd's volumes, so the URI with its "://"
        # and "?socket=" reached poolfs intact.
        assert os.path.getsize(os.path.join(mp, uuid, "disk")) == 1024 * 1024
        assert os.listdir(os.path.join(mp, "_base")) == ["base-image"]
        # Daemonized: a poolfs process serves the mount, in the background.
        pids = pids_of(os.path.basename(poolfs_bin), mp)
        assert len(pids) == 1, f"poolfs daemons for {mp}: {pids}"
        # allow_other: another user can look.
        st = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  "ls", mp], check=False, timeout=10)
        assert st.returncode == 0 and uuid in st.stdout, st

        r = fusermount_u(mp)
        assert r is not None and r.returncode == 0, r
        wait_for(lambda: not pids_of(os.path.basename(poolfs_bin), mp), 10,
                 "the poolfs daemon to exit after unmount")
        assert not is_mounted(mp)
    finally:
        cleanup(mp, poolfs_bin)


def test_mount_t_fuse_poolfs_failure(env, poolfs_bin, fstab_mount, mountpoint_factory):
    mp = mountpoint_factory()
    try:
        r = fstab_mount(env.uri, mp, "disks_pool=nope")
        assert r.returncode != 0, r
        assert "poolfs: " in r.stderr and "nope" in r.stderr, r.stderr
        time.sleep(0.2)
        assert not is_mounted(mp)
        assert not pids_of(os.path.basename(poolfs_bin), mp)
    finally:
        cleanup(mp, poolfs_bin)


def test_two_mounts_see_each_others_changes(poolfs_factory, uuid):
    """Two hosts' views of the same pools: one writes, the other sees it
    within the refresh period."""
    a = poolfs_factory().mnt
    b = poolfs_factory().mnt
    os.mkdir(os.path.join(a, uuid))
    with open(os.path.join(a, uuid, "disk.info"), "wb") as f:
        f.write(b"from a")
    pb = os.path.join(b, uuid, "disk.info")
    wait_for(lambda: os.path.exists(pb), SEEN_WITHIN, f"{pb} to appear on the other mount")
    with open(pb, "rb") as f:
        assert f.read() == b"from a"
    os.unlink(pb)
    wait_for(lambda: not os.path.exists(os.path.join(a, uuid, "disk.info")), SEEN_WITHIN,
             "the unlink on one mount to show on the other")
