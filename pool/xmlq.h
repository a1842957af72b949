/* SPDX-License-Identifier: GPL-2.0-or-later */
/* xmlq: reading libvirt's XML descriptions (libxml2), for pool/ and migrate/. */
#ifndef POOLFS_XMLQ_H
#define POOLFS_XMLQ_H

#include <sys/types.h>
#include <libxml/tree.h>

/* libvirt XML parsed quietly, no network; NULL if it does not parse. */
xmlDocPtr xmlq_read(const char *xml);
/* The string value of XPath EXPR in DOC (malloc'ed), NULL if empty. */
char *xmlq_string(xmlDocPtr doc, const char *expr);

/* A volume's <target><permissions> (its file's mode and owner). */
struct xmlq_perms {
    mode_t mode;
    uid_t uid;
    gid_t gid;
};
/* Those of the volume XML in DOC into *PM: 0, or -1 if it shows none. */
int xmlq_vol_perms(xmlDocPtr doc, struct xmlq_perms *pm);

#endif /* POOLFS_XMLQ_H */
