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
    bool wrapped;           /* sent as a qcow2 image (PUMP_WRAP_QCOW2) */
    char hex[2 * DIGEST_LEN + 1];
};

/*
 * One end of a copy: a volume through a sparse libvirt stream (CONN and
 * VOL), or, with CONN NULL, a local file open as FD (a volume's own file,
 * see volfile.h: no libvirtd in the data path).
 */
struct pump_end {
    virConnectPtr conn;
    virStorageVolPtr vol;
    int fd;
    /* A stream source copied into a file (or only digested): how many
     * ranges of it may be downloaded at once (lanes.c); 0 or 1 is one
     * stream from start to end. */
    int parallel;
    /* With PARALLEL: the URI of CONN, so that each range has a connection
     * of its own (else they share CONN). */
    const char *uri;
};
#define PUMP_MAX_PARALLEL 16
#define PUMP_STREAM(c, v) (&(const struct pump_end){ .conn = (c), .vol = (v), .fd = -1 })
#define PUMP_FILE(f) (&(const struct pump_end){ .fd = (f) })

/* pump_copy() flags */
enum {
    /* A stream DST: the first PUMP_HEAD bytes are kept in RES->head and
     * sent as a hole, so that the destination cannot probe a format from
     * them yet (see land.c); pump_put_head() writes them later. */
    PUMP_HOLD_HEAD = 1 << 0,
    /* A file DST: every piece is read back from the file once written and
     * compared with what was read, byte for byte, holes included (proven
     * holes with SEEK_DATA, not read).  RES->hex is then the digest of
     * what the destination holds too. */
    PUMP_VERIFY = 1 << 1,
    /* A stream DST: SRC, a file, goes wrapped as a qcow2 image (qwrap.h),
     * its data clusters and metadata only; the header is left a hole, and
     * put in RES->head for pump_put_head().  SRC's length must be a
     * multiple of 512 (QWRAP_FITS).  RES->data counts the metadata too. */
    PUMP_WRAP_QCOW2 = 1 << 2,
};

/*
 * Copy SRC into DST, which must be empty (a new volume or file), or only
 * read and hash it with DST NULL.  Holes
 * and all-zero chunks of SRC become holes in DST.  A file DST is written
 * whole (RES->head_len stays 0) and synced.  Reading the source overlaps
 * with writing the destination.  Returns 0, or -1 with a message in ERR
 * naming what failed.
 */
int pump_copy(const struct pump_end *src, const struct pump_end *dst,
              unsigned flags, pump_progress_fn progress, void *opaque,
              struct pump_result *res, char *err, size_t errlen);

/* The digest of SRC's content (holes read as zeros, but not read). */
int pump_digest(const struct pump_end *src, pump_progress_fn progress,
                void *opaque, struct pump_result *res, char *err,
                size_t errlen);

/*
 * Dead peers: a network that goes silent in the middle of a copy must end
 * its stream with an error, not a wait for ever (pool/tcpkeep.h says why
 * TCP does it and not libvirt's keepalive).  INTERVAL seconds of silence,
 * then COUNT unanswered probes; INTERVAL 0 leaves the sockets as libvirt
 * made them.
 */
void pump_keepalive_setup(int interval, unsigned count);
/* Start tcpkeep's watchdog with it: call before the first connect, which
 * it bounds too (once the options are parsed). */
void pump_keepalive_watch(void);
/* Apply it to the TCP sockets open now: call after each connection. */
void pump_keepalive(void);
/* virConnectOpen, then pump_keepalive, one thread at a time. */
virConnectPtr pump_open(const char *uri);

/*
 * A cap on the data that goes through streams, BYTES_PER_SEC for all
 * copies and ranges at once (--bandwidth; 0, the default, is none): the
 * rate of a copy, each byte counted once (a stream into a stream, each on
 * its own link, moves both at that rate).  Holes cost nothing; a copy
 * between two files here is not held back.
 */
void pump_bandwidth_setup(uint64_t bytes_per_sec);

/*
 * --timeout: when a copy has moved no data for SECONDS (a libvirtd that
 * hangs while its host answers, or whose storage stalls), shut down every
 * connection (tcpkeep_shut_all), so that the copy fails, saying why.  The
 * final sync of a file here is not timed (closing connections would not
 * hurry this host's disk).
 * Starts a watching thread; 0 is no limit.  0, or -1 if the thread cannot
 * start.
 */
int pump_stall_setup(unsigned seconds);
/* Has --timeout given up (every connection shut down)? */
bool pump_gave_up(void);

/* Write RES->head at the start of DST. */
int pump_put_head(virConnectPtr dconn, virStorageVolPtr dst,
                  const struct pump_result *res, char *err, size_t errlen);

#endif /* POOLFS_PUMP_H */
