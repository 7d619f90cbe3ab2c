/* raft_io.h: the binding's own struct raft_io (version 2), storage="lmdb".
 *
 * libraft's core (its legacy.c) drives a raft_io; this one runs on the raft
 * thread's libuv loop:
 *   DISK   the LMDB store (lmdb_store.h). Every disk change (append,
 *          truncate, set_term, set_vote, snapshot_put) and snapshot_get is
 *          queued, in the order libraft issued it, on ONE chain of work on
 *          libuv's thread pool; a batch is everything queued, and the next
 *          starts when it is done. A batch of changes is one record of the
 *          write-ahead file (one fdatasync); one with a snapshot, or that
 *          does not fit in the rest of the file, one LMDB transaction that
 *          also takes in the records before it and starts the file over.
 *          Its callbacks fire on the loop once it is durable. Beside the
 *          chain, a checkpoint (at most one) moves the records into LMDB
 *          once CKPT_BYTES of them wait; the chain's LMDB work (direct
 *          batches, snapshot reads) waits for it, so LMDB has one user at a
 *          time. The loop thread waits for the disk only in init/load()
 *          (raft_start: the store's open replays what LMDB lacks) and
 *          offline.
 *          set_term/set_vote return at once: every message sent after them
 *          is held back until they are on disk, so no peer learns of a term
 *          or vote that a crash could undo.
 *   NET    the peer transport (peer_transport.h), speaking the handshake
 *          protocol FW_IO_PROTOCOL: one outbound stream per peer for what we
 *          send, the peers' inbound streams for what we receive, messages in
 *          codec_io.h's frames (its decoder bounded by max_message_size).
 *          send() never fails synchronously: a send that cannot be written
 *          completes with RAFT_NOCONNECTION.
 *   TIME   the tick on a uv timer; time() is CLOCK_MONOTONIC in ms;
 *          random() a per-node xorshift seeded from the config.
 * Failed disk batches (a full disk) are retried every second, reporting no
 * capacity meanwhile (libraft then refuses new entries cluster-wide when a
 * majority is full); nothing acknowledged is ever failed. */
#ifndef CANONICAL_RAFT_RAFT_IO_H
#define CANONICAL_RAFT_RAFT_IO_H

#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

struct cr_io_config
{
    const char *data_dir;
    int create;                 /* the store may be created (a new data dir) */
    struct raft_uv_transport *transport;    /* cr_pt, FW_IO_PROTOCOL */
    uint64_t max_message_size;
    uint32_t max_entries;       /* per AppendEntries received */
    unsigned idle_timeout_ms;   /* a frame part-way and no byte: dropped */
    unsigned seed;              /* random() */
    /* A malformed frame or idle stream (counted and logged by the caller). */
    void (*refuse)(void *arg, const char *peer, const char *detail);
    /* A line for the log: level 30 WARNING, 40 ERROR (logging's numbers). */
    void (*log)(void *arg, int level, const char *message);
    void *arg;
};

/* Fill io (version 2, impl, methods). 0 or RAFT_NOMEM. The store is opened
 * by io->init (raft_init). `cfg` is copied. */
int cr_io_init(struct raft_io *io, uv_loop_t *loop,
               const struct cr_io_config *cfg);
/* Free the impl: after io->close's callback fired, or if raft_init failed. */
void cr_io_free(struct raft_io *io);

/* The last error of the store (load, init) in full: raft_io->errmsg holds
 * only libraft's 256 bytes of it. */
const char *cr_io_errmsg(struct raft_io *io);

/* Live objects (io impls, connections, queued requests): 0 when idle. */
long long cr_io_live(void);

#endif
