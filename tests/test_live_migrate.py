"""`poolfsctl live-migrate` between the two TLS test hosts: a running QEMU
domain (TCG) whose disk is a pool volume moves with flags poolfsctl picks;
refused combinations are refused before anything moves."""

import json
import os
import time
import uuid as uuidlib

import pytest

from conftest import REPO
from helpers import DISKS_POOL, have

POOLFSCTL = os.environ.get("POOLFSCTL_BIN") or os.path.join(REPO, "build", "migrate", "poolfsctl")

pytestmark = pytest.mark.skipif(
    not (have("qemu-system-x86_64") and have("qemu-io")),
    reason="needs qemu-system-x86 and qemu-utils")


def virsh(hosts, node, *args, check=True):
    p = hosts.run_on(node, ["virsh", "-q", "-c", hosts.local_uri(node), *args],
                     timeout=60)
    assert not check or p.returncode == 0, p.stderr
    return p


# A boot sector that never stops writing memory: real mode, stosw over
# 0x10000-0x8ffff (512 KiB) with a value that changes every sweep.
DIRTIER = bytes([
    0xB8, 0x5A, 0x5A,           # mov ax, 0x5a5a
    0xBB, 0x00, 0x10,           # sweep: mov bx, 0x1000
    0x8E, 0xC3,                 # seg:   mov es, bx
    0x31, 0xFF,                 #        xor di, di
    0xB9, 0x00, 0x80,           #        mov cx, 0x8000 (64 KiB)
    0xF3, 0xAB,                 #        rep stosw
    0x81, 0xC3, 0x00, 0x10,     #        add bx, 0x1000
    0x81, 0xFB, 0x00, 0x90,     #        cmp bx, 0x9000
    0x72, 0xED,                 #        jb seg
    0x40,                       #        inc ax
    0xEB, 0xE7,                 #        jmp sweep
]).ljust(510, b"\0") + b"\x55\xaa"


def make_domain(hosts, devices="", boot=None, size="64M"):
    """A running TCG domain on node A whose disk is a qcow2 pool volume
    holding 0x5c at 1M..2M; DEVICES is more XML for <devices>; BOOT, a
    boot sector written at the disk's start, which the guest runs; SIZE,
    the disk's virtual size."""
    uuid = str(uuidlib.uuid4())
    name = f"instance-{uuid[:8]}"
    vol = f"{uuid}_disk"
    virsh(hosts, "nodea", "vol-create-as", DISKS_POOL, vol, size, "--format",
          "qcow2")
    path = os.path.join(hosts.disks_dir("nodea"), vol)
    r = hosts.run_on("nodea", ["qemu-io", "-f", "qcow2", "-c",
                               "write -P 0x5c 1M 1M", path])
    assert r.returncode == 0, r.stderr
    if boot:
        sector = os.path.join(hosts.workdir, f"{name}.boot")
        with open(sector, "wb") as f:
            f.write(boot)
        r = hosts.run_on("nodea", ["qemu-io", "-f", "qcow2", "-c",
                                   f"write -s {sector} 0 512", path])
        assert r.returncode == 0, r.stderr
    xml = os.path.join(hosts.workdir, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(f"""<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
<source pool='{DISKS_POOL}' volume='{vol}'/><target dev='vda' bus='virtio'/></disk>
{devices}</devices></domain>""")
    virsh(hosts, "nodea", "define", xml)
    virsh(hosts, "nodea", "start", name)
    return name, vol


def remove_domain(hosts, name, vol):
    for node in ("nodea", "nodeb"):
        virsh(hosts, node, "destroy", name, check=False)
        virsh(hosts, node, "undefine", name, check=False)
        virsh(hosts, node, "vol-delete", "--pool", DISKS_POOL, vol, check=False)


@pytest.fixture
def domain(hosts):
    name, vol = make_domain(hosts)
    yield name, vol
    remove_domain(hosts, name, vol)


def ctl(hosts, *args):
    return hosts.run_on("nodea", [POOLFSCTL, "-c", hosts.local_uri("nodea"),
                                  *args], timeout=180)


def test_plan_is_chosen_not_configured(hosts, domain):
    name, vol = domain
    r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"), "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "VIR_MIGRATE_LIVE|VIR_MIGRATE_PEER2PEER" in out, out
    assert "VIR_MIGRATE_PERSIST_DEST" in out and "VIR_MIGRATE_UNDEFINE_SOURCE" in out
    assert "VIR_MIGRATE_TLS" in out and "VIR_MIGRATE_NON_SHARED_DISK" in out
    assert "VIR_MIGRATE_TUNNELLED" not in out
    assert f"vda  {DISKS_POOL}/{vol}  copied (migrate_disks)" in out, out
    r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"), "--dry-run",
            "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["dry_run"] is True and \
        "VIR_MIGRATE_LIVE" in doc["flags"] and doc["disks"][0]["copy"] is True, doc
    assert doc["bandwidth_mib"] == 0 and "postcopy" not in doc, doc
    # Nothing moved.
    assert vol not in virsh(hosts, "nodeb", "vol-list", DISKS_POOL).stdout
    assert "running" in virsh(hosts, "nodea", "domstate", name).stdout


def test_tunnelled_with_disk_copy_is_refused_before_anything_moves(hosts, domain):
    name, vol = domain
    r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"),
            "--tunnelled", "yes")
    assert r.returncode == 1
    assert "refused before anything moved" in r.stderr and \
        "migrate_disks" in r.stderr, r.stderr
    assert vol not in virsh(hosts, "nodeb", "vol-list", DISKS_POOL).stdout
    assert "running" in virsh(hosts, "nodea", "domstate", name).stdout


def test_live_migrate_with_the_defaults(hosts, domain):
    name, vol = domain
    r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "running" in virsh(hosts, "nodeb", "domstate", name).stdout
    assert virsh(hosts, "nodea", "domstate", name, check=False).returncode != 0
    # The disk's content came along into B's pool volume.
    virsh(hosts, "nodeb", "destroy", name)
    path = os.path.join(hosts.disks_dir("nodeb"), vol)
    r = hosts.run_on("nodeb", ["qemu-io", "-f", "qcow2", "-c",
                               "read -P 0x5c 1M 1M", path])
    assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, \
        r.stdout + r.stderr


def test_postcopy_switch_when_precopy_cannot_converge(hosts):
    """--postcopy: a guest dirtying 512 KiB again and again, migrated at
    --bandwidth 1 (MiB/s) with 1 ms of downtime allowed (1 KiB: QEMU's
    default 300 ms would allow 300 KiB, which a loaded host's slowed guest
    sometimes stays under), cannot converge, so
    poolfsctl asks for post-copy after a whole pass over memory and sees
    the source pause for it; the guest then runs on B, still dirtying
    memory, with its disk."""
    # A small disk: the cap holds the disk's copy to 1 MiB/s too.
    name, vol = make_domain(hosts, boot=DIRTIER, size="2M")
    try:
        virsh(hosts, "nodea", "migrate-setmaxdowntime", name, "1")
        r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"),
                "--postcopy", "--bandwidth", "1", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        assert doc["ok"] is True and "VIR_MIGRATE_POSTCOPY" in doc["flags"], doc
        assert doc["bandwidth_mib"] == 1, doc
        assert doc["postcopy"] == "switched", doc
        assert "running" in virsh(hosts, "nodeb", "domstate", name).stdout
        assert virsh(hosts, "nodea", "domstate", name,
                     check=False).returncode != 0
        # The guest goes on writing on B: two reads of its memory differ.
        peek = ["qemu-monitor-command", name, "--hmp", "xp /2wx 0x10000"]
        first = virsh(hosts, "nodeb", *peek).stdout
        time.sleep(0.5)
        assert virsh(hosts, "nodeb", *peek).stdout != first, first
        virsh(hosts, "nodeb", "destroy", name)
        path = os.path.join(hosts.disks_dir("nodeb"), vol)
        r = hosts.run_on("nodeb", ["qemu-io", "-f", "qcow2", "-c",
                                   "read -P 0x5c 1M 1M", path])
        assert r.returncode == 0 and "Pattern verification failed" not in \
            r.stdout, r.stdout + r.stderr
    finally:
        remove_domain(hosts, name, vol)


def assert_still_on_a_alone(hosts, name, vol, r):
    """A failed live-migrate R said, in one line, that the guest still runs
    on A and what it made on B is removed; and so it is."""
    assert "still runs on" in r.stderr and "are removed" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "running" in virsh(hosts, "nodea", "domstate", name).stdout
    assert virsh(hosts, "nodeb", "domstate", name, check=False).returncode != 0
    virsh(hosts, "nodeb", "pool-refresh", DISKS_POOL)
    assert vol not in virsh(hosts, "nodeb", "vol-list", DISKS_POOL).stdout


def test_timeout_aborts_a_migration_in_progress(hosts):
    """--timeout 4 on a migration that needs more (an 8 MiB disk copied at
    --bandwidth 1 alone takes 8 s) aborts it: exit 1, one line naming the
    timeout, the guest still running on A with its disk, nothing of it on
    B."""
    name, vol = make_domain(hosts, size="8M")
    try:
        r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"),
                "--bandwidth", "1", "--timeout", "4")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "not completed in 4 s (--timeout), so aborted" in r.stderr, r.stderr
        assert_still_on_a_alone(hosts, name, vol, r)
        r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"),
                "--timeout", "0")
        assert r.returncode == 2 and "--timeout wants seconds" in r.stderr, r.stderr
    finally:
        remove_domain(hosts, name, vol)


def test_failed_live_migration_keeps_the_source_and_removes_what_it_made(hosts):
    """The destination cannot start the guest (its serial console's file
    lies in a directory only node A has: /run/libvirt is each node's own
    tmpfs), so the migration fails after poolfsctl made the disk's volume
    on B.  The guest keeps running on A with its disk untouched, and the
    volume made on B is gone."""
    only_a = f"/run/libvirt/poolfs-only-on-a-{uuidlib.uuid4().hex[:8]}"
    assert hosts.run_on("nodea", ["mkdir", "-p", only_a]).returncode == 0
    assert hosts.run_on("nodeb", ["test", "-e", only_a]).returncode != 0
    name, vol = make_domain(
        hosts, f"<serial type='file'><source path='{only_a}/console.log'/>"
               f"<target port='0'/></serial>")
    try:
        r = ctl(hosts, "live-migrate", name, "--to", hosts.uri("nodeb"), "--json")
        assert r.returncode == 1, r.stdout + r.stderr
        doc = json.loads(r.stdout)                  # the plan, then the outcome
        assert doc["ok"] is False and "failed" in doc["error"], doc
        assert f"live-migrate {name} failed:" in r.stderr, r.stderr
        assert f"{only_a}/console.log" in r.stderr, r.stderr     # the cause
        assert_still_on_a_alone(hosts, name, vol, r)
        assert not os.path.exists(os.path.join(hosts.disks_dir("nodeb"), vol))
        # The source's disk still holds what the guest had.
        path = os.path.join(hosts.disks_dir("nodea"), vol)
        r = hosts.run_on("nodea", ["qemu-io", "-U", "-r", "-f", "qcow2", "-c",
                                   "read -P 0x5c 1M 1M", path])
        assert r.returncode == 0 and "Pattern verification failed" not in \
            r.stdout, r.stdout + r.stderr
    finally:
        remove_domain(hosts, name, vol)
        hosts.run_on("nodea", ["rm", "-rf", only_a])
