/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unit tests' one assertion.  CHECK(COND, printf arguments) counts
 * the check and, when COND is false, the failure, saying where and why on
 * stderr; check_done() prints the counts and gives the exit status.
 */
#ifndef POOLFS_TEST_CHECK_H
#define POOLFS_TEST_CHECK_H

#include <stdio.h>

static int failures, checks;

#define CHECK(cond, ...) do {                                        \
        checks++;                                                    \
        if (!(cond)) {                                               \
            failures++;                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
        }                                                            \
    } while (0)

static inline int
check_done(void)
{
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}

#endif /* POOLFS_TEST_CHECK_H */
