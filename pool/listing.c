/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * listing: builds the catalog from the pools and keeps it fresh.
 *
 * Changes poolfs makes are written into the catalog at once.  Changes made
 * by others arrive two ways: libvirt's storage pool events (a pool refresh
 * or a pool stopping) trigger a re-listing at once, and every
 * opts.refresh seconds the pools are listed again anyway, because libvirt
 * has no event for a volume created or deleted by someone else.  A
 * re-listing is one virStoragePoolListAllVolumes call per pool; volumes
 * with a local path are then stat()ed locally when asked about, so no
 * getattr ever waits on libvirtd.
 *
 * After poolfs writes to a volume or renames one behind libvirt's back, the
 * pool is marked dirty and refreshed here, in the background: libvirtd's
 * refresh may read through this very mount (a qcow2's backing file under
 * _base), so no FUSE request ever waits for it.
 *
 * When libvirtd goes away (restarted, upgraded: the close callback, or the
 * TCP keepalive for a peer that went silent), this thread also makes a new
 * connection, looks the same pools up on it and moves the events over
 * (listing_reconnect), an attempt every 1 to 2 s until it can.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "names.h"
#include "legacy.h"

/* Where an undecodable or conflicting disks-pool volume is shown. */
static struct cat_node *
listing_add_unmapped(struct catalog *cat, int pool, const char *vol,
                     const char *local, const struct cat_volinfo *info)
{
    AUTOFREE char *path = NULL;

    /* A mapped pool's odd volume: named after its pool so as not to
     * collide with the disks pool's. */
    if (pool == POOL_DISKS ? asprintf(&path, "/" NAMES_UNMAPPED_DIR "/%s",
                                      vol) < 0 :
        asprintf(&path, "/" NAMES_UNMAPPED_DIR "/%d:%s", pool, vol) < 0)
        return NULL;
    return catalog_add_file(cat, path, pool, vol, local, info);
}

/* Is DIR's first component NAME ("_base", not "_basement")? */
static bool
listing_top_is(const char *dir, const char *name)
{
    size_t n = strlen(name);

    return strncmp(dir, name, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

static int
listing_add_volume(struct pool_ctx *ctx, struct catalog *cat, int pool,
                   const char *vol, const struct cat_volinfo *info)
{
    AUTOFREE char *local = NULL;
    AUTOFREE char *dir = NULL;
    AUTOFREE char *file = NULL;
    AUTOFREE char *path = NULL;
    struct cat_node *node;

    if (ctx->pools[pool].local &&
        asprintf(&local, "%s/%s", ctx->pools[pool].target, vol) < 0)
        return -ENOMEM;

    if (pool == POOL_BASE) {
        if (strchr(vol, '/') ||
            asprintf(&path, "/" NAMES_BASE_DIR "/%s", vol) < 0)
            return 0;
        return catalog_add_file(cat, path, pool, vol, local, info) ? 0 : -ENOMEM;
    }

    if (names_decode(vol, &dir, &file) < 0 ||
        listing_top_is(dir, NAMES_UNMAPPED_DIR) ||
        listing_top_is(dir, NAMES_BASE_DIR) ||
        (*dir == '\0' && (strcmp(file, NAMES_BASE_DIR) == 0 ||
                          strcmp(file, NAMES_UNMAPPED_DIR) == 0)))
        goto unmapped;

    /* A directory that is legacy underneath the mount is shown from there;
     * the pool's volumes of the same name must not vanish behind it. */
    if (ctx->under >= 0) {
        char top[NAME_MAX + 1];
        const char *t = *dir ? dir : file;
        size_t n = strcspn(t, "/");

        if (n < sizeof(top)) {
            memcpy(top, t, n);
            top[n] = '\0';
            if (legacy_exists(ctx->under, top))
                goto unmapped;
        }
    }

    if (*file == '\0') {
        if (asprintf(&path, "/%s", dir) < 0)
            return -ENOMEM;
        if (!(node = catalog_add_dir(cat, path, false)))
            goto unmapped;
        node->marker = true;
        return 0;
    }
    if (asprintf(&path, "%s%s/%s", *dir ? "/" : "", dir, file) < 0)
        return -ENOMEM;
    if (catalog_lookup(cat, path) || !catalog_add_file(cat, path, pool, vol,
                                                       local, info))
        goto unmapped;
    return 0;

 unmapped:
    /* Never let a volume vanish: show it under its raw name. */
    return listing_add_unmapped(cat, pool, vol, local, info) ? 0 : -ENOMEM;
}

/* Info for a volume without a local path: reuse what OLD knew. */
static int
listing_remote_info(struct pool_ctx *ctx, struct catalog *old, int pool,
                    const char *vol, struct cat_volinfo *info)
{
    if (old) {
        /* Linear in the old catalog would be too slow; the caller keeps
         * the volume name as the key in the node, so walk the hash by
         * trying the decoded path first. */
        AUTOFREE char *dir = NULL;
        AUTOFREE char *file = NULL;
        AUTOFREE char *path = NULL;
        struct cat_node *node = NULL;

        pthread_rwlock_rdlock(&ctx->lock);
        if (pool == POOL_BASE) {
            if (asprintf(&path, "/" NAMES_BASE_DIR "/%s", vol) >= 0)
                node = catalog_lookup(old, path);
        } else if (names_decode(vol, &dir, &file) == 0 && *file) {
            if (asprintf(&path, "%s%s/%s", *dir ? "/" : "", dir, file) >= 0)
                node = catalog_lookup(old, path);
        }
        if (node && node->kind == CAT_FILE && node->vol &&
            strcmp(node->vol, vol) == 0) {
            *info = node->info;
            pthread_rwlock_unlock(&ctx->lock);
            return 0;
        }
        pthread_rwlock_unlock(&ctx->lock);
    }
    return volume_info(ctx, pool, vol, info);
}

/* Is the connection of the moment dead?  (Not an RPC: libvirt's own
 * knowledge of its socket.) */
static bool
listing_conn_dead(struct pool_ctx *ctx)
{
    return virConnectIsAlive(ctx->conn) == 0;
}

/* What of OLD belongs to POOL, put into CAT: its files, and the disks
 * pool's directory markers.  The caller holds ctx->lock for reading. */
static int
listing_carry(struct cat_node *node, int pool, struct catalog *cat)
{
    struct cat_node *n;
    size_t i;

    if (node->kind == CAT_FILE) {
        if (node->pool != pool)
            return 0;
        /* Its place taken by a pool listed before (or a file where a
         * directory of its path is): under _unmapped, as a listing
         * would show it, never gone. */
        if (!catalog_lookup(cat, node->path) &&
            catalog_add_file(cat, node->path, pool, node->vol, node->local,
                             &node->info))
            return 0;
        return listing_add_unmapped(cat, pool, node->vol, node->local,
                                    &node->info) ? 0 : -ENOMEM;
    }
    if (node->marker && pool == POOL_DISKS && !catalog_lookup(cat, node->path)) {
        if (!(n = catalog_add_dir(cat, node->path, false)))
            return 0;   /* a file of another pool there now: it wins */
        n->marker = true;
    }
    for (i = 0; i < node->nkids; i++)
        if (listing_carry(node->kids[i], pool, cat) < 0)
            return -ENOMEM;
    return 0;
}

/*
 * A new catalog from the pools.  The pools in CARRY (a bit each) are not
 * listed: their part of OLD is kept (libvirt's list of them is stale,
 * a refresh pending).  Nor is one that cannot be listed while the
 * connection lives (a pool stopped): the others must not freeze with it.
 * OLD, if REUSE, also gives the info of volumes without a local path.
 */
static int
listing_build(struct pool_ctx *ctx, struct catalog *old, bool reuse,
              unsigned carry, struct catalog **catp)
{
    struct catalog *cat = catalog_new();
    int pool;
    int rc = -ENOMEM;

    if (!cat || !catalog_add_dir(cat, "/" NAMES_BASE_DIR, true))
        goto error;

    for (pool = 0; pool < ctx->npools; pool++) {
        struct pool_ref *ref = &ctx->pools[pool];
        virStorageVolPtr *vols = NULL;
        int n, i;

        /* Only this thread (or pool_open, before it) swaps the handles. */
        if ((carry & (1u << pool)) ||
            (n = virStoragePoolListAllVolumes(ref->pool, &vols, 0)) < 0) {
            struct pool_why why = { 0 };

            if (!(carry & (1u << pool)))
                pool_why_take(&why);    /* before the next call resets it */
            rc = -why.err;
            /* A dead connection is said (and mended) by the thread; at
             * mount time (nothing watched yet) it is an error like any. */
            if (!(carry & (1u << pool)) && ctx->watched &&
                listing_conn_dead(ctx)) {
                listing_conn_lost(ctx);
                goto error;
            }
            if (!(carry & (1u << pool)) && !ref->unlisted)
                pool_log("cannot list the volumes of storage pool '%s': %s%s",
                         ref->name, why.msg, old ? "; its part of the view "
                         "is kept until it can be" : "");
            if (!old)
                goto error;
            if (!(carry & (1u << pool)))
                ref->unlisted = true;
            pthread_rwlock_rdlock(&ctx->lock);
            rc = listing_carry(catalog_root(old), pool, cat);
            pthread_rwlock_unlock(&ctx->lock);
            if (rc < 0) {
                pool_log("cannot keep storage pool '%s' in the view: %s",
                         ref->name, strerror(-rc));
                goto error;
            }
            continue;
        }
        if (ref->unlisted) {
            pool_log("storage pool '%s' is listed again", ref->name);
            ref->unlisted = false;
        }
        rc = 0;
        for (i = 0; i < n; i++) {
            const char *vol = virStorageVolGetName(vols[i]);
            struct cat_volinfo info = { 0 };
            int got = 0;

            /* A volume gone since the listing is simply skipped; any
             * other failure (libvirtd went away halfway) fails the whole
             * listing, and the view stays as it was rather than lose the
             * volumes not read. */
            if (rc == 0 && !ref->local &&
                (got = listing_remote_info(ctx, reuse ? old : NULL, pool,
                                           vol, &info)) < 0 &&
                got != -ENOENT) {
                rc = got;
                pool_log("cannot read volume '%s' of storage pool '%s': %s",
                         vol, ref->name, strerror(-got));
            }
            if (rc == 0 && got == 0)
                rc = listing_add_volume(ctx, cat, pool, vol, &info);
            virStorageVolFree(vols[i]);
        }
        free(vols);
        if (rc < 0)
            goto error;
    }
    *catp = cat;
    return 0;

 error:
    catalog_free(cat);
    return rc;
}

int
listing_load(struct pool_ctx *ctx, struct catalog *old, struct catalog **catp)
{
    return listing_build(ctx, old, old != NULL, 0, catp);
}

/* Is a refresh of any pool pending?  The caller holds bg_lock. */
static bool
listing_any_dirty(struct pool_ctx *ctx)
{
    int i;

    for (i = 0; i < ctx->npools; i++)
        if (ctx->pools[i].dirty)
            return true;
    return false;
}

/* Is a refresh pending of a pool whose last refresh did not fail?  (One
 * that failed is tried again each period, not on every ask.)  The caller
 * holds bg_lock. */
static bool
listing_any_dirty_fresh(struct pool_ctx *ctx)
{
    int i;

    for (i = 0; i < ctx->npools; i++)
        if (ctx->pools[i].dirty && !ctx->pools[i].refresh_failing)
            return true;
    return false;
}

/* Does libvirt's view lag behind a rename poolfs made in a pool's
 * directory?  Then a listing would bring back the old names. */
static bool
listing_libvirt_stale(struct pool_ctx *ctx)
{
    bool stale;

    pthread_mutex_lock(&ctx->bg_lock);
    stale = listing_any_dirty(ctx);
    pthread_mutex_unlock(&ctx->bg_lock);
    return stale;
}

/* The pools whose refresh is pending, a bit each. */
static unsigned
listing_dirty_mask(struct pool_ctx *ctx)
{
    unsigned mask = 0;
    int i;

    pthread_mutex_lock(&ctx->bg_lock);
    for (i = 0; i < ctx->npools; i++)
        if (ctx->pools[i].dirty)
            mask |= 1u << i;
    pthread_mutex_unlock(&ctx->bg_lock);
    return mask;
}

/*
 * Re-list the pools.  A change poolfs made meanwhile means list again; a
 * pending pool refresh means stop: the thread refreshes, then lists.  But
 * with CARRY_DIRTY (refreshes keep failing: a pool stopped, libvirtd
 * refusing one) the others are listed, and those pools' part of the view
 * is kept as it is.  True if the new list was swapped in.
 */
static bool
listing_relist(struct pool_ctx *ctx, bool reread, bool carry_dirty)
{
    int attempt;

    for (attempt = 0; attempt < 3; attempt++) {
        struct catalog *cat = NULL;
        struct catalog *old;
        unsigned long gen;
        unsigned carry = 0;
        bool swapped = false;

        /* The generation first: a change that asks for a refresh after
         * the check below also moves it, so its list is not swapped in. */
        pthread_rwlock_rdlock(&ctx->lock);
        gen = ctx->gen;
        old = ctx->cat;
        pthread_rwlock_unlock(&ctx->lock);

        if (carry_dirty)
            carry = listing_dirty_mask(ctx);
        else if (listing_libvirt_stale(ctx))
            return false;

        /* The info of volumes without a local path (a round trip each)
         * is carried over unless asked for afresh. */
        if (listing_build(ctx, old, !reread, carry, &cat) < 0)
            return false;   /* reported; keep the view we have */

        pthread_rwlock_wrlock(&ctx->lock);
        if (ctx->gen == gen && ctx->busy == 0) {
            old = ctx->cat;
            ctx->cat = cat;
            cat = NULL;
            swapped = true;
        }
        pthread_rwlock_unlock(&ctx->lock);
        if (swapped) {
            catalog_free(old);
            return true;
        }
        catalog_free(cat);
    }
    return false;
}

/* Seconds between two readings of every remote volume's info (sizes,
 * mtime: a round trip or three each) when nothing asked for one sooner. */
#define LISTING_REREAD_SECS 60

static bool listing_reconnect(struct pool_ctx *ctx, char *said, size_t len);

/* Seconds an unmount waits for the listing thread's call under way. */
#define LISTING_STOP_SECS 5

/* Seconds between two attempts at a new connection: -o refresh, kept
 * between these. */
#define LISTING_RECONNECT_MIN 1.0
#define LISTING_RECONNECT_MAX 2.0

/* How long the thread waits for work: -o refresh, or while LOST (a
 * connection is wanted) the interval between two attempts. */
static double
listing_interval(const struct pool_ctx *ctx, bool lost)
{
    if (!lost)
        return ctx->opts.refresh;
    if (ctx->opts.refresh < LISTING_RECONNECT_MIN)
        return LISTING_RECONNECT_MIN;
    if (ctx->opts.refresh > LISTING_RECONNECT_MAX)
        return LISTING_RECONNECT_MAX;
    return ctx->opts.refresh;
}

/* Seconds on the monotonic clock. */
static time_t
listing_now(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec;
}

static double
listing_elapsed(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) +
           (double)(to->tv_nsec - from->tv_nsec) / 1e9;
}

static void *
listing_thread(void *arg)
{
    struct pool_ctx *ctx = arg;
    struct timespec deadline;
    bool lost_wait = false;     /* too soon for another attempt: wait */
    bool attempted = false;     /* attempt_at holds the last attempt */
    struct timespec attempt_at;
    char said[PATH_MAX + 1024] = "";    /* why it failed, as logged */
    time_t last_reread = listing_now();

    pthread_mutex_lock(&ctx->bg_lock);
    while (!ctx->bg_quit) {
        bool dirty[POOL_MAX], reread;
        unsigned long serving[POOL_MAX];
        int i;

        double wait = listing_interval(ctx, lost_wait);

        clock_gettime(CLOCK_MONOTONIC, &deadline);   /* bg_cond's */
        deadline.tv_sec += (time_t)wait;
        deadline.tv_nsec += (long)((wait - (time_t)wait) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!ctx->bg_quit &&
               (lost_wait ||
                (!ctx->conn_lost && !ctx->bg_relist &&
                 !listing_any_dirty_fresh(ctx)))) {
            if (pthread_cond_timedwait(&ctx->bg_cond, &ctx->bg_lock,
                                       &deadline) == ETIMEDOUT)
                break;
        }
        if (ctx->bg_quit)
            break;
        /* One attempt per interval at most (a daemon that keeps dying
         * right after it accepts gets no storm either); made, the pools
         * are refreshed and listed right after.  The flag is cleared
         * first: a close of the new connection sets it again. */
        if (ctx->conn_lost) {
            struct timespec now;

            clock_gettime(CLOCK_MONOTONIC, &now);
            if (attempted && listing_elapsed(&attempt_at, &now) <
                             listing_interval(ctx, true)) {
                lost_wait = true;
                continue;
            }
            attempt_at = now;
            attempted = true;
            ctx->conn_lost = false;
            pthread_mutex_unlock(&ctx->bg_lock);
            lost_wait = !listing_reconnect(ctx, said, sizeof(said));
            pthread_mutex_lock(&ctx->bg_lock);
            if (lost_wait) {
                ctx->conn_lost = true;
                continue;
            }
        }
        lost_wait = false;
        /* Remote volumes' sizes and times are read again when the pools
         * changed (an event, a refresh asked for) and every so often. */
        reread = ctx->bg_relist ||
                 listing_now() - last_reread >= LISTING_REREAD_SECS;
        for (i = 0; i < ctx->npools; i++) {
            dirty[i] = ctx->pools[i].dirty;
            reread = reread || dirty[i];
            ctx->pools[i].dirty = false;
            serving[i] = ctx->pools[i].refresh_asked;
        }
        ctx->bg_relist = false;
        pthread_mutex_unlock(&ctx->bg_lock);

        bool failed = false;

        for (i = 0; i < ctx->npools; i++) {
            struct pool_ref *ref = &ctx->pools[i];

            if (!dirty[i])
                continue;
            if (pool_refresh_retry(ctx, i, 100) < 0) {
                struct pool_why why = { 0 };

                pool_why_take(&why);    /* before the next call resets it */
                if (listing_conn_dead(ctx))
                    listing_conn_lost(ctx);     /* said on reconnecting */
                else if (!ref->refresh_failing)
                    pool_log("cannot refresh storage pool '%s': %s; its "
                             "part of the view is kept as poolfs made it, "
                             "and the refresh tried again every period",
                             ref->name, why.msg);
                ref->refresh_failing = true;
                dirty[i] = false;       /* not served */
                failed = true;
            } else if (ref->refresh_failing) {
                pool_log("storage pool '%s' is refreshed again", ref->name);
                ref->refresh_failing = false;
            }
        }
        pthread_mutex_lock(&ctx->bg_lock);
        for (i = 0; i < ctx->npools; i++) {
            if (dirty[i] && ctx->pools[i].refresh_done < serving[i])
                ctx->pools[i].refresh_done = serving[i];
            /* libvirt's list is stale where the refresh failed: it would
             * undo poolfs's own renames.  Keep the view, retry later. */
            if (failed &&
                ctx->pools[i].refresh_asked > ctx->pools[i].refresh_done)
                ctx->pools[i].dirty = true;
        }
        pthread_cond_broadcast(&ctx->bg_cond);
        pthread_mutex_unlock(&ctx->bg_lock);

        /* A pool whose refresh fails (gone inactive) must not freeze the
         * view of the others: they are listed, its part kept. */
        if (listing_relist(ctx, reread, failed) && reread)
            last_reread = listing_now();

        pthread_mutex_lock(&ctx->bg_lock);
    }
    pthread_mutex_unlock(&ctx->bg_lock);
    return NULL;
}

unsigned long
listing_request_refresh(struct pool_ctx *ctx, int pool)
{
    unsigned long ticket;

    pthread_mutex_lock(&ctx->bg_lock);
    ctx->pools[pool].dirty = true;
    ticket = ++ctx->pools[pool].refresh_asked;
    pthread_cond_broadcast(&ctx->bg_cond);
    pthread_mutex_unlock(&ctx->bg_lock);
    return ticket;
}

void
listing_wait_refresh(struct pool_ctx *ctx, int pool, unsigned long ticket,
                     int timeout_ms)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);       /* bg_cond's */
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ctx->bg_lock);
    while (ctx->started && !ctx->bg_quit &&
           ctx->pools[pool].refresh_done < ticket) {
        if (pthread_cond_timedwait(&ctx->bg_cond, &ctx->bg_lock,
                                   &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&ctx->bg_lock);
}

void
listing_request_relist(struct pool_ctx *ctx)
{
    pthread_mutex_lock(&ctx->bg_lock);
    ctx->bg_relist = true;
    pthread_cond_signal(&ctx->bg_cond);
    pthread_mutex_unlock(&ctx->bg_lock);
}

static void
listing_pool_event(virConnectPtr conn, virStoragePoolPtr pool, void *opaque)
{
    listing_request_relist(opaque);
}

static void
listing_lifecycle_event(virConnectPtr conn, virStoragePoolPtr pool,
                        int event, int detail, void *opaque)
{
    struct pool_ctx *ctx = opaque;

    if (event == VIR_STORAGE_POOL_EVENT_STOPPED ||
        event == VIR_STORAGE_POOL_EVENT_UNDEFINED)
        pool_log("storage pool '%s' was stopped or undefined: the view "
                 "keeps its files as they were (those whose storage went "
                 "with it fail to open) until it is started again",
                 virStoragePoolGetName(pool));
    listing_request_relist(ctx);
}

static void
listing_wake(int timer, void *opaque)
{
    /* Only there so that the event loop returns to check bg_quit. */
}

static void *
listing_event_thread(void *arg)
{
    struct pool_ctx *ctx = arg;

    for (;;) {
        bool quit;

        pthread_mutex_lock(&ctx->bg_lock);
        quit = ctx->bg_quit;
        pthread_mutex_unlock(&ctx->bg_lock);
        if (quit)
            break;
        if (virEventRunDefaultImpl() < 0)
            break;
    }
    return NULL;
}

void
listing_conn_lost(struct pool_ctx *ctx)
{
    pthread_mutex_lock(&ctx->bg_lock);
    ctx->conn_lost = true;
    pthread_cond_broadcast(&ctx->bg_cond);
    pthread_mutex_unlock(&ctx->bg_lock);
}

/* In the event loop: libvirtd closed the connection (it stopped), or its
 * socket failed (TCP's keepalive or tcpkeep's watchdog found the peer
 * silent).  Nothing is called on CONN here. */
static void
listing_conn_closed(virConnectPtr conn, int reason, void *opaque)
{
    if (reason != VIR_CONNECT_CLOSE_REASON_CLIENT)
        listing_conn_lost(opaque);
}

/* Events and the close callback on the connection of the moment.  Run
 * by the thread that swaps connections (or before it starts). */
static void
listing_watch(struct pool_ctx *ctx)
{
    virConnectPtr c = ctx->conn;
    int i;

    if (!c || virConnectRef(c) < 0)
        return;
    for (i = 0; i < ctx->npools; i++) {
        struct pool_ref *ref = &ctx->pools[i];
        virStoragePoolPtr p = ref->pool;

        ref->event_id = virConnectStoragePoolEventRegisterAny(
            c, p, VIR_STORAGE_POOL_EVENT_ID_REFRESH,
            VIR_STORAGE_POOL_EVENT_CALLBACK(listing_pool_event), ctx, NULL);
        /* Events are an optimisation: the periodic re-listing suffices. */
        ref->lifecycle_id = virConnectStoragePoolEventRegisterAny(
            c, p, VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
            VIR_STORAGE_POOL_EVENT_CALLBACK(listing_lifecycle_event), ctx,
            NULL);
    }
    /* A silent peer is found by TCP and tcpkeep's watchdog (applied
     * right after the connection was made: tcpkeep.h, not libvirt's
     * keepalive); a daemon that stops closes the socket, which the close
     * callback sees at once. */
    virConnectRegisterCloseCallback(c, listing_conn_closed, ctx, NULL);
    ctx->watched = c;
}

/* Undo listing_watch.  On a dead connection the deregistrations fail
 * remotely but still drop the callbacks' references here, and without
 * them the connection is never really closed. */
static void
listing_unwatch(struct pool_ctx *ctx)
{
    virConnectPtr c = ctx->watched;
    int i;

    if (!c)
        return;
    virConnectUnregisterCloseCallback(c, listing_conn_closed);
    for (i = 0; i < ctx->npools; i++) {
        if (ctx->pools[i].event_id >= 0)
            virConnectStoragePoolEventDeregisterAny(c, ctx->pools[i].event_id);
        if (ctx->pools[i].lifecycle_id >= 0)
            virConnectStoragePoolEventDeregisterAny(c,
                                                    ctx->pools[i].lifecycle_id);
        ctx->pools[i].event_id = ctx->pools[i].lifecycle_id = -1;
    }
    virConnectClose(c);
    ctx->watched = NULL;
}

/*
 * The connection is gone: a new one, the pools looked up on it, the
 * events moved over, and everything refreshed and listed afresh.  Until
 * then files open keep working (their data is the volumes' files, or
 * streams that fail and say so), lookups are served from the view,
 * renames in a pool of files are rename(2) in its directory, and making
 * or deleting a volume fails with EIO.  Logged once when lost, once per
 * distinct reason while it cannot be made, and once when made again.
 */
static bool
listing_reconnect(struct pool_ctx *ctx, char *said, size_t len)
{
    char why[PATH_MAX + 1024];
    int i;

    if (conn_reconnect(ctx, why, sizeof(why)) < 0) {
        if (strcmp(why, said) != 0) {
            pool_log("the connection to libvirt at %s is lost; files open "
                     "keep working, files cannot be made or deleted until "
                     "it is back; trying again every %g s: %s",
                     ctx->opts.uri, listing_interval(ctx, true), why);
            snprintf(said, len, "%s", why);
        }
        return false;
    }
    listing_unwatch(ctx);
    listing_watch(ctx);
    /* Said once either way: a daemon restarted in a moment is back at
     * the first attempt, before any reason was logged. */
    pool_log("connected to libvirt at %s again%s", ctx->opts.uri,
             said[0] ? "" : " (the connection had closed: libvirtd "
             "restarted?)");
    said[0] = '\0';
    pthread_mutex_lock(&ctx->bg_lock);
    ctx->bg_relist = true;
    /* libvirtd's view of the pools may be older than their directories:
     * volumes made or renamed while it was away. */
    for (i = 0; i < ctx->npools; i++) {
        ctx->pools[i].dirty = true;
        ctx->pools[i].refresh_asked++;
    }
    pthread_mutex_unlock(&ctx->bg_lock);
    return true;
}

int
listing_start(struct pool_ctx *ctx)
{
    int err;

    listing_watch(ctx);
    ctx->wake_timer = virEventAddTimeout(500, listing_wake, NULL, NULL);
    if ((err = pthread_create(&ctx->event_thread, NULL, listing_event_thread,
                              ctx)) == 0) {
        ctx->event_started = true;
        err = pthread_create(&ctx->refresh_thread, NULL, listing_thread, ctx);
    }
    if (err) {
        pool_log("cannot start the background threads: %s", strerror(err));
        return -1;              /* pool_close stops what did start */
    }
    ctx->started = true;
    return 0;
}

void
listing_stop(struct pool_ctx *ctx)
{
    pthread_mutex_lock(&ctx->bg_lock);
    ctx->bg_quit = true;
    pthread_cond_broadcast(&ctx->bg_cond);
    pthread_mutex_unlock(&ctx->bg_lock);
    if (ctx->started) {
        /* Its call under way may be a connect to a host that does not
         * answer (the TCP timeout: minutes); the process is about to exit
         * and need not wait for it. */
        struct timespec deadline;

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += LISTING_STOP_SECS;
        if (pthread_timedjoin_np(ctx->refresh_thread, NULL, &deadline)) {
            pool_log("libvirt at %s has not answered for %d s: exiting "
                     "without waiting for it", ctx->opts.uri,
                     LISTING_STOP_SECS);
            ctx->abandoned = true;
            return;
        }
    }
    /* Callbacks hold a reference on the connection: without this it is
     * never really closed (libvirtd logs an I/O error at our exit). */
    listing_unwatch(ctx);
    /* The timer wakes the event loop to see bg_quit: remove it after. */
    if (ctx->event_started)
        pthread_join(ctx->event_thread, NULL);
    if (ctx->wake_timer >= 0)
        virEventRemoveTimeout(ctx->wake_timer);
    ctx->wake_timer = -1;
    ctx->started = ctx->event_started = false;
}

/* Did the pool (not the underlay) put a directory at PATH?  For the
 * conflict report: the listing sent such volumes to _unmapped. */
bool
listing_has_pool_dir(struct pool_ctx *ctx, const char *path)
{
    struct cat_node *u = catalog_lookup(ctx->cat, "/" NAMES_UNMAPPED_DIR);
    char prefix[NAMES_VOL_MAX + 2];
    size_t i, n;

    if (!u)
        return false;
    n = snprintf(prefix, sizeof(prefix), "%s_", path + 1);
    for (i = 0; i < u->nkids; i++)
        if (strncmp(u->kids[i]->name, prefix, n) == 0)
            return true;
    return false;
}
