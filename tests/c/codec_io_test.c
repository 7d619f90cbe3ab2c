/* Unit tests for canonical_raft/core/codec_io.h, the frames of the
 * binding's own raft_io.
 *
 *   cc -std=gnu11 -O1 -g -Wall -Werror -fsanitize=address,undefined \
 *      -I canonical_raft/core tests/c/codec_io_test.c -lraft -o codec_io_test
 *
 * Every message type round-trips whole, split at every byte and byte by
 * byte; each check of the decoder has a negative case; garbage and mutated
 * frames never crash or leak (ASan) and never yield a message that breaks
 * the rules. The last line is "N passed, M failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec_io.h"

#define PEER 2
#define MAX_MESSAGE (1u << 20)

static struct cr_io_limits limits(void)
{
    struct cr_io_limits l;
    l.max_message_size = MAX_MESSAGE;
    l.max_entries = 64;
    l.peer_id = PEER;
    return l;
}

/* A frame: header + head + the tail as the sender writes it. */
struct frame
{
    uint8_t *b;
    size_t n;
};

static struct frame encode(const struct raft_message *m)
{
    struct frame f;
    uint8_t *head;
    size_t head_len;
    uint64_t tail_len;
    size_t off;
    unsigned i;
    int rv = cr_io_encode(m, &head, &head_len, &tail_len);
    CHECK(rv == 0);
    f.n = head_len + (size_t)tail_len;
    f.b = calloc(1, f.n + 1);
    memcpy(f.b, head, head_len);
    off = head_len;
    if (m->type == RAFT_APPEND_ENTRIES) {
        for (i = 0; i < m->append_entries.n_entries; i++) {
            const struct raft_buffer *b = &m->append_entries.entries[i].buf;
            memcpy(f.b + off, b->base, b->len);
            off += (size_t)cr_io__pad8(b->len);
        }
    } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
        memcpy(f.b + off, m->install_snapshot.data.base,
               m->install_snapshot.data.len);
    }
    free(head);
    return f;
}

/* Feed f in chunks of `chunk` bytes (0: whole). Returns 1 and *out if one
 * message came out using every byte, -reason if refused, 0 if incomplete. */
static int decode(const struct frame *f, size_t chunk, struct raft_message *out)
{
    struct cr_io_dec d;
    struct cr_io_limits l = limits();
    size_t off = 0;
    int got = 0;
    cr_io_dec_init(&d, &l);
    while (off < f->n) {
        size_t len = chunk == 0 || f->n - off < chunk ? f->n - off : chunk;
        size_t used;
        int r = cr_io_dec_feed(&d, f->b + off, len, &used, out);
        if (r < 0) {
            cr_io_dec_reset(&d);
            return r;
        }
        off += used;
        if (r == 1) {
            got = 1;
            break;
        }
    }
    cr_io_dec_reset(&d);
    if (got && off != f->n) {
        cr_io_message_free(out); /* a shorter frame than the bytes */
        return 0;
    }
    return got;
}

static struct raft_message request_vote(void)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = RAFT_REQUEST_VOTE;
    m.request_vote.term = 7;
    m.request_vote.candidate_id = PEER;
    m.request_vote.last_log_index = 100;
    m.request_vote.last_log_term = 6;
    m.request_vote.pre_vote = true;
    return m;
}

static struct raft_entry entries[5];
static uint8_t payloads[5][40];

static struct raft_message append_entries(unsigned n)
{
    struct raft_message m;
    unsigned i;
    memset(&m, 0, sizeof m);
    m.type = RAFT_APPEND_ENTRIES;
    m.append_entries.term = 9;
    m.append_entries.prev_log_index = 10;
    m.append_entries.prev_log_term = 8;
    m.append_entries.leader_commit = 9;
    for (i = 0; i < n; i++) {
        size_t k;
        entries[i].term = 8 + (i > 1);
        entries[i].type = RAFT_COMMAND;
        entries[i].buf.len = 5 + 7 * i; /* not multiples of 8: padded */
        entries[i].buf.base = payloads[i];
        for (k = 0; k < sizeof payloads[i]; k++) {
            payloads[i][k] = (uint8_t)(i * 50 + k);
        }
    }
    m.append_entries.entries = n ? entries : NULL;
    m.append_entries.n_entries = n;
    return m;
}

static struct raft_configuration conf;
static uint8_t snapdata[3000];

static struct raft_message install_snapshot(size_t len)
{
    struct raft_message m;
    size_t k;
    memset(&m, 0, sizeof m);
    m.type = RAFT_INSTALL_SNAPSHOT;
    m.install_snapshot.term = 4;
    m.install_snapshot.last_index = 50;
    m.install_snapshot.last_term = 3;
    m.install_snapshot.conf_index = 1;
    m.install_snapshot.conf = conf;
    for (k = 0; k < sizeof snapdata; k++) {
        snapdata[k] = (uint8_t)(k * 13);
    }
    m.install_snapshot.data.base = snapdata;
    m.install_snapshot.data.len = len;
    return m;
}

static struct raft_message others(int type)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = type;
    switch (type) {
        case RAFT_APPEND_ENTRIES_RESULT:
            m.append_entries_result.term = 3;
            m.append_entries_result.rejected = 5;
            m.append_entries_result.last_log_index = 4;
            m.append_entries_result.features = 1;
            m.append_entries_result.capacity = 4096;
            break;
        case RAFT_REQUEST_VOTE_RESULT:
            m.request_vote_result.term = 3;
            m.request_vote_result.vote_granted = true;
            m.request_vote_result.pre_vote = true;
            m.request_vote_result.features = 1;
            m.request_vote_result.capacity = 7;
            break;
        case RAFT_TIMEOUT_NOW:
            m.timeout_now.term = 3;
            m.timeout_now.last_log_index = 30;
            m.timeout_now.last_log_term = 2;
            break;
        default:
            break;
    }
    return m;
}

static int same(const struct raft_message *a, const struct raft_message *b)
{
    unsigned i;
    if (a->type != b->type || b->server_id != PEER) {
        return 0;
    }
    switch (a->type) {
        case RAFT_REQUEST_VOTE:
            return a->request_vote.term == b->request_vote.term &&
                   a->request_vote.candidate_id ==
                       b->request_vote.candidate_id &&
                   a->request_vote.last_log_index ==
                       b->request_vote.last_log_index &&
                   a->request_vote.last_log_term ==
                       b->request_vote.last_log_term &&
                   a->request_vote.pre_vote == b->request_vote.pre_vote &&
                   a->request_vote.disrupt_leader ==
                       b->request_vote.disrupt_leader &&
                   b->request_vote.version == 2;
        case RAFT_APPEND_ENTRIES:
            if (a->append_entries.n_entries != b->append_entries.n_entries ||
                a->append_entries.term != b->append_entries.term ||
                a->append_entries.prev_log_index !=
                    b->append_entries.prev_log_index ||
                a->append_entries.prev_log_term !=
                    b->append_entries.prev_log_term ||
                a->append_entries.leader_commit !=
                    b->append_entries.leader_commit) {
                return 0;
            }
            for (i = 0; i < a->append_entries.n_entries; i++) {
                const struct raft_entry *x = &a->append_entries.entries[i];
                const struct raft_entry *y = &b->append_entries.entries[i];
                if (x->term != y->term || x->type != y->type ||
                    x->buf.len != y->buf.len ||
                    memcmp(x->buf.base, y->buf.base, x->buf.len) != 0 ||
                    y->batch != b->append_entries.entries[0].batch) {
                    return 0;
                }
            }
            return 1;
        case RAFT_INSTALL_SNAPSHOT:
            return a->install_snapshot.last_index ==
                       b->install_snapshot.last_index &&
                   a->install_snapshot.conf_index ==
                       b->install_snapshot.conf_index &&
                   b->install_snapshot.conf.n == 2 &&
                   strcmp(b->install_snapshot.conf.servers[1].address,
                          "127.0.0.1:9002") == 0 &&
                   a->install_snapshot.data.len ==
                       b->install_snapshot.data.len &&
                   memcmp(a->install_snapshot.data.base,
                          b->install_snapshot.data.base,
                          a->install_snapshot.data.len) == 0;
        case RAFT_APPEND_ENTRIES_RESULT:
            return memcmp(&a->append_entries_result.term,
                          &b->append_entries_result.term, 8) == 0 &&
                   a->append_entries_result.rejected ==
                       b->append_entries_result.rejected &&
                   a->append_entries_result.capacity ==
                       b->append_entries_result.capacity &&
                   a->append_entries_result.features ==
                       b->append_entries_result.features;
        case RAFT_REQUEST_VOTE_RESULT:
            return a->request_vote_result.term ==
                       b->request_vote_result.term &&
                   a->request_vote_result.vote_granted ==
                       b->request_vote_result.vote_granted &&
                   a->request_vote_result.pre_vote ==
                       b->request_vote_result.pre_vote &&
                   a->request_vote_result.capacity ==
                       b->request_vote_result.capacity;
        case RAFT_TIMEOUT_NOW:
            return a->timeout_now.term == b->timeout_now.term &&
                   a->timeout_now.last_log_index ==
                       b->timeout_now.last_log_index;
        default:
            return 0;
    }
}

/* m round-trips whole, at every split, and byte by byte. */
static void round_trip(const char *name, const struct raft_message *m)
{
    struct frame f = encode(m);
    struct raft_message out;
    size_t chunk;
    current = name;
    for (chunk = 0; chunk <= f.n; chunk += chunk < 40 ? 1 : 97) {
        int r = decode(&f, chunk, &out);
        CHECK(r == 1);
        if (r == 1) {
            CHECK(same(m, &out));
            cr_io_message_free(&out);
        }
    }
    free(f.b);
}

/* The frame of m with byte `at` set to v (or the 8-byte field at `at` set
 * to v with wide) must be refused with `reason`. */
static void expect_refused(const char *name, const struct raft_message *m,
                           size_t at, uint64_t v, int wide, int reason)
{
    struct frame f = encode(m);
    struct raft_message out;
    int r;
    current = name;
    if (wide == 4) {
        cr_put32(f.b + at, (uint32_t)v);
    } else if (wide) {
        cr_put64(f.b + at, v);
    } else {
        f.b[at] = (uint8_t)v;
    }
    r = decode(&f, 0, &out);
    CHECK(r == -reason);
    if (r == 1) {
        cr_io_message_free(&out);
    }
    r = decode(&f, 3, &out); /* the same, in pieces */
    CHECK(r == -reason);
    if (r == 1) {
        cr_io_message_free(&out);
    }
    free(f.b);
}

#define H CR_IO_HEADER

static void test_round_trips(void)
{
    struct raft_message m;
    m = request_vote();
    round_trip("request_vote", &m);
    m.request_vote.disrupt_leader = true;
    m.request_vote.pre_vote = false;
    round_trip("request_vote disrupt", &m);
    m = append_entries(0);
    round_trip("heartbeat", &m);
    m = append_entries(5);
    round_trip("append_entries", &m);
    m = install_snapshot(sizeof snapdata);
    round_trip("install_snapshot", &m);
    m = install_snapshot(0);
    round_trip("install_snapshot empty", &m);
    m = others(RAFT_APPEND_ENTRIES_RESULT);
    round_trip("append_entries_result", &m);
    m = others(RAFT_REQUEST_VOTE_RESULT);
    round_trip("request_vote_result", &m);
    m = others(RAFT_TIMEOUT_NOW);
    round_trip("timeout_now", &m);
}

static void test_refusals(void)
{
    struct raft_message rv = request_vote();
    struct raft_message ae = append_entries(3);
    struct raft_message is = install_snapshot(100);
    struct raft_message tn = others(RAFT_TIMEOUT_NOW);
    struct raft_message rvr = others(RAFT_REQUEST_VOTE_RESULT);
    /* header */
    expect_refused("type 0", &rv, 0, 0, 0, CR_IO_E_TYPE);
    expect_refused("type 7", &rv, 0, 7, 0, CR_IO_E_TYPE);
    expect_refused("version", &rv, 1, 2, 0, CR_IO_E_TYPE);
    expect_refused("reserved", &rv, 2, 1, 0, CR_IO_E_TYPE);
    expect_refused("head length", &rv, 4, 48, 4, CR_IO_E_LENGTH);
    expect_refused("tail on a vote", &rv, 8, 8, 1, CR_IO_E_LENGTH);
    expect_refused("tail too big", &is, 8, MAX_MESSAGE, 1, CR_IO_E_TOO_BIG);
    expect_refused("tail huge", &is, 8, UINT64_MAX, 1, CR_IO_E_TOO_BIG);
    expect_refused("entries over max", &ae, 4, 40 + 16 * 65, 4,
                   CR_IO_E_LENGTH);
    expect_refused("entries not 16", &ae, 4, 40 + 16 * 3 + 8, 4,
                   CR_IO_E_LENGTH);
    expect_refused("head over max", &ae, 4, MAX_MESSAGE, 4, CR_IO_E_LENGTH);
    /* RequestVote */
    expect_refused("term 0", &rv, H, 0, 1, CR_IO_E_FIELD);
    expect_refused("term 2^63", &rv, H, (uint64_t)1 << 63, 1, CR_IO_E_RANGE);
    expect_refused("candidate", &rv, H + 8, PEER + 1, 1, CR_IO_E_FIELD);
    expect_refused("last term", &rv, H + 24, 8, 1, CR_IO_E_FIELD);
    expect_refused("flags", &rv, H + 32, 4, 1, CR_IO_E_FIELD);
    /* RequestVoteResult */
    expect_refused("vote flags", &rvr, H + 8, 7, 1, CR_IO_E_FIELD);
    /* TimeoutNow */
    expect_refused("tn term 0", &tn, H, 0, 1, CR_IO_E_FIELD);
    expect_refused("tn last term", &tn, H + 16, 4, 1, CR_IO_E_FIELD);
    /* AppendEntries */
    expect_refused("ae term 0", &ae, H, 0, 1, CR_IO_E_FIELD);
    expect_refused("prev log", &ae, H + 16, 0, 1, CR_IO_E_FIELD);
    expect_refused("prev term", &ae, H + 16, 10, 1, CR_IO_E_FIELD);
    expect_refused("count", &ae, H + 32, 4, 1, CR_IO_E_FIELD);
    expect_refused("entry term 0", &ae, H + 40, 0, 1, CR_IO_E_ENTRY);
    expect_refused("entry term high", &ae, H + 40, 10, 1, CR_IO_E_ENTRY);
    expect_refused("entry term down", &ae, H + 40 + 32, 7, 1, CR_IO_E_ENTRY);
    expect_refused("entry type", &ae, H + 40 + 8, 4, 0, CR_IO_E_ENTRY);
    expect_refused("entry pad", &ae, H + 40 + 9, 1, 0, CR_IO_E_ENTRY);
    expect_refused("entry len 0", &ae, H + 40 + 12, 0, 4, CR_IO_E_ENTRY);
    expect_refused("entry len", &ae, H + 40 + 12, 9, 4, CR_IO_E_LENGTH);
    expect_refused("change entry", &ae, H + 40 + 8, RAFT_CHANGE, 0,
                   CR_IO_E_CONF);
    /* InstallSnapshot */
    expect_refused("is index 0", &is, H + 8, 0, 1, CR_IO_E_FIELD);
    expect_refused("is term high", &is, H + 16, 5, 1, CR_IO_E_FIELD);
    expect_refused("conf index", &is, H + 24, 51, 1, CR_IO_E_FIELD);
    expect_refused("conf length", &is, H + 32, 8, 1, CR_IO_E_LENGTH);
    expect_refused("conf format", &is, H + 40, 2, 0, CR_IO_E_CONF);
    expect_refused("conf count", &is, H + 41, 0, 0, CR_IO_E_CONF);
}

/* A RAFT_CHANGE entry that holds a good configuration passes. */
static void test_change_entry(void)
{
    struct raft_message m = append_entries(1);
    struct raft_buffer buf;
    current = "change entry";
    CHECK(raft_configuration_encode(&conf, &buf) == 0);
    entries[0].type = RAFT_CHANGE;
    entries[0].buf = buf;
    round_trip("change entry", &m);
    raft_free(buf.base);
}

/* Mutations of honest frames and garbage: no crash, no leak; anything
 * that comes out keeps the rules. */
static void test_mutations(void)
{
    struct raft_message ms[4];
    unsigned seed = 1;
    int i;
    int k;
    ms[0] = request_vote();
    ms[1] = append_entries(4);
    ms[2] = install_snapshot(300);
    ms[3] = others(RAFT_APPEND_ENTRIES_RESULT);
    current = "mutations";
    for (i = 0; i < 40000; i++) {
        struct frame f = encode(&ms[i % 4]);
        struct raft_message out;
        int r;
        for (k = 0; k < 1 + i % 4; k++) {
            seed = seed * 1103515245 + 12345;
            f.b[(seed >> 8) % f.n] = (uint8_t)(seed >> 20);
        }
        r = decode(&f, 1 + (size_t)(i % 23), &out);
        if (r == 1) {
            if (out.type == RAFT_REQUEST_VOTE) {
                CHECK(out.request_vote.candidate_id == PEER);
            }
            if (out.type == RAFT_APPEND_ENTRIES) {
                unsigned e;
                for (e = 0; e < out.append_entries.n_entries; e++) {
                    CHECK(out.append_entries.entries[e].term <=
                          out.append_entries.term);
                }
            }
            cr_io_message_free(&out);
        }
        free(f.b);
    }
    for (i = 0; i < 20000; i++) {
        uint8_t g[200];
        struct frame f;
        struct raft_message out;
        for (k = 0; k < (int)sizeof g; k++) {
            seed = seed * 1103515245 + 12345;
            g[k] = (uint8_t)(seed >> 16);
        }
        g[0] = (uint8_t)(1 + i % 6);
        g[1] = 1;
        g[2] = g[3] = 0;
        f.b = g;
        f.n = sizeof g;
        if (decode(&f, 0, &out) == 1) {
            cr_io_message_free(&out);
        }
    }
}

int main(void)
{
    raft_configuration_init(&conf);
    raft_configuration_add(&conf, 1, "127.0.0.1:9001", RAFT_VOTER);
    raft_configuration_add(&conf, 2, "127.0.0.1:9002", RAFT_VOTER);
    test_round_trips();
    test_refusals();
    test_change_entry();
    test_mutations();
    raft_configuration_close(&conf);
    return check_report();
}
