"""`poolfsctl migrate`: cold migration between two nodes' pools with libvirt
volume streams.  Node A is the session's private libvirtd; node B is a
second private libvirtd in its own mount namespace (these tests talk to both
over their unix sockets; tests/test_tls.py covers the TLS channel)."""

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid as uuidlib

import pytest

from helpers import BASE_POOL, DISKS_POOL, MiB, content_digest, have, run

pytestmark = pytest.mark.skipif(not have("qemu-img"), reason="needs qemu-img")

BASE = "6a3f0c9e1b2d4c8a9e7f5b3d1c0a9e8f7d6c5b4a"


def ctl(poolfsctl, *args, check=True, timeout=120):
    return run([poolfsctl, *args], check=check, timeout=timeout)


def allocated(path):
    return os.stat(path).st_blocks * 512


def make_instance(node, uuid, data_mib=8):
    """A Nova-shaped instance on NODE: a qcow2 disk backed by _base/BASE
    (with data of its own), a sparse raw disk.local holding data and a run
    of allocated zeros, disk.info, and the directory marker."""
    base = os.path.join(node.base, BASE)
    with open(base, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(MiB)
        f.write(os.urandom(4 * MiB))
    open(os.path.join(node.disks, f"{uuid}_"), "w").close()
    disk = os.path.join(node.disks, f"{uuid}_disk")
    run(["qemu-img", "create", "-f", "qcow2", "-u", "-F", "raw", "-b",
         f"/var/lib/nova/instances/_base/{BASE}", disk, "1G"])
    # Data of its own, written with the backing file reachable.
    run(["qemu-io", "-c", "write -P 0xab 300M 2M",
         "--image-opts",
         f"driver=qcow2,file.filename={disk},backing.driver=raw,"
         f"backing.file.filename={base}"])
    local = os.path.join(node.disks, f"{uuid}_disk.local")
    with open(local, "wb") as f:
        f.truncate(512 * MiB)
        f.seek(100 * MiB)
        f.write(os.urandom(data_mib * MiB))
        f.seek(200 * MiB)
        f.write(bytes(4 * MiB))         # allocated, but zeros
    with open(os.path.join(node.disks, f"{uuid}_disk.info"), "w") as f:
        f.write(json.dumps({f"/var/lib/nova/instances/{uuid}/disk": "qcow2"}))
    node.virsh.pool_refresh(DISKS_POOL)
    node.virsh.pool_refresh(BASE_POOL)
    return ["", "disk", "disk.local", "disk.info"]


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


# Both nodes are this host: by default poolfsctl reads and writes the
# volumes' files; --streams makes it use libvirt streams at both ends, the
# path between hosts.
MODES = {"files": [], "streams": ["--streams"]}


@pytest.mark.parametrize("mode", MODES)
def test_migrate_copies_instance_sparse_and_verified(nodes, poolfsctl, mode):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    files = make_instance(a, uuid)
    # disk.info is nova's and 0640: the copy keeps that (through a mount
    # with default_permissions it is what nova is let do).
    info = os.path.join(a.disks, f"{uuid}_disk.info")
    os.chown(info, 4321, 4322)
    os.chmod(info, 0o640)
    a.virsh.pool_refresh(DISKS_POOL)
    r = ctl(poolfsctl, "-c", a.uri, "migrate", *MODES[mode], "--to", b.uri, uuid)
    st = os.stat(os.path.join(b.disks, f"{uuid}_disk.info"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4321, 4322, 0o640)
    # Four of its own and the base image it needs.
    assert r.stdout.startswith(f"migrated {uuid}: 5 volumes"), r.stdout
    assert "verified" in r.stdout
    for f in files:
        src, dst = os.path.join(a.disks, f"{uuid}_{f}"), os.path.join(b.disks, f"{uuid}_{f}")
        assert same_file(src, dst), f
        # Holes stay holes; allocated zeros become holes.
        assert allocated(dst) <= allocated(src), f
    local = os.path.join(b.disks, f"{uuid}_disk.local")
    assert allocated(local) < 10 * MiB, allocated(local)
    # The base image the qcow2 disk needs was copied first, sparse too.
    assert same_file(os.path.join(a.base, BASE), os.path.join(b.base, BASE))
    assert allocated(os.path.join(b.base, BASE)) <= 5 * MiB
    # libvirt on B sees a qcow2 with its backing store, not a converted copy.
    xml = b.virsh.vol_xml(DISKS_POOL, f"{uuid}_disk")
    assert "<format type='qcow2'/>" in xml and f"_base/{BASE}" in xml, xml
    # No temporary volume is left behind.
    assert not [n for n in os.listdir(b.disks) if n.startswith(".partial")]
    # The source is untouched.
    assert sorted(os.listdir(a.disks)) == sorted(f"{uuid}_{f}" for f in files)


@pytest.mark.parametrize("mode", MODES)
def test_migrate_again_completes_and_json(nodes, poolfsctl, mode):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    r = ctl(poolfsctl, "-c", a.uri, "--json", "migrate", *MODES[mode], "--to", b.uri, uuid)
    doc = json.loads(r.stdout)
    # Which way the data went, at each end (a stream source is never sent
    # wrapped as qcow2: test_tls_migrate.py pushes from a file).
    way = "file" if mode == "files" else "stream"
    assert {(v["read"], v["written"]) for v in doc["instances"][0]["volumes"]} == \
        {(way, way)}, doc
    r = ctl(poolfsctl, "-c", a.uri, "--json", "migrate", *MODES[mode], "--to", b.uri, uuid)
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    # A bad name first: still one JSON document, the instance in it.
    r = run([poolfsctl, "-c", a.uri, "--json", "migrate", *MODES[mode], "--to",
             b.uri, "not_a_uuid", uuid], check=False)
    assert r.returncode == 1, r.stderr
    bad = json.loads(r.stdout)
    assert bad["ok"] is False and [i["uuid"] for i in bad["instances"]] == [uuid]
    inst = doc["instances"][0]
    assert inst["uuid"] == uuid and inst["status"] == "migrated"
    assert {v["state"] for v in inst["volumes"]} == {"present"}
    # Each digest is the content digest by its definition (16 KiB blocks),
    # whichever way poolfsctl hashed.
    for v in inst["volumes"]:
        path = os.path.join(a.base if v["pool"] == BASE_POOL else a.disks, v["name"])
        assert v["digest"] == content_digest(path), v


def test_no_base_refuses_and_names_the_base(nodes, poolfsctl):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--no-base", "--to", b.uri, uuid,
            check=False)
    assert r.returncode == 1
    assert BASE in r.stderr and "--no-base" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("poolfsctl: ")
    assert os.listdir(b.disks) == [] and os.listdir(b.base) == []


def test_move_deletes_source_after_verification(nodes, poolfsctl):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    files = make_instance(a, uuid)
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--move", "--to", b.uri, uuid)
    assert r.stdout.startswith(f"moved {uuid}"), r.stdout
    assert os.listdir(a.disks) == []
    assert sorted(os.listdir(b.disks)) == sorted(f"{uuid}_{f}" for f in files)
    # Base images stay: other instances may use them.
    assert os.listdir(a.base) == [BASE]


def test_shared_pool_is_not_copied_onto_itself(nodes, poolfsctl):
    a, _ = nodes
    uuid = str(uuidlib.uuid4())
    files = make_instance(a, uuid)
    before = {f: os.stat(os.path.join(a.disks, f"{uuid}_{f}")).st_mtime_ns for f in files}
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", a.uri, "--move", uuid)
    assert r.stdout.startswith(f"shared {uuid}"), r.stdout
    after = {f: os.stat(os.path.join(a.disks, f"{uuid}_{f}")).st_mtime_ns for f in files}
    assert before == after


def test_dry_run_changes_nothing(nodes, poolfsctl):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--dry-run", "--to", b.uri, uuid)
    assert f"would copy base volume '{BASE}'" in r.stdout
    assert f"would copy instance volume '{uuid}_disk'" in r.stdout
    assert os.listdir(b.disks) == [] and os.listdir(b.base) == []


@pytest.mark.parametrize("mode", MODES)
def test_migrate_into_full_pool_fails_cleanly(nodes, poolfsctl, env, mode):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid, data_mib=48)
    b.virsh("pool-destroy", DISKS_POOL)
    run(["nsenter", "-t", str(b.pid), "-m", "mount", "-t", "tmpfs", "-o",
         "size=24m", "tmpfs", b.disks])
    try:
        b.virsh("pool-create-as", DISKS_POOL, "dir", "--target", b.disks)
        r = ctl(poolfsctl, "-c", a.uri, "migrate", *MODES[mode], "--to", b.uri, uuid,
                check=False)
        assert r.returncode == 1, r.stdout
        assert r.stderr.startswith("poolfsctl: ") and "disk.local" in r.stderr, r.stderr
        left = b.virsh.vol_list(DISKS_POOL)
        assert f"{uuid}_disk.local" not in left, left
        assert not [n for n in left if n.startswith(".partial")], left
        # The source is untouched.
        assert os.path.getsize(os.path.join(a.disks, f"{uuid}_disk.local")) == 512 * MiB
    finally:
        b.virsh("pool-destroy", DISKS_POOL, check=False)
        run(["nsenter", "-t", str(b.pid), "-m", "umount", b.disks], check=False)
        b.virsh("pool-create-as", DISKS_POOL, "dir", "--target", b.disks)


@pytest.mark.parametrize("mode", MODES)
def test_destination_daemon_killed_then_rerun_completes(nodes, poolfsctl, mode):
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid, data_mib=400)
    p = subprocess.Popen([poolfsctl, "-c", a.uri, "migrate", *MODES[mode], "--to", b.uri, uuid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Kill B once the big volume is on its way.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            if [n for n in os.listdir(b.disks) if n.startswith(".partial")]:
                break
            time.sleep(0.01)
        os.kill(b.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, out
    assert err.startswith("poolfsctl: "), err
    # Nothing half-written under a final name on B's disk, but for a volume
    # B's libvirtd was still making from its copy (streams: createXMLFrom)
    # when it died: the .partial beside it marks it unfinished, and the
    # rerun replaces it (test_unfinished_volume_is_replaced).
    names = os.listdir(b.disks)
    for n in names:
        if not n.startswith(".partial") and \
                not same_file(os.path.join(a.disks, n), os.path.join(b.disks, n)):
            assert mode == "streams" and f".partial-{n}" in names, n
    # B comes back; running the command again finishes the job.
    b.stop()
    b.start()
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid)
    assert r.stdout.startswith(f"migrated {uuid}"), r.stdout
    for f in ("disk", "disk.local", "disk.info"):
        assert same_file(os.path.join(a.disks, f"{uuid}_{f}"),
                         os.path.join(b.disks, f"{uuid}_{f}")), f


def test_unfinished_volume_is_replaced(nodes, poolfsctl):
    """A volume under its final name with its .partial still beside it is
    what a destination daemon killed while making it leaves: a rerun
    replaces it.  Without the .partial, other content is a conflict."""
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    vol = f"{uuid}_disk.local"
    for name in (vol, f".partial-{vol}"):
        with open(os.path.join(b.disks, name), "wb") as f:
            f.write(b"half" * 1000)
    b.virsh.pool_refresh(DISKS_POOL)
    ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid)
    assert same_file(os.path.join(a.disks, vol), os.path.join(b.disks, vol))
    assert not [n for n in os.listdir(b.disks) if n.startswith(".partial")]
    # Other content, no .partial: not overwritten.
    other = str(uuidlib.uuid4())
    make_instance(a, other)
    with open(os.path.join(b.disks, f"{other}_disk.info"), "w") as f:
        f.write("something else")
    b.virsh.pool_refresh(DISKS_POOL)
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, other, check=False)
    assert r.returncode == 1 and "other content" in r.stderr, r.stderr
    with open(os.path.join(b.disks, f"{other}_disk.info")) as f:
        assert f.read() == "something else"


def test_half_made_base_is_copied_again(nodes, poolfsctl):
    """A base image on the destination with its .partial beside it is the
    leftover of an interrupted copy: a rerun copies it again rather than
    taking it as there (the disks would run on a torn backing file)."""
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid)
    with open(os.path.join(b.base, BASE), "r+b") as f:
        f.seek(MiB)
        f.write(b"torn" * 1000)
    open(os.path.join(b.base, f".partial-{BASE}"), "w").close()
    b.virsh.pool_refresh(BASE_POOL)
    ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid)
    assert same_file(os.path.join(a.base, BASE), os.path.join(b.base, BASE))
    assert os.listdir(b.base) == [BASE]


def test_names_with_xml_characters_migrate(nodes, poolfsctl):
    """Volume names are text in the XML poolfsctl sends: '&' and '<' are
    escaped, not pasted."""
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    odd = f"{uuid}_notes&<x>.txt"
    with open(os.path.join(a.disks, odd), "w") as f:
        f.write("odd name")
    a.virsh.pool_refresh(DISKS_POOL)
    for mode in MODES.values():
        b.clean()
        ctl(poolfsctl, "-c", a.uri, "migrate", *mode, "--to", b.uri, uuid)
        with open(os.path.join(b.disks, odd)) as f:
            assert f.read() == "odd name"


def test_shared_dir_pool_is_found_by_a_probe(nodes, poolfsctl, tmp_path):
    """A dir pool on storage both nodes mount (NFS, CephFS) has a different
    UUID and no <source> on each: libvirt cannot tell it is shared.  A probe
    volume made on the destination shows it, so nothing is copied onto
    itself and --move does not delete the only copy."""
    a, b = nodes
    shared = str(tmp_path / "shared")
    os.makedirs(shared)
    pool = "nova-shared-pool"
    uuid = str(uuidlib.uuid4())
    for node in (a, b):
        node.virsh("pool-create-as", pool, "dir", "--target", shared)
    try:
        open(os.path.join(shared, f"{uuid}_"), "w").close()
        with open(os.path.join(shared, f"{uuid}_disk.info"), "w") as f:
            f.write("the only copy")
        a.virsh.pool_refresh(pool)
        r = ctl(poolfsctl, "-c", a.uri, "--disks-pool", pool, "migrate", "--move",
                "--to", b.uri, uuid)
        assert r.stdout.startswith(f"shared {uuid}"), r.stdout
        with open(os.path.join(shared, f"{uuid}_disk.info")) as f:
            assert f.read() == "the only copy"
        # The probe is gone from both ends' view.
        assert sorted(os.listdir(shared)) == [f"{uuid}_", f"{uuid}_disk.info"]
        for node in (a, b):
            assert not [v for v in node.virsh.vol_list(pool) if "probe" in v]
    finally:
        for node in (a, b):
            node.virsh("pool-destroy", pool, check=False)


@contextlib.contextmanager
def running_through_mount(a, poolfs, env):
    """An instance on node A whose domain runs with its disk.local through
    the mount (MOUNT/{uuid}/disk.local); yields (uuid, domain name)."""
    from helpers import SEEN_WITHIN, tiny_domain_xml, wait_for
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    disk = os.path.join(poolfs.mnt, uuid, "disk.local")
    wait_for(lambda: os.path.exists(disk), SEEN_WITHIN, "the instance in the mount")
    name = f"instance-{uuid[:8]}"
    a.virsh("create", tiny_domain_xml(env.scratch, name, disk, "raw"), timeout=60)
    try:
        yield uuid, name
    finally:
        a.virsh("destroy", name, check=False)


@pytest.mark.skipif(not have("qemu-system-x86_64"), reason="needs QEMU")
def test_running_instance_is_refused(nodes, poolfsctl, poolfs, env):
    """A cold migration of an instance whose domain runs is refused, also
    when the domain has its disk through the mount (MOUNT/{uuid}/disk.local,
    the path Nova's legacy backends use), and nothing is copied."""
    a, b = nodes
    with running_through_mount(a, poolfs, env) as (uuid, name):
        r = ctl(poolfsctl, "-c", a.uri, "migrate", "--move", "--to", b.uri, uuid,
                check=False)
        assert r.returncode == 1, r.stdout
        assert f"in use by running domain '{name}'" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        assert os.listdir(b.disks) == [] and os.listdir(b.base) == []
        assert os.path.exists(os.path.join(a.disks, f"{uuid}_disk.local"))


@pytest.mark.skipif(not have("qemu-system-x86_64"), reason="needs QEMU")
def test_domain_started_during_the_copy_keeps_the_source(nodes, poolfsctl, env):
    """--move with the instance's domain started while the copy runs (held
    to 1 MiB/s through streams): what was verified is what was read, not
    what the source holds now, so the instance fails, saying why, and
    nothing on the source is deleted."""
    from helpers import tiny_domain_xml, wait_for
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid, data_mib=16)
    name = f"instance-{uuid[:8]}"
    xml = tiny_domain_xml(env.scratch, name,
                          os.path.join(a.disks, f"{uuid}_disk.local"), "raw")
    p = subprocess.Popen([poolfsctl, "-c", a.uri, "migrate", "--move",
                          "--streams", "--bandwidth", "1", "--to", b.uri, uuid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        # The copy has begun once a ".partial-" volume is on B.
        wait_for(lambda: p.poll() is not None or any(
            n.startswith(".partial-") for n in os.listdir(b.disks)), 30,
            "the copy to begin")
        a.virsh("create", xml, timeout=60)
        if p.poll() is not None:
            pytest.fail("the copy ended before the domain started: %s" %
                        (p.communicate(),))
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        a.virsh("destroy", name, check=False)
    assert p.returncode == 1, out + err
    assert f"domain '{name}' was started on {a.uri} during the copy" in err, err
    assert err.count("\n") == 1, err
    assert sorted(os.listdir(a.disks)) == sorted(
        f"{uuid}_{f}" for f in ("", "disk", "disk.local", "disk.info"))
    # The torn copies on B go, so that a rerun once it is shut down copies
    # anew instead of refusing volumes that differ.
    assert not [n for n in os.listdir(b.disks) if uuid in n], os.listdir(b.disks)


def test_base_pool_option_after_the_command(nodes, poolfsctl):
    """--base-pool given after `migrate` is the base pool (it once shared
    its getopt code with migrate's --bandwidth)."""
    a, b = nodes
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, "--base-pool",
            "no-such-base-pool", str(uuidlib.uuid4()), check=False)
    assert r.returncode == 1, r.stderr
    assert "storage pool 'no-such-base-pool' not found" in r.stderr, r.stderr


def test_usage_errors(poolfsctl):
    r = run([poolfsctl, "migrate", str(uuidlib.uuid4())], check=False)
    assert r.returncode == 2 and "--to" in r.stderr
    for bad in ("0", "17", "four"):
        r = run([poolfsctl, "migrate", "--parallel", bad, "--to", "qemu:///system",
                 str(uuidlib.uuid4())], check=False)
        assert r.returncode == 2 and "--parallel" in r.stderr and bad in r.stderr, r.stderr
    for cmd in ("migrate", "live-migrate"):
        for bad in ("0", "-3", "+5", " 5", "1.5", "fast", "1048577"):
            r = run([poolfsctl, cmd, "--bandwidth", bad, "--to", "qemu:///system",
                     "x"], check=False)
            assert r.returncode == 2 and r.stderr.count("\n") == 1 and \
                f"{cmd}: --bandwidth wants MiB/s" in r.stderr and \
                f"'{bad}'" in r.stderr, r.stderr
    for bad in ("0", "86401", "-1", "soon"):
        r = run([poolfsctl, "migrate", "--timeout", bad, "--to", "qemu:///system",
                 "x"], check=False)
        assert r.returncode == 2 and "--timeout wants seconds" in r.stderr and \
            f"'{bad}'" in r.stderr, r.stderr
    for where in ("before", "after"):
        for opt, bad in (("-k", "-1"), ("-k", "soon"), ("-K", "0"),
                         ("--keepalive-count", "101")):
            args = [opt, bad]
            argv = ([poolfsctl, *args, "cache"] if where == "before"
                    else [poolfsctl, "cache", *args])
            r = run(argv, check=False)
            assert r.returncode == 2 and "keepalive" in r.stderr and \
                f"'{bad}'" in r.stderr, (argv, r.stderr)
    r = run([poolfsctl, "migrate", "--move", "--no-verify", "--to",
             "qemu:///system", "x"], check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and \
        "--move" in r.stderr and "--no-verify" in r.stderr, r.stderr
    r = run([poolfsctl, "frobnicate"], check=False)
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = run([poolfsctl, "--help"])
    assert "migrate" in r.stdout


def test_json_failures_are_json(poolfsctl, tmp_path):
    """With --json (before or after the command) a failure before any
    result still prints one JSON object on stdout, with the first error;
    the exit status says what kind of failure it was."""
    nowhere = f"qemu:///system?socket={tmp_path}/no-such-sock"
    cases = [
        ([poolfsctl, "--json", "-c", nowhere, "cache"], 1, "cannot connect"),
        ([poolfsctl, "-c", nowhere, "cache", "--json"], 1, "cannot connect"),
        ([poolfsctl, "--json", "migrate", str(uuidlib.uuid4())], 2, "--to"),
        ([poolfsctl, "--json", "-K", "0", "cache"], 2, "--keepalive-count"),
        ([poolfsctl, "--json", "frobnicate"], 2, "unknown command"),
        ([poolfsctl, "--json", "cache", "--frobnicate"], 2, "bad option",
         "unrecognized option '--frobnicate'"),
        ([poolfsctl, "--json", "--frobnicate", "cache"], 2, "bad option",
         "unrecognized option '--frobnicate'"),
        # Strings in the JSON are escaped: a mount path with a quote.
        ([poolfsctl, "--json", "-c", nowhere, "adopt", "--mount",
          f'{tmp_path}/a"b\\c', "--all"], 1, 'a"b\\c: No such file'),
    ]
    for argv, status, what, *said in cases:
        r = run(argv, check=False)
        assert r.returncode == status, (argv, r.returncode, r.stderr)
        out = json.loads(r.stdout)
        assert out["ok"] is False and what in out["error"], (argv, r.stdout)
        assert (said[0] if said else what) in r.stderr, r.stderr   # said there too


def test_one_uuid_on_two_nodes_is_not_shared_storage(nodes, poolfsctl, tmp_path):
    """Pools defined from one XML (config management) carry one UUID to
    every node: on two libvirtds that proves nothing, so the instance is
    copied (the probe finds two storages), not taken as already there."""
    a, b = nodes
    pool, puuid = "nova-twin-pool", str(uuidlib.uuid4())
    dirs = {}
    for node, name in ((a, "a"), (b, "b")):
        d = tmp_path / name
        d.mkdir()
        dirs[name] = str(d)
        xml = tmp_path / f"{name}.xml"
        xml.write_text(f"<pool type='dir'><name>{pool}</name><uuid>{puuid}</uuid>"
                       f"<target><path>{d}</path></target></pool>")
        node.virsh("pool-create", str(xml))
    try:
        uuid = str(uuidlib.uuid4())
        open(os.path.join(dirs["a"], f"{uuid}_"), "w").close()
        with open(os.path.join(dirs["a"], f"{uuid}_disk.info"), "w") as f:
            f.write("only on a")
        a.virsh.pool_refresh(pool)
        r = ctl(poolfsctl, "-c", a.uri, "--disks-pool", pool, "migrate",
                "--to", b.uri, uuid)
        assert r.stdout.startswith(f"migrated {uuid}"), r.stdout
        with open(os.path.join(dirs["b"], f"{uuid}_disk.info")) as f:
            assert f.read() == "only on a"
    finally:
        for node in (a, b):
            node.virsh("pool-destroy", pool, check=False)


@pytest.mark.skipif(not have("qemu-system-x86_64"), reason="needs QEMU")
def test_live_migrate_refuses_a_disk_through_the_mount(nodes, poolfsctl, poolfs, env):
    """A domain whose disk is a file through a poolfs mount (not yet
    transitioned) has no volume libvirt knows and is not shared storage:
    the destination's mount has its own tree.  A live migration would leave
    the disk behind; it is refused before anything moves."""
    a, b = nodes
    with running_through_mount(a, poolfs, env) as (uuid, name):
        r = ctl(poolfsctl, "-c", a.uri, "live-migrate", name, "--to", b.uri,
                "--dry-run", check=False)
        assert r.returncode == 1, r.stdout
        assert "through a poolfs mount" in r.stderr and "transition" in r.stderr, r.stderr
        assert os.listdir(b.disks) == []


def test_base_named_by_the_pool_path(nodes, poolfsctl):
    """A disk made with libvirt names its base by the image cache pool's
    own path (a backingStore naming that pool's volume), not MOUNT/_base/.
    It migrates when the destination's base pool lies at the same path, and
    is refused with the two paths named when it does not: the copy's
    backing file would not be there."""
    a, b = nodes
    uuid = str(uuidlib.uuid4())
    make_instance(a, uuid)
    disk = os.path.join(a.disks, f"{uuid}_disk")
    run(["qemu-img", "rebase", "-u", "-F", "raw", "-b",
         os.path.join(a.base, BASE), disk])
    a.virsh.pool_refresh(DISKS_POOL)
    assert f"<path>{os.path.join(a.base, BASE)}</path>" in \
        a.virsh.vol_xml(DISKS_POOL, f"{uuid}_disk")
    r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid, check=False)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("poolfsctl: ") and a.base in r.stderr and \
        b.base in r.stderr, r.stderr
    assert os.listdir(b.disks) == [] and os.listdir(b.base) == []

    # B's base pool at A's path (B's own directory, bound there in B's
    # mount namespace): the same path names B's copy of the base.
    b.virsh("pool-destroy", BASE_POOL)
    run(["nsenter", "-t", str(b.pid), "-m", "mount", "--bind", b.base, a.base])
    try:
        b.virsh("pool-create-as", BASE_POOL, "dir", "--target", a.base)
        r = ctl(poolfsctl, "-c", a.uri, "migrate", "--to", b.uri, uuid)
        assert r.stdout.startswith(f"migrated {uuid}: 5 volumes"), r.stdout
        assert same_file(os.path.join(a.base, BASE), os.path.join(b.base, BASE))
        assert same_file(disk, os.path.join(b.disks, f"{uuid}_disk"))
        # B's libvirt finds the backing file through that path.
        xml = b.virsh.vol_xml(DISKS_POOL, f"{uuid}_disk")
        assert f"<path>{os.path.join(a.base, BASE)}</path>" in xml, xml
    finally:
        b.virsh("pool-destroy", BASE_POOL, check=False)
        run(["nsenter", "-t", str(b.pid), "-m", "umount", a.base], check=False)
        b.virsh("pool-create-as", BASE_POOL, "dir", "--target", b.base)
