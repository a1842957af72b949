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
#include <libxml/tree.h>

#include "internal.h"

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

int
volume_create(struct pool_ctx *ctx, int pool, const char *vol, mode_t mode,
              uid_t uid, gid_t gid)
{
    AUTOFREE char *xml = volume_xml(vol, 0, mode, uid, gid);
    virStorageVolPtr v;

    if (!xml)
        return -ENOMEM;
    if (!(v = virStorageVolCreateXML(ctx->pools[pool].pool, xml, 0))) {
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
        if (pool_virt_errno() == ENOENT && local) {
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
                    const char *to)
{
    AUTOFREE char *src = volume_local_path(ctx, pool, from);
    AUTOFREE char *dst = volume_local_path(ctx, pool, to);

    if (!src || !dst)
        return -ENOMEM;
    if (rename(src, dst) < 0) {
        int err = errno;

        pool_log("rename %s -> %s: %s", src, dst, strerror(err));
        return -err;
    }
    listing_request_refresh(ctx, pool);
    return 0;
}

/* Any pool: clone under the new name, then delete the old volume. */
static int
volume_rename_clone(struct pool_ctx *ctx, int pool, const char *from,
                    const char *to)
{
    virStorageVolPtr src = volume_lookup(ctx, pool, from);
    virStorageVolPtr dst = NULL;
    virStorageVolPtr old = NULL;
    AUTOFREE char *xml = NULL;
    int rc = 0;

    if (!src) {
        rc = -pool_virt_errno();
        pool_log("cannot find volume '%s' in pool '%s': %s", from,
                 ctx->pools[pool].name, pool_virt_message());
        return rc;
    }
    /* rename(2) replaces the target. */
    if ((old = volume_lookup(ctx, pool, to))) {
        if (virStorageVolDelete(old, 0) < 0) {
            rc = -pool_virt_errno();
            pool_log("cannot replace volume '%s' in pool '%s': %s", to,
                     ctx->pools[pool].name, pool_virt_message());
            goto cleanup;
        }
    }
    if (!(xml = volume_xml(to, 0, 0600, 0, 0))) {
        rc = -ENOMEM;
        goto cleanup;
    }
    if (!(dst = virStorageVolCreateXMLFrom(ctx->pools[pool].pool, xml, src,
                                           0))) {
        rc = -pool_virt_errno();
        pool_log("cannot copy volume '%s' to '%s' in pool '%s': %s", from,
                 to, ctx->pools[pool].name, pool_virt_message());
        goto cleanup;
    }
    if (virStorageVolDelete(src, 0) < 0) {
        rc = -pool_virt_errno();
        pool_log("copied volume '%s' to '%s' but cannot delete it: %s", from,
                 to, pool_virt_message());
    }

 cleanup:
    if (old)
        virStorageVolFree(old);
    if (dst)
        virStorageVolFree(dst);
    virStorageVolFree(src);
    return rc;
}

int
volume_rename(struct pool_ctx *ctx, int pool, const char *from,
              const char *to)
{
    if (ctx->pools[pool].local)
        return volume_rename_local(ctx, pool, from, to);
    return volume_rename_clone(ctx, pool, from, to);
}

int
volume_resize(struct pool_ctx *ctx, int pool, const char *vol,
              unsigned long long size)
{
    virStorageVolPtr v = volume_lookup(ctx, pool, vol);
    virStorageVolInfo info;
    unsigned int flags = 0;
    int rc = 0;

    if (!v) {
        rc = -pool_virt_errno();
        pool_log("cannot find volume '%s' in pool '%s': %s", vol,
                 ctx->pools[pool].name, pool_virt_message());
        return rc;
    }
    if (virStorageVolGetInfo(v, &info) == 0 && size < info.capacity)
        flags |= VIR_STORAGE_VOL_RESIZE_SHRINK;
    if (virStorageVolResize(v, size, flags) < 0) {
        rc = -pool_virt_errno();
        pool_log("cannot resize volume '%s' in pool '%s' to %llu bytes: %s",
                 vol, ctx->pools[pool].name, size, pool_virt_message());
    }
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
        info->capacity = vi.capacity;
        info->physical = vi.allocation;   /* GET_PHYSICAL puts it here */
        if (virStorageVolGetInfo(v, &vi) == 0)
            info->allocation = vi.allocation;
        else
            info->allocation = info->physical;
    }
    virStorageVolFree(v);
    return rc;
}
