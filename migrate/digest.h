/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * digest: the content digest poolfsctl verifies migrations with.
 *
 * A volume's bytes (holes read as zeros) are cut into 1 MiB blocks; the
 * digest is the SHA-256 of the concatenated SHA-256s of the blocks (the
 * last one may be short).  It depends on the content alone, not on where
 * the holes are, and an all-zero block costs no hashing: its SHA-256 is a
 * constant, so an 8 GiB image that is mostly holes is verified at the cost
 * of its data.
 */
#ifndef POOLFS_DIGEST_H
#define POOLFS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_BLOCK (1024 * 1024)
#define DIGEST_LEN 32

struct digest;

struct digest *digest_new(void);
void digest_free(struct digest *d);
/* Feed the next LEN bytes of the volume: DATA, or zeros if DATA is NULL. */
int digest_feed(struct digest *d, const void *data, uint64_t len);
/* Finish; writes DIGEST_LEN bytes to OUT and 2*DIGEST_LEN+1 hex to HEX. */
int digest_final(struct digest *d, unsigned char *out, char *hex);

#endif /* POOLFS_DIGEST_H */
