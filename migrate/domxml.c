/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "domxml.h"
#include "names.h"

/* The pool POOL_MAP (FILE:POOL,...) puts files named NAME in, into BUF;
 * NULL if none. */
static const char *
domxml_mapped(const char *pool_map, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    const char *p = pool_map;

    while (p && *p) {
        const char *end = strchr(p, ','), *colon = strchr(p, ':');
        size_t item = end ? (size_t)(end - p) : strlen(p);

        if (colon && colon < p + item && (size_t)(colon - p) == n &&
            strncmp(p, name, n) == 0 &&
            (size_t)(p + item - colon - 1) < len) {
            snprintf(buf, len, "%.*s", (int)(p + item - colon - 1),
                     colon + 1);
            return buf;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* The pool and volume of PATH under MOUNT; 1 if it is one, 0 if PATH is
 * not under MOUNT, -1 if it is but cannot be a volume.  A pool POOL_MAP
 * names goes in POOLBUF. */
static int
domxml_locate(const char *path, const char *mount, const char *disks_pool,
              const char *base_pool, const char *pool_map, const char **pool,
              char *poolbuf, size_t poolbuflen, char *vol, size_t vollen)
{
    size_t n = strlen(mount);
    char dir[PATH_MAX], base[NAME_MAX + 1];
    const char *rel;

    while (n > 1 && mount[n - 1] == '/')
        n--;
    if (strncmp(path, mount, n) != 0 || path[n] != '/')
        return 0;
    rel = path + n + 1;
    if (names_split(rel, dir, sizeof(dir), base, sizeof(base)) < 0)
        return -1;
    if (strcmp(dir, NAMES_BASE_DIR) == 0) {
        if (names_check_component(base) < 0 || strlen(base) >= vollen)
            return -1;
        *pool = base_pool;
        strcpy(vol, base);
        return 1;
    }
    if (!(*pool = domxml_mapped(pool_map, base, poolbuf, poolbuflen)))
        *pool = disks_pool;
    return names_encode(dir, base, vol, vollen) < 0 ? -1 : 1;
}

int
domxml_transition(const char *xml, const char *mount, const char *disks_pool,
                  const char *base_pool, const char *pool_map, char **out,
                  char *err, size_t errlen)
{
    xmlDocPtr doc = xmlReadMemory(xml, strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                  XML_PARSE_NOWARNING);
    xmlXPathContextPtr x = NULL;
    xmlXPathObjectPtr disks = NULL;
    xmlChar *buf = NULL;
    int i, len, changed = 0, rc = -1;

    *out = NULL;
    if (!doc || !(x = xmlXPathNewContext(doc)) ||
        !(disks = xmlXPathEvalExpression(
              BAD_CAST "/domain/devices/disk[@type='file']/source[@file]", x))) {
        snprintf(err, errlen, "the domain XML does not parse");
        goto out;
    }
    for (i = 0; disks->nodesetval && i < disks->nodesetval->nodeNr; i++) {
        xmlNodePtr src = disks->nodesetval->nodeTab[i];
        xmlNodePtr disk = src->parent;
        xmlChar *file = xmlGetProp(src, BAD_CAST "file");
        char vol[NAMES_VOL_MAX + 1], poolbuf[256];
        const char *pool = NULL;
        int where = domxml_locate((const char *)file, mount, disks_pool,
                                  base_pool, pool_map, &pool, poolbuf,
                                  sizeof(poolbuf), vol, sizeof(vol));

        if (where < 0) {
            snprintf(err, errlen, "cannot be a volume: disk %s (under %s)",
                     (const char *)file, mount);
            xmlFree(file);
            goto out;
        }
        xmlFree(file);
        if (where == 0)
            continue;
        /* <disk type='volume'><source pool='P' volume='V'/>; the rest
         * (driver, target, serial, address, ...) stays. */
        xmlSetProp(disk, BAD_CAST "type", BAD_CAST "volume");
        xmlUnsetProp(src, BAD_CAST "file");
        xmlSetProp(src, BAD_CAST "pool", BAD_CAST pool);
        xmlSetProp(src, BAD_CAST "volume", BAD_CAST vol);
        changed++;
    }
    xmlDocDumpFormatMemory(doc, &buf, &len, 0);
    if (!buf || !(*out = strdup((const char *)buf))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = changed;
 out:
    xmlFree(buf);
    xmlXPathFreeObject(disks);
    xmlXPathFreeContext(x);
    xmlFreeDoc(doc);
    return rc;
}

char *
domxml_normalize(const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                  XML_PARSE_NOWARNING);
    xmlChar *buf = NULL;
    char *ret = NULL;
    int len;

    if (!doc)
        return NULL;
    xmlDocDumpFormatMemory(doc, &buf, &len, 0);
    if (buf)
        ret = strdup((const char *)buf);
    xmlFree(buf);
    xmlFreeDoc(doc);
    return ret;
}
