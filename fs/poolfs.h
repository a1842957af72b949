/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef POOLFS_FS_H
#define POOLFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "pool.h"

/* The largest read and write requests, in bytes (see poolfs_init). */
#define POOLFS_MAX_IO (1008 * 1024)
#define POOLFS_MAX_IO_STR "1032192"
#define POOLFS_MAX_WRITE (1024 * 1024)
/* The kernel's read-ahead on the mount, KiB (-o readahead). */
#ifndef POOLFS_READAHEAD
#define POOLFS_READAHEAD 1008
#endif
#define POOLFS_STR_(x) #x
#define POOLFS_STR(x) POOLFS_STR_(x)
#define POOLFS_READAHEAD_STR POOLFS_STR(POOLFS_READAHEAD)
/* Writes this big start their writeback at once (see write_buf). */
#ifndef POOLFS_KICK_WRITE
#define POOLFS_KICK_WRITE (256 * 1024)
#endif
/* Reads up to this size are copied rather than spliced (see read_buf). */
#ifndef POOLFS_SMALL_READ
#define POOLFS_SMALL_READ (32 * 1024)
#endif

/* The mounted filesystem: what every FUSE operation reaches. */
struct poolfs {
    struct pool_ctx *ctx;
    /* -o writeback_cache, no_splice_read, ...: applied after our defaults */
    struct fuse_conn_info_opts *conn_opts;
    unsigned readahead_kb;          /* -o readahead */
    bool wbcache;                   /* the kernel's writeback cache is on */
    bool passthrough_opt;           /* -o passthrough=all or buffered */
    bool passthrough_all;           /* all (the default): O_DIRECT too */
};

extern const struct fuse_operations poolfs_ops;

#endif /* POOLFS_FS_H */
