/*
 * command_scan.h -- the batteries' commonest commands, read in C, so that a
 * node applies a ReplicatedDict set without running Python bytecode
 * (core/lane.pxi).
 *
 * canonical_raft/batteries/command.py defines the format: the UTF-8 JSON
 * array [FORMAT, structure, op, version, args].  This reads only the compact
 * form its encode() writes, and only these values: strings without escapes
 * or control characters, integers of at most 18 digits, other numbers (as
 * their text), true, false, null.
 * Anything else (whitespace, an escape, a nested value, another
 * FORMAT, more than CS_ARGS_MAX arguments) is declined and the Python path,
 * which reads the whole format and words its errors, takes the command.
 * What is accepted, json.loads reads to the same values
 * (tests/test_batteries_lane.py checks it against json.loads).
 *
 * Header-only C (static inline), no allocation, no Python.
 */
#ifndef CANONICAL_RAFT_COMMAND_SCAN_H
#define CANONICAL_RAFT_COMMAND_SCAN_H

#include <stddef.h>
#include <string.h>

enum { CS_STR, CS_INT, CS_FLOAT, CS_TRUE, CS_FALSE, CS_NULL };

#define CS_ARGS_MAX 4
#define CS_INT_DIGITS 18     /* fits a long long with room to spare */
#define CS_FORMAT 1          /* command.FORMAT */

typedef struct {
    int kind;                /* CS_* */
    const char *p;           /* CS_STR: its UTF-8 bytes (not checked here);
                                CS_FLOAT: its text, as JSON's number grammar has it */
    size_t len;
    long long i;             /* CS_INT */
} cs_value;

typedef struct {
    cs_value structure;      /* CS_STR or CS_NULL */
    cs_value op;             /* CS_STR */
    long long version;       /* >= 1 */
    unsigned nargs;
    cs_value args[CS_ARGS_MAX];
} cs_command;

/* Each reader takes the text at p (p < end), returns the first byte after
 * what it read, or NULL to decline. */

static inline const char *cs_string(const char *p, const char *end, cs_value *v)
{
    const char *start = ++p;           /* past the opening quote */
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == '\\')
            return NULL;               /* JSON refuses the one, the other is an escape */
        p++;
    }
    if (p == end)
        return NULL;
    v->kind = CS_STR;
    v->p = start;
    v->len = (size_t)(p - start);
    return p + 1;
}

static inline const char *cs_digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* A JSON number: CS_INT if it has neither fraction nor exponent (and at
 * most CS_INT_DIGITS digits: a longer one is declined), else CS_FLOAT, its
 * text for the caller to convert as json does (float of the text). */
static inline const char *cs_number(const char *p, const char *end, cs_value *v)
{
    const char *start = p, *digits;
    int negative = 0;
    long long x = 0;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    digits = p;
    if (p == end || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++;                           /* JSON: no leading zeros; "01" fails the caller */
    else
        p = cs_digits(p, end);
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
        const char *more;
        if (*p == '.') {
            more = cs_digits(++p, end);
            if (more == p)
                return NULL;           /* "1." */
            p = more;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
            p++;
            if (p < end && (*p == '+' || *p == '-'))
                p++;
            more = cs_digits(p, end);
            if (more == p)
                return NULL;           /* "1e" */
            p = more;
        }
        v->kind = CS_FLOAT;
        v->p = start;
        v->len = (size_t)(p - start);
        return p;
    }
    if (p - digits > CS_INT_DIGITS)
        return NULL;
    for (const char *q = digits; q < p; q++)
        x = x * 10 + (*q - '0');
    v->kind = CS_INT;
    v->i = negative ? -x : x;
    return p;
}

static inline const char *cs_literal(const char *p, const char *end, const char *word,
                                     int kind, cs_value *v)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
        return NULL;
    v->kind = kind;
    return p + n;
}

static inline const char *cs_value_at(const char *p, const char *end, cs_value *v)
{
    switch (*p) {
    case '"': return cs_string(p, end, v);
    case 't': return cs_literal(p, end, "true", CS_TRUE, v);
    case 'f': return cs_literal(p, end, "false", CS_FALSE, v);
    case 'n': return cs_literal(p, end, "null", CS_NULL, v);
    default:  return cs_number(p, end, v);
    }
}

/* p at `c`: the byte after it, else NULL (also at the end). */
static inline const char *cs_expect(const char *p, const char *end, char c)
{
    return (p != NULL && p < end && *p == c) ? p + 1 : NULL;
}

/* 0 and *c filled if the n bytes at p are such a command, else -1. */
static inline int cs_command_scan(const char *p, size_t n, cs_command *c)
{
    const char *end = p + n;
    cs_value version;
    if (n < 3 || p[0] != '[' || p[1] != '0' + CS_FORMAT || p[2] != ',')
        return -1;
    p += 3;
    if (p == end || (p = cs_value_at(p, end, &c->structure)) == NULL
            || (c->structure.kind != CS_STR && c->structure.kind != CS_NULL))
        return -1;
    p = cs_expect(p, end, ',');
    if (p == NULL || p == end || *p != '"' || (p = cs_string(p, end, &c->op)) == NULL)
        return -1;
    p = cs_expect(p, end, ',');
    if (p == NULL || p == end || (p = cs_value_at(p, end, &version)) == NULL
            || version.kind != CS_INT || version.i < 1)
        return -1;
    c->version = version.i;
    p = cs_expect(cs_expect(p, end, ','), end, '[');
    if (p == NULL || p == end)
        return -1;
    c->nargs = 0;
    if (*p != ']') {
        for (;;) {
            if (c->nargs == CS_ARGS_MAX || p == end
                    || (p = cs_value_at(p, end, &c->args[c->nargs])) == NULL)
                return -1;
            c->nargs++;
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            break;
        }
    }
    p = cs_expect(cs_expect(p, end, ']'), end, ']');
    return (p != NULL && p == end) ? 0 : -1;
}

#endif
