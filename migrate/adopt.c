/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * adopt: `poolfsctl adopt`, legacy instances moved into the disks pool
 * while their paths under the mount stay the same.  poolfs does the work
 * (it holds the directory underneath the mount): poolfsctl asks through
 * the extended attribute user.poolfs.adopt on the instance directory.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "ctl.h"
#include "names.h"

/* "legacy", "pool", or NULL (not a poolfs mount, or no such path). */
static const char *
adopt_backend(const char *path, char *buf, size_t len)
{
    ssize_t n = getxattr(path, "user.poolfs.backend", buf, len - 1);

    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

static bool
adopt_skip_top(const char *name)
{
    return name[0] == '.' || strcmp(name, NAMES_BASE_DIR) == 0 ||
           strcmp(name, NAMES_UNMAPPED_DIR) == 0 ||
           strcmp(name, "locks") == 0 || strcmp(name, "snapshots") == 0;
}

static int
adopt_one(struct ctl *ctl, const char *mount, const char *uuid, bool dry_run,
          bool first)
{
    char path[PATH_MAX], kind[16];
    const char *backend;
    struct dirent *de;
    DIR *dir;
    int files = 0;
    const char *status;

    snprintf(path, sizeof(path), "%s/%s", mount, uuid);
    if (!(backend = adopt_backend(path, kind, sizeof(kind)))) {
        ctl_error("adopt %s: %s: %s", uuid, path,
                  errno == ENODATA || errno == ENOTSUP ?
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
    } else if (setxattr(path, "user.poolfs.adopt", "", 0, 0) < 0) {
        if (errno == EXDEV)
            ctl_error("adopt %s: the instance directory and pool '%s' are on "
                      "different filesystems; adopting by copy is not "
                      "available yet: give the pool a directory on the same "
                      "filesystem", uuid, ctl->disks_pool);
        else
            ctl_error("adopt %s: %s (see poolfs's log)", uuid,
                      strerror(errno));
        return -1;
    } else {
        status = "adopted";
    }
    if (ctl->json) {
        printf("%s{\"uuid\": ", first ? "" : ", ");
        ctl_json_string(stdout, uuid);
        printf(", \"status\": \"%s\", \"files\": %d}", status, files);
    } else if (strcmp(status, "pooled") == 0) {
        printf("%s: already in pool '%s'\n", uuid, ctl->disks_pool);
    } else {
        printf("%s %s: %d file%s %s volumes %s_* of pool '%s' (by "
               "rename)\n", dry_run ? "would adopt" : "adopted", uuid, files,
               files == 1 ? "" : "s", dry_run ? "become" : "are now", uuid,
               ctl->disks_pool);
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
        { "connect", required_argument, NULL, 'c' },
        { "disks-pool", required_argument, NULL, 'D' },
        { "base-pool", required_argument, NULL, 'B' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *mount = "/var/lib/nova/instances";
    bool all = false, dry_run = false;
    int c, i, failed = 0, n = 0;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'M': mount = optarg; break;
        case 'a': all = true; break;
        case 'n': dry_run = true; break;
        case 'c': ctl->uri = optarg; break;
        case 'D': ctl->disks_pool = optarg; break;
        case 'B': ctl->base_pool = optarg; break;
        case 'j': ctl->json = true; break;
        case 'h': adopt_usage(); return CTL_OK;
        default: return CTL_USAGE;
        }
    }
    if (all == (optind < argc)) {
        ctl_error("adopt: give instance UUIDs or --all; see poolfsctl adopt "
                  "--help");
        return CTL_USAGE;
    }
    if (ctl->json)
        printf("{\"mount\": \"%s\", \"instances\": [", mount);
    if (all) {
        DIR *dir = opendir(mount);
        struct dirent *de;

        if (!dir) {
            ctl_error("adopt: %s: %s", mount, strerror(errno));
            return CTL_FAILED;
        }
        while ((de = readdir(dir))) {
            char path[PATH_MAX], kind[16];
            struct stat st;

            snprintf(path, sizeof(path), "%s/%s", mount, de->d_name);
            if (adopt_skip_top(de->d_name) || stat(path, &st) < 0 ||
                !S_ISDIR(st.st_mode) || !adopt_backend(path, kind, sizeof(kind)) ||
                strcmp(kind, "legacy") != 0)
                continue;
            if (adopt_one(ctl, mount, de->d_name, dry_run, n++ == 0) < 0)
                failed++;
        }
        closedir(dir);
    }
    for (i = optind; i < argc; i++) {
        if (names_check_component(argv[i]) < 0 || adopt_skip_top(argv[i])) {
            ctl_error("adopt: '%s' is not an instance directory name",
                      argv[i]);
            failed++;
            continue;
        }
        if (adopt_one(ctl, mount, argv[i], dry_run, n++ == 0) < 0)
            failed++;
    }
    if (ctl->json)
        printf("], \"ok\": %s}\n", failed ? "false" : "true");
    return failed ? CTL_FAILED : CTL_OK;
}
