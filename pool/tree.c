/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tree: the instances tree, path by path.  Queries read the catalog (and
 * stat() local volumes); changes go to libvirt first and then into the
 * catalog.  No libvirt call is ever made with the catalog lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>

#include "ctlproto.h"
#include "io.h"
#include "names.h"
#include "legacy.h"
#include "volfile.h"

static bool tree_legacy(struct pool_ctx *ctx, const char *path,
                        const char **rel);

/* Where a path lives: which pool and which volume name. */
struct tree_loc {
    int pool;
    char vol[NAMES_VOL_MAX + 1];
};

static bool
tree_is_reserved_top(const char *path)
{
    return strcmp(path, "/" NAMES_BASE_DIR) == 0 ||
           strcmp(path, "/" NAMES_UNMAPPED_DIR) == 0;
}

/*
 * The volume a new file or directory at PATH would be.  DIRECTORY asks for
 * a directory's marker.  Returns 0 or a negative errno naming why PATH
 * cannot be a volume.
 */
static int
tree_locate(struct pool_ctx *ctx, const char *path, bool directory,
            struct tree_loc *loc)
{
    char dir[PATH_MAX];
    char base[NAME_MAX + 1];
    int rc;

    if ((rc = names_split(path, dir, sizeof(dir), base, sizeof(base))) < 0)
        return rc;
    if (strcmp(dir, NAMES_BASE_DIR) == 0) {
        if (directory)
            return -EPERM;      /* the base pool is flat */
        if ((rc = names_check_component(base)) < 0)
            return rc;
        loc->pool = POOL_BASE;
        strcpy(loc->vol, base);
        return 0;
    }
    if (strcmp(dir, NAMES_UNMAPPED_DIR) == 0 ||
        strncmp(dir, NAMES_BASE_DIR "/", strlen(NAMES_BASE_DIR) + 1) == 0 ||
        strncmp(dir, NAMES_UNMAPPED_DIR "/",
                strlen(NAMES_UNMAPPED_DIR) + 1) == 0)
        return -EPERM;
    if (tree_is_reserved_top(path))
        return -EEXIST;
    loc->pool = directory ? POOL_DISKS : pool_for_file(ctx, base);
    if (directory) {
        /* The marker of directory PATH: its whole path, empty file part. */
        char full[PATH_MAX + NAME_MAX + 2];

        snprintf(full, sizeof(full), "%s%s%s", dir, *dir ? "/" : "", base);
        return names_encode(full, "", loc->vol, sizeof(loc->vol));
    }
    return names_encode(dir, base, loc->vol, sizeof(loc->vol));
}

static void
tree_dir_stat(struct pool_ctx *ctx, struct cat_node *node, struct stat *st)
{
    AUTOFREE char *marker = NULL;
    size_t i;

    memset(st, 0, sizeof(*st));
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    for (i = 0; i < node->nkids; i++)
        if (node->kids[i]->kind == CAT_DIR)
            st->st_nlink++;
    st->st_size = 4096;
    st->st_blksize = 4096;
    st->st_atime = st->st_mtime = st->st_ctime = node->mtime;

    /* A directory with a marker on a local pool has real attributes. */
    if (node->marker && ctx->pools[POOL_DISKS].local) {
        struct tree_loc loc;
        struct stat ms;

        if (tree_locate(ctx, node->path, true, &loc) == 0 &&
            (marker = volume_local_path(ctx, POOL_DISKS, loc.vol)) &&
            stat(marker, &ms) == 0) {
            st->st_mode = S_IFDIR | (ms.st_mode & 07777);
            st->st_uid = ms.st_uid;
            st->st_gid = ms.st_gid;
            st->st_atim = ms.st_atim;
            st->st_mtim = ms.st_mtim;
            st->st_ctim = ms.st_ctim;
        }
    }
}

/* stat of a node; the caller holds the catalog lock. */
static int
tree_node_stat(struct pool_ctx *ctx, struct cat_node *node, struct stat *st)
{
    if (node->kind == CAT_DIR) {
        tree_dir_stat(ctx, node, st);
        return 0;
    }
    if (node->local)
        return io_local_stat(node->local, st);
    memset(st, 0, sizeof(*st));
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = node->info.physical;
    st->st_blocks = (node->info.allocation + 511) / 512;
    st->st_blksize = 65536;
    st->st_atime = st->st_mtime = st->st_ctime = node->mtime;
    return 0;
}

/*
 * PATH's volume VOL (its file LOCAL, if it has one) is not there though
 * the view shows it: deleted by others since the last listing.  A listing
 * is asked for, and the name goes from the view at once (the listing
 * would take up to refresh= seconds), unless it moved meanwhile or a
 * rename of poolfs's own is under way: that holds names_lock, across
 * libvirt calls that may wait on a pool refresh that reads through this
 * mount, so it is not waited for (the rename's own relist settles the
 * view).  True if PATH is out of the view now.
 */
static bool
tree_forget_vanished(struct pool_ctx *ctx, const char *path, int pool,
                     const char *vol, const char *local)
{
    struct cat_node *node;
    struct stat st;
    bool gone = false;

    /* Asked for first: a listing under way may hold the name still. */
    listing_request_refresh(ctx, pool);
    if (pthread_rwlock_tryrdlock(&ctx->names_lock) != 0)
        return false;
    if (!local || (lstat(local, &st) < 0 && errno == ENOENT)) {
        pthread_rwlock_wrlock(&ctx->lock);
        node = catalog_lookup(ctx->cat, path);
        if (node && node->kind == CAT_FILE && strcmp(node->vol, vol) == 0) {
            ctx->gen++;
            catalog_remove(ctx->cat, node);
            node = NULL;
        }
        gone = node == NULL;
        pthread_rwlock_unlock(&ctx->lock);
    }
    pthread_rwlock_unlock(&ctx->names_lock);
    return gone;
}

int
pool_getattr(struct pool_ctx *ctx, const char *path, struct stat *st)
{
    AUTOFREE char *vol = NULL;
    AUTOFREE char *local = NULL;
    struct cat_node *node;
    const char *rel;
    int rc = -ENOENT, pool = 0;

    if (tree_legacy(ctx, path, &rel))
        return legacy_getattr(ctx->under, rel, st);

    pthread_rwlock_rdlock(&ctx->lock);
    if ((node = catalog_lookup(ctx->cat, path)) &&
        (rc = tree_node_stat(ctx, node, st)) == -ENOENT &&
        node->kind == CAT_FILE && node->local) {
        pool = node->pool;
        vol = strdup(node->vol);
        local = strdup(node->local);
    }
    pthread_rwlock_unlock(&ctx->lock);
    /* Its file gone: so goes its name, from readdir too. */
    if (vol && local)
        tree_forget_vanished(ctx, path, pool, vol, local);
    return rc;
}

int
pool_readlink(struct pool_ctx *ctx, const char *path, char *buf, size_t size)
{
    const char *rel;

    if (tree_legacy(ctx, path, &rel))
        return legacy_readlink(ctx->under, rel, buf, size);
    return -EINVAL;
}

/* In a merged directory (the top, _base), each name once. */
struct tree_merge {
    struct pool_ctx *ctx;
    struct cat_node *dir;
};

static bool
tree_merge_skip(void *arg, const char *name)
{
    struct tree_merge *m = arg;
    size_t i;

    /* The listing sends a pool volume whose top-level name is legacy to
     * _unmapped (listing.c), so a name is in both only for _base and
     * _unmapped themselves: each is listed once. */
    for (i = 0; i < m->dir->nkids; i++)
        if (strcmp(m->dir->kids[i]->name, name) == 0)
            return true;
    return false;
}

int
pool_readdir(struct pool_ctx *ctx, const char *path, pool_fill_fn fill,
             void *arg)
{
    struct cat_node *node;
    struct stat st;
    const char *rel;
    size_t i;
    int rc = 0;

    if (tree_legacy(ctx, path, &rel))
        return legacy_readdir(ctx->under, rel, fill, arg, NULL, NULL);
    pthread_rwlock_rdlock(&ctx->lock);
    if (!(node = catalog_lookup(ctx->cat, path))) {
        rc = -ENOENT;
        goto out;
    }
    if (node->kind != CAT_DIR) {
        rc = -ENOTDIR;
        goto out;
    }
    tree_node_stat(ctx, node, &st);
    fill(arg, ".", NULL);
    fill(arg, "..", NULL);
    for (i = 0; i < node->nkids; i++) {
        /* A volume deleted under us still lists; its stat says ENOENT. */
        if (tree_node_stat(ctx, node->kids[i], &st) < 0)
            continue;
        if (fill(arg, node->kids[i]->name, &st))
            goto out;
    }
    /* The top and _base show what is underneath the mount too. */
    if (ctx->under >= 0 && (node == catalog_root(ctx->cat) ||
                            strcmp(path, "/" NAMES_BASE_DIR) == 0)) {
        struct tree_merge m = { ctx, node };

        legacy_readdir(ctx->under, node == catalog_root(ctx->cat) ? "" :
                       NAMES_BASE_DIR, fill, arg, tree_merge_skip, &m);
    }
 out:
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

/* Copy what a change needs out of the catalog, so the lock can go. */
static int
tree_find_file(struct pool_ctx *ctx, const char *path, int *pool,
               char **vol, char **local)
{
    struct cat_node *node;
    int rc = 0;

    *vol = NULL;
    if (local)
        *local = NULL;
    pthread_rwlock_rdlock(&ctx->lock);
    node = catalog_lookup(ctx->cat, path);
    if (!node)
        rc = -ENOENT;
    else if (node->kind == CAT_DIR)
        rc = -EISDIR;
    else {
        *pool = node->pool;
        if (!(*vol = strdup(node->vol)) ||
            (local && node->local && !(*local = strdup(node->local))))
            rc = -ENOMEM;
    }
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

static bool
tree_exists(struct pool_ctx *ctx, const char *path)
{
    bool found;

    pthread_rwlock_rdlock(&ctx->lock);
    found = catalog_lookup(ctx->cat, path) != NULL;
    pthread_rwlock_unlock(&ctx->lock);
    return found;
}

/*
 * Is PATH legacy, a file or directory underneath the mount?  Its top-level
 * name exists there (legacy instances, locks, Nova's own files), or it is
 * _base/X with X only underneath (the pool's X wins).  Sets *REL to PATH
 * relative to the underlying directory.
 */
static bool
tree_legacy(struct pool_ctx *ctx, const char *path, const char **rel)
{
    const char *p = path + 1;
    char top[NAME_MAX + 1];
    size_t n;

    if (ctx->under < 0 || *path != '/' || !*p)
        return false;
    n = strcspn(p, "/");
    if (n >= sizeof(top))
        return false;
    memcpy(top, p, n);
    top[n] = '\0';
    if (strcmp(top, NAMES_UNMAPPED_DIR) == 0)
        return false;
    if (strcmp(top, NAMES_BASE_DIR) == 0 &&
        (!p[n] || tree_exists(ctx, path)))
        return false;
    if (!legacy_exists(ctx->under, strcmp(top, NAMES_BASE_DIR) ? top : p))
        return false;
    *rel = p;
    return true;
}

int
pool_mkdir(struct pool_ctx *ctx, const char *path, mode_t mode, uid_t uid,
           gid_t gid)
{
    struct tree_loc loc;
    struct cat_node *node;
    const char *rel;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_exists(ctx->under, rel) ? -EEXIST :
               legacy_mkdir(ctx->under, rel, mode, uid, gid);
    if ((rc = tree_locate(ctx, path, true, &loc)) < 0)
        return rc;
    pthread_rwlock_rdlock(&ctx->names_lock);
    if (tree_exists(ctx, path)) {
        rc = -EEXIST;
        goto out;
    }
    /* The marker keeps the directory's mode and owner. */
    if ((rc = volume_create(ctx, loc.pool, loc.vol, mode, uid, gid)) < 0)
        goto out;

    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    if ((node = catalog_add_dir(ctx->cat, path, false)))
        node->marker = true;
    pthread_rwlock_unlock(&ctx->lock);
    rc = node ? 0 : -ENOMEM;
 out:
    pthread_rwlock_unlock(&ctx->names_lock);
    return rc;
}

static void tree_keep_parent(struct pool_ctx *ctx, const char *path);

/* VOL's mode and owner: its file's where it has one here (libvirt may not
 * know the file yet), else as libvirt shows them. */
static struct xmlq_perms
tree_vol_perms(struct pool_ctx *ctx, int pool, const char *vol)
{
    AUTOFREE char *local = volume_local_path(ctx, pool, vol);
    struct stat st;

    if (local && stat(local, &st) == 0)
        return (struct xmlq_perms){ st.st_mode & 07777, st.st_uid,
                                    st.st_gid };
    return volume_perms_of(ctx, pool, vol);
}

/* Are A and B entries of one directory? */
static bool
tree_same_parent(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');

    return sa && sb && sa - a == sb - b && strncmp(a, b, sa - a) == 0;
}

int
pool_rmdir(struct pool_ctx *ctx, const char *path)
{
    struct tree_loc loc;
    struct cat_node *node;
    const char *rel;
    bool marker;
    int rc = 0;

    if (tree_legacy(ctx, path, &rel))
        return legacy_rmdir(ctx->under, rel);

    pthread_rwlock_rdlock(&ctx->lock);
    node = catalog_lookup(ctx->cat, path);
    if (!node)
        rc = -ENOENT;
    else if (node->kind != CAT_DIR)
        rc = -ENOTDIR;
    else if (node->fixed)
        rc = -EBUSY;
    else if (node->nkids > 0)
        rc = -ENOTEMPTY;
    marker = node && node->marker;
    pthread_rwlock_unlock(&ctx->lock);
    if (rc < 0)
        return rc;

    tree_keep_parent(ctx, path);    /* a directory of directories stays */
    if (marker) {
        if ((rc = tree_locate(ctx, path, true, &loc)) < 0)
            return rc;
        if ((rc = volume_delete(ctx, loc.pool, loc.vol)) < 0 && rc != -ENOENT)
            return rc;
    }
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    if ((node = catalog_lookup(ctx->cat, path)) && node->kind == CAT_DIR &&
        node->nkids == 0) {
        node->marker = false;
        catalog_remove(ctx->cat, node);
    }
    pthread_rwlock_unlock(&ctx->lock);
    return 0;
}

/*
 * A directory that exists only because of its contents would vanish with
 * its last file; give it a marker first, as rmdir(2) users expect.
 */
static void
tree_keep_parent(struct pool_ctx *ctx, const char *path)
{
    struct cat_node *node;
    AUTOFREE char *parent = NULL;
    struct tree_loc loc;
    bool needed;
    char *slash;

    if (!(parent = strdup(path)) || !(slash = strrchr(parent, '/')) ||
        slash == parent)
        return;
    *slash = '\0';
    pthread_rwlock_rdlock(&ctx->lock);
    node = catalog_lookup(ctx->cat, parent);
    /* Not only for the last file: two unlinks at once would each see the
     * other's file and neither keep the directory. */
    needed = node && node->kind == CAT_DIR && !node->marker && !node->fixed;
    pthread_rwlock_unlock(&ctx->lock);
    if (!needed || tree_locate(ctx, parent, true, &loc) < 0 ||
        volume_create(ctx, loc.pool, loc.vol, 0755, getuid(), getgid()) < 0)
        return;
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    if ((node = catalog_lookup(ctx->cat, parent)) && node->kind == CAT_DIR)
        node->marker = true;
    pthread_rwlock_unlock(&ctx->lock);
}

int
pool_unlink(struct pool_ctx *ctx, const char *path)
{
    AUTOFREE char *vol = NULL;
    struct cat_node *node;
    const char *rel;
    int pool;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_unlink(ctx->under, rel);
    pthread_rwlock_rdlock(&ctx->names_lock);
    if ((rc = tree_find_file(ctx, path, &pool, &vol, NULL)) < 0)
        goto out;
    tree_keep_parent(ctx, path);
    if ((rc = volume_delete(ctx, pool, vol)) < 0)
        goto out;
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    if ((node = catalog_lookup(ctx->cat, path)) && node->kind == CAT_FILE &&
        strcmp(node->vol, vol) == 0)
        catalog_remove(ctx->cat, node);
    pthread_rwlock_unlock(&ctx->lock);
 out:
    pthread_rwlock_unlock(&ctx->names_lock);
    return rc;
}

/* One volume to rename as part of a rename(2). */
struct tree_move {
    int pool;
    char *from;
    char *to;
};

struct tree_plan {
    struct pool_ctx *ctx;
    struct tree_move *moves;
    size_t n, alloc;
    const char *oldroot;
    const char *newroot;
    int err;
};

static void
tree_plan_add(struct tree_plan *plan, int pool, const char *from,
              const char *newpath, bool directory)
{
    struct tree_loc loc;
    struct tree_move *m;
    int rc;

    if (plan->err)
        return;
    if ((rc = tree_locate(plan->ctx, newpath, directory, &loc)) < 0) {
        plan->err = rc;
        return;
    }
    if (loc.pool != pool) {
        plan->err = -EXDEV;     /* the base pool and the disks pool */
        return;
    }
    if (plan->n == plan->alloc) {
        size_t n = plan->alloc ? plan->alloc * 2 : 16;

        if (!(m = realloc(plan->moves, n * sizeof(*m)))) {
            plan->err = -ENOMEM;
            return;
        }
        plan->moves = m;
        plan->alloc = n;
    }
    m = &plan->moves[plan->n];
    if (!(m->from = strdup(from)) || !(m->to = strdup(loc.vol))) {
        free(m->from);
        plan->err = -ENOMEM;
        return;
    }
    m->pool = pool;
    plan->n++;
}

static void
tree_plan_node(struct tree_plan *plan, struct pool_ctx *ctx,
               struct cat_node *node)
{
    AUTOFREE char *newpath = NULL;
    size_t i;

    if (asprintf(&newpath, "%s%s", plan->newroot,
                 node->path + strlen(plan->oldroot)) < 0) {
        plan->err = -ENOMEM;
        return;
    }
    if (node->kind == CAT_FILE) {
        tree_plan_add(plan, node->pool, node->vol, newpath, false);
        return;
    }
    if (node->marker) {
        struct tree_loc loc;

        if (tree_locate(ctx, node->path, true, &loc) == 0)
            tree_plan_add(plan, POOL_DISKS, loc.vol, newpath, true);
    }
    for (i = 0; i < node->nkids; i++)
        tree_plan_node(plan, ctx, node->kids[i]);
}

static void
tree_plan_free(struct tree_plan *plan)
{
    size_t i;

    for (i = 0; i < plan->n; i++) {
        free(plan->moves[i].from);
        free(plan->moves[i].to);
    }
    free(plan->moves);
}

/* Fix up the catalog after the volumes moved. */
static void
tree_relabel(struct pool_ctx *ctx, struct cat_node *node)
{
    struct tree_loc loc;
    size_t i;

    if (node->kind == CAT_DIR) {
        for (i = 0; i < node->nkids; i++)
            tree_relabel(ctx, node->kids[i]);
        return;
    }
    if (tree_locate(ctx, node->path, false, &loc) < 0)
        return;
    free(node->vol);
    node->vol = strdup(loc.vol);
    free(node->local);
    node->local = volume_local_path(ctx, node->pool, loc.vol);
}

int
pool_rename(struct pool_ctx *ctx, const char *from, const char *to,
            unsigned int flags)
{
    struct tree_plan plan = { .ctx = ctx, .oldroot = from, .newroot = to };
    struct cat_node *src, *dst;
    bool dst_marker = false, replace = false;
    struct tree_loc dst_loc;
    struct xmlq_perms dst_perms;
    unsigned long ticket[POOL_MAX] = { 0 };
    bool touched[POOL_MAX] = { false };
    int p;
    size_t i;
    int rc = 0;

    const char *rel_from, *rel_to;
    bool legacy_from, legacy_to;

    if (flags & ~RENAME_NOREPLACE)
        return -EINVAL;     /* RENAME_EXCHANGE, RENAME_WHITEOUT */
    if (tree_is_reserved_top(from) || tree_is_reserved_top(to))
        return -EPERM;
    legacy_from = tree_legacy(ctx, from, &rel_from);
    legacy_to = tree_legacy(ctx, to, &rel_to);
    if (legacy_from) {
        /* Within the legacy tree, or a new top-level name there (Nova
         * renames {uuid} to {uuid}_resize). */
        char tmp[PATH_MAX];

        if (!legacy_to && strchr(to + 1, '/') == NULL && !tree_exists(ctx, to)) {
            rel_to = to + 1;
            legacy_to = true;
        }
        if (!legacy_to)
            return -EXDEV;   /* mv copies it into the pool instead */
        snprintf(tmp, sizeof(tmp), "%s", rel_to);
        return legacy_rename(ctx->under, rel_from, tmp, flags);
    }
    if (legacy_to)
        return -EXDEV;

    pthread_rwlock_wrlock(&ctx->names_lock);
    pthread_rwlock_rdlock(&ctx->lock);
    src = catalog_lookup(ctx->cat, from);
    dst = catalog_lookup(ctx->cat, to);
    if (!src)
        rc = -ENOENT;
    else if (dst && (flags & RENAME_NOREPLACE))
        rc = -EEXIST;
    else if (dst && src->kind == CAT_FILE && dst->kind == CAT_DIR)
        rc = -EISDIR;
    else if (dst && src->kind == CAT_DIR && dst->kind == CAT_FILE)
        rc = -ENOTDIR;
    else if (dst && dst->kind == CAT_DIR && dst->nkids > 0)
        rc = -ENOTEMPTY;
    if (rc == 0) {
        dst_marker = dst && dst->kind == CAT_DIR && dst->marker;
        replace = dst && dst->kind == CAT_FILE;
        /* Work out every volume's new name before touching any. */
        tree_plan_node(&plan, ctx, src);
        rc = plan.err;
    }
    pthread_rwlock_unlock(&ctx->lock);
    if (rc < 0)
        goto cleanup;

    /* A directory left without its last entry stays, as after unlink
     * (moves out of it only). */
    if (!tree_same_parent(from, to))
        tree_keep_parent(ctx, from);
    /* An empty directory being replaced goes first (made again if the
     * rename fails). */
    if (dst_marker) {
        if ((rc = tree_locate(ctx, to, true, &dst_loc)) < 0)
            goto cleanup;
        dst_perms = tree_vol_perms(ctx, dst_loc.pool, dst_loc.vol);
        if ((rc = volume_delete(ctx, dst_loc.pool, dst_loc.vol)) < 0)
            goto cleanup;
    }
    /* The pools with files whose volumes move: libvirt learns of renames
     * there by a refresh. */
    for (i = 0; i < plan.n; i++)
        touched[plan.moves[i].pool] = ctx->pools[plan.moves[i].pool].files;
    pool_change_begin(ctx);
    for (i = 0; i < plan.n; i++) {
        if ((rc = volume_rename(ctx, plan.moves[i].pool, plan.moves[i].from,
                                plan.moves[i].to, replace)) < 0) {
            /* Put back what already moved: rename(2) is all or nothing. */
            while (i-- > 0)
                volume_rename(ctx, plan.moves[i].pool, plan.moves[i].to,
                              plan.moves[i].from, false);
            if (dst_marker)
                volume_create(ctx, dst_loc.pool, dst_loc.vol, dst_perms.mode,
                              dst_perms.uid, dst_perms.gid);
            for (p = 0; p < ctx->npools; p++)
                if (touched[p])
                    listing_request_refresh(ctx, p);
            pool_change_end(ctx);
            goto cleanup;
        }
    }
    /* Renamed in the pool's directory: libvirt learns it by a refresh,
     * asked for before the change ends so no listing meanwhile counts. */
    for (p = 0; p < ctx->npools; p++)
        if (touched[p])
            ticket[p] = listing_request_refresh(ctx, p);

    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    if ((dst = catalog_lookup(ctx->cat, to))) {
        dst->marker = false;
        catalog_remove(ctx->cat, dst);
    }
    if ((src = catalog_lookup(ctx->cat, from))) {
        if ((rc = catalog_move(ctx->cat, src, to)) == 0)
            tree_relabel(ctx, src);
    }
    pthread_rwlock_unlock(&ctx->lock);
    pool_change_end(ctx);

    /* Wait for it (bounded), so that libvirt's users see the new names
     * when rename(2) returns. */
    for (p = 0; p < ctx->npools; p++)
        if (touched[p])
            listing_wait_refresh(ctx, p, ticket[p], 2000);

 cleanup:
    pthread_rwlock_unlock(&ctx->names_lock);
    tree_plan_free(&plan);
    return rc;
}

int
pool_truncate(struct pool_ctx *ctx, const char *path, off_t size)
{
    AUTOFREE char *vol = NULL;
    AUTOFREE char *local = NULL;
    const char *rel;
    int pool;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_truncate(ctx->under, rel, size);
    if ((rc = tree_find_file(ctx, path, &pool, &vol, &local)) < 0)
        return rc;
    if (local && ctx->opts.io != POOL_IO_STREAM) {
        if (truncate(local, size) < 0)
            return -errno;
        listing_request_refresh(ctx, pool);
        return 0;
    }
    if ((rc = volume_set_length(ctx, pool, vol, size)) < 0)
        return rc;
    tree_update_size(ctx, path, vol, size);
    return 0;
}

/* chmod, chown, utimens: on the volume's file, or a directory's marker. */
static int
tree_local_target(struct pool_ctx *ctx, const char *path, char **local)
{
    struct cat_node *node;
    struct tree_loc loc;
    int rc = 0;

    *local = NULL;
    pthread_rwlock_rdlock(&ctx->lock);
    node = catalog_lookup(ctx->cat, path);
    if (!node)
        rc = -ENOENT;
    else if (node->kind == CAT_FILE)
        rc = node->local ? ((*local = strdup(node->local)) ? 0 : -ENOMEM)
                         : -EOPNOTSUPP;
    else if (node->marker && tree_locate(ctx, path, true, &loc) == 0)
        rc = (*local = volume_local_path(ctx, POOL_DISKS, loc.vol)) ?
             0 : -EOPNOTSUPP;
    else
        rc = -EOPNOTSUPP;   /* the root, _base, or an implicit directory */
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

int
pool_chmod(struct pool_ctx *ctx, const char *path, mode_t mode)
{
    AUTOFREE char *local = NULL;
    const char *rel;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_chmod(ctx->under, rel, mode);
    if ((rc = tree_local_target(ctx, path, &local)) < 0)
        return rc;
    if (chmod(local, mode & 07777) < 0)
        return -errno;
    listing_request_refresh(ctx, POOL_DISKS);  /* libvirt shows modes */
    return 0;
}

int
pool_chown(struct pool_ctx *ctx, const char *path, uid_t uid, gid_t gid)
{
    AUTOFREE char *local = NULL;
    const char *rel;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_chown(ctx->under, rel, uid, gid);
    if ((rc = tree_local_target(ctx, path, &local)) < 0)
        return rc;
    if (lchown(local, uid, gid) < 0)
        return -errno;
    listing_request_refresh(ctx, POOL_DISKS);
    return 0;
}

/* The times of a volume without a file here: the server's, only the view
 * follows (as through an open handle, io_stream_utimens()). */
static int
tree_view_times(struct pool_ctx *ctx, const char *path,
                const struct timespec tv[2])
{
    struct cat_node *node;
    int rc = -EOPNOTSUPP;

    pthread_rwlock_wrlock(&ctx->lock);
    if ((node = catalog_lookup(ctx->cat, path)) && node->kind == CAT_FILE &&
        !node->local) {
        node->mtime = node->info.mtime = pool_utime_mtime(tv, node->mtime);
        ctx->gen++;     /* a list being made carries the old info over */
        rc = 0;
    }
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

int
pool_utimens(struct pool_ctx *ctx, const char *path,
             const struct timespec tv[2])
{
    AUTOFREE char *local = NULL;
    const char *rel;
    int rc;

    if (tree_legacy(ctx, path, &rel))
        return legacy_utimens(ctx->under, rel, tv);
    if ((rc = tree_local_target(ctx, path, &local)) == -EOPNOTSUPP)
        return tree_view_times(ctx, path, tv);
    if (rc < 0)
        return rc;
    if (utimensat(AT_FDCWD, local, tv, 0) < 0)
        return -errno;
    /* libvirt shows the times (the image cache ages base images by them). */
    listing_request_refresh(ctx, POOL_DISKS);
    listing_request_refresh(ctx, POOL_BASE);
    return 0;
}

int
pool_statfs(struct pool_ctx *ctx, const char *path, struct statvfs *sv)
{
    struct pool_ref *ref = &ctx->pools[POOL_DISKS];
    virStoragePoolInfo info;

    /* A pool of files: its filesystem.  A logical pool's target is a
     * directory of device links in /dev, whose filesystem says nothing of
     * the volume group: libvirt's numbers, as for any other pool. */
    if (ref->files)
        return statvfs(ref->target, sv) < 0 ? -errno : 0;

    CONN_PIN(ctx);

    if (virStoragePoolGetInfo(ref->pool, &info) < 0) {
        pool_log("cannot read the capacity of pool '%s': %s", ref->name,
                 pool_virt_message());
        return -pool_virt_errno();
    }
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = sv->f_frsize = 4096;
    sv->f_blocks = info.capacity / 4096;
    sv->f_bfree = sv->f_bavail = info.available / 4096;
    sv->f_files = sv->f_ffree = sv->f_favail = 1000000;
    sv->f_namemax = NAMES_VOL_MAX;
    return 0;
}

int
pool_create(struct pool_ctx *ctx, const char *path, mode_t mode, uid_t uid,
            gid_t gid, int flags, struct pool_file **filep)
{
    AUTOFREE char *local = NULL;
    struct tree_loc loc;
    struct cat_node *node;
    const char *rel;
    bool found;
    int rc;

    /* Under a legacy directory (or over a legacy file): underneath. */
    if (tree_legacy(ctx, path, &rel)) {
        int fd = legacy_open(ctx->under, rel, flags | O_CREAT, mode, uid, gid);

        return fd < 0 ? fd : io_open_fd(ctx, path, fd, flags, filep);
    }
    if ((rc = tree_locate(ctx, path, false, &loc)) < 0)
        return rc;
    pthread_rwlock_rdlock(&ctx->names_lock);
    if (tree_exists(ctx, path)) {
        struct stat st;

        pthread_rwlock_unlock(&ctx->names_lock);
        if (flags & O_EXCL)
            return -EEXIST;
        /* Listed since the kernel's lookup: it takes this for a create
         * and checked no permission. */
        if (pool_getattr(ctx, path, &st) == 0 &&
            (rc = legacy_may_open(&st, flags, uid, gid)) < 0)
            return rc;
        return pool_open_file(ctx, path, flags, filep);
    }
    rc = volume_create(ctx, loc.pool, loc.vol, mode, uid, gid);
    found = rc == -EEXIST && !(flags & O_EXCL);
    if (rc < 0 && !found) {
        pthread_rwlock_unlock(&ctx->names_lock);
        return rc;
    }
    local = volume_local_path(ctx, loc.pool, loc.vol);
    if (found) {
        /* Made by someone else since the view was listed (virsh, Nova's
         * own libvirt calls): open() without O_EXCL opens it, if the
         * caller may (the kernel, taking it for a create, did not ask). */
        struct stat st;

        listing_request_refresh(ctx, loc.pool);
        if (local && stat(local, &st) == 0 &&
            (rc = legacy_may_open(&st, flags, uid, gid)) < 0) {
            pthread_rwlock_unlock(&ctx->names_lock);
            return rc;
        }
    } else {
        flags &= ~O_TRUNC;      /* new and empty */
    }

    pthread_rwlock_wrlock(&ctx->lock);
    ctx->gen++;
    node = catalog_add_file(ctx->cat, path, loc.pool, loc.vol, local, NULL);
    pthread_rwlock_unlock(&ctx->lock);
    pthread_rwlock_unlock(&ctx->names_lock);
    if (!node)
        return -ENOMEM;
    return io_open(ctx, path, loc.pool, loc.vol, local,
                   flags & ~(O_CREAT | O_EXCL), filep);
}

int
pool_open_file(struct pool_ctx *ctx, const char *path, int flags,
               struct pool_file **filep)
{
    AUTOFREE char *vol = NULL;
    AUTOFREE char *local = NULL;
    const char *rel;
    int pool;
    int rc;

    if (tree_legacy(ctx, path, &rel)) {
        int fd = legacy_open(ctx->under, rel, flags & ~O_CREAT, 0, 0, 0);

        return fd < 0 ? fd : io_open_fd(ctx, path, fd, flags, filep);
    }
    /* Not in the view, yet the kernel has the name: a listing took it
     * out since, and the kernel's entry is stale (ESTALE, as below). */
    if ((rc = tree_find_file(ctx, path, &pool, &vol, &local)) < 0)
        return rc == -ENOENT ? -ESTALE : rc;
    if ((rc = io_open(ctx, path, pool, vol, local, flags, filep)) == -ENOENT &&
        tree_forget_vanished(ctx, path, pool, vol, local)) {
        /* ESTALE: the kernel then looks the name up again, once, finds it
         * gone, and an open(O_CREAT) makes the file anew instead of
         * failing.  (Still in the view, it would be ESTALE twice.) */
        rc = -ESTALE;
    }
    return rc;
}

/* PATH's volume VOL (no local path) is SIZE bytes long: into the view.
 * GROW_ONLY: never shorter; STEP: move the generation, so that a listing
 * being made carries the old info over no more. */
static void
tree_set_size(struct pool_ctx *ctx, const char *path, const char *vol,
              off_t size, bool grow_only, bool step)
{
    struct cat_node *node;

    pthread_rwlock_wrlock(&ctx->lock);
    if ((node = catalog_lookup(ctx->cat, path)) && node->kind == CAT_FILE &&
        strcmp(node->vol, vol) == 0 &&
        (!grow_only || node->info.physical < (unsigned long long)size)) {
        node->info.physical = size;
        if (node->info.capacity < (unsigned long long)size)
            node->info.capacity = size;
        node->mtime = node->info.mtime = time(NULL);
        if (step)
            ctx->gen++;
    }
    pthread_rwlock_unlock(&ctx->lock);
}

/* A volume without a local path changed size: no need to ask libvirt. */
void
tree_update_size(struct pool_ctx *ctx, const char *path, const char *vol,
                 off_t size)
{
    tree_set_size(ctx, path, vol, size, false, true);
}

/* A write through an open handle made PATH's volume (no local path)
 * SIZE bytes long: the view says so at once, since the kernel takes a
 * file's size from it (an O_APPEND writer elsewhere would write at the
 * old end).  Cheap, for every write that grows a file: no generation
 * step (close makes one); a listing that carried the older size over
 * meanwhile is put right by the next write or the close. */
void
tree_note_size(struct pool_ctx *ctx, const char *path, const char *vol,
               off_t size)
{
    tree_set_size(ctx, path, vol, size, true, false);
}

int
pool_identity(struct pool_ctx *ctx, struct poolfs_ioc_pool *p)
{
    CONN_PIN(ctx);
    char u[VIR_UUID_STRING_BUFLEN];
    size_t at = 0;
    int i;

    if (virStoragePoolGetUUIDString(ctx->pools[POOL_DISKS].pool, u) < 0)
        return -pool_virt_errno();
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", ctx->pools[POOL_DISKS].name);
    snprintf(p->uuid, sizeof(p->uuid), "%s", u);
    snprintf(p->base, sizeof(p->base), "%s", ctx->pools[POOL_BASE].name);
    for (i = 0; i < ctx->nmap; i++) {
        int n = snprintf(p->map + at, sizeof(p->map) - at, "%s%s:%s",
                         i ? "," : "", ctx->map[i].file,
                         ctx->pools[ctx->map[i].pool].name);

        if (n < 0 || (size_t)n >= sizeof(p->map) - at)
            return -ENAMETOOLONG;
        at += n;
    }
    return 0;
}

int
pool_backend(struct pool_ctx *ctx, const char *path, const char **what)
{
    const char *rel;

    if (tree_legacy(ctx, path, &rel)) {
        if (!legacy_exists(ctx->under, rel))
            return -ENOENT;
        *what = "legacy";
        return 0;
    }
    if (!tree_exists(ctx, path))
        return -ENOENT;
    *what = "pool";
    return 0;
}

/* Are DIRFD/REL and FD on one mount, as rename(2) wants (the same
 * filesystem may be mounted twice, by a bind mount)? */
static bool
tree_same_mount(int dirfd, const char *rel, int fd)
{
    struct statx a, b;

    if (statx(dirfd, rel, 0, STATX_MNT_ID, &a) < 0 ||
        statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &b) < 0 ||
        !(a.stx_mask & b.stx_mask & STATX_MNT_ID))
        return true;        /* cannot tell: rename(2) will */
    return a.stx_mnt_id == b.stx_mnt_id;
}

/* One file of a legacy instance directory, and its volume. */
struct tree_adopt {
    char *name;
    char vol[NAMES_VOL_MAX + 1];
};

int
pool_adopt(struct pool_ctx *ctx, const char *path)
{
    struct pool_ref *ref = &ctx->pools[POOL_DISKS];
    const char *rel;
    struct stat ust, pst;
    struct dirent *de;
    DIR *dir = NULL;
    int dfd = -1, tfd = -1, rc = 0;
    char marker[NAMES_VOL_MAX + 1];
    unsigned long ticket;
    struct tree_adopt *moves = NULL;
    size_t nmoves = 0, i;

    if (!tree_legacy(ctx, path, &rel) || strchr(rel, '/') ||
        strcmp(rel, NAMES_BASE_DIR) == 0)
        return -EINVAL;
    if (!ref->local)
        return -EXDEV;
    if (fstatat(ctx->under, rel, &ust, 0) < 0)
        return -errno;
    if (!S_ISDIR(ust.st_mode))
        return -ENOTDIR;
    if ((tfd = open(ref->target, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        fstat(tfd, &pst) < 0) {
        rc = -errno;
        goto out;
    }
    if (pst.st_dev != ust.st_dev || !tree_same_mount(ctx->under, rel, tfd)) {
        rc = -EXDEV;        /* a copy, which poolfsctl does */
        goto out;
    }
    if ((dfd = openat(ctx->under, rel, O_RDONLY | O_DIRECTORY |
                      O_CLOEXEC)) < 0 || !(dir = fdopendir(dfd))) {
        rc = -errno;
        goto out;
    }
    dfd = -1;
    /* Every entry checked before any moves, and what moved put back if
     * one cannot: never half an instance in the pool. */
    while ((de = readdir(dir))) {
        struct tree_adopt *m;
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode)) {
            pool_log("adopt %s: %s is not a regular file: nothing moved",
                     rel, de->d_name);
            rc = -ENOTSUP;
            goto free_moves;
        }
        if (!(m = realloc(moves, (nmoves + 1) * sizeof(*moves)))) {
            rc = -ENOMEM;
            goto free_moves;
        }
        moves = m;
        m = &moves[nmoves];
        if ((rc = names_encode(rel, de->d_name, m->vol, sizeof(m->vol))) < 0)
            goto free_moves;
        if (faccessat(tfd, m->vol, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
            pool_log("adopt %s/%s: volume %s is already in %s: nothing moved",
                     rel, de->d_name, m->vol, ref->target);
            rc = -EEXIST;
            goto free_moves;
        }
        if (!(m->name = strdup(de->d_name))) {
            rc = -ENOMEM;
            goto free_moves;
        }
        nmoves++;
    }
    pool_change_begin(ctx);
    for (i = 0; i < nmoves; i++) {
        /* RENAME_NOREPLACE: a volume of that name is never overwritten. */
        if (volfile_rename_noreplace(dirfd(dir), moves[i].name, tfd,
                                     moves[i].vol) < 0) {
            rc = -errno;
            pool_log("adopt %s/%s into %s/%s: %s; the files moved so far are "
                     "put back", rel, moves[i].name, ref->target,
                     moves[i].vol, strerror(errno));
            while (i-- > 0)
                volfile_rename_noreplace(tfd, moves[i].vol, dirfd(dir),
                                         moves[i].name);
            break;
        }
    }
    if (rc == 0 && names_encode(rel, "", marker, sizeof(marker)) == 0) {
        int m = openat(tfd, marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
        struct stat ds;

        /* The directory's mode and owner (nova's): the tree shows the
         * marker's. */
        if (m >= 0 && fstatat(ctx->under, rel, &ds, 0) == 0 &&
            (fchown(m, ds.st_uid, ds.st_gid) < 0 ||
             fchmod(m, ds.st_mode & 07777) < 0))
            pool_log("adopt %s: the directory's owner and mode could not be "
                     "kept: %s", rel, strerror(errno));
        if (m >= 0)
            close(m);
        if (unlinkat(ctx->under, rel, AT_REMOVEDIR) < 0)
            rc = -errno;
    }
    /* libvirt learns of the volumes by a refresh; then the listing. */
    ticket = listing_request_refresh(ctx, POOL_DISKS);
    pool_change_end(ctx);
    listing_wait_refresh(ctx, POOL_DISKS, ticket, 5000);
    listing_request_relist(ctx);
 free_moves:
    for (i = 0; i < nmoves; i++)
        free(moves[i].name);
    free(moves);
 out:
    if (dir)
        closedir(dir);
    if (dfd >= 0)
        close(dfd);
    if (tfd >= 0)
        close(tfd);
    return rc;
}
