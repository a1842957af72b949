/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lmpolicy: which libvirt migration flags a live migration uses, decided
 * here and nowhere else, from facts about the two ends; never by hand.
 * Pure code (no libvirt calls), unit-tested as a table.
 */
#ifndef POOLFS_LMPOLICY_H
#define POOLFS_LMPOLICY_H

#include <stdbool.h>
#include <stddef.h>

enum lm_tunnel { LM_TUNNEL_AUTO, LM_TUNNEL_YES, LM_TUNNEL_NO };

struct lm_facts {
    unsigned long libvirt;      /* the older end's, 1000000*maj+1000*min+mic */
    unsigned long qemu;         /* the older end's QEMU */
    bool tls;                   /* x509 set up for native TLS at both ends */
    int disks_to_copy;          /* on pool volumes the destination lacks */
    enum lm_tunnel tunnel;
    bool insecure;              /* --insecure: a plain channel is allowed */
    bool postcopy;              /* --postcopy */
    bool auto_converge;         /* --auto-converge */
};

struct lm_plan {
    unsigned long flags;        /* virDomainMigrateFlags */
    const char *channel;        /* "native TLS", "tunnelled", "plain" */
    char why_channel[256];
    char why_disks[256];
    char refusal[512];          /* set: refused, nothing may move */
};

/* Decide; 0, or -1 with PLAN->refusal saying why and what to change. */
int lm_decide(const struct lm_facts *facts, struct lm_plan *plan);

/* The names of FLAGS ("VIR_MIGRATE_LIVE|VIR_MIGRATE_PEER2PEER|...") into
 * BUF. */
const char *lm_flag_names(unsigned long flags, char *buf, size_t len);

/* Versions below which native TLS migration (with NBD disk copy) does not
 * exist: libvirt 4.4.0 and QEMU 2.11. */
#define LM_TLS_MIN_LIBVIRT 4004000UL
#define LM_TLS_MIN_QEMU 2011000UL

#endif /* POOLFS_LMPOLICY_H */
