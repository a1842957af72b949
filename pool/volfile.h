/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * volfile: a libvirt volume as the file it is on this host.  When the
 * connection is to this host's libvirtd and the pool keeps its volumes as
 * files in its target directory (dir, fs, netfs), the data can be read and
 * written there directly instead of through a stream of libvirtd's; this
 * is the test that it may, made so that it errs towards the stream.
 */
#ifndef POOLFS_VOLFILE_H
#define POOLFS_VOLFILE_H

#include <stdbool.h>
#include <libvirt/libvirt.h>

/* Does URI name this host?  Only then do pool target paths mean anything. */
bool volfile_uri_is_local(const char *uri);

/*
 * Open the file of VOL (of POOL, on a connection to URI) with FLAGS
 * (O_RDONLY, O_WRONLY...), if it is a regular file in POOL's target
 * directory here and is the very file libvirtd describes (same path, same
 * change time to the nanosecond: a process in another mount namespace than
 * libvirtd's sees other files under the same paths).  Returns the fd, or
 * -1 with errno set (ENOTSUP: not a local file pool) when the stream must
 * be used.
 */
int volfile_open(const char *uri, virStoragePoolPtr pool,
                 virStorageVolPtr vol, int flags);

/*
 * Rename volume FROM to TO (which must not exist) in POOL's target
 * directory, then refresh the pool so libvirt sees it.  Only for a pool
 * volfile_open() worked on.  FD, if not -1, is open on FROM's file: if
 * FROM is another file now (deleted and made again meanwhile), ESTALE.
 * 0, or -1 with errno set.
 */
int volfile_rename(virStoragePoolPtr pool, const char *from, const char *to,
                   int fd);

/*
 * renameat2(RENAME_NOREPLACE), also where the filesystem has no such flag
 * (NFS and CephFS say EINVAL): there a rename after a look that TO is not
 * there, which a creator racing with it could slip between.  0, or -1
 * with errno (EEXIST when TO exists).
 */
int volfile_rename_noreplace(int fromdir, const char *from, int todir,
                             const char *to);

#endif /* POOLFS_VOLFILE_H */
