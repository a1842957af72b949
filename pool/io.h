/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io: the data backends behind one interface.  The choice between them is
 * made once per open, in io_open(): "local" when the volume is a file or
 * device on this host, "stream" (virStorageVolDownload/Upload) otherwise.
 */
#ifndef POOLFS_IO_H
#define POOLFS_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "internal.h"

struct io_ops {
    const char *name;
    ssize_t (*read)(struct pool_file *f, void *buf, size_t size, off_t off);
    ssize_t (*write)(struct pool_file *f, const void *buf, size_t size,
                     off_t off);
    int (*getattr)(struct pool_file *f, struct stat *st);
    int (*truncate)(struct pool_file *f, off_t size);
    int (*chmod)(struct pool_file *f, mode_t mode);
    int (*chown)(struct pool_file *f, uid_t uid, gid_t gid);
    int (*utimens)(struct pool_file *f, const struct timespec tv[2]);
    int (*flush)(struct pool_file *f);
    /* Finish what is being written (a held upload), returning only what
     * that finds: a kept error stays for flush, fsync and close.  NULL:
     * nothing is ever held. */
    int (*finish)(struct pool_file *f);
    int (*fsync)(struct pool_file *f, bool datasync);
    int (*fallocate)(struct pool_file *f, int mode, off_t off, off_t len);
    off_t (*lseek)(struct pool_file *f, off_t off, int whence);
    void (*close)(struct pool_file *f);
};

struct io_stream;

struct pool_file {
    const struct io_ops *ops;
    struct pool_ctx *ctx;
    int pool;
    char *path;             /* where it is in the tree */
    char *vol;
    int fd;                 /* local: the open file or device */
    int oflags;             /* open(2)'s flags */
    bool written;           /* libvirt's view of the pool is now stale */
    struct io_stream *st;   /* stream: its state */
};

extern const struct io_ops io_local_ops;
extern const struct io_ops io_stream_ops;

int io_local_open(struct pool_file *f, const char *local, int flags);
int io_stream_open(struct pool_file *f, int flags);
/* The volume of F's name made anew (a clone replaced it): the handle's
 * streams dropped and its volume looked up again, in place. */
int io_stream_reopen(struct pool_file *f);

/* stat(2) of a local volume as the tree shows it: a regular file. */
int io_local_stat(const char *local, struct stat *st);

#endif /* POOLFS_IO_H */
