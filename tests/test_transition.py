"""`poolfsctl transition`: a domain defined on files under the mount is
redefined on the pool volumes (<disk type='volume'>), and QEMU then opens
the volume itself, not through FUSE."""

import os

import pytest

from helpers import DISKS_POOL, have, run

pytestmark = pytest.mark.skipif(
    not (have("qemu-system-x86_64") and have("qemu-img") and have("qemu-io")),
    reason="needs qemu-system-x86 and qemu-utils")

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{other}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
  </devices>
</domain>
"""


@pytest.fixture
def domain(virsh, env, uuid):
    name = f"instance-{uuid[:8]}"
    yield name
    virsh("destroy", name, check=False)
    virsh("undefine", name, check=False)


def define(virsh, env, name, uuid, disk):
    path = os.path.join(env.scratch, f"{name}.xml")
    other = os.path.join(env.scratch, f"{name}.iso")  # not under the mount
    with open(other, "wb") as f:
        f.truncate(1 << 20)
    with open(path, "w") as f:
        f.write(DOMAIN.format(name=name, uuid=uuid, disk=disk, other=other))
    virsh("define", path)


def test_transition_then_boot_on_the_volume(poolfs, env, virsh, poolfsctl,
                                            uuid, domain):
    mnt = poolfs.mnt
    base = os.path.join(mnt, "_base", "img")
    run(["qemu-img", "create", "-f", "raw", base, "64M"])
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 1M", base])
    os.mkdir(os.path.join(mnt, uuid))
    disk = os.path.join(mnt, uuid, "disk")
    run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw", disk, "1G"])
    run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x77 2M 64k", disk])
    define(virsh, env, domain, uuid, disk)

    r = run([poolfsctl, "-c", env.uri, "transition", "--mount", mnt,
             "--dry-run", domain])
    assert f'-      <source file="{disk}"/>' in r.stdout, r.stdout
    assert (f'+      <source pool="{DISKS_POOL}" volume="{uuid}_disk"/>'
            in r.stdout), r.stdout
    assert ".iso" not in r.stdout           # the rest is left alone
    assert "type='file'" in virsh("dumpxml", "--inactive", domain).stdout

    r = run([poolfsctl, "-c", env.uri, "transition", "--mount", mnt, domain])
    assert r.stdout.startswith(f"transitioned {domain}: 1 disk"), r.stdout
    xml = virsh("dumpxml", "--inactive", domain).stdout
    assert f"<source pool='{DISKS_POOL}' volume='{uuid}_disk'/>" in xml, xml
    assert ".iso'/>" in xml

    # Booted, QEMU opens the pool volume itself; its backing file stays
    # the base image through the mount.
    virsh("start", domain, timeout=60)
    info = virsh("qemu-monitor-command", "--hmp", domain, "info block").stdout
    assert os.path.join(env.disks_dir, f"{uuid}_disk") in info, info
    assert f"Backing file:     {base}" in info, info
    virsh("destroy", domain)
    r = run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x77 2M 64k",
             "-c", "read -P 0x5a 0 1M", disk])
    assert "Pattern verification failed" not in r.stdout


def test_transition_refuses_a_disk_not_in_the_pool(poolfs, env, virsh,
                                                   poolfsctl, uuid, domain):
    missing = os.path.join(poolfs.mnt, uuid, "disk")
    define(virsh, env, domain, uuid, missing)
    r = run([poolfsctl, "-c", env.uri, "transition", "--mount", poolfs.mnt,
             domain], check=False)
    assert r.returncode == 1
    assert f"volume '{uuid}_disk' is not in pool" in r.stderr, r.stderr
    assert "type='file'" in virsh("dumpxml", "--inactive", domain).stdout
