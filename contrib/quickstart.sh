#!/bin/bash
# poolfs quickstart: from a fresh Debian 12 machine to a mounted Nova
# instances tree backed by libvirt storage pools, with one sample instance.
#
#   sudo contrib/quickstart.sh [start]   install deps, build, start, mount, demo
#   sudo contrib/quickstart.sh stop      unmount and stop the private libvirtd
#   sudo contrib/quickstart.sh status    say what is running
#   sudo contrib/quickstart.sh purge     stop, then delete the demo directory
#
# Everything lives in $POOLFS_DEMO_DIR (default /var/tmp/poolfs-demo):
#   libvirtd/         a private libvirtd (contrib/private-libvirtd.sh): the
#                     host's libvirtd, if any, is never touched
#   pools/disks/      target of the dir pool nova-disks-pool
#   pools/base/       target of the dir pool nova-base-images-pool
#   instances/        the poolfs mount (what Nova sees as /var/lib/nova/instances)
#   poolfs.log        poolfs's messages; poolfs.pid its pid
# POOLFS_BUILD_DIR overrides the meson build directory (default: build/).
#
# The pools are transient (virsh pool-create-as): they vanish when the private
# libvirtd stops, but their volumes' files stay in pools/, so `start` after
# `stop` brings the same tree back.  Running `start` twice is harmless.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${POOLFS_DEMO_DIR:-/var/tmp/poolfs-demo}
case $demo in
    /*) ;;
    *) demo=$(realpath -m "$demo") ;;
esac
demo=${demo%/}
case $demo in
    ''|/|/bin|/boot|/dev|/etc|/home|/lib|/proc|/root|/run|/sys|/tmp|/usr|/var|/var/tmp)
        echo "quickstart: refusing POOLFS_DEMO_DIR='$demo': use a directory of its own" >&2
        exit 2 ;;
esac
# Root writes and runs what is in it: a link, or a directory another user
# made first (in /var/tmp anyone can), is refused; checked now and again
# right after it is made (it may appear while the build runs).
demo_dir_check() {
    if [ -L "$demo" ] || { [ -e "$demo" ] &&
            { [ ! -d "$demo" ] || [ "$(stat -c %u "$demo")" != "$(id -u)" ] ||
              (( 8#$(stat -c %a "$demo") & 8#022 )); }; }; then
        echo "quickstart: refusing $demo: not a directory of this user's own" \
             "(a link, another owner, or writable by others)" >&2
        exit 2
    fi
}
demo_dir_check

lvdir=$demo/libvirtd
mnt=$demo/instances
disks_dir=$demo/pools/disks
base_dir=$demo/pools/base
# POOLFS_BUILD_DIR: the meson build directory (default: build in the repo).
build=${POOLFS_BUILD_DIR:-$repo/build}
poolfs=$build/fs/poolfs
pidfile=$demo/poolfs.pid
logfile=$demo/poolfs.log
disks_pool=nova-disks-pool
base_pool=nova-base-images-pool

# The sample instance.  Nova names a cached base image after the SHA-1 of
# its Glance image id; this one is the SHA-1 of a made-up id.
uuid=0b5d2c1e-8f4a-4c3b-9d6e-7a1f2b3c4d5e
base_name=$(printf '%s' 'poolfs-quickstart-image' | sha1sum | cut -c1-40)
pattern=0x5a     # every byte of the base image ('Z'), so reads can be checked

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf '\nquickstart: error: %s\n' "$1" >&2
    shift
    for l in "$@"; do printf '  %s\n' "$l" >&2; done
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] ||
        die "this must run as root: it installs packages, starts libvirtd and mounts a FUSE filesystem." \
            "run: sudo $0 ${1:-start}"
}

uri_of() { echo "qemu:///system?socket=$lvdir/libvirt-sock"; }
virsh_() { virsh -q -c "$(uri_of)" "$@"; }

is_mounted() { findmnt -rn --mountpoint "$mnt" >/dev/null 2>&1; }
# A FUSE mount whose daemon died answers "Transport endpoint is not connected".
mount_is_stale() { is_mounted && ! stat "$mnt/." >/dev/null 2>&1; }

poolfs_pid() {   # prints the pid of our poolfs, if it still runs
    local pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = poolfs ] || return 1
    echo "$pid"
}

libvirtd_running() {
    [ -f "$lvdir/libvirtd.pid" ] && kill -0 "$(cat "$lvdir/libvirtd.pid")" 2>/dev/null &&
        virsh_ pool-list --all >/dev/null 2>&1
}

# --- stop -------------------------------------------------------------------------
unmount_poolfs() {
    local pid
    if mount_is_stale; then
        info "the mount at $mnt is stale (poolfs died); detaching it"
        fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt"
    elif is_mounted; then
        info "unmounting $mnt"
        if ! fusermount3 -u "$mnt" 2>"$demo/.umount.err"; then
            die "could not unmount $mnt: $(cat "$demo/.umount.err")" \
                "Something still uses it: a shell whose current directory is inside it," \
                "or a program with a file open there.  Close it and run '$0 stop' again," \
                "or detach it anyway with: fusermount3 -u -z $mnt"
        fi
    fi
    rm -f "$demo/.umount.err"
    if pid=$(poolfs_pid); then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            info "poolfs (pid $pid) did not exit after the unmount; sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
    rm -f "$pidfile"
}

do_stop() {   # [purge]
    need_root "${1:-stop}"
    if [ ! -d "$demo" ]; then
        echo "quickstart: nothing to stop ($demo does not exist)"
        return 0
    fi
    say "Stopping the poolfs demo in $demo"
    unmount_poolfs
    if [ -f "$lvdir/libvirtd.pid" ]; then
        info "stopping the private libvirtd"
        "$repo/contrib/private-libvirtd.sh" stop "$lvdir"
    fi
    if [ "${1:-}" != purge ]; then
        info "stopped.  The volumes' files are kept in $demo/pools;"
        info "'$0' mounts them again, '$0 purge' deletes them."
    fi
}

do_purge() {
    do_stop purge
    [ -d "$demo" ] || return 0
    if findmnt -rn -o TARGET | grep -qF "$demo/"; then
        die "something is still mounted under $demo; not deleting it:" \
            "$(findmnt -rn -o TARGET | grep -F "$demo/")"
    fi
    rm -rf "$demo"
    info "deleted $demo"
}

do_status() {
    echo "demo dir:  $demo"
    if libvirtd_running; then
        echo "libvirtd:  running, $(uri_of)"
        virsh_ pool-list --all | sed 's/^/           /'
    else
        echo "libvirtd:  not running"
    fi
    if mount_is_stale; then
        echo "mount:     STALE at $mnt (poolfs died; '$0 stop' detaches it)"
    elif is_mounted; then
        echo "mount:     $mnt ($(findmnt -rn -o FSTYPE --mountpoint "$mnt"), poolfs pid $(poolfs_pid || echo '?'))"
    else
        echo "mount:     not mounted"
    fi
}

# --- start ------------------------------------------------------------------------
# What this run started, so that a failure undoes exactly that (the logs stay).
started_libvirtd=0
started_mount=0
on_start_exit() {
    local rc=$?
    trap - EXIT
    if [ $rc -ne 0 ]; then
        set +e
        echo >&2
        echo "quickstart: start failed; undoing what this run started (logs stay in $demo)" >&2
        if [ $started_mount -eq 1 ]; then
            if [ -s "$logfile" ]; then
                echo "  last lines of $logfile:" >&2
                tail -n 5 "$logfile" | sed 's/^/    /' >&2
            fi
            (unmount_poolfs) >&2 || fusermount3 -u -z "$mnt" 2>/dev/null
        fi
        if [ $started_libvirtd -eq 1 ]; then
            "$repo/contrib/private-libvirtd.sh" stop "$lvdir" >&2
        fi
    fi
    exit $rc
}

on_err() {
    printf '\nquickstart: error: command failed (exit %s) at line %s: %s\n' "$1" "$2" "$3" >&2
}

create_pool() {   # name target
    local name=$1 target=$2 cur
    mkdir -p "$target"
    if virsh_ pool-info "$name" >/dev/null 2>&1; then
        cur=$(virsh_ pool-dumpxml "$name" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -n 1)
        [ "$cur" = "$target" ] ||
            die "pool $name already exists in this libvirtd with target '$cur', not '$target'" \
                "run '$0 stop' and start again"
        virsh_ pool-refresh "$name" >/dev/null
        info "pool $name exists (target $target)"
    else
        virsh_ pool-create-as "$name" dir --target "$target" >/dev/null ||
            die "virsh pool-create-as $name failed; see $lvdir/libvirtd.log"
        info "created transient dir pool $name (target $target)"
    fi
}

mount_poolfs() {
    local pid
    if mount_is_stale; then
        info "found a stale mount at $mnt (poolfs died); detaching it"
        fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt"
        rm -f "$pidfile"
    fi
    if is_mounted; then
        local fstype
        fstype=$(findmnt -rn -o FSTYPE --mountpoint "$mnt")
        case $fstype in
            fuse|fuse.*) info "poolfs is already mounted at $mnt" ; return 0 ;;
            *) die "$mnt is already a mount point of type $fstype, not poolfs" ;;
        esac
    fi
    mkdir -p "$mnt"
    info "mounting poolfs at $mnt"
    echo "--- $(date '+%F %T') $poolfs -f -o disks_pool=$disks_pool,base_pool=$base_pool $(uri_of) $mnt" >>"$logfile"
    # -f keeps it in the foreground so its messages go to poolfs.log and its
    # pid is known; setsid detaches it from this terminal.
    setsid "$poolfs" -f -o "disks_pool=$disks_pool,base_pool=$base_pool" \
        "$(uri_of)" "$mnt" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    started_mount=1
    for _ in $(seq 100); do
        is_mounted && break
        kill -0 "$pid" 2>/dev/null ||
            die "poolfs exited before mounting; last lines of $logfile:" "$(tail -n 5 "$logfile")"
        sleep 0.1
    done
    is_mounted || die "poolfs did not mount $mnt within 10 s; see $logfile"
    stat "$mnt/." >/dev/null || die "poolfs mounted $mnt but it cannot be read; see $logfile"
}

create_sample() {
    local base=$mnt/_base/$base_name dir=$mnt/$uuid
    # Base image: raw, 256 MiB, every byte $pattern.
    # (qemu-io exits 1 when a read -P finds other data.)
    if [ -f "$base" ] && qemu-io -r -f raw -c "read -q -P $pattern 0 1M" \
            -c "read -q -P $pattern 255M 1M" "$base" >/dev/null 2>&1; then
        info "base image _base/$base_name exists"
    else
        info "creating base image _base/$base_name (raw, 256 MiB, every byte $pattern)"
        [ -f "$base" ] || qemu-img create -q -f raw "$base" 256M ||
            die "qemu-img create $base failed (poolfs log: $logfile)"
        qemu-io -f raw -c "write -q -P $pattern 0 256M" "$base" ||
            die "qemu-io could not write the pattern into $base (poolfs log: $logfile)"
    fi
    if [ -d "$dir" ]; then
        info "instance directory $uuid exists"
    else
        info "mkdir $uuid (creates the marker volume ${uuid}_)"
        mkdir "$dir" || die "mkdir $dir failed (poolfs log: $logfile)"
    fi
    if [ -f "$dir/disk" ]; then
        info "$uuid/disk exists"
    else
        info "creating $uuid/disk: qcow2, 1 GiB, backed by _base/$base_name"
        qemu-img create -q -f qcow2 -b "$base" -F raw "$dir/disk" 1G ||
            die "qemu-img create $dir/disk failed (poolfs log: $logfile)"
    fi
    # disk.info as Nova writes it: json.dumps({path: format}).
    local want
    want=$(printf '{"%s": "qcow2"}' "$dir/disk")
    if [ "$(cat "$dir/disk.info" 2>/dev/null)" != "$want" ]; then
        info "writing $uuid/disk.info"
        printf '%s' "$want" >"$dir/disk.info" || die "could not write $dir/disk.info"
    fi
    if [ ! -s "$dir/console.log" ]; then
        info "writing $uuid/console.log"
        {
            echo "[    0.000000] Linux version 6.1.0-poolfs-demo (a sample console log)"
            echo "[    0.412345] EXT4-fs (vda1): mounted filesystem with ordered data mode"
            echo "poolfs-demo login: "
        } >"$dir/console.log" || die "could not write $dir/console.log"
    fi
    # The guest's view: the first MiB of the overlay comes from the base image.
    qemu-io -r -f qcow2 -c "read -q -P $pattern 0 1M" "$dir/disk" >"$demo/.verify" 2>&1 ||
        die "reading $uuid/disk through its backing chain did not return the base image's data:" \
            "$(cat "$demo/.verify")"
    rm -f "$demo/.verify"
    info "read back through the chain: disk -> _base/$base_name returns $pattern as written"
}

show() {
    say "The instances tree (ls -lR $mnt)"
    ls -lR "$mnt"
    say "Volumes of $disks_pool (virsh vol-list --details)"
    virsh -c "$(uri_of)" vol-list --details "$disks_pool"
    say "Volumes of $base_pool"
    virsh -c "$(uri_of)" vol-list --details "$base_pool"
    say "qemu-img info --backing-chain $mnt/$uuid/disk"
    qemu-img info --backing-chain "$mnt/$uuid/disk"
    say "Done"
    cat <<EOF
    poolfs is mounted at $mnt
      libvirt URI:  $(uri_of)
      try:          virsh -c '$(uri_of)' vol-list $disks_pool
                    ls -l $mnt/$uuid; cat $mnt/$uuid/disk.info
      poolfs log:   $logfile
      status:       sudo $0 status
      stop:         sudo $0 stop     (unmount, stop libvirtd; keeps the volumes)
      delete all:   sudo $0 purge
EOF
}

do_start() {
    need_root start
    set -o errtrace
    trap on_start_exit EXIT
    trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM

    say "Installing dependencies (contrib/install-deps.sh)"
    "$repo/contrib/install-deps.sh" ||
        die "installing dependencies failed; see apt's messages above"
    for c in meson ninja virsh libvirtd qemu-img qemu-io fusermount3 findmnt setsid; do
        command -v "$c" >/dev/null || die "$c is missing after contrib/install-deps.sh"
    done
    if [ ! -c /dev/fuse ]; then
        modprobe fuse 2>/dev/null || true
        [ -c /dev/fuse ] ||
            die "/dev/fuse does not exist: this kernel has no FUSE (try: modprobe fuse)," \
                "or this is a container started without access to /dev/fuse."
    fi

    say "Building poolfs (meson + ninja in $build)"
    cd "$repo"
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" || die "meson setup $build failed; see above"
    fi
    ninja -C "$build" || die "the build failed; see the compiler's messages above"
    [ -x "$poolfs" ] || die "the build finished but $poolfs does not exist"

    say "Starting a private libvirtd in $lvdir"
    mkdir -p "$(dirname "$demo")"
    mkdir -m 0755 "$demo" 2>/dev/null || true
    demo_dir_check
    mkdir -p "$disks_dir" "$base_dir"
    if libvirtd_running; then
        info "already running"
    else
        started_libvirtd=1
        "$repo/contrib/private-libvirtd.sh" start "$lvdir" >/dev/null ||
            die "the private libvirtd did not start; see $lvdir/libvirtd.stderr and $lvdir/libvirtd.log"
    fi
    info "URI: $(uri_of)"

    say "Creating the storage pools"
    create_pool "$disks_pool" "$disks_dir"
    create_pool "$base_pool" "$base_dir"

    say "Mounting poolfs"
    mount_poolfs

    say "Creating a sample instance through the mount"
    create_sample

    show
}

case ${1:-start} in
    start) do_start ;;
    stop) do_stop ;;
    purge) do_purge ;;
    status) do_status ;;
    -h|--help|help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 [start|stop|status|purge]" >&2; exit 2 ;;
esac
