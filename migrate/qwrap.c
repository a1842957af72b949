/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qwrap.h"
#include "sparse.h"

#define C QWRAP_CLUSTER
#define L2_ENTRIES (C / 8)                      /* 512 MiB of guest each */
#define RB_ENTRIES (C / 2)                      /* 16-bit refcounts */
#define OFLAG_COPIED (1ULL << 63)

struct qwrap {
    uint64_t size;
    qwrap_out_fn out;
    void *opaque;

    uint64_t pos;               /* guest bytes fed */
    uint64_t host;              /* next host offset */
    uint64_t sent;              /* bytes sent as data */
    bool started;               /* cluster 0's hole sent */

    char *cbuf;                 /* the guest cluster being filled */
    int64_t cur;                /* its index, -1 for none */
    bool cur_data;              /* data was copied into it */

    uint64_t *l1;
    uint64_t l1_size;
    uint64_t *l2;               /* the L2 table being filled */
    int64_t l2_index;           /* its L1 slot, -1 for none */
};

struct qwrap *
qwrap_new(uint64_t size, qwrap_out_fn out, void *opaque)
{
    struct qwrap *w;

    if (!QWRAP_FITS(size)) {
        errno = EINVAL;
        return NULL;
    }
    if (!(w = calloc(1, sizeof(*w))))
        return NULL;
    w->size = size;
    w->out = out;
    w->opaque = opaque;
    w->host = C;
    w->cur = -1;
    w->l2_index = -1;
    w->l1_size = (size + (uint64_t)C * L2_ENTRIES - 1) / ((uint64_t)C * L2_ENTRIES);
    w->cbuf = malloc(C);
    w->l2 = malloc(C);
    w->l1 = calloc(w->l1_size ? w->l1_size : 1, sizeof(uint64_t));
    if (!w->cbuf || !w->l2 || !w->l1) {
        qwrap_free(w);
        return NULL;
    }
    return w;
}

void
qwrap_free(struct qwrap *w)
{
    if (!w)
        return;
    free(w->cbuf);
    free(w->l2);
    free(w->l1);
    free(w);
}

uint64_t
qwrap_sent(const struct qwrap *w)
{
    return w->sent;
}

/* LEN bytes at P at the next host offset (a whole number of clusters). */
static int
qwrap_put(struct qwrap *w, const char *p, size_t len)
{
    if (!w->started) {
        if (w->out(w->opaque, NULL, C) < 0)
            return -1;
        w->started = true;
    }
    if (w->out(w->opaque, p, len) < 0)
        return -1;
    w->host += len;
    w->sent += len;
    return 0;
}

/* Send the L2 table being filled and point its L1 slot at it. */
static int
qwrap_put_l2(struct qwrap *w)
{
    uint64_t at = w->host;

    if (w->l2_index < 0)
        return 0;
    if (qwrap_put(w, (const char *)w->l2, C) < 0)
        return -1;
    w->l1[w->l2_index] = at | OFLAG_COPIED;
    w->l2_index = -1;
    return 0;
}

/* Send the guest cluster being filled, unless it holds only zeros. */
static int
qwrap_flush(struct qwrap *w)
{
    int64_t slot;
    uint64_t at;

    if (w->cur < 0)
        return 0;
    if (!w->cur_data || sparse_is_zero(w->cbuf, C)) {
        w->cur = -1;
        return 0;
    }
    slot = w->cur / L2_ENTRIES;
    if (slot != w->l2_index) {
        if (qwrap_put_l2(w) < 0)
            return -1;
        memset(w->l2, 0, C);
        w->l2_index = slot;
    }
    at = w->host;
    if (qwrap_put(w, w->cbuf, C) < 0)
        return -1;
    w->l2[w->cur % L2_ENTRIES] = htobe64(at | OFLAG_COPIED);
    w->cur = -1;
    return 0;
}

int
qwrap_feed(struct qwrap *w, const char *buf, uint64_t len)
{
    if (len > w->size - w->pos || w->pos > w->size)
        return -1;
    while (len > 0) {
        int64_t g = w->pos / C;
        uint64_t in = w->pos % C;
        uint64_t n = C - in < len ? C - in : len;

        if (!buf && g != w->cur) {
            /* A hole outside the open cluster: nothing to keep. */
            if (qwrap_flush(w) < 0)
                return -1;
            w->pos += len;
            return 0;
        }
        if (g != w->cur) {
            if (qwrap_flush(w) < 0)
                return -1;
            memset(w->cbuf, 0, C);
            w->cur = g;
            w->cur_data = false;
        }
        if (buf) {
            memcpy(w->cbuf + in, buf, n);
            w->cur_data = true;
            buf += n;
        }
        w->pos += n;
        len -= n;
    }
    return 0;
}

static void
put_be32(char *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, 4);
}

static void
put_be64(char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

int
qwrap_finish(struct qwrap *w, char head[QWRAP_HEADER])
{
    uint64_t l1_offset, l1_clusters, rt_offset, n0, rt = 1, rb = 1, total;
    uint64_t i, k;

    if (w->pos > w->size || qwrap_flush(w) < 0 || qwrap_put_l2(w) < 0)
        return -1;

    /* The L1 table, in whole clusters. */
    l1_clusters = (w->l1_size * 8 + C - 1) / C;
    if (l1_clusters == 0)
        l1_clusters = 1;
    l1_offset = w->host;
    for (i = 0; i < l1_clusters; i++) {
        uint64_t *e = w->l2;            /* a cluster of scratch */

        memset(e, 0, C);
        for (k = 0; k < L2_ENTRIES && i * L2_ENTRIES + k < w->l1_size; k++)
            e[k] = htobe64(w->l1[i * L2_ENTRIES + k]);
        if (qwrap_put(w, (const char *)e, C) < 0)
            return -1;
    }

    /* Refcounts: every cluster up to the end has one reference, the
     * refcount table and blocks' own included; find how many of them it
     * takes to count all (a fixed point: a few steps at most). */
    n0 = w->host / C;
    for (;;) {
        uint64_t nrb, nrt;

        total = n0 + rt + rb;
        nrb = (total + RB_ENTRIES - 1) / RB_ENTRIES;
        nrt = (nrb * 8 + C - 1) / C;
        if (nrb == rb && nrt == rt)
            break;
        rb = nrb;
        rt = nrt;
    }
    rt_offset = w->host;
    for (i = 0; i < rt; i++) {
        uint64_t *e = w->l2;

        memset(e, 0, C);
        for (k = 0; k < L2_ENTRIES && i * L2_ENTRIES + k < rb; k++)
            e[k] = htobe64(rt_offset + (rt + i * L2_ENTRIES + k) * C);
        if (qwrap_put(w, (const char *)e, C) < 0)
            return -1;
    }
    for (i = 0; i < rb; i++) {
        uint16_t *e = (uint16_t *)w->l2;

        memset(e, 0, C);
        for (k = 0; k < RB_ENTRIES && i * RB_ENTRIES + k < total; k++)
            e[k] = htobe16(1);
        if (qwrap_put(w, (const char *)e, C) < 0)
            return -1;
    }

    memset(head, 0, QWRAP_HEADER);
    put_be32(head + 0, 0x514649fb);             /* "QFI\xfb" */
    put_be32(head + 4, 2);                      /* version */
    /* 8: backing file offset, 16: its length: none */
    put_be32(head + 20, 16);                    /* cluster bits */
    put_be64(head + 24, w->size);
    /* 32: no encryption */
    put_be32(head + 36, (uint32_t)w->l1_size);
    put_be64(head + 40, l1_offset);
    put_be64(head + 48, rt_offset);
    put_be32(head + 56, (uint32_t)rt);
    /* 60: no snapshots; 64: their offset */
    return 0;
}
