/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The content digest: its definition checked against SHA-256 directly, and
 * pieces hashed apart (the lanes of a parallel copy) giving the same digest
 * as the bytes fed in order, however the volume is cut and wherever its
 * holes are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>

#include "digest.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* A volume of LEN bytes: random data, with holes (NULL data) where
 * HOLE(offset) says so, in 64 KiB pieces. */
#define PIECE (64 * 1024)

static unsigned char *vol;

static int
is_hole(size_t off)
{
    return (off / PIECE) % 5 == 2 || (off / PIECE) % 7 == 0;
}

/* Feed [from, to) of the volume, holes as NULL, in pieces of at most STEP. */
static void
feed(struct digest *d, size_t from, size_t to, size_t step)
{
    while (from < to) {
        size_t n = to - from;
        size_t piece_end = (from / PIECE + 1) * PIECE;

        if (n > step)
            n = step;
        if (from + n > piece_end)
            n = piece_end - from;
        digest_feed(d, is_hole(from) ? NULL : vol + from, n);
        from += n;
    }
}

static void
whole(size_t len, size_t step, char *hex)
{
    struct digest *d = digest_new();
    unsigned char raw[DIGEST_LEN];

    feed(d, 0, len, step);
    digest_final(d, raw, hex);
    digest_free(d);
}

/* The volume cut into parts of SEG bytes (a multiple of DIGEST_BLOCK),
 * hashed apart, taken in order. */
static void
parts(size_t len, size_t seg, char *hex)
{
    struct digest *outer = digest_new(), *part = digest_new_part();
    size_t max = seg / DIGEST_BLOCK;
    unsigned char (*h)[DIGEST_LEN] = malloc(max * DIGEST_LEN);
    unsigned char raw[DIGEST_LEN];

    for (size_t off = 0; off < len; off += seg) {
        size_t end = off + seg < len ? off + seg : len;

        digest_part_reset(part, h, max);
        feed(part, off, end, 100000);
        if (end == len)
            digest_part_end(part);
        CHECK(digest_part_count(part) == (end - off + DIGEST_BLOCK - 1) / DIGEST_BLOCK,
              "part at %zu: %zu block hashes", off, digest_part_count(part));
        digest_feed_hashes(outer, (const unsigned char (*)[DIGEST_LEN])h,
                           digest_part_count(part));
    }
    digest_final(outer, raw, hex);
    digest_free(part);
    digest_free(outer);
    free(h);
}

/* The definition: SHA-256 over the SHA-256s of the 1 MiB blocks. */
static void
by_definition(size_t len, char *hex)
{
    gnutls_hash_hd_t outer;
    unsigned char h[DIGEST_LEN], *buf = malloc(len ? len : 1);

    for (size_t i = 0; i < len; i++)
        buf[i] = is_hole(i) ? 0 : vol[i];
    gnutls_hash_init(&outer, GNUTLS_DIG_SHA256);
    for (size_t off = 0; off < len; off += DIGEST_BLOCK) {
        size_t n = len - off < DIGEST_BLOCK ? len - off : DIGEST_BLOCK;

        gnutls_hash_fast(GNUTLS_DIG_SHA256, buf + off, n, h);
        gnutls_hash(outer, h, sizeof(h));
    }
    gnutls_hash_deinit(outer, h);
    for (int i = 0; i < DIGEST_LEN; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    free(buf);
}

int
main(void)
{
    const size_t lens[] = { 0, 1, 4096, DIGEST_BLOCK, DIGEST_BLOCK + 5,
                            5 * DIGEST_BLOCK, 9 * DIGEST_BLOCK + 12345 };
    const size_t segs[] = { DIGEST_BLOCK, 2 * DIGEST_BLOCK, 4 * DIGEST_BLOCK };
    size_t maxlen = 10 * DIGEST_BLOCK;
    char a[2 * DIGEST_LEN + 1], b[2 * DIGEST_LEN + 1], c[2 * DIGEST_LEN + 1];

    vol = malloc(maxlen);
    srand(42);
    for (size_t i = 0; i < maxlen; i++)
        vol[i] = rand();
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];

        by_definition(len, a);
        whole(len, 300000, b);
        CHECK(strcmp(a, b) == 0, "len %zu: fed in order %s, by definition %s",
              len, b, a);
        whole(len, 4096, c);
        CHECK(strcmp(a, c) == 0, "len %zu: small pieces %s, not %s", len, c, a);
        for (size_t j = 0; j < sizeof(segs) / sizeof(segs[0]); j++) {
            parts(len, segs[j], c);
            CHECK(strcmp(a, c) == 0, "len %zu cut every %zu: %s, not %s",
                  len, segs[j], c, a);
        }
    }
    /* Content, not layout: a hole and written zeros hash alike. */
    {
        struct digest *d = digest_new();
        unsigned char raw[DIGEST_LEN], *z = calloc(1, 3 * DIGEST_BLOCK);

        digest_feed(d, z, 3 * DIGEST_BLOCK);
        digest_final(d, raw, a);
        digest_free(d);
        d = digest_new();
        digest_feed(d, NULL, 3 * DIGEST_BLOCK);
        digest_final(d, raw, b);
        digest_free(d);
        CHECK(strcmp(a, b) == 0, "zeros %s, hole %s", a, b);
        free(z);
    }
    /* A changed byte changes it. */
    whole(5 * DIGEST_BLOCK, 300000, a);
    vol[3 * DIGEST_BLOCK + 17] ^= 1;
    if (is_hole(3 * DIGEST_BLOCK + 17))
        fprintf(stderr, "(byte in a hole: pick another)\n");
    whole(5 * DIGEST_BLOCK, 300000, b);
    CHECK(strcmp(a, b) != 0, "a flipped bit left the digest at %s", a);
    free(vol);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("digest: all passed\n");
    return failures ? 1 : 0;
}
