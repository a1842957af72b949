/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include <libxml/entities.h>

#include "land.h"
#include "volfile.h"

static const char *
land_virt_message(void)
{
    virErrorPtr e = virGetLastError();

    return e && e->message ? e->message : "unknown libvirt error";
}

struct pump_end
land_source(const struct land_pool *pool, virStorageVolPtr vol, int *fd)
{
    struct pump_end e = { .conn = pool->conn, .vol = vol, .fd = -1,
                          .parallel = pool->parallel, .uri = pool->uri };

    *fd = pool->streams ? -1 :
          volfile_open(pool->uri, pool->pool, vol, O_RDONLY);
    if (*fd >= 0) {
        e.conn = NULL;
        e.fd = *fd;
    }
    return e;
}

int
land_digest(const struct land_pool *pool, virStorageVolPtr vol,
            struct pump_result *res, char *err, size_t errlen)
{
    int fd;
    struct pump_end e = land_source(pool, vol, &fd);
    int rc = pump_digest(&e, NULL, NULL, res, err, errlen);

    if (fd >= 0)
        close(fd);
    return rc;
}

static void
land_delete(virStoragePoolPtr pool, const char *name)
{
    virStorageVolPtr v = virStorageVolLookupByName(pool, name);

    if (v) {
        virStorageVolDelete(v, 0);
        virStorageVolFree(v);
    }
}

/* Where a copy of NAME waits until it is complete and verified. */
static char *
land_partname(const char *name)
{
    char *partname;

    return asprintf(&partname, ".partial-%s", name) < 0 ? NULL : partname;
}

bool
land_has_partial(virStoragePoolPtr pool, const char *name)
{
    virStorageVolPtr part = NULL;
    char *partname = land_partname(name);

    if (partname && (part = virStorageVolLookupByName(pool, partname)))
        virStorageVolFree(part);
    free(partname);
    return part != NULL;
}

bool
land_unfinished(const struct land_pool *to, const char *name)
{
    virStorageVolPtr fin;
    bool unfinished = false;

    if (land_has_partial(to->pool, name) &&
        (fin = virStorageVolLookupByName(to->pool, name))) {
        unfinished = virStorageVolDelete(fin, 0) == 0;
        virStorageVolFree(fin);
    }
    return unfinished;
}

char *
land_volume_xml(const char *name)
{
    xmlChar *esc = xmlEncodeSpecialChars(NULL, BAD_CAST name);
    char *xml;

    if (!esc)
        return NULL;
    if (asprintf(&xml, "<volume><name>%s</name>"
                 "<capacity unit='bytes'>0</capacity>"
                 "<allocation unit='bytes'>0</allocation>"
                 "<target><format type='raw'/></target></volume>",
                 (const char *)esc) < 0)
        xml = NULL;
    xmlFree(esc);
    return xml;
}

/* The pool's volumes are files here: write the copy, check it, rename. */
static int
land_local(const struct land_pool *to, const char *name, const char *partname,
           virStorageVolPtr part, int fd, const struct pump_end *src,
           bool verify, pump_progress_fn progress, void *opaque,
           struct pump_result *res, char *err, size_t errlen)
{
    virStorageVolPtr fin;
    int rc;

    /* Verified as it is written: every piece read back from the file and
     * compared with what was read from the source. */
    rc = pump_copy(src, PUMP_FILE(fd), verify ? PUMP_VERIFY : 0, progress,
                   opaque, res, err, errlen);
    close(fd);
    if (rc < 0)
        return -1;
    if (volfile_rename(to->pool, partname, name) < 0) {
        if (errno == EIO) {
            /* Renamed: the copy is whole and verified under NAME, but
             * libvirt has not taken it in. */
            snprintf(err, errlen, "the copy is complete and verified as "
                     "%s, but refreshing pool '%s' failed: %s", name,
                     to->name, land_virt_message());
            return LAND_NAMED;
        }
        snprintf(err, errlen, "cannot rename %s to %s in the directory of "
                 "pool '%s': %s", partname, name, to->name,
                 errno == EEXIST ? "the volume appeared meanwhile" :
                 strerror(errno));
        return -1;
    }
    if (!(fin = virStorageVolLookupByName(to->pool, name))) {
        snprintf(err, errlen, "the copy is complete and verified as %s, "
                 "but pool '%s' does not list it after a refresh: %s", name,
                 to->name, land_virt_message());
        return LAND_NAMED;
    }
    virStorageVolFree(fin);
    return 0;
}

/* Anywhere else: upload, make the final volume from the copy, check it. */
static int
land_stream(const struct land_pool *to, const char *name,
            virStorageVolPtr part, const struct pump_end *src, bool verify,
            pump_progress_fn progress, void *opaque,
            struct pump_result *res, char *err, size_t errlen)
{
    virStorageVolPtr fin = NULL;
    struct pump_result check;
    char *xml = NULL, *desc = NULL;
    int rc = -1;

    /* libvirt re-probes a volume when an upload ends, and would copy a
     * qcow2 one (or a raw disk whose guest wrote a qcow2 header at its
     * start) by converting it.  So the head, where the format is read
     * from, is held back: the copy is raw to libvirt, is made a volume
     * under its final name byte for byte, and gets its head last. */
    if (pump_copy(src, PUMP_STREAM(to->conn, part), PUMP_HOLD_HEAD, progress,
                  opaque, res, err, errlen) < 0)
        goto out;
    if (!(desc = virStorageVolGetXMLDesc(part, 0)) ||
        !strstr(desc, "<format type='raw'/>")) {
        snprintf(err, errlen, "%s probed the copy as a format it would "
                 "convert", to->uri);
        goto out;
    }
    if (!(xml = land_volume_xml(name))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* A reflink where the destination's filesystem can (instant), else
     * a copy there. */
    if (!(fin = virStorageVolCreateXMLFrom(to->pool, xml, part,
                                           VIR_STORAGE_VOL_CREATE_REFLINK)) &&
        !(fin = virStorageVolCreateXMLFrom(to->pool, xml, part, 0))) {
        snprintf(err, errlen, "cannot make volume '%s' in pool '%s' on %s "
                 "from the copy: %s", name, to->name, to->uri,
                 land_virt_message());
        goto out;
    }
    if (res->head_len && pump_put_head(to->conn, fin, res, err, errlen) < 0)
        goto drop;
    if (verify) {
        if (land_digest(to, fin, &check, err, errlen) < 0)
            goto drop;
        if (strcmp(check.hex, res->hex) != 0 || check.length != res->length) {
            snprintf(err, errlen, "what %s holds differs from what was read "
                     "(digest %.16s..., not %.16s...)", to->uri, check.hex,
                     res->hex);
            goto drop;
        }
    }
    rc = 0;
    goto out;
 drop:
    /* If it cannot go, ".partial-NAME" must stay beside it: that is what
     * marks it unfinished for the next run (land_unfinished()). */
    if (virStorageVolDelete(fin, 0) < 0) {
        size_t n = strlen(err);

        snprintf(err + n, errlen - n, "; and the bad copy could not be "
                 "deleted: %s", land_virt_message());
        rc = LAND_STUCK;
    }
 out:
    if (fin)
        virStorageVolFree(fin);
    free(desc);
    free(xml);
    return rc;
}

int
land_volume(const struct land_pool *to, const char *name,
            const struct pump_end *src, bool verify,
            pump_progress_fn progress, void *opaque,
            struct pump_result *res, bool *local, char *err, size_t errlen)
{
    virStorageVolPtr part = NULL;
    char *partname = NULL, *pxml = NULL;
    int fd, rc = -1;

    if (local)
        *local = false;
    if (!(partname = land_partname(name)) ||
        !(pxml = land_volume_xml(partname))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    land_delete(to->pool, partname);        /* left by an interrupted run */
    if (!(part = virStorageVolCreateXML(to->pool, pxml, 0))) {
        snprintf(err, errlen, "cannot create volume '%s' in pool '%s' on "
                 "%s: %s", partname, to->name, to->uri, land_virt_message());
        goto out;
    }
    fd = to->streams ? -1 : volfile_open(to->uri, to->pool, part, O_RDWR);
    if (fd >= 0) {
        if (local)
            *local = true;
        rc = land_local(to, name, partname, part, fd, src, verify, progress,
                        opaque, res, err, errlen);
    } else {
        rc = land_stream(to, name, part, src, verify, progress, opaque, res,
                         err, errlen);
    }
    /* After a rename, this is a no-op (the name is gone).  Kept while a
     * bad NAME could not be deleted: it marks NAME unfinished. */
    if (rc != LAND_STUCK)
        land_delete(to->pool, partname);
 out:
    if (part)
        virStorageVolFree(part);
    free(pxml);
    free(partname);
    return rc;
}
