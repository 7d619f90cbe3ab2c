/* libFuzzer harness for canonical_raft/core/forward_wire.h, the forwarding
 * channel's frame decoder.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -I canonical_raft/core fuzz/forward_fuzz.c -o forward_fuzz
 *   ./forward_fuzz -max_total_time=60
 *
 * Input: one control byte (the seed of the chunking), then the bytes of one
 * forwarding stream after its handshake.
 *
 * Oracles (any failure aborts):
 *   1. Sanitizers: no out-of-bounds access, no undefined behaviour, no leak.
 *   2. Chunk invariance: the verdict and the frames handed on are the same
 *      fed whole, in pseudo-random chunks and byte by byte.
 *   3. Safety: every frame handed on satisfies an independent whole-buffer
 *      model (its length is its type's; an APPLY's commands walk exactly to
 *      its end, each inside it), and no body held exceeds max_frame.
 *
 * With -DFWD_SELFTEST (tests/test_forward_wire_c.py, no libFuzzer): unit
 * cases (honest frames of every type pass whole and split at every byte;
 * each check refuses its negative case with its reason), then RUNS mutations
 * of honest streams through the oracles.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_wire.h"

#define MAX_FRAME ((uint64_t)1 << 16)

struct seen
{
    int reason;
    uint64_t frames;
    uint64_t hash; /* of the frames handed on: type, length, body */
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ULL;
}

/* The model: what a frame handed on must be, read without the decoder. */
static void model_check(int type, const uint8_t *b, uint64_t len)
{
    if (len > MAX_FRAME) {
        abort();
    }
    if (type == FWD_APPLY) {
        uint64_t off = FWD_APPLY_FIXED, i, count;
        if (len < FWD_APPLY_FIXED) {
            abort();
        }
        count = cr_get32(b + 16);
        if (count == 0 || cr_get64(b) == 0 || cr_get64(b + 8) == 0) {
            abort();
        }
        for (i = 0; i < count; i++) {
            uint64_t n;
            if (off + 8 > len) {
                abort();
            }
            n = cr_get64(b + off);
            off += 8;
            if (n > len || off + ((n + 7) & ~(uint64_t)7) > len) {
                abort();
            }
            off += (n + 7) & ~(uint64_t)7;
        }
        if (off != len) {
            abort();
        }
        return;
    }
    if (type < FWD_APPLY || type > FWD_PONG || len != fwd_body_size(type)) {
        abort();
    }
}

static void on_frame(void *arg, int type, const uint8_t *body, uint64_t len)
{
    struct seen *s = arg;
    uint64_t i;
    model_check(type, body, len);
    s->frames++;
    s->hash = mix(mix(s->hash, (uint64_t)type), len);
    for (i = 0; i < len; i++) {
        s->hash = mix(s->hash, body[i]);
    }
}

static struct seen run(const uint8_t *p, size_t n, unsigned seed, int bytewise)
{
    struct fwd_dec d;
    struct seen s = {FWD_OK, 0, 0};
    size_t off = 0;
    uint32_t x = 2166136261u ^ seed;
    fwd_dec_init(&d, MAX_FRAME);
    while (off < n) {
        size_t len;
        int r;
        if (bytewise) {
            len = 1;
        } else if (seed == 0) {
            len = n - off;
        } else {
            x = x * 1103515245u + 12345u;
            len = 1 + (x >> 8) % ((x & 1) ? 24 : 4096);
        }
        if (len > n - off) {
            len = n - off;
        }
        r = fwd_feed(&d, p + off, len, on_frame, &s);
        off += len;
        if (r != FWD_OK) {
            s.reason = r;
            break;
        }
    }
    if (s.reason == FWD_OK) {
        s.reason = fwd_eof(&d);
    }
    fwd_dec_free(&d);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen a, b, c;
    if (size < 1) {
        return 0;
    }
    a = run(data + 1, size - 1, 0, 0);
    b = run(data + 1, size - 1, data[0] | 1u, 0);
    c = run(data + 1, size - 1, 0, 1);
    if (a.reason != b.reason || a.reason != c.reason || a.frames != b.frames ||
        a.frames != c.frames || a.hash != b.hash || a.hash != c.hash) {
        fprintf(stderr, "chunking changed the verdict: %d/%d/%d %llu/%llu/%llu\n",
                a.reason, b.reason, c.reason, (unsigned long long)a.frames,
                (unsigned long long)b.frames, (unsigned long long)c.frames);
        abort();
    }
    return 0;
}

#ifdef FWD_SELFTEST
static int failures, checks;

#define CHECK(cond, what)                                          \
    do {                                                           \
        checks++;                                                  \
        if (!(cond)) {                                             \
            failures++;                                            \
            printf("FAIL %s (line %d)\n", what, __LINE__);        \
        }                                                          \
    } while (0)

static size_t frame(uint8_t *out, int type, const uint8_t *body, size_t len)
{
    fwd_put_header(out, type, len);
    memcpy(out + FWD_HEADER, body, len);
    return FWD_HEADER + len;
}

static size_t apply_frame(uint8_t *out, uint64_t session, uint64_t first,
                          const char *const *cmds, unsigned n, uint32_t flags)
{
    uint8_t body[4096];
    size_t off = FWD_APPLY_FIXED;
    unsigned i;
    fwd_put_apply(body, session, first, n, flags, 7);
    for (i = 0; i < n; i++) {
        size_t k = strlen(cmds[i]), padded = (k + 7) & ~(size_t)7;
        cr_put64(body + off, k);
        off += 8;
        memset(body + off, 0, padded);
        memcpy(body + off, cmds[i], k);
        off += padded;
    }
    return frame(out, FWD_APPLY, body, off);
}

/* An honest stream of every type; its length. */
static size_t honest(uint8_t *out)
{
    static const char *const cmds[] = {"", "a", "eight888", "nine99999"};
    uint8_t body[64];
    size_t n = 0;
    n += apply_frame(out + n, 5, 1, cmds, 4, FWD_RESYNC);
    memset(body, 0, sizeof body);
    cr_put64(body, 7);
    cr_put64(body + 16, 42);
    n += frame(out + n, FWD_APPLY_REPLY, body, 40);
    n += frame(out + n, FWD_READ, body, 8);
    n += frame(out + n, FWD_READ_REPLY, body, 32);
    cr_put64(body, 3);
    n += frame(out + n, FWD_PING, body, 16);
    n += frame(out + n, FWD_PONG, body, 16);
    return n;
}

static int verdict(const uint8_t *p, size_t n)
{
    return run(p, n, 0, 0).reason;
}

static void unit(void)
{
    uint8_t s[8192], t[8192];
    size_t n = honest(s), cut;
    static const char *const one[] = {"x"};
    struct seen whole = run(s, n, 0, 0);
    CHECK(whole.reason == FWD_OK && whole.frames == 6, "honest stream passes");
    for (cut = 0; cut <= n; cut++) {
        struct fwd_dec d;
        struct seen got = {FWD_OK, 0, 0};
        fwd_dec_init(&d, MAX_FRAME);
        fwd_feed(&d, s, cut, on_frame, &got);
        fwd_feed(&d, s + cut, n - cut, on_frame, &got);
        CHECK(got.frames == 6 && got.hash == whole.hash && fwd_eof(&d) == FWD_OK,
              "split at every byte");
        fwd_dec_free(&d);
    }
    CHECK(verdict(s, n - 1) == FWD_TRUNCATED, "cut short");
    memcpy(t, s, n);
    t[0] = 9;
    CHECK(verdict(t, n) == FWD_BAD_TYPE, "type");
    memcpy(t, s, n);
    t[1] = 2;
    CHECK(verdict(t, n) == FWD_BAD_VERSION, "version");
    memcpy(t, s, n);
    t[5] = 1;
    CHECK(verdict(t, n) == FWD_BAD_RESERVED, "reserved header bits");
    n = frame(t, FWD_READ, s, 9);
    CHECK(verdict(t, n) == FWD_BAD_LENGTH, "READ of 9 bytes");
    fwd_put_header(t, FWD_APPLY, MAX_FRAME + 1);
    CHECK(verdict(t, FWD_HEADER) == FWD_TOO_BIG, "over max_frame");
    fwd_put_header(t, FWD_APPLY, UINT64_MAX);
    CHECK(verdict(t, FWD_HEADER) == FWD_TOO_BIG, "length 2^64-1");
    n = apply_frame(t, 0, 1, one, 1, 0);
    CHECK(verdict(t, n) == FWD_BAD_FIELD, "session 0");
    n = apply_frame(t, 1, 0, one, 1, 0);
    CHECK(verdict(t, n) == FWD_BAD_FIELD, "seq 0");
    n = apply_frame(t, 1, FWD_LIMIT - 1, one, 1, 0);
    CHECK(verdict(t, n) == FWD_BAD_FIELD, "seq past 2^63");
    n = apply_frame(t, 1, 1, one, 1, 2);
    CHECK(verdict(t, n) == FWD_BAD_RESERVED, "unknown APPLY flag");
    n = apply_frame(t, 1, 1, one, 1, 0);
    cr_put32(t + FWD_HEADER + 16, 2);
    CHECK(verdict(t, n) == FWD_BAD_COMMANDS, "count above the commands");
    n = apply_frame(t, 1, 1, one, 1, 0);
    cr_put64(t + FWD_HEADER + FWD_APPLY_FIXED, 1u << 30);
    CHECK(verdict(t, n) == FWD_BAD_COMMANDS, "a command longer than its frame");
    n = apply_frame(t, 1, 1, one, 1, 0);
    t[n - 1] = 1;
    CHECK(verdict(t, n) == FWD_BAD_COMMANDS, "nonzero padding");
    n = apply_frame(t, 1, 1, one, 1, 0);
    cr_put64(t + 8, n - FWD_HEADER + 8);
    memset(t + n, 0, 8);
    CHECK(verdict(t, n + 8) == FWD_BAD_COMMANDS, "bytes after the commands");
    memset(s, 0, 16);
    n = frame(t, FWD_PING, s, 16);
    CHECK(verdict(t, n) == FWD_BAD_FIELD, "PING term 0");
    memset(s, 0, 40);
    cr_put32(s + 8, 4);
    n = frame(t, FWD_APPLY_REPLY, s, 40);
    CHECK(verdict(t, n) == FWD_BAD_FIELD, "unknown status");
}

int main(int argc, char **argv)
{
    uint8_t base[8192], buf[8200];
    size_t n = honest(base);
    long runs = argc > 1 ? atol(argv[1]) : 2000, i;
    uint64_t x = 88172645463325252ULL;
    unit();
    for (i = 0; i < runs; i++) {
        size_t len = n, k;
        unsigned flips;
        buf[0] = (uint8_t)i;
        memcpy(buf + 1, base, n);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        flips = 1 + (unsigned)(x % 6);
        for (k = 0; k < flips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (len < 8) {
                break;
            }
            if (x % 5 == 0) {     /* a word pushed to an edge value */
                static const uint64_t edge[] = {0, 1, 7, 8, 40, 1u << 16,
                                                (1u << 16) + 1, UINT64_MAX};
                size_t at = (size_t)(x >> 8) % (len / 8) * 8;
                cr_put64(buf + 1 + at, edge[(x >> 40) % 8]);
            } else if (x % 5 == 1) {
                len = (size_t)(x >> 8) % (len + 1);    /* cut */
            } else {
                buf[1 + (x >> 8) % len] ^= (uint8_t)(1u << (x >> 61));
            }
        }
        LLVMFuzzerTestOneInput(buf, len + 1);
        checks++;
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
#endif
