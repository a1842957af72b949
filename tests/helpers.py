"""Shared helpers for the poolfs integration tests.

Nothing here touches the host's own libvirtd: every virsh call goes to the
private daemon whose URI the session fixture hands out.
"""

import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

DISKS_POOL = "nova-disks-pool"
BASE_POOL = "nova-base-images-pool"

# poolfs's default re-list period (-o refresh=) and the slack we allow on top
# of it before calling a change by someone else "not seen".
REFRESH = 2
SEEN_WITHIN = REFRESH + 3

MOUNT_TIMEOUT = 10      # poolfs -f until the mount shows up
EXIT_TIMEOUT = 10       # poolfs exit after fusermount3 -u
VIRSH_TIMEOUT = 30      # any single virsh call
# Hard per-mount limit: if a test is still running with the mount after this,
# a watchdog kills poolfs, which aborts the FUSE connection and so unblocks
# every system call stuck on the mount; the test then fails.
WATCHDOG = 120

MiB = 1024 * 1024
GiB = 1024 * MiB


class TimeoutFailure(AssertionError):
    pass


def wait_for(predicate, timeout, what="condition", interval=0.05):
    """Poll predicate() until it returns something truthy; return that.

    Fails (AssertionError) after `timeout` seconds.  Exceptions of type
    OSError raised by predicate count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except OSError as e:
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutFailure(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def run(cmd, *, timeout=60, check=True, env=None, input=None, text=True, cwd=None):
    """subprocess.run with a timeout and an error message that shows output."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                           input=input, text=text, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise TimeoutFailure(f"command did not finish within {timeout}s: {cmd!r}") from e
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed with status {p.returncode}: {cmd!r}\n"
            f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")
    return p


def content_digest(path):
    """poolfsctl's content digest of a file, by its definition
    (migrate/digest.h): SHA-256 over the SHA-256s of its 16 KiB blocks, the
    last one possibly short; holes read as zeros."""
    outer = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(16 * 1024)
            if not block:
                break
            outer.update(hashlib.sha256(block).digest())
    return outer.hexdigest()


def have(tool):
    return shutil.which(tool) is not None


# ---------------------------------------------------------------- virsh


class Virsh:
    """`virsh -c URI ...` wrapper."""

    def __init__(self, uri):
        self.uri = uri

    def __call__(self, *args, check=True, timeout=VIRSH_TIMEOUT, text=True):
        return run(["virsh", "-q", "-c", self.uri, *args], check=check,
                   timeout=timeout, text=text)

    def vol_list(self, pool):
        """Names of the volumes libvirtd currently knows in `pool`."""
        out = self("vol-list", pool).stdout
        names = set()
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            i = line.rfind(" /")
            names.add(line[:i].strip() if i >= 0 else line)
        return names

    def vol_create_as(self, pool, name, size, fmt="raw"):
        self("vol-create-as", pool, name, str(size), "--format", fmt)

    def vol_upload(self, pool, name, data):
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            self("vol-upload", "--pool", pool, name, f.name)

    def vol_download(self, pool, name):
        with tempfile.NamedTemporaryFile() as f:
            self("vol-download", "--pool", pool, name, f.name)
            f.seek(0)
            return f.read()

    def vol_delete(self, pool, name):
        self("vol-delete", "--pool", pool, name)

    def vol_xml(self, pool, name):
        return self("vol-dumpxml", "--pool", pool, name).stdout

    def vol_path(self, pool, name):
        return self("vol-path", "--pool", pool, name).stdout.strip()

    def pool_refresh(self, pool, timeout=VIRSH_TIMEOUT):
        self("pool-refresh", pool, timeout=timeout)

    def pool_info(self, pool):
        """pool-info --bytes as a dict of lower-case keys."""
        info = {}
        for line in self("pool-info", "--bytes", pool).stdout.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                info[k.strip().lower()] = v.strip()
        return info


# ---------------------------------------------------------------- names


def enc_dir(d):
    return d.replace("%", "%25").replace("_", "%5F").replace("/", "%2F")


def vol_name(relpath):
    """Disks-pool volume name for a path relative to the mount."""
    relpath = relpath.strip("/")
    d, _, f = relpath.rpartition("/")
    return enc_dir(d) + "_" + f


def marker_name(reldir):
    """Disks-pool volume name of the marker of an empty directory."""
    return enc_dir(reldir.strip("/")) + "_"


# ---------------------------------------------------------------- mounts


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """[(mountpoint, fstype, source)] from /proc/self/mountinfo.

    Read from procfs rather than stat()ing the mountpoint so that a hung
    filesystem can never block the check.
    """
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            res.append((_unescape_mountinfo(fields[4]),
                        rfields[0] if rfields else "",
                        _unescape_mountinfo(rfields[1]) if len(rfields) > 1 else ""))
    return res


def is_mounted(path):
    path = os.path.realpath(path)
    return any(mp == path for mp, _, _ in mounts())


def mount_fstype(path):
    path = os.path.realpath(path)
    for mp, fstype, _ in reversed(mounts()):
        if mp == path:
            return fstype
    return None


def fusermount_u(path, lazy=False, timeout=10):
    cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [path]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def pids_of(binary_basename, arg):
    """Pids of processes whose argv[0] ends with binary_basename and that
    have `arg` among their arguments."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if argv and os.path.basename(argv[0]) == binary_basename and arg in argv[1:]:
            pids.append(int(p))
    return pids


ERR_RE = re.compile(r"error|warning", re.I)


class Poolfs:
    """One `poolfs -f` process serving one mountpoint."""

    def __init__(self, binary, uri, mountpoint, options=(), logdir=None, name="poolfs"):
        self.binary = binary
        self.uri = uri
        self.mnt = mountpoint
        self.options = list(options)
        self.logdir = logdir or tempfile.mkdtemp(prefix="poolfs-log-")
        self.stderr_path = os.path.join(self.logdir, f"{name}.stderr")
        self.stdout_path = os.path.join(self.logdir, f"{name}.stdout")
        self.proc = None
        self.expected = []
        self.watchdog_fired = False
        self._watchdog = None

    @property
    def argv(self):
        argv = [self.binary, "-f"]
        if self.options:
            argv += ["-o", ",".join(self.options)]
        return argv + [self.uri, self.mnt]

    def expect_stderr(self, pattern):
        """Declare that stderr lines matching `pattern` (regex) are expected."""
        self.expected.append(re.compile(pattern))

    def start(self, timeout=MOUNT_TIMEOUT):
        os.makedirs(self.mnt, exist_ok=True)
        assert not is_mounted(self.mnt), f"{self.mnt} is already mounted"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"poolfs exited with status {rc} before mounting {self.mnt}\n"
                    f"argv: {self.argv}\nstderr:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"poolfs did not mount {self.mnt} within {timeout}s\n"
                    f"argv: {self.argv}\nstderr:\n{self.stderr()}")
            time.sleep(0.02)
        self._watchdog = threading.Timer(WATCHDOG, self._fire_watchdog)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def _fire_watchdog(self):
        self.watchdog_fired = True
        self.kill()

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def unexpected_stderr(self):
        bad = []
        for line in self.stderr().splitlines():
            if ERR_RE.search(line) and not any(p.search(line) for p in self.expected):
                bad.append(line)
        return bad

    def kill(self):
        """Emergency stop: detach the mount and kill poolfs."""
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        if is_mounted(self.mnt):
            fusermount_u(self.mnt, lazy=True)
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        """Unmount the normal way and check poolfs went cleanly.

        Returns a list of problems (empty if all went well); never raises.
        """
        problems = []
        if self._watchdog:
            self._watchdog.cancel()
        if self.watchdog_fired:
            problems.append(f"watchdog: the test ran longer than {WATCHDOG}s with the "
                            f"mount; poolfs was killed")
        if self.proc is None:
            return problems
        try:
            if is_mounted(self.mnt):
                # EBUSY can happen for a moment while a test's helper threads
                # or processes let go of their files: retry for a short while.
                deadline = time.monotonic() + 5
                while True:
                    r = fusermount_u(self.mnt)
                    if r is not None and r.returncode == 0:
                        break
                    if time.monotonic() > deadline:
                        problems.append(f"fusermount3 -u {self.mnt} failed: "
                                        f"{r.stderr.strip() if r else 'timed out'}")
                        break
                    time.sleep(0.2)
            try:
                rc = self.proc.wait(timeout=EXIT_TIMEOUT)
                if rc != 0 and not self.watchdog_fired:
                    problems.append(f"poolfs exited with status {rc} after unmount")
            except subprocess.TimeoutExpired:
                problems.append(f"poolfs did not exit within {EXIT_TIMEOUT}s of the unmount")
            if is_mounted(self.mnt):
                problems.append(f"{self.mnt} still mounted after poolfs stopped")
        finally:
            self.kill()
            self._err.close()
            self._out.close()
        bad = self.unexpected_stderr()
        if bad:
            problems.append("unexpected error/warning lines on poolfs's stderr:\n  "
                            + "\n  ".join(bad))
        return problems


# ---------------------------------------------------------------- files


# ioctl(POOLFS_IOC_BACKEND) of pool/ctlproto.h: _IOR('P', 0x70, char[16])
POOLFS_IOC_BACKEND = (2 << 30) | (16 << 16) | (ord("P") << 8) | 0x70


def backend(path):
    """Where a path under a poolfs mount lives: b"legacy" or b"pool"."""
    import fcntl
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return fcntl.ioctl(fd, POOLFS_IOC_BACKEND, bytes(16)).rstrip(b"\0")
    finally:
        os.close(fd)


def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def expect_errno(err, fn, *args, **kwargs):
    """Call fn and require it to fail with OSError errno `err`."""
    try:
        fn(*args, **kwargs)
    except OSError as e:
        assert e.errno == err, (f"{fn.__name__}{args}: expected {errno.errorcode[err]}, "
                                f"got {errno.errorcode.get(e.errno, e.errno)} ({e})")
        return e
    raise AssertionError(f"{fn.__name__}{args}: expected {errno.errorcode[err]}, "
                         f"but it succeeded")


def tiny_domain_xml(directory, name, disk, fmt):
    """Write the XML of a small QEMU domain NAME (64 MiB, no boot device)
    whose one disk is the file DISK of format FMT into DIRECTORY; return
    its path (for `virsh create`)."""
    xml = os.path.join(directory, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(f"""<domain type='qemu'><name>{name}</name>
<memory unit='MiB'>64</memory><os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>
<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>""")
    return xml
