/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "io.h"

static void
io_free(struct pool_file *f)
{
    free(f->vol);
    free(f->path);
    free(f);
}

int
io_open(struct pool_ctx *ctx, const char *path, int pool, const char *vol,
        const char *local, int flags, struct pool_file **filep)
{
    struct pool_file *f = calloc(1, sizeof(*f));
    bool use_local;
    int rc;

    if (!f)
        return -ENOMEM;
    f->oflags = flags;
    if (!(f->vol = strdup(vol)) || !(f->path = strdup(path))) {
        io_free(f);
        return -ENOMEM;
    }
    f->ctx = ctx;
    f->pool = pool;
    f->fd = -1;

    /* The one place the data backend is chosen. */
    switch (ctx->opts.io) {
    case POOL_IO_LOCAL:
        if (!local) {
            pool_log("volume '%s' of pool '%s' has no local path and "
                     "io=local was asked for", vol, ctx->pools[pool].name);
            rc = -EOPNOTSUPP;
            goto error;
        }
        use_local = true;
        break;
    case POOL_IO_STREAM:
        use_local = false;
        break;
    default:
        use_local = local != NULL;
        break;
    }

    if (use_local) {
        f->ops = &io_local_ops;
        rc = io_local_open(f, local, flags);
    } else {
        f->ops = &io_stream_ops;
        rc = io_stream_open(f, flags);
    }
    if (rc < 0)
        goto error;
    *filep = f;
    return 0;

 error:
    io_free(f);
    return rc;
}

int
io_open_fd(struct pool_ctx *ctx, const char *path, int fd, int flags,
           struct pool_file **filep)
{
    struct pool_file *f = calloc(1, sizeof(*f));

    if (!f || !(f->vol = strdup("")) || !(f->path = strdup(path))) {
        if (f)
            io_free(f);
        close(fd);
        return -ENOMEM;
    }
    f->ctx = ctx;
    f->oflags = flags;
    f->pool = -1;       /* legacy: a plain file underneath the mount */
    f->fd = fd;
    f->ops = &io_local_ops;
    *filep = f;
    return 0;
}

int
pool_file_fd(struct pool_file *f)
{
    return f->ops == &io_local_ops ? f->fd : -1;
}

int
pool_file_fd_for_write(struct pool_file *f)
{
    if (f->ops != &io_local_ops)
        return -1;
    f->written = true;
    return f->fd;
}

void
pool_file_set_written(struct pool_file *f)
{
    f->written = true;
}

const char *
pool_file_backend(struct pool_file *f)
{
    return f->pool < 0 ? "legacy" : "pool";
}

ssize_t
pool_file_read(struct pool_file *f, void *buf, size_t size, off_t off)
{
    return f->ops->read(f, buf, size, off);
}

ssize_t
pool_file_write(struct pool_file *f, const void *buf, size_t size, off_t off)
{
    f->written = true;
    return f->ops->write(f, buf, size, off);
}

int
pool_file_getattr(struct pool_file *f, struct stat *st)
{
    return f->ops->getattr(f, st);
}

int
pool_file_truncate(struct pool_file *f, off_t size)
{
    int rc;

    f->written = true;
    if ((rc = f->ops->truncate(f, size)) == 0 && f->pool >= 0 &&
        f->ops != &io_local_ops)
        tree_update_size(f->ctx, f->path, f->vol, size);   /* the kernel's */
    return rc;
}

int
pool_file_chmod(struct pool_file *f, mode_t mode)
{
    return f->ops->chmod(f, mode);
}

int
pool_file_chown(struct pool_file *f, uid_t uid, gid_t gid)
{
    return f->ops->chown(f, uid, gid);
}

int
pool_file_utimens(struct pool_file *f, const struct timespec tv[2])
{
    return f->ops->utimens(f, tv);
}

int
pool_file_flush(struct pool_file *f)
{
    return f->ops->flush(f);
}

int
pool_file_fsync(struct pool_file *f, bool datasync)
{
    return f->ops->fsync(f, datasync);
}

int
pool_file_fallocate(struct pool_file *f, int mode, off_t off, off_t len)
{
    f->written = true;
    return f->ops->fallocate(f, mode, off, len);
}

int
pool_file_oflags(const struct pool_file *f)
{
    return f->oflags;
}

off_t
pool_file_lseek(struct pool_file *f, off_t off, int whence)
{
    return f->ops->lseek(f, off, whence);
}

int
pool_file_close(struct pool_file *f)
{
    int rc = f->ops->flush(f);
    struct stat st;

    if (f->written) {
        if (f->pool < 0) {
            /* legacy: libvirt does not know the file */
        } else if (f->ops == &io_local_ops) {
            /* libvirt's idea of the volume (allocation, format, backing
             * store) is stale after writes behind its back. */
            listing_request_refresh(f->ctx, f->pool);
        } else if (f->ops->getattr(f, &st) == 0) {
            tree_update_size(f->ctx, f->path, f->vol, st.st_size);
        }
    }
    f->ops->close(f);
    io_free(f);
    return rc;
}

ssize_t
pool_file_copy_local(struct pool_file *in, off_t off_in,
                     struct pool_file *out, off_t off_out, size_t len)
{
    loff_t li = off_in, lo = off_out;
    ssize_t n;

    if (in->ops != &io_local_ops || out->ops != &io_local_ops)
        return -EOPNOTSUPP;
    n = copy_file_range(in->fd, &li, out->fd, &lo, len, 0);
    if (n < 0)
        return -errno;
    out->written = true;
    return n;
}

ssize_t
pool_file_copy(struct pool_file *in, off_t off_in, struct pool_file *out,
               off_t off_out, size_t len)
{
    struct stat si, so;
    int rc;

    if (in->pool != out->pool || in->pool < 0 || off_in != 0 || off_out != 0 ||
        in->ops->getattr(in, &si) < 0 || out->ops->getattr(out, &so) < 0 ||
        so.st_size != 0 || (off_t)len < si.st_size || si.st_size == 0)
        return -EOPNOTSUPP;
    /* IN's size counts what a held upload has not written yet: the
     * clone is made of the volume as it is, so finish that first. */
    if (in->ops->finish && (rc = in->ops->finish(in)) < 0)
        return rc;
    if ((rc = volume_clone(in->ctx, in->pool, in->vol, out->vol)) < 0)
        return rc;
    /* OUT's handle still holds the empty file the clone replaced. */
    if (out->ops == &io_local_ops) {
        AUTOFREE char *local = volume_local_path(out->ctx, out->pool,
                                                 out->vol);
        int fd = local ? open(local, O_RDWR | O_CLOEXEC) : -1;

        if (fd < 0)
            return -EIO;
        /* In place: another thread may be using the number right now. */
        if (dup2(fd, out->fd) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
        close(fd);
    } else if ((rc = io_stream_reopen(out)) < 0) {
        /* In place, under the state's lock: another thread may be in it. */
        return rc;
    } else {
        /* The kernel takes the file's size from the view. */
        tree_update_size(out->ctx, out->path, out->vol, si.st_size);
    }
    listing_request_refresh(out->ctx, out->pool);
    return si.st_size;
}
