/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ops: the FUSE operations.  Each one turns a path and a request into a
 * call on pool/ and its answer into a reply; nothing here knows libvirt.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ctlproto.h"
#include "passthrough.h"
#include "poolfs.h"

/* What an open file's fh holds. */
struct poolfs_handle {
    struct pool_file *file;
    struct pt_backing *pt;      /* with passthrough enabled, or NULL */
    bool passthrough;           /* the kernel reads and writes it */
    struct stat opened;         /* passthrough, writable: at open */
};

static struct pool_ctx *
poolfs_ctx(void)
{
    return ((struct poolfs *)fuse_get_context()->private_data)->ctx;
}

static struct poolfs_handle *
poolfs_handle(struct fuse_file_info *fi)
{
    return (struct poolfs_handle *)(uintptr_t)fi->fh;
}

static struct pool_file *
poolfs_file(struct fuse_file_info *fi)
{
    return poolfs_handle(fi)->file;
}

static void *
poolfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    struct poolfs *fs;
    bool passthrough;

    /* unlink goes to the pool at once; open handles keep working. */
    cfg->hard_remove = 1;
    cfg->nullpath_ok = 1;
    cfg->use_ino = 0;
    /* Keep the page cache across opens unless the file changed. */
    cfg->auto_cache = 1;

    /*
     * Writes of 1 MiB, read into memory: a 1 MiB request plus its headers
     * does not fit the 1 MiB pipe libfuse would splice it through (root
     * without CAP_SYS_RESOURCE cannot grow one past pipe-max-size), and
     * 1008 KiB requests split every 1 MiB write in two.  Reads stay at
     * 1008 KiB (max_read, see main.c), so replies splice from the
     * volume's fd.
     */
    fs = fuse_get_context()->private_data;
    conn->max_write = POOLFS_MAX_WRITE;
    conn->max_read = POOLFS_MAX_IO;         /* as the max_read mount option */
    /* The kernel caps the mount's read-ahead (set in main.c) at this when
     * it takes our answer to INIT; it still asks max_read at a time. */
    conn->max_readahead = fs->readahead_kb * 1024;
    conn->want |= conn->capable & (FUSE_CAP_SPLICE_WRITE |
                                   FUSE_CAP_SPLICE_MOVE |
                                   FUSE_CAP_ASYNC_DIO |
                                   FUSE_CAP_PARALLEL_DIROPS |
                                   FUSE_CAP_ATOMIC_O_TRUNC);
    /*
     * Passthrough (passthrough.c) where the kernel has it and the files
     * are here: the kernel then reads and writes them itself.  It comes
     * without the writeback cache, which only the files poolfs still
     * serves would use.
     */
    passthrough = fs->passthrough_opt && pt_offered() &&
                  pool_local(fs->ctx, true);
    /* Not where every file is a stream's either: those are direct_io
     * (nothing cached to write back), and with the writeback cache the
     * kernel keeps its own size of a file over the one poolfs gives, so
     * a remote file others made longer would read short for ever. */
    if (!passthrough && pool_local(fs->ctx, false))
        conn->want |= conn->capable & FUSE_CAP_WRITEBACK_CACHE;
    if (fs->conn_opts)
        fuse_apply_conn_info_opts(fs->conn_opts, conn);
    /* With /dev/fuse taken over for passthrough (main.c), requests are
     * read into memory: libfuse would refuse INIT if asked to splice
     * them (-o splice_read), leaving a mount that answers nothing. */
    if (fs->passthrough_opt && (conn->want & FUSE_CAP_SPLICE_READ)) {
        conn->want &= ~FUSE_CAP_SPLICE_READ;
        pool_log("-o splice_read is not used with passthrough (-o "
                 "passthrough=off for it): requests are read into memory");
    }
    fs->wbcache = conn->want & FUSE_CAP_WRITEBACK_CACHE;
    if (passthrough && !fs->wbcache)
        pt_enable();    /* takes effect in the reply to INIT */
    return fs;
}

static int
poolfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (!path)
        return pool_file_getattr(poolfs_file(fi), st);
    return pool_getattr(poolfs_ctx(), path, st);
}

static int
poolfs_readlink(const char *path, char *buf, size_t size)
{
    return pool_readlink(poolfs_ctx(), path, buf, size);
}

struct poolfs_fill {
    void *buf;
    fuse_fill_dir_t filler;
};

static int
poolfs_fill_one(void *arg, const char *name, const struct stat *st)
{
    struct poolfs_fill *f = arg;

    return f->filler(f->buf, name, st, 0, st ? FUSE_FILL_DIR_PLUS : 0);
}

/* With nullpath_ok, readdir gets no path: opendir keeps it in fh. */
static int
poolfs_opendir(const char *path, struct fuse_file_info *fi)
{
    char *copy = strdup(path);

    if (!copy)
        return -ENOMEM;
    fi->fh = (uintptr_t)copy;
    return 0;
}

static int
poolfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    free((char *)(uintptr_t)fi->fh);
    return 0;
}

static int
poolfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
               off_t off, struct fuse_file_info *fi,
               enum fuse_readdir_flags flags)
{
    struct poolfs_fill fill = { buf, filler };

    return pool_readdir(poolfs_ctx(), (const char *)(uintptr_t)fi->fh,
                        poolfs_fill_one, &fill);
}

static int
poolfs_mkdir(const char *path, mode_t mode)
{
    struct fuse_context *fc = fuse_get_context();

    return pool_mkdir(poolfs_ctx(), path, mode, fc->uid, fc->gid);
}

static int
poolfs_rmdir(const char *path)
{
    return pool_rmdir(poolfs_ctx(), path);
}

static int
poolfs_unlink(const char *path)
{
    return pool_unlink(poolfs_ctx(), path);
}

static int
poolfs_rename(const char *from, const char *to, unsigned int flags)
{
    return pool_rename(poolfs_ctx(), from, to, flags);
}

static int
poolfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (!path || (fi && fi->fh))
        return pool_file_truncate(poolfs_file(fi), size);
    return pool_truncate(poolfs_ctx(), path, size);
}

static int
poolfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return pool_file_chmod(poolfs_file(fi), mode);
    return pool_chmod(poolfs_ctx(), path, mode);
}

static int
poolfs_chown(const char *path, uid_t uid, gid_t gid,
             struct fuse_file_info *fi)
{
    if (fi && fi->fh)
        return pool_file_chown(poolfs_file(fi), uid, gid);
    return pool_chown(poolfs_ctx(), path, uid, gid);
}

static int
poolfs_utimens(const char *path, const struct timespec tv[2],
               struct fuse_file_info *fi)
{
    /* The writeback cache sets mtime through the open file. */
    if (fi && fi->fh)
        return pool_file_utimens(poolfs_file(fi), tv);
    return pool_utimens(poolfs_ctx(), path, tv);
}

static int
poolfs_statfs(const char *path, struct statvfs *sv)
{
    return pool_statfs(poolfs_ctx(), path, sv);
}

/* FILE, just opened, into FI: the handle, and how the kernel opens it. */
static int
poolfs_set_file(struct fuse_file_info *fi, struct pool_file *file)
{
    struct poolfs *fs = fuse_get_context()->private_data;
    struct poolfs_handle *h = calloc(1, sizeof(*h));
    bool direct;
    int fd = pool_file_fd(file);
    int err;

    if (!h) {
        pool_file_close(file);
        return -ENOMEM;
    }
    h->file = file;
    fi->fh = (uintptr_t)h;
    /* Stream-backed files have no fd to splice from and no mtime to
     * validate a cache with: let every read reach us. */
    if (fd < 0) {
        fi->direct_io = 1;
        return 0;
    }
    if (!pt_enabled())
        return 0;
    /* With passthrough=all (the default) an O_DIRECT open is passed
     * through as well: the kernel then does real direct I/O on the
     * volume's file, as cache=none means. */
    direct = (fi->flags & O_DIRECT) && !fs->passthrough_all;
    if (!(h->pt = pt_open(fd, direct, &h->passthrough))) {
        err = errno;
        pool_file_close(file);
        free(h);
        fi->fh = 0;
        return -err;
    }
    /* The kernel writes it from now on: what it looked like, to tell at
     * release whether libvirt's view of the pool went stale. */
    if (h->passthrough && (fi->flags & O_ACCMODE) != O_RDONLY &&
        fstat(fd, &h->opened) < 0)
        pool_file_set_written(file);
    return 0;
}

static int
poolfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct fuse_context *fc = fuse_get_context();
    struct pool_file *file;
    int rc;

    if ((rc = pool_create(poolfs_ctx(), path, mode, fc->uid, fc->gid,
                          fi->flags, &file)) < 0)
        return rc;
    return poolfs_set_file(fi, file);
}

static int
poolfs_open(const char *path, struct fuse_file_info *fi)
{
    struct pool_file *file;
    int rc;

    if ((rc = pool_open_file(poolfs_ctx(), path, fi->flags, &file)) < 0)
        return rc;
    return poolfs_set_file(fi, file);
}

static int
poolfs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size,
                off_t off, struct fuse_file_info *fi)
{
    struct pool_file *file = poolfs_file(fi);
    struct fuse_bufvec *bv = malloc(sizeof(*bv));
    int fd = pool_file_fd(file);
    ssize_t n;

    if (!bv)
        return -ENOMEM;
    *bv = FUSE_BUFVEC_INIT(size);
    if (fd >= 0 && size > POOLFS_SMALL_READ) {
        /* Zero copy: libfuse splices straight from the volume's fd. */
        bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        bv->buf[0].fd = fd;
        bv->buf[0].pos = off;
        *bufp = bv;
        return 0;
    }
    if (!(bv->buf[0].mem = malloc(size))) {
        free(bv);
        return -ENOMEM;
    }
    /* A small read is copied: one pread and one writev cost less than
     * the three splices (header, data, out) of a zero-copy reply. */
    if ((n = pool_file_read(file, bv->buf[0].mem, size, off)) < 0) {
        free(bv->buf[0].mem);
        free(bv);
        return n;
    }
    bv->buf[0].size = n;
    *bufp = bv;
    return 0;
}

static int
poolfs_write_buf(const char *path, struct fuse_bufvec *src, off_t off,
                 struct fuse_file_info *fi)
{
    struct pool_file *file = poolfs_file(fi);
    size_t size = fuse_buf_size(src);
    int fd = pool_file_fd_for_write(file);
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    ssize_t n;
    void *mem;

    if (fd >= 0) {
        struct stat st;
        bool grows;

        /* A big write that grows the file is a copy or a conversion
         * going by (cp, qemu-img convert): start writing it to the disk
         * at once, so that its final fsync does not wait for all of it.
         * Writes inside the file (a guest's) stay in the cache to merge. */
        grows = size >= POOLFS_KICK_WRITE && fstat(fd, &st) == 0 &&
                off + (off_t)size > st.st_size;
        /* Short writes retried; one that still stops short (the disk
         * filled up) is an error, not a short count: the kernel's
         * writeback does not look at the count. */
        dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK |
                           FUSE_BUF_FD_RETRY;
        dst.buf[0].fd = fd;
        dst.buf[0].pos = off;
        errno = 0;
        n = fuse_buf_copy(&dst, src, FUSE_BUF_SPLICE_NONBLOCK);
        if (n >= 0 && (size_t)n < size)
            return errno ? -errno : -EIO;
        if (grows && n > 0)
            sync_file_range(fd, off, n, SYNC_FILE_RANGE_WRITE);
        return n;
    }
    if (!(mem = malloc(size)))
        return -ENOMEM;
    dst.buf[0].mem = mem;
    if ((n = fuse_buf_copy(&dst, src, 0)) >= 0)
        n = pool_file_write(file, mem, n, off);
    free(mem);
    return n;
}

static int
poolfs_flush(const char *path, struct fuse_file_info *fi)
{
    return pool_file_flush(poolfs_file(fi));
}

static int
poolfs_release(const char *path, struct fuse_file_info *fi)
{
    struct poolfs_handle *h = poolfs_handle(fi);
    struct stat now;
    int rc;

    /* Written through passthrough: size, blocks or mtime moved. */
    if (h->opened.st_ino &&
        (fstat(pool_file_fd(h->file), &now) < 0 ||
         now.st_size != h->opened.st_size ||
         now.st_blocks != h->opened.st_blocks ||
         now.st_mtim.tv_sec != h->opened.st_mtim.tv_sec ||
         now.st_mtim.tv_nsec != h->opened.st_mtim.tv_nsec))
        pool_file_set_written(h->file);
    rc = pool_file_close(h->file);

    pt_close(h->pt, h->passthrough);
    free(h);
    return rc;
}

static int
poolfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    return pool_file_fsync(poolfs_file(fi), datasync);
}

static int
poolfs_fallocate(const char *path, int mode, off_t off, off_t len,
                 struct fuse_file_info *fi)
{
    return pool_file_fallocate(poolfs_file(fi), mode, off, len);
}

static off_t
poolfs_lseek(const char *path, off_t off, int whence,
             struct fuse_file_info *fi)
{
    struct poolfs *fs = fuse_get_context()->private_data;
    /* (libfuse passes no open flags with lseek: the handle keeps them) */
    int oflags = pool_file_oflags(poolfs_file(fi));

    /* With the writeback cache, what was written through this handle may
     * still sit in the kernel's cache, unseen here, and the kernel does
     * not write it back before asking: where the holes are is not known.
     * "Not supported" makes cp copy it all and QEMU take it as data. */
    if ((whence == SEEK_DATA || whence == SEEK_HOLE) && fs->wbcache &&
        (oflags & O_ACCMODE) != O_RDONLY && !(oflags & O_DIRECT))
        return -EOPNOTSUPP;
    return pool_file_lseek(poolfs_file(fi), off, whence);
}

/*
 * The control channel of poolfsctl (ctlproto.h): POOLFS_IOC_BACKEND says
 * where a path lives, POOLFS_IOC_POOL which pools the mount serves.  There
 * is no getxattr: answering it would cost a round trip per write (the
 * kernel's security.capability check).
 */
static int
poolfs_ioctl(const char *path, unsigned int cmd, void *arg,
             struct fuse_file_info *fi, unsigned int flags, void *data)
{
    struct poolfs_ioc_backend *b = data;
    const char *what;
    int rc;

    if (cmd == POOLFS_IOC_POOL)
        return pool_identity(poolfs_ctx(), data);
    if (cmd != POOLFS_IOC_BACKEND)
        return -ENOTTY;
    /* With nullpath_ok there is no path: a directory's is in its handle
     * (see opendir), a file's handle knows. */
    if (!(flags & FUSE_IOCTL_DIR))
        what = pool_file_backend(poolfs_file(fi));
    else if ((rc = pool_backend(poolfs_ctx(), (const char *)(uintptr_t)fi->fh,
                                &what)) < 0)
        return rc;
    memset(b, 0, sizeof(*b));
    snprintf(b->what, sizeof(b->what), "%s", what);
    return 0;
}

/* Setting POOLFS_XATTR_ADOPT on a legacy instance directory (root only)
 * adopts it into the pool (ctlproto.h). */
static int
poolfs_setxattr(const char *path, const char *name, const char *value,
                size_t size, int flags)
{
    if (strcmp(name, POOLFS_XATTR_ADOPT) != 0)
        return -ENOTSUP;
    if (fuse_get_context()->uid != 0)
        return -EPERM;
    return pool_adopt(poolfs_ctx(), path);
}

/* A whole-file copy within the mount: a volume clone in the pool. */
static ssize_t
poolfs_copy_file_range(const char *path_in, struct fuse_file_info *fi_in,
                       off_t off_in, const char *path_out,
                       struct fuse_file_info *fi_out, off_t off_out,
                       size_t len, int flags)
{
    struct poolfs_handle *out = poolfs_handle(fi_out);
    struct stat st;

    if (flags)
        return -EINVAL;
    /* The kernel writes OUT through the file it was opened onto: a clone
     * in the pool would replace that file under it.  And with passthrough
     * on, poolfs counts the served opens of each volume file (the kernel
     * refuses to mix the two ways on one inode): a clone would move this
     * handle onto a file not counted, and the next open of the name
     * would be passed through while it is served (EIO). */
    if (out->passthrough ||
        (pt_enabled() && pool_file_fd(out->file) >= 0 &&
         fstat(pool_file_fd(out->file), &st) == 0 && S_ISREG(st.st_mode)))
        return pool_file_copy_local(poolfs_file(fi_in), off_in, out->file,
                                    off_out, len);
    return pool_file_copy(poolfs_file(fi_in), off_in, out->file, off_out,
                          len);
}

const struct fuse_operations poolfs_ops = {
    .init = poolfs_init,
    .getattr = poolfs_getattr,
    .readlink = poolfs_readlink,
    .opendir = poolfs_opendir,
    .readdir = poolfs_readdir,
    .releasedir = poolfs_releasedir,
    .mkdir = poolfs_mkdir,
    .rmdir = poolfs_rmdir,
    .unlink = poolfs_unlink,
    .rename = poolfs_rename,
    .truncate = poolfs_truncate,
    .chmod = poolfs_chmod,
    .chown = poolfs_chown,
    .utimens = poolfs_utimens,
    .statfs = poolfs_statfs,
    .create = poolfs_create,
    .open = poolfs_open,
    .read_buf = poolfs_read_buf,
    .write_buf = poolfs_write_buf,
    .flush = poolfs_flush,
    .release = poolfs_release,
    .fsync = poolfs_fsync,
    .fallocate = poolfs_fallocate,
    .lseek = poolfs_lseek,
    .copy_file_range = poolfs_copy_file_range,
    .ioctl = poolfs_ioctl,
    .setxattr = poolfs_setxattr,
};
