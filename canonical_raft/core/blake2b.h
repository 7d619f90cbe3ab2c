/*
 * blake2b.h -- BLAKE2b (RFC 7693), unkeyed, one message at once: the hash of
 * the batteries' command chain, which core/lane.pxi extends for every command
 * it applies, as batteries/group.py does with hashlib.blake2b(digest_size=16).
 * In C because hashlib's call costs more than the hash of a short command;
 * tests/test_batteries_lane.py checks it against hashlib.
 *
 * Header-only C (static inline), no allocation; written from the RFC.
 */
#ifndef CANONICAL_RAFT_BLAKE2B_H
#define CANONICAL_RAFT_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "le.h"

#define CR_BLAKE2B_BLOCK 128
#define CR_BLAKE2B_MAX_OUT 64

static const uint64_t cr_blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL,
    0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL,
    0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* The message word each G of a round takes (rounds 10 and 11 repeat 0 and 1). */
static const uint8_t cr_blake2b_sigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint64_t cr_rotr64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

#define CR_BLAKE2B_G(a, b, c, d, x, y) do {          \
        v[a] = v[a] + v[b] + (x);                     \
        v[d] = cr_rotr64(v[d] ^ v[a], 32);            \
        v[c] = v[c] + v[d];                           \
        v[b] = cr_rotr64(v[b] ^ v[c], 24);            \
        v[a] = v[a] + v[b] + (y);                     \
        v[d] = cr_rotr64(v[d] ^ v[a], 16);            \
        v[c] = v[c] + v[d];                           \
        v[b] = cr_rotr64(v[b] ^ v[c], 63);            \
    } while (0)

/* F: one 128-byte block into h; `count` bytes hashed so far, this block's included. */
static inline void cr_blake2b_compress(uint64_t h[8], const uint8_t block[CR_BLAKE2B_BLOCK],
                                       uint64_t count, int last)
{
    uint64_t v[16], m[16];
    for (int i = 0; i < 16; i++)
        m[i] = cr_get64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = cr_blake2b_iv[i];
    }
    v[12] ^= count;              /* the counter's high word stays 0: < 2^64 bytes */
    if (last)
        v[14] = ~v[14];
    /* Unrolled, so that every message index below is a constant. */
#pragma GCC unroll 12
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = cr_blake2b_sigma[r % 10];
        CR_BLAKE2B_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        CR_BLAKE2B_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        CR_BLAKE2B_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        CR_BLAKE2B_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        CR_BLAKE2B_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        CR_BLAKE2B_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        CR_BLAKE2B_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        CR_BLAKE2B_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

#undef CR_BLAKE2B_G

/* The outlen-byte (1..64) BLAKE2b of a then b (a message in two pieces). */
static inline void cr_blake2b2(uint8_t *out, size_t outlen, const uint8_t *a, size_t alen,
                               const uint8_t *b, size_t blen)
{
    uint64_t h[8];
    uint8_t block[CR_BLAKE2B_BLOCK], digest[CR_BLAKE2B_MAX_OUT];
    size_t total = alen + blen, done = 0, fill = 0;
    memcpy(h, cr_blake2b_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ (uint64_t)outlen;       /* depth 1, fanout 1, no key */
    /* Every full block but the last is compressed as it fills; the last one
     * (full or not, and the empty message's one block) is compressed as last. */
    while (done < total) {
        size_t take;
        if (fill == CR_BLAKE2B_BLOCK) {
            cr_blake2b_compress(h, block, done, 0);
            fill = 0;
        }
        if (done < alen) {
            take = alen - done;
            if (take > CR_BLAKE2B_BLOCK - fill)
                take = CR_BLAKE2B_BLOCK - fill;
            memcpy(block + fill, a + done, take);
        } else {
            take = total - done;
            if (take > CR_BLAKE2B_BLOCK - fill)
                take = CR_BLAKE2B_BLOCK - fill;
            memcpy(block + fill, b + (done - alen), take);
        }
        fill += take;
        done += take;
    }
    memset(block + fill, 0, CR_BLAKE2B_BLOCK - fill);
    cr_blake2b_compress(h, block, total, 1);
    for (int i = 0; i < 8; i++)
        cr_put64(digest + 8 * i, h[i]);
    memcpy(out, digest, outlen);
}

#endif
