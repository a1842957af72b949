/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>

#include "digest.h"

struct digest {
    gnutls_hash_hd_t outer;
    gnutls_hash_hd_t block;
    uint64_t fill;                      /* bytes in the current block */
    unsigned char zero_block[DIGEST_LEN];
};

static const unsigned char digest_zeros[64 * 1024];

struct digest *
digest_new(void)
{
    struct digest *d = calloc(1, sizeof(*d));
    gnutls_hash_hd_t z;
    int i;

    if (!d)
        return NULL;
    if (gnutls_hash_init(&d->outer, GNUTLS_DIG_SHA256) < 0) {
        free(d);
        return NULL;
    }
    if (gnutls_hash_init(&d->block, GNUTLS_DIG_SHA256) < 0 ||
        gnutls_hash_init(&z, GNUTLS_DIG_SHA256) < 0) {
        gnutls_hash_deinit(d->outer, NULL);
        free(d);
        return NULL;
    }
    for (i = 0; i < DIGEST_BLOCK / (int)sizeof(digest_zeros); i++)
        gnutls_hash(z, digest_zeros, sizeof(digest_zeros));
    gnutls_hash_deinit(z, d->zero_block);
    return d;
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

static void
digest_close_block(struct digest *d)
{
    unsigned char h[DIGEST_LEN];

    gnutls_hash_output(d->block, h);    /* also resets it */
    gnutls_hash(d->outer, h, sizeof(h));
    d->fill = 0;
}

int
digest_feed(struct digest *d, const void *data, uint64_t len)
{
    const unsigned char *p = data;

    while (len > 0) {
        uint64_t n = DIGEST_BLOCK - d->fill;

        if (n > len)
            n = len;
        if (!p && d->fill == 0 && n == DIGEST_BLOCK) {
            /* A whole block of zeros: its hash is known. */
            gnutls_hash(d->outer, d->zero_block, DIGEST_LEN);
        } else if (!p) {
            uint64_t left = n;

            while (left > 0) {
                size_t m = left > sizeof(digest_zeros) ?
                           sizeof(digest_zeros) : left;

                gnutls_hash(d->block, digest_zeros, m);
                left -= m;
            }
            d->fill += n;
        } else {
            gnutls_hash(d->block, p, n);
            d->fill += n;
            p += n;
        }
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
    return 0;
}
