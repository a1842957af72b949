/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * volume: create, delete, rename, resize volumes through libvirt, with the
 * volume XML built by libxml2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <libxml/tree.h>

#include "internal.h"
#include "volfile.h"
#include "xmlq.h"

char *
volume_local_path(struct pool_ctx *ctx, int pool, const char *vol)
{
    char *path;

    if (!ctx->pools[pool].local ||
        asprintf(&path, "%s/%s", ctx->pools[pool].target, vol) < 0)
        return NULL;
    return path;
}

/* The <volume> document for a new, empty raw volume. */
static char *
volume_xml(const char *name, unsigned long long capacity, mode_t mode,
           uid_t uid, gid_t gid)
{
    xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root, node, target, perms;
    xmlChar *buf = NULL;
    char num[32];
    char *ret = NULL;
    int len;

    if (!doc)
        return NULL;
    root = xmlNewNode(NULL, BAD_CAST "volume");
    xmlDocSetRootElement(doc, root);
    xmlNewTextChild(root, NULL, BAD_CAST "name", BAD_CAST name);
    snprintf(num, sizeof(num), "%llu", capacity);
    node = xmlNewTextChild(root, NULL, BAD_CAST "capacity", BAD_CAST num);
    xmlNewProp(node, BAD_CAST "unit", BAD_CAST "bytes");
    snprintf(num, sizeof(num), "%llu", capacity);
    node = xmlNewTextChild(root, NULL, BAD_CAST "allocation", BAD_CAST "0");
    xmlNewProp(node, BAD_CAST "unit", BAD_CAST "bytes");
    target = xmlNewChild(root, NULL, BAD_CAST "target", NULL);
    node = xmlNewChild(target, NULL, BAD_CAST "format", NULL);
    xmlNewProp(node, BAD_CAST "type", BAD_CAST "raw");
    perms = xmlNewChild(target, NULL, BAD_CAST "permissions", NULL);
    snprintf(num, sizeof(num), "0%o", (unsigned)(mode & 07777));
    xmlNewTextChild(perms, NULL, BAD_CAST "mode", BAD_CAST num);
    snprintf(num, sizeof(num), "%u", (unsigned)uid);
    xmlNewTextChild(perms, NULL, BAD_CAST "owner", BAD_CAST num);
    snprintf(num, sizeof(num), "%u", (unsigned)gid);
    xmlNewTextChild(perms, NULL, BAD_CAST "group", BAD_CAST num);

    xmlDocDumpMemory(doc, &buf, &len);
    if (buf)
        ret = strdup((const char *)buf);
    xmlFree(buf);
    xmlFreeDoc(doc);
    return ret;
}

/*
 * libvirt says a volume exists that is not in the pool's directory: a
 * rename or delete poolfs made there that libvirt has not seen yet.
 */
static bool
volume_libvirt_stale(struct pool_ctx *ctx, int pool, const char *vol)
{
    AUTOFREE char *local = volume_local_path(ctx, pool, vol);
    struct stat st;

    return local && lstat(local, &st) < 0 && errno == ENOENT;
}

int
volume_create(struct pool_ctx *ctx, int pool, const char *vol, mode_t mode,
              uid_t uid, gid_t gid)
{
    AUTOFREE char *xml = volume_xml(vol, 0, mode, uid, gid);
    virStorageVolPtr v;

    CONN_PIN(ctx);

    if (!xml)
        return -ENOMEM;
    v = virStorageVolCreateXML(ctx->pools[pool].pool, xml, 0);
    if (!v && pool_virt_errno() == EEXIST && ctx->pools[pool].files &&
        volume_libvirt_stale(ctx, pool, vol)) {
        /* libvirt still lists a name poolfs renamed away in the pool's
         * directory.  No refresh here: libvirtd probes volumes, which can
         * read through this very mount (a qcow2's backing file), and this
         * request would wait on it.  The file is made where libvirt would
         * make it, and libvirt learns of it in the background. */
        AUTOFREE char *local = volume_local_path(ctx, pool, vol);
        int fd = local ? open(local, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                              mode & 07777) : -1;

        if (fd < 0)
            return local ? -errno : -ENOMEM;
        if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode & 07777) < 0)
            pool_log("volume '%s': cannot set its owner and mode: %s", vol,
                     strerror(errno));
        close(fd);
        listing_request_refresh(ctx, pool);
        return 0;
    }
    if (!v) {
        int err = pool_virt_errno();

        if (err != EEXIST)
            pool_log("cannot create volume '%s' in pool '%s': %s", vol,
                     ctx->pools[pool].name, pool_virt_message());
        return -err;
    }
    virStorageVolFree(v);
    return 0;
}

static virStorageVolPtr
volume_lookup(struct pool_ctx *ctx, int pool, const char *vol)
{
    CONN_PIN(ctx);

    /* The volume holds its connection: valid after the pin goes. */
    return virStorageVolLookupByName(ctx->pools[pool].pool, vol);
}

int
volume_delete(struct pool_ctx *ctx, int pool, const char *vol)
{
    virStorageVolPtr v = volume_lookup(ctx, pool, vol);
    int rc = 0;

    if (!v) {
        AUTOFREE char *local = volume_local_path(ctx, pool, vol);

        /* libvirt may not know the name yet: a volume renamed by poolfs
         * in the pool's directory waits for the background refresh. */
        if (pool_virt_errno() == ENOENT && local && ctx->pools[pool].files) {
            if (unlink(local) < 0)
                return -errno;
            listing_request_refresh(ctx, pool);
            return 0;
        }
        rc = -pool_virt_errno();
        pool_log("cannot find volume '%s' in pool '%s': %s", vol,
                 ctx->pools[pool].name, pool_virt_message());
        return rc;
    }
    if (virStorageVolDelete(v, 0) < 0) {
        rc = -pool_virt_errno();
        pool_log("cannot delete volume '%s' from pool '%s': %s", vol,
                 ctx->pools[pool].name, pool_virt_message());
    }
    virStorageVolFree(v);
    return rc;
}

/* A pool with files: rename in its directory; libvirt learns it later. */
static int
volume_rename_local(struct pool_ctx *ctx, int pool, const char *from,
                    const char *to, bool replace)
{
    AUTOFREE char *src = volume_local_path(ctx, pool, from);
    AUTOFREE char *dst = volume_local_path(ctx, pool, to);

    if (!src || !dst)
        return -ENOMEM;
    if ((replace ? rename(src, dst)
                 : volfile_rename_noreplace(AT_FDCWD, src, AT_FDCWD, dst)) < 0) {
        int err = errno;

        if (err != EEXIST)
            pool_log("rename %s -> %s: %s", src, dst, strerror(err));
        return -err;
    }
    return 0;
}

static int volume_copy_head(virStorageVolPtr src, virStorageVolPtr dst,
                            unsigned long long len, struct pool_why *why);

/* The permissions libvirt shows for V (its file's mode and owner), so
 * that a volume made in its place keeps them; root's 0600 if none. */
static struct xmlq_perms
volume_perms(virStorageVolPtr v)
{
    struct xmlq_perms pm = { 0600, 0, 0 };
    AUTOFREE char *xml = v ? virStorageVolGetXMLDesc(v, 0) : NULL;
    xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;

    if (doc && xmlq_vol_perms(doc, &pm) < 0)
        pm = (struct xmlq_perms){ 0600, 0, 0 };
    if (doc)
        xmlFreeDoc(doc);
    return pm;
}

struct xmlq_perms
volume_perms_of(struct pool_ctx *ctx, int pool, const char *vol)
{
    virStorageVolPtr v = volume_lookup(ctx, pool, vol);
    struct xmlq_perms pm = volume_perms(v);

    if (v)
        virStorageVolFree(v);
    return pm;
}

/* Is V raw to libvirt, the one format it copies byte for byte? */
static bool
volume_is_raw(virStorageVolPtr v)
{
    AUTOFREE char *xml = virStorageVolGetXMLDesc(v, 0);

    return xml && strstr(xml, "<format type='raw'/>");
}

/* A new volume (XML) of P copied from raw volume SRC by libvirt: a reflink
 * where the filesystem can, else a copy. */
static virStorageVolPtr
volume_from_raw(virStoragePoolPtr p, const char *xml, virStorageVolPtr src)
{
    virStorageVolPtr v = virStorageVolCreateXMLFrom(
        p, xml, src, VIR_STORAGE_VOL_CREATE_REFLINK);

    return v ? v : virStorageVolCreateXMLFrom(p, xml, src, 0);
}

/*
 * A byte-for-byte copy of SRC as a new volume NAME of POOL, or NULL
 * (logged, the reason in WHY).  libvirt copies a raw volume as it is (a
 * reflink where it can) but would convert any other (a qcow2 flattened
 * onto its backing file), so those go through a download and an upload
 * of their bytes.
 */
/* Has POOL room for a copy of SRC once GOING is deleted?  0, or -ENOSPC
 * (logged); 0 too when libvirt cannot say (the copy then tells). */
static int
volume_room_for(struct pool_ctx *ctx, int pool, virStorageVolPtr src,
                virStorageVolPtr going)
{
    CONN_PIN(ctx);
    virStoragePoolInfo pi;
    virStorageVolInfo si, gi;

    if (virStoragePoolGetInfo(ctx->pools[pool].pool, &pi) < 0 ||
        virStorageVolGetInfo(src, &si) < 0 ||
        virStorageVolGetInfo(going, &gi) < 0)
        return 0;
    if (pi.available + gi.allocation >= si.allocation)
        return 0;
    pool_log("cannot rename volume '%s' over '%s' in pool '%s': %llu bytes "
             "free once '%s' is gone, and its copy takes %llu",
             virStorageVolGetName(src), virStorageVolGetName(going),
             ctx->pools[pool].name, pi.available + gi.allocation,
             virStorageVolGetName(going), si.allocation);
    return -ENOSPC;
}

static virStorageVolPtr
volume_clone_as(struct pool_ctx *ctx, int pool, virStorageVolPtr src,
                const char *name, struct pool_why *why)
{
    CONN_PIN(ctx);
    virStoragePoolPtr p = ctx->pools[pool].pool;
    /* Before the calls: every libvirt call resets the last error. */
    const char *from = virStorageVolGetName(src);
    struct xmlq_perms pm = volume_perms(src);      /* a rename keeps them */
    AUTOFREE char *xml = volume_xml(name, 0, pm.mode, pm.uid, pm.gid);
    virStorageVolInfo vi;
    virStorageVolPtr v = NULL;

    if (!xml) {
        pool_why_set(why, ENOMEM, "%s", strerror(ENOMEM));
    } else if (volume_is_raw(src)) {
        if (!(v = volume_from_raw(p, xml, src)))
            pool_why_take(why);
    } else if (virStorageVolGetInfoFlags(src, &vi,
                                         VIR_STORAGE_VOL_GET_PHYSICAL) < 0 ||
               !(v = virStorageVolCreateXML(p, xml, 0))) {
        pool_why_take(why);
    } else if (vi.allocation &&
               volume_copy_head(src, v, vi.allocation, why) < 0) {
        virStorageVolDelete(v, 0);
        virStorageVolFree(v);
        v = NULL;
    }
    if (!v)
        pool_log("cannot copy volume '%s' to '%s' in pool '%s': %s", from,
                 name, ctx->pools[pool].name, why->msg);
    return v;
}

/*
 * Any pool: clone under the new name, then delete the old volume.  An
 * existing target is replaced (as rename(2) does), but only once a copy of
 * the source has been made beside it: what fails for want of space then
 * fails before anything is deleted.
 */
static int
volume_rename_clone(struct pool_ctx *ctx, int pool, const char *from,
                    const char *to, bool replace)
{
    virStorageVolPtr src = volume_lookup(ctx, pool, from);
    virStorageVolPtr dst = NULL, old = NULL, aside = NULL;
    AUTOFREE char *asidename = NULL;
    struct pool_why why = { 0 };
    int rc = 0;

    if (!src) {
        rc = -pool_virt_errno();
        pool_log("cannot find volume '%s' in pool '%s': %s", from,
                 ctx->pools[pool].name, pool_virt_message());
        return rc;
    }
    if ((old = volume_lookup(ctx, pool, to)) && !replace) {
        rc = -EEXIST;           /* made by others, not yet in the view */
        goto cleanup;
    }
    if (old) {
        if (asprintf(&asidename, "%s.poolfs-rename", to) < 0) {
            asidename = NULL;
            rc = -ENOMEM;
            goto cleanup;
        }
        if ((aside = volume_lookup(ctx, pool, asidename))) {
            virStorageVolDelete(aside, 0);      /* an interrupted rename's */
            virStorageVolFree(aside);
        }
        if (!(aside = volume_clone_as(ctx, pool, src, asidename, &why))) {
            rc = -why.err;
            goto cleanup;
        }
        /* The copy under TO comes after TO is gone: a pool with room for
         * the aside copy but not for that one fails here, before. */
        if ((rc = volume_room_for(ctx, pool, src, old)) < 0)
            goto cleanup;
        if (virStorageVolDelete(old, 0) < 0) {
            rc = -pool_virt_errno();
            pool_log("cannot replace volume '%s' in pool '%s': %s", to,
                     ctx->pools[pool].name, pool_virt_message());
            goto cleanup;
        }
    }
    if (!(dst = volume_clone_as(ctx, pool, aside ? aside : src, to, &why))) {
        rc = -why.err;
        if (old)
            pool_log("volume '%s' was replaced, but the copy of '%s' could "
                     "not take its name; '%s' is unchanged", to, from, from);
        goto cleanup;
    }
    if (virStorageVolDelete(src, 0) < 0) {
        rc = -pool_virt_errno();
        pool_log("copied volume '%s' to '%s' but cannot delete it: %s", from,
                 to, pool_virt_message());
    }

 cleanup:
    if (aside) {
        virStorageVolDelete(aside, 0);
        virStorageVolFree(aside);
    }
    if (old)
        virStorageVolFree(old);
    if (dst)
        virStorageVolFree(dst);
    virStorageVolFree(src);
    return rc;
}

int
volume_rename(struct pool_ctx *ctx, int pool, const char *from,
              const char *to, bool replace)
{
    if (ctx->pools[pool].files)
        return volume_rename_local(ctx, pool, from, to, replace);
    return volume_rename_clone(ctx, pool, from, to, replace);
}

/* Copy the first LEN bytes of SRC into the (empty) volume DST; on failure
 * the reason is in WHY. */
static int
volume_copy_head(virStorageVolPtr src, virStorageVolPtr dst,
                 unsigned long long len, struct pool_why *why)
{
    /* The streams on the volumes' connection (there may be a newer). */
    virStreamPtr down = virStreamNew(virStorageVolGetConnect(src), 0);
    virStreamPtr up = down ? virStreamNew(virStorageVolGetConnect(dst), 0)
                           : NULL;
    AUTOFREE char *buf = malloc(1024 * 1024);
    unsigned long long done = 0;
    int rc = -1;

    if (!down || !up || !buf ||
        virStorageVolDownload(src, down, 0, len, 0) < 0 ||
        virStorageVolUpload(dst, up, 0, len, 0) < 0)
        goto cleanup;
    while (done < len) {
        int n = virStreamRecv(down, buf, 1024 * 1024), off = 0;

        if (n == 0)
            pool_why_set(why, EIO, "the source ended at byte %llu of %llu "
                         "(did it shrink meanwhile?)", done, len);
        if (n <= 0)
            goto cleanup;
        while (off < n) {
            int w = virStreamSend(up, buf + off, n - off);

            if (w < 0)
                goto cleanup;
            off += w;
        }
        done += n;
    }
    if (virStreamFinish(down) < 0 || virStreamFinish(up) < 0)
        goto cleanup;
    if ((rc = volume_check_length(dst, virStorageVolGetName(dst), len)) < 0) {
        pool_why_set(why, -rc, "the copy ended short");
        rc = -1;
        goto cleanup;
    }
    rc = 0;

 cleanup:
    if (rc < 0) {
        if (!buf)
            pool_why_set(why, ENOMEM, "%s", strerror(ENOMEM));
        pool_why_take(why);         /* before the aborts reset it */
        if (down)
            virStreamAbort(down);
        if (up)
            virStreamAbort(up);
    }
    if (down)
        virStreamFree(down);
    if (up)
        virStreamFree(up);
    return rc;
}

/*
 * libvirt has no byte-level shrink (virStorageVolResize refuses to go below
 * the allocation, and would resize a qcow2's virtual disk), so a file cut
 * short (O_TRUNC, console.log rewritten) becomes a new volume holding the
 * head of the old one: copied aside first, so a failure loses nothing.
 */
static int
volume_shrink(struct pool_ctx *ctx, int pool, virStorageVolPtr v,
              const char *vol, unsigned long long size)
{
    CONN_PIN(ctx);
    virStoragePoolPtr p = ctx->pools[pool].pool;
    AUTOFREE char *tmpname = NULL;
    AUTOFREE char *xml = NULL;
    AUTOFREE char *tmpxml = NULL;
    virStorageVolPtr tmp = NULL;
    virStorageVolPtr fresh = NULL;
    struct pool_why why = { 0 };
    struct xmlq_perms pm = volume_perms(v);
    int rc = -EIO;

    if (asprintf(&tmpname, "%s.poolfs-shrink", vol) < 0 ||
        !(xml = volume_xml(vol, 0, pm.mode, pm.uid, pm.gid)) ||
        !(tmpxml = volume_xml(tmpname, 0, 0600, 0, 0)))
        return -ENOMEM;
    bool gone = false;          /* V deleted: TMP may be all there is */

    if (size > 0 &&
        (!(tmp = virStorageVolCreateXML(p, tmpxml, 0)) ||
         volume_copy_head(v, tmp, size, &why) < 0))
        goto error;
    if (virStorageVolDelete(v, 0) < 0)
        goto error;
    gone = true;
    if (!(fresh = virStorageVolCreateXML(p, xml, 0)))
        goto error;
    if (tmp && volume_copy_head(tmp, fresh, size, &why) < 0)
        goto error;
    rc = 0;
    goto cleanup;

 error:
    pool_why_take(&why);
    rc = -why.err;
    pool_log("cannot shrink volume '%s' of pool '%s' to %llu bytes: %s%s",
             vol, ctx->pools[pool].name, size, why.msg,
             gone && tmp ? "; its head is kept in the volume with suffix "
                           ".poolfs-shrink" : "");
    if (gone && tmp) {
        /* Keep it, and no half copy under the name. */
        virStorageVolFree(tmp);
        tmp = NULL;
        if (fresh) {
            virStorageVolDelete(fresh, 0);
            virStorageVolFree(fresh);
            fresh = NULL;
        }
    }
 cleanup:
    if (tmp) {
        virStorageVolDelete(tmp, 0);
        virStorageVolFree(tmp);
    }
    if (fresh)
        virStorageVolFree(fresh);
    return rc;
}

/*
 * An upload that libvirtd acknowledged did not always land: its file thread
 * writes the last messages after the stream's end was confirmed, and
 * libvirt 9.0 drops that thread's error when it closes the stream
 * (virFDStreamCloseInt), so a pool that fills up at the end of an upload
 * looks like success.  Uploads here extend what they write (holes with
 * ftruncate), so a volume that is a file must be at least END bytes long.
 * 0, or -ENOSPC (logged) when it is shorter.
 */
int
volume_check_length(virStorageVolPtr v, const char *name,
                    unsigned long long end)
{
    virStorageVolInfo vi;

    if (virStorageVolGetInfoFlags(v, &vi, VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
        int err = pool_virt_errno();

        pool_log("cannot check what an upload to volume '%s' wrote: %s",
                 name, pool_virt_message());
        return -err;
    }
    /* A file's length; a device's or a network volume's size says
     * nothing about what was written. */
    if (vi.type != VIR_STORAGE_VOL_FILE || vi.allocation >= end)
        return 0;
    pool_log("upload to volume '%s' failed: %llu bytes sent, %llu there "
             "(libvirtd's write failed after the stream ended: is the pool "
             "full?)", name, end, vi.allocation);
    return -ENOSPC;
}

/* Extend VOL from CUR to SIZE bytes with a hole: a sparse upload of
 * nothing but a hole, which libvirt ends with ftruncate().  Byte-level,
 * whatever the volume's format (virStorageVolResize would resize a qcow2
 * image's virtual disk instead). */
static int
volume_extend(virStorageVolPtr v, unsigned long long cur,
              unsigned long long size, struct pool_why *why)
{
    virStreamPtr st = virStreamNew(virStorageVolGetConnect(v), 0);
    int rc = -1;

    if (st &&
        virStorageVolUpload(v, st, cur, 0,
                            VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) == 0 &&
        virStreamSendHole(st, size - cur, 0) == 0 &&
        virStreamFinish(st) == 0) {
        rc = 0;
    } else {
        pool_why_take(why);         /* before the abort resets it */
        if (st)
            virStreamAbort(st);
    }
    if (st)
        virStreamFree(st);
    return rc;
}

int
volume_set_length(struct pool_ctx *ctx, int pool, const char *vol,
                  unsigned long long size)
{
    virStorageVolPtr v = volume_lookup(ctx, pool, vol);
    virStorageVolInfo info;
    int rc = 0;

    if (!v || virStorageVolGetInfoFlags(v, &info,
                                        VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
        rc = -pool_virt_errno();
        pool_log("cannot find volume '%s' in pool '%s': %s", vol,
                 ctx->pools[pool].name, pool_virt_message());
        goto out;
    }
    /* GET_PHYSICAL puts the byte length in the allocation field. */
    if (size > info.allocation) {
        struct pool_why why = { 0 };

        if (volume_extend(v, info.allocation, size, &why) < 0) {
            rc = -why.err;
            pool_log("cannot extend volume '%s' of pool '%s' to %llu "
                     "bytes: %s", vol, ctx->pools[pool].name, size, why.msg);
        } else {
            /* libvirtd's ftruncate() ran after the stream ended: its
             * error reaches nobody (libvirt keeps close()'s result). */
            rc = volume_check_length(v, vol, size);
        }
    } else if (size < info.allocation) {
        /* The volume is briefly gone: no listing taken meanwhile may be
         * believed. */
        pool_change_begin(ctx);
        rc = volume_shrink(ctx, pool, v, vol, size);
        pool_change_end(ctx);
    }
 out:
    if (v)
        virStorageVolFree(v);
    return rc;
}

int
volume_info(struct pool_ctx *ctx, int pool, const char *vol,
            struct cat_volinfo *info)
{
    virStorageVolPtr v = volume_lookup(ctx, pool, vol);
    virStorageVolInfo vi;
    int rc = 0;

    if (!v)
        return -pool_virt_errno();
    if (virStorageVolGetInfoFlags(v, &vi, VIR_STORAGE_VOL_GET_PHYSICAL) < 0) {
        rc = -pool_virt_errno();
    } else {
        AUTOFREE char *xml = NULL;
        xmlDocPtr doc;

        info->capacity = vi.capacity;
        info->physical = vi.allocation;   /* GET_PHYSICAL puts it here */
        if (virStorageVolGetInfo(v, &vi) == 0)
            info->allocation = vi.allocation;
        else
            info->allocation = info->physical;
        /* The file's mtime where there is one (dir, fs, netfs pools):
         * Nova's image cache ages base images by it. */
        info->mtime = 0;
        if ((xml = virStorageVolGetXMLDesc(v, 0)) && (doc = xmlq_read(xml))) {
            AUTOFREE char *t = xmlq_string(doc,
                "string(/volume/target/timestamps/mtime)");

            if (t && *t)
                info->mtime = (time_t)strtoll(t, NULL, 10);
            xmlFreeDoc(doc);
        }
    }
    virStorageVolFree(v);
    return rc;
}

/*
 * Make DST a copy of SRC inside one pool with virStorageVolCreateXMLFrom
 * (a reflink where the filesystem can), so no data passes through poolfs.
 * Only for volumes libvirt takes for raw: it would convert a qcow2 (and
 * flatten its backing chain), and a file copy must be byte for byte.
 * -EOPNOTSUPP tells the caller to copy the bytes itself.
 */
int
volume_clone(struct pool_ctx *ctx, int pool, const char *src, const char *dst)
{
    CONN_PIN(ctx);
    virStoragePoolPtr p = ctx->pools[pool].pool;
    virStorageVolPtr s = volume_lookup(ctx, pool, src);
    virStorageVolPtr d = NULL, n = NULL;
    AUTOFREE char *xml = NULL;
    struct xmlq_perms pm = { 0644, 0, 0 };
    int rc = -EOPNOTSUPP;

    if (!s || !volume_is_raw(s))
        goto out;
    /* The destination exists (cp created it, empty, with the caller's
     * owner and mode): replace it, keeping those. */
    if ((d = volume_lookup(ctx, pool, dst)))
        pm = volume_perms(d);
    if (!(xml = volume_xml(dst, 0, pm.mode, pm.uid, pm.gid)))
        goto out;
    if (d && virStorageVolDelete(d, 0) < 0) {
        rc = -pool_virt_errno();
        goto out;
    }
    if (!(n = volume_from_raw(p, xml, s))) {
        rc = -pool_virt_errno();
        pool_log("cannot copy volume '%s' to '%s' in pool '%s': %s", src,
                 dst, ctx->pools[pool].name, pool_virt_message());
        /* cp's empty file must not vanish with the failure. */
        volume_create(ctx, pool, dst, pm.mode, pm.uid, pm.gid);
        goto out;
    }
    rc = 0;
 out:
    if (n)
        virStorageVolFree(n);
    if (d)
        virStorageVolFree(d);
    if (s)
        virStorageVolFree(s);
    return rc;
}
