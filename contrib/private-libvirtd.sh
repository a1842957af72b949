#!/bin/bash
# Run a private libvirtd that never touches the host's daemon or its state.
#
#   private-libvirtd.sh start DIR   start one; prints its URI on stdout
#   private-libvirtd.sh stop DIR    stop the one started with DIR
#
# The daemon runs in its own mount namespace, with empty tmpfs over
# /run/libvirt, /etc/libvirt, /var/lib/libvirt and /var/cache/libvirt, so
# its pool definitions and state vanish with it and two of them can run at
# once.  Mounts made on the host later (a poolfs mount) propagate into its
# namespace, so libvirtd sees the instances tree as QEMU would.  Its socket,
# pid file and log are in DIR.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
# DIR holds what root writes, runs and reads back (the config, the
# namespace's init script, the pid that stop kills): not a link, and this
# user's own, writable by no one else (a directory in /var/tmp that
# another user made first would let them plant links or scripts).
if [ -L "${2%/}" ]; then
    echo "$0: $2 is a symbolic link: refusing it" >&2
    exit 1
fi
dir=$(realpath -m "$2")
own_dir() {
    local owner mode
    mkdir -p -m 0700 "$dir"
    owner=$(stat -c %u "$dir")
    mode=$(stat -c %a "$dir")
    if [ "$owner" != "$(id -u)" ] || (( 8#$mode & 8#022 )); then
        echo "$0: $dir is not this user's own directory (owner $owner," \
             "mode $mode): refusing it" >&2
        exit 1
    fi
}

start() {
    own_dir
    if [ -S "$dir/libvirt-sock" ] && [ -f "$dir/libvirtd.pid" ] &&
       kill -0 "$(cat "$dir/libvirtd.pid")" 2>/dev/null; then
        echo "qemu:///system?socket=$dir/libvirt-sock"
        return 0
    fi
    cat > "$dir/libvirtd.conf" <<CONF
unix_sock_dir = "$dir"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$dir/libvirtd.log"
CONF
    cat > "$dir/ns-init.sh" <<'INIT'
set -e
dir=$1
# A new mount namespace starts with a copy of every mount, and a copy of a
# FUSE mount keeps its connection alive after the host unmounts it (where
# mounts are private, as on this machine's root): its daemon would never
# see the unmount and never exit.  So drop the copies of poolfs mounts that
# exist now; mounts made later under a shared mount still propagate in.
findmnt -rn -t fuse.poolfs -o TARGET | sort -r | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
done
for d in /run/libvirt /etc/libvirt /var/lib/libvirt /var/cache/libvirt; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p /var/log/libvirt/qemu
cat > /etc/libvirt/qemu.conf <<QCONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
QCONF
if [ -f "$dir/qemu.conf.extra" ]; then cat "$dir/qemu.conf.extra" >> /etc/libvirt/qemu.conf; fi
exec libvirtd --listen -f "$dir/libvirtd.conf" -p "$dir/libvirtd.pid" 2>>"$dir/libvirtd.stderr"
INIT
    # --listen only matters when the caller's config asks for TCP/TLS.
    if ! grep -q '^listen_tls' "$dir/libvirtd.conf"; then
        sed -i 's/exec libvirtd --listen/exec libvirtd/' "$dir/ns-init.sh"
    fi
    rm -f "$dir/libvirt-sock" "$dir/libvirtd.pid"
    setsid unshare -m --propagation slave bash "$dir/ns-init.sh" "$dir" \
        </dev/null >/dev/null 2>&1 &
    for _ in $(seq 200); do
        if [ -S "$dir/libvirt-sock" ] &&
           virsh -q -c "qemu:///system?socket=$dir/libvirt-sock" \
                 pool-list --all >/dev/null 2>&1; then
            echo "qemu:///system?socket=$dir/libvirt-sock"
            return 0
        fi
        sleep 0.1
    done
    echo "private-libvirtd: libvirtd did not come up in 20 s; see $dir/libvirtd.stderr" >&2
    tail -n 5 "$dir/libvirtd.stderr" >&2 || true
    stop
    return 1
}

stop() {
    local pid
    [ -f "$dir/libvirtd.pid" ] || return 0
    own_dir
    pid=$(cat "$dir/libvirtd.pid")
    # Only a libvirtd: a pid file does not prove what runs under that pid.
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != libvirtd ]; then
        rm -f "$dir/libvirtd.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$dir/libvirtd.pid"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/libvirtd.pid"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
