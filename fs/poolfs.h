/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef POOLFS_FS_H
#define POOLFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "pool.h"

/* The mounted filesystem: what every FUSE operation reaches. */
struct poolfs {
    struct pool_ctx *ctx;
    bool read_only;
};

extern const struct fuse_operations poolfs_ops;

#endif /* POOLFS_FS_H */
