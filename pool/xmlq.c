/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "xmlq.h"

xmlDocPtr
xmlq_read(const char *xml)
{
    return xmlReadMemory(xml, strlen(xml), "libvirt.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR |
                         XML_PARSE_NOWARNING);
}

int
xmlq_vol_perms(xmlDocPtr doc, struct xmlq_perms *pm)
{
    char *mode = xmlq_string(doc, "string(/volume/target/permissions/mode)");
    char *owner = xmlq_string(doc, "string(/volume/target/permissions/owner)");
    char *group = xmlq_string(doc, "string(/volume/target/permissions/group)");
    int rc = -1;

    if (mode && owner && group) {
        pm->mode = strtoul(mode, NULL, 8) & 07777;
        pm->uid = strtoul(owner, NULL, 10);
        pm->gid = strtoul(group, NULL, 10);
        rc = 0;
    }
    free(mode);
    free(owner);
    free(group);
    return rc;
}

char *
xmlq_string(xmlDocPtr doc, const char *expr)
{
    xmlXPathContextPtr x = xmlXPathNewContext(doc);
    xmlXPathObjectPtr o = x ? xmlXPathEvalExpression(BAD_CAST expr, x) : NULL;
    char *ret = NULL;

    if (o && o->type == XPATH_STRING && o->stringval && *o->stringval)
        ret = strdup((const char *)o->stringval);
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    return ret;
}
