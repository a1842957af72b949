"""`ls -l` of a tree with 1,000 instances costs no libvirt round trip per
file: it is served from poolfs's catalog and local stat() calls.  Proven
the hard way: libvirtd is frozen (SIGSTOP) while `ls -lR` runs, so any
libvirt call in a lookup, getattr or readdir would hang it."""

import os
import signal
import subprocess
import uuid as uuidlib

import libvirt
import pytest

from helpers import DISKS_POOL, SEEN_WITHIN, wait_for

INSTANCES = 1000
FILES = ("disk", "disk.info")


def test_ls_of_1000_instances_needs_no_libvirtd(env, poolfs, virsh):
    conn = libvirt.open(env.uri)
    try:
        pool = conn.storagePoolLookupByName(DISKS_POOL)
        uuids = [str(uuidlib.uuid4()) for _ in range(INSTANCES)]
        for u in uuids:
            for name in FILES:
                pool.createXML(
                    f"<volume><name>{u}_{name}</name>"
                    f"<capacity unit='bytes'>4096</capacity>"
                    f"<target><format type='raw'/></target></volume>", 0)
    finally:
        conn.close()
    mnt = poolfs.mnt
    wait_for(lambda: len(os.listdir(mnt)) >= INSTANCES, SEEN_WITHIN + 10,
             "the 1,000 instances to show up")

    pid = env.libvirtd_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        r = subprocess.run(["ls", "-lR", mnt], capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("ls -lR hung while libvirtd was stopped: a lookup, "
                    "getattr or readdir waited on libvirt")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.returncode == 0, r.stderr
    files = [line for line in r.stdout.splitlines() if line.startswith("-")]
    assert len(files) == INSTANCES * len(FILES)
    for u in uuids[:5]:
        assert sorted(os.listdir(os.path.join(mnt, u))) == sorted(FILES)
        assert os.stat(os.path.join(mnt, u, "disk")).st_size == 4096
