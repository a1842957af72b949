/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * transition: `poolfsctl transition`, a domain's persistent definition
 * moved from files under the instances mount to libvirt volumes, so that
 * QEMU opens the pool volumes directly instead of through FUSE.  It takes
 * effect at the domain's next boot or migration, as the nova-spec plans.
 */
#include <getopt.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <libxml/xpath.h>

#include "ctl.h"
#include "ctlproto.h"
#include "domxml.h"
#include "xmlq.h"
#include "names.h"

static int
transition_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* A unified diff of the two definitions on stdout (diff(1), run without a
 * shell: the domain's name goes in as an argument, never as shell text). */
static void
transition_diff(const char *name, const char *old, const char *new)
{
    char a[] = "/tmp/poolfsctl-old-XXXXXX", b[] = "/tmp/poolfsctl-new-XXXXXX";
    int fa = mkstemp(a), fb = mkstemp(b);
    char *la = NULL, *lb = NULL;

    if (fa >= 0 && fb >= 0 && transition_write(a, old) == 0 &&
        transition_write(b, new) == 0 &&
        asprintf(&la, "%s (defined)", name) >= 0 &&
        asprintf(&lb, "%s (transitioned)", name) >= 0) {
        char *argv[] = { "diff", "-u", "--label", la, "--label", lb, a, b,
                         NULL };
        pid_t pid;
        int status;

        fflush(stdout);
        if (posix_spawnp(&pid, "diff", NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, &status, 0) < 0)
            ctl_error("cannot run diff");
    }
    free(la);
    free(lb);
    if (fa >= 0) {
        close(fa);
        unlink(a);
    }
    if (fb >= 0) {
        close(fb);
        unlink(b);
    }
}

/*
 * No disk under MOUNT may still be a legacy file: its volume, if one of the
 * name exists (an adoption cut short), holds stale data.  poolfs says what
 * backs each path (ctl_poolfs_backend()); where it cannot be asked (no
 * mount here), the volume check that follows is all there is.
 */
static int
transition_check_legacy(const char *xml, const char *mount)
{
    xmlDocPtr doc = xmlq_read(xml);
    xmlXPathContextPtr x = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o = x ? xmlXPathEvalExpression(
        BAD_CAST "/domain/devices/disk[@type='file']/source/@file", x) : NULL;
    size_t mlen = strlen(mount);
    int i, legacy = 0;

    while (mlen > 1 && mount[mlen - 1] == '/')
        mlen--;
    for (i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        xmlChar *path = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
        char kind[32];

        if (path && strncmp((const char *)path, mount, mlen) == 0 &&
            path[mlen] == '/' &&
            ctl_poolfs_backend((const char *)path, kind, sizeof(kind)) &&
            strcmp(kind, "legacy") == 0) {
            ctl_error("%s is still on legacy storage: adopt the instance "
                      "first (poolfsctl adopt), then transition it",
                      (const char *)path);
            legacy++;
        }
        xmlFree(path);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    xmlFreeDoc(doc);
    return legacy ? -1 : 0;
}

/* Every volume the new definition names must exist (read as XML: the
 * writer may put other attributes of <source> before pool= and volume=). */
static int
transition_check_volumes(virConnectPtr conn, const char *xml)
{
    xmlDocPtr doc = xmlq_read(xml);
    xmlXPathContextPtr x = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o = x ? xmlXPathEvalExpression(
        BAD_CAST "/domain/devices/disk[@type='volume']/source", x) : NULL;
    int i, missing = 0;

    if (!o) {
        ctl_error("the new domain XML does not parse");
        missing = 1;
    }
    for (i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        xmlNodePtr src = o->nodesetval->nodeTab[i];
        xmlChar *pool = xmlGetProp(src, BAD_CAST "pool");
        xmlChar *vol = xmlGetProp(src, BAD_CAST "volume");
        virStoragePoolPtr sp = NULL;
        virStorageVolPtr v = NULL;

        if (!pool || !vol ||
            !(sp = virStoragePoolLookupByName(conn, (const char *)pool)) ||
            !(v = virStorageVolLookupByName(sp, (const char *)vol))) {
            ctl_error("volume '%s' is not in pool '%s': adopt the instance "
                      "first (poolfsctl adopt), then transition it",
                      vol ? (const char *)vol : "?",
                      pool ? (const char *)pool : "?");
            missing++;
        }
        if (v)
            virStorageVolFree(v);
        if (sp)
            virStoragePoolFree(sp);
        xmlFree(pool);
        xmlFree(vol);
    }
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    if (doc)
        xmlFreeDoc(doc);
    return missing ? -1 : 0;
}

static void
transition_usage(void)
{
    printf("usage: poolfsctl [-c URI] transition [--mount DIR] [--dry-run] "
           "DOMAIN\n"
           "\n"
           "Rewrite the persistent definition of DOMAIN (name or UUID):\n"
           "every <disk type='file'> whose source lies under the mount\n"
           "(default /var/lib/nova/instances) becomes <disk type='volume'>\n"
           "with <source pool=... volume='{uuid}_{name}'/>.  It takes\n"
           "effect at the domain's next boot or migration.  --dry-run prints\n"
           "the change as a diff and changes nothing.\n");
}

int
transition_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "mount", required_argument, NULL, 'M' },
        { "dry-run", no_argument, NULL, 'n' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    const char *mount = "/var/lib/nova/instances";
    bool dry_run = false;
    virConnectPtr conn = NULL;
    virDomainPtr dom = NULL, def = NULL;
    char *xml = NULL, *out = NULL;
    struct poolfs_ioc_pool pools;
    const char *disks = ctl->disks_pool, *base = ctl->base_pool, *map = NULL;
    char err[1024];
    int c, n, persistent, rc = CTL_FAILED;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'M': mount = optarg; break;
        case 'n': dry_run = true; break;
        case 'h': transition_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (optind != argc - 1) {
        ctl_error("transition: one DOMAIN is required; see poolfsctl "
                  "transition --help");
        return CTL_USAGE;
    }
    if (!(conn = ctl_connect(ctl->uri)))
        goto out;
    if (!(dom = virDomainLookupByName(conn, argv[optind])) &&
        !(dom = virDomainLookupByUUIDString(conn, argv[optind]))) {
        ctl_error("domain '%s' not found on %s", argv[optind], ctl->uri);
        goto out;
    }
    if ((persistent = virDomainIsPersistent(dom)) < 0) {
        ctl_error("cannot tell whether domain '%s' is persistent: %s",
                  argv[optind], ctl_virt_message());
        goto out;
    }
    if (persistent == 0) {
        ctl_error("domain '%s' is transient: there is no definition to "
                  "transition", argv[optind]);
        goto out;
    }
    if (!(xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE |
                                    VIR_DOMAIN_XML_SECURE))) {
        ctl_error("cannot read the definition of '%s': %s", argv[optind],
                  ctl_virt_message());
        goto out;
    }
    /* The mount's own pools and -o pool_map, where it can say. */
    if (ctl_poolfs_pools(mount, &pools) == 0) {
        disks = pools.name;
        base = pools.base;
        map = pools.map;
    }
    if ((n = domxml_transition(xml, mount, disks, base, map, &out, err,
                               sizeof(err))) < 0) {
        ctl_error("domain '%s': %s", argv[optind], err);
        goto out;
    }
    if (n > 0 && (transition_check_legacy(xml, mount) < 0 ||
                  transition_check_volumes(conn, out) < 0))
        goto out;
    if (ctl->json) {
        printf("{\"domain\": ");
        ctl_json_string(stdout, virDomainGetName(dom));
        printf(", \"disks\": %d, \"dry_run\": %s, \"xml\": ", n,
               dry_run ? "true" : "false");
        ctl_json_string(stdout, out);
        printf("}\n");
    } else if (dry_run) {
        char *before = domxml_normalize(xml);

        if (n > 0)
            transition_diff(virDomainGetName(dom), before ? before : xml,
                            out);
        else
            printf("domain %s: no disk under %s\n", virDomainGetName(dom),
                   mount);
        free(before);
    }
    if (!dry_run && n > 0) {
        if (!(def = virDomainDefineXML(conn, out))) {
            ctl_error("cannot redefine domain '%s': %s", argv[optind],
                      ctl_virt_message());
            goto out;
        }
        if (!ctl->json)
            printf("transitioned %s: %d disk%s now libvirt volumes, from "
                   "its next boot or migration\n", virDomainGetName(dom), n,
                   n == 1 ? "" : "s");
    } else if (!dry_run && !ctl->json) {
        printf("domain %s: no disk under %s\n", virDomainGetName(dom), mount);
    }
    rc = CTL_OK;
 out:
    free(xml);
    free(out);
    if (def)
        virDomainFree(def);
    if (dom)
        virDomainFree(dom);
    if (conn)
        virConnectClose(conn);
    return rc;
}
