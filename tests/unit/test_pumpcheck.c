/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * pump_check_file(): the read-back that verifies a copy written to a file.
 * Data must match byte for byte; a hole must read as zeros, whether the
 * file really has a hole there or holds allocated zeros (what a filesystem
 * without holes, or the kernel's generic SEEK_DATA, shows); a mismatch is
 * reported at its first byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include "pumpint.h"

#define MIB (1024 * 1024)
/* The call is made before AT is read (arguments have no order in C). */
#define EXPECT(what, call, want, at, want_at) do {                        \
        int rc_ = (call);                                                 \
        expect_at(what, rc_, want, &(at), want_at);                       \
    } while (0)

static int failures;

/* Check what pump_check_file() said (RC, with *AT) against WANT. */
static void
expect_at(const char *what, int got, int want, const off_t *atp, off_t want_at)
{
    off_t at = *atp;

    if (got != want || (want == 1 && at != want_at)) {
        fprintf(stderr, "FAIL %s: rc %d (want %d), at %lld (want %lld)\n",
                what, got, want, (long long)at, (long long)want_at);
        failures++;
    } else {
        printf("ok   %s\n", what);
    }
}

static void
put(int fd, const void *buf, size_t len, off_t off)
{
    if (pwrite(fd, buf, len, off) != (ssize_t)len) {
        perror("pwrite");
        exit(2);
    }
}

int
main(void)
{
    char path[] = "/tmp/poolfs-pumpcheck-XXXXXX";
    int fd = mkstemp(path);
    char *scratch = malloc(PUMP_SLOT_SIZE);
    char *data = malloc(MIB), *zeros = calloc(1, 3 * MIB);
    off_t at;
    size_t i;

    if (fd < 0 || !scratch || !data || !zeros) {
        perror("setup");
        return 2;
    }
    unlink(path);
    setvbuf(stdout, NULL, _IONBF, 0);
    for (i = 0; i < MIB; i++)
        data[i] = (char)(i * 7 + 1);

    /* [0, 1M) data, [1M, 9M) a real hole, [9M, 12M) allocated zeros,
     * [12M, 13M) data: 13 MiB in all. */
    put(fd, data, MIB, 0);
    put(fd, zeros, 3 * MIB, 9 * MIB);
    put(fd, data, MIB, 12 * MIB);

    /* Data comes in stream packets of at most PUMP_SLOT_SIZE. */
    EXPECT("data that matches",
           pump_check_file(fd, scratch, data + 4096, PUMP_SLOT_SIZE, 4096, &at),
           0, at, 0);
    data[5000] ^= 1;
    EXPECT("data that differs, at its first byte",
           pump_check_file(fd, scratch, data + 4096, PUMP_SLOT_SIZE, 4096, &at),
           1, at, 5000);
    data[5000] ^= 1;
    EXPECT("a real hole", pump_check_file(fd, scratch, NULL, 8 * MIB, MIB, &at),
           0, at, 0);
    EXPECT("a hole with unaligned edges",
           pump_check_file(fd, scratch, NULL, 8 * MIB - 1000, MIB + 500, &at),
           0, at, 0);
    EXPECT("allocated zeros where the hole is",
           pump_check_file(fd, scratch, NULL, 3 * MIB, 9 * MIB, &at), 0, at, 0);
    EXPECT("a hole over both (a real one, then allocated zeros)",
           pump_check_file(fd, scratch, NULL, 11 * MIB, MIB, &at), 0, at, 0);
    EXPECT("a hole past the end of the file",
           pump_check_file(fd, scratch, NULL, 4 * MIB, 13 * MIB, &at), 0, at, 0);

    /* A byte that is not zero inside the allocated zeros, deep in. */
    put(fd, "x", 1, 10 * MIB + 777);
    EXPECT("a hole that holds a byte, at that byte",
           pump_check_file(fd, scratch, NULL, 11 * MIB, MIB, &at), 1, at,
           10 * MIB + 777);
    EXPECT("a hole that runs into data, where the data starts",
           pump_check_file(fd, scratch, NULL, 3 * MIB, 10 * MIB + 1024 * 1024,
                           &at), 1, at, 12 * MIB);
    EXPECT("an unaligned edge that holds data",
           pump_check_file(fd, scratch, NULL, 100, MIB - 50, &at), 1, at,
           MIB - 50);

    close(fd);
    free(scratch);
    free(data);
    free(zeros);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
