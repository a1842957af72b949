/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The tcpkeep watchdog's rule (pool/tcpkeep.c): which sockets it leaves
 * alone, which connects it bounds, which connections it shuts down.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tcpkeep.h"

#define EST TCPKEEP_ESTABLISHED
#define FINE TCPKEEP_FINE
#define SILENT TCPKEEP_SILENT

/* Each socket: state, last ack and last data (ms ago), unacked,
 * retransmits, probes, bytes received, seconds being opened; then -k, -K
 * and the verdict. */
static const struct {
    struct tcpkeep_sock s;
    int interval, count;
    enum tcpkeep_verdict want;
    const char *why;
} cases[] = {
    /* Data sent again and again, nothing back for the limit: dead. */
    { { EST, 35000, 35000, 12, 7, 0, 0, 0 }, 5, 6, SILENT,
      "retransmitted in vain for 35 s" },
    { { TCPKEEP_CLOSE_WAIT, 45000, 45000, 1, 3, 0, 0, 0 }, 5, 6, SILENT,
      "also after the peer's FIN" },
    { { EST, 34999, 35000, 12, 7, 0, 0, 0 }, 5, 6, FINE,
      "not before the limit" },
    /* A pull: the peer sends data and acknowledges no new data of ours
     * (the kernel's time of the last acknowledgement grows); a request
     * just sent waits for its round trip, not retransmitted. */
    { { EST, 600000, 3, 1, 0, 0, 0, 0 }, 5, 6, FINE,
      "a receiver that just sent a request" },
    { { EST, 600000, 600000, 1, 0, 0, 0, 0 }, 5, 6, FINE,
      "sent once, not yet retransmitted" },
    { { EST, 600000, 10, 1, 2, 0, 0, 0 }, 5, 6, FINE,
      "a peer that sends is alive" },
    /* Idle, nothing in flight: keepalive's business, until as many of
     * its probes go unanswered. */
    { { EST, 600000, 600000, 0, 0, 0, 0, 0 }, 5, 6, FINE,
      "an idle connection is fine" },
    { { EST, 40000, 40000, 0, 0, 6, 0, 0 }, 5, 6, SILENT,
      "six probes unanswered" },
    { { EST, 40000, 40000, 0, 0, 5, 0, 0 }, 5, 6, FINE,
      "five are not six" },
    /* A peer alive behind a shut window: its answer to each probe sets
     * the count back, however long ago it was (the probes back off to two
     * minutes apart); the probe on its way is unanswered for a moment,
     * also at -K 1. */
    { { EST, 120000, 120000, 0, 0, 1, 0, 0 }, 5, 6, FINE,
      "a probe in flight to a stalled but live peer" },
    { { EST, 120000, 120000, 0, 0, 1, 0, 0 }, 1, 1, FINE, "at -K 1 too" },
    { { EST, 120000, 120000, 0, 0, 2, 0, 0 }, 1, 1, SILENT,
      "two unanswered at -K 1" },
    /* Still being opened by libvirt (no keepalive on it yet). */
    { { EST, 600000, 600000, 0, 0, 0, 0, 35 }, 5, 6, SILENT,
      "took the connection, said nothing for 35 s" },
    { { EST, 10, 35000, 0, 0, 0, 0, 35 }, 5, 6, SILENT,
      "its kernel acknowledging changes nothing" },
    { { EST, 600000, 600000, 0, 0, 0, 0, 34 }, 5, 6, FINE,
      "not before the limit" },
    { { EST, 600000, 20, 0, 0, 0, 0, 60 }, 5, 6, FINE,
      "a peer that answers is opening it, however slowly" },
    { { EST, 600000, 600000, 0, 0, 0, 3000, 60 }, 5, 6, FINE,
      "one that answered (TLS done) and is slow to finish the open" },
    { { EST, 600000, 600000, 1, 4, 0, 3000, 0 }, 5, 6, SILENT,
      "once opened, data sent again in vain is silence as ever" },
    { { TCPKEEP_CLOSE_WAIT, 600000, 600000, 0, 0, 0, 0, 60 }, 5, 6, FINE,
      "a peer that closed: libvirt sees the end itself" },
    /* States. */
    { { TCPKEEP_SYN_SENT, 0, 0, 1, 0, 0, 0, 0 }, 5, 6, TCPKEEP_CONNECTING,
      "a connect is the connect rule's" },
    { { TCPKEEP_FIN_WAIT1, 600000, 600000, 3, 9, 9, 0, 0 }, 5, 6, FINE,
      "a connection being closed is left to the kernel" },
    { { TCPKEEP_LISTEN, 600000, 600000, 0, 0, 0, 0, 0 }, 5, 6, FINE,
      "a listener" },
    /* Options. */
    { { EST, 600000, 600000, 12, 9, 9, 0, 0 }, 0, 6, FINE, "-k 0: off" },
    { { TCPKEEP_SYN_SENT, 0, 0, 1, 0, 0, 0, 0 }, 0, 6, FINE,
      "off bounds no connect" },
    { { EST, 4000, 4000, 12, 3, 0, 0, 0 }, 1, 3, SILENT, "-k 1 -K 3: 4 s" },
    { { EST, 3999, 4000, 12, 3, 0, 0, 0 }, 1, 3, FINE, "under 4 s" },
    { { EST, 60000, 60000, 12, 9, 0, 0, 0 }, TCPKEEP_INTERVAL_MAX,
      TCPKEEP_COUNT_MAX, FINE, "a minute is well under 101 hours" },
};

int
main(void)
{
    size_t i;

    CHECK(tcpkeep_limit(5, 6) == 35, "the defaults give 35 s");
    CHECK(tcpkeep_limit(1, 3) == 4, "-k 1 -K 3 gives 4 s");
    CHECK(tcpkeep_limit(0, 6) == 0, "-k 0 is off");
    CHECK(tcpkeep_limit(TCPKEEP_INTERVAL_MAX, TCPKEEP_COUNT_MAX) ==
          3600u * 101u, "the largest does not wrap");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(tcpkeep_judge(&cases[i].s, cases[i].interval, cases[i].count) ==
              cases[i].want, "%s", cases[i].why);
    return check_done();
}
