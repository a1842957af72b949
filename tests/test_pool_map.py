"""Per-type pools (-o pool_map): files of some names live in pools of their
own, and the tree looks the same."""

import os
import shutil

import pytest

from helpers import DISKS_POOL, read_file, write_file

SWAP, EPH = "nova-swap-pool", "nova-ephemeral-pool"


@pytest.fixture
def extra_pools(env, virsh):
    dirs = {}
    for name in (SWAP, EPH):
        d = os.path.join(env.pools_dir, name)
        os.makedirs(d, exist_ok=True)
        virsh("pool-create-as", name, "dir", "--target", d)
        dirs[name] = d
    yield dirs
    for name, d in dirs.items():
        virsh("pool-destroy", name, check=False)
        shutil.rmtree(d, ignore_errors=True)


def test_pool_map_puts_files_in_their_pools(poolfs_factory, virsh, uuid,
                                            extra_pools):
    p = poolfs_factory([f"pool_map=disk.swap:{SWAP},disk.local:{EPH}"])
    mnt = p.mnt
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    data = {n: os.urandom(4096) for n in ("disk", "disk.swap", "disk.local")}
    for n, b in data.items():
        write_file(os.path.join(d, n), b)

    assert sorted(os.listdir(d)) == sorted(data)
    assert f"{uuid}_disk" in virsh.vol_list(DISKS_POOL)
    assert virsh.vol_list(SWAP) == {f"{uuid}_disk.swap"}
    assert virsh.vol_list(EPH) == {f"{uuid}_disk.local"}

    # Resize renames the directory: each volume moves within its pool.
    os.rename(d, d + "_resize")
    for n, b in data.items():
        assert read_file(os.path.join(d + "_resize", n)) == b, n
    assert virsh.vol_list(SWAP) == {f"{uuid}%5Fresize_disk.swap"}
    assert virsh.vol_list(EPH) == {f"{uuid}%5Fresize_disk.local"}

    shutil.rmtree(d + "_resize")
    assert virsh.vol_list(SWAP) == set() and virsh.vol_list(EPH) == set()
    assert not [v for v in virsh.vol_list(DISKS_POOL) if v.startswith(uuid)]


def test_a_stopped_pool_does_not_freeze_the_others(poolfs_factory, virsh,
                                                   uuid, extra_pools):
    """A pool of the mount that stops (here a pool_map pool) cannot be
    listed: its part of the view is kept, and the other pools' changes
    keep showing (the whole view used to freeze until it came back)."""
    from helpers import SEEN_WITHIN, wait_for
    p = poolfs_factory([f"pool_map=disk.swap:{SWAP}"])
    p.expect_stderr(rf"cannot list the volumes of storage pool '{SWAP}'|"
                    rf"storage pool '{SWAP}' was stopped")
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    write_file(os.path.join(d, "disk.swap"), b"swap")
    virsh("pool-destroy", SWAP)
    virsh.vol_create_as(DISKS_POOL, f"{uuid}_disk.info", "4K", "raw")
    wait_for(lambda: os.path.exists(os.path.join(d, "disk.info")),
             SEEN_WITHIN, "a volume of the disks pool to show")
    assert sorted(os.listdir(d)) == ["disk.info", "disk.swap"]
    virsh.vol_delete(DISKS_POOL, f"{uuid}_disk.info")
    wait_for(lambda: not os.path.exists(os.path.join(d, "disk.info")),
             SEEN_WITHIN, "a volume deleted from the disks pool to go")


def test_transition_follows_the_mounts_pool_map(poolfs_factory, virsh, uuid,
                                                extra_pools, env, poolfsctl):
    """poolfsctl transition asks the mount for its pools and -o pool_map:
    disk.local, in its own pool, becomes a volume of that pool (with the
    disks pool alone it was refused as 'adopt first')."""
    import json
    from helpers import run
    p = poolfs_factory([f"pool_map=disk.swap:{SWAP},disk.local:{EPH}"])
    d = os.path.join(p.mnt, uuid)
    os.mkdir(d)
    for n in ("disk", "disk.local"):
        write_file(os.path.join(d, n), bytes(4096))
    name = f"instance-{uuid[:8]}"
    xml = os.path.join(env.scratch, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(f"""<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
<memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>
<devices>
<disk type='file' device='disk'><driver name='qemu' type='raw'/>
<source file='{d}/disk'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='raw'/>
<source file='{d}/disk.local'/><target dev='vdb' bus='virtio'/></disk>
</devices></domain>""")
    virsh("define", xml)
    try:
        r = run([poolfsctl, "-c", env.uri, "--json", "transition", "--mount",
                 p.mnt, "--dry-run", name], check=False)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)["xml"]
        assert f'pool="{DISKS_POOL}" volume="{uuid}_disk"' in out, out
        assert f'pool="{EPH}" volume="{uuid}_disk.local"' in out, out
    finally:
        virsh("undefine", name, check=False)


def test_pool_map_refuses_nonsense(poolfs_bin, env, mountpoint_factory):
    from helpers import run
    mnt = mountpoint_factory()
    r = run([poolfs_bin, "-f", "-o", "pool_map=disk.swap", env.uri, mnt],
            check=False)
    assert r.returncode != 0 and "pool_map" in r.stderr, r.stderr
    r = run([poolfs_bin, "-f", "-o", "pool_map=disk.swap:no-such-pool", env.uri,
             mnt], check=False)
    assert r.returncode == 1 and "no-such-pool" in r.stderr, r.stderr
