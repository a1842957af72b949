/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sparse: sending bytes on a sparse libvirt stream, with runs of all-zero
 * chunks sent as holes.  Used by the stream data backend and by the
 * migration pump.
 */
#ifndef POOLFS_SPARSE_H
#define POOLFS_SPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libvirt/libvirt.h>

#define SPARSE_CHUNK (64 * 1024)

/* Send all LEN bytes at P (virStreamSend may take less at a time). */
int sparse_send_data(virStreamPtr st, const char *p, size_t len);

/*
 * Send LEN bytes at P on sparse stream ST, runs of all-zero SPARSE_CHUNKs
 * as holes.  Only for a destination whose bytes there read as zeros
 * already (a hole does not overwrite).  Adds to *DATA and *ZEROS what went
 * as data and as holes.  0, or -1 with the libvirt error set.
 */
int sparse_send(virStreamPtr st, const char *p, size_t len,
                uint64_t *data, uint64_t *zeros);

bool sparse_is_zero(const char *p, size_t len);

#endif /* POOLFS_SPARSE_H */
