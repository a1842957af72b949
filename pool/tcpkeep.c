/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tcpkeep.h"

/* What the watchdog reads; the programs may set it again as they parse
 * their options. */
static atomic_int tk_interval, tk_count;
static void (*_Atomic tk_note)(const char *msg);
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

/* Calls FN(fd) for each TCP socket of the process.  FN gets a duplicate
 * of the process's descriptor, checked to be a TCP socket itself: what it
 * reads and what it does concern one socket, even if libvirt closes its
 * descriptor meanwhile and the number is reused. */
static void
tk_each(void (*fn)(int fd, void *arg), void *arg)
{
    struct dirent *e;
    DIR *d;

    if (!(d = opendir("/proc/self/fd")))
        return;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), dup, proto = 0;
        socklen_t len = sizeof(proto);
        struct stat st;

        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) < 0 ||
            !S_ISSOCK(st.st_mode) ||
            (dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
            continue;
        if (getsockopt(dup, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
            proto == IPPROTO_TCP)
            fn(dup, arg);
        close(dup);
    }
    closedir(d);
}

static void
tk_apply_one(int fd, void *arg)
{
    const int *v = arg, on = 1, off = 0;

    /* Best effort: a socket that refuses stays as it was. */
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v[0], sizeof(v[0]));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v[0], sizeof(v[0]));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v[1], sizeof(v[1]));
    /* The watchdog's bound on a connect must not outlive it. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &off, sizeof(off));
}

void
tcpkeep_apply(int interval, int count)
{
    int v[2] = { interval, count };

    if (interval > 0 && count > 0)
        tk_each(tk_apply_one, v);
}

unsigned
tcpkeep_limit(int interval, int count)
{
    return interval > 0 && count > 0 ?
        (unsigned)interval * ((unsigned)count + 1) : 0;
}

static void
tk_peer(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;

            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, port);
}

enum tcpkeep_verdict
tcpkeep_judge(const struct tcp_info *ti, int interval, int count)
{
    unsigned limit_ms = tcpkeep_limit(interval, count) * 1000u;
    unsigned probes = count < 2 ? 2 : (unsigned)count;

    if (!limit_ms)
        return TCPKEEP_FINE;
    if (ti->tcpi_state == TCP_SYN_SENT)
        return TCPKEEP_CONNECTING;
    if (ti->tcpi_state != TCP_ESTABLISHED && ti->tcpi_state != TCP_CLOSE_WAIT)
        return TCPKEEP_FINE;
    /* A peer that sends is alive; an acknowledgement is only counted
     * where the kernel processes one, so both times are looked at. */
    if (ti->tcpi_last_ack_recv < limit_ms || ti->tcpi_last_data_recv < limit_ms)
        return TCPKEEP_FINE;
    /* Silent: data waits for an acknowledgement and has been sent again
     * in vain (a request just sent waits too, for a round trip, without
     * retransmissions), or COUNT (at least two) probes of the peer's shut
     * window, or keepalive probes, went unanswered in a row.  A live peer
     * acknowledges both, also one that keeps its window shut because it
     * cannot write fast enough: each answer sets tcpi_probes back to 0,
     * and one probe is unanswered while it is on its way. */
    if ((ti->tcpi_unacked > 0 && ti->tcpi_retransmits > 0) ||
        ti->tcpi_probes >= probes)
        return TCPKEEP_SILENT;
    return TCPKEEP_FINE;
}

/* A connect: the kernel itself gives it up with ETIMEDOUT once the limit
 * has passed since its first SYN (it clamps each retransmission timer to
 * it).  Taken away again if the connect completed meanwhile;
 * tcpkeep_apply also takes it away once connected. */
static void
tk_bound_connect(int fd, unsigned limit)
{
    unsigned ms = limit * 1000u, zero = 0;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
        return;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        ti.tcpi_state != TCP_SYN_SENT)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero,
                         sizeof(zero));
}

static void
tk_check_one(int fd, void *arg)
{
    int interval = atomic_load(&tk_interval), count = atomic_load(&tk_count);
    unsigned limit = tcpkeep_limit(interval, count);
    void (*note)(const char *) = atomic_load(&tk_note);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    (void)arg;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    switch (tcpkeep_judge(&ti, interval, count)) {
    case TCPKEEP_CONNECTING:
        /* No note: the connect's own error says "Connection timed out". */
        tk_bound_connect(fd, limit);
        break;
    case TCPKEEP_SILENT:
        if (note) {
            char peer[INET6_ADDRSTRLEN + 16], msg[256];

            tk_peer(fd, peer, sizeof(peer));
            snprintf(msg, sizeof(msg), "tcpkeep: %s answered nothing for "
                     "%u s: closing the connection", peer, limit);
            note(msg);
        }
        /* Not close: the socket is libvirt's.  Its thread waiting on it
         * wakes to an error, as when the peer resets. */
        (void)shutdown(fd, SHUT_RDWR);
        break;
    case TCPKEEP_FINE:
        break;
    }
}

static void *
tk_watchdog(void *unused)
{
    (void)unused;
    for (;;) {
        int interval = atomic_load(&tk_interval);

        sleep(interval > 0 ? (unsigned)interval : 1);
        if (tcpkeep_limit(atomic_load(&tk_interval), atomic_load(&tk_count)))
            tk_each(tk_check_one, NULL);
    }
    return NULL;
}

static void
tk_start(void)
{
    void (*note)(const char *) = atomic_load(&tk_note);
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* No signal of the program's is delivered to this thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, &attr, tk_watchdog, NULL) != 0 && note)
        note("tcpkeep: cannot start its thread: connects and writes to "
             "a silent peer wait for TCP's own limits");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

void
tcpkeep_watch(int interval, int count, void (*note)(const char *msg))
{
    atomic_store(&tk_interval, interval);
    atomic_store(&tk_count, count);
    if (note)
        atomic_store(&tk_note, note);
    if (tcpkeep_limit(interval, count))
        pthread_once(&tk_once, tk_start);
}
