/* peer_transport.h: the binding's own raft_uv_transport (libraft 0.22.1's
 * public transport interface, raft/uv.h), replacing libraft's TCP transport.
 *
 * Why our own: libraft's TCP transport trusts the id and address a peer
 * declares and hands every inbound byte to libraft's decoder, which trusts
 * every length it reads. Here no inbound byte reaches libraft unless it
 * passed the protocol firewall (firewall.h), and with TLS (tls_stream.h)
 * only over a connection whose peer proved, by a certificate of the cluster
 * CA, the raft id it declares.
 *
 * Runs entirely on the loop's thread (the raft thread), no Python in the
 * data path. The caller (core/transport.pxi) supplies callbacks for the
 * few things that need the node: the current TLS context, "is this id in
 * the configuration", and the WARNING log of refusals.
 *
 * INBOUND (listen)
 *   plaintext: accept TCP; every byte read from the socket is fed to the
 *     firewall (which parses libraft's handshake too); once the handshake is
 *     complete, a uv_socketpair is made: one end, a uv_pipe_t from
 *     raft_malloc, goes to libraft's accept callback positioned at the first
 *     message; the rest of the stream is forwarded to the other end,
 *     unchanged, as it passes the firewall.
 *   TLS: accept TCP; a tls_stream server pump (expect_id 0) whose inbound
 *     filter is the firewall, expected_id = the certificate's id; on ready
 *     the handshake is read off the plain stream (exactly its bytes), then
 *     libraft's accept callback gets the plain stream.
 *   A drop closes both ends; it is counted by reason and logged.
 *   The handshake's protocol word routes the stream: a raft stream (cfg's
 *   protocol) to the io's accept callback, a forwarding stream to
 *   cfg->forward_accept, whichever the storage.
 * OUTBOUND (connect)
 *   resolve (uv_getaddrinfo, IPv4 like libraft), TCP connect, (TLS: client
 *   pump, expect_id = the id dialled; any byte the peer sends on it is a
 *   violation), write the handshake, then the connect callback from the
 *   write callback. The callback fires exactly once: 0, RAFT_NOCONNECTION,
 *   or RAFT_CANCELED when the transport closes first.
 * BOUNDS
 *   max_pending connections that have not finished their handshakes (the
 *   oldest is dropped for a new one), max_inbound inbound connections in all
 *   (new ones refused beyond), max_per_peer per declared id (the oldest is
 *   dropped), a handshake timeout (TLS and raft handshake, from accept) and
 *   an idle timeout (a message part-way and no byte for that long). Per
 *   connection: one struct (about 2.5 KiB) and, for TLS, the pump's; reads
 *   share one transport-wide buffer; queued bytes are capped (reads pause).
 * CLOSE
 *   t->close closes the listener, the sweep timer and every connection
 *   (handed-over pumps too: libraft has closed its streams by then, uv.c
 *   closes them before the transport), and fires the close callback once
 *   every handle and pump has closed. cr_pt_free() then frees the impl.
 */
#ifndef CANONICAL_RAFT_PEER_TRANSPORT_H
#define CANONICAL_RAFT_PEER_TRANSPORT_H

#include <stdint.h>

#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/* Refusal reasons: index -> name ("fw_term_range", "tls_verify", ...).
 * CR_PT_REASONS is a fixed upper bound on their number. */
#define CR_PT_REASONS 96
/* The longest bind address, with its terminator. */
#define CR_PT_BIND_MAX 256
const char *cr_pt_reason_name(int reason);   /* NULL past the last one */

struct cr_pt_config
{
    int tls;                        /* nonzero: mutual TLS, else plaintext */
    /* Where to listen ("host:port"); empty: the node's own address. The
     * address peers are told (and dial) stays the node's own. */
    char bind_address[CR_PT_BIND_MAX];
    int tcp_nodelay;                /* plaintext: TCP_NODELAY (TLS: always) */
    /* A new reference to the SSL_CTX for the next connection (NULL: none). */
    SSL_CTX *(*get_ctx)(void *arg);
    uint64_t max_message_size;
    uint32_t max_entries;
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned max_pending;
    unsigned max_inbound;
    unsigned max_per_peer;
    int (*id_allowed)(void *arg, uint64_t id);   /* NULL: any id */
    /* A refusal to log (rate-limited here): reason name, peer address,
     * detail ("" if none), refusals of that reason not logged since the
     * last line. */
    void (*log)(void *arg, const char *reason, const char *peer,
                const char *detail, unsigned long long suppressed);
    /* A forwarding stream (firewall.h's FW_FORWARD_PROTOCOL) passed its
     * handshake: `stream` (raft_malloc'd, at its first frame) is the
     * callee's to read, close and raft_free. NULL: such streams refused. */
    void (*forward_accept)(void *arg, uint64_t id, const char *address,
                           uv_stream_t *stream);
    void *arg;                      /* for the callbacks */
    uint64_t *refused;              /* CR_PT_REASONS counters (atomic adds) */
    /* The protocol of raft streams, written and required (firewall.h): 0,
     * libraft's, its messages checked by the firewall; FW_IO_PROTOCOL, the
     * binding's own raft_io (core/raft_io.c, storage="lmdb"), passed through
     * to it. Forwarding streams are routed to forward_accept in either. */
    uint64_t protocol;
};

/* A counter of cfg->refused, from any thread. */
static inline uint64_t cr_pt_count(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Fill `t` (version, impl, methods); 0 or RAFT_NOMEM. `cfg` is read when
 * listen() runs (so it may be filled in between) and must outlive `t`. */
int cr_pt_init(struct raft_uv_transport *t, uv_loop_t *loop,
               const struct cr_pt_config *cfg);
/* Free the impl: after the close callback fired, or if listen never ran. */
void cr_pt_free(struct raft_uv_transport *t);
/* Objects (transports, connections) alive in the process: 0 when idle. */
long long cr_pt_live(void);
/* Count and log (rate-limited) a message io_guard dropped (log_guard.h). */
void cr_pt_refuse_log_conflict(struct raft_uv_transport *t, const char *peer);

/* Connect to `id` at `address` for a forwarding stream: libraft's connect
 * (TLS included) with FW_FORWARD_PROTOCOL in the handshake; cb as for
 * libraft's (exactly once: the stream, RAFT_NOCONNECTION or RAFT_CANCELED). */
int cr_pt_connect_forward(struct raft_uv_transport *t,
                          struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb);
/* Count and log (rate-limited) a refused forwarding stream or frame. */
enum { CR_PT_FORWARD_MALFORMED = 1, CR_PT_FORWARD_NOT_MEMBER = 2 };
void cr_pt_refuse_forward(struct raft_uv_transport *t, int which,
                          const char *peer, const char *detail);

/* Count and log (rate-limited) a stream core/raft_io.c dropped: a frame
 * its decoder refused, or one left part-way (detail says which). */
void cr_pt_refuse_io(struct raft_uv_transport *t, const char *peer,
                     const char *detail);

/* Inbound connections open now (for tests and stats). */
unsigned cr_pt_inbound(struct raft_uv_transport *t);

#endif
