"""poolfs mounted over a directory that already holds legacy instances:
they stay where they are and keep working through the mount, new
instances go to the pool, and nothing is silently shadowed."""

import os
import shutil
import subprocess
import time

import pytest

from helpers import (BASE_POOL, DISKS_POOL, SEEN_WITHIN, MiB, backend,
                     content_digest, have,
                     read_file, run, tiny_domain_xml, wait_for, write_file)

pytestmark = pytest.mark.skipif(not (have("qemu-img") and have("qemu-io")),
                                reason="needs qemu-utils")

LEGACY = "1e6a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
CONFLICT = "2f7b3c4d-5e6f-4071-9b8c-0d1e2f3a4b5c"


def populate(under):
    os.makedirs(os.path.join(under, "_base"))
    base = os.path.join(under, "_base", "cafe0123")
    run(["qemu-img", "create", "-f", "raw", base, "32M"])
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x61 0 1M", base])
    for uuid in (LEGACY, CONFLICT):
        d = os.path.join(under, uuid)
        os.makedirs(d)
        run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw",
             os.path.join(d, "disk"), "1G"])
        write_file(os.path.join(d, "disk.info"), b'{"disk": "qcow2"}')
        write_file(os.path.join(d, "console.log"), b"boot\n")
    os.makedirs(os.path.join(under, "locks"))
    write_file(os.path.join(under, "compute_nodes"), b'{"node": 1}')


def test_legacy_instances_keep_working(poolfs_factory, mountpoint_factory,
                                       virsh, uuid):
    under = mountpoint_factory()
    populate(under)
    # A symbolic link on legacy storage reads as one through the mount.
    os.symlink("../compute_nodes", os.path.join(under, "locks", "nodes-link"))
    # A volume in the pool with the name of a legacy instance: a conflict.
    virsh.vol_create_as(DISKS_POOL, f"{CONFLICT}_disk", 1 * MiB)
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    err = p.stderr()
    assert f"2 instances still on legacy storage under {under}" in err, err
    assert LEGACY in err and CONFLICT in err
    assert f"conflict: {CONFLICT} both under" in err, err
    mnt = p.mnt

    top = set(os.listdir(mnt))
    assert {LEGACY, CONFLICT, "_base", "locks", "compute_nodes"} <= top, top
    assert "cafe0123" in os.listdir(os.path.join(mnt, "_base"))
    assert os.readlink(os.path.join(mnt, "locks", "nodes-link")) == \
        "../compute_nodes"
    assert read_file(os.path.join(mnt, "locks", "nodes-link")) == \
        read_file(os.path.join(under, "compute_nodes"))
    # The conflicting volume is not hidden: it is under _unmapped.
    assert os.listdir(os.path.join(mnt, "_unmapped")) == [f"{CONFLICT}_disk"]

    # QEMU's view of a legacy disk: its backing file through the mount.
    disk = os.path.join(mnt, LEGACY, "disk")
    run(["qemu-img", "rebase", "-u", "-F", "raw", "-b",
         os.path.join(mnt, "_base", "cafe0123"), disk])
    run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x61 0 1M",
         "-c", "write -P 0x62 600M 1M", disk])
    run(["qemu-img", "check", disk])
    with open(os.path.join(mnt, LEGACY, "console.log"), "ab") as f:
        f.write(b"login:\n")
    assert read_file(os.path.join(mnt, LEGACY, "console.log")) == b"boot\nlogin:\n"

    # Resize renames the instance directory and back, on legacy storage.
    os.rename(os.path.join(mnt, LEGACY), os.path.join(mnt, f"{LEGACY}_resize"))
    assert sorted(os.listdir(os.path.join(mnt, f"{LEGACY}_resize"))) == \
        ["console.log", "disk", "disk.info"]
    os.rename(os.path.join(mnt, f"{LEGACY}_resize"), os.path.join(mnt, LEGACY))
    # Legacy data is not copied into the pool...
    assert not [v for v in virsh.vol_list(DISKS_POOL) if v.startswith(LEGACY)]
    # ...and new instances go to the pool.
    os.mkdir(os.path.join(mnt, uuid))
    write_file(os.path.join(mnt, uuid, "disk.info"), b"{}")
    assert f"{uuid}_disk.info" in virsh.vol_list(DISKS_POOL)
    # Deleting a legacy instance deletes it underneath.
    shutil.rmtree(os.path.join(mnt, CONFLICT))
    assert CONFLICT not in os.listdir(mnt) or \
        os.listdir(os.path.join(mnt, CONFLICT)) == []
    p.stop()
    # Underneath, the legacy tree has what was done through the mount.
    r = run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x62 600M 1M",
             os.path.join(under, LEGACY, "disk")])
    assert "Pattern verification failed" not in r.stdout
    assert read_file(os.path.join(under, LEGACY, "console.log")) == b"boot\nlogin:\n"
    assert not os.path.exists(os.path.join(under, CONFLICT))


def test_cache_counts_legacy_instances_as_users(poolfs_factory,
                                               mountpoint_factory, virsh,
                                               poolfsctl, env):
    """A legacy instance's qcow2 disk backed by a base image of the pool
    (MOUNT/_base/X, as Nova writes it) uses that image though libvirt
    knows nothing of the disk: `cache` lists it, and --remove-unused
    leaves the image, however old."""
    import json
    under = mountpoint_factory()
    populate(under)
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    mnt = p.mnt
    virsh.vol_create_as(BASE_POOL, "poolbase1", "4M", "raw")
    virsh.vol_create_as(BASE_POOL, "poolbase2", "4M", "raw")
    virsh.pool_refresh(BASE_POOL)
    wait_for(lambda: os.path.exists(os.path.join(mnt, "_base", "poolbase1")),
             SEEN_WITHIN, "the base image in the mount")
    disk = os.path.join(under, LEGACY, "disk.local")
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
         os.path.join(mnt, "_base", "poolbase1"), disk, "1G"])
    for name in ("poolbase1", "poolbase2"):       # both two hours old
        past = time.time() - 7200
        os.utime(os.path.join(env.base_dir, name), (past, past))
    virsh.pool_refresh(BASE_POOL)
    try:
        r = run([poolfsctl, "-c", env.uri, "--json", "cache", "--mount", mnt,
                 "--remove-unused", "--min-age", "60"])
        doc = {i["name"]: i for i in json.loads(r.stdout)["images"]}
        assert "poolbase1" not in doc, doc
        assert doc["poolbase2"]["action"] == "removed", doc
        vols = virsh.vol_list(BASE_POOL)
        assert "poolbase1" in vols and "poolbase2" not in vols, vols
        r = run([poolfsctl, "-c", env.uri, "--json", "cache", "--mount", mnt])
        users = {i["name"]: i["users"] for i in json.loads(r.stdout)["images"]}
        assert users["poolbase1"] == [f"{LEGACY}/disk.local (legacy)"], users
        # poolfs stopped: the path is the legacy tree itself, which counts
        # all the same.
        p.stop()
        r = run([poolfsctl, "-c", env.uri, "--json", "cache", "--mount", mnt,
                 "--remove-unused", "--min-age", "60"])
        assert "poolbase1" in virsh.vol_list(BASE_POOL), r.stdout
    finally:
        for name in ("poolbase1", "poolbase2"):
            virsh("vol-delete", "--pool", BASE_POOL, name, check=False)


@pytest.fixture
def adopt_pool(env, virsh):
    """A disks pool on the same mount as the instances directory (rename(2)
    does not cross mount points, and the tests' mountpoints live in a bind
    mount of their own)."""
    target = os.path.join(env.mnt_root, "adopt-disks")
    os.makedirs(target)
    virsh("pool-create-as", "adopt-disks", "dir", "--target", target)
    yield "adopt-disks", target
    virsh("pool-destroy", "adopt-disks", check=False)
    shutil.rmtree(target, ignore_errors=True)


NOVA = (4321, 4322)


def nova_owned(d):
    """Make the legacy instance directory D and its files nova's (a uid
    and gid of their own), the files 0640, the directory 0750."""
    for n in os.listdir(d):
        os.chown(os.path.join(d, n), *NOVA)
        os.chmod(os.path.join(d, n), 0o640)
    os.chown(d, *NOVA)
    os.chmod(d, 0o750)


def assert_nova_owned(target, uuid, names):
    """The volumes of NAMES and the marker in the pool directory TARGET
    kept what nova_owned() gave the legacy files and directory."""
    for n in names:
        st = os.stat(os.path.join(target, f"{uuid}_{n}"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*NOVA, 0o640), n
    st = os.stat(os.path.join(target, f"{uuid}_"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*NOVA, 0o750)


def test_adopt_by_rename_keeps_paths_and_open_files(poolfs_factory,
                                                    mountpoint_factory,
                                                    virsh, poolfsctl, env,
                                                    adopt_pool):
    pool, target = adopt_pool
    under = mountpoint_factory()
    populate(under)
    nova_owned(os.path.join(under, LEGACY))
    p = poolfs_factory([f"disks_pool={pool}"], mountpoint=under)
    p.expect_stderr(r"still on legacy storage")
    mnt = p.mnt
    disk = os.path.join(mnt, LEGACY, "disk")
    before = read_file(disk)
    assert backend(os.path.join(mnt, LEGACY)) == b"legacy"
    held = os.open(disk, os.O_RDWR)     # as QEMU holds it
    try:
        r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
                 "--mount", mnt, "--dry-run", LEGACY])
        assert r.stdout.startswith(f"would adopt {LEGACY}: 3 files"), r.stdout
        assert not [v for v in virsh.vol_list(pool) if v.startswith(LEGACY)]

        r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
                 "--mount", mnt, LEGACY])
        assert r.stdout.startswith(f"adopted {LEGACY}: 3 files"), r.stdout
        vols = virsh.vol_list(pool)
        assert {f"{LEGACY}_disk", f"{LEGACY}_disk.info",
                f"{LEGACY}_console.log"} <= vols, vols
        # Same paths, same bytes, now pool volumes.
        assert backend(os.path.join(mnt, LEGACY)) == b"pool"
        assert read_file(disk) == before
        assert sorted(os.listdir(os.path.join(mnt, LEGACY))) == \
            ["console.log", "disk", "disk.info"]
        assert_nova_owned(target, LEGACY, ["console.log", "disk", "disk.info"])
        # The open file followed the rename.
        os.pwrite(held, b"still-open", 1 << 20)
        os.fsync(held)
    finally:
        os.close(held)
    with open(os.path.join(target, f"{LEGACY}_disk"), "rb") as f:
        f.seek(1 << 20)
        assert f.read(10) == b"still-open"
    # Again: nothing to do.  --all takes the other legacy instance.
    r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
             "--mount", mnt, LEGACY])
    assert "already in pool" in r.stdout
    r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "--json", "adopt",
             "--mount", mnt, "--all"])
    assert '"status": "adopted"' in r.stdout and CONFLICT in r.stdout, r.stdout
    p.stop()
    assert sorted(os.listdir(under)) == ["_base", "compute_nodes", "locks"]


def test_adopt_by_copy_across_filesystems_resumes(poolfs_factory,
                                                  mountpoint_factory, virsh,
                                                  poolfsctl, env, adopt_pool):
    """The default pool lives outside the tests' mount, so rename(2) cannot
    reach it: adoption streams each file into a volume and verifies it."""
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    legacy = {n: read_file(os.path.join(under, LEGACY, n))
              for n in ("disk", "disk.info", "console.log")}
    # nova's files and directory: the volumes and the marker keep that.
    nova_owned(os.path.join(under, LEGACY))
    # As if an earlier run was cut short: one file done, one half-copied.
    virsh.vol_create_as(DISKS_POOL, f"{LEGACY}_disk.info", 0)
    virsh.vol_upload(DISKS_POOL, f"{LEGACY}_disk.info", legacy["disk.info"])
    virsh.vol_create_as(DISKS_POOL, f".partial-{LEGACY}_disk", 4096)
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    mnt = p.mnt

    # Into a pool the mount does not serve: refused, nothing copied.
    r = run([poolfsctl, "-c", env.uri, "--disks-pool", adopt_pool[0], "adopt",
             "--mount", mnt, LEGACY], check=False)
    assert r.returncode == 1, r.stdout
    assert f"serves disks pool '{DISKS_POOL}'" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert os.listdir(adopt_pool[1]) == []

    r = run([poolfsctl, "-c", env.uri, "adopt", "--mount", mnt, LEGACY])
    assert r.stdout.startswith(f"adopted {LEGACY}: 3 files"), r.stdout
    assert "verified copy" in r.stdout
    vols = virsh.vol_list(DISKS_POOL)
    assert {f"{LEGACY}_", f"{LEGACY}_disk", f"{LEGACY}_disk.info",
            f"{LEGACY}_console.log"} <= vols, vols
    assert not [v for v in vols if v.startswith(".partial")], vols
    for n, data in legacy.items():
        with open(os.path.join(env.disks_dir, f"{LEGACY}_{n}"), "rb") as f:
            assert f.read() == data, n
    # (disk.info was there already, made by virsh: as it was.)
    assert_nova_owned(env.disks_dir, LEGACY, ["disk", "console.log"])
    # libvirt sees the qcow2 (with its backing file), not a converted copy.
    assert "<format type='qcow2'/>" in virsh.vol_xml(DISKS_POOL, f"{LEGACY}_disk")
    # The same paths, now from the pool (once the pool event is seen).
    from helpers import SEEN_WITHIN, wait_for
    wait_for(lambda: backend(os.path.join(mnt, LEGACY)) == b"pool",
             SEEN_WITHIN, "the instance to be pool-backed")
    for n, data in legacy.items():
        assert read_file(os.path.join(mnt, LEGACY, n)) == data, n
    p.stop()
    assert not os.path.exists(os.path.join(under, LEGACY))


@pytest.mark.skipif(not have("qemu-system-x86_64"), reason="needs QEMU")
def test_adopt_by_copy_refused_while_running(poolfs_factory,
                                             mountpoint_factory, virsh,
                                             poolfsctl, env):
    under = mountpoint_factory()
    populate(under)
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage")
    mnt = p.mnt
    name = f"instance-{LEGACY[:8]}"
    xml = tiny_domain_xml(env.scratch, name, f"{mnt}/{LEGACY}/disk", "qcow2")
    run(["qemu-img", "rebase", "-u", "-F", "raw", "-b",
         os.path.join(mnt, "_base", "cafe0123"), os.path.join(mnt, LEGACY, "disk")])
    virsh("create", xml, timeout=60)
    try:
        # Also with a trailing slash on --mount: domains name the files
        # without a doubled one.
        for m in (mnt, mnt + "/"):
            r = run([poolfsctl, "-c", env.uri, "adopt", "--mount", m, LEGACY],
                    check=False)
            assert r.returncode == 1
            assert f"running domain '{name}' uses its files" in r.stderr, r.stderr
        assert not [v for v in virsh.vol_list(DISKS_POOL) if v.startswith(LEGACY)]
        assert backend(os.path.join(mnt, LEGACY)) == b"legacy"
    finally:
        virsh("destroy", name, check=False)


def test_adopt_by_rename_is_all_or_nothing(poolfs_factory, mountpoint_factory,
                                            virsh, poolfsctl, env, adopt_pool):
    """A legacy directory holding something a volume cannot be (a symlink)
    is refused with every file still where it was: never half an instance
    in the pool and half in the legacy tree (its disk would vanish)."""
    pool, target = adopt_pool
    under = mountpoint_factory()
    populate(under)
    d = os.path.join(under, LEGACY)
    for i in range(4):
        write_file(os.path.join(d, f"disk.eph{i}"), b"eph")
    os.symlink("disk", os.path.join(d, "disk.link"))
    before = sorted(os.listdir(d))
    p = poolfs_factory([f"disks_pool={pool}"], mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict|not a regular file")
    r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
             "--mount", p.mnt, LEGACY], check=False)
    assert r.returncode == 1, r.stdout
    assert sorted(os.listdir(d)) == before
    assert not [n for n in os.listdir(target) if n.startswith(LEGACY)]
    assert read_file(os.path.join(p.mnt, LEGACY, "disk.info")) == b'{"disk": "qcow2"}'


def test_adopt_by_rename_interrupted_then_finished(poolfs_factory,
                                                   mountpoint_factory,
                                                   virsh, poolfsctl, env,
                                                   adopt_pool):
    pool, target = adopt_pool
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    # Cut short after one file: it is in the pool's directory already.
    os.rename(os.path.join(under, LEGACY, "console.log"),
              os.path.join(target, f"{LEGACY}_console.log"))
    virsh.pool_refresh(pool)
    p = poolfs_factory([f"disks_pool={pool}"], mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    r = run([poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
             "--mount", p.mnt, LEGACY])
    assert r.stdout.startswith(f"adopted {LEGACY}: 2 files"), r.stdout
    assert {f"{LEGACY}_disk", f"{LEGACY}_disk.info",
            f"{LEGACY}_console.log"} <= virsh.vol_list(pool)
    assert read_file(os.path.join(p.mnt, LEGACY, "console.log")) == b"boot\n"


def test_transition_refuses_a_legacy_instance(poolfs_factory, mountpoint_factory,
                                              virsh, poolfsctl, env):
    """A domain whose disk is still a legacy file is not switched to a
    volume of the same name (here a stale one: an adoption cut short, or a
    conflict): it would boot on the wrong data.  Adopt first."""
    under = mountpoint_factory()
    populate(under)
    virsh.vol_create_as(DISKS_POOL, f"{CONFLICT}_disk", 1 * MiB)
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    name = f"instance-{CONFLICT[:8]}"
    virsh("define", tiny_domain_xml(env.scratch, name,
                                    f"{p.mnt}/{CONFLICT}/disk", "qcow2"))
    try:
        r = run([poolfsctl, "-c", env.uri, "transition", "--mount", p.mnt, name],
                check=False)
        assert r.returncode == 1, r.stdout
        assert "still on legacy storage" in r.stderr and "adopt" in r.stderr, r.stderr
        assert "type='file'" in virsh("dumpxml", "--inactive", name).stdout
    finally:
        virsh("undefine", name, check=False)


def test_adopt_by_copy_runs_again_after_the_legacy_files_changed(
        small_pool, poolfs_factory, mountpoint_factory, virsh, poolfsctl, env):
    """An adoption by copy cut short (here the pool filled up) keeps every
    legacy file; the guest may then run and write to them.  Running adopt
    again copies the changed files again instead of calling the earlier
    copies a conflict: while its marker volume is there, they are its own."""
    pool, target = small_pool
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    d = os.path.join(under, LEGACY)
    write_file(os.path.join(d, "disk.swap"), os.urandom(12 * MiB))
    before = sorted(os.listdir(d))
    p = poolfs_factory([f"disks_pool={pool}"], mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    adopt = [poolfsctl, "-c", env.uri, "--disks-pool", pool, "adopt",
             "--mount", p.mnt, LEGACY]

    r = run(adopt, check=False)
    assert r.returncode == 1, r.stdout
    assert "disk.swap" in r.stderr and "No space left" in r.stderr, r.stderr
    assert sorted(os.listdir(d)) == before
    vols = virsh.vol_list(pool)
    assert f"{LEGACY}_console.log" in vols and f".poolfs-adopt-{LEGACY}" in vols
    assert f"{LEGACY}_disk.swap" not in vols, vols

    # The guest runs on: its console log grows through the mount.
    with open(os.path.join(p.mnt, LEGACY, "console.log"), "ab") as f:
        f.write(b"login:\n")
    run(["mount", "-o", "remount,size=64m", target])
    r = run(adopt)
    assert r.stdout.startswith(f"adopted {LEGACY}: 4 files"), r.stdout
    vols = virsh.vol_list(pool)
    assert f".poolfs-adopt-{LEGACY}" not in vols, vols
    assert not [v for v in vols if v.startswith(".partial")], vols
    from helpers import SEEN_WITHIN, wait_for
    wait_for(lambda: backend(os.path.join(p.mnt, LEGACY)) == b"pool",
             SEEN_WITHIN, "the instance to be pool-backed")
    assert read_file(os.path.join(p.mnt, LEGACY, "console.log")) == b"boot\nlogin:\n"
    p.stop()
    assert not os.path.exists(d)


def test_adopt_by_copy_refuses_a_differing_volume_it_did_not_make(
        poolfs_factory, mountpoint_factory, virsh, poolfsctl, env):
    """Without an adoption of its own under way, a volume of the same name
    with other content is somebody else's: refused, nothing removed."""
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    virsh.vol_create_as(DISKS_POOL, f"{LEGACY}_console.log", 0)
    virsh.vol_upload(DISKS_POOL, f"{LEGACY}_console.log", b"other\n")
    d = os.path.join(under, LEGACY)
    before = sorted(os.listdir(d))
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    # Twice: the first refusal must not leave a mark that makes the second
    # run take the volume for its own.
    for _ in range(2):
        r = run([poolfsctl, "-c", env.uri, "adopt", "--mount", p.mnt, LEGACY],
                check=False)
        assert r.returncode == 1, r.stdout
        assert "exists with other content" in r.stderr, r.stderr
        assert sorted(os.listdir(d)) == before
        assert virsh.vol_download(DISKS_POOL, f"{LEGACY}_console.log") == b"other\n"
        vols = virsh.vol_list(DISKS_POOL)
        assert not [v for v in vols if v.startswith(".poolfs-adopt")], vols
    assert read_file(os.path.join(p.mnt, LEGACY, "console.log")) == b"boot\n"


def test_adopt_by_copy_keeps_everything_when_a_file_is_added_meanwhile(
        poolfs_factory, mountpoint_factory, virsh, poolfsctl, env):
    """Nova writes a new file into the instance directory (through the
    mount) while adopt copies the others: adopt ends with an error naming
    what happened and removes no legacy file; run again, it adopts the new
    file too."""
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    d = os.path.join(under, LEGACY)
    # A disk big enough that its copy is under way while the file is added.
    with open(os.path.join(d, "disk"), "r+b") as f:
        f.truncate(0)
        for _ in range(256):
            f.write(os.urandom(MiB))
    disk_digest = content_digest(os.path.join(d, "disk"))
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    adopt = [poolfsctl, "-c", env.uri, "adopt", "--mount", p.mnt, LEGACY]
    partial = os.path.join(env.disks_dir, f".partial-{LEGACY}_disk")

    proc = subprocess.Popen(adopt, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(partial) or proc.poll() is not None,
                 30, "adopt to start copying the disk", interval=0.002)
        assert proc.poll() is None, "adopt ended before the disk's copy began"
        write_file(os.path.join(p.mnt, LEGACY, "disk.swap"), b"swap")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    assert "files were added" in err and "the legacy files stay" in err, err
    assert sorted(os.listdir(d)) == ["console.log", "disk", "disk.info",
                                     "disk.swap"]
    assert f"{LEGACY}_disk.swap" not in virsh.vol_list(DISKS_POOL)

    r = run(adopt)
    assert r.stdout.startswith(f"adopted {LEGACY}: 4 files"), r.stdout
    wait_for(lambda: backend(os.path.join(p.mnt, LEGACY)) == b"pool",
             SEEN_WITHIN, "the instance to be pool-backed")
    assert read_file(os.path.join(p.mnt, LEGACY, "disk.swap")) == b"swap"
    assert content_digest(os.path.join(env.disks_dir, f"{LEGACY}_disk")) == \
        disk_digest
    p.stop()
    assert not os.path.exists(d)


def test_adopt_by_copy_puts_back_files_a_run_cut_short_set_aside(
        poolfs_factory, mountpoint_factory, virsh, poolfsctl, env):
    """Just before the legacy files go, adopt sets each aside
    (.poolfs-adopting-NAME) and looks at the running domains once more, so
    that a domain starting then fails to find its file instead of writing
    to one about to be deleted.  A run cut short there leaves them set
    aside: the next run puts them back and adopts them.  Both names there
    is an error that keeps both."""
    under = mountpoint_factory()
    populate(under)
    shutil.rmtree(os.path.join(under, CONFLICT))
    d = os.path.join(under, LEGACY)
    log = read_file(os.path.join(d, "console.log"))
    os.rename(os.path.join(d, "console.log"),
              os.path.join(d, ".poolfs-adopting-console.log"))
    write_file(os.path.join(d, ".poolfs-adopting-disk.info"), b"aside")
    p = poolfs_factory(mountpoint=under)
    p.expect_stderr(r"still on legacy storage|conflict")
    adopt = [poolfsctl, "-c", env.uri, "adopt", "--mount", p.mnt, LEGACY]

    r = run(adopt, check=False)
    assert r.returncode == 1, r.stdout
    assert "disk.info" in r.stderr and "both are there" in r.stderr, r.stderr
    assert not [v for v in virsh.vol_list(DISKS_POOL) if v.startswith(LEGACY)]
    os.unlink(os.path.join(d, ".poolfs-adopting-disk.info"))

    r = run(adopt)
    assert r.stdout.startswith(f"adopted {LEGACY}: 3 files"), r.stdout
    vols = virsh.vol_list(DISKS_POOL)
    assert f"{LEGACY}_console.log" in vols, vols
    assert not [v for v in vols if "adopting" in v], vols
    with open(os.path.join(env.disks_dir, f"{LEGACY}_console.log"), "rb") as f:
        assert f.read() == log
    p.stop()
    assert not os.path.exists(d)
