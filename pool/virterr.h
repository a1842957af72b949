/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virterr: what a failed libvirt connection means, in an operator's words. */
#ifndef POOLFS_VIRTERR_H
#define POOLFS_VIRTERR_H

/*
 * For a failed virConnectOpen, a sentence naming the cause when libvirt's
 * own message hides it, or NULL: TLS certificate refusals (the last
 * libvirt error of this thread), or tcpkeep's watchdog having shut the
 * connection being opened (ENDED: tcpkeep_opens_ended() before the open).
 */
const char *virterr_hint(unsigned ended);

/* Keep libvirt's own log (its warnings) off stderr unless the user asked
 * for it with LIBVIRT_LOG_OUTPUTS: each failure is reported once, by us. */
void virterr_quiet_log(void);

#endif /* POOLFS_VIRTERR_H */
