/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io_local: the volume is a file or block device on this host; every
 * request goes straight to it.  fs/ serves reads zero-copy from the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

static void
io_local_fix_stat(int fd, struct stat *st)
{
    uint64_t size;

    /* A logical pool's volume is a block device: show it as a file of
     * the device's size. */
    if (S_ISBLK(st->st_mode)) {
        if (fd >= 0 && ioctl(fd, BLKGETSIZE64, &size) == 0)
            st->st_size = size;
        st->st_mode = S_IFREG | (st->st_mode & 07777);
        st->st_blocks = st->st_size / 512;
    }
    st->st_nlink = 1;
}

int
io_local_stat(const char *local, struct stat *st)
{
    if (stat(local, st) < 0)
        return -errno;
    if (S_ISBLK(st->st_mode)) {
        int fd = open(local, O_RDONLY | O_CLOEXEC);

        io_local_fix_stat(fd, st);
        if (fd >= 0)
            close(fd);
    }
    st->st_nlink = 1;
    return 0;
}

int
io_local_open(struct pool_file *f, const char *local, int flags)
{
    /* No O_DIRECT: the kernel already keeps such I/O out of the mount's
     * page cache, and the buffers libfuse hands us are not aligned for
     * it (QEMU's cache=none would fail with EINVAL). */
    int oflags = flags & (O_ACCMODE | O_TRUNC | O_SYNC | O_DSYNC |
                          O_NOATIME);

    /* With the kernel's writeback cache the kernel may read around a
     * partial page of a write-only file, and it does O_APPEND itself. */
    if ((oflags & O_ACCMODE) == O_WRONLY)
        oflags = (oflags & ~O_ACCMODE) | O_RDWR;

    if ((f->fd = open(local, oflags | O_CLOEXEC)) < 0) {
        int err = errno;

        if (err != ENOENT)
            pool_log("open %s: %s", local, strerror(err));
        return -err;
    }
    return 0;
}

static ssize_t
io_local_read(struct pool_file *f, void *buf, size_t size, off_t off)
{
    ssize_t n = pread(f->fd, buf, size, off);

    return n < 0 ? -errno : n;
}

static ssize_t
io_local_write(struct pool_file *f, const void *buf, size_t size, off_t off)
{
    ssize_t n = pwrite(f->fd, buf, size, off);

    return n < 0 ? -errno : n;
}

static int
io_local_getattr(struct pool_file *f, struct stat *st)
{
    if (fstat(f->fd, st) < 0)
        return -errno;
    io_local_fix_stat(f->fd, st);
    return 0;
}

static int
io_local_truncate(struct pool_file *f, off_t size)
{
    return ftruncate(f->fd, size) < 0 ? -errno : 0;
}

static int
io_local_chmod(struct pool_file *f, mode_t mode)
{
    return fchmod(f->fd, mode & 07777) < 0 ? -errno : 0;
}

static int
io_local_chown(struct pool_file *f, uid_t uid, gid_t gid)
{
    return fchown(f->fd, uid, gid) < 0 ? -errno : 0;
}

static int
io_local_utimens(struct pool_file *f, const struct timespec tv[2])
{
    return futimens(f->fd, tv) < 0 ? -errno : 0;
}

static int
io_local_flush(struct pool_file *f)
{
    return 0;
}

static int
io_local_fsync(struct pool_file *f, bool datasync)
{
    int rc = datasync ? fdatasync(f->fd) : fsync(f->fd);

    return rc < 0 ? -errno : 0;
}

static int
io_local_fallocate(struct pool_file *f, int mode, off_t off, off_t len)
{
    return fallocate(f->fd, mode, off, len) < 0 ? -errno : 0;
}

static off_t
io_local_lseek(struct pool_file *f, off_t off, int whence)
{
    off_t r = lseek(f->fd, off, whence);

    return r < 0 ? -errno : r;
}

static void
io_local_close(struct pool_file *f)
{
    close(f->fd);
}

const struct io_ops io_local_ops = {
    .name = "local",
    .read = io_local_read,
    .write = io_local_write,
    .getattr = io_local_getattr,
    .truncate = io_local_truncate,
    .chmod = io_local_chmod,
    .chown = io_local_chown,
    .utimens = io_local_utimens,
    .flush = io_local_flush,
    .fsync = io_local_fsync,
    .fallocate = io_local_fallocate,
    .lseek = io_local_lseek,
    .close = io_local_close,
};
