/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
static void (*tk_note)(const char *msg);
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

/* SYN_SENT sockets by inode, with when the watchdog first saw them: the
 * kernel keeps no time of a connect's start that TCP_INFO shows. */
#define TK_CONNECTING 32
static struct {
    ino_t ino;
    time_t since;
    bool seen;          /* in this pass */
} tk_conn[TK_CONNECTING];

/* Calls FN(fd, st, arg) for each TCP socket of the process. */
static void
tk_each(void (*fn)(int fd, const struct stat *st, void *arg), void *arg)
{
    struct dirent *e;
    DIR *d;

    if (!(d = opendir("/proc/self/fd")))
        return;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), proto = 0;
        socklen_t len = sizeof(proto);
        struct stat st;

        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) < 0 ||
            !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 ||
            proto != IPPROTO_TCP)
            continue;
        fn(fd, &st, arg);
    }
    closedir(d);
}

static void
tk_apply_one(int fd, const struct stat *st, void *arg)
{
    const int *v = arg, on = 1, off = 0;

    (void)st;
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

static void
tk_peer(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
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

static void
tk_note_fd(int fd, const char *fmt, int secs)
{
    char peer[INET6_ADDRSTRLEN + 16], msg[256];

    if (!tk_note)
        return;
    tk_peer(fd, peer, sizeof(peer));
    snprintf(msg, sizeof(msg), fmt, peer, secs);
    tk_note(msg);
}

/* A connect the peer does not answer: the kernel itself gives it up
 * with ETIMEDOUT once the bound has passed since its first SYN.  The
 * bound goes again if the connect completed meanwhile (tcpkeep_apply
 * also takes it away). */
static void
tk_bound_connect(int fd, const struct stat *st, int limit)
{
    struct timespec ts;
    time_t now;
    unsigned ms = (unsigned)limit * 1000, zero = 0;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int i, free_slot = -1;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = ts.tv_sec;
    for (i = 0; i < TK_CONNECTING; i++) {
        if (tk_conn[i].ino == st->st_ino)
            break;
        if (free_slot < 0 && tk_conn[i].ino == 0)
            free_slot = i;
    }
    if (i == TK_CONNECTING) {
        if (free_slot >= 0) {
            tk_conn[free_slot].ino = st->st_ino;
            tk_conn[free_slot].since = now;
            tk_conn[free_slot].seen = true;
        }
        return;
    }
    tk_conn[i].seen = true;
    if (now - tk_conn[i].since < limit)
        return;
    if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) < 0)
        return;
    /* No note: the connect's own error says "Connection timed out". */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        ti.tcpi_state != TCP_SYN_SENT)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero,
                         sizeof(zero));
}

enum tcpkeep_verdict
tcpkeep_judge(const struct tcp_info *ti, int interval, int count)
{
    unsigned limit_ms = (unsigned)interval * (unsigned)count * 1000u;

    if (interval <= 0 || count <= 0)
        return TCPKEEP_FINE;
    if (ti->tcpi_state == TCP_SYN_SENT)
        return TCPKEEP_CONNECTING;
    if (ti->tcpi_state != TCP_ESTABLISHED && ti->tcpi_state != TCP_CLOSE_WAIT)
        return TCPKEEP_FINE;
    /* Silent: nothing acknowledged for the limit while data waits for it
     * (retransmitted in vain) or while COUNT probes of the peer's shut
     * window (or keepalive probes) went unanswered in a row.  A live peer
     * acknowledges both, also one that keeps its window shut because it
     * cannot write fast enough: each answer sets tcpi_probes back to 0. */
    if (ti->tcpi_last_ack_recv >= limit_ms &&
        (ti->tcpi_unacked > 0 || ti->tcpi_probes >= (unsigned)count))
        return TCPKEEP_SILENT;
    return TCPKEEP_FINE;
}

static void
tk_check_one(int fd, const struct stat *st, void *arg)
{
    int interval = atomic_load(&tk_interval), count = atomic_load(&tk_count);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    (void)arg;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return;
    switch (tcpkeep_judge(&ti, interval, count)) {
    case TCPKEEP_CONNECTING:
        tk_bound_connect(fd, st, interval * count);
        break;
    case TCPKEEP_SILENT:
        tk_note_fd(fd, "tcpkeep: %s acknowledged nothing for %d s: closing "
                   "the connection", interval * count);
        /* Not close: the fd is libvirt's.  Its thread waiting on the
         * socket wakes to an error, as when the peer resets. */
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
        int count = atomic_load(&tk_count);
        int i;

        sleep(interval > 0 ? (unsigned)interval : 1);
        if (interval <= 0 || count <= 0)
            continue;
        for (i = 0; i < TK_CONNECTING; i++)
            tk_conn[i].seen = false;
        tk_each(tk_check_one, NULL);
        /* A socket no longer connecting frees its slot. */
        for (i = 0; i < TK_CONNECTING; i++)
            if (!tk_conn[i].seen)
                tk_conn[i].ino = 0;
    }
    return NULL;
}

static void
tk_start(void)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* No signal of the program's is delivered to this thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, &attr, tk_watchdog, NULL) != 0 && tk_note)
        tk_note("tcpkeep: cannot start its thread: connects and writes to "
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
        tk_note = note;
    if (interval > 0 && count > 0)
        pthread_once(&tk_once, tk_start);
}
