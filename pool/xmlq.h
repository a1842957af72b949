/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xmlq: reading libvirt's XML descriptions (libxml2), for pool/ and migrate/. */
#ifndef POOLFS_XMLQ_H
#define POOLFS_XMLQ_H

#include <libxml/tree.h>

/* libvirt XML parsed quietly, no network; NULL if it does not parse. */
xmlDocPtr xmlq_read(const char *xml);
/* The string value of XPath EXPR in DOC (malloc'ed), NULL if empty. */
char *xmlq_string(xmlDocPtr doc, const char *expr);

#endif /* POOLFS_XMLQ_H */
