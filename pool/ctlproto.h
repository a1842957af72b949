/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctlproto: how poolfsctl talks to a poolfs mount, through the mount
 * itself.  Not through extended attributes to read: a FUSE filesystem that
 * answers getxattr gets one more round trip on every write, the kernel
 * asking for security.capability before each (poolfs answers none, so the
 * kernel stops asking).
 *
 * - ioctl(POOLFS_IOC_BACKEND) on any path under the mount (opened
 *   O_RDONLY; a directory too) fills what with "legacy" or "pool";
 * - ioctl(POOLFS_IOC_POOL) on the same fills in the pools the mount
 *   serves: the disks pool's name and UUID, the base pool's name, and
 *   -o pool_map as FILE:POOL,...;
 * - setxattr("user.poolfs.adopt") on a legacy instance directory, by root,
 *   adopts it into the pool.
 */
#ifndef POOLFS_CTLPROTO_H
#define POOLFS_CTLPROTO_H

#include <linux/ioctl.h>

struct poolfs_ioc_backend {
    char what[16];              /* NUL-terminated */
};

#define POOLFS_IOC_BACKEND _IOR('P', 0x70, struct poolfs_ioc_backend)

struct poolfs_ioc_pool {
    char name[256];             /* the disks pool, NUL-terminated */
    char uuid[40];              /* its UUID string, NUL-terminated */
    char base[256];             /* the base pool */
    char map[1024];             /* FILE:POOL,... ("" if none) */
};

#define POOLFS_IOC_POOL _IOR('P', 0x71, struct poolfs_ioc_pool)
#define POOLFS_XATTR_ADOPT "user.poolfs.adopt"

#endif /* POOLFS_CTLPROTO_H */
