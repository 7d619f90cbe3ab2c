/* codec_conf.h: the check of an encoded configuration before libraft's
 * decoder (raft_configuration_decode) reads it. That decoder trusts the
 * bytes: it reads ids and roles past the end of a short buffer. So every
 * configuration the binding's raft_io hands it, from the network
 * (InstallSnapshot, RAFT_CHANGE entries: core/codec_io.h) or from disk (the
 * snapshot's: core/lmdb_store.c), passes this first.
 *
 * The encoding (libraft's configuration.c, format 1): u8 format (= 1) |
 * u64 n | n x (u64 id | address, NUL | u8 role) | zero padding to a multiple
 * of 8, little endian. The rules are the firewall's (firewall.h) for the
 * same bytes: at most CR_CONF_SERVERS_MAX servers, ids nonzero and
 * distinct, addresses 1..CR_CONF_ADDRESS_MAX printable ASCII bytes without
 * spaces, distinct, roles standby/voter/spare, under 8 bytes of zero
 * padding. Header-only, no allocation. */
#ifndef CANONICAL_RAFT_CODEC_CONF_H
#define CANONICAL_RAFT_CODEC_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CR_CONF_FORMAT 1
#define CR_CONF_SERVERS_MAX 64
#define CR_CONF_ADDRESS_MAX 255

static inline uint64_t cr_conf__le64(const uint8_t *p)
{
    uint64_t v = 0;
    int k;
    for (k = 7; k >= 0; k--) {
        v = (v << 8) | p[k];
    }
    return v;
}

/* 0 if the len bytes at p are one well-formed configuration, else -1. */
static inline int cr_conf_check(const uint8_t *p, size_t len)
{
    const uint8_t *addr[CR_CONF_SERVERS_MAX];
    uint64_t ids[CR_CONF_SERVERS_MAX];
    size_t off = 9;
    uint64_t n;
    uint64_t i;
    uint64_t j;

    if (len < 9 || len % 8 != 0 || p[0] != CR_CONF_FORMAT) {
        return -1;
    }
    n = cr_conf__le64(p + 1);
    if (n == 0 || n > CR_CONF_SERVERS_MAX) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        size_t a;
        if (len - off < 8 + 2 + 1) { /* id, one address byte, NUL, role */
            return -1;
        }
        ids[i] = cr_conf__le64(p + off);
        if (ids[i] == 0) {
            return -1;
        }
        off += 8;
        addr[i] = p + off;
        for (a = 0; off + a < len && p[off + a] != 0; a++) {
            if (p[off + a] <= 0x20 || p[off + a] >= 0x7f ||
                a >= CR_CONF_ADDRESS_MAX) {
                return -1;
            }
        }
        if (a == 0 || off + a + 1 >= len) { /* empty, no NUL, or no role */
            return -1;
        }
        off += a + 1;
        if (p[off] > 2) { /* RAFT_STANDBY 0, RAFT_VOTER 1, RAFT_SPARE 2 */
            return -1;
        }
        off++;
        for (j = 0; j < i; j++) {
            if (ids[j] == ids[i] ||
                strcmp((const char *)addr[j], (const char *)addr[i]) == 0) {
                return -1;
            }
        }
    }
    if (len - off >= 8) {
        return -1;
    }
    for (; off < len; off++) {
        if (p[off] != 0) {
            return -1;
        }
    }
    return 0;
}

#endif
