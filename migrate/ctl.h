/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What every poolfsctl subcommand shares: options, output, errors. */
#ifndef POOLFS_CTL_H
#define POOLFS_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <libvirt/libvirt.h>

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

struct ctl {
    const char *uri;            /* -c, as virsh takes it */
    const char *disks_pool;
    const char *base_pool;
    bool json;                  /* machine-readable result on stdout */
    bool progress;              /* a progress bar on stderr (a terminal) */
};

/* The long-only ones of those: values no command's own letters can take
 * (a command's --bandwidth once shared 'B' with --base-pool). */
enum {
    CTL_OPT_DISKS_POOL = 0x100,
    CTL_OPT_BASE_POOL,
    CTL_OPT_JSON,
};

/* The options every command takes, as virsh and poolfs spell them. */
#define CTL_COMMON_OPTIONS                                          \
    { "connect", required_argument, NULL, 'c' },                    \
    { "disks-pool", required_argument, NULL, CTL_OPT_DISKS_POOL },  \
    { "base-pool", required_argument, NULL, CTL_OPT_BASE_POOL },    \
    { "json", no_argument, NULL, CTL_OPT_JSON },                    \
    { "keepalive-interval", required_argument, NULL, 'k' }, \
    { "keepalive-count", required_argument, NULL, 'K' },    \
    { "help", no_argument, NULL, 'h' }
/* Their short ones, for getopt_long's OPTSTRING. */
#define CTL_COMMON_SHORT "c:k:K:h"

/* Take one of CTL_COMMON_OPTIONS but --help; false if C is none. */
bool ctl_common_opt(struct ctl *ctl, int c, const char *arg);

/* Option OPT's argument ARG, WHAT ("seconds"), a whole number from 1 to
 * MAX, into *OUT; false with the error reported (CMD names the command)
 * when it is not one. */
bool ctl_parse_number(const char *cmd, const char *opt, const char *what,
                      const char *arg, unsigned long max, unsigned long *out);
#define CTL_BANDWIDTH_MAX 1048576UL         /* MiB/s */
#define CTL_TIMEOUT_MAX 86400UL             /* s */

/* "poolfsctl: ..." on stderr: one line naming what failed and why. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Keep the first error for --json's {"ok": false, ...} without printing
 * it (getopt printed it); and that first error, "" if none. */
void ctl_error_record(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
const char *ctl_error_first(void);
/* The end of a command's --json object: "ok", and when not OK the first
 * error, then the closing brace. */
void ctl_json_ok(bool ok);
/* The last libvirt error's message. */
const char *ctl_virt_message(void);
/* A copy of ctl_virt_message() in BUF: take it right after the failing call,
 * before any other libvirt call (each resets the error, freeing its text). */
const char *ctl_virt_keep(char *buf, size_t len);
/* Open a connection; reports why it could not. */
virConnectPtr ctl_connect(const char *uri);
/* Human-readable size into BUF ("1.5 GiB"). */
const char *ctl_size(uint64_t bytes, char *buf, size_t len);
/* A JSON string literal of S (escaped) to OUT. */
void ctl_json_string(FILE *out, const char *s);
/* S as XML text ('&', '<', quotes escaped), malloc'ed; NULL if out of
 * memory. */
char *ctl_xml_text(const char *s);
/* What a poolfs mount says backs PATH ("pool", "legacy", ...; ioctl
 * POOLFS_IOC_BACKEND) into BUF, or NULL with errno (ENOTTY: not poolfs). */
const char *ctl_poolfs_backend(const char *path, char *buf, size_t len);
/* The pools the poolfs mount at MOUNT serves (POOLFS_IOC_POOL): 0, or -1
 * with errno (ENOTTY: not a poolfs mount, or one too old to say). */
struct poolfs_ioc_pool;
int ctl_poolfs_pools(const char *mount, struct poolfs_ioc_pool *p);

/* Progress of long work, drawn on stderr when ctl->progress is set. */
struct ctl_progress {
    const struct ctl *ctl;
    const char *label;
    uint64_t total;
    uint64_t base;              /* done by earlier pieces */
    double start;
    double last_draw;
};
void ctl_progress_start(struct ctl_progress *p, const struct ctl *ctl,
                        const char *label, uint64_t total);
void ctl_progress_update(struct ctl_progress *p, uint64_t done);
void ctl_progress_end(struct ctl_progress *p);
double ctl_now(void);

/* Is the pool the same storage at both ends (cold.c)? */
bool cold_pool_shared(virStoragePoolPtr a, virStoragePoolPtr b,
                      bool one_daemon);

int cold_main(struct ctl *ctl, int argc, char **argv);
int live_main(struct ctl *ctl, int argc, char **argv);
int cache_main(struct ctl *ctl, int argc, char **argv);
int cow_main(struct ctl *ctl, int argc, char **argv);
int transition_main(struct ctl *ctl, int argc, char **argv);
int adopt_main(struct ctl *ctl, int argc, char **argv);

#endif /* POOLFS_CTL_H */
