/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn: the connection to libvirtd and the two pools a mount serves, with
 * every check a mount needs before it goes live.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <libvirt/virterror.h>
#include <libxml/tree.h>

#include "internal.h"
#include "tcpkeep.h"
#include "volfile.h"
#include "virterr.h"
#include "names.h"
#include "xmlq.h"

static void
conn_silent_error(void *opaque, virErrorPtr err)
{
    /* Errors are reported once, by the caller that knows the object. */
}

/* Is PATH (resolved) MOUNT or below it? */
static bool
conn_path_under(const char *path, const char *mount)
{
    size_t n = strlen(mount);

    if (strcmp(mount, "/") == 0)
        return true;
    return strncmp(path, mount, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* What a pool is on a connection: its handle, type and target. */
struct conn_pool_desc {
    virStoragePoolPtr pool;
    char *type;         /* "dir", "logical", ... */
    char *target;       /* resolved where LOCAL, or NULL */
    bool local;
    bool files;
};

static void
conn_desc_clear(struct conn_pool_desc *d)
{
    if (d->pool)
        virStoragePoolFree(d->pool);
    free(d->type);
    free(d->target);
    memset(d, 0, sizeof(*d));
}

/*
 * Pool NAME on CONN, which must be active unless MAY_BE_INACTIVE (a new
 * connection after a restart: a pool stopped meanwhile keeps its part of
 * the view, listing.c, and must not keep the others from being served).
 * 0, or -1 with the reason in WHY (one line, naming the pool).
 */
static int
conn_describe_pool(struct pool_ctx *ctx, virConnectPtr conn, const char *name,
                   bool may_be_inactive, struct conn_pool_desc *d, char *why,
                   size_t len)
{
    char *xml = NULL;
    xmlDocPtr doc = NULL;
    int active;
    int rc = -1;

    memset(d, 0, sizeof(*d));
    if (!(d->pool = virStoragePoolLookupByName(conn, name))) {
        snprintf(why, len, "storage pool '%s' not found on %s: %s", name,
                 ctx->opts.uri, pool_virt_message());
        return -1;
    }
    if ((active = virStoragePoolIsActive(d->pool)) != 1 &&
        !(active == 0 && may_be_inactive)) {
        if (active == 0)
            snprintf(why, len, "storage pool '%s' is inactive: start it "
                     "with 'virsh pool-start %s'", name, name);
        else
            snprintf(why, len, "cannot query storage pool '%s': %s", name,
                     pool_virt_message());
        goto cleanup;
    }
    if (!(xml = virStoragePoolGetXMLDesc(d->pool, 0))) {
        snprintf(why, len, "cannot read the definition of storage pool "
                 "'%s': %s", name, pool_virt_message());
        goto cleanup;
    }
    if (!(doc = xmlq_read(xml))) {
        snprintf(why, len, "cannot parse the definition of storage pool "
                 "'%s'", name);
        goto cleanup;
    }
    d->type = xmlq_string(doc, "string(/pool/@type)");
    d->target = xmlq_string(doc, "string(/pool/target/path)");
    /* In these pool types a volume is the file or device TARGET/NAME. */
    d->local = d->type && d->target &&
               volfile_uri_is_local(ctx->opts.uri) &&
               (strcmp(d->type, "dir") == 0 ||
                strcmp(d->type, "fs") == 0 ||
                strcmp(d->type, "netfs") == 0 ||
                strcmp(d->type, "logical") == 0);
    d->files = d->local && strcmp(d->type, "logical") != 0;
    if (d->local) {
        char real[PATH_MAX];

        if (!realpath(d->target, real)) {
            if (active == 0)
                goto done;      /* stopped: compared as it is written */
            snprintf(why, len, "storage pool '%s': target directory %s: %s",
                     name, d->target, strerror(errno));
            goto cleanup;
        }
        free(d->target);
        if (!(d->target = strdup(real))) {
            snprintf(why, len, "out of memory");
            goto cleanup;
        }
    }
 done:
    rc = 0;

 cleanup:
    if (rc < 0)
        conn_desc_clear(d);
    xmlFreeDoc(doc);
    free(xml);
    return rc;
}

static int
conn_open_pool(struct pool_ctx *ctx, struct pool_ref *ref)
{
    struct conn_pool_desc d;
    char why[PATH_MAX + 512];

    ref->event_id = ref->lifecycle_id = -1;
    if (conn_describe_pool(ctx, ctx->conn, ref->name, false, &d, why,
                           sizeof(why)) < 0) {
        pool_log("%s", why);
        return -1;
    }
    if (d.local && conn_path_under(d.target, ctx->opts.mountpoint)) {
        pool_log("storage pool '%s' keeps its volumes in %s, under the "
                 "mountpoint %s: libvirtd and poolfs would go through "
                 "each other; move the pool's target outside the mount "
                 "(e.g. /var/lib/nova/pools/)", ref->name, d.target,
                 ctx->opts.mountpoint);
        conn_desc_clear(&d);
        return -1;
    }
    ref->pool = d.pool;
    ref->type = d.type;
    ref->target = d.target;
    ref->local = d.local;
    ref->files = d.files;
    return 0;
}

static bool
conn_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int
conn_reconnect(struct pool_ctx *ctx, char *why, size_t len)
{
    struct conn_pool_desc d[POOL_MAX];
    virConnectPtr c, old;
    int i, n = 0;
    unsigned ended = tcpkeep_opens_ended();

    if (!(c = virConnectOpen(ctx->opts.uri))) {
        const char *hint = virterr_hint(ended);

        snprintf(why, len, "cannot connect to libvirt at %s: %s%s%s%s",
                 ctx->opts.uri, pool_virt_message(), hint ? " (" : "",
                 hint ? hint : "", hint ? ")" : "");
        return -1;
    }
    /* Before any call on it: the network may go silent again (tcpkeep.h). */
    tcpkeep_apply(ctx->opts.keepalive, ctx->opts.keepalive_count);
    /* The same pools, where they were: the catalog's local paths, the
     * files open in passthrough, all name files in the old targets. */
    for (n = 0; n < ctx->npools; n++) {
        struct pool_ref *ref = &ctx->pools[n];

        if (conn_describe_pool(ctx, c, ref->name, true, &d[n], why,
                               len) < 0)
            goto fail;
        if (!conn_same(d[n].type, ref->type) ||
            d[n].local != ref->local ||
            (ref->local && !conn_same(d[n].target, ref->target))) {
            snprintf(why, len, "storage pool '%s' is now a %s pool%s%s, "
                     "not the %s pool%s%s poolfs was mounted with: remount "
                     "to serve it", ref->name,
                     d[n].type ? d[n].type : "?",
                     d[n].local ? " in " : "", d[n].local ? d[n].target : "",
                     ref->type ? ref->type : "?",
                     ref->local ? " in " : "", ref->local ? ref->target : "");
            n++;
            goto fail;
        }
    }
    pthread_rwlock_wrlock(&ctx->conn_rw);
    old = ctx->conn;
    ctx->conn = c;
    for (i = 0; i < ctx->npools; i++) {
        virStoragePoolPtr p = ctx->pools[i].pool;

        ctx->pools[i].pool = d[i].pool;
        d[i].pool = p;          /* the old handle, freed below */
    }
    pthread_rwlock_unlock(&ctx->conn_rw);
    for (i = 0; i < ctx->npools; i++)
        conn_desc_clear(&d[i]);
    if (old)
        virConnectClose(old);
    return 0;

 fail:
    for (i = 0; i < n; i++)
        conn_desc_clear(&d[i]);
    virConnectClose(c);
    return -1;
}

/* Nothing underneath: no legacy instance can ever appear (the mount covers
 * the directory), so spare every lookup the check. */
static void
conn_check_underlay(struct pool_ctx *ctx)
{
    DIR *dir;
    struct dirent *de;
    int fd, n = 0;

    if (ctx->under < 0)
        return;
    if ((fd = openat(ctx->under, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0 &&
        (dir = fdopendir(fd))) {
        while ((de = readdir(dir)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                n++;
        closedir(dir);
    } else if (fd >= 0) {
        close(fd);
    }
    if (n == 0) {
        close(ctx->under);
        ctx->under = -1;
    }
}

/*
 * One line, at start, naming the instances still on legacy storage (the
 * nova-spec asks for it on compute node start), and one naming any
 * directory that is both underneath and in the pool.
 */
static void
conn_report_legacy(struct pool_ctx *ctx)
{
    char legacy[2048] = "", conflict[2048] = "";
    int nlegacy = 0, nconflict = 0;
    struct dirent *de;
    DIR *dir;
    int fd;

    if (ctx->under < 0 ||
        (fd = openat(ctx->under, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return;
    if (!(dir = fdopendir(fd))) {
        close(fd);
        return;
    }
    while ((de = readdir(dir))) {
        char path[NAME_MAX + 2];
        struct stat st;

        if (de->d_name[0] == '.' || strcmp(de->d_name, NAMES_BASE_DIR) == 0 ||
            strcmp(de->d_name, "locks") == 0 ||
            strcmp(de->d_name, "snapshots") == 0 ||
            fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        snprintf(path, sizeof(path), "/%s", de->d_name);
        if (listing_has_pool_dir(ctx, path)) {
            nconflict++;
            snprintf(conflict + strlen(conflict),
                     sizeof(conflict) - strlen(conflict), "%s%s",
                     nconflict > 1 ? ", " : "", de->d_name);
        }
        nlegacy++;
        snprintf(legacy + strlen(legacy), sizeof(legacy) - strlen(legacy),
                 "%s%s", nlegacy > 1 ? ", " : "", de->d_name);
    }
    closedir(dir);
    if (nlegacy)
        pool_log("warning: %d instance%s still on legacy storage under %s: "
                 "%s (poolfsctl adopt moves them into pool '%s')", nlegacy,
                 nlegacy == 1 ? "" : "s", ctx->opts.mountpoint, legacy,
                 ctx->pools[POOL_DISKS].name);
    if (nconflict)
        pool_log("warning: conflict: %s both under %s and in pool '%s': the "
                 "legacy files are shown, the pool's volumes under %s/",
                 conflict, ctx->opts.mountpoint, ctx->pools[POOL_DISKS].name,
                 NAMES_UNMAPPED_DIR);
}

int
pool_for_file(struct pool_ctx *ctx, const char *file)
{
    int i;

    for (i = 0; i < ctx->nmap; i++)
        if (strcmp(ctx->map[i].file, file) == 0)
            return ctx->map[i].pool;
    return POOL_DISKS;
}

/* -o pool_map=FILE:POOL,...: every FILE of an instance in POOL. */
static int
conn_parse_map(struct pool_ctx *ctx, const char *spec)
{
    char *copy, *item, *save = NULL;
    int rc = 0;

    if (!spec || !*spec)
        return 0;
    if (!(copy = strdup(spec)))
        return -1;
    for (item = strtok_r(copy, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        int i;

        if (!colon || colon == item || !colon[1] || strchr(item, '/') ||
            names_check_component((*colon = '\0', item)) < 0) {
            pool_log("bad option pool_map: '%s' is not FILE:POOL", item);
            rc = -1;
            break;
        }
        if (ctx->nmap == POOL_MAX) {
            pool_log("bad option pool_map: at most %d mappings", POOL_MAX);
            rc = -1;
            break;
        }
        for (i = 0; i < ctx->npools; i++)
            if (strcmp(ctx->pools[i].name, colon + 1) == 0)
                break;
        if (i == POOL_BASE) {
            pool_log("bad option pool_map: %s cannot go to the base pool",
                     item);
            rc = -1;
            break;
        }
        if (i == ctx->npools) {
            if (ctx->npools == POOL_MAX) {
                pool_log("bad option pool_map: at most %d pools", POOL_MAX);
                rc = -1;
                break;
            }
            ctx->pools[ctx->npools++].name = strdup(colon + 1);
        }
        ctx->map[ctx->nmap].file = strdup(item);
        ctx->map[ctx->nmap++].pool = i;
    }
    free(copy);
    return rc;
}

static char *
conn_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void
pool_change_begin(struct pool_ctx *ctx)
{
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->busy++;
    ctx->gen++;
    pthread_rwlock_unlock(&ctx->lock);
}

void
pool_change_end(struct pool_ctx *ctx)
{
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->busy--;
    ctx->gen++;
    pthread_rwlock_unlock(&ctx->lock);
}

int
pool_refresh_retry(struct pool_ctx *ctx, int pool, int tries)
{
    int i;

    for (i = 0; i < tries; i++) {
        virErrorPtr err;

        {
            CONN_PIN(ctx);

            if (virStoragePoolRefresh(ctx->pools[pool].pool, 0) == 0)
                return 0;
        }
        err = virGetLastError();
        if (!err || !err->message ||
            !strstr(err->message, "asynchronous jobs"))
            return -1;
        usleep(50 * 1000);
    }
    return -1;
}

const char *
pool_libvirt_version(char *buf, size_t len)
{
    unsigned long v = 0;

    virGetVersion(&v, NULL, NULL);
    snprintf(buf, len, "%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
    return buf;
}

static void
conn_tcpkeep_note(const char *msg)
{
    pool_log("%s", msg);
}

int
pool_open(const struct pool_opts *opts, struct pool_ctx **ctxp)
{
    struct pool_ctx *ctx = calloc(1, sizeof(*ctx));
    unsigned ended;
    int i;

    *ctxp = NULL;
    if (!ctx)
        return -ENOMEM;
    ctx->opts = *opts;
    ctx->opts.uri = conn_strdup(opts->uri);
    ctx->opts.mountpoint = conn_strdup(opts->mountpoint);
    ctx->opts.disks_pool = conn_strdup(opts->disks_pool);
    ctx->opts.base_pool = conn_strdup(opts->base_pool);
    ctx->pools[POOL_DISKS].name = conn_strdup(opts->disks_pool);
    ctx->pools[POOL_BASE].name = conn_strdup(opts->base_pool);
    ctx->npools = 2;
    ctx->wake_timer = -1;
    ctx->under = opts->underlay_fd;
    pthread_rwlock_init(&ctx->lock, NULL);
    pthread_rwlock_init(&ctx->names_lock, NULL);
    pthread_mutex_init(&ctx->bg_lock, NULL);
    {
        /* Its waits are bounded by the monotonic clock: a step of the
         * wall clock (NTP) must not stretch them. */
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ctx->bg_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_rwlock_init(&ctx->conn_rw, NULL);

    virSetErrorFunc(NULL, conn_silent_error);
    virterr_quiet_log();
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
        pool_log("cannot initialise libvirt: %s", pool_virt_message());
        goto error;
    }
    /* Running before the connect, so that it bounds that too. */
    tcpkeep_watch(opts->keepalive, opts->keepalive_count, conn_tcpkeep_note);
    ended = tcpkeep_opens_ended();
    if (!(ctx->conn = virConnectOpen(opts->uri))) {
        const char *hint = virterr_hint(ended);

        pool_log("cannot connect to libvirt at %s: %s%s%s%s", opts->uri,
                 pool_virt_message(), hint ? " (" : "", hint ? hint : "",
                 hint ? ")" : "");
        goto error;
    }
    tcpkeep_apply(opts->keepalive, opts->keepalive_count);
    if (conn_parse_map(ctx, opts->pool_map) < 0)
        goto error;
    for (i = 0; i < ctx->npools; i++)
        if (conn_open_pool(ctx, &ctx->pools[i]) < 0)
            goto error;
    if (strcmp(ctx->pools[POOL_DISKS].name, ctx->pools[POOL_BASE].name) == 0) {
        pool_log("the disks pool and the base pool are both '%s': they must "
                 "be two pools", ctx->pools[POOL_DISKS].name);
        goto error;
    }
    conn_check_underlay(ctx);
    if (listing_load(ctx, NULL, &ctx->cat) < 0)
        goto error;
    conn_report_legacy(ctx);
    *ctxp = ctx;
    return 0;

 error:
    pool_close(ctx);
    return -1;
}

bool
pool_local(const struct pool_ctx *ctx, bool files)
{
    int i;

    if (ctx->opts.io == POOL_IO_STREAM)
        return false;
    for (i = 0; i < ctx->npools; i++)
        if (files ? ctx->pools[i].files : ctx->pools[i].local)
            return true;
    return false;
}

int
pool_start(struct pool_ctx *ctx)
{
    return listing_start(ctx);
}

void
pool_close(struct pool_ctx *ctx)
{
    int i;

    if (!ctx)
        return;
    listing_stop(ctx);
    /* A thread that would not stop still uses the context: it goes with
     * the process, which exits next. */
    if (ctx->abandoned)
        return;
    for (i = 0; i < ctx->nmap; i++)
        free(ctx->map[i].file);
    for (i = 0; i < ctx->npools; i++) {
        if (ctx->pools[i].pool)
            virStoragePoolFree(ctx->pools[i].pool);
        free(ctx->pools[i].name);
        free(ctx->pools[i].type);
        free(ctx->pools[i].target);
    }
    if (ctx->conn)
        virConnectClose(ctx->conn);
    catalog_free(ctx->cat);
    if (ctx->under >= 0)
        close(ctx->under);
    free((char *)ctx->opts.uri);
    free((char *)ctx->opts.mountpoint);
    free((char *)ctx->opts.disks_pool);
    free((char *)ctx->opts.base_pool);
    pthread_rwlock_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->bg_lock);
    pthread_cond_destroy(&ctx->bg_cond);
    pthread_rwlock_destroy(&ctx->conn_rw);
    free(ctx);
}
