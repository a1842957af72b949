#!/bin/bash
# poolfs migration benchmark: a benchmark, not a test.  Between the two test
# hosts of tests/tlshosts.py (network namespaces nodea/nodeb joined by a veth,
# a TLS libvirtd each), it moves one image from node A's disks pool to node
# B's, with:
#
#   poolfsctl migrate                 (default: verified) and --no-verify
#   cp --sparse=always                across two poolfs mounts on A: A's pools
#                                     locally, B's pools over TLS (io=stream)
#   scp, rsync over SSH               with the flags of Nova's libvirt driver
#                                     (below), to an sshd the bench runs in
#                                     node B's namespaces
#   virsh vol-download | vol-upload   the pipe (not sparse: virsh cannot
#                                     --sparse on a pipe), and --sparse
#                                     through a temporary file on A
#   the link limits                   raw TCP and TLS (socat), sending only
#                                     the allocated bytes of the image
#
# twice: a qcow2 image (8 GiB virtual, 1.5 GiB of random data written with
# qemu-io at scattered places) and a raw sparse file (same: 1.5 GiB of random
# data scattered over 8 GiB, plus 4 MiB of written zeros).  For each method:
# wall time, CPU (client process tree; A's libvirtd; B's libvirtd + sshd or
# receiver), bytes on node A's veth, allocation of B's copy, cmp of B's copy
# with the source (first run), ratios to rsync and to the TLS limit, and the
# peak memory (VmHWM) of poolfs and poolfsctl.  Medians of --runs runs,
# interleaved; caches dropped before every run.
#
#   sudo tests/bench/bench_migrate.sh [-o FILE] [--quick] [--runs N] [--keep]
#                                     [--methods LIST] [--images LIST]
#                                     [--workdir DIR] [--tuned-libvirtd]
#
#   -o FILE         also write the markdown report to FILE (it always goes to
#                   stdout; progress goes to stderr)
#   --quick         a 1 GiB image with 200 MiB of data, 1 run (development)
#   --runs N        runs per method (default 3; 1 with --quick)
#   --keep          keep the work directory (images, logs) afterwards
#   --methods LIST  a subset of ctl,ctl-noverify,ctl-pull,ctl-pull-noverify,
#                   ctl-pull-1,ctl-pull-8,ctl-pull-generic,cp,scp,rsync,
#                   virsh-pipe,virsh-sparse,tcp,tls (default: all; ctl-pull*
#                   run poolfsctl on B, -1 and -8 with --parallel 1 and 8,
#                   -generic with POOLFS_DIGEST_SIMD=0)
#   --images LIST   a subset of qcow2,raw (default: both)
#   --workdir DIR   parent of the work directory (default /var/tmp); the full
#                   run needs about 15 GiB free there
#   --tuned-libvirtd  start both libvirtds with the environment of
#                   contrib/libvirtd-streams.conf (glibc's mmap threshold
#                   raised for libvirt's stream buffers)
#
# Nova's flags (openstack/nova master at commit 00a03040, 2026-08-21;
# nova/virt/libvirt/volume/remotefs.py, lines 190-197 and 310-316):
#     class RsyncDriver:  def copy_file(self, src, dst, on_execute, on_completion, compression):
#                             args = ['rsync', '-r', '--sparse', src, dst]
#                             if compression: args.append('--compress')
#     class SshDriver:    def copy_file(...):
#                             args = ['scp']; if compression: args.append('-C')
#                             args.extend(['-r', src, dst])
# and nova/virt/libvirt/driver.py, migrate_disk_and_power_off (the resize /
# cold-migration copy, via libvirt_utils.copy_image): compression =
# info['type'] not in NO_COMPRESSION_TYPES (line 12819), with
# NO_COMPRESSION_TYPES = ('qcow2',) (line 217).  So the qcow2 image goes with
# `rsync -r --sparse` / `scp -r`, the raw one with `rsync -r --sparse
# --compress` / `scp -C -r`.  (Older Nova, e.g. commit 04d13c84, ran
# `rsync --sparse SRC DST [--compress]` and `scp SRC DST`.)  The bench adds
# only what reaches its own sshd: -F /dev/null, -i KEY, -o IdentitiesOnly=yes,
# -o BatchMode=yes, -o UserKnownHostsFile=WORKDIR/...,
# -o StrictHostKeyChecking=no, the port.
#
# Needs root (namespaces, libvirtd, FUSE, drop_caches).  Installs with apt
# what is missing (openssh-server, openssh-client, rsync, socat, qemu-utils,
# fuse3; the libvirt packages through contrib/install-deps.sh), builds with
# ninja if build/fs/poolfs or build/migrate/poolfsctl is missing.  Never
# touches /etc/ssh or ~/.ssh: sshd runs with -f a private config, -D, on node
# B's veth address, with host and user keys made in the work directory, and
# its privilege separation directory on a tmpfs in a mount namespace of its
# own.  All traffic stays inside the two namespaces.  Everything (mounts,
# sshd, receivers, libvirtds, namespaces, the work directory) is removed on
# exit, also on failure or Ctrl-C.  Waits for /tmp/poolfs-bench.lock, so it
# never runs at the same time as another benchmark that takes it.
#
# The methodology is printed with the report ("What was measured").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
    sed -n '/^#   sudo tests/,/^#                   run needs/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

args=()
while [ $# -gt 0 ]; do
    case $1 in
        -o) [ $# -ge 2 ] || usage; args+=(-o "$(realpath -m "$2")"); shift 2 ;;
        --quick|--keep|--tuned-libvirtd) args+=("$1"); shift ;;
        --runs)
            [ $# -ge 2 ] || usage
            case $2 in ''|*[!0-9]*|0) echo "bench_migrate: --runs must be a positive integer" >&2; exit 2 ;; esac
            args+=(--runs "$2"); shift 2 ;;
        --methods|--images|--workdir) [ $# -ge 2 ] || usage; args+=("$1" "$2"); shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench_migrate: unknown argument: $1" >&2; usage ;;
    esac
done

log() { printf '[bench_migrate %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench_migrate: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, libvirtd, FUSE, drop_caches); try: sudo $0"

# One benchmark at a time on this machine: wait for the others.
exec 9>/tmp/poolfs-bench.lock
if ! flock -n 9; then
    log "another benchmark holds /tmp/poolfs-bench.lock: waiting for it"
    flock 9
fi

# --- tools -----------------------------------------------------------------------
need_pkgs=()
need() { command -v "$1" >/dev/null || need_pkgs+=("$2"); }
need ssh openssh-client
need scp openssh-client
need ssh-keygen openssh-client
[ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
[ -x /usr/lib/openssh/sftp-server ] || need_pkgs+=(openssh-sftp-server)
need rsync rsync
need socat socat
need qemu-img qemu-utils
need qemu-io qemu-utils
need fusermount3 fuse3
need ss iproute2
need cmp diffutils
if [ ${#need_pkgs[@]} -gt 0 ]; then
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    log "installing with apt: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
        die "apt-get install ${need_pkgs[*]} failed"
fi
if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
    log "libvirtd/virsh missing: running contrib/install-deps.sh"
    "$repo/contrib/install-deps.sh" || die "contrib/install-deps.sh failed"
fi
if [ ! -x "$repo/build/fs/poolfs" ] || [ ! -x "$repo/build/migrate/poolfsctl" ]; then
    log "building poolfs and poolfsctl"
    [ -d "$repo/build" ] || meson setup "$repo/build" "$repo" >&2 || die "meson setup failed"
    ninja -C "$repo/build" >&2 || die "ninja -C build failed"
fi

# The rest (the two hosts, the images, the runs, the report) is Python: the
# test hosts are tests/tlshosts.py.  Debian's python3, which has what it
# needs.  exec: signals go straight to it, and it cleans up on its own; the
# lock (fd 9) stays held until it exits.
exec /usr/bin/python3 "$here/bench_migrate.py" "${args[@]}"
