/* Unit tests for canonical_raft/core/firewall.h.
 *
 * The encoders below write messages as an honest libraft 0.22.1 peer does
 * (written from a reading of cowsql/raft v0.22.1 src/uv_encoding.c,
 * uv_tcp_connect.c, configuration.c; no code copied).  Each honest message must
 * pass whole, split at every byte, and byte by byte; each check has its
 * negative cases; random garbage and mutated messages must never crash
 * (build with -fsanitize=address,undefined).
 *
 *   cc -O1 -g -Wall -Werror -fsanitize=address,undefined \
 *      -I canonical_raft/core tests/c/firewall_test.c -o firewall_test
 *   ./firewall_test [capture-file ...]
 *
 * Extra arguments are captured inbound streams (handshake + messages, as a
 * libraft node received them): each must pass whole and in random chunks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "firewall.h"

static int n_cases; /* streams checked with expect_pass / expect_drop */

#define CHECK_REASON(got, want)                                             \
    do {                                                                    \
        int g_ = (int)(got), w_ = (int)(want);                              \
        if (g_ == w_) {                                                     \
            n_passed++;                                                     \
        } else {                                                            \
            n_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d [%s]: reason %s, want %s\n",        \
                    __FILE__, __LINE__, current, fw_reason_name(g_),        \
                    fw_reason_name(w_));                                    \
        }                                                                   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* A growable byte buffer and little-endian writers                          */

struct buf
{
    uint8_t *d;
    size_t n, cap;
};

static void b_reserve(struct buf *b, size_t more)
{
    if (b->n + more > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + more) {
            cap *= 2;
        }
        b->d = realloc(b->d, cap);
        if (b->d == NULL) {
            abort();
        }
        b->cap = cap;
    }
}
static void b_free(struct buf *b)
{
    free(b->d);
    b->d = NULL;
    b->n = b->cap = 0;
}
static void put8(struct buf *b, uint8_t v)
{
    b_reserve(b, 1);
    b->d[b->n++] = v;
}
static void put16(struct buf *b, uint16_t v)
{
    put8(b, (uint8_t)v);
    put8(b, (uint8_t)(v >> 8));
}
static void put32(struct buf *b, uint32_t v)
{
    put16(b, (uint16_t)v);
    put16(b, (uint16_t)(v >> 16));
}
static void put64(struct buf *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}
static void putbytes(struct buf *b, const void *p, size_t n)
{
    b_reserve(b, n);
    if (n) {
        memcpy(b->d + b->n, p, n);
    }
    b->n += n;
}
static void putzeros(struct buf *b, size_t n)
{
    b_reserve(b, n);
    memset(b->d + b->n, 0, n);
    b->n += n;
}
static void set64(struct buf *b, size_t off, uint64_t v)
{
    unsigned k;
    for (k = 0; k < 8; k++) {
        b->d[off + k] = (uint8_t)(v >> (8 * k));
    }
}
static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ------------------------------------------------------------------------ */
/* Encoders, as libraft 0.22.1 writes                                         */

static void enc_handshake(struct buf *b, uint64_t id, const char *address)
{
    size_t len = strlen(address) + 1;
    put64(b, FW_HANDSHAKE_PROTOCOL);
    put64(b, id);
    put64(b, pad8(len));
    putbytes(b, address, len);
    putzeros(b, pad8(len) - len);
}

static void enc_preamble(struct buf *b, uint8_t type, uint8_t version,
                         uint64_t hdr_len)
{
    put8(b, type);
    put8(b, 0);
    put8(b, version);
    put8(b, 0);
    put32(b, 0);
    put64(b, hdr_len);
}

static void enc_request_vote(struct buf *b, uint64_t term, uint64_t cand,
                             uint64_t lli, uint64_t llt, int disrupt,
                             int pre_vote)
{
    enc_preamble(b, FW_REQUEST_VOTE, 2, 40);
    put64(b, term);
    put64(b, cand);
    put64(b, lli);
    put64(b, llt);
    put64(b, (uint64_t)(disrupt ? 1 : 0) | (uint64_t)(pre_vote ? 2 : 0));
}

static void enc_request_vote_result(struct buf *b, uint64_t term, int granted,
                                    int pre_vote, uint16_t capacity)
{
    enc_preamble(b, FW_REQUEST_VOTE_RESULT, 2, 24);
    put64(b, term);
    put64(b, (uint64_t)granted);
    put8(b, pre_vote ? 1 : 0);
    put8(b, 0);
    put16(b, FW_FEATURE_CAPACITY);
    put16(b, capacity);
    put16(b, 0);
}

static void enc_append_entries_result(struct buf *b, uint64_t term,
                                      uint64_t rejected, uint64_t lli,
                                      uint16_t capacity)
{
    enc_preamble(b, FW_APPEND_ENTRIES_RESULT, 2, 32);
    put64(b, term);
    put64(b, rejected);
    put64(b, lli);
    put16(b, FW_FEATURE_CAPACITY);
    put16(b, capacity);
    put32(b, 0);
}

static void enc_timeout_now(struct buf *b, uint64_t term, uint64_t lli,
                            uint64_t llt)
{
    enc_preamble(b, FW_TIMEOUT_NOW, 0, 24);
    put64(b, term);
    put64(b, lli);
    put64(b, llt);
}

struct server
{
    uint64_t id;
    const char *address;
    uint8_t role;
};

/* configurationEncodeToBuf(): format, n, (id, address NUL, role)*, pad. */
static void enc_conf(struct buf *b, const struct server *s, size_t n)
{
    size_t start = b->n, i, len;
    put8(b, FW_CONF_FORMAT);
    put64(b, n);
    for (i = 0; i < n; i++) {
        put64(b, s[i].id);
        putbytes(b, s[i].address, strlen(s[i].address) + 1);
        put8(b, s[i].role);
    }
    len = b->n - start;
    putzeros(b, pad8(len) - len);
}

struct entry
{
    uint64_t term;
    uint8_t type;
    uint32_t len;
    const uint8_t *data; /* NULL: a pattern */
};

static void enc_append_entries(struct buf *b, uint64_t term, uint64_t pli,
                               uint64_t plt, uint64_t commit,
                               const struct entry *e, size_t n)
{
    size_t i;
    enc_preamble(b, FW_APPEND_ENTRIES, 0, 48 + 16 * n);
    put64(b, term);
    put64(b, pli);
    put64(b, plt);
    put64(b, commit);
    put64(b, n);
    for (i = 0; i < n; i++) {
        put64(b, e[i].term);
        put8(b, e[i].type);
        put8(b, 0);
        put8(b, 0);
        put8(b, 0);
        put32(b, e[i].len);
    }
    put64(b, 0);
    for (i = 0; i < n; i++) {
        if (e[i].data) {
            putbytes(b, e[i].data, e[i].len);
        } else {
            uint32_t k;
            b_reserve(b, e[i].len);
            for (k = 0; k < e[i].len; k++) {
                b->d[b->n++] = (uint8_t)(k * 7 + i);
            }
        }
    }
}

/* The InstallSnapshot preamble and header around configuration bytes conf
 * (any bytes, well formed or not); the caller appends the data_len bytes. */
static void enc_snapshot_head(struct buf *b, uint64_t term, uint64_t li,
                              uint64_t lt, uint64_t ci, const uint8_t *conf,
                              size_t conf_len, uint64_t data_len)
{
    enc_preamble(b, FW_INSTALL_SNAPSHOT, 0, 56 + conf_len);
    put64(b, term);
    put64(b, li);
    put64(b, lt);
    put64(b, ci);
    put64(b, conf_len);
    putbytes(b, conf, conf_len);
    put64(b, data_len);
    put64(b, 0);
}

static void enc_install_snapshot(struct buf *b, uint64_t term, uint64_t li,
                                 uint64_t lt, uint64_t ci,
                                 const struct server *s, size_t ns,
                                 uint64_t data_len)
{
    struct buf conf = {0};
    uint64_t k;
    enc_conf(&conf, s, ns);
    enc_snapshot_head(b, term, li, lt, ci, conf.d, conf.n, data_len);
    b_reserve(b, data_len);
    for (k = 0; k < data_len; k++) {
        b->d[b->n++] = (uint8_t)(k * 13);
    }
    b_free(&conf);
}

static const struct server three[] = {
    {1, "127.0.0.1:9001", FW_ROLE_VOTER},
    {2, "127.0.0.1:9002", FW_ROLE_VOTER},
    {3, "127.0.0.1:9003", FW_ROLE_STANDBY},
};

/* A configuration entry's payload (RAFT_CHANGE), in its own buffer. */
static struct buf conf_bytes(const struct server *s, size_t n)
{
    struct buf b = {0};
    enc_conf(&b, s, n);
    return b;
}

/* One message, by type, from its encoder's arguments in order (f[]).
 * AppendEntries carries e[0, ne); InstallSnapshot the first f[4] servers of
 * `three` and f[5] bytes of data. */
#define RV FW_REQUEST_VOTE
#define RVR FW_REQUEST_VOTE_RESULT
#define AE FW_APPEND_ENTRIES
#define AER FW_APPEND_ENTRIES_RESULT
#define IS FW_INSTALL_SNAPSHOT
#define TN FW_TIMEOUT_NOW
#define MSG(type, ...) {type, {__VA_ARGS__}, NULL, 0}
#define AE_WITH(e, ne, ...) {AE, {__VA_ARGS__}, e, ne}

struct msg
{
    uint8_t type; /* 0: none */
    uint64_t f[6];
    const struct entry *e;
    size_t ne;
};

static void enc_msg(struct buf *b, const struct msg *m)
{
    const uint64_t *f = m->f;
    switch (m->type) {
        case RV:
            enc_request_vote(b, f[0], f[1], f[2], f[3], (int)f[4], (int)f[5]);
            break;
        case RVR:
            enc_request_vote_result(b, f[0], (int)f[1], (int)f[2],
                                    (uint16_t)f[3]);
            break;
        case AE:
            enc_append_entries(b, f[0], f[1], f[2], f[3], m->e, m->ne);
            break;
        case AER:
            enc_append_entries_result(b, f[0], f[1], f[2], (uint16_t)f[3]);
            break;
        case IS:
            enc_install_snapshot(b, f[0], f[1], f[2], f[3], three,
                                 (size_t)f[4], f[5]);
            break;
        case TN:
            enc_timeout_now(b, f[0], f[1], f[2]);
            break;
        default:
            break;
    }
}

/* ------------------------------------------------------------------------ */
/* Feeding helpers                                                           */

static struct fw_limits limits;

struct outcome
{
    int reason;
    uint64_t messages;
    size_t passed; /* total bytes passed */
    int busy;
};

/* Feed s in chunks of the given sizes (cycled); 0 sizes: one chunk. */
static struct outcome feed_chunks(const uint8_t *s, size_t n, int flags,
                                  const size_t *sizes, size_t nsizes)
{
    struct fw_conn c;
    struct outcome o = {0, 0, 0, 0};
    size_t off = 0, k = 0;
    fw_conn_init(&c, &limits, flags);
    while (off < n) {
        size_t len = nsizes ? sizes[k++ % nsizes] : n;
        size_t passed = 0;
        int r;
        if (len > n - off) {
            len = n - off;
        }
        r = fw_feed(&c, s + off, len, &passed);
        o.passed += passed;
        if (r != FW_OK) {
            o.reason = r;
            if (passed > len) {
                o.reason = -1; /* impossible */
            }
            break;
        }
        if (passed != len) {
            o.reason = -2;
            break;
        }
        off += len;
    }
    o.messages = c.messages;
    o.busy = fw_busy(&c);
    return o;
}

static struct outcome feed_whole(const struct buf *b, int flags)
{
    return feed_chunks(b->d, b->n, flags, NULL, 0);
}

/* A stream fed whole, split at every byte boundary (a stride for long ones),
 * byte by byte and in a few odd chunk patterns: each time verdict `want`
 * after `messages` whole messages, never part-way.  An honest stream
 * (FW_OK) also passes every byte; a bad one is dropped while it is fed. */
static void expect_stream(const char *name, const struct buf *b, int flags,
                          int want, uint64_t messages)
{
    static const size_t one[] = {1};
    static const size_t odd3[] = {3, 5, 7};
    static const size_t odd5[] = {3, 5, 7, 11, 13};
    static const size_t big[] = {4093, 1, 8191};
    static const struct {
        const size_t *sizes;
        size_t n;
    } chunkings[] = {{one, 1}, {odd3, 3}, {odd5, 5}, {big, 3}};
    struct outcome o;
    size_t k;
    int split_ok = 1;
    n_cases++;
    current = name;
    o = feed_whole(b, flags);
    CHECK_REASON(o.reason, want);
    CHECK(o.messages == messages);
    CHECK(!o.busy);
    if (want == FW_OK) {
        CHECK(o.passed == b->n);
    }
    for (k = 1; k < b->n; k += (b->n > 4096 ? 61 : 1)) {
        size_t sizes[2];
        struct outcome s;
        sizes[0] = k;
        sizes[1] = b->n - k;
        s = feed_chunks(b->d, b->n, flags, sizes, 2);
        if (s.reason != want ||
            (want == FW_OK && (s.messages != messages || s.busy))) {
            if (split_ok) {
                fprintf(stderr, "  split at %zu: %s\n", k,
                        fw_reason_name(s.reason));
            }
            split_ok = 0;
        }
    }
    CHECK(split_ok);
    for (k = 0; k < sizeof chunkings / sizeof chunkings[0]; k++) {
        o = feed_chunks(b->d, b->n, flags, chunkings[k].sizes, chunkings[k].n);
        CHECK_REASON(o.reason, want);
        CHECK(o.messages == messages);
    }
}

/* An honest stream of `messages` whole messages. */
static void expect_pass(const char *name, const struct buf *b, int flags,
                        uint64_t messages)
{
    expect_stream(name, b, flags, FW_OK, messages);
}

/* A bad stream, dropped with `want` after `good` whole messages. */
static void expect_drop(const char *name, const struct buf *b, int flags,
                        int want, uint64_t good)
{
    expect_stream(name, b, flags, want, good);
}

/* The stream offset (bytes fed) at which a byte-by-byte feed drops. */
static size_t drop_offset(const struct buf *b, int flags)
{
    struct fw_conn c;
    size_t i, passed;
    fw_conn_init(&c, &limits, flags);
    for (i = 0; i < b->n; i++) {
        if (fw_feed(&c, b->d + i, 1, &passed) != FW_OK) {
            return i + 1;
        }
    }
    return 0;
}

/* with_handshake()'s handshake: 24 bytes + "127.0.0.1:9002" NUL padded to 16;
 * HDR: where the first message's header starts. */
#define HS 40
#define HDR (HS + 16)

static struct buf with_handshake(uint64_t id)
{
    struct buf b = {0};
    enc_handshake(&b, id, "127.0.0.1:9002");
    return b;
}

/* ------------------------------------------------------------------------ */
/* Cases: a handshake, up to two messages, one patch                         */

struct patch
{
    long at;       /* byte offset in the stream; < 0: from its end */
    uint8_t width; /* bytes, little endian (0: no patch) */
    uint64_t v;
};

struct msg_case
{
    const char *name;
    int want; /* FW_OK: passes, counting its messages */
    struct msg m[2];
    struct patch p;
    size_t drop_at; /* nonzero: a byte-by-byte feed drops at this offset */
};

static void apply(struct buf *b, struct patch p)
{
    size_t at = p.at < 0 ? b->n - (size_t)-p.at : (size_t)p.at;
    unsigned k;
    for (k = 0; k < p.width; k++) {
        b->d[at + k] = (uint8_t)(p.v >> (8 * k));
    }
}

static void run_case(const struct msg_case *k)
{
    struct buf b = with_handshake(2);
    uint64_t n = 0;
    size_t i;
    for (i = 0; i < 2; i++) {
        if (k->m[i].type != 0) {
            enc_msg(&b, &k->m[i]);
            n++;
        }
    }
    apply(&b, k->p);
    expect_stream(k->name, &b, 0, k->want, k->want == FW_OK ? n : 0);
    if (k->drop_at != 0) {
        CHECK(drop_offset(&b, 0) == k->drop_at);
    }
    b_free(&b);
}

static void run_cases(const struct msg_case *k, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        run_case(&k[i]);
    }
}
#define RUN_CASES(table) run_cases(table, sizeof table / sizeof table[0])


/* ------------------------------------------------------------------------ */
/* Honest traffic                                                            */

static void test_honest_each_type(void)
{
    struct buf cb = conf_bytes(three, 3);
    static uint8_t barrier[8];
    const struct entry cmds[] = {
        {3, FW_ENTRY_COMMAND, 24, NULL},
        {3, FW_ENTRY_BARRIER, 8, barrier},
        {3, FW_ENTRY_COMMAND, 4096, NULL},
    };
    const struct entry bootstrap[] = {
        {1, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d},
    };
    const struct entry changes[] = {
        {2, FW_ENTRY_COMMAND, 32, NULL},
        {2, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d},
        {3, FW_ENTRY_COMMAND, 40, NULL},
        {3, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d},
    };
    const struct msg_case cases[] = {
        {"handshake only", FW_OK, {{0}}, {0}, 0},
        {"request vote", FW_OK, {MSG(RV, 5, 2, 10, 4, 0, 0)}, {0}, 0},
        {"pre-vote disrupting", FW_OK, {MSG(RV, 6, 2, 10, 4, 1, 1)}, {0}, 0},
        {"request vote, empty log", FW_OK, {MSG(RV, 1, 2, 0, 0, 0, 1)}, {0}, 0},
        {"request vote results", FW_OK,
         {MSG(RVR, 5, 1, 0, 300), MSG(RVR, 0, 0, 1, 0)}, {0}, 0},
        {"heartbeat", FW_OK, {MSG(AE, 3, 7, 2, 7)}, {0}, 0},
        {"append entries", FW_OK, {AE_WITH(cmds, 3, 3, 7, 2, 7)}, {0}, 0},
        {"append entries, bootstrap configuration", FW_OK,
         {AE_WITH(bootstrap, 1, 1, 0, 0, 0)}, {0}, 0},
        {"append entries, changes in the middle and at the end", FW_OK,
         {AE_WITH(changes, 4, 4, 9, 2, 9)}, {0}, 0},
        {"append entries results", FW_OK,
         {MSG(AER, 3, 0, 10, 2000), MSG(AER, 3, 11, 10, 2000)}, {0}, 0},
        /* A stale-term rejection: libraft leaves last_log_index unset. */
        {"append entries result, garbage last_log_index", FW_OK,
         {MSG(AER, 9, 0, UINT64_MAX, 0)}, {0}, 0},
        {"install snapshot", FW_OK, {MSG(IS, 4, 100, 3, 90, 3, 5000)}, {0}, 0},
        {"install snapshot, empty data", FW_OK, {MSG(IS, 4, 100, 3, 1, 1, 0)},
         {0}, 0},
        {"timeout now", FW_OK, {MSG(TN, 4, 100, 4)}, {0}, 0},
    };
    RUN_CASES(cases);
    b_free(&cb);
}

static void test_honest_mixed_stream(void)
{
    struct buf b = with_handshake(3);
    struct buf cb = conf_bytes(three, 3);
    struct entry e[3];
    uint64_t n = 0;
    int round;
    for (round = 0; round < 20; round++) {
        uint64_t t = 2 + (uint64_t)round;
        e[0] = (struct entry){t, FW_ENTRY_COMMAND, 8 * (uint32_t)(round + 1),
                              NULL};
        e[1] = (struct entry){t, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
        e[2] = (struct entry){t, FW_ENTRY_BARRIER, 8, NULL};
        enc_append_entries(&b, t, 10, 1, 10, e, (size_t)(round % 4));
        enc_append_entries_result(&b, t, 0, 10, 5);
        enc_request_vote(&b, t, 3, 10, 1, 0, round & 1);
        enc_request_vote_result(&b, t, round & 1, round & 1, 7);
        enc_install_snapshot(&b, t, 50, 1, 40, three, 2,
                             (uint64_t)(round * 17));
        enc_timeout_now(&b, t, 50, 1);
        n += 6;
    }
    expect_pass("mixed stream of 120 messages", &b, 0, n);
    b_free(&b);
    b_free(&cb);
}

static void test_no_handshake_mode(void)
{
    struct buf b = {0};
    enc_timeout_now(&b, 4, 100, 4);
    enc_request_vote(&b, 5, 7, 10, 4, 0, 0);
    expect_pass("FW_NO_HANDSHAKE stream", &b, FW_NO_HANDSHAKE, 2);
    b_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Handshake checks                                                          */

/* A handshake with an address of `len` 'a's. */
static void expect_address(const char *name, size_t len, int want)
{
    char addr[300];
    struct buf b = {0};
    memset(addr, 'a', sizeof addr);
    addr[len] = 0;
    enc_handshake(&b, 2, addr);
    expect_stream(name, &b, 0, want, 0);
    b_free(&b);
}

static void test_handshake(void)
{
    /* with_handshake(2), one word or byte changed (offsets: protocol 0, id 8,
     * address length 16, address 24). */
    static const struct msg_case words[] = {
        {"protocol 2", FW_HS_PROTOCOL, {{0}}, {0, 8, 2}, 8},
        {"protocol 0", FW_HS_PROTOCOL, {{0}}, {0, 8, 0}, 0},
        {"protocol ~0", FW_HS_PROTOCOL, {{0}}, {0, 8, UINT64_MAX}, 0},
        {"id 0", FW_HS_ID_ZERO, {{0}}, {8, 8, 0}, 0},
        {"address length 0", FW_HS_ADDR_LEN, {{0}}, {16, 8, 0}, 0},
        {"address length 1", FW_HS_ADDR_LEN, {{0}}, {16, 8, 1}, 0},
        {"address length 15 (unpadded)", FW_HS_ADDR_LEN, {{0}}, {16, 8, 15}, 0},
        {"address length 264", FW_HS_ADDR_LEN, {{0}}, {16, 8, 264}, 0},
        {"address length ~0", FW_HS_ADDR_LEN, {{0}}, {16, 8, UINT64_MAX}, 24},
        {"address length 2^40", FW_HS_ADDR_LEN, {{0}},
         {16, 8, (uint64_t)1 << 40}, 0},
        /* Length 8 for a 14-character address: no NUL within it; found at
         * the address's last byte. */
        {"address without NUL", FW_HS_ADDR, {{0}}, {16, 8, 8}, 32},
        {"nonzero padding", FW_HS_ADDR, {{0}}, {24 + 15, 1, 'x'}, 0},
        {"empty address", FW_HS_ADDR, {{0}}, {24, 1, 0}, 0},
        {"control character in address", FW_HS_ADDR, {{0}}, {26, 1, '\n'}, 0},
        {"non-ASCII address", FW_HS_ADDR, {{0}}, {26, 1, 0xc3}, 0},
    };
    struct buf b = {0};
    struct fw_limits saved = limits;
    size_t off;

    enc_handshake(&b, 2, "x");
    expect_pass("handshake, 1-byte address", &b, 0, 0);
    b_free(&b);

    RUN_CASES(words);

    b = with_handshake(2);
    limits.expected_id = 3;
    expect_drop("id != expected", &b, 0, FW_HS_ID_MISMATCH, 0);
    limits.expected_id = 2;
    expect_pass("id == expected", &b, 0, 0);
    limits = saved;
    b_free(&b);

    b = with_handshake(2);
    set64(&b, 16, 24);
    putzeros(&b, 8);
    expect_drop("address with 8 extra bytes of padding", &b, 0, FW_HS_ADDR, 0);
    b_free(&b);

    expect_address("255-character address", 255, FW_OK);
    limits.max_address_len = 20;
    expect_address("address over max_address_len", 255, FW_HS_ADDR_LEN);
    expect_address("address at max_address_len", 19, FW_OK); /* 24 <= pad8(21) */
    /* 22 chars, length 24, over the limit of 20 */
    expect_address("address over max_address_len within padding", 22,
                   FW_HS_ADDR);
    limits = saved;

    /* Limits over the hard ceilings are clamped. */
    {
        struct fw_conn c;
        limits.max_conf_servers = 1000;
        limits.max_address_len = 100000;
        fw_conn_init(&c, &limits, 0);
        current = "limits clamped to the hard ceilings";
        CHECK(c.lim.max_conf_servers == FW_CONF_SERVERS_MAX);
        CHECK(c.lim.max_address_len == FW_ADDRESS_MAX);
        expect_address("256-character address, limit clamped to 255", 256,
                       FW_HS_ADDR_LEN);
        limits = saved;
    }

    /* After a drop, the reason sticks: feed, fw_eof, fw_expire. */
    {
        struct fw_conn c;
        size_t passed;
        put64(&b, 9);
        fw_conn_init(&c, &limits, 0);
        current = "drop reason is sticky";
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_HS_PROTOCOL);
        CHECK(fw_eof(&c) == FW_HS_PROTOCOL);
        CHECK(fw_expire(&c) == FW_HS_PROTOCOL);
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_HS_PROTOCOL && passed == 0);
        CHECK(!fw_busy(&c));
        b_free(&b);
    }

    /* The peer's address is kept for the caller. */
    {
        struct fw_conn c;
        size_t passed;
        enc_handshake(&b, 7, "node-7.example:9007");
        fw_conn_init(&c, &limits, 0);
        current = "peer id and address recorded";
        CHECK(fw_busy(&c));
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_OK);
        CHECK(c.handshake_done);
        CHECK(c.peer_id == 7);
        CHECK(strcmp(c.peer_address, "node-7.example:9007") == 0);
        CHECK(c.hs_len == b.n);
        CHECK(!fw_busy(&c));
        b_free(&b);
    }

    /* A truncated handshake: EOF says so. */
    {
        struct fw_conn c;
        size_t passed;
        enc_handshake(&b, 7, "127.0.0.1:9007");
        for (off = 0; off < b.n; off++) {
            fw_conn_init(&c, &limits, 0);
            fw_feed(&c, b.d, off, &passed);
            if (fw_eof(&c) != FW_TRUNCATED) {
                break;
            }
        }
        current = "EOF inside the handshake";
        CHECK(off == b.n);
        fw_conn_init(&c, &limits, 0);
        fw_feed(&c, b.d, b.n, &passed);
        CHECK(fw_eof(&c) == FW_OK);
        b_free(&b);
    }
}

static int only_odd(void *ctx, uint64_t id)
{
    (*(int *)ctx)++;
    return id % 2 == 1;
}

static void test_id_callback(void)
{
    struct fw_limits saved = limits;
    int calls = 0;
    limits.id_allowed = only_odd;
    limits.id_ctx = &calls;
    {
        struct buf b = {0};
        enc_handshake(&b, 3, "127.0.0.1:9003");
        expect_pass("id_allowed: yes", &b, 0, 0);
        b_free(&b);
        enc_handshake(&b, 4, "127.0.0.1:9004");
        expect_drop("id_allowed: no", &b, 0, FW_HS_ID_REFUSED, 0);
        b_free(&b);
    }
    current = "id_allowed called";
    CHECK(calls > 0);
    limits = saved;
}

/* ------------------------------------------------------------------------ */
/* Preamble checks                                                           */

/* A preamble (type, version, header length) and `zeros` bytes of header;
 * drop_at nonzero: where a byte-by-byte feed must drop. */
static void expect_preamble(const char *name, uint8_t type, uint8_t version,
                            uint64_t hdr_len, size_t zeros, int want,
                            size_t drop_at)
{
    struct buf b = with_handshake(2);
    enc_preamble(&b, type, version, hdr_len);
    putzeros(&b, zeros);
    expect_drop(name, &b, 0, want, 0);
    if (drop_at != 0) {
        CHECK(drop_offset(&b, 0) == drop_at);
    }
    b_free(&b);
}

static void test_preamble(void)
{
    uint8_t t;
    size_t i, j;

    for (t = 0; t < 12; t++) {
        if (t < 1 || t > 6) {
            expect_preamble("unknown type", t, 0, 24, 24, FW_MSG_TYPE, 0);
        }
    }
    expect_preamble("type 255", 255, 0, 24, 0, FW_MSG_TYPE, 0);

    /* Wrong versions. */
    {
        static const uint8_t bad[][2] = {
            {FW_REQUEST_VOTE, 0},           {FW_REQUEST_VOTE, 1},
            {FW_REQUEST_VOTE, 3},           {FW_REQUEST_VOTE_RESULT, 1},
            {FW_APPEND_ENTRIES, 1},         {FW_APPEND_ENTRIES_RESULT, 0},
            {FW_APPEND_ENTRIES_RESULT, 1},  {FW_INSTALL_SNAPSHOT, 2},
            {FW_TIMEOUT_NOW, 255},
        };
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            expect_preamble("wrong version", bad[i][0], bad[i][1], 40, 40,
                            FW_MSG_VERSION, 0);
        }
    }

    /* Reserved preamble bytes (1, 3..7). */
    for (i = 1; i < 8; i++) {
        struct msg_case k = {"reserved preamble byte", FW_MSG_RESERVED,
                             {MSG(TN, 4, 100, 4)}, {0, 1, 1}, 0};
        k.p.at = HS + (long)i;
        if (i != 2) {
            run_case(&k);
        }
    }

    /* Header lengths: 0, 1, one off, huge, for each fixed-size type; checked
     * at the preamble's end. */
    {
        static const struct {
            uint8_t type, version;
            uint64_t size;
        } fixed[] = {
            {FW_REQUEST_VOTE, 2, 40},
            {FW_REQUEST_VOTE_RESULT, 2, 24},
            {FW_APPEND_ENTRIES_RESULT, 2, 32},
            {FW_TIMEOUT_NOW, 0, 24},
        };
        for (i = 0; i < 4; i++) {
            const uint64_t lens[] = {0,
                                     1,
                                     fixed[i].size - 8,
                                     fixed[i].size - 1,
                                     fixed[i].size + 1,
                                     fixed[i].size + 8,
                                     32,
                                     (uint64_t)1 << 32,
                                     UINT64_MAX};
            for (j = 0; j < sizeof lens / sizeof lens[0]; j++) {
                if (lens[j] != fixed[i].size) {
                    expect_preamble("fixed header length wrong", fixed[i].type,
                                    fixed[i].version, lens[j], 64, FW_HDR_LEN,
                                    HS + 16);
                }
            }
        }
    }

    /* AppendEntries / InstallSnapshot header lengths. */
    {
        const uint64_t ae_bad[] = {0, 1, 8, 40, 47, 49, 56, 63, UINT64_MAX - 7};
        const uint64_t is_bad[] = {0, 1, 56, 64, 72, 79, 81, 84, 85};
        static const struct {
            const char *name;
            uint8_t type;
            uint64_t len;
            int want;
        } huge[] = {
            {"append entries header for 1025 entries", AE, 48 + 16 * 1025,
             FW_ENTRY_COUNT},
            {"append entries header for 2^59 entries", AE,
             48 + 16 * (((uint64_t)1 << 59) - 3), FW_ENTRY_COUNT},
            {"install snapshot header of 2^40", IS, (uint64_t)1 << 40,
             FW_CONF_LEN},
            {"install snapshot header of 2^64-8", IS, UINT64_MAX - 7,
             FW_CONF_LEN},
        };
        for (i = 0; i < sizeof ae_bad / sizeof ae_bad[0]; i++) {
            expect_preamble("append entries header length", AE, 0, ae_bad[i],
                            64, FW_HDR_LEN, 0);
        }
        for (i = 0; i < sizeof is_bad / sizeof is_bad[0]; i++) {
            expect_preamble("install snapshot header length", IS, 0, is_bad[i],
                            64, FW_HDR_LEN, 0);
        }
        for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            expect_preamble(huge[i].name, huge[i].type, 0, huge[i].len, 0,
                            huge[i].want, 0);
        }
    }

    /* A header alone over max_message_size, checked at the preamble. */
    {
        struct fw_limits saved = limits;
        struct entry e[10];
        struct msg_case k = {"header over max_message_size", FW_MSG_TOO_BIG,
                             {AE_WITH(NULL, 10, 5, 10, 4, 9)}, {0}, HS + 16};
        for (i = 0; i < 10; i++) {
            e[i] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
        }
        k.m[0].e = e; /* header 208 */
        limits.max_message_size = 200;
        run_case(&k);
        limits = saved;
    }

    /* A good message before a bad one: counted, and its bytes passed. */
    {
        struct buf b = with_handshake(2);
        struct outcome o;
        size_t good_end;
        enc_timeout_now(&b, 4, 100, 4);
        good_end = b.n;
        enc_preamble(&b, 9, 0, 24);
        expect_drop("good then bad", &b, 0, FW_MSG_TYPE, 1);
        o = feed_whole(&b, 0);
        current = "passed bytes cover the whole messages before the drop";
        CHECK(o.passed == good_end);
        b_free(&b);
    }
}

/* ------------------------------------------------------------------------ */
/* Terms and fixed headers                                                   */

static void test_terms(void)
{
    /* Each type's term and index fields (bit f: the word at HDR + 8 f). */
    static const struct {
        const char *name;
        struct msg m;
        unsigned fields;
    } ranged[] = {
        {"request vote, term/index >= 2^63", MSG(RV, 5, 2, 10, 4, 0, 0), 0xd},
        {"request vote result, term >= 2^63", MSG(RVR, 5, 1, 0, 0), 0x1},
        {"append entries, term/index >= 2^63", MSG(AE, 5, 10, 4, 9), 0xf},
        {"append entries result, term/rejected >= 2^63", MSG(AER, 5, 10, 9, 0),
         0x3},
        {"install snapshot, term/index >= 2^63", MSG(IS, 5, 10, 4, 9, 3, 16),
         0xf},
        {"timeout now, term/index >= 2^63", MSG(TN, 5, 10, 4), 0x7},
    };
    const uint64_t huge[] = {(uint64_t)1 << 63, ((uint64_t)1 << 63) + 1,
                             UINT64_MAX};
    static const struct msg_case cases[] = {
        /* The attack from issue 11: RequestVote with term 2^64-1, dropped
         * at the term field, before the rest of the header arrives. */
        {"issue 11: RequestVote term 2^64-1", FW_TERM_RANGE,
         {MSG(RV, UINT64_MAX, 2, 10, 4, 0, 0)}, {0}, HDR + 8},
        /* 2^63-1 is the largest term that passes. */
        {"request vote, term 2^63-1", FW_OK,
         {MSG(RV, ((uint64_t)1 << 63) - 1, 2, 10, 4, 0, 0)}, {0}, 0},
        /* Requests with term 0. */
        {"request vote, term 0", FW_TERM_ZERO, {MSG(RV, 0, 2, 0, 0, 0, 0)}, {0},
         0},
        {"append entries, term 0", FW_TERM_ZERO, {MSG(AE, 0, 0, 0, 0)}, {0}, 0},
        {"install snapshot, term 0", FW_TERM_ZERO,
         {MSG(IS, 0, 10, 4, 9, 3, 16)}, {0}, 0},
        {"timeout now, term 0", FW_TERM_ZERO, {MSG(TN, 0, 10, 4)}, {0}, 0},
        /* A log term above the message's term. */
        {"request vote, last_log_term > term", FW_TERM_ORDER,
         {MSG(RV, 5, 2, 10, 6, 0, 0)}, {0}, 0},
        {"append entries, prev_log_term > term", FW_TERM_ORDER,
         {MSG(AE, 5, 10, 6, 9)}, {0}, 0},
        {"install snapshot, last_term > term", FW_TERM_ORDER,
         {MSG(IS, 5, 10, 6, 9, 3, 16)}, {0}, 0},
        {"timeout now, last_log_term > term", FW_TERM_ORDER,
         {MSG(TN, 5, 10, 6)}, {0}, 0},
        /* Index and term zero together or not at all (replication.c
         * asserts). */
        {"append entries, prev index without term", FW_PREV_LOG,
         {MSG(AE, 5, 10, 0, 9)}, {0}, 0},
        {"append entries, prev term without index", FW_PREV_LOG,
         {MSG(AE, 5, 0, 3, 9)}, {0}, 0},
        {"request vote, term without index", FW_PREV_LOG,
         {MSG(RV, 5, 2, 0, 3, 0, 0)}, {0}, 0},
        {"timeout now, index without term", FW_PREV_LOG, {MSG(TN, 5, 7, 0)},
         {0}, 0},
    };
    size_t h, i;
    unsigned f;
    for (h = 0; h < 3; h++) {
        for (i = 0; i < sizeof ranged / sizeof ranged[0]; i++) {
            for (f = 0; f < 4; f++) {
                struct msg_case k = {NULL, FW_TERM_RANGE, {{0}}, {0, 8, 0}, 0};
                k.name = ranged[i].name;
                k.m[0] = ranged[i].m;
                k.p.at = HDR + 8 * (long)f;
                k.p.v = huge[h];
                if (ranged[i].fields & (1u << f)) {
                    run_case(&k);
                }
            }
        }
    }
    RUN_CASES(cases);
}

static void test_fixed_fields(void)
{
    static const struct msg rv = MSG(RV, 5, 2, 10, 4, 0, 0);
    static const struct msg rvr = MSG(RVR, 5, 1, 0, 0);
    static const struct msg aer = MSG(AER, 5, 0, 10, 0);
    const struct msg_case cases[] = {
        /* RequestVote: candidate id must be the peer's, flags only bits
         * 0-1. */
        {"request vote, candidate != peer", FW_CANDIDATE,
         {MSG(RV, 5, 3, 10, 4, 0, 0)}, {0}, 0},
        {"request vote, candidate 0", FW_CANDIDATE,
         {MSG(RV, 5, 0, 10, 4, 0, 0)}, {0}, 0},
        {"request vote, unknown flag", FW_FLAGS, {rv}, {HDR + 32, 8, 4}, 0},
        {"request vote, all flags", FW_FLAGS, {rv}, {HDR + 32, 8, UINT64_MAX},
         0},
        /* RequestVoteResult: vote_granted a bool, flags/unused/features. */
        {"request vote result, vote_granted 2", FW_FLAGS, {rvr},
         {HDR + 8, 8, 2}, 0},
        {"request vote result, flags 2", FW_FLAGS, {rvr}, {HDR + 16, 1, 2}, 0},
        {"request vote result, unused byte", FW_FLAGS, {rvr}, {HDR + 17, 1, 1},
         0},
        {"request vote result, unknown feature", FW_FLAGS, {rvr},
         {HDR + 18, 1, 2}, 0},
        {"request vote result, unused u16", FW_FLAGS, {rvr}, {HDR + 23, 1, 1},
         0},
        /* AppendEntriesResult: features and unused. */
        {"append entries result, unknown feature", FW_FLAGS, {aer},
         {HDR + 24, 1, 3}, 0},
        {"append entries result, unused", FW_FLAGS, {aer}, {HDR + 31, 1, 1}, 0},
        /* AppendEntries / InstallSnapshot trailing unused word. */
        {"append entries, unused word", FW_FLAGS, {MSG(AE, 5, 10, 4, 9)},
         {HDR + 40, 8, 1}, 0},
        {"install snapshot, unused word", FW_FLAGS,
         {MSG(IS, 5, 10, 4, 9, 1, 0)}, {-8, 8, 1}, 0},
    };
    struct buf b = {0};
    RUN_CASES(cases);

    enc_msg(&b, &cases[1].m[0]);
    expect_drop("request vote, candidate 0, no handshake", &b, FW_NO_HANDSHAKE,
                FW_CANDIDATE, 0);
    b_free(&b);
    {
        struct fw_conn c;
        size_t passed;
        enc_msg(&b, &cases[0].m[0]);
        fw_conn_init(&c, &limits, FW_NO_HANDSHAKE);
        fw_conn_set_peer(&c, 2);
        current = "fw_conn_set_peer: candidate checked without a handshake";
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_CANDIDATE);
        fw_conn_init(&c, &limits, FW_NO_HANDSHAKE);
        fw_conn_set_peer(&c, 3);
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_OK && c.messages == 1);
        b_free(&b);
    }
}

/* ------------------------------------------------------------------------ */
/* AppendEntries entries                                                     */

#define CMD(term, len) {term, FW_ENTRY_COMMAND, len, NULL}

static const struct patch no_patch = {0, 0, 0};

/* One AppendEntries (term 5, prev 10/4, commit 9) with entries e[0, n). */
static void run_entries(const char *name, int want, const struct entry *e,
                        size_t n, struct patch p, size_t drop_at)
{
    struct msg_case k = {NULL, 0, {MSG(AE, 5, 10, 4, 9)}, {0}, 0};
    k.name = name;
    k.want = want;
    k.m[0].e = e;
    k.m[0].ne = n;
    k.p = p;
    k.drop_at = drop_at;
    run_case(&k);
}

static void test_entries(void)
{
    static const struct entry two[] = {CMD(5, 8), CMD(5, 8)};
    static const struct entry decreasing[] = {CMD(5, 8), CMD(4, 8)};
    static const struct entry term0[] = {CMD(0, 8)};
    static const struct entry term1[] = {CMD(1, 8)};
    static const struct msg_case cases[] = {
        /* The attack from issue 11: a huge entry count in a short header,
         * dropped at its field. */
        {"issue 11: entry count 2^40 in a 48-byte header", FW_ENTRY_COUNT,
         {MSG(AE, 5, 10, 4, 9)}, {HDR + 32, 8, (uint64_t)1 << 40}, HDR + 40},
        {"entry count 2^64-1", FW_ENTRY_COUNT, {MSG(AE, 5, 10, 4, 9)},
         {HDR + 32, 8, UINT64_MAX}, 0},
        /* (unsigned) truncates */
        {"entry count 2^32+1", FW_ENTRY_COUNT, {MSG(AE, 5, 10, 4, 9)},
         {HDR + 32, 8, ((uint64_t)1 << 32) + 1}, 0},
        {"entry count 1 in a 0-entry header", FW_ENTRY_COUNT,
         {MSG(AE, 5, 10, 4, 9)}, {HDR + 32, 8, 1}, 0},
        {"entry count 1 in a 2-entry header", FW_ENTRY_COUNT,
         {AE_WITH(two, 2, 5, 10, 4, 9)}, {HDR + 32, 8, 1}, 0},
        {"entry count 3 in a 2-entry header", FW_ENTRY_COUNT,
         {AE_WITH(two, 2, 5, 10, 4, 9)}, {HDR + 32, 8, 3}, 0},
        {"entry count 0 in a 2-entry header", FW_ENTRY_COUNT,
         {AE_WITH(two, 2, 5, 10, 4, 9)}, {HDR + 32, 8, 0}, 0},
        {"entry terms decreasing", FW_ENTRY_TERM,
         {AE_WITH(decreasing, 2, 5, 10, 4, 9)}, {0}, 0},
        /* From the start of the log (prev 0/0): term 0 is the only bad
         * one. */
        {"entry term 0 at index 1", FW_ENTRY_TERM,
         {AE_WITH(term0, 1, 5, 0, 0, 0)}, {0}, 0},
        {"entry term 1 at index 1", FW_OK, {AE_WITH(term1, 1, 5, 0, 0, 0)}, {0},
         0},
    };
    struct entry e[40];
    size_t i;

    RUN_CASES(cases);

    /* Over max_entries, header consistent. */
    {
        struct fw_limits saved = limits;
        for (i = 0; i < 40; i++) {
            e[i] = (struct entry)CMD(5, 8);
        }
        limits.max_entries = 32;
        run_entries("32 entries, max 32", FW_OK, e, 32, no_patch, 0);
        run_entries("33 entries, max 32", FW_ENTRY_COUNT, e, 33, no_patch, 0);
        limits = saved;
    }

    /* Entry types. */
    {
        const uint8_t bad_types[] = {0, 4, 5, 255};
        for (i = 0; i < sizeof bad_types; i++) {
            e[0] = (struct entry){5, bad_types[i], 8, NULL};
            run_entries("entry type", FW_ENTRY_TYPE, e, 1, no_patch, 0);
        }
    }
    /* Unused descriptor bytes. */
    e[0] = (struct entry)CMD(5, 8);
    for (i = 1; i < 4; i++) {
        struct patch p = {HDR + 40 + 8, 1, 1};
        p.at += (long)i;
        run_entries("entry descriptor unused byte", FW_FLAGS, e, 1, p, 0);
    }

    /* Entry terms. */
    {
        const uint64_t bad_terms[] = {0, 6, 3, (uint64_t)1 << 63, UINT64_MAX};
        const int want[] = {FW_ENTRY_TERM, FW_ENTRY_TERM, FW_ENTRY_TERM,
                            FW_TERM_RANGE, FW_TERM_RANGE};
        for (i = 0; i < 5; i++) {
            e[0] = (struct entry)CMD(bad_terms[i], 8);
            run_entries("entry term (0, > term, < prev_log_term, huge)",
                        want[i], e, 1, no_patch, 0);
        }
    }

    /* Entry lengths: 0, 1, 7, 9 (libraft would step 16 on a 9-byte entry):
     * the first descriptor's length patched, the bytes kept. */
    {
        const uint32_t bad_len[] = {0, 1, 7, 9, 4095, UINT32_MAX};
        e[0] = (struct entry)CMD(5, 16);
        e[1] = (struct entry)CMD(5, 8);
        for (i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
            struct patch p = {HDR + 40 + 12, 4, 0};
            p.v = bad_len[i];
            run_entries("entry length", FW_ENTRY_LEN, e, 2, p, 0);
        }
    }

    /* Payload over max_message_size: checked in the header. */
    {
        struct fw_limits saved = limits;
        limits.max_message_size = 1024;
        e[0] = (struct entry)CMD(5, 512);
        e[1] = (struct entry)CMD(5, 512);
        run_entries("append entries over max_message_size",
                    FW_PAYLOAD_TOO_BIG, e, 2, no_patch, HDR + 40 + 32);
        e[0] = (struct entry)CMD(5, 1024 - 16 - 64 + 8);
        run_entries("append entries just over max_message_size",
                    FW_PAYLOAD_TOO_BIG, e, 1, no_patch, 0);
        e[0] = (struct entry)CMD(5, 1024 - 16 - 64);
        run_entries("append entries exactly max_message_size", FW_OK, e, 1,
                    no_patch, 0);
        limits = saved;
    }

    /* A truncated payload: EOF mid-message; busy while it is part-way. */
    {
        struct fw_conn c;
        size_t passed;
        struct buf b = with_handshake(2);
        e[0] = (struct entry)CMD(5, 64);
        enc_append_entries(&b, 5, 10, 4, 9, e, 1);
        fw_conn_init(&c, &limits, 0);
        current = "busy while a message is part-way, EOF truncated";
        CHECK(fw_feed(&c, b.d, b.n - 1, &passed) == FW_OK);
        CHECK(fw_busy(&c));
        CHECK(c.messages == 0);
        CHECK(fw_feed(&c, b.d + b.n - 1, 1, &passed) == FW_OK);
        CHECK(!fw_busy(&c));
        CHECK(c.messages == 1);
        CHECK(c.last_type == FW_APPEND_ENTRIES);
        fw_conn_init(&c, &limits, 0);
        fw_feed(&c, b.d, b.n - 1, &passed);
        CHECK(fw_eof(&c) == FW_TRUNCATED);
        CHECK(fw_feed(&c, b.d, 1, &passed) == FW_TRUNCATED && passed == 0);
        fw_conn_init(&c, &limits, 0);
        fw_feed(&c, b.d, 40, &passed);
        CHECK(fw_expire(&c) == FW_IDLE);
        CHECK(fw_feed(&c, b.d + 40, 1, &passed) == FW_IDLE && passed == 0);
        b_free(&b);
    }
}

/* ------------------------------------------------------------------------ */
/* Configurations                                                            */

/* InstallSnapshot (term 5, last 100/lt, conf_index 90) around configuration
 * bytes conf, with 8 bytes of zero data. */
static void enc_snapshot_conf(struct buf *b, uint64_t lt, const uint8_t *conf,
                              size_t len)
{
    enc_snapshot_head(b, 5, 100, lt, 90, conf, len, 8);
    putzeros(b, 8);
}

/* A configuration in an InstallSnapshot (header) and in a RAFT_CHANGE entry
 * (payload), from raw bytes: both must give the same verdict. */
static void expect_conf(const char *name, const uint8_t *conf, size_t len,
                        int want)
{
    struct buf b = with_handshake(2);
    char label[200];

    snprintf(label, sizeof label, "%s (install snapshot)", name);
    enc_snapshot_conf(&b, 4, conf, len);
    expect_stream(label, &b, 0, want, want == FW_OK);
    b_free(&b);

    /* AppendEntries: a command, then a change entry with these bytes. */
    if (len % 8 == 0 && len > 0) {
        const struct entry e[2] = {
            CMD(5, 16),
            {5, FW_ENTRY_CHANGE, (uint32_t)len, conf},
        };
        snprintf(label, sizeof label, "%s (change entry)", name);
        run_entries(label, want, e, 2, no_patch, 0);
        if (want != FW_OK) {
            /* The bad configuration is the last thing in the message: the
             * drop must come at the latest with the message's last byte. */
            b = with_handshake(2);
            enc_append_entries(&b, 5, 10, 4, 9, e, 2);
            CHECK(drop_offset(&b, 0) != 0);
            b_free(&b);
        }
    }
}

/* expect_conf() on the encoding of servers s[0, n). */
static void expect_servers(const char *name, const struct server *s, size_t n,
                           int want)
{
    struct buf c = conf_bytes(s, n);
    expect_conf(name, c.d, c.n, want);
    b_free(&c);
}

static void test_configurations(void)
{
    static const struct server dup_id[] = {
        {1, "127.0.0.1:9001", FW_ROLE_VOTER},
        {1, "127.0.0.1:9002", FW_ROLE_VOTER},
    };
    static const struct server dup_addr[] = {
        {1, "127.0.0.1:9001", FW_ROLE_VOTER},
        {2, "127.0.0.1:9001", FW_ROLE_VOTER},
    };
    static const struct server id0[] = {
        {1, "127.0.0.1:9001", FW_ROLE_VOTER},
        {0, "127.0.0.1:9002", FW_ROLE_VOTER},
    };
    static const struct server bad_role[] = {
        {1, "127.0.0.1:9001", FW_ROLE_VOTER},
        {2, "127.0.0.1:9002", 3},
    };
    static const struct server role255[] = {
        {1, "127.0.0.1:9001", 255},
    };
    static const struct server empty_addr[] = {
        {1, "127.0.0.1:9001", FW_ROLE_VOTER},
        {2, "", FW_ROLE_VOTER},
    };
    static const struct server spaced[] = {
        {1, "127.0.0.1 9001", FW_ROLE_VOTER},
    };
    static const struct server one_char[] = {
        {1, "a", FW_ROLE_SPARE},
    };
    struct server many[70];
    char addrs[70][16];
    static const struct {
        const char *name;
        const struct server *s;
        size_t n;
        int want;
    } confs[] = {
        {"three servers", three, 3, FW_OK},
        {"one server, 1-char address", one_char, 1, FW_OK},
        {"duplicate id", dup_id, 2, FW_CONF_DUP_ID},
        {"duplicate address", dup_addr, 2, FW_CONF_DUP_ADDR},
        {"server id 0", id0, 2, FW_CONF_ID},
        {"role 3 (after one good server)", bad_role, 2, FW_CONF_ROLE},
        {"role 255", role255, 1, FW_CONF_ROLE},
        {"empty address", empty_addr, 2, FW_CONF_ADDR},
        {"address with a space", spaced, 1, FW_CONF_ADDR},
    };
    /* `three`'s encoding with byte `at` (at 0: format, 1-8: count) set to v,
     * bytes from `at2` (0: none) to 8 set to v2. */
    static const struct {
        const char *name;
        size_t at;
        uint8_t v;
        size_t at2;
        uint8_t v2;
        int want;
    } bytes[] = {
        {"format 2", 0, 2, 0, 0, FW_CONF_FORMAT_BAD},
        {"format 0", 0, 0, 0, 0, FW_CONF_FORMAT_BAD},
        {"count 0", 1, 0, 0, 0, FW_CONF_COUNT},
        {"count 4 for 3 servers", 1, 4, 0, 0, FW_CONF_LEN},
        {"count 8 for 3 servers", 1, 8, 0, 0, FW_CONF_COUNT}, /* 8 x 11 > 79 */
        {"count 2 for 3 servers", 1, 2, 0, 0, FW_CONF_TRAILER},
        {"count huge", 1, 0xff, 8, 0xff, FW_CONF_COUNT},
    };
    struct buf c = {0};
    size_t i;

    for (i = 0; i < sizeof confs / sizeof confs[0]; i++) {
        expect_servers(confs[i].name, confs[i].s, confs[i].n, confs[i].want);
    }
    c = conf_bytes(one_char, 1);
    current = "smallest configuration is 24 bytes";
    CHECK(c.n == 24);
    b_free(&c);

    for (i = 0; i < 70; i++) {
        snprintf(addrs[i], sizeof addrs[i], "10.0.0.%zu:9000", i);
        many[i] = (struct server){i + 1, addrs[i], (uint8_t)(i % 3)};
    }
    expect_servers("64 servers", many, 64, FW_OK);
    expect_servers("65 servers", many, 65, FW_CONF_COUNT);

    for (i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        c = conf_bytes(three, 3);
        c.d[bytes[i].at] = bytes[i].v;
        if (bytes[i].at2 != 0) {
            c.d[bytes[i].at2] = bytes[i].v2;
        }
        expect_conf(bytes[i].name, c.d, c.n, bytes[i].want);
        b_free(&c);
    }
    c = conf_bytes(three, 3);
    c.d[c.n - 1] = 9;
    expect_conf("nonzero padding", c.d, c.n, FW_CONF_TRAILER);
    /* Padding of 8 or more: configuration length larger than its content. */
    c.d[c.n - 1] = 0;
    putzeros(&c, 8);
    expect_conf("8 extra bytes of padding", c.d, c.n, FW_CONF_TRAILER);
    /* Configuration cut short: length smaller than its content. */
    expect_conf("configuration cut 8 bytes short", c.d, c.n - 16, FW_CONF_LEN);
    expect_conf("configuration cut 16 bytes short", c.d, c.n - 24,
                FW_CONF_ADDR);
    b_free(&c);

    /* The address without a NUL: a configuration whose last address runs to
     * its end. */
    {
        uint8_t raw[32];
        memset(raw, 'a', sizeof raw);
        raw[0] = 1;
        memset(raw + 1, 0, 8);
        raw[1] = 1;
        memset(raw + 9, 0, 8);
        raw[9] = 7; /* id 7, then 15 bytes of 'a' with no NUL */
        expect_conf("address without NUL", raw, 32, FW_CONF_ADDR);
        raw[31] = 0; /* NUL as the last byte: no room for the role */
        expect_conf("no room for the role", raw, 32, FW_CONF_LEN);
    }
    /* Address over max_address_len. */
    {
        struct fw_limits saved = limits;
        static const struct server longer[] = {
            {1, "127.0.0.1:9001", FW_ROLE_VOTER},
            {2, "127.0.0.1:19002", FW_ROLE_VOTER},
        };
        limits.max_address_len = 14; /* the handshake's address fits */
        expect_servers("address over max_address_len", longer, 2,
                       FW_CONF_ADDR);
        limits = saved;
    }

    /* The attack from issue 11: InstallSnapshot with a configuration length
     * over what the header holds (libraft would read past the header),
     * dropped at its field. */
    {
        const uint64_t lens[] = {0, 8, 16, 32, 64, 4096, (uint64_t)1 << 32,
                                 UINT64_MAX};
        for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            struct msg_case k = {"issue 11: configuration length != header",
                                 FW_CONF_LEN, {MSG(IS, 5, 100, 4, 90, 3, 16)},
                                 {HDR + 32, 8, 0}, HDR + 40};
            k.p.v = lens[i];
            run_case(&k);
        }
    }
    /* Snapshot metadata and data length. */
    {
        static const struct msg_case cases[] = {
            {"snapshot last_index 0", FW_SNAPSHOT_META,
             {MSG(IS, 5, 0, 4, 0, 3, 16)}, {0}, 0},
            {"snapshot last_term 0", FW_SNAPSHOT_META,
             {MSG(IS, 5, 100, 0, 90, 3, 16)}, {0}, 0},
            {"snapshot conf_index > last_index", FW_SNAPSHOT_META,
             {MSG(IS, 5, 100, 4, 101, 3, 16)}, {0}, 0},
            {"snapshot conf_index 0", FW_SNAPSHOT_META,
             {MSG(IS, 5, 100, 4, 0, 3, 16)}, {0}, 0},
            {"snapshot data length 2^64-1", FW_PAYLOAD_TOO_BIG,
             {MSG(IS, 5, 100, 4, 90, 3, 16)}, {-32, 8, UINT64_MAX}, 0},
            {"snapshot data length 2^40", FW_PAYLOAD_TOO_BIG,
             {MSG(IS, 5, 100, 4, 90, 3, 16)}, {-32, 8, (uint64_t)1 << 40}, 0},
        };
        const struct msg_case big = {"snapshot over max_message_size",
                                     FW_PAYLOAD_TOO_BIG,
                                     {MSG(IS, 5, 100, 4, 90, 3, 4096)}, {0}, 0};
        struct fw_limits saved = limits;
        RUN_CASES(cases);
        limits.max_message_size = 4096;
        run_case(&big);
        limits = saved;
    }
    /* More change entries than the parser tracks. */
    {
        struct buf cb = conf_bytes(three, 3);
        struct entry e[FW_CHANGES_MAX + 1];
        for (i = 0; i < FW_CHANGES_MAX + 1; i++) {
            e[i] = (struct entry){5, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
        }
        run_entries("FW_CHANGES_MAX change entries", FW_OK, e, FW_CHANGES_MAX,
                    no_patch, 0);
        run_entries("FW_CHANGES_MAX + 1 change entries", FW_TOO_MANY_CHANGES,
                    e, FW_CHANGES_MAX + 1, no_patch, 0);
        b_free(&cb);
    }
}

/* ------------------------------------------------------------------------ */
/* The messages that crashed a real libraft 0.22.1 node (a one-node cluster of
 * this binding, one TCP stream each): all dropped, except the conflicting
 * entry, which no stateless check can see.                                   */

static void test_node_crashers(void)
{
    /* SIGSEGV: configurationDecode fails after adding server 1, frees the
     * servers; uvServerDestroy closes the configuration again. */
    static const struct server role7[] = {
        {1, "127.0.0.1:1", FW_ROLE_VOTER},
        {2, "127.0.0.1:2", 7},
    };
    static const struct server one[] = {{1, "a", FW_ROLE_VOTER}};
    static const struct entry conflicting[] = {CMD(5, 24)};
    static const struct msg_case cases[] = {
        /* SIGSEGV: entry count 2^20 in a 48-byte header. */
        {"node crasher: entry count 2^20, 48-byte header", FW_ENTRY_COUNT,
         {MSG(AE, 5, 2, 1, 2)}, {HDR + 32, 8, (uint64_t)1 << 20}, 0},
        /* SIGABRT (double free) on 0.22.1, but well formed: an entry whose
         * term conflicts with a committed one.  Passes here by design. */
        {"conflicting entry: well formed, passes (stateful)", FW_OK,
         {AE_WITH(conflicting, 1, 5, 1, 1, 2)}, {0}, 0},
    };
    struct buf b = with_handshake(2);
    struct buf conf = conf_bytes(role7, 2);
    enc_snapshot_conf(&b, 5, conf.d, conf.n);
    expect_drop("node crasher: InstallSnapshot, 2nd server's role 7", &b, 0,
                FW_CONF_ROLE, 0);
    b_free(&b);
    b_free(&conf);
    /* SIGABRT (double free): a RAFT_CHANGE entry that does not decode. */
    conf = conf_bytes(one, 1);
    conf.d[0] = 2; /* format 2 */
    {
        const struct entry e[] = {
            {5, FW_ENTRY_CHANGE, (uint32_t)conf.n, conf.d},
        };
        struct msg_case k = {"node crasher: malformed RAFT_CHANGE entry",
                             FW_CONF_FORMAT_BAD, {MSG(AE, 5, 2, 1, 2)}, {0}, 0};
        k.m[0].e = e;
        k.m[0].ne = 1;
        run_case(&k);
    }
    b_free(&conf);
    RUN_CASES(cases);
}
/* ------------------------------------------------------------------------ */
/* Robustness: mutations and garbage never crash, verdicts chunk-invariant    */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Feed in random chunks; the verdict and message count must not depend on
 * the chunking. */
static void check_invariant(const char *name, const struct buf *b, int flags)
{
    struct outcome whole = feed_whole(b, flags);
    struct outcome parts;
    size_t sizes[16];
    size_t i;
    for (i = 0; i < 16; i++) {
        sizes[i] = 1 + (size_t)(rnd() % 40);
    }
    parts = feed_chunks(b->d, b->n, flags, sizes, 16);
    current = name;
    /* (passed bytes differ by design: earlier chunks went through whole) */
    CHECK(whole.reason == parts.reason && whole.messages == parts.messages &&
          whole.passed <= b->n && parts.passed <= b->n);
}

static struct buf sample_stream(void)
{
    struct buf b = with_handshake(2);
    struct buf cb = conf_bytes(three, 3);
    struct entry e[3];
    e[0] = (struct entry){5, FW_ENTRY_COMMAND, 24, NULL};
    e[1] = (struct entry){5, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
    e[2] = (struct entry){5, FW_ENTRY_BARRIER, 8, NULL};
    enc_append_entries(&b, 5, 10, 4, 9, e, 3);
    enc_request_vote(&b, 6, 2, 13, 5, 0, 1);
    enc_request_vote_result(&b, 6, 1, 1, 9);
    enc_append_entries_result(&b, 6, 0, 13, 9);
    enc_install_snapshot(&b, 6, 100, 5, 90, three, 3, 40);
    enc_timeout_now(&b, 6, 100, 5);
    b_free(&cb);
    return b;
}

static void test_mutations(void)
{
    struct buf base = sample_stream();
    struct buf m = {0};
    size_t off;
    int round;
    const uint64_t specials[] = {0, 1, 2, 7, 8, 255, 256, 0xffffffffULL,
                                 (uint64_t)1 << 32, (uint64_t)1 << 63,
                                 UINT64_MAX};

    /* Every 8-byte word of an honest stream set to special values. */
    for (off = 0; off + 8 <= base.n; off += 8) {
        size_t s;
        for (s = 0; s < sizeof specials / sizeof specials[0]; s++) {
            m.n = 0;
            putbytes(&m, base.d, base.n);
            set64(&m, off, specials[s]);
            check_invariant("word mutation", &m, 0);
        }
    }
    /* Random byte flips, truncations, and splices. */
    for (round = 0; round < 3000; round++) {
        int k, flips = 1 + (int)(rnd() % 4);
        m.n = 0;
        putbytes(&m, base.d, base.n);
        for (k = 0; k < flips; k++) {
            m.d[rnd() % m.n] ^= (uint8_t)(1u << (rnd() % 8));
        }
        if (rnd() % 4 == 0) {
            m.n = (size_t)(rnd() % m.n);
        }
        check_invariant("random mutation", &m, 0);
    }
    b_free(&m);

    /* Every prefix of the honest stream passes (it may end part-way). */
    {
        int ok = 1;
        for (off = 0; off <= base.n; off++) {
            struct outcome o = feed_chunks(base.d, off, 0, NULL, 0);
            if (o.reason != FW_OK) {
                ok = 0;
            }
        }
        current = "every prefix of an honest stream passes";
        CHECK(ok);
    }
    b_free(&base);
}

static void test_garbage(void)
{
    struct buf g = {0};
    int round;
    for (round = 0; round < 2000; round++) {
        size_t n = (size_t)(rnd() % 600), i;
        g.n = 0;
        b_reserve(&g, n);
        for (i = 0; i < n; i++) {
            g.d[i] = (uint8_t)rnd();
        }
        g.n = n;
        /* Random bytes, and random bytes after a valid handshake and after
         * a valid preamble of each type. */
        check_invariant("garbage", &g, 0);
        check_invariant("garbage, no handshake", &g, FW_NO_HANDSHAKE);
        if (n > 16) {
            g.d[0] = (uint8_t)(1 + rnd() % 6);
            g.d[1] = 0;
            g.d[2] = (uint8_t)(rnd() % 3);
            memset(g.d + 3, 0, 5);
            check_invariant("garbage after a plausible preamble", &g,
                            FW_NO_HANDSHAKE);
        }
    }
    b_free(&g);
    current = "reason names";
    CHECK(strcmp(fw_reason_name(FW_OK), "ok") == 0);
    CHECK(strcmp(fw_reason_name(FW_TERM_RANGE), "term_range") == 0);
    CHECK(strcmp(fw_reason_name(-1), "unknown") == 0);
    CHECK(strcmp(fw_reason_name(FW_REASON_COUNT), "unknown") == 0);
    {
        int i, distinct = 1;
        for (i = 0; i < FW_REASON_COUNT; i++) {
            int j;
            for (j = 0; j < i; j++) {
                if (strcmp(fw_reason_name(i), fw_reason_name(j)) == 0) {
                    distinct = 0;
                }
            }
        }
        CHECK(distinct);
    }
}

/* ------------------------------------------------------------------------ */
/* Captured real traffic                                                     */

static void test_capture(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b = {0};
    uint8_t chunk[4096];
    size_t n;
    struct outcome o;
    static const size_t odd[] = {1, 7, 100, 3, 4096, 13};
    current = path;
    if (f == NULL) {
        CHECK(!"capture file readable");
        return;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        putbytes(&b, chunk, n);
    }
    fclose(f);
    o = feed_whole(&b, 0);
    CHECK_REASON(o.reason, FW_OK);
    if (o.reason != FW_OK) {
        fprintf(stderr, "  %s: dropped after %zu of %zu bytes\n", path,
                o.passed, b.n);
    }
    o = feed_chunks(b.d, b.n, 0, odd, 6);
    CHECK_REASON(o.reason, FW_OK);
    printf("capture %s: %zu bytes, %llu messages\n", path, b.n,
           (unsigned long long)o.messages);
    b_free(&b);
}

/* ------------------------------------------------------------------------ */
/* The handshake's protocol word: libraft's, forwarding, the io's            */

/* A handshake of id 2 declaring `word`, then `tail`: for a passed-through
 * protocol, bytes no libraft parser would take (they are the protocol's own
 * decoder's to check); for libraft's, one TimeoutNow. */
static struct buf with_protocol(uint64_t word, int passes)
{
    struct buf b = with_handshake(2);
    set64(&b, 0, word);
    if (passes) {
        int i;
        for (i = 0; i < 64; i++) {
            put8(&b, 0xff);
        }
    } else {
        enc_timeout_now(&b, 4, 100, 4);
    }
    return b;
}

static void test_protocols(void)
{
    /* limits.protocol, limits.forward, the word declared, what happens:
     * 1 a stream of libraft's messages, 2 passed through, 0 refused. */
    static const struct {
        uint64_t protocol;
        int forward;
        uint64_t word;
        int outcome;
        const char *name;
    } rows[] = {
        {0, 0, FW_HANDSHAKE_PROTOCOL, 1, "uv node: libraft's protocol"},
        {0, 0, FW_FORWARD_PROTOCOL, 0, "uv node: forwarding off"},
        {0, 1, FW_FORWARD_PROTOCOL, 2, "uv node: forwarding"},
        {0, 1, FW_IO_PROTOCOL, 0, "uv node: the io's protocol"},
        {FW_IO_PROTOCOL, 0, FW_IO_PROTOCOL, 2, "lmdb node: the io's protocol"},
        {FW_IO_PROTOCOL, 1, FW_HANDSHAKE_PROTOCOL, 0, "lmdb node: libraft's"},
        {FW_IO_PROTOCOL, 0, FW_FORWARD_PROTOCOL, 0, "lmdb node: forwarding off"},
        {FW_IO_PROTOCOL, 1, FW_FORWARD_PROTOCOL, 2, "lmdb node: forwarding"},
    };
    struct fw_limits saved = limits;
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct buf b = with_protocol(rows[i].word, rows[i].outcome != 1);
        limits.protocol = rows[i].protocol;
        limits.forward = rows[i].forward;
        if (rows[i].outcome == 0) {
            expect_drop(rows[i].name, &b, 0, FW_HS_PROTOCOL, 0);
        } else {
            expect_pass(rows[i].name, &b, 0, rows[i].outcome == 1 ? 1 : 0);
        }
        limits = saved;
        b_free(&b);
    }

    /* Passed through: never busy (the protocol's decoder keeps its time),
     * so a frame left part-way is not this parser's to time out. */
    {
        struct fw_conn c;
        size_t passed;
        struct buf b = with_protocol(FW_IO_PROTOCOL, 1);
        limits.protocol = FW_IO_PROTOCOL;
        fw_conn_init(&c, &limits, 0);
        current = "io stream passed through";
        CHECK(fw_feed(&c, b.d, HS + 3, &passed) == FW_OK && passed == HS + 3);
        CHECK(c.handshake_done && !c.forward && fw_passes(&c) && !fw_busy(&c));
        CHECK(fw_eof(&c) == FW_OK);
        limits = saved;
        b_free(&b);
    }

    /* A raft stream may not declare the node's own id, in either protocol;
     * a forwarding stream may (a node's own link is not libraft's). */
    {
        struct buf io = with_protocol(FW_IO_PROTOCOL, 1);
        struct buf fwd = with_protocol(FW_FORWARD_PROTOCOL, 1);
        struct buf uv = with_protocol(FW_HANDSHAKE_PROTOCOL, 0);
        limits.own_id = 2;
        limits.forward = 1;
        expect_drop("libraft's stream in our own id", &uv, 0, FW_HS_ID_REFUSED, 0);
        expect_pass("forwarding stream in our own id", &fwd, 0, 0);
        limits.protocol = FW_IO_PROTOCOL;
        expect_drop("io stream in our own id", &io, 0, FW_HS_ID_REFUSED, 0);
        limits = saved;
        b_free(&io);
        b_free(&fwd);
        b_free(&uv);
    }
}

int main(int argc, char **argv)
{
    int i;
    fw_limits_init(&limits);
    test_honest_each_type();
    test_honest_mixed_stream();
    test_no_handshake_mode();
    test_handshake();
    test_protocols();
    test_id_callback();
    test_preamble();
    test_terms();
    test_fixed_fields();
    test_entries();
    test_configurations();
    test_node_crashers();
    test_mutations();
    test_garbage();
    for (i = 1; i < argc; i++) {
        test_capture(argv[i]);
    }
    printf("%d honest/hostile streams, each fed whole, byte by byte and split "
           "at every boundary\n", n_cases);
    return check_report();
}
