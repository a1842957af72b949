/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcpkeep: TCP's own dead-peer detection on the libvirt connections of this
 * process.
 *
 * A network that goes silent (a cut cable, a node that froze: no reset,
 * packets just lost) must end a libvirt call or stream with an error, not
 * a wait for ever.  libvirt 9.0's client never times out a waiting call by
 * itself; its keepalive runs from an event loop thread, which closes the
 * connection under a thread waiting on it (that thread can then wait for
 * ever), and which reads every stream's packets into memory ahead of its
 * reader.  So the sockets do it: every TCP socket of the process (the
 * libvirt connections, qemu+tls and qemu+tcp; not qemu+ssh, whose socket
 * is ssh's, nor a local unix socket) probes a peer that has sent nothing
 * for INTERVAL seconds every INTERVAL seconds and fails after COUNT
 * unanswered probes.  The waiting thread then sees its own socket fail,
 * the error path a daemon that closes its end takes.
 *
 * What TCP's keepalive does not cover, a watchdog thread does: every
 * INTERVAL seconds it looks at each TCP socket's TCP_INFO.  LIMIT is
 * INTERVAL * (COUNT + 1) seconds, the time keepalive gives an idle peer.
 *  - A socket whose peer neither acknowledged nor sent anything for LIMIT
 *    while data waited and had been retransmitted, or while COUNT (at
 *    least two) probes of its shut window went unanswered in a row, is
 *    shut down (shutdown(2), not close: the socket is libvirt's), and the
 *    thread that waits on it fails.  Keepalive does not probe while data
 *    waits, so without this a write into a silent network waits until TCP
 *    gives up retransmitting (net.ipv4.tcp_retries2, some 15 minutes).  A
 *    peer that is alive acknowledges both, also one that keeps its window
 *    shut for minutes because its storage stalls.
 *  - A connect gets LIMIT as its TCP_USER_TIMEOUT, so the kernel gives it
 *    up with ETIMEDOUT LIMIT after its first SYN if nothing answers
 *    (otherwise net.ipv4.tcp_syn_retries: two minutes).  tcpkeep_apply
 *    takes the bound away again once connected.
 *  - A connection libvirt is still opening (connected, but tcpkeep_apply
 *    has not been by: TLS, authentication) whose peer sent nothing for
 *    LIMIT, as a libvirtd that hangs, or whose backlog holds connections
 *    it does not take (max_clients reached), is shut down too: the open
 *    fails instead of waiting for ever.
 *
 * Why not TCP_USER_TIMEOUT on every socket: since Linux 5.11 it also
 * ends a connection whose peer keeps its window shut that long (a
 * destination libvirtd whose storage stalls for a minute would fail a
 * healthy copy), and once set it replaces COUNT as the time a silent peer
 * is given (tried: a timeout of four keepalive windows made a cut pull
 * end after those, not after one).
 *
 * What it does not do: find a libvirtd that hangs on a host that still
 * answers, on a connection already open (its kernel acknowledges
 * everything; only libvirt's own keepalive would tell).
 */
#ifndef POOLFS_TCPKEEP_H
#define POOLFS_TCPKEEP_H


/* The defaults (virsh's), and the bounds both programs take. */
#define TCPKEEP_INTERVAL 5
#define TCPKEEP_COUNT 6
#define TCPKEEP_INTERVAL_MAX 3600
#define TCPKEEP_COUNT_MAX 100

/* Apply it to every TCP socket open now (call after each connection is
 * made; it is idempotent).  INTERVAL 0 does nothing. */
void tcpkeep_apply(int interval, int count);

/* Sets INTERVAL and COUNT for the watchdog, and starts it the first time
 * (before the first connect, so that it bounds that too; after any
 * fork).  It may be called again with new values; INTERVAL 0 pauses it.
 * NOTE, if not NULL, is told (from the watchdog's thread) what it ends
 * and why. */
void tcpkeep_watch(int interval, int count, void (*note)(const char *msg));

/* How many connections the watchdog has shut while libvirt was opening
 * them: a connect that fails with this changed failed for that. */
unsigned tcpkeep_opens_ended(void);
/* Why an open failed, if the watchdog shut a connection being opened
 * since tcpkeep_opens_ended() was BEFORE; else NULL. */
const char *tcpkeep_open_hint(unsigned before);

/* How long a peer may be silent: INTERVAL * (COUNT + 1) seconds, what
 * keepalive gives an idle connection (INTERVAL idle, then COUNT probes
 * INTERVAL apart); 0 when off. */
unsigned tcpkeep_limit(int interval, int count);

/* Shut down every TCP and Unix stream socket of the process (its libvirt
 * connections): whatever waits on them fails at once.  For a caller that
 * has given up on them all (poolfsctl migrate --timeout).  Sockets marked
 * foreign before the first connection are left alone. */
void tcpkeep_shut_all(void);
/* The sockets open now are not the caller's (standard streams to
 * journald, a parent's): tcpkeep_shut_all() leaves them alone. */
void tcpkeep_mark_foreign(void);

/* The watchdog's rule, for what one socket's TCP_INFO says. */
enum tcpkeep_verdict {
    TCPKEEP_FINE,
    TCPKEEP_CONNECTING,         /* bound the connect by the limit */
    TCPKEEP_SILENT,             /* shut it down */
};
/* TCP states (the kernel's numbers, as TCP_INFO gives them). */
enum {
    TCPKEEP_ESTABLISHED = 1,
    TCPKEEP_SYN_SENT = 2,
    TCPKEEP_FIN_WAIT1 = 4,
    TCPKEEP_CLOSE_WAIT = 8,
    TCPKEEP_LISTEN = 10,
};
struct tcpkeep_sock {
    unsigned state;
    unsigned last_ack_ms, last_data_ms;         /* since received */
    unsigned unacked, retransmits, probes;
    unsigned long long bytes_received;
    /* For how many seconds libvirt has been seen opening it (connected,
     * tcpkeep_apply not yet by); 0 once opened. */
    unsigned opening;
};
enum tcpkeep_verdict tcpkeep_judge(const struct tcpkeep_sock *s, int interval,
                                   int count);

#endif /* POOLFS_TCPKEEP_H */
