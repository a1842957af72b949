"""The instances tree <-> volumes mapping, both ways (scenario 1)."""

import errno
import fcntl
import os
import stat
import tempfile
import time

from helpers import (BASE_POOL, DISKS_POOL, MiB, SEEN_WITHIN, expect_errno, marker_name,
                     read_file, vol_name, wait_for, write_file)

NOVA_FILES = ["disk", "disk.local", "disk.eph0", "disk.swap", "disk.config",
              "disk.info", "console.log", "kernel", "ramdisk", "libvirt.xml"]


def creat_write(path, data):
    """open(O_CREAT | O_TRUNC) without O_EXCL, as Nova rewrites disk.info."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_volume_made_with_virsh_shows_in_mount(mnt, virsh, uuid):
    data = os.urandom(MiB)
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk", "1M", "raw")
    virsh.vol_upload(DISKS_POOL, f"{uuid}_disk", data)
    path = os.path.join(mnt, uuid, "disk")
    wait_for(lambda: os.path.exists(path), SEEN_WITHIN, f"{path} to appear")
    assert os.path.isdir(os.path.join(mnt, uuid))
    assert uuid in os.listdir(mnt)
    assert os.listdir(os.path.join(mnt, uuid)) == ["disk"]
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == MiB
    assert read_file(path) == data


def test_volume_deleted_with_virsh_goes_from_mount(mnt, virsh, uuid):
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk", "64K", "raw")
    path = os.path.join(mnt, uuid, "disk")
    wait_for(lambda: os.path.exists(path), SEEN_WITHIN, f"{path} to appear")
    virsh.vol_delete(DISKS_POOL, f"{uuid}_disk")
    wait_for(lambda: not os.path.exists(path), SEEN_WITHIN, f"{path} to disappear")
    wait_for(lambda: uuid not in os.listdir(mnt), SEEN_WITHIN,
             f"directory {uuid} to disappear")


def test_pool_refresh_shows_new_volume_at_once(poolfs_factory, virsh, uuid):
    # With a long re-list period, only the pool-refresh event can explain
    # the volume showing up quickly.
    mnt = poolfs_factory(["refresh=60"]).mnt
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk", "64K", "raw")
    virsh.pool_refresh(DISKS_POOL)
    path = os.path.join(mnt, uuid, "disk")
    wait_for(lambda: os.path.exists(path), 1.5,
             f"{path} to appear right after virsh pool-refresh")


def test_open_creat_of_a_volume_not_yet_seen_opens_it(poolfs_factory, virsh,
                                                       uuid):
    """A volume made with virsh that the view does not show yet (re-listed
    only every 60 s here): open() with O_CREAT but not O_EXCL opens it, as
    on any filesystem (it once failed with EEXIST); with O_EXCL, EEXIST."""
    mnt = poolfs_factory(["refresh=60"]).mnt
    os.mkdir(os.path.join(mnt, uuid))
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk.info", "4K", "raw")
    path = os.path.join(mnt, uuid, "disk.info")
    assert not os.path.exists(path), "the view showed it already: void test"
    expect_errno(errno.EEXIST, os.open, path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    creat_write(path, b"{}")
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_disk.info") == b"{}"


def test_open_of_a_volume_deleted_by_others_not_yet_seen(poolfs_factory,
                                                          virsh, uuid):
    """A volume deleted with virsh that the view still shows (re-listed only
    every 60 s here): open(O_CREAT) makes the file anew, as Nova rewriting
    disk.info expects (it once failed with ENOENT); a plain open fails with
    ENOENT, and the name is gone from the view at once."""
    # The kernel keeps the names (and sends the open straight to poolfs)
    # for entry_timeout: long here, so that the test does not depend on
    # how long virsh takes.
    mnt = poolfs_factory(["refresh=60", "entry_timeout=30",
                          "attr_timeout=30"]).mnt
    path = os.path.join(mnt, uuid, "disk.info")
    other = os.path.join(mnt, uuid, "console.log")
    os.mkdir(os.path.join(mnt, uuid))
    write_file(path, b"old")
    write_file(other, b"log")
    os.stat(path)
    os.stat(other)
    virsh.vol_delete(DISKS_POOL, f"{uuid}_disk.info")
    virsh.vol_delete(DISKS_POOL, f"{uuid}_console.log")
    creat_write(path, b"{}")
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_disk.info") == b"{}"
    assert read_file(path) == b"{}"
    expect_errno(errno.ENOENT, os.open, other, os.O_RDONLY)
    assert not os.path.exists(other)
    assert os.listdir(os.path.join(mnt, uuid)) == ["disk.info"]


def test_open_creat_of_a_volume_not_yet_seen_checks_permission(
        poolfs_factory, virsh, uuid):
    """The kernel takes an open(O_CREAT) of a name it has not seen for a
    create and checks no permission: poolfs does, when the volume turns
    out to exist (root's 0600 here), before opening or truncating it."""
    import subprocess
    mnt = poolfs_factory(["refresh=60", "allow_other",
                          "default_permissions"]).mnt
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    os.chmod(d, 0o777)
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk.info", "4K", "raw")
    path = os.path.join(d, "disk.info")
    assert not os.path.exists(path), "the view showed it already: void test"
    code = ("import os, sys\n"
            "try:\n"
            f"    os.open({path!r}, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)\n"
            "except PermissionError:\n"
            "    sys.exit(13)\n")
    r = subprocess.run(["python3", "-c", code], preexec_fn=lambda: (
        os.setgid(65534), os.setuid(65534)), timeout=30)
    assert r.returncode == 13
    assert os.path.getsize(path) == 4096           # not truncated


def test_file_written_through_mount_is_a_volume(mnt, virsh, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    content = b'{"/var/lib/nova/instances/%s/disk": "qcow2"}' % uuid.encode()
    write_file(os.path.join(mnt, uuid, "disk.info"), content)
    vols = virsh.vol_list(DISKS_POOL)
    assert f"{uuid}_disk.info" in vols, sorted(vols)
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_disk.info") == content
    assert os.path.getsize(os.path.join(mnt, uuid, "disk.info")) == len(content)


def test_every_nova_file_name_round_trips(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    contents = {}
    for name in NOVA_FILES:
        contents[name] = f"{uuid}/{name}\n".encode() * 100
        write_file(os.path.join(d, name), contents[name])
    assert sorted(os.listdir(d)) == sorted(NOVA_FILES)
    vols = virsh.vol_list(DISKS_POOL)
    for name in NOVA_FILES:
        assert f"{uuid}_{name}" in vols, (name, sorted(vols))
        assert virsh.vol_download(DISKS_POOL, f"{uuid}_{name}") == contents[name], name
        assert read_file(os.path.join(d, name)) == contents[name], name
    # And the other way: volumes made by someone else under Nova's names.
    other = uuid[::-1]
    for name in NOVA_FILES:
        virsh.vol_create_as(DISKS_POOL, f"{other}_{name}", "4K", "raw")
    virsh.pool_refresh(DISKS_POOL)
    od = os.path.join(mnt, other)
    wait_for(lambda: sorted(os.listdir(od)) == sorted(NOVA_FILES), SEEN_WITHIN,
             f"all Nova files to show under {od}")


def test_base_files_map_to_base_pool(mnt, virsh):
    base = os.path.join(mnt, "_base")
    assert os.path.isdir(base)
    name = "8f0d9e1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978"
    data = os.urandom(256 * 1024)
    write_file(os.path.join(base, name), data)
    assert name in virsh.vol_list(BASE_POOL)
    assert vol_name(f"_base/{name}") not in virsh.vol_list(DISKS_POOL)
    assert virsh.vol_download(BASE_POOL, name) == data

    virsh.vol_create_as(BASE_POOL, "ephemeral_20_40d1d2c", "1M", "raw")
    wait_for(lambda: os.path.exists(os.path.join(base, "ephemeral_20_40d1d2c")),
             SEEN_WITHIN, "a base-pool volume made with virsh to show in _base")
    assert os.path.getsize(os.path.join(base, "ephemeral_20_40d1d2c")) == MiB
    assert sorted(os.listdir(base)) == sorted([name, "ephemeral_20_40d1d2c"])

    # _base is flat.
    expect_errno(errno.EPERM, os.mkdir, os.path.join(base, "sub"))


def test_top_level_files(mnt, virsh):
    write_file(os.path.join(mnt, "compute_nodes"), b'{"host1": 1700000000.0}')
    assert "_compute_nodes" in virsh.vol_list(DISKS_POOL)
    assert virsh.vol_download(DISKS_POOL, "_compute_nodes") == b'{"host1": 1700000000.0}'
    assert "compute_nodes" in os.listdir(mnt)

    # What Nova's shared-storage check does.
    fd, path = tempfile.mkstemp(dir=mnt)
    os.write(fd, b"shared?")
    os.close(fd)
    vol = "_" + os.path.basename(path)
    assert vol in virsh.vol_list(DISKS_POOL)
    assert read_file(path) == b"shared?"
    os.unlink(path)
    assert not os.path.exists(path)
    assert vol not in virsh.vol_list(DISKS_POOL)


def test_locks_dir_and_lock_file(mnt, virsh):
    locks = os.path.join(mnt, "locks")
    os.mkdir(locks)
    assert marker_name("locks") in virsh.vol_list(DISKS_POOL)
    lock = os.path.join(locks, "nova-storage-registry-lock")
    with open(lock, "a+b") as f:
        # oslo.concurrency external locks are fcntl locks on such files.
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(f, fcntl.LOCK_UN)
    assert "locks_nova-storage-registry-lock" in virsh.vol_list(DISKS_POOL)
    assert os.listdir(locks) == ["nova-storage-registry-lock"]


def test_nested_snapshot_dirs(mnt, virsh):
    snapdir = os.path.join(mnt, "snapshots", "tmpab12")
    os.makedirs(snapdir)
    assert os.listdir(os.path.join(mnt, "snapshots")) == ["tmpab12"]
    assert marker_name("snapshots/tmpab12") == "snapshots%2Ftmpab12_"
    assert "snapshots%2Ftmpab12_" in virsh.vol_list(DISKS_POOL)
    data = os.urandom(100000)
    write_file(os.path.join(snapdir, "snap"), data)
    assert "snapshots%2Ftmpab12_snap" in virsh.vol_list(DISKS_POOL)
    assert virsh.vol_download(DISKS_POOL, "snapshots%2Ftmpab12_snap") == data
    assert os.listdir(snapdir) == ["snap"]
    # ... and the other way.
    virsh.vol_create_as(DISKS_POOL, "snapshots%2Ftmpcd34_snap", "4K", "raw")
    wait_for(lambda: os.path.exists(os.path.join(mnt, "snapshots", "tmpcd34", "snap")),
             SEEN_WITHIN, "snapshots/tmpcd34/snap to appear")
    assert sorted(os.listdir(os.path.join(mnt, "snapshots"))) == ["tmpab12", "tmpcd34"]


def test_empty_dir_is_a_marker_volume(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    assert os.path.isdir(d) and os.listdir(d) == []
    vols = virsh.vol_list(DISKS_POOL)
    assert f"{uuid}_" in vols, sorted(vols)
    xml = virsh.vol_xml(DISKS_POOL, f"{uuid}_")
    assert "<capacity unit='bytes'>0</capacity>" in xml, xml
    expect_errno(errno.EEXIST, os.mkdir, d)
    os.rmdir(d)
    assert not os.path.exists(d)
    assert f"{uuid}_" not in virsh.vol_list(DISKS_POOL)

    # A marker made by someone else is an empty directory.
    other = uuid[::-1]
    virsh.vol_create_as(DISKS_POOL, f"{other}_", "0", "raw")
    od = os.path.join(mnt, other)
    wait_for(lambda: os.path.isdir(od), SEEN_WITHIN, f"{od} to appear")
    assert os.listdir(od) == []


def test_root_listing_and_attributes(mnt):
    st = os.stat(mnt)
    assert stat.S_ISDIR(st.st_mode)
    names = os.listdir(mnt)
    assert "_base" in names
    assert "_unmapped" not in names  # only when there are such volumes
    expect_errno(errno.ENOENT, os.stat, os.path.join(mnt, "no-such-thing"))
    expect_errno(errno.ENOENT, os.stat, os.path.join(mnt, "no-such-dir", "disk"))


def test_names_that_only_start_like_base_stay_put(mnt, virsh):
    """`_basement/` is a directory like any other: only `_base` itself (and
    `_unmapped`) are special, so a relist must not move it aside."""
    d = os.path.join(mnt, "_basement")
    os.mkdir(d)
    write_file(os.path.join(d, "notes"), b"kept")
    virsh.pool_refresh(DISKS_POOL)          # an event: the view is relisted
    time.sleep(SEEN_WITHIN)
    assert read_file(os.path.join(d, "notes")) == b"kept"
    assert "_basement_notes" not in "".join(os.listdir(os.path.join(mnt, "_unmapped"))
                                            if os.path.isdir(os.path.join(mnt, "_unmapped"))
                                            else [])


def test_a_remote_file_grown_by_others_shows_its_new_size(poolfs_factory,
                                                          virsh, uuid):
    """Through libvirt alone (io=stream, as a remote mount), a file that
    others make longer (here with virsh) shows its new length and bytes
    once the view has it: the kernel's writeback cache, which trusts its
    own size of a file over the daemon's, is off where no file is here."""
    from helpers import MiB
    p = poolfs_factory(["io=stream", "refresh=1"])
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    log = os.path.join(d, "console.log")
    write_file(log, b"boot\n")
    assert read_file(log) == b"boot\n"
    more = b"boot\n" + b"login:\n" * (MiB // 7)
    virsh.vol_upload(DISKS_POOL, f"{uuid}_console.log", more)
    virsh.pool_refresh(DISKS_POOL)
    wait_for(lambda: os.path.getsize(log) == len(more), SEEN_WITHIN + 60,
             "the longer file's size through the mount")
    assert read_file(log) == more
