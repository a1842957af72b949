/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cold: `poolfsctl migrate`, cold migration of instances between nodes
 * with libvirt volume streams: no SSH, no FUSE in the data path.
 *
 * For each volume of an instance (and each base image its qcow2 disks
 * need that the destination lacks, first), the data goes from the source
 * to ".partial-{name}" on the destination, is verified there, and only then
 * gets its final name (land.h).  Between nodes it crosses the network once,
 * in a libvirt stream over libvirt's own connection; at an end that is
 * this host, the volume's file is read or written directly instead of
 * through libvirtd (volfile.h), so run on the destination (--from the
 * source) the verification reads the local file, not the network.  A
 * failure anywhere leaves the source untouched and nothing under a final
 * name; running the command again finishes the job (a volume already
 * there with the same digest is skipped).  --move deletes the source
 * volumes only after all of the instance's volumes were verified.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "ctl.h"
#include "names.h"
#include "land.h"
#include "pump.h"
#include "volxml.h"

/* Download streams at once per volume (lanes.c): enough to keep a source
 * libvirtd's reading thread and event loop busy; README has what 4 gave
 * against 1 (bench_migrate's ctl-pull and ctl-pull-1). */
#define COLD_PARALLEL 4

struct cold_opts {
    const char *from;
    const char *to;
    bool move;
    bool verify;
    bool no_base;
    bool dry_run;
    bool streams;
    int parallel;
    unsigned long bandwidth;    /* MiB/s through streams, 0: no cap */
    unsigned long timeout;      /* s without data moving, 0: none */
};

/* One volume to move. */
struct cold_vol {
    char *name;             /* in its pool, on both nodes */
    bool base;              /* of the base pool */
    uint64_t length;        /* byte length as stored */
    char *format;
    char *backing;          /* backing base image name, or NULL */
    const char *state;      /* "copied", "present", "shared", "failed" */
    const char *read;       /* "file" (the source's own) or "stream" */
    bool wrote_file;        /* written to the destination's file directly */
    struct pump_result res;
};

struct cold_run {
    struct ctl *ctl;
    const struct cold_opts *o;
    virConnectPtr src;
    virConnectPtr dst;
    virStoragePoolPtr src_pool[2];  /* disks, base */
    virStoragePoolPtr dst_pool[2];
    const char *pool_name[2];
    bool shared[2];
    char *base_dir[2];              /* the base pool's path: source, dest */
    struct ctl_progress prog;
    unsigned reported;          /* instances in the JSON array so far */
};

/*
 * Is the pool the same storage at both ends, by libvirt's account?  The
 * same pool UUID on ONE_DAEMON (both ends one URI: pool definitions made
 * from one XML carry one UUID to every node, so elsewhere it proves
 * nothing), or network storage with the same source.
 */
bool
cold_pool_shared(virStoragePoolPtr a, virStoragePoolPtr b, bool one_daemon)
{
    char ua[VIR_UUID_STRING_BUFLEN], ub[VIR_UUID_STRING_BUFLEN];
    char *xa = NULL, *xb = NULL;
    xmlDocPtr da = NULL, db = NULL;
    char *ta = NULL, *sa = NULL, *sb = NULL;
    bool shared = false;

    if (one_daemon && virStoragePoolGetUUIDString(a, ua) == 0 &&
        virStoragePoolGetUUIDString(b, ub) == 0 && strcmp(ua, ub) == 0)
        return true;
    if (!(xa = virStoragePoolGetXMLDesc(a, 0)) ||
        !(xb = virStoragePoolGetXMLDesc(b, 0)) ||
        !(da = xmlq_read(xa)) || !(db = xmlq_read(xb)))
        goto out;
    ta = xmlq_string(da, "string(/pool/@type)");
    if (ta && (strcmp(ta, "netfs") == 0 || strcmp(ta, "rbd") == 0 ||
               strcmp(ta, "gluster") == 0 || strcmp(ta, "iscsi-direct") == 0)) {
        /* host name(s), and the exported directory, image pool or target */
        sa = xmlq_string(da, "concat(/pool/@type,'|',/pool/source/host/@name,"
                            "'|',/pool/source/dir/@path,'|',/pool/source/name,"
                            "'|',/pool/source/device/@path)");
        sb = xmlq_string(db, "concat(/pool/@type,'|',/pool/source/host/@name,"
                            "'|',/pool/source/dir/@path,'|',/pool/source/name,"
                            "'|',/pool/source/device/@path)");
        shared = sa && sb && strcmp(sa, sb) == 0;
    }
 out:
    free(ta);
    free(sa);
    free(sb);
    xmlFreeDoc(da);
    xmlFreeDoc(db);
    free(xa);
    free(xb);
    return shared;
}

/* Do paths A and B (either NULL) name one directory, trailing slashes
 * aside? */
static bool
cold_same_dir(const char *a, const char *b)
{
    size_t la, lb;

    if (!a || !b)
        return false;
    for (la = strlen(a); la > 1 && a[la - 1] == '/'; la--)
        ;
    for (lb = strlen(b); lb > 1 && b[lb - 1] == '/'; lb--)
        ;
    return la == lb && strncmp(a, b, la) == 0;
}

/*
 * Do pools P at both ends hold the same files though libvirt does not
 * tell (a dir pool on an NFS or CephFS mount both nodes share; netfs pools
 * naming their server differently)?  A probe volume made at the
 * destination shows up in the source's pool after a refresh, or not.
 * 1 shared, 0 not, -1 (an error printed) when it cannot be told: copying
 * onto itself, and --move deleting the only copy, must not be guessed.
 */
static int
cold_probe_shared(struct cold_run *r, int p)
{
    char name[64], *xml;
    unsigned long long tag;
    virStorageVolPtr probe, seen;
    virErrorPtr e;
    int shared = -1, look;

    if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
        tag = (unsigned long long)getpid() << 32 ^ (unsigned long long)time(NULL);
    snprintf(name, sizeof(name), ".poolfs-probe-%016llx", tag);
    if (!(xml = land_volume_xml(name))) {
        ctl_error("out of memory");
        return -1;
    }
    probe = virStorageVolCreateXML(r->dst_pool[p], xml, 0);
    free(xml);
    if (!probe) {
        ctl_error("cannot make a probe volume in pool '%s' on %s (to tell "
                  "whether it is the storage of pool '%s' on %s): %s",
                  r->pool_name[p], r->o->to, r->pool_name[p], r->o->from,
                  ctl_virt_message());
        return -1;
    }
    /* Not seen is "not shared" only when libvirt says there is no such
     * volume; with --move, looked for once more a second later (a network
     * filesystem's cached listing), since a wrong "not shared" there
     * deletes the only copy. */
    for (look = 0; look < (r->o->move ? 2 : 1) && shared != 1; look++) {
        if (look)
            sleep(1);
        if (virStoragePoolRefresh(r->src_pool[p], 0) < 0) {
            ctl_error("cannot refresh pool '%s' on %s (to tell whether it "
                      "is the storage of pool '%s' on %s): %s",
                      r->pool_name[p], r->o->from, r->pool_name[p],
                      r->o->to, ctl_virt_message());
            shared = -1;
            break;
        }
        if ((seen = virStorageVolLookupByName(r->src_pool[p], name))) {
            virStorageVolFree(seen);
            shared = 1;
        } else if ((e = virGetLastError()) &&
                   e->code == VIR_ERR_NO_STORAGE_VOL) {
            shared = 0;
        } else {
            ctl_error("cannot look for the probe volume in pool '%s' on %s "
                      "(to tell whether it is the storage of pool '%s' on "
                      "%s): %s", r->pool_name[p], r->o->from,
                      r->pool_name[p], r->o->to, ctl_virt_message());
            shared = -1;
            break;
        }
    }
    virStorageVolDelete(probe, 0);
    virStorageVolFree(probe);
    if (shared == 1)
        virStoragePoolRefresh(r->src_pool[p], 0);   /* the probe is gone */
    return shared;
}

static virStoragePoolPtr
cold_pool(virConnectPtr conn, const char *name, const char *uri)
{
    virStoragePoolPtr p = virStoragePoolLookupByName(conn, name);

    int active;

    if (!p) {
        ctl_error("storage pool '%s' not found on %s: %s", name, uri,
                  ctl_virt_message());
    } else if ((active = virStoragePoolIsActive(p)) != 1) {
        if (active < 0)
            ctl_error("cannot tell whether storage pool '%s' on %s is "
                      "active: %s", name, uri, ctl_virt_message());
        else
            ctl_error("storage pool '%s' on %s is inactive", name, uri);
        virStoragePoolFree(p);
        p = NULL;
    }
    return p;
}

static int
cold_describe(struct cold_run *r, int pool, const char *name,
              struct cold_vol *v)
{
    virStorageVolPtr vol = virStorageVolLookupByName(r->src_pool[pool], name);
    virStorageVolInfo info;
    char *xml = NULL;
    xmlDocPtr doc = NULL;
    char *backing = NULL;
    bool by_dir = false;
    int rc = -1;

    memset(v, 0, sizeof(*v));
    v->base = pool == 1;
    if (!vol || !(v->name = strdup(name)) ||
        virStorageVolGetInfoFlags(vol, &info,
                                  VIR_STORAGE_VOL_GET_PHYSICAL) < 0 ||
        !(xml = virStorageVolGetXMLDesc(vol, 0)) || !(doc = xmlq_read(xml))) {
        ctl_error("cannot read volume '%s' of pool '%s' on %s: %s", name,
                  r->pool_name[pool], r->o->from,
                  vol && !v->name ? "out of memory" :
                  xml ? "its XML does not parse" : ctl_virt_message());
        goto out;
    }
    v->length = info.allocation;    /* GET_PHYSICAL puts it there */
    v->format = xmlq_string(doc, "string(/volume/target/format/@type)");
    backing = xmlq_string(doc, "string(/volume/backingStore/path)");
    if (backing && !(v->backing = volxml_base_name_in(backing,
                                                      r->base_dir[0],
                                                      &by_dir))) {
        ctl_error("volume '%s' is backed by %s, which is not a base image "
                  "of pool '%s' (MOUNT/_base/NAME or %s/NAME): cannot "
                  "migrate it", name, backing, r->pool_name[1],
                  r->base_dir[0] ? r->base_dir[0] : "its directory");
        goto out;
    }
    /* The copy names its base by the source pool's path: the same
     * path must hold it at the destination (also for a shared base pool,
     * which each node may mount elsewhere). */
    if (by_dir && !cold_same_dir(r->base_dir[0], r->base_dir[1])) {
        ctl_error("volume '%s' is backed by %s, a path of pool '%s' on %s, "
                  "but that pool lies in %s on %s: the copy's backing file "
                  "would not be there; give both nodes the same base pool "
                  "path", name, backing, r->pool_name[1], r->o->from,
                  r->base_dir[1] ? r->base_dir[1] : "no directory",
                  r->o->to);
        goto out;
    }
    rc = 0;
 out:
    free(backing);
    xmlFreeDoc(doc);
    free(xml);
    if (vol)
        virStorageVolFree(vol);
    return rc;
}

static void
cold_vol_clear(struct cold_vol *v)
{
    free(v->name);
    free(v->format);
    free(v->backing);
}

static void
cold_progress_cb(void *opaque, uint64_t done)
{
    ctl_progress_update(opaque, done);
}

/*
 * Move one volume.  On return the destination holds it under its final
 * name, verified, or nothing new under that name.
 */
static int
cold_move_volume(struct cold_run *r, struct cold_vol *v)
{
    int pool = v->base ? 1 : 0;
    struct land_pool from = { r->src, r->o->from, r->src_pool[pool],
                              r->pool_name[pool], r->o->streams,
                              r->o->parallel };
    struct land_pool to = { r->dst, r->o->to, r->dst_pool[pool],
                            r->pool_name[pool], r->o->streams,
                            r->o->parallel };
    virStorageVolPtr src = NULL, fin = NULL;
    struct pump_end in;
    struct xmlq_perms perms;
    bool has_perms;
    char err[1024];
    int fd = -1, rc = -1;

    if (!(src = virStorageVolLookupByName(r->src_pool[pool], v->name))) {
        ctl_error("volume '%s' vanished from pool '%s' on %s: %s", v->name,
                  r->pool_name[pool], r->o->from, ctl_virt_message());
        goto out;
    }

    /* Already there (an earlier run, or a base image the node had)?  Not
     * if an interrupted run left it unfinished. */
    if (land_unfinished(&to, v->name))
        ;
    else if ((fin = virStorageVolLookupByName(to.pool, v->name))) {
        struct pump_result check;

        if (v->base && !r->o->verify) {
            v->state = "present";
            rc = 0;
            goto out;
        }
        if (land_digest(&from, src, &v->res, err, sizeof(err)) < 0 ||
            land_digest(&to, fin, &check, err, sizeof(err)) < 0) {
            ctl_error("volume '%s': %s", v->name, err);
            goto out;
        }
        if (strcmp(v->res.hex, check.hex) != 0) {
            ctl_error("volume '%s' already exists on %s with other content: "
                      "not overwriting it; delete it there first", v->name,
                      r->o->to);
            goto out;
        }
        v->res.data = v->res.zeros = 0;     /* nothing was sent */
        v->state = "present";
        rc = 0;
        goto out;
    }

    in = land_source(&from, src, &fd);
    v->read = fd >= 0 ? "file" : "stream";
    /* The copy keeps the source's mode and owner (nova's, say). */
    has_perms = land_perms_of(src, &perms);
    if ((rc = land_volume(&to, v->name, has_perms ? &perms : NULL, &in,
                          r->o->verify,
                          cold_progress_cb, &r->prog, &v->res,
                          &v->wrote_file, err, sizeof(err))) < 0) {
        if (rc == LAND_PARTIAL_LEFT)
            ctl_error("volume '%s' on %s: %s: delete that partial volume "
                      "there before running again (else the next run copies "
                      "the volume anew); the source is untouched", v->name,
                      r->o->to, err);
        else
            ctl_error("volume '%s': %s; %s on %s, the source is untouched",
                      v->name, err, rc == LAND_NAMED ? "run again to finish" :
                      rc == LAND_STUCK ? "the next run replaces it" :
                      "nothing under that name", r->o->to);
        rc = -1;
        goto out;
    }
    r->prog.base += v->length;
    v->state = "copied";
    rc = 0;
 out:
    if (fd >= 0)
        close(fd);
    if (fin)
        virStorageVolFree(fin);
    if (src)
        virStorageVolFree(src);
    return rc;
}

/*
 * Is the instance running on the source?  Any running domain that names
 * it is: by its UUID (Nova's domain has the instance's), by a volume
 * {uuid}_* of the pool, or by a file MOUNT/{uuid}/... (poolfs, or a legacy
 * instance directory).  Base images are not looked for: they are read-only
 * to the domains that run on them, and copying one while they run is safe.
 * AGAIN: asked once the copy is done (the message says it was started
 * during it).
 */
static int
cold_check_idle(struct cold_run *r, const char *uuid, bool again)
{
    virDomainPtr *doms = NULL;
    int nd = virConnectListAllDomains(r->src, &doms,
                                      VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    int i, busy = 0;

    if (nd < 0) {
        ctl_error("instance %s: cannot list the running domains on %s to "
                  "check that it is shut down: %s", uuid, r->o->from,
                  ctl_virt_message());
        return -1;
    }
    for (i = 0; i < nd; i++) {
        char *xml = busy ? NULL : virDomainGetXMLDesc(doms[i], 0);
        char why[512];

        if (!busy && !xml && ctl_virt_keep(why, sizeof(why)) &&
            virDomainIsActive(doms[i]) == 1) {
            ctl_error("instance %s: cannot read the XML of running domain "
                      "'%s' on %s to check that it does not use the "
                      "instance: %s", uuid, virDomainGetName(doms[i]),
                      r->o->from, why);
            busy = 1;
        } else if (xml && strstr(xml, uuid) && again) {
            ctl_error("instance %s: domain '%s' was started on %s during "
                      "the copy, so the copy may be torn; the source is "
                      "kept and the instance's copies on the destination "
                      "go: migrate it again once it is shut down", uuid,
                      virDomainGetName(doms[i]), r->o->from);
            busy = 1;
        } else if (xml && strstr(xml, uuid)) {
            ctl_error("instance %s is in use by running domain '%s' on %s: "
                      "shut it down before a cold migration", uuid,
                      virDomainGetName(doms[i]), r->o->from);
            busy = 1;
        }
        free(xml);
        virDomainFree(doms[i]);
    }
    free(doms);
    return busy ? -1 : 0;
}

static int
cold_add(struct cold_vol **vols, size_t *n, struct cold_vol *v)
{
    struct cold_vol *nv = realloc(*vols, (*n + 1) * sizeof(**vols));

    if (!nv)
        return -1;
    *vols = nv;
    nv[(*n)++] = *v;
    return 0;
}

static bool
cold_has(struct cold_vol *vols, size_t n, const char *name, bool base)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (vols[i].base == base && strcmp(vols[i].name, name) == 0)
            return true;
    return false;
}

/* The instance's volumes: base images it needs first, then its own. */
static int
cold_plan(struct cold_run *r, const char *uuid, struct cold_vol **volsp,
          size_t *np)
{
    virStorageVolPtr *list = NULL;
    struct cold_vol *vols = NULL;
    size_t n = 0, i;
    int nl, k, rc = -1;

    if ((nl = virStoragePoolListAllVolumes(r->src_pool[0], &list, 0)) < 0) {
        ctl_error("cannot list pool '%s' on %s: %s", r->pool_name[0],
                  r->o->from, ctl_virt_message());
        return -1;
    }
    for (k = 0; k < nl; k++) {
        const char *name = virStorageVolGetName(list[k]);
        char *dir = NULL, *file = NULL;
        struct cold_vol v;

        if (names_decode(name, &dir, &file) == 0 &&
            strcmp(dir, uuid) == 0) {
            if (cold_describe(r, 0, name, &v) < 0 || cold_add(&vols, &n, &v) < 0) {
                free(dir);
                free(file);
                goto out;
            }
        }
        free(dir);
        free(file);
    }
    if (n == 0) {
        ctl_error("instance %s has no volumes in pool '%s' on %s", uuid,
                  r->pool_name[0], r->o->from);
        goto out;
    }
    /* Base images the destination lacks go first. */
    for (i = 0; i < n; i++) {
        virStorageVolPtr there;
        struct cold_vol b;
        const char *bname = vols[i].backing;

        if (!bname || vols[i].base || cold_has(vols, n, bname, true))
            continue;
        if (r->shared[1])
            continue;
        /* There, unless an interrupted run left it half made (its
         * .partial beside it: cold_move_volume() then copies it again). */
        if ((there = virStorageVolLookupByName(r->dst_pool[1], bname))) {
            virStorageVolFree(there);
            if (!land_has_partial(r->dst_pool[1], bname))
                continue;
        }
        if (r->o->no_base) {
            ctl_error("instance %s: base image '%s' (backing file of '%s') is "
                      "missing from pool '%s' on %s, and --no-base forbids "
                      "copying it", uuid, bname, vols[i].name,
                      r->pool_name[1], r->o->to);
            goto out;
        }
        if (cold_describe(r, 1, bname, &b) < 0 || cold_add(&vols, &n, &b) < 0)
            goto out;
        /* Keep bases first: rotate the new one to the front. */
        b = vols[n - 1];
        memmove(vols + 1, vols, (n - 1) * sizeof(*vols));
        vols[0] = b;
        i++;
    }
    rc = 0;
 out:
    for (k = 0; k < nl; k++)
        virStorageVolFree(list[k]);
    free(list);
    if (rc < 0) {
        for (i = 0; i < n; i++)
            cold_vol_clear(&vols[i]);
        free(vols);
        vols = NULL;
        n = 0;
    }
    *volsp = vols;
    *np = n;
    return rc;
}

static void
cold_report(struct cold_run *r, const char *uuid, const char *status,
            struct cold_vol *vols, size_t n, double secs)
{
    uint64_t len = 0, data = 0, zeros = 0;
    char a[32], b[32], c[32];
    size_t i;

    for (i = 0; i < n; i++) {
        len += vols[i].res.length;
        data += vols[i].res.data;
        zeros += vols[i].res.zeros;
    }
    if (!r->ctl->json) {
        printf("%s %s: %zu volumes, %s, %s of data sent, %s of zeros and "
               "%s of holes skipped, %.1f s%s\n", status, uuid, n,
               ctl_size(len, a, sizeof(a)), ctl_size(data, b, sizeof(b)),
               ctl_size(zeros, c, sizeof(c)),
               ctl_size(len > data + zeros ? len - data - zeros : 0, c + 16,
                        16), secs,
               r->o->verify && strcmp(status, "migrated") == 0 ?
               ", verified" : "");
        return;
    }
    printf("%s{\"uuid\": ", r->reported++ ? ", " : "");
    ctl_json_string(stdout, uuid);
    printf(", \"status\": \"%s\", \"seconds\": %.3f, \"volumes\": [",
           status, secs);
    for (i = 0; i < n; i++) {
        printf("%s{\"name\": ", i ? ", " : "");
        ctl_json_string(stdout, vols[i].name);
        printf(", \"pool\": ");
        ctl_json_string(stdout, r->pool_name[vols[i].base ? 1 : 0]);
        printf(", \"state\": \"%s\", \"read\": \"%s\", \"written\": \"%s\", "
               "\"length\": %llu, \"data_sent\": %llu, "
               "\"zeros_skipped\": %llu, \"digest\": \"%s\"}",
               vols[i].state ? vols[i].state : "failed",
               vols[i].read ? vols[i].read : "",
               !vols[i].read ? "" : vols[i].wrote_file ? "file" :
               vols[i].res.wrapped ? "stream, as qcow2" : "stream",
               (unsigned long long)vols[i].res.length,
               (unsigned long long)vols[i].res.data,
               (unsigned long long)vols[i].res.zeros,
               vols[i].res.hex[0] ? vols[i].res.hex : "");
    }
    printf("]}");
}

/* Delete the instance's volumes on the destination that this run copied
 * or found there matching the source as it was read (an earlier run's):
 * the guest has written since. */
static void
cold_drop_copies(struct cold_run *r, struct cold_vol *vols, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        virStorageVolPtr v;

        if (vols[i].base || !vols[i].state ||
            (strcmp(vols[i].state, "copied") != 0 &&
             strcmp(vols[i].state, "present") != 0))
            continue;
        if (!(v = virStorageVolLookupByName(r->dst_pool[0], vols[i].name)) ||
            virStorageVolDelete(v, 0) < 0)
            ctl_error("the copy of volume '%s' on %s could not be deleted: "
                      "%s; delete it there before migrating the instance "
                      "again", vols[i].name, r->o->to, ctl_virt_message());
        else
            vols[i].state = "failed";
        if (v)
            virStorageVolFree(v);
    }
}

static int
cold_instance(struct cold_run *r, const char *uuid)
{
    struct cold_vol *vols = NULL;
    size_t n = 0, i;
    uint64_t total = 0;
    double t0 = ctl_now();
    const char *status = "failed";
    int rc = -1;

    if (r->shared[0]) {
        status = "shared";
        rc = 0;
        if (!r->ctl->json)
            printf("shared %s: pool '%s' is the same storage on both nodes; "
                   "nothing to copy\n", uuid, r->pool_name[0]);
        else
            cold_report(r, uuid, status, NULL, 0, 0);
        return 0;
    }
    if (cold_plan(r, uuid, &vols, &n) < 0 ||
        cold_check_idle(r, uuid, false) < 0)
        goto out;
    for (i = 0; i < n; i++)
        total += vols[i].length;
    if (r->o->dry_run) {
        status = "planned";
        rc = 0;
        if (!r->ctl->json)
            for (i = 0; i < n; i++)
                printf("would copy %s volume '%s' (%llu bytes)%s%s\n",
                       vols[i].base ? "base" : "instance", vols[i].name,
                       (unsigned long long)vols[i].length,
                       vols[i].backing ? ", backed by " : "",
                       vols[i].backing ? vols[i].backing : "");
        goto out;
    }
    ctl_progress_start(&r->prog, r->ctl, uuid, total);
    for (i = 0; i < n; i++) {
        if (cold_move_volume(r, &vols[i]) < 0) {
            ctl_progress_end(&r->prog);
            goto out;
        }
    }
    ctl_progress_end(&r->prog);
    /* A domain started meanwhile wrote while its volumes were read: what
     * was verified is what was read, not what the source holds now.  The
     * instance's copies made by this run go (a rerun would find them
     * differing and refuse to overwrite them); base images stay, read
     * only to the guest. */
    if (cold_check_idle(r, uuid, true) < 0) {
        cold_drop_copies(r, vols, n);
        goto out;
    }

    if (r->o->move) {
        /* Everything verified: only now does the source go. Files before
         * the directory marker, base images never. */
        for (i = n; i-- > 0; ) {
            virStorageVolPtr v;

            if (vols[i].base)
                continue;
            if (!(v = virStorageVolLookupByName(r->src_pool[0], vols[i].name)) ||
                virStorageVolDelete(v, 0) < 0) {
                ctl_error("instance %s is on %s, but its volume '%s' could "
                          "not be deleted here: %s", uuid, r->o->to,
                          vols[i].name, ctl_virt_message());
                if (v)
                    virStorageVolFree(v);
                goto out;
            }
            virStorageVolFree(v);
        }
    }
    status = r->o->move ? "moved" : "migrated";
    rc = 0;
 out:
    if (rc == 0 || r->ctl->json)
        cold_report(r, uuid, status, vols, n, ctl_now() - t0);
    for (i = 0; i < n; i++)
        cold_vol_clear(&vols[i]);
    free(vols);
    return rc;
}

static void
cold_usage(void)
{
    printf("usage: poolfsctl [-c URI] migrate [--from URI] --to URI [--move]\n"
           "                 [--no-verify] [--no-base] [--streams] [--parallel N]\n"
           "                 [--bandwidth MIB] [--timeout SECONDS] [--dry-run]\n"
           "                 [--json] UUID...\n"
           "\n"
           "Copy every volume {uuid}_* of the instances from the disks pool\n"
           "on --from (default: -c) to the same pool on --to, and the base\n"
           "images their qcow2 disks need that --to lacks.  Between nodes the\n"
           "data goes in sparse libvirt volume streams; at an end that is this\n"
           "host (a local URI, a pool of files) the volume's file is read or\n"
           "written directly.  Each volume is verified (its content digest\n"
           "read back from the destination) unless --no-verify.  Run on the\n"
           "destination (-c its local URI, --from the source) so that the data\n"
           "crosses the network once and the verification reads local files.\n"
           "\n"
           "  --move       delete the source volumes once all are verified\n"
           "  --no-base    refuse instead of copying missing base images\n"
           "  --streams    libvirt streams at both ends, never the files\n"
           "  --parallel N download streams at once per volume read through\n"
           "               libvirt, each over its own range (1-%d, default %d)\n"
           "  --bandwidth MIB  at most MIB MiB/s of data through streams, all\n"
           "               volumes and ranges together (holes are free; the\n"
           "               verification's download counts too)\n"
           "  --timeout SECONDS  give up when a copy through a stream has\n"
           "               moved no data for SECONDS (a libvirtd that hangs\n"
           "               while its host answers, or whose storage stalls):\n"
           "               every connection is shut down and the migration\n"
           "               fails (default: wait; a silent network is\n"
           "               -k/-K's)\n"
           "  --dry-run    print the plan and change nothing\n",
           PUMP_MAX_PARALLEL, COLD_PARALLEL);
}

int
cold_main(struct ctl *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        { "from", required_argument, NULL, 'f' },
        { "to", required_argument, NULL, 't' },
        { "move", no_argument, NULL, 'm' },
        { "no-verify", no_argument, NULL, 'n' },
        { "no-base", no_argument, NULL, 'b' },
        { "dry-run", no_argument, NULL, 'd' },
        { "streams", no_argument, NULL, 's' },
        { "parallel", required_argument, NULL, 'P' },
        { "bandwidth", required_argument, NULL, 'B' },
        { "timeout", required_argument, NULL, 'T' },
        CTL_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cold_opts o = { .verify = true, .parallel = COLD_PARALLEL };
    char *end;
    struct cold_run r = { .ctl = ctl, .o = &o };
    int c, i, failed = 0, p;

    optind = 0;     /* glibc: start over (the global parse used "+") */
    while ((c = getopt_long(argc, argv, CTL_COMMON_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'f': o.from = optarg; break;
        case 't': o.to = optarg; break;
        case 'm': o.move = true; break;
        case 'n': o.verify = false; break;
        case 'b': o.no_base = true; break;
        case 'd': o.dry_run = true; break;
        case 's': o.streams = true; break;
        case 'P':
            errno = 0;
            o.parallel = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o.parallel < 1 ||
                o.parallel > PUMP_MAX_PARALLEL) {
                ctl_error("migrate: --parallel wants a number of streams "
                          "from 1 to %d, not '%s'", PUMP_MAX_PARALLEL, optarg);
                return CTL_USAGE;
            }
            break;
        case 'B':
            if (!ctl_parse_number("migrate", "--bandwidth", "MiB/s", optarg,
                                  CTL_BANDWIDTH_MAX, &o.bandwidth))
                return CTL_USAGE;
            break;
        case 'T':
            if (!ctl_parse_number("migrate", "--timeout", "seconds", optarg,
                                  CTL_TIMEOUT_MAX, &o.timeout))
                return CTL_USAGE;
            break;
        case 'h': cold_usage(); return CTL_OK;
        default:
            if (ctl_common_opt(ctl, c, optarg))
                break;
            return CTL_USAGE;
        }
    }
    if (o.move && !o.verify) {
        ctl_error("migrate: --move deletes the source only once the copy "
                  "is verified, so it cannot go with --no-verify");
        return CTL_USAGE;
    }
    if (!o.from)
        o.from = ctl->uri;
    if (!o.to || optind >= argc) {
        ctl_error("migrate: --to URI and at least one instance UUID are "
                  "required; see poolfsctl migrate --help");
        return CTL_USAGE;
    }
    pump_bandwidth_setup((uint64_t)o.bandwidth << 20);
    if (pump_stall_setup((unsigned)o.timeout) < 0) {
        ctl_error("migrate: cannot start the --timeout watch");
        return CTL_FAILED;
    }
    r.pool_name[0] = ctl->disks_pool;
    r.pool_name[1] = ctl->base_pool;
    if (!(r.src = ctl_connect(o.from)) || !(r.dst = ctl_connect(o.to)))
        goto fail;
    for (p = 0; p < 2; p++) {
        if (!(r.src_pool[p] = cold_pool(r.src, r.pool_name[p], o.from)) ||
            !(r.dst_pool[p] = cold_pool(r.dst, r.pool_name[p], o.to)))
            goto fail;
        r.shared[p] = cold_pool_shared(r.src_pool[p], r.dst_pool[p],
                                       strcmp(o.from, o.to) == 0);
        if (p == 1) {
            char *x = virStoragePoolGetXMLDesc(r.src_pool[1], 0);

            r.base_dir[0] = x ? volxml_pool_target(x) : NULL;
            free(x);
            x = virStoragePoolGetXMLDesc(r.dst_pool[1], 0);
            r.base_dir[1] = x ? volxml_pool_target(x) : NULL;
            free(x);
        }
        /* Not by libvirt's account: by a probe (a dry run makes none). */
        if (!r.shared[p] && !o.dry_run) {
            int s = cold_probe_shared(&r, p);

            if (s < 0)
                goto fail;
            r.shared[p] = s;
        }
    }

    if (ctl->json) {
        printf("{\"from\": ");
        ctl_json_string(stdout, o.from);
        printf(", \"to\": ");
        ctl_json_string(stdout, o.to);
        printf(", \"instances\": [");
    }
    for (i = optind; i < argc; i++) {
        if (pump_gave_up()) {
            /* --timeout shut every connection down: the rest cannot go. */
            ctl_error("instance %s not migrated: --timeout gave up on the "
                      "connections", argv[i]);
            failed++;
            continue;
        }
        if (names_check_component(argv[i]) < 0 || strchr(argv[i], '_')) {
            ctl_error("'%s' is not an instance UUID", argv[i]);
            failed++;
            continue;
        }
        if (cold_instance(&r, argv[i]) < 0)
            failed++;
    }
    if (ctl->json) {
        printf("], ");
        ctl_json_ok(!failed);
    }
    goto done;

 fail:
    failed = 1;
 done:
    for (p = 0; p < 2; p++) {
        if (r.src_pool[p])
            virStoragePoolFree(r.src_pool[p]);
        if (r.dst_pool[p])
            virStoragePoolFree(r.dst_pool[p]);
        free(r.base_dir[p]);
    }
    if (r.src)
        virConnectClose(r.src);
    if (r.dst)
        virConnectClose(r.dst);
    return failed ? CTL_FAILED : CTL_OK;
}
