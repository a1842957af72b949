/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#include "pump.h"
#include "sparse.h"


static void
pump_fail(char *err, size_t errlen, const char *fmt, ...)
{
    virErrorPtr e = virGetLastError();
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (e && e->message && n < errlen)
        snprintf(err + n, errlen - n, ": %s", e->message);
}

static void
pump_drop(virStreamPtr st)
{
    if (st) {
        virStreamAbort(st);
        virStreamFree(st);
    }
}

/*
 * The download is read on a thread of its own and handed over through a
 * small queue, so that receiving from the source overlaps with sending to
 * the destination (with both on one thread, each waits for the other).
 */
#define PUMP_SLOTS 16
#define PUMP_SLOT_SIZE (256 * 1024)     /* a libvirt stream packet at most */

enum pump_kind { PUMP_DATA, PUMP_HOLE, PUMP_EOF, PUMP_ERROR };

struct pump_item {
    enum pump_kind kind;
    long long len;
    char *buf;
};

struct pump_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pump_item items[PUMP_SLOTS];
    char *bufs;
    int head;
    int count;
    bool stop;
    virStreamPtr down;
    char err[512];
};

static void *
pump_reader(void *arg)
{
    struct pump_queue *q = arg;
    int slot = 0;

    for (;;) {
        struct pump_item it = { .buf = q->bufs + slot * PUMP_SLOT_SIZE };
        int n;

        /* Wait for room: the consumer is done with this slot's buffer
         * once fewer than PUMP_SLOTS - 1 items are queued. */
        pthread_mutex_lock(&q->lock);
        while (q->count >= PUMP_SLOTS - 1 && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->stop) {
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        pthread_mutex_unlock(&q->lock);

        n = virStreamRecvFlags(q->down, it.buf, PUMP_SLOT_SIZE,
                               VIR_STREAM_RECV_STOP_AT_HOLE);
        if (n == -3) {
            it.kind = PUMP_HOLE;
            if (virStreamRecvHole(q->down, &it.len, 0) < 0) {
                it.kind = PUMP_ERROR;
                pump_fail(q->err, sizeof(q->err), "reading the source");
            }
        } else if (n > 0) {
            it.kind = PUMP_DATA;
            it.len = n;
            slot = (slot + 1) % PUMP_SLOTS;
        } else if (n == 0) {
            it.kind = PUMP_EOF;
        } else {
            it.kind = PUMP_ERROR;
            pump_fail(q->err, sizeof(q->err), "reading the source");
        }
        pthread_mutex_lock(&q->lock);
        q->items[(q->head + q->count) % PUMP_SLOTS] = it;
        q->count++;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        if (it.kind == PUMP_EOF || it.kind == PUMP_ERROR)
            return NULL;
    }
}

static struct pump_item
pump_next(struct pump_queue *q)
{
    struct pump_item it;

    pthread_mutex_lock(&q->lock);
    while (q->count == 0)
        pthread_cond_wait(&q->cond, &q->lock);
    it = q->items[q->head];
    pthread_mutex_unlock(&q->lock);
    return it;
}

/* The item pump_next() returned is done with: its buffer may be reused. */
static void
pump_done(struct pump_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->head = (q->head + 1) % PUMP_SLOTS;
    q->count--;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/*
 * Read the sparse download DOWN to its end; hand every piece to UP (if
 * any) and to the digest.
 */
static int
pump_loop(virStreamPtr down, virStreamPtr up, bool hold_head,
          struct digest *dg, pump_progress_fn progress, void *opaque,
          struct pump_result *res, char *err, size_t errlen)
{
    struct pump_queue q = { .down = down };
    pthread_t reader;
    int rc = -1;

    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.cond, NULL);
    if (!(q.bufs = malloc((size_t)PUMP_SLOTS * PUMP_SLOT_SIZE)) ||
        pthread_create(&reader, NULL, pump_reader, &q) != 0) {
        snprintf(err, errlen, "cannot start the stream reader");
        free(q.bufs);
        return -1;
    }
    for (;;) {
        struct pump_item it = pump_next(&q);

        if (it.kind == PUMP_EOF) {
            rc = 0;
            break;
        }
        if (it.kind == PUMP_ERROR) {
            snprintf(err, errlen, "%s", q.err);
            break;
        }
        if (it.kind == PUMP_HOLE) {
            if (up && virStreamSendHole(up, it.len, 0) < 0) {
                pump_fail(err, errlen, "writing the destination");
                break;
            }
            digest_feed(dg, NULL, it.len);
        } else {
            size_t skip = 0;

            /* The head goes aside, and as a hole for now. */
            if (up && hold_head && res->length < PUMP_HEAD) {
                skip = PUMP_HEAD - res->length;
                if (skip > (size_t)it.len)
                    skip = it.len;
                memcpy(res->head + res->length, it.buf, skip);
                res->head_len = res->length + skip;
                if (virStreamSendHole(up, skip, 0) < 0) {
                    pump_fail(err, errlen, "writing the destination");
                    break;
                }
            }
            if (up && sparse_send(up, it.buf + skip, it.len - skip,
                                  &res->data, &res->zeros) < 0) {
                pump_fail(err, errlen, "writing the destination");
                break;
            }
            if (!up)
                res->data += it.len;
            digest_feed(dg, it.buf, it.len);
        }
        res->length += it.len;
        pump_done(&q);
        if (progress)
            progress(opaque, res->length);
    }
    /* Stop the reader: it may be waiting for room, or for the source. */
    pthread_mutex_lock(&q.lock);
    q.stop = true;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    if (rc < 0)
        virStreamAbort(down);
    pthread_join(reader, NULL);
    free(q.bufs);
    pthread_mutex_destroy(&q.lock);
    pthread_cond_destroy(&q.cond);
    return rc;
}

int
pump_copy(virConnectPtr sconn, virStorageVolPtr src, virConnectPtr dconn,
          virStorageVolPtr dst, bool hold_head, pump_progress_fn progress,
          void *opaque, struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr down = virStreamNew(sconn, 0);
    virStreamPtr up = virStreamNew(dconn, 0);
    struct digest *dg = digest_new();
    virStorageVolInfo info;
    unsigned char raw[DIGEST_LEN];

    memset(res, 0, sizeof(*res));
    if (!down || !up || !dg) {
        pump_fail(err, errlen, "cannot set up the streams");
        goto error;
    }
    if (virStorageVolDownload(src, down, 0, 0,
                              VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot download volume '%s'",
                  virStorageVolGetName(src));
        goto error;
    }
    if (virStorageVolUpload(dst, up, 0, 0,
                            VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot upload to volume '%s'",
                  virStorageVolGetName(dst));
        goto error;
    }
    if (pump_loop(down, up, hold_head, dg, progress, opaque, res, err,
                  errlen) < 0)
        goto error;
    if (virStreamFinish(down) < 0) {
        pump_fail(err, errlen, "download of '%s' did not complete",
                  virStorageVolGetName(src));
        goto error;
    }
    virStreamFree(down);
    down = NULL;
    if (virStreamFinish(up) < 0) {
        pump_fail(err, errlen, "upload to '%s' did not complete",
                  virStorageVolGetName(dst));
        goto error;
    }
    virStreamFree(up);
    up = NULL;

    /* A trailing hole may not have extended the file: make the length
     * right. */
    if (virStorageVolGetInfoFlags(dst, &info,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) == 0 &&
        info.allocation < res->length &&
        virStorageVolResize(dst, res->length, 0) < 0) {
        pump_fail(err, errlen, "cannot extend '%s' to %llu bytes",
                  virStorageVolGetName(dst),
                  (unsigned long long)res->length);
        goto error;
    }
    digest_final(dg, raw, res->hex);
    digest_free(dg);
    return 0;

 error:
    pump_drop(down);
    pump_drop(up);
    digest_free(dg);
    return -1;
}

int
pump_digest(virConnectPtr conn, virStorageVolPtr vol,
            pump_progress_fn progress, void *opaque,
            struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr down = virStreamNew(conn, 0);
    struct digest *dg = digest_new();
    unsigned char raw[DIGEST_LEN];

    memset(res, 0, sizeof(*res));
    if (!down || !dg) {
        pump_fail(err, errlen, "cannot set up the stream");
        goto error;
    }
    if (virStorageVolDownload(vol, down, 0, 0,
                              VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot download volume '%s'",
                  virStorageVolGetName(vol));
        goto error;
    }
    if (pump_loop(down, NULL, false, dg, progress, opaque, res, err,
                  errlen) < 0)
        goto error;
    if (virStreamFinish(down) < 0) {
        pump_fail(err, errlen, "download of '%s' did not complete",
                  virStorageVolGetName(vol));
        goto error;
    }
    virStreamFree(down);
    digest_final(dg, raw, res->hex);
    digest_free(dg);
    return 0;

 error:
    pump_drop(down);
    digest_free(dg);
    return -1;
}

int
pump_put_head(virConnectPtr dconn, virStorageVolPtr dst,
              const struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr up = virStreamNew(dconn, 0);

    if (!up ||
        virStorageVolUpload(dst, up, 0, res->head_len, 0) < 0 ||
        sparse_send_data(up, res->head, res->head_len) < 0 ||
        virStreamFinish(up) < 0) {
        pump_fail(err, errlen, "cannot write the head of '%s'",
                  virStorageVolGetName(dst));
        pump_drop(up);
        return -1;
    }
    virStreamFree(up);
    return 0;
}

/*
 * Walk the file open as FD: FN gets each piece in order, data (DATA set)
 * in chunks of at most PUMP_SLOT_SIZE, holes (DATA NULL) as found with
 * SEEK_DATA/SEEK_HOLE.  0, or -1 with ERR set by FN or by a failed read.
 */
typedef int (*pump_piece_fn)(void *arg, const char *data, off_t off,
                             size_t len, char *err, size_t errlen);

static int
pump_walk_fd(int fd, pump_piece_fn fn, void *arg, char *err, size_t errlen)
{
    char *buf = malloc(PUMP_SLOT_SIZE);
    off_t size = lseek(fd, 0, SEEK_END), pos = 0;
    int rc = -1;

    if (!buf || size < 0) {
        snprintf(err, errlen, "cannot read the file: %s", strerror(errno));
        goto out;
    }
    while (pos < size) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        off_t end;

        if (data < 0 || data > size)
            data = size;            /* a hole up to the end */
        if (data > pos) {
            if (fn(arg, NULL, pos, data - pos, err, errlen) < 0)
                goto out;
            pos = data;
            continue;
        }
        if ((end = lseek(fd, pos, SEEK_HOLE)) < 0 || end > size)
            end = size;
        while (pos < end) {
            size_t want = end - pos > PUMP_SLOT_SIZE ? PUMP_SLOT_SIZE :
                          (size_t)(end - pos);
            ssize_t n = pread(fd, buf, want, pos);

            if (n <= 0) {
                snprintf(err, errlen, "reading the file: %s",
                         n < 0 ? strerror(errno) : "unexpected end");
                goto out;
            }
            if (fn(arg, buf, pos, n, err, errlen) < 0)
                goto out;
            pos += n;
        }
    }
    rc = 0;
 out:
    free(buf);
    return rc;
}

struct pump_upload {
    virStreamPtr up;
    struct digest *dg;
    bool hold_head;
    pump_progress_fn progress;
    void *opaque;
    struct pump_result *res;
};

static int
pump_upload_piece(void *arg, const char *data, off_t off, size_t len,
                  char *err, size_t errlen)
{
    struct pump_upload *u = arg;
    size_t skip = 0;

    if (!data) {
        if (virStreamSendHole(u->up, len, 0) < 0)
            goto fail;
    } else {
        if (u->hold_head && off < PUMP_HEAD) {
            skip = (size_t)(PUMP_HEAD - off) > len ? len :
                   (size_t)(PUMP_HEAD - off);
            memcpy(u->res->head + off, data, skip);
            u->res->head_len = off + skip;
            if (virStreamSendHole(u->up, skip, 0) < 0)
                goto fail;
        }
        if (sparse_send(u->up, data + skip, len - skip, &u->res->data,
                        &u->res->zeros) < 0)
            goto fail;
    }
    digest_feed(u->dg, data, len);
    u->res->length += len;
    if (u->progress)
        u->progress(u->opaque, u->res->length);
    return 0;
 fail:
    pump_fail(err, errlen, "writing the destination");
    return -1;
}

int
pump_upload_fd(int fd, virConnectPtr dconn, virStorageVolPtr dst,
               bool hold_head, pump_progress_fn progress, void *opaque,
               struct pump_result *res, char *err, size_t errlen)
{
    struct pump_upload u = { virStreamNew(dconn, 0), digest_new(),
                             hold_head, progress, opaque, res };
    unsigned char raw[DIGEST_LEN];

    memset(res, 0, sizeof(*res));
    if (!u.up || !u.dg) {
        snprintf(err, errlen, "cannot set up the upload");
        goto error;
    }
    if (virStorageVolUpload(dst, u.up, 0, 0,
                            VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot upload to volume '%s'",
                  virStorageVolGetName(dst));
        goto error;
    }
    if (pump_walk_fd(fd, pump_upload_piece, &u, err, errlen) < 0)
        goto error;
    if (virStreamFinish(u.up) < 0) {
        pump_fail(err, errlen, "upload to '%s' did not complete",
                  virStorageVolGetName(dst));
        goto error;
    }
    virStreamFree(u.up);
    digest_final(u.dg, raw, res->hex);
    digest_free(u.dg);
    return 0;

 error:
    pump_drop(u.up);
    digest_free(u.dg);
    return -1;
}

static int
pump_digest_piece(void *arg, const char *data, off_t off, size_t len,
                  char *err, size_t errlen)
{
    return digest_feed(arg, data, len);
}

int
pump_digest_fd(int fd, struct pump_result *res, char *err, size_t errlen)
{
    struct digest *dg = digest_new();
    unsigned char raw[DIGEST_LEN];
    int rc = -1;

    memset(res, 0, sizeof(*res));
    if (dg && pump_walk_fd(fd, pump_digest_piece, dg, err, errlen) == 0) {
        res->length = lseek(fd, 0, SEEK_END);
        digest_final(dg, raw, res->hex);
        rc = 0;
    }
    digest_free(dg);
    return rc;
}
