/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * catalog: the cached view of the pools' volumes as a tree of paths.  Pure
 * data structure: whoever owns one serialises access to it (pool_ctx's
 * rwlock).  Lookups are one hash probe; readdir walks a node's children.
 */
#ifndef POOLFS_CATALOG_H
#define POOLFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum cat_kind { CAT_DIR, CAT_FILE };

struct cat_volinfo {
    unsigned long long capacity;    /* virtual size */
    unsigned long long allocation;  /* bytes allocated */
    unsigned long long physical;    /* byte length as stored */
    time_t mtime;                   /* of the volume, as libvirt tells; 0
                                     * when it does not */
};

struct cat_node {
    char *path;                 /* "/", "/uuid", "/uuid/disk" */
    const char *name;           /* last component, inside path */
    struct cat_node *parent;
    struct cat_node *hnext;     /* hash chain */
    enum cat_kind kind;
    time_t mtime;

    /* CAT_DIR */
    struct cat_node **kids;
    size_t nkids, akids;
    bool marker;                /* an empty-directory marker volume exists */
    bool fixed;                 /* root and _base: never removed */

    /* CAT_FILE */
    int pool;                   /* index into pool_ctx's pools */
    char *vol;                  /* volume name */
    char *local;                /* path on this host, or NULL */
    struct cat_volinfo info;    /* for volumes without a local path */
};

struct catalog;

struct catalog *catalog_new(void);
void catalog_free(struct catalog *cat);

struct cat_node *catalog_lookup(struct catalog *cat, const char *path);
struct cat_node *catalog_root(struct catalog *cat);

/*
 * Make sure directory PATH exists (creating parents); FIXED dirs are never
 * pruned.  Returns the node, or NULL on ENOMEM or when a file is in the way.
 */
struct cat_node *catalog_add_dir(struct catalog *cat, const char *path,
                                 bool fixed);

/* Add or replace file PATH for volume VOL of POOL.  NULL on failure. */
struct cat_node *catalog_add_file(struct catalog *cat, const char *path,
                                  int pool, const char *vol,
                                  const char *local,
                                  const struct cat_volinfo *info);

/*
 * Remove NODE (a file, or a directory with no children).  Parent
 * directories left empty are removed too unless they carry a marker or are
 * fixed.
 */
void catalog_remove(struct catalog *cat, struct cat_node *node);

/* Move NODE and everything under it to NEWPATH; returns 0 or -errno. */
int catalog_move(struct catalog *cat, struct cat_node *node,
                 const char *newpath);

/* Call FN for every file under directory NODE (recursively). */
void catalog_walk_files(struct cat_node *node,
                        void (*fn)(struct cat_node *file, void *arg),
                        void *arg);

size_t catalog_count(struct catalog *cat);

#endif /* POOLFS_CATALOG_H */
