/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sha256x16: SHA-256 of sixteen messages at once, one in each 32-bit lane
 * of the AVX-512 registers.
 *
 * On these machines SHA-256 with the SHA extensions runs at about 1 GB/s
 * a core: sha256rnds2 is throughput-bound, so interleaving two or four
 * messages gains 10 to 20 % only.  Sixteen lanes of plain AVX-512 integer
 * arithmetic (native rotates, three-input logic for Ch, Maj and the
 * sigmas) hash about twice as fast.  The content digest (digest.h) hashes
 * many blocks of equal length that do not depend on one another, which is
 * what this needs.
 */
#ifndef POOLFS_SHA256X16_H
#define POOLFS_SHA256X16_H

#include <stdbool.h>
#include <stddef.h>

#define SHA256X16_LANES 16

/* Whether this CPU and kernel can run sha256x16() (AVX-512 F and BW, and
 * the kernel saves the ZMM registers). */
bool sha256x16_usable(void);

/* OUT[i] = SHA-256 of the LEN bytes at MSG[i], for i < 16.  LEN must be a
 * multiple of 64.  The messages may alias (a lane with nothing to do can
 * repeat another's).  Only if sha256x16_usable(). */
void sha256x16(const unsigned char *const msg[SHA256X16_LANES], size_t len,
               unsigned char out[SHA256X16_LANES][32]);

#endif /* POOLFS_SHA256X16_H */
