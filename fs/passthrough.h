/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * passthrough: the kernel's FUSE passthrough (Linux 6.9) with libfuse 3.14,
 * which does not know it.  A file opened in passthrough mode is read,
 * written and mapped by the kernel straight from the volume's file: no
 * request reaches poolfs for its data.
 */
#ifndef POOLFS_PASSTHROUGH_H
#define POOLFS_PASSTHROUGH_H

#include <stdbool.h>

struct fuse_session;
struct pt_backing;

/* Put poolfs's reads and writes of /dev/fuse between libfuse and the
 * kernel for SE (mounted, not yet serving); VERBOSE (-d) says on stderr
 * when passthrough is on.  0, or -errno. */
int pt_install(struct fuse_session *se, bool verbose);

/* In init(): whether the kernel offered passthrough in its INIT, and
 * poolfs may use it (CAP_SYS_ADMIN in the initial user namespace). */
bool pt_offered(void);

/* In init(): answer INIT with passthrough on (the kernel takes it only
 * without the writeback cache, which the caller must leave off). */
void pt_enable(void);

/* After init(): INIT was answered with passthrough on. */
bool pt_enabled(void);

/*
 * In open() or create(), with passthrough enabled: decide how the reply
 * this thread is about to send opens FD (the volume's file).  The kernel
 * refuses an open that is not in passthrough mode while the file is open
 * in it, and passthrough while it is open otherwise, so the first open of
 * a file decides for all that overlap it: passthrough for a buffered open,
 * poolfs's own path for an O_DIRECT one (DIRECT), or for a file the kernel
 * will not take as a backing file.  *PASSTHROUGH says which.  Returns the
 * registration to give back to pt_close() when the handle is released, or
 * NULL with errno set.
 */
struct pt_backing *pt_open(int fd, bool direct, bool *passthrough);

/* The handle that held B (opened with PASSTHROUGH as pt_open said) was
 * released.  NULL is ignored. */
void pt_close(struct pt_backing *b, bool passthrough);

#endif /* POOLFS_PASSTHROUGH_H */
