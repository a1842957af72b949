/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The live-migration flag policy as a table: facts in, flags or refusal out. */
#include <stdio.h>
#include <string.h>
#include <libvirt/libvirt.h>

#include "lmpolicy.h"

#define V(a, b, c) ((a) * 1000000UL + (b) * 1000UL + (c))
#define BASE (VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | \
              VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE)

struct row {
    const char *what;
    struct lm_facts in;
    int rc;
    unsigned long flags;        /* when rc == 0 */
    const char *says;           /* in the reason or the refusal */
};

static const struct row rows[] = {
    { "modern, TLS, shared disks: native TLS",
      { V(9,0,0), V(7,2,0), true, 0, LM_TUNNEL_AUTO, false, false, false },
      0, BASE | VIR_MIGRATE_TLS, "native TLS" },
    { "modern, TLS, disks to copy: TLS + full copy",
      { V(9,0,0), V(7,2,0), true, 2, LM_TUNNEL_AUTO, false, false, false },
      0, BASE | VIR_MIGRATE_TLS | VIR_MIGRATE_NON_SHARED_DISK, "pre-created" },
    { "modern, no TLS, shared: tunnelled by default",
      { V(9,0,0), V(7,2,0), false, 0, LM_TUNNEL_AUTO, false, false, false },
      0, BASE | VIR_MIGRATE_TUNNELLED, "only secure channel" },
    { "modern, no TLS, disks to copy: refused (the CI failure)",
      { V(9,0,0), V(7,2,0), false, 1, LM_TUNNEL_AUTO, false, false, false },
      -1, 0, "migrate_disks" },
    { "modern, no TLS, disks, --insecure: plain + copy",
      { V(9,0,0), V(7,2,0), false, 1, LM_TUNNEL_AUTO, true, false, false },
      0, BASE | VIR_MIGRATE_NON_SHARED_DISK, "--insecure" },
    { "tunnelled yes with disks to copy: refused even with TLS",
      { V(9,0,0), V(7,2,0), true, 1, LM_TUNNEL_YES, false, false, false },
      -1, 0, "cannot copy a chosen set of disks" },
    { "tunnelled yes, shared: tunnelled",
      { V(9,0,0), V(7,2,0), true, 0, LM_TUNNEL_YES, false, false, false },
      0, BASE | VIR_MIGRATE_TUNNELLED, "--tunnelled yes" },
    { "tunnelled no, no TLS: refused",
      { V(9,0,0), V(7,2,0), false, 0, LM_TUNNEL_NO, false, false, false },
      -1, 0, "--insecure" },
    { "tunnelled no, no TLS, --insecure: plain",
      { V(9,0,0), V(7,2,0), false, 0, LM_TUNNEL_NO, true, false, false },
      0, BASE, "unencrypted" },
    { "old libvirt, TLS certs there: tunnelled",
      { V(3,0,0), V(2,8,0), true, 0, LM_TUNNEL_AUTO, false, false, false },
      0, BASE | VIR_MIGRATE_TUNNELLED, "too new" },
    { "old QEMU, disks to copy: refused, says upgrade",
      { V(9,0,0), V(2,10,0), true, 1, LM_TUNNEL_AUTO, false, false, false },
      -1, 0, "upgrade" },
    { "post-copy and auto-converge only when asked",
      { V(9,0,0), V(7,2,0), true, 0, LM_TUNNEL_AUTO, false, true, true },
      0, BASE | VIR_MIGRATE_TLS | VIR_MIGRATE_POSTCOPY |
         VIR_MIGRATE_AUTO_CONVERGE, "native TLS" },
};

int
main(void)
{
    int failures = 0;
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct lm_plan plan;
        char names[512];
        int rc = lm_decide(&r->in, &plan);
        const char *text = rc < 0 ? plan.refusal : plan.why_channel;
        bool ok = rc == r->rc &&
                  (rc < 0 || plan.flags == r->flags) &&
                  (strstr(text, r->says) || strstr(plan.why_disks, r->says));

        /* Never tunnelled together with a disk copy. */
        if (rc == 0 && (plan.flags & VIR_MIGRATE_TUNNELLED) &&
            (plan.flags & (VIR_MIGRATE_NON_SHARED_DISK |
                           VIR_MIGRATE_NON_SHARED_INC)))
            ok = false;
        if (!ok) {
            failures++;
            fprintf(stderr, "FAIL %s: rc %d flags %s (%s)\n", r->what, rc,
                    lm_flag_names(plan.flags, names, sizeof(names)), text);
        }
    }
    printf("%zu rows, %d failed\n", i, failures);
    return failures ? 1 : 0;
}
