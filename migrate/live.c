/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * live: `poolfsctl live-migrate`, a running domain moved to another node
 * with the flags lmpolicy.c picks from what both ends are and have; the
 * operator names what they want (tunnelled or not, insecure or not, post-
 * copy), never a flag.  Disks on pool volumes the destination does not
 * share are copied into volumes created there first; only those go in
 * migrate_disks.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "ctl.h"
#include "lmpolicy.h"
#include "volxml.h"

#define LIVE_MAX_DISKS 32

struct live_disk {
    char dev[32];
    char pool[256];
    char vol[256];
    char format[32];
    unsigned long long capacity;
    unsigned long long allocation;
    bool copy;                  /* not shared: goes in migrate_disks */
    bool created;               /* poolfsctl created it on the destination */
};

struct live_run {
    struct ctl *ctl;
    const char *to;
    virConnectPtr src, dst;
    virDomainPtr dom;
    struct live_disk disks[LIVE_MAX_DISKS];
    int ndisks;
    int ncopy;
    bool postcopy;              /* switch to post-copy when it will not converge */
    unsigned long long asked;   /* post-copy asked for after this many passes */
    volatile bool switched;     /* and the source paused for post-copy */
    volatile bool ev_quit;      /* live_events' thread: stop */
    int ev_id;                  /* the lifecycle callback on src, or -1 */
    bool attempted;             /* virDomainMigrateToURI3 was called */
    volatile int done;
    bool json_open;             /* the plan's object printed, not closed */
    unsigned long bandwidth;    /* MiB/s, 0: no cap */
    unsigned long timeout;      /* s before the job is aborted, 0: none */
    bool aborted;               /* by the timeout */
};

static char *
live_attr(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *s = v ? strdup((const char *)v) : NULL;

    xmlFree(v);
    return s;
}

/* The pool and volume a disk <source> is: 1 when it is one, 0 when not
 * ours (network, block), -2 for a file through a poolfs mount. */
static int
live_disk_source(struct live_run *r, xmlNodePtr disk, struct live_disk *d)
{
    char *type = live_attr(disk, "type");
    xmlNodePtr c;
    virStorageVolPtr v = NULL;
    virStoragePoolPtr p = NULL;
    int rc = 0;

    for (c = disk->children; c; c = c->next) {
        char *s;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)c->name, "target") == 0 &&
            (s = live_attr(c, "dev"))) {
            snprintf(d->dev, sizeof(d->dev), "%s", s);
            free(s);
        } else if (strcmp((const char *)c->name, "driver") == 0 &&
                   (s = live_attr(c, "type"))) {
            snprintf(d->format, sizeof(d->format), "%s", s);
            free(s);
        } else if (strcmp((const char *)c->name, "source") == 0) {
            if (type && strcmp(type, "volume") == 0) {
                char *pool = live_attr(c, "pool"), *vol = live_attr(c, "volume");

                if (pool && vol && (p = virStoragePoolLookupByName(r->src, pool)))
                    v = virStorageVolLookupByName(p, vol);
                free(pool);
                free(vol);
            } else if (type && strcmp(type, "file") == 0) {
                char *file = live_attr(c, "file");
                char kind[32];

                if (file && (v = virStorageVolLookupByPath(r->src, file)))
                    p = virStoragePoolLookupByVolume(v);
                else if (file && ctl_poolfs_backend(file, kind, sizeof(kind)))
                    rc = -2;    /* through a poolfs mount: not shared */
                free(file);
            }
        }
    }
    if (v && p) {
        virStorageVolInfo info;

        snprintf(d->pool, sizeof(d->pool), "%s", virStoragePoolGetName(p));
        snprintf(d->vol, sizeof(d->vol), "%s", virStorageVolGetName(v));
        if (virStorageVolGetInfo(v, &info) == 0) {
            d->capacity = info.capacity;
            d->allocation = info.allocation;
        }
        rc = 1;
    }
    if (v)
        virStorageVolFree(v);
    if (p)
        virStoragePoolFree(p);
    free(type);
    return rc;
}

/* The domain's disks on pool volumes, and which the destination lacks. */
static int
live_disks(struct live_run *r)
{
    char *xml = virDomainGetXMLDesc(r->dom, 0);
    xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;
    xmlXPathContextPtr x = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr o = x ? xmlXPathEvalExpression(
        BAD_CAST "/domain/devices/disk[@device='disk']", x) : NULL;
    int i, rc = -1;

    if (!o) {
        char why[512];

        if (!xml)
            ctl_virt_keep(why, sizeof(why));
        else
            snprintf(why, sizeof(why), "%s", doc ? "out of memory" :
                     "its XML does not parse");
        ctl_error("cannot read the definition of domain '%s': %s",
                  virDomainGetName(r->dom), why);
        goto out;
    }
    for (i = 0; o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        struct live_disk *d = &r->disks[r->ndisks];
        virStoragePoolPtr sp, dp;
        int found;

        if (r->ndisks == LIVE_MAX_DISKS)
            break;
        memset(d, 0, sizeof(*d));
        /* Network and block disks (attached volumes) are not ours.  A file
         * through a poolfs mount is neither a volume libvirt knows nor
         * shared storage: the destination's mount has its own. */
        found = live_disk_source(r, o->nodesetval->nodeTab[i], d);
        if (found == -2) {
            ctl_error("disk %s of domain '%s' is a file through a poolfs "
                      "mount, not a pool volume: run poolfsctl transition "
                      "first (or migrate it cold)", d->dev[0] ? d->dev : "?",
                      virDomainGetName(r->dom));
            goto out;
        }
        if (found != 1)
            continue;
        sp = virStoragePoolLookupByName(r->src, d->pool);
        dp = virStoragePoolLookupByName(r->dst, d->pool);
        if (!dp) {
            ctl_error("pool '%s' of disk %s is missing on %s", d->pool,
                      d->dev, r->to);
            if (sp)
                virStoragePoolFree(sp);
            goto out;
        }
        d->copy = !(sp && cold_pool_shared(sp, dp,
                                            strcmp(r->ctl->uri, r->to) == 0));
        r->ncopy += d->copy;
        r->ndisks++;
        if (sp)
            virStoragePoolFree(sp);
        virStoragePoolFree(dp);
    }
    rc = 0;
 out:
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    xmlFreeDoc(doc);
    free(xml);
    return rc;
}

/* Can the destination's hypervisor give the guest its CPU, as libvirt
 * sees it?  Refused when libvirt says incompatible; not checked where it
 * cannot say (old libvirt, no <cpu> in the definition). */
static int
live_check_cpu(struct live_run *r)
{
    char *xml = virDomainGetXMLDesc(r->dom, 0);
    xmlDocPtr doc = xml ? xmlq_read(xml) : NULL;
    xmlXPathContextPtr x = doc ? xmlXPathNewContext(doc) : NULL;
    xmlNodePtr cpu = NULL;
    xmlBufferPtr buf = NULL;
    char *emu = NULL, *arch = NULL, *machine = NULL, *virt = NULL;
    xmlXPathObjectPtr o = NULL;
    int rc = 0, cmp;

    if (!x || !(o = xmlXPathEvalExpression(BAD_CAST "/domain/cpu", x)) ||
        !o->nodesetval || o->nodesetval->nodeNr == 0)
        goto out;
    cpu = o->nodesetval->nodeTab[0];
    emu = xmlq_string(doc, "string(/domain/devices/emulator)");
    arch = xmlq_string(doc, "string(/domain/os/type/@arch)");
    machine = xmlq_string(doc, "string(/domain/os/type/@machine)");
    virt = xmlq_string(doc, "string(/domain/@type)");
    if (!(buf = xmlBufferCreate()) || xmlNodeDump(buf, doc, cpu, 0, 0) < 0)
        goto out;
    cmp = virConnectCompareHypervisorCPU(r->dst, emu, arch, machine, virt,
                                         (const char *)xmlBufferContent(buf),
                                         0);
    if (cmp == VIR_CPU_COMPARE_INCOMPATIBLE) {
        ctl_error("the CPU of domain '%s' is incompatible with the "
                  "hypervisor on %s, as libvirt compares them",
                  virDomainGetName(r->dom), r->to);
        rc = -1;
    }
 out:
    if (buf)
        xmlBufferFree(buf);
    free(emu);
    free(arch);
    free(machine);
    free(virt);
    xmlXPathFreeObject(o);
    xmlXPathFreeContext(x);
    xmlFreeDoc(doc);
    free(xml);
    return rc;
}

/* Everything that can be known to fail, before anything moves. */
static int
live_prechecks(struct live_run *r)
{
    unsigned long long need[LIVE_MAX_DISKS] = { 0 };
    int i, j;

    if (live_check_cpu(r) < 0)
        return -1;

    for (i = 0; i < r->ndisks; i++) {
        struct live_disk *d = &r->disks[i];
        virStoragePoolPtr dp;
        virStorageVolPtr v;
        virStoragePoolInfo info;

        if (!d->copy)
            continue;
        dp = virStoragePoolLookupByName(r->dst, d->pool);
        if ((v = virStorageVolLookupByName(dp, d->vol))) {
            ctl_error("volume '%s' already exists in pool '%s' on %s: not "
                      "overwriting it", d->vol, d->pool, r->to);
            virStorageVolFree(v);
            virStoragePoolFree(dp);
            return -1;
        }
        /* Free space, per destination pool. */
        for (j = 0; j <= i; j++)
            if (strcmp(r->disks[j].pool, d->pool) == 0)
                break;
        need[j] += d->allocation;
        if (virStoragePoolGetInfo(dp, &info) == 0 && need[j] > info.available) {
            char a[32], b[32];

            ctl_error("pool '%s' on %s has %s free, the disks to copy need "
                      "%s", d->pool, r->to, ctl_size(info.available, a,
                                                     sizeof(a)),
                      ctl_size(need[j], b, sizeof(b)));
            virStoragePoolFree(dp);
            return -1;
        }
        virStoragePoolFree(dp);
    }
    return 0;
}

/* The destination's volumes for the disks to copy, same size and format. */
static int
live_create_volumes(struct live_run *r)
{
    int i;

    for (i = 0; i < r->ndisks; i++) {
        struct live_disk *d = &r->disks[i];
        virStoragePoolPtr dp;
        virStorageVolPtr v;
        char *xml = NULL;

        if (!d->copy)
            continue;
        char *ev = ctl_xml_text(d->vol);

        dp = virStoragePoolLookupByName(r->dst, d->pool);
        if (!ev || !dp ||
            asprintf(&xml, "<volume><name>%s</name><capacity unit='bytes'>"
                     "%llu</capacity><allocation unit='bytes'>0</allocation>"
                     "<target><format type='%s'/></target></volume>", ev,
                     d->capacity, d->format[0] ? d->format : "raw") < 0 ||
            !(v = virStorageVolCreateXML(dp, xml, 0))) {
            ctl_error("cannot create volume '%s' in pool '%s' on %s: %s",
                      d->vol, d->pool, r->to,
                      dp && (!ev || !xml) ? "out of memory" :
                      ctl_virt_message());
            free(ev);
            free(xml);
            if (dp)
                virStoragePoolFree(dp);
            return -1;
        }
        free(ev);
        d->created = true;
        virStorageVolFree(v);
        free(xml);
        virStoragePoolFree(dp);
    }
    return 0;
}

static void
live_remove_volumes(struct live_run *r)
{
    int i;

    for (i = 0; i < r->ndisks; i++) {
        virStoragePoolPtr dp;
        virStorageVolPtr v;

        if (!r->disks[i].created)
            continue;
        if ((dp = virStoragePoolLookupByName(r->dst, r->disks[i].pool))) {
            if ((v = virStorageVolLookupByName(dp, r->disks[i].vol))) {
                virStorageVolDelete(v, 0);
                virStorageVolFree(v);
            }
            virStoragePoolFree(dp);
        }
    }
}

/* The source's lifecycle events: the one sure sign of the switch.  The
 * post-copy phase can be too short for any poll to see: what is left is
 * what the guest dirtied in the last pass, sent at the link's full
 * speed. */
static void
live_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
               void *opaque)
{
    struct live_run *r = opaque;

    if (event == VIR_DOMAIN_EVENT_SUSPENDED &&
        detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)
        r->switched = true;
}

static void
live_events_tick(int timer, void *opaque)
{
    /* Only there so that the loop returns to look at ev_quit. */
}

static void *
live_events(void *arg)
{
    struct live_run *r = arg;

    while (!r->ev_quit)
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

/* Progress while the migration runs: data remaining, dirty rate; and the
 * switch to post-copy (--postcopy). */
static void *
live_progress(void *arg)
{
    struct live_run *r = arg;
    /* QEMU's dirty-sync-count (libvirt's MEMORY_ITERATION) as memory began
     * to move: each sync after it ends a pass over memory. */
    unsigned long long base = 0, tried = 0;
    bool began = false, told = false;
    double start = ctl_now();

    while (!r->done) {
        virTypedParameterPtr st = NULL;
        int n = 0, type, state, reason;
        unsigned long long rem = 0, total = 0, dirty = 0, iter = 0, mem = 0;
        char a[32], b[32], c[32];

        if ((r->ctl->progress || r->postcopy) &&
            virDomainGetJobStats(r->dom, &type, &st, &n, 0) == 0) {
            virTypedParamsGetULLong(st, n, VIR_DOMAIN_JOB_MEMORY_ITERATION,
                                    &iter);
            virTypedParamsGetULLong(st, n, VIR_DOMAIN_JOB_MEMORY_TOTAL, &mem);
            if (!began && mem > 0) {
                began = true;
                base = tried = iter;
            }
            /* VIR_MIGRATE_POSTCOPY only allows it: once a whole pass over
             * memory is done and more is dirty, pre-copy is not getting
             * there; ask (libvirt refuses while disks still mirror: asked
             * again on the next pass). */
            if (r->postcopy && began && iter > tried) {
                tried = iter;
                if (virDomainMigrateStartPostCopy(r->dom, 0) == 0) {
                    r->postcopy = false;
                    r->asked = iter - base;
                }
            }
        }
        /* --timeout: abort, unless post-copy was asked for (the guest may
         * run on the destination already).  Asked again until it is
         * taken: the job may not have begun yet. */
        if (r->timeout && !r->aborted && !r->asked &&
            ctl_now() - start > r->timeout &&
            virDomainAbortJob(r->dom) == 0)
            r->aborted = true;
        /* Asking only sets a flag in QEMU, which may still finish in
         * pre-copy: the switch is when the source pauses for post-copy
         * (live_lifecycle hears it; looked at here too). */
        if (r->asked && !r->switched &&
            virDomainGetState(r->dom, &state, &reason, 0) == 0 &&
            state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY)
            r->switched = true;
        if (r->switched && !told) {
            told = true;
            if (r->ctl->progress)
                fprintf(stderr, "\r\033[Kswitched to post-copy after pass "
                        "%llu over memory\n", r->asked);
        }
        if (r->ctl->progress && st) {
            virTypedParamsGetULLong(st, n, VIR_DOMAIN_JOB_DATA_REMAINING, &rem);
            virTypedParamsGetULLong(st, n, VIR_DOMAIN_JOB_DATA_TOTAL, &total);
            virTypedParamsGetULLong(st, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE,
                                    &dirty);
            if (type != VIR_DOMAIN_JOB_NONE) {
                fprintf(stderr, "\r%-20.20s  %s remaining of %s, dirty "
                        "rate %s/s  ", virDomainGetName(r->dom),
                        ctl_size(rem, a, sizeof(a)),
                        ctl_size(total, b, sizeof(b)),
                        ctl_size(dirty * 4096, c, sizeof(c)));
                fflush(stderr);
            }
        }
        virTypedParamsFree(st, n);
        /* Once asked, look often: a post-copy phase can be short. */
        usleep((r->asked && !r->switched ? 20 : 250) * 1000);
    }
    if (r->ctl->progress)
        fputs("\r\033[K", stderr);
    return NULL;
}

static void
live_print_plan(struct live_run *r, const struct lm_plan *plan, bool dry_run)
{
    char names[512];
    int i;

    lm_flag_names(plan->flags, names, sizeof(names));
    if (r->ctl->json) {
        printf("{\"domain\": ");
        ctl_json_string(stdout, virDomainGetName(r->dom));
        printf(", \"to\": ");
        ctl_json_string(stdout, r->to);
        printf(", \"dry_run\": %s, \"flags\": \"%s\", \"channel\": \"%s\", "
               "\"why_channel\": ", dry_run ? "true" : "false", names,
               plan->channel);
        ctl_json_string(stdout, plan->why_channel);
        printf(", \"why_disks\": ");
        ctl_json_string(stdout, plan->why_disks);
        printf(", \"bandwidth_mib\": %lu", r->bandwidth);
        printf(", \"disks\": [");
        for (i = 0; i < r->ndisks; i++) {
            printf("%s{\"dev\": ", i ? ", " : "");
            ctl_json_string(stdout, r->disks[i].dev);
            printf(", \"pool\": ");
            ctl_json_string(stdout, r->disks[i].pool);
            printf(", \"volume\": ");
            ctl_json_string(stdout, r->disks[i].vol);
            printf(", \"copy\": %s}", r->disks[i].copy ? "true" : "false");
        }
        /* Closed with the outcome when it is known (live_json_end). */
        printf("],\n");
        r->json_open = true;
        return;
    }
    printf("%s %s to %s\n", dry_run ? "would live-migrate" : "live-migrating",
           virDomainGetName(r->dom), r->to);
    printf("  flags:   %s\n", names);
    printf("  channel: %s (%s)\n", plan->channel, plan->why_channel);
    if (r->bandwidth)
        printf("  bandwidth: %lu MiB/s for memory in pre-copy, as much for "
               "each copied disk\n", r->bandwidth);
    printf("  disks:   %s\n", plan->why_disks);
    for (i = 0; i < r->ndisks; i++)
        printf("    %s  %s/%s  %s\n", r->disks[i].dev, r->disks[i].pool,
               r->disks[i].vol, r->disks[i].copy ?
               "copied (migrate_disks)" : "shared: not copied");
}

static void
live_usage(void)
{
    printf("usage: poolfsctl [-c URI] live-migrate DOMAIN --to URI\n"
           "                 [--tunnelled auto|yes|no] [--insecure]\n"
           "                 [--postcopy] [--auto-converge] [--bandwidth MIB]\n"
           "                 [--timeout SECONDS] [--dry-run] [--json]\n"
           "\n"
           "Move the running DOMAIN to the libvirtd at --to (peer to peer).\n"
           "The flags are chosen for you: live, peer-to-peer, persistent on\n"
           "the destination, undefined here only after success; native TLS\n"
           "where both ends support it and it is set up (a qemu+tls:// --to),\n"
           "else tunnelled through libvirtd where no disk must be copied.\n"
           "Disks on pool volumes the destination does not share are copied\n"
           "into volumes created there first.\n"
           "\n"
           "  --tunnelled auto|yes|no  the tunnel through libvirtd (default\n"
           "                 auto); never combined with copying disks\n"
           "  --insecure     allow an unencrypted migration channel\n"
           "  --postcopy     switch to post-copy when pre-copy does not\n"
           "                 converge (after the first whole pass over memory):\n"
           "                 a guest dirtying memory faster than the link\n"
           "                 still moves, but a network failure during\n"
           "                 post-copy loses the guest\n"
           "  --auto-converge  throttle the guest's vCPUs until pre-copy\n"
           "                 converges: slows the guest, keeps it safe\n"
           "  --bandwidth MIB  MiB/s for memory in pre-copy, and as much\n"
           "                 for each copied disk (libvirt's bandwidth);\n"
           "                 post-copy is not capped: the shorter it is,\n"
           "                 the less time a network failure has to lose\n"
           "                 the guest\n"
           "  --timeout SECONDS  abort the migration if it has not completed\n"
           "                 SECONDS after it began (Nova's live_migration_\n"
           "                 completion_timeout): the guest stays here, the\n"
           "                 volumes made there are removed; not once\n"
           "                 post-copy was asked for\n"
           "  --dry-run      print the plan (flags by name, disks, channel,\n"
           "                 and why) and move nothing\n");
}

int
live_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' },
        { "tunnelled", required_argument, NULL, 'T' },
        { "insecure", no_argument, NULL, 'i' },
        { "postcopy", no_argument, NULL, 'p' },
        { "auto-converge", no_argument, NULL, 'a' },
        { "dry-run", no_argument, NULL, 'n' },
        { "bandwidth", required_argument, NULL, 'B' },
        { "timeout", required_argument, NULL, 'W' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct live_run r = { .ctl = ctl, .ev_id = -1 };
    struct lm_facts facts = { .tunnel = LM_TUNNEL_AUTO };
    struct lm_plan plan;
    virTypedParameterPtr params = NULL;
    int nparams = 0, maxparams = 0;
    unsigned long v1, v2;
    bool dry_run = false;
    pthread_t prog, ev;
    bool ev_running = false;
    int c, i, moved, tick = -1, rc = CTL_FAILED;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 't': r.to = optarg; break;
        case 'T':
            if (strcmp(optarg, "auto") == 0)
                facts.tunnel = LM_TUNNEL_AUTO;
            else if (strcmp(optarg, "yes") == 0)
                facts.tunnel = LM_TUNNEL_YES;
            else if (strcmp(optarg, "no") == 0)
                facts.tunnel = LM_TUNNEL_NO;
            else {
                ctl_error("live-migrate: --tunnelled wants auto, yes or no");
                return CTL_USAGE;
            }
            break;
        case 'i': facts.insecure = true; break;
        case 'p': facts.postcopy = true; break;
        case 'a': facts.auto_converge = true; break;
        case 'n': dry_run = true; break;
        case 'B':
            if (!ctl_parse_number("live-migrate", "--bandwidth", "MiB/s",
                                  optarg, CTL_BANDWIDTH_MAX, &r.bandwidth))
                return CTL_USAGE;
            break;
        case 'W':
            if (!ctl_parse_number("live-migrate", "--timeout", "seconds",
                                  optarg, CTL_TIMEOUT_MAX, &r.timeout))
                return CTL_USAGE;
            break;
        case 'h': live_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (!r.to || optind != argc - 1) {
        ctl_error("live-migrate: one DOMAIN and --to URI are required; see "
                  "poolfsctl live-migrate --help");
        return CTL_USAGE;
    }
    /* --postcopy hears the switch as an event: the loop must be there
     * before the connections open. */
    if (facts.postcopy && !dry_run && virEventRegisterDefaultImpl() < 0) {
        ctl_error("live-migrate: cannot set up libvirt's event loop: %s",
                  ctl_virt_message());
        goto out;
    }
    if (!(r.src = ctl_connect(ctl->uri)) || !(r.dst = ctl_connect(r.to)))
        goto out;
    if (!(r.dom = virDomainLookupByName(r.src, argv[optind])) &&
        !(r.dom = virDomainLookupByUUIDString(r.src, argv[optind]))) {
        ctl_error("domain '%s' not found on %s", argv[optind], ctl->uri);
        goto out;
    }
    if (virDomainIsActive(r.dom) != 1) {
        ctl_error("domain '%s' is not running: a cold migration is "
                  "poolfsctl migrate", argv[optind]);
        goto out;
    }
    /* The facts: the older end's versions; TLS as the destination URI
     * shows it set up; the disks the destination lacks. */
    if (virConnectGetLibVersion(r.src, &v1) < 0 ||
        virConnectGetLibVersion(r.dst, &v2) < 0) {
        ctl_error("cannot read the libvirt versions: %s", ctl_virt_message());
        goto out;
    }
    facts.libvirt = v1 < v2 ? v1 : v2;
    if (virConnectGetVersion(r.src, &v1) < 0 ||
        virConnectGetVersion(r.dst, &v2) < 0) {
        ctl_error("cannot read the QEMU versions: %s", ctl_virt_message());
        goto out;
    }
    facts.qemu = v1 < v2 ? v1 : v2;
    facts.tls = strstr(r.to, "+tls://") != NULL;
    if (live_disks(&r) < 0)
        goto out;
    facts.disks_to_copy = r.ncopy;
    if (lm_decide(&facts, &plan) < 0) {
        ctl_error("live-migrate %s: refused before anything moved: %s",
                  argv[optind], plan.refusal);
        goto out;
    }
    if (live_prechecks(&r) < 0)
        goto out;
    live_print_plan(&r, &plan, dry_run);
    if (dry_run) {
        rc = CTL_OK;
        goto out;
    }

    if (live_create_volumes(&r) < 0)
        goto fail;
    for (i = 0; i < r.ndisks; i++)
        if (r.disks[i].copy &&
            virTypedParamsAddString(&params, &nparams, &maxparams,
                                    VIR_MIGRATE_PARAM_MIGRATE_DISKS,
                                    r.disks[i].dev) < 0)
            goto fail;
    if (r.bandwidth &&
        virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                VIR_MIGRATE_PARAM_BANDWIDTH, r.bandwidth) < 0)
        goto fail;
    r.postcopy = facts.postcopy;
    if (r.postcopy) {
        /* The tick returns the loop to look at ev_quit. */
        tick = virEventAddTimeout(200, live_events_tick, NULL, NULL);
        r.ev_id = virConnectDomainEventRegisterAny(
            r.src, r.dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            VIR_DOMAIN_EVENT_CALLBACK(live_lifecycle), &r, NULL);
        ev_running = tick >= 0 && r.ev_id >= 0 &&
                     pthread_create(&ev, NULL, live_events, &r) == 0;
    }
    r.attempted = true;
    pthread_create(&prog, NULL, live_progress, &r);
    moved = virDomainMigrateToURI3(r.dom, r.to, params, nparams, plan.flags);
    r.done = 1;
    pthread_join(prog, NULL);
    /* The event is sent well before the migration ends, but handed to
     * the callback by the loop's thread: a moment for it. */
    for (i = 0; ev_running && r.asked && !r.switched && i < 50; i++)
        usleep(20 * 1000);
    if (moved < 0) {
        /* The migration goes on inside libvirtd (peer to peer): an error
         * here may be this connection's, not the migration's.  The copies
         * go only if the guest is known to run on the source alone. */
        char *why = NULL, kept[1024];
        const char *msg = ctl_virt_keep(kept, sizeof(kept));
        unsigned char uuid[VIR_UUID_BUFLEN];
        virDomainPtr there = NULL;
        int here = virDomainIsActive(r.dom), away = -1;

        if (virDomainGetUUID(r.dom, uuid) == 0) {
            if ((there = virDomainLookupByUUID(r.dst, uuid)))
                away = virDomainIsActive(there);
            else if (virGetLastError() &&
                     virGetLastError()->code == VIR_ERR_NO_DOMAIN)
                away = 0;           /* not there at all */
        }
        if (there)
            virDomainFree(there);
        if (r.aborted &&
            asprintf(&why, "not completed in %lu s (--timeout), so aborted "
                     "(%s)", r.timeout, msg) < 0)
            why = NULL;
        else if (!r.aborted)
            why = strdup(msg);
        if (here == 1 && away == 0) {
            ctl_error("live-migrate %s failed: %s; it still runs on %s, the "
                      "volumes made on %s are removed", argv[optind],
                      why ? why : "?", ctl->uri, r.to);
            free(why);
            goto fail;
        }
        ctl_error("live-migrate %s reported a failure (%s), but the domain "
                  "%s on %s: the volumes made on %s are kept; check where it "
                  "runs", argv[optind], why ? why : "?",
                  away == 1 ? "is running" : "may be running", r.to, r.to);
        free(why);
        goto out;
    }
    if (!ctl->json) {
        printf("migrated %s to %s", argv[optind], r.to);
        if (r.switched)
            printf(" (switched to post-copy after pass %llu over memory)",
                   r.asked);
        putchar('\n');
    }
    rc = CTL_OK;
    goto out;

 fail:
    live_remove_volumes(&r);
 out:
    if (r.json_open) {
        /* --postcopy's outcome, once the migration ran. */
        if (facts.postcopy && r.attempted)
            printf(" \"postcopy\": \"%s\",", r.switched ? "switched" :
                   r.asked ? "asked, not seen" : "not needed");
        printf(" ");
        ctl_json_ok(rc == CTL_OK);
    }
    if (ev_running) {
        r.ev_quit = true;
        pthread_join(ev, NULL);
    }
    if (r.ev_id >= 0)
        virConnectDomainEventDeregisterAny(r.src, r.ev_id);
    if (tick >= 0)
        virEventRemoveTimeout(tick);
    virTypedParamsFree(params, nparams);
    if (r.dom)
        virDomainFree(r.dom);
    if (r.src)
        virConnectClose(r.src);
    if (r.dst)
        virConnectClose(r.dst);
    return rc;
}
