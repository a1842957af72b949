/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * SHA-256 (FIPS 180-4) of sixteen messages at once with AVX-512: lane i of
 * each 512-bit register holds the 32-bit word of message i.  See
 * sha256x16.h for why.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sha256x16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw")))

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t sha256_iv[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

bool
sha256x16_usable(void)
{
    /* GCC's cpu model also checks that the kernel saves the ZMM state. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw");
}

/* Three-input logic (vpternlogd) truth tables: A ^ B ^ C; A ? B : C;
 * majority of A, B, C. */
#define XOR3 0x96
#define CH 0xca
#define MAJ 0xe8

#define ROR(x, n) _mm512_ror_epi32((x), (n))
#define LOGIC(a, b, c, t) _mm512_ternarylogic_epi32((a), (b), (c), (t))
#define ADD(a, b) _mm512_add_epi32((a), (b))

/*
 * R[i] holds the 16 words of message i's block; afterwards R[j] holds word
 * j of the 16 messages.  Three steps: interleave 32-bit words within each
 * 128-bit lane, then 64-bit pairs, which leaves R[4k + m]'s 128-bit lane L
 * holding word 4L + m of messages 4k to 4k + 3; then a 4x4 transpose of
 * 128-bit lanes.
 */
TARGET static inline void
sha256x16_transpose(__m512i r[16])
{
    __m512i a[16], b[16];
    int k, m;

    for (k = 0; k < 8; k++) {
        a[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    for (k = 0; k < 4; k++) {
        b[4 * k] = _mm512_unpacklo_epi64(a[4 * k], a[4 * k + 2]);
        b[4 * k + 1] = _mm512_unpackhi_epi64(a[4 * k], a[4 * k + 2]);
        b[4 * k + 2] = _mm512_unpacklo_epi64(a[4 * k + 1], a[4 * k + 3]);
        b[4 * k + 3] = _mm512_unpackhi_epi64(a[4 * k + 1], a[4 * k + 3]);
    }
    for (m = 0; m < 4; m++) {
        __m512i lo01 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0x44);
        __m512i hi01 = _mm512_shuffle_i32x4(b[m], b[4 + m], 0xee);
        __m512i lo23 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0x44);
        __m512i hi23 = _mm512_shuffle_i32x4(b[8 + m], b[12 + m], 0xee);

        r[m] = _mm512_shuffle_i32x4(lo01, lo23, 0x88);
        r[4 + m] = _mm512_shuffle_i32x4(lo01, lo23, 0xdd);
        r[8 + m] = _mm512_shuffle_i32x4(hi01, hi23, 0x88);
        r[12 + m] = _mm512_shuffle_i32x4(hi01, hi23, 0xdd);
    }
}

/* The compression function on one block (W, in message-schedule order)
 * of each lane. */
TARGET static inline void
sha256x16_compress(__m512i s[8], __m512i w[16])
{
    __m512i a = s[0], b = s[1], c = s[2], d = s[3];
    __m512i e = s[4], f = s[5], g = s[6], h = s[7];
    int t;

#pragma GCC unroll 64
    for (t = 0; t < 64; t++) {
        __m512i wt, t1, t2;

        if (t < 16) {
            wt = w[t];
        } else {
            __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
            __m512i s0 = LOGIC(ROR(w15, 7), ROR(w15, 18),
                               _mm512_srli_epi32(w15, 3), XOR3);
            __m512i s1 = LOGIC(ROR(w2, 17), ROR(w2, 19),
                               _mm512_srli_epi32(w2, 10), XOR3);

            wt = ADD(ADD(w[t & 15], s0), ADD(w[(t - 7) & 15], s1));
            w[t & 15] = wt;
        }
        t1 = ADD(ADD(h, LOGIC(ROR(e, 6), ROR(e, 11), ROR(e, 25), XOR3)),
                 ADD(LOGIC(e, f, g, CH),
                     ADD(wt, _mm512_set1_epi32((int)sha256_k[t]))));
        t2 = ADD(LOGIC(ROR(a, 2), ROR(a, 13), ROR(a, 22), XOR3),
                 LOGIC(a, b, c, MAJ));
        h = g;
        g = f;
        f = e;
        e = ADD(d, t1);
        d = c;
        c = b;
        b = a;
        a = ADD(t1, t2);
    }
    s[0] = ADD(s[0], a);
    s[1] = ADD(s[1], b);
    s[2] = ADD(s[2], c);
    s[3] = ADD(s[3], d);
    s[4] = ADD(s[4], e);
    s[5] = ADD(s[5], f);
    s[6] = ADD(s[6], g);
    s[7] = ADD(s[7], h);
}

TARGET void
sha256x16(const unsigned char *const msg[SHA256X16_LANES], size_t len,
          unsigned char out[SHA256X16_LANES][32])
{
    /* Big-endian words: reverse the bytes of each 32-bit word. */
    const __m512i bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b,
                                            0x04050607, 0x00010203);
    const uint64_t bits = (uint64_t)len * 8;
    __m512i s[8], w[16];
    uint32_t st[8][SHA256X16_LANES];
    size_t off;
    int i, l;

    for (i = 0; i < 8; i++)
        s[i] = _mm512_set1_epi32((int)sha256_iv[i]);
    for (off = 0; off < len; off += 64) {
        for (i = 0; i < 16; i++)
            w[i] = _mm512_shuffle_epi8(_mm512_loadu_si512(msg[i] + off),
                                       bswap);
        sha256x16_transpose(w);
        sha256x16_compress(s, w);
    }
    /* The padding: LEN is a multiple of 64, so it is a block of its own,
     * the same in every lane: 0x80, zeros, the length in bits. */
    for (i = 1; i < 14; i++)
        w[i] = _mm512_setzero_si512();
    w[0] = _mm512_set1_epi32((int)0x80000000u);
    w[14] = _mm512_set1_epi32((int)(uint32_t)(bits >> 32));
    w[15] = _mm512_set1_epi32((int)(uint32_t)bits);
    sha256x16_compress(s, w);
    for (i = 0; i < 8; i++)
        _mm512_storeu_si512(st[i], s[i]);
    for (l = 0; l < SHA256X16_LANES; l++)
        for (i = 0; i < 8; i++) {
            out[l][4 * i] = (unsigned char)(st[i][l] >> 24);
            out[l][4 * i + 1] = (unsigned char)(st[i][l] >> 16);
            out[l][4 * i + 2] = (unsigned char)(st[i][l] >> 8);
            out[l][4 * i + 3] = (unsigned char)st[i][l];
        }
}

#else /* not x86-64: never usable, never called */

bool
sha256x16_usable(void)
{
    return false;
}

void
sha256x16(const unsigned char *const msg[SHA256X16_LANES], size_t len,
          unsigned char out[SHA256X16_LANES][32])
{
    abort();
}

#endif
