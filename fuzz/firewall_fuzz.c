/* libFuzzer harness for canonical_raft/core/firewall.h.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -I canonical_raft/core fuzz/firewall_fuzz.c -o firewall_fuzz
 *   ./firewall_fuzz -max_total_time=60 fuzz/corpus
 *
 * Input: one control byte, then the bytes of one inbound connection.
 *   control bit 0: FW_NO_HANDSHAKE (the stream starts at a message)
 *   control bits 1-7: seed of the chunking
 *
 * Mutations: libFuzzer's own, and (LLVMFuzzerCustomMutator) 8-byte words of
 * the stream pushed to 0, 1, small, 2^32, 2^63, 2^64-1 or nudged by +-1/8/16,
 * aligned blocks repeated or dropped: every length, count, term and type field
 * of the seeds' real-format messages gets the values issue 11 names.
 *
 * Oracles (any failure aborts, so libFuzzer saves the input):
 *   1. Sanitizers: no out-of-bounds access, no undefined behaviour.
 *   2. Chunk invariance: the verdict and the count of whole messages are the
 *      same fed whole, in pseudo-random chunks, and byte by byte.
 *   3. Safety: every message the parser passed is safe for libraft 0.22.1's
 *      receiver.  A small whole-buffer model of what uv_tcp_listen.c,
 *      uv_recv.c, uv_encoding.c, configuration.c and the receive path do with
 *      the bytes (written independently of the parser) checks that no read
 *      leaves its buffer, no decode fails after allocating (the double-free
 *      paths), no assertion on message fields fires, and no allocation
 *      exceeds max_message_size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firewall.h"

#define MAX_MESSAGE ((uint64_t)1 << 20)

static struct fw_limits lim;

struct verdict
{
    int reason;
    uint64_t messages;
    int handshake_done;
};

static struct verdict run(const uint8_t *s, size_t n, int flags, unsigned seed,
                          int bytewise)
{
    struct fw_conn c;
    struct verdict v = {FW_OK, 0, 0};
    size_t off = 0;
    uint32_t x = 2166136261u ^ seed;
    fw_conn_init(&c, &lim, flags);
    while (off < n) {
        size_t len, passed = 0;
        int r;
        if (bytewise) {
            len = 1;
        } else if (seed == 0) {
            len = n - off;
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            len = 1 + x % ((x >> 8) % 4 == 0 ? 4096 : 24);
        }
        if (len > n - off) {
            len = n - off;
        }
        r = fw_feed(&c, s + off, len, &passed);
        if (passed > len || (r == FW_OK && passed != len)) {
            abort();
        }
        if (r != FW_OK) {
            v.reason = r;
            break;
        }
        off += len;
    }
    v.messages = c.messages;
    v.handshake_done = c.handshake_done;
    if (v.reason == FW_OK && fw_busy(&c) == 0 && fw_eof(&c) != FW_OK) {
        abort();
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* The libraft 0.22.1 model: whole-buffer, bounds-checked                    */

#define BAD() abort()

static uint64_t rd(const uint8_t *p, unsigned w)
{
    uint64_t v = 0;
    unsigned k;
    for (k = 0; k < w; k++) {
        v |= (uint64_t)p[k] << (8 * k);
    }
    return v;
}

/* configurationDecode() on buf[0, len): must succeed (a failure after the
 * first server was added is a double free in 0.22.1) and stay in bounds. */
static void model_conf(const uint8_t *buf, uint64_t len)
{
    uint64_t off = 0, n, i, j;
    uint64_t ids[FW_CONF_SERVERS_MAX];
    const uint8_t *addr[FW_CONF_SERVERS_MAX];
    if (len == 0) {
        BAD(); /* assert(buf->len > 0) */
    }
    if (buf[off++] != 1) {
        BAD(); /* MALFORMED before any allocation: safe, but never passed */
    }
    if (off + 8 > len) {
        BAD();
    }
    n = rd(buf + off, 8);
    off += 8;
    if (n == 0 || n > FW_CONF_SERVERS_MAX) {
        BAD(); /* an empty configuration trips asserts later */
    }
    for (i = 0; i < n; i++) {
        const uint8_t *a;
        uint64_t alen = 0;
        if (off + 8 > len) {
            BAD(); /* id read past the buffer */
        }
        ids[i] = rd(buf + off, 8);
        off += 8;
        if (ids[i] == 0) {
            BAD(); /* assert(id != 0) in configurationAdd */
        }
        a = buf + off;
        while (off + alen < len && a[alen] != 0) {
            alen++;
        }
        if (off + alen >= len) {
            BAD(); /* byteGetString: no NUL -> MALFORMED after allocation */
        }
        off += alen + 1;
        if (off + 1 > len) {
            BAD(); /* role read past the buffer */
        }
        if (buf[off] > 2) {
            BAD(); /* BADROLE -> MALFORMED after allocation */
        }
        off++;
        for (j = 0; j < i; j++) {
            if (ids[j] == ids[i] || strcmp((const char *)addr[j],
                                           (const char *)a) == 0) {
                BAD(); /* DUPLICATEID/ADDRESS -> MALFORMED after allocation */
            }
        }
        addr[i] = a;
    }
}

/* One message at s[0, n): returns its total length, or 0 if the buffer ends
 * first (the parser then cannot have counted it). */
static uint64_t model_message(const uint8_t *s, uint64_t n)
{
    uint64_t w0, hlen, payload = 0, term;
    uint8_t type, version;
    const uint8_t *h;
    if (n < 16) {
        return 0;
    }
    w0 = rd(s, 8);
    hlen = rd(s + 8, 8);
    type = (uint8_t)w0;
    version = (uint8_t)(w0 >> 16);
    if (hlen == 0) {
        BAD(); /* libraft drops it: safe, but never passed */
    }
    if (16 + hlen > MAX_MESSAGE) {
        BAD(); /* raft_malloc(header.len) unbounded */
    }
    if (n < 16 + hlen) {
        return 0;
    }
    h = s + 16;
    term = rd(h, 8);
    if (term >= FW_TERM_LIMIT) {
        BAD();
    }
    switch (type) {
        case FW_REQUEST_VOTE:
            /* decodeRequestVote reads 40 bytes whatever the version */
            if (hlen < 40) {
                BAD();
            }
            (void)version;
            break;
        case FW_REQUEST_VOTE_RESULT:
            /* reads 16, and 6 more for version >= 2 (0 with len != 16) */
            if (hlen < 16 || (version >= 2 && hlen < 22) ||
                (version == 0 && hlen != 16 && hlen < 22)) {
                BAD();
            }
            break;
        case FW_APPEND_ENTRIES_RESULT:
            if (hlen < 24 || (version >= 1 && hlen < 26) ||
                (version >= 2 && hlen < 28) || (version == 0 && hlen > 24 &&
                                                 hlen < 28)) {
                BAD();
            }
            break;
        case FW_TIMEOUT_NOW:
            if (hlen < 24) {
                BAD();
            }
            break;
        case FW_APPEND_ENTRIES: {
            uint64_t ne, i, pli, plt, pos, padded = 0;
            if (hlen < 40) {
                BAD();
            }
            pli = rd(h + 8, 8);
            plt = rd(h + 16, 8);
            if ((pli == 0) != (plt == 0)) {
                BAD(); /* asserts in checkLogMatchingProperty */
            }
            ne = (unsigned)rd(h + 32, 8);
            if (40 + 16 * ne > hlen) {
                BAD(); /* descriptors read past the header */
            }
            for (i = 0; i < ne; i++) {
                const uint8_t *d = h + 40 + 16 * i;
                uint8_t et = d[8];
                uint64_t el = rd(d + 12, 4);
                if (rd(d, 8) == 0 || rd(d, 8) >= FW_TERM_LIMIT) {
                    BAD(); /* assert(entry->term != 0) */
                }
                if (et < 1 || et > 3) {
                    BAD(); /* MALFORMED: safe, but never passed */
                }
                payload += el;
                /* uvDecodeEntriesBatch: entry i starts at the padded sum of
                 * the ones before; it must lie within the payload. */
                if (padded + el > payload) {
                    BAD();
                }
                padded += (el + 7) & ~(uint64_t)7;
            }
            if (ne > 0 && payload == 0) {
                BAD(); /* batch pointer never set, then freed */
            }
            if (16 + hlen + payload > MAX_MESSAGE) {
                BAD();
            }
            if (n < 16 + hlen + payload) {
                return 0;
            }
            /* RAFT_CHANGE entries are decoded by the core. */
            pos = 0;
            for (i = 0; i < ne; i++) {
                const uint8_t *d = h + 40 + 16 * i;
                uint64_t el = rd(d + 12, 4);
                if (d[8] == FW_ENTRY_CHANGE) {
                    model_conf(s + 16 + hlen + pos, el);
                }
                pos += el;
            }
            return 16 + hlen + payload;
        }
        case FW_INSTALL_SNAPSHOT: {
            uint64_t clen;
            if (hlen < 40) {
                BAD();
            }
            clen = rd(h + 32, 8);
            if (clen > hlen - 40 || hlen - 40 - clen < 8) {
                BAD(); /* configuration or data length read past the header */
            }
            model_conf(h + 40, clen);
            payload = rd(h + 40 + clen, 8);
            if (16 + hlen + payload > MAX_MESSAGE) {
                BAD();
            }
            if (n < 16 + hlen + payload) {
                return 0;
            }
            return 16 + hlen + payload;
        }
        default:
            BAD(); /* IOERR: safe, but never passed */
    }
    return 16 + hlen;
}

/* The first `messages` messages of the stream (after the handshake, if any)
 * must all be safe. */
static void model_stream(const uint8_t *s, size_t n, int flags,
                         const struct verdict *v)
{
    uint64_t off = 0, m, messages = v->messages;
    if (!(flags & FW_NO_HANDSHAKE)) {
        uint64_t alen, k;
        if (!v->handshake_done) {
            if (messages) {
                BAD();
            }
            return; /* nothing reached libraft's accept callback */
        }
        if (n < 24) {
            BAD();
        }
        if (rd(s, 8) != 1 || rd(s + 8, 8) == 0) {
            BAD();
        }
        alen = rd(s + 16, 8);
        if (alen > 4096) {
            BAD(); /* raft_malloc(address.len) unbounded */
        }
        if (24 + alen > n) {
            BAD();
        }
        for (k = 0; k < alen && s[24 + k]; k++) {
        }
        if (k == alen) {
            BAD(); /* strlen() past the address buffer */
        }
        off = 24 + alen;
    }
    for (m = 0; m < messages; m++) {
        uint64_t len = model_message(s + off, n - off);
        if (len == 0) {
            BAD(); /* the parser counted a message the stream does not hold */
        }
        off += len;
    }
}

/* ------------------------------------------------------------------------ */
/* Structure-aware mutation: half the time libFuzzer's own, otherwise push one
 * 8-byte word of the stream (most fields are 8-byte aligned after the
 * handshake) to a boundary value, or repeat/drop an aligned block. */

#ifdef FW_FUZZ_STANDALONE
/* Without libFuzzer: flip a few random bits. */
static uint64_t standalone_rng = 88172645463325252ULL;
static size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size)
{
    unsigned k, flips;
    (void)max_size;
    if (size == 0) {
        return 0;
    }
    standalone_rng ^= standalone_rng << 13;
    standalone_rng ^= standalone_rng >> 7;
    standalone_rng ^= standalone_rng << 17;
    flips = 1 + (unsigned)(standalone_rng % 4);
    for (k = 0; k < flips; k++) {
        standalone_rng ^= standalone_rng << 13;
        standalone_rng ^= standalone_rng >> 7;
        standalone_rng ^= standalone_rng << 17;
        data[standalone_rng % size] ^= (uint8_t)(1u << (standalone_rng >> 61));
    }
    return size;
}
#else
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
#endif

static uint64_t mut_rng;
static uint64_t mut_next(void)
{
    mut_rng ^= mut_rng << 13;
    mut_rng ^= mut_rng >> 7;
    mut_rng ^= mut_rng << 17;
    return mut_rng;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed)
{
    static const uint64_t specials[] = {0,
                                        1,
                                        2,
                                        3,
                                        7,
                                        8,
                                        9,
                                        15,
                                        16,
                                        24,
                                        40,
                                        48,
                                        56,
                                        64,
                                        255,
                                        256,
                                        4096,
                                        0x7fffffffULL,
                                        0xffffffffULL,
                                        (uint64_t)1 << 32,
                                        ((uint64_t)1 << 32) + 1,
                                        ((uint64_t)1 << 63) - 1,
                                        (uint64_t)1 << 63,
                                        UINT64_MAX};
    size_t words, at;
    uint64_t v, r;
    unsigned k;
    mut_rng = (uint64_t)seed * 0x9e3779b97f4a7c15ULL + 1;
    r = mut_next();
    if (size < 9 || r % 2 == 0) {
        return LLVMFuzzerMutate(data, size, max_size);
    }
    words = (size - 1) / 8;
    at = 1 + 8 * (size_t)(mut_next() % words);
    switch ((r >> 1) % 4) {
        case 0: /* a boundary value */
            v = specials[mut_next() % (sizeof specials / sizeof specials[0])];
            break;
        case 1: { /* the current value nudged */
            static const int64_t nudges[] = {-16, -8, -1, 1, 8, 16};
            v = 0;
            for (k = 0; k < 8; k++) {
                v |= (uint64_t)data[at + k] << (8 * k);
            }
            v += (uint64_t)nudges[mut_next() % 6];
            break;
        }
        case 2: { /* repeat an aligned block (a message twice, say) */
            size_t len = 8 * (1 + (size_t)(mut_next() % 32));
            if (at + len > size) {
                len = size - at;
            }
            if (size + len > max_size) {
                return LLVMFuzzerMutate(data, size, max_size);
            }
            memmove(data + at + len, data + at, size - at);
            return size + len;
        }
        default: { /* drop an aligned block */
            size_t len = 8 * (1 + (size_t)(mut_next() % 8));
            if (at + len > size) {
                len = size - at;
            }
            memmove(data + at, data + at + len, size - at - len);
            return size - len;
        }
    }
    for (k = 0; k < 8 && at + k < size; k++) {
        data[at + k] = (uint8_t)(v >> (8 * k));
    }
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int flags;
    unsigned seed;
    struct verdict whole, chunked, bytes;
    if (size < 1) {
        return 0;
    }
    fw_limits_init(&lim);
    lim.max_message_size = MAX_MESSAGE;
    lim.max_entries = 64;
    flags = (data[0] & 1) ? FW_NO_HANDSHAKE : 0;
    seed = (unsigned)(data[0] >> 1) + 1;
    data++;
    size--;

    whole = run(data, size, flags, 0, 0);
    chunked = run(data, size, flags, seed, 0);
    if (whole.reason != chunked.reason || whole.messages != chunked.messages ||
        whole.handshake_done != chunked.handshake_done) {
        fprintf(stderr, "whole %s/%llu, chunked %s/%llu\n",
                fw_reason_name(whole.reason),
                (unsigned long long)whole.messages,
                fw_reason_name(chunked.reason),
                (unsigned long long)chunked.messages);
        abort();
    }
    if (size <= 4096) {
        bytes = run(data, size, flags, 0, 1);
        if (whole.reason != bytes.reason || whole.messages != bytes.messages ||
            whole.handshake_done != bytes.handshake_done) {
            abort();
        }
    }
    model_stream(data, size, flags, &whole);
    return 0;
}

#ifdef FW_FUZZ_STANDALONE
/* A libFuzzer-free driver for test runs (tests/test_firewall_c.py):
 *   cc -DFW_FUZZ_STANDALONE -fsanitize=address,undefined ... -o fuzz_standalone
 *   ./fuzz_standalone RUNS SEED-FILE...
 * runs every seed, then RUNS inputs made by the custom mutator from them
 * (each mutating the previous one of its seed a few times), and prints the
 * count.  Any oracle failure aborts. */
int main(int argc, char **argv)
{
    const size_t max = (size_t)1 << 17;
    int nseeds = argc - 2, s;
    long runs, i;
    uint8_t **orig, **cur, *buf;
    size_t *olen, *clen;
    if (argc < 3) {
        fprintf(stderr, "usage: %s RUNS SEED-FILE...\n", argv[0]);
        return 2;
    }
    runs = atol(argv[1]);
    orig = calloc((size_t)nseeds, sizeof *orig);
    cur = calloc((size_t)nseeds, sizeof *cur);
    olen = calloc((size_t)nseeds, sizeof *olen);
    clen = calloc((size_t)nseeds, sizeof *clen);
    buf = malloc(max);
    if (!orig || !cur || !olen || !clen || !buf) {
        return 2;
    }
    for (s = 0; s < nseeds; s++) {
        FILE *f = fopen(argv[2 + s], "rb");
        if (f == NULL) {
            perror(argv[2 + s]);
            return 2;
        }
        orig[s] = malloc(max);
        cur[s] = malloc(max);
        if (!orig[s] || !cur[s]) {
            return 2;
        }
        olen[s] = fread(orig[s], 1, max, f);
        fclose(f);
        LLVMFuzzerTestOneInput(orig[s], olen[s]);
    }
    for (i = 0; i < runs; i++) {
        size_t n;
        s = (int)(i % nseeds);
        if ((i / nseeds) % 8 == 0) { /* every 8th round: back to the seed */
            memcpy(cur[s], orig[s], olen[s]);
            clen[s] = olen[s];
        }
        memcpy(buf, cur[s], clen[s]);
        n = LLVMFuzzerCustomMutator(buf, clen[s], max,
                                    (unsigned)i * 2654435761u + 1);
        LLVMFuzzerTestOneInput(buf, n);
        memcpy(cur[s], buf, n);
        clen[s] = n;
    }
    printf("%d seeds, %ld mutated inputs: no oracle failed\n", nseeds, runs);
    for (s = 0; s < nseeds; s++) {
        free(orig[s]);
        free(cur[s]);
    }
    free(orig);
    free(cur);
    free(olen);
    free(clen);
    free(buf);
    return 0;
}
#endif
