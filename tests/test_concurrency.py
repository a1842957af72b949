"""Concurrent I/O, and pool refreshes while the mount is busy (scenarios 9, 10)."""

import hashlib
import os
import random
import subprocess
import threading
import time

import pytest

from helpers import (BASE_POOL, DISKS_POOL, MiB, have, read_file, run, write_file)

JOIN_TIMEOUT = 60


def read_head(path, n=4096):
    with open(path, "rb") as f:
        return f.read(n)


def run_threads(targets):
    """Run callables in threads; re-raise the first failure; bounded."""
    errors = []

    def wrap(fn):
        def inner():
            try:
                fn()
            except BaseException as e:  # noqa: B902 - report everything
                errors.append(e)
        return inner
    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    assert not stuck, f"{stuck} I/O threads still blocked after {JOIN_TIMEOUT}s"
    if errors:
        raise errors[0]


def test_parallel_writers_on_different_files(mnt, env, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    size, chunk = 8 * MiB, 128 * 1024
    payload = {f"t{i}": os.urandom(size) for i in range(4)}

    def writer_reader(name):
        def go():
            p = os.path.join(d, name)
            fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                # Scattered order so the writes do not just append.
                offs = list(range(0, size, chunk))
                random.Random(name).shuffle(offs)
                for off in offs:
                    assert os.pwrite(fd, payload[name][off:off + chunk], off) == chunk
                for off in range(0, size, chunk):
                    assert os.pread(fd, chunk, off) == payload[name][off:off + chunk], \
                        f"{name} at {off}"
            finally:
                os.close(fd)
            assert read_file(p) == payload[name], name
        return go

    # Plus separate processes copying files in at the same time.
    srcs = []
    for i in range(2):
        s = os.path.join(env.scratch, f"{uuid}-p{i}")
        write_file(s, os.urandom(6 * MiB))
        srcs.append(s)
    procs = [subprocess.Popen(["cp", s, os.path.join(d, f"p{i}")])
             for i, s in enumerate(srcs)]
    try:
        run_threads([writer_reader(n) for n in payload])
        for pr in procs:
            assert pr.wait(timeout=JOIN_TIMEOUT) == 0
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
    for i, s in enumerate(srcs):
        assert hashlib.sha256(read_file(os.path.join(d, f"p{i}"))).digest() == \
            hashlib.sha256(read_file(s)).digest()
        os.unlink(s)
    assert sorted(os.listdir(d)) == sorted(list(payload) + ["p0", "p1"])


def test_readers_and_one_writer_on_same_file(mnt, uuid):
    d = os.path.join(mnt, uuid)
    os.mkdir(d)
    p = os.path.join(d, "disk")
    half = 8 * MiB
    fixed = os.urandom(half)
    write_file(p, fixed + bytes(half))
    chunk = 64 * 1024
    rounds = [os.urandom(half) for _ in range(2)]
    done = threading.Event()

    def writer():
        try:
            fd = os.open(p, os.O_WRONLY)
            try:
                for data in rounds:
                    for off in range(0, half, chunk):
                        os.pwrite(fd, data[off:off + chunk], half + off)
            finally:
                os.close(fd)
        finally:
            done.set()

    def reader(seed):
        def go():
            rnd = random.Random(seed)
            fd = os.open(p, os.O_RDONLY)
            try:
                n = 0
                while not done.is_set() or n < 20:
                    off = rnd.randrange(0, half // chunk) * chunk
                    assert os.pread(fd, chunk, off) == fixed[off:off + chunk], \
                        f"reader {seed}: bytes at {off} changed under a concurrent writer"
                    n += 1
                    if n > 20000:
                        break
            finally:
                os.close(fd)
        return go

    run_threads([writer] + [reader(i) for i in range(3)])
    assert read_file(p) == fixed + rounds[-1]


REFRESH_BOUND = 20
STALL_BOUND = 5


def refresh(virsh, pool, what):
    """virsh pool-refresh, bounded.  True if it refreshed.

    libvirt refuses (at once) to refresh a pool while one of its volumes has
    an asynchronous job (a volume being created, an upload or download in
    progress); with the mount this busy that happens, and is no hang: try
    again a few times, then report "not refreshed".
    """
    for _ in range(20):
        r = virsh("pool-refresh", pool, check=False, timeout=REFRESH_BOUND)
        if r.returncode == 0:
            return True
        assert "asynchronous jobs running" in r.stderr, \
            f"{what}: virsh pool-refresh {pool} failed: {r.stderr}"
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not have("qemu-img"), reason="needs qemu-img (qemu-utils)")
def test_pool_refresh_while_busy_does_not_hang(poolfs, env, virsh, uuid):
    mnt = poolfs.mnt
    # poolfs's own pool refreshes can meet the same refusal (see refresh()).
    poolfs.expect_stderr(r"has asynchronous jobs running")
    # libvirtd must see the mount, or refreshing would not go through poolfs.
    assert env.libvirtd_fstype(mnt).startswith("fuse"), \
        "libvirtd's mount namespace does not see the poolfs mount"

    base = os.path.join(mnt, "_base", "base.raw")
    run(["qemu-img", "create", "-f", "raw", base, "16M"])
    overlay = os.path.join(mnt, "_base", "overlay.qcow2")
    run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw", overlay, "1G"])
    os.mkdir(os.path.join(mnt, uuid))
    disk = os.path.join(mnt, uuid, "disk")
    run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "raw", disk, "1G"])
    work = os.path.join(mnt, f"{uuid}_work")
    os.mkdir(work)
    for i in range(8):
        write_file(os.path.join(work, f"f{i}"), os.urandom(64 * 1024))

    stop = threading.Event()
    progress = [0]
    done_at = []   # monotonic times at which a hammer iteration completed
    errors = []

    def hammer(seed):
        rnd = random.Random(seed)
        tmp = os.path.join(work, f"tmp-{seed}")
        new = os.path.join(work, f"new-{seed}")
        steps = [
            ("stat disk", lambda: os.stat(disk)),
            ("read base", lambda: os.pread(fds[0], 4096, rnd.randrange(16) * MiB)),
            ("read disk", lambda: read_head(disk)),
            ("listdir", lambda: os.listdir(work)),
            ("create tmp", lambda: write_file(tmp, b"x" * 4096)),
            ("rename tmp->new", lambda: os.rename(tmp, new)),
            ("stat new", lambda: os.stat(new)),
            ("unlink new", lambda: os.unlink(new)),
            ("stat f", lambda: os.stat(os.path.join(work, f"f{rnd.randrange(8)}"))),
        ]
        fds = [os.open(base, os.O_RDONLY)]
        try:
            while not stop.is_set():
                for what, step in steps:
                    try:
                        step()
                    except OSError as e:
                        errors.append(f"thread {seed}: {what}: {e}")
                        return
                progress[0] += 1
                done_at.append(time.monotonic())
        finally:
            os.close(fds[0])

    threads = [threading.Thread(target=hammer, args=(s,), daemon=True) for s in range(4)]
    for t in threads:
        t.start()
    done = {DISKS_POOL: 0, BASE_POOL: 0}
    took = []
    t_start = time.monotonic()
    try:
        for rnd in range(5):
            for pool in (DISKS_POOL, BASE_POOL):
                t0 = time.monotonic()
                if refresh(virsh, pool, f"round {rnd}"):
                    done[pool] += 1
                took.append(round(time.monotonic() - t0, 2))
                # The mount answers a fresh process promptly.
                run(["stat", "-c", "%s", disk], timeout=10)
                assert not errors, f"hammer threads failed: {errors}"
                time.sleep(0.1)
    finally:
        stop.set()
        t_end = time.monotonic()
        for t in threads:
            t.join(20)
    assert not any(t.is_alive() for t in threads), "hammer threads stuck on the mount"
    assert not errors, f"hammer threads failed: {errors}"
    assert progress[0] > 10, progress
    assert all(done.values()), f"no pool-refresh got through while busy: {done}"
    # No long stall: the longest time in which no hammer thread got through
    # an iteration stays well under the hang bound.
    marks = [t_start] + sorted(x for x in done_at if x <= t_end) + [t_end]
    stall = max(b - a for a, b in zip(marks, marks[1:]))
    print(f"refresh times {took}, {progress[0]} iterations, longest stall {stall:.2f}s")
    assert stall < STALL_BOUND, (f"the mount stalled for {stall:.1f}s while pools were "
                                 f"refreshed (refresh times {took})")

    # libvirtd did read the chain through the mount.
    xml = virsh.vol_xml(BASE_POOL, "overlay.qcow2")
    assert f"<path>{base}</path>" in xml, xml
    assert "overlay.qcow2" in virsh.vol_list(BASE_POOL)
    assert f"{uuid}_disk" in virsh.vol_list(DISKS_POOL)


def test_creates_racing_a_directory_rename_land_on_one_side(mnt, env, virsh):
    """Nova's resize renames {uuid} to {uuid}_resize while other code may
    still write into it.  A file made during the rename lands before it
    (and moves along) or fails with ENOENT after it: never a volume that
    keeps the old directory's name, which would bring {uuid}/ back with a
    stray file in it."""
    import errno
    import uuid as uuidlib
    from helpers import SEEN_WITHIN, wait_for
    NFILES, CREATORS = 400, 4
    for round_ in range(6):
        u = str(uuidlib.uuid4())
        src, dst = os.path.join(mnt, u), os.path.join(mnt, u + "_resize")
        # Many files, so that the rename takes a while: made in the pool's
        # directory (quicker than through the mount), then seen.
        for i in range(NFILES):
            write_file(os.path.join(env.disks_dir, f"{u}_disk.eph{i}"), b"e")
        write_file(os.path.join(env.disks_dir, f"{u}_"), b"")
        virsh.pool_refresh(DISKS_POOL)
        wait_for(lambda: os.path.isdir(src) and len(os.listdir(src)) == NFILES,
                 SEEN_WITHIN, "the files to be seen")
        made = []
        go = threading.Barrier(CREATORS + 1, timeout=10)

        def creator(k):
            go.wait()
            for i in range(10000):          # bounded; ends at ENOENT
                name = f"console.log.{k}.{i}"
                try:
                    with open(os.path.join(src, name), "wb") as f:
                        f.write(b"x")
                except OSError as e:
                    assert e.errno == errno.ENOENT, e
                    return
                made.append(name)
            raise AssertionError("the rename never happened")

        def renamer():
            go.wait()
            time.sleep(0.005 * (round_ % 4))
            os.rename(src, dst)
        run_threads([lambda k=k: creator(k) for k in range(CREATORS)] +
                    [renamer])
        assert not os.path.exists(src), os.listdir(src)
        there = set(os.listdir(dst))
        assert set(made) <= there, sorted(set(made) - there)
        vols = virsh.vol_list(DISKS_POOL)
        # {uuid}_resize/ is the volumes u%5Fresize_*; u_* are {uuid}/'s.
        stray = [v for v in vols if v.startswith(u + "_")]
        assert not stray, stray
        assert len([v for v in vols if v.startswith(u + "%5Fresize_")]) == \
            NFILES + len(made) + 1, "the files and the directory's marker"
