/* forward_link.h: the forwarding channel's streams, one node's worth
 * (core/forward.pxi is its only user).
 *
 * Streams are one way, like libraft's: a node writes frames
 * (forward_wire.h) to a peer on its own outbound stream to that peer
 * (cr_pt_connect_forward: TLS and the handshake as for raft's), and reads
 * the peer's frames on the inbound stream the peer opened
 * (peer_transport.c hands it over with cr_fl_accept). An answer goes back
 * on the answerer's own outbound stream.
 *
 * Outbound, per peer id: connected on the first send, frames queued while
 * connecting, written in order; a failed connect, a write error, or EOF or
 * any byte read on it ends the link (on_down, then a fresh connect on the
 * next send, no sooner than RETRY_MS after a failure). Inbound: each frame
 * checked by forward_wire.h's decoder, handed to on_frame whole; a frame
 * that does not check, or one part-way for idle_timeout_ms, drops the
 * stream (counted by peer_transport as forward_malformed).
 *
 * Runs on the loop's thread only. Memory: a link or an inbound stream is a
 * small struct; a frame being read is held whole (<= max_frame); frames
 * queued to one peer are capped (MAX_QUEUED bytes: sends beyond fail).
 */
#ifndef CANONICAL_RAFT_FORWARD_LINK_H
#define CANONICAL_RAFT_FORWARD_LINK_H

#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

struct cr_fl;

struct cr_fl_config
{
    uint64_t max_frame;        /* a frame body longer is refused */
    unsigned idle_timeout_ms;  /* a frame part-way this long: dropped */
    /* A whole, checked frame from peer `from`; nonzero: drop its stream. */
    int (*on_frame)(void *arg, uint64_t from, int type, const uint8_t *body,
                    uint64_t len);
    /* The outbound link to `to` ended: frames sent on it may be lost. */
    void (*on_down)(void *arg, uint64_t to);
    void *arg;
};

struct cr_fl *cr_fl_new(uv_loop_t *loop, struct raft_uv_transport *transport,
                        const struct cr_fl_config *cfg);
/* An inbound forwarding stream (peer_transport's forward_accept). */
void cr_fl_accept(struct cr_fl *fl, uint64_t id, const char *address,
                  uv_stream_t *stream);
/* Queue one frame (header + the two body parts, copied) to `to` at
 * `address`, connecting first if need be. 0, or nonzero if it was not
 * queued (closing, backing off after a failure, out of memory, queue full). */
int cr_fl_send(struct cr_fl *fl, uint64_t to, const char *address, int type,
               const void *a, size_t alen, const void *b, size_t blen);
/* Nonzero if a send to `to` would be queued now (not backing off). */
int cr_fl_can_send(struct cr_fl *fl, uint64_t to);
/* Close every stream; later accepts are closed at once, sends fail. */
void cr_fl_close(struct cr_fl *fl);
/* Free it: now, or once its last handle and connect have finished. */
void cr_fl_free(struct cr_fl *fl);
/* Links, streams and writes alive in the process (0 when idle). */
long long cr_fl_live(void);

#endif
