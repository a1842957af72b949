/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The content digest: its definition checked against SHA-256 directly, and
 * pieces hashed apart (the lanes of a parallel copy) giving the same digest
 * as the bytes fed in order, however the volume is cut and wherever its
 * holes are; all of it with and without the sixteen-lane SHA-256, which is
 * also checked against gnutls's on its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/crypto.h>

#include "check.h"
#include "digest.h"
#include "sha256x16.h"

/* A volume of LEN bytes: random data, with holes (NULL data) where
 * HOLE(offset) says so, in pieces of 12 blocks and a bit (so that runs of
 * data hold 16 blocks and more, or fewer, and start inside blocks). */
#define PIECE (12 * DIGEST_BLOCK + 4096)

static unsigned char *vol;

static int
is_hole(size_t off)
{
    return (off / PIECE) % 5 == 2 || (off / PIECE) % 7 == 0;
}

/* Feed [from, to) of the volume, holes as NULL, in runs of at most STEP
 * bytes of data or of hole. */
static void
feed(struct digest *d, size_t from, size_t to, size_t step)
{
    while (from < to) {
        size_t n = 0;
        int hole = is_hole(from);

        /* to the end of the run of pieces like this one, or STEP */
        while (from + n < to && n < step && is_hole(from + n) == hole) {
            size_t piece_end = ((from + n) / PIECE + 1) * PIECE;

            n = piece_end - from;
        }
        if (n > step)
            n = step;
        if (from + n > to)
            n = to - from;
        digest_feed(d, hole ? NULL : vol + from, n);
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

/* The definition: SHA-256 over the SHA-256s of the 16 KiB blocks. */
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

/* sha256x16 against gnutls: lengths, distinct and repeated messages. */
static void
check_x16(void)
{
    const size_t lens[] = { 0, 64, 128, 4096, DIGEST_BLOCK, 65536 };
    const unsigned char *msg[SHA256X16_LANES];
    unsigned char out[SHA256X16_LANES][32], want[32];

    if (!sha256x16_usable()) {
        printf("digest: no AVX-512 here, the sixteen-lane SHA-256 is not "
               "checked\n");
        return;
    }
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int l = 0; l < SHA256X16_LANES; l++)       /* lane 5 repeats 3 */
            msg[l] = vol + (l == 5 ? 3 : l) * 70001 + i;
        sha256x16(msg, lens[i], out);
        for (int l = 0; l < SHA256X16_LANES; l++) {
            gnutls_hash_fast(GNUTLS_DIG_SHA256, msg[l], lens[i], want);
            CHECK(memcmp(out[l], want, 32) == 0,
                  "sha256x16 lane %d of %zu bytes differs from gnutls", l,
                  lens[i]);
        }
    }
}

/* Everything about the digest, with the sixteen-lane hashing as it is. */
static void
check_digest(void)
{
    const size_t lens[] = { 0, 1, 4096, DIGEST_BLOCK, DIGEST_BLOCK + 5,
                            5 * DIGEST_BLOCK, 9 * DIGEST_BLOCK + 12345,
                            70 * DIGEST_BLOCK + 999 };
    const size_t segs[] = { DIGEST_BLOCK, 4 * DIGEST_BLOCK, 32 * DIGEST_BLOCK };
    const size_t steps[] = { 4096, 200000, 300000, 1 << 20 };
    char a[2 * DIGEST_LEN + 1], b[2 * DIGEST_LEN + 1], c[2 * DIGEST_LEN + 1];

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];

        by_definition(len, a);
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            whole(len, steps[k], b);
            CHECK(strcmp(a, b) == 0, "len %zu fed in runs of %zu: %s, by "
                  "definition %s", len, steps[k], b, a);
        }
        for (size_t j = 0; j < sizeof(segs) / sizeof(segs[0]); j++) {
            parts(len, segs[j], c);
            CHECK(strcmp(a, c) == 0, "len %zu cut every %zu: %s, not %s",
                  len, segs[j], c, a);
        }
    }
    /* Content, not layout: a hole and written zeros hash alike. */
    {
        struct digest *d = digest_new();
        unsigned char raw[DIGEST_LEN], *z = calloc(1, 40 * DIGEST_BLOCK);

        digest_feed(d, z, 40 * DIGEST_BLOCK);
        digest_final(d, raw, a);
        digest_free(d);
        d = digest_new();
        digest_feed(d, NULL, 40 * DIGEST_BLOCK);
        digest_final(d, raw, b);
        digest_free(d);
        CHECK(strcmp(a, b) == 0, "zeros %s, hole %s", a, b);
        free(z);
    }
    /* A changed byte changes it, in a run of 16 blocks and more. */
    {
        size_t at = 20 * DIGEST_BLOCK + 17;

        if (is_hole(at))
            fprintf(stderr, "(byte in a hole: pick another)\n");
        whole(70 * DIGEST_BLOCK, 1 << 20, a);
        vol[at] ^= 1;
        whole(70 * DIGEST_BLOCK, 1 << 20, b);
        vol[at] ^= 1;
        CHECK(strcmp(a, b) != 0, "a flipped bit left the digest at %s", a);
    }
}

int
main(void)
{
    size_t maxlen = 80 * DIGEST_BLOCK;

    vol = malloc(maxlen);
    srand(42);
    for (size_t i = 0; i < maxlen; i++)
        vol[i] = rand();
    check_x16();
    if (digest_simd(1))
        check_digest();
    CHECK(!digest_simd(0), "the sixteen-lane hashing did not turn off");
    check_digest();
    free(vol);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("digest: all passed\n");
    return failures ? 1 : 0;
}
