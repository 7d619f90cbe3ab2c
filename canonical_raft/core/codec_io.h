/* codec_io.h: the message codec of the binding's own raft_io (core/raft_io.c),
 * spoken on peer streams whose handshake declares FW_IO_PROTOCOL
 * (firewall.h; the firewall checks the handshake and passes the rest here).
 *
 * Header-only C over raft.h's message structs; allocations by raft_malloc
 * (libraft frees what it is handed). Little endian throughout.
 *
 *   frame  = header (16) | head (head_len) | tail (tail_len)
 *   header = u8 type (raft_message_type) | u8 CR_IO_VERSION | u16 0 |
 *            u32 head_len | u64 tail_len
 *   head, by type (every field a u64 unless said):
 *     1 AppendEntries      term | prev_log_index | prev_log_term |
 *                          leader_commit | n | n x (term | u8 type | 3 x u8 0 |
 *                          u32 length)                          40 + 16 n
 *       tail: each entry's bytes, zero-padded to a multiple of 8
 *     2 AppendEntriesResult term | rejected | last_log_index | u16 features |
 *                          u16 capacity | u32 0                 32
 *     3 RequestVote        term | candidate_id | last_log_index |
 *                          last_log_term | flags (1 disrupt_leader,
 *                          2 pre_vote)                           40
 *     4 RequestVoteResult  term | flags (1 vote_granted, 2 pre_vote) |
 *                          u16 features | u16 capacity | u32 0   24
 *     5 InstallSnapshot    term | last_index | last_term | conf_index |
 *                          conf length C | C bytes (libraft's configuration
 *                          encoding, a multiple of 8)            40 + C
 *       tail: the snapshot's data
 *     6 TimeoutNow         term | last_log_index | last_log_term  24
 *
 * THE DECODER IS BOUNDED BY CONSTRUCTION. It reads a frame in three steps
 * and allocates at most twice per frame, each time only after the lengths
 * that size the allocation were checked: the 16-byte header into the state
 * itself, then the head (its length exact for the type, or within
 * 40 + 16 x max_entries, or within the largest configuration, and the
 * whole frame within max_message_size), then the tail (its length equal to
 * what the head declares). Every field is checked before libraft sees the
 * message, with the firewall's rules for libraft's own format: terms and
 * indexes below 2^63, requests with a term, a RequestVote's candidate the
 * peer itself, known flags, prev_log index and term both zero or both not,
 * entries of known type, nonzero length and term at most the message's and
 * non-decreasing, at most CR_IO_CHANGES_MAX configuration entries, every
 * configuration checked by codec_conf.h before libraft decodes it, snapshot
 * metadata consistent. A frame that fails is refused whole (the connection
 * is dropped by the caller); nothing of it reaches libraft.
 */
#ifndef CANONICAL_RAFT_CODEC_IO_H
#define CANONICAL_RAFT_CODEC_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "codec_conf.h"
#include "le.h"

#define CR_IO_VERSION 1
#define CR_IO_HEADER 16
#define CR_IO_CHANGES_MAX 32        /* RAFT_CHANGE entries per AppendEntries */
#define CR_IO_LIMIT ((uint64_t)1 << 63)   /* terms and indexes stay below */
/* The largest encoded configuration codec_conf.h accepts. */
#define CR_IO_CONF_MAX                                                       \
    ((9 + CR_CONF_SERVERS_MAX * (8 + CR_CONF_ADDRESS_MAX + 1 + 1) + 7) & ~7)

/* libraft 0.22.1's versions of each message struct (its message.h). */
#define CR_IO_V_REQUEST_VOTE 2
#define CR_IO_V_REQUEST_VOTE_RESULT 2
#define CR_IO_V_APPEND_ENTRIES 0
#define CR_IO_V_APPEND_ENTRIES_RESULT 2
#define CR_IO_V_INSTALL_SNAPSHOT 0
#define CR_IO_V_TIMEOUT_NOW 0

/* Why a frame was refused (0: not refused). */
#define CR_IO_REASONS(X)                                               \
    X(CR_IO_OK, "ok")                                                  \
    X(CR_IO_E_TYPE, "io_type")         /* unknown type or version */   \
    X(CR_IO_E_LENGTH, "io_length")     /* head/tail length wrong */    \
    X(CR_IO_E_TOO_BIG, "io_too_big")   /* > max_message_size */        \
    X(CR_IO_E_RANGE, "io_range")       /* a term or index >= 2^63 */   \
    X(CR_IO_E_FIELD, "io_field")       /* a field out of its rules */  \
    X(CR_IO_E_ENTRY, "io_entry")       /* an entry out of its rules */ \
    X(CR_IO_E_CONF, "io_configuration") /* a configuration */          \
    X(CR_IO_E_NOMEM, "io_nomem")                                       \
    X(CR_IO_E_COUNT_, "?")

enum cr_io_reason {
#define CR_IO__ENUM(code, name) code,
    CR_IO_REASONS(CR_IO__ENUM)
#undef CR_IO__ENUM
};

static inline const char *cr_io_reason_name(int r)
{
    static const char *const names[] = {
#define CR_IO__NAME(code, name) name,
        CR_IO_REASONS(CR_IO__NAME)
#undef CR_IO__NAME
    };
    return r >= 0 && r < CR_IO_E_COUNT_ ? names[r] : "?";
}

static inline uint64_t cr_io__pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* ---- encoding ------------------------------------------------------------ */

/* Encode m's header and head into a malloc'd *out (*out_len bytes); the
 * tail is m's own memory (cr_io_tail_len bytes: AppendEntries' entries each
 * padded to 8 by the caller, InstallSnapshot's data). For InstallSnapshot
 * the configuration is encoded here. 0 or RAFT_NOMEM / RAFT_INVALID. */
static inline int cr_io_encode(const struct raft_message *m, uint8_t **out,
                               size_t *out_len, uint64_t *tail_len)
{
    struct raft_buffer conf = {NULL, 0};
    size_t head;
    uint64_t tail = 0;
    uint8_t *b;
    uint8_t *p;
    unsigned i;

    switch (m->type) {
        case RAFT_APPEND_ENTRIES:
            head = 40 + 16 * (size_t)m->append_entries.n_entries;
            for (i = 0; i < m->append_entries.n_entries; i++) {
                tail += cr_io__pad8(m->append_entries.entries[i].buf.len);
            }
            break;
        case RAFT_APPEND_ENTRIES_RESULT:
            head = 32;
            break;
        case RAFT_REQUEST_VOTE:
            head = 40;
            break;
        case RAFT_REQUEST_VOTE_RESULT:
            head = 24;
            break;
        case RAFT_INSTALL_SNAPSHOT:
            if (raft_configuration_encode(&m->install_snapshot.conf, &conf) !=
                0) {
                return RAFT_NOMEM;
            }
            head = 40 + conf.len;
            tail = m->install_snapshot.data.len;
            break;
        case RAFT_TIMEOUT_NOW:
            head = 24;
            break;
        default:
            return RAFT_INVALID;
    }
    b = malloc(CR_IO_HEADER + head);
    if (b == NULL) {
        raft_free(conf.base);
        return RAFT_NOMEM;
    }
    memset(b, 0, CR_IO_HEADER + head);
    b[0] = (uint8_t)m->type;
    b[1] = CR_IO_VERSION;
    cr_put32(b + 4, (uint32_t)head);
    cr_put64(b + 8, tail);
    p = b + CR_IO_HEADER;
    switch (m->type) {
        case RAFT_APPEND_ENTRIES: {
            const struct raft_append_entries *a = &m->append_entries;
            cr_put64(p, a->term);
            cr_put64(p + 8, a->prev_log_index);
            cr_put64(p + 16, a->prev_log_term);
            cr_put64(p + 24, a->leader_commit);
            cr_put64(p + 32, a->n_entries);
            p += 40;
            for (i = 0; i < a->n_entries; i++, p += 16) {
                cr_put64(p, a->entries[i].term);
                p[8] = (uint8_t)a->entries[i].type;
                cr_put32(p + 12, (uint32_t)a->entries[i].buf.len);
            }
            break;
        }
        case RAFT_APPEND_ENTRIES_RESULT: {
            const struct raft_append_entries_result *a =
                &m->append_entries_result;
            cr_put64(p, a->term);
            cr_put64(p + 8, a->rejected);
            cr_put64(p + 16, a->last_log_index);
            p[24] = (uint8_t)a->features;
            p[25] = (uint8_t)(a->features >> 8);
            p[26] = (uint8_t)a->capacity;
            p[27] = (uint8_t)(a->capacity >> 8);
            break;
        }
        case RAFT_REQUEST_VOTE: {
            const struct raft_request_vote *a = &m->request_vote;
            cr_put64(p, a->term);
            cr_put64(p + 8, a->candidate_id);
            cr_put64(p + 16, a->last_log_index);
            cr_put64(p + 24, a->last_log_term);
            cr_put64(p + 32, (a->disrupt_leader ? 1u : 0u) |
                                     (a->pre_vote ? 2u : 0u));
            break;
        }
        case RAFT_REQUEST_VOTE_RESULT: {
            const struct raft_request_vote_result *a = &m->request_vote_result;
            cr_put64(p, a->term);
            cr_put64(p + 8, (a->vote_granted ? 1u : 0u) |
                                    (a->pre_vote ? 2u : 0u));
            p[16] = (uint8_t)a->features;
            p[17] = (uint8_t)(a->features >> 8);
            p[18] = (uint8_t)a->capacity;
            p[19] = (uint8_t)(a->capacity >> 8);
            break;
        }
        case RAFT_INSTALL_SNAPSHOT: {
            const struct raft_install_snapshot *a = &m->install_snapshot;
            cr_put64(p, a->term);
            cr_put64(p + 8, a->last_index);
            cr_put64(p + 16, a->last_term);
            cr_put64(p + 24, a->conf_index);
            cr_put64(p + 32, conf.len);
            memcpy(p + 40, conf.base, conf.len);
            raft_free(conf.base);
            break;
        }
        case RAFT_TIMEOUT_NOW:
            cr_put64(p, m->timeout_now.term);
            cr_put64(p + 8, m->timeout_now.last_log_index);
            cr_put64(p + 16, m->timeout_now.last_log_term);
            break;
        default:
            break;
    }
    *out = b;
    *out_len = CR_IO_HEADER + head;
    *tail_len = tail;
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

struct cr_io_limits
{
    uint64_t max_message_size;  /* header + head + tail */
    uint32_t max_entries;       /* per AppendEntries */
    uint64_t peer_id;           /* the handshake's id (RequestVote's candidate) */
};

struct cr_io_dec
{
    struct cr_io_limits lim;
    uint8_t hdr[CR_IO_HEADER];
    size_t hdr_have;
    uint8_t *head;              /* malloc'd, head_len */
    size_t head_len;
    size_t head_have;
    uint8_t *tail;              /* raft_malloc'd, tail_len (>= 1) */
    uint64_t tail_len;
    uint64_t tail_have;
    int reason;                 /* sticky once refused */
};

static inline void cr_io_dec_init(struct cr_io_dec *d,
                                  const struct cr_io_limits *lim)
{
    memset(d, 0, sizeof *d);
    d->lim = *lim;
}

/* Free what a frame part-way holds (the decoder can be reused or dropped). */
static inline void cr_io_dec_reset(struct cr_io_dec *d)
{
    free(d->head);
    raft_free(d->tail);
    d->head = NULL;
    d->tail = NULL;
    d->hdr_have = 0;
    d->head_len = d->head_have = 0;
    d->tail_len = d->tail_have = 0;
}

/* Nonzero while a frame is part-way (for the caller's idle timer). */
static inline int cr_io_dec_busy(const struct cr_io_dec *d)
{
    return d->reason == 0 && d->hdr_have > 0;
}

/* The header is whole: check it and size the head. */
static inline int cr_io__header(struct cr_io_dec *d)
{
    const uint8_t *h = d->hdr;
    uint64_t head = cr_get32(h + 4);
    uint64_t tail = cr_get64(h + 8);
    uint64_t lo;
    uint64_t hi;
    if (h[1] != CR_IO_VERSION || h[2] != 0 || h[3] != 0) {
        return CR_IO_E_TYPE;
    }
    switch (h[0]) {
        case RAFT_APPEND_ENTRIES:
            lo = 40;
            hi = 40 + 16 * (uint64_t)d->lim.max_entries;
            if ((head - 40) % 16 != 0) {
                return CR_IO_E_LENGTH;
            }
            break;
        case RAFT_APPEND_ENTRIES_RESULT:
            lo = hi = 32;
            break;
        case RAFT_REQUEST_VOTE:
            lo = hi = 40;
            break;
        case RAFT_REQUEST_VOTE_RESULT:
        case RAFT_TIMEOUT_NOW:
            lo = hi = 24;
            break;
        case RAFT_INSTALL_SNAPSHOT:
            lo = 40 + 16;
            hi = 40 + CR_IO_CONF_MAX;
            break;
        default:
            return CR_IO_E_TYPE;
    }
    if (head < lo || head > hi) {
        return CR_IO_E_LENGTH;
    }
    if (tail != 0 && h[0] != RAFT_APPEND_ENTRIES &&
        h[0] != RAFT_INSTALL_SNAPSHOT) {
        return CR_IO_E_LENGTH;
    }
    if (head + CR_IO_HEADER > d->lim.max_message_size ||
        tail > d->lim.max_message_size - head - CR_IO_HEADER) {
        return CR_IO_E_TOO_BIG;
    }
    d->head = malloc((size_t)head);
    if (d->head == NULL) {
        return CR_IO_E_NOMEM;
    }
    d->head_len = (size_t)head;
    d->tail_len = tail;
    return 0;
}

/* The head is whole: check every field it holds. */
static inline int cr_io__head(struct cr_io_dec *d)
{
    const uint8_t *p = d->head;
    uint64_t term = cr_get64(p);
    uint64_t v[5] = {0, 0, 0, 0, 0};
    unsigned k;
    for (k = 0; k < 5 && 8 * k + 8 <= d->head_len; k++) {
        v[k] = cr_get64(p + 8 * k);
    }
    switch (d->hdr[0]) {
        case RAFT_APPEND_ENTRIES: {
            uint64_t n = v[4];
            uint64_t tail = 0;
            uint64_t prev_term = v[2];
            uint64_t changes = 0;
            uint64_t i;
            if (v[0] >= CR_IO_LIMIT || v[1] >= CR_IO_LIMIT ||
                v[2] >= CR_IO_LIMIT || v[3] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            if (term == 0 || (v[1] == 0) != (v[2] == 0) || v[2] > term ||
                n != (d->head_len - 40) / 16) {
                return CR_IO_E_FIELD;
            }
            for (i = 0; i < n; i++) {
                const uint8_t *e = p + 40 + 16 * i;
                uint64_t et = cr_get64(e);
                uint32_t len = cr_get32(e + 12);
                if (e[8] < RAFT_COMMAND || e[8] > RAFT_CHANGE || e[9] != 0 ||
                    e[10] != 0 || e[11] != 0 || len == 0 || et == 0 ||
                    et > term || et < prev_term) {
                    return CR_IO_E_ENTRY;
                }
                if (e[8] == RAFT_CHANGE && ++changes > CR_IO_CHANGES_MAX) {
                    return CR_IO_E_ENTRY;
                }
                prev_term = et;
                tail += cr_io__pad8(len);
            }
            if (tail != d->tail_len) {
                return CR_IO_E_LENGTH;
            }
            return 0;
        }
        case RAFT_APPEND_ENTRIES_RESULT:
            if (v[0] >= CR_IO_LIMIT || v[1] >= CR_IO_LIMIT ||
                v[2] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            return cr_get32(p + 28) == 0 ? 0 : CR_IO_E_FIELD;
        case RAFT_REQUEST_VOTE:
            if (v[0] >= CR_IO_LIMIT || v[2] >= CR_IO_LIMIT ||
                v[3] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            if (term == 0 || v[1] != d->lim.peer_id || v[3] > term ||
                (v[4] & ~(uint64_t)3) != 0) {
                return CR_IO_E_FIELD;
            }
            return 0;
        case RAFT_REQUEST_VOTE_RESULT:
            if (v[0] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            if ((v[1] & ~(uint64_t)3) != 0 || cr_get32(p + 20) != 0) {
                return CR_IO_E_FIELD;
            }
            return 0;
        case RAFT_INSTALL_SNAPSHOT:
            if (v[0] >= CR_IO_LIMIT || v[1] >= CR_IO_LIMIT ||
                v[2] >= CR_IO_LIMIT || v[3] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            if (term == 0 || v[1] == 0 || v[2] == 0 || v[2] > term ||
                v[3] > v[1]) {
                return CR_IO_E_FIELD;
            }
            if (v[4] != d->head_len - 40) {
                return CR_IO_E_LENGTH;
            }
            return cr_conf_check(p + 40, (size_t)v[4]) == 0 ? 0 : CR_IO_E_CONF;
        case RAFT_TIMEOUT_NOW:
            if (v[0] >= CR_IO_LIMIT || v[1] >= CR_IO_LIMIT ||
                v[2] >= CR_IO_LIMIT) {
                return CR_IO_E_RANGE;
            }
            return term == 0 || v[2] > term ? CR_IO_E_FIELD : 0;
        default:
            return CR_IO_E_TYPE;
    }
}

/* The frame is whole and checked but for the entries' configurations: fill
 * *m (libraft's to own from here: the entries array, its batch = the tail,
 * the snapshot's configuration and data). */
static inline int cr_io__message(struct cr_io_dec *d, struct raft_message *m)
{
    const uint8_t *p = d->head;
    memset(m, 0, sizeof *m);
    m->type = (enum raft_message_type)d->hdr[0];
    m->server_id = d->lim.peer_id;
    switch (m->type) {
        case RAFT_APPEND_ENTRIES: {
            struct raft_append_entries *a = &m->append_entries;
            unsigned n = (unsigned)cr_get64(p + 32);
            uint64_t off = 0;
            unsigned i;
            a->version = CR_IO_V_APPEND_ENTRIES;
            a->term = cr_get64(p);
            a->prev_log_index = cr_get64(p + 8);
            a->prev_log_term = cr_get64(p + 16);
            a->leader_commit = cr_get64(p + 24);
            if (n == 0) {
                return 0;
            }
            for (i = 0; i < n; i++) {
                const uint8_t *e = p + 40 + 16 * i;
                uint32_t len = cr_get32(e + 12);
                if (e[8] == RAFT_CHANGE &&
                    cr_conf_check(d->tail + off, len) != 0) {
                    return CR_IO_E_CONF;
                }
                off += cr_io__pad8(len);
            }
            a->entries = raft_calloc(n, sizeof *a->entries);
            if (a->entries == NULL) {
                return CR_IO_E_NOMEM;
            }
            off = 0;
            for (i = 0; i < n; i++) {
                const uint8_t *e = p + 40 + 16 * i;
                struct raft_entry *x = &a->entries[i];
                x->term = cr_get64(e);
                x->type = (enum raft_entry_type)e[8];
                x->buf.len = cr_get32(e + 12);
                x->buf.base = d->tail + off;
                x->batch = d->tail;
                off += cr_io__pad8(x->buf.len);
            }
            a->n_entries = n;
            d->tail = NULL; /* the batch is libraft's */
            return 0;
        }
        case RAFT_APPEND_ENTRIES_RESULT: {
            struct raft_append_entries_result *a = &m->append_entries_result;
            a->version = CR_IO_V_APPEND_ENTRIES_RESULT;
            a->term = cr_get64(p);
            a->rejected = cr_get64(p + 8);
            a->last_log_index = cr_get64(p + 16);
            a->features = (unsigned short)(p[24] | p[25] << 8);
            a->capacity = (unsigned short)(p[26] | p[27] << 8);
            return 0;
        }
        case RAFT_REQUEST_VOTE: {
            struct raft_request_vote *a = &m->request_vote;
            uint64_t flags = cr_get64(p + 32);
            a->version = CR_IO_V_REQUEST_VOTE;
            a->term = cr_get64(p);
            a->candidate_id = cr_get64(p + 8);
            a->last_log_index = cr_get64(p + 16);
            a->last_log_term = cr_get64(p + 24);
            a->disrupt_leader = (flags & 1) != 0;
            a->pre_vote = (flags & 2) != 0;
            return 0;
        }
        case RAFT_REQUEST_VOTE_RESULT: {
            struct raft_request_vote_result *a = &m->request_vote_result;
            uint64_t flags = cr_get64(p + 8);
            a->version = CR_IO_V_REQUEST_VOTE_RESULT;
            a->term = cr_get64(p);
            a->vote_granted = (flags & 1) != 0;
            a->pre_vote = (flags & 2) != 0;
            a->features = (unsigned short)(p[16] | p[17] << 8);
            a->capacity = (unsigned short)(p[18] | p[19] << 8);
            return 0;
        }
        case RAFT_INSTALL_SNAPSHOT: {
            struct raft_install_snapshot *a = &m->install_snapshot;
            struct raft_buffer conf;
            a->version = CR_IO_V_INSTALL_SNAPSHOT;
            a->term = cr_get64(p);
            a->last_index = cr_get64(p + 8);
            a->last_term = cr_get64(p + 16);
            a->conf_index = cr_get64(p + 24);
            conf.base = (void *)(p + 40);
            conf.len = (size_t)cr_get64(p + 32);
            if (raft_configuration_decode(&conf, &a->conf) != 0) {
                return CR_IO_E_CONF;
            }
            if (d->tail == NULL) { /* an empty snapshot */
                d->tail = raft_malloc(8);
                if (d->tail == NULL) {
                    raft_configuration_close(&a->conf);
                    return CR_IO_E_NOMEM;
                }
            }
            a->data.base = d->tail;
            a->data.len = (size_t)d->tail_len;
            d->tail = NULL; /* libraft's */
            return 0;
        }
        case RAFT_TIMEOUT_NOW:
            m->timeout_now.version = CR_IO_V_TIMEOUT_NOW;
            m->timeout_now.term = cr_get64(p);
            m->timeout_now.last_log_index = cr_get64(p + 8);
            m->timeout_now.last_log_term = cr_get64(p + 16);
            return 0;
        default:
            return CR_IO_E_TYPE;
    }
}

/* Feed bytes. Returns 1 with *m filled once a frame is whole (then
 * *used < len may be; feed the rest again), 0 when all len bytes were
 * taken and more are needed, or a refusal reason (negative: -reason; the
 * decoder is then dead and holds nothing). */
static inline int cr_io_dec_feed(struct cr_io_dec *d, const uint8_t *buf,
                                 size_t len, size_t *used,
                                 struct raft_message *m)
{
    size_t off = 0;
    int r;
    if (d->reason != 0) {
        *used = 0;
        return -d->reason;
    }
    while (off < len) {
        size_t take;
        if (d->hdr_have < CR_IO_HEADER) {
            take = CR_IO_HEADER - d->hdr_have;
            take = take < len - off ? take : len - off;
            memcpy(d->hdr + d->hdr_have, buf + off, take);
            d->hdr_have += take;
            off += take;
            if (d->hdr_have < CR_IO_HEADER) {
                break;
            }
            r = cr_io__header(d);
            if (r != 0) {
                goto refuse;
            }
            continue;
        }
        if (d->head_have < d->head_len) {
            take = d->head_len - d->head_have;
            take = take < len - off ? take : len - off;
            memcpy(d->head + d->head_have, buf + off, take);
            d->head_have += take;
            off += take;
            if (d->head_have < d->head_len) {
                break;
            }
            r = cr_io__head(d);
            if (r != 0) {
                goto refuse;
            }
            if (d->tail_len > 0) {
                d->tail = raft_malloc((size_t)d->tail_len);
                if (d->tail == NULL) {
                    r = CR_IO_E_NOMEM;
                    goto refuse;
                }
            }
        }
        if (d->tail_have < d->tail_len) {
            uint64_t want = d->tail_len - d->tail_have;
            take = want < len - off ? (size_t)want : len - off;
            memcpy(d->tail + d->tail_have, buf + off, take);
            d->tail_have += take;
            off += take;
            if (d->tail_have < d->tail_len) {
                break;
            }
        }
        break; /* the frame is whole */
    }
    *used = off;
    if (d->hdr_have < CR_IO_HEADER || d->head_have < d->head_len ||
        d->tail_have < d->tail_len) {
        return 0;
    }
    r = cr_io__message(d, m);
    if (r != 0) {
        goto refuse;
    }
    cr_io_dec_reset(d);
    return 1;

refuse:
    cr_io_dec_reset(d);
    d->reason = r;
    *used = off;
    return -r;
}

/* Free a message the decoder produced that libraft did not take. */
static inline void cr_io_message_free(struct raft_message *m)
{
    switch (m->type) {
        case RAFT_APPEND_ENTRIES:
            if (m->append_entries.entries != NULL) {
                raft_free(m->append_entries.entries[0].batch);
                raft_free(m->append_entries.entries);
            }
            break;
        case RAFT_INSTALL_SNAPSHOT:
            raft_configuration_close(&m->install_snapshot.conf);
            raft_free(m->install_snapshot.data.base);
            break;
        default:
            break;
    }
}

#endif
