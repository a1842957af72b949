/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qwrap: a volume's bytes, in order, wrapped as a qcow2 image on the fly,
 * so that only its allocated clusters are sent.
 *
 * Why: a push lands in ".partial-NAME" and libvirt makes NAME from it with
 * virStorageVolCreateXMLFrom (there is no rename).  From a raw copy libvirt
 * reads every byte of the capacity, holes too (8 GiB read for 1.5 GiB of
 * data); from a qcow2 one it runs "qemu-img convert -f qcow2 -O raw",
 * which reads only the clusters the image has.  The wrapped image's guest
 * content is the volume's bytes exactly, whatever they are (a raw disk or
 * a qcow2 container), so NAME is byte for byte the source.
 *
 * The layout is written in one pass, in the order a stream sends it:
 *
 *   cluster 0          the header: a hole until the end, then qwrap_finish()
 *                      gives it (libvirt probes the format when an upload
 *                      ends, and must see qcow2 only once it is whole)
 *   data clusters      in guest order; an all-zero cluster is left out
 *   L2 tables          each sent as soon as the next 512 MiB of the guest
 *                      begins to have data
 *   L1 table, refcount table, refcount blocks   at the end
 *
 * Version 2 (compat 0.10: what every qemu-img reads), 64 KiB clusters, no
 * backing file, every cluster's refcount 1 (and QCOW_OFLAG_COPIED set).
 */
#ifndef POOLFS_QWRAP_H
#define POOLFS_QWRAP_H

#include <stddef.h>
#include <stdint.h>

#define QWRAP_CLUSTER (64 * 1024)
#define QWRAP_HEADER 72

/* Send LEN bytes at BUF next, or a hole of LEN with BUF NULL; 0 or -1. */
typedef int (*qwrap_out_fn)(void *opaque, const char *buf, size_t len);

struct qwrap;

/* QEMU counts an image's size in 512-byte sectors: only a volume whose
 * size is a multiple of them (and not 0) can be wrapped. */
#define QWRAP_FITS(size) ((size) > 0 && (size) % 512 == 0)

/* For a volume of SIZE bytes; NULL when out of memory, or with errno
 * EINVAL when SIZE does not fit. */
struct qwrap *qwrap_new(uint64_t size, qwrap_out_fn out, void *opaque);
void qwrap_free(struct qwrap *w);

/* The next LEN bytes of the volume: BUF, or a hole with BUF NULL. */
int qwrap_feed(struct qwrap *w, const char *buf, uint64_t len);

/*
 * After the last byte (holes up to SIZE are implied): send the rest, and
 * put the header, QWRAP_HEADER bytes for offset 0, in HEAD.  0, or -1 when
 * OUT failed or more than SIZE bytes were fed.
 */
int qwrap_finish(struct qwrap *w, char head[QWRAP_HEADER]);

/* Bytes sent as data so far: clusters of the volume and metadata. */
uint64_t qwrap_sent(const struct qwrap *w);

#endif /* POOLFS_QWRAP_H */
