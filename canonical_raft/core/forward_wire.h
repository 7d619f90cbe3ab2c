/*
 * forward_wire.h -- the forwarding channel's frames and their bounded,
 * checked decoder (header-only C: <stdint.h>, <stddef.h>, <stdlib.h>,
 * <string.h>; no libuv, no libraft, no Python; fuzzed by
 * fuzz/forward_fuzz.c, unit-tested by tests/c/forward_wire_test.c).
 *
 * A forwarding stream is a peer connection whose handshake declares
 * FW_FORWARD_PROTOCOL (firewall.h) instead of libraft's protocol 1: the same
 * TLS, the same handshake checks (the id a member of the configuration),
 * then these frames, one way (the receiver never writes on it; answers go
 * back on the receiver's own stream to the sender). Little endian:
 *
 *   frame header (16 bytes): u8 type | u8 version (1) | u16 0 | u32 0 |
 *                            u64 body length B (<= max_frame)
 *   body, by type:
 *     1 APPLY        session u64 | first seq u64 | count u32 | flags u32
 *                    (bit 0: RESYNC) | request u64 | u64 0 |
 *                    count x (u64 length | bytes | zero padding to 8)
 *                    (the commands exactly as a log entry holds them, entry.pxi)
 *     2 APPLY_REPLY  request u64 | status u32 | code u32 | index u64 |
 *                    term u64 | leader u64                       (40 bytes)
 *     3 READ         request u64                                  (8 bytes)
 *     4 READ_REPLY   request u64 | status u32 | code u32 | index u64 |
 *                    leader u64                                  (32 bytes)
 *     5 PING         term u64 | round u64                        (16 bytes)
 *     6 PONG         term u64 | round u64                        (16 bytes)
 *   status: 0 done, 1 not leader (leader: the hint, 0 if none), 2 out of
 *   order (APPLY: resend from the lowest unsettled seq with RESYNC),
 *   3 error (code: libraft's error number).
 *
 * Every length is checked before it is used; a frame body is held in one
 * buffer of exactly B bytes (B <= max_frame), freed once the frame has been
 * handed on. An APPLY's commands are walked whole before it is handed on,
 * so its receiver can copy them into an entry as they are.
 */
#ifndef CANONICAL_RAFT_FORWARD_WIRE_H
#define CANONICAL_RAFT_FORWARD_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "le.h"

#define FWD_VERSION 1
#define FWD_HEADER 16
#define FWD_APPLY_FIXED 40      /* an APPLY body before its commands */
#define FWD_COMMAND_HEADER 8
#define FWD_RESYNC 1            /* APPLY flags */
#define FWD_MAX_COMMANDS (1u << 24)
#define FWD_LIMIT ((uint64_t)1 << 63) /* seqs, indexes, terms stay below */

enum fwd_type {
    FWD_APPLY = 1,
    FWD_APPLY_REPLY = 2,
    FWD_READ = 3,
    FWD_READ_REPLY = 4,
    FWD_PING = 5,
    FWD_PONG = 6
};

enum fwd_status {
    FWD_DONE = 0,
    FWD_NOT_LEADER = 1,
    FWD_OUT_OF_ORDER = 2,
    FWD_ERROR = 3
};

#define FWD_REASONS(X)                                                      \
    X(FWD_OK, "ok")                                                         \
    X(FWD_BAD_TYPE, "type")          /* not 1..6 */                         \
    X(FWD_BAD_VERSION, "version")    /* not FWD_VERSION */                  \
    X(FWD_BAD_RESERVED, "reserved")  /* nonzero unused bits */              \
    X(FWD_BAD_LENGTH, "length")      /* not what the type needs */          \
    X(FWD_TOO_BIG, "too_big")        /* B > max_frame */                    \
    X(FWD_BAD_FIELD, "field")        /* a value out of its range */         \
    X(FWD_BAD_COMMANDS, "commands")  /* APPLY commands do not add up */     \
    X(FWD_NOMEM, "nomem")            /* the body could not be held */       \
    X(FWD_TRUNCATED, "truncated")    /* the stream ended part-way */        \
    X(FWD_REASON_COUNT_, "?")

enum fwd_reason {
#define FWD__ENUM(code, name) code,
    FWD_REASONS(FWD__ENUM)
#undef FWD__ENUM
};

static inline const char *fwd_reason_name(int reason)
{
    static const char *const names[] = {
#define FWD__NAME(code, name) name,
        FWD_REASONS(FWD__NAME)
#undef FWD__NAME
    };
    if (reason < 0 || reason >= (int)FWD_REASON_COUNT_) {
        return "unknown";
    }
    return names[reason];
}

/* ---- encoding ------------------------------------------------------------ */

static inline void fwd_put_header(uint8_t *p, int type, uint64_t body)
{
    memset(p, 0, FWD_HEADER);
    p[0] = (uint8_t)type;
    p[1] = FWD_VERSION;
    cr_put64(p + 8, body);
}

/* The fixed part of an APPLY body (its commands follow). */
static inline void fwd_put_apply(uint8_t *p, uint64_t session, uint64_t first,
                                 uint32_t count, uint32_t flags,
                                 uint64_t request)
{
    cr_put64(p, session);
    cr_put64(p + 8, first);
    cr_put32(p + 16, count);
    cr_put32(p + 20, flags);
    cr_put64(p + 24, request);
    cr_put64(p + 32, 0);
}

/* ---- checking a whole body ------------------------------------------------ */

/* The body length a type needs (APPLY: its minimum). */
static inline uint64_t fwd_body_size(int type)
{
    switch (type) {
        case FWD_APPLY:
            return FWD_APPLY_FIXED;
        case FWD_APPLY_REPLY:
            return 40;
        case FWD_READ:
            return 8;
        case FWD_READ_REPLY:
            return 32;
        case FWD_PING:
        case FWD_PONG:
            return 16;
        default:
            return 0;
    }
}

static inline enum fwd_reason fwd_check_status(const uint8_t *p)
{
    return cr_get32(p) > FWD_ERROR ? FWD_BAD_FIELD : FWD_OK;
}

/* Every field of a whole body of `type`, `len` bytes. */
static inline enum fwd_reason fwd_check_body(int type, const uint8_t *b,
                                             uint64_t len)
{
    uint64_t off, count, i, n;
    if (type == FWD_APPLY) {
        uint64_t session = cr_get64(b), first = cr_get64(b + 8);
        count = cr_get32(b + 16);
        if (session == 0 || first == 0 || first >= FWD_LIMIT ||
            count == 0 || count > FWD_MAX_COMMANDS ||
            first + count >= FWD_LIMIT) {
            return FWD_BAD_FIELD;
        }
        if ((cr_get32(b + 20) & ~(uint32_t)FWD_RESYNC) != 0 ||
            cr_get64(b + 32) != 0) {
            return FWD_BAD_RESERVED;
        }
        off = FWD_APPLY_FIXED;
        for (i = 0; i < count; i++) {
            uint64_t padded;
            if (len - off < FWD_COMMAND_HEADER) {
                return FWD_BAD_COMMANDS;
            }
            n = cr_get64(b + off);
            off += FWD_COMMAND_HEADER;
            if (n > len - off) {
                return FWD_BAD_COMMANDS;
            }
            padded = (n + 7) & ~(uint64_t)7;
            if (padded > len - off) {
                return FWD_BAD_COMMANDS;
            }
            for (; n < padded; n++) {
                if (b[off + n] != 0) {
                    return FWD_BAD_COMMANDS;
                }
            }
            off += padded;
        }
        return off == len ? FWD_OK : FWD_BAD_COMMANDS;
    }
    if (len != fwd_body_size(type)) {
        return FWD_BAD_LENGTH;
    }
    switch (type) {
        case FWD_APPLY_REPLY:
            if (fwd_check_status(b + 8) != FWD_OK ||
                cr_get64(b + 16) >= FWD_LIMIT ||
                cr_get64(b + 24) >= FWD_LIMIT) {
                return FWD_BAD_FIELD;
            }
            return FWD_OK;
        case FWD_READ_REPLY:
            if (fwd_check_status(b + 8) != FWD_OK ||
                cr_get64(b + 16) >= FWD_LIMIT) {
                return FWD_BAD_FIELD;
            }
            return FWD_OK;
        case FWD_PING:
        case FWD_PONG:
            if (cr_get64(b) == 0 || cr_get64(b) >= FWD_LIMIT) {
                return FWD_BAD_FIELD;
            }
            return FWD_OK;
        default:
            return FWD_OK;
    }
}

/* ---- the incremental decoder ---------------------------------------------- */

/* A whole, checked frame: its body is valid until the callback returns. */
typedef void (*fwd_frame_cb)(void *arg, int type, const uint8_t *body,
                             uint64_t len);

struct fwd_dec
{
    uint64_t max_frame;   /* bodies longer are refused (FWD_TOO_BIG) */
    uint8_t hdr[FWD_HEADER];
    unsigned have;        /* header bytes held */
    int type;
    uint64_t len;         /* body length of the frame being read */
    uint64_t got;         /* body bytes held */
    uint8_t *body;        /* malloc'd, len bytes (NULL between frames) */
    uint8_t small[64];    /* bodies up to 64 bytes: no malloc */
    uint64_t frames;      /* whole frames handed on */
    int reason;           /* sticky: the first refusal */
};

static inline void fwd_dec_init(struct fwd_dec *d, uint64_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
}

/* Free what a decoder holds (a body part-way). */
static inline void fwd_dec_free(struct fwd_dec *d)
{
    if (d->body != NULL && d->body != d->small) {
        free(d->body);
    }
    d->body = NULL;
}

/* Nonzero while a frame is part-way. */
static inline int fwd_dec_busy(const struct fwd_dec *d)
{
    return d->reason == FWD_OK && (d->have != 0 || d->body != NULL);
}

static inline enum fwd_reason fwd__fail(struct fwd_dec *d, enum fwd_reason r)
{
    fwd_dec_free(d);
    d->reason = r;
    return r;
}

static inline enum fwd_reason fwd__header(struct fwd_dec *d)
{
    const uint8_t *h = d->hdr;
    d->type = h[0];
    if (d->type < FWD_APPLY || d->type > FWD_PONG) {
        return FWD_BAD_TYPE;
    }
    if (h[1] != FWD_VERSION) {
        return FWD_BAD_VERSION;
    }
    if (h[2] != 0 || h[3] != 0 || cr_get32(h + 4) != 0) {
        return FWD_BAD_RESERVED;
    }
    d->len = cr_get64(h + 8);
    if (d->type == FWD_APPLY ? d->len < FWD_APPLY_FIXED
                             : d->len != fwd_body_size(d->type)) {
        return FWD_BAD_LENGTH;
    }
    if (d->len > d->max_frame) {
        return FWD_TOO_BIG;
    }
    d->got = 0;
    if (d->len <= sizeof d->small) {
        d->body = d->small;
    } else {
        d->body = malloc((size_t)d->len);
        if (d->body == NULL) {
            return FWD_NOMEM;
        }
    }
    return FWD_OK;
}

/* Feed the next `len` bytes of the stream; each whole frame that checks goes
 * to cb. FWD_OK, or why the stream must be dropped (then every later call
 * says the same). */
static inline enum fwd_reason fwd_feed(struct fwd_dec *d, const uint8_t *buf,
                                       size_t len, fwd_frame_cb cb, void *arg)
{
    const uint8_t *p = buf, *end = buf + len;
    enum fwd_reason r;
    if (d->reason != FWD_OK) {
        return (enum fwd_reason)d->reason;
    }
    while (p < end) {
        if (d->body == NULL) {
            size_t k = FWD_HEADER - d->have;
            if (k > (size_t)(end - p)) {
                k = (size_t)(end - p);
            }
            memcpy(d->hdr + d->have, p, k);
            d->have += (unsigned)k;
            p += k;
            if (d->have < FWD_HEADER) {
                break;
            }
            d->have = 0;
            r = fwd__header(d);
            if (r != FWD_OK) {
                return fwd__fail(d, r);
            }
        }
        {
            uint64_t k = d->len - d->got;
            if (k > (uint64_t)(end - p)) {
                k = (uint64_t)(end - p);
            }
            memcpy(d->body + d->got, p, (size_t)k);
            d->got += k;
            p += k;
        }
        if (d->got == d->len) {
            r = fwd_check_body(d->type, d->body, d->len);
            if (r != FWD_OK) {
                return fwd__fail(d, r);
            }
            d->frames++;
            if (cb != NULL) {
                cb(arg, d->type, d->body, d->len);
            }
            fwd_dec_free(d);
        }
    }
    return FWD_OK;
}

/* The stream ended: FWD_TRUNCATED if a frame was part-way. */
static inline enum fwd_reason fwd_eof(struct fwd_dec *d)
{
    if (d->reason == FWD_OK && fwd_dec_busy(d)) {
        return fwd__fail(d, FWD_TRUNCATED);
    }
    return (enum fwd_reason)d->reason;
}

#endif /* CANONICAL_RAFT_FORWARD_WIRE_H */
