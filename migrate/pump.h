/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pump: one sparse download stream into one sparse upload stream.  Holes in
 * the source are not sent, and allocated blocks that are all zeros are sent
 * as holes too.  The content digest (digest.h) is computed on the way.
 */
#ifndef POOLFS_PUMP_H
#define POOLFS_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libvirt/libvirt.h>

#include "digest.h"

/* Called now and then with the bytes of the volume done so far. */
typedef void (*pump_progress_fn)(void *opaque, uint64_t done);

#define PUMP_HEAD (64 * 1024)

struct pump_result {
    uint64_t length;        /* bytes of the volume (holes included) */
    /* With pump_copy(HOLD_HEAD): the first bytes, not sent. */
    char head[PUMP_HEAD];
    size_t head_len;
    uint64_t data;          /* bytes sent as data */
    uint64_t zeros;         /* allocated zeros sent as holes */
    char hex[2 * DIGEST_LEN + 1];
};

/*
 * Copy volume SRC into the empty volume DST (another connection, or the
 * same).  With HOLD_HEAD, the first PUMP_HEAD bytes are kept in RES->head
 * and sent as a hole, so that the destination cannot probe a format from
 * them yet (see cold.c); pump_put_head() writes them later.  Returns 0, or
 * -1 with a message in ERR naming what failed.
 */
int pump_copy(virConnectPtr sconn, virStorageVolPtr src,
              virConnectPtr dconn, virStorageVolPtr dst, bool hold_head,
              pump_progress_fn progress, void *opaque,
              struct pump_result *res, char *err, size_t errlen);

/*
 * Upload the file open as FD into the empty volume DST: its holes (SEEK_HOLE)
 * and all-zero chunks as holes, HOLD_HEAD as for pump_copy().
 */
int pump_upload_fd(int fd, virConnectPtr dconn, virStorageVolPtr dst,
                   bool hold_head, pump_progress_fn progress, void *opaque,
                   struct pump_result *res, char *err, size_t errlen);

/* The digest of the file open as FD. */
int pump_digest_fd(int fd, struct pump_result *res, char *err, size_t errlen);

/* Write RES->head at the start of DST. */
int pump_put_head(virConnectPtr dconn, virStorageVolPtr dst,
                  const struct pump_result *res, char *err, size_t errlen);

/* The digest of VOL's content, read with a sparse download. */
int pump_digest(virConnectPtr conn, virStorageVolPtr vol,
                pump_progress_fn progress, void *opaque,
                struct pump_result *res, char *err, size_t errlen);

#endif /* POOLFS_PUMP_H */
