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

#include "firewall.h"

static int n_passed;
static int n_failed;
static int n_cases; /* streams checked with expect_pass / expect_drop */
static const char *current = "";

#define CHECK(cond)                                                     \
    do {                                                                \
        if (cond) {                                                     \
            n_passed++;                                                 \
        } else {                                                        \
            n_failed++;                                                 \
            fprintf(stderr, "FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, \
                    current, #cond);                                    \
        }                                                               \
    } while (0)

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

static void enc_install_snapshot(struct buf *b, uint64_t term, uint64_t li,
                                 uint64_t lt, uint64_t ci,
                                 const struct server *s, size_t ns,
                                 uint64_t data_len)
{
    struct buf conf = {0};
    uint64_t k;
    enc_conf(&conf, s, ns);
    enc_preamble(b, FW_INSTALL_SNAPSHOT, 0, 56 + conf.n);
    put64(b, term);
    put64(b, li);
    put64(b, lt);
    put64(b, ci);
    put64(b, conf.n);
    putbytes(b, conf.d, conf.n);
    put64(b, data_len);
    put64(b, 0);
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

/* An honest stream: passes whole, split at every byte, byte by byte, and in
 * a few odd chunk patterns, always counting `messages` whole messages and
 * ending at a boundary. */
static void expect_pass(const char *name, const struct buf *b, int flags,
                        uint64_t messages)
{
    struct outcome o;
    size_t k;
    int split_ok = 1;
    static const size_t one[] = {1};
    static const size_t odd[] = {3, 5, 7, 11, 13};
    static const size_t big[] = {4093, 1, 8191};
    n_cases++;
    current = name;
    o = feed_whole(b, flags);
    CHECK_REASON(o.reason, FW_OK);
    CHECK(o.messages == messages);
    CHECK(o.passed == b->n);
    CHECK(!o.busy);
    /* Split at every byte boundary into two chunks (every boundary for short
     * streams; a stride for long ones). */
    for (k = 1; k < b->n; k += (b->n > 4096 ? 61 : 1)) {
        size_t sizes[2];
        struct outcome s;
        sizes[0] = k;
        sizes[1] = b->n - k;
        s = feed_chunks(b->d, b->n, flags, sizes, 2);
        if (s.reason != FW_OK || s.messages != messages || s.busy) {
            if (split_ok) {
                fprintf(stderr, "  split at %zu: %s\n", k,
                        fw_reason_name(s.reason));
            }
            split_ok = 0;
        }
    }
    CHECK(split_ok);
    o = feed_chunks(b->d, b->n, flags, one, 1);
    CHECK_REASON(o.reason, FW_OK);
    CHECK(o.messages == messages);
    o = feed_chunks(b->d, b->n, flags, odd, 5);
    CHECK_REASON(o.reason, FW_OK);
    CHECK(o.messages == messages);
    o = feed_chunks(b->d, b->n, flags, big, 3);
    CHECK_REASON(o.reason, FW_OK);
    CHECK(o.messages == messages);
}

/* A bad stream: dropped with `want`, whole and byte by byte and split at every
 * boundary, and never after its last byte (the drop happens while feeding it).
 * `good` whole messages come before the bad one in the stream. */
static void expect_drop(const char *name, const struct buf *b, int flags,
                        int want, uint64_t good)
{
    struct outcome o;
    size_t k;
    int split_ok = 1;
    static const size_t one[] = {1};
    static const size_t odd[] = {3, 5, 7};
    n_cases++;
    current = name;
    o = feed_whole(b, flags);
    CHECK_REASON(o.reason, want);
    CHECK(o.messages == good);
    CHECK(!o.busy);
    o = feed_chunks(b->d, b->n, flags, one, 1);
    CHECK_REASON(o.reason, want);
    CHECK(o.messages == good);
    o = feed_chunks(b->d, b->n, flags, odd, 3);
    CHECK_REASON(o.reason, want);
    for (k = 1; k < b->n; k += (b->n > 4096 ? 61 : 1)) {
        size_t sizes[2];
        struct outcome s;
        sizes[0] = k;
        sizes[1] = b->n - k;
        s = feed_chunks(b->d, b->n, flags, sizes, 2);
        if (s.reason != want) {
            if (split_ok) {
                fprintf(stderr, "  split at %zu: %s\n", k,
                        fw_reason_name(s.reason));
            }
            split_ok = 0;
        }
    }
    CHECK(split_ok);
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
/* Honest traffic                                                            */

static void test_honest_each_type(void)
{
    struct buf b;
    struct buf cb = conf_bytes(three, 3);
    struct entry e[4];
    static uint8_t barrier[8];

    b = with_handshake(2);
    expect_pass("handshake only", &b, 0, 0);
    b_free(&b);

    b = with_handshake(2);
    enc_request_vote(&b, 5, 2, 10, 4, 0, 0);
    expect_pass("request vote", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_request_vote(&b, 6, 2, 10, 4, 1, 1);
    expect_pass("pre-vote disrupting", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_request_vote(&b, 1, 2, 0, 0, 0, 1);
    expect_pass("request vote, empty log", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_request_vote_result(&b, 5, 1, 0, 300);
    enc_request_vote_result(&b, 0, 0, 1, 0);
    expect_pass("request vote results", &b, 0, 2);
    b_free(&b);

    b = with_handshake(2);
    enc_append_entries(&b, 3, 7, 2, 7, NULL, 0);
    expect_pass("heartbeat", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    e[0] = (struct entry){3, FW_ENTRY_COMMAND, 24, NULL};
    e[1] = (struct entry){3, FW_ENTRY_BARRIER, 8, barrier};
    e[2] = (struct entry){3, FW_ENTRY_COMMAND, 4096, NULL};
    enc_append_entries(&b, 3, 7, 2, 7, e, 3);
    expect_pass("append entries", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    e[0] = (struct entry){1, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
    enc_append_entries(&b, 1, 0, 0, 0, e, 1);
    expect_pass("append entries, bootstrap configuration", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    e[0] = (struct entry){2, FW_ENTRY_COMMAND, 32, NULL};
    e[1] = (struct entry){2, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
    e[2] = (struct entry){3, FW_ENTRY_COMMAND, 40, NULL};
    e[3] = (struct entry){3, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
    enc_append_entries(&b, 4, 9, 2, 9, e, 4);
    expect_pass("append entries, changes in the middle and at the end", &b, 0,
                1);
    b_free(&b);

    b = with_handshake(2);
    enc_append_entries_result(&b, 3, 0, 10, 2000);
    enc_append_entries_result(&b, 3, 11, 10, 2000);
    expect_pass("append entries results", &b, 0, 2);
    b_free(&b);

    b = with_handshake(2);
    /* A stale-term rejection: libraft leaves last_log_index uninitialized. */
    enc_append_entries_result(&b, 9, 0, UINT64_MAX, 0);
    expect_pass("append entries result, garbage last_log_index", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_install_snapshot(&b, 4, 100, 3, 90, three, 3, 5000);
    expect_pass("install snapshot", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_install_snapshot(&b, 4, 100, 3, 1, three, 1, 0);
    expect_pass("install snapshot, empty data", &b, 0, 1);
    b_free(&b);

    b = with_handshake(2);
    enc_timeout_now(&b, 4, 100, 4);
    expect_pass("timeout now", &b, 0, 1);
    b_free(&b);

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

static void test_handshake(void)
{
    struct buf b = {0};
    struct fw_limits saved = limits;
    size_t off;

    enc_handshake(&b, 2, "x");
    expect_pass("handshake, 1-byte address", &b, 0, 0);
    b_free(&b);

    put64(&b, 2); /* protocol 2 */
    put64(&b, 2);
    put64(&b, 16);
    putbytes(&b, "127.0.0.1:9002\0\0", 16);
    expect_drop("protocol 2", &b, 0, FW_HS_PROTOCOL, 0);
    current = "protocol checked at byte 8";
    CHECK(drop_offset(&b, 0) == 8);
    set64(&b, 0, 0);
    expect_drop("protocol 0", &b, 0, FW_HS_PROTOCOL, 0);
    set64(&b, 0, UINT64_MAX);
    expect_drop("protocol ~0", &b, 0, FW_HS_PROTOCOL, 0);
    set64(&b, 0, 1);

    set64(&b, 8, 0);
    expect_drop("id 0", &b, 0, FW_HS_ID_ZERO, 0);
    set64(&b, 8, 2);

    limits.expected_id = 3;
    expect_drop("id != expected", &b, 0, FW_HS_ID_MISMATCH, 0);
    limits.expected_id = 2;
    expect_pass("id == expected", &b, 0, 0);
    limits = saved;

    set64(&b, 16, 0);
    expect_drop("address length 0", &b, 0, FW_HS_ADDR_LEN, 0);
    set64(&b, 16, 1);
    expect_drop("address length 1", &b, 0, FW_HS_ADDR_LEN, 0);
    set64(&b, 16, 15);
    expect_drop("address length 15 (unpadded)", &b, 0, FW_HS_ADDR_LEN, 0);
    set64(&b, 16, 264);
    expect_drop("address length 264", &b, 0, FW_HS_ADDR_LEN, 0);
    set64(&b, 16, UINT64_MAX);
    expect_drop("address length ~0", &b, 0, FW_HS_ADDR_LEN, 0);
    current = "address length checked at byte 24";
    CHECK(drop_offset(&b, 0) == 24);
    set64(&b, 16, (uint64_t)1 << 40);
    expect_drop("address length 2^40", &b, 0, FW_HS_ADDR_LEN, 0);
    set64(&b, 16, 8);
    /* Length 8 for a 14-character address: no NUL within it. */
    expect_drop("address without NUL", &b, 0, FW_HS_ADDR, 0);
    current = "missing NUL found at the address's last byte";
    CHECK(drop_offset(&b, 0) == 32);
    set64(&b, 16, 24);
    b.n = 24;
    putbytes(&b, "127.0.0.1:9002\0\0", 16);
    putzeros(&b, 8);
    expect_drop("address with 8 extra bytes of padding", &b, 0, FW_HS_ADDR, 0);
    b_free(&b);

    enc_handshake(&b, 2, "127.0.0.1:9002");
    b.d[24 + 15] = 'x'; /* padding after the NUL */
    expect_drop("nonzero padding", &b, 0, FW_HS_ADDR, 0);
    b_free(&b);

    enc_handshake(&b, 2, "127.0.0.1:9002");
    b.d[24] = 0; /* empty address */
    expect_drop("empty address", &b, 0, FW_HS_ADDR, 0);
    b_free(&b);

    enc_handshake(&b, 2, "127.0.0.1:9002");
    b.d[26] = '\n';
    expect_drop("control character in address", &b, 0, FW_HS_ADDR, 0);
    b.d[26] = 0xc3;
    expect_drop("non-ASCII address", &b, 0, FW_HS_ADDR, 0);
    b_free(&b);

    {
        char addr[300];
        memset(addr, 'a', sizeof addr);
        addr[255] = 0;
        enc_handshake(&b, 2, addr);
        expect_pass("255-character address", &b, 0, 0);
        b_free(&b);
        limits.max_address_len = 20;
        enc_handshake(&b, 2, addr);
        expect_drop("address over max_address_len", &b, 0, FW_HS_ADDR_LEN, 0);
        b_free(&b);
        addr[20] = 0;
        addr[19] = 0;
        enc_handshake(&b, 2, addr); /* 19 chars: length 24 <= pad8(21) */
        expect_pass("address at max_address_len", &b, 0, 0);
        b_free(&b);
        memset(addr, 'a', sizeof addr);
        addr[22] = 0; /* 22 chars, length 24, over the limit of 20 */
        enc_handshake(&b, 2, addr);
        expect_drop("address over max_address_len within padding", &b, 0,
                    FW_HS_ADDR, 0);
        b_free(&b);
        limits = saved;
    }

    /* Limits over the hard ceilings are clamped. */
    {
        struct fw_conn c;
        limits.max_conf_servers = 1000;
        limits.max_address_len = 100000;
        fw_conn_init(&c, &limits, 0);
        current = "limits clamped to the hard ceilings";
        CHECK(c.lim.max_conf_servers == FW_CONF_SERVERS_MAX);
        CHECK(c.lim.max_address_len == FW_ADDRESS_MAX);
        {
            char addr[300];
            memset(addr, 'a', sizeof addr);
            addr[256] = 0;
            enc_handshake(&b, 2, addr);
            expect_drop("256-character address, limit clamped to 255", &b, 0,
                        FW_HS_ADDR_LEN, 0);
            b_free(&b);
        }
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
    struct buf b = {0};
    limits.id_allowed = only_odd;
    limits.id_ctx = &calls;
    enc_handshake(&b, 3, "127.0.0.1:9003");
    expect_pass("id_allowed: yes", &b, 0, 0);
    b_free(&b);
    enc_handshake(&b, 4, "127.0.0.1:9004");
    expect_drop("id_allowed: no", &b, 0, FW_HS_ID_REFUSED, 0);
    b_free(&b);
    current = "id_allowed called";
    CHECK(calls > 0);
    limits = saved;
}

/* ------------------------------------------------------------------------ */
/* Preamble checks                                                           */

static void test_preamble(void)
{
    struct buf b;
    uint8_t t;
    size_t at;

    for (t = 0; t < 12; t++) {
        if (t >= 1 && t <= 6) {
            continue;
        }
        b = with_handshake(2);
        enc_preamble(&b, t, 0, 24);
        putzeros(&b, 24);
        expect_drop("unknown type", &b, 0, FW_MSG_TYPE, 0);
        b_free(&b);
    }
    b = with_handshake(2);
    enc_preamble(&b, 255, 0, 24);
    expect_drop("type 255", &b, 0, FW_MSG_TYPE, 0);
    b_free(&b);

    /* Wrong versions. */
    {
        static const uint8_t bad[][2] = {
            {FW_REQUEST_VOTE, 0},           {FW_REQUEST_VOTE, 1},
            {FW_REQUEST_VOTE, 3},           {FW_REQUEST_VOTE_RESULT, 1},
            {FW_APPEND_ENTRIES, 1},         {FW_APPEND_ENTRIES_RESULT, 0},
            {FW_APPEND_ENTRIES_RESULT, 1},  {FW_INSTALL_SNAPSHOT, 2},
            {FW_TIMEOUT_NOW, 255},
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            b = with_handshake(2);
            enc_preamble(&b, bad[i][0], bad[i][1], 40);
            putzeros(&b, 40);
            expect_drop("wrong version", &b, 0, FW_MSG_VERSION, 0);
            b_free(&b);
        }
    }

    /* Reserved preamble bytes (1, 3..7). */
    for (at = 1; at < 8; at++) {
        if (at == 2) {
            continue;
        }
        b = with_handshake(2);
        enc_timeout_now(&b, 4, 100, 4);
        b.d[HS + at] = 1;
        expect_drop("reserved preamble byte", &b, 0, FW_MSG_RESERVED, 0);
        b_free(&b);
    }

    /* Header lengths: 0, 1, one off, huge, for each fixed-size type. */
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
        const uint64_t deltas[] = {0, 1, 8, 16, 32};
        size_t i, j;
        for (i = 0; i < 4; i++) {
            const uint64_t lens[] = {0,
                                     1,
                                     fixed[i].size - 8,
                                     fixed[i].size - 1,
                                     fixed[i].size + 1,
                                     fixed[i].size + 8,
                                     32 - 0 * deltas[0],
                                     (uint64_t)1 << 32,
                                     UINT64_MAX};
            for (j = 0; j < sizeof lens / sizeof lens[0]; j++) {
                if (lens[j] == fixed[i].size) {
                    continue;
                }
                b = with_handshake(2);
                enc_preamble(&b, fixed[i].type, fixed[i].version, lens[j]);
                putzeros(&b, 64);
                expect_drop("fixed header length wrong", &b, 0, FW_HDR_LEN, 0);
                current = "header length checked at preamble end";
                CHECK(drop_offset(&b, 0) == HS + 16);
                b_free(&b);
            }
        }
    }

    /* AppendEntries / InstallSnapshot header lengths. */
    {
        const uint64_t ae_bad[] = {0, 1, 8, 40, 47, 49, 56, 63, UINT64_MAX - 7};
        const uint64_t is_bad[] = {0, 1, 56, 64, 72, 79, 81, 84, 85};
        size_t j;
        for (j = 0; j < sizeof ae_bad / sizeof ae_bad[0]; j++) {
            b = with_handshake(2);
            enc_preamble(&b, FW_APPEND_ENTRIES, 0, ae_bad[j]);
            putzeros(&b, 64);
            expect_drop("append entries header length", &b, 0, FW_HDR_LEN, 0);
            b_free(&b);
        }
        for (j = 0; j < sizeof is_bad / sizeof is_bad[0]; j++) {
            b = with_handshake(2);
            enc_preamble(&b, FW_INSTALL_SNAPSHOT, 0, is_bad[j]);
            putzeros(&b, 64);
            expect_drop("install snapshot header length", &b, 0, FW_HDR_LEN,
                        0);
            b_free(&b);
        }
        b = with_handshake(2);
        enc_preamble(&b, FW_APPEND_ENTRIES, 0, 48 + 16 * 1025);
        expect_drop("append entries header for 1025 entries", &b, 0,
                    FW_ENTRY_COUNT, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_preamble(&b, FW_APPEND_ENTRIES, 0,
                     48 + 16 * (((uint64_t)1 << 59) - 3));
        expect_drop("append entries header for 2^59 entries", &b, 0,
                    FW_ENTRY_COUNT, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_preamble(&b, FW_INSTALL_SNAPSHOT, 0, (uint64_t)1 << 40);
        expect_drop("install snapshot header of 2^40", &b, 0, FW_CONF_LEN, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_preamble(&b, FW_INSTALL_SNAPSHOT, 0, UINT64_MAX - 7);
        expect_drop("install snapshot header of 2^64-8", &b, 0, FW_CONF_LEN, 0);
        b_free(&b);
    }

    /* A header alone over max_message_size. */
    {
        struct fw_limits saved = limits;
        struct entry e[10];
        size_t i;
        for (i = 0; i < 10; i++) {
            e[i] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
        }
        limits.max_message_size = 200;
        b = with_handshake(2);
        enc_append_entries(&b, 5, 10, 4, 9, e, 10); /* header 208 */
        expect_drop("header over max_message_size", &b, 0, FW_MSG_TOO_BIG, 0);
        current = "message size checked at the preamble";
        CHECK(drop_offset(&b, 0) == HS + 16);
        b_free(&b);
        limits = saved;
    }

    /* A good message before a bad one: counted, and its bytes passed. */
    {
        struct outcome o;
        size_t good_end;
        b = with_handshake(2);
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
    struct buf b;
    const uint64_t huge[] = {(uint64_t)1 << 63, ((uint64_t)1 << 63) + 1,
                             UINT64_MAX};
    size_t h;
    for (h = 0; h < 3; h++) {
        uint64_t v = huge[h];
        size_t f;
        /* RequestVote: term, last_log_index, last_log_term. */
        for (f = 0; f < 4; f++) {
            if (f == 1) {
                continue; /* candidate id */
            }
            b = with_handshake(2);
            enc_request_vote(&b, 5, 2, 10, 4, 0, 0);
            set64(&b, HDR + 8 * f, v);
            expect_drop("request vote, term/index >= 2^63", &b, 0,
                        FW_TERM_RANGE, 0);
            b_free(&b);
        }
        b = with_handshake(2);
        enc_request_vote_result(&b, 5, 1, 0, 0);
        set64(&b, HDR, v);
        expect_drop("request vote result, term >= 2^63", &b, 0, FW_TERM_RANGE,
                    0);
        b_free(&b);
        for (f = 0; f < 4; f++) {
            b = with_handshake(2);
            enc_append_entries(&b, 5, 10, 4, 9, NULL, 0);
            set64(&b, HDR + 8 * f, v);
            expect_drop("append entries, term/index >= 2^63", &b, 0,
                        FW_TERM_RANGE, 0);
            b_free(&b);
        }
        for (f = 0; f < 2; f++) {
            b = with_handshake(2);
            enc_append_entries_result(&b, 5, 10, 9, 0);
            set64(&b, HDR + 8 * f, v);
            expect_drop("append entries result, term/rejected >= 2^63", &b, 0,
                        FW_TERM_RANGE, 0);
            b_free(&b);
        }
        for (f = 0; f < 4; f++) {
            b = with_handshake(2);
            enc_install_snapshot(&b, 5, 10, 4, 9, three, 3, 16);
            set64(&b, HDR + 8 * f, v);
            expect_drop("install snapshot, term/index >= 2^63", &b, 0,
                        FW_TERM_RANGE, 0);
            b_free(&b);
        }
        for (f = 0; f < 3; f++) {
            b = with_handshake(2);
            enc_timeout_now(&b, 5, 10, 4);
            set64(&b, HDR + 8 * f, v);
            expect_drop("timeout now, term/index >= 2^63", &b, 0,
                        FW_TERM_RANGE, 0);
            b_free(&b);
        }
    }

    /* The attack from issue 11: RequestVote with term 2^64-1, dropped before
     * the rest of the header arrives. */
    b = with_handshake(2);
    enc_request_vote(&b, UINT64_MAX, 2, 10, 4, 0, 0);
    expect_drop("issue 11: RequestVote term 2^64-1", &b, 0, FW_TERM_RANGE, 0);
    current = "term 2^64-1 dropped at the term field";
    CHECK(drop_offset(&b, 0) == HDR + 8);
    b_free(&b);

    /* 2^63-1 is the largest term that passes. */
    b = with_handshake(2);
    enc_request_vote(&b, ((uint64_t)1 << 63) - 1, 2, 10, 4, 0, 0);
    expect_pass("request vote, term 2^63-1", &b, 0, 1);
    b_free(&b);

    /* Requests with term 0. */
    b = with_handshake(2);
    enc_request_vote(&b, 0, 2, 0, 0, 0, 0);
    expect_drop("request vote, term 0", &b, 0, FW_TERM_ZERO, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_append_entries(&b, 0, 0, 0, 0, NULL, 0);
    expect_drop("append entries, term 0", &b, 0, FW_TERM_ZERO, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_install_snapshot(&b, 0, 10, 4, 9, three, 3, 16);
    expect_drop("install snapshot, term 0", &b, 0, FW_TERM_ZERO, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_timeout_now(&b, 0, 10, 4);
    expect_drop("timeout now, term 0", &b, 0, FW_TERM_ZERO, 0);
    b_free(&b);

    /* A log term above the message's term. */
    b = with_handshake(2);
    enc_request_vote(&b, 5, 2, 10, 6, 0, 0);
    expect_drop("request vote, last_log_term > term", &b, 0, FW_TERM_ORDER, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_append_entries(&b, 5, 10, 6, 9, NULL, 0);
    expect_drop("append entries, prev_log_term > term", &b, 0, FW_TERM_ORDER,
                0);
    b_free(&b);
    b = with_handshake(2);
    enc_install_snapshot(&b, 5, 10, 6, 9, three, 3, 16);
    expect_drop("install snapshot, last_term > term", &b, 0, FW_TERM_ORDER, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_timeout_now(&b, 5, 10, 6);
    expect_drop("timeout now, last_log_term > term", &b, 0, FW_TERM_ORDER, 0);
    b_free(&b);

    /* Index and term zero together or not at all (replication.c asserts). */
    b = with_handshake(2);
    enc_append_entries(&b, 5, 10, 0, 9, NULL, 0);
    expect_drop("append entries, prev index without term", &b, 0, FW_PREV_LOG,
                0);
    b_free(&b);
    b = with_handshake(2);
    enc_append_entries(&b, 5, 0, 3, 9, NULL, 0);
    expect_drop("append entries, prev term without index", &b, 0, FW_PREV_LOG,
                0);
    b_free(&b);
    b = with_handshake(2);
    enc_request_vote(&b, 5, 2, 0, 3, 0, 0);
    expect_drop("request vote, term without index", &b, 0, FW_PREV_LOG, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_timeout_now(&b, 5, 7, 0);
    expect_drop("timeout now, index without term", &b, 0, FW_PREV_LOG, 0);
    b_free(&b);
}

static void test_fixed_fields(void)
{
    struct buf b;

    /* RequestVote: candidate id must be the peer's, flags only bits 0-1. */
    b = with_handshake(2);
    enc_request_vote(&b, 5, 3, 10, 4, 0, 0);
    expect_drop("request vote, candidate != peer", &b, 0, FW_CANDIDATE, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_request_vote(&b, 5, 0, 10, 4, 0, 0);
    expect_drop("request vote, candidate 0", &b, 0, FW_CANDIDATE, 0);
    b_free(&b);
    b = (struct buf){0};
    enc_request_vote(&b, 5, 0, 10, 4, 0, 0);
    expect_drop("request vote, candidate 0, no handshake", &b, FW_NO_HANDSHAKE,
                FW_CANDIDATE, 0);
    b_free(&b);
    {
        struct fw_conn c;
        size_t passed;
        enc_request_vote(&b, 5, 3, 10, 4, 0, 0);
        fw_conn_init(&c, &limits, FW_NO_HANDSHAKE);
        fw_conn_set_peer(&c, 2);
        current = "fw_conn_set_peer: candidate checked without a handshake";
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_CANDIDATE);
        fw_conn_init(&c, &limits, FW_NO_HANDSHAKE);
        fw_conn_set_peer(&c, 3);
        CHECK(fw_feed(&c, b.d, b.n, &passed) == FW_OK && c.messages == 1);
        b_free(&b);
    }
    b = with_handshake(2);
    enc_request_vote(&b, 5, 2, 10, 4, 0, 0);
    set64(&b, HDR + 32, 4);
    expect_drop("request vote, unknown flag", &b, 0, FW_FLAGS, 0);
    set64(&b, HDR + 32, UINT64_MAX);
    expect_drop("request vote, all flags", &b, 0, FW_FLAGS, 0);
    b_free(&b);

    /* RequestVoteResult: vote_granted a bool, flags/unused/features. */
    b = with_handshake(2);
    enc_request_vote_result(&b, 5, 1, 0, 0);
    set64(&b, HDR + 8, 2);
    expect_drop("request vote result, vote_granted 2", &b, 0, FW_FLAGS, 0);
    set64(&b, HDR + 8, 1);
    b.d[HDR + 16] = 2;
    expect_drop("request vote result, flags 2", &b, 0, FW_FLAGS, 0);
    b.d[HDR + 16] = 0;
    b.d[HDR + 17] = 1;
    expect_drop("request vote result, unused byte", &b, 0, FW_FLAGS, 0);
    b.d[HDR + 17] = 0;
    b.d[HDR + 18] = 2;
    expect_drop("request vote result, unknown feature", &b, 0, FW_FLAGS, 0);
    b.d[HDR + 18] = 1;
    b.d[HDR + 23] = 1;
    expect_drop("request vote result, unused u16", &b, 0, FW_FLAGS, 0);
    b_free(&b);

    /* AppendEntriesResult: features and unused. */
    b = with_handshake(2);
    enc_append_entries_result(&b, 5, 0, 10, 0);
    b.d[HDR + 24] = 3;
    expect_drop("append entries result, unknown feature", &b, 0, FW_FLAGS, 0);
    b.d[HDR + 24] = 1;
    b.d[HDR + 31] = 1;
    expect_drop("append entries result, unused", &b, 0, FW_FLAGS, 0);
    b_free(&b);

    /* AppendEntries / InstallSnapshot trailing unused word. */
    b = with_handshake(2);
    enc_append_entries(&b, 5, 10, 4, 9, NULL, 0);
    set64(&b, HDR + 40, 1);
    expect_drop("append entries, unused word", &b, 0, FW_FLAGS, 0);
    b_free(&b);
    b = with_handshake(2);
    enc_install_snapshot(&b, 5, 10, 4, 9, three, 1, 0);
    set64(&b, b.n - 8, 1);
    expect_drop("install snapshot, unused word", &b, 0, FW_FLAGS, 0);
    b_free(&b);
}

/* ------------------------------------------------------------------------ */
/* AppendEntries entries                                                     */

static void test_entries(void)
{
    struct buf b;
    struct entry e[3];
    size_t at;

    /* The attack from issue 11: a huge entry count in a short header. */
    b = with_handshake(2);
    enc_append_entries(&b, 5, 10, 4, 9, NULL, 0);
    set64(&b, HDR + 32, (uint64_t)1 << 40);
    expect_drop("issue 11: entry count 2^40 in a 48-byte header", &b, 0,
                FW_ENTRY_COUNT, 0);
    current = "huge entry count dropped at its field";
    CHECK(drop_offset(&b, 0) == HDR + 40);
    set64(&b, HDR + 32, UINT64_MAX);
    expect_drop("entry count 2^64-1", &b, 0, FW_ENTRY_COUNT, 0);
    set64(&b, HDR + 32, ((uint64_t)1 << 32) + 1); /* (unsigned) truncates */
    expect_drop("entry count 2^32+1", &b, 0, FW_ENTRY_COUNT, 0);
    set64(&b, HDR + 32, 1);
    expect_drop("entry count 1 in a 0-entry header", &b, 0, FW_ENTRY_COUNT, 0);
    b_free(&b);

    b = with_handshake(2);
    e[0] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
    e[1] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
    enc_append_entries(&b, 5, 10, 4, 9, e, 2);
    set64(&b, HDR + 32, 1);
    expect_drop("entry count 1 in a 2-entry header", &b, 0, FW_ENTRY_COUNT, 0);
    set64(&b, HDR + 32, 3);
    expect_drop("entry count 3 in a 2-entry header", &b, 0, FW_ENTRY_COUNT, 0);
    set64(&b, HDR + 32, 0);
    expect_drop("entry count 0 in a 2-entry header", &b, 0, FW_ENTRY_COUNT, 0);
    b_free(&b);

    /* Over max_entries, header consistent. */
    {
        struct fw_limits saved = limits;
        struct entry many[40];
        size_t i;
        for (i = 0; i < 40; i++) {
            many[i] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
        }
        limits.max_entries = 32;
        b = with_handshake(2);
        enc_append_entries(&b, 5, 10, 4, 9, many, 32);
        expect_pass("32 entries, max 32", &b, 0, 1);
        b_free(&b);
        b = with_handshake(2);
        enc_append_entries(&b, 5, 10, 4, 9, many, 33);
        expect_drop("33 entries, max 32", &b, 0, FW_ENTRY_COUNT, 0);
        b_free(&b);
        limits = saved;
    }

    /* Entry types. */
    {
        const uint8_t bad_types[] = {0, 4, 5, 255};
        size_t i;
        for (i = 0; i < sizeof bad_types; i++) {
            b = with_handshake(2);
            e[0] = (struct entry){5, bad_types[i], 8, NULL};
            enc_append_entries(&b, 5, 10, 4, 9, e, 1);
            expect_drop("entry type", &b, 0, FW_ENTRY_TYPE, 0);
            b_free(&b);
        }
    }
    /* Unused descriptor bytes. */
    for (at = 1; at < 4; at++) {
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
        enc_append_entries(&b, 5, 10, 4, 9, e, 1);
        b.d[HDR + 40 + 8 + at] = 1;
        expect_drop("entry descriptor unused byte", &b, 0, FW_FLAGS, 0);
        b_free(&b);
    }

    /* Entry terms. */
    {
        const uint64_t bad_terms[] = {0, 6, 3, (uint64_t)1 << 63, UINT64_MAX};
        const int want[] = {FW_ENTRY_TERM, FW_ENTRY_TERM, FW_ENTRY_TERM,
                            FW_TERM_RANGE, FW_TERM_RANGE};
        size_t i;
        for (i = 0; i < 5; i++) {
            b = with_handshake(2);
            e[0] = (struct entry){bad_terms[i], FW_ENTRY_COMMAND, 8, NULL};
            enc_append_entries(&b, 5, 10, 4, 9, e, 1);
            expect_drop("entry term (0, > term, < prev_log_term, huge)", &b, 0,
                        want[i], 0);
            b_free(&b);
        }
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
        e[1] = (struct entry){4, FW_ENTRY_COMMAND, 8, NULL};
        enc_append_entries(&b, 5, 10, 4, 9, e, 2);
        expect_drop("entry terms decreasing", &b, 0, FW_ENTRY_TERM, 0);
        b_free(&b);
        /* From the start of the log (prev 0/0): term 0 is the only bad one. */
        b = with_handshake(2);
        e[0] = (struct entry){0, FW_ENTRY_COMMAND, 8, NULL};
        enc_append_entries(&b, 5, 0, 0, 0, e, 1);
        expect_drop("entry term 0 at index 1", &b, 0, FW_ENTRY_TERM, 0);
        b_free(&b);
        b = with_handshake(2);
        e[0] = (struct entry){1, FW_ENTRY_COMMAND, 8, NULL};
        enc_append_entries(&b, 5, 0, 0, 0, e, 1);
        expect_pass("entry term 1 at index 1", &b, 0, 1);
        b_free(&b);
    }

    /* Entry lengths: 0, 1, 7, 9 (libraft would step 16 on a 9-byte entry). */
    {
        const uint32_t bad_len[] = {0, 1, 7, 9, 4095, UINT32_MAX};
        size_t i;
        for (i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
            b = with_handshake(2);
            e[0] = (struct entry){5, FW_ENTRY_COMMAND, 16, NULL};
            e[1] = (struct entry){5, FW_ENTRY_COMMAND, 8, NULL};
            enc_append_entries(&b, 5, 10, 4, 9, e, 2);
            /* Patch the first descriptor's length, keep the bytes. */
            b.d[HDR + 40 + 12] = (uint8_t)bad_len[i];
            b.d[HDR + 40 + 13] = (uint8_t)(bad_len[i] >> 8);
            b.d[HDR + 40 + 14] = (uint8_t)(bad_len[i] >> 16);
            b.d[HDR + 40 + 15] = (uint8_t)(bad_len[i] >> 24);
            expect_drop("entry length", &b, 0, FW_ENTRY_LEN, 0);
            b_free(&b);
        }
    }

    /* Payload over max_message_size. */
    {
        struct fw_limits saved = limits;
        limits.max_message_size = 1024;
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 512, NULL};
        e[1] = (struct entry){5, FW_ENTRY_COMMAND, 512, NULL};
        enc_append_entries(&b, 5, 10, 4, 9, e, 2);
        expect_drop("append entries over max_message_size", &b, 0,
                    FW_PAYLOAD_TOO_BIG, 0);
        current = "payload size checked in the header";
        CHECK(drop_offset(&b, 0) == HDR + 40 + 32);
        b_free(&b);
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 1024 - 16 - 64 + 8, NULL};
        enc_append_entries(&b, 5, 10, 4, 9, e, 1);
        expect_drop("append entries just over max_message_size", &b, 0,
                    FW_PAYLOAD_TOO_BIG, 0);
        b_free(&b);
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 1024 - 16 - 64, NULL};
        enc_append_entries(&b, 5, 10, 4, 9, e, 1);
        expect_pass("append entries exactly max_message_size", &b, 0, 1);
        b_free(&b);
        limits = saved;
    }

    /* A truncated payload: EOF mid-message; busy while it is part-way. */
    {
        struct fw_conn c;
        size_t passed;
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 64, NULL};
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

/* A configuration in an InstallSnapshot (header) and in a RAFT_CHANGE entry
 * (payload), from raw bytes: both must give the same verdict. */
static void expect_conf(const char *name, const uint8_t *conf, size_t len,
                        int want)
{
    struct buf b = with_handshake(2);
    struct entry e[2];
    char label[200];

    /* InstallSnapshot with these configuration bytes. */
    enc_preamble(&b, FW_INSTALL_SNAPSHOT, 0, 56 + len);
    put64(&b, 5);
    put64(&b, 100);
    put64(&b, 4);
    put64(&b, 90);
    put64(&b, len);
    putbytes(&b, conf, len);
    put64(&b, 8);
    put64(&b, 0);
    putzeros(&b, 8);
    snprintf(label, sizeof label, "%s (install snapshot)", name);
    if (want == FW_OK) {
        expect_pass(label, &b, 0, 1);
    } else {
        expect_drop(label, &b, 0, want, 0);
    }
    b_free(&b);

    /* AppendEntries: a command, then a change entry with these bytes. */
    if (len % 8 == 0 && len > 0) {
        b = with_handshake(2);
        e[0] = (struct entry){5, FW_ENTRY_COMMAND, 16, NULL};
        e[1] = (struct entry){5, FW_ENTRY_CHANGE, (uint32_t)len, conf};
        enc_append_entries(&b, 5, 10, 4, 9, e, 2);
        snprintf(label, sizeof label, "%s (change entry)", name);
        if (want == FW_OK) {
            expect_pass(label, &b, 0, 1);
        } else {
            expect_drop(label, &b, 0, want, 0);
            /* The bad configuration is the last thing in the message: the
             * drop must come at the latest with the message's last byte. */
            current = label;
            CHECK(drop_offset(&b, 0) != 0);
        }
        b_free(&b);
    }
}

static void test_configurations(void)
{
    struct buf c = {0};
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
    size_t i;

    enc_conf(&c, three, 3);
    expect_conf("three servers", c.d, c.n, FW_OK);
    b_free(&c);
    enc_conf(&c, one_char, 1);
    expect_conf("one server, 1-char address", c.d, c.n, FW_OK);
    current = "smallest configuration is 24 bytes";
    CHECK(c.n == 24);
    b_free(&c);

    for (i = 0; i < 70; i++) {
        snprintf(addrs[i], sizeof addrs[i], "10.0.0.%zu:9000", i);
        many[i] = (struct server){i + 1, addrs[i], (uint8_t)(i % 3)};
    }
    enc_conf(&c, many, 64);
    expect_conf("64 servers", c.d, c.n, FW_OK);
    b_free(&c);
    enc_conf(&c, many, 65);
    expect_conf("65 servers", c.d, c.n, FW_CONF_COUNT);
    b_free(&c);

    enc_conf(&c, dup_id, 2);
    expect_conf("duplicate id", c.d, c.n, FW_CONF_DUP_ID);
    b_free(&c);
    enc_conf(&c, dup_addr, 2);
    expect_conf("duplicate address", c.d, c.n, FW_CONF_DUP_ADDR);
    b_free(&c);
    enc_conf(&c, id0, 2);
    expect_conf("server id 0", c.d, c.n, FW_CONF_ID);
    b_free(&c);
    enc_conf(&c, bad_role, 2);
    expect_conf("role 3 (after one good server)", c.d, c.n, FW_CONF_ROLE);
    b_free(&c);
    enc_conf(&c, role255, 1);
    expect_conf("role 255", c.d, c.n, FW_CONF_ROLE);
    b_free(&c);
    enc_conf(&c, empty_addr, 2);
    expect_conf("empty address", c.d, c.n, FW_CONF_ADDR);
    b_free(&c);
    enc_conf(&c, spaced, 1);
    expect_conf("address with a space", c.d, c.n, FW_CONF_ADDR);
    b_free(&c);

    enc_conf(&c, three, 3);
    c.d[0] = 2;
    expect_conf("format 2", c.d, c.n, FW_CONF_FORMAT_BAD);
    c.d[0] = 0;
    expect_conf("format 0", c.d, c.n, FW_CONF_FORMAT_BAD);
    c.d[0] = 1;
    for (i = 1; i < 9; i++) {
        c.d[i] = 0;
    }
    expect_conf("count 0", c.d, c.n, FW_CONF_COUNT);
    c.d[1] = 4;
    expect_conf("count 4 for 3 servers", c.d, c.n, FW_CONF_LEN);
    c.d[1] = 8; /* 8 x 11 bytes cannot fit in 79 */
    expect_conf("count 8 for 3 servers", c.d, c.n, FW_CONF_COUNT);
    c.d[1] = 2;
    expect_conf("count 2 for 3 servers", c.d, c.n, FW_CONF_TRAILER);
    c.d[1] = 0xff;
    c.d[8] = 0xff;
    expect_conf("count huge", c.d, c.n, FW_CONF_COUNT);
    c.d[1] = 3;
    c.d[8] = 0;
    c.d[c.n - 1] = 9;
    expect_conf("nonzero padding", c.d, c.n, FW_CONF_TRAILER);
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
        enc_conf(&c, longer, 2);
        expect_conf("address over max_address_len", c.d, c.n, FW_CONF_ADDR);
        b_free(&c);
        limits = saved;
    }
    /* Padding of 8 or more: configuration length larger than its content. */
    {
        struct buf big = {0};
        enc_conf(&big, three, 3);
        putzeros(&big, 8);
        expect_conf("8 extra bytes of padding", big.d, big.n, FW_CONF_TRAILER);
        b_free(&big);
    }
    /* Configuration cut short: length smaller than its content. */
    {
        struct buf s = {0};
        enc_conf(&s, three, 3);
        expect_conf("configuration cut 8 bytes short", s.d, s.n - 8,
                    FW_CONF_LEN);
        expect_conf("configuration cut 16 bytes short", s.d, s.n - 16,
                    FW_CONF_ADDR);
        b_free(&s);
    }

    /* The attack from issue 11: InstallSnapshot with a configuration length
     * over what the header holds (libraft would read past the header). */
    {
        const uint64_t lens[] = {0, 8, 16, 32, 64, 4096, (uint64_t)1 << 32,
                                 UINT64_MAX};
        for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            struct buf b = with_handshake(2);
            enc_install_snapshot(&b, 5, 100, 4, 90, three, 3, 16);
            set64(&b, HDR + 32, lens[i]);
            expect_drop("issue 11: configuration length != header", &b, 0,
                        FW_CONF_LEN, 0);
            current = "configuration length dropped at its field";
            CHECK(drop_offset(&b, 0) == HDR + 40);
            b_free(&b);
        }
    }
    /* Snapshot metadata. */
    {
        struct buf b = with_handshake(2);
        enc_install_snapshot(&b, 5, 0, 4, 0, three, 3, 16);
        expect_drop("snapshot last_index 0", &b, 0, FW_SNAPSHOT_META, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_install_snapshot(&b, 5, 100, 0, 90, three, 3, 16);
        expect_drop("snapshot last_term 0", &b, 0, FW_SNAPSHOT_META, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_install_snapshot(&b, 5, 100, 4, 101, three, 3, 16);
        expect_drop("snapshot conf_index > last_index", &b, 0,
                    FW_SNAPSHOT_META, 0);
        b_free(&b);
        b = with_handshake(2);
        enc_install_snapshot(&b, 5, 100, 4, 0, three, 3, 16);
        expect_drop("snapshot conf_index 0", &b, 0, FW_SNAPSHOT_META, 0);
        b_free(&b);
    }
    /* Snapshot data length. */
    {
        struct fw_limits saved = limits;
        struct buf b = with_handshake(2);
        enc_install_snapshot(&b, 5, 100, 4, 90, three, 3, 16);
        set64(&b, b.n - 16 - 16, UINT64_MAX);
        expect_drop("snapshot data length 2^64-1", &b, 0, FW_PAYLOAD_TOO_BIG,
                    0);
        set64(&b, b.n - 16 - 16, (uint64_t)1 << 40);
        expect_drop("snapshot data length 2^40", &b, 0, FW_PAYLOAD_TOO_BIG, 0);
        b_free(&b);
        limits.max_message_size = 4096;
        b = with_handshake(2);
        enc_install_snapshot(&b, 5, 100, 4, 90, three, 3, 4096);
        expect_drop("snapshot over max_message_size", &b, 0,
                    FW_PAYLOAD_TOO_BIG, 0);
        b_free(&b);
        limits = saved;
    }
    /* More change entries than the parser tracks. */
    {
        struct buf cb = conf_bytes(three, 3);
        struct entry e[FW_CHANGES_MAX + 1];
        struct buf b;
        for (i = 0; i < FW_CHANGES_MAX + 1; i++) {
            e[i] = (struct entry){5, FW_ENTRY_CHANGE, (uint32_t)cb.n, cb.d};
        }
        b = with_handshake(2);
        enc_append_entries(&b, 5, 10, 4, 9, e, FW_CHANGES_MAX);
        expect_pass("FW_CHANGES_MAX change entries", &b, 0, 1);
        b_free(&b);
        b = with_handshake(2);
        enc_append_entries(&b, 5, 10, 4, 9, e, FW_CHANGES_MAX + 1);
        expect_drop("FW_CHANGES_MAX + 1 change entries", &b, 0,
                    FW_TOO_MANY_CHANGES, 0);
        b_free(&b);
        b_free(&cb);
    }
}

/* ------------------------------------------------------------------------ */
/* The messages that crashed a real libraft 0.22.1 node (a one-node cluster of
 * this binding, one TCP stream each): all dropped, except the conflicting
 * entry, which no stateless check can see.                                   */

static void test_node_crashers(void)
{
    struct buf b, conf = {0};
    struct entry e[1];
    /* SIGSEGV: configurationDecode fails after adding server 1, frees the
     * servers; uvServerDestroy closes the configuration again. */
    b = with_handshake(2);
    put8(&conf, 1);
    put64(&conf, 2);
    put64(&conf, 1);
    putbytes(&conf, "127.0.0.1:1", 12);
    put8(&conf, 1);
    put64(&conf, 2);
    putbytes(&conf, "127.0.0.1:2", 12);
    put8(&conf, 7);
    putzeros(&conf, pad8(conf.n) - conf.n);
    enc_preamble(&b, FW_INSTALL_SNAPSHOT, 0, 56 + conf.n);
    put64(&b, 5);
    put64(&b, 100);
    put64(&b, 5);
    put64(&b, 90);
    put64(&b, conf.n);
    putbytes(&b, conf.d, conf.n);
    put64(&b, 8);
    put64(&b, 0);
    putzeros(&b, 8);
    expect_drop("node crasher: InstallSnapshot, 2nd server's role 7", &b, 0,
                FW_CONF_ROLE, 0);
    b_free(&b);
    b_free(&conf);
    /* SIGABRT (double free): a RAFT_CHANGE entry that does not decode. */
    b = with_handshake(2);
    put8(&conf, 2); /* format 2 */
    put64(&conf, 1);
    put64(&conf, 1);
    putbytes(&conf, "a", 2);
    put8(&conf, 1);
    putzeros(&conf, pad8(conf.n) - conf.n);
    e[0] = (struct entry){5, FW_ENTRY_CHANGE, (uint32_t)conf.n, conf.d};
    enc_append_entries(&b, 5, 2, 1, 2, e, 1);
    expect_drop("node crasher: malformed RAFT_CHANGE entry", &b, 0,
                FW_CONF_FORMAT_BAD, 0);
    b_free(&b);
    b_free(&conf);
    /* SIGSEGV: entry count 2^20 in a 48-byte header. */
    b = with_handshake(2);
    enc_preamble(&b, FW_APPEND_ENTRIES, 0, 48);
    put64(&b, 5);
    put64(&b, 2);
    put64(&b, 1);
    put64(&b, 2);
    put64(&b, (uint64_t)1 << 20);
    put64(&b, 0);
    expect_drop("node crasher: entry count 2^20, 48-byte header", &b, 0,
                FW_ENTRY_COUNT, 0);
    b_free(&b);
    /* SIGABRT (double free) on 0.22.1, but well formed: an entry whose term
     * conflicts with a committed one.  Passes here by design. */
    b = with_handshake(2);
    e[0] = (struct entry){5, FW_ENTRY_COMMAND, 24, NULL};
    enc_append_entries(&b, 5, 1, 1, 2, e, 1);
    expect_pass("conflicting entry: well formed, passes (stateful)", &b, 0, 1);
    b_free(&b);
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

int main(int argc, char **argv)
{
    int i;
    fw_limits_init(&limits);
    test_honest_each_type();
    test_honest_mixed_stream();
    test_no_handshake_mode();
    test_handshake();
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
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
