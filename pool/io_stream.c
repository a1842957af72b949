/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * io_stream: volumes without a path on this host (a remote connection)
 * read and written through libvirt volume streams.  (libvirt streams no
 * rbd volume: its rbd backend has no upload or download.)
 *
 * Reads: a download stream is held while the reader stays sequential; its
 * window starts at the size of the first request and doubles up to
 * IO_STREAM_WINDOW_MAX, so a random reader pays for little more than it
 * asked for and a sequential one gets read-ahead.  The window is bounded
 * because libvirt queues whatever the server sends: an open-ended download
 * would fill memory with data nobody asked for yet.
 *
 * Writes: an upload stream is held while the writer stays sequential; a
 * write elsewhere finishes it and starts another at the new offset.  A
 * hole in a sparse upload is an ftruncate() at libvirtd's end, so a gap is
 * sent as a hole only past the volume's end: inside it, that would cut off
 * everything after the hole.  An upload's errors surface when it is
 * finished or when it breaks: the call that finds one returns it, and it
 * is kept for the next flush, fsync or close (which the writer of earlier,
 * acknowledged writes waits on): never dropped.  libvirtd's own last
 * write error is lost when the stream ends (libvirt keeps close()'s
 * result), so a finished upload is checked: by the volume's length where
 * it grew it, else by reading its last bytes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "sparse.h"

#define IO_STREAM_WINDOW_MIN (128 * 1024)
#define IO_STREAM_WINDOW_MAX (8 * 1024 * 1024)
/* Bytes of an upload's end read back when it did not grow the volume. */
#define IO_STREAM_TAIL 4096

struct io_stream {
    pthread_mutex_t lock;
    virStorageVolPtr vol;
    virStreamPtr rd;
    off_t rd_pos;
    off_t rd_end;
    size_t window;
    long long hole;         /* bytes of a hole still to read as zeros */
    virStreamPtr wr;
    off_t wr_pos;
    off_t wr_zero_from;     /* from here on the target reads as zeros */
    char tail[IO_STREAM_TAIL];  /* the upload's last bytes, ... */
    off_t tail_off;         /* ... from here ... */
    size_t tail_len;        /* ... this many: read back at its finish */
    uint64_t sent_data;     /* bytes sent as data, for the curious */
    uint64_t sent_holes;
    off_t size;
    unsigned long long allocation;
    time_t mtime;       /* of our last change, or of the open */
    int err;
};

static void
io_stream_drop(virStreamPtr *stp)
{
    if (*stp) {
        virStreamAbort(*stp);
        virStreamFree(*stp);
        *stp = NULL;
    }
}

/*
 * Did the upload's last bytes land?  libvirtd writes an upload in a thread
 * of its own that stops at its first error, and that error is lost when
 * the stream is finished (libvirt keeps close()'s result instead): if the
 * last bytes are there, so is everything before them.  0, or -errno.
 */
static int
io_stream_check_tail(struct pool_file *f)
{
    struct io_stream *s = f->st;
    virStreamPtr st = virStreamNew(virStorageVolGetConnect(s->vol), 0);
    char got[IO_STREAM_TAIL];
    size_t have = 0;
    int n = 0, err = 0;

    if (!st || virStorageVolDownload(s->vol, st, s->tail_off, s->tail_len,
                                     0) < 0) {
        err = -pool_virt_errno();
    } else {
        while (have < s->tail_len &&
               (n = virStreamRecv(st, got + have, s->tail_len - have)) > 0)
            have += n;
        if (n < 0)
            err = -pool_virt_errno();
        else if (virStreamFinish(st) < 0 && have == s->tail_len)
            err = -pool_virt_errno();
    }
    if (err) {
        pool_log("cannot read back what an upload to volume '%s' wrote: "
                 "%s", f->vol, pool_virt_message());
    } else if (have != s->tail_len || memcmp(got, s->tail, have) != 0) {
        pool_log("upload to volume '%s' failed: the bytes at %lld are not "
                 "what was sent (libvirtd's write failed after the stream "
                 "ended: is the pool full?)", f->vol,
                 (long long)s->tail_off);
        err = -EIO;
    }
    if (st) {
        if (err)
            virStreamAbort(st);
        virStreamFree(st);
    }
    return err;
}

/* Finish the held upload: its error, also kept for flush, fsync and
 * close. */
static int
io_stream_finish_upload(struct pool_file *f)
{
    struct io_stream *s = f->st;
    int err = 0;

    if (!s->wr)
        return 0;
    if (virStreamFinish(s->wr) < 0) {
        err = pool_virt_errno();
        pool_log("upload to volume '%s' failed: %s", f->vol,
                 pool_virt_message());
        virStreamAbort(s->wr);
        err = -err;
    } else if (s->wr_pos > s->wr_zero_from) {
        /* It grew the volume: the part libvirtd may have lost quietly. */
        err = volume_check_length(s->vol, f->vol, s->wr_pos);
    } else if (s->tail_len) {
        /* Inside it: no length to check; its last bytes, then. */
        err = io_stream_check_tail(f);
    }
    if (err && !s->err)
        s->err = err;
    virStreamFree(s->wr);
    s->wr = NULL;
    return err;
}

/* Take the deferred error: reported exactly once. */
static int
io_stream_take_error(struct io_stream *s)
{
    int err = s->err;

    s->err = 0;
    return err;
}

/* The file's volume on the connection of the moment. */
static virStorageVolPtr
io_stream_lookup(struct pool_file *f)
{
    CONN_PIN(f->ctx);

    return virStorageVolLookupByName(f->ctx->pools[f->pool].pool, f->vol);
}

/*
 * Before a new stream: if the volume's handle is on a connection that
 * died (libvirtd restarted) and a new one has been made since, the
 * volume's handle on the new one.  A file opened before the restart goes
 * on working; what failed with the old connection stays failed.
 */
static int
io_stream_current(struct pool_file *f)
{
    struct io_stream *s = f->st;
    virStorageVolPtr v;

    if (virConnectIsAlive(virStorageVolGetConnect(s->vol)) != 0)
        return 0;
    if (!(v = io_stream_lookup(f))) {
        int err = pool_virt_errno();

        pool_log("volume '%s': the connection to libvirt was lost and "
                 "the volume cannot be found again: %s", f->vol,
                 pool_virt_message());
        return -err;
    }
    virStorageVolFree(s->vol);
    s->vol = v;
    return 0;
}

static int
io_stream_refresh_size(struct pool_file *f)
{
    struct io_stream *s = f->st;
    virStorageVolInfo vi;

    if (virStorageVolGetInfoFlags(s->vol, &vi,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
        int err = pool_virt_errno();

        pool_log("cannot read the size of volume '%s': %s", f->vol,
                 pool_virt_message());
        return -err;
    }
    s->size = vi.allocation;
    if (virStorageVolGetInfo(s->vol, &vi) == 0)
        s->allocation = vi.allocation;
    return 0;
}

int
io_stream_open(struct pool_file *f, int flags)
{
    struct io_stream *s = calloc(1, sizeof(*s));
    int rc;

    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->mtime = time(NULL);
    f->st = s;
    if (!(s->vol = io_stream_lookup(f))) {
        rc = -pool_virt_errno();
        if (rc != -ENOENT)
            pool_log("cannot open volume '%s': %s", f->vol,
                     pool_virt_message());
        goto error;
    }
    if ((rc = io_stream_refresh_size(f)) < 0)
        goto error;
    if ((flags & O_TRUNC) && s->size > 0) {
        if ((rc = volume_set_length(f->ctx, f->pool, f->vol, 0)) < 0)
            goto error;
        s->size = 0;
    }
    return 0;

 error:
    if (s->vol)
        virStorageVolFree(s->vol);
    pthread_mutex_destroy(&s->lock);
    free(s);
    f->st = NULL;
    return rc;
}

int
io_stream_reopen(struct pool_file *f)
{
    struct io_stream *s = f->st;
    virStorageVolPtr v;
    int rc;

    if (!(v = io_stream_lookup(f))) {
        rc = -pool_virt_errno();
        pool_log("cannot open volume '%s' again: %s", f->vol,
                 pool_virt_message());
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    io_stream_drop(&s->rd);
    io_stream_drop(&s->wr);
    s->hole = 0;
    virStorageVolFree(s->vol);
    s->vol = v;
    rc = io_stream_refresh_size(f);
    s->mtime = time(NULL);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_start_download(struct pool_file *f, off_t off, size_t want)
{
    struct io_stream *s = f->st;
    struct pool_why why = { 0 };
    unsigned long long len;
    int rc;

    io_stream_drop(&s->rd);
    if (want > s->window)
        s->window = want;
    if (s->window < IO_STREAM_WINDOW_MIN)
        s->window = IO_STREAM_WINDOW_MIN;
    len = s->window;
    if ((unsigned long long)(s->size - off) < len)
        len = s->size - off;
    if ((rc = io_stream_current(f)) < 0)
        return rc;
    if (!(s->rd = virStreamNew(virStorageVolGetConnect(s->vol), 0)) ||
        virStorageVolDownload(s->vol, s->rd, off, len,
                              VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pool_why_take(&why);        /* before the free resets it */
        if (s->rd)
            virStreamFree(s->rd);
        s->rd = NULL;
        pool_log("cannot download volume '%s' at offset %lld: %s", f->vol,
                 (long long)off, why.msg);
        return -why.err;
    }
    s->rd_pos = off;
    s->rd_end = off + len;
    s->hole = 0;
    return 0;
}

static ssize_t
io_stream_read(struct pool_file *f, void *buf, size_t size, off_t off)
{
    struct io_stream *s = f->st;
    size_t got = 0;
    size_t want;
    int rc;

    pthread_mutex_lock(&s->lock);
    /* Reads see every write made through this handle. */
    if (s->wr && (rc = io_stream_finish_upload(f)) < 0)
        goto error;
    if (off >= s->size)
        goto out;
    if ((off_t)size > s->size - off)
        size = s->size - off;

    if (!s->rd || s->rd_pos != off) {
        s->window = 0;      /* a seek: start small again */
        if ((rc = io_stream_start_download(f, off, size)) < 0)
            goto error;
    }
    while (got < size) {
        int n;

        if (s->rd_pos >= s->rd_end) {
            /* The window is done: sequential, so the next one is larger. */
            if (virStreamFinish(s->rd) < 0) {
                rc = -pool_virt_errno();
                pool_log("download of volume '%s' failed: %s", f->vol,
                         pool_virt_message());
                virStreamFree(s->rd);
                s->rd = NULL;
                goto error;
            }
            virStreamFree(s->rd);
            s->rd = NULL;
            if (s->window < IO_STREAM_WINDOW_MAX)
                s->window = s->window * 2 < IO_STREAM_WINDOW_MAX ?
                            s->window * 2 : IO_STREAM_WINDOW_MAX;
            if ((rc = io_stream_start_download(f, s->rd_pos, 0)) < 0)
                goto error;
        }
        want = size - got > (size_t)(s->rd_end - s->rd_pos) ?
               (size_t)(s->rd_end - s->rd_pos) : size - got;
        if (s->hole > 0) {
            /* Inside a hole the server did not send: zeros. */
            n = s->hole > (long long)want ? (int)want : (int)s->hole;
            memset((char *)buf + got, 0, n);
            s->hole -= n;
        } else {
            n = virStreamRecvFlags(s->rd, (char *)buf + got, want,
                                   VIR_STREAM_RECV_STOP_AT_HOLE);
            if (n == -3) {
                if (virStreamRecvHole(s->rd, &s->hole, 0) < 0)
                    n = -1;
                else
                    continue;
            }
        }
        if (n < 0) {
            rc = -pool_virt_errno();
            pool_log("download of volume '%s' failed: %s", f->vol,
                     pool_virt_message());
            io_stream_drop(&s->rd);
            goto error;
        }
        if (n == 0) {
            /* Shorter than we were told: the volume shrank. */
            io_stream_drop(&s->rd);
            break;
        }
        got += n;
        s->rd_pos += n;
    }
 out:
    pthread_mutex_unlock(&s->lock);
    return got;

 error:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_start_upload(struct pool_file *f, off_t off)
{
    struct io_stream *s = f->st;
    struct pool_why why = { 0 };
    virStorageVolInfo vi;
    int rc;

    if ((rc = io_stream_current(f)) < 0)
        return rc;
    /* Where the volume ends now (another handle may have grown it):
     * holes are sent only past that.  One round trip, for the length
     * alone; it only ever moves the end out (fewer holes, never a cut). */
    if (virStorageVolGetInfoFlags(s->vol, &vi,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) == 0 &&
        (off_t)vi.allocation > s->size)
        s->size = vi.allocation;
    if (!(s->wr = virStreamNew(virStorageVolGetConnect(s->vol), 0)) ||
        virStorageVolUpload(s->vol, s->wr, off, 0,
                            VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
        pool_why_take(&why);        /* before the free resets it */
        if (s->wr)
            virStreamFree(s->wr);
        s->wr = NULL;
        pool_log("cannot upload to volume '%s' at offset %lld: %s", f->vol,
                 (long long)off, why.msg);
        return -why.err;
    }
    s->wr_pos = off;
    s->wr_zero_from = s->size;
    s->tail_len = 0;
    return 0;
}

static ssize_t
io_stream_write(struct pool_file *f, const void *buf, size_t size, off_t off)
{
    struct io_stream *s = f->st;
    size_t sent = 0;
    int rc;

    pthread_mutex_lock(&s->lock);
    io_stream_drop(&s->rd);
    /* Backwards, or forwards to a place inside the volume as it was,
     * means a new upload there; forwards past its end, a hole over the
     * gap (libvirtd's ftruncate() then only extends the file).  What
     * finishing it finds is said here and kept for flush, fsync and
     * close (earlier writes, acknowledged, were lost). */
    if (s->wr &&
        (s->wr_pos > off || (off > s->wr_pos && off < s->wr_zero_from)) &&
        (rc = io_stream_finish_upload(f)) < 0)
        goto error;
    if (!s->wr && (rc = io_stream_start_upload(f, off)) < 0)
        goto error;
    if (off > s->wr_pos) {
        if (virStreamSendHole(s->wr, off - s->wr_pos, 0) < 0)
            goto stream_error;
        s->sent_holes += off - s->wr_pos;
        s->wr_pos = off;
    }
    while (sent < size) {
        /* Zeros become holes only where the target reads as zeros. */
        size_t plain = off + (off_t)sent < s->wr_zero_from ?
                       (size_t)(s->wr_zero_from - off - sent) : 0;
        const char *p = (const char *)buf + sent;
        int err;

        if (plain > size - sent)
            plain = size - sent;
        if (plain)
            err = sparse_send_data(s->wr, p, plain);
        else
            err = sparse_send(s->wr, p, size - sent, &s->sent_data,
                              &s->sent_holes);
        if (err < 0)
            goto stream_error;
        if (plain)
            s->sent_data += plain;
        sent += plain ? plain : size - sent;
    }
    /* The last bytes sent, for io_stream_check_tail(). */
    if (sent >= IO_STREAM_TAIL) {
        memcpy(s->tail, (const char *)buf + sent - IO_STREAM_TAIL,
               IO_STREAM_TAIL);
        s->tail_off = off + sent - IO_STREAM_TAIL;
        s->tail_len = IO_STREAM_TAIL;
    } else if (sent) {
        size_t keep = s->tail_len && s->tail_off + (off_t)s->tail_len == off ?
                      s->tail_len : 0;

        if (keep + sent > IO_STREAM_TAIL)
            keep = IO_STREAM_TAIL - sent;
        memmove(s->tail, s->tail + s->tail_len - keep, keep);
        memcpy(s->tail + keep, buf, sent);
        s->tail_off = off - keep;
        s->tail_len = keep + sent;
    }
    s->wr_pos += sent;
    if (s->wr_pos > s->size) {
        s->size = s->wr_pos;
        tree_note_size(f->ctx, f->path, f->vol, s->size);
    }
    s->mtime = time(NULL);
    pthread_mutex_unlock(&s->lock);
    return sent;

 stream_error:
    rc = -pool_virt_errno();
    pool_log("upload to volume '%s' failed: %s", f->vol, pool_virt_message());
    /* Earlier writes of this upload were acknowledged and may be lost
     * with it: flush, fsync and close must say so too. */
    if (!s->err)
        s->err = rc;
    io_stream_drop(&s->wr);
 error:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_flush(struct pool_file *f)
{
    struct io_stream *s = f->st;
    int rc;

    pthread_mutex_lock(&s->lock);
    io_stream_finish_upload(f);
    rc = io_stream_take_error(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_finish(struct pool_file *f)
{
    struct io_stream *s = f->st;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = io_stream_finish_upload(f);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_fsync(struct pool_file *f, bool datasync)
{
    return io_stream_flush(f);
}

static int
io_stream_getattr(struct pool_file *f, struct stat *st)
{
    struct io_stream *s = f->st;

    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&s->lock);
    st->st_size = s->size;
    st->st_blocks = (s->allocation + 511) / 512;
    pthread_mutex_unlock(&s->lock);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_blksize = 65536;
    st->st_atime = st->st_mtime = st->st_ctime = s->mtime;
    return 0;
}

static int
io_stream_truncate(struct pool_file *f, off_t size)
{
    struct io_stream *s = f->st;
    int rc;

    pthread_mutex_lock(&s->lock);
    io_stream_drop(&s->rd);
    /* An error kept from before stays for flush, fsync and close. */
    if ((rc = io_stream_finish_upload(f)) == 0 &&
        (rc = volume_set_length(f->ctx, f->pool, f->vol, size)) == 0)
        s->size = size;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
io_stream_chmod(struct pool_file *f, mode_t mode)
{
    return -EOPNOTSUPP;     /* libvirt has no call for it */
}

static int
io_stream_chown(struct pool_file *f, uid_t uid, gid_t gid)
{
    return -EOPNOTSUPP;
}

static int
io_stream_utimens(struct pool_file *f, const struct timespec tv[2])
{
    /* The volume's times are the server's; only our view can follow. */
    struct io_stream *s = f->st;

    pthread_mutex_lock(&s->lock);
    s->mtime = pool_utime_mtime(tv, s->mtime);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
io_stream_fallocate(struct pool_file *f, int mode, off_t off, off_t len)
{
    return -EOPNOTSUPP;
}

static off_t
io_stream_lseek(struct pool_file *f, off_t off, int whence)
{
    struct io_stream *s = f->st;
    off_t size;

    pthread_mutex_lock(&s->lock);
    size = s->size;
    pthread_mutex_unlock(&s->lock);
    if (off >= size)
        return -ENXIO;
    /* Without a local file there is no cheap hole map: all data. */
    switch (whence) {
    case SEEK_DATA: return off;
    case SEEK_HOLE: return size;
    default: return -EINVAL;
    }
}

static void
io_stream_close(struct pool_file *f)
{
    struct io_stream *s = f->st;

    io_stream_drop(&s->rd);
    io_stream_drop(&s->wr);
    virStorageVolFree(s->vol);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const struct io_ops io_stream_ops = {
    .name = "stream",
    .read = io_stream_read,
    .write = io_stream_write,
    .getattr = io_stream_getattr,
    .truncate = io_stream_truncate,
    .chmod = io_stream_chmod,
    .chown = io_stream_chown,
    .utimens = io_stream_utimens,
    .flush = io_stream_flush,
    .finish = io_stream_finish,
    .fsync = io_stream_fsync,
    .fallocate = io_stream_fallocate,
    .lseek = io_stream_lseek,
    .close = io_stream_close,
};
