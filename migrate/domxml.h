/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * domxml: rewriting a domain's disks from files under the instances mount
 * to libvirt volumes (the nova-spec's <disk type='volume'>).  Pure libxml2,
 * unit-tested on the domain XML shapes Nova writes.
 */
#ifndef POOLFS_DOMXML_H
#define POOLFS_DOMXML_H

#include <stddef.h>

/*
 * Rewrite DOMAIN XML: every <disk type='file'> whose <source file=PATH>
 * lies under MOUNT becomes <disk type='volume'> with
 * <source pool=POOL volume=VOL/>, where MOUNT/_base/X is volume X of
 * BASE_POOL and any other path the volume poolfs maps it to in DISKS_POOL,
 * or in the pool POOL_MAP (poolfs's -o pool_map, FILE:POOL,...; NULL for
 * none) gives files of its name.  Everything else is kept as it was.  Returns the number of disks
 * rewritten (*OUT is the new document, malloc'ed), or -1 with a message in
 * ERR (a path that cannot be a volume, XML that does not parse).
 */
int domxml_transition(const char *xml, const char *mount,
                      const char *disks_pool, const char *base_pool,
                      const char *pool_map, char **out, char *err,
                      size_t errlen);

/* XML as domxml_transition() writes it, with nothing changed: what its
 * output is compared with, so that a diff shows the rewrite alone. */
char *domxml_normalize(const char *xml);

#endif /* POOLFS_DOMXML_H */
