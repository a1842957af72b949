"""Fixtures for the poolfs integration tests.  See tests/README.md."""

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid as uuidlib

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import helpers  # noqa: E402
from helpers import BASE_POOL, DISKS_POOL, Poolfs, Virsh  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIVATE_LIBVIRTD = os.path.join(REPO, "contrib", "private-libvirtd.sh")


class Env:
    """Everything a test needs to know about the private libvirt setup."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.libvirtd_dir = os.path.join(workdir, "libvirtd")
        self.mnt_root = os.path.join(workdir, "mnt")
        self.pools_dir = os.path.join(workdir, "pools")
        self.disks_dir = os.path.join(self.pools_dir, "disks")
        self.base_dir = os.path.join(self.pools_dir, "base")
        self.scratch = os.path.join(workdir, "scratch")
        self.logs = os.path.join(workdir, "logs")
        self.uri = None
        self.virsh = None
        self.shared_mount = False

    @property
    def libvirtd_pid(self):
        with open(os.path.join(self.libvirtd_dir, "libvirtd.pid")) as f:
            return int(f.read().strip())

    def libvirtd_alive(self):
        try:
            os.kill(self.libvirtd_pid, 0)
            return True
        except (OSError, ValueError):
            return False

    def libvirtd_fstype(self, path):
        """File system type of `path` as libvirtd's mount namespace sees it."""
        r = helpers.run(["nsenter", "-t", str(self.libvirtd_pid), "-m",
                         "findmnt", "-n", "-o", "FSTYPE", "--mountpoint", path],
                        check=False, timeout=10)
        return r.stdout.strip()


def _unmount_everything_under(root):
    for mp, _, _ in sorted(helpers.mounts(), key=lambda m: -len(m[0])):
        if mp.startswith(root + "/"):
            helpers.fusermount_u(mp, lazy=True)
            if helpers.is_mounted(mp):
                subprocess.run(["umount", "-l", mp], capture_output=True, timeout=10)


@pytest.fixture(scope="session")
def env():
    """A private libvirtd with the two Nova pools (transient dir pools).

    The mountpoints live under ENV.mnt_root, a bind mount of itself made
    shared *before* libvirtd starts, so that poolfs mounts made under it
    later propagate into libvirtd's own mount namespace (as on a compute
    host, where libvirtd and QEMU see the instances tree).
    """
    workdir = tempfile.mkdtemp(prefix="poolfs-tests-")
    os.chmod(workdir, 0o755)  # so that other users can reach allow_other mounts
    e = Env(workdir)
    for d in (e.libvirtd_dir, e.mnt_root, e.disks_dir, e.base_dir, e.scratch, e.logs):
        os.makedirs(d)
    try:
        helpers.run(["mount", "--bind", e.mnt_root, e.mnt_root], timeout=10)
        helpers.run(["mount", "--make-shared", e.mnt_root], timeout=10)
        e.shared_mount = True
        r = helpers.run([PRIVATE_LIBVIRTD, "start", e.libvirtd_dir], timeout=60, check=False)
        if r.returncode != 0:
            pytest.fail(f"could not start the private libvirtd (status {r.returncode}):\n"
                        f"{r.stderr}", pytrace=False)
        e.uri = r.stdout.strip().splitlines()[-1]
        assert e.uri.startswith("qemu:///system?socket="), e.uri
        e.virsh = Virsh(e.uri)
        e.virsh("pool-create-as", DISKS_POOL, "dir", "--target", e.disks_dir)
        e.virsh("pool-create-as", BASE_POOL, "dir", "--target", e.base_dir)
        yield e
    finally:
        # Never leave a FUSE mount behind; libvirtd goes in any case.
        _unmount_everything_under(e.mnt_root)
        subprocess.run([PRIVATE_LIBVIRTD, "stop", e.libvirtd_dir],
                       capture_output=True, timeout=60)
        if e.shared_mount:
            subprocess.run(["umount", e.mnt_root], capture_output=True, timeout=10)
            if helpers.is_mounted(e.mnt_root):
                subprocess.run(["umount", "-l", e.mnt_root], capture_output=True, timeout=10)
        stuck = [mp for mp, _, _ in helpers.mounts()
                 if mp == workdir or mp.startswith(workdir + "/")]
        if os.environ.get("POOLFS_TEST_KEEP"):
            print(f"\npoolfs tests: keeping {workdir}", file=sys.stderr)
        elif not stuck:  # never rm -rf through a live mount
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def poolfs_bin():
    path = os.environ.get("POOLFS_BIN") or os.path.join(REPO, "build", "fs", "poolfs")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"poolfs binary not found at {path}: build it with "
                    f"'meson setup build && ninja -C build' or set POOLFS_BIN",
                    pytrace=False)
    return os.path.abspath(path)


@pytest.fixture
def virsh(env):
    return env.virsh


def _clean_pool_dir(d):
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


@pytest.fixture
def clean_pools(env):
    """Both pools empty before and after the test."""
    for d in (env.disks_dir, env.base_dir):
        if os.listdir(d):
            _clean_pool_dir(d)
            env.virsh.pool_refresh(DISKS_POOL if d == env.disks_dir else BASE_POOL)
    yield
    # Nothing of poolfs is mounted any more here (fixtures that mount
    # depend on this one, so they were torn down first).
    for d in (env.disks_dir, env.base_dir):
        _clean_pool_dir(d)
    for pool in (DISKS_POOL, BASE_POOL):
        env.virsh.pool_refresh(pool)


_counter = itertools.count()


@pytest.fixture
def mountpoint_factory(env, request):
    """Fresh empty directories under the shared mount root."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]

    def make():
        p = os.path.join(env.mnt_root, f"{base}-{next(_counter)}")
        os.makedirs(p)
        return p
    return make


@pytest.fixture
def poolfs_factory(poolfs_bin, env, clean_pools, mountpoint_factory, request):
    """start(options=(), mountpoint=None) -> a mounted Poolfs.

    Every instance is unmounted after the test; the test fails if unmounting
    did not go cleanly (fusermount3 -u, exit status 0, nothing left mounted)
    or if poolfs printed error/warning lines the test did not declare with
    Poolfs.expect_stderr(regex).
    """
    started = []

    def start(options=(), mountpoint=None, uri=None):
        mnt = mountpoint or mountpoint_factory()
        name = f"{os.path.basename(mnt)}"
        p = Poolfs(poolfs_bin, uri or env.uri, mnt, options, logdir=env.logs,
                   name=name)
        started.append(p)
        p.start()
        return p

    yield start
    problems = []
    for p in started:
        for prob in p.stop():
            problems.append(f"[{p.mnt}] {prob}")
    if problems:
        pytest.fail("poolfs teardown problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def poolfs(poolfs_factory):
    """poolfs mounted with default options (io=auto, refresh=2, default pools)."""
    return poolfs_factory()


@pytest.fixture
def mnt(poolfs):
    return poolfs.mnt


@pytest.fixture
def uuid():
    return str(uuidlib.uuid4())


@pytest.fixture(scope="session")
def random_64m(env):
    """Path of a 64 MiB file of random bytes (made once per session)."""
    path = os.path.join(env.scratch, "random-64m")
    with open(path, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(helpers.MiB))
    return path


# ------------------------------------------- a second node (migration)


class Node:
    def __init__(self, root):
        self.root = root
        self.lv = os.path.join(root, "libvirtd")
        self.disks = os.path.join(root, "disks")
        self.base = os.path.join(root, "base")
        self.uri = None

    def start(self):
        os.makedirs(self.disks, exist_ok=True)
        os.makedirs(self.base, exist_ok=True)
        r = helpers.run([PRIVATE_LIBVIRTD, "start", self.lv], timeout=60)
        self.uri = r.stdout.strip().splitlines()[-1]
        self.virsh = Virsh(self.uri)
        self.virsh("pool-create-as", DISKS_POOL, "dir", "--target", self.disks)
        self.virsh("pool-create-as", BASE_POOL, "dir", "--target", self.base)

    def stop(self):
        subprocess.run([PRIVATE_LIBVIRTD, "stop", self.lv], capture_output=True,
                       timeout=60)

    @property
    def pid(self):
        with open(os.path.join(self.lv, "libvirtd.pid")) as f:
            return int(f.read())

    def clean(self):
        for d in (self.disks, self.base):
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
        self.virsh.pool_refresh(DISKS_POOL)
        self.virsh.pool_refresh(BASE_POOL)


@contextlib.contextmanager
def private_node(prefix):
    """A Node of its own in a new temporary directory, stopped and removed
    afterwards, also on failure."""
    root = tempfile.mkdtemp(prefix=prefix)
    node = Node(root)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def node_b():
    with private_node("poolfs-nodeb-") as node:
        yield node


@pytest.fixture
def nodes(env, clean_pools, node_b):
    """(node A, node B), both pools empty on both."""
    a = Node(env.workdir)
    a.disks, a.base, a.uri, a.virsh = env.disks_dir, env.base_dir, env.uri, env.virsh
    a.lv = env.libvirtd_dir
    node_b.clean()
    yield a, node_b
    node_b.clean()


@pytest.fixture(scope="session")
def poolfsctl():
    path = os.environ.get("POOLFSCTL_BIN") or os.path.join(
        REPO, "build", "migrate", "poolfsctl")
    assert os.access(path, os.X_OK), f"poolfsctl not built at {path}"
    return path




@pytest.fixture(scope="module")
def hosts():
    """Two TLS test hosts (tlshosts.TwoHosts) for a module's tests."""
    from tlshosts import TwoHosts, Unavailable
    try:
        h = TwoHosts().start()
    except Unavailable as e:
        pytest.skip(f"cannot make the two TLS test hosts here: {e}")
    try:
        yield h
    finally:
        problems = h.close()
    assert not problems, "TwoHosts teardown: " + "; ".join(problems)


@pytest.fixture
def small_pool(env, virsh):
    """A disks pool on an 8 MiB tmpfs of its own: it fills up.  Under the
    shared mount root, so that libvirtd sees the tmpfs too."""
    target = os.path.join(env.mnt_root, "small-disks")
    try:
        os.makedirs(target, exist_ok=True)
        helpers.run(["mount", "-t", "tmpfs", "-o", "size=8m", "poolfs-test",
                     target])
        virsh("pool-create-as", "small-disks", "dir", "--target", target)
        yield "small-disks", target
    finally:
        # List this fixture before poolfs_factory: it goes after the mounts.
        virsh("pool-destroy", "small-disks", check=False)
        if helpers.is_mounted(target):
            helpers.run(["umount", target], check=False)
        if not helpers.is_mounted(target):
            shutil.rmtree(target, ignore_errors=True)
