#!/bin/bash
# poolfs I/O benchmark: a benchmark, not a test.  It measures, side by side
# and over the SAME underlying volume file, four ways of reaching it:
#
#   direct  the file itself, in the dir pool's target directory
#   poolfs  MOUNT/{uuid}/disk through a poolfs mount (volume {uuid}_disk)
#   poolfs-off  the same through a second poolfs mount with -o passthrough=off
#           (poolfs serving every read and write itself, as on kernels
#           before 6.9)
#   poolfs-buf  the same through a third poolfs mount with
#           -o passthrough=buffered: passthrough for every open but O_DIRECT
#           ones, which poolfs serves from the host's page cache
#   bindfs  bindfs over the pool's target directory (a plain FUSE passthrough)
#   qsd     qemu-storage-daemon's FUSE export of the file (a single-file mount)
#   bindfs-od  bindfs with --forward-odirect=4096: O_DIRECT opens through the
#           mount open the file with O_DIRECT (bindfs clears it by default)
#   qsd-od  qemu-storage-daemon with cache.direct=on,aio=native, what QEMU
#           itself does for cache=none
#
# bindfs and qsd as they come serve O_DIRECT from the host's page cache;
# poolfs (with passthrough, its default) keeps O_DIRECT, so the fair
# competitors for its column are bindfs-od and qsd-od, and for poolfs-buf's
# and poolfs-off's (whose daemon does buffered I/O on the file for O_DIRECT)
# bindfs and qsd.  The report has one table for each comparison.
#
# Workloads: fio sequential read/write (bs=1M, iodepth 8), fio random
# read/write (bs=4k, iodepth 1 and 16), and cp of a whole file into and out of
# the volume (4 GiB).  Every workload runs --runs times (default 3) per
# target; runs are interleaved (run 1 of every workload on every target, then
# run 2, ...) and the target order rotates from run to run, so slow drifts
# (another build on the machine, host noise) spread over all targets alike.
# The table reports medians.
#
#   sudo tests/bench/bench_io.sh [-o FILE] [--quick] [--runs N] [--runtime S]
#                                [--buffered] [--targets LIST] [--workloads LIST]
#                                [--workdir DIR]
#                                [--poolfs PATH] [--poolfs-opts OPTS] [--keep]
#
# Needs root (FUSE mounts, drop_caches, a private libvirtd).  Installs fio,
# bindfs and qemu-storage-daemon (Debian package qemu-system-common) with apt
# if they are missing.  Starts its own private libvirtd and pools
# (contrib/private-libvirtd.sh) in a work directory under /var/tmp and removes
# everything (mounts, daemons, files) on exit, also on failure or Ctrl-C.
# If build/fs/poolfs does not exist, the poolfs column is skipped with a note.
#
# Methodology (why these settings):
# - fio uses ioengine=libaio with direct=1 (O_DIRECT).  That is how QEMU
#   opens a Nova instance disk (cache=none, aio=native) whenever O_DIRECT works
#   on the instances directory, and it is the only mode in which iodepth=16
#   means anything: with buffered I/O, io_submit() completes each request
#   synchronously, so iodepth 16 would measure the same thing as iodepth 1.
#   Through FUSE, O_DIRECT bypasses the kernel's FUSE page cache and sends
#   each request to the daemon (several in flight with async_dio), so it
#   measures the daemon, not the kernel's cache.  Caveat: the daemons
#   themselves may do buffered I/O on the underlying file (poolfs's local
#   backend, bindfs and qsd with its default cache.direct=off all do), so the
#   FUSE targets can benefit from the host page cache where "direct" cannot;
#   write jobs therefore use end_fsync=1 (the final fsync is timed), and
#   caches are dropped before every job.  --buffered switches to direct=0.
# - Caches (`sync; echo 3 > /proc/sys/vm/drop_caches`) are dropped before
#   EVERY job, fio and cp alike, so each job starts cold and no job inherits
#   dirty data or cached pages from the previous one.
# - fio runs with invalidate=0 (it would otherwise only invalidate the FUSE
#   file's own cache, not the underlying one) and uses the first --fio-size
#   bytes of the volume; the volume is filled with random data first, so no
#   read hits a hole or an unwritten extent.
# - cp in: `cp SRC TARGET` over the existing volume file (O_TRUNC then
#   rewrite; same inode), then fsync of the target and syncfs of the pool's
#   filesystem, all timed: the data is on disk when the clock stops.
#   cp out: `cp TARGET OUT` to a file in the work dir, then fsync, timed.
#   The first run of each checks that the copy out equals the source.
#   coreutils' cp may use copy_file_range() where source and destination are
#   on the same filesystem (the direct target); that is what cp does.
# - The qsd export is started with growable=on: `cp` truncates its
#   destination to 0 and regrows it, which a fixed-size export refuses.
# - bindfs runs with --multithreaded, so iodepth 16 can reach it in parallel
#   like the other two daemons.
# - The resident memory (VmRSS, VmHWM from /proc/PID/status) of the poolfs,
#   bindfs and qsd daemons is sampled every 0.5 s for the whole run; the table
#   header reports the maxima.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

out=""
quick=0
runs=""
runtime=""
direct=1
targets_arg="direct,poolfs,poolfs-buf,poolfs-off,bindfs,qsd,bindfs-od,qsd-od"
workdir_arg=""
poolfs_bin="${POOLFS:-$repo/build/fs/poolfs}"
poolfs_opts=""
keep=0

usage() {
    sed -n '/^#   sudo/,/^#  *\[--poolfs PATH/p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "  -o FILE         also write the markdown report to FILE" >&2
    echo "  --quick         small sizes, 1 run, 3 s per fio job (smoke run)" >&2
    echo "  --runs N        runs per workload and target (default 3)" >&2
    echo "  --runtime S     seconds per fio job (default 10)" >&2
    echo "  --buffered      fio with direct=0 instead of direct=1" >&2
    echo "  --targets LIST  subset of direct,poolfs,poolfs-buf,poolfs-off,bindfs,qsd,bindfs-od,qsd-od" >&2
    echo "  --workloads LIST subset of seqread,seqwrite,randread1,randread16,randwrite1,randwrite16,cpin,cpout" >&2
    echo "  --workdir DIR   where pools, mounts and files go (default: mktemp under /var/tmp)" >&2
    echo "  --poolfs PATH   poolfs binary (default build/fs/poolfs, or \$POOLFS)" >&2
    echo "  --poolfs-opts O extra -o options for poolfs, e.g. io=stream" >&2
    echo "  --keep          leave the work dir (not the mounts or daemons) behind" >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case $1 in
        -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
        --runtime) [ $# -ge 2 ] || usage; runtime=$2; shift 2 ;;
        --buffered) direct=0; shift ;;
        --targets) [ $# -ge 2 ] || usage; targets_arg=$2; shift 2 ;;
        --workloads) [ $# -ge 2 ] || usage; workloads_arg=$2; shift 2 ;;
        --workdir) [ $# -ge 2 ] || usage; workdir_arg=$2; shift 2 ;;
        --poolfs) [ $# -ge 2 ] || usage; poolfs_bin=$2; shift 2 ;;
        --poolfs-opts) [ $# -ge 2 ] || usage; poolfs_opts=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "bench_io: unknown argument: $1" >&2; usage ;;
    esac
done

if [ $quick -eq 1 ]; then
    cp_mib=512          # size of the volume and of the file copied in/out
    fio_size=256m       # region of the volume fio works on
    : "${runs:=1}" "${runtime:=3}"
else
    cp_mib=4096
    fio_size=2g
    : "${runs:=3}" "${runtime:=10}"
fi
case $runs in ''|*[!0-9]*|0) echo "bench_io: --runs must be a positive integer" >&2; exit 2 ;; esac
case $runtime in ''|*[!0-9]*|0) echo "bench_io: --runtime must be a positive integer" >&2; exit 2 ;; esac

# Notes for the report; kept in a file because jobs run in subshells.
notes=()
note() { if [ -n "${work:-}" ] && [ -d "$work" ]; then printf '%s\n' "$*" >>"$work/notes"; else notes+=("$*"); fi; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench_io: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mounts, drop_caches, libvirtd); try: sudo $0"

# --- what to run ------------------------------------------------------------
all_targets=(direct poolfs poolfs-buf poolfs-off bindfs qsd bindfs-od qsd-od)
targets=()
IFS=, read -r -a wanted <<<"$targets_arg"
for t in "${all_targets[@]}"; do
    for w in "${wanted[@]}"; do [ "$w" = "$t" ] && targets+=("$t"); done
done
for w in "${wanted[@]}"; do
    case " ${all_targets[*]} " in *" $w "*) ;; *) die "unknown target '$w' (known: ${all_targets[*]})" ;; esac
done
[ ${#targets[@]} -gt 0 ] || die "no targets selected"

has_target() { case " ${targets[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
drop_target() {
    local t new=()
    for t in "${targets[@]}"; do [ "$t" = "$1" ] || new+=("$t"); done
    targets=("${new[@]}")
}

if { has_target poolfs || has_target poolfs-buf || has_target poolfs-off; } && [ ! -x "$poolfs_bin" ]; then
    log "poolfs binary $poolfs_bin not found: skipping the poolfs targets (build it with: meson setup build && ninja -C build)"
    note "poolfs was not measured: $poolfs_bin did not exist when the bench ran."
    drop_target poolfs
    drop_target poolfs-buf
    drop_target poolfs-off
fi

# Workloads: name|label|unit|fio rw|bs|iodepth  (cp ones have no fio part)
workloads=(
    "seqread|seq read, bs=1M, qd 8|MiB/s|read|1M|8"
    "seqwrite|seq write, bs=1M, qd 8|MiB/s|write|1M|8"
    "randread1|rand read, bs=4k, qd 1|IOPS|randread|4k|1"
    "randread16|rand read, bs=4k, qd 16|IOPS|randread|4k|16"
    "randwrite1|rand write, bs=4k, qd 1|IOPS|randwrite|4k|1"
    "randwrite16|rand write, bs=4k, qd 16|IOPS|randwrite|4k|16"
    "cpin|cp ${cp_mib} MiB file in (+fsync)|MiB/s|||"
    "cpout|cp ${cp_mib} MiB file out (+fsync)|MiB/s|||"
)
if [ -n "${workloads_arg:-}" ]; then
    picked=()
    IFS=, read -r -a wanted <<<"$workloads_arg"
    for w in "${wanted[@]}"; do
        found=
        for wl in "${workloads[@]}"; do
            [ "${wl%%|*}" = "$w" ] && { picked+=("$wl"); found=1; }
        done
        [ -n "$found" ] || die "unknown workload '$w' (known: seqread seqwrite randread1 randread16 randwrite1 randwrite16 cpin cpout)"
    done
    workloads=("${picked[@]}")
fi

# --- tools --------------------------------------------------------------------
need_pkgs=()
command -v fio >/dev/null || need_pkgs+=(fio)
{ has_target bindfs || has_target bindfs-od; } && ! command -v bindfs >/dev/null && need_pkgs+=(bindfs)
{ has_target qsd || has_target qsd-od; } && ! command -v qemu-storage-daemon >/dev/null && need_pkgs+=(qemu-system-common)
command -v fusermount3 >/dev/null || need_pkgs+=(fuse3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
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
for c in fio fusermount3 virsh libvirtd findmnt; do
    command -v "$c" >/dev/null || die "$c is still missing after installing packages"
done
{ has_target bindfs || has_target bindfs-od; } && { command -v bindfs >/dev/null || die "bindfs missing"; }
{ has_target qsd || has_target qsd-od; } && { command -v qemu-storage-daemon >/dev/null || die "qemu-storage-daemon missing (Debian package qemu-system-common)"; }

# --- work dir -------------------------------------------------------------------
created_work=0
if [ -n "$workdir_arg" ]; then
    mkdir -p "$workdir_arg"
    work=$(cd "$workdir_arg" && pwd)
    [ -z "$(ls -A "$work")" ] || die "--workdir $work is not empty"
    created_work=1   # we made its contents; we clean them (not the dir itself)
else
    mkdir -p /var/tmp
    work=$(mktemp -d /var/tmp/poolfs-bench.XXXXXX)
    created_work=2
fi

# Everything below is torn down by cleanup(), whatever happens.
mounts=()          # mountpoints, unmounted in reverse order
daemon_pids=()     # FUSE daemons we started (pids), waited for / killed after unmount
sampler_pid=""
libvirt_dir="$work/libvirtd"
libvirt_started=0

is_mounted() { findmnt -rn --mountpoint "$1" >/dev/null 2>&1; }

unmount_one() {
    local m=$1 i
    is_mounted "$m" || return 0
    for i in $(seq 50); do
        fusermount3 -u "$m" 2>/dev/null && return 0
        is_mounted "$m" || return 0
        sleep 0.2
    done
    log "warning: $m still busy after 10 s; lazy unmount"
    fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
}

cleanup() {
    local rc=$? i pid m
    set +e
    trap - EXIT INT TERM
    if [ -n "$sampler_pid" ]; then
        touch "$work/sampler.stop"
        for i in $(seq 30); do kill -0 "$sampler_pid" 2>/dev/null || break; sleep 0.1; done
        kill "$sampler_pid" 2>/dev/null
    fi
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        unmount_one "${mounts[$i]}"
    done
    for pid in "${daemon_pids[@]}"; do
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    if [ $libvirt_started -eq 1 ]; then
        "$repo/contrib/private-libvirtd.sh" stop "$libvirt_dir" >/dev/null 2>&1
    fi
    if [ $keep -eq 1 ]; then
        log "work dir kept: $work"
    elif findmnt -rn -o TARGET | grep -qF "$work/"; then
        log "warning: something is still mounted under $work; not removing it"
    else
        if [ $created_work -eq 2 ]; then rm -rf "$work"
        elif [ $created_work -eq 1 ]; then find "$work" -mindepth 1 -delete 2>/dev/null || rm -rf "${work:?}"/*
        fi
    fi
    exit $rc
}
# One benchmark at a time on this machine (bench_migrate.sh takes it too).
exec 9>/tmp/poolfs-bench.lock
flock 9
trap cleanup EXIT
for n in "${notes[@]}"; do printf '%s\n' "$n" >>"$work/notes"; done
touch "$work/notes"
trap 'exit 130' INT
trap 'exit 143' TERM

# --- disk space --------------------------------------------------------------------
# The volume, the source file, the copy out, and 1 GiB to spare.
need_mib=$((3 * cp_mib + 1024))
avail_mib=$(df -Pm "$work" | awk 'NR == 2 { print $4 }')
[ "$avail_mib" -ge "$need_mib" ] ||
    die "$work has ${avail_mib} MiB free, the bench needs ${need_mib} MiB (use --workdir on a bigger filesystem, or --quick)"
log "work dir $work (${avail_mib} MiB free, needs ${need_mib} MiB)"

# --- libvirt, pools, volume ---------------------------------------------------------
uuid=6c1f3f0e-5b7a-4d52-9e0c-1a2b3c4d5e6f
vol="${uuid}_disk"
disks_dir="$work/pools/disks"
base_dir="$work/pools/base"
mkdir -p "$disks_dir" "$base_dir" "$work/mnt"
src="$work/src.img"
copy_out="$work/out.img"

log "starting a private libvirtd"
libvirt_started=1
uri=$("$repo/contrib/private-libvirtd.sh" start "$libvirt_dir") ||
    die "private libvirtd did not start; see $libvirt_dir/libvirtd.stderr"
virsh_() { virsh -q -c "$uri" "$@"; }
virsh_ pool-create-as nova-disks-pool dir --target "$disks_dir" >/dev/null ||
    die "virsh pool-create-as nova-disks-pool failed"
virsh_ pool-create-as nova-base-images-pool dir --target "$base_dir" >/dev/null ||
    die "virsh pool-create-as nova-base-images-pool failed"

log "writing a ${cp_mib} MiB random source file"
dd if=/dev/urandom of="$src" bs=1M count="$cp_mib" status=none conv=fsync ||
    die "could not write $src"
virsh_ vol-create-as nova-disks-pool "$vol" "${cp_mib}M" --format raw --allocation 0 >/dev/null ||
    die "virsh vol-create-as $vol failed"
# Fill the volume with data (no holes, no unwritten extents).
dd if="$src" of="$disks_dir/$vol" bs=1M conv=notrunc,fsync status=none ||
    die "could not fill the volume"
virsh_ pool-refresh nova-disks-pool >/dev/null

declare -A path
path[direct]="$disks_dir/$vol"

wait_mounted() {   # mountpoint pid what
    local i
    for i in $(seq 100); do
        is_mounted "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

declare -A pid_of
# The daemon just started with & serves MOUNTPOINT for TARGET once mounted.
track_daemon() {   # target mountpoint what
    pid_of[$1]=$!
    daemon_pids+=("${pid_of[$1]}")
    mounts+=("$2")
    wait_mounted "$2" "${pid_of[$1]}" ||
        die "$3 did not mount for $1: $(tail -n 5 "$work/$1.log")"
}

mount_bindfs() {   # target extra-arguments...
    local t=$1
    shift
    log "mounting bindfs over the pool directory for $t"
    mkdir -p "$work/mnt/$t"
    bindfs -f --multithreaded "$@" "$disks_dir" "$work/mnt/$t" >"$work/$t.log" 2>&1 &
    track_daemon "$t" "$work/mnt/$t" bindfs
    path[$t]="$work/mnt/$t/$vol"
}
has_target bindfs && mount_bindfs bindfs
has_target bindfs-od && mount_bindfs bindfs-od --forward-odirect=4096

export_qsd() {   # target extra-blockdev-options
    local t=$1
    log "exporting the volume with qemu-storage-daemon (FUSE) for $t"
    touch "$work/mnt/$t-export"
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=f,filename=$disks_dir/$vol$2" \
        --export "type=fuse,id=e,node-name=f,mountpoint=$work/mnt/$t-export,writable=on,growable=on" \
        >"$work/$t.log" 2>&1 &
    track_daemon "$t" "$work/mnt/$t-export" qemu-storage-daemon
    path[$t]="$work/mnt/$t-export"
}
has_target qsd && export_qsd qsd ""
has_target qsd-od && export_qsd qsd-od ",cache.direct=on,aio=native"

poolfs_mode=""
mount_poolfs() {   # target extra-options
    local t=$1 popts="disks_pool=nova-disks-pool,base_pool=nova-base-images-pool${poolfs_opts:+,$poolfs_opts}${2:+,$2}"
    log "mounting poolfs ($poolfs_bin) for $t"
    [ "$t" = poolfs ] && poolfs_mode="-o $popts"
    mkdir -p "$work/mnt/$t"
    "$poolfs_bin" -f -o "$popts" "$uri" "$work/mnt/$t" >"$work/$t.log" 2>&1 &
    track_daemon "$t" "$work/mnt/$t" poolfs
    path[$t]="$work/mnt/$t/$uuid/disk"
    for i in $(seq 100); do [ -f "${path[$t]}" ] && break; sleep 0.1; done
    [ -f "${path[$t]}" ] ||
        die "poolfs is mounted but ${path[$t]} (volume $vol) did not appear; ls: $(ls -la "$work/mnt/$t" 2>&1 | head -5)"
}
has_target poolfs && mount_poolfs poolfs ""
has_target poolfs-buf && mount_poolfs poolfs-buf passthrough=buffered
has_target poolfs-off && mount_poolfs poolfs-off passthrough=off

# Every target must show the same file: same size, same first and last MiB.
for t in "${targets[@]}"; do
    p=${path[$t]}
    sz=$(stat -c %s "$p") || die "$t: cannot stat $p"
    [ "$sz" -eq $((cp_mib * 1048576)) ] || die "$t: $p has size $sz, expected $((cp_mib * 1048576))"
    cmp -n 1048576 "$src" "$p" >/dev/null || die "$t: first MiB of $p differs from the source"
    cmp -i $(((cp_mib - 1) * 1048576)) "$src" "$p" >/dev/null || die "$t: last MiB of $p differs from the source"
done
log "all targets show the same volume: ${targets[*]}"

# --- memory sampler ---------------------------------------------------------------------
sampler() {   # samples VmRSS/VmHWM of the daemons into $work/rss.tsv, at most 2 h
    local n=0 name pid rss hwm
    while [ ! -e "$work/sampler.stop" ] && [ $n -lt 14400 ]; do
        for name in "${!pid_of[@]}"; do
            pid=${pid_of[$name]}
            [ -r "/proc/$pid/status" ] || continue
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
            [ -n "$rss" ] && printf '%s\t%s\t%s\n' "$name" "$rss" "$hwm" >>"$work/rss.tsv"
        done
        sleep 0.5
        n=$((n + 1))
    done
}
: >"$work/rss.tsv"
if [ ${#pid_of[@]} -gt 0 ]; then
    sampler &
    sampler_pid=$!
fi

# --- the runs -------------------------------------------------------------------------------
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || {
        [ -e "$work/nodrop" ] || { log "warning: cannot drop caches"; note "Caches could not be dropped (/proc/sys/vm/drop_caches not writable): results include cache effects."; }
        touch "$work/nodrop"
    }
}

now() { date +%s.%N; }

errname() {   # errno -> short name, for the table
    case $1 in
        1) echo EPERM ;; 2) echo ENOENT ;; 5) echo EIO ;; 9) echo EBADF ;;
        13) echo EACCES ;; 16) echo EBUSY ;; 22) echo EINVAL ;; 27) echo EFBIG ;;
        28) echo ENOSPC ;; 38) echo ENOSYS ;; 95) echo EOPNOTSUPP ;;
        103) echo ECONNABORTED ;; 107) echo ENOTCONN ;; *) echo "errno $1" ;;
    esac
}

# Prints MiB/s or IOPS; on failure prints "err(EXXX)" and adds a note with
# fio's first error message.
run_fio() {   # target rw bs iodepth unit label
    local t=$1 rw=$2 bs=$3 qd=$4 unit=$5 label=$6 p=${path[$1]} line err rc=0 extra=()
    case $rw in *write) extra=(--end_fsync=1) ;; esac
    drop_caches
    : >"$work/fio.out"
    : >"$work/fio.err"
    timeout -k 10 $((runtime + 180)) fio --name=bench --filename="$p" \
        --size="$fio_size" --rw="$rw" --bs="$bs" --iodepth="$qd" \
        --ioengine=libaio --direct="$direct" --invalidate=0 --allow_file_create=0 \
        --time_based --runtime="$runtime" "${extra[@]}" \
        --output-format=terse --terse-version=3 >"$work/fio.out" 2>"$work/fio.err" || rc=$?
    line=$(grep '^3;' "$work/fio.out" | tail -n 1)
    err=$(awk -F';' '{ print $5 }' <<<"$line")
    if [ $rc -ne 0 ] || [ -z "$line" ] || [ "${err:-x}" != 0 ]; then
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then err=timeout
        elif [ -n "$err" ] && [ "$err" != 0 ]; then err=$(errname "$err")
        else err="rc $rc"
        fi
        log "fio $label on $t failed ($err):"
        head -n 3 "$work/fio.err" >&2
        grep -qF "$t, $label:" "$work/notes" ||
            note "$t, $label: fio failed ($err): $(grep -m 1 -v '^$' "$work/fio.err" | cut -c1-200)"
        echo "err($err)"; return
    fi
    awk -F';' -v rw="$rw" -v unit="$unit" '{
        if (rw ~ /read/) { bw = $7; iops = $8 } else { bw = $48; iops = $49 }
        if (unit == "IOPS") printf "%.0f\n", iops; else printf "%.1f\n", bw / 1024
    }' <<<"$line"
}

cp_failed() {   # target what
    log "$2 $1 failed:"; head -n 3 "$work/cp.err" >&2
    grep -qF "$1, $2:" "$work/notes" ||
        note "$1, $2: failed: $(grep -m 1 -v '^$' "$work/cp.err" | cut -c1-200)"
    echo err
}

run_cp() {   # target in|out run
    local t=$1 dir=$2 r=$3 p=${path[$1]} t0 t1 sz
    drop_caches
    : >"$work/cp.err"
    t0=$(now)
    if [ "$dir" = in ]; then
        timeout -k 10 900 cp "$src" "$p" 2>>"$work/cp.err" &&
            timeout -k 10 300 sync "$p" 2>>"$work/cp.err" &&
            timeout -k 10 300 sync -f "$disks_dir" 2>>"$work/cp.err" ||
            { cp_failed "$t" "cp in"; return; }
    else
        timeout -k 10 900 cp "$p" "$copy_out" 2>>"$work/cp.err" &&
            timeout -k 10 300 sync "$copy_out" 2>>"$work/cp.err" ||
            { rm -f "$copy_out"; cp_failed "$t" "cp out"; return; }
    fi
    t1=$(now)
    if [ "$dir" = in ]; then
        sz=$(stat -c %s "$disks_dir/$vol")
        if [ "$sz" -ne $((cp_mib * 1048576)) ]; then
            echo "the volume's size is $sz after the copy, not $((cp_mib * 1048576))" >"$work/cp.err"
            cp_failed "$t" "cp in"; return
        fi
    else
        # Against the volume's file as it is now (the write workloads
        # change it; without cp in there is no other copy of it).
        if [ "$r" -eq 1 ] && ! cmp "$disks_dir/$vol" "$copy_out" >"$work/cp.err" 2>&1; then
            log "cp out of $t: the copy differs from the volume!"
            note "$t, cp out: the data copied out differs from the volume's file ($(head -c 200 "$work/cp.err"))."
            rm -f "$copy_out"; echo bad; return
        fi
        rm -f "$copy_out"
    fi
    awk -v a="$t0" -v b="$t1" -v m="$cp_mib" 'BEGIN { printf "%.1f\n", m / (b - a) }'
}

results="$work/results.tsv"
: >"$results"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)
njobs=$((runs * ${#workloads[@]} * ${#targets[@]}))
job=0
log "running $njobs jobs (${runs} run(s) x ${#workloads[@]} workloads x ${#targets[@]} targets)"
for ((r = 1; r <= runs; r++)); do
    # rotate the target order from one run to the next
    order=()
    for ((k = 0; k < ${#targets[@]}; k++)); do
        order+=("${targets[$(((k + r - 1) % ${#targets[@]}))]}")
    done
    for wl in "${workloads[@]}"; do
        IFS='|' read -r name label unit rw bs qd <<<"$wl"
        for t in "${order[@]}"; do
            job=$((job + 1))
            if [ -n "${pid_of[$t]:-}" ] && ! kill -0 "${pid_of[$t]}" 2>/dev/null; then
                v=dead
            elif [ "$name" = cpin ]; then v=$(run_cp "$t" in "$r")
            elif [ "$name" = cpout ]; then v=$(run_cp "$t" out "$r")
            else v=$(run_fio "$t" "$rw" "$bs" "$qd" "$unit" "$label")
            fi
            printf '%s\t%s\t%s\t%s\n' "$name" "$t" "$r" "$v" >>"$results"
            log "[$job/$njobs] run $r $label on $t: $v $unit"
        done
    done
done
t_end=$(date +%s)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

for t in "${!pid_of[@]}"; do
    kill -0 "${pid_of[$t]}" 2>/dev/null ||
        note "The $t daemon died during the bench; its later results read 'dead'. Last lines of its log: $(tail -n 3 "$work/$t.log" | tr '\n' ' ')"
done

# --- report -------------------------------------------------------------------------------------
median() {   # values on stdin (numbers only) -> median, or "err"
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "err"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
declare -A med
for wl in "${workloads[@]}"; do
    IFS='|' read -r name label unit rw bs qd <<<"$wl"
    for t in "${all_targets[@]}"; do
        if has_target "$t"; then
            vals=$(awk -F'\t' -v n="$name" -v t="$t" '$1 == n && $2 == t { print $4 }' "$results")
            if grep -qvE '^[0-9.]+$' <<<"$vals"; then
                med[$name,$t]=$(grep -vE '^[0-9.]+$' <<<"$vals" | head -n 1)
            else
                med[$name,$t]=$(median <<<"$vals")
            fi
        else
            med[$name,$t]="n/a"
        fi
    done
done

fmt() {   # value unit
    case $1 in *[!0-9.]*|'') echo "$1" ;;
        *) if [ "$2" = IOPS ]; then printf '%.0f' "$1"; else printf '%.1f' "$1"; fi ;;
    esac
}
ratio() {
    case "$1$2" in *[!0-9.]*|'') echo "n/a"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

mem_line() {   # name -> "max VmRSS X MiB, VmHWM Y MiB"
    awk -F'\t' -v n="$1" '$1 == n { if ($2 > r) r = $2; if ($3 > h) h = $3; last = $2; c++ }
        END { if (c) printf "max VmRSS %.1f MiB, VmHWM %.1f MiB, VmRSS at the end %.1f MiB (%d samples, every 0.5 s)", r / 1024, h / 1024, last / 1024, c; else print "not sampled" }' \
        "$work/rss.tsv"
}

table() {   # "TARGET ..." "A/B ..." -> a markdown table: medians, then ratios
    local -a vals rats
    local wl name label unit rw bs qd t r row
    read -r -a vals <<<"$1"
    read -r -a rats <<<"$2"
    row="| workload | unit |"
    for t in "${vals[@]}" "${rats[@]}"; do row+=" $t |"; done
    echo "$row"
    row="|---|---|"
    for t in "${vals[@]}" "${rats[@]}"; do row+="--:|"; done
    echo "$row"
    for wl in "${workloads[@]}"; do
        IFS='|' read -r name label unit rw bs qd <<<"$wl"
        row="| $label | $unit |"
        for t in "${vals[@]}"; do row+=" $(fmt "${med[$name,$t]}" "$unit") |"; done
        for r in "${rats[@]}"; do
            row+=" $(ratio "${med[$name,${r%/*}]}" "${med[$name,${r#*/}]}") |"
        done
        echo "$row"
    done
}

report="$work/report.md"
{
    echo "## poolfs I/O benchmark"
    echo
    echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, storage: $(findmnt -rn -o SOURCE,FSTYPE -T "$work" | head -n 1)"
    echo "- median of $runs interleaved run(s), $((t_end - t_start)) s in all; load average $load_start at start, $load_end at end"
    echo "- one ${cp_mib} MiB raw volume, filled with random data; fio: libaio, direct=$direct, ${runtime} s time_based, first $fio_size of the volume, writes with end_fsync=1; page cache dropped before every job"
    echo "- cp: ${cp_mib} MiB, in = cp over the volume + fsync + syncfs, out = cp to local disk + fsync"
    desc=()
    for t in "${targets[@]}"; do
        case $t in
            direct) desc+=("direct = the file in the pool's directory") ;;
            poolfs) desc+=("poolfs = MOUNT/{uuid}/disk, poolfs $poolfs_mode") ;;
            poolfs-buf) desc+=("poolfs-buf = the same with -o passthrough=buffered, a mount of its own") ;;
            poolfs-off) desc+=("poolfs-off = the same with -o passthrough=off, a mount of its own") ;;
            bindfs) desc+=("bindfs = bindfs --multithreaded over the pool's directory") ;;
            qsd) desc+=("qsd = qemu-storage-daemon's FUSE export of the file (writable, growable)") ;;
            bindfs-od) desc+=("bindfs-od = bindfs --multithreaded --forward-odirect=4096") ;;
            qsd-od) desc+=("qsd-od = the qsd export with cache.direct=on,aio=native") ;;
        esac
    done
    echo "- targets: $(IFS=';'; echo "${desc[*]}" | sed 's/;/; /g')"
    if has_target poolfs; then
        echo "- poolfs binary: $poolfs_bin, built $(date -u -r "$poolfs_bin" '+%Y-%m-%d %H:%M UTC'); source tree: $(git -C "$repo" log -1 --format='%h %s' 2>/dev/null | cut -c1-80 || echo unknown)$(git -C "$repo" diff --quiet HEAD -- fs pool meson.build 2>/dev/null || echo ' (+ uncommitted changes in fs/, pool/)')"
    fi
    echo "- versions: $(fio --version), $(bindfs --version 2>/dev/null | head -n 1), $(qemu-storage-daemon --version 2>/dev/null | head -n 1 | sed 's/ (.*//'), $(fusermount3 -V 2>/dev/null)"
    for t in poolfs poolfs-buf poolfs-off bindfs qsd bindfs-od qsd-od; do
        if [ -n "${pid_of[$t]:-}" ]; then echo "- $t daemon memory: $(mem_line "$t")"; fi
    done
    while IFS= read -r n; do echo "- NOTE: $n"; done <"$work/notes"
    echo
    if [ "$direct" -eq 0 ]; then
        echo "(--buffered: fio opens without O_DIRECT, so the two tables differ only in which daemons they put side by side; bindfs-od is bindfs here.)"
        echo
    fi
    echo "O_DIRECT kept down to the disk (poolfs's default; bindfs and qsd set up to do the same):"
    echo
    table "direct poolfs bindfs-od qsd-od" \
        "poolfs/direct poolfs/bindfs-od poolfs/qsd-od"
    echo
    echo "O_DIRECT served from the host's page cache by the daemon (poolfs-buf: -o passthrough=buffered, whose cp rows are passthrough; poolfs-off: -o passthrough=off, the daemon for everything; bindfs and qsd as they come), and poolfs's default against them:"
    echo
    table "poolfs-buf poolfs-off bindfs qsd" \
        "poolfs-buf/bindfs poolfs-buf/qsd poolfs-off/bindfs poolfs-off/qsd poolfs/bindfs poolfs/qsd"
    echo
    echo "Raw runs (workload, target: run 1, run 2, ...):"
    echo
    echo '```'
    for wl in "${workloads[@]}"; do
        IFS='|' read -r name label unit rw bs qd <<<"$wl"
        for t in "${targets[@]}"; do
            printf '%-12s %-10s %s\n' "$name" "$t" \
                "$(awk -F'\t' -v n="$name" -v t="$t" '$1 == n && $2 == t { printf "%s ", $4 }' "$results")"
        done
    done
    echo '```'
} >"$report"

cat "$report"
if [ -n "$out" ]; then
    cp "$report" "$out" || die "could not write $out"
    log "report written to $out"
fi
