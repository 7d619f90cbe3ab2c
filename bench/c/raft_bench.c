/*
 * raft_bench: one libraft node (libuv backend) for canonical_raft's benchmark.
 *
 * The C reference point for `python -m bench`: the same cluster, the same
 * load and the same state machine, driving libraft directly. One process
 * per node; the harness starts three of them and talks to each over
 * stdin/stdout with the protocol every node process speaks
 * (canonical_raft/testing/procs.py; requests are flat enough for
 * json_field() below):
 *
 *   stdout, once started:   {"event":"ready","pid":P,"impl":"c",...}
 *   {"id":N,"cmd":"status"} -> {"id":N,"reply":{"state":"LEADER",...}}
 *   {"id":N,"cmd":"load","args":{"size":S,"window":W,"warmup":T,"duration":D}}
 *                              (leader only; seconds)
 *       -> {"event":"measure_start"}  when the warm-up ends
 *       -> {"event":"measure_end"}    at the end of the measured period
 *       -> {"id":N,"reply":{"ops":N,"p50_us":...}}  once the in-flight drained
 *       (or {"id":N,"error":"..."})
 *   {"id":N,"cmd":"close"} or EOF  -> {"id":N,"reply":{}}, then the process exits
 *
 * The load keeps WINDOW raft_apply requests in flight, one command (one
 * buffer, one log entry) per raft_apply, and submits the next one from the
 * completion callback. Latency is submit -> callback, with uv_hrtime().
 *
 * The FSM does what the Python benchmark FSM does: count the command and
 * fold it into a CRC-32 (zlib's, the one Python's zlib.crc32 uses), and
 * return a pointer to the count as the result.
 *
 * Settings: --knob NAME=VALUE with canonical_raft's knob names (seconds for
 * timeouts). Unset knobs keep libraft's defaults; --libraft-defaults makes
 * every knob an error, so that a run "with libraft's defaults" is exactly
 * that. TCP_NODELAY is set through a small transport wrapper, since
 * libraft's TCP transport never sets it.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#ifdef BENCH_NO_ZLIB
/* Bitwise CRC-32 (the zlib polynomial) for machines without zlib headers;
 * slower than zlib's, so the harness warns when the driver is built so. */
static unsigned long crc32(unsigned long crc, const unsigned char *p, unsigned n)
{
    crc = ~crc & 0xffffffffUL;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320UL & (0UL - (crc & 1)));
        }
    }
    return ~crc & 0xffffffffUL;
}
#define HASH_NAME "crc32-bitwise"
#else
#include <zlib.h>
#define HASH_NAME "zlib-crc32"
#endif

#define MAX_SERVERS 16
#define LINE_MAX_BYTES 4096
#define DRAIN_TIMEOUT_MS 30000

/* ---------------------------------------------------------------------- */
/* Settings                                                               */

struct settings
{
    bool libraft_defaults;
    /* each: set? value */
    bool has_election, has_heartbeat, has_install, has_threshold, has_trailing,
        has_pre_vote, has_rounds, has_round_ms, has_inflight, has_segment;
    unsigned election_ms, heartbeat_ms, install_ms, threshold, trailing,
        rounds, round_ms, inflight;
    bool pre_vote;
    size_t segment_size;
    bool tcp_nodelay;
};

struct server
{
    raft_id id;
    char address[64];
};

/* ---------------------------------------------------------------------- */
/* The node                                                               */

struct bench_req
{
    struct raft_apply apply; /* first: raft hands it back to the callback */
    struct node *node;
    uint64_t submitted_ns;
    struct bench_req *next_free;
};

struct load
{
    bool active;    /* a "load" command is being served */
    bool measuring; /* between measure_start and measure_end */
    bool stopping;  /* deadline passed: no more submissions */
    size_t size;
    unsigned window;
    uint64_t start_ns, end_ns;
    unsigned inflight;
    uint64_t submitted, ops, errors;
    int first_error;
    uint64_t *lat; /* ns, for completions in the measured period */
    size_t n_lat, cap_lat;
    char *payload;
    struct bench_req *reqs;
    struct bench_req *free_list;
    int phase;         /* 0 warm-up, 1 measuring, 2 draining */
    uv_timer_t timer;  /* last: load_start() zeroes everything before it */
};

struct node
{
    uv_loop_t loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tcp;     /* libraft's TCP transport */
    struct raft_uv_transport wrapper; /* sets TCP_NODELAY, delegates to tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb wrapper_close_cb;
    struct raft_fsm fsm;
    struct settings cfg;
    raft_id id;
    char address[64];
    const char *data_dir;
    struct server servers[MAX_SERVERS];
    unsigned n_servers;

    uv_pipe_t in;
    char line[LINE_MAX_BYTES];
    size_t line_len;
    uv_signal_t sigterm;
    bool closing;
    long long load_id;  /* the request id of the running load's reply */
    long long close_id; /* the request id of "close" (-1: EOF) */
    bool in_closed;

    /* the FSM's state */
    uint64_t count;
    uint32_t digest;

    struct load load;
};

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void die(const char *what, const char *msg)
{
    emit("{\"event\":\"error\",\"error\":\"%s: %s\"}", what, msg);
    fprintf(stderr, "raft_bench: %s: %s\n", what, msg);
    exit(1);
}

/* ---------------------------------------------------------------------- */
/* The FSM                                                                */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct node *n = fsm->data;
    n->count++;
    n->digest = (uint32_t)crc32(n->digest, buf->base, (unsigned)buf->len);
    *result = &n->count;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct node *n = fsm->data;
    struct raft_buffer *array = raft_malloc(sizeof *array);
    if (array == NULL) {
        return RAFT_NOMEM;
    }
    array->len = 16;
    array->base = raft_malloc(array->len);
    if (array->base == NULL) {
        raft_free(array);
        return RAFT_NOMEM;
    }
    memset(array->base, 0, array->len);
    memcpy(array->base, &n->count, 8);
    memcpy((char *)array->base + 8, &n->digest, 4);
    *bufs = array;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct node *n = fsm->data;
    if (buf->len != 16) {
        return RAFT_CORRUPT;
    }
    memcpy(&n->count, buf->base, 8);
    memcpy(&n->digest, (char *)buf->base + 8, 4);
    raft_free(buf->base);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The transport wrapper: TCP_NODELAY on every raft connection            */

struct wrapped_connect
{
    struct raft_uv_connect inner;
    struct raft_uv_connect *outer;
    struct node *node;
};

static void copy_tcp_errmsg(struct node *n)
{
    snprintf(n->wrapper.errmsg, sizeof n->wrapper.errmsg, "%s", n->tcp.errmsg);
}

static void maybe_nodelay(struct node *n, struct uv_stream_s *stream)
{
    if (n->cfg.tcp_nodelay && stream != NULL) {
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    }
}

static int wr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct node *n = t->impl;
    int rv = n->tcp.init(&n->tcp, id, address);
    if (rv != 0) {
        copy_tcp_errmsg(n);
    }
    return rv;
}

static void wr_accepted(struct raft_uv_transport *tcp, raft_id id, const char *address,
                        struct uv_stream_s *stream)
{
    struct node *n = tcp->data;
    maybe_nodelay(n, stream);
    n->accept_cb(&n->wrapper, id, address, stream);
}

static int wr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct node *n = t->impl;
    n->accept_cb = cb;
    int rv = n->tcp.listen(&n->tcp, wr_accepted);
    if (rv != 0) {
        copy_tcp_errmsg(n);
    }
    return rv;
}

static void wr_connected(struct raft_uv_connect *inner, struct uv_stream_s *stream, int status)
{
    struct wrapped_connect *c = inner->data;
    struct raft_uv_connect *outer = c->outer;
    struct node *n = c->node;
    free(c);
    if (status == 0) {
        maybe_nodelay(n, stream);
    }
    outer->cb(outer, stream, status);
}

static int wr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct node *n = t->impl;
    struct wrapped_connect *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    c->outer = req;
    c->node = n;
    c->inner.data = c;
    int rv = n->tcp.connect(&n->tcp, &c->inner, id, address, wr_connected);
    if (rv != 0) {
        copy_tcp_errmsg(n);
        free(c);
    }
    return rv;
}

static void wr_closed(struct raft_uv_transport *tcp)
{
    struct node *n = tcp->data;
    n->wrapper_close_cb(&n->wrapper);
}

static void wr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct node *n = t->impl;
    n->wrapper_close_cb = cb;
    n->tcp.close(&n->tcp, wr_closed);
}

/* ---------------------------------------------------------------------- */
/* The load                                                               */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0) {
        return -1;
    }
    /* nearest rank */
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return (double)sorted[rank - 1] / 1000.0;
}

static void load_submit(struct node *n);

static void record_latency(struct load *l, uint64_t ns)
{
    if (l->n_lat == l->cap_lat) {
        size_t cap = l->cap_lat ? l->cap_lat * 2 : 65536;
        uint64_t *lat = realloc(l->lat, cap * sizeof *lat);
        if (lat == NULL) {
            return; /* keep counting ops; drop the sample */
        }
        l->lat = lat;
        l->cap_lat = cap;
    }
    l->lat[l->n_lat++] = ns;
}

static void load_finish(struct node *n)
{
    struct load *l = &n->load;
    uv_timer_stop(&l->timer);
    qsort(l->lat, l->n_lat, sizeof *l->lat, cmp_u64);
    double seconds = (double)(l->end_ns - l->start_ns) / 1e9;
    double sum = 0;
    for (size_t i = 0; i < l->n_lat; i++) {
        sum += (double)l->lat[i];
    }
    char p50[32] = "null", p99[32] = "null", max[32] = "null", mean[32] = "null";
    if (l->n_lat > 0) { /* no sample: JSON null */
        snprintf(p50, sizeof p50, "%.1f", percentile_us(l->lat, l->n_lat, 50));
        snprintf(p99, sizeof p99, "%.1f", percentile_us(l->lat, l->n_lat, 99));
        snprintf(max, sizeof max, "%.1f", percentile_us(l->lat, l->n_lat, 100));
        snprintf(mean, sizeof mean, "%.1f", sum / (double)l->n_lat / 1000.0);
    }
    emit("{\"id\":%lld,\"reply\":{\"ops\":%" PRIu64 ",\"seconds\":%.6f,\"ops_per_s\":%.1f,"
         "\"p50_us\":%s,\"p99_us\":%s,\"max_us\":%s,\"mean_us\":%s,"
         "\"errors\":%" PRIu64 ",\"first_error\":\"%s\",\"pending\":%u,"
         "\"submitted\":%" PRIu64 ",\"entries_per_command\":1}}",
         n->load_id, l->ops, seconds, seconds > 0 ? (double)l->ops / seconds : 0.0, p50, p99, max, mean,
         l->errors, l->first_error ? raft_strerror(l->first_error) : "", l->inflight,
         l->submitted);
    free(l->lat);
    l->lat = NULL;
    l->n_lat = l->cap_lat = 0;
    if (l->inflight == 0) {
        free(l->reqs);
        l->reqs = NULL;
    } /* else: raft still holds some; leak them rather than free in use */
    free(l->payload);
    l->payload = NULL;
    l->active = false;
}

static void on_applied(struct raft_apply *apply, int status, void *result)
{
    (void)result;
    struct bench_req *req = (struct bench_req *)apply;
    struct node *n = req->node;
    struct load *l = &n->load;
    uint64_t now = uv_hrtime();
    l->inflight--;
    if (status != 0) {
        l->errors++;
        if (!l->first_error) {
            l->first_error = status;
        }
    } else if (now >= l->start_ns && now <= l->end_ns) {
        l->ops++;
        record_latency(l, now - req->submitted_ns);
    }
    req->next_free = l->free_list;
    l->free_list = req;
    if (!l->stopping) {
        load_submit(n);
    } else if (l->phase == 2 && l->inflight == 0) {
        load_finish(n);
    }
}

static void load_submit(struct node *n)
{
    struct load *l = &n->load;
    while (!l->stopping && l->free_list != NULL) {
        struct bench_req *req = l->free_list;
        struct raft_buffer buf;
        buf.len = (l->size + 7) & ~(size_t)7; /* the uv backend wants 8-byte multiples */
        if (buf.len == 0) {
            buf.len = 8;
        }
        buf.base = raft_malloc(buf.len);
        if (buf.base == NULL) {
            l->errors++;
            return;
        }
        memcpy(buf.base, l->payload, buf.len);
        l->free_list = req->next_free;
        req->node = n;
        req->submitted_ns = uv_hrtime();
        int rv = raft_apply(&n->raft, &req->apply, &buf, 1, on_applied);
        l->submitted++;
        if (rv != 0) {
            raft_free(buf.base);
            req->next_free = l->free_list;
            l->free_list = req;
            l->errors++;
            if (!l->first_error) {
                l->first_error = rv;
            }
            return; /* retried on the next completion, or not at all */
        }
        l->inflight++;
    }
}

static void on_load_timer(uv_timer_t *timer)
{
    struct node *n = timer->data;
    struct load *l = &n->load;
    if (l->phase == 0) {
        l->phase = 1;
        l->measuring = true;
        emit("{\"event\":\"measure_start\"}");
        uv_timer_start(&l->timer, on_load_timer, (l->end_ns - l->start_ns) / 1000000, 0);
    } else if (l->phase == 1) {
        l->phase = 2;
        l->measuring = false;
        l->stopping = true;
        emit("{\"event\":\"measure_end\"}");
        if (l->inflight == 0) {
            load_finish(n);
        } else {
            uv_timer_start(&l->timer, on_load_timer, DRAIN_TIMEOUT_MS, 0);
        }
    } else {
        load_finish(n); /* the drain timed out: report what is still pending */
    }
}

static void load_start(struct node *n, long long id, size_t size, unsigned window, double warmup,
                       double duration)
{
    struct load *l = &n->load;
    if (l->active) {
        emit("{\"id\":%lld,\"error\":\"a load is already running\"}", id);
        return;
    }
    if (raft_state(&n->raft) != RAFT_LEADER) {
        emit("{\"id\":%lld,\"error\":\"node %llu is not the leader\"}", id,
             (unsigned long long)n->id);
        return;
    }
    if (window == 0 || duration <= 0 || warmup < 0) {
        emit("{\"id\":%lld,\"error\":\"bad load arguments\"}", id);
        return;
    }
    size_t len = (size + 7) & ~(size_t)7;
    memset(l, 0, offsetof(struct load, timer));
    l->payload = malloc(len ? len : 8);
    l->reqs = calloc(window, sizeof *l->reqs);
    if (l->payload == NULL || l->reqs == NULL) {
        free(l->payload);
        free(l->reqs);
        emit("{\"id\":%lld,\"error\":\"out of memory\"}", id);
        return;
    }
    n->load_id = id;
    for (size_t i = 0; i < (len ? len : 8); i++) {
        l->payload[i] = (char)('a' + i % 26);
    }
    for (unsigned i = 0; i < window; i++) {
        l->reqs[i].next_free = i + 1 < window ? &l->reqs[i + 1] : NULL;
    }
    l->free_list = &l->reqs[0];
    l->active = true;
    l->size = size;
    l->window = window;
    uint64_t now = uv_hrtime();
    l->start_ns = now + (uint64_t)(warmup * 1e9);
    l->end_ns = l->start_ns + (uint64_t)(duration * 1e9);
    l->timer.data = n;
    uv_timer_start(&l->timer, on_load_timer, (uint64_t)(warmup * 1000), 0);
    load_submit(n);
}

/* ---------------------------------------------------------------------- */
/* Control: one JSON request per line on stdin                            */

static void begin_close(struct node *n);

static void reply_status(struct node *n, long long id)
{
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_leader(&n->raft, &leader_id, &leader_address);
    const char *name;
    switch (raft_state(&n->raft)) {
        case RAFT_FOLLOWER: name = "FOLLOWER"; break;
        case RAFT_CANDIDATE: name = "CANDIDATE"; break;
        case RAFT_LEADER: name = "LEADER"; break;
        default: name = "UNAVAILABLE"; break;
    }
    emit("{\"id\":%lld,\"reply\":{\"state\":\"%s\",\"leader\":%llu,\"term\":%llu,"
         "\"commit_index\":%llu,\"last_applied\":%llu,\"last_index\":%llu,\"count\":%llu}}",
         id, name, (unsigned long long)leader_id, (unsigned long long)raft_current_term(&n->raft),
         (unsigned long long)raft_commit_index(&n->raft),
         (unsigned long long)raft_last_applied(&n->raft),
         (unsigned long long)raft_last_index(&n->raft), (unsigned long long)n->count);
}

/* The number after "key": in a request line; false if it is not there.
 * The parent writes compact JSON and no key repeats, so a search is enough. */
static bool json_number(const char *line, const char *key, double *out)
{
    char pattern[40];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(line, pattern);
    char *end;
    if (p == NULL) {
        return false;
    }
    p += strlen(pattern);
    *out = strtod(p, &end);
    return end != p;
}

static void handle_line(struct node *n, char *line)
{
    char op[32] = "";
    const char *cmd = strstr(line, "\"cmd\":\"");
    double id = -1, size, window, warmup, duration;
    if (cmd == NULL || sscanf(cmd, "\"cmd\":\"%31[^\"]\"", op) != 1) {
        return;
    }
    json_number(line, "id", &id);
    if (strcmp(op, "status") == 0) {
        reply_status(n, (long long)id);
    } else if (strcmp(op, "load") == 0) {
        if (!json_number(line, "size", &size) || !json_number(line, "window", &window)
            || !json_number(line, "warmup", &warmup) || !json_number(line, "duration", &duration)
            || size < 0 || window < 0) {
            emit("{\"id\":%lld,\"error\":\"load wants size, window, warmup, duration\"}",
                 (long long)id);
            return;
        }
        load_start(n, (long long)id, (size_t)size, (unsigned)window, warmup, duration);
    } else if (strcmp(op, "close") == 0) {
        n->close_id = (long long)id;
        begin_close(n);
    } else {
        emit("{\"id\":%lld,\"error\":\"unknown command %s\"}", (long long)id, op);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct node *n = handle->data;
    buf->base = n->line + n->line_len;
    buf->len = sizeof n->line - n->line_len;
}

static void on_stdin(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct node *n = stream->data;
    if (nread < 0) { /* EOF or error: the harness is gone */
        begin_close(n);
        return;
    }
    n->line_len += (size_t)nread;
    char *start = n->line;
    char *nl;
    while ((nl = memchr(start, '\n', n->line_len - (size_t)(start - n->line))) != NULL) {
        *nl = '\0';
        handle_line(n, start);
        start = nl + 1;
        if (n->closing) {
            break;
        }
    }
    size_t rest = n->line_len - (size_t)(start - n->line);
    memmove(n->line, start, rest);
    n->line_len = rest;
    if (n->line_len == sizeof n->line) {
        n->line_len = 0; /* an over-long line: drop it */
    }
}

static void on_sigterm(uv_signal_t *handle, int signum)
{
    (void)signum;
    begin_close(handle->data);
}

/* ---------------------------------------------------------------------- */
/* Start and close                                                        */

static void on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void on_raft_closed(struct raft *r)
{
    struct node *n = r->data;
    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->tcp);
    uv_close((uv_handle_t *)&n->load.timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->sigterm, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&n->in)) {
        uv_close((uv_handle_t *)&n->in, on_handle_closed);
    }
}

static void begin_close(struct node *n)
{
    if (n->closing) {
        return;
    }
    n->closing = true;
    uv_read_stop((uv_stream_t *)&n->in);
    n->load.stopping = true;
    raft_close(&n->raft, on_raft_closed);
}

static void parse_cluster(struct node *n, const char *spec)
{
    char *copy = strdup(spec);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL || n->n_servers == MAX_SERVERS) {
            die("--cluster", "expected id=host:port,id=host:port,...");
        }
        *eq = '\0';
        struct server *s = &n->servers[n->n_servers++];
        s->id = strtoull(item, NULL, 10);
        snprintf(s->address, sizeof s->address, "%s", eq + 1);
    }
    free(copy);
}

static bool parse_bool(const char *v)
{
    return strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0;
}

static unsigned seconds_to_ms(const char *v)
{
    double s = strtod(v, NULL);
    return (unsigned)(s * 1000.0 + 0.5);
}

static void parse_knob(struct settings *c, const char *knob)
{
    char name[64];
    const char *eq = strchr(knob, '=');
    if (eq == NULL || (size_t)(eq - knob) >= sizeof name) {
        die("--knob", "expected NAME=VALUE");
    }
    memcpy(name, knob, (size_t)(eq - knob));
    name[eq - knob] = '\0';
    const char *v = eq + 1;
    if (c->libraft_defaults) {
        die("--knob", "not allowed with --libraft-defaults");
    }
    if (strcmp(name, "election_timeout") == 0) {
        c->has_election = true, c->election_ms = seconds_to_ms(v);
    } else if (strcmp(name, "heartbeat_timeout") == 0) {
        c->has_heartbeat = true, c->heartbeat_ms = seconds_to_ms(v);
    } else if (strcmp(name, "install_snapshot_timeout") == 0) {
        c->has_install = true, c->install_ms = seconds_to_ms(v);
    } else if (strcmp(name, "snapshot_threshold") == 0) {
        c->has_threshold = true, c->threshold = (unsigned)strtoul(v, NULL, 10);
    } else if (strcmp(name, "snapshot_trailing") == 0) {
        c->has_trailing = true, c->trailing = (unsigned)strtoul(v, NULL, 10);
    } else if (strcmp(name, "pre_vote") == 0) {
        c->has_pre_vote = true, c->pre_vote = parse_bool(v);
    } else if (strcmp(name, "max_catch_up_rounds") == 0) {
        c->has_rounds = true, c->rounds = (unsigned)strtoul(v, NULL, 10);
    } else if (strcmp(name, "max_catch_up_round_duration") == 0) {
        c->has_round_ms = true, c->round_ms = seconds_to_ms(v);
    } else if (strcmp(name, "max_inflight_entries") == 0) {
        c->has_inflight = true, c->inflight = (unsigned)strtoul(v, NULL, 10);
    } else if (strcmp(name, "segment_size") == 0) {
        c->has_segment = true, c->segment_size = (size_t)strtoull(v, NULL, 10);
    } else if (strcmp(name, "tcp_nodelay") == 0) {
        c->tcp_nodelay = parse_bool(v);
    } else if (strcmp(name, "snapshot_compression") == 0) {
        /* libraft 0.22's switch is a no-op; our 16-byte snapshots need none */
    } else {
        fprintf(stderr, "raft_bench: unknown knob %s (ignored)\n", name);
    }
}

static void apply_settings(struct node *n)
{
    struct settings *c = &n->cfg;
    struct raft *r = &n->raft;
    if (c->has_election) raft_set_election_timeout(r, c->election_ms);
    if (c->has_heartbeat) raft_set_heartbeat_timeout(r, c->heartbeat_ms);
    if (c->has_install) raft_set_install_snapshot_timeout(r, c->install_ms);
    if (c->has_threshold) raft_set_snapshot_threshold(r, c->threshold);
    if (c->has_trailing) raft_set_snapshot_trailing(r, c->trailing);
    if (c->has_pre_vote) raft_set_pre_vote(r, c->pre_vote);
    if (c->has_rounds) raft_set_max_catch_up_rounds(r, c->rounds);
    if (c->has_round_ms) raft_set_max_catch_up_round_duration(r, c->round_ms);
    if (c->has_inflight) raft_set_max_inflight_entries(r, c->inflight);
    if (c->has_segment) raft_uv_set_segment_size(&n->io, c->segment_size);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raft_bench --node ID --cluster ID=HOST:PORT,... --data-dir DIR\n"
            "                  [--knob NAME=VALUE]... [--libraft-defaults]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct node node; /* zeroed; lives for the whole process */
    struct node *n = &node;
    n->close_id = -1;
    const char *cluster = NULL;
    signal(SIGINT, SIG_IGN); /* the harness owns Ctrl-C and stops us in order */
    signal(SIGPIPE, SIG_IGN);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--libraft-defaults") == 0) {
            n->cfg.libraft_defaults = true;
            continue;
        }
        if (v == NULL) {
            usage();
        }
        i++;
        if (strcmp(a, "--node") == 0) {
            n->id = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--cluster") == 0) {
            cluster = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            n->data_dir = v;
        } else if (strcmp(a, "--knob") == 0) {
            parse_knob(&n->cfg, v);
        } else {
            usage();
        }
    }
    if (n->id == 0 || cluster == NULL || n->data_dir == NULL) {
        usage();
    }
    parse_cluster(n, cluster);
    for (unsigned i = 0; i < n->n_servers; i++) {
        if (n->servers[i].id == n->id) {
            snprintf(n->address, sizeof n->address, "%s", n->servers[i].address);
        }
    }
    if (n->address[0] == '\0') {
        die("--cluster", "does not include this node's id");
    }

    int rv = uv_loop_init(&n->loop);
    if (rv != 0) {
        die("uv_loop_init", uv_strerror(rv));
    }
    n->tcp.version = 1; /* the transport interface version we speak */
    rv = raft_uv_tcp_init(&n->tcp, &n->loop);
    if (rv != 0) {
        die("raft_uv_tcp_init", raft_strerror(rv));
    }
    n->tcp.data = n;
    n->wrapper.version = 1;
    n->wrapper.impl = n;
    n->wrapper.init = wr_init;
    n->wrapper.listen = wr_listen;
    n->wrapper.connect = wr_connect;
    n->wrapper.close = wr_close;
    rv = raft_uv_init(&n->io, &n->loop, n->data_dir, &n->wrapper);
    if (rv != 0) {
        die("raft_uv_init", n->io.errmsg);
    }
    n->fsm.version = 1;
    n->fsm.data = n;
    n->fsm.apply = fsm_apply;
    n->fsm.snapshot = fsm_snapshot;
    n->fsm.restore = fsm_restore;
    rv = raft_init(&n->raft, &n->io, &n->fsm, n->id, n->address);
    if (rv != 0) {
        die("raft_init", raft_errmsg(&n->raft));
    }
    n->raft.data = n;
    raft_seed(&n->raft, (unsigned)(uv_hrtime() ^ (n->id * 2654435761u)));

    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < n->n_servers; i++) {
        rv = raft_configuration_add(&conf, n->servers[i].id, n->servers[i].address, RAFT_VOTER);
        if (rv != 0) {
            die("raft_configuration_add", raft_strerror(rv));
        }
    }
    rv = raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        die("raft_bootstrap", raft_errmsg(&n->raft));
    }
    apply_settings(n);
    rv = raft_start(&n->raft);
    if (rv != 0) {
        die("raft_start", raft_errmsg(&n->raft));
    }

    uv_timer_init(&n->loop, &n->load.timer);
    uv_signal_init(&n->loop, &n->sigterm);
    n->sigterm.data = n;
    uv_signal_start(&n->sigterm, on_sigterm, SIGTERM);
    uv_pipe_init(&n->loop, &n->in, 0);
    n->in.data = n;
    rv = uv_pipe_open(&n->in, 0);
    if (rv == 0) {
        rv = uv_read_start((uv_stream_t *)&n->in, on_alloc, on_stdin);
    }
    if (rv != 0) {
        die("stdin", uv_strerror(rv));
    }

    emit("{\"event\":\"ready\",\"pid\":%d,\"impl\":\"c\",\"hash\":\"" HASH_NAME "\","
         "\"libraft_defaults\":%s,\"tcp_nodelay\":%s}",
         (int)getpid(), n->cfg.libraft_defaults ? "true" : "false",
         n->cfg.tcp_nodelay ? "true" : "false");

    uv_run(&n->loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&n->loop);
    if (n->close_id >= 0) {
        emit("{\"id\":%lld,\"reply\":{}}", n->close_id);
    }
    return rv == 0 ? 0 : 3;
}
