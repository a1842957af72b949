"""qcow2 overlays on _base images through the mount (scenario 3)."""

import json
import os
import re

import pytest

from helpers import BASE_POOL, DISKS_POOL, GiB, MiB, have, run

pytestmark = pytest.mark.skipif(not (have("qemu-img") and have("qemu-io")),
                                reason="needs qemu-img and qemu-io (qemu-utils)")

BASE_NAME = "3b1f0c9a6e2d4f8b7a5c1e0d9f8a7b6c5d4e3f21"


def qemu_io(fmt, path, *cmds, timeout=60):
    argv = ["qemu-io", "-f", fmt]
    for c in cmds:
        argv += ["-c", c]
    r = run(argv + [path], timeout=timeout, check=False)
    assert r.returncode == 0, f"{argv} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    out = r.stdout + r.stderr
    assert "Pattern verification failed" not in out, f"{cmds}:\n{out}"
    assert "failed" not in out.lower(), f"{cmds}:\n{out}"
    return out


def vol_xml_field(xml, tag):
    m = re.search(rf"<{tag} unit='bytes'>(\d+)</{tag}>", xml)
    assert m, f"no <{tag}> in\n{xml}"
    return int(m.group(1))


def test_qcow2_overlay_on_base_image(mnt, virsh, uuid):
    base = os.path.join(mnt, "_base", BASE_NAME)
    run(["qemu-img", "create", "-f", "raw", base, "64M"])
    qemu_io("raw", base, "write -P 0x5a 0 1M", "write -P 0x3c 32M 1M")
    assert os.path.getsize(base) == 64 * MiB
    assert BASE_NAME in virsh.vol_list(BASE_POOL)

    os.mkdir(os.path.join(mnt, uuid))
    disk = os.path.join(mnt, uuid, "disk")
    run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw", disk, "8G"])
    run(["qemu-img", "check", disk])

    chain = json.loads(run(["qemu-img", "info", "--backing-chain", "--output=json",
                            disk]).stdout)
    assert len(chain) == 2, chain
    assert chain[0]["format"] == "qcow2"
    assert chain[0]["virtual-size"] == 8 * GiB
    assert chain[0]["backing-filename"] == base
    assert chain[1]["filename"] == base
    assert chain[1]["format"] == "raw"
    human = run(["qemu-img", "info", "--backing-chain", disk]).stdout
    assert f"backing file: {base}" in human, human

    qemu_io("qcow2", disk, "write -P 0xab 5G 1M")
    qemu_io("qcow2", disk, "read -P 0xab 5G 1M", "read -P 0x5a 0 1M",
            "read -P 0x3c 32M 1M", "read -P 0 1M 1M")
    run(["qemu-img", "check", disk])

    st = os.stat(disk)
    assert st.st_size < 32 * MiB, f"st_size {st.st_size} is not the qcow2 container size"
    vol = f"{uuid}_disk"
    assert vol in virsh.vol_list(DISKS_POOL)
    # The backing volume is a local file: its length is what st_size must be.
    assert st.st_size == os.path.getsize(virsh.vol_path(DISKS_POOL, vol))
    xml = virsh.vol_xml(DISKS_POOL, vol)
    assert vol_xml_field(xml, "physical") == st.st_size, xml
    assert "<format type='qcow2'/>" in xml, (
        "libvirt still thinks the volume is not qcow2 (poolfs did not make libvirt "
        "re-probe the volume after it was written):\n" + xml)

    # The base image is untouched by writes to the overlay.
    qemu_io("raw", base, "read -P 0x5a 0 1M", "read -P 0x3c 32M 1M", "read -P 0 5M 1M")


def test_qemu_img_convert_into_mount(mnt, uuid, env):
    """Nova's image cache: fetch to _base as .part, convert, rename."""
    src = os.path.join(env.scratch, f"{uuid}.qcow2")
    run(["qemu-img", "create", "-f", "qcow2", src, "32M"])
    qemu_io("qcow2", src, "write -P 0x11 4M 2M")
    part = os.path.join(mnt, "_base", f"{BASE_NAME}.part")
    conv = os.path.join(mnt, "_base", f"{BASE_NAME}.converted")
    run(["cp", src, part])
    run(["qemu-img", "convert", "-O", "raw", "-f", "qcow2", part, conv])
    os.unlink(part)
    final = os.path.join(mnt, "_base", BASE_NAME)
    os.rename(conv, final)
    assert os.listdir(os.path.join(mnt, "_base")) == [BASE_NAME]
    assert os.path.getsize(final) == 32 * MiB
    qemu_io("raw", final, "read -P 0x11 4M 2M", "read -P 0 0 4M")
    run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", src, final])
