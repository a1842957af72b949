"""Cold migration and remote mounts over libvirt's TLS between two test
hosts (network namespaces, one TLS libvirtd each; see tlshosts.py).  No SSH
anywhere: the data goes through libvirt volume streams."""

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid as uuidlib

import pytest

from conftest import REPO
from helpers import DISKS_POOL, MiB, content_digest, wait_for

POOLFSCTL = os.environ.get("POOLFSCTL_BIN") or os.path.join(REPO, "build", "migrate", "poolfsctl")
POOLFS = os.environ.get("POOLFS_BIN") or os.path.join(REPO, "build", "fs", "poolfs")


def make_instance(hosts, node, uuid, data=3 * MiB, pieces=1):
    """An instance on NODE: a 256 MiB sparse disk holding DATA random bytes
    from 64 MiB on, or in PIECES pieces, one in each 64 MiB range (the
    ranges of a parallel pull) from the start; disk.info; the marker."""
    d = hosts.disks_dir(node)
    open(os.path.join(d, f"{uuid}_"), "w").close()
    with open(os.path.join(d, f"{uuid}_disk"), "wb") as f:
        f.truncate(256 * MiB)
        for i in range(pieces):
            f.seek((i if pieces > 1 else 1) * 64 * MiB + i * MiB)
            f.write(os.urandom(data // pieces))
    with open(os.path.join(d, f"{uuid}_disk.info"), "w") as f:
        f.write("{}")
    hosts.run_on(node, ["virsh", "-q", "-c", hosts.local_uri(node),
                        "pool-refresh", DISKS_POOL], check=True)


def read(path):
    with open(path) as f:
        return f.read()


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_copied(hosts, uuid, slack=0):
    """Node B holds node A's volumes of UUID byte for byte, holes kept
    (but the first 4 KiB: qemu-img, which makes a pushed volume sent as
    qcow2, always allocates a new image's first block; a disk's first
    block, its boot sector or header, is data anyway; and SLACK more
    512-byte blocks)."""
    for name in ("", "disk", "disk.info"):
        a = os.path.join(hosts.disks_dir("nodea"), f"{uuid}_{name}")
        b = os.path.join(hosts.disks_dir("nodeb"), f"{uuid}_{name}")
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), name
        with open(a, "rb") as fa:
            try:
                first_is_hole = os.lseek(fa.fileno(), 0, os.SEEK_DATA) >= 4096
            except OSError:             # no data at all (ENXIO)
                first_is_hole = os.fstat(fa.fileno()).st_size > 0
        assert os.stat(b).st_blocks <= os.stat(a).st_blocks + slack + \
            (8 if first_is_hole else 0), name


def sent_at_most(inst, mib_per_s, passes):
    """--bandwidth held: the instance's data, PASSES times over the
    network, took at least as long as the cap allows."""
    data = sum(v["data_sent"] for v in inst["volumes"])
    assert data >= 3 * MiB, inst
    assert inst["seconds"] >= 0.9 * passes * data / (mib_per_s * MiB), inst


def test_migrate_over_tls(hosts):
    """A push, held to 2 MiB/s: the upload, and the verification's
    download of what B holds, both count."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid)
    p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                               "--json", "migrate", "--to", hosts.uri("nodeb"),
                               "--bandwidth", "2", uuid], timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["ok"] and doc["instances"][0]["status"] == "migrated"
    assert_copied(hosts, uuid)
    sent_at_most(doc["instances"][0], 2, passes=2)
    # Sent: the data, not the 256 MiB of virtual size; the disk (253 MiB of
    # holes) as a qcow2 image of it, so B's libvirt reads only its data
    # when it makes the final volume: 3 MiB and 4 clusters of metadata.
    disk = [v for v in doc["instances"][0]["volumes"] if v["name"].endswith("_disk")][0]
    assert disk["data_sent"] <= 3 * MiB + 4 * 64 * 1024, disk
    # Run on the source: its files read here, a stream to node B.
    assert {(v["read"], v["written"]) for v in doc["instances"][0]["volumes"]} == \
        {("file", "stream"), ("file", "stream, as qcow2")}, doc
    assert disk["written"] == "stream, as qcow2", disk


def test_push_of_data_in_small_pieces_goes_plain(hosts):
    """4 KiB of data in every 64 KiB of the disk's first 128 MiB: wrapped,
    each piece would take a whole 64 KiB cluster (128 MiB sent for 8), so
    the disk goes plain, its 8 MiB of data alone."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=0)
    with open(os.path.join(hosts.disks_dir("nodea"), f"{uuid}_disk"), "r+b") as f:
        for i in range(2048):
            f.seek(i * 64 * 1024)
            f.write(os.urandom(4096))
    p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                               "--json", "migrate", "--to", hosts.uri("nodeb"),
                               uuid], timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    disk = [v for v in doc["instances"][0]["volumes"] if v["name"].endswith("_disk")][0]
    assert disk["written"] == "stream" and disk["data_sent"] <= 8 * MiB, disk
    # B's copy is synced, so its 2048 extents' tree blocks are there (A's
    # file, just written, may not have them yet): 64 KiB of slack.
    assert_copied(hosts, uuid, slack=128)


def test_push_to_a_destination_without_qemu_img_goes_plain(hosts):
    """Node B cannot make a volume from a qcow2 copy without qemu-img (here
    hidden in B's mount namespace by a file that cannot be run): the push
    sends the disk again, plain, and completes."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid)
    hidden = os.path.join(hosts.workdir, "not-qemu-img")
    with open(hidden, "w") as f:
        f.write("")
    os.chmod(hidden, 0o644)
    r = hosts.run_on("nodeb", ["mount", "--bind", hidden, "/usr/bin/qemu-img"])
    assert r.returncode == 0, r.stderr
    try:
        p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                                   "--json", "migrate", "--to",
                                   hosts.uri("nodeb"), uuid], timeout=120)
    finally:
        r = hosts.run_on("nodeb", ["umount", "/usr/bin/qemu-img"])
        assert r.returncode == 0, r.stderr
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    disk = [v for v in doc["instances"][0]["volumes"] if v["name"].endswith("_disk")][0]
    assert disk["written"] == "stream" and disk["state"] == "copied", doc
    assert_copied(hosts, uuid)
    vols = hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                                  "vol-list", DISKS_POOL], check=True).stdout
    assert ".partial" not in vols, vols


@contextlib.contextmanager
def b_disks_on(hosts, *mount_args):
    """Node B's disks pool on another filesystem for a while: `mount
    MOUNT_ARGS DIR` over the pool's directory in B's mount namespace alone,
    the pool refreshed; unmounted and refreshed again afterwards."""
    d = hosts.disks_dir("nodeb")
    virsh_b = ["virsh", "-q", "-c", hosts.local_uri("nodeb")]
    r = hosts.run_on("nodeb", ["mount", *mount_args, d])
    assert r.returncode == 0, r.stderr
    try:
        hosts.run_on("nodeb", virsh_b + ["pool-refresh", DISKS_POOL],
                     check=True)
        yield d
    finally:
        r = hosts.run_on("nodeb", ["umount", d])
        if r.returncode != 0:
            hosts.run_on("nodeb", ["umount", "-l", d])
        hosts.run_on("nodeb", virsh_b + ["pool-refresh", DISKS_POOL])
    assert r.returncode == 0, r.stderr


def test_push_to_a_reflinking_pool_goes_plain(hosts, tmp_path):
    """Node B's disks pool on XFS (a loop device mounted over the pool's
    directory in B's mount namespace alone): poolfsctl's probe finds that
    the pool makes a volume from another by a reflink, so the sparse disk,
    which would go wrapped as qcow2 elsewhere, goes plain, and B's final
    volume shares the copy's blocks instead of qemu-img reading and
    writing them."""
    if not shutil.which("mkfs.xfs"):
        pytest.fail("mkfs.xfs is missing: contrib/install-deps.sh installs "
                    "xfsprogs")
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid)
    image = tmp_path / "xfs.img"
    with open(image, "wb") as f:
        f.truncate(512 * MiB)
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)],
                   check=True, timeout=60)
    virsh_b = ["virsh", "-q", "-c", hosts.local_uri("nodeb")]
    with b_disks_on(hosts, "-o", "loop", str(image)) as d:
        p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                                   "--json", "migrate", "--to",
                                   hosts.uri("nodeb"), uuid], timeout=120)
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        disk = [v for v in doc["instances"][0]["volumes"]
                if v["name"].endswith("_disk")][0]
        assert disk["written"] == "stream" and disk["data_sent"] <= 3 * MiB, \
            disk
        # On B's XFS: the same bytes, holes kept, no probe volume left.
        a = os.path.join(hosts.disks_dir("nodea"), f"{uuid}_disk")
        b = os.path.join(d, f"{uuid}_disk")
        r = hosts.run_on("nodeb", ["sha256sum", b], check=True)
        with open(a, "rb") as f:
            assert r.stdout.split()[0] == hashlib.sha256(f.read()).hexdigest()
        r = hosts.run_on("nodeb", ["stat", "-c", "%b", b], check=True)
        assert int(r.stdout) <= os.stat(a).st_blocks + 8, r.stdout
        vols = hosts.run_on("nodeb", virsh_b + ["vol-list", DISKS_POOL],
                            check=True).stdout
        assert uuid in vols and ".partial" not in vols and \
            "reflink-probe" not in vols, vols


def test_remote_rename_over_a_file_without_room_changes_nothing(hosts):
    """Over TLS a rename over a file is a copy aside, the old file deleted,
    then a copy under its name.  With room for one copy but not for the
    second (node B's pool on an 8 MiB tmpfs), it fails with ENOSPC before
    the old file is deleted: both files as they were, no copy left."""
    uuid = str(uuidlib.uuid4())
    mnt = os.path.join(hosts.workdir, "mnt-b3")
    os.makedirs(mnt, exist_ok=True)
    with b_disks_on(hosts, "-t", "tmpfs", "-o", "size=8m", "tmpfs") as d:
        p = hosts.popen_on("nodea", [POOLFS, "-f", hosts.uri("nodeb"), mnt])
        try:
            script = f"""
set -e
for i in $(seq 300); do grep -q " {mnt} " /proc/self/mountinfo && break; sleep 0.1; done
mkdir {mnt}/{uuid}
head -c 3145728 /dev/urandom > {mnt}/{uuid}/a
echo old > {mnt}/{uuid}/b
sha256sum < {mnt}/{uuid}/a
if mv {mnt}/{uuid}/a {mnt}/{uuid}/b 2>{hosts.workdir}/mv.err; then
    echo "mv succeeded"; exit 1
fi
cat {hosts.workdir}/mv.err
sha256sum < {mnt}/{uuid}/a
cat {mnt}/{uuid}/b
ls {mnt}/{uuid} | sort | tr '\n' ' '
fusermount3 -u {mnt}
"""
            r = hosts.run_on("nodea", ["bash", "-c", script], timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            lines = r.stdout.splitlines()
            assert "No space left on device" in lines[1], r.stdout
            assert lines[0] == lines[2], r.stdout          # a: the same bytes
            assert lines[3] == "old", r.stdout
            assert lines[4].split() == ["a", "b"], r.stdout
            p.wait(timeout=20)
            left = hosts.run_on("nodeb", ["ls", "-a", d], check=True).stdout
            assert "poolfs-rename" not in left, left
        finally:
            if p.poll() is None:
                hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])
                p.kill()
                p.wait(timeout=10)


def test_migrate_pulled_by_the_destination(hosts):
    """Run on node B with --from node A: the data crosses the network once,
    into B's files, and the verification reads those files, not the
    network.  Held to 1 MiB/s, its four parallel ranges together (each
    has data)."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=4 * MiB, pieces=4)
    p = hosts.run_on("nodeb", [POOLFSCTL, "-c", hosts.local_uri("nodeb"),
                               "--json", "migrate", "--from", hosts.uri("nodea"),
                               "--to", hosts.local_uri("nodeb"),
                               "--bandwidth", "1", uuid], timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    inst = doc["instances"][0]
    assert doc["ok"] and inst["status"] == "migrated"
    sent_at_most(inst, 1, passes=1)
    assert {(v["read"], v["written"]) for v in inst["volumes"]} == {("stream", "file")}, doc
    assert_copied(hosts, uuid)
    # libvirt on B knows the renamed volumes, and no temporary one.
    vols = hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                                  "vol-list", DISKS_POOL], check=True).stdout
    assert f"{uuid}_disk " in vols and ".partial" not in vols, vols


def test_wrong_client_ca_is_reported_as_such(hosts):
    other = hosts.make_ca("rogue-ctl")
    pki = hosts.make_client("nodea.poolfs.test", ca_dir=other,
                            trust_also=[os.path.join(hosts.ca_dir, "cacert.pem")])
    p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                               "migrate", "--to", hosts.uri("nodeb", pki=pki),
                               str(uuidlib.uuid4())])
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert line.startswith("poolfsctl: cannot connect") and \
        "server refused our client certificate" in line, line


def test_server_name_mismatch_is_reported_as_such(hosts):
    hosts.add_alias("nodeb-other.poolfs.test", "nodeb")
    p = hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                               "migrate", "--to",
                               hosts.uri("nodeb", host="nodeb-other.poolfs.test"),
                               str(uuidlib.uuid4())])
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert "server's certificate was refused" in line, line
    # poolfs says the same, in one line, and mounts nothing.
    mnt = os.path.join(hosts.workdir, "mnt-mismatch")
    os.makedirs(mnt, exist_ok=True)
    p = hosts.run_on("nodea", [POOLFS, "-f", hosts.uri("nodeb", host="nodeb-other.poolfs.test"),
                               mnt])
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert line.startswith("poolfs: cannot connect") and \
        "server's certificate was refused" in line, line


def test_remote_mount_over_tls(hosts):
    """poolfs on node A mounts node B's pools over TLS; a file written there
    is a volume on B, holes kept."""
    uuid = str(uuidlib.uuid4())
    mnt = os.path.join(hosts.workdir, "mnt-b")
    os.makedirs(mnt, exist_ok=True)
    p = hosts.popen_on("nodea", [POOLFS, "-f", hosts.uri("nodeb"), mnt])
    script = f"""
set -e
for i in $(seq 100); do grep -q " {mnt} " /proc/self/mountinfo && break; sleep 0.1; done
mkdir {mnt}/{uuid}
truncate -s 64M {hosts.workdir}/src.img
dd if=/dev/urandom of={hosts.workdir}/src.img bs=1M count=2 seek=10 conv=notrunc status=none
cp --sparse=always {hosts.workdir}/src.img {mnt}/{uuid}/disk
cmp {hosts.workdir}/src.img {mnt}/{uuid}/disk
fusermount3 -u {mnt}
"""
    try:
        r = hosts.run_on("nodea", ["bash", "-c", script], timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        p.wait(timeout=20)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])
            p.kill()
            p.wait(timeout=10)
    b = os.path.join(hosts.disks_dir("nodeb"), f"{uuid}_disk")
    assert os.path.getsize(b) == 64 * MiB
    assert os.stat(b).st_blocks * 512 <= 3 * MiB


def test_remote_mount_renames_over_a_file_and_shows_real_times(hosts):
    """Over TLS the pool is not local: a rename is a copy (libvirt has no
    rename), byte for byte also for a qcow2 (libvirt's own copy would
    flatten it), and over an existing file done without losing either on
    the way; a volume's mtime is the one libvirt reports for its file, not
    the time the view was last listed."""
    uuid = str(uuidlib.uuid4())
    mnt = os.path.join(hosts.workdir, "mnt-b2")
    os.makedirs(mnt, exist_ok=True)
    old = os.path.join(hosts.disks_dir("nodeb"), f"{uuid}_old")
    with open(old, "w") as f:
        f.write("from 2020")
    os.utime(old, (1577934245, 1577934245))     # 2020-01-02 03:04:05 UTC
    qcow = os.path.join(hosts.disks_dir("nodeb"), f"{uuid}_q")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow, "1G"], check=True)
    with open(qcow, "rb") as f:
        qbytes = f.read()
    p = hosts.popen_on("nodea", [POOLFS, "-f", hosts.uri("nodeb"), mnt])
    script = f"""
set -ex
for i in $(seq 300); do grep -q " {mnt} " /proc/self/mountinfo && break; sleep 0.1; done
virsh -q -c '{hosts.uri("nodeb")}' pool-refresh {DISKS_POOL} >/dev/null
for i in $(seq 300); do test -e {mnt}/{uuid}/old && break; sleep 0.1; done
test "$(stat -c %Y {mnt}/{uuid}/old)" = 1577934245
echo one > {mnt}/{uuid}/a
echo two > {mnt}/{uuid}/b
mv {mnt}/{uuid}/a {mnt}/{uuid}/b
test "$(cat {mnt}/{uuid}/b)" = one
test ! -e {mnt}/{uuid}/a
mv {mnt}/{uuid}/q {mnt}/{uuid}/q2
cp {mnt}/{uuid}/b {mnt}/{uuid}/c
test "$(cat {mnt}/{uuid}/c)" = one
echo more >> {mnt}/{uuid}/c
test "$(cat {mnt}/{uuid}/c)" = "$(printf 'one\nmore')"
ls {mnt}/{uuid} | sort | tr '\n' ' '
fusermount3 -u {mnt}
"""
    try:
        r = hosts.run_on("nodea", ["bash", "-c", script], timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.split() == ["b", "c", "old", "q2"], r.stdout
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])
            p.kill()
            p.wait(timeout=10)
    d = hosts.disks_dir("nodeb")
    assert sorted(n for n in os.listdir(d) if n.startswith(uuid)) == \
        [f"{uuid}_b", f"{uuid}_c", f"{uuid}_old", f"{uuid}_q2"]
    with open(os.path.join(d, f"{uuid}_b")) as f:
        assert f.read() == "one\n"
    with open(os.path.join(d, f"{uuid}_q2"), "rb") as f:
        assert f.read() == qbytes


def test_pull_in_parallel_ranges_is_one_streams_copy(hosts):
    """A volume of more than one range (64 MiB) is pulled with several
    download streams at once, each over its own range (lanes.c): the copy,
    its holes and its digest are those of one stream from start to end,
    whatever falls on the ranges' edges."""
    uuid = str(uuidlib.uuid4())
    d = hosts.disks_dir("nodea")
    name = f"{uuid}_disk.local"
    size = 200 * MiB + 12345                    # a short last block
    open(os.path.join(d, f"{uuid}_"), "w").close()
    with open(os.path.join(d, name), "wb") as f:
        f.truncate(size)
        for off, n in ((0, MiB), (64 * MiB - 5000, 10000),      # across an edge
                       (100 * MiB, 3 * MiB), (size - 9000, 9000)):
            f.seek(off)
            f.write(os.urandom(n))
        f.seek(150 * MiB)
        f.write(bytes(2 * MiB))                 # allocated zeros
    hosts.run_on("nodea", ["virsh", "-q", "-c", hosts.local_uri("nodea"),
                           "pool-refresh", DISKS_POOL], check=True)
    src, dst = os.path.join(d, name), os.path.join(hosts.disks_dir("nodeb"), name)

    def pull(*extra, env=()):
        p = hosts.run_on("nodeb", ["env", *env, POOLFSCTL, "-c", hosts.local_uri("nodeb"),
                                   "--json", "migrate", *extra,
                                   "--from", hosts.uri("nodea"),
                                   "--to", hosts.local_uri("nodeb"), uuid],
                         timeout=120)
        assert p.returncode == 0, p.stderr
        vols = json.loads(p.stdout)["instances"][0]["volumes"]
        return [v for v in vols if v["name"] == name][0]

    first = pull()
    assert first["state"] == "copied" and first["read"] == "stream", first
    with open(src, "rb") as fa, open(dst, "rb") as fb:
        assert fa.read() == fb.read()
    # Holes kept, the written zeros left out (give or take a block of the
    # filesystem's extent tree: ranges written apart can land apart).
    assert os.stat(dst).st_blocks * 512 <= os.stat(src).st_blocks * 512 - 2 * MiB + 64 * 1024
    assert first["data_sent"] <= 5 * MiB, first
    # Again: the volume is there; its digest is read anew from both ends,
    # in ranges from A and from B's file in one pass, and must agree.
    again = pull()
    assert again["state"] == "present" and again["digest"] == first["digest"], again
    # One stream gives the same digest.
    os.unlink(dst)
    hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                           "pool-refresh", DISKS_POOL], check=True)
    one = pull("--parallel", "1")
    assert one["state"] == "copied" and one["digest"] == first["digest"], one
    # It is the digest by its definition, with the blocks hashed sixteen at
    # a time (where the CPU can) or one by one.
    assert first["digest"] == content_digest(src)
    os.unlink(dst)
    hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                           "pool-refresh", DISKS_POOL], check=True)
    narrow = pull(env=["POOLFS_DIGEST_SIMD=0"])
    assert narrow["state"] == "copied" and narrow["digest"] == first["digest"], narrow


def test_pull_in_parallel_into_full_pool_fails_cleanly(hosts):
    """The destination's pool fills while several ranges are being written:
    one clear error, the other ranges stopped, no volume under its final
    name or as .partial left on B, the source untouched, and a run once
    there is room completes the job."""
    uuid = str(uuidlib.uuid4())
    d = hosts.disks_dir("nodea")
    name = f"{uuid}_disk.local"
    open(os.path.join(d, f"{uuid}_"), "w").close()
    with open(os.path.join(d, name), "wb") as f:
        f.truncate(320 * MiB)
        for off in range(0, 320 * MiB, 64 * MiB):      # data in every range
            f.seek(off + MiB)
            f.write(os.urandom(12 * MiB))
    hosts.run_on("nodea", ["virsh", "-q", "-c", hosts.local_uri("nodea"),
                           "pool-refresh", DISKS_POOL], check=True)
    bdisks = hosts.disks_dir("nodeb")
    virsh_b = ["virsh", "-q", "-c", hosts.local_uri("nodeb")]

    def pull():
        return hosts.run_on("nodeb", [POOLFSCTL, "-c", hosts.local_uri("nodeb"),
                                      "migrate", "--from", hosts.uri("nodea"),
                                      "--to", hosts.local_uri("nodeb"), uuid],
                            timeout=120)

    hosts.run_on("nodeb", virsh_b + ["pool-destroy", DISKS_POOL], check=True)
    hosts.run_on("nodeb", ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", bdisks],
                 check=True)
    try:
        hosts.run_on("nodeb", virsh_b + ["pool-create-as", DISKS_POOL, "dir",
                                         "--target", bdisks], check=True)
        p = pull()
        assert p.returncode == 1, p.stdout
        line = one_line(p.stderr)
        assert line.startswith("poolfsctl: ") and "disk.local" in line and \
            "No space left" in line, line
        # (B's view: the tmpfs is mounted in its namespace only.)
        left = hosts.run_on("nodeb", ["ls", "-a", bdisks], check=True).stdout.split()
        assert name not in left and not [n for n in left if ".partial" in n], left
        vols = hosts.run_on("nodeb", virsh_b + ["vol-list", DISKS_POOL],
                            check=True).stdout
        assert name not in vols and ".partial" not in vols, vols
    finally:
        hosts.run_on("nodeb", virsh_b + ["pool-destroy", DISKS_POOL])
        hosts.run_on("nodeb", ["umount", bdisks])
        hosts.run_on("nodeb", virsh_b + ["pool-create-as", DISKS_POOL, "dir",
                                         "--target", bdisks], check=True)
    assert os.path.getsize(os.path.join(d, name)) == 320 * MiB
    p = pull()
    assert p.returncode == 0, p.stderr
    with open(os.path.join(d, name), "rb") as fa, \
            open(os.path.join(bdisks, name), "rb") as fb:
        assert fa.read() == fb.read()


# Run on node A inside its mount namespace: the held file and the outage as
# a program sees them.  It talks with the test one line at a time.
HOLDER = r"""
import errno, os, sys, time
mnt, uuid = sys.argv[1:3]
for _ in range(300):
    if os.path.ismount(mnt):
        break
    time.sleep(0.1)
d = os.path.join(mnt, uuid)
os.mkdir(d)
f = open(os.path.join(d, "disk"), "w+b")
f.write(b"before")
f.flush()
os.fsync(f.fileno())
print("ready", flush=True)
sys.stdin.readline()                    # node B's libvirtd is gone
print(" ".join(sorted(os.listdir(d))), flush=True)
try:
    open(os.path.join(d, "x"), "wb").close()
    print("created", flush=True)
except OSError as e:
    print(errno.errorcode[e.errno], flush=True)
sys.stdin.readline()                    # back, and poolfs connected again
f.seek(0)
f.write(b"after!")
f.flush()
os.fsync(f.fileno())
f.close()
with open(os.path.join(d, "disk.info"), "w") as g:
    g.write("{}")
print("done", flush=True)
"""


def test_remote_mount_survives_a_restart_of_the_remote_libvirtd(hosts):
    """An upgrade restarts node B's libvirtd under node A's mount of it over
    TLS: through the outage the view stays and a create fails with EIO;
    afterwards poolfs is connected again by itself, the file held open all
    along writes its volume on B, and new names are made."""
    uuid = str(uuidlib.uuid4())
    mnt = os.path.join(hosts.workdir, "mnt-restart")
    os.makedirs(mnt, exist_ok=True)
    log = os.path.join(hosts.workdir, "poolfs-restart.log")
    with open(log, "w") as err:
        p = hosts.popen_on("nodea", [POOLFS, "-f", "-o", "refresh=0.5",
                                     hosts.uri("nodeb"), mnt],
                           stdout=err, stderr=err)
    holder = hosts.popen_on("nodea", ["/usr/bin/python3", "-c", HOLDER, mnt, uuid],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    pending = bytearray()

    def said():
        with open(log) as f:
            return f.read()

    def answer(timeout=30):
        """The holder's next line; bounded, so a hung mount fails the test."""
        deadline = time.monotonic() + timeout
        while b"\n" not in pending:
            left = deadline - time.monotonic()
            assert left > 0, f"the holder said nothing for {timeout} s; poolfs: {said()}"
            if select.select([holder.stdout], [], [], left)[0]:
                chunk = os.read(holder.stdout.fileno(), 4096)
                assert chunk, f"the holder ended: {bytes(pending)!r}; poolfs: {said()}"
                pending.extend(chunk)
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        return line.decode().strip()

    def tell():
        holder.stdin.write(b"go\n")
        holder.stdin.flush()

    try:
        assert answer() == "ready"
        hosts.stop_libvirtd("nodeb")
        wait_for(lambda: "is lost" in said(), 40, "poolfs to notice")
        tell()
        assert answer() == "disk"
        assert answer() == "EIO"
        hosts.start_libvirtd("nodeb")
        wait_for(lambda: "connected to libvirt at" in said(), 20,
                 "poolfs to connect again")
        tell()
        assert answer() == "done"
        holder.wait(timeout=20)
        r = hosts.run_on("nodea", ["fusermount3", "-u", mnt])
        assert r.returncode == 0, r.stderr
        p.wait(timeout=20)
        assert p.returncode == 0, said()
    finally:
        for proc in (holder, p):
            if proc.poll() is None:
                hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])
                proc.kill()
                proc.wait(timeout=10)
        # The hosts serve the module's other tests: node B's daemon runs.
        if hosts.node("nodeb").libvirtd.poll() is not None:
            hosts.start_libvirtd("nodeb")
    d = hosts.disks_dir("nodeb")
    with open(os.path.join(d, f"{uuid}_disk"), "rb") as f:
        assert f.read() == b"after!"
    with open(os.path.join(d, f"{uuid}_disk.info")) as f:
        assert f.read() == "{}"
    assert not os.path.exists(os.path.join(d, f"{uuid}_x"))
    text = said()
    assert text.count("connected to libvirt at") == 1, text


@contextlib.contextmanager
def slow_link(hosts, node):
    """NODE's side of the link between the hosts at 1 MiB/s (a copy of
    megabytes takes seconds, time enough to cut it); yields cut(), which
    sets that side down: packets are lost, nothing is reset, as with a cut
    cable.  Put back whatever happens: the hosts serve the module's other
    tests."""
    ns = hosts.netns(node)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace",
                        "dev", "eth0", "root", "tbf", "rate", "8mbit", "burst",
                        "32kbit", "latency", "400ms"], check=True, timeout=10)
        yield lambda: subprocess.run(["ip", "-n", ns, "link", "set", "eth0",
                                      "down"], check=True, timeout=10)
    finally:
        restore_link(hosts, node)


def restore_link(hosts, node):
    """Best effort (it runs in finallys); then the link works again within
    seconds: the neighbour entries that failed while it was down would
    answer EHOSTUNREACH for a while, so they go."""
    ns = hosts.netns(node)
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], timeout=10)
    subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev",
                    "eth0", "root"], timeout=10, capture_output=True)
    for n in ("nodea", "nodeb"):
        subprocess.run(["ip", "-n", hosts.netns(n), "neigh", "flush", "dev",
                        "eth0"], timeout=10, capture_output=True)
    for n in ("nodea", "nodeb"):
        other = "nodeb" if n == "nodea" else "nodea"
        for _ in range(100):
            if hosts.virsh(n, other, "uri", timeout=10).returncode == 0:
                break
            time.sleep(0.2)


@contextlib.contextmanager
def silenced(hosts):
    """Yields silence(), which makes each node send the other's packets to
    a MAC address nobody has: they leave and are lost while the links stay
    up, and nothing is refused, reset or reported unreachable, as when a
    node freezes or a firewall drops.  Put back whatever happens."""
    def silence():
        for n in ("nodea", "nodeb"):
            subprocess.run(["ip", "-n", hosts.netns(n), "neigh", "replace",
                            hosts.ip(hosts.other(n)), "lladdr", BLACK_HOLE_MAC,
                            "dev", "eth0", "nud", "permanent"],
                           check=True, timeout=10)
    try:
        yield silence
    finally:
        for n in ("nodea", "nodeb"):
            subprocess.run(["ip", "-n", hosts.netns(n), "neigh", "del",
                            hosts.ip(hosts.other(n)), "dev", "eth0"],
                           timeout=10, capture_output=True)
        restore_link(hosts, "nodea")


BLACK_HOLE_MAC = "02:00:5e:00:00:99"


def partial_under_way(d, uuid):
    """A predicate: the copy of UUID's disk into directory D has written a
    MiB under its temporary name."""
    def copying():
        return any(n.startswith(".partial") and n.endswith(f"{uuid}_disk") and
                   os.stat(os.path.join(d, n)).st_blocks * 512 >= 1 * MiB
                   for n in os.listdir(d))
    return copying


@contextlib.contextmanager
def mount_of_b(hosts, name, shows):
    """poolfs on node A mounting node B, probing every second (-o
    keepalive=1,keepalive_count=3), its log in the work dir.  Yields (mnt,
    log, proc, others) once path SHOWS(mnt) exists there; at the end kills
    whatever of poolfs and of the processes put in OTHERS still runs, the
    mount lazily unmounted first."""
    mnt = os.path.join(hosts.workdir, f"mnt-{name}")
    os.makedirs(mnt, exist_ok=True)
    log = os.path.join(hosts.workdir, f"poolfs-{name}.log")
    with open(log, "w") as err:
        p = hosts.popen_on("nodea", [POOLFS, "-f", "-o",
                                     "keepalive=1,keepalive_count=3,refresh=0.5",
                                     hosts.uri("nodeb"), mnt],
                           stdout=err, stderr=err)
    others = []
    try:
        path = shows(mnt)
        r = hosts.run_on("nodea", ["bash", "-c", f"for i in $(seq 300); do "
                                   f"test -e {path} && exit 0; sleep 0.1; done; exit 1"])
        assert r.returncode == 0, read(log)
        yield mnt, log, p, others
    finally:
        for proc in others + [p]:
            if proc is not None and proc.poll() is None:
                hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])
                proc.kill()
                proc.wait(timeout=10)


def unmount_cleanly(hosts, mnt, p, log):
    r = hosts.run_on("nodea", ["fusermount3", "-u", mnt])
    assert r.returncode == 0, r.stderr
    p.wait(timeout=20)
    assert p.returncode == 0, read(log)


def ended_after(cut, proc, what):
    """cut(), then PROC's (stdout, stderr) once it ends and the seconds that
    took; fails if it still runs a minute later."""
    cut()
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise AssertionError(f"{what} still waited 60 s after the cut")
    return out, err, time.monotonic() - t0


def copy_cut_then_rerun(hosts, node, argv, uuid, cutting, within,
                        stderr_socket=False):
    """Runs ARGV, a copy of UUID's disk from node A to node B, on NODE
    inside the context manager CUTTING, which yields the cut; cuts once the
    copy is under way.  The copy must end within WITHIN seconds of the cut,
    with exit 1 and one line saying the connection is lost (returned); B
    holds nothing under the final name, A's disk is untouched, and once
    CUTTING has put the network back, ARGV again completes the job.  With
    STDERR_SOCKET, ARGV's stderr is a Unix stream socket (as journald gives
    a service), which must still carry the message."""
    src = os.path.join(hosts.disks_dir("nodea"), f"{uuid}_disk")
    with open(src, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    b = hosts.disks_dir("nodeb")
    p = None
    ours, theirs = socket.socketpair() if stderr_socket else (None, None)
    try:
        with cutting as cut:
            p = hosts.popen_on(node, argv, stdout=subprocess.PIPE,
                               stderr=theirs or subprocess.PIPE, text=True)
            if theirs:
                theirs.close()
            wait_for(partial_under_way(b, uuid), 30,
                     "the disk's copy to be under way")
            _, err, took = ended_after(cut, p, "poolfsctl")
            if ours:
                ours.settimeout(10)
                err = b"".join(iter(lambda: ours.recv(4096), b"")).decode()
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        if ours:
            ours.close()
    assert p.returncode == 1, (p.returncode, err)
    assert took < within, f"{took:.1f} s from the cut to the end"
    line = one_line(err)
    assert "the connection is lost" in line, line
    assert not os.path.exists(os.path.join(b, f"{uuid}_disk"))
    with open(src, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == before
    r = hosts.run_on(node, argv, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_copied(hosts, uuid)
    assert not [n for n in os.listdir(b) if n.startswith(".partial") and uuid in n]
    return line


def test_pull_over_a_network_gone_silent_fails_then_completes(hosts):
    """The link between the nodes goes dead in the middle of a pull.  TCP's
    keepalive, probing every second here (-k 1 -K 3), ends the copy with
    one line saying the connection is lost, instead of a wait for ever; B
    keeps no volume under its final name, A's is untouched, and once the
    link is back the same command completes the job."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=8 * MiB)
    argv = [POOLFSCTL, "-k", "1", "-K", "3", "-c", hosts.local_uri("nodeb"),
            "migrate", "--from", hosts.uri("nodea"), "--to",
            hosts.local_uri("nodeb"), uuid]
    line = copy_cut_then_rerun(hosts, "nodeb", argv, uuid,
                               slow_link(hosts, "nodea"), 30)
    assert "did not answer for 4 s" in line, line


@contextlib.contextmanager
def slow_then_source_hung(hosts):
    """The link slowed; at the cut, node A's libvirtd stops (SIGSTOP): a
    daemon that hangs while its host still answers (its kernel acknowledges
    and probes are answered, so neither keepalive nor the watchdog can
    tell).  It goes on at the end."""
    pid = hosts.libvirtd_pid("nodea")
    stopped = []

    def cut():
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    with slow_link(hosts, "nodea"):
        try:
            yield cut
        finally:
            if stopped:
                os.kill(pid, signal.SIGCONT)


def test_pull_from_a_hung_libvirtd_gives_up_after_timeout(hosts):
    """A's libvirtd hangs in the middle of a pull.  Nothing at the TCP level
    is wrong, so only --timeout 3 ends it: no data moved for 3 s, every
    connection shut down, one line saying so; B keeps nothing under the
    final name, and once A's daemon goes on the same command completes."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=8 * MiB)
    argv = [POOLFSCTL, "-c", hosts.local_uri("nodeb"), "migrate", "--timeout",
            "3", "--from", hosts.uri("nodea"), "--to",
            hosts.local_uri("nodeb"), uuid]
    # Its stderr a socket, as journald's: not one of those it shuts down.
    line = copy_cut_then_rerun(hosts, "nodeb", argv, uuid,
                               slow_then_source_hung(hosts), 15,
                               stderr_socket=True)
    assert "no data moved for 3 s (--timeout)" in line, line


def test_remote_mount_over_a_network_gone_silent_fails_then_comes_back(hosts):
    """The link dies while a program reads a file of a remote mount: the
    read fails with EIO once TCP's probes go unanswered (-o
    keepalive=1,keepalive_count=3 here) instead of hanging the reader in
    the kernel for ever; once the link is back, poolfs is connected again
    by itself and the file reads whole."""
    uuid = str(uuidlib.uuid4())
    d = hosts.disks_dir("nodeb")
    open(os.path.join(d, f"{uuid}_"), "w").close()
    data = os.urandom(8 * MiB)
    with open(os.path.join(d, f"{uuid}_disk"), "wb") as f:
        f.write(data)
    hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                           "pool-refresh", DISKS_POOL], check=True)
    with mount_of_b(hosts, "silent",
                    lambda mnt: os.path.join(mnt, uuid, "disk")) as (mnt, log, p, others):
        path = os.path.join(mnt, uuid, "disk")
        with slow_link(hosts, "nodeb") as cut:
            reader = hosts.popen_on("nodea", ["dd", f"if={path}", "of=/dev/null",
                                              "bs=1M", "status=none"],
                                    stderr=subprocess.PIPE, text=True)
            others.append(reader)
            time.sleep(2)
            _, derr, took = ended_after(cut, reader, "the read")
        assert reader.returncode != 0 and "Input/output error" in derr, derr
        assert took < 30, f"{took:.1f} s from the cut to EIO"
        wait_for(lambda: "connected to libvirt at" in read(log), 30,
                 "poolfs to connect again")
        r = hosts.run_on("nodea", ["sha256sum", path], timeout=60)
        assert r.returncode == 0 and \
            r.stdout.split()[0] == hashlib.sha256(data).hexdigest(), r.stderr
        unmount_cleanly(hosts, mnt, p, log)


@contextlib.contextmanager
def slow_then_silenced(hosts):
    with slow_link(hosts, "nodea"), silenced(hosts) as silence:
        yield silence


def test_push_into_a_network_gone_silent_fails_then_completes(hosts):
    """Node B goes silent while a push (poolfsctl run on the source) writes
    into it: its packets are lost, nothing is reset.  TCP's keepalive does
    not cover a connection with data waiting to be acknowledged, and TCP
    would retransmit for some 15 minutes; poolfsctl's watchdog (-k 1 -K 3)
    ends the copy once B has answered nothing for 4 s, with one line.
    B keeps no volume under its final name, A's is untouched, and the same
    command completes the job once B answers again."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=8 * MiB)
    argv = [POOLFSCTL, "-k", "1", "-K", "3", "-c", hosts.local_uri("nodea"),
            "migrate", "--to", hosts.uri("nodeb"), uuid]
    copy_cut_then_rerun(hosts, "nodea", argv, uuid, slow_then_silenced(hosts),
                        20)


def test_remote_mount_write_into_a_network_gone_silent_fails_then_comes_back(hosts):
    """Node B goes silent while a program writes a file of a remote mount:
    the write (or the fsync, or the close) fails with EIO once B has
    answered nothing for 4 s (-o keepalive=1,keepalive_count=3), not
    after TCP's 15 minutes of retransmissions; poolfs logs why, connects
    again by itself once B answers, and a new file then writes whole."""
    uuid = str(uuidlib.uuid4())
    d = hosts.disks_dir("nodeb")
    open(os.path.join(d, f"{uuid}_"), "w").close()
    hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                           "pool-refresh", DISKS_POOL], check=True)
    with mount_of_b(hosts, "silent-write",
                    lambda mnt: os.path.join(mnt, uuid)) as (mnt, log, p, others):
        inst = os.path.join(mnt, uuid)
        with slow_link(hosts, "nodea"), silenced(hosts) as silence:
            writer = hosts.popen_on("nodea", ["dd", "if=/dev/urandom",
                                              f"of={inst}/disk", "bs=1M",
                                              "count=64", "conv=fsync",
                                              "status=none"],
                                    stderr=subprocess.PIPE, text=True)
            others.append(writer)
            wait_for(lambda: os.stat(os.path.join(d, f"{uuid}_disk")).st_blocks
                     * 512 >= 1 * MiB, 30, "the write to reach node B")
            _, derr, took = ended_after(silence, writer, "the write")
        assert writer.returncode != 0 and "Input/output error" in derr, derr
        assert took < 20, f"{took:.1f} s from the silence to EIO"
        assert "answered nothing for 4 s: closing the connection" in read(log)
        wait_for(lambda: "connected to libvirt at" in read(log), 30,
                 "poolfs to connect again")
        data = os.urandom(4 * MiB)
        src = os.path.join(hosts.workdir, "silent-write.src")
        with open(src, "wb") as f:
            f.write(data)
        r = hosts.run_on("nodea", ["dd", f"if={src}", f"of={inst}/disk.local",
                                   "bs=1M", "conv=fsync", "status=none"],
                         timeout=60)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(d, f"{uuid}_disk.local"), "rb") as f:
            assert f.read() == data
        unmount_cleanly(hosts, mnt, p, log)


def test_connect_to_a_silent_host_gives_up_in_seconds(hosts):
    """A node that answers nothing (its packets lost, nothing refused):
    poolfsctl and poolfs give up connecting to it once INTERVAL * (COUNT +
    1) seconds have passed (4 s at -k 1 -K 3), with ETIMEDOUT named, instead of
    TCP's two minutes of SYN retries; nothing is mounted."""
    mnt = os.path.join(hosts.workdir, "mnt-silent-host")
    os.makedirs(mnt, exist_ok=True)
    try:
        _connect_to_a_silent_host(hosts, mnt)
    finally:
        hosts.run_on("nodea", ["fusermount3", "-u", "-z", mnt])


def _connect_to_a_silent_host(hosts, mnt):
    with silenced(hosts) as silence:
        silence()
        t0 = time.monotonic()
        r = hosts.run_on("nodea", [POOLFSCTL, "-k", "1", "-K", "3", "-c",
                                   hosts.uri("nodeb"), "cache"], timeout=60)
        took = time.monotonic() - t0
        assert r.returncode != 0 and "Connection timed out" in one_line(r.stderr), r.stderr
        assert took < 15, f"{took:.1f} s"
        t0 = time.monotonic()
        r = hosts.run_on("nodea", [POOLFS, "-o", "keepalive=1,keepalive_count=3",
                                   hosts.uri("nodeb"), mnt], timeout=60)
        took = time.monotonic() - t0
        assert r.returncode != 0 and "Connection timed out" in one_line(r.stderr), r.stderr
        assert took < 15, f"{took:.1f} s"
        assert not os.path.ismount(mnt)


def test_push_to_a_destination_that_stalls_is_left_alone(hosts):
    """Node B's libvirtd stops taking data for 8 s in the middle of a push
    (SIGSTOP: B's kernel keeps acknowledging and shuts its window, as when
    B's storage stalls).  The watchdog at -k 1 -K 3 must tell that from a
    silent peer (the probes of the shut window are answered) and leave the
    copy alone: it completes once libvirtd goes on.  TCP_USER_TIMEOUT, not
    used for this reason, would end it after 3 s."""
    uuid = str(uuidlib.uuid4())
    make_instance(hosts, "nodea", uuid, data=8 * MiB)
    b = hosts.disks_dir("nodeb")
    argv = [POOLFSCTL, "-k", "1", "-K", "3", "-c", hosts.local_uri("nodea"),
            "migrate", "--to", hosts.uri("nodeb"), uuid]

    copying = partial_under_way(b, uuid)

    pid = hosts.libvirtd_pid("nodeb")
    ns = hosts.netns("nodeb")
    rmem = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                           "net.ipv4.tcp_rmem"], capture_output=True,
                          text=True, check=True, timeout=10).stdout.split()
    p = None
    try:
        # B's receive buffer small enough that the window shuts at once.
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        "net.ipv4.tcp_rmem=4096 65536 262144"], check=True,
                       timeout=10)
        with slow_link(hosts, "nodea"):
            p = hosts.popen_on("nodea", argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            wait_for(copying, 30, "the disk's copy to be under way")
            os.kill(pid, signal.SIGSTOP)
            try:
                # A probes B's shut window (its persist timer).
                wait_for(lambda: "persist" in hosts.run_on(
                    "nodea", ["ss", "-tno", "dst", hosts.ip("nodeb")]).stdout,
                    10, "node B's window to shut")
                time.sleep(8)
                assert p.poll() is None, p.communicate(timeout=10)
            finally:
                os.kill(pid, signal.SIGCONT)
            _, err = p.communicate(timeout=120)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        "net.ipv4.tcp_rmem=" + " ".join(rmem)], timeout=10)
    assert p.returncode == 0, err
    assert_copied(hosts, uuid)
