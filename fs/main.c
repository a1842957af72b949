/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * poolfs: mount libvirt storage pools as Nova's instances tree.
 *
 *   poolfs [-f] [-d] [-o OPTIONS] URI MOUNTPOINT
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "passthrough.h"
#include "poolfs.h"
#include "tcpkeep.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

struct poolfs_args {
    char *uri;
    char *mountpoint;
    char *disks_pool;
    char *base_pool;
    char *refresh;
    char *io;
    char *pool_map;
    char *passthrough;
    unsigned max_threads;
    unsigned readahead;             /* KiB */
    char *keepalive;                /* seconds */
    char *keepalive_count;
    int foreground;
    int debug;
    int help;
    int version;
    int extra;
    int ro;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_RO };

#define POOLFS_OPT(t, p) { t, offsetof(struct poolfs_args, p), 1 }
static const struct fuse_opt poolfs_opt_spec[] = {
    { "disks_pool=%s", offsetof(struct poolfs_args, disks_pool), 0 },
    { "base_pool=%s", offsetof(struct poolfs_args, base_pool), 0 },
    { "refresh=%s", offsetof(struct poolfs_args, refresh), 0 },
    { "io=%s", offsetof(struct poolfs_args, io), 0 },
    { "pool_map=%s", offsetof(struct poolfs_args, pool_map), 0 },
    { "passthrough=%s", offsetof(struct poolfs_args, passthrough), 0 },
    { "max_threads=%u", offsetof(struct poolfs_args, max_threads), 0 },
    { "readahead=%u", offsetof(struct poolfs_args, readahead), 0 },
    { "keepalive=%s", offsetof(struct poolfs_args, keepalive), 0 },
    { "keepalive_count=%s", offsetof(struct poolfs_args, keepalive_count), 0 },
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_END
};

/* S as a whole number from MIN to MAX into *V; -1 if not. */
static int
poolfs_int_opt(const char *s, long min, long max, int *v)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < min || n > max)
        return -1;
    *v = (int)n;
    return 0;
}

static void
poolfs_usage(FILE *out)
{
    fprintf(out,
"usage: poolfs [-f] [-d] [-o OPTIONS] URI MOUNTPOINT\n"
"\n"
"Mount the libvirt storage pools of URI as Nova's instances tree: volume\n"
"{uuid}_{name} of the disks pool is MOUNTPOINT/{uuid}/{name}, and volume X\n"
"of the base pool is MOUNTPOINT/_base/X.\n"
"\n"
"URI is any libvirt connection URI: qemu:///system,\n"
"qemu:///system?socket=/path/libvirt-sock, qemu+tls://host/system, ...\n"
"\n"
"options:\n"
"    -h, --help             print this help and exit\n"
"    -V, --version          print the version and exit\n"
"    -f                     stay in the foreground\n"
"    -d, -o debug           print every FUSE request (implies -f)\n"
"    -o disks_pool=NAME     pool of instance files (default nova-disks-pool)\n"
"    -o base_pool=NAME      pool shown as _base (default nova-base-images-pool)\n"
"    -o refresh=SECONDS     re-list the pools this often to see volumes\n"
"                           others made or removed (default 2; pool refresh\n"
"                           events are seen at once)\n"
"    -o pool_map=FILE:POOL[,FILE:POOL...]\n"
"                           files of that name in a pool of their own, e.g.\n"
"                           disk.swap:nova-swap-pool,disk.local:nova-eph-pool\n"
"    -o max_threads=N       FUSE worker threads at most (default 16)\n"
"    -o readahead=KIB       the kernel's read-ahead on the mount, in KiB\n"
"                           (default " POOLFS_READAHEAD_STR "; 0 turns it off)\n"
"    -o keepalive=SECONDS,keepalive_count=N\n"
"                           a TCP connection (qemu+tls, qemu+tcp) whose peer\n"
"                           has sent nothing for SECONDS is probed every\n"
"                           SECONDS and given up after N unanswered probes,\n"
"                           also while written data waits for an answer:\n"
"                           then what waits on it fails with EIO and poolfs\n"
"                           connects again as after a restart; a connect\n"
"                           unanswered as long fails (SECONDS 0 to 3600,\n"
"                           default 5, 0 turns it off; N 1 to 100, default 6)\n"
"    -o io=auto|local|stream\n"
"                           data path: local reads and writes the volume's\n"
"                           file or device directly, stream goes through\n"
"                           virStorageVolDownload/Upload; auto (default)\n"
"                           uses local where the volume has a path here\n"
"    -o passthrough=all|buffered|off\n"
"                           all (default): where the kernel has FUSE\n"
"                           passthrough (Linux 6.9 and later) and volumes\n"
"                           are files here, the kernel reads, writes and\n"
"                           maps them straight from the volume's file, and\n"
"                           O_DIRECT is real direct I/O on it (with its\n"
"                           alignment rules); buffered: the same, but a\n"
"                           file first opened with O_DIRECT is served by\n"
"                           poolfs (through the host's page cache) until all\n"
"                           its opens are closed (an O_DIRECT open of a file\n"
"                           already passed through joins it);\n"
"                           off: poolfs serves every read and write\n"
"\n"
"FUSE options (also with -o): allow_other, default_permissions, ro,\n"
"attr_timeout=S, entry_timeout=S, and the rest of fuse(8);\n"
"splice of read replies is on by default (-o no_splice_write turns it off);\n"
"the kernel's writeback cache is on where passthrough is not and files\n"
"are on this host (a remote mount has none: its files are streams')\n"
"(-o no_writeback_cache turns it off; -o writeback_cache turns passthrough\n"
"off). Writes come in requests of up to 1 MiB, read into memory.\n"
"\n"
"In /etc/fstab (see contrib/fstab.example for the systemd ordering):\n"
"  qemu:///system /var/lib/nova/instances fuse.poolfs "
"disks_pool=nova-disks-pool,allow_other,_netdev,nofail,"
"x-systemd.requires=libvirtd.service 0 0\n"
"\n"
"Exit status: 0 after a clean unmount, 1 when the mount could not be made\n"
"or served (libvirtd unreachable, a pool missing or inactive, a bad\n"
"mountpoint), 2 for a usage error.\n");
}

static int
poolfs_opt_proc(void *data, const char *arg, int key,
                struct fuse_args *outargs)
{
    struct poolfs_args *a = data;

    switch (key) {
    case KEY_HELP:
        a->help = 1;
        return 0;
    case KEY_VERSION:
        a->version = 1;
        return 0;
    case KEY_FOREGROUND:
        a->foreground = 1;
        return 0;
    case KEY_DEBUG:
        a->debug = a->foreground = 1;
        return 1;           /* fuse_new() turns on its request log */
    case KEY_RO:
        a->ro = 1;
        return 1;
    case FUSE_OPT_KEY_OPT:
        /* -o pool_map=a:p1,b:p2: the option parser split the list at
         * its commas; the FILE:POOL pieces after the first belong to it. */
        if (a->pool_map && strchr(arg, ':') && !strchr(arg, '=')) {
            char *joined;

            if (asprintf(&joined, "%s,%s", a->pool_map, arg) < 0)
                return -1;
            free(a->pool_map);
            a->pool_map = joined;
            return 0;
        }
        return 1;
    case FUSE_OPT_KEY_NONOPT:
        if (!a->uri)
            a->uri = strdup(arg);
        else if (!a->mountpoint)
            a->mountpoint = strdup(arg);
        else
            a->extra = 1;
        return 0;
    default:
        return 1;
    }
}

/*
 * The kernel asks FUSE filesystems for 128 KiB of read-ahead at most; a
 * sequential reader of a disk image wants a request's worth.  The mount's backing
 * device is found in /proc/self/mountinfo (a stat of the mountpoint would
 * ask this very process, which is not serving yet).
 */
static void
poolfs_set_readahead(const char *mountpoint, unsigned kb)
{
    FILE *mi = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    unsigned maj, min;
    char mnt[PATH_MAX];
    char path[128];
    bool found = false;
    FILE *ra;

    if (!mi)
        return;
    while (fgets(line, sizeof(line), mi)) {
        if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) == 3 &&
            strcmp(mnt, mountpoint) == 0)
            found = true;   /* the last match is the newest mount */
    }
    fclose(mi);
    if (!found)
        return;
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
    if ((ra = fopen(path, "w"))) {
        fprintf(ra, "%u\n", kb);
        fclose(ra);
    }
}

static int
poolfs_parse_io(const char *s, enum pool_io *io)
{
    if (!s || strcmp(s, "auto") == 0)
        *io = POOL_IO_AUTO;
    else if (strcmp(s, "local") == 0)
        *io = POOL_IO_LOCAL;
    else if (strcmp(s, "stream") == 0)
        *io = POOL_IO_STREAM;
    else
        return -1;
    return 0;
}

/*
 * Daemonise before connecting, so libvirt's threads are born in the
 * process that keeps them; the parent waits until the mount is up (or the
 * child fails) and exits with the child's status, so errors still reach
 * the terminal and mount(8).
 */
static int
poolfs_fork(int *readyfd)
{
    int pfd[2];
    pid_t pid;
    char c;
    int status;

    if (pipe(pfd) < 0 || (pid = fork()) < 0) {
        fprintf(stderr, "poolfs: cannot daemonize: %s\n", strerror(errno));
        exit(EXIT_RUNTIME);
    }
    if (pid > 0) {
        close(pfd[1]);
        if (read(pfd[0], &c, 1) == 1)
            _exit(0);
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
            _exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : EXIT_RUNTIME);
        _exit(EXIT_RUNTIME);
    }
    close(pfd[0]);
    setsid();
    *readyfd = pfd[1];
    return 0;
}

static void
poolfs_detach(int readyfd)
{
    int fd = open("/dev/null", O_RDWR);

    /* Nothing useful to do if these fail: the mount is up regardless. */
    (void)!chdir("/");
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    (void)!write(readyfd, "", 1);
    close(readyfd);
}

/* libfuse's own messages ("unknown option") in our one-line form. */
static void
poolfs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
    static bool line_start = true;  /* libfuse writes lines in pieces */
    char msg[1024];
    const char *p = msg;
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (line_start) {
        if (strncmp(p, "fuse: ", 6) == 0)
            p += 6;
        fputs("poolfs: ", stderr);
    }
    fputs(p, stderr);
    n = strlen(p);
    line_start = n > 0 && p[n - 1] == '\n';
}

int
main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct poolfs_args a = { .readahead = UINT_MAX };
    struct pool_opts opts = { 0 };
    struct poolfs fs = { 0 };
    struct fuse_loop_config *loop = NULL;
    struct fuse *fuse = NULL;
    char mount_real[PATH_MAX];
    struct stat st;
    int readyfd = -1;
    int ret = EXIT_RUNTIME;
    int rc;
    char *end;

    /* Replies of up to 1 MiB are malloc'ed and freed per request by
     * libfuse when it cannot splice; with glibc's sliding mmap threshold
     * they would settle in per-thread arenas and stay resident.  A fixed
     * threshold gives them back at once.  It sits above the 256 KiB and
     * some of libvirt's stream packets (a remote mount's data), which
     * would otherwise be mapped, faulted in and unmapped one by one; the
     * trim threshold keeps the heap's top from doing the same. */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024);
    mallopt(M_TRIM_THRESHOLD, 2 * 1024 * 1024);
    mallopt(M_ARENA_MAX, 4);
    fuse_set_log_func(poolfs_fuse_log);
    /* A libvirtd that goes away must be an error, not death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (fuse_opt_parse(&args, &a, poolfs_opt_spec, poolfs_opt_proc) < 0) {
        fprintf(stderr, "poolfs: cannot parse the options; see poolfs --help\n");
        return EXIT_USAGE;
    }
    if (a.help) {
        poolfs_usage(stdout);
        return 0;
    }
    if (a.version) {
        char lv[32];

        printf("poolfs %s (libfuse %s, libvirt %s)\n", POOLFS_VERSION,
               fuse_pkgversion(), pool_libvirt_version(lv, sizeof(lv)));
        return 0;
    }
    if (!a.uri || !a.mountpoint || a.extra) {
        fprintf(stderr, "poolfs: %s; usage: poolfs [-f] [-d] [-o OPTIONS] "
                "URI MOUNTPOINT\n", a.extra ? "too many arguments" :
                "a libvirt URI and a mountpoint are required");
        return EXIT_USAGE;
    }

    opts.uri = a.uri;
    opts.disks_pool = a.disks_pool ? a.disks_pool : "nova-disks-pool";
    opts.base_pool = a.base_pool ? a.base_pool : "nova-base-images-pool";
    opts.refresh = 2.0;
    opts.read_only = a.ro;
    opts.pool_map = a.pool_map;
    if (a.refresh) {
        opts.refresh = strtod(a.refresh, &end);
        if (*end || end == a.refresh || !(opts.refresh >= 0.1) ||
            opts.refresh > 86400) {
            fprintf(stderr, "poolfs: bad option refresh=%s: want seconds "
                    "between 0.1 and 86400\n", a.refresh);
            return EXIT_USAGE;
        }
    }
    if (a.max_threads == 0)
        a.max_threads = 16;
    if (a.max_threads < 2 || a.max_threads > 256) {
        fprintf(stderr, "poolfs: bad option max_threads=%u: want 2 to 256 "
                "(libvirtd reads through the mount while requests wait on "
                "it, so one thread is never enough)\n", a.max_threads);
        return EXIT_USAGE;
    }
    opts.keepalive = TCPKEEP_INTERVAL;
    opts.keepalive_count = TCPKEEP_COUNT;
    if (a.keepalive && poolfs_int_opt(a.keepalive, 0, TCPKEEP_INTERVAL_MAX,
                                      &opts.keepalive) < 0) {
        fprintf(stderr, "poolfs: bad option keepalive=%s: want 0 to %d "
                "seconds\n", a.keepalive, TCPKEEP_INTERVAL_MAX);
        return EXIT_USAGE;
    }
    if (a.keepalive_count &&
        poolfs_int_opt(a.keepalive_count, 1, TCPKEEP_COUNT_MAX,
                       &opts.keepalive_count) < 0) {
        fprintf(stderr, "poolfs: bad option keepalive_count=%s: want 1 to "
                "%d\n", a.keepalive_count, TCPKEEP_COUNT_MAX);
        return EXIT_USAGE;
    }
    if (a.readahead == UINT_MAX)
        a.readahead = POOLFS_READAHEAD;
    if (a.readahead > 1024 * 1024) {
        fprintf(stderr, "poolfs: bad option readahead=%u: want 0 to 1048576 "
                "KiB\n", a.readahead);
        return EXIT_USAGE;
    }
    if (!a.passthrough || strcmp(a.passthrough, "all") == 0) {
        fs.passthrough_opt = fs.passthrough_all = true;
    } else if (strcmp(a.passthrough, "buffered") == 0) {
        fs.passthrough_opt = true;
    } else if (strcmp(a.passthrough, "off") != 0) {
        fprintf(stderr, "poolfs: bad option passthrough=%s: want all, "
                "buffered or off\n", a.passthrough);
        return EXIT_USAGE;
    }
    if (poolfs_parse_io(a.io, &opts.io) < 0) {
        fprintf(stderr, "poolfs: bad option io=%s: want auto, local or "
                "stream\n", a.io);
        return EXIT_USAGE;
    }

    if (!realpath(a.mountpoint, mount_real) || stat(mount_real, &st) < 0) {
        fprintf(stderr, "poolfs: mountpoint %s: %s\n", a.mountpoint,
                strerror(errno));
        return EXIT_RUNTIME;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "poolfs: mountpoint %s: %s\n", a.mountpoint,
                strerror(ENOTDIR));
        return EXIT_RUNTIME;
    }
    opts.mountpoint = mount_real;
    /* What the mount will cover stays reachable: legacy instances. */
    opts.underlay_fd = open(mount_real, O_PATH | O_DIRECTORY | O_CLOEXEC);

    fs.readahead_kb = a.readahead;
    if (!(fs.conn_opts = fuse_parse_conn_info_opts(&args)))
        return EXIT_USAGE;
    /* Hard-wired behaviour; the user's -o options come after and win.
     * Reads of 1008 KiB at most, so that a reply with its header fits the
     * 1 MiB pipe it is spliced through from the volume's file (writes are
     * 1 MiB: they are read into memory, see poolfs_init). */
    fuse_opt_insert_arg(&args, 1, "-ofsname=poolfs,subtype=poolfs,"
                        "default_permissions,max_read=" POOLFS_MAX_IO_STR);
    if (!(fuse = fuse_new(&args, &poolfs_ops, sizeof(poolfs_ops), &fs))) {
        /* libfuse said which option it did not know. */
        return EXIT_USAGE;
    }

    if (!a.foreground)
        poolfs_fork(&readyfd);
    if (pool_open(&opts, &fs.ctx) < 0)
        goto out;
    if (fuse_mount(fuse, mount_real) < 0) {
        fprintf(stderr, "poolfs: cannot mount on %s\n", mount_real);
        goto out;
    }
    /* Before the loop reads the kernel's INIT (passthrough.c). */
    if (fs.passthrough_opt &&
        (rc = pt_install(fuse_get_session(fuse), a.debug)) < 0) {
        fprintf(stderr, "poolfs: cannot serve %s: taking over /dev/fuse "
                "for passthrough: %s\n", mount_real, strerror(-rc));
        fuse_unmount(fuse);
        goto out;
    }
    if (fuse_set_signal_handlers(fuse_get_session(fuse)) < 0 ||
        pool_start(fs.ctx) < 0) {
        fprintf(stderr, "poolfs: cannot start serving %s\n", mount_real);
        fuse_unmount(fuse);
        goto out;
    }
    poolfs_set_readahead(mount_real, a.readahead);
    if (readyfd >= 0)
        poolfs_detach(readyfd);

    loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(loop, 1);
    fuse_loop_cfg_set_max_threads(loop, a.max_threads);
    /* Keep them all: a queue of 16 random reads would otherwise create
     * and end threads all the time. */
    fuse_loop_cfg_set_idle_threads(loop, a.max_threads);
    ret = fuse_loop_mt(fuse, loop) == 0 ? 0 : EXIT_RUNTIME;
    fuse_loop_cfg_destroy(loop);
    fuse_remove_signal_handlers(fuse_get_session(fuse));
    fuse_unmount(fuse);

 out:
    fuse_destroy(fuse);
    pool_close(fs.ctx);
    fuse_opt_free_args(&args);
    free(fs.conn_opts);
    free(a.uri);
    free(a.mountpoint);
    free(a.disks_pool);
    free(a.base_pool);
    free(a.refresh);
    free(a.keepalive);
    free(a.keepalive_count);
    free(a.io);
    free(a.pool_map);
    free(a.passthrough);
    return ret;
}
