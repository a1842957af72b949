/* SPDX-License-Identifier: GPL-2.0-or-later */
/* volxml: the few facts poolfsctl reads from a volume's XML (libxml2). */
#ifndef POOLFS_VOLXML_H
#define POOLFS_VOLXML_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <libxml/tree.h>

#include "xmlq.h"

struct volxml {
    char *format;           /* target format type, or NULL */
    char *backing;          /* backingStore path, or NULL */
    char *backing_format;
    uint64_t capacity;
    time_t atime, mtime;    /* 0 when libvirt gave none */
};

/* Parse XML (virStorageVolGetXMLDesc); 0 or -1. */
int volxml_parse(const char *xml, struct volxml *v);
void volxml_clear(struct volxml *v);

/* The base image a backing path names (MOUNT/_base/NAME), malloc'ed, or
 * NULL when it is not one. */
char *volxml_base_name(const char *backing);

/* The same, also for BASE_DIR/NAME: the base pool's own target path, as
 * a volume made with libvirt (a backingStore naming the image cache
 * pool's volume) is backed.  BASE_DIR may be NULL.  *BY_DIR (if not
 * NULL) tells which of the two matched. */
char *volxml_base_name_in(const char *backing, const char *base_dir,
                          bool *by_dir);

/* A pool's /pool/target/path (its directory, or /dev/VG of a logical
 * pool) from its XML, malloc'ed; NULL if it has none. */
char *volxml_pool_target(const char *pool_xml);

#endif /* POOLFS_VOLXML_H */
