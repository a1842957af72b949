/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * land: bring a copy into a pool under its final name, never half-written
 * there.  The data goes into ".partial-NAME" first and is verified; only
 * then does it get NAME.  Where the pool's volumes are files on this host
 * (volfile.h), the copy is written there directly and renamed; elsewhere
 * it is uploaded with a sparse stream and made NAME by createXMLFrom (a
 * copy on that host: libvirt has no rename).  Used by `migrate` and
 * `adopt`.
 */
#ifndef POOLFS_LAND_H
#define POOLFS_LAND_H

#include <stdbool.h>
#include <libvirt/libvirt.h>

#include "pump.h"
#include "xmlq.h"

/* A pool to land volumes in. */
struct land_pool {
    virConnectPtr conn;
    const char *uri;
    virStoragePoolPtr pool;
    const char *name;           /* the pool's, for messages */
    bool streams;               /* never its files: always libvirt streams */
    int parallel;               /* streams at once reading a volume of it */
};

/*
 * Copy SRC into POOL as volume NAME, which must not exist yet.  With
 * VERIFY, what the pool holds is read back and compared with what was read
 * from SRC.  0, or with the reason in ERR: -1, nothing left under NAME;
 * LAND_NAMED, NAME holds the whole copy, verified, but libvirt did not take
 * it in (a failed pool refresh); LAND_STUCK, NAME holds a bad copy that
 * could not be deleted, and ".partial-NAME" stays beside it so that the
 * next run replaces it; LAND_PARTIAL_LEFT (below).  *LOCAL (if LOCAL) says which way the data went.
 * PERMS: the new volume's mode and owner (NULL: libvirt's default, root's
 * 0600).
 */
#define LAND_NAMED (-2)
#define LAND_STUCK (-3)
/* NAME is whole and verified, but ".partial-NAME" could not be deleted:
 * left, it would have the next run take NAME for unfinished. */
#define LAND_PARTIAL_LEFT (-5)
int land_volume(const struct land_pool *to, const char *name,
                const struct xmlq_perms *perms,
                const struct pump_end *src, bool verify,
                pump_progress_fn progress, void *opaque,
                struct pump_result *res, bool *local,
                char *err, size_t errlen);

/*
 * Is volume NAME the unfinished work of an interrupted land_volume()?  It
 * is while ".partial-NAME" is still there: that goes only once NAME is
 * verified.  (With streams, NAME is made by a copy on the destination's
 * host; a daemon killed during that copy leaves part of it.)  Such a
 * volume is deleted, and true returned, so that the caller lands it anew.
 */
bool land_unfinished(const struct land_pool *to, const char *name);

/* The XML of an empty raw volume NAME (any characters a volume name may
 * hold, '&' and '<' among them, escaped), malloc'ed; NULL if out of
 * memory. */
char *land_volume_xml(const char *name);
/* The same with PERMS (NULL: none given, libvirt's default). */
char *land_volume_xml_as(const char *name, const struct xmlq_perms *perms);
/* V's permissions, as libvirt shows them, into *PM; false if none. */
bool land_perms_of(virStorageVolPtr v, struct xmlq_perms *pm);

/* Is ".partial-NAME" in POOL (NAME unfinished)?  Changes nothing. */
bool land_has_partial(virStoragePoolPtr pool, const char *name);

/* The digest of volume VOL of POOL, read from its file here if it can be. */
int land_digest(const struct land_pool *pool, virStorageVolPtr vol,
                struct pump_result *res, char *err, size_t errlen);

/*
 * The end to read volume VOL of POOL from: its file here if it can be
 * (*FD is then set, to close after), else a stream.
 */
struct pump_end land_source(const struct land_pool *pool, virStorageVolPtr vol,
                            int *fd);

#endif /* POOLFS_LAND_H */
