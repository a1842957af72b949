"""Name encoding is unambiguous; odd volumes and odd names (scenario 2)."""

import errno
import os

from helpers import (DISKS_POOL, SEEN_WITHIN, enc_dir, expect_errno, read_file,
                     vol_name, wait_for, write_file)


def test_resize_dir_and_resize_file_are_different_volumes(mnt, virsh, uuid):
    os.mkdir(os.path.join(mnt, uuid))
    os.mkdir(os.path.join(mnt, f"{uuid}_resize"))
    a, b = os.urandom(70000), os.urandom(80000)
    write_file(os.path.join(mnt, f"{uuid}_resize", "disk"), a)
    write_file(os.path.join(mnt, uuid, "resize_disk"), b)

    assert vol_name(f"{uuid}_resize/disk") == f"{uuid}%5Fresize_disk"
    vols = virsh.vol_list(DISKS_POOL)
    assert f"{uuid}%5Fresize_disk" in vols, sorted(vols)
    assert f"{uuid}_resize_disk" in vols, sorted(vols)
    assert virsh.vol_download(DISKS_POOL, f"{uuid}%5Fresize_disk") == a
    assert virsh.vol_download(DISKS_POOL, f"{uuid}_resize_disk") == b
    assert read_file(os.path.join(mnt, f"{uuid}_resize", "disk")) == a
    assert read_file(os.path.join(mnt, uuid, "resize_disk")) == b
    names = os.listdir(mnt)
    assert uuid in names and f"{uuid}_resize" in names
    assert os.listdir(os.path.join(mnt, uuid)) == ["resize_disk"]
    assert os.listdir(os.path.join(mnt, f"{uuid}_resize")) == ["disk"]


def test_escaped_volume_made_with_virsh_decodes(mnt, virsh, uuid):
    virsh.vol_create_as(DISKS_POOL, f"{uuid}%5Fresize_disk", "64K", "raw")
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_resize_disk", "128K", "raw")
    virsh.pool_refresh(DISKS_POOL)
    p1 = os.path.join(mnt, f"{uuid}_resize", "disk")
    p2 = os.path.join(mnt, uuid, "resize_disk")
    wait_for(lambda: os.path.exists(p1) and os.path.exists(p2), SEEN_WITHIN,
             "both volumes to show")
    assert os.path.getsize(p1) == 64 * 1024
    assert os.path.getsize(p2) == 128 * 1024


def test_undecodable_volumes_show_under_unmapped(mnt, virsh, uuid):
    assert "_unmapped" not in os.listdir(mnt)
    odd = ["weird", "bad%ZZ_x", f"{uuid}_..", f"{uuid}_."]
    for name in odd:
        virsh.vol_create_as(DISKS_POOL, name, "4K", "raw")
    virsh.vol_upload(DISKS_POOL, "weird", b"W" * 4096)
    um = os.path.join(mnt, "_unmapped")
    wait_for(lambda: "_unmapped" in os.listdir(mnt), SEEN_WITHIN, "_unmapped to appear")
    wait_for(lambda: set(os.listdir(um)) >= set(odd), SEEN_WITHIN,
             f"{odd} under _unmapped")
    assert set(os.listdir(um)) == set(odd)
    assert read_file(os.path.join(um, "weird")) == b"W" * 4096
    # They must not also show up somewhere in the decoded tree.
    assert "weird" not in os.listdir(mnt)
    assert "bad%ZZ" not in os.listdir(mnt)
    assert uuid not in os.listdir(mnt)
    for name in odd:
        virsh.vol_delete(DISKS_POOL, name)
    wait_for(lambda: "_unmapped" not in os.listdir(mnt), SEEN_WITHIN,
             "_unmapped to go when no such volume is left")


def test_name_too_long(mnt, virsh, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    # uuid (36) + "_" + 218 = 255 bytes: the longest name that fits.
    fits = "f" * 218
    write_file(os.path.join(d, fits), b"ok")
    assert f"{uuid}_{fits}" in virsh.vol_list(DISKS_POOL)
    expect_errno(errno.ENAMETOOLONG, open, os.path.join(d, "f" * 219), "wb")
    # A directory name that is short but long once escaped: 100 "_" -> 300 bytes.
    expect_errno(errno.ENAMETOOLONG, os.mkdir, os.path.join(mnt, "_" * 100 + "x"))
    expect_errno(errno.ENAMETOOLONG, os.rename, os.path.join(d, fits),
                 os.path.join(d, fits + "g"))
    assert os.path.exists(os.path.join(d, fits))


def test_reserved_root_names(mnt):
    expect_errno(errno.EEXIST, os.mkdir, os.path.join(mnt, "_base"))
    expect_errno(errno.EEXIST, os.mkdir, os.path.join(mnt, "_unmapped"))


def test_percent_names_round_trip(mnt, virsh, uuid):
    dname = f"{uuid}%x"
    os.mkdir(os.path.join(mnt, dname))
    write_file(os.path.join(mnt, dname, "a%b_c"), b"percent")
    assert enc_dir(dname) == f"{uuid}%25x"
    assert f"{uuid}%25x_a%b_c" in virsh.vol_list(DISKS_POOL)
    assert read_file(os.path.join(mnt, dname, "a%b_c")) == b"percent"

    # A literal "%2F" in a directory name is not a nested directory.
    os.mkdir(os.path.join(mnt, "p%2Fq"))
    write_file(os.path.join(mnt, "p%2Fq", "f"), b"flat")
    os.makedirs(os.path.join(mnt, "p", "q"))
    write_file(os.path.join(mnt, "p", "q", "f"), b"nested")
    vols = virsh.vol_list(DISKS_POOL)
    assert "p%252Fq_f" in vols and "p%2Fq_f" in vols, sorted(vols)
    assert virsh.vol_download(DISKS_POOL, "p%252Fq_f") == b"flat"
    assert virsh.vol_download(DISKS_POOL, "p%2Fq_f") == b"nested"
    assert read_file(os.path.join(mnt, "p%2Fq", "f")) == b"flat"
    assert read_file(os.path.join(mnt, "p", "q", "f")) == b"nested"
