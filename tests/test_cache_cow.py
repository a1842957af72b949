"""`poolfsctl create-cow` and `poolfsctl cache`: qcow2 overlays made with a
backingStore element, and the image cache read from libvirt's volume XML."""

import json
import os
import time

import pytest

from helpers import BASE_POOL, DISKS_POOL, SEEN_WITHIN, have, run, wait_for

pytestmark = pytest.mark.skipif(not (have("qemu-img") and have("qemu-io")),
                                reason="needs qemu-utils")


def ctl(poolfsctl, env, *args, check=True):
    return run([poolfsctl, "-c", env.uri, *args], check=check)


def make_base(mnt, name, pattern):
    path = os.path.join(mnt, "_base", name)
    run(["qemu-img", "create", "-f", "raw", path, "32M"])
    run(["qemu-io", "-f", "raw", "-c", f"write -P {pattern} 0 1M", path])
    return path


def test_create_cow_and_cache_report(poolfs, env, virsh, poolfsctl):
    mnt = poolfs.mnt
    make_base(mnt, "used", "0x11")
    make_base(mnt, "old", "0x22")
    make_base(mnt, "fresh", "0x33")
    uuids = ["6c0b6f5e-0000-4000-8000-000000000001",
             "6c0b6f5e-0000-4000-8000-000000000002"]
    for u in uuids:
        os.mkdir(os.path.join(mnt, u))
        r = ctl(poolfsctl, env, "create-cow", "--mount", mnt, f"{u}/disk",
                "--backing", "_base/used", "--size", "1G")
        assert r.stdout.startswith(f"created {u}_disk"), r.stdout
    disk = os.path.join(mnt, uuids[0], "disk")
    # The mount learns of it from the pool refresh event create-cow sends.
    wait_for(lambda: os.path.exists(disk), SEEN_WITHIN, "the overlay in the mount")
    # Readable by nova, not root's 0600 (libvirt's default).
    assert os.stat(disk).st_mode & 0o7777 == 0o644
    info = json.loads(run(["qemu-img", "info", "--output=json", disk]).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 1 << 30
    assert info["backing-filename"] == os.path.join(mnt, "_base", "used")
    r = run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x11 0 1M", disk])
    assert "Pattern verification failed" not in r.stdout
    assert "<format type='qcow2'/>" in virsh.vol_xml(DISKS_POOL, f"{uuids[0]}_disk")

    # An old one: not touched for two hours.
    past = time.time() - 7200
    os.utime(os.path.join(mnt, "_base", "old"), (past, past))
    virsh.pool_refresh(BASE_POOL)

    doc = json.loads(ctl(poolfsctl, env, "--json", "cache").stdout)
    users = {i["name"]: sorted(i["users"]) for i in doc["images"]}
    assert users == {"used": sorted(f"{u}_disk" for u in uuids),
                     "old": [], "fresh": []}, users
    text = ctl(poolfsctl, env, "cache", "--unused").stdout
    assert sorted(line.split("\t")[0] for line in text.splitlines()) == ["fresh", "old"]

    # Removal needs an age, takes only the unused ones older than it.
    r = ctl(poolfsctl, env, "cache", "--remove-unused", check=False)
    assert r.returncode == 2 and "--min-age" in r.stderr
    # Not while a copy is being landed (its head, which names its backing
    # file, comes last): nothing goes.
    landing = f".partial-{uuids[0]}_disk.local"
    virsh.vol_create_as(DISKS_POOL, landing, "64K", "raw")
    r = ctl(poolfsctl, env, "--json", "cache", "--remove-unused",
            "--min-age", "3600", check=False)
    assert r.returncode == 1, r.stdout
    assert f"being landed ({DISKS_POOL}/{landing})" in json.loads(r.stdout)["error"]
    assert virsh.vol_list(BASE_POOL) == {"used", "old", "fresh"}
    virsh.vol_delete(DISKS_POOL, landing)
    r = ctl(poolfsctl, env, "--json", "cache", "--remove-unused",
            "--min-age", "3600")
    doc = json.loads(r.stdout)
    assert [(i["name"], i["action"]) for i in doc["images"]] == [("old", "removed")]
    assert virsh.vol_list(BASE_POOL) == {"used", "fresh"}
    # In use is never removed, whatever the age.
    ctl(poolfsctl, env, "cache", "--remove-unused", "--min-age", "0")
    assert virsh.vol_list(BASE_POOL) == {"used"}


def test_create_cow_errors(poolfs, env, poolfsctl):
    r = ctl(poolfsctl, env, "create-cow", "--mount", poolfs.mnt,
            "abc/disk", "--backing", "_base/nope", check=False)
    assert r.returncode == 1 and "base image 'nope'" in r.stderr, r.stderr
    r = ctl(poolfsctl, env, "create-cow", "--mount", poolfs.mnt,
            "abc/disk", "--backing", "/etc/passwd", check=False)
    assert r.returncode == 2 and "_base/IMAGE" in r.stderr


def test_cache_keeps_images_used_elsewhere_or_of_unknown_age(poolfs, env, virsh,
                                                              poolfsctl, tmp_path):
    """A base image backing a volume of another pool (poolfs's pool_map puts
    disk.local and disk.swap there) is in use; one whose age cannot be told
    (no timestamps, or a clock ahead) is never old enough to remove."""
    mnt = poolfs.mnt
    make_base(mnt, "ephemeral_1_0706d66", "0x44")
    make_base(mnt, "ahead", "0x55")
    future = time.time() + 3600
    os.utime(os.path.join(mnt, "_base", "ahead"), (future, future))
    virsh.pool_refresh(BASE_POOL)
    other = tmp_path / "eph-pool"
    other.mkdir()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b",
         os.path.join(mnt, "_base", "ephemeral_1_0706d66"),
         str(other / "6c0b6f5e-0000-4000-8000-000000000003_disk.local"), "1G"])
    virsh("pool-create-as", "nova-eph-pool", "dir", "--target", str(other))
    try:
        doc = json.loads(ctl(poolfsctl, env, "--json", "cache").stdout)
        users = {i["name"]: i["users"] for i in doc["images"]}
        assert users["ephemeral_1_0706d66"] == \
            ["6c0b6f5e-0000-4000-8000-000000000003_disk.local"], users
        ctl(poolfsctl, env, "cache", "--remove-unused", "--min-age", "0")
        assert virsh.vol_list(BASE_POOL) >= {"ephemeral_1_0706d66", "ahead"}
    finally:
        virsh("pool-destroy", "nova-eph-pool", check=False)
        for n in ("ephemeral_1_0706d66", "ahead"):
            virsh("vol-delete", "--pool", BASE_POOL, n, check=False)


def test_cache_counts_pool_paths_and_inactive_pools(poolfs, env, virsh,
                                                    poolfsctl, tmp_path):
    """A volume made with libvirt names its base by the base pool's own
    path, not MOUNT/_base/: a user.  An inactive dir pool's files are read
    where they lie: users.  An inactive pool that cannot be read (here its
    directory is gone) is warned of, and --remove-unused removes nothing."""
    mnt = poolfs.mnt
    names = ("by-path", "by-link", "by-inactive", "unused")
    for i, name in enumerate(names):
        make_base(mnt, name, hex(0x61 + i))
    past = time.time() - 7200
    for name in names:
        os.utime(os.path.join(mnt, "_base", name), (past, past))
    virsh.pool_refresh(BASE_POOL)
    uuid = "6c0b6f5e-0000-4000-8000-000000000004"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b",
         os.path.join(env.base_dir, "by-path"),
         os.path.join(env.disks_dir, f"{uuid}_disk"), "1G"])
    # The base pool's directory by another spelling (a link to it).
    link = tmp_path / "base-link"
    link.symlink_to(env.base_dir)
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b",
         str(link / "by-link"),
         os.path.join(env.disks_dir, f"{uuid}_disk.local"), "1G"])
    virsh.pool_refresh(DISKS_POOL)
    parked = tmp_path / "parked"
    parked.mkdir()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b",
         os.path.join(mnt, "_base", "by-inactive"),
         str(parked / "6c0b6f5e-0000-4000-8000-000000000005_disk"), "1G"])
    virsh("pool-define-as", "nova-parked-pool", "dir", "--target", str(parked))
    try:
        doc = json.loads(ctl(poolfsctl, env, "--json", "cache").stdout)
        users = {i["name"]: i["users"] for i in doc["images"]}
        assert users["by-path"] == [f"{uuid}_disk"], users
        assert users["by-link"] == [f"{uuid}_disk.local"], users
        assert users["by-inactive"] == [
            "nova-parked-pool/6c0b6f5e-0000-4000-8000-000000000005_disk "
            "(pool inactive)"], users
        assert users["unused"] == [] and "warning" not in doc, doc
        ctl(poolfsctl, env, "cache", "--remove-unused", "--min-age", "3600")
        assert virsh.vol_list(BASE_POOL) >= {"by-path", "by-link", "by-inactive"}
        assert "unused" not in virsh.vol_list(BASE_POOL)

        make_base(mnt, "unused", "0x63")
        os.utime(os.path.join(mnt, "_base", "unused"), (past, past))
        virsh.pool_refresh(BASE_POOL)
        virsh("pool-define-as", "nova-gone-pool", "dir", "--target",
              str(tmp_path / "gone"))
        r = ctl(poolfsctl, env, "--json", "cache")
        assert "nova-gone-pool" in json.loads(r.stdout)["warning"]
        assert "warning" in r.stderr and "'nova-gone-pool'" in r.stderr
        r = ctl(poolfsctl, env, "cache", "--remove-unused", "--min-age",
                "3600", check=False)
        assert r.returncode == 1, r.stdout
        assert r.stderr.startswith("poolfsctl: ") and \
            "'nova-gone-pool'" in r.stderr and "nothing is removed" in r.stderr
        assert "unused" in virsh.vol_list(BASE_POOL)
    finally:
        virsh("pool-undefine", "nova-parked-pool", check=False)
        virsh("pool-undefine", "nova-gone-pool", check=False)
        for n in ("disk", "disk.local"):
            virsh("vol-delete", "--pool", DISKS_POOL, f"{uuid}_{n}",
                  check=False)
        for n in names:
            virsh("vol-delete", "--pool", BASE_POOL, n, check=False)
