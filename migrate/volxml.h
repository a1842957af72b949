/* SPDX-License-Identifier: GPL-2.0-or-later */
/* volxml: the few facts poolfsctl reads from a volume's XML (libxml2). */
#ifndef POOLFS_VOLXML_H
#define POOLFS_VOLXML_H

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

#endif /* POOLFS_VOLXML_H */
