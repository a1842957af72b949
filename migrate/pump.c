/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#include "pump.h"
#include "pumpint.h"
#include "qwrap.h"
#include "sparse.h"
#include "tcpkeep.h"


void
pump_fail_with(virErrorPtr e, char *err, size_t errlen, const char *fmt, ...)
{
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (e && e->message && n < errlen)
        snprintf(err + n, errlen - n, ": %s", e->message);
    virFreeError(e);
}

static int pump_ka_interval;
static unsigned pump_ka_count;

/* --timeout: copies under way, connections being opened (a lane's: not
 * timed, -k/-K bound an open), when data last moved, and the limit if it
 * was reached (every connection then shut down). */
static unsigned pump_stall_limit;
static atomic_int pump_moving;
static atomic_int pump_opening;
static atomic_llong pump_moved_ms;
static atomic_uint pump_stalled;

static long long
pump_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

bool
pump_gave_up(void)
{
    return atomic_load(&pump_stalled) != 0;
}

void
pump_moved(void)
{
    atomic_store(&pump_moved_ms, pump_now_ms());
}

static void *
pump_stall_watch(void *arg)
{
    (void)arg;
    for (;;) {
        usleep(250 * 1000);
        if (atomic_load(&pump_moving) > 0 && !atomic_load(&pump_opening) &&
            pump_now_ms() - atomic_load(&pump_moved_ms) >
            pump_stall_limit * 1000LL) {
            atomic_store(&pump_stalled, pump_stall_limit);
            tcpkeep_shut_all();
            return NULL;
        }
    }
}

int
pump_stall_setup(unsigned seconds)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc;

    if (!seconds)
        return 0;
    pump_stall_limit = seconds;
    tcpkeep_mark_foreign();
    /* Signals stay with the threads that handle them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&t, &attr, pump_stall_watch, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

void
pump_note_lost(virConnectPtr c, char *err, size_t errlen)
{
    size_t n = strlen(err);
    unsigned stalled = atomic_load(&pump_stalled);

    if (stalled && n < errlen) {
        snprintf(err + n, errlen - n, "; the connection is lost: no data "
                 "moved for %u s (--timeout), so every connection was shut "
                 "down", stalled);
        return;
    }
    if (!c || virConnectIsAlive(c) != 0 || n >= errlen)
        return;
    if (pump_ka_interval > 0)
        snprintf(err + n, errlen - n, "; the connection is lost (the other "
                 "end closed it, or did not answer for %u s)",
                 tcpkeep_limit(pump_ka_interval, (int)pump_ka_count));
    else
        snprintf(err + n, errlen - n, "; the connection is lost");
}

void
pump_keepalive_setup(int interval, unsigned count)
{
    pump_ka_interval = interval;
    pump_ka_count = count;
}

void
pump_keepalive_watch(void)
{
    /* No notes: they would break a --json line, and the error that
     * follows says the connection is lost. */
    tcpkeep_watch(pump_ka_interval, (int)pump_ka_count, NULL);
}

void
pump_keepalive(void)
{
    tcpkeep_apply(pump_ka_interval, (int)pump_ka_count);
}

static pthread_mutex_t pump_bw_lock = PTHREAD_MUTEX_INITIALIZER;
static double pump_bw_rate;         /* bytes per second; 0: no cap */
static double pump_bw_due;          /* when the bytes so far fit the cap */

void
pump_bandwidth_setup(uint64_t bytes_per_sec)
{
    pump_bw_rate = bytes_per_sec;
}

void
pump_throttle(uint64_t bytes)
{
    struct timespec ts;
    double now, wait;

    if (pump_bw_rate <= 0 || bytes == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = ts.tv_sec + ts.tv_nsec / 1e9;
    pthread_mutex_lock(&pump_bw_lock);
    /* Time left idle is not saved up for a burst later. */
    if (pump_bw_due < now)
        pump_bw_due = now;
    pump_bw_due += bytes / pump_bw_rate;
    wait = pump_bw_due - now;
    pthread_mutex_unlock(&pump_bw_lock);
    if (wait > 0) {
        ts.tv_sec = (time_t)wait;
        ts.tv_nsec = (long)((wait - ts.tv_sec) * 1e9);
        if (ts.tv_nsec > 999999999)
            ts.tv_nsec = 999999999;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

static pthread_mutex_t pump_open_lock = PTHREAD_MUTEX_INITIALIZER;

virConnectPtr
pump_open(const char *uri)
{
    virConnectPtr c;

    /* One at a time: tcpkeep_apply turns keepalive on for every TCP
     * socket, and a socket another thread is still opening would then no
     * longer count as being opened (tcpkeep.h): its open would lose its
     * bound. */
    pthread_mutex_lock(&pump_open_lock);
    atomic_fetch_add(&pump_opening, 1);
    if ((c = virConnectOpen(uri)))
        pump_keepalive();
    pump_moved();       /* --timeout's clock starts again after an open */
    atomic_fetch_sub(&pump_opening, 1);
    pthread_mutex_unlock(&pump_open_lock);
    return c;
}

static void
pump_drop(virStreamPtr st)
{
    if (st) {
        virStreamAbort(st);
        virStreamFree(st);
    }
}

static const char *
pump_name(const struct pump_end *e)
{
    return e->conn ? virStorageVolGetName(e->vol) : "the local file";
}

/*
 * The source is read on a thread of its own and handed over through a
 * small queue, so that receiving from the source overlaps with sending to
 * the destination (with both on one thread, each waits for the other).
 * The digest is computed on the side with less to do: the reader of a
 * file, the consumer of a stream (whose reader decrypts TLS).
 */
#define PUMP_SLOTS 16

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
    /* the source: a stream, or a file read up to SIZE */
    virStreamPtr down;
    virConnectPtr down_conn;            /* of DOWN */
    int fd;
    off_t pos, size, data_end;
    struct digest *dg;
    char err[512];
};

static void
pump_read_stream(struct pump_queue *q, struct pump_item *it)
{
    int n = virStreamRecvFlags(q->down, it->buf, PUMP_SLOT_SIZE,
                               VIR_STREAM_RECV_STOP_AT_HOLE);

    if (n == -3) {
        it->kind = PUMP_HOLE;
        if (virStreamRecvHole(q->down, &it->len, 0) < 0) {
            it->kind = PUMP_ERROR;
            pump_fail(q->err, sizeof(q->err), "reading the source");
            pump_note_lost(q->down_conn, q->err, sizeof(q->err));
        }
    } else if (n > 0) {
        it->kind = PUMP_DATA;
        it->len = n;
        pump_throttle(n);
    } else if (n == 0) {
        it->kind = PUMP_EOF;
    } else {
        it->kind = PUMP_ERROR;
        pump_fail(q->err, sizeof(q->err), "reading the source");
        pump_note_lost(q->down_conn, q->err, sizeof(q->err));
    }
}

/* The next hole or data piece of the file, found with SEEK_DATA/HOLE. */
static void
pump_read_file(struct pump_queue *q, struct pump_item *it)
{
    size_t want;
    ssize_t n;

    if (q->pos >= q->size) {
        it->kind = PUMP_EOF;
        return;
    }
    if (q->pos >= q->data_end) {
        off_t data = lseek(q->fd, q->pos, SEEK_DATA);
        off_t end;

        if (data < 0 && errno == ENXIO)
            data = q->size;             /* a hole up to the end */
        else if (data < 0)
            data = q->pos;              /* no hole information: all data */
        if (data > q->size)
            data = q->size;
        if (data > q->pos) {
            it->kind = PUMP_HOLE;
            it->len = data - q->pos;
            q->pos = data;
            return;
        }
        end = lseek(q->fd, q->pos, SEEK_HOLE);
        q->data_end = end <= q->pos || end > q->size ? q->size : end;
    }
    want = q->data_end - q->pos > PUMP_SLOT_SIZE ? PUMP_SLOT_SIZE :
           (size_t)(q->data_end - q->pos);
    n = pread(q->fd, it->buf, want, q->pos);
    if (n <= 0) {
        it->kind = PUMP_ERROR;
        snprintf(q->err, sizeof(q->err), "reading the source file: %s",
                 n < 0 ? strerror(errno) : "it ended early");
        return;
    }
    it->kind = PUMP_DATA;
    it->len = n;
    q->pos += n;
}

static void *
pump_reader(void *arg)
{
    struct pump_queue *q = arg;
    int slot = 0;

    for (;;) {
        struct pump_item it = { .buf = q->bufs + slot * PUMP_SLOT_SIZE };

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

        if (q->down)
            pump_read_stream(q, &it);
        else
            pump_read_file(q, &it);
        if (!q->down && (it.kind == PUMP_DATA || it.kind == PUMP_HOLE))
            digest_feed(q->dg, it.kind == PUMP_DATA ? it.buf : NULL, it.len);
        if (it.kind == PUMP_DATA)
            slot = (slot + 1) % PUMP_SLOTS;
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

/* Write LEN bytes at P to FD at OFF, all-zero chunks left as holes. */
int
pump_write_file(int fd, const char *p, size_t len, off_t off,
                uint64_t *data, uint64_t *zeros)
{
    size_t at = 0;

    while (at < len) {
        size_t n = len - at > SPARSE_CHUNK ? SPARSE_CHUNK : len - at;
        size_t run = 0;

        if (sparse_is_zero(p + at, n)) {
            *zeros += n;
            at += n;
            continue;
        }
        /* A run of data chunks, written at once. */
        while (at + run < len) {
            size_t m = len - at - run > SPARSE_CHUNK ? SPARSE_CHUNK :
                       len - at - run;

            if (run && sparse_is_zero(p + at + run, m))
                break;
            run += m;
        }
        for (size_t done = 0; done < run; ) {
            ssize_t w = pwrite(fd, p + at + done, run - done,
                               off + at + done);

            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            done += w;
        }
        *data += run;
        at += run;
    }
    return 0;
}

struct pump_sink {
    virStreamPtr up;        /* a stream, or */
    virConnectPtr up_conn;  /* of UP */
    int fd;                 /* a file, or neither (digest only) */
    unsigned flags;
    char *scratch;          /* PUMP_VERIFY: what is read back */
    off_t flushed;          /* a file: writeback started up to here */
    uint64_t data_end;      /* a stream: where the last data sent ends */
    bool paced;             /* the source is a stream, held to --bandwidth
                             * already: the same bytes are not counted twice */
    struct qwrap *wrap;     /* PUMP_WRAP_QCOW2: the image being sent */
    uint64_t wrap_size;     /* of the source */
};

/* What qwrap sends: data at the next offset of the upload, or a hole. */
static int
pump_wrap_out(void *opaque, const char *buf, size_t len)
{
    struct pump_sink *s = opaque;

    if (!buf)
        return virStreamSendHole(s->up, len, 0);
    if (sparse_send_data(s->up, buf, len) < 0)
        return -1;
    if (!s->paced)
        pump_throttle(len);
    pump_moved();
    s->data_end += len;
    return 0;
}

/*
 * Start writing a file's dirty pages back every PUMP_KICK bytes, so that the
 * disk works while the network does: otherwise the kernel holds gigabytes
 * dirty (dirty_background_ratio of the memory) and the final sync waits for
 * all of it.
 */
#define PUMP_KICK (32 * 1024 * 1024)

static void
pump_kick(struct pump_sink *s, off_t upto)
{
    if (upto - s->flushed < PUMP_KICK)
        return;
    sync_file_range(s->fd, s->flushed, upto - s->flushed,
                    SYNC_FILE_RANGE_WRITE);
    s->flushed = upto;
}

/* Read LEN bytes of the file being written at OFF; what lies past its end
 * reads as zeros (it is extended at the end of the copy). */
static bool
pump_read_back(int fd, char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, buf, len, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        if (n == 0) {
            memset(buf, 0, len);
            break;
        }
        buf += n;
        len -= n;
        off += n;
    }
    return true;
}

/* Do LEN bytes of FD at OFF read as zeros?  0 when they do, 1 with *AT
 * at the first that does not, -1 on a read error.  SCRATCH holds
 * PUMP_SLOT_SIZE bytes. */
static int
pump_check_zeros(int fd, char *scratch, off_t off, off_t len, off_t *at)
{
    while (len > 0) {
        size_t n = len < PUMP_SLOT_SIZE ? (size_t)len : PUMP_SLOT_SIZE;
        size_t i;

        if (!pump_read_back(fd, scratch, n, off))
            return -1;
        for (i = 0; i < n; i += SPARSE_CHUNK) {
            size_t k = n - i < SPARSE_CHUNK ? n - i : SPARSE_CHUNK;
            size_t j;

            if (sparse_is_zero(scratch + i, k))
                continue;
            for (j = i; j < i + k && !scratch[j]; j++)
                ;
            *at = off + j;
            return 1;
        }
        off += n;
        len -= n;
    }
    return 0;
}

int
pump_check_file(int fd, char *scratch, const char *buf, long long len,
                off_t off, off_t *at)
{
    off_t end = off + len, d, h, p;
    int rc;

    *at = off;
    if (buf) {
        if (!pump_read_back(fd, scratch, len, off))
            return -1;
        if (memcmp(scratch, buf, len) == 0)
            return 0;
        while (scratch[*at - off] == buf[*at - off])
            (*at)++;
        return 1;
    }
    /* A hole: what the file holds as data there must read as zeros (the
     * edges of a page-sized hole, a filesystem that keeps no holes, or the
     * kernel's generic SEEK_DATA, NFS before 4.2, that calls every byte
     * before the end of the file data); the rest reads as zeros anyway. */
    for (p = off; p < end; p = h) {
        if ((d = lseek(fd, p, SEEK_DATA)) < 0) {
            if (errno == ENXIO)
                break;
            return -1;
        }
        if (d >= end)
            break;
        if ((h = lseek(fd, d, SEEK_HOLE)) < 0)
            return -1;
        if (h > end || h <= d)
            h = end;
        if ((rc = pump_check_zeros(fd, scratch, d, h - d, at)) != 0)
            return rc;
    }
    return 0;
}

void
pump_check_failed(int rc, off_t at, char *err, size_t errlen)
{
    if (rc < 0)
        snprintf(err, errlen, "reading the destination file back: %s",
                 strerror(errno));
    else
        snprintf(err, errlen, "verification failed: the destination file "
                 "differs from what was read at byte %lld", (long long)at);
}

static int
pump_put(struct pump_sink *s, const struct pump_item *it,
         struct pump_result *res, char *err, size_t errlen)
{
    size_t skip = 0;
    uint64_t sent;

    if (s->fd >= 0) {
        off_t at;
        int rc;

        if (it->kind == PUMP_DATA &&
            pump_write_file(s->fd, it->buf, it->len, res->length, &res->data,
                            &res->zeros) < 0) {
            snprintf(err, errlen, "writing the destination file: %s",
                     strerror(errno));
            return -1;
        }
        pump_kick(s, res->length + it->len);
        if (!(s->flags & PUMP_VERIFY))
            return 0;
        rc = pump_check_file(s->fd, s->scratch,
                             it->kind == PUMP_DATA ? it->buf : NULL, it->len,
                             res->length, &at);
        if (rc != 0)
            pump_check_failed(rc, at, err, errlen);
        return rc == 0 ? 0 : -1;
    }
    if (!s->up) {
        if (it->kind == PUMP_DATA)
            res->data += it->len;
        return 0;
    }
    if (s->wrap) {
        if ((uint64_t)it->len > s->wrap_size - res->length) {
            snprintf(err, errlen, "the source grew past its length of %llu "
                     "bytes while it was read",
                     (unsigned long long)s->wrap_size);
            return -1;
        }
        if (qwrap_feed(s->wrap, it->kind == PUMP_DATA ? it->buf : NULL,
                       it->len) < 0)
            goto fail;
        return 0;
    }
    if (it->kind == PUMP_HOLE) {
        if (virStreamSendHole(s->up, it->len, 0) < 0)
            goto fail;
        return 0;
    }
    /* The head goes aside, and as a hole for now. */
    if ((s->flags & PUMP_HOLD_HEAD) && res->length < PUMP_HEAD) {
        skip = PUMP_HEAD - res->length;
        if (skip > (size_t)it->len)
            skip = it->len;
        memcpy(res->head + res->length, it->buf, skip);
        res->head_len = res->length + skip;
        if (virStreamSendHole(s->up, skip, 0) < 0)
            goto fail;
    }
    sent = res->data;
    if (sparse_send(s->up, it->buf + skip, it->len - skip, &res->data,
                    &res->zeros) < 0)
        goto fail;
    if (!s->paced)
        pump_throttle(res->data - sent);
    s->data_end = res->length + it->len;
    return 0;
 fail:
    pump_fail(err, errlen, "writing the destination");
    pump_note_lost(s->up_conn, err, errlen);
    return -1;
}

/*
 * Read the source of Q to its end; hand every piece to the sink S.
 */
static int
pump_loop(struct pump_queue *q, struct pump_sink *s, pump_progress_fn progress,
          void *opaque, struct pump_result *res, char *err, size_t errlen)
{
    pthread_t reader;
    int rc = -1;

    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    if (!(q->bufs = malloc((size_t)PUMP_SLOTS * PUMP_SLOT_SIZE)) ||
        pthread_create(&reader, NULL, pump_reader, q) != 0) {
        snprintf(err, errlen, "cannot start the reader");
        free(q->bufs);
        return -1;
    }
    for (;;) {
        struct pump_item it = pump_next(q);

        if (it.kind == PUMP_EOF) {
            rc = 0;
            break;
        }
        if (it.kind == PUMP_ERROR) {
            snprintf(err, errlen, "%s", q->err);
            break;
        }
        if (pump_put(s, &it, res, err, errlen) < 0)
            break;
        pump_moved();
        if (q->down)
            digest_feed(q->dg, it.kind == PUMP_DATA ? it.buf : NULL, it.len);
        res->length += it.len;
        pump_done(q);
        if (progress)
            progress(opaque, res->length);
    }
    /* Stop the reader: it may be waiting for room, or for the source. */
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    if (rc < 0 && q->down)
        virStreamAbort(q->down);
    pthread_join(reader, NULL);
    free(q->bufs);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    return rc;
}

/* A file destination is complete: its length set, synced, checked. */
static int
pump_finish_file(int fd, const struct pump_result *res, char *err,
                 size_t errlen)
{
    struct stat st;

    if (ftruncate(fd, res->length) < 0 || fdatasync(fd) < 0 ||
        fstat(fd, &st) < 0) {
        snprintf(err, errlen, "writing the destination file: %s",
                 strerror(errno));
        return -1;
    }
    if (st.st_size != (off_t)res->length) {
        snprintf(err, errlen, "verification failed: the destination file "
                 "has %lld bytes, not %llu", (long long)st.st_size,
                 (unsigned long long)res->length);
        return -1;
    }
    return 0;
}

/* pump_finish_file(), not under --timeout: the sync waits for this host's
 * disk, which shutting connections down would not hurry (and a slow disk
 * is not a stall). */
static int
pump_finish_untimed(int fd, const struct pump_result *res, char *err,
                    size_t errlen)
{
    int rc;

    atomic_fetch_sub(&pump_moving, 1);
    rc = pump_finish_file(fd, res, err, errlen);
    pump_moved();       /* before the watch looks at this copy again */
    atomic_fetch_add(&pump_moving, 1);
    return rc;
}

static int pump_copy_run(const struct pump_end *src,
                         const struct pump_end *dst, unsigned flags,
                         pump_progress_fn progress, void *opaque,
                         struct pump_result *res, char *err, size_t errlen);

int
pump_copy(const struct pump_end *src, const struct pump_end *dst,
          unsigned flags, pump_progress_fn progress, void *opaque,
          struct pump_result *res, char *err, size_t errlen)
{
    int rc;

    /* Data moves from here on: --timeout watches. */
    pump_moved();
    atomic_fetch_add(&pump_moving, 1);
    rc = pump_copy_run(src, dst, flags, progress, opaque, res, err, errlen);
    atomic_fetch_sub(&pump_moving, 1);
    /* Given up on (--timeout): fails, saying so, whatever call it was. */
    if (atomic_load(&pump_stalled) && (rc == 0 || !strstr(err, "--timeout"))) {
        if (rc == 0)
            snprintf(err, errlen, "the copy was given up");
        pump_note_lost(NULL, err, errlen);
        rc = -1;
    }
    return rc;
}

static int
pump_copy_run(const struct pump_end *src, const struct pump_end *dst,
              unsigned flags, pump_progress_fn progress, void *opaque,
              struct pump_result *res, char *err, size_t errlen)
{
    struct pump_queue q = { .fd = -1 };
    struct pump_sink s = { .fd = -1, .flags = flags };
    unsigned char raw[DIGEST_LEN];
    virStorageVolInfo info;
    struct stat st;

    memset(res, 0, sizeof(*res));
    if (src->conn && src->parallel > 1 && !(dst && dst->conn)) {
        int rc = pump_lanes(src, dst ? dst->fd : -1, flags, progress, opaque,
                            res, err, errlen);

        if (rc <= 0)
            return rc < 0 ? -1 : dst ? pump_finish_untimed(dst->fd, res,
                                                             err, errlen) : 0;
        memset(res, 0, sizeof(*res));   /* too small: one stream */
    }
    if (!(q.dg = digest_new())) {
        snprintf(err, errlen, "cannot set up the digest");
        return -1;
    }
    if (src->conn) {
        q.down_conn = src->conn;
        if (!(q.down = virStreamNew(src->conn, 0)) ||
            virStorageVolDownload(src->vol, q.down, 0, 0,
                                  VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
            pump_fail(err, errlen, "cannot download volume '%s'",
                      pump_name(src));
            goto error;
        }
    } else {
        if (fstat(src->fd, &st) < 0) {
            snprintf(err, errlen, "cannot read the source file: %s",
                     strerror(errno));
            goto error;
        }
        q.fd = src->fd;
        q.size = st.st_size;
    }
    if (dst && dst->conn) {
        s.up_conn = dst->conn;
        if (!(s.up = virStreamNew(dst->conn, 0)) ||
            virStorageVolUpload(dst->vol, s.up, 0, 0,
                                VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0) {
            pump_fail(err, errlen, "cannot upload to volume '%s'",
                      pump_name(dst));
            goto error;
        }
    } else if (dst) {
        s.fd = dst->fd;
        if ((flags & PUMP_VERIFY) && !(s.scratch = malloc(PUMP_SLOT_SIZE))) {
            snprintf(err, errlen, "out of memory");
            goto error;
        }
        if (ftruncate(s.fd, 0) < 0) {
            snprintf(err, errlen, "cannot empty the destination file: %s",
                     strerror(errno));
            goto error;
        }
    }

    s.paced = q.down != NULL;
    if ((flags & PUMP_WRAP_QCOW2) && s.up) {
        if (q.down) {
            /* Its extents are not known before it is read (land.c). */
            snprintf(err, errlen, "only a file is sent wrapped as qcow2");
            goto error;
        }
        s.wrap_size = (uint64_t)q.size;
        s.data_end = QWRAP_CLUSTER;     /* the header's cluster, a hole */
        if (!(s.wrap = qwrap_new(s.wrap_size, pump_wrap_out, &s))) {
            snprintf(err, errlen, "cannot wrap %llu bytes as qcow2: %s",
                     (unsigned long long)s.wrap_size, strerror(errno));
            goto error;
        }
        res->wrapped = true;
    }
    if (pump_loop(&q, &s, progress, opaque, res, err, errlen) < 0) {
        if (s.wrap)
            res->data = qwrap_sent(s.wrap);
        goto error;
    }
    if (s.wrap) {
        if (res->length != s.wrap_size) {
            snprintf(err, errlen, "the source ended at byte %llu of %llu "
                     "(did it change while it was read?)",
                     (unsigned long long)res->length,
                     (unsigned long long)s.wrap_size);
            goto error;
        }
        if (qwrap_finish(s.wrap, res->head) < 0) {
            pump_fail(err, errlen, "writing the destination");
            pump_note_lost(s.up_conn, err, errlen);
            goto error;
        }
        res->head_len = QWRAP_HEADER;
        res->data = qwrap_sent(s.wrap);
    }
    if (q.down) {
        if (virStreamFinish(q.down) < 0) {
            pump_fail(err, errlen, "download of '%s' did not complete",
                      pump_name(src));
            goto error;
        }
        virStreamFree(q.down);
        q.down = NULL;
    }
    if (s.up) {
        if (virStreamFinish(s.up) < 0) {
            pump_fail(err, errlen, "upload to '%s' did not complete",
                      pump_name(dst));
            goto error;
        }
        virStreamFree(s.up);
        s.up = NULL;
        /* A trailing hole may not have extended the file: make the length
         * right.  But what was sent as data must be there: libvirtd
         * (9.0) drops a write error of its file thread that comes after
         * the end of the stream was confirmed (a pool full at the end). */
        if (virStorageVolGetInfoFlags(dst->vol, &info,
                                      VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
            pump_fail(err, errlen, "cannot check the length of '%s'",
                      pump_name(dst));
            goto error;
        }
        if (info.type == VIR_STORAGE_VOL_FILE &&
            info.allocation < s.data_end) {
            snprintf(err, errlen, "upload to '%s' did not complete: %llu "
                     "bytes there, %llu sent (a write failed on the "
                     "destination after the stream ended: is its pool "
                     "full?)", pump_name(dst),
                     (unsigned long long)info.allocation,
                     (unsigned long long)s.data_end);
            goto error;
        }
        if (!s.wrap && info.allocation < res->length &&
            virStorageVolResize(dst->vol, res->length, 0) < 0) {
            pump_fail(err, errlen, "cannot extend '%s' to %llu bytes",
                      pump_name(dst), (unsigned long long)res->length);
            goto error;
        }
    } else if (s.fd >= 0 && pump_finish_untimed(s.fd, res, err, errlen) < 0) {
        goto error;
    }
    if (digest_final(q.dg, raw, res->hex) < 0) {
        snprintf(err, errlen, "computing the digest of %s failed",
                 src->conn ? "the volume" : "the file");
        goto error;
    }
    digest_free(q.dg);
    free(s.scratch);
    qwrap_free(s.wrap);
    return 0;

 error:
    pump_drop(q.down);
    pump_drop(s.up);
    digest_free(q.dg);
    free(s.scratch);
    qwrap_free(s.wrap);
    return -1;
}

int
pump_digest(const struct pump_end *src, pump_progress_fn progress,
            void *opaque, struct pump_result *res, char *err, size_t errlen)
{
    return pump_copy(src, NULL, 0, progress, opaque, res, err, errlen);
}

int
pump_put_head(virConnectPtr dconn, virStorageVolPtr dst,
              const struct pump_result *res, char *err, size_t errlen)
{
    virStreamPtr up = virStreamNew(dconn, 0);

    pump_throttle(res->head_len);
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
