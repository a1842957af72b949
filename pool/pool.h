/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pool: the instances tree over libvirt storage pools.  This is all fs/
 * sees: paths in, struct stat and negative errno values out, and opaque
 * file handles.  No libvirt or libxml2 type crosses this header.
 */
#ifndef POOLFS_POOL_H
#define POOLFS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

struct pool_ctx;
struct pool_file;

enum pool_io {
    POOL_IO_AUTO,    /* local where the volume has a path here, else stream */
    POOL_IO_LOCAL,   /* refuse to open volumes without a local path */
    POOL_IO_STREAM,  /* always libvirt volume streams */
};

struct pool_opts {
    const char *uri;
    const char *disks_pool;
    const char *base_pool;
    const char *mountpoint;   /* absolute, resolved */
    double refresh;           /* seconds between re-listings of the pools */
    int keepalive;            /* a silent peer probed every this many s, */
    int keepalive_count;      /* given up after this many probes (tcpkeep.h) */
    enum pool_io io;
    bool read_only;
    /* "disk.swap:nova-swap-pool,disk.local:nova-ephemeral-pool", or NULL */
    const char *pool_map;
    /* The directory under the mountpoint, opened before mounting (O_PATH),
     * for legacy instances; -1 for none.  pool_close() closes it. */
    int underlay_fd;
};

/* The libvirt library version, as "9.0.0", written into BUF. */
const char *pool_libvirt_version(char *buf, size_t len);

/* Connect and check everything a mount needs; reports why on failure. */
int pool_open(const struct pool_opts *opts, struct pool_ctx **ctxp);
/* Whether files of the mount can be on this host (io not stream): with
 * FILES, regular files (a pool of files: fs/ then offers passthrough,
 * which the kernel gives regular files only); else files or devices
 * (a logical pool's too: else every file is a stream's, which the kernel
 * does not cache, direct_io, and fs/ leaves the writeback cache off). */
bool pool_local(const struct pool_ctx *ctx, bool files);
/* A line on stderr and in syslog (stderr is /dev/null once daemonised). */
void pool_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start the event and refresh threads (after any fork). */
int pool_start(struct pool_ctx *ctx);
void pool_close(struct pool_ctx *ctx);

/* Tree operations; PATH is absolute within the mount ("/", "/uuid/disk"). */
typedef int (*pool_fill_fn)(void *arg, const char *name, const struct stat *st);

int pool_getattr(struct pool_ctx *ctx, const char *path, struct stat *st);
/* A symbolic link: only the legacy tree has them (-EINVAL elsewhere). */
int pool_readlink(struct pool_ctx *ctx, const char *path, char *buf,
                  size_t size);
int pool_readdir(struct pool_ctx *ctx, const char *path,
                 pool_fill_fn fill, void *arg);
int pool_mkdir(struct pool_ctx *ctx, const char *path, mode_t mode,
               uid_t uid, gid_t gid);
int pool_rmdir(struct pool_ctx *ctx, const char *path);
int pool_unlink(struct pool_ctx *ctx, const char *path);
int pool_rename(struct pool_ctx *ctx, const char *from, const char *to,
                unsigned int flags);
int pool_truncate(struct pool_ctx *ctx, const char *path, off_t size);
int pool_chmod(struct pool_ctx *ctx, const char *path, mode_t mode);
int pool_chown(struct pool_ctx *ctx, const char *path, uid_t uid, gid_t gid);
int pool_utimens(struct pool_ctx *ctx, const char *path,
                 const struct timespec tv[2]);
int pool_statfs(struct pool_ctx *ctx, const char *path, struct statvfs *sv);

/* "legacy" (underneath the mount) or "pool" for PATH, -ENOENT. */
int pool_backend(struct pool_ctx *ctx, const char *path, const char **what);
/* The pools the mount serves, for POOLFS_IOC_POOL: 0, or -errno. */
struct poolfs_ioc_pool;
int pool_identity(struct pool_ctx *ctx, struct poolfs_ioc_pool *p);
/* The same for an open file: "legacy" or "pool". */
const char *pool_file_backend(struct pool_file *file);
/*
 * Adopt legacy instance directory PATH ("/uuid") into the disks pool: its
 * files become volumes {uuid}_{name} by rename(2) into the pool's
 * directory (instant; open files stay open).  -EXDEV when the two are on
 * different filesystems, -ENOTDIR/-EINVAL for what is not a legacy
 * instance directory.  Interrupted, running it again finishes.
 */
int pool_adopt(struct pool_ctx *ctx, const char *path);

/* Files.  FLAGS are open(2) flags. */
int pool_create(struct pool_ctx *ctx, const char *path, mode_t mode,
                uid_t uid, gid_t gid, int flags, struct pool_file **filep);
int pool_open_file(struct pool_ctx *ctx, const char *path, int flags,
                   struct pool_file **filep);
/* The flags FILE was opened with (open(2)'s). */
int pool_file_oflags(const struct pool_file *file);
/* The local fd behind FILE for zero-copy reads, or -1 for streams. */
int pool_file_fd(struct pool_file *file);
/* The same for writing straight to it (the file counts as written). */
int pool_file_fd_for_write(struct pool_file *file);
/* FILE may be written behind pool/'s back (the kernel's passthrough): it
 * counts as written, so its pool is refreshed when it is closed. */
void pool_file_set_written(struct pool_file *file);
/*
 * copy_file_range(2) between the local files behind IN and OUT, inside
 * the kernel (a reflink where the filesystem can): for a file the kernel
 * itself writes (passthrough), which a clone must not replace.
 * -EOPNOTSUPP where either has no local file.
 */
ssize_t pool_file_copy_local(struct pool_file *in, off_t off_in,
                             struct pool_file *out, off_t off_out,
                             size_t len);
ssize_t pool_file_read(struct pool_file *file, void *buf, size_t size,
                       off_t off);
ssize_t pool_file_write(struct pool_file *file, const void *buf, size_t size,
                        off_t off);
int pool_file_getattr(struct pool_file *file, struct stat *st);
int pool_file_truncate(struct pool_file *file, off_t size);
int pool_file_chmod(struct pool_file *file, mode_t mode);
int pool_file_chown(struct pool_file *file, uid_t uid, gid_t gid);
int pool_file_utimens(struct pool_file *file, const struct timespec tv[2]);
int pool_file_flush(struct pool_file *file);
int pool_file_fsync(struct pool_file *file, bool datasync);
int pool_file_fallocate(struct pool_file *file, int mode, off_t off,
                        off_t len);
off_t pool_file_lseek(struct pool_file *file, off_t off, int whence);
/*
 * copy_file_range(2) of a whole file into an empty one in the same pool,
 * as virStorageVolCreateXMLFrom; -EOPNOTSUPP for anything else (the kernel
 * then copies the bytes).  Returns the bytes copied.
 */
ssize_t pool_file_copy(struct pool_file *in, off_t off_in,
                       struct pool_file *out, off_t off_out, size_t len);
/* Flushes, closes and frees FILE; returns the first deferred error. */
int pool_file_close(struct pool_file *file);

#endif /* POOLFS_POOL_H */
