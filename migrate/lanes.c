/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lanes: a volume read through several sparse download streams at once.
 *
 * libvirtd serves a download stream one packet at a time: its reading
 * thread reads the next 256 KiB only once the last packet has been taken,
 * and its event loop sends one packet of a stream before taking another.
 * One stream therefore leaves the source's disk and CPU idle in turns, and
 * a copy in one stream runs well below what TLS over the link can carry.
 * Here the volume is cut into segments of LANE_SEG bytes, and each lane (a
 * thread) downloads one segment after another (virStorageVolDownload with
 * an offset and a length): while one lane's packet is on the wire, the
 * others' are being read and encrypted.  Each lane has a connection of its
 * own where the URI is known: on a shared one, whichever thread reads the
 * socket queues the other streams' packets, without bound (libvirt streams
 * have no flow control but TCP's), while on its own the lane's TCP window
 * holds the source back whenever the lane is busy writing.
 *
 * Each lane writes what it receives straight into the destination file at
 * the segment's offset (all-zero chunks left as holes), reads it back and
 * compares with PUMP_VERIFY, and hashes its segment's blocks apart; the
 * segments' block hashes are taken into the digest of the whole in the
 * volume's order (digest.h), so the digest is the one a single stream
 * gives.  A lane runs at most LANE_AHEAD segments ahead of the oldest
 * unfinished one, which bounds the memory the hashes wait in.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "pumpint.h"

#define LANE_SEG (64ULL * 1024 * 1024)  /* a multiple of DIGEST_BLOCK */
#define LANE_BLOCKS (LANE_SEG / DIGEST_BLOCK)
#define LANE_AHEAD 4                     /* segments in hand per lane */

struct lane_slot {
    bool done;
    size_t count;                       /* block hashes in H */
    unsigned char (*h)[DIGEST_LEN];
};

struct lanes {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    virConnectPtr conn;
    virStorageVolPtr vol;
    const char *uri;                    /* of CONN, or NULL */
    const char *key;                    /* of VOL */
    const char *name;
    int fd;                             /* the destination file, or -1 */
    unsigned flags;
    uint64_t size;                      /* of the source, in bytes */
    uint64_t nseg;                      /* segments */
    uint64_t next;                      /* the next segment to hand out */
    uint64_t fed;                       /* segments taken into DG */
    size_t window;                      /* slots */
    struct lane_slot *slot;             /* segment N in slot N % window */
    struct digest *dg;
    uint64_t done, data, zeros;         /* bytes */
    pump_progress_fn progress;
    void *opaque;
    bool failed;
    char err[512];
};

/* The first failure is the one reported; the other lanes stop. */
static void
lanes_failed(struct lanes *l, const char *err)
{
    pthread_mutex_lock(&l->lock);
    if (!l->failed) {
        l->failed = true;
        snprintf(l->err, sizeof(l->err), "%s", err);
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* The next segment for a lane to take, or -1 when there is none left (or
 * the copy failed). */
static long long
lanes_take(struct lanes *l)
{
    long long n = -1;

    pthread_mutex_lock(&l->lock);
    while (!l->failed && l->next < l->nseg && l->next >= l->fed + l->window)
        pthread_cond_wait(&l->cond, &l->lock);
    if (!l->failed && l->next < l->nseg)
        n = l->next++;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* Segment N is done: its hashes, and those of the done segments after
 * it, go into the digest in order. */
static void
lanes_finish(struct lanes *l, uint64_t n, size_t count)
{
    pthread_mutex_lock(&l->lock);
    l->slot[n % l->window].count = count;
    l->slot[n % l->window].done = true;
    while (l->fed < l->nseg && l->slot[l->fed % l->window].done) {
        struct lane_slot *s = &l->slot[l->fed % l->window];

        digest_feed_hashes(l->dg, (const unsigned char (*)[DIGEST_LEN])s->h,
                           s->count);
        s->done = false;
        l->fed++;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* LEN more bytes are done; false once the copy has failed elsewhere. */
static bool
lanes_advance(struct lanes *l, uint64_t data, uint64_t zeros, long long len)
{
    bool ok;

    pthread_mutex_lock(&l->lock);
    l->done += len;
    l->data += data;
    l->zeros += zeros;
    if (l->progress)
        l->progress(l->opaque, l->done);
    ok = !l->failed;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/*
 * Download segment N into the file (and its digest part).  0, or -1 with
 * ERR set.
 */
static int
lane_segment(struct lanes *l, virConnectPtr conn, virStorageVolPtr vol,
             uint64_t n, char *buf, char *scratch, struct digest *part,
             char *err, size_t errlen)
{
    uint64_t off = n * LANE_SEG;
    uint64_t len = l->size - off < LANE_SEG ? l->size - off : LANE_SEG;
    uint64_t pos = 0;
    virStreamPtr st = virStreamNew(conn, 0);

    digest_part_reset(part, l->slot[n % l->window].h, LANE_BLOCKS);
    if (!st || virStorageVolDownload(vol, st, off, len,
                                     VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM) < 0) {
        pump_fail(err, errlen, "cannot download bytes %llu to %llu of '%s'",
                  (unsigned long long)off, (unsigned long long)(off + len),
                  l->name);
        goto fail;
    }
    while (pos < len) {
        uint64_t data = 0, zeros = 0;
        long long got;
        int r = virStreamRecvFlags(st, buf, PUMP_SLOT_SIZE,
                                   VIR_STREAM_RECV_STOP_AT_HOLE);
        bool hole = r == -3;

        if (hole && virStreamRecvHole(st, &got, 0) < 0)
            r = -1;
        else if (!hole)
            got = r;
        if (r == -1 || r == -2) {
            pump_fail(err, errlen, "reading '%s' at byte %llu", l->name,
                      (unsigned long long)(off + pos));
            pump_note_lost(conn, err, errlen);
            goto fail;
        }
        if (got == 0 || pos + got > len) {
            snprintf(err, errlen, "reading '%s': the stream %s at byte %llu "
                     "of bytes %llu to %llu (did the volume change while it "
                     "was read?)", l->name, got == 0 ? "ended" : "ran past",
                     (unsigned long long)(off + pos),
                     (unsigned long long)off, (unsigned long long)(off + len));
            goto fail;
        }
        if (l->fd >= 0) {
            off_t at;
            int rc;

            if (!hole && pump_write_file(l->fd, buf, got, off + pos, &data,
                                         &zeros) < 0) {
                snprintf(err, errlen, "writing the destination file: %s",
                         strerror(errno));
                goto fail;
            }
            if ((l->flags & PUMP_VERIFY) &&
                (rc = pump_check_file(l->fd, scratch, hole ? NULL : buf, got,
                                      off + pos, &at)) != 0) {
                pump_check_failed(rc, at, err, errlen);
                goto fail;
            }
        } else if (!hole) {
            data = got;
        }
        if (!hole)
            pump_throttle(got);
        pump_moved();
        digest_feed(part, hole ? NULL : buf, got);
        pos += got;
        if (!lanes_advance(l, data, zeros, got)) {
            virStreamAbort(st);
            virStreamFree(st);
            return -1;                  /* another lane's error stands */
        }
    }
    /* The stream's end, then its confirmation. */
    if (virStreamRecvFlags(st, buf, PUMP_SLOT_SIZE,
                           VIR_STREAM_RECV_STOP_AT_HOLE) != 0 ||
        virStreamFinish(st) < 0) {
        pump_fail(err, errlen, "download of bytes %llu to %llu of '%s' did "
                  "not end where it should", (unsigned long long)off,
                  (unsigned long long)(off + len), l->name);
        goto fail;
    }
    virStreamFree(st);
    /* Let the disk write this segment while the network brings the next. */
    if (l->fd >= 0)
        sync_file_range(l->fd, off, len, SYNC_FILE_RANGE_WRITE);
    if (off + len == l->size)
        digest_part_end(part);
    if (digest_broken(part)) {
        snprintf(err, errlen, "hashing bytes %llu to %llu of '%s' failed",
                 (unsigned long long)off, (unsigned long long)(off + len),
                 l->name);
        return -1;
    }
    lanes_finish(l, n, digest_part_count(part));
    return 0;

 fail:
    if (st) {
        virStreamAbort(st);
        virStreamFree(st);
    }
    return -1;
}

static void *
lane_run(void *arg)
{
    struct lanes *l = arg;
    char *buf = malloc(PUMP_SLOT_SIZE);
    char *scratch = (l->flags & PUMP_VERIFY) ? malloc(PUMP_SLOT_SIZE) : NULL;
    struct digest *part = digest_new_part();
    char err[512] = "";
    virConnectPtr own = NULL;
    virStorageVolPtr vol = NULL;
    long long n;

    if (!buf || !part || ((l->flags & PUMP_VERIFY) && !scratch)) {
        lanes_failed(l, "out of memory");
        goto out;
    }
    /* A connection of its own if it can have one; the shared one else
     * (the daemon's max_clients, say: the copy still goes on). */
    if (l->uri && l->key && (own = pump_open(l->uri))) {
        if (!(vol = virStorageVolLookupByKey(own, l->key))) {
            virConnectClose(own);
            own = NULL;
        }
    }
    while ((n = lanes_take(l)) >= 0) {
        if (lane_segment(l, own ? own : l->conn, own ? vol : l->vol, n, buf,
                         scratch, part, err, sizeof(err)) < 0) {
            if (err[0])
                lanes_failed(l, err);
            break;
        }
    }
 out:
    if (vol)
        virStorageVolFree(vol);
    if (own)
        virConnectClose(own);
    digest_free(part);
    free(scratch);
    free(buf);
    return NULL;
}

int
pump_lanes(const struct pump_end *src, int fd, unsigned flags,
           pump_progress_fn progress, void *opaque, struct pump_result *res,
           char *err, size_t errlen)
{
    struct lanes l = {
        .conn = src->conn, .vol = src->vol, .fd = fd, .flags = flags,
        .progress = progress, .opaque = opaque,
    };
    pthread_t th[PUMP_MAX_PARALLEL];
    virStorageVolInfo info;
    unsigned char raw[DIGEST_LEN];
    int nlanes, started = 0, rc = -1;
    size_t i;

    /* The length of what a download stream gives: the file's or the
     * device's bytes (a qcow2's container, not its virtual size).  Known
     * for those only: a network volume (rbd, gluster) goes in one stream. */
    if (virStorageVolGetInfoFlags(src->vol, &info,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) < 0 ||
        (info.type != VIR_STORAGE_VOL_FILE &&
         info.type != VIR_STORAGE_VOL_BLOCK) ||
        info.allocation <= LANE_SEG)
        return 1;
    l.name = virStorageVolGetName(src->vol);
    l.uri = src->uri;
    l.key = virStorageVolGetKey(src->vol);
    l.size = info.allocation;
    l.nseg = (l.size + LANE_SEG - 1) / LANE_SEG;
    nlanes = src->parallel < PUMP_MAX_PARALLEL ? src->parallel :
             PUMP_MAX_PARALLEL;
    if ((uint64_t)nlanes > l.nseg)
        nlanes = l.nseg;
    l.window = (size_t)nlanes * LANE_AHEAD;
    if (fd >= 0 && ftruncate(fd, 0) < 0) {
        snprintf(err, errlen, "cannot empty the destination file: %s",
                 strerror(errno));
        return -1;
    }
    if (!(l.dg = digest_new()) ||
        !(l.slot = calloc(l.window, sizeof(*l.slot)))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (i = 0; i < l.window; i++)
        if (!(l.slot[i].h = malloc(LANE_BLOCKS * DIGEST_LEN))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    pthread_mutex_init(&l.lock, NULL);
    pthread_cond_init(&l.cond, NULL);
    for (; started < nlanes; started++)
        if (pthread_create(&th[started], NULL, lane_run, &l) != 0) {
            lanes_failed(&l, "cannot start the download threads");
            break;
        }
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_cond_destroy(&l.cond);
    pthread_mutex_destroy(&l.lock);
    if (l.failed) {
        snprintf(err, errlen, "%s", l.err);
        goto out;
    }
    res->length = l.size;
    res->data = l.data;
    res->zeros = l.zeros;
    if (digest_final(l.dg, raw, res->hex) < 0) {
        snprintf(err, errlen, "computing the digest of '%s' failed", l.name);
        goto out;
    }
    rc = 0;
 out:
    if (l.slot)
        for (i = 0; i < l.window; i++)
            free(l.slot[i].h);
    free(l.slot);
    digest_free(l.dg);
    return rc;
}
