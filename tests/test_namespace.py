"""rename, unlink, rmdir, rm -rf (scenarios 6 and 7)."""

import errno
import os
import time

from helpers import (DISKS_POOL, REFRESH, SEEN_WITHIN, expect_errno, read_file, run,
                     wait_for, write_file)

INSTANCE_FILES = {"disk": 300000, "disk.info": 60, "console.log": 5000,
                  "libvirt.xml": 2000, "disk.config": 40000}


def disk_vols(virsh, prefix):
    return {v for v in virsh.vol_list(DISKS_POOL) if v.startswith(prefix)}


def libvirt_sees(virsh, check, what):
    """Wait until check(names of the disks pool's volumes) holds.

    After a rename through the mount libvirt must list the new names (other
    hosts' mounts see the pool through libvirt); it may take up to the
    refresh period, as for any change someone else makes.
    """
    seen = [set()]

    def ok():
        seen[0] = virsh.vol_list(DISKS_POOL)
        return check(seen[0])
    try:
        wait_for(ok, SEEN_WITHIN, what)
    except AssertionError:
        raise AssertionError(f"libvirt does not list {what} after {SEEN_WITHIN}s; "
                             f"it lists {sorted(seen[0])}") from None


def test_rename_file_within_dir(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "disk.info.tmp"), b"info")
    os.rename(os.path.join(d, "disk.info.tmp"), os.path.join(d, "disk.info"))
    assert os.listdir(d) == ["disk.info"]
    assert read_file(os.path.join(d, "disk.info")) == b"info"
    expect_errno(errno.ENOENT, os.stat, os.path.join(d, "disk.info.tmp"))
    libvirt_sees(virsh, lambda v: f"{uuid}_disk.info" in v and
                 f"{uuid}_disk.info.tmp" not in v, "the renamed volume")
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_disk.info") == b"info"


def test_rename_file_across_dirs(mnt, virsh, uuid):
    other = uuid[::-1]
    os.mkdir(os.path.join(mnt, uuid))
    os.mkdir(os.path.join(mnt, other))
    data = os.urandom(200000)
    write_file(os.path.join(mnt, uuid, "disk"), data)
    os.rename(os.path.join(mnt, uuid, "disk"), os.path.join(mnt, other, "disk"))
    assert os.listdir(os.path.join(mnt, uuid)) == []
    assert os.listdir(os.path.join(mnt, other)) == ["disk"]
    assert read_file(os.path.join(mnt, other, "disk")) == data
    libvirt_sees(virsh, lambda v: f"{other}_disk" in v and f"{uuid}_disk" not in v,
                 "the moved volume")
    # Top level <-> directory too.
    os.rename(os.path.join(mnt, other, "disk"), os.path.join(mnt, "moved"))
    assert read_file(os.path.join(mnt, "moved")) == data
    libvirt_sees(virsh, lambda v: "_moved" in v and f"{other}_disk" not in v,
                 "_moved")


def test_rename_instance_dir_to_resize_and_back(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    contents = {n: os.urandom(size) for n, size in INSTANCE_FILES.items()}
    for n, c in contents.items():
        write_file(os.path.join(d, n), c)

    resize = os.path.join(mnt, f"{uuid}_resize")
    os.rename(d, resize)
    assert not os.path.exists(d)
    assert sorted(os.listdir(resize)) == sorted(contents)
    for n, c in contents.items():
        assert read_file(os.path.join(resize, n)) == c, n
    # (The directory's marker volume, if poolfs keeps it, moves along.)
    libvirt_sees(virsh, lambda v: not {x for x in v if x.startswith(f"{uuid}_")} and
                 {x for x in v if x.startswith(f"{uuid}%5Fresize_")} - {f"{uuid}%5Fresize_"}
                 == {f"{uuid}%5Fresize_{n}" for n in contents},
                 f"the files under {uuid}%5Fresize_ and none under {uuid}_")

    os.rename(resize, d)
    assert not os.path.exists(resize)
    assert sorted(os.listdir(d)) == sorted(contents)
    for n, c in contents.items():
        assert read_file(os.path.join(d, n)) == c, n
    libvirt_sees(virsh, lambda v: not {x for x in v if x.startswith(f"{uuid}%5Fresize_")}
                 and {x for x in v if x.startswith(f"{uuid}_")} - {f"{uuid}_"}
                 == {f"{uuid}_{n}" for n in contents},
                 f"the files back under {uuid}_ and none under {uuid}%5Fresize_")


def test_rename_empty_dir(mnt, virsh, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    os.rename(os.path.join(mnt, uuid), os.path.join(mnt, f"{uuid}_del"))
    assert os.path.isdir(os.path.join(mnt, f"{uuid}_del"))
    assert not os.path.exists(os.path.join(mnt, uuid))
    libvirt_sees(virsh, lambda v: f"{uuid}%5Fdel_" in v and f"{uuid}_" not in v,
                 "the moved marker")


def test_rename_over_existing_file_replaces_it(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "a"), b"A" * 5000)
    write_file(os.path.join(d, "b"), b"B" * 9000)
    os.rename(os.path.join(d, "a"), os.path.join(d, "b"))
    assert os.listdir(d) == ["b"]
    assert read_file(os.path.join(d, "b")) == b"A" * 5000
    assert os.path.getsize(os.path.join(d, "b")) == 5000
    libvirt_sees(virsh, lambda v: f"{uuid}_b" in v and f"{uuid}_a" not in v,
                 "b and not a")
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_b") == b"A" * 5000
    # Across directories as well.
    other = uuid[::-1]
    os.mkdir(os.path.join(mnt, other))
    write_file(os.path.join(mnt, other, "b"), b"C" * 100)
    os.rename(os.path.join(mnt, other, "b"), os.path.join(d, "b"))
    assert read_file(os.path.join(d, "b")) == b"C" * 100
    assert os.listdir(os.path.join(mnt, other)) == []


def test_rename_never_overwrites_a_volume_the_view_does_not_show(
        poolfs_factory, virsh, uuid):
    """A volume made with virsh that the view does not show yet (re-listed
    every 60 s here) is not overwritten by a rename onto its name, of a
    file or of a whole directory: EEXIST, both sides as they were."""
    mnt = poolfs_factory(["refresh=60"]).mnt
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "a"), b"A" * 5000)
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_b", "4K", "raw")
    # Its bytes written behind libvirt's back (an upload ends in a pool
    # refresh, whose event poolfs follows).
    with open(virsh.vol_path(DISKS_POOL, f"{uuid}_b"), "r+b") as f:
        f.write(b"B" * 4096)
    assert not os.path.exists(os.path.join(d, "b")), "seen already: void test"
    expect_errno(errno.EEXIST, os.rename, os.path.join(d, "a"),
                 os.path.join(d, "b"))
    assert read_file(os.path.join(d, "a")) == b"A" * 5000
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_b") == b"B" * 4096
    # A directory whose new name would take a volume made meanwhile.
    virsh.vol_create_as(DISKS_POOL, f"{uuid}%5Fresize_a", "4K", "raw")
    expect_errno(errno.EEXIST, os.rename, d, d + "_resize")
    assert read_file(os.path.join(d, "a")) == b"A" * 5000
    assert virsh.vol_download(DISKS_POOL, f"{uuid}%5Fresize_a") == bytes(4096)


def test_failed_rename_over_an_empty_directory_keeps_it(poolfs_factory,
                                                       virsh, uuid):
    """A directory renamed over an empty one, failing part way (a volume
    the view does not show yet holds one of the new names): the empty
    directory's marker, deleted first, is made again."""
    mnt = poolfs_factory(["refresh=60"]).mnt
    src, dst = os.path.join(mnt, uuid), os.path.join(mnt, uuid + "_resize")
    os.mkdir(src)
    os.mkdir(dst)
    os.chown(dst, 4321, 4322)           # nova's, say
    os.chmod(dst, 0o750)
    write_file(os.path.join(src, "disk.info"), b"{}")
    virsh.vol_create_as(DISKS_POOL, f"{uuid}%5Fresize_disk.info", "4K", "raw")
    expect_errno(errno.EEXIST, os.rename, src, dst)
    assert os.path.isdir(dst) and os.listdir(src) == ["disk.info"]
    st = os.stat(dst)                   # made again as it was
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4321, 4322, 0o750)
    vols = virsh.vol_list(DISKS_POOL)
    assert f"{uuid}%5Fresize_" in vols and f"{uuid}_" in vols, sorted(vols)


def test_directory_stays_when_its_last_file_is_moved_out(mnt, virsh, uuid):
    """A directory that exists only through its volumes (made with virsh,
    no marker) stays when its last file is renamed away, as it does when
    that file is unlinked; rmdir then removes it."""
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk", "4K", "raw")
    d = os.path.join(mnt, uuid)
    wait_for(lambda: os.path.exists(os.path.join(d, "disk")), SEEN_WITHIN,
             "the volume in the mount")
    other = uuid[::-1]
    os.mkdir(os.path.join(mnt, other))
    os.rename(os.path.join(d, "disk"), os.path.join(mnt, other, "disk"))
    assert os.path.isdir(d) and os.listdir(d) == []
    time.sleep(REFRESH + 1)             # and after a re-list
    assert os.path.isdir(d)
    os.rmdir(d)
    assert not os.path.exists(d)


def test_rename_missing_source(mnt, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    expect_errno(errno.ENOENT, os.rename, os.path.join(mnt, uuid, "nope"),
                 os.path.join(mnt, uuid, "x"))


def test_rm_rf_instance_dir(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    for n, size in INSTANCE_FILES.items():
        write_file(os.path.join(d, n), os.urandom(size))
    os.makedirs(os.path.join(d, "sub", "deeper"))
    write_file(os.path.join(d, "sub", "deeper", "f"), b"x")
    keep = uuid[::-1]
    os.mkdir(os.path.join(mnt, keep))
    write_file(os.path.join(mnt, keep, "disk"), b"keep me")
    assert disk_vols(virsh, f"{uuid}")
    run(["rm", "-rf", d], timeout=30)
    assert not os.path.exists(d)
    assert uuid not in os.listdir(mnt)
    libvirt_sees(virsh, lambda v: not {x for x in v if uuid in x},
                 f"no volume of {uuid} after rm -rf")
    # Nothing else went with it.
    assert read_file(os.path.join(mnt, keep, "disk")) == b"keep me"
    # And it stays gone (no stale marker resurrects it at the next re-list).
    time.sleep(REFRESH + 1)
    assert uuid not in os.listdir(mnt)


def test_rmdir_non_empty_and_unlink_missing(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "disk"), b"x")
    expect_errno(errno.ENOTEMPTY, os.rmdir, d)
    assert read_file(os.path.join(d, "disk")) == b"x"
    expect_errno(errno.ENOENT, os.unlink, os.path.join(d, "missing"))
    expect_errno(errno.ENOENT, os.unlink, os.path.join(mnt, "missing-dir", "disk"))
    expect_errno(errno.ENOENT, os.rmdir, os.path.join(mnt, "missing-dir"))
    expect_errno(errno.ENOTDIR, os.rmdir, os.path.join(d, "disk"))
    expect_errno(errno.EISDIR, os.unlink, d)
    os.unlink(os.path.join(d, "disk"))
    os.rmdir(d)
    libvirt_sees(virsh, lambda v: not {x for x in v if uuid in x}, f"no volume of {uuid}")


def test_create_rename_unlink_cycle(mnt, virsh, uuid):
    """Write to a temporary name, rename into place, remove; again and again
    (how tools update files).  The names must be reusable at once."""
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    tmp, final = os.path.join(d, "disk.info.tmp"), os.path.join(d, "disk.info")
    for i in range(20):
        data = f"round {i}".encode()
        write_file(tmp, data)
        os.rename(tmp, final)
        assert read_file(final) == data, i
        if i % 2:
            os.unlink(final)
            expect_errno(errno.ENOENT, os.stat, final)
    assert os.listdir(d) == []
    libvirt_sees(virsh, lambda v: not {x for x in v if x.startswith(uuid)} - {f"{uuid}_"},
                 "no file volume of the directory")
