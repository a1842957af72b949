/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The tcpkeep watchdog's rule (pool/tcpkeep.c): which sockets it leaves
 * alone, which connects it bounds, which connections it shuts down.
 */
#include <stdio.h>
#include <string.h>

#include "tcpkeep.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

struct sock {
    unsigned state, last_ack_ms, last_data_ms, unacked, retransmits, probes;
    unsigned opening;           /* seconds seen being opened */
};

static enum tcpkeep_verdict
judge_with(struct sock s, int interval, int count)
{
    struct tcpkeep_sock ks = {
        .state = s.state,
        .last_ack_ms = s.last_ack_ms,
        .last_data_ms = s.last_data_ms,
        .unacked = s.unacked,
        .retransmits = s.retransmits,
        .probes = s.probes,
        .bytes_received = 0,
        .opening = s.opening,
    };

    return tcpkeep_judge(&ks, interval, count);
}

static enum tcpkeep_verdict
judge(struct sock s)
{
    return judge_with(s, 5, 6);                 /* the defaults: 35 s */
}

int
main(void)
{
    CHECK(tcpkeep_limit(5, 6) == 35, "the defaults give 35 s");
    CHECK(tcpkeep_limit(1, 3) == 4, "-k 1 -K 3 gives 4 s");
    CHECK(tcpkeep_limit(0, 6) == 0, "-k 0 is off");
    CHECK(tcpkeep_limit(TCPKEEP_INTERVAL_MAX, TCPKEEP_COUNT_MAX) ==
          3600u * 101u, "the largest does not wrap");

    /* Data sent again and again, nothing back for the limit: dead. */
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 35000, 35000, 12, 7, 0, 0 }) ==
          TCPKEEP_SILENT, "retransmitted in vain for 35 s");
    CHECK(judge((struct sock){ TCPKEEP_CLOSE_WAIT, 45000, 45000, 1, 3, 0, 0 }) ==
          TCPKEEP_SILENT, "also after the peer's FIN");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 34999, 35000, 12, 7, 0, 0 }) ==
          TCPKEEP_FINE, "not before the limit");
    /* A pull: the peer sends data and acknowledges no new data of ours
     * (the kernel's time of the last acknowledgement grows); a request
     * just sent waits for its round trip, not retransmitted. */
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 3, 1, 0, 0, 0 }) ==
          TCPKEEP_FINE, "a receiver that just sent a request");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 600000, 1, 0, 0, 0 }) ==
          TCPKEEP_FINE, "sent once, not yet retransmitted");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 10, 1, 2, 0, 0 }) ==
          TCPKEEP_FINE, "a peer that sends is alive");
    /* Idle, nothing in flight: keepalive's business, until as many of
     * its probes go unanswered. */
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 600000, 0, 0, 0, 0 }) ==
          TCPKEEP_FINE, "an idle connection is fine");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 40000, 40000, 0, 0, 6, 0 }) ==
          TCPKEEP_SILENT, "six probes unanswered");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 40000, 40000, 0, 0, 5, 0 }) ==
          TCPKEEP_FINE, "five are not six");
    /* A peer alive behind a shut window: its answer to each probe sets
     * the count back, however long ago it was (the probes back off to two
     * minutes apart); the probe on its way is unanswered for a moment,
     * also at -K 1. */
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 120000, 120000, 0, 0, 1, 0 }) ==
          TCPKEEP_FINE, "a probe in flight to a stalled but live peer");
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 120000, 120000, 0, 0, 1, 0 },
                     1, 1) == TCPKEEP_FINE, "at -K 1 too");
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 120000, 120000, 0, 0, 2, 0 },
                     1, 1) == TCPKEEP_SILENT, "two unanswered at -K 1");
    /* Still being opened by libvirt (no keepalive on it yet). */
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 600000, 0, 0, 0, 35 }) ==
          TCPKEEP_SILENT, "took the connection, said nothing for 35 s");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 10, 35000, 0, 0, 0, 35 }) ==
          TCPKEEP_SILENT, "its kernel acknowledging changes nothing");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 600000, 0, 0, 0, 34 }) ==
          TCPKEEP_FINE, "not before the limit");
    CHECK(judge((struct sock){ TCPKEEP_ESTABLISHED, 600000, 20, 0, 0, 0, 60 }) ==
          TCPKEEP_FINE, "a peer that answers is opening it, however slowly");
    CHECK(judge((struct sock){ TCPKEEP_CLOSE_WAIT, 600000, 600000, 0, 0, 0, 60 }) ==
          TCPKEEP_FINE, "a peer that closed: libvirt sees the end itself");
    {
        /* One that answered once (TLS done) and is slow to finish the
         * open (a virtqemud starting, Kerberos) is left alone. */
        struct tcpkeep_sock ks = {
            .state = TCPKEEP_ESTABLISHED, .last_ack_ms = 600000,
            .last_data_ms = 600000, .bytes_received = 3000, .opening = 60,
        };

        CHECK(tcpkeep_judge(&ks, 5, 6) == TCPKEEP_FINE,
              "a peer that answered and is slow to finish the open");
        ks.opening = 0;
        ks.unacked = 1;
        ks.retransmits = 4;
        CHECK(tcpkeep_judge(&ks, 5, 6) == TCPKEEP_SILENT,
              "once opened, data sent again in vain is silence as ever");
    }
    /* States. */
    CHECK(judge((struct sock){ TCPKEEP_SYN_SENT, 0, 0, 1, 0, 0, 0 }) ==
          TCPKEEP_CONNECTING, "a connect is the connect rule's");
    CHECK(judge((struct sock){ TCPKEEP_FIN_WAIT1, 600000, 600000, 3, 9, 9, 0 }) ==
          TCPKEEP_FINE, "a connection being closed is left to the kernel");
    CHECK(judge((struct sock){ TCPKEEP_LISTEN, 600000, 600000, 0, 0, 0, 0 }) ==
          TCPKEEP_FINE, "a listener");
    /* Options. */
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 600000, 600000, 12, 9, 9, 0 },
                     0, 6) == TCPKEEP_FINE, "interval 0: off");
    CHECK(judge_with((struct sock){ TCPKEEP_SYN_SENT, 0, 0, 1, 0, 0, 0 }, 0, 6) ==
          TCPKEEP_FINE, "off bounds no connect");
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 4000, 4000, 12, 3, 0, 0 },
                     1, 3) == TCPKEEP_SILENT, "-k 1 -K 3: 4 s");
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 3999, 4000, 12, 3, 0, 0 },
                     1, 3) == TCPKEEP_FINE, "under 4 s");
    CHECK(judge_with((struct sock){ TCPKEEP_ESTABLISHED, 60000, 60000, 12, 9, 0, 0 },
                     TCPKEEP_INTERVAL_MAX, TCPKEEP_COUNT_MAX) == TCPKEEP_FINE,
          "a minute is well under 101 hours");
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
