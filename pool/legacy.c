/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "legacy.h"

/* "" is the directory itself. */
static const char *
legacy_rel(const char *rel)
{
    return *rel ? rel : ".";
}

bool
legacy_exists(int under, const char *rel)
{
    struct stat st;

    return under >= 0 &&
           fstatat(under, legacy_rel(rel), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
legacy_getattr(int under, const char *rel, struct stat *st)
{
    return fstatat(under, legacy_rel(rel), st, AT_SYMLINK_NOFOLLOW) < 0 ?
           -errno : 0;
}

/* Is UID (primary group GID) in group G, its supplementary groups from
 * the group database included? */
static bool
legacy_in_group(uid_t uid, gid_t gid, gid_t g)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    gid_t groups[256];
    int n = 256, i;

    if (g == gid)
        return true;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res ||
        getgrouplist(pw.pw_name, gid, groups, &n) < 0)
        return false;
    for (i = 0; i < n; i++)
        if (groups[i] == g)
            return true;
    return false;
}

int
legacy_may_open(const struct stat *st, int flags, uid_t uid, gid_t gid)
{
    mode_t want = 0, have;

    if (uid == 0)
        return 0;
    if ((flags & O_ACCMODE) != O_WRONLY)
        want |= 4;
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
        want |= 2;
    have = st->st_uid == uid ? (st->st_mode >> 6) & 7 :
           legacy_in_group(uid, gid, st->st_gid) ? (st->st_mode >> 3) & 7 :
           st->st_mode & 7;
    return (have & want) == want ? 0 : -EACCES;
}

int
legacy_readlink(int under, const char *rel, char *buf, size_t size)
{
    ssize_t n;

    if (size == 0)
        return -EINVAL;
    if ((n = readlinkat(under, legacy_rel(rel), buf, size - 1)) < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

int
legacy_readdir(int under, const char *rel, pool_fill_fn fill, void *arg,
               bool (*skip)(void *sarg, const char *name), void *sarg)
{
    int fd = openat(under, legacy_rel(rel), O_RDONLY | O_DIRECTORY |
                    O_CLOEXEC);
    struct dirent *de;
    DIR *dir;

    if (fd < 0)
        return -errno;
    if (!(dir = fdopendir(fd))) {
        close(fd);
        return -errno;
    }
    while ((de = readdir(dir))) {
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (skip && skip(sarg, de->d_name)))
            continue;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (fill(arg, de->d_name, &st))
            break;
    }
    closedir(dir);
    return 0;
}

int
legacy_mkdir(int under, const char *rel, mode_t mode, uid_t uid, gid_t gid)
{
    if (mkdirat(under, rel, mode) < 0)
        return -errno;
    if (fchownat(under, rel, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return 0;
}

int
legacy_rmdir(int under, const char *rel)
{
    return unlinkat(under, rel, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int
legacy_unlink(int under, const char *rel)
{
    return unlinkat(under, rel, 0) < 0 ? -errno : 0;
}

int
legacy_rename(int under, const char *from, const char *to, unsigned int flags)
{
    return renameat2(under, from, under, to, flags) < 0 ? -errno : 0;
}

int
legacy_truncate(int under, const char *rel, off_t size)
{
    int fd = openat(under, rel, O_WRONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (ftruncate(fd, size) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int
legacy_chmod(int under, const char *rel, mode_t mode)
{
    return fchmodat(under, legacy_rel(rel), mode & 07777, 0) < 0 ? -errno : 0;
}

int
legacy_chown(int under, const char *rel, uid_t uid, gid_t gid)
{
    return fchownat(under, legacy_rel(rel), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ?
           -errno : 0;
}

int
legacy_utimens(int under, const char *rel, const struct timespec tv[2])
{
    return utimensat(under, legacy_rel(rel), tv, AT_SYMLINK_NOFOLLOW) < 0 ?
           -errno : 0;
}

int
legacy_open(int under, const char *rel, int flags, mode_t mode, uid_t uid,
            gid_t gid)
{
    /* As io_local: no O_DIRECT, and write-only opened read-write for the
     * kernel's writeback cache. */
    int oflags = flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_SYNC |
                          O_DSYNC | O_NOATIME);
    bool made = false;
    int fd;

    if ((oflags & O_ACCMODE) == O_WRONLY)
        oflags = (oflags & ~O_ACCMODE) | O_RDWR;
    /* Made here, it is the caller's; a file that was there (made
     * underneath since the lookup) keeps its owner. */
    if ((oflags & O_CREAT) && !(oflags & O_EXCL)) {
        fd = openat(under, rel, oflags | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0)
            made = true;
        else if (errno == EEXIST &&
                 (fd = openat(under, rel, (oflags & ~(O_CREAT | O_TRUNC)) |
                              O_CLOEXEC)) >= 0) {
            struct stat st;
            int rc = fstat(fd, &st) < 0 ? -errno :
                     legacy_may_open(&st, flags, uid, gid);

            if (rc == 0 && (oflags & O_TRUNC) && ftruncate(fd, 0) < 0)
                rc = -errno;
            if (rc < 0) {
                close(fd);
                return rc;
            }
        }
    } else {
        fd = openat(under, rel, oflags | O_CLOEXEC, mode);
        made = fd >= 0 && (oflags & O_CREAT);
    }
    if (fd < 0)
        return -errno;
    if (made && fchown(fd, uid, gid) < 0) {
        int err = -errno;

        close(fd);
        return err;
    }
    return fd;
}
