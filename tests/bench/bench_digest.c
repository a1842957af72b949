/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_digest: how fast the content digest (migrate/digest.h) hashes data,
 * with its sixteen-lane SHA-256 and without, next to one plain SHA-256 of
 * the same bytes (gnutls, SHA extensions where the CPU has them).  A
 * benchmark, not a test:
 *
 *   build/tests/bench/bench_digest [MIB [RUNS]]     (default 512 MiB, 5 runs)
 *
 * Each run feeds MIB MiB of random data in 256 KiB pieces (a stream
 * packet's size), the three ways in turn; it prints the medians in MB/s
 * and their ratios.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <gnutls/crypto.h>

#include "digest.h"

#define PIECE (256 * 1024)

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
run_digest(const unsigned char *buf, size_t len, char *hex)
{
    struct digest *d = digest_new();
    unsigned char raw[DIGEST_LEN];
    double t0 = now();

    for (size_t off = 0; off < len; off += PIECE)
        digest_feed(d, buf + off, len - off < PIECE ? len - off : PIECE);
    digest_final(d, raw, hex);
    digest_free(d);
    return len / (now() - t0) / 1e6;
}

static double
run_sha256(const unsigned char *buf, size_t len)
{
    gnutls_hash_hd_t h;
    unsigned char raw[32];
    double t0 = now();

    gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
    for (size_t off = 0; off < len; off += PIECE)
        gnutls_hash(h, buf + off, len - off < PIECE ? len - off : PIECE);
    gnutls_hash_deinit(h, raw);
    return len / (now() - t0) / 1e6;
}

int
main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    size_t len = mib << 20;
    unsigned char *buf;
    double *wide, *narrow, *plain;
    char h1[2 * DIGEST_LEN + 1], h2[2 * DIGEST_LEN + 1];
    int have_wide;

    if (mib == 0 || runs < 1 || runs > 99) {
        fprintf(stderr, "usage: bench_digest [MIB [RUNS]]\n");
        return 2;
    }
    if (!(buf = malloc(len)) || !(wide = calloc(runs, sizeof(double))) ||
        !(narrow = calloc(runs, sizeof(double))) ||
        !(plain = calloc(runs, sizeof(double)))) {
        fprintf(stderr, "bench_digest: out of memory\n");
        return 1;
    }
    srand(1);
    for (size_t i = 0; i < len; i++)
        buf[i] = rand();
    have_wide = digest_simd(1);
    for (int r = 0; r < runs; r++) {
        digest_simd(1);
        wide[r] = run_digest(buf, len, h1);
        digest_simd(0);
        narrow[r] = run_digest(buf, len, h2);
        plain[r] = run_sha256(buf, len);
        if (strcmp(h1, h2) != 0) {
            fprintf(stderr, "bench_digest: the two digests differ\n");
            return 1;
        }
    }
    qsort(wide, runs, sizeof(double), cmp_double);
    qsort(narrow, runs, sizeof(double), cmp_double);
    qsort(plain, runs, sizeof(double), cmp_double);
    printf("data: %zu MiB in %d KiB pieces, medians of %d runs\n", mib,
           PIECE / 1024, runs);
    printf("digest, sixteen lanes%s: %8.0f MB/s\n",
           have_wide ? "" : " (no AVX-512: one by one)", wide[runs / 2]);
    printf("digest, one by one:     %8.0f MB/s\n", narrow[runs / 2]);
    printf("SHA-256 of it all:      %8.0f MB/s\n", plain[runs / 2]);
    printf("sixteen lanes / one by one: %.2fx; / SHA-256: %.2fx\n",
           wide[runs / 2] / narrow[runs / 2], wide[runs / 2] / plain[runs / 2]);
    free(buf);
    free(wide);
    free(narrow);
    free(plain);
    return 0;
}
