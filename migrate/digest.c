/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>

#include "digest.h"
#include "sha256x16.h"

struct digest {
    gnutls_hash_hd_t outer;
    gnutls_hash_hd_t block;
    uint64_t fill;                      /* bytes in the current block */
    /* A part (digest_new_part): where block hashes go instead */
    unsigned char (*out)[DIGEST_LEN];
    size_t max, count;
    bool part;
    bool broken;                        /* a hash failed: the digest is wrong */
};

static const unsigned char digest_zeros[DIGEST_BLOCK];
static unsigned char digest_zero_block[DIGEST_LEN];    /* an all-zero block's */
static pthread_once_t digest_once = PTHREAD_ONCE_INIT;
static int digest_once_rc;
static bool digest_wide;        /* whole blocks sixteen at a time */

static void
digest_init_once(void)
{
    const char *env = getenv("POOLFS_DIGEST_SIMD");

    digest_wide = sha256x16_usable() && !(env && strcmp(env, "0") == 0);
    digest_once_rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, digest_zeros,
                                      DIGEST_BLOCK, digest_zero_block);
}

bool
digest_simd(int on)
{
    pthread_once(&digest_once, digest_init_once);
    if (on >= 0)
        digest_wide = on && sha256x16_usable();
    return digest_wide;
}

static struct digest *
digest_alloc(bool part)
{
    struct digest *d;

    if (pthread_once(&digest_once, digest_init_once) != 0 ||
        digest_once_rc < 0 || !(d = calloc(1, sizeof(*d))))
        return NULL;
    if (gnutls_hash_init(&d->outer, GNUTLS_DIG_SHA256) < 0) {
        free(d);
        return NULL;
    }
    if (gnutls_hash_init(&d->block, GNUTLS_DIG_SHA256) < 0) {
        gnutls_hash_deinit(d->outer, NULL);
        free(d);
        return NULL;
    }
    d->part = part;
    return d;
}

struct digest *
digest_new(void)
{
    return digest_alloc(false);
}

struct digest *
digest_new_part(void)
{
    return digest_alloc(true);
}

void
digest_free(struct digest *d)
{
    if (!d)
        return;
    gnutls_hash_deinit(d->block, NULL);
    gnutls_hash_deinit(d->outer, NULL);
    free(d);
}

/* A block is complete, with hash H. */
static void
digest_emit(struct digest *d, const unsigned char *h)
{
    if (!d->part) {
        if (gnutls_hash(d->outer, h, DIGEST_LEN) < 0)
            d->broken = true;
    } else if (d->count < d->max) {
        memcpy(d->out[d->count++], h, DIGEST_LEN);
    } else {
        d->broken = true;               /* more blocks than the part holds */
    }
}

static void
digest_close_block(struct digest *d)
{
    unsigned char h[DIGEST_LEN];

    gnutls_hash_output(d->block, h);    /* also resets it */
    digest_emit(d, h);
    d->fill = 0;
}

/*
 * Whole blocks at P, N of them (N > 0), from a block boundary: sixteen at a
 * time where the CPU can (lanes left over repeat the first block), and one
 * by one when fewer than half the lanes would be used.
 */
static int
digest_whole_blocks(struct digest *d, const unsigned char *p, uint64_t n)
{
    unsigned char h[SHA256X16_LANES][DIGEST_LEN];

    while (n > 0) {
        if (digest_wide && n >= SHA256X16_LANES / 2) {
            const unsigned char *msg[SHA256X16_LANES];
            unsigned k = n < SHA256X16_LANES ? (unsigned)n : SHA256X16_LANES;
            unsigned i;

            for (i = 0; i < SHA256X16_LANES; i++)
                msg[i] = p + (uint64_t)(i < k ? i : 0) * DIGEST_BLOCK;
            sha256x16(msg, DIGEST_BLOCK, h);
            for (i = 0; i < k; i++)
                digest_emit(d, h[i]);
            p += (uint64_t)k * DIGEST_BLOCK;
            n -= k;
        } else {
            if (gnutls_hash_fast(GNUTLS_DIG_SHA256, p, DIGEST_BLOCK, h[0]) < 0)
                return -1;
            digest_emit(d, h[0]);
            p += DIGEST_BLOCK;
            n--;
        }
    }
    return 0;
}

int
digest_feed(struct digest *d, const void *data, uint64_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        uint64_t n = DIGEST_BLOCK - d->fill;

        if (n > len)
            n = len;
        if (d->fill == 0 && n == DIGEST_BLOCK) {
            /* Whole blocks: of zeros, their hash is known. */
            uint64_t whole = len / DIGEST_BLOCK;

            if (!p) {
                for (uint64_t i = 0; i < whole; i++)
                    digest_emit(d, digest_zero_block);
            } else {
                if (digest_whole_blocks(d, p, whole) < 0) {
                    d->broken = true;
                    return -1;
                }
                p += whole * DIGEST_BLOCK;
            }
            len -= whole * DIGEST_BLOCK;
            continue;
        }
        if (gnutls_hash(d->block, p ? (const void *)p : digest_zeros, n) < 0) {
            d->broken = true;
            return -1;
        }
        d->fill += n;
        if (p)
            p += n;
        if (d->fill == DIGEST_BLOCK)
            digest_close_block(d);
        len -= n;
    }
    return 0;
}

int
digest_final(struct digest *d, unsigned char *out, char *hex)
{
    int i;

    if (d->fill > 0)
        digest_close_block(d);
    gnutls_hash_output(d->outer, out);
    for (i = 0; i < DIGEST_LEN; i++)
        sprintf(hex + 2 * i, "%02x", out[i]);
    return d->broken ? -1 : 0;
}

void
digest_part_reset(struct digest *d, unsigned char (*out)[DIGEST_LEN],
                  size_t max)
{
    unsigned char h[DIGEST_LEN];

    if (d->fill > 0)
        gnutls_hash_output(d->block, h);        /* drop it */
    d->fill = 0;
    d->out = out;
    d->max = max;
    d->count = 0;
}

void
digest_part_end(struct digest *d)
{
    if (d->fill > 0)
        digest_close_block(d);
}

size_t
digest_part_count(const struct digest *d)
{
    return d->count;
}

bool
digest_broken(const struct digest *d)
{
    return d->broken;
}

void
digest_feed_hashes(struct digest *d, const unsigned char (*h)[DIGEST_LEN],
                   size_t n)
{
    if (gnutls_hash(d->outer, h, n * DIGEST_LEN) < 0)
        d->broken = true;
}
