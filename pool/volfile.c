/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libxml/uri.h>

#include "volfile.h"
#include "xmlq.h"

bool
volfile_uri_is_local(const char *uri)
{
    xmlURIPtr u = xmlParseURI(uri);
    bool local;

    if (!u)
        return false;
    local = !u->server || !*u->server || strcmp(u->server, "localhost") == 0 ||
            strcmp(u->server, "127.0.0.1") == 0 || strcmp(u->server, "::1") == 0;
    xmlFreeURI(u);
    return local;
}

/* The pool's target directory, if it keeps its volumes as files there. */
static char *
volfile_pool_dir(virStoragePoolPtr pool)
{
    char *xml = virStoragePoolGetXMLDesc(pool, 0);
    xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;
    char *type = doc ? xmlq_string(doc, "string(/pool/@type)") : NULL;
    char *dir = NULL;

    if (type && (strcmp(type, "dir") == 0 || strcmp(type, "fs") == 0 ||
                 strcmp(type, "netfs") == 0))
        dir = xmlq_string(doc, "string(/pool/target/path)");
    free(type);
    xmlFreeDoc(doc);
    free(xml);
    return dir;
}

/* "1700000000.123456789" (libvirt's <ctime>) as a timespec. */
static bool
volfile_parse_time(const char *s, struct timespec *ts)
{
    char *end;
    long nsec = 0;
    int digits = 0;

    errno = 0;
    ts->tv_sec = strtoll(s, &end, 10);
    if (errno || end == s)
        return false;
    if (*end == '.') {
        for (end++; *end >= '0' && *end <= '9' && digits < 9; end++, digits++)
            nsec = nsec * 10 + (*end - '0');
        for (; digits < 9; digits++)
            nsec *= 10;
    }
    ts->tv_nsec = nsec;
    return true;
}

int
volfile_open(const char *uri, virStoragePoolPtr pool, virStorageVolPtr vol,
             int flags)
{
    char *dir = NULL, *xml = NULL, *path = NULL, *ctime = NULL;
    xmlDocPtr doc = NULL;
    char real[PATH_MAX], realdir[PATH_MAX];
    struct timespec want;
    struct stat st;
    size_t n;
    int fd = -1, err = ENOTSUP;

    if (!volfile_uri_is_local(uri) || !(dir = volfile_pool_dir(pool)) ||
        !(xml = virStorageVolGetXMLDesc(vol, 0)) || !(doc = xmlq_read(xml)) ||
        !(path = xmlq_string(doc, "string(/volume/target/path)")) ||
        !(ctime = xmlq_string(doc, "string(/volume/target/timestamps/ctime)")) ||
        !volfile_parse_time(ctime, &want))
        goto out;
    /* In the pool's directory, not through a link out of it. */
    if (!realpath(dir, realdir) || !realpath(path, real))
        goto out;
    n = strlen(realdir);
    if (strncmp(real, realdir, n) != 0 || real[n] != '/' ||
        strchr(real + n + 1, '/'))
        goto out;
    if ((fd = open(real, flags | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        err = errno;
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_ctim.tv_sec != want.tv_sec ||
        st.st_ctim.tv_nsec != want.tv_nsec) {
        close(fd);
        fd = -1;
        goto out;
    }
    err = 0;
 out:
    free(ctime);
    free(path);
    xmlFreeDoc(doc);
    free(xml);
    free(dir);
    errno = err;
    return fd;
}

int
volfile_rename_noreplace(int fromdir, const char *from, int todir,
                         const char *to)
{
    struct stat st;

    if (renameat2(fromdir, from, todir, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
    if (fstatat(todir, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        errno = EEXIST;
        return -1;
    }
    if (errno != ENOENT)
        return -1;
    return renameat(fromdir, from, todir, to);
}

int
volfile_rename(virStoragePoolPtr pool, const char *from, const char *to,
               int fd)
{
    char *dir = volfile_pool_dir(pool);
    struct stat mine, there;
    int dfd, rc = -1, err = ENOTSUP;

    if (!dir)
        goto out;
    if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err = errno;
        goto out;
    }
    if (fd >= 0 && (fstat(fd, &mine) < 0 ||
                    fstatat(dfd, from, &there, AT_SYMLINK_NOFOLLOW) < 0 ||
                    mine.st_dev != there.st_dev || mine.st_ino != there.st_ino))
        err = ESTALE;
    else if (volfile_rename_noreplace(dfd, from, dfd, to) < 0)
        err = errno;
    else if (virStoragePoolRefresh(pool, 0) < 0)
        err = EIO;
    else
        rc = 0;
    close(dfd);
 out:
    free(dir);
    if (rc < 0)
        errno = err;
    return rc;
}
