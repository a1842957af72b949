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

static struct tcp_info
info(unsigned state, unsigned last_ack_ms, unsigned unacked, unsigned probes)
{
    struct tcp_info ti;

    memset(&ti, 0, sizeof(ti));
    ti.tcpi_state = state;
    ti.tcpi_last_ack_recv = last_ack_ms;
    ti.tcpi_unacked = unacked;
    ti.tcpi_probes = probes;
    return ti;
}

static enum tcpkeep_verdict
judge(struct tcp_info ti)
{
    return tcpkeep_judge(&ti, 5, 6);            /* the defaults: 30 s */
}

int
main(void)
{
    /* Data in flight, nothing acknowledged for the limit: a dead peer. */
    CHECK(judge(info(TCP_ESTABLISHED, 30000, 12, 0)) == TCPKEEP_SILENT,
          "unacknowledged data for 30 s");
    CHECK(judge(info(TCP_CLOSE_WAIT, 45000, 1, 0)) == TCPKEEP_SILENT,
          "also after the peer's FIN");
    CHECK(judge(info(TCP_ESTABLISHED, 29999, 12, 0)) == TCPKEEP_FINE,
          "not before the limit");
    /* Idle, nothing in flight: keepalive's business, until its probes go
     * unanswered as long. */
    CHECK(judge(info(TCP_ESTABLISHED, 600000, 0, 0)) == TCPKEEP_FINE,
          "an idle connection acknowledges nothing and is fine");
    CHECK(judge(info(TCP_ESTABLISHED, 35000, 0, 6)) == TCPKEEP_SILENT,
          "six probes unanswered");
    CHECK(judge(info(TCP_ESTABLISHED, 35000, 0, 5)) == TCPKEEP_FINE,
          "five are not six");
    /* A peer alive behind a shut window: its answer to each probe sets
     * the count back, however long ago the last answer was (the probes
     * back off to two minutes apart). */
    CHECK(judge(info(TCP_ESTABLISHED, 120000, 0, 1)) == TCPKEEP_FINE,
          "a probe in flight to a stalled but live peer");
    CHECK(judge(info(TCP_SYN_SENT, 0, 1, 0)) == TCPKEEP_CONNECTING,
          "a connect is the connect rule's");
    CHECK(judge(info(TCP_FIN_WAIT1, 600000, 3, 9)) == TCPKEEP_FINE,
          "a connection being closed is left to the kernel");
    CHECK(judge(info(TCP_LISTEN, 600000, 0, 0)) == TCPKEEP_FINE,
          "a listener");
    /* Off. */
    {
        struct tcp_info ti = info(TCP_ESTABLISHED, 600000, 12, 9);

        CHECK(tcpkeep_judge(&ti, 0, 6) == TCPKEEP_FINE, "interval 0: off");
        CHECK(tcpkeep_judge(&ti, 1, 3) == TCPKEEP_SILENT, "-k 1 -K 3");
        ti.tcpi_last_ack_recv = 2999;
        CHECK(tcpkeep_judge(&ti, 1, 3) == TCPKEEP_FINE, "under 3 s");
    }
    /* The limit does not wrap at the largest interval and count. */
    {
        struct tcp_info ti = info(TCP_ESTABLISHED, 60000, 12, 0);

        CHECK(tcpkeep_judge(&ti, TCPKEEP_INTERVAL_MAX, TCPKEEP_COUNT_MAX) ==
              TCPKEEP_FINE, "a minute is well under 100 hours");
    }
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
