/* store_check.h: what lmdb_store_test.c and wal_test.c add to check.h: the
 * store's last error message (each main points check_detail at it, so a
 * failure prints it) and a fresh directory per case under the SCRATCH_DIR
 * given to main. Included once, by the test's one C file. */
#ifndef CANONICAL_RAFT_STORE_CHECK_H
#define CANONICAL_RAFT_STORE_CHECK_H

#include <stdio.h>
#include <sys/stat.h>

#include "check.h"
#include "lmdb_store.h"

static const char *scratch;
static char errmsg[CR_STORE_ERRMSG];    /* the store's last error: check_detail */

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
