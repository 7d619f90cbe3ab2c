/* store_check.h: the harness lmdb_store_test.c and wal_test.c share: the
 * pass/fail counts, CHECK (which prints the store's last error message with
 * a failure) and a fresh directory per case under the SCRATCH_DIR given to
 * main. Included once, by the test's one C file. */
#ifndef CANONICAL_RAFT_STORE_CHECK_H
#define CANONICAL_RAFT_STORE_CHECK_H

#include <stdio.h>
#include <sys/stat.h>

#include "lmdb_store.h"

static int n_passed;
static int n_failed;
static const char *current = "";
static const char *scratch;
static char errmsg[CR_STORE_ERRMSG];

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (cond) {                                                         \
            n_passed++;                                                     \
        } else {                                                            \
            n_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d [%s]: %s (errmsg: %s)\n", __FILE__, \
                    __LINE__, current, #cond, errmsg);                      \
        }                                                                   \
    } while (0)

/* A fresh directory for the current case. */
static const char *case_dir(const char *name)
{
    static char path[4096];
    current = name;
    errmsg[0] = 0;
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    mkdir(path, 0700);
    return path;
}

#endif
