/* SPDX-License-Identifier: GPL-2.0-or-later */
/* virterr: what a failed libvirt connection means, in an operator's words. */
#ifndef POOLFS_VIRTERR_H
#define POOLFS_VIRTERR_H

/*
 * For the last libvirt error of this thread, a sentence naming the cause
 * when libvirt's own message hides it (TLS certificate refusals), or NULL.
 */
const char *virterr_hint(void);

/* Keep libvirt's own log (its warnings) off stderr unless the user asked
 * for it with LIBVIRT_LOG_OUTPUTS: each failure is reported once, by us. */
void virterr_quiet_log(void);

#endif /* POOLFS_VIRTERR_H */
