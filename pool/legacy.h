/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * legacy: the instances directory underneath the mount.  poolfs may be
 * mounted over a directory that still holds legacy instances (their image
 * files are plain files there); the directory was opened before mounting
 * and everything in it stays reachable through this module, so legacy
 * instances keep working unchanged while new ones go to the pool.
 */
#ifndef POOLFS_LEGACY_H
#define POOLFS_LEGACY_H

#include <stdbool.h>
#include <sys/stat.h>

#include "pool.h"

/* Relative path REL (no leading '/') exists underneath. */
bool legacy_exists(int under, const char *rel);

int legacy_getattr(int under, const char *rel, struct stat *st);
/*
 * May UID:GID open a file of ST with FLAGS' access (O_TRUNC wants write)?
 * For an O_CREAT open that found the file there after all (a legacy file
 * or a volume): the kernel, which took it for a create, checked no
 * permission.  Supplementary groups come from the group database (the
 * caller's own list is not known here).  0 or -EACCES.
 */
int legacy_may_open(const struct stat *st, int flags, uid_t uid, gid_t gid);
/* A symbolic link of the legacy tree, NUL-terminated (cut to SIZE). */
int legacy_readlink(int under, const char *rel, char *buf, size_t size);
int legacy_readdir(int under, const char *rel, pool_fill_fn fill, void *arg,
                   bool (*skip)(void *sarg, const char *name), void *sarg);
int legacy_mkdir(int under, const char *rel, mode_t mode, uid_t uid,
                 gid_t gid);
int legacy_rmdir(int under, const char *rel);
int legacy_unlink(int under, const char *rel);
int legacy_rename(int under, const char *from, const char *to,
                  unsigned int flags);
int legacy_truncate(int under, const char *rel, off_t size);
int legacy_chmod(int under, const char *rel, mode_t mode);
int legacy_chown(int under, const char *rel, uid_t uid, gid_t gid);
int legacy_utimens(int under, const char *rel, const struct timespec tv[2]);
/* open(2) of REL; the fd, or a negative errno. */
int legacy_open(int under, const char *rel, int flags, mode_t mode,
                uid_t uid, gid_t gid);

#endif /* POOLFS_LEGACY_H */
