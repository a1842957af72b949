/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cow: `poolfsctl create-cow`, a qcow2 overlay on a base image made the
 * nova-spec's way: virStorageVolCreateXML with a backingStore element.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "names.h"
#include "volxml.h"

/* "10G", "512M", "1048576": bytes, or -1. */
static long long
cow_parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    long long mult = 1;

    if (end == s || v < 0)
        return -1;
    switch (*end) {
    case 'T': case 't': mult <<= 10; /* fall through */
    case 'G': case 'g': mult <<= 10; /* fall through */
    case 'M': case 'm': mult <<= 10; /* fall through */
    case 'K': case 'k': mult <<= 10; end++; break;
    case '\0': break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    return *end ? -1 : (long long)(v * mult);
}

/* PATH relative to MOUNT (absolute paths under MOUNT are accepted too). */
static const char *
cow_relative(const char *path, const char *mount)
{
    size_t n = strlen(mount);

    if (strncmp(path, mount, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path[0] == '/' ? NULL : path;
}

static void
cow_usage(void)
{
    printf("usage: poolfsctl [-c URI] create-cow [--mount DIR] UUID/NAME "
           "--backing _base/IMAGE\n"
           "                 [--size SIZE]\n"
           "\n"
           "Create the qcow2 volume {uuid}_{name} in the disks pool, backed\n"
           "by base image IMAGE as MOUNT/_base/IMAGE (the path QEMU and\n"
           "qemu-img see), with virStorageVolCreateXML.  SIZE (bytes, or\n"
           "with K, M, G, T) defaults to the base image's size.\n");
}

int
cow_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "backing", required_argument, NULL, 'b' },
        { "size", required_argument, NULL, 's' },
        { "mount", required_argument, NULL, 'M' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    const char *mount = "/var/lib/nova/instances";
    const char *backing = NULL, *target, *image;
    long long size = -1;
    char dir[PATH_MAX], file[NAME_MAX + 1], vol[NAMES_VOL_MAX + 1];
    char *xml = NULL, *bxml = NULL;
    virConnectPtr conn = NULL;
    virStoragePoolPtr bp = NULL, dp = NULL;
    virStorageVolPtr base = NULL, v = NULL;
    struct volxml bx = { 0 };
    int c, rc = CTL_FAILED;
    char sz[32];

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'b': backing = optarg; break;
        case 's':
            if ((size = cow_parse_size(optarg)) <= 0) {
                ctl_error("create-cow: --size wants a size like 10G, not '%s'",
                          optarg);
                return CTL_USAGE;
            }
            break;
        case 'M': mount = optarg; break;
        case 'h': cow_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (optind != argc - 1 || !backing) {
        ctl_error("create-cow: one UUID/NAME and --backing _base/IMAGE are "
                  "required; see poolfsctl create-cow --help");
        return CTL_USAGE;
    }
    if (!(target = cow_relative(argv[optind], mount)) ||
        names_split(target, dir, sizeof(dir), file, sizeof(file)) < 0 ||
        !*dir || names_encode(dir, file, vol, sizeof(vol)) < 0) {
        ctl_error("create-cow: '%s' is not a file in an instance directory "
                  "under %s", argv[optind], mount);
        return CTL_USAGE;
    }
    if (!(image = cow_relative(backing, mount)) ||
        strncmp(image, NAMES_BASE_DIR "/", strlen(NAMES_BASE_DIR) + 1) != 0 ||
        names_check_component(image + strlen(NAMES_BASE_DIR) + 1) < 0) {
        ctl_error("create-cow: --backing wants _base/IMAGE, not '%s'",
                  backing);
        return CTL_USAGE;
    }
    image += strlen(NAMES_BASE_DIR) + 1;

    if (!(conn = ctl_connect(ctl->uri)))
        goto out;
    if (!(bp = virStoragePoolLookupByName(conn, ctl->base_pool)) ||
        !(dp = virStoragePoolLookupByName(conn, ctl->disks_pool))) {
        ctl_error("storage pool '%s' not found on %s: %s",
                  bp ? ctl->disks_pool : ctl->base_pool, ctl->uri,
                  ctl_virt_message());
        goto out;
    }
    if (!(base = virStorageVolLookupByName(bp, image)) ||
        !(bxml = virStorageVolGetXMLDesc(base, 0))) {
        ctl_error("base image '%s' not found in pool '%s': %s", image,
                  ctl->base_pool, ctl_virt_message());
        goto out;
    }
    if (volxml_parse(bxml, &bx) < 0) {
        ctl_error("base image '%s' of pool '%s': its XML does not parse",
                  image, ctl->base_pool);
        goto out;
    }
    if (size < 0)
        size = bx.capacity;
    {
        char *ev = ctl_xml_text(vol), *em = ctl_xml_text(mount);
        char *ei = ctl_xml_text(image);
        int n = ev && em && ei ?
            asprintf(&xml, "<volume><name>%s</name>"
                     "<capacity unit='bytes'>%lld</capacity>"
                     "<target><format type='qcow2'/>"
                     "<permissions><mode>0644</mode></permissions></target>"
                     "<backingStore><path>%s/" NAMES_BASE_DIR "/%s</path>"
                     "<format type='%s'/></backingStore></volume>",
                     ev, size, em, ei, bx.format ? bx.format : "raw") : -1;

        free(ev);
        free(em);
        free(ei);
        if (n < 0) {
            xml = NULL;
            ctl_error("out of memory");
            goto out;
        }
    }
    if (!(v = virStorageVolCreateXML(dp, xml, 0))) {
        ctl_error("cannot create volume '%s' in pool '%s': %s", vol,
                  ctl->disks_pool, ctl_virt_message());
        goto out;
    }
    /* A pool refresh is an event poolfs mounts listen to: they show the
     * new file at once instead of at their next re-listing. */
    virStoragePoolRefresh(dp, 0);
    if (ctl->json) {
        printf("{\"volume\": ");
        ctl_json_string(stdout, vol);
        printf(", \"capacity\": %lld, \"backing\": \"%s/%s/", size, mount,
               NAMES_BASE_DIR);
        printf("%s\"}\n", image);
    } else {
        printf("created %s (%s/%s): qcow2, %s, backed by %s/" NAMES_BASE_DIR
               "/%s\n", vol, mount, target, ctl_size(size, sz, sizeof(sz)),
               mount, image);
    }
    rc = CTL_OK;
 out:
    volxml_clear(&bx);
    free(xml);
    free(bxml);
    if (v)
        virStorageVolFree(v);
    if (base)
        virStorageVolFree(base);
    if (bp)
        virStoragePoolFree(bp);
    if (dp)
        virStoragePoolFree(dp);
    if (conn)
        virConnectClose(conn);
    return rc;
}
