"""libvirt over TLS between two test hosts, as poolfs's cold migration uses it.

Two nodes (network + mount namespaces, each with its own libvirtd listening
for TLS) come up once for the module (tests/tlshosts.py).  Every client runs
"on" a node: in its network namespace, with the test hosts file as
/etc/hosts.  The module skips when the machine cannot make the nodes (not
root, no `ip netns`, no certtool/openssl); a libvirtd that does not come up is
a failure.

The refusals are checked on both ends: what the client gets (what poolfs
will have to recognise) and why the server says it refused (its log).
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tlshosts import (BASE_POOL, DISKS_POOL, TLS_SETUP, TwoHosts,  # noqa: E402
                      Unavailable)

ALIAS = "nodeb-alias.poolfs.test"

# What the client side reports (LC_ALL=C), libvirt 9.0 / GnuTLS 3.7:
# - the server's certificate does not carry the name in the URI:
HOSTNAME_MISMATCH = "owner does not match the hostname"
# - the client rejected the server's certificate (any reason; a libvirt
#   warning before it says which):
PEER_CERT_REJECTED = "authentication failed: Failed to verify peer's certificate"
# - the server rejected the client's certificate (the client is not told why):
SERVER_REFUSED = "Unable to read TLS confirmation"
# What the server logs when it refuses a client:
UNKNOWN_ISSUER = "The certificate hasn't got a known issuer"
DN_NOT_ALLOWED = "Distinguished Name is not on the list of allowed clients"


@pytest.fixture(scope="module")
def hosts():
    try:
        h = TwoHosts().start()
    except Unavailable as e:
        pytest.skip(f"cannot make the two TLS test hosts here: {e}")
    try:
        h.add_alias(ALIAS, "nodeb")
        yield h
    finally:
        problems = h.close()
    assert not problems, "TwoHosts teardown: " + "; ".join(problems)


def failed(p):
    return f"status {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"


def test_bringup_is_quick(hosts):
    assert hosts.bringup_seconds < 30


def test_pool_list_over_tls_from_node_a(hosts):
    uri = hosts.uri("nodeb")
    assert uri.startswith("qemu+tls://nodeb.poolfs.test/system?pkipath=")
    p = hosts.run_on("nodea", ["virsh", "-q", "-c", uri, "pool-list", "--all", "--name"])
    assert p.returncode == 0, failed(p)
    assert set(p.stdout.split()) == {DISKS_POOL, BASE_POOL}
    # It really is node B's daemon that answered, through the TLS transport.
    p = hosts.virsh("nodea", "nodeb", "hostname")
    assert p.returncode == 0 and p.stdout.strip() == "nodeb.poolfs.test", failed(p)
    p = hosts.virsh("nodea", "nodeb", "pool-dumpxml", DISKS_POOL)
    assert f"<path>{hosts.disks_dir('nodeb')}</path>" in p.stdout, failed(p)


def test_node_b_reaches_node_a(hosts):
    p = hosts.virsh("nodeb", "nodea", "pool-list", "--all", "--name")
    assert p.returncode == 0, failed(p)
    assert set(p.stdout.split()) == {DISKS_POOL, BASE_POOL}


def test_ip_address_in_certificate_is_accepted(hosts):
    p = hosts.virsh("nodea", "nodeb", "hostname", host=hosts.ip("nodeb"))
    assert p.returncode == 0 and p.stdout.strip() == "nodeb.poolfs.test", failed(p)


def test_volume_streams_over_tls(hosts):
    """Upload from node A to node B's pool over TLS, read it back locally on B."""
    data = os.urandom(3 * 1024 * 1024 + 4097)
    src = os.path.join(hosts.workdir, "nodea", "upload.bin")
    back = os.path.join(hosts.workdir, "nodeb", "download.bin")
    vol = "tls-stream-test"
    with open(src, "wb") as f:
        f.write(data)
    try:
        p = hosts.virsh("nodea", "nodeb", "vol-create-as", DISKS_POOL, vol, str(len(data)),
                        "--format", "raw")
        assert p.returncode == 0, failed(p)
        p = hosts.virsh("nodea", "nodeb", "vol-upload", "--pool", DISKS_POOL, vol, src)
        assert p.returncode == 0, failed(p)
        with open(os.path.join(hosts.disks_dir("nodeb"), vol), "rb") as f:
            assert f.read() == data
        p = hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                                   "vol-download", "--pool", DISKS_POOL, vol, back])
        assert p.returncode == 0, failed(p)
        with open(back, "rb") as f:
            assert f.read() == data
    finally:
        hosts.run_on("nodeb", ["virsh", "-q", "-c", hosts.local_uri("nodeb"),
                               "vol-delete", "--pool", DISKS_POOL, vol])
        for f in (src, back):
            if os.path.exists(f):
                os.unlink(f)


def test_client_certificate_from_another_ca_is_refused(hosts):
    other_ca = hosts.make_ca("rogue")
    # The rogue client trusts the real CA too, so it gets as far as
    # presenting its certificate: the server must be the one that refuses.
    pki = hosts.make_client("nodea.poolfs.test", ca_dir=other_ca,
                            trust_also=[os.path.join(hosts.ca_dir, "cacert.pem")])
    mark = hosts.log_offset("nodeb")
    p = hosts.virsh("nodea", "nodeb", "pool-list", pki=pki)
    assert p.returncode != 0, failed(p)
    assert SERVER_REFUSED in p.stderr and "TLS" in p.stderr, failed(p)
    assert DISKS_POOL not in p.stdout
    log = hosts.wait_for_log("nodeb", UNKNOWN_ISSUER, since=mark)
    assert UNKNOWN_ISSUER in log and "Failed to verify peer's certificate" in log, log


def test_client_trusting_only_another_ca_refuses_the_server(hosts):
    other_ca = hosts.make_ca("stranger")
    pki = hosts.make_client("nodea.poolfs.test", ca_dir=other_ca)
    p = hosts.virsh("nodea", "nodeb", "pool-list", pki=pki)
    assert p.returncode != 0, failed(p)
    assert PEER_CERT_REJECTED in p.stderr, failed(p)
    assert UNKNOWN_ISSUER in p.stderr, failed(p)


def test_name_not_in_server_certificate_is_refused(hosts):
    # The alias resolves to node B's address on node A ...
    p = hosts.run_on("nodea", ["getent", "hosts", ALIAS])
    assert p.returncode == 0 and p.stdout.split()[0] == hosts.ip("nodeb"), failed(p)
    # ... but B's certificate does not carry it.
    p = hosts.virsh("nodea", "nodeb", "pool-list", host=ALIAS)
    assert p.returncode != 0, failed(p)
    assert f"{HOSTNAME_MISMATCH} {ALIAS}" in p.stderr, failed(p)
    assert PEER_CERT_REJECTED in p.stderr, failed(p)


def test_client_not_in_tls_allowed_dn_list_is_refused(hosts):
    pki = hosts.make_client("intruder.poolfs.test")     # signed by the right CA
    mark = hosts.log_offset("nodeb")
    p = hosts.virsh("nodea", "nodeb", "pool-list", pki=pki)
    assert p.returncode != 0, failed(p)
    assert SERVER_REFUSED in p.stderr, failed(p)
    log = hosts.wait_for_log("nodeb", DN_NOT_ALLOWED, since=mark)
    assert DN_NOT_ALLOWED in log, log


def test_openssl_ecdsa_client_certificate_is_accepted(hosts):
    """libvirt-tls-setup.sh --tool openssl --key-type ecdsa makes certificates
    libvirt 9.0 takes (certtool cannot: see the next test)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = hosts.make_client("nodea.poolfs.test", tool="openssl", key_type="ecdsa",
                            dest=os.path.join(hosts.workdir, "extra", "openssl-ecdsa"))
    p = hosts.virsh("nodea", "nodeb", "hostname", pki=pki)
    assert p.returncode == 0 and p.stdout.strip() == "nodeb.poolfs.test", failed(p)


def test_setup_script_refuses_certtool_ecdsa_leaf(hosts, tmp_path):
    if shutil.which("certtool") is None:
        pytest.skip("certtool is not installed")
    p = subprocess.run([TLS_SETUP, "--tool", "certtool", "--key-type", "ecdsa",
                        "--ca-dir", hosts.ca_dir, "--dest", str(tmp_path / "c"),
                        "client", "x.poolfs.test"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, failed(p)
    assert "key encipherment" in p.stderr
    assert not (tmp_path / "c").exists()


def test_setup_script_is_idempotent(hosts, tmp_path):
    dest = tmp_path / "server"
    shutil.copytree(hosts.server_pki("nodea"), dest)
    before = {f: (dest / f).read_bytes() for f in os.listdir(dest)}
    p = hosts.tls_setup("--ca-dir", hosts.ca_dir, "--dest", str(dest),
                        "server", "nodea.poolfs.test", hosts.ip("nodea"))
    assert "kept" in p.stdout, failed(p)
    assert {f: (dest / f).read_bytes() for f in os.listdir(dest)} == before
    # A name the certificate lacks makes it reissue.
    p = hosts.tls_setup("--ca-dir", hosts.ca_dir, "--dest", str(dest),
                        "server", "nodea.poolfs.test", hosts.ip("nodea"), "nodea-new.poolfs.test")
    assert "reissuing" in p.stdout, failed(p)
    assert (dest / "servercert.pem").read_bytes() != before["servercert.pem"]
    p = hosts.tls_setup("--dest", str(dest), "check", "server")
    assert "nodea-new.poolfs.test" in p.stdout, failed(p)
    assert (dest / "serverkey.pem").stat().st_mode & 0o777 == 0o600


def test_no_ssh_anywhere_in_the_setup(hosts):
    started = hosts.created_at
    for node in ("nodea", "nodeb"):
        assert "+ssh" not in hosts.uri(node)
        # Nothing listens but libvirtd's TLS port on either node.
        p = hosts.run_on(node, ["ss", "-Hltn"])
        assert p.returncode == 0, failed(p)
        ports = {line.split()[3].rsplit(":", 1)[1] for line in p.stdout.splitlines() if line.strip()}
        assert ports == {"16514"}, p.stdout
    # No sshd in the nodes' namespaces, and none started since the setup began.
    netns = {os.stat(f"/run/netns/{hosts.netns(n)}").st_ino for n in ("nodea", "nodeb")}
    boot = time.time() - float(open("/proc/uptime").read().split()[0])
    hz = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            if comm != "sshd":
                continue
            in_node = os.stat(f"/proc/{pid}/ns/net").st_ino in netns
            start = boot + int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]) / hz
        except OSError:
            continue
        assert not in_node, f"sshd (pid {pid}) runs in a test node"
        assert start < started - 1, f"an sshd (pid {pid}) started during the setup"
    # No SSH key material anywhere the setup wrote ...
    key_markers = (b"OPENSSH PRIVATE KEY", b"ssh-rsa ", b"ssh-ed25519 ", b"ecdsa-sha2-")
    for root, _, files in os.walk(hosts.workdir):
        if root.startswith(hosts.ns_dir):
            continue
        for name in files:
            assert not (name.startswith("id_") or name in ("authorized_keys", "known_hosts")
                        or name.endswith(".pub")), os.path.join(root, name)
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue        # sockets, pid files' neighbours...
            with open(path, "rb") as f:
                head = f.read(1 << 16)
            assert not any(m in head for m in key_markers), path
    # ... and nothing new in root's ~/.ssh.
    for d in {os.path.expanduser("~/.ssh"), "/root/.ssh"}:
        if os.path.isdir(d):
            fresh = [e for e in os.listdir(d) if os.lstat(os.path.join(d, e)).st_ctime >= started]
            assert not fresh, f"the setup touched {d}: {fresh}"


def test_system_layout_passes_virt_pki_validate(tmp_path):
    """Without --dest the script installs where libvirt looks by default
    (/etc/pki/...): done under an overlay of /etc in a throw-away mount
    namespace, so the machine's /etc is never written, then checked with
    libvirt's own virt-pki-validate."""
    for tool in ("virt-pki-validate", "certtool", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    etc_pki_before = os.path.exists("/etc/pki") and sorted(os.listdir("/etc/pki"))
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    script = f"""
set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc
hostname nodex.poolfs.test
S={TLS_SETUP}
$S --ca-dir {tmp_path}/ca ca
# a bundle made "on the admin host", installed "on the node" ...
$S --ca-dir {tmp_path}/ca --dest {tmp_path}/bundle server nodex.poolfs.test 192.0.2.9
$S install server {tmp_path}/bundle
# ... and a client certificate issued straight into place
$S --ca-dir {tmp_path}/ca client nodex.poolfs.test
$S check server
$S check client
echo ==== virt-pki-validate
virt-pki-validate
"""
    p = subprocess.run(["unshare", "-m", "-u", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "LC_ALL": "C"})
    if p.returncode != 0 and "overlay" in p.stderr and "mount" in p.stderr:
        pytest.skip(f"cannot mount an overlay on /etc here: {p.stderr.strip()}")
    assert p.returncode == 0, failed(p)
    validate = p.stdout.split("==== virt-pki-validate", 1)[1]
    assert "Found CA certificate /etc/pki/CA/cacert.pem for poolfs" in validate, validate
    assert "Found client certificate /etc/pki/libvirt/clientcert.pem for nodex.poolfs.test" in validate
    assert "Found server certificate /etc/pki/libvirt/servercert.pem for nodex.poolfs.test" in validate
    assert "Found server private key /etc/pki/libvirt/private/serverkey.pem" in validate
    assert "Found client private key /etc/pki/libvirt/private/clientkey.pem" in validate
    assert not re.search(r"do not match|does not seem to match|Missing|cannot act", validate), validate
    # The layout the script wrote, seen in the overlay's upper directory.
    for f in ("pki/CA/cacert.pem", "pki/libvirt/servercert.pem", "pki/libvirt/clientcert.pem",
              "pki/libvirt/private/serverkey.pem", "pki/libvirt/private/clientkey.pem"):
        assert (upper / f).is_file(), f
    assert (upper / "pki/libvirt/private/serverkey.pem").stat().st_mode & 0o777 == 0o600
    # The machine's own /etc was not touched.
    assert (os.path.exists("/etc/pki") and sorted(os.listdir("/etc/pki"))) == etc_pki_before
