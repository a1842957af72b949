/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cache: `poolfsctl cache`, the image cache as libvirt sees it.  Which base
 * images are in use is read from the disks pool's volume XML (each qcow2's
 * backingStore), not by running qemu-img on every disk: the nova-spec's
 * image-cache simplification.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libvirt/virterror.h>

#include "ctl.h"
#include "names.h"
#include "volxml.h"

struct cache_base {
    char *name;
    uint64_t capacity;
    uint64_t allocation;
    time_t last_used;           /* mtime: libvirt's own probes bump atime */
    char **users;
    size_t nusers;
};

static void
cache_add_user(struct cache_base *b, const char *vol)
{
    char **u = realloc(b->users, (b->nusers + 1) * sizeof(*u));

    if (u && (u[b->nusers] = strdup(vol))) {
        b->users = u;
        b->nusers++;
    } else if (u) {
        b->users = u;
    }
}

static int
cache_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cache_base *)a)->name,
                  ((const struct cache_base *)b)->name);
}

/* What the base images' users are found against. */
struct cache_scan {
    struct cache_base *bases;
    size_t nb;
    const char *base_dir;       /* the base pool's target path, or NULL */
    const struct stat *base_st; /* that directory here, or NULL */
};

/* BACKING (a path, or NULL) names one of the base images: WHO uses it. */
static void
cache_count(struct cache_scan *cs, const char *backing, const char *who)
{
    char *base = backing ? volxml_base_name_in(backing, cs->base_dir, NULL)
                         : NULL;
    const char *slash = backing ? strrchr(backing, '/') : NULL;
    size_t j;

    /* Through a link, or another spelling of the base pool's directory:
     * the same directory by device and inode (one user too many is safe,
     * one too few deletes an image in use). */
    if (!base && slash && slash != backing && slash[1] && cs->base_st) {
        char *dir = strndup(backing, slash - backing);
        struct stat st;

        if (dir && stat(dir, &st) == 0 && st.st_dev == cs->base_st->st_dev &&
            st.st_ino == cs->base_st->st_ino)
            base = strdup(slash + 1);
        free(dir);
    }

    for (j = 0; base && j < cs->nb; j++)
        if (strcmp(cs->bases[j].name, base) == 0)
            cache_add_user(&cs->bases[j], who);
    free(base);
}

static int cache_scan_dir(struct cache_scan *cs, const char *path,
                          const char *label, const char *what);

/*
 * The inactive pools: libvirt lists no volumes of theirs, yet a domain
 * started later uses them.  A dir pool's files are read where they lie
 * (their qcow2 headers); any other (a logical pool, an fs or netfs pool
 * not mounted, rbd) cannot be, and its name goes in *UNREAD (a
 * ", "-separated list, malloc'ed) for the caller to warn of and to remove
 * nothing.  0, or -1 (said why).
 */
static int
cache_inactive_users(virConnectPtr conn, struct cache_scan *cs, char **unread)
{
    virStoragePoolPtr *pools = NULL;
    int np, p, rc = 0;

    if ((np = virConnectListAllStoragePools(conn, &pools,
                                            VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE)) < 0) {
        ctl_error("cannot list the inactive storage pools: %s",
                  ctl_virt_message());
        return -1;
    }
    for (p = 0; p < np; p++) {
        const char *name = virStoragePoolGetName(pools[p]);
        char *xml = rc < 0 ? NULL : virStoragePoolGetXMLDesc(pools[p], 0);
        xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;
        char *type = doc ? xmlq_string(doc, "string(/pool/@type)") : NULL;
        char *dir = doc ? xmlq_string(doc, "string(/pool/target/path)") : NULL;
        struct stat st;

        if (rc < 0) {
            /* an earlier error stands */
        } else if (type && dir && strcmp(type, "dir") == 0 &&
                   stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            char label[300];

            snprintf(label, sizeof(label), "%s/", name);
            rc = cache_scan_dir(cs, dir, label, " (pool inactive)");
        } else {
            char *u = NULL;

            if (asprintf(&u, "%s%s'%s'", *unread ? *unread : "",
                         *unread ? ", " : "", name) < 0) {
                ctl_error("out of memory");
                rc = -1;
            } else {
                free(*unread);
                *unread = u;
            }
        }
        free(type);
        free(dir);
        xmlFreeDoc(doc);
        free(xml);
        virStoragePoolFree(pools[p]);
    }
    free(pools);
    return rc;
}

/* The volumes of every active pool backed by one of the base images:
 * their users.  A copy being landed (".partial-NAME", its head held back,
 * so libvirt sees no backing store yet) may use any: the first one's
 * "POOL/NAME" in *LANDING (malloc'ed).  0, or -1 (an error printed) when a
 * pool or a volume cannot be read. */
static int
cache_find_users(virConnectPtr conn, struct cache_scan *cs, char **landing)
{
    virStoragePoolPtr *pools = NULL;
    int np, p, rc = 0;

    if ((np = virConnectListAllStoragePools(conn, &pools,
                                            VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)) < 0) {
        ctl_error("cannot list the storage pools: %s", ctl_virt_message());
        return -1;
    }
    for (p = 0; p < np; p++) {
        virStorageVolPtr *vols = NULL;
        int n = rc < 0 ? 0 : virStoragePoolListAllVolumes(pools[p], &vols, 0);
        int i;

        if (n < 0) {
            char why[512];

            ctl_virt_keep(why, sizeof(why));
            ctl_error("cannot list pool '%s' to find the users of the base "
                      "images: %s", virStoragePoolGetName(pools[p]), why);
            rc = -1;
        }
        for (i = 0; i < n; i++) {
            char *xml = rc < 0 ? NULL : virStorageVolGetXMLDesc(vols[i], 0);
            struct volxml vx;

            if (rc < 0) {
                /* an earlier error stands */
            } else if (!xml && virGetLastError() &&
                       virGetLastError()->code == VIR_ERR_NO_STORAGE_VOL) {
                /* deleted meanwhile: uses nothing */
            } else if (!xml || volxml_parse(xml, &vx) < 0) {
                char why[512];
                const char *vname;

                if (xml)
                    snprintf(why, sizeof(why), "its XML does not parse");
                else
                    ctl_virt_keep(why, sizeof(why));
                vname = virStorageVolGetName(vols[i]);
                ctl_error("cannot read volume '%s' of pool '%s' to find the "
                          "users of the base images: %s", vname,
                          virStoragePoolGetName(pools[p]), why);
                rc = -1;
            } else {
                const char *vname = virStorageVolGetName(vols[i]);

                if (!*landing && vname && strncmp(vname, ".partial-", 9) == 0 &&
                    asprintf(landing, "%s/%s",
                             virStoragePoolGetName(pools[p]), vname) < 0)
                    *landing = NULL;
                cache_count(cs, vx.backing, virStorageVolGetName(vols[i]));
                volxml_clear(&vx);
            }
            free(xml);
            virStorageVolFree(vols[i]);
        }
        free(vols);
        virStoragePoolFree(pools[p]);
    }
    free(pools);
    return rc;
}

/* The backing file the qcow2 file FD names into *BACKING (malloc'ed;
 * NULL if none, or not a qcow2).  0, or -1 with errno when it cannot be
 * read: a file not read must not make an image look unused. */
static int
cache_qcow2_backing(int fd, char **backing)
{
    unsigned char h[20];
    uint64_t off;
    uint32_t len;
    ssize_t n;
    char *name;

    *backing = NULL;
    if ((n = pread(fd, h, sizeof(h), 0)) < 0)
        return -1;
    if (n != (ssize_t)sizeof(h) || memcmp(h, "QFI\xfb", 4) != 0)
        return 0;
    memcpy(&off, h + 8, 8);
    memcpy(&len, h + 16, 4);
    off = be64toh(off);
    len = be32toh(len);
    if (!off || !len || len > 4096)
        return 0;
    if (!(name = calloc(1, len + 1)))
        return -1;
    if ((n = pread(fd, name, len, off)) != (ssize_t)len) {
        free(name);
        if (n >= 0)
            errno = EIO;    /* the header names more than the file has */
        return -1;
    }
    *backing = name;
    return 0;
}

/*
 * The regular files of directory PATH whose qcow2 header names one of the
 * base images: users "LABELFILEWHAT".  0, or -1 (said why) when PATH or a
 * file in it cannot be read: a file not read must not make an image look
 * unused.  One that goes meanwhile uses nothing.
 */
static int
cache_scan_dir(struct cache_scan *cs, const char *path, const char *label,
               const char *what)
{
    struct dirent *f;
    DIR *d;
    int rc = 0;

    if (!(d = opendir(path))) {
        if (errno == ENOENT)
            return 0;
        ctl_error("cannot read %s to find the users of the base images: %s",
                  path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (errno = 0, f = readdir(d))) {
        char file[PATH_MAX + NAME_MAX + 2], *backing, who[PATH_MAX];
        struct stat st;
        int fd;

        if (f->d_type != DT_REG && f->d_type != DT_LNK &&
            f->d_type != DT_UNKNOWN)
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, f->d_name);
        /* A link is followed (counting a user too many is safe);
         * O_NONBLOCK: a FIFO must not block.  Only regular files. */
        if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
            if (errno == ENOENT)
                continue;       /* gone meanwhile, or a dangling link */
            ctl_error("cannot read %s to find the users of the base "
                      "images: %s", file, strerror(errno));
            rc = -1;
            break;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        if (cache_qcow2_backing(fd, &backing) < 0) {
            ctl_error("cannot read %s to find the users of the base "
                      "images: %s", file, strerror(errno));
            close(fd);
            rc = -1;
            break;
        }
        close(fd);
        snprintf(who, sizeof(who), "%s%s%s", label, f->d_name, what);
        cache_count(cs, backing, who);
        free(backing);
    }
    if (rc == 0 && errno) {
        ctl_error("cannot read %s to find the users of the base images: %s",
                  path, strerror(errno));
        rc = -1;
    }
    closedir(d);
    return rc;
}

/*
 * Legacy instances under the poolfs mount MOUNT (files poolfs serves from
 * underneath, not volumes) whose qcow2 files are backed by one of the base
 * images: users too, "UUID/NAME (legacy)", which libvirt knows nothing of.
 * With poolfs not mounted there (stopped), MOUNT is the legacy tree
 * itself: every directory in it counts.  An absent MOUNT has none.  0, or
 * -1 (said why) when the mount or a legacy file cannot be read: a dead
 * mount must not make every image look unused.
 */
static int
cache_legacy_users(const char *mount, struct cache_scan *cs)
{
    DIR *top;
    struct dirent *de;
    char kind[16], path[PATH_MAX], label[NAME_MAX + 2];
    int rc = 0;

    if (!(top = opendir(mount))) {
        if (errno == ENOENT)
            return 0;
        ctl_error("cannot read the mount %s to find legacy instances using "
                  "the base images: %s", mount, strerror(errno));
        return -1;
    }
    while (rc == 0 && (errno = 0, de = readdir(top))) {
        if (de->d_name[0] == '.' ||
            (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
            continue;
        if (strcmp(de->d_name, NAMES_BASE_DIR) == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", mount, de->d_name);
        if (ctl_poolfs_backend(path, kind, sizeof(kind))) {
            if (strcmp(kind, "legacy") != 0)
                continue;           /* the pool's: libvirt knows */
        } else if (errno == ENOENT) {
            continue;               /* gone meanwhile */
        } else if (errno != ENOTTY && errno != ENOSYS && errno != EINVAL) {
            ctl_error("cannot tell whether %s is a legacy instance: %s",
                      path, strerror(errno));
            rc = -1;
            break;
        }                           /* else no poolfs there: all legacy */
        snprintf(label, sizeof(label), "%s/", de->d_name);
        rc = cache_scan_dir(cs, path, label, " (legacy)");
    }
    if (rc == 0 && errno) {
        ctl_error("cannot read the mount %s: %s", mount, strerror(errno));
        rc = -1;
    }
    closedir(top);
    return rc;
}

/* Every base image of the base pool, with the volumes backed by it. */
static int
cache_load(virConnectPtr conn, struct ctl *ctl, const char *mount,
           struct cache_base **basesp, size_t *np, char **landing,
           char **unread)
{
    struct cache_scan cs = { 0 };
    struct stat base_st;
    char *bxml = NULL;
    virStoragePoolPtr bp = virStoragePoolLookupByName(conn, ctl->base_pool);
    virStoragePoolPtr dp = bp ? virStoragePoolLookupByName(conn,
                                                           ctl->disks_pool)
                              : NULL;
    virStorageVolPtr *vols = NULL;
    struct cache_base *bases = NULL;
    int n = -1, i;
    size_t nb = 0;
    int rc = -1;

    if (!bp || !dp) {
        ctl_error("storage pool '%s' not found on %s: %s",
                  bp ? ctl->disks_pool : ctl->base_pool, ctl->uri,
                  ctl_virt_message());
        goto out;
    }
    if ((n = virStoragePoolListAllVolumes(bp, &vols, 0)) < 0) {
        ctl_error("cannot list pool '%s': %s", ctl->base_pool,
                  ctl_virt_message());
        goto out;
    }
    bases = calloc(n ? n : 1, sizeof(*bases));
    for (i = 0; i < n && bases; i++) {
        char *xml = virStorageVolGetXMLDesc(vols[i], 0);
        virStorageVolInfo info;
        struct volxml vx;

        bases[nb].name = strdup(virStorageVolGetName(vols[i]));
        if (virStorageVolGetInfo(vols[i], &info) == 0) {
            bases[nb].capacity = info.capacity;
            bases[nb].allocation = info.allocation;
        }
        if (xml && volxml_parse(xml, &vx) == 0) {
            bases[nb].last_used = vx.mtime;
            volxml_clear(&vx);
        }
        free(xml);
        nb++;
        virStorageVolFree(vols[i]);
    }
    free(vols);
    vols = NULL;

    /* Who uses what: one XML read per volume, no qemu-img.  Every active
     * pool of the node, not only the disks pool: poolfs may map files to
     * other pools (-o pool_map, disk.local and disk.swap overlays backed
     * by _base/ephemeral_*), and a base image may back another.  A volume
     * that cannot be read makes the whole answer unknown. */
    cs.bases = bases;
    cs.nb = nb;
    /* A volume made with libvirt is backed by the base pool's own path
     * (its backingStore naming the image cache pool's volume), one made
     * through a mount by MOUNT/_base/NAME: both count. */
    if ((bxml = virStoragePoolGetXMLDesc(bp, 0)))
        cs.base_dir = volxml_pool_target(bxml);
    if (cs.base_dir && stat(cs.base_dir, &base_st) == 0 &&
        S_ISDIR(base_st.st_mode))
        cs.base_st = &base_st;
    if (cache_find_users(conn, &cs, landing) < 0 ||
        cache_inactive_users(conn, &cs, unread) < 0 ||
        cache_legacy_users(mount, &cs) < 0)
        goto out;
    qsort(bases, nb, sizeof(*bases), cache_cmp);
    rc = 0;
 out:
    for (i = 0; vols && i < n; i++)
        virStorageVolFree(vols[i]);
    free(vols);
    if (bp)
        virStoragePoolFree(bp);
    if (dp)
        virStoragePoolFree(dp);
    free((char *)cs.base_dir);
    free(bxml);
    *basesp = bases;
    *np = nb;
    return rc;
}

static void
cache_usage(void)
{
    printf("usage: poolfsctl [-c URI] cache [--unused] [--remove-unused "
           "--min-age SECONDS]\n"
           "                 [--mount DIR] [--json]\n"
           "\n"
           "List every base image of the base pool with the volumes whose\n"
           "backingStore uses it (read from the volumes' XML, as\n"
           "MOUNT/_base/IMAGE or by the base pool's own directory), the\n"
           "files of inactive dir pools backed by it, and the qcow2 files\n"
           "of legacy instances under the poolfs mount backed by it (their\n"
           "headers read through the mount).  An inactive pool that cannot\n"
           "be read is warned of, and then nothing is removed.\n"
           "\n"
           "  --unused              list only the base images nothing uses\n"
           "  --remove-unused       delete the unused ones, never one in use\n"
           "  --min-age SECONDS     ... only those unused and not modified for\n"
           "                        at least SECONDS (mtime, as Nova ages its\n"
           "                        image cache; libvirt's probes touch atime)\n"
           "  --mount DIR           the poolfs mount whose legacy instances\n"
           "                        count (default /var/lib/nova/instances;\n"
           "                        with poolfs stopped, the legacy tree\n"
           "                        there)\n");
}

int
cache_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "unused", no_argument, NULL, 'u' },
        { "remove-unused", no_argument, NULL, 'r' },
        { "min-age", required_argument, NULL, 'a' },
        { "mount", required_argument, NULL, 'M' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    bool unused = false, remove = false;
    long long min_age = -1;
    struct cache_base *bases = NULL;
    size_t nb = 0, i, j, shown = 0;
    virConnectPtr conn = NULL;
    time_t now = time(NULL);
    char *landing = NULL, *unread = NULL;
    const char *mount = "/var/lib/nova/instances";
    int c, failed = 0;
    char *end;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'u': unused = true; break;
        case 'r': remove = true; break;
        case 'a':
            min_age = strtoll(optarg, &end, 10);
            if (*end || min_age < 0) {
                ctl_error("cache: --min-age wants seconds, not '%s'", optarg);
                return CTL_USAGE;
            }
            break;
        case 'M': mount = optarg; break;
        case 'h': cache_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (remove && min_age < 0) {
        ctl_error("cache: --remove-unused needs --min-age SECONDS, so that "
                  "an image just downloaded for a new instance is not taken");
        return CTL_USAGE;
    }
    if (optind < argc) {
        ctl_error("cache: unexpected argument '%s'", argv[optind]);
        return CTL_USAGE;
    }
    if (!(conn = ctl_connect(ctl->uri)) ||
        cache_load(conn, ctl, mount, &bases, &nb, &landing, &unread) < 0) {
        failed = 1;
        goto out;
    }
    if (remove && unread) {
        ctl_error("cache: inactive pool%s %s cannot be read for volumes "
                  "using the base images (not a dir pool whose directory "
                  "is there), so nothing is removed; start %s, or undefine "
                  "what is no longer used", strchr(unread, ',') ? "s" : "",
                  unread, strchr(unread, ',') ? "them" : "it");
        failed = 1;
        goto out;
    }
    if (unread)
        fprintf(stderr, "poolfsctl: warning: inactive pool%s %s cannot be "
                "read: images their volumes use may be shown as unused\n",
                strchr(unread, ',') ? "s" : "", unread);
    if (remove && landing) {
        ctl_error("cache: a copy is being landed (%s): it may need any base "
                  "image, which libvirt cannot tell before it is whole, so "
                  "nothing is removed; run again once the migration or "
                  "adoption is done (or the unfinished copy deleted)",
                  landing);
        failed = 1;
        goto out;
    }
    if (ctl->json) {
        printf("{\"pool\": ");
        ctl_json_string(stdout, ctl->base_pool);
        if (unread) {
            char w[1024];

            snprintf(w, sizeof(w), "inactive pools not read: %s", unread);
            printf(", \"warning\": ");
            ctl_json_string(stdout, w);
        }
        printf(", \"images\": [");
    }
    for (i = 0; i < nb; i++) {
        struct cache_base *b = &bases[i];
        const char *action = NULL;
        long long age = b->last_used && b->last_used <= now ?
                        (long long)(now - b->last_used) : -1;

        if ((unused || remove) && b->nusers > 0)
            continue;
        if (remove) {
            virStorageVolPtr v = NULL;
            virStoragePoolPtr bp;

            /* An age not known (no timestamps: logical, rbd) or in the
             * future (another clock) is never old enough. */
            if (age < 0 || age < min_age)
                continue;
            action = "removed";
            bp = virStoragePoolLookupByName(conn, ctl->base_pool);
            if (!bp || !(v = virStorageVolLookupByName(bp, b->name)) ||
                virStorageVolDelete(v, 0) < 0) {
                ctl_error("cannot remove base image '%s': %s", b->name,
                          ctl_virt_message());
                action = "failed";
                failed = 1;
            }
            if (v)
                virStorageVolFree(v);
            if (bp)
                virStoragePoolFree(bp);
        }
        if (ctl->json) {
            printf("%s{\"name\": ", shown ? ", " : "");
            ctl_json_string(stdout, b->name);
            printf(", \"capacity\": %llu, \"allocation\": %llu, "
                   "\"idle_seconds\": %lld, \"users\": [",
                   (unsigned long long)b->capacity,
                   (unsigned long long)b->allocation, age);
            for (j = 0; j < b->nusers; j++) {
                if (j)
                    printf(", ");
                ctl_json_string(stdout, b->users[j]);
            }
            printf("]");
            if (action)
                printf(", \"action\": \"%s\"", action);
            printf("}");
        } else {
            char sz[32];

            printf("%s\t%s\t%zu user%s", b->name,
                   ctl_size(b->allocation, sz, sizeof(sz)), b->nusers,
                   b->nusers == 1 ? "" : "s");
            for (j = 0; j < b->nusers; j++)
                printf("%s%s", j ? "," : "\t", b->users[j]);
            if (action)
                printf("\t%s", action);
            printf("\n");
        }
        shown++;
    }
    if (ctl->json) {
        printf("], ");
        ctl_json_ok(!failed);
    }
 out:
    for (i = 0; i < nb; i++) {
        for (j = 0; j < bases[i].nusers; j++)
            free(bases[i].users[j]);
        free(bases[i].users);
        free(bases[i].name);
    }
    free(bases);
    free(landing);
    free(unread);
    if (conn)
        virConnectClose(conn);
    return failed ? CTL_FAILED : CTL_OK;
}
