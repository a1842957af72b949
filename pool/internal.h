/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared between the files of pool/; never included from fs/. */
#ifndef POOLFS_POOL_INTERNAL_H
#define POOLFS_POOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <sys/stat.h>
#include <libvirt/libvirt.h>

#include "catalog.h"
#include "pool.h"
#include "xmlq.h"

/* The disks pool, the base pool, then the pools of -o pool_map. */
enum { POOL_DISKS = 0, POOL_BASE = 1, POOL_MAX = 8 };

/* A file name that lives in a pool of its own (the nova-spec's per-type
 * pools: disk.swap in a swap pool, ...). */
struct pool_mapping {
    char *file;
    int pool;
};

struct pool_ref {
    char *name;
    virStoragePoolPtr pool;
    char *type;         /* "dir", "logical", ... */
    char *target;       /* the pool's target path, or NULL */
    bool local;         /* volumes are TARGET/NAME on this host */
    bool files;         /* ... and files there (dir, fs, netfs), which
                         * rename(2) and unlink(2) may move and remove; a
                         * logical pool's are device links: not those */
    bool dirty;         /* libvirt's view is stale: refresh it */
    unsigned long refresh_asked;    /* refreshes asked for ... */
    unsigned long refresh_done;     /* ... and the last one done */
    int event_id;       /* pool refresh callback, or -1 */
    int lifecycle_id;   /* pool lifecycle callback, or -1 */
    bool unlisted;      /* the last listing could not list it (said so
                         * once): its part of the view was kept */
    bool refresh_failing;   /* its last refresh failed (said once):
                             * retried each period, not on every ask */
};

struct pool_ctx {
    struct pool_opts opts;
    int under;          /* the directory under the mount, or -1 */
    /* The connection and the pools' handles on it.  A new connection
     * replaces them when libvirtd went away and came back (restarted,
     * upgraded): read them under CONN_PIN; the listing thread, which
     * alone swaps them (under the write lock), reads them bare. */
    pthread_rwlock_t conn_rw;
    virConnectPtr conn;
    struct pool_ref pools[POOL_MAX];
    int npools;
    struct pool_mapping map[POOL_MAX];
    int nmap;

    /* The catalog and the generation of changes poolfs made to it. */
    pthread_rwlock_t lock;
    /* Held for writing through a rename(2) (its plan, the volumes' moves,
     * the catalog's), for reading by what adds or removes names: a file
     * made inside a directory being renamed must land before or after,
     * never between. */
    pthread_rwlock_t names_lock;
    struct catalog *cat;
    unsigned long gen;
    int busy;           /* changes in several steps under way */

    /* Background work: re-listing, pool refreshes, the event loop. */
    pthread_mutex_t bg_lock;
    pthread_cond_t bg_cond;
    bool bg_quit;
    bool bg_relist;
    bool conn_lost;     /* the connection is gone: make a new one */
    bool started;       /* both threads run */
    bool abandoned;     /* the listing thread did not stop: see pool_close */
    bool event_started; /* the event loop's runs */
    pthread_t refresh_thread;
    pthread_t event_thread;
    int wake_timer;
    virConnectPtr watched;  /* the connection the events are on (a ref) */
};

/*
 * conn.c: the connection of the moment.  CONN_PIN(ctx) at the top of a
 * scope keeps ctx->conn and ctx->pools[].pool from being swapped for a new
 * connection's (and freed) until the scope ends: a read lock, so nothing
 * is called on libvirt when it is let go, and the thread's last libvirt
 * error stays for the caller to read.  Never held across a wait for the
 * listing thread (listing_wait_refresh), which takes it for writing.
 * glibc's rwlocks prefer readers, so a pinned scope may pin again.
 */
static inline struct pool_ctx *
conn_pin(struct pool_ctx *ctx)
{
    pthread_rwlock_rdlock(&ctx->conn_rw);
    return ctx;
}
static inline void
conn_unpin(struct pool_ctx **ctx)
{
    pthread_rwlock_unlock(&(*ctx)->conn_rw);
}
#define CONN_PIN(ctx) \
    struct pool_ctx *conn_pinned_ __attribute__((cleanup(conn_unpin), \
                                                 unused)) = conn_pin(ctx)
/*
 * A new connection to the URI, the same pools looked up on it (active,
 * the same type and target as at mount time), swapped in for the old.
 * 0, or -1 with the reason in WHY (a pool that changed, the daemon still
 * away).  Called by the listing thread only.
 */
int conn_reconnect(struct pool_ctx *ctx, char *why, size_t len);

/* The pool a file named FILE in an instance directory belongs in. */
int pool_for_file(struct pool_ctx *ctx, const char *file);

/* log.c: one idiom for reporting errors. */
/* The last libvirt error of this thread as an errno value and a message. */
int pool_virt_errno(void);
const char *pool_virt_message(void);
/*
 * libvirt resets the thread's error at every call, also at the calls that
 * clean up after a failure (a stream aborted, a half-made volume deleted),
 * so an operation of several calls keeps the first one here.
 */
struct pool_why {
    int err;                /* an errno value; 0 while nothing failed */
    char msg[512];
};
/* Keep ERR and a message in WHY, unless it holds one. */
void pool_why_set(struct pool_why *why, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Keep the thread's last libvirt error in WHY, unless it holds one. */
void pool_why_take(struct pool_why *why);

/*
 * Bracket a change made in several libvirt calls: no re-listing of the
 * pools taken while one is under way replaces the catalog.
 */
void pool_change_begin(struct pool_ctx *ctx);
void pool_change_end(struct pool_ctx *ctx);

/*
 * virStoragePoolRefresh, retried while libvirt refuses it because volumes
 * are being built or streamed ("asynchronous jobs running"), for at most
 * TRIES attempts 50 ms apart.  0, or -1 with the libvirt error set.
 */
int pool_refresh_retry(struct pool_ctx *ctx, int pool, int tries);

/* volume.c: volume operations, through libvirt. */
int volume_create(struct pool_ctx *ctx, int pool, const char *vol,
                  mode_t mode, uid_t uid, gid_t gid);
int volume_delete(struct pool_ctx *ctx, int pool, const char *vol);
/* VOL's mode and owner as libvirt shows them (root's 0600 if none). */
struct xmlq_perms volume_perms_of(struct pool_ctx *ctx, int pool,
                                  const char *vol);
/* REPLACE: TO may exist and is replaced (a file renamed over a file the
 * view shows); else a TO that exists (made by others, not yet seen) is
 * EEXIST, never overwritten. */
int volume_rename(struct pool_ctx *ctx, int pool, const char *from,
                  const char *to, bool replace);
int volume_clone(struct pool_ctx *ctx, int pool, const char *src,
                 const char *dst);
/* Set the byte length of a volume without a local path. */
int volume_set_length(struct pool_ctx *ctx, int pool, const char *vol,
                      unsigned long long size);
/* Is volume V (NAME) at least END bytes long after an upload?  0, or
 * -ENOSPC (logged): libvirtd lost a write error. */
int volume_check_length(virStorageVolPtr v, const char *name,
                        unsigned long long end);
int volume_info(struct pool_ctx *ctx, int pool, const char *vol,
                struct cat_volinfo *info);
char *volume_local_path(struct pool_ctx *ctx, int pool, const char *vol);

/* listing.c: the catalog from the pools. */
int listing_load(struct pool_ctx *ctx, struct catalog *old,
                 struct catalog **catp);
/* Ask for a background refresh of POOL; returns a ticket to wait for. */
unsigned long listing_request_refresh(struct pool_ctx *ctx, int pool);
/*
 * Wait at most TIMEOUT_MS for the refresh TICKET of POOL.  Bounded because
 * libvirtd's refresh may need the very mount the caller serves.
 */
void listing_wait_refresh(struct pool_ctx *ctx, int pool,
                          unsigned long ticket, int timeout_ms);
void listing_request_relist(struct pool_ctx *ctx);
bool listing_has_pool_dir(struct pool_ctx *ctx, const char *path);
int listing_start(struct pool_ctx *ctx);
void listing_stop(struct pool_ctx *ctx);
/* The connection of the moment was found dead (a call failed and
 * virConnectIsAlive says so): the listing thread makes a new one. */
void listing_conn_lost(struct pool_ctx *ctx);

/* io.c: open a data backend for a volume. */
int io_open(struct pool_ctx *ctx, const char *path, int pool,
            const char *vol, const char *local, int flags,
            struct pool_file **filep);

/* io.c: a handle on a legacy file's open fd. */
int io_open_fd(struct pool_ctx *ctx, const char *path, int fd, int flags,
               struct pool_file **filep);

/* tree.c */
void tree_update_size(struct pool_ctx *ctx, const char *path,
                      const char *vol, off_t size);
void tree_note_size(struct pool_ctx *ctx, const char *path, const char *vol,
                    off_t size);

/* Scope-bound cleanup, as in libvirt's g_autofree. */
static inline void pool_freep(void *p) { free(*(void **)p); }

/* The mtime utimensat(2)'s TV sets on a file whose mtime is now CUR. */
static inline time_t
pool_utime_mtime(const struct timespec tv[2], time_t cur)
{
    if (tv[1].tv_nsec == UTIME_NOW)
        return time(NULL);
    return tv[1].tv_nsec == UTIME_OMIT ? cur : tv[1].tv_sec;
}
#define AUTOFREE __attribute__((cleanup(pool_freep)))

#endif /* POOLFS_POOL_INTERNAL_H */
