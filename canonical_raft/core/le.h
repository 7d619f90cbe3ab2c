/* le.h: little-endian integers in byte buffers, the one copy the binding
 * uses (the store's files, the WAL, the peer and forward wires, and the
 * Cython code through includes/compat.h). Byte by byte, so any alignment is
 * fine (the compiler folds it into one load or store); void * so char and
 * uint8_t buffers both pass. */
#ifndef CANONICAL_RAFT_LE_H
#define CANONICAL_RAFT_LE_H

#include <stdint.h>

static inline void cr_put16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}

static inline void cr_put32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static inline void cr_put64(void *p, uint64_t v)
{
    uint8_t *b = p;
    cr_put32(b, (uint32_t)v);
    cr_put32(b + 4, (uint32_t)(v >> 32));
}

static inline uint16_t cr_get16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t cr_get32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

static inline uint64_t cr_get64(const void *p)
{
    const uint8_t *b = p;
    return (uint64_t)cr_get32(b) | (uint64_t)cr_get32(b + 4) << 32;
}

#endif
