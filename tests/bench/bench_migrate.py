#!/usr/bin/python3
"""The engine of tests/bench/bench_migrate.sh: run that script, not this file
(it takes the benchmark lock, installs what is missing and builds first).

Moves one image from node A's disks pool to node B's (two test hosts of
tests/tlshosts.py: network namespaces joined by a veth, a TLS libvirtd each)
with every method below, --runs times each, interleaved, and prints a
markdown report.  See the comment at the top of bench_migrate.sh for the
methodology.

    bench_migrate.py [--quick] [--runs N] [--keep] [-o FILE]
                     [--methods LIST] [--images LIST] [--workdir DIR]
    bench_migrate.py send-extents FILE    (used by the link limits: writes
                     the allocated extents of FILE, data only, to stdout)
"""

import argparse
import errno
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

POOLFS = os.environ.get("POOLFS", os.path.join(REPO, "build", "fs", "poolfs"))
POOLFSCTL = os.environ.get("POOLFSCTL", os.path.join(REPO, "build", "migrate", "poolfsctl"))
PYTHON = "/usr/bin/python3"
SELF = os.path.abspath(__file__)

A, B = "nodea", "nodeb"
SSH_PORT = 2222
TCP_PORT = 17001
TLS_PORT = 17002
SOCAT_BUF = 256 * KiB          # socat -b: its read/write size
UNIT = 64 * KiB                # extents are multiples of this (a qcow2 cluster)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench_migrate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------- send-extents

def send_extents(path):
    """Write the data extents of PATH (SEEK_DATA/SEEK_HOLE) to stdout with
    sendfile(2) (no copy through user space); print the byte count on
    stderr.  What the link limits send: the allocated bytes, data only."""
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    out = sys.stdout.fileno()
    off = sent = 0
    while off < size:                       # off strictly grows: bounded
        try:
            data = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:      # only a hole is left
                break
            raise
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        pos = data
        while pos < hole:
            n = os.sendfile(out, fd, pos, min(hole - pos, 64 * MiB))
            if n <= 0:
                raise OSError(f"sendfile returned {n} at {pos}")
            pos += n
        sent += hole - data
        off = hole
    print(sent, file=sys.stderr)
    return 0


def data_extents(path):
    """[(offset, length)] of the allocated data of PATH."""
    ext = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            ext.append((data, hole - data))
            off = hole
    finally:
        os.close(fd)
    return ext


# --------------------------------------------------------------- the images

def make_layout(virt, data, seed):
    """Extents (offset, length) holding `data` bytes scattered over `virt`:
    one extent per slot of equal size, a random length (64 KiB multiples,
    mean 3 MiB) at a random place in its slot; the first extent at 0 (a
    boot sector's place), the last 16 MiB always a hole (a trailing hole)."""
    rng = random.Random(seed)
    n = max(8, data // (3 * MiB))
    span = virt - 16 * MiB
    slot_units = span // n // UNIT
    total_units = data // UNIT
    assert slot_units * n > total_units * 1.2, "image too small for its data"
    w = [rng.uniform(0.05, 1.95) for _ in range(n)]
    scale = total_units / sum(w)
    maxlen = slot_units - 1
    lens = [min(maxlen, max(1, round(x * scale))) for x in w]
    diff = total_units - sum(lens)
    for _ in range(100 * n):                # bounded fix-up of the rounding
        if diff == 0:
            break
        i = rng.randrange(n)
        if diff > 0 and lens[i] < maxlen:
            lens[i] += 1
            diff -= 1
        elif diff < 0 and lens[i] > 1:
            lens[i] -= 1
            diff += 1
    assert diff == 0, "could not lay out the data"
    ext = []
    for i, ln in enumerate(lens):
        start = i * slot_units
        place = 0 if i == 0 else rng.randrange(0, slot_units - ln + 1)
        ext.append(((start + place) * UNIT, ln * UNIT))
    return ext


def zero_extents(layout, count, size):
    """`count` extents of `size` bytes in the gaps after data extents, spread
    over the image (for the raw image's allocated zeros)."""
    out = []
    step = max(1, len(layout) // count)
    for i in range(0, len(layout) - 1, step):
        end = layout[i][0] + layout[i][1]
        nxt = layout[i + 1][0]
        if nxt - end >= size + 2 * UNIT:
            out.append((end + UNIT, size))
        if len(out) == count:
            break
    return out


def make_raw(path, virt, layout, zeros):
    with open(path, "wb") as f:
        f.truncate(virt)
        for off, ln in layout:
            done = 0
            while done < ln:
                n = min(8 * MiB, ln - done)
                f.seek(off + done)
                f.write(os.urandom(n))
                done += n
        for off, ln in zeros:
            f.seek(off)
            f.write(bytes(ln))              # written zeros: allocated
        f.flush()
        os.fsync(f.fileno())


def make_qcow2(path, virt, layout):
    run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(virt)], timeout=60)
    # qemu-io's `write -s FILE` fills its buffer from FILE: from
    # /dev/urandom, each write gets fresh random data (incompressible, so
    # rsync --compress / scp -C cannot shrink it).
    for i in range(0, len(layout), 128):
        argv = ["qemu-io", "-f", "qcow2"]
        for off, ln in layout[i:i + 128]:
            argv += ["-c", f"write -q -s /dev/urandom {off} {ln}"]
        run(argv + [path], timeout=600)
    run(["sync", path], timeout=600)


# --------------------------------------------------------------- processes

def env_c():
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    env.pop("LIBVIRT_DEFAULT_URI", None)
    return env


def run(argv, timeout, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=env_c(), **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()[-2000:]}")
    return p


def proc_cpu(pid):
    """utime+stime+cutime+cstime of pid in seconds (children: the ones it
    has reaped), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in rest[11:15]) / CLK_TCK


def proc_written(pid):
    """write_bytes of /proc/PID/io: bytes the process (and the children it
    reaped) dirtied in files, or None."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == pid:
            kids.append(int(entry))
    return kids


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class HwmSampler(threading.Thread):
    """VmHWM of watched processes every 0.05 s; keeps the maximum per label.
    (Not ru_maxrss from wait4: that also holds the peak of the mm the child
    had before exec, i.e. this Python process's, shared through vfork.)"""

    def __init__(self):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.watch = {}         # pid -> label
        self.max = {}           # label -> KiB
        self.stop = threading.Event()

    def add(self, pid, label):
        with self.lock:
            self.watch[pid] = label
        self.sample_one(pid, label)

    def remove(self, pid):
        with self.lock:
            label = self.watch.pop(pid, None)
        if label:
            self.sample_one(pid, label)

    def note(self, label, kib):
        if kib:
            with self.lock:
                self.max[label] = max(self.max.get(label, 0), kib)

    def sample_one(self, pid, label):
        self.note(label, vm_hwm_kib(pid))

    def run(self):
        while not self.stop.wait(0.05):
            with self.lock:
                items = list(self.watch.items())
            for pid, label in items:
                self.sample_one(pid, label)


class Client:
    """A timed client command on a node, in its own process group; wait()
    returns its exit status, wall time and the rusage of its whole tree
    (wait4: the process and every descendant it reaped)."""

    def __init__(self, hosts, node, argv, logdir, name, timeout):
        self.out = open(os.path.join(logdir, f"{name}.out"), "w+")
        self.err = open(os.path.join(logdir, f"{name}.err"), "w+")
        self.timeout = timeout
        self.timed_out = False
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(hosts.nsenter_argv(node) + list(argv), stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.err, env=env_c(),
                                  cwd=logdir, start_new_session=True)
        self.pid = self.p.pid

    def _kill(self):
        self.timed_out = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self):
        timer = threading.Timer(self.timeout, self._kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, ru = os.wait4(self.pid, 0)
        finally:
            timer.cancel()
        self.wall = time.monotonic() - self.t0
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.rc = self.p.returncode
        self.cpu = ru.ru_utime + ru.ru_stime
        for f in (self.out, self.err):
            f.flush()
            f.seek(0)
        self.stdout = self.out.read()
        self.stderr = self.err.read()
        self.out.close()
        self.err.close()
        return self.rc

    def abort(self):
        if self.p.returncode is None:
            self._kill()
            try:
                os.wait4(self.pid, 0)
            except ChildProcessError:
                pass
            self.p.returncode = -9


class Reaper(threading.Thread):
    """Blocks in wait4 on a Popen of ours; stamps when it exited."""

    def __init__(self, p):
        super().__init__(daemon=True)
        self.p = p
        self.t = None
        self.ru = None

    def run(self):
        try:
            _, status, ru = os.wait4(self.p.pid, 0)
        except ChildProcessError:
            return
        self.t = time.monotonic()
        self.ru = ru
        self.p.returncode = os.waitstatus_to_exitcode(status)


def stop_daemon(p, timeout=10):
    """SIGTERM a Popen we started, wait, SIGKILL if need be; its rusage."""
    if p.returncode is not None:
        return None
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return wait_daemon(p, timeout, kill=True)


def wait_daemon(p, timeout, kill=False):
    """Wait (bounded) for a Popen we started to exit; its rusage or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        except ChildProcessError:
            p.returncode = p.returncode if p.returncode is not None else 0
            return None
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return ru
        time.sleep(0.02)
    if kill:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            return ru
        except ChildProcessError:
            pass
    return None


# --------------------------------------------------------------- the bench

class Image:
    def __init__(self, kind, uuid, path, virt, layout, zeros):
        self.kind = kind                # "qcow2" or "raw"
        self.uuid = uuid
        self.vol = f"{uuid}_disk"
        self.path = path                # on A, in A's disks pool directory
        self.virt = virt
        self.layout = layout
        self.zeros = zeros
        self.data = sum(ln for _, ln in layout)
        st = os.stat(path)
        self.length = st.st_size        # as stored (the qcow2 container's length)
        self.alloc = st.st_blocks * 512
        self.extents = data_extents(path)
        self.ext_bytes = sum(ln for _, ln in self.extents)


METHODS = {
    # key: (label, writes the destination file)
    "ctl": ("`poolfsctl migrate` (verified)", True),
    "ctl-noverify": ("`poolfsctl migrate --no-verify`", True),
    "ctl-pull": ("`poolfsctl migrate` (verified) run on B, `--from` A", True),
    "ctl-pull-noverify": ("`poolfsctl migrate --no-verify` run on B, `--from` A", True),
    "ctl-pull-1": ("`poolfsctl migrate --parallel 1` (verified) run on B, `--from` A", True),
    "ctl-pull-8": ("`poolfsctl migrate --parallel 8` (verified) run on B, `--from` A", True),
    "ctl-pull-generic": ("`poolfsctl migrate` (verified) run on B, `--from` A, "
                         "SHA-256 one block at a time (`POOLFS_DIGEST_SIMD=0`)", True),
    "cp": ("`cp --sparse=always` across poolfs mounts", True),
    "scp": ("`scp` over SSH (Nova SshDriver flags)", True),
    "rsync": ("`rsync` over SSH (Nova RsyncDriver flags)", True),
    "virsh-pipe": ("`virsh -q vol-download \\| virsh -q vol-upload` (pipe, not sparse)", True),
    "virsh-sparse": ("`virsh vol-download --sparse` to a file, `vol-upload --sparse`", True),
    "tcp": ("limit: raw TCP (`socat`), allocated bytes only", False),
    "tls": ("limit: TLS (`socat` OpenSSL), allocated bytes only", False),
}
ORDER = list(METHODS)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs or (1 if args.quick else 3)
        self.virt = 1 * GiB if args.quick else 8 * GiB
        self.data = 200 * MiB if args.quick else 1536 * MiB
        self.timeout = 900 if args.quick else 3600
        self.methods = [m for m in ORDER if m in args.methods]
        # --tuned-libvirtd: both libvirtds with the environment of
        # contrib/libvirtd-streams.conf (its Environment= lines).
        self.libvirtd_env = tuned_libvirtd_env() if args.tuned_libvirtd else {}
        self.kinds = [k for k in ("qcow2", "raw") if k in args.images]
        self.hosts = None
        self.work = None
        self.daemons = []               # Popens to stop at the end
        self.mounted = []               # mountpoints on A
        self.sshd = None
        self.results = {}               # (kind, method) -> [dict]
        self.notes = []
        self.verified = {}              # (kind, method) -> str
        self.sampler = HwmSampler()
        self.ctl_json = {}              # (kind, method) -> last JSON doc
        self.failures = []
        self.poolfs_logs = set()
        self.tls_info = {}
        self.libvirt_tls = "?"
        self.daemon_log = {}            # (kind, method) -> {message: runs}

    # -------------------------------------------------- set-up / tear-down

    def setup(self):
        from tlshosts import TwoHosts, Unavailable
        if self.args.workdir:
            os.makedirs(self.args.workdir, exist_ok=True)
            self.work = tempfile.mkdtemp(prefix="bench-migrate.", dir=self.args.workdir)
        else:
            self.work = tempfile.mkdtemp(prefix="poolfs-bench-migrate.", dir="/var/tmp")
        os.chmod(self.work, 0o755)
        self.logdir = os.path.join(self.work, "logs")
        os.makedirs(self.logdir)
        need = (3 * self.data + self.virt + 2 * GiB) if "virsh-pipe" in self.methods or \
            "scp" in self.methods else 4 * self.data + GiB
        free = shutil.disk_usage(self.work).free
        if free < need:
            raise RuntimeError(f"{self.work}: {free // MiB} MiB free, the bench needs about "
                               f"{need // MiB} MiB (scp and the virsh pipe fill the raw "
                               f"image's {self.virt // GiB} GiB at the destination)")
        log(f"work dir {self.work}; starting the two test hosts")
        try:
            self.hosts = TwoHosts(workdir=os.path.join(self.work, "hosts"), timeout=120,
                                  keep=True, libvirtd_env=self.libvirtd_env).start()
        except Unavailable as e:
            raise RuntimeError(f"cannot make the two test hosts here: {e}")
        h = self.hosts
        self.a_local = h.local_uri(A)
        self.b_local = h.local_uri(B)
        self.b_tls = h.uri(B)
        self.netns_a = h.netns(A)
        self.sampler.start()
        # libvirtd's peak is over the whole bench (VmHWM never goes down).
        self.sampler.add(h.libvirtd_pid(A), "libvirtd A (whole bench)")
        self.sampler.add(h.libvirtd_pid(B), "libvirtd B (whole bench)")
        self.libvirt_tls = self.probe_libvirt_tls()
        if any(m in self.methods for m in ("scp", "rsync")):
            self.start_sshd()
        self.make_images()

    def teardown(self):
        problems = []
        self.sampler.stop.set()
        for m in list(reversed(self.mounted)):
            try:
                self.unmount(m)
            except Exception as e:
                problems.append(f"unmount {m}: {e}")
        for p in self.daemons:
            try:
                stop_daemon(p)
            except Exception as e:
                problems.append(f"stopping pid {p.pid}: {e}")
        if self.hosts is not None:
            problems += self.hosts.close()
        if self.work and os.path.isdir(self.work):
            from tlshosts import _mounts_under
            left = _mounts_under(self.work)
            if left:
                problems.append(f"still mounted, not removing {self.work}: {left}")
            elif self.args.keep:
                log(f"work dir kept: {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        for p in problems:
            log(f"cleanup problem: {p}")
        return problems

    def vir(self, uri, *args, timeout=120, check=True):
        return run(["virsh", "-q", "-c", uri, *args], timeout=timeout, check=check)

    def probe_libvirt_tls(self):
        """What B's libvirtd (GnuTLS) negotiates with A's client certificate
        (gnutls-cli, once, before any run)."""
        h = self.hosts
        pki = h.client_pki(A)
        try:
            r = h.run_on(A, ["gnutls-cli", "--x509cafile", f"{pki}/cacert.pem",
                             "--x509certfile", f"{pki}/clientcert.pem",
                             "--x509keyfile", f"{pki}/clientkey.pem",
                             "-p", "16514", h.fqdn(B)], timeout=20, input="")
        except Exception:
            return "?"
        for line in r.stdout.splitlines():
            if "Description:" in line:
                return line.split("Description:", 1)[1].strip()
        return "?"

    def start_sshd(self):
        h = self.hosts
        d = os.path.join(self.work, "ssh")
        os.makedirs(d, mode=0o700)
        self.ssh_dir = d
        for key in ("host_ed25519", "user_ed25519"):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"poolfs-bench-{key}",
                 "-f", os.path.join(d, key)], timeout=30)
        shutil.copy(os.path.join(d, "user_ed25519.pub"), os.path.join(d, "authorized_keys"))
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"""\
# sshd of the migration benchmark, on node B only (tests/bench/bench_migrate.sh)
Port {SSH_PORT}
ListenAddress {h.ip(B)}
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel ERROR
""")
        self.ssh_opts = ["-F", "/dev/null", "-i", os.path.join(d, "user_ed25519"),
                         "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                         "-o", f"UserKnownHostsFile={d}/known_hosts",
                         "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR"]
        # sshd wants its privilege separation directory /run/sshd: give it
        # one on a tmpfs in a mount namespace of its own (inside B's), so
        # nothing on the host is touched.  unshare and sh exec: the pid is
        # sshd's.
        err = open(os.path.join(self.logdir, "sshd.log"), "w")
        self.sshd = h.popen_on(B, ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   "mount -t tmpfs -o mode=0755 tmpfs /run && "
                                   "mkdir -m 0755 /run/sshd && "
                                   f"exec /usr/sbin/sshd -D -e -f {conf}"],
                               stdout=err, stderr=err)
        self.daemons.append(self.sshd)
        ssh = ["ssh", *self.ssh_opts, "-p", str(SSH_PORT), f"root@{h.ip(B)}", "true"]
        for _ in range(100):
            if self.sshd.poll() is not None:
                break
            if h.run_on(A, ssh, timeout=20).returncode == 0:
                log(f"sshd on node B: pid {self.sshd.pid}, port {SSH_PORT}")
                return
            time.sleep(0.2)
        with open(os.path.join(self.logdir, "sshd.log")) as f:
            raise RuntimeError(f"sshd on node B did not come up: {f.read()[-1500:]}")

    def make_images(self):
        disks = self.hosts.disks_dir(A)
        self.images = {}
        for i, kind in enumerate(self.kinds):
            u = str(uuidlib.uuid4())
            path = os.path.join(disks, f"{u}_disk")
            layout = make_layout(self.virt, self.data, seed=4242 + i)
            log(f"making the {kind} image: {self.virt // MiB} MiB virtual, "
                f"{self.data // MiB} MiB of random data in {len(layout)} extents")
            if kind == "qcow2":
                make_qcow2(path, self.virt, layout)
                zeros = []
            else:
                zeros = zero_extents(layout, 4, 1 * MiB)
                make_raw(path, self.virt, layout, zeros)
            self.images[kind] = Image(kind, u, path, self.virt, layout, zeros)
        self.vir(self.a_local, "pool-refresh", "nova-disks-pool")

    # -------------------------------------------------- helpers per run

    def dest(self, img):
        return os.path.join(self.hosts.disks_dir(B), img.vol)

    def clear_dest(self, img):
        d = self.hosts.disks_dir(B)
        for name in os.listdir(d):
            if name.startswith(f"{img.uuid}_") or img.uuid in name:
                os.unlink(os.path.join(d, name))
        self.vir(self.b_local, "pool-refresh", "nova-disks-pool")

    def wire(self):
        p = run(["ip", "-n", self.netns_a, "-s", "-j", "link", "show", "dev", "eth0"], timeout=20)
        st = json.loads(p.stdout)[0]["stats64"]
        return st["rx"]["bytes"] + st["tx"]["bytes"]

    def mount_poolfs(self, uri, mnt, label):
        os.makedirs(mnt, exist_ok=True)
        err = open(os.path.join(self.logdir, f"poolfs-{label.replace(' ', '-')}.log"), "a")
        self.poolfs_logs.add(err.name)
        p = self.hosts.popen_on(A, [POOLFS, "-f", uri, mnt], stdout=err, stderr=err)
        self.daemons.append(p)
        self.mounted.append(mnt)

        def undo():
            if mnt in self.mounted:
                self.unmount(mnt)
                wait_daemon(p, 15)
            self._forget_daemon(p)
        self.run_cleanups.append(undo)
        for _ in range(300):                    # 30 s
            if p.poll() is not None:
                raise RuntimeError(f"poolfs {uri} {mnt} exited with {p.returncode}; "
                                   f"see {err.name}")
            try:
                with open(f"/proc/{p.pid}/mountinfo") as f:
                    if any(line.split()[4] == mnt for line in f):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"poolfs did not mount {mnt} within 30 s")
        self.sampler.add(p.pid, f"poolfs ({label})")
        return p

    def unmount(self, mnt):
        h = self.hosts
        if mnt in self.mounted:
            self.mounted.remove(mnt)
        r = h.run_on(A, ["fusermount3", "-u", mnt], timeout=30)
        if r.returncode != 0:
            h.run_on(A, ["fusermount3", "-u", "-z", mnt], timeout=30)
            return r.stderr.strip()
        return None

    def wait_idle_children(self, pid, timeout=15):
        """Until the daemon `pid` has reaped all its children (so their CPU
        shows in its cutime/cstime)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not children_of(pid):
                return True
            time.sleep(0.05)
        return False

    def wait_listening(self, port):
        for _ in range(100):
            r = self.hosts.run_on(B, ["ss", "-Hltn", f"sport = :{port}"], timeout=10)
            if r.stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on node B port {port}")

    # -------------------------------------------------- one measurement

    def measure(self, kind, method, run_no):
        """One run of one method; its results as a dict.  Whatever it set up
        (mounts, a receiver, a temp file) is gone when it returns."""
        self.run_cleanups = []
        try:
            return self._measure(kind, method, run_no)
        finally:
            for fn in reversed(self.run_cleanups):
                try:
                    fn()
                except Exception as e:
                    log(f"  cleaning up after {kind} {method}: {e}")
            self.run_cleanups = []

    def _forget_daemon(self, p):
        if p.returncode is None:
            stop_daemon(p)
        if p in self.daemons:
            self.daemons.remove(p)

    def _measure(self, kind, method, run_no):
        h = self.hosts
        img = self.images[kind]
        src, dst = img.path, self.dest(img)
        ip_b = h.ip(B)
        name = f"{kind}-{method}-run{run_no}"
        client_argv = None
        extra_a = []            # daemons whose CPU counts as the client's (poolfs)
        extra_b = []            # daemons on B besides libvirtd (sshd)
        receiver = None
        poolfs = []
        tmpfile = None
        res = {"ok": False}
        client_node = A

        self.clear_dest(img)
        # ---- untimed preparation
        if method in ("ctl", "ctl-noverify"):
            client_argv = [POOLFSCTL, "-c", self.a_local, "--json", "migrate",
                           "--to", self.b_tls, img.uuid]
            if method == "ctl-noverify":
                client_argv.insert(-1, "--no-verify")
        elif method in ("ctl-pull", "ctl-pull-noverify", "ctl-pull-1", "ctl-pull-8",
                        "ctl-pull-generic"):
            # The destination pulls: B reads A's volume over TLS and writes
            # its own pool's files; the verification reads them locally.
            client_node = B
            client_argv = [POOLFSCTL, "-c", self.b_local, "--json", "migrate",
                           "--from", h.uri(A), "--to", self.b_local, img.uuid]
            if method == "ctl-pull-noverify":
                client_argv.insert(-1, "--no-verify")
            if method in ("ctl-pull-1", "ctl-pull-8"):
                client_argv[-1:-1] = ["--parallel", method.rsplit("-", 1)[1]]
            if method == "ctl-pull-generic":        # env(1) execs: same pid
                client_argv[:0] = ["env", "POOLFS_DIGEST_SIMD=0"]
        elif method == "cp":
            mnt_a = os.path.join(self.work, "mnt-a")
            mnt_b = os.path.join(self.work, "mnt-b")
            poolfs = [self.mount_poolfs(self.a_local, mnt_a, "A local"),
                      self.mount_poolfs(self.b_tls, mnt_b, "B over TLS")]
            extra_a = [p.pid for p in poolfs]
            r = h.run_on(A, ["bash", "-c",
                             f"mkdir {mnt_b}/{img.uuid} && for i in $(seq 100); do "
                             f"test -e {mnt_a}/{img.uuid}/disk && exit 0; sleep 0.1; done; exit 1"],
                         timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"cp: preparing the mounts failed: {r.stderr.strip()}")
            client_argv = ["cp", "--sparse=always", f"{mnt_a}/{img.uuid}/disk",
                           f"{mnt_b}/{img.uuid}/disk"]
        elif method == "scp":
            # Nova SshDriver.copy_file: ['scp'] + ['-C'] if compression +
            # ['-r', src, dst]; compression is off for qcow2 only.
            client_argv = ["scp"] + (["-C"] if kind != "qcow2" else []) + \
                ["-r", *self.ssh_opts, "-P", str(SSH_PORT), src, f"root@{ip_b}:{dst}"]
            extra_b = [self.sshd.pid]
        elif method == "rsync":
            # Nova RsyncDriver.copy_file: ['rsync', '-r', '--sparse', src, dst]
            # + ['--compress'] if compression (off for qcow2 only).  -e
            # only says how to reach node B's sshd.
            ssh = shlex.join(["ssh", *self.ssh_opts, "-p", str(SSH_PORT)])
            client_argv = ["rsync", "-r", "--sparse", "-e", ssh, src, f"root@{ip_b}:{dst}"] + \
                (["--compress"] if kind != "qcow2" else [])
            extra_b = [self.sshd.pid]
        elif method in ("virsh-pipe", "virsh-sparse"):
            self.vir(self.b_local, "vol-create-as", "nova-disks-pool", img.vol,
                     f"{img.length}b", "--allocation", "0", "--format", "raw")
            if method == "virsh-pipe":
                script = (f"set -o pipefail; virsh -q -c '{self.a_local}' vol-download "
                          f"--pool nova-disks-pool {img.vol} /dev/stdout | "
                          f"virsh -q -c '{self.b_tls}' vol-upload --pool nova-disks-pool "
                          f"{img.vol} /dev/stdin")
            else:
                tmpdir = os.path.join(self.work, "nodea-tmp")
                os.makedirs(tmpdir, exist_ok=True)
                tmpfile = os.path.join(tmpdir, img.vol)
                self.run_cleanups.append(lambda: os.path.exists(tmpfile) and os.unlink(tmpfile))
                script = (f"set -e; virsh -q -c '{self.a_local}' vol-download --sparse "
                          f"--pool nova-disks-pool {img.vol} {tmpfile}; "
                          f"virsh -q -c '{self.b_tls}' vol-upload --sparse "
                          f"--pool nova-disks-pool {img.vol} {tmpfile}")
            client_argv = ["bash", "-c", script]
        elif method in ("tcp", "tls"):
            port = TCP_PORT if method == "tcp" else TLS_PORT
            if method == "tcp":
                listen = f"TCP4-LISTEN:{port},bind={ip_b},reuseaddr"
                connect = f"TCP4:{ip_b}:{port}"
            else:
                spki, cpki = h.server_pki(B), h.client_pki(A)
                listen = (f"OPENSSL-LISTEN:{port},bind={ip_b},reuseaddr,"
                          f"cert={spki}/servercert.pem,key={spki}/serverkey.pem,"
                          f"cafile={spki}/cacert.pem,verify=1")
                connect = (f"OPENSSL:{h.fqdn(B)}:{port},cert={cpki}/clientcert.pem,"
                           f"key={cpki}/clientkey.pem,cafile={cpki}/cacert.pem,verify=1,"
                           f"commonname={h.fqdn(B)}")
            rlog = open(os.path.join(self.logdir, f"{name}.receiver"), "w")
            # -d -d: socat notes the TLS version and cipher (once, at the start)
            receiver = h.popen_on(B, ["socat", "-d", "-d", "-u", "-b", str(SOCAT_BUF), listen,
                                      "OPEN:/dev/null"],
                                  stdout=rlog, stderr=rlog)
            self.daemons.append(receiver)
            self.run_cleanups.append(lambda: self._forget_daemon(receiver))
            reaper = Reaper(receiver)
            reaper.start()
            self.wait_listening(port)
            client_argv = ["bash", "-c",
                           f"set -o pipefail; {PYTHON} {SELF} send-extents {shlex.quote(src)} | "
                           f"socat -u -b {SOCAT_BUF} STDIN '{connect}'"]
        else:
            raise ValueError(method)

        # ---- timed part
        drop_caches()
        la, lb = h.libvirtd_pid(A), h.libvirtd_pid(B)
        cpu0 = {pid: proc_cpu(pid) for pid in [la, lb, *extra_a, *extra_b]}
        wr0 = {pid: proc_written(pid) for pid in [lb, *extra_b]}
        log0 = {n: h.log_offset(n) for n in (A, B)}
        wire0 = self.wire()
        c = Client(h, client_node, client_argv, self.logdir, name, self.timeout)
        if method.startswith("ctl"):
            self.sampler.add(c.pid, f"poolfsctl ({method})")
        try:
            c.wait()
        finally:
            c.abort()
        sync_s = 0.0
        if METHODS[method][1] and c.rc == 0 and os.path.exists(dst):
            # Every method up to the data on disk on B: libvirt's stream
            # uploads may sync, scp/rsync/cp do not.
            t = time.monotonic()
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            sync_s = time.monotonic() - t
        wall = c.wall + sync_s
        recv_cpu = 0.0
        if receiver is not None:
            reaper.join(30)
            if reaper.is_alive():
                os.kill(receiver.pid, signal.SIGKILL)
                reaper.join(10)
            ru = reaper.ru
            # The limit ends when B has read the last byte.
            if reaper.t is not None:
                wall = max(wall, reaper.t - c.t0)
            recv_cpu = (ru.ru_utime + ru.ru_stime) if ru else float("nan")
            self.daemons.remove(receiver)
            if method == "tls":
                with open(rlog.name) as f:
                    for line in f:
                        for key in ("SSL connection using", "SSL proto version used"):
                            if key in line:
                                self.tls_info[key] = line.split(key, 1)[1].strip(" :\n")
            if receiver.returncode != 0:
                self.notes.append(f"{name}: the receiving socat exited with "
                                  f"{receiver.returncode}")
        for pid in extra_b:
            self.wait_idle_children(pid)
        if method.startswith("ctl"):
            self.sampler.remove(c.pid)
        cpu1 = {pid: proc_cpu(pid) for pid in cpu0}
        wr1 = {pid: proc_written(pid) for pid in wr0}
        wire1 = self.wire()
        b_written = sum(wr1[p] - wr0[p] for p in wr0
                        if wr0[p] is not None and wr1[p] is not None)

        def delta(pid):
            if cpu0.get(pid) is None or cpu1.get(pid) is None:
                return float("nan")
            return cpu1[pid] - cpu0[pid]

        res.update(rc=c.rc, wall=wall, sync=sync_s, client_cpu=c.cpu + sum(delta(p) for p in extra_a),
                   lv_a=delta(la), b_side=delta(lb) + sum(delta(p) for p in extra_b) + recv_cpu,
                   wire=wire1 - wire0, b_written=b_written, timed_out=c.timed_out)

        # ---- untimed wrap-up
        if method == "cp":
            for p, mnt in zip(poolfs, (mnt_a, mnt_b)):
                self.sampler.remove(p.pid)      # a last sample before it goes
                msg = self.unmount(mnt)
                wait_daemon(p, 30, kill=True)
                self.daemons.remove(p)
                if msg or p.returncode != 0:
                    self.notes.append(f"{kind} {method} run {run_no}: poolfs on {mnt} "
                                      f"exited with {p.returncode}; {msg or ''}".strip())
        if tmpfile and os.path.exists(tmpfile):
            os.unlink(tmpfile)
        time.sleep(0.2)         # let the daemons log what the run caused
        for n in (A, B):
            for line in h.libvirtd_log(n, since=log0[n]).splitlines():
                if ": error :" not in line or "ethtool ioctl error" in line:
                    continue
                msg = f"libvirtd on {n}: " + line.split(": error :", 1)[1].strip()
                seen = self.daemon_log.setdefault((kind, method), {})
                seen.setdefault(msg, set()).add(run_no)
        if c.rc != 0:
            res["error"] = (c.stderr.strip().splitlines() or [f"exit status {c.rc}"])[-1]
            if c.timed_out:
                res["error"] = f"killed after {self.timeout} s; " + res["error"]
            log(f"  {name}: FAILED ({c.rc}): {c.stderr.strip()[-800:]}")
            return res
        if method.startswith("ctl"):
            try:
                doc = json.loads(c.stdout)
                self.ctl_json[(kind, method)] = doc
            except ValueError:
                self.notes.append(f"{kind} {method}: poolfsctl --json printed no JSON: "
                                  f"{c.stdout[:200]!r}")
        if METHODS[method][1]:
            if not os.path.exists(dst):
                res["error"] = "no destination file"
                return res
            st = os.stat(dst)
            res["dest_alloc"] = st.st_blocks * 512
            expected = {img.vol, f"{img.uuid}_"}       # the file; cp's directory marker
            left = sorted(n for n in os.listdir(h.disks_dir(B))
                          if img.uuid in n and n not in expected)
            if left:
                self.notes.append(f"{kind} {method} run {run_no}: left on node B besides the "
                                  f"copy: {', '.join(left)}")
            res["dest_len"] = st.st_size
            if (kind, method) not in self.verified:
                r = run(["cmp", src, dst], timeout=self.timeout, check=False)
                self.verified[(kind, method)] = "cmp equal" if r.returncode == 0 else \
                    "**DIFFERS**: " + (r.stdout + r.stderr).strip().replace("\n", " ")
                if r.returncode != 0:
                    self.failures.append(f"{kind} {method}: destination differs from the "
                                         f"source: {(r.stdout + r.stderr).strip()}")
        else:
            nums = [line.strip() for line in c.stderr.splitlines() if line.strip().isdigit()]
            sent = int(nums[-1]) if nums else -1
            res["sent"] = sent
            ok = sent == img.ext_bytes
            self.verified.setdefault((kind, method),
                                     f"sent {sent} B = allocated" if ok
                                     else f"**sent {sent} B != {img.ext_bytes} B allocated**")
            if not ok:
                self.failures.append(f"{kind} {method}: sent {sent} bytes, "
                                     f"allocated {img.ext_bytes}")
        res["ok"] = True
        log(f"  {name}: {wall:.2f} s, client CPU {res['client_cpu']:.2f} s, "
            f"wire {res['wire'] / MiB:.1f} MiB"
            + (f", dest alloc {res['dest_alloc'] / MiB:.1f} MiB" if "dest_alloc" in res else ""))
        return res

    # -------------------------------------------------- the whole thing

    def go(self):
        self.t_start = time.time()
        self.load_start = os.getloadavg()
        for run_no in range(1, self.runs + 1):
            order = self.methods[(run_no - 1) % len(self.methods):] + \
                self.methods[:(run_no - 1) % len(self.methods)]
            log(f"run {run_no} of {self.runs} (order: {', '.join(order)})")
            for kind in self.kinds:
                for method in order:
                    try:
                        res = self.measure(kind, method, run_no)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as e:
                        log(f"  {kind} {method} run {run_no}: error: {e}")
                        res = {"ok": False, "error": str(e)}
                    self.results.setdefault((kind, method), []).append(res)
        self.clear_all()
        self.t_end = time.time()
        self.load_end = os.getloadavg()

    def clear_all(self):
        for img in self.images.values():
            try:
                self.clear_dest(img)
            except Exception as e:
                log(f"clearing node B: {e}")

    # -------------------------------------------------- the report

    def med(self, kind, method, key):
        vals = [r[key] for r in self.results.get((kind, method), [])
                if r.get("ok") and key in r and r[key] == r[key]]
        return statistics.median(vals) if vals else None

    def report(self):
        h = self.hosts
        L = []
        out = L.append
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f
                           if line.startswith("model name"))
        except (OSError, StopIteration):
            pass

        def ver(argv):
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
                return (p.stdout or p.stderr).strip().splitlines()[0]
            except Exception:
                return "?"

        git = run(["git", "-C", REPO, "describe", "--always", "--dirty"], timeout=20,
                  check=False).stdout.strip()
        out("# poolfs migration benchmark: moving one image from node A to node B")
        out("")
        out(f"- {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.t_start))}, "
            f"{'--quick, ' if self.quick else ''}median of {self.runs} interleaved run(s) per "
            f"method, {int(self.t_end - self.t_start)} s in all; load average "
            f"{self.load_start[0]:.2f} at start, {self.load_end[0]:.2f} at end")
        out(f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.release()}; poolfs {git}")
        out("- libvirtd environment: " + (
            ", ".join(f"{k}={v}" for k, v in self.libvirtd_env.items()) +
            " (--tuned-libvirtd: contrib/libvirtd-streams.conf)"
            if self.libvirtd_env else "as started, nothing added"))
        out(f"- {ver(['libvirtd', '--version'])}; {ver(['ssh', '-V'])}; "
            f"{ver(['rsync', '--version'])}; {socat_version()}")
        aes = "yes" if " aes " in open("/proc/cpuinfo").read() else "no"
        out(f"- ciphers: libvirt TLS {self.libvirt_tls} (B's libvirtd to gnutls-cli with "
            f"A's certificate); socat TLS limit "
            f"{self.tls_info.get('SSL proto version used', '?')} "
            f"{self.tls_info.get('SSL connection using', '?')}; SSH: OpenSSH's default "
            f"(chacha20-poly1305@openssh.com first); rsync --compress negotiates the first "
            f"of its compress list (zstd here), scp -C is SSH's zlib; AES-NI: {aes}")
        out(f"- node A -> node B: two network namespaces joined by a veth "
            f"({h.ip(A)} -> {h.ip(B)}), one TLS libvirtd each (tests/tlshosts.py); both "
            f"nodes share this machine's CPUs, page cache and disk")
        for img in self.images.values():
            z = f", plus {sum(n for _, n in img.zeros) // MiB} MiB of written zeros" \
                if img.zeros else ""
            out(f"- {img.kind} image: {img.virt / GiB:g} GiB virtual, "
                f"{img.data / MiB:.0f} MiB of random data in {len(img.layout)} extents "
                f"({min(n for _, n in img.layout) // KiB}..{max(n for _, n in img.layout) // KiB} KiB, "
                f"one per {(img.virt - 16 * MiB) // len(img.layout) // MiB} MiB slot){z}; file length "
                f"{img.length / MiB:.1f} MiB, allocated {img.alloc / MiB:.1f} MiB "
                f"(st_blocks), data extents {img.ext_bytes / MiB:.1f} MiB (SEEK_DATA): "
                f"the \"allocated data\" below")
        out("")
        for kind in self.kinds:
            img = self.images[kind]
            out(f"## {kind}: {img.virt / GiB:g} GiB virtual, "
                f"{img.ext_bytes / MiB:.0f} MiB allocated data")
            out("")
            out("| method | wall s | vs rsync | vs TLS limit | client CPU s | libvirtd A CPU s "
                "| B side CPU s | wire MiB | wire / data | B wrote MiB | dest alloc MiB | check |")
            out("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
            ref_rsync = self.med(kind, "rsync", "wall")
            ref_tls = self.med(kind, "tls", "wall")
            for m in self.methods:
                rs = self.results.get((kind, m), [])
                okn = sum(1 for r in rs if r.get("ok"))
                wall = self.med(kind, m, "wall")
                if wall is None:
                    err = next((r.get("error") for r in rs if r.get("error")), "no result")
                    out(f"| {METHODS[m][0]} | FAILED | | | | | | | | | | {md(err)[:200]} |")
                    continue

                def f(key, scale=1.0, nd=2):
                    v = self.med(kind, m, key)
                    return "n/a" if v is None else f"{v / scale:.{nd}f}"
                vs_r = f"{wall / ref_rsync:.2f}x" if ref_rsync else "n/a"
                vs_t = f"{wall / ref_tls:.2f}x" if ref_tls else "n/a"
                wire = self.med(kind, m, "wire")
                ratio = f"{wire / img.ext_bytes:.3f}" if wire is not None else "n/a"
                partial = f" ({okn}/{len(rs)} ok)" if okn != len(rs) else ""
                alloc = f("dest_alloc", MiB, 1) if METHODS[m][1] else "-"
                cells = [METHODS[m][0] + partial, f"{wall:.2f}", vs_r, vs_t,
                         f("client_cpu"), f("lv_a"), f("b_side"), f("wire", MiB, 1),
                         ratio, f("b_written", MiB, 1), alloc, self.verified.get((kind, m), "")]
                out("| " + " | ".join(cells) + " |")
            out("")
        out("### Peak memory (VmHWM from /proc/PID/status, sampled every 0.05 s while the "
            "process lives; max over all runs)")
        out("")
        out("| process | VmHWM MiB |")
        out("|---|--:|")
        for label in sorted(self.sampler.max):
            out(f"| {label} | {self.sampler.max[label] / 1024:.1f} |")
        out("")
        out("### Wall times of every run (s)")
        out("")
        out("| image | method | " + " | ".join(f"run {i}" for i in range(1, self.runs + 1)) + " |")
        out("|---|---|" + "--:|" * self.runs)
        for kind in self.kinds:
            for m in self.methods:
                rs = self.results.get((kind, m), [])
                cells = [f"{r['wall']:.2f}" if r.get("ok") else "failed" for r in rs]
                out(f"| {kind} | {m} | " + " | ".join(cells) + " |")
        out("")
        out("### What was measured")
        out("")
        out(METHODOLOGY.format(ssh_port=SSH_PORT, buf=SOCAT_BUF // KiB))
        ctl_lines = []
        for (kind, m), doc in sorted(self.ctl_json.items()):
            try:
                v = doc["instances"][0]["volumes"][0]
                ctl_lines.append(f"- poolfsctl {kind} ({m}): data_sent {v['data_sent'] / MiB:.1f} MiB, "
                                 f"zeros_skipped {v['zeros_skipped'] / MiB:.1f} MiB, length "
                                 f"{v['length'] / MiB:.1f} MiB, read from the {v.get('read', '?')}, "
                                 f"written to the {v.get('written', '?')} (its own count, last run)")
            except (KeyError, IndexError, TypeError):
                pass
        for (kind, m), msgs in sorted(self.daemon_log.items()):
            for msg, runs in sorted(msgs.items()):
                self.notes.append(f"{kind} {m}: {msg} (run{'s' if len(runs) > 1 else ''} "
                                  f"{', '.join(map(str, sorted(runs)))})")
        for path in sorted(self.poolfs_logs):
            try:
                with open(path) as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text:
                self.notes.append(f"{os.path.basename(path)} (poolfs stderr, all runs): "
                                  + " / ".join(text.splitlines()[-5:]))
        if ctl_lines or self.notes or self.failures:
            out("")
            out("### Notes from this run")
            out("")
            for line in ctl_lines:
                out(line)
            for n in self.notes:
                out(f"- {md(n)}")
            for n in self.failures:
                out(f"- FAILURE: {md(n)}")
        return "\n".join(L) + "\n"


def tuned_libvirtd_env():
    """The Environment= settings of contrib/libvirtd-streams.conf."""
    env = {}
    with open(os.path.join(REPO, "contrib", "libvirtd-streams.conf")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("Environment="):
                k, _, v = line[len("Environment="):].partition("=")
                env[k] = v
    if not env:
        raise RuntimeError("contrib/libvirtd-streams.conf sets no Environment=")
    return env


def socat_version():
    try:
        p = subprocess.run(["socat", "-V"], capture_output=True, text=True, timeout=20)
        return next((line.split(" on ")[0] for line in p.stdout.splitlines()
                     if line.startswith("socat version")), "socat ?")
    except Exception:
        return "socat ?"


def md(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


METHODOLOGY = """\
- **Methods.** Each moves the image from A's disks pool (volume `{{uuid}}_disk`)
  to B's; B's copy is deleted (and B's pool refreshed) before every run.
  `poolfsctl` (push): `poolfsctl -c A_LOCAL --json migrate --to
  qemu+tls://nodeb... UUID`, run on A (A's volume file read directly, a
  stream to B). `poolfsctl` run on B (pull): `poolfsctl -c B_LOCAL --json
  migrate --from qemu+tls://nodea... --to B_LOCAL UUID`, run in B's
  namespaces (a stream from A, B's volume file written directly); its
  "client CPU" is poolfsctl's on B, and "B side CPU" B's libvirtd. `cp`: two poolfs mounts on A, A's pools locally (io auto:
  local) and B's pools over TLS (io auto: stream), `mkdir MOUNT_B/UUID`
  (untimed), then `cp --sparse=always MOUNT_A/UUID/disk MOUNT_B/UUID/disk`;
  the mounts are made before and unmounted after the timed part. `scp` and
  `rsync`: exactly the arguments of Nova's libvirt driver
  (nova/virt/libvirt/volume/remotefs.py in openstack/nova: `SshDriver.copy_file`
  runs `scp [-C] -r SRC DST`, `RsyncDriver.copy_file` runs
  `rsync -r --sparse SRC DST [--compress]`, where the compression flag is
  set unless the disk is qcow2: `compression = info['type'] not in
  NO_COMPRESSION_TYPES`, `NO_COMPRESSION_TYPES = ('qcow2',)` in
  nova/virt/libvirt/driver.py, `migrate_disk_and_power_off`) plus only what
  reaches this bench's sshd (`-F /dev/null -i KEY -o IdentitiesOnly=yes -o
  UserKnownHostsFile=... -o StrictHostKeyChecking=no`, port {ssh_port}; rsync via
  `-e ssh ...`). The sshd runs in node B's namespaces for the bench only
  (throwaway keys, `UsePAM no`, OpenSSH's default cipher). `virsh`:
  `--sparse` cannot be used on a pipe (`virsh vol-download --sparse ...
  /dev/stdout` fails with "recv holeHandler failed: Illegal seek", and
  `vol-upload --sparse /dev/stdin` with "Unable to get current position in
  stream"), so the pipe moves every byte of the file, holes as zeros, and a
  second variant downloads `--sparse` into a file on A and uploads that
  `--sparse`. Both create B's volume first (`vol-create-as ... LENGTHb
  --allocation 0 --format raw`, untimed). `-q` matters: without it virsh
  ends its output with a newline, which lands in the pipe and makes B's copy
  one byte longer.
- **Link limits.** Only the allocated data of the source file (its
  SEEK_DATA extents: the image's data, plus the raw image's written zeros
  and the qcow2 container's metadata) is read, with sendfile into a pipe, and
  sent with `socat -u -b {buf}K` to a `socat` on B that discards it (no
  write, no fsync at B): raw TCP, and TLS (`socat` with OpenSSL, B's libvirtd
  server certificate, A's client certificate, verify=1). The clock stops
  when B's socat has read the last byte.
- **Wall time**: from starting the client on A until it exits, plus an
  fdatasync of B's destination file, so every method is timed until the
  data is on B's disk (libvirt's uploads may sync themselves; scp, rsync and
  cp do not). Caches are dropped (`sync; echo 3 > drop_caches`) before every
  run. Runs are interleaved: run 1 of every method for both images, then run
  2, ...; the method order rotates from run to run.
- **client CPU**: user+sys of the client's whole process tree (wait4
  rusage: poolfsctl; cp; scp+ssh; rsync+ssh; both virsh and bash; python+socat
  for the limits), plus, for cp, the CPU the two poolfs daemons used during the
  copy (/proc/PID/stat deltas). **libvirtd A** and **B side**: /proc/PID/stat
  deltas (utime+stime+cutime+cstime) of A's libvirtd, and of B's libvirtd
  plus B's sshd (its connection processes, rsync/sftp-server, reaped before
  reading) plus the limits' receiving socat.
- **wire**: tx+rx byte counters of node A's veth (`ip -s link`) over the
  run: payload plus TCP/IP, TLS and SSH overhead, both directions.
  **wire / data**: that over the allocated data. **B wrote**: write_bytes
  deltas (/proc/PID/io) of B's libvirtd and sshd (with the children they
  reaped): the bytes written into files on B, counted when dirtied in the
  page cache (a file deleted before writeback still counts). **dest alloc**: st_blocks
  of B's file. **check**: `cmp` of source and destination after the first
  run of each method; for the limits, the bytes sent equal the allocated data.
- **Ratios**: each method's median wall time over rsync's and over the TLS
  limit's, for the same image.
- Errors that the libvirtds logged during a run (other than the ethtool
  noise of their node-device driver) and anything poolfs printed on stderr
  are listed under the notes."""


# --------------------------------------------------------------- main

def main(argv):
    if len(argv) >= 1 and argv[0] == "send-extents":
        return send_extents(argv[1])
    ap = argparse.ArgumentParser(prog="bench_migrate.sh")
    ap.add_argument("-o", dest="out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--methods", default=",".join(ORDER))
    ap.add_argument("--images", default="qcow2,raw")
    ap.add_argument("--workdir")
    ap.add_argument("--tuned-libvirtd", action="store_true")
    args = ap.parse_args(argv)
    args.methods = args.methods.split(",")
    args.images = args.images.split(",")
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r} (known: {','.join(ORDER)})")
    for k in args.images:
        if k not in ("qcow2", "raw"):
            ap.error(f"unknown image {k!r} (known: qcow2,raw)")
    if args.runs is not None and args.runs < 1:
        ap.error("--runs must be at least 1")
    for b in (POOLFS, POOLFSCTL):
        if not os.access(b, os.X_OK):
            print(f"bench_migrate: {b} is missing: ninja -C build", file=sys.stderr)
            return 1

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args)
    rc = 0
    try:
        bench.setup()
        bench.go()
        text = bench.report()
        with open(os.path.join(bench.work, "results.json"), "w") as f:
            json.dump({"results": {f"{k}|{m}": v for (k, m), v in bench.results.items()},
                       "hwm_kib": bench.sampler.max}, f, indent=1)
        sys.stdout.write(text)
        sys.stdout.flush()
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
            log(f"report written to {args.out}")
        if bench.failures or any(not r.get("ok") for rs in bench.results.values() for r in rs):
            rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except SystemExit as e:
        log(f"stopped by a signal ({e.code})")
        rc = e.code if isinstance(e.code, int) else 1
    except Exception as e:
        log(f"error: {e}")
        rc = 1
    finally:
        # No signal may cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if bench.teardown():
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
