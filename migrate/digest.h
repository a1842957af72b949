/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * digest: the content digest poolfsctl verifies migrations with.
 *
 * A volume's bytes (holes read as zeros) are cut into 16 KiB blocks; the
 * digest is the SHA-256 of the concatenated SHA-256s of the blocks (the
 * last one may be short).  It depends on the content alone, not on where
 * the holes are, and an all-zero block costs no hashing: its SHA-256 is a
 * constant, so an 8 GiB image that is mostly holes is verified at the cost
 * of its data.  The blocks do not depend on one another, so whole ones are
 * hashed sixteen at a time where the CPU has AVX-512 (sha256x16.h): twice
 * the speed of one SHA-256 with the SHA extensions.  Blocks are small so
 * that one stream packet (256 KiB) holds sixteen of them.
 */
#ifndef POOLFS_DIGEST_H
#define POOLFS_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_BLOCK (16 * 1024)
#define DIGEST_LEN 32

struct digest;

struct digest *digest_new(void);
void digest_free(struct digest *d);
/* Feed the next LEN bytes of the volume: DATA, or zeros if DATA is NULL. */
int digest_feed(struct digest *d, const void *data, uint64_t len);
/* Finish; writes DIGEST_LEN bytes to OUT and 2*DIGEST_LEN+1 hex to HEX.
 * -1 when any hashing on the way failed (the digest is then wrong). */
int digest_final(struct digest *d, unsigned char *out, char *hex);
/* Whether any hashing into D has failed so far. */
bool digest_broken(const struct digest *d);
/* Whether whole blocks are hashed sixteen at a time (AVX-512; never when
 * the environment has POOLFS_DIGEST_SIMD=0).  ON: 0 turns it off, 1 on
 * where the CPU can, -1 leaves it.  The digest is the same either way. */
bool digest_simd(int on);

/*
 * Pieces hashed apart (the lanes of a parallel copy).  A piece starts on a
 * block boundary; digest_feed() on a part keeps the hash of each block it
 * completes in OUT (at most MAX of them) instead of hashing it on.  The
 * piece that ends the volume ends with digest_part_end(), which closes a
 * short last block.  digest_feed_hashes() then takes the parts' block
 * hashes, in the volume's order, into the digest of the whole, which comes
 * out the same as if the bytes had been fed to it.
 */
struct digest *digest_new_part(void);
void digest_part_reset(struct digest *d, unsigned char (*out)[DIGEST_LEN],
                       size_t max);
void digest_part_end(struct digest *d);
/* The block hashes kept since digest_part_reset(). */
size_t digest_part_count(const struct digest *d);
void digest_feed_hashes(struct digest *d, const unsigned char (*h)[DIGEST_LEN],
                        size_t n);

#endif /* POOLFS_DIGEST_H */
