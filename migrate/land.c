/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <libvirt/virterror.h>
#include <libxml/entities.h>

#include "land.h"
#include "qwrap.h"
#include "volfile.h"

/* Holes worth wrapping a copy as qcow2 for (qwrap.h): what libvirt would
 * read in vain when it makes NAME from a raw copy, more than what running
 * qemu-img costs. */
#define LAND_WRAP_HOLES (64ULL * 1024 * 1024)

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

/* 0 once NAME is known gone from POOL, -1 if it may still be there. */
static int
land_delete(virStoragePoolPtr pool, const char *name)
{
    virStorageVolPtr v = virStorageVolLookupByName(pool, name);
    virErrorPtr e;
    int rc;

    if (!v) {
        e = virGetLastError();
        return e && e->code == VIR_ERR_NO_STORAGE_VOL ? 0 : -1;
    }
    rc = virStorageVolDelete(v, 0);
    virStorageVolFree(v);
    return rc;
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
land_volume_xml_as(const char *name, const struct xmlq_perms *perms)
{
    xmlChar *esc = xmlEncodeSpecialChars(NULL, BAD_CAST name);
    char pxml[160] = "", *xml;

    if (!esc)
        return NULL;
    if (perms)
        snprintf(pxml, sizeof(pxml), "<permissions><mode>0%o</mode>"
                 "<owner>%u</owner><group>%u</group></permissions>",
                 (unsigned)(perms->mode & 07777), (unsigned)perms->uid,
                 (unsigned)perms->gid);
    if (asprintf(&xml, "<volume><name>%s</name>"
                 "<capacity unit='bytes'>0</capacity>"
                 "<allocation unit='bytes'>0</allocation>"
                 "<target><format type='raw'/>%s</target></volume>",
                 (const char *)esc, pxml) < 0)
        xml = NULL;
    xmlFree(esc);
    return xml;
}

char *
land_volume_xml(const char *name)
{
    return land_volume_xml_as(name, NULL);
}

bool
land_perms_of(virStorageVolPtr v, struct xmlq_perms *pm)
{
    char *xml = virStorageVolGetXMLDesc(v, 0);
    xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;
    bool ok = doc && xmlq_vol_perms(doc, pm) == 0;

    if (doc)
        xmlFreeDoc(doc);
    free(xml);
    return ok;
}

/* The pool's volumes are files here: write the copy, check it, rename. */
static int
land_local(const struct land_pool *to, const char *name, const char *partname,
           virStorageVolPtr part, int fd, const struct pump_end *src,
           bool verify, pump_progress_fn progress, void *opaque,
           struct pump_result *res, char *err, size_t errlen)
{
    virStorageVolPtr fin;
    int rc, saved;

    /* Verified as it is written: every piece read back from the file and
     * compared with what was read from the source. */
    rc = pump_copy(src, PUMP_FILE(fd), verify ? PUMP_VERIFY : 0, progress,
                   opaque, res, err, errlen);
    if (rc < 0) {
        close(fd);
        return -1;
    }
    rc = volfile_rename(to->pool, partname, name, fd);
    saved = errno;
    close(fd);
    errno = saved;
    if (rc < 0) {
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
                 errno == ESTALE ? "it is not the file this copy wrote (made "
                 "anew meanwhile: another run on the same instance?)" :
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

/*
 * Is SRC worth sending wrapped as qcow2 (qwrap.h)?  Only a file here: its
 * 64 KiB clusters with data (SEEK_DATA), which the wrapping sends whole,
 * must be hardly more than its allocation, which the plain way sends, and
 * leave LAND_WRAP_HOLES of holes for libvirt not to read.  (A stream
 * source, a copy made on a third host, goes plain: its extents are not
 * known before it is read.)
 */
static bool
land_wrap_worth(const struct pump_end *src)
{
    struct stat st;
    uint64_t clusters = 0, end = 0, length, allocation;
    off_t at = 0, data, hole;

    if (src->fd < 0 || fstat(src->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    length = (uint64_t)st.st_size;
    allocation = (uint64_t)st.st_blocks * 512;
    if (!QWRAP_FITS(length) || allocation >= length ||
        length - allocation < LAND_WRAP_HOLES)
        return false;
    while (at < st.st_size &&
           (data = lseek(src->fd, at, SEEK_DATA)) >= 0) {
        uint64_t first, last;

        if ((hole = lseek(src->fd, data, SEEK_HOLE)) < 0)
            return false;
        /* Clusters [first, last); one shared with the extent before is
         * counted once. */
        first = (uint64_t)data / QWRAP_CLUSTER;
        last = ((uint64_t)hole + QWRAP_CLUSTER - 1) / QWRAP_CLUSTER;
        if (first < end)
            first = end;
        if (last > first)
            clusters += last - first;
        if (last > end)
            end = last;
        at = hole;
    }
    return clusters * QWRAP_CLUSTER <= allocation + allocation / 16 &&
           length - clusters * QWRAP_CLUSTER >= LAND_WRAP_HOLES;
}

/*
 * Can the pool make a volume from another by a reflink (XFS, Btrfs)?  Then
 * the plain way costs nothing more there, and is kept: wrapped, qemu-img
 * would read and write the data.  Asked of two empty volumes.
 */
static bool
land_reflinks(const struct land_pool *to)
{
    virStorageVolPtr a = NULL, b = NULL;
    char names[2][64], *xa, *xb;

    snprintf(names[0], sizeof(names[0]), ".poolfs-reflink-probe-%ld-a",
             (long)getpid());
    snprintf(names[1], sizeof(names[1]), ".poolfs-reflink-probe-%ld-b",
             (long)getpid());
    xa = land_volume_xml(names[0]);
    xb = land_volume_xml(names[1]);

    land_delete(to->pool, names[0]);
    land_delete(to->pool, names[1]);
    if (xa && xb && (a = virStorageVolCreateXML(to->pool, xa, 0)))
        b = virStorageVolCreateXMLFrom(to->pool, xb, a,
                                       VIR_STORAGE_VOL_CREATE_REFLINK);
    if (b) {
        virStorageVolDelete(b, 0);
        virStorageVolFree(b);
    }
    if (a) {
        virStorageVolDelete(a, 0);
        virStorageVolFree(a);
    }
    free(xa);
    free(xb);
    return b != NULL;
}

/* Anywhere else: upload, make the final volume from the copy, check it.
 * WRAP: the copy goes as a qcow2 image of the volume (qwrap.h); when the
 * destination cannot make NAME from one (no qemu-img there), LAND_UNWRAP
 * asks for the plain way. */
#define LAND_UNWRAP (-4)
static int
land_stream(const struct land_pool *to, const char *name,
            const struct xmlq_perms *perms,
            virStorageVolPtr part, const struct pump_end *src, bool verify,
            bool wrap, pump_progress_fn progress, void *opaque,
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
     * under its final name byte for byte, and gets its head last.
     * Wrapped, the copy is a qcow2 image whose header comes last too:
     * libvirt takes it for one only once it is whole, and converts it
     * into NAME, the volume's bytes, reading its data clusters alone. */
    if (pump_copy(src, PUMP_STREAM(to->conn, part),
                  wrap ? PUMP_WRAP_QCOW2 : PUMP_HOLD_HEAD, progress,
                  opaque, res, err, errlen) < 0)
        goto out;
    if (wrap) {
        int tries;

        if (pump_put_head(to->conn, part, res, err, errlen) < 0)
            goto out;
        res->head_len = 0;
        /* libvirt refreshes the pool after an upload on a thread of its
         * own, a moment later: wait (5 s at most) to see the copy taken
         * for qcow2, else send it plain. */
        for (tries = 0; tries < 100; tries++) {
            free(desc);
            if ((desc = virStorageVolGetXMLDesc(part, 0)) &&
                strstr(desc, "<format type='qcow2'/>"))
                break;
            usleep(50 * 1000);
        }
        if (tries == 100) {
            snprintf(err, errlen, "%s did not take the copy for the qcow2 "
                     "image it is", to->uri);
            rc = LAND_UNWRAP;
            goto out;
        }
    } else if (!(desc = virStorageVolGetXMLDesc(part, 0)) ||
               !strstr(desc, "<format type='raw'/>")) {
        snprintf(err, errlen, "%s probed the copy as a format it would "
                 "convert", to->uri);
        goto out;
    }
    if (!(xml = land_volume_xml_as(name, perms))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (wrap) {
        /* "qemu-img convert -f qcow2 -O raw" there. */
        if (!(fin = virStorageVolCreateXMLFrom(to->pool, xml, part, 0))) {
            snprintf(err, errlen, "cannot make volume '%s' in pool '%s' on "
                     "%s from the qcow2 copy: %s", name, to->name, to->uri,
                     land_virt_message());
            /* Only for a missing qemu-img: any other failure of it (a full
             * pool) would fail the plain way too. */
            if (strstr(land_virt_message(), "not supported without qemu-img"))
                rc = LAND_UNWRAP;
            goto out;
        }
    } else if (!(fin = virStorageVolCreateXMLFrom(to->pool, xml, part,
                                                  VIR_STORAGE_VOL_CREATE_REFLINK)) &&
               !(fin = virStorageVolCreateXMLFrom(to->pool, xml, part, 0))) {
        /* A reflink where the destination's filesystem can (instant),
         * else a copy there. */
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
            const struct xmlq_perms *perms,
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
        !(pxml = land_volume_xml_as(partname, perms))) {
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
        rc = land_stream(to, name, perms, part, src, verify,
                         land_wrap_worth(src) && !land_reflinks(to),
                         progress, opaque, res, err, errlen);
        if (rc == LAND_UNWRAP) {
            /* Again, plain: the copy made anew from the start. */
            virStorageVolDelete(part, 0);
            virStorageVolFree(part);
            if (!(part = virStorageVolCreateXML(to->pool, pxml, 0))) {
                snprintf(err, errlen, "cannot create volume '%s' in pool "
                         "'%s' on %s: %s", partname, to->name, to->uri,
                         land_virt_message());
                rc = -1;
                goto out;
            }
            rc = land_stream(to, name, perms, part, src, verify, false,
                             progress, opaque, res, err, errlen);
        }
    }
    /* After a rename, this is a no-op (the name is gone).  Kept while a
     * bad NAME could not be deleted: it marks NAME unfinished. */
    if (rc != LAND_STUCK && land_delete(to->pool, partname) < 0 && rc == 0) {
        /* Left beside a good NAME, it would have the next run take NAME
         * for unfinished and delete it (a base image others use, say). */
        snprintf(err, errlen, "volume '%s' is copied and verified, but "
                 "'%s' beside it could not be deleted (%s)", name, partname,
                 land_virt_message());
        rc = LAND_PARTIAL_LEFT;
    }
 out:
    if (part)
        virStorageVolFree(part);
    free(pxml);
    free(partname);
    return rc;
}
