/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * adopt: `poolfsctl adopt`, legacy instances moved into the disks pool
 * while their paths under the mount stay the same.  poolfs does the work
 * (it holds the directory underneath the mount): poolfsctl asks through
 * the mount (ctlproto.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <libvirt/virterror.h>

#include "ctl.h"
#include "ctlproto.h"
#include "names.h"
#include "land.h"
#include "pump.h"
#include "volfile.h"

/* "legacy", "pool", or NULL with errno (ENOTTY: not a poolfs mount). */
const char *
ctl_poolfs_backend(const char *path, char *buf, size_t len)
{
    struct poolfs_ioc_backend b;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int rc, err;

    if (fd < 0)
        return NULL;
    rc = ioctl(fd, POOLFS_IOC_BACKEND, &b);
    err = errno;
    close(fd);
    if (rc < 0) {
        errno = err;
        return NULL;
    }
    b.what[sizeof(b.what) - 1] = '\0';
    snprintf(buf, len, "%s", b.what);
    return buf;
}

/*
 * Is POOL (-c, --disks-pool) the disks pool the mount at MOUNT serves?
 * A copy into another would leave the files where the mount never shows
 * them, and the legacy files deleted.  0 if so (or a poolfs too old to
 * say), -1 said why.
 */
static int
adopt_same_pool(struct ctl *ctl, const char *mount, const char *uuid,
                virStoragePoolPtr pool)
{
    struct poolfs_ioc_pool p;
    char mine[VIR_UUID_STRING_BUFLEN];

    if (ctl_poolfs_pools(mount, &p) < 0) {
        if (errno == ENOTTY || errno == ENOSYS || errno == EINVAL)
            return 0;
        ctl_error("adopt %s: %s: %s", uuid, mount, strerror(errno));
        return -1;
    }
    if (virStoragePoolGetUUIDString(pool, mine) < 0) {
        ctl_error("adopt %s: cannot read the UUID of pool '%s' on %s: %s",
                  uuid, ctl->disks_pool, ctl->uri, ctl_virt_message());
        return -1;
    }
    if (strcmp(p.uuid, mine) != 0) {
        ctl_error("adopt %s: the mount at %s serves disks pool '%s' (UUID "
                  "%s), not pool '%s' of %s (UUID %s): give -c and "
                  "--disks-pool as the mount has them", uuid, mount, p.name,
                  p.uuid, ctl->disks_pool, ctl->uri, mine);
        return -1;
    }
    return 0;
}

int
ctl_poolfs_pools(const char *mount, struct poolfs_ioc_pool *p)
{
    int fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc, err;

    if (fd < 0)
        return -1;
    rc = ioctl(fd, POOLFS_IOC_POOL, p);
    err = errno;
    close(fd);
    if (rc < 0) {
        errno = err;
        return -1;
    }
    p->name[sizeof(p->name) - 1] = p->uuid[sizeof(p->uuid) - 1] = '\0';
    p->base[sizeof(p->base) - 1] = p->map[sizeof(p->map) - 1] = '\0';
    return 0;
}

static bool
adopt_skip_top(const char *name)
{
    return name[0] == '.' || strcmp(name, NAMES_BASE_DIR) == 0 ||
           strcmp(name, NAMES_UNMAPPED_DIR) == 0 ||
           strcmp(name, "locks") == 0 || strcmp(name, "snapshots") == 0;
}

/* Is a running domain using the instance's files? */
static int
adopt_check_idle(virConnectPtr conn, const char *dirpath, const char *uuid)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(conn, &doms,
                                     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    int i, busy = 0;
    /* The path as given, and as it resolves (a symlinked instances_path,
     * "//", a relative --mount): a domain names its files either way.  And
     * the instance's UUID, which Nova's domain carries as its own. */
    char *real = realpath(dirpath, NULL), *realdir = NULL;
    bool by_uuid = strlen(uuid) == 36 && uuid[8] == '-' && uuid[13] == '-';

    if (real && asprintf(&realdir, "%s/", real) < 0)
        realdir = NULL;
    free(real);
    if (n < 0) {
        ctl_error("adopt %s: cannot list the running domains to check that "
                  "none uses its files: %s", uuid, ctl_virt_message());
        free(realdir);
        return -1;
    }

    for (i = 0; i < n; i++) {
        char *xml = virDomainGetXMLDesc(doms[i], 0);

        if (!busy && xml && (strstr(xml, dirpath) ||
                             (realdir && strstr(xml, realdir)) ||
                             (by_uuid && strstr(xml, uuid)))) {
            ctl_error("adopt %s: running domain '%s' uses its files; adopting "
                      "by copy needs it shut down (by rename it would not)",
                      uuid, virDomainGetName(doms[i]));
            busy = 1;
        }
        free(xml);
        virDomainFree(doms[i]);
    }
    free(doms);
    free(realdir);
    return busy ? -1 : 0;
}

/*
 * An adoption by copy that was started and not finished leaves this
 * 0-byte volume in the disks pool: while it is there, a volume
 * {uuid}_{name} that differs from the legacy file is a copy of that file
 * from the run that was cut short (the guest may have written to the
 * legacy file since), not somebody else's volume, and is copied again.
 * It is made only once no volume of the instance differs from its file,
 * and goes before the first legacy file does: while it is there, every
 * legacy file is.  Its name holds the directory's name escaped as in a
 * volume name ('_' as %5F), so it never decodes to a path in the mount.
 */
static int
adopt_journal_name(const char *uuid, char *buf, size_t len)
{
    char dir[NAMES_VOL_MAX + 1];
    int n;

    if (names_encode(uuid, "", dir, sizeof(dir)) < 0)
        return -1;
    dir[strlen(dir) - 1] = '\0';        /* the separator */
    n = snprintf(buf, len, ".poolfs-adopt-%s", dir);
    return n < 0 || (size_t)n >= len || n > NAMES_VOL_MAX ? -1 : 0;
}

/* Is the journal of UUID there?  1 yes, 0 no, -1 (said why) cannot tell. */
static int
adopt_journal_find(virStoragePoolPtr pool, const char *uuid)
{
    char name[NAMES_VOL_MAX + 1];
    virStorageVolPtr v;

    if (adopt_journal_name(uuid, name, sizeof(name)) < 0) {
        ctl_error("adopt %s: the name is too long for a volume", uuid);
        return -1;
    }
    if ((v = virStorageVolLookupByName(pool, name))) {
        virStorageVolFree(v);
        return 1;
    }
    if (virGetLastError() &&
        virGetLastError()->code == VIR_ERR_NO_STORAGE_VOL)
        return 0;
    ctl_error("adopt %s: cannot look for volume '%s': %s", uuid, name,
              ctl_virt_message());
    return -1;
}

/* Make the journal of UUID; -1 (said why) if it cannot be. */
static int
adopt_journal_open(virStoragePoolPtr pool, const char *pool_name,
                   const char *uuid)
{
    char name[NAMES_VOL_MAX + 1];
    char *xml;
    virStorageVolPtr v;

    if (adopt_journal_name(uuid, name, sizeof(name)) < 0 ||
        !(xml = land_volume_xml(name))) {
        ctl_error("adopt %s: out of memory", uuid);
        return -1;
    }
    v = virStorageVolCreateXML(pool, xml, 0);
    free(xml);
    if (!v) {
        ctl_error("adopt %s: cannot make volume '%s' in pool '%s' (it marks "
                  "an adoption under way): %s", uuid, name, pool_name,
                  ctl_virt_message());
        return -1;
    }
    virStorageVolFree(v);
    return 0;
}

/* Delete the journal of UUID (if there); -1 (said why) if it stays. */
static int
adopt_journal_close(virStoragePoolPtr pool, const char *uuid)
{
    char name[NAMES_VOL_MAX + 1];
    virStorageVolPtr v;
    int rc = 0;

    if (adopt_journal_name(uuid, name, sizeof(name)) < 0 ||
        !(v = virStorageVolLookupByName(pool, name)))
        return 0;
    if (virStorageVolDelete(v, 0) < 0) {
        ctl_error("adopt %s: cannot delete volume '%s' (it marks the "
                  "adoption under way), so the legacy files stay: %s", uuid,
                  name, ctl_virt_message());
        rc = -1;
    }
    virStorageVolFree(v);
    return rc;
}

/* One file into volume VOL: .partial-VOL, then VOL, verified (land.h).
 * RESUMED: a run before was cut short (the journal is there).  CHECK_ONLY:
 * copy nothing, only refuse a volume VOL with other content.  1 if VOL is
 * there with the file's content already, 0 once copied (or, CHECK_ONLY,
 * nothing is in the way), -1 (said why). */
static int
adopt_copy_file(const struct land_pool *to, int fd, const char *vol,
                const char *uuid, const char *name, bool resumed,
                bool check_only)
{
    virStorageVolPtr fin;
    struct pump_result mine, theirs;
    char err[1024];
    bool again = false;
    struct xmlq_perms perms;
    struct stat st;
    int rc = -1;

    if (!land_unfinished(to, vol) &&
        (fin = virStorageVolLookupByName(to->pool, vol))) {
        /* There already: an interrupted run, or a real conflict. */
        if (pump_digest(PUMP_FILE(fd), NULL, NULL, &mine, err,
                        sizeof(err)) < 0 ||
            land_digest(to, fin, &theirs, err, sizeof(err)) < 0) {
            ctl_error("adopt %s/%s: %s", uuid, name, err);
        } else if (strcmp(mine.hex, theirs.hex) == 0) {
            rc = 1;
        } else if (!resumed) {
            ctl_error("adopt %s/%s: volume '%s' exists with other content: "
                      "not overwriting it", uuid, name, vol);
        } else if (virStorageVolDelete(fin, 0) < 0) {
            ctl_error("adopt %s/%s: volume '%s', an older copy of the file, "
                      "cannot be deleted to copy it again: %s", uuid, name,
                      vol, ctl_virt_message());
        } else {
            again = true;
        }
        virStorageVolFree(fin);
        if (!again)
            return rc;
        if (lseek(fd, 0, SEEK_SET) < 0) {
            ctl_error("adopt %s/%s: %s", uuid, name, strerror(errno));
            return -1;
        }
    }
    if (check_only)
        return 0;
    /* The volume keeps the file's mode and owner (nova's): through the
     * mount, with default_permissions, they are what nova is let do. */
    if (fstat(fd, &st) < 0) {
        ctl_error("adopt %s/%s: %s", uuid, name, strerror(errno));
        return -1;
    }
    perms = (struct xmlq_perms){ st.st_mode & 07777, st.st_uid, st.st_gid };
    if ((rc = land_volume(to, vol, &perms, PUMP_FILE(fd), true, NULL, NULL,
                          &mine, NULL, err, sizeof(err))) < 0) {
        ctl_error("adopt %s/%s: %s%s; the legacy file is untouched", uuid,
                  name, err, rc == LAND_PARTIAL_LEFT ? ": delete that "
                  "partial volume before running adopt again (else the "
                  "next run copies the file anew)" : "");
        return -1;
    }
    return 0;
}

/* Not "." or "..". */
static int
adopt_entry(const struct dirent *de)
{
    return strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
}

/* Does DIRPATH hold just the N entries of DE (sorted by alphasort)? */
static bool
adopt_same_entries(const char *dirpath, struct dirent **de, int n)
{
    struct dirent **now = NULL;
    int m = scandir(dirpath, &now, adopt_entry, alphasort), i;
    bool same = m == n;

    for (i = 0; i < m; i++) {
        if (same && strcmp(now[i]->d_name, de[i]->d_name) != 0)
            same = false;
        free(now[i]);
    }
    free(now);
    return same;
}

/*
 * Just before the legacy files go, each is set aside as ASIDE_PREFIX NAME
 * and the running domains are looked at once more: a domain starting from
 * then on finds no file (and fails to start) instead of writing to one
 * about to be deleted, and one that started before is seen.  A run cut
 * short leaves them set aside: the next one puts them back first.
 */
#define ADOPT_ASIDE ".poolfs-adopting-"
#define ADOPT_ASIDE_BUF (sizeof(ADOPT_ASIDE) + NAME_MAX)

static int
adopt_aside_name(const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, ADOPT_ASIDE "%s", name);

    return n < 0 || (size_t)n >= len || n > NAME_MAX ? -1 : 0;
}

/* Put back the files a run cut short set aside in DIRPATH.  0, or -1
 * (said why). */
static int
adopt_put_back(const char *dirpath, const char *uuid)
{
    DIR *d = opendir(dirpath);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        ctl_error("adopt %s: %s: %s", uuid, dirpath, strerror(errno));
        return -1;
    }
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name + strlen(ADOPT_ASIDE);

        if (strncmp(de->d_name, ADOPT_ASIDE, strlen(ADOPT_ASIDE)) != 0 ||
            !*name)
            continue;
        if (volfile_rename_noreplace(dirfd(d), de->d_name, dirfd(d),
                                     name) < 0) {
            ctl_error("adopt %s: cannot put %s%s back as %s, set aside by "
                      "a run cut short: %s", uuid, dirpath, de->d_name,
                      name, errno == EEXIST ? "both are there; keep the "
                      "right one under that name" : strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0 && errno) {
        ctl_error("adopt %s: %s: %s", uuid, dirpath, strerror(errno));
        rc = -1;
    }
    closedir(d);
    return rc;
}

/* Put the first N files of DE, set aside in DFD, back.  0, or -1 with
 * each one that stays aside named. */
static int
adopt_put_aside_back(int dfd, const char *uuid, struct dirent **de, int n)
{
    char aside[ADOPT_ASIDE_BUF];
    int i, rc = 0;

    for (i = 0; i < n; i++) {
        if (adopt_aside_name(de[i]->d_name, aside, sizeof(aside)) < 0 ||
            volfile_rename_noreplace(dfd, aside, dfd, de[i]->d_name) == 0)
            continue;
        ctl_error("adopt %s: %s stays set aside as %s: %s; run adopt again "
                  "to put it back", uuid, de[i]->d_name, aside,
                  strerror(errno));
        rc = -1;
    }
    return rc;
}

/* Set the N files of DE in DFD aside (all, or none: -1, said why). */
static int
adopt_set_aside(int dfd, const char *uuid, struct dirent **de, int n)
{
    char aside[ADOPT_ASIDE_BUF];
    int i, err = 0;

    for (i = 0; i < n; i++) {
        if (adopt_aside_name(de[i]->d_name, aside, sizeof(aside)) < 0)
            err = ENAMETOOLONG;
        else if (volfile_rename_noreplace(dfd, de[i]->d_name, dfd,
                                          aside) < 0)
            err = errno;
        if (err) {
            ctl_error("adopt %s: cannot set %s aside before it goes: %s; "
                      "the legacy files stay", uuid, de[i]->d_name,
                      strerror(err));
            break;
        }
    }
    if (!err)
        return 0;
    adopt_put_aside_back(dfd, uuid, de, i);
    return -1;
}

/* Set aside, are the N files of DE still as ST says, and alone in DFD?
 * (A writer that came and went since the last look, a file made since.) */
static bool
adopt_aside_unchanged(int dfd, const char *uuid, struct dirent **de,
                      const struct stat *st, int n)
{
    char aside[ADOPT_ASIDE_BUF];
    struct stat now;
    struct dirent *e;
    DIR *d;
    int i, m = 0, dup;

    for (i = 0; i < n; i++) {
        adopt_aside_name(de[i]->d_name, aside, sizeof(aside));
        if (fstatat(dfd, aside, &now, AT_SYMLINK_NOFOLLOW) < 0 ||
            now.st_ino != st[i].st_ino || now.st_size != st[i].st_size ||
            now.st_mtim.tv_sec != st[i].st_mtim.tv_sec ||
            now.st_mtim.tv_nsec != st[i].st_mtim.tv_nsec) {
            ctl_error("adopt %s: %s changed while it was copied: the legacy "
                      "files stay; run adopt again", uuid, de[i]->d_name);
            return false;
        }
    }
    if ((dup = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        !(d = fdopendir(dup))) {
        ctl_error("adopt %s: cannot list the instance directory again: %s",
                  uuid, strerror(errno));
        if (dup >= 0)
            close(dup);
        return false;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            m++;
    closedir(d);
    if (m != n) {
        ctl_error("adopt %s: files were added to the instance directory "
                  "while it was copied: the legacy files stay; run adopt "
                  "again", uuid);
        return false;
    }
    return true;
}

/*
 * Adoption across filesystems: each file streamed into a volume and
 * verified, in name order; only when all are, and none changed meanwhile,
 * the legacy files go.  Nothing is copied if one of them is something a
 * volume cannot hold.
 */
static int
adopt_copy(struct ctl *ctl, const char *mount, const char *uuid, int *files)
{
    char dirpath[PATH_MAX], path[PATH_MAX + NAME_MAX + 1];
    char vol[NAMES_VOL_MAX + 1];
    virConnectPtr conn = NULL;
    virStoragePoolPtr pool = NULL;
    struct dirent **de = NULL;
    struct stat *st = NULL;
    bool *same = NULL;      /* its volume is there with its content */
    size_t mlen = strlen(mount);
    int rc = -1, n = -1, i, fd, resumed, pass, dfd = -1;

    /* As domains name the files: no doubled slash. */
    while (mlen > 1 && mount[mlen - 1] == '/')
        mlen--;
    snprintf(dirpath, sizeof(dirpath), "%.*s/%s/", (int)mlen, mount, uuid);
    if (!(conn = ctl_connect(ctl->uri)))
        return -1;
    if (!(pool = virStoragePoolLookupByName(conn, ctl->disks_pool))) {
        ctl_error("storage pool '%s' not found on %s: %s", ctl->disks_pool,
                  ctl->uri, ctl_virt_message());
        goto out;
    }
    if (adopt_same_pool(ctl, mount, uuid, pool) < 0)
        goto out;
    /* (Files a run cut short set aside: adopt_one() put them back.) */
    if (adopt_check_idle(conn, dirpath, uuid) < 0)
        goto out;
    if ((n = scandir(dirpath, &de, adopt_entry, alphasort)) < 0) {
        ctl_error("adopt %s: %s: %s", uuid, dirpath, strerror(errno));
        goto out;
    }
    if (n > 0 && (!(st = calloc(n, sizeof(*st))) ||
                  !(same = calloc(n, sizeof(*same))))) {
        ctl_error("adopt %s: out of memory", uuid);
        goto out;
    }
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s%s", dirpath, de[i]->d_name);
        if (lstat(path, &st[i]) < 0 || !S_ISREG(st[i].st_mode) ||
            names_encode(uuid, de[i]->d_name, vol, sizeof(vol)) < 0) {
            ctl_error("adopt %s: %s is not a regular file a volume can hold; "
                      "nothing was copied", uuid, de[i]->d_name);
            goto out;
        }
    }
    if ((resumed = adopt_journal_find(pool, uuid)) < 0)
        goto out;
    /* Without a journal, a volume of the instance's that differs from its
     * file is somebody else's: refused before the journal exists (pass 0),
     * then the copies (pass 1). */
    for (pass = resumed ? 1 : 0; pass < 2; pass++) {
        if (pass == 1 && !resumed &&
            adopt_journal_open(pool, ctl->disks_pool, uuid) < 0)
            goto out;
        *files = 0;
        for (i = 0; i < n; i++) {
            if (same[i]) {          /* found so by pass 0: not read twice */
                (*files)++;
                continue;
            }
            snprintf(path, sizeof(path), "%s%s", dirpath, de[i]->d_name);
            names_encode(uuid, de[i]->d_name, vol, sizeof(vol));
            /* O_NONBLOCK: a FIFO put in its place must not block. */
            if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
                           O_NONBLOCK)) < 0 || fstat(fd, &st[i]) < 0) {
                ctl_error("adopt %s: %s: %s", uuid, path, strerror(errno));
                if (fd >= 0)
                    close(fd);
                goto out;
            }
            if (!S_ISREG(st[i].st_mode)) {
                ctl_error("adopt %s: %s is not a regular file any more",
                          uuid, path);
                close(fd);
                goto out;
            }
            rc = adopt_copy_file(&(struct land_pool){ .conn = conn,
                                                      .uri = ctl->uri,
                                                      .pool = pool,
                                                      .name = ctl->disks_pool },
                                 fd, vol, uuid, de[i]->d_name, resumed,
                                 pass == 0);
            close(fd);
            if (rc < 0)
                goto out;
            same[i] = rc == 1;
            rc = -1;
            (*files)++;
        }
    }
    /* A domain started meanwhile would have written past the copies. */
    if (adopt_check_idle(conn, dirpath, uuid) < 0)
        goto out;
    /* Only as they were copied: a file changed or made since keeps them
     * all where they are (the next run copies it again). */
    for (i = 0; i < n; i++) {
        struct stat now;

        snprintf(path, sizeof(path), "%s%s", dirpath, de[i]->d_name);
        if (lstat(path, &now) < 0 || now.st_size != st[i].st_size ||
            now.st_mtim.tv_sec != st[i].st_mtim.tv_sec ||
            now.st_mtim.tv_nsec != st[i].st_mtim.tv_nsec ||
            now.st_ino != st[i].st_ino) {
            ctl_error("adopt %s: %s changed while it was copied: the legacy "
                      "files stay; run adopt again", uuid, path);
            goto out;
        }
    }
    if (!adopt_same_entries(dirpath, de, n)) {
        ctl_error("adopt %s: files were added to %s while it was copied: "
                  "the legacy files stay; run adopt again", uuid, dirpath);
        goto out;
    }
    if ((dfd = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ctl_error("adopt %s: %s: %s", uuid, dirpath, strerror(errno));
        goto out;
    }
    if (adopt_set_aside(dfd, uuid, de, n) < 0)
        goto out;
    if (adopt_check_idle(conn, dirpath, uuid) < 0 ||
        !adopt_aside_unchanged(dfd, uuid, de, st, n)) {
        adopt_put_aside_back(dfd, uuid, de, n);
        goto out;
    }
    /* All verified: the instance directory marker, then the legacy files
     * go, and a pool refresh tells poolfs mounts (an event). */
    if (names_encode(uuid, "", vol, sizeof(vol)) == 0) {
        char *mxml = NULL;
        virStorageVolPtr m = virStorageVolLookupByName(pool, vol);
        struct stat ds;
        struct xmlq_perms dp, *dpp = NULL;

        /* The directory's mode and owner: the tree shows the marker's. */
        if (stat(dirpath, &ds) == 0) {
            dp = (struct xmlq_perms){ ds.st_mode & 07777, ds.st_uid,
                                      ds.st_gid };
            dpp = &dp;
        }
        if (!m && (mxml = land_volume_xml_as(vol, dpp)))
            m = virStorageVolCreateXML(pool, mxml, 0);
        free(mxml);
        if (m)
            virStorageVolFree(m);
    }
    /* From here on the volumes hold the data, not the legacy files: the
     * journal goes first (a rerun must never again prefer a legacy file
     * that something made anew). */
    if (adopt_journal_close(pool, uuid) < 0) {
        adopt_put_aside_back(dfd, uuid, de, n);
        goto out;
    }
    for (i = 0; i < n; i++) {
        char aside[ADOPT_ASIDE_BUF];

        adopt_aside_name(de[i]->d_name, aside, sizeof(aside));
        if (unlinkat(dfd, aside, 0) < 0 && errno != ENOENT) {
            ctl_error("adopt %s: copied and verified, but %s%s stays "
                      "(set aside as %s): %s", uuid, dirpath,
                      de[i]->d_name, aside, strerror(errno));
            goto out;
        }
    }
    if (rmdir(dirpath) < 0 && errno != ENOENT) {
        ctl_error("adopt %s: %s stays: %s", uuid, dirpath, strerror(errno));
        goto out;
    }
    virStoragePoolRefresh(pool, 0);
    rc = 0;
 out:
    if (dfd >= 0)
        close(dfd);
    for (i = 0; i < n; i++)
        free(de[i]);
    free(de);
    free(st);
    free(same);
    if (pool)
        virStoragePoolFree(pool);
    virConnectClose(conn);
    return rc;
}

/* Instances in the JSON array so far. */
static unsigned adopt_reported;

static int
adopt_one(struct ctl *ctl, const char *mount, const char *uuid, bool dry_run)
{
    char path[PATH_MAX], kind[16];
    const char *backend;
    struct dirent *de;
    DIR *dir;
    int files = 0;
    const char *status;
    const char *how = "rename";

    snprintf(path, sizeof(path), "%s/%s", mount, uuid);
    if (!(backend = ctl_poolfs_backend(path, kind, sizeof(kind)))) {
        ctl_error("adopt %s: %s: %s", uuid, path,
                  errno == ENOTTY || errno == ENOSYS || errno == EINVAL ?
                  "not a poolfs mount (see --mount)" : strerror(errno));
        return -1;
    }
    if (strcmp(backend, "legacy") == 0 && (dir = opendir(path))) {
        while ((de = readdir(dir)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                files++;
        closedir(dir);
    }
    if (strcmp(backend, "pool") == 0) {
        status = "pooled";
    } else if (dry_run) {
        status = "planned";
    } else if (snprintf(path, sizeof(path), "%s/%s/", mount, uuid) < 0 ||
               adopt_put_back(path, uuid) < 0) {
        /* A copy cut short set files aside: a rename must not make
         * volumes of those names. */
        return -1;
    } else if (setxattr(path, POOLFS_XATTR_ADOPT, "", 0, 0) < 0) {
        if (errno != EXDEV) {
            ctl_error("adopt %s: %s (see poolfs's log)", uuid,
                      strerror(errno));
            return -1;
        }
        /* Another filesystem: a verified copy instead. */
        if (adopt_copy(ctl, mount, uuid, &files) < 0)
            return -1;
        how = "verified copy";
        status = "adopted";
    } else {
        status = "adopted";
    }
    if (ctl->json) {
        printf("%s{\"uuid\": ", adopt_reported++ ? ", " : "");
        ctl_json_string(stdout, uuid);
        printf(", \"status\": \"%s\", \"files\": %d, \"how\": \"%s\"}",
               status, files, dry_run ? "planned" : how);
    } else if (strcmp(status, "pooled") == 0) {
        printf("%s: already in pool '%s'\n", uuid, ctl->disks_pool);
    } else {
        printf("%s %s: %d file%s %s volumes %s_* of pool '%s' (by %s)\n",
               dry_run ? "would adopt" : "adopted", uuid, files,
               files == 1 ? "" : "s", dry_run ? "become" : "are now", uuid,
               ctl->disks_pool, dry_run ? "rename, or a verified copy "
               "across filesystems" : how);
    }
    return 0;
}

static void
adopt_usage(void)
{
    printf("usage: poolfsctl adopt [--mount DIR] [--dry-run] (--all | "
           "UUID...)\n"
           "\n"
           "Move legacy instances (their files under the poolfs mount's\n"
           "underlying directory) into volumes {uuid}_{name} of the disks\n"
           "pool; their paths under the mount stay the same.  Where the two\n"
           "share a filesystem it is a rename: instant, and QEMU may keep\n"
           "the files open.  Interrupted, running it again finishes.\n");
}

int
adopt_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "mount", required_argument, NULL, 'M' },
        { "all", no_argument, NULL, 'a' },
        { "dry-run", no_argument, NULL, 'n' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    const char *mount = "/var/lib/nova/instances";
    bool all = false, dry_run = false;
    int c, i, failed = 0;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'M': mount = optarg; break;
        case 'a': all = true; break;
        case 'n': dry_run = true; break;
        case 'h': adopt_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (all == (optind < argc)) {
        ctl_error("adopt: give instance UUIDs or --all; see poolfsctl adopt "
                  "--help");
        return CTL_USAGE;
    }
    if (ctl->json) {
        printf("{\"mount\": ");
        ctl_json_string(stdout, mount);
        printf(", \"instances\": [");
    }
    if (all) {
        DIR *dir = opendir(mount);
        struct dirent *de;

        if (!dir) {
            ctl_error("adopt: %s: %s", mount, strerror(errno));
            failed++;
        }
        while (dir && (de = readdir(dir))) {
            char path[PATH_MAX], kind[16];
            struct stat st;

            snprintf(path, sizeof(path), "%s/%s", mount, de->d_name);
            if (adopt_skip_top(de->d_name) || stat(path, &st) < 0 ||
                !S_ISDIR(st.st_mode) || !ctl_poolfs_backend(path, kind, sizeof(kind)) ||
                strcmp(kind, "legacy") != 0)
                continue;
            if (adopt_one(ctl, mount, de->d_name, dry_run) < 0)
                failed++;
        }
        if (dir)
            closedir(dir);
    }
    for (i = optind; i < argc; i++) {
        if (names_check_component(argv[i]) < 0 || adopt_skip_top(argv[i])) {
            ctl_error("adopt: '%s' is not an instance directory name",
                      argv[i]);
            failed++;
            continue;
        }
        if (adopt_one(ctl, mount, argv[i], dry_run) < 0)
            failed++;
    }
    if (ctl->json) {
        printf("], ");
        ctl_json_ok(!failed);
    }
    return failed ? CTL_FAILED : CTL_OK;
}
