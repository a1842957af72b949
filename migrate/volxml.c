/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "volxml.h"

static uint64_t
volxml_number(xmlDocPtr doc, const char *expr)
{
    char *s = xmlq_string(doc, expr);
    uint64_t n = s ? strtoull(s, NULL, 10) : 0;

    free(s);
    return n;
}

int
volxml_parse(const char *xml, struct volxml *v)
{
    xmlDocPtr doc = xmlq_read(xml);

    memset(v, 0, sizeof(*v));
    if (!doc)
        return -1;
    v->format = xmlq_string(doc, "string(/volume/target/format/@type)");
    v->backing = xmlq_string(doc, "string(/volume/backingStore/path)");
    v->backing_format =
        xmlq_string(doc, "string(/volume/backingStore/format/@type)");
    v->capacity = volxml_number(doc, "string(/volume/capacity)");
    /* Timestamps are "seconds.nanoseconds". */
    v->atime = volxml_number(doc, "substring-before(concat(/volume/target/timestamps/atime,'.'),'.')");
    v->mtime = volxml_number(doc, "substring-before(concat(/volume/target/timestamps/mtime,'.'),'.')");
    xmlFreeDoc(doc);
    return 0;
}

void
volxml_clear(struct volxml *v)
{
    free(v->format);
    free(v->backing);
    free(v->backing_format);
    memset(v, 0, sizeof(*v));
}

char *
volxml_base_name(const char *backing)
{
    const char *p = strstr(backing, "/" NAMES_BASE_DIR "/");

    if (p && !strchr(p + strlen(NAMES_BASE_DIR) + 2, '/') &&
        p[strlen(NAMES_BASE_DIR) + 2])
        return strdup(p + strlen(NAMES_BASE_DIR) + 2);
    return NULL;
}

char *
volxml_base_name_in(const char *backing, const char *base_dir, bool *by_dir)
{
    size_t dl;

    if (by_dir)
        *by_dir = false;
    /* The pool's own path first: it may hold "/_base/" itself. */
    if (!base_dir)
        return volxml_base_name(backing);
    dl = strlen(base_dir);
    while (dl > 1 && base_dir[dl - 1] == '/')
        dl--;
    /* BASE_DIR/NAME: one component, never "." or "..". */
    if (dl > 1 && strncmp(backing, base_dir, dl) == 0 &&
        backing[dl] == '/' && backing[dl + 1] &&
        !strchr(backing + dl + 1, '/') &&
        strcmp(backing + dl + 1, ".") != 0 &&
        strcmp(backing + dl + 1, "..") != 0) {
        if (by_dir)
            *by_dir = true;
        return strdup(backing + dl + 1);
    }
    return volxml_base_name(backing);
}

char *
volxml_pool_target(const char *pool_xml)
{
    xmlDocPtr doc = xmlq_read(pool_xml);
    char *path = doc ? xmlq_string(doc, "string(/pool/target/path)") : NULL;

    xmlFreeDoc(doc);
    return path;
}
