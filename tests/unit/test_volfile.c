/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * volfile_rename_noreplace (pool/volfile.c) where the filesystem has no
 * RENAME_NOREPLACE (NFS, CephFS: EINVAL): it checks that the name is free,
 * then renames; it never replaces a file.  renameat2 is wrapped
 * (-Wl,--wrap=renameat2) to answer as those filesystems do, on real files
 * in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "volfile.h"

static int einval;          /* renameat2 with flags fails with EINVAL */
static int calls;

int __real_renameat2(int, const char *, int, const char *, unsigned int);
int __wrap_renameat2(int, const char *, int, const char *, unsigned int);

int
__wrap_renameat2(int fromdir, const char *from, int todir, const char *to,
                 unsigned int flags)
{
    calls++;
    if (einval && flags) {
        errno = EINVAL;
        return -1;
    }
    return __real_renameat2(fromdir, from, todir, to, flags);
}

static void
put(int dfd, const char *name, const char *text)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(name);
        exit(2);
    }
    close(fd);
}

/* NAME's content, or "" if it is not there. */
static const char *
get(int dfd, const char *name)
{
    static char buf[64];
    int fd = openat(dfd, name, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
run(int dfd, const char *how)
{
    int rc;

    put(dfd, "a", "A");
    put(dfd, "b", "B");
    calls = 0;
    errno = 0;
    rc = volfile_rename_noreplace(dfd, "a", dfd, "b");
    CHECK(rc == -1 && errno == EEXIST, "%s: onto a file: rc %d errno %d",
          how, rc, errno);
    CHECK(strcmp(get(dfd, "a"), "A") == 0 && strcmp(get(dfd, "b"), "B") == 0,
          "%s: a file was replaced or lost", how);
    CHECK(calls == 1, "%s: renameat2 called %d times", how, calls);

    rc = volfile_rename_noreplace(dfd, "a", dfd, "c");
    CHECK(rc == 0, "%s: onto a free name: rc %d errno %d", how, rc, errno);
    CHECK(strcmp(get(dfd, "c"), "A") == 0 && faccessat(dfd, "a", F_OK, 0) < 0,
          "%s: not renamed", how);

    errno = 0;
    rc = volfile_rename_noreplace(dfd, "gone", dfd, "d");
    CHECK(rc == -1 && errno == ENOENT, "%s: a missing source: rc %d errno %d",
          how, rc, errno);
    unlinkat(dfd, "b", 0);
    unlinkat(dfd, "c", 0);
}

int
main(void)
{
    char dir[] = "/tmp/poolfs-test-volfile-XXXXXX";
    int dfd;

    if (!mkdtemp(dir) || (dfd = open(dir, O_DIRECTORY | O_RDONLY)) < 0) {
        perror("temporary directory");
        return 2;
    }
    einval = 0;
    run(dfd, "RENAME_NOREPLACE");
    einval = 1;
    run(dfd, "EINVAL fallback");
    close(dfd);
    rmdir(dir);
    return check_done();
}
