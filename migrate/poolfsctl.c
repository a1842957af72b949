/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * poolfsctl: the admin command of poolfs.
 *
 *   poolfsctl [-c URI] [--disks-pool NAME] [--base-pool NAME] [--json]
 *             COMMAND [ARGS]
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include <libxml/entities.h>

#include "ctl.h"
#include "pump.h"
#include "tcpkeep.h"
#include "virterr.h"

static void
ctl_silent(void *opaque, virErrorPtr err)
{
    /* Reported once, by whoever knows the object. */
}

/* With --json, stdout passes through a stream that notes whether
 * anything was printed: a command that fails before it has printed a
 * result gets {"ok": false, "error": ...} with its first error printed for
 * it at exit (ctl_json_end), so that a script always gets JSON. */
static FILE *ctl_real_stdout;
static bool ctl_json_printed;
static char ctl_first_error[1024];

static void
ctl_error_vrecord(const char *fmt, va_list ap)
{
    if (!ctl_first_error[0])
        vsnprintf(ctl_first_error, sizeof(ctl_first_error), fmt, ap);
}

void
ctl_error_record(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_error_vrecord(fmt, ap);
    va_end(ap);
}

const char *
ctl_error_first(void)
{
    return ctl_first_error;
}

void
ctl_json_ok(bool ok)
{
    printf("\"ok\": %s", ok ? "true" : "false");
    if (!ok && ctl_first_error[0]) {
        printf(", \"error\": ");
        ctl_json_string(stdout, ctl_first_error);
    }
    printf("}\n");
}

void
ctl_error(const char *fmt, ...)
{
    va_list ap;

    fputs("poolfsctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    va_start(ap, fmt);
    ctl_error_vrecord(fmt, ap);
    va_end(ap);
}

static ssize_t
ctl_json_write(void *cookie, const char *buf, size_t len)
{
    FILE *out = cookie;

    if (len)
        ctl_json_printed = true;
    return fwrite(buf, 1, len, out) == len && fflush(out) == 0 ?
           (ssize_t)len : -1;
}

static void
ctl_json_end(void)
{
    if (!ctl_real_stdout)
        return;
    fclose(stdout);             /* flushes through to the real one */
    stdout = ctl_real_stdout;
    ctl_real_stdout = NULL;
    if (!ctl_json_printed && ctl_first_error[0]) {
        fputs("{\"ok\": false, \"error\": ", stdout);
        ctl_json_string(stdout, ctl_first_error);
        fputs("}\n", stdout);
    }
    fflush(stdout);
}

static void
ctl_json_begin(struct ctl *ctl)
{
    static const cookie_io_functions_t io = { .write = ctl_json_write };
    FILE *f;

    ctl->json = true;
    ctl->progress = false;
    if (ctl_real_stdout)
        return;
    fflush(stdout);
    if (!(f = fopencookie(stdout, "w", io)))
        return;                 /* then as before: stdout as it comes */
    setvbuf(f, NULL, _IOLBF, 0);
    ctl_real_stdout = stdout;
    stdout = f;
    atexit(ctl_json_end);
}

const char *
ctl_virt_message(void)
{
    virErrorPtr e = virGetLastError();

    return e && e->message ? e->message : "unknown libvirt error";
}

const char *
ctl_virt_keep(char *buf, size_t len)
{
    snprintf(buf, len, "%s", ctl_virt_message());
    return buf;
}

virConnectPtr
ctl_connect(const char *uri)
{
    virConnectPtr c;
    const char *hint;
    unsigned ended;

    pump_keepalive_watch();
    ended = tcpkeep_opens_ended();
    if (!(c = pump_open(uri))) {
        hint = virterr_hint(ended);
        ctl_error("cannot connect to libvirt at %s: %s%s%s%s", uri,
                  ctl_virt_message(), hint ? " (" : "", hint ? hint : "",
                  hint ? ")" : "");
    }
    return c;
}

const char *
ctl_size(uint64_t bytes, char *buf, size_t len)
{
    const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = bytes;
    int u = 0;

    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

char *
ctl_xml_text(const char *s)
{
    xmlChar *e = xmlEncodeSpecialChars(NULL, BAD_CAST s);
    char *copy = e ? strdup((const char *)e) : NULL;

    xmlFree(e);
    return copy;
}

void
ctl_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = *s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* -k and -K, wherever they come: false (said why) for a bad value. */
static bool
ctl_keepalive_opt(int c, const char *arg)
{
    static long interval = TCPKEEP_INTERVAL, count = TCPKEEP_COUNT;
    long min = c == 'k' ? 0 : 1;
    long max = c == 'k' ? TCPKEEP_INTERVAL_MAX : TCPKEEP_COUNT_MAX;
    long v;
    char *end;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        ctl_error("bad %s '%s': want %ld to %ld%s",
                  c == 'k' ? "--keepalive-interval" : "--keepalive-count", arg,
                  min, max, c == 'k' ? " seconds" : "");
        return false;
    }
    *(c == 'k' ? &interval : &count) = v;
    pump_keepalive_setup((int)interval, (unsigned)count);
    return true;
}

bool
ctl_common_opt(struct ctl *ctl, int c, const char *arg)
{
    switch (c) {
    case 'k':
    case 'K':
        if (!ctl_keepalive_opt(c, arg))
            exit(CTL_USAGE);
        return true;
    case 'c': ctl->uri = arg; return true;
    case CTL_OPT_DISKS_POOL: ctl->disks_pool = arg; return true;
    case CTL_OPT_BASE_POOL: ctl->base_pool = arg; return true;
    case CTL_OPT_JSON: ctl_json_begin(ctl); return true;
    default:
        /* getopt has said which ('?': unknown, ':': no argument). */
        ctl_error_record("bad option; see poolfsctl COMMAND --help");
        return false;
    }
}

bool
ctl_parse_number(const char *cmd, const char *opt, const char *what,
                 const char *arg, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(arg, &end, 10);
    if (errno || !isdigit((unsigned char)arg[0]) || *end || *out < 1 ||
        *out > max) {
        ctl_error("%s: %s wants %s, a whole number from 1 to %lu, not '%s'",
                  cmd, opt, what, max, arg);
        return false;
    }
    return true;
}

double
ctl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
ctl_progress_start(struct ctl_progress *p, const struct ctl *ctl,
                   const char *label, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->ctl = ctl;
    p->label = label;
    p->total = total;
    p->start = ctl_now();
}

void
ctl_progress_update(struct ctl_progress *p, uint64_t done)
{
    double now = ctl_now();
    double el = now - p->start;
    double rate;
    char d[32], t[32], r[32];
    int width = 24, fill, i;
    long eta;

    done += p->base;
    if (!p->ctl->progress || (now - p->last_draw < 0.2 && done < p->total))
        return;
    p->last_draw = now;
    rate = el > 0 ? done / el : 0;
    eta = rate > 0 && p->total > done ? (long)((p->total - done) / rate) : 0;
    fill = p->total ? (int)((double)done / p->total * width) : width;
    if (fill > width)
        fill = width;
    fprintf(stderr, "\r%-36.36s [", p->label);
    for (i = 0; i < width; i++)
        fputc(i < fill ? '=' : ' ', stderr);
    fprintf(stderr, "] %s/%s %s/s ETA %ld:%02ld ",
            ctl_size(done, d, sizeof(d)), ctl_size(p->total, t, sizeof(t)),
            ctl_size((uint64_t)rate, r, sizeof(r)), eta / 60, eta % 60);
    fflush(stderr);
}

void
ctl_progress_end(struct ctl_progress *p)
{
    if (p->ctl->progress)
        fputs("\r\033[K", stderr);
}

static void
ctl_usage(FILE *out)
{
    fprintf(out,
"usage: poolfsctl [-c URI] [--disks-pool NAME] [--base-pool NAME] [--json]\n"
"                 [-k SECONDS] [-K COUNT] COMMAND [ARGS]\n"
"\n"
"The admin command of poolfs.\n"
"\n"
"global options:\n"
"  -c, --connect URI    libvirt URI, as virsh takes it (default qemu:///system)\n"
"  --disks-pool NAME    pool of instance files (default nova-disks-pool)\n"
"  --base-pool NAME     pool of base images (default nova-base-images-pool)\n"
"  --json               print a machine-readable result on stdout (a\n"
"                       failure before any: {\"ok\": false, \"error\": ...})\n"
"  -k, --keepalive-interval SECONDS\n"
"                       probe a libvirt connection that has gone silent\n"
"                       every SECONDS (default 5; 0: never), as virsh does\n"
"  -K, --keepalive-count COUNT\n"
"                       close it after COUNT unanswered probes (default 6),\n"
"                       also while sent data waits for an answer, and give\n"
"                       up a connect unanswered as long: a cut network\n"
"                       ends a copy with an error\n"
"  -h, --help           print this help; COMMAND --help for a command's\n"
"  -V, --version        print the version\n"
"\n"
"commands:\n"
"  migrate [--from URI] --to URI [--move] [--no-verify] [--no-base]\n"
"          [--streams] [--parallel N] [--bandwidth MIB]\n"
"          [--timeout SECONDS] [--dry-run] UUID...\n"
"      copy all volumes of the instances to another node's pools with\n"
"      libvirt volume streams (cold migration without SSH)\n"
"  live-migrate DOMAIN --to URI [--tunnelled auto|yes|no] [--insecure]\n"
"          [--postcopy] [--auto-converge] [--bandwidth MIB]\n"
"          [--timeout SECONDS] [--dry-run]\n"
"      live migration with the flags chosen for you (see --help there)\n"
"  cache [--unused] [--remove-unused --min-age SECONDS]\n"
"      base images and the volumes backed by each (from libvirt's XML)\n"
"  create-cow [--mount DIR] UUID/NAME --backing _base/IMAGE [--size SIZE]\n"
"      a qcow2 overlay volume on a base image (virStorageVolCreateXML)\n"
"  adopt [--mount DIR] [--dry-run] (--all | UUID...)\n"
"      move legacy instances under the mount into the disks pool\n"
"  transition [--mount DIR] [--dry-run] DOMAIN\n"
"      point a domain's disks under the mount at the pool volumes\n"
"\n"
"Exit status: 0 on full success, 1 when anything failed, 2 for a usage\n"
"error.\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "connect", required_argument, NULL, 'c' },
        { "disks-pool", required_argument, NULL, CTL_OPT_DISKS_POOL },
        { "base-pool", required_argument, NULL, CTL_OPT_BASE_POOL },
        { "json", no_argument, NULL, CTL_OPT_JSON },
        { "keepalive-interval", required_argument, NULL, 'k' },
        { "keepalive-count", required_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct ctl ctl = {
        .uri = "qemu:///system",
        .disks_pool = "nova-disks-pool",
        .base_pool = "nova-base-images-pool",
    };
    int c;

    pump_keepalive_setup(TCPKEEP_INTERVAL, TCPKEEP_COUNT);
    /* Global options stop at the command: its options are its own. */
    while ((c = getopt_long(argc, argv, "+c:k:K:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ctl.uri = optarg; break;
        case 'k':
        case 'K':
            if (!ctl_keepalive_opt(c, optarg))
                return CTL_USAGE;
            break;
        case CTL_OPT_DISKS_POOL: ctl.disks_pool = optarg; break;
        case CTL_OPT_BASE_POOL: ctl.base_pool = optarg; break;
        case CTL_OPT_JSON: ctl_json_begin(&ctl); break;
        case 'h': ctl_usage(stdout); return CTL_OK;
        case 'V': printf("poolfsctl %s\n", POOLFS_VERSION); return CTL_OK;
        default:
            /* getopt has said which. */
            ctl_error("bad option; see poolfsctl --help");
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        ctl_error("a command is required; see poolfsctl --help");
        return CTL_USAGE;
    }
    ctl.progress = !ctl.json && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    /* A peer that goes away must be an error from libvirt, not death by
     * SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* libvirt's client takes every stream packet into a fresh buffer of
     * 256 KiB and some, above glibc's first mmap threshold: mapped, faulted
     * in page by page and unmapped again, packet after packet, unless the
     * sliding threshold has caught up in that thread's arena (and trimming
     * gives the top back).  A fixed 1 MiB threshold and a 32 MiB trim keep
     * them in the heap: 5 % of poolfsctl's CPU in a pull (README). */
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    virSetErrorFunc(NULL, ctl_silent);
    virterr_quiet_log();
    if (virInitialize() < 0) {
        ctl_error("cannot initialise libvirt: %s", ctl_virt_message());
        return CTL_FAILED;
    }
    if (strcmp(argv[optind], "migrate") == 0)
        return cold_main(&ctl, argc - optind, argv + optind);
    if (strcmp(argv[optind], "cache") == 0)
        return cache_main(&ctl, argc - optind, argv + optind);
    if (strcmp(argv[optind], "create-cow") == 0)
        return cow_main(&ctl, argc - optind, argv + optind);
    if (strcmp(argv[optind], "transition") == 0)
        return transition_main(&ctl, argc - optind, argv + optind);
    if (strcmp(argv[optind], "adopt") == 0)
        return adopt_main(&ctl, argc - optind, argv + optind);
    if (strcmp(argv[optind], "live-migrate") == 0)
        return live_main(&ctl, argc - optind, argv + optind);
    ctl_error("unknown command '%s'; see poolfsctl --help", argv[optind]);
    return CTL_USAGE;
}
