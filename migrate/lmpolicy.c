/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The rules, as libvirt's maintainers set them out for Nova (the
 * live_migration_flag thread): raw flags are no operator setting;
 * tunnelled is a tri-state whose default follows what the hypervisor
 * supports; a tunnelled migration cannot copy a chosen set of disks
 * (migrate_disks), the combination that broke Nova's CI.
 */
#include <stdio.h>
#include <string.h>
#include <libvirt/libvirt.h>

#include "lmpolicy.h"

static int
lm_refuse(struct lm_plan *plan, const char *why)
{
    snprintf(plan->refusal, sizeof(plan->refusal), "%s", why);
    return -1;
}

int
lm_decide(const struct lm_facts *f, struct lm_plan *plan)
{
    bool native_tls = f->tls && f->libvirt >= LM_TLS_MIN_LIBVIRT &&
                      f->qemu >= LM_TLS_MIN_QEMU;
    bool can_tls_at_all = f->libvirt >= LM_TLS_MIN_LIBVIRT &&
                          f->qemu >= LM_TLS_MIN_QEMU;

    memset(plan, 0, sizeof(*plan));
    /* Always: live, libvirtd to libvirtd, defined on the destination, and
     * undefined on the source only once the migration succeeded. */
    plan->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER |
                  VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;

    if (f->tunnel == LM_TUNNEL_YES) {
        if (f->disks_to_copy > 0)
            return lm_refuse(plan, "--tunnelled yes cannot be used: disks "
                             "must be copied and a tunnelled migration "
                             "cannot copy a chosen set of disks "
                             "(migrate_disks); use --tunnelled auto with "
                             "native TLS set up, or shared storage");
        plan->flags |= VIR_MIGRATE_TUNNELLED;
        plan->channel = "tunnelled";
        snprintf(plan->why_channel, sizeof(plan->why_channel),
                 "asked for with --tunnelled yes");
    } else if (native_tls) {
        plan->flags |= VIR_MIGRATE_TLS;
        plan->channel = "native TLS";
        snprintf(plan->why_channel, sizeof(plan->why_channel),
                 "both ends support native TLS migration and TLS is set up");
    } else if (f->tunnel == LM_TUNNEL_AUTO && f->disks_to_copy == 0) {
        plan->flags |= VIR_MIGRATE_TUNNELLED;
        plan->channel = "tunnelled";
        snprintf(plan->why_channel, sizeof(plan->why_channel),
                 "native TLS is %s, and the tunnel through libvirtd's own "
                 "connection is then the only secure channel",
                 can_tls_at_all ? "not set up" :
                 "too new for libvirt or QEMU at one end");
    } else if (f->insecure) {
        plan->channel = "plain";
        snprintf(plan->why_channel, sizeof(plan->why_channel),
                 "--insecure allows an unencrypted channel (native TLS is "
                 "%s%s)", can_tls_at_all ? "not set up" : "not supported",
                 f->disks_to_copy > 0 ? ", and a tunnel cannot copy the "
                 "chosen disks" : "");
    } else if (f->disks_to_copy > 0) {
        return lm_refuse(plan, can_tls_at_all ?
                         "disks must be copied, a tunnelled migration cannot "
                         "copy a chosen set of disks (migrate_disks), and "
                         "native TLS is not set up: set up TLS for QEMU "
                         "migration (default_tls_x509_cert_dir) at both "
                         "ends, or pass --insecure" :
                         "disks must be copied, a tunnelled migration cannot "
                         "copy a chosen set of disks (migrate_disks), and "
                         "libvirt or QEMU at one end is too old for native "
                         "TLS (libvirt 4.4, QEMU 2.11): upgrade, or pass "
                         "--insecure");
    } else {
        return lm_refuse(plan, "--tunnelled no forbids the tunnel and native "
                         "TLS is not available: set up TLS for QEMU "
                         "migration, or pass --insecure");
    }

    if (f->disks_to_copy > 0) {
        /* Full copy into the volumes poolfsctl pre-creates: libvirt
         * refuses incremental copy into pre-created targets. */
        plan->flags |= VIR_MIGRATE_NON_SHARED_DISK;
        snprintf(plan->why_disks, sizeof(plan->why_disks),
                 "%d disk%s on volumes the destination lacks: copied in "
                 "full (NON_SHARED_DISK) into volumes created there first; "
                 "libvirt refuses incremental copy into pre-created "
                 "volumes", f->disks_to_copy, f->disks_to_copy == 1 ? "" : "s");
    } else {
        snprintf(plan->why_disks, sizeof(plan->why_disks),
                 "no disk to copy: all on storage both ends share");
    }
    if (f->postcopy)
        plan->flags |= VIR_MIGRATE_POSTCOPY;
    if (f->auto_converge)
        plan->flags |= VIR_MIGRATE_AUTO_CONVERGE;
    return 0;
}

const char *
lm_flag_names(unsigned long flags, char *buf, size_t len)
{
    static const struct { unsigned long flag; const char *name; } names[] = {
        { VIR_MIGRATE_LIVE, "VIR_MIGRATE_LIVE" },
        { VIR_MIGRATE_PEER2PEER, "VIR_MIGRATE_PEER2PEER" },
        { VIR_MIGRATE_TUNNELLED, "VIR_MIGRATE_TUNNELLED" },
        { VIR_MIGRATE_PERSIST_DEST, "VIR_MIGRATE_PERSIST_DEST" },
        { VIR_MIGRATE_UNDEFINE_SOURCE, "VIR_MIGRATE_UNDEFINE_SOURCE" },
        { VIR_MIGRATE_NON_SHARED_DISK, "VIR_MIGRATE_NON_SHARED_DISK" },
        { VIR_MIGRATE_NON_SHARED_INC, "VIR_MIGRATE_NON_SHARED_INC" },
        { VIR_MIGRATE_AUTO_CONVERGE, "VIR_MIGRATE_AUTO_CONVERGE" },
        { VIR_MIGRATE_POSTCOPY, "VIR_MIGRATE_POSTCOPY" },
        { VIR_MIGRATE_TLS, "VIR_MIGRATE_TLS" },
    };
    size_t i, n = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((flags & names[i].flag) && n < len)
            n += snprintf(buf + n, len - n, "%s%s", n ? "|" : "",
                          names[i].name);
    return buf;
}
