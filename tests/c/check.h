/* check.h: the harness of the C unit tests (firewall_test.c, codec_io_test.c,
 * and through store_check.h lmdb_store_test.c and wal_test.c): the pass/fail
 * counts, the case being checked, CHECK, and the last line the Python tests
 * read. A test may point check_detail at text printed with each failure (the
 * store tests: its last error message). Included once, by the test's one C
 * file. */
#ifndef CANONICAL_RAFT_CHECK_H
#define CANONICAL_RAFT_CHECK_H

#include <stdio.h>

static int n_passed;
static int n_failed;
static const char *current = "";        /* the case being checked */
static const char *check_detail = NULL; /* printed with a failure, if set */

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (cond) {                                                           \
            n_passed++;                                                       \
        } else {                                                              \
            n_failed++;                                                       \
            fprintf(stderr, "FAIL %s:%d [%s]: %s", __FILE__, __LINE__,        \
                    current, #cond);                                          \
            if (check_detail != NULL)                                         \
                fprintf(stderr, " (%s)", check_detail);                       \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

/* "N passed, M failed", the exit status: 0 if none failed. */
static int check_report(void)
{
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed != 0;
}

#endif
