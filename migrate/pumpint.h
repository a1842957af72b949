/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The insides of pump.c that lanes.c shares.  Not for other users. */
#ifndef POOLFS_PUMPINT_H
#define POOLFS_PUMPINT_H

#include <stdint.h>
#include <sys/types.h>
#include <libvirt/virterror.h>

#include "pump.h"

#define PUMP_SLOT_SIZE (256 * 1024)     /* a libvirt stream packet at most */

/*
 * ERR = the message, then ": " and libvirt's last error of this thread as
 * it was before the message's arguments were evaluated: a name taken with
 * virStorageVolGetName() there would reset it, as every libvirt call does.
 */
#define pump_fail(err, errlen, ...) do {                                  \
        virErrorPtr pump_saved_ = virSaveLastError();                     \
        pump_fail_with(pump_saved_, err, errlen, __VA_ARGS__);            \
    } while (0)
/* After a stream call failed: if connection C is no longer alive, say so
 * at the end of ERR (what ended it: the other end, or poolfsctl's -k/-K). */
void pump_note_lost(virConnectPtr c, char *err, size_t errlen);
/* The same with libvirt's error E (freed here; NULL for none). */
void pump_fail_with(virErrorPtr e, char *err, size_t errlen,
                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Data moved: --timeout's clock starts again. */
void pump_moved(void);

/* BYTES of data went through a stream: wait as long as the cap wants. */
void pump_throttle(uint64_t bytes);

/* Write LEN bytes at P to FD at OFF, all-zero chunks left as holes; the
 * bytes written and left out are added to *DATA and *ZEROS. */
int pump_write_file(int fd, const char *p, size_t len, off_t off,
                    uint64_t *data, uint64_t *zeros);

/*
 * Does FD hold at OFF what was read: the LEN bytes at BUF, or with BUF NULL
 * a hole of LEN (the data SEEK_DATA finds there read back as zeros)?
 * SCRATCH holds PUMP_SLOT_SIZE bytes.  0 when it does, 1 with *AT set to the first
 * byte that differs when not, -1 with errno on a read error.
 */
int pump_check_file(int fd, char *scratch, const char *buf, long long len,
                    off_t off, off_t *at);
/* ERR for a pump_check_file() result RC other than 0. */
void pump_check_failed(int rc, off_t at, char *err, size_t errlen);

/*
 * Read stream source SRC with SRC->parallel downloads of its ranges at once
 * into file FD (emptied first), or only digest it with FD -1; see lanes.c.
 * 0 when done (FD not yet synced), -1 with ERR set, 1 when the volume is
 * too small for more than one range (nothing done: copy it in one stream).
 */
int pump_lanes(const struct pump_end *src, int fd, unsigned flags,
               pump_progress_fn progress, void *opaque,
               struct pump_result *res, char *err, size_t errlen);

#endif /* POOLFS_PUMPINT_H */
