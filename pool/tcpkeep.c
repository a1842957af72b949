/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tcpkeep.h"

void
tcpkeep_apply(int interval, int count)
{
    int on = 1;
    struct dirent *e;
    DIR *d;

    if (interval <= 0 || count <= 0 || !(d = opendir("/proc/self/fd")))
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
        /* Best effort: a socket that refuses stays as it was. */
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &interval,
                         sizeof(interval));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval,
                         sizeof(interval));
        (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    }
    closedir(d);
}
