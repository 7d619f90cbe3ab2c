/*
 * firewall.h -- the protocol firewall's parser: an incremental, allocation-free
 * check of ONE inbound peer connection's byte stream against libraft 0.22.1's
 * TCP wire format, before any of it reaches libraft.
 *
 * Header-only C (static inline), depends on <stdint.h>, <stddef.h>, <string.h>
 * only: no libuv, no libraft, no Python.  The layout below was read from
 * cowsql/raft tag v0.22.1 (commit 9edb176a7924ce2b943cb56552366dc4b5a1a6b7):
 * src/uv_tcp_connect.c and src/uv_tcp_listen.c (handshake), src/uv_recv.c
 * (framing), src/uv_encoding.c (headers), src/configuration.c (configuration
 * encoding), src/message.h (the versions 0.22.1 sends).  Every integer is little
 * endian.
 *
 *   Handshake (once, connecting side first):
 *     u64 protocol (= 1) | u64 server id | u64 address length L (padded to 8,
 *     counts the NUL) | L bytes: address, NUL, zero padding.
 *     The protocol word may instead name one of the binding's own protocols
 *     (FW_FORWARD_PROTOCOL when fw_limits.forward allows it; FW_IO_PROTOCOL
 *     in place of 1 when fw_limits.protocol says so, storage="lmdb"): the
 *     handshake is checked the same way, then the stream passes through
 *     untouched (FW_S_PASS) to that protocol's own bounded decoder.
 *   Then messages, back to back:
 *     preamble (16 bytes): u8 type | u8 0 | u8 version | u8 0 | u32 0 |
 *                          u64 header length H
 *     header (H bytes, by type; "version" as 0.22.1 sends it):
 *       1 AppendEntries v0, H = 48 + 16 n:
 *           term | prev_log_index | prev_log_term | leader_commit | u64 n |
 *           n x (u64 entry term | u8 entry type | 3 x u8 0 | u32 entry length) |
 *           u64 0
 *         payload: the n entries' bytes back to back (sum of the lengths).
 *       2 AppendEntriesResult v2, H = 32:
 *           term | rejected | last_log_index | u16 features | u16 capacity | u32 0
 *       3 RequestVote v2, H = 40:
 *           term | candidate_id | last_log_index | last_log_term | u64 flags
 *           (bit 0 disrupt_leader, bit 1 pre_vote)
 *       4 RequestVoteResult v2, H = 24:
 *           term | vote_granted | u8 flags (bit 0 pre_vote) | u8 0 |
 *           u16 features | u16 capacity | u16 0
 *       5 InstallSnapshot v0, H = 56 + C:
 *           term | last_index | last_term | conf_index | u64 C |
 *           C bytes configuration | u64 data length D | u64 0
 *         payload: D bytes of snapshot data.
 *       6 TimeoutNow v0, H = 24: term | last_log_index | last_log_term
 *   Configuration (InstallSnapshot's, and the payload of a RAFT_CHANGE entry):
 *     u8 format (= 1) | u64 n | n x (u64 id | address, NUL | u8 role) |
 *     zero padding to a multiple of 8.
 *
 * What libraft 0.22.1's receiver does with a hostile stream, and the check
 * here that stops it.  "Crashes" were seen against a one-node cluster of this
 * binding, one TCP stream each; the rest are read from the source.
 *   - AppendEntries whose entry count exceeds what its header holds: the
 *     descriptors are read past the header (crashes, SIGSEGV)
 *                                                          -> FW_ENTRY_COUNT
 *   - InstallSnapshot whose configuration length exceeds its header: the
 *     configuration is read past the header (crashes, SIGSEGV)
 *                                                          -> FW_CONF_LEN
 *   - InstallSnapshot whose configuration fails to decode after its first
 *     server (bad role, duplicate id or address, no NUL): configurationDecode
 *     frees it, then uvServerDestroy frees it again (crashes, SIGSEGV)
 *                                         -> FW_CONF_ROLE, _DUP_*, _ADDR, ...
 *   - a RAFT_CHANGE entry that does not decode: replicationAppend fails and
 *     the batch is freed twice, recv_append_entries.c + legacy.c
 *     (crashes, SIGABRT "double free detected")
 *                                         -> the same configuration checks
 *   - header reads past a short header (RequestVote reads 40 bytes whatever
 *     the length)                                          -> FW_HDR_LEN
 *   - unbounded allocations: address length, header length, payload length
 *                       -> FW_HS_ADDR_LEN, FW_MSG_TOO_BIG, FW_PAYLOAD_TOO_BIG
 *   - address without a NUL: strlen() past the buffer      -> FW_HS_ADDR
 *   - entries not a multiple of 8: the receiver steps over each padded to 8
 *     while the sender does not pad, so the next entry points past the batch;
 *     n > 0 entries of total length 0: the batch pointer is never set
 *                                                          -> FW_ENTRY_LEN
 *   - assertions on message fields: prev_log_term 0 with a prev_log_index or
 *     the reverse, entry term 0, configuration server id 0
 *                                 -> FW_PREV_LOG, FW_ENTRY_TERM, FW_CONF_ID
 *   - a term of 2^64-1 is persisted and wraps to 0 at the next election
 *                                                          -> FW_TERM_RANGE
 * Not stoppable by a stateless parser:
 *   - an entry conflicting with a committed one (RAFT_SHUTDOWN, then the same
 *     double free; crashes, SIGABRT).  Honest leaders never send one (Leader
 *     Completeness), so authentication leaves only a rogue member; the check
 *     itself needs the local log (the term at each index <= commit_index), in
 *     the raft_io receive callback (core/io_guard.pxi guard_recv), or the
 *     upstream fix to libraft (one raft_free fewer on that error path);
 *   - forged but well-formed messages (higher term, then AppendEntries or
 *     InstallSnapshot of the attacker's choosing): authentication (mutual
 *     TLS, the certificate naming the id), not parsing.
 *
 * Use:
 *     struct fw_limits lim; fw_limits_init(&lim);  lim.max_message_size = ...;
 *     struct fw_conn c;     fw_conn_init(&c, &lim, 0);
 *     for each chunk read from the socket:
 *         size_t passed;
 *         enum fw_reason r = fw_feed(&c, buf, len, &passed);
 *         if (r == FW_OK)  forward buf[0, len) to libraft (passed == len);
 *         else             count r, log fw_reason_name(r), close the
 *                          connection; buf[0, passed) holds only whole,
 *                          checked messages and may be forwarded first.
 *     on EOF:             fw_eof(&c) says FW_TRUNCATED if a message was cut.
 *     on the caller's timer: fw_busy(&c) says whether a handshake or message
 *                          is part-way; fw_expire(&c) drops with FW_IDLE.
 *
 * Forwarding a chunk as soon as fw_feed() returns FW_OK is safe: libraft acts on
 * a unit (handshake preamble, address, message preamble, header, payload) only
 * once its last byte has arrived, and this parser has checked every field of a
 * unit by the time it consumes that unit's last byte.  So a message cut by a drop
 * never reaches libraft whole.
 *
 * Messages that pass are not changed: the parser only reads.
 * Memory: sizeof(struct fw_conn), a constant (about 2 KiB), per connection.
 */
#ifndef CANONICAL_RAFT_FIREWALL_H
#define CANONICAL_RAFT_FIREWALL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Wire constants (libraft 0.22.1)                                           */

#define FW_HANDSHAKE_PROTOCOL 1  /* UV__TCP_HANDSHAKE_PROTOCOL */
/* The binding's own protocols, passed through untouched after a handshake
 * that the firewall checks as libraft's (its id, address and limits): the
 * frames that follow are checked by their own bounded decoders.
 * A forwarding stream (ASCII "CRFWD\0\0\1", core/forward_wire.h), accepted
 * only with fw_limits.forward, in either storage. */
#define FW_FORWARD_PROTOCOL 0x0100004457465243ULL
/* The binding's own raft_io (storage="lmdb", ASCII "CRRIO\0\0\1",
 * core/codec_io.h): with fw_limits.protocol set to it, a raft stream must
 * declare it instead of libraft's 1. */
#define FW_IO_PROTOCOL 0x0100004F49525243ULL
#define FW_HANDSHAKE_PREAMBLE 24 /* protocol, id, address length */
#define FW_PREAMBLE_SIZE 16      /* type word, header length */

enum fw_msg_type {
    FW_APPEND_ENTRIES = 1,
    FW_APPEND_ENTRIES_RESULT = 2,
    FW_REQUEST_VOTE = 3,
    FW_REQUEST_VOTE_RESULT = 4,
    FW_INSTALL_SNAPSHOT = 5,
    FW_TIMEOUT_NOW = 6
};

/* The version byte libraft 0.22.1 puts in each type's preamble (message.h). */
#define FW_VERSION_APPEND_ENTRIES 0
#define FW_VERSION_APPEND_ENTRIES_RESULT 2
#define FW_VERSION_REQUEST_VOTE 2
#define FW_VERSION_REQUEST_VOTE_RESULT 2
#define FW_VERSION_INSTALL_SNAPSHOT 0
#define FW_VERSION_TIMEOUT_NOW 0

/* Header sizes (uv_encoding.c sizeof*()). */
#define FW_SIZE_REQUEST_VOTE 40
#define FW_SIZE_REQUEST_VOTE_RESULT 24
#define FW_SIZE_APPEND_ENTRIES_RESULT 32
#define FW_SIZE_TIMEOUT_NOW 24
#define FW_SIZE_APPEND_ENTRIES_FIXED 48 /* + 16 per entry */
#define FW_SIZE_ENTRY_DESCRIPTOR 16
#define FW_SIZE_INSTALL_SNAPSHOT_FIXED 56 /* + configuration */

enum { FW_ENTRY_COMMAND = 1, FW_ENTRY_BARRIER = 2, FW_ENTRY_CHANGE = 3 };
enum { FW_ROLE_STANDBY = 0, FW_ROLE_VOTER = 1, FW_ROLE_SPARE = 2 };
#define FW_CONF_FORMAT 1
#define FW_FEATURE_CAPACITY 1 /* MESSAGE__FEATURE_CAPACITY */

/* Terms and indexes at or above this no honest peer sends (a term this high
 * would take 2^63 elections). */
#define FW_TERM_LIMIT ((uint64_t)1 << 63)

/* Hard ceilings: fw_limits values are clamped to these. */
#define FW_ADDRESS_MAX 255       /* strlen of an address */
#define FW_CONF_SERVERS_MAX 64   /* servers in one configuration */
#define FW_CHANGES_MAX 32        /* RAFT_CHANGE entries in one AppendEntries */

/* ------------------------------------------------------------------------ */
/* Verdicts                                                                  */

#define FW_REASONS(X)                                                          \
    X(FW_OK, "ok")                                                             \
    /* handshake */                                                            \
    X(FW_HS_PROTOCOL, "handshake_protocol")     /* protocol word != 1 */       \
    X(FW_HS_ID_ZERO, "handshake_id_zero")       /* server id 0 */              \
    X(FW_HS_ID_MISMATCH, "handshake_id_mismatch") /* != expected_id */         \
    X(FW_HS_ID_REFUSED, "handshake_id_refused") /* own_id, id_allowed() */     \
    X(FW_HS_ADDR_LEN, "handshake_address_length") /* 0, not 8k, too long */    \
    X(FW_HS_ADDR, "handshake_address") /* no NUL, empty, bad char, padding */  \
    /* message preamble */                                                     \
    X(FW_MSG_TYPE, "message_type")             /* not 1..6 */                  \
    X(FW_MSG_VERSION, "message_version")       /* not what 0.22.1 sends */     \
    X(FW_MSG_RESERVED, "message_reserved")     /* nonzero unused bits */       \
    X(FW_HDR_LEN, "header_length")             /* not what the type needs */   \
    X(FW_MSG_TOO_BIG, "message_too_big")       /* > max_message_size */        \
    /* header fields */                                                        \
    X(FW_TERM_RANGE, "term_range")   /* a term or index >= 2^63 */             \
    X(FW_TERM_ZERO, "term_zero")     /* a request with term 0 */               \
    X(FW_TERM_ORDER, "term_order")   /* a log term above the message's term */ \
    X(FW_CANDIDATE, "candidate_id")  /* RequestVote candidate != peer id */    \
    X(FW_FLAGS, "flags")             /* unknown flag or bool value */          \
    X(FW_PREV_LOG, "prev_log")       /* index and term not both 0 / both > 0 */\
    X(FW_ENTRY_COUNT, "entry_count") /* > max_entries or != header length */   \
    X(FW_ENTRY_TYPE, "entry_type")   /* not command, barrier, change */        \
    X(FW_ENTRY_TERM, "entry_term")   /* 0, above msg term, decreasing */       \
    X(FW_ENTRY_LEN, "entry_length")  /* 0, not a multiple of 8 */              \
    X(FW_TOO_MANY_CHANGES, "too_many_change_entries") /* > FW_CHANGES_MAX */   \
    X(FW_SNAPSHOT_META, "snapshot_metadata") /* index/term 0, conf > last */   \
    X(FW_PAYLOAD_TOO_BIG, "payload_too_big") /* whole message > max */        \
    /* configurations (InstallSnapshot's and RAFT_CHANGE entries) */          \
    X(FW_CONF_LEN, "configuration_length") /* 0, not 8k, > header, short */   \
    X(FW_CONF_FORMAT_BAD, "configuration_format") /* format byte != 1 */       \
    X(FW_CONF_COUNT, "configuration_count") /* 0 or > max_conf_servers */      \
    X(FW_CONF_ID, "configuration_id")       /* server id 0 */                  \
    X(FW_CONF_DUP_ID, "configuration_duplicate_id")                            \
    X(FW_CONF_ADDR, "configuration_address") /* no NUL, empty, bad, long */   \
    X(FW_CONF_DUP_ADDR, "configuration_duplicate_address")                     \
    X(FW_CONF_ROLE, "configuration_role")   /* not standby, voter, spare */    \
    X(FW_CONF_TRAILER, "configuration_trailer") /* padding >= 8 or nonzero */ \
    /* reported by the caller's hooks */                                       \
    X(FW_IDLE, "idle")           /* fw_expire(): the caller's timer */         \
    X(FW_TRUNCATED, "truncated") /* fw_eof() in the middle of a message */     \
    X(FW_REASON_COUNT_, "?")

enum fw_reason {
#define FW__ENUM(code, name) code,
    FW_REASONS(FW__ENUM)
#undef FW__ENUM
};
#define FW_REASON_COUNT ((int)FW_REASON_COUNT_)

static inline const char *fw_reason_name(int reason)
{
    static const char *const names[] = {
#define FW__NAME(code, name) name,
        FW_REASONS(FW__NAME)
#undef FW__NAME
    };
    if (reason < 0 || reason >= FW_REASON_COUNT) {
        return "unknown";
    }
    return names[reason];
}

/* ------------------------------------------------------------------------ */
/* Limits (set by the caller)                                                */

struct fw_limits
{
    /* Preamble + header + payload of one message.  Must cover the largest
     * snapshot the user allows (InstallSnapshot carries it whole) and the
     * largest AppendEntries batch (max_inflight_entries x entry size). */
    uint64_t max_message_size;
    /* Entries in one AppendEntries: libraft sends at most the sender's
     * max_inflight_entries (default 32). */
    uint32_t max_entries;
    /* Servers in one configuration (<= FW_CONF_SERVERS_MAX). */
    uint32_t max_conf_servers;
    /* strlen of an address, handshake and configuration (<= FW_ADDRESS_MAX). */
    uint32_t max_address_len;
    /* If nonzero, the only server id the handshake may declare (e.g. the id
     * the peer's TLS certificate names). */
    uint64_t expected_id;
    /* If set, called once with the declared id (after expected_id passed);
     * nonzero allows it.  E.g. "is this id in the current configuration". */
    int (*id_allowed)(void *ctx, uint64_t id);
    void *id_ctx;
    /* The protocol word a raft stream declares: 0 for libraft's
     * (FW_HANDSHAKE_PROTOCOL, its messages parsed here), or FW_IO_PROTOCOL
     * (passed through). */
    uint64_t protocol;
    /* Nonzero: a handshake may also declare FW_FORWARD_PROTOCOL. */
    int forward;
    /* If nonzero, the receiving node's own id, which a raft stream may not
     * declare: libraft never connects to itself, and a message in its own
     * name makes it follow itself as leader of the message's term. */
    uint64_t own_id;
};

static inline void fw_limits_init(struct fw_limits *l)
{
    l->max_message_size = (uint64_t)256 << 20; /* 256 MiB */
    l->max_entries = 1024;
    l->max_conf_servers = FW_CONF_SERVERS_MAX;
    l->max_address_len = FW_ADDRESS_MAX;
    l->expected_id = 0;
    l->id_allowed = NULL;
    l->id_ctx = NULL;
    l->protocol = 0;
    l->forward = 0;
    l->own_id = 0;
}

/* The protocol word a raft stream declares under these limits. */
static inline uint64_t fw_raft_protocol(const struct fw_limits *l)
{
    return l->protocol != 0 ? l->protocol : FW_HANDSHAKE_PROTOCOL;
}

/* ------------------------------------------------------------------------ */
/* Connection state                                                          */

/* fw_conn_init() flags */
#define FW_NO_HANDSHAKE 1 /* the stream starts at the first message */

/* In wire order: after a header field, the next state is the next field
 * (fw__field steps with state + 1). */
enum fw__state {
    FW_S_HS_PROTO,
    FW_S_HS_ID,
    FW_S_HS_ALEN,
    FW_S_HS_ADDR,
    FW_S_PRE_WORD,
    FW_S_PRE_HLEN,
    FW_S_RV_TERM,
    FW_S_RV_CAND,
    FW_S_RV_LLI,
    FW_S_RV_LLT,
    FW_S_RV_FLAGS,
    FW_S_RVR_TERM,
    FW_S_RVR_GRANTED,
    FW_S_RVR_TAIL,
    FW_S_AE_TERM,
    FW_S_AE_PLI,
    FW_S_AE_PLT,
    FW_S_AE_COMMIT,
    FW_S_AE_N,
    FW_S_AE_ETERM,
    FW_S_AE_EINFO,
    FW_S_AE_UNUSED,
    FW_S_AER_TERM,
    FW_S_AER_REJ,
    FW_S_AER_LLI,
    FW_S_AER_TAIL,
    FW_S_IS_TERM,
    FW_S_IS_LI,
    FW_S_IS_LT,
    FW_S_IS_CI,
    FW_S_IS_CLEN,
    FW_S_IS_CONF,
    FW_S_IS_DLEN,
    FW_S_IS_UNUSED,
    FW_S_TN_TERM,
    FW_S_TN_LLI,
    FW_S_TN_LLT,
    FW_S_PAYLOAD,
    FW_S_PASS, /* the binding's own protocols after the handshake: passed whole */
    FW_S_DEAD
};

enum fw__cstate {
    FW_C_FORMAT,
    FW_C_COUNT,
    FW_C_ID,
    FW_C_ADDR,
    FW_C_ROLE,
    FW_C_PAD
};

struct fw_conn
{
    struct fw_limits lim; /* a copy, clamped */

    /* Results, readable by the caller. */
    uint64_t peer_id;                    /* the handshake's id, once done */
    char peer_address[FW_ADDRESS_MAX + 1]; /* NUL-terminated, once done */
    uint64_t hs_len;                     /* handshake bytes (0: none) */
    uint64_t messages;                   /* whole messages passed */
    uint64_t bytes;                      /* bytes passed (all of them) */
    uint8_t last_type;                   /* type of the last whole message */
    uint8_t handshake_done;
    uint8_t forward;                     /* FW_FORWARD_PROTOCOL declared */
    uint8_t reason;                      /* sticky: first drop reason */

    /* Parser. */
    uint8_t state;
    uint8_t type;
    uint8_t acc_n;        /* bytes held in acc */
    uint8_t acc[8];       /* a field that straddles two chunks */
    uint64_t hdr_len;     /* header length from the preamble */
    uint64_t term;        /* the message's term */
    uint64_t aux;         /* prev_log_index / last_log_index / last_index ... */
    uint64_t n;           /* AppendEntries entries */
    uint64_t i;           /* entry being read */
    uint64_t eterm;       /* previous entry's term */
    uint64_t left;        /* bytes left in a run (address, payload) */
    uint64_t ppos;        /* payload bytes consumed */
    uint64_t payload;     /* payload length the header declares */
    uint32_t alen;        /* address bytes seen (handshake / configuration) */
    uint8_t nul_seen;

    /* Configuration sub-parser. */
    uint8_t cstate;
    uint8_t in_conf;      /* inside a RAFT_CHANGE entry's configuration */
    uint64_t cleft;       /* bytes left in the configuration */
    uint64_t cn;          /* servers declared */
    uint64_t ci;          /* server being read */
    uint64_t ahash;       /* hash of the address being read */
    uint64_t conf_id[FW_CONF_SERVERS_MAX];
    uint64_t conf_hash[FW_CONF_SERVERS_MAX];

    /* RAFT_CHANGE entries of the AppendEntries being read. */
    uint32_t nchanges;
    uint32_t ichange;
    uint64_t change_off[FW_CHANGES_MAX];
    uint32_t change_len[FW_CHANGES_MAX];
};

static inline void fw_conn_init(struct fw_conn *c,
                                const struct fw_limits *lim,
                                int flags)
{
    memset(c, 0, sizeof *c);
    c->lim = *lim;
    if (c->lim.max_conf_servers > FW_CONF_SERVERS_MAX) {
        c->lim.max_conf_servers = FW_CONF_SERVERS_MAX;
    }
    if (c->lim.max_address_len > FW_ADDRESS_MAX) {
        c->lim.max_address_len = FW_ADDRESS_MAX;
    }
    if (flags & FW_NO_HANDSHAKE) {
        c->handshake_done = 1;
        c->state = FW_S_PRE_WORD;
    } else {
        c->state = FW_S_HS_PROTO;
    }
}

/* With FW_NO_HANDSHAKE (the caller read the handshake itself): the id the
 * peer declared, so that RequestVote's candidate_id is checked against it. */
static inline void fw_conn_set_peer(struct fw_conn *c, uint64_t id)
{
    c->peer_id = id;
}

/* After its handshake, is this stream passed through untouched (one of the
 * binding's own protocols), not parsed as libraft's messages? */
static inline int fw_passes(const struct fw_conn *c)
{
    return c->forward || fw_raft_protocol(&c->lim) != FW_HANDSHAKE_PROTOCOL;
}

/* Nonzero while a handshake or a message is part-way through (the caller's
 * idle/stall timer should run), zero at a message boundary. */
static inline int fw_busy(const struct fw_conn *c)
{
    if (c->reason != FW_OK) {
        return 0;
    }
    if (!c->handshake_done) {
        return 1;
    }
    if (c->state == FW_S_PASS) {
        return 0; /* the protocol's own decoder keeps its own time */
    }
    return c->state != FW_S_PRE_WORD || c->acc_n != 0;
}

/* The caller's timer fired: drop with FW_IDLE (unless already dropped). */
static inline enum fw_reason fw_expire(struct fw_conn *c)
{
    if (c->reason == FW_OK) {
        c->reason = FW_IDLE;
        c->state = FW_S_DEAD;
    }
    return (enum fw_reason)c->reason;
}

/* The peer closed the stream: FW_TRUNCATED if it did so part-way through a
 * handshake or message (or without any handshake), else FW_OK. */
static inline enum fw_reason fw_eof(struct fw_conn *c)
{
    if (c->reason != FW_OK) {
        return (enum fw_reason)c->reason;
    }
    if (fw_busy(c)) {
        c->reason = FW_TRUNCATED;
        c->state = FW_S_DEAD;
    }
    return (enum fw_reason)c->reason;
}

/* libraft pads the handshake's address and each configuration to 8 bytes. */
static inline uint64_t fw__pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* Bytes a configuration may take with these limits (its padded size). */
static inline uint64_t fw__conf_max(const struct fw_limits *l)
{
    return fw__pad8(1 + 8 + (uint64_t)l->max_conf_servers *
                                (8 + (uint64_t)l->max_address_len + 1 + 1));
}

/* ------------------------------------------------------------------------ */
/* Internals                                                                 */

static inline uint64_t fw__le(const uint8_t *p, unsigned w)
{
    uint64_t v = 0;
    unsigned k;
    for (k = 0; k < w; k++) {
        v |= (uint64_t)p[k] << (8 * k);
    }
    return v;
}

/* Complete a w-byte (w <= 8) little-endian field.  1: *out is set, 0: the
 * chunk ended first (the bytes are kept in c->acc). */
static inline int fw__take(struct fw_conn *c,
                           const uint8_t **pp,
                           const uint8_t *end,
                           unsigned w,
                           uint64_t *out)
{
    const uint8_t *p = *pp;
    size_t have = (size_t)(end - p);
    size_t need;
    if (c->acc_n == 0 && have >= w) {
        *out = fw__le(p, w);
        *pp = p + w;
        return 1;
    }
    need = (size_t)w - c->acc_n;
    if (have < need) {
        memcpy(c->acc + c->acc_n, p, have);
        c->acc_n = (uint8_t)(c->acc_n + have);
        *pp = end;
        return 0;
    }
    memcpy(c->acc + c->acc_n, p, need);
    *pp = p + need;
    *out = fw__le(c->acc, w);
    c->acc_n = 0;
    return 1;
}

static inline int fw__addr_char(uint8_t b)
{
    return b > 0x20 && b < 0x7f; /* printable ASCII, no space */
}

#define FW__FNV_OFFSET 0xcbf29ce484222325ULL
#define FW__FNV_PRIME 0x100000001b3ULL

static inline void fw__conf_start(struct fw_conn *c, uint64_t len)
{
    c->cstate = FW_C_FORMAT;
    c->cleft = len;
    c->cn = 0;
    c->ci = 0;
    c->acc_n = 0;
}

/* Read configuration bytes, within the c->cleft bytes that belong to it.
 * *done = 1 once all of them were read and found well formed. */
static inline enum fw_reason fw__conf(struct fw_conn *c,
                                      const uint8_t **pp,
                                      const uint8_t *end,
                                      int *done)
{
    const uint8_t *p = *pp;
    const uint8_t *q;
    enum fw_reason r = FW_OK;
    uint64_t v;
    uint64_t k;
    unsigned w;

    *done = 0;
    for (;;) {
        if (c->cstate == FW_C_PAD) {
            /* libraft pads to 8 exactly: fewer than 8 bytes, all zero. */
            if (c->cleft >= 8) {
                r = FW_CONF_TRAILER;
                goto out;
            }
            while (c->cleft > 0 && p < end) {
                if (*p != 0) {
                    r = FW_CONF_TRAILER;
                    goto out;
                }
                p++;
                c->cleft--;
            }
            if (c->cleft == 0) {
                *done = 1;
            }
            goto out;
        }
        if (c->cstate == FW_C_ADDR) {
            if (c->cleft == 0) {
                r = FW_CONF_ADDR; /* no NUL within the configuration */
                goto out;
            }
            if (p == end) {
                goto out;
            }
            while (p < end && c->cleft > 0) {
                uint8_t b = *p++;
                c->cleft--;
                if (b == 0) {
                    uint64_t h;
                    uint64_t j;
                    if (c->alen == 0) {
                        r = FW_CONF_ADDR;
                        goto out;
                    }
                    h = (c->ahash ^ c->alen) * FW__FNV_PRIME;
                    for (j = 0; j < c->ci; j++) {
                        if (c->conf_hash[j] == h) {
                            r = FW_CONF_DUP_ADDR;
                            goto out;
                        }
                    }
                    c->conf_hash[c->ci] = h;
                    c->cstate = FW_C_ROLE;
                    break;
                }
                if (!fw__addr_char(b) || c->alen >= c->lim.max_address_len) {
                    r = FW_CONF_ADDR;
                    goto out;
                }
                c->ahash = (c->ahash ^ b) * FW__FNV_PRIME;
                c->alen++;
            }
            continue;
        }
        /* Checked as soon as the previous field ended, so that a
         * configuration cut short is caught at its last byte. */
        w = (c->cstate == FW_C_FORMAT || c->cstate == FW_C_ROLE) ? 1 : 8;
        if (c->acc_n == 0 && c->cleft < w) {
            r = FW_CONF_LEN; /* shorter than its contents */
            goto out;
        }
        if (p == end) {
            goto out;
        }
        q = p;
        k = fw__take(c, &p, end, w, &v);
        c->cleft -= (uint64_t)(p - q);
        if (!k) {
            goto out;
        }
        switch (c->cstate) {
            case FW_C_FORMAT:
                if (v != FW_CONF_FORMAT) {
                    r = FW_CONF_FORMAT_BAD;
                    goto out;
                }
                c->cstate = FW_C_COUNT;
                break;
            case FW_C_COUNT:
                /* Each server takes at least 8 + 2 + 1 bytes. */
                if (v == 0 || v > c->lim.max_conf_servers ||
                    v * 11 > c->cleft) {
                    r = FW_CONF_COUNT;
                    goto out;
                }
                c->cn = v;
                c->ci = 0;
                c->cstate = FW_C_ID;
                break;
            case FW_C_ID: {
                uint64_t j;
                if (v == 0) {
                    r = FW_CONF_ID;
                    goto out;
                }
                for (j = 0; j < c->ci; j++) {
                    if (c->conf_id[j] == v) {
                        r = FW_CONF_DUP_ID;
                        goto out;
                    }
                }
                c->conf_id[c->ci] = v;
                c->alen = 0;
                c->ahash = FW__FNV_OFFSET;
                c->cstate = FW_C_ADDR;
                break;
            }
            case FW_C_ROLE:
                if (v != FW_ROLE_STANDBY && v != FW_ROLE_VOTER &&
                    v != FW_ROLE_SPARE) {
                    r = FW_CONF_ROLE;
                    goto out;
                }
                c->ci++;
                c->cstate = c->ci == c->cn ? FW_C_PAD : FW_C_ID;
                break;
            default:
                break;
        }
    }
out:
    *pp = p;
    return r;
}

/* A message preamble's type word: a known type, at the version 0.22.1
 * sends. */
static inline enum fw_reason fw__preamble_word(struct fw_conn *c, uint64_t v)
{
    static const uint8_t version[FW_TIMEOUT_NOW + 1] = {
        [FW_APPEND_ENTRIES] = FW_VERSION_APPEND_ENTRIES,
        [FW_APPEND_ENTRIES_RESULT] = FW_VERSION_APPEND_ENTRIES_RESULT,
        [FW_REQUEST_VOTE] = FW_VERSION_REQUEST_VOTE,
        [FW_REQUEST_VOTE_RESULT] = FW_VERSION_REQUEST_VOTE_RESULT,
        [FW_INSTALL_SNAPSHOT] = FW_VERSION_INSTALL_SNAPSHOT,
        [FW_TIMEOUT_NOW] = FW_VERSION_TIMEOUT_NOW,
    };
    uint8_t type = (uint8_t)v;
    if ((v & ~(uint64_t)0xff00ff) != 0) {
        return FW_MSG_RESERVED;
    }
    if (type < FW_APPEND_ENTRIES || type > FW_TIMEOUT_NOW) {
        return FW_MSG_TYPE;
    }
    if ((uint8_t)(v >> 16) != version[type]) {
        return FW_MSG_VERSION;
    }
    c->type = type;
    c->state = FW_S_PRE_HLEN;
    return FW_OK;
}

/* A message preamble's header length, for the type c->type. */
static inline enum fw_reason fw__header_length(struct fw_conn *c, uint64_t v)
{
    /* Per type (checked by fw__preamble_word): the fixed header size (0:
     * sized by its contents, checked below) and the first header state. */
    static const struct {
        uint8_t size;
        uint8_t first;
    } types[FW_TIMEOUT_NOW + 1] = {
        [FW_APPEND_ENTRIES] = {0, FW_S_AE_TERM},
        [FW_APPEND_ENTRIES_RESULT] = {FW_SIZE_APPEND_ENTRIES_RESULT, FW_S_AER_TERM},
        [FW_REQUEST_VOTE] = {FW_SIZE_REQUEST_VOTE, FW_S_RV_TERM},
        [FW_REQUEST_VOTE_RESULT] = {FW_SIZE_REQUEST_VOTE_RESULT, FW_S_RVR_TERM},
        [FW_INSTALL_SNAPSHOT] = {0, FW_S_IS_TERM},
        [FW_TIMEOUT_NOW] = {FW_SIZE_TIMEOUT_NOW, FW_S_TN_TERM},
    };
    const struct fw_limits *l = &c->lim;
    int ok;
    if (c->type == FW_APPEND_ENTRIES) {
        ok = v >= FW_SIZE_APPEND_ENTRIES_FIXED &&
             (v - FW_SIZE_APPEND_ENTRIES_FIXED) % FW_SIZE_ENTRY_DESCRIPTOR == 0;
        if (ok && (v - FW_SIZE_APPEND_ENTRIES_FIXED) / FW_SIZE_ENTRY_DESCRIPTOR >
                      l->max_entries) {
            return FW_ENTRY_COUNT;
        }
    } else if (c->type == FW_INSTALL_SNAPSHOT) {
        /* The smallest configuration (one server, 1-byte address) takes 24
         * bytes padded. */
        ok = v >= FW_SIZE_INSTALL_SNAPSHOT_FIXED + 24 && v % 8 == 0;
        if (ok && v - FW_SIZE_INSTALL_SNAPSHOT_FIXED > fw__conf_max(l)) {
            return FW_CONF_LEN;
        }
    } else {
        ok = v == types[c->type].size;
    }
    if (!ok) {
        return FW_HDR_LEN;
    }
    if (v > l->max_message_size || FW_PREAMBLE_SIZE + v > l->max_message_size) {
        return FW_MSG_TOO_BIG;
    }
    c->state = types[c->type].first;
    c->hdr_len = v;
    c->payload = 0;
    return FW_OK;
}

/* An AppendEntries entry descriptor's second word: type, unused, length. */
static inline enum fw_reason fw__entry_info(struct fw_conn *c, uint64_t v)
{
    uint8_t type = (uint8_t)v;
    uint32_t unused = (uint32_t)((v >> 8) & 0xffffff);
    uint32_t len = (uint32_t)(v >> 32);
    if (type != FW_ENTRY_COMMAND && type != FW_ENTRY_BARRIER &&
        type != FW_ENTRY_CHANGE) {
        return FW_ENTRY_TYPE;
    }
    if (unused != 0) {
        return FW_FLAGS;
    }
    /* libraft's receiver steps over each entry padded to 8
     * (uvDecodeEntriesBatch) while the sender sends it unpadded: only
     * multiples of 8 line up.  A zero length leaves the batch pointer
     * unset (n > 0 with no payload) or feeds an empty configuration. */
    if (len == 0 || len % 8 != 0) {
        return FW_ENTRY_LEN;
    }
    if (type == FW_ENTRY_CHANGE) {
        if (c->nchanges >= FW_CHANGES_MAX) {
            return FW_TOO_MANY_CHANGES;
        }
        if (len > fw__conf_max(&c->lim)) {
            return FW_CONF_LEN;
        }
        c->change_off[c->nchanges] = c->payload;
        c->change_len[c->nchanges] = len;
        c->nchanges++;
    }
    c->payload += len;
    if (FW_PREAMBLE_SIZE + c->hdr_len + c->payload > c->lim.max_message_size) {
        return FW_PAYLOAD_TOO_BIG;
    }
    c->i++;
    c->state = c->i < c->n ? FW_S_AE_ETERM : FW_S_AE_UNUSED;
    return FW_OK;
}

/* The unused last word of a header that has a payload length: then the
 * payload, if any. */
static inline enum fw_reason fw__header_end(struct fw_conn *c, uint64_t v,
                                            int *msg_done)
{
    if (v != 0) {
        return FW_FLAGS;
    }
    if (c->payload == 0) {
        *msg_done = 1;
    } else {
        c->state = FW_S_PAYLOAD;
        c->left = c->payload;
        c->ppos = 0;
        c->in_conf = 0;
    }
    return FW_OK;
}

/* A header field (8 bytes, little endian) is complete.  Fields that obey the
 * same rules share one case; each then steps to the next state (the header
 * states are declared in wire order).  A term or index is checked against
 * FW_TERM_LIMIT before anything else. */
static inline enum fw_reason fw__field(struct fw_conn *c, uint64_t v, int *msg_done)
{
    const struct fw_limits *l = &c->lim;

    switch (c->state) {
        /* ---- handshake ---- */
        case FW_S_HS_PROTO:
            if (v == FW_FORWARD_PROTOCOL && l->forward) {
                c->forward = 1;
            } else if (v != fw_raft_protocol(l)) {
                return FW_HS_PROTOCOL;
            }
            break;
        case FW_S_HS_ID:
            if (v == 0) {
                return FW_HS_ID_ZERO;
            }
            if (l->expected_id != 0 && v != l->expected_id) {
                return FW_HS_ID_MISMATCH;
            }
            if (l->own_id != 0 && v == l->own_id && !c->forward) {
                return FW_HS_ID_REFUSED;
            }
            if (l->id_allowed != NULL && !l->id_allowed(l->id_ctx, v)) {
                return FW_HS_ID_REFUSED;
            }
            c->peer_id = v;
            break;
        case FW_S_HS_ALEN:
            /* The address, its NUL and padding to 8 (uvTcpEncodeHandshake). */
            if (v == 0 || v % 8 != 0 ||
                v > fw__pad8((uint64_t)l->max_address_len + 1)) {
                return FW_HS_ADDR_LEN;
            }
            c->left = v;
            c->hs_len = FW_HANDSHAKE_PREAMBLE + v;
            c->alen = 0;
            c->nul_seen = 0;
            break;

        /* ---- message preamble ---- */
        case FW_S_PRE_WORD:
            return fw__preamble_word(c, v);
        case FW_S_PRE_HLEN:
            return fw__header_length(c, v);

        /* ---- terms and indexes, by what they are ---- */
        case FW_S_RV_TERM:
        case FW_S_AE_TERM:
        case FW_S_IS_TERM:
        case FW_S_TN_TERM:
            /* The term of a request. */
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            if (v == 0) {
                return FW_TERM_ZERO;
            }
            c->term = v;
            break;
        case FW_S_RV_LLI:
        case FW_S_AE_PLI:
        case FW_S_AER_REJ:
        case FW_S_TN_LLI:
        case FW_S_IS_LI:
            /* An index, kept for the field checked against it (a log term,
             * or a snapshot's conf_index). */
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            if (v == 0 && c->state == FW_S_IS_LI) {
                return FW_SNAPSHOT_META; /* a snapshot has a last index */
            }
            c->aux = v;
            break;
        case FW_S_RV_LLT:
        case FW_S_AE_PLT:
        case FW_S_TN_LLT:
            /* A log term: not above the message's term, and 0 iff its index
             * is (replication.c asserts prev_log_term == 0 iff index == 0). */
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            if (v > c->term) {
                return FW_TERM_ORDER;
            }
            if ((v == 0) != (c->aux == 0)) {
                return FW_PREV_LOG;
            }
            if (c->state == FW_S_TN_LLT) {
                *msg_done = 1;
                return FW_OK;
            }
            c->eterm = v; /* AppendEntries: no entry term below it */
            break;
        case FW_S_RVR_TERM:
        case FW_S_AE_COMMIT:
        case FW_S_AER_TERM:
            /* A term or index with no other rule. */
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            break;
        case FW_S_AER_LLI:
            /* Not checked: on a rejection for a stale term libraft 0.22.1
             * leaves last_log_index uninitialized (recv_append_entries.c,
             * "goto reply"), so an honest peer may send any value here; the
             * receiver then steps down on the higher term without reading it. */
            break;

        /* ---- RequestVote, RequestVoteResult ---- */
        case FW_S_RV_CAND:
            /* libraft sends its own id; with a known peer it must match. */
            if (v == 0 || (c->peer_id != 0 && v != c->peer_id)) {
                return FW_CANDIDATE;
            }
            break;
        case FW_S_RV_FLAGS:
            if (v & ~(uint64_t)3) { /* disrupt_leader, pre_vote */
                return FW_FLAGS;
            }
            *msg_done = 1;
            return FW_OK;
        case FW_S_RVR_GRANTED:
            if (v > 1) {
                return FW_FLAGS;
            }
            break;
        case FW_S_RVR_TAIL: {
            uint8_t flags = (uint8_t)v;
            uint8_t unused = (uint8_t)(v >> 8);
            uint16_t features = (uint16_t)(v >> 16);
            uint16_t unused2 = (uint16_t)(v >> 48);
            if ((flags & ~1u) || unused || unused2 ||
                (features & ~(unsigned)FW_FEATURE_CAPACITY)) {
                return FW_FLAGS;
            }
            *msg_done = 1;
            return FW_OK;
        }

        /* ---- AppendEntries, AppendEntriesResult ---- */
        case FW_S_AE_N:
            /* The header length already bounds n; it must match it exactly
             * (libraft reads n descriptors whatever the header length). */
            if (v > l->max_entries ||
                FW_SIZE_APPEND_ENTRIES_FIXED + FW_SIZE_ENTRY_DESCRIPTOR * v !=
                    c->hdr_len) {
                return FW_ENTRY_COUNT;
            }
            c->n = v;
            c->i = 0;
            c->nchanges = 0;
            c->ichange = 0;
            c->state = v > 0 ? FW_S_AE_ETERM : FW_S_AE_UNUSED;
            return FW_OK;
        case FW_S_AE_ETERM:
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            /* Raft logs: entry terms >= 1, never decreasing, never above the
             * leader's term; the first not below prev_log_term. */
            if (v == 0 || v > c->term || v < c->eterm) {
                return FW_ENTRY_TERM;
            }
            c->eterm = v;
            break;
        case FW_S_AE_EINFO:
            return fw__entry_info(c, v);
        case FW_S_AE_UNUSED:
            return fw__header_end(c, v, msg_done);
        case FW_S_AER_TAIL: {
            uint16_t features = (uint16_t)v;
            uint32_t unused = (uint32_t)(v >> 32);
            if ((features & ~(unsigned)FW_FEATURE_CAPACITY) || unused) {
                return FW_FLAGS;
            }
            *msg_done = 1;
            return FW_OK;
        }

        /* ---- InstallSnapshot ---- */
        case FW_S_IS_LT:
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            if (v > c->term) {
                return FW_TERM_ORDER;
            }
            if (v == 0) {
                return FW_SNAPSHOT_META;
            }
            break;
        case FW_S_IS_CI:
            if (v >= FW_TERM_LIMIT) {
                return FW_TERM_RANGE;
            }
            if (v == 0 || v > c->aux) {
                return FW_SNAPSHOT_META;
            }
            break;
        case FW_S_IS_CLEN:
            /* configurationEncodedSize() pads to 8; the header is exactly
             * the fixed part plus the configuration. */
            if (v == 0 || v % 8 != 0 || v > fw__conf_max(l) ||
                FW_SIZE_INSTALL_SNAPSHOT_FIXED + v != c->hdr_len) {
                return FW_CONF_LEN;
            }
            fw__conf_start(c, v);
            break;
        case FW_S_IS_DLEN:
            if (v > l->max_message_size ||
                FW_PREAMBLE_SIZE + c->hdr_len + v > l->max_message_size) {
                return FW_PAYLOAD_TOO_BIG;
            }
            c->payload = v;
            break;
        case FW_S_IS_UNUSED:
            c->nchanges = 0; /* a snapshot's data holds no configuration */
            c->ichange = 0;
            return fw__header_end(c, v, msg_done);
        default:
            return FW_MSG_TYPE; /* not reached */
    }
    c->state++;
    return FW_OK;
}

static inline void fw__msg_done(struct fw_conn *c)
{
    c->messages++;
    c->last_type = c->type;
    c->state = FW_S_PRE_WORD;
    c->acc_n = 0;
}

/* ------------------------------------------------------------------------ */
/* The entry point                                                           */

/* Feed the next len bytes of the stream.  FW_OK: all of them may go to libraft
 * (*passed = len).  Anything else: drop the connection; *passed bytes at the
 * start of buf are whole messages that passed (forwarding them is optional).
 * After a drop every call returns the same reason with *passed = 0. */
static inline enum fw_reason fw_feed(struct fw_conn *c,
                                     const uint8_t *buf,
                                     size_t len,
                                     size_t *passed)
{
    const uint8_t *p = buf;
    const uint8_t *end = buf + len;
    const uint8_t *safe = buf; /* end of the last whole unit in this chunk */
    enum fw_reason r = FW_OK;
    uint64_t v;

    if (c->reason != FW_OK) {
        *passed = 0;
        return (enum fw_reason)c->reason;
    }
    if (len == 0) {
        *passed = 0;
        return FW_OK;
    }

    while (p < end) {
        int msg_done = 0;
        switch (c->state) {
            case FW_S_HS_ADDR:
                /* address bytes, NUL, zero padding: pad8(strlen + 1) == L */
                while (p < end && c->left > 0) {
                    uint8_t b = *p++;
                    c->left--;
                    if (c->nul_seen) {
                        if (b != 0) {
                            r = FW_HS_ADDR;
                            goto drop;
                        }
                    } else if (b == 0) {
                        if (c->alen == 0 ||
                            fw__pad8((uint64_t)c->alen + 1) !=
                                c->hs_len - FW_HANDSHAKE_PREAMBLE) {
                            r = FW_HS_ADDR;
                            goto drop;
                        }
                        c->peer_address[c->alen] = 0;
                        c->nul_seen = 1;
                    } else {
                        if (!fw__addr_char(b) ||
                            c->alen >= c->lim.max_address_len) {
                            r = FW_HS_ADDR;
                            goto drop;
                        }
                        c->peer_address[c->alen++] = (char)b;
                    }
                }
                if (c->left == 0) {
                    if (!c->nul_seen) {
                        r = FW_HS_ADDR;
                        goto drop;
                    }
                    c->handshake_done = 1;
                    c->state = fw_passes(c) ? FW_S_PASS : FW_S_PRE_WORD;
                    safe = p;
                }
                break;

            case FW_S_PASS:
                p = end;
                safe = p;
                break;

            case FW_S_IS_CONF: {
                int done;
                r = fw__conf(c, &p, end, &done);
                if (r != FW_OK) {
                    goto drop;
                }
                if (done) {
                    c->state = FW_S_IS_DLEN;
                }
                break;
            }

            case FW_S_PAYLOAD:
                if (c->in_conf) {
                    int done;
                    const uint8_t *q = p;
                    r = fw__conf(c, &p, end, &done);
                    c->ppos += (uint64_t)(p - q);
                    c->left -= (uint64_t)(p - q);
                    if (r != FW_OK) {
                        goto drop;
                    }
                    if (!done) {
                        break;
                    }
                    c->in_conf = 0;
                    c->ichange++;
                } else {
                    uint64_t run = c->left;
                    uint64_t k;
                    if (c->ichange < c->nchanges) {
                        run = c->change_off[c->ichange] - c->ppos;
                    }
                    if (run == 0) {
                        fw__conf_start(c, c->change_len[c->ichange]);
                        c->in_conf = 1;
                        continue;
                    }
                    k = (uint64_t)(end - p);
                    if (k > run) {
                        k = run;
                    }
                    p += k;
                    c->ppos += k;
                    c->left -= k;
                }
                if (c->left == 0 && !c->in_conf) {
                    msg_done = 1;
                }
                break;

            case FW_S_DEAD:
                r = (enum fw_reason)c->reason;
                goto drop;

            default:
                if (!fw__take(c, &p, end, 8, &v)) {
                    break;
                }
                r = fw__field(c, v, &msg_done);
                if (r != FW_OK) {
                    goto drop;
                }
                break;
        }
        if (msg_done) {
            fw__msg_done(c);
            safe = p;
        }
    }

    c->bytes += len;
    *passed = len;
    return FW_OK;

drop:
    c->reason = (uint8_t)r;
    c->state = FW_S_DEAD;
    c->bytes += (uint64_t)(safe - buf);
    *passed = (size_t)(safe - buf);
    return r;
}

#endif /* CANONICAL_RAFT_FIREWALL_H */
