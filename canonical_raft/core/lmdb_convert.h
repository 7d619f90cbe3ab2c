/* lmdb_convert.h: offline conversion of a data dir between storage="uv"
 * (libraft's segment files) and storage="lmdb" (lmdb_store.h). The new
 * kind's files are written beside the old (each kind ignores the other's
 * names); the caller commits by rewriting the storage record. 0 or a
 * libraft code with errmsg (CR_STORE_ERRMSG bytes) set. */
#ifndef CANONICAL_RAFT_LMDB_CONVERT_H
#define CANONICAL_RAFT_LMDB_CONVERT_H

int cr_convert_uv_to_lmdb(const char *dir, char *errmsg);
int cr_convert_lmdb_to_uv(const char *dir, char *errmsg);

#endif
