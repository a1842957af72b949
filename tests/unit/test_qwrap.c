/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qwrap: a volume's bytes wrapped as qcow2 on the fly.  Each case feeds a
 * volume (data, holes, allocated zeros; pieces that do not line up with
 * clusters; sizes that are not whole clusters; data beyond 512 MiB, the
 * reach of one L2 table) the way the pump does, writes what qwrap sends to
 * a file at consecutive offsets (a hole leaves the file sparse), puts the
 * header at offset 0, and asks QEMU's own tools: "qemu-img check" finds no
 * error and no leak, and "qemu-img compare" finds the guest content equal
 * to the volume written as a plain file.  The data clusters alone are sent
 * (an all-zero cluster is left out).  Skipped when qemu-img is missing.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "qwrap.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)

static int failures;
static char dir[] = "/tmp/test_qwrap.XXXXXX";

struct piece {
    uint64_t off, len;
    int fill;           /* -1: a hole; 0: allocated zeros; else random */
};

struct sink {
    int fd;
    uint64_t at;
};

static int
sink_out(void *opaque, const char *buf, size_t len)
{
    struct sink *s = opaque;

    if (buf && pwrite(s->fd, buf, len, (off_t)s->at) != (ssize_t)len)
        return -1;
    s->at += len;
    return 0;
}

static int
sh(const char *cmd)
{
    int rc = system(cmd);

    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void
check(const char *what, uint64_t size, const struct piece *p, int n,
      uint64_t want_data_clusters)
{
    char raw[64], img[64], cmd[512];
    struct sink s = { .at = 0 };
    struct qwrap *w;
    char head[QWRAP_HEADER];
    uint64_t pos = 0, sent;
    int fd, i, ok = 1;
    char *buf;

    snprintf(raw, sizeof(raw), "%s/raw", dir);
    snprintf(img, sizeof(img), "%s/img", dir);
    unlink(raw);
    unlink(img);
    fd = open(raw, O_RDWR | O_CREAT | O_TRUNC, 0600);
    s.fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    w = qwrap_new(size, sink_out, &s);
    if (fd < 0 || s.fd < 0 || !w || ftruncate(fd, (off_t)size) < 0) {
        fprintf(stderr, "FAIL %s: setup: %s\n", what, strerror(errno));
        failures++;
        return;
    }
    srandom(n);
    for (i = 0; i < n && ok; i++) {
        if (p[i].off > pos && qwrap_feed(w, NULL, p[i].off - pos) < 0)
            ok = 0;
        pos = p[i].off;
        if (p[i].fill < 0) {
            ok = ok && qwrap_feed(w, NULL, p[i].len) == 0;
        } else {
            uint64_t k;

            buf = calloc(1, p[i].len);
            for (k = 0; p[i].fill && k < p[i].len; k++)
                buf[k] = (char)(random() | 1);
            ok = ok && pwrite(fd, buf, p[i].len, (off_t)pos) ==
                       (ssize_t)p[i].len &&
                 qwrap_feed(w, buf, p[i].len) == 0;
            free(buf);
        }
        pos += p[i].len;
    }
    if (!ok || (pos < size && qwrap_feed(w, NULL, size - pos) < 0) ||
        qwrap_finish(w, head) < 0 ||
        pwrite(s.fd, head, sizeof(head), 0) != sizeof(head)) {
        fprintf(stderr, "FAIL %s: qwrap failed\n", what);
        failures++;
        goto out;
    }
    sent = qwrap_sent(w);
    {
        uint64_t v;

        memcpy(&v, head + 24, 8);
        if (be64toh(v) != size) {
            fprintf(stderr, "FAIL %s: the header's size is %llu\n", what,
                    (unsigned long long)be64toh(v));
            failures++;
        }
    }
    if (s.at != sent + QWRAP_CLUSTER) {
        fprintf(stderr, "FAIL %s: %llu bytes laid out, %llu sent as data "
                "after the header's cluster\n", what,
                (unsigned long long)s.at, (unsigned long long)sent);
        failures++;
    }
    /* Data clusters, then metadata: at least an L1 and refcount table and
     * block; an L2 per 512 MiB with data. */
    if (sent / QWRAP_CLUSTER < want_data_clusters + 3 ||
        sent / QWRAP_CLUSTER > want_data_clusters + 3 +
        (size + 512 * MIB - 1) / (512 * MIB)) {
        fprintf(stderr, "FAIL %s: %llu clusters sent for %llu of data\n",
                what, (unsigned long long)(sent / QWRAP_CLUSTER),
                (unsigned long long)want_data_clusters);
        failures++;
    }
    snprintf(cmd, sizeof(cmd), "qemu-img check -q -f qcow2 %s", img);
    if (sh(cmd) != 0) {
        fprintf(stderr, "FAIL %s: qemu-img check\n", what);
        failures++;
    }
    snprintf(cmd, sizeof(cmd), "qemu-img compare -q -f raw -F qcow2 "
             "%s %s", raw, img);
    if (sh(cmd) != 0) {
        fprintf(stderr, "FAIL %s: qemu-img compare: content differs\n", what);
        failures++;
        goto out;
    }
    printf("ok   %s (%llu clusters sent)\n", what,
           (unsigned long long)(sent / QWRAP_CLUSTER));
 out:
    qwrap_free(w);
    close(fd);
    close(s.fd);
}

int
main(void)
{
    if (sh("qemu-img --version >/dev/null 2>&1") != 0) {
        printf("SKIP qemu-img is not installed\n");
        return 77;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }

    check("empty volume", 8 * MIB, NULL, 0, 0);
    check("one sector", 512, (const struct piece[]){ { 0, 1, 1 } }, 1, 1);
    check("all data, whole clusters", 4 * MIB,
          (const struct piece[]){ { 0, 4 * MIB, 1 } }, 1, 64);
    check("size not whole clusters, data to the end", 3 * MIB + 4608,
          (const struct piece[]){ { 1 * MIB + 100, 2 * MIB + 4508, 1 } }, 1,
          33);
    check("pieces across cluster edges, holes between", 16 * MIB,
          (const struct piece[]){
              { 60 * KIB, 8 * KIB, 1 },           /* clusters 0 and 1 */
              { 68 * KIB, 100 * KIB, -1 },
              { 300 * KIB, 4 * KIB, 1 },          /* cluster 4 */
              { 304 * KIB, 4 * KIB, 1 },
              { 5 * MIB, 1 * MIB, 1 },            /* 16 clusters */
          }, 5, 19);
    check("allocated zeros are left out", 8 * MIB,
          (const struct piece[]){
              { 0, 1 * MIB, 0 },
              { 1 * MIB, 64 * KIB, 1 },
              { 2 * MIB, 2 * MIB, 0 },
          }, 3, 1);
    check("data in several L2 ranges, a whole one empty", 1800 * MIB,
          (const struct piece[]){
              { 0, 64 * KIB, 1 },
              { 511 * MIB + 960 * KIB, 128 * KIB, 1 },  /* across 512 MiB */
              { 1600 * MIB, 1 * MIB, 1 },
              { 1800 * MIB - 1, 1, 1 },                 /* the last byte */
          }, 4, 1 + 2 + 16 + 1);
    check("pieces of a hole fed apart", 2 * MIB,
          (const struct piece[]){
              { 0, 10 * KIB, -1 },
              { 10 * KIB, 10 * KIB, 1 },
              { 20 * KIB, 100 * KIB, -1 },
              { 120 * KIB, 1 * KIB, 1 },
          }, 4, 2);

    {
        /* More than the size is refused. */
        struct sink s = { .fd = -1 };
        struct qwrap *w = qwrap_new(1024, sink_out, &s);

        if (!w || qwrap_feed(w, NULL, 600) != 0 ||
            qwrap_feed(w, NULL, 425) != -1) {
            fprintf(stderr, "FAIL feeding past the size is not refused\n");
            failures++;
        } else {
            printf("ok   feeding past the size is refused\n");
        }
        qwrap_free(w);
        /* A size QEMU cannot hold (not whole sectors), or none, is
         * refused. */
        for (int bad = 0; bad <= 1; bad++) {
            errno = 0;
            if (qwrap_new(bad, sink_out, &s) || errno != EINVAL) {
                fprintf(stderr, "FAIL a size of %d is not refused\n", bad);
                failures++;
            } else {
                printf("ok   a size of %d is refused (EINVAL)\n", bad);
            }
        }
    }

    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        sh(cmd);
    }
    return failures ? 1 : 0;
}
