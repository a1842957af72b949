/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

struct catalog {
    struct cat_node **buckets;
    size_t nbuckets;
    size_t count;
    struct cat_node *root;
};

static uint64_t
catalog_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return h;
}

static void
catalog_node_free(struct cat_node *node)
{
    free(node->path);
    free(node->kids);
    free(node->vol);
    free(node->local);
    free(node);
}

static void
catalog_hash_insert(struct catalog *cat, struct cat_node *node)
{
    size_t b;

    if (cat->count + 1 > cat->nbuckets * 2) {
        size_t nb = cat->nbuckets * 4;
        struct cat_node **nbk = calloc(nb, sizeof(*nbk));
        size_t i;

        if (nbk) {
            for (i = 0; i < cat->nbuckets; i++) {
                struct cat_node *n = cat->buckets[i], *next;

                for (; n; n = next) {
                    next = n->hnext;
                    b = catalog_hash(n->path) % nb;
                    n->hnext = nbk[b];
                    nbk[b] = n;
                }
            }
            free(cat->buckets);
            cat->buckets = nbk;
            cat->nbuckets = nb;
        }
    }
    b = catalog_hash(node->path) % cat->nbuckets;
    node->hnext = cat->buckets[b];
    cat->buckets[b] = node;
    cat->count++;
}

static void
catalog_hash_remove(struct catalog *cat, struct cat_node *node)
{
    struct cat_node **pp = &cat->buckets[catalog_hash(node->path) %
                                         cat->nbuckets];

    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == node) {
            *pp = node->hnext;
            cat->count--;
            return;
        }
    }
}

static struct cat_node *
catalog_node_new(const char *path, enum cat_kind kind)
{
    struct cat_node *node = calloc(1, sizeof(*node));
    const char *slash;

    if (!node || !(node->path = strdup(path))) {
        free(node);
        return NULL;
    }
    slash = strrchr(node->path, '/');
    node->name = slash && slash[1] ? slash + 1 : node->path;
    node->kind = kind;
    node->mtime = time(NULL);
    return node;
}

static int
catalog_link(struct cat_node *parent, struct cat_node *kid)
{
    if (parent->nkids == parent->akids) {
        size_t n = parent->akids ? parent->akids * 2 : 8;
        struct cat_node **k = realloc(parent->kids, n * sizeof(*k));

        if (!k)
            return -ENOMEM;
        parent->kids = k;
        parent->akids = n;
    }
    parent->kids[parent->nkids++] = kid;
    kid->parent = parent;
    parent->mtime = time(NULL);
    return 0;
}

static void
catalog_unlink(struct cat_node *kid)
{
    struct cat_node *parent = kid->parent;
    size_t i;

    if (!parent)
        return;
    for (i = 0; i < parent->nkids; i++) {
        if (parent->kids[i] == kid) {
            parent->kids[i] = parent->kids[--parent->nkids];
            break;
        }
    }
    parent->mtime = time(NULL);
    kid->parent = NULL;
}

struct catalog *
catalog_new(void)
{
    struct catalog *cat = calloc(1, sizeof(*cat));

    if (!cat)
        return NULL;
    cat->nbuckets = 64;
    if (!(cat->buckets = calloc(cat->nbuckets, sizeof(*cat->buckets))) ||
        !(cat->root = catalog_node_new("/", CAT_DIR))) {
        free(cat->buckets);
        free(cat);
        return NULL;
    }
    cat->root->fixed = true;
    catalog_hash_insert(cat, cat->root);
    return cat;
}

void
catalog_free(struct catalog *cat)
{
    size_t i;

    if (!cat)
        return;
    for (i = 0; i < cat->nbuckets; i++) {
        struct cat_node *n = cat->buckets[i], *next;

        for (; n; n = next) {
            next = n->hnext;
            catalog_node_free(n);
        }
    }
    free(cat->buckets);
    free(cat);
}

struct cat_node *
catalog_lookup(struct catalog *cat, const char *path)
{
    struct cat_node *n = cat->buckets[catalog_hash(path) % cat->nbuckets];

    for (; n; n = n->hnext)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

struct cat_node *
catalog_root(struct catalog *cat)
{
    return cat->root;
}

size_t
catalog_count(struct catalog *cat)
{
    return cat->count;
}

/* The parent directory node of PATH, created as needed. */
static struct cat_node *
catalog_parent_of(struct catalog *cat, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *ppath;
    struct cat_node *parent;

    if (!slash || slash == path)
        return cat->root;
    if (!(ppath = strndup(path, slash - path)))
        return NULL;
    parent = catalog_add_dir(cat, ppath, false);
    free(ppath);
    return parent;
}

struct cat_node *
catalog_add_dir(struct catalog *cat, const char *path, bool fixed)
{
    struct cat_node *node = catalog_lookup(cat, path);
    struct cat_node *parent;

    if (node) {
        if (node->kind != CAT_DIR)
            return NULL;
        node->fixed |= fixed;
        return node;
    }
    if (!(parent = catalog_parent_of(cat, path)))
        return NULL;
    if (!(node = catalog_node_new(path, CAT_DIR)))
        return NULL;
    if (catalog_link(parent, node) < 0) {
        catalog_node_free(node);
        return NULL;
    }
    node->fixed = fixed;
    catalog_hash_insert(cat, node);
    return node;
}

struct cat_node *
catalog_add_file(struct catalog *cat, const char *path, int pool,
                 const char *vol, const char *local,
                 const struct cat_volinfo *info)
{
    struct cat_node *node = catalog_lookup(cat, path);
    struct cat_node *parent;
    char *nvol = strdup(vol);
    char *nlocal = local ? strdup(local) : NULL;

    if (!nvol || (local && !nlocal))
        goto error;
    if (node) {
        if (node->kind != CAT_FILE)
            goto error;
        free(node->vol);
        free(node->local);
    } else {
        if (!(parent = catalog_parent_of(cat, path)) ||
            parent->kind != CAT_DIR ||
            !(node = catalog_node_new(path, CAT_FILE)))
            goto error;
        if (catalog_link(parent, node) < 0) {
            catalog_node_free(node);
            goto error;
        }
        catalog_hash_insert(cat, node);
    }
    node->pool = pool;
    node->vol = nvol;
    node->local = nlocal;
    if (info)
        node->info = *info;
    node->mtime = info && info->mtime ? info->mtime : time(NULL);
    return node;

 error:
    free(nvol);
    free(nlocal);
    return NULL;
}

void
catalog_remove(struct catalog *cat, struct cat_node *node)
{
    while (node && node != cat->root && !node->fixed) {
        struct cat_node *parent = node->parent;

        if (node->kind == CAT_DIR && node->nkids > 0)
            return;
        catalog_unlink(node);
        catalog_hash_remove(cat, node);
        catalog_node_free(node);
        /* An implicit directory lives only as long as its contents. */
        if (!parent || parent->marker || parent->nkids > 0)
            return;
        node = parent;
    }
}

static int
catalog_rekey(struct catalog *cat, struct cat_node *node, const char *oldp,
              const char *newp)
{
    size_t oldlen = strlen(oldp);
    char *path;
    const char *slash;
    size_t i;

    if (asprintf(&path, "%s%s", newp, node->path + oldlen) < 0)
        return -ENOMEM;
    catalog_hash_remove(cat, node);
    free(node->path);
    node->path = path;
    slash = strrchr(path, '/');
    node->name = slash && slash[1] ? slash + 1 : path;
    catalog_hash_insert(cat, node);
    for (i = 0; i < node->nkids; i++)
        if (catalog_rekey(cat, node->kids[i], oldp, newp) < 0)
            return -ENOMEM;
    return 0;
}

int
catalog_move(struct catalog *cat, struct cat_node *node, const char *newpath)
{
    struct cat_node *oldparent = node->parent;
    struct cat_node *parent;
    char *oldpath;
    int rc;

    if (!(parent = catalog_parent_of(cat, newpath)) || parent->kind != CAT_DIR)
        return -ENOTDIR;
    if (!(oldpath = strdup(node->path)))
        return -ENOMEM;
    catalog_unlink(node);
    if ((rc = catalog_link(parent, node)) < 0 ||
        (rc = catalog_rekey(cat, node, oldpath, newpath)) < 0) {
        free(oldpath);
        return rc;
    }
    free(oldpath);
    node->mtime = time(NULL);
    /* The old parent may now be an empty implicit directory. */
    if (oldparent && oldparent->nkids == 0 && !oldparent->marker &&
        !oldparent->fixed)
        catalog_remove(cat, oldparent);
    return 0;
}

void
catalog_walk_files(struct cat_node *node,
                   void (*fn)(struct cat_node *file, void *arg), void *arg)
{
    size_t i;

    if (node->kind == CAT_FILE) {
        fn(node, arg);
        return;
    }
    for (i = 0; i < node->nkids; i++)
        catalog_walk_files(node->kids[i], fn, arg);
}
