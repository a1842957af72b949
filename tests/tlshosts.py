"""Two test "hosts" on one machine whose libvirtds talk TLS to each other.

    from tlshosts import TwoHosts, Unavailable

    try:
        hosts = TwoHosts().start()      # < 30 s; raises Unavailable if the
    except Unavailable as e:            # machine cannot do it (not root, no
        pytest.skip(str(e))             # `ip netns`, no certtool/openssl...)
    try:
        hosts.virsh("nodea", "nodeb", "pool-list")   # virsh on A -> B over TLS
    finally:
        hosts.close()                   # idempotent; also after a failed start

Each node ("nodea", "nodeb") is

- a network namespace of its own (`ip netns`, named `poolfs-<token>-nodea`)
  with a veth pair between the two: nodea.poolfs.test is 192.0.2.1/24 and
  nodeb.poolfs.test 192.0.2.2/24.  The host's namespace has no route to them:
  all traffic stays inside the two namespaces;
- a persistent mount + UTS namespace of its own (bound on files under
  WORKDIR/ns), with empty tmpfs over /run/libvirt, /etc/libvirt,
  /var/lib/libvirt and /var/cache/libvirt (as contrib/private-libvirtd.sh
  does), WORKDIR/hosts bind-mounted over /etc/hosts (that is how the names
  resolve: glibc's "files" source reads it), and the host name set to the
  node's FQDN (/sys is the host's: libvirtd's node-device driver lists the
  host's interfaces, and logs harmless ethtool errors about them);
- a libvirtd running in those namespaces with `--listen`: TLS on 16514 at the
  node's address (server certificate CN and subjectAltName = FQDN and IP,
  `tls_allowed_dn_list` = the two nodes' client certificates), and a unix
  socket in WORKDIR/NODE/run that the test process can use directly
  (`local_uri(node)`);
- the transient dir pools nova-disks-pool and nova-base-images-pool in
  WORKDIR/NODE/pools/{disks,base} (paths on the shared file system, so the test
  process can look at them: `pool_dir(node, pool)`).

"On node A" means inside A's network, mount and UTS namespaces: `run_on`,
`popen_on`, or `nsenter_argv(node) + argv` for your own subprocess call.
Anything mounted there (a poolfs mount, say) is seen by that node's
libvirtd and by later `run_on` commands, not by the host's namespace; from
the test process, reach it with `run_on` or through
/proc/<libvirtd_pid(node)>/root/PATH.

Certificates come from contrib/libvirt-tls-setup.sh (one CA in WORKDIR/pki/ca):

- `server_pki(node)`: cacert.pem, servercert.pem, serverkey.pem (libvirtd's
  ca_file, cert_file, key_file);
- `client_pki(node)`: cacert.pem, clientcert.pem, clientkey.pem with
  CN=<node's FQDN>, a libvirt "pkipath" directory;
- `uri(node)`: qemu+tls://<node's FQDN>/system?pkipath=<client_pki(other node)>,
  the URI the other node uses; `uri(node, pki=DIR, host=NAME)` for others.

`make_ca(name)`, `make_client(cn, ca_dir=..., trust_also=...)` and
`add_alias(alias, node)` make the material for negative tests.  No sshd is
started and no SSH key is made.  Every command runs under LC_ALL=C so libvirt's
error messages come out in English.
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TLS_SETUP = os.path.join(REPO, "contrib", "libvirt-tls-setup.sh")

DOMAIN = "poolfs.test"
NODES = ("nodea", "nodeb")
ADDRESSES = {"nodea": "192.0.2.1", "nodeb": "192.0.2.2"}
PREFIXLEN = 24
TLS_PORT = 16514
ORG = "poolfs"
DISKS_POOL = "nova-disks-pool"
BASE_POOL = "nova-base-images-pool"
POOLS = {DISKS_POOL: "disks", BASE_POOL: "base"}
LIBVIRT_DIRS = ("/run/libvirt", "/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt")

BRINGUP_TIMEOUT = 30    # everything in start()
STOP_TIMEOUT = 10       # a libvirtd after SIGTERM
COMMAND_TIMEOUT = 30    # a run_on() command unless told otherwise


class Unavailable(Exception):
    """This machine cannot host the test nodes; str() says why (for a skip)."""


def missing_prerequisites():
    """None if TwoHosts can be tried here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "TwoHosts needs root (network and mount namespaces, libvirtd)"
    for tool, pkg in (("ip", "iproute2"), ("nsenter", "util-linux"),
                      ("unshare", "util-linux"), ("mount", "mount"),
                      ("umount", "mount"), ("libvirtd", "libvirt-daemon"),
                      ("virsh", "libvirt-clients")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {pkg})"
    if shutil.which("certtool") is None and shutil.which("openssl") is None:
        return "neither certtool (gnutls-bin) nor openssl is installed"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces"
    return None


def _env():
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    env.pop("LIBVIRT_DEFAULT_URI", None)
    return env


def _run(argv, timeout, check=True, input=None, cwd=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           input=input, env=_env(), cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"did not finish within {timeout:.0f}s: {argv!r}") from e
    if check and p.returncode != 0:
        raise RuntimeError(f"failed with status {p.returncode}: {argv!r}\n"
                           f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def _is_mountpoint(path):
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def _mounts_under(root):
    root = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == root or mp.startswith(root + "/"):
                found.append(mp)
    return found


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid, popen=None, timeout=STOP_TIMEOUT):
    """SIGTERM, wait up to `timeout`, then SIGKILL.  True if it went on TERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        if popen is not None:
            popen.poll()
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            return True
        if not _alive(pid):
            if popen is not None:
                popen.poll()
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if popen is not None:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return False


class Node:
    """One test host.  Attributes are plain paths and names."""

    def __init__(self, short, workdir, token):
        self.short = short
        self.fqdn = f"{short}.{DOMAIN}"
        self.ip = ADDRESSES[short]
        self.netns = f"poolfs-{token}-{short}"
        self.dir = os.path.join(workdir, short)
        self.run_dir = os.path.join(self.dir, "run")
        self.sock = os.path.join(self.run_dir, "libvirt-sock")
        self.conf = os.path.join(self.dir, "libvirtd.conf")
        self.pidfile = os.path.join(self.dir, "libvirtd.pid")
        self.log = os.path.join(self.dir, "libvirtd.log")
        self.stderr_log = os.path.join(self.dir, "libvirtd.stderr")
        self.server_pki = os.path.join(self.dir, "pki-server")
        self.client_pki = os.path.join(self.dir, "pki-client")
        self.pools_dir = os.path.join(self.dir, "pools")
        self.mnt_ns = os.path.join(workdir, "ns", f"{short}.mnt")
        self.uts_ns = os.path.join(workdir, "ns", f"{short}.uts")
        self.netns_made = False
        self.libvirtd = None        # Popen
        self.ns_inode = None        # st_ino of the mount namespace

    @property
    def local_uri(self):
        return f"qemu:///system?socket={self.sock}"


class TwoHosts:
    """Node A and node B, each with a TLS-listening libvirtd.  See the module doc."""

    def __init__(self, workdir=None, key_type="rsa", tool=None,
                 timeout=BRINGUP_TIMEOUT, allowed_clients=(), keep=None,
                 libvirtd_env=None):
        """workdir: where everything goes (default: a new /tmp/poolfs-tls-*;
        removed by close() unless keep or $POOLFS_TEST_KEEP).  key_type and
        tool go to libvirt-tls-setup.sh (--key-type, --tool).
        allowed_clients: extra client CNs for tls_allowed_dn_list.
        libvirtd_env: extra environment of both libvirtds (a dict)."""
        self._own_workdir = workdir is None
        self.workdir = workdir
        self.key_type = key_type
        self.tool = tool
        self.timeout = timeout
        self.allowed_clients = tuple(allowed_clients)
        self.libvirtd_env = dict(libvirtd_env or {})
        self.keep = bool(os.environ.get("POOLFS_TEST_KEEP")) if keep is None else keep
        self.token = secrets.token_hex(3)
        self.nodes = {}
        self.hosts_file = None
        self.ca_dir = None
        self.ns_dir = None
        self._ns_dir_mounted = False
        self._procs = []
        self._started = False
        self._closed = False
        self._deadline = None
        self.created_at = None      # time.time() when start() began
        self.bringup_seconds = None

    # ------------------------------------------------------------ public API

    def start(self):
        """Bring both nodes up; returns self.  Raises Unavailable if the
        machine cannot do it, RuntimeError (with the libvirtd log tail) if
        the bring-up fails; either way everything made so far is torn down."""
        if self._started:
            return self
        reason = missing_prerequisites()
        if reason:
            raise Unavailable(reason)
        if not os.path.isfile(TLS_SETUP):
            raise Unavailable(f"{TLS_SETUP} is missing")
        self._started = True
        self.created_at = time.time()
        self._deadline = time.monotonic() + self.timeout
        t0 = time.monotonic()
        try:
            self._bring_up()
        except BaseException:
            self.close()
            raise
        self.bringup_seconds = time.monotonic() - t0
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def node(self, node):
        try:
            return self.nodes[node]
        except KeyError:
            raise KeyError(f"no node {node!r}; the nodes are {', '.join(NODES)}") from None

    @staticmethod
    def other(node):
        return "nodeb" if node == "nodea" else "nodea"

    def fqdn(self, node):
        return self.node(node).fqdn

    def ip(self, node):
        return self.node(node).ip

    def netns(self, node):
        """The `ip netns` name of the node's network namespace."""
        return self.node(node).netns

    def uri(self, node, pki=None, host=None, transport="tls", path="/system"):
        """qemu+tls://HOST/system?pkipath=PKI: node's libvirtd over TLS, as the
        other node reaches it.  host defaults to the node's FQDN (an alias or
        the IP address work too if the certificate carries them); pki to the
        other node's client_pki."""
        n = self.node(node)
        pki = pki or self.client_pki(self.other(node))
        return f"qemu+{transport}://{host or n.fqdn}{path}?pkipath={pki}"

    def local_uri(self, node):
        """The node's libvirtd through its unix socket (usable from anywhere)."""
        return self.node(node).local_uri

    def server_pki(self, node):
        return self.node(node).server_pki

    def client_pki(self, node):
        return self.node(node).client_pki

    def pool_dir(self, node, pool):
        """Target directory of `pool` (a name, or "disks"/"base") on `node`."""
        return os.path.join(self.node(node).pools_dir, POOLS.get(pool, pool))

    def disks_dir(self, node):
        return self.pool_dir(node, DISKS_POOL)

    def base_dir(self, node):
        return self.pool_dir(node, BASE_POOL)

    def libvirtd_pid(self, node):
        n = self.node(node)
        return n.libvirtd.pid if n.libvirtd else None

    def libvirtd_log(self, node, since=None):
        """What the node's libvirtd logged (warnings and errors).  With
        since=log_offset(node) taken earlier: only what came after that."""
        n = self.node(node)
        if since is not None:
            try:
                with open(n.log, "rb") as f:
                    f.seek(since)
                    return f.read().decode(errors="replace")
            except OSError:
                return ""
        out = []
        for path in (n.log, n.stderr_log):
            try:
                with open(path, errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "\n".join(out)

    def stop_libvirtd(self, node):
        """Stop the node's libvirtd (SIGTERM, by pid), as an upgrade does."""
        n = self.node(node)
        if n.libvirtd is not None and n.libvirtd.poll() is None:
            _stop_pid(n.libvirtd.pid, n.libvirtd)

    def start_libvirtd(self, node, timeout=BRINGUP_TIMEOUT):
        """Start the node's libvirtd again after stop_libvirtd() and wait
        until it answers with both pools active (it remembers the transient
        pools it had running; any it forgot are made again)."""
        n = self.node(node)
        self._deadline = time.monotonic() + timeout
        self._start_libvirtd(n)
        self._wait_for_libvirtds()
        have = _run(["virsh", "-q", "-c", n.local_uri, "pool-list", "--name"],
                    timeout=self._left()).stdout.split()
        for pool, sub in POOLS.items():
            if pool not in have:
                _run(["virsh", "-q", "-c", n.local_uri, "pool-create-as", pool, "dir",
                      "--target", os.path.join(n.pools_dir, sub)], timeout=self._left())

    def log_offset(self, node):
        """Current end of the node's libvirtd log, for libvirtd_log(since=)."""
        try:
            return os.path.getsize(self.node(node).log)
        except OSError:
            return 0

    def wait_for_log(self, node, text, since, timeout=5):
        """Wait until `text` shows in the node's log after offset `since`;
        returns the new part of the log (which may lack `text` on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            new = self.libvirtd_log(node, since=since)
            if text in new or time.monotonic() >= deadline:
                return new
            time.sleep(0.05)

    def nsenter_argv(self, node):
        """Prefix that runs a command "on" node: its network, mount (tmpfs
        libvirt dirs, the hosts file) and UTS (host name) namespaces."""
        n = self.node(node)
        return ["nsenter", f"--net=/run/netns/{n.netns}", f"--mount={n.mnt_ns}",
                f"--uts={n.uts_ns}", "--"]

    def run_on(self, node, argv, timeout=COMMAND_TIMEOUT, check=False, input=None, cwd=None):
        """Run argv on node; a CompletedProcess with text stdout/stderr."""
        return _run(self.nsenter_argv(node) + list(argv), timeout=timeout,
                    check=check, input=input, cwd=cwd or self.workdir)

    def popen_on(self, node, argv, **kwargs):
        """Start argv on node (subprocess.Popen keyword arguments accepted);
        close() stops it if it is still running."""
        kwargs.setdefault("env", _env())
        kwargs.setdefault("cwd", self.workdir)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.nsenter_argv(node) + list(argv), **kwargs)
        self._procs.append(p)
        return p

    def virsh(self, from_node, to_node, *args, pki=None, host=None, timeout=COMMAND_TIMEOUT,
              check=False):
        """`virsh -q -c uri(to_node, pki, host) ARGS` run on from_node."""
        return self.run_on(from_node, ["virsh", "-q", "-c", self.uri(to_node, pki, host), *args],
                           timeout=timeout, check=check)

    def tls_setup(self, *args, timeout=COMMAND_TIMEOUT, check=True, tool=None, key_type=None):
        """Run contrib/libvirt-tls-setup.sh with this setup's key type and
        tool (or those given); a CompletedProcess."""
        opts = ["--key-type", key_type or self.key_type, "--org", ORG]
        if tool or self.tool:
            opts += ["--tool", tool or self.tool]
        return _run([TLS_SETUP, *opts, *args], timeout=timeout, check=check)

    def make_ca(self, name):
        """A new, unrelated CA in WORKDIR/extra/NAME-ca; returns its directory."""
        d = os.path.join(self.workdir, "extra", f"{name}-ca")
        self.tls_setup("--ca-dir", d, "ca")
        return d

    def make_client(self, cn, ca_dir=None, dest=None, trust_also=(), tool=None, key_type=None):
        """A client pkipath directory with a certificate CN=cn signed by ca_dir
        (default: the test CA).  trust_also: more CA certificate files appended
        to its cacert.pem (a client with a foreign certificate must still trust
        the servers' CA to get as far as presenting it).  tool, key_type:
        override the setup's for this certificate."""
        ca_dir = ca_dir or self.ca_dir
        dest = dest or os.path.join(self.workdir, "extra",
                                    f"client-{cn}-{os.path.basename(ca_dir)}")
        self.tls_setup("--ca-dir", ca_dir, "--dest", dest, "client", cn,
                       tool=tool, key_type=key_type)
        if trust_also:
            with open(os.path.join(dest, "cacert.pem"), "a") as out:
                for path in trust_also:
                    with open(path) as f:
                        out.write(f.read())
        return dest

    def add_alias(self, alias, node):
        """Make `alias` resolve to node's address on both nodes (the hosts file
        is bind-mounted, so it is appended to in place)."""
        with open(self.hosts_file, "a") as f:
            f.write(f"{self.ip(node)}\t{alias}\n")

    def close(self):
        """Tear everything down (idempotent).  Returns a list of problems met
        (empty when all went cleanly); never raises."""
        if self._closed:
            return []
        self._closed = True
        problems = []

        def attempt(what, fn, *a):
            try:
                fn(*a)
            except Exception as e:  # keep going: the rest must go too
                problems.append(f"{what}: {e}")

        for p in self._procs:
            if p.poll() is None:
                attempt(f"stopping pid {p.pid}", _stop_pid, p.pid, p, 5)
        for n in self.nodes.values():
            if n.libvirtd is not None and n.libvirtd.poll() is None:
                if not _stop_pid(n.libvirtd.pid, n.libvirtd):
                    problems.append(f"{n.short}: libvirtd (pid {n.libvirtd.pid}) "
                                    f"needed SIGKILL")
        for n in self.nodes.values():
            # Anything else still in the node's private mount namespace was
            # started by us (its libvirtd, a run_on/popen_on command).
            attempt(f"{n.short}: stray processes", self._kill_ns_processes, n)
        for n in self.nodes.values():
            for f in (n.mnt_ns, n.uts_ns):
                if _is_mountpoint(f):
                    attempt(f"umount {f}", _run, ["umount", f], 10)
        if self._ns_dir_mounted:
            attempt(f"umount {self.ns_dir}", _run, ["umount", self.ns_dir], 10)
            if _is_mountpoint(self.ns_dir):
                attempt(f"umount -l {self.ns_dir}", _run, ["umount", "-l", self.ns_dir], 10)
        for n in self.nodes.values():
            if n.netns_made:
                attempt(f"ip netns del {n.netns}", _run, ["ip", "netns", "del", n.netns], 10)
        if self.workdir and self._own_workdir and os.path.isdir(self.workdir):
            left = _mounts_under(self.workdir)
            if left:
                problems.append(f"still mounted, not removing {self.workdir}: {left}")
            elif not self.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    # ------------------------------------------------------------ bring-up

    def _left(self):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"bring-up took more than {self.timeout}s")
        return left

    def _bring_up(self):
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="poolfs-tls-")
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        for short in NODES:
            n = Node(short, self.workdir, self.token)
            self.nodes[short] = n
            for d in (n.dir, n.run_dir, *(os.path.join(n.pools_dir, p) for p in POOLS.values())):
                os.makedirs(d, exist_ok=True)
        self._make_certificates()
        self._make_qemu_tls()
        self._write_hosts_file()
        self._make_network()
        self._make_namespaces()
        for n in self.nodes.values():
            self._write_libvirtd_conf(n)
            self._start_libvirtd(n)
        self._wait_for_libvirtds()
        for n in self.nodes.values():
            for pool, sub in POOLS.items():
                _run(["virsh", "-q", "-c", n.local_uri, "pool-create-as", pool, "dir",
                      "--target", os.path.join(n.pools_dir, sub)], timeout=self._left())

    def _make_certificates(self):
        self.ca_dir = os.path.join(self.workdir, "pki", "ca")
        self.tls_setup("--ca-dir", self.ca_dir, "ca", timeout=self._left())
        for n in self.nodes.values():
            self.tls_setup("--ca-dir", self.ca_dir, "--dest", n.server_pki,
                           "server", n.fqdn, n.ip, timeout=self._left())
            self.tls_setup("--ca-dir", self.ca_dir, "--dest", n.client_pki,
                           "client", n.fqdn, timeout=self._left())

    def _make_qemu_tls(self):
        """QEMU's own x509 directory per node (default_tls_x509_cert_dir,
        QEMU's file names), for native TLS migration between the nodes, and
        the qemu.conf lines that use it."""
        for n in self.nodes.values():
            d = os.path.join(n.dir, "qemu-pki")
            os.makedirs(d, exist_ok=True)
            for src, dst in ((os.path.join(n.server_pki, "cacert.pem"), "ca-cert.pem"),
                             (os.path.join(n.server_pki, "servercert.pem"), "server-cert.pem"),
                             (os.path.join(n.server_pki, "serverkey.pem"), "server-key.pem"),
                             (os.path.join(n.client_pki, "clientcert.pem"), "client-cert.pem"),
                             (os.path.join(n.client_pki, "clientkey.pem"), "client-key.pem")):
                shutil.copyfile(src, os.path.join(d, dst))
            n.qemu_conf_extra = os.path.join(n.dir, "qemu.conf.extra")
            with open(n.qemu_conf_extra, "w") as f:
                f.write(f'stdio_handler = "file"\n'
                        f'default_tls_x509_cert_dir = "{d}"\n'
                        f'migration_host = "{n.fqdn}"\n')

    def _write_hosts_file(self):
        self.hosts_file = os.path.join(self.workdir, "hosts")
        with open(self.hosts_file, "w") as f:
            f.write("# poolfs TLS test hosts (bind-mounted over /etc/hosts on the nodes)\n")
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            for n in self.nodes.values():
                f.write(f"{n.ip}\t{n.fqdn}\n")
        os.chmod(self.hosts_file, 0o644)

    def _make_network(self):
        a, b = self.nodes["nodea"], self.nodes["nodeb"]
        for n in (a, b):
            p = _run(["ip", "netns", "add", n.netns], timeout=self._left(), check=False)
            if p.returncode != 0:
                raise Unavailable(f"cannot create a network namespace "
                                  f"(ip netns add: {p.stderr.strip()})")
            n.netns_made = True
        # The veth pair is made directly inside the two namespaces, so no
        # interface ever shows up in the host's namespace.
        p = _run(["ip", "link", "add", "eth0", "netns", a.netns, "type", "veth",
                  "peer", "name", "eth0", "netns", b.netns], timeout=self._left(), check=False)
        if p.returncode != 0:
            raise Unavailable(f"cannot create a veth pair: {p.stderr.strip()}")
        for n in (a, b):
            for cmd in (["link", "set", "lo", "up"],
                        ["addr", "add", f"{n.ip}/{PREFIXLEN}", "dev", "eth0"],
                        ["link", "set", "eth0", "up"]):
                _run(["ip", "-n", n.netns, *cmd], timeout=self._left())

    def _make_namespaces(self):
        # The namespace files must sit on a private mount (the kernel refuses
        # to bind a mount namespace where it could propagate into itself).
        self.ns_dir = os.path.join(self.workdir, "ns")
        os.makedirs(self.ns_dir, exist_ok=True)
        _run(["mount", "--bind", self.ns_dir, self.ns_dir], timeout=self._left())
        self._ns_dir_mounted = True
        _run(["mount", "--make-private", self.ns_dir], timeout=self._left())
        init = r"""
set -e
hosts=$1; fqdn=$2
# Drop copies of poolfs mounts made before this namespace: a copy keeps a
# FUSE connection alive after the host unmounts it (see private-libvirtd.sh).
findmnt -rn -t fuse.poolfs -o TARGET | sort -r | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
done
for d in """ + " ".join(LIBVIRT_DIRS) + r"""; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
cat > /etc/libvirt/qemu.conf <<QCONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
QCONF
mount --bind "$hosts" /etc/hosts
hostname "$fqdn"
if [ -n "$3" ] && [ -f "$3" ]; then cat "$3" >> /etc/libvirt/qemu.conf; fi
mkdir -p /var/log/libvirt/qemu
"""
        for n in self.nodes.values():
            for f in (n.mnt_ns, n.uts_ns):
                open(f, "w").close()
            _run(["unshare", f"--mount={n.mnt_ns}", f"--uts={n.uts_ns}",
                  "--propagation", "slave", "sh", "-c", init, "sh", self.hosts_file, n.fqdn,
                  getattr(n, "qemu_conf_extra", "")],
                 timeout=self._left())
            st = os.stat(n.mnt_ns)
            n.ns_inode = (st.st_dev, st.st_ino)

    def _write_libvirtd_conf(self, n):
        allowed = [f"O={ORG},CN={m.fqdn}" for m in self.nodes.values()]
        allowed += [f"O={ORG},CN={cn}" for cn in self.allowed_clients]
        dn_list = ", ".join(f'"{dn}"' for dn in allowed)
        with open(n.conf, "w") as f:
            f.write(f"""\
# libvirtd of test host {n.fqdn} (tests/tlshosts.py)
listen_tls = 1
listen_tcp = 0
tls_port = "{TLS_PORT}"
listen_addr = "{n.ip}"
auth_tls = "none"
ca_file = "{n.server_pki}/cacert.pem"
cert_file = "{n.server_pki}/servercert.pem"
key_file = "{n.server_pki}/serverkey.pem"
tls_no_verify_certificate = 0
tls_allowed_dn_list = [{dn_list}]
unix_sock_dir = "{n.run_dir}"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:{n.log}"
""")

    def _start_libvirtd(self, n):
        for f in (n.pidfile, n.sock):
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        with open(n.stderr_log, "ab") as err:
            # nsenter execs libvirtd (no fork without --pid), so the Popen's
            # pid is libvirtd's.
            n.libvirtd = subprocess.Popen(
                self.nsenter_argv(n.short) + ["libvirtd", "--listen", "-f", n.conf,
                                              "-p", n.pidfile],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env={**_env(), **self.libvirtd_env},
                cwd=self.workdir, start_new_session=True)

    def _wait_for_libvirtds(self):
        pending = set(self.nodes)
        while pending:
            for short in sorted(pending):
                n = self.nodes[short]
                if n.libvirtd.poll() is not None:
                    raise RuntimeError(
                        f"{short}: libvirtd exited with status {n.libvirtd.returncode}:\n"
                        + self._log_tail(n))
                if os.path.exists(n.sock):
                    p = _run(["virsh", "-q", "-c", n.local_uri, "uri"],
                             timeout=max(1, min(10, self._deadline - time.monotonic())),
                             check=False)
                    if p.returncode == 0:
                        pending.discard(short)
            if pending:
                if time.monotonic() >= self._deadline:
                    raise RuntimeError(
                        f"libvirtd did not come up within {self.timeout}s on "
                        f"{', '.join(sorted(pending))}:\n"
                        + "\n".join(self._log_tail(self.nodes[s]) for s in sorted(pending)))
                time.sleep(0.1)

    def _log_tail(self, n, lines=15):
        text = self.libvirtd_log(n.short).strip().splitlines()
        return "\n".join(f"  [{n.short}] {line}" for line in text[-lines:])

    def _kill_ns_processes(self, n):
        if n.ns_inode is None:
            return
        for _ in range(3):
            pids = []
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    st = os.stat(f"/proc/{entry}/ns/mnt")
                    if (st.st_dev, st.st_ino) == n.ns_inode:
                        pids.append(int(entry))
                except OSError:
                    continue
            pids = [p for p in pids if p != os.getpid()]
            if not pids:
                return
            for pid in pids:
                _stop_pid(pid, timeout=3)
