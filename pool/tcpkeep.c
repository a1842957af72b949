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
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tcpkeep.h"

/* What the watchdog reads; the programs may set it again as they parse
 * their options. */
static atomic_int tk_interval, tk_count;
static void (*_Atomic tk_note)(const char *msg);
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;
static atomic_uint tk_opens_ended;

/* Calls FN(fd) for each TCP socket of the process (and, with UNIX_TOO,
 * each Unix stream socket).  FN gets a duplicate of the process's
 * descriptor, checked to be such a socket itself: what it reads and what
 * it does concern one socket, even if libvirt closes its descriptor
 * meanwhile and the number is reused. */
static int
tk_sockopt(int fd, int opt)
{
    int v = -1;
    socklen_t len = sizeof(v);

    return getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}

static void
tk_each_of(void (*fn)(int fd, void *arg), void *arg, bool unix_too)
{
    struct dirent *e;
    DIR *d;

    if (!(d = opendir("/proc/self/fd")))
        return;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), dup;
        char link[32], target[16];
        ssize_t n;

        /* Sockets by their /proc link ("socket:[INODE]"): fstat of an
         * open file on a hung NFS server would stall the watchdog. */
        if (e->d_name[0] == '.' || fd == dirfd(d) ||
            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd) < 0 ||
            (n = readlink(link, target, sizeof(target) - 1)) < 7 ||
            memcmp(target, "socket:", 7) != 0 ||
            (dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
            continue;
        if (tk_sockopt(dup, SO_PROTOCOL) == IPPROTO_TCP ||
            (unix_too && tk_sockopt(dup, SO_DOMAIN) == AF_UNIX &&
             tk_sockopt(dup, SO_TYPE) == SOCK_STREAM))
            fn(dup, arg);
        close(dup);
    }
    closedir(d);
}

static void
tk_each(void (*fn)(int fd, void *arg), void *arg)
{
    tk_each_of(fn, arg, false);
}

/* Sockets the process had before it connected (stdout to journald, a
 * parent's): never tcpkeep_shut_all()'s.  shutdown() acts on the socket,
 * not on a descriptor, so it would cut them for their owners too. */
#define TK_FOREIGN 64
static ino_t tk_foreign[TK_FOREIGN];
static int tk_nforeign;

static void
tk_mark_one(int fd, void *arg)
{
    struct stat st;

    (void)arg;
    if (tk_nforeign < TK_FOREIGN && fstat(fd, &st) == 0)
        tk_foreign[tk_nforeign++] = st.st_ino;
}

void
tcpkeep_mark_foreign(void)
{
    tk_each_of(tk_mark_one, NULL, true);
}

static void
tk_shut_one(int fd, void *arg)
{
    struct stat st;
    int i;

    (void)arg;
    if (fstat(fd, &st) < 0)
        return;
    for (i = 0; i < tk_nforeign; i++)
        if (tk_foreign[i] == st.st_ino)
            return;
    shutdown(fd, SHUT_RDWR);
}

void
tcpkeep_shut_all(void)
{
    tk_each_of(tk_shut_one, NULL, true);
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
tcpkeep_judge(const struct tcpkeep_sock *s, int interval, int count)
{
    unsigned limit_ms = tcpkeep_limit(interval, count) * 1000u;
    unsigned probes = count < 2 ? 2 : (unsigned)count;

    if (!limit_ms)
        return TCPKEEP_FINE;
    if (s->state == TCPKEEP_SYN_SENT)
        return TCPKEEP_CONNECTING;
    if (s->state != TCPKEEP_ESTABLISHED && s->state != TCPKEEP_CLOSE_WAIT)
        return TCPKEEP_FINE;
    /* A peer that sends is alive (and an acknowledgement is only counted
     * where the kernel processes one). */
    if (s->last_data_ms < limit_ms)
        return TCPKEEP_FINE;
    /* Being opened by libvirt for the limit, and not a byte came back:
     * the peer's kernel took the connection, nothing else answers (a
     * libvirtd that hangs, or at max_clients with the connection in its
     * backlog).  One that has answered and is slow to finish (starting
     * virtqemud, asking Kerberos) is left alone. */
    if (s->opening >= limit_ms / 1000u && s->state == TCPKEEP_ESTABLISHED &&
        s->bytes_received == 0)
        return TCPKEEP_SILENT;
    if (s->last_ack_ms < limit_ms)
        return TCPKEEP_FINE;
    /* Silent: data waits for an acknowledgement and has been sent again
     * in vain (a request just sent waits too, for a round trip, without
     * retransmissions), or COUNT (at least two) probes of the peer's shut
     * window, or keepalive probes, went unanswered in a row.  A live peer
     * acknowledges both, also one that keeps its window shut because it
     * cannot write fast enough: each answer sets the probes back to 0,
     * and one probe is unanswered while it is on its way. */
    if ((s->unacked > 0 && s->retransmits > 0) || s->probes >= probes)
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
        ti.tcpi_state != TCPKEEP_SYN_SENT)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero,
                         sizeof(zero));
}

/* Connections libvirt is still opening, by socket inode, with when the
 * watchdog first saw them so: TCP_INFO has no time of the connect. */
#define TK_OPENING 32
static struct {
    ino_t ino;
    time_t since;
    bool seen;          /* in this pass */
} tk_open[TK_OPENING];

static time_t
tk_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* For how many seconds the watchdog has seen the connection on FD being
 * opened (since its first look at it). */
static unsigned
tk_opening_for(int fd)
{
    struct stat st;
    time_t now = tk_now();
    int i, free_slot = -1;

    if (fstat(fd, &st) < 0)
        return 0;
    for (i = 0; i < TK_OPENING; i++) {
        if (tk_open[i].ino == st.st_ino) {
            tk_open[i].seen = true;
            return (unsigned)(now - tk_open[i].since);
        }
        if (free_slot < 0 && tk_open[i].ino == 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        tk_open[free_slot].ino = st.st_ino;
        tk_open[free_slot].since = now;
        tk_open[free_slot].seen = true;
    }
    return 0;
}

static void
tk_close(int fd, void (*note)(const char *), const char *fmt, unsigned limit)
{
    if (note) {
        char peer[INET6_ADDRSTRLEN + 16], msg[256];

        tk_peer(fd, peer, sizeof(peer));
        snprintf(msg, sizeof(msg), fmt, peer, limit);
        note(msg);
    }
    /* Not close: the socket is libvirt's.  Its thread waiting on it wakes
     * to an error, as when the peer resets. */
    (void)shutdown(fd, SHUT_RDWR);
}

static void
tk_check_one(int fd, void *arg)
{
    int interval = atomic_load(&tk_interval), count = atomic_load(&tk_count);
    unsigned limit = tcpkeep_limit(interval, count);
    void (*note)(const char *) = atomic_load(&tk_note);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int kept = 0;
    socklen_t klen = sizeof(kept);
    struct tcpkeep_sock s;

    (void)arg;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &kept, &klen) < 0)
        return;
    s = (struct tcpkeep_sock){
        .state = ti.tcpi_state,
        .last_ack_ms = ti.tcpi_last_ack_recv,
        .last_data_ms = ti.tcpi_last_data_recv,
        .unacked = ti.tcpi_unacked,
        .retransmits = ti.tcpi_retransmits,
        .probes = ti.tcpi_probes,
        /* An older kernel's shorter answer leaves it 0: the rule then
         * takes the peer for silent, as before the field was there. */
        .bytes_received = ti.tcpi_bytes_received,
    };
    /* Connected, but tcpkeep_apply has not been by: libvirt is opening
     * it.  TCP_INFO has no time of the connect, so the watchdog counts. */
    if (!kept && ti.tcpi_state == TCPKEEP_ESTABLISHED)
        s.opening = tk_opening_for(fd);
    switch (tcpkeep_judge(&s, interval, count)) {
    case TCPKEEP_CONNECTING:
        /* No note: the connect's own error says "Connection timed out". */
        tk_bound_connect(fd, limit);
        break;
    case TCPKEEP_SILENT:
        if (!kept) {
            /* No note: the open's own error says it (tcpkeep_open_hint). */
            atomic_fetch_add(&tk_opens_ended, 1);
            tk_close(fd, NULL, NULL, limit);
        } else {
            tk_close(fd, note, "tcpkeep: %s answered nothing for %u s: "
                     "closing the connection", limit);
        }
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
        int interval = atomic_load(&tk_interval), i;

        sleep(interval > 0 ? (unsigned)interval : 1);
        if (!tcpkeep_limit(atomic_load(&tk_interval), atomic_load(&tk_count)))
            continue;
        for (i = 0; i < TK_OPENING; i++)
            tk_open[i].seen = false;
        tk_each(tk_check_one, NULL);
        /* A connection no longer opening (or gone) frees its slot. */
        for (i = 0; i < TK_OPENING; i++)
            if (!tk_open[i].seen)
                tk_open[i].ino = 0;
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

unsigned
tcpkeep_opens_ended(void)
{
    return atomic_load(&tk_opens_ended);
}

const char *
tcpkeep_open_hint(unsigned before)
{
    static __thread char buf[160];

    if (tcpkeep_opens_ended() == before)
        return NULL;
    snprintf(buf, sizeof(buf), "the host took the connection, but nothing "
             "answered for %u s: a libvirtd that hangs, or one at its "
             "max_clients", tcpkeep_limit(atomic_load(&tk_interval),
                                          atomic_load(&tk_count)));
    return buf;
}
