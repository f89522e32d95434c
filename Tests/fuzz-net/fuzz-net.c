/* A bounded network-level fuzzer for the connect-data listener (`make fuzz-net`).
 *
 * One process. A WSP_CATALOG_CDATA_IPV4 listener on 127.0.0.1 is served by one accept thread
 * whose condition function decides by the caller data's first byte (accept with callee data,
 * reject, or defer once then accept) and checks every request it is shown. Meanwhile raw POSIX
 * clients send handshake bytes of every kind (valid version 1 and 2 requests, truncated,
 * bit-mutated, oversized, doubled, followed by extra bytes, random), delivered in one write,
 * in chunks or dripped slowly, then left open, half-closed or reset; and good WSP clients keep
 * connecting through lpWSPConnect with caller data.
 *
 * Each byte stream is classified by the codec itself (wsp_hs_decode with the listener's
 * limit), which is the protocol's one implementation and is fuzzed on its own (`make fuzz`):
 *   valid       the bytes are exactly one valid REQUEST
 *   extra       a valid REQUEST followed by more bytes (doubled requests included)
 *   incomplete  a strict prefix of a valid REQUEST
 *   bad         anything the decoder rejects (bad magic, version, field; too long)
 *
 * The run fails, with a message naming the case, when:
 *   - the condition function is shown a request no sender built as valid (byte-identical:
 *     caller data, QoS, and the callee capacity it is offered);
 *   - a valid request that the server answers gets any answer but the one its caller data
 *     decides, or is dropped unanswered before the handshake deadline could have passed
 *     (a half-closed client may be dropped: the listener reads that as the client leaving);
 *   - any other request is answered with ACCEPT or PENDING (REFUSE or a plain close are fine);
 *   - the server neither answers nor closes a connection (each client waits
 *     CLIENT_PATIENCE_MS), or the whole run does not end (the watchdog);
 *   - a good client's connect does not end as its caller data decides (unless it failed
 *     as dropped after the handshake deadline had passed: its thread stalled between
 *     connecting and sending; such clients are counted in the summary);
 *   - the process's descriptor count is not back to its value before the run once everything
 *     is closed, or the listener's counters disagree with what the accept thread saw.
 *
 * EXTRA-BYTES RULE (issue 10): any byte that follows a REQUEST before the server's answer makes
 * the request malformed, at every request size: the connection is dropped (or refused) and
 * never presented. The fuzzer sends the extra bytes in the same write as the request's last
 * byte, so the server always has them before it could present the request, and aims request
 * sizes at the server's read-buffer sizes (512, 1024, ... bytes), where the rule was broken.
 * See EXTRA_BYTES_ARE_MALFORMED and classify().
 *
 * Environment: FUZZ_NET_SECONDS (default 20), FUZZ_NET_CASES (most raw cases, default
 * 1000000), FUZZ_NET_SEED (default: from the clock; printed, so that a failing run's byte
 * streams can be made again, though thread timing differs between runs).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wsp.h>

#include "handshake.h"

/* ---- parameters ---------------------------------------------------------------------------- */

/* The issue-10 rule for bytes after a REQUEST: such a request is malformed, never presented,
 * never accepted. Setting this to 0 would accept the old behaviour (never do that silently). */
#define EXTRA_BYTES_ARE_MALFORMED 1

/* Raw clients spend most of their time waiting for a deadline; good clients are paced so that
 * they do not take the CPU the raw ones need. */
#define RAW_THREADS 16
#define GOOD_THREADS 2
#define GOOD_PAUSE_MS 1
/* High enough to reach request sizes of 8192 bytes; above it, requests are "oversized". */
#define LISTENER_MAX_CALLER 12000u
#define LISTENER_MAX_CALLEE WSP_DEFAULT_MAX_CALLEE_DATA
/* Short, so that dripped and truncated requests end fast; long enough that a good client,
 * which sends its request right after connecting, meets it unless its thread stalls. */
#define HANDSHAKE_DEADLINE_MS 500u
/* Larger than the number of clients at once: a full backlog never refuses a valid request. */
#define BACKLOG 256
/* How long a raw client waits for the server to answer or close before calling it a hang. */
#define CLIENT_PATIENCE_MS 20000
/* How long, past the run's time, the watchdog waits before ending the process. */
#define WATCHDOG_GRACE_S 120
/* The most callee data the condition function wants to write (it writes what fits). */
#define CALLEE_WANT_MAX 1500u
/* Extra bytes and the request they follow are written together within this many bytes,
 * which loopback TCP delivers at once (a request is at most about 13 KB here). */
#define ONE_SEGMENT 16000u
/* The server's read-buffer sizes: the request sizes worth aiming at. */
static const size_t BUFFER_SIZES[] = {512, 1024, 2048, 4096, 8192};

/* ---- failures ------------------------------------------------------------------------------ */

static atomic_int failures;

/* Prints a failure (the first 30 of them) and counts it; the run's exit status is 1 if any. */
static void fail(const char *fmt, ...) {
    int n = atomic_fetch_add(&failures, 1);
    if (n >= 30)
        return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fuzz-net: FAIL: %s\n", msg);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- a seeded generator per thread (splitmix64) -------------------------------------------- */

typedef struct { uint64_t s; } rng;

static uint64_t next64(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint32_t between(rng *r, uint32_t lo, uint32_t hi) {
    return lo + (uint32_t)(next64(r) % ((uint64_t)hi - lo + 1));
}

static int chance(rng *r, unsigned percent) {
    return next64(r) % 100 < percent;
}

static void fill(rng *r, uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)next64(r);
}

/* ---- what the condition function decides ---------------------------------------------------- */

enum decision { DECIDE_ACCEPT, DECIDE_REJECT, DECIDE_DEFER_ONCE };

static enum decision decision_for(const uint8_t *data, uint32_t len) {
    if (len == 0)
        return DECIDE_ACCEPT;
    switch (data[0] % 4) {
    case 2:
        return DECIDE_REJECT;
    case 3:
        return DECIDE_DEFER_ONCE;
    default:
        return DECIDE_ACCEPT;
    }
}

/* The callee data the condition function writes for this caller data, given the capacity it is
 * offered: as much of a pattern derived from the caller data as fits. */
static uint32_t callee_len_for(uint32_t caller_len, uint32_t offered) {
    uint32_t want = caller_len % CALLEE_WANT_MAX;
    return want < offered ? want : offered;
}

static uint8_t callee_byte(const uint8_t *caller, uint32_t caller_len, uint32_t i) {
    return (uint8_t)(caller[i % caller_len] ^ 0xA5u ^ (uint8_t)i);
}

/* The callee capacity the listener offers for a request. */
static uint32_t offered_for(int has_capacity, uint32_t capacity) {
    return has_capacity && capacity < LISTENER_MAX_CALLEE ? capacity : LISTENER_MAX_CALLEE;
}

/* ---- the registry of requests senders built ------------------------------------------------- */

/* A request's content as the condition function sees it, hashed: caller data (or none), QoS
 * (or none) and the callee capacity offered. 64 bits of FNV-1a stand for "byte-identical". */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t content_hash(int has_data, const uint8_t *data, uint32_t len, int has_qos,
                             const uint32_t flow[16], const uint8_t *specific,
                             uint32_t specific_len, uint32_t offered) {
    uint64_t h = 0xCBF29CE484222325ull;
    uint32_t head[4] = {(uint32_t)has_data, has_data ? len : 0, (uint32_t)has_qos, offered};
    h = fnv(h, head, sizeof head);
    if (has_data)
        h = fnv(h, data, len);
    if (has_qos) {
        h = fnv(h, flow, 16 * sizeof flow[0]);
        h = fnv(h, &specific_len, sizeof specific_len);
        h = fnv(h, specific, specific_len);
    }
    return h;
}

static void flow_of_wire(const wsp_hs_qos *q, uint32_t flow[16]) {
    const wsp_hs_flowspec *f[2] = {&q->sending, &q->receiving};
    for (int i = 0; i < 2; i++) {
        const uint32_t v[8] = {f[i]->token_rate,     f[i]->token_bucket_size, f[i]->peak_bandwidth,
                               f[i]->latency,        f[i]->delay_variation,   f[i]->service_type,
                               f[i]->max_sdu_size,   f[i]->minimum_policed_size};
        memcpy(flow + 8 * i, v, sizeof v);
    }
}

static void flow_of_qos(const QOS *q, uint32_t flow[16]) {
    const FLOWSPEC *f[2] = {&q->SendingFlowspec, &q->ReceivingFlowspec};
    for (int i = 0; i < 2; i++) {
        const uint32_t v[8] = {f[i]->TokenRate,      f[i]->TokenBucketSize, f[i]->PeakBandwidth,
                               f[i]->Latency,        f[i]->DelayVariation,  f[i]->ServiceType,
                               f[i]->MaxSduSize,     f[i]->MinimumPolicedSize};
        memcpy(flow + 8 * i, v, sizeof v);
    }
}

struct record {
    struct record *next; /* same port, newest first */
    uint16_t port;
    int valid;           /* the sender built exactly one valid REQUEST */
    const char *kind;
    size_t request_len, extra_len; /* extra: the valid prefix's size and what followed it */
    uint64_t hash;
    enum decision decision;
    atomic_int presented; /* times the condition function was shown it */
    atomic_int accepted;  /* the condition function answered CF_ACCEPT */
};

/* Records live until the end of the run: the listener may present a request after its raw
 * client reset it, and that presentation must still find what the sender built. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct record *by_port[65536];

static struct record *record_add(uint16_t port, int valid, const char *kind, uint64_t hash,
                                 enum decision d, size_t request_len, size_t extra_len) {
    struct record *rec = calloc(1, sizeof *rec);
    if (!rec) {
        fail("out of memory");
        exit(1);
    }
    *rec = (struct record){.port = port, .valid = valid, .kind = kind, .hash = hash,
                           .decision = d, .request_len = request_len, .extra_len = extra_len};
    pthread_mutex_lock(&registry_lock);
    rec->next = by_port[port];
    by_port[port] = rec;
    pthread_mutex_unlock(&registry_lock);
    return rec;
}

/* The valid record of that port and content, else an invalid one (to name it), else NULL. */
static struct record *record_find(uint16_t port, uint64_t hash) {
    struct record *invalid = NULL, *found = NULL;
    pthread_mutex_lock(&registry_lock);
    for (struct record *rec = by_port[port]; rec && !found; rec = rec->next) {
        if (rec->hash != hash)
            continue;
        if (rec->valid)
            found = rec;
        else if (!invalid)
            invalid = rec;
    }
    pthread_mutex_unlock(&registry_lock);
    return found ? found : invalid;
}

static void registry_free(void) {
    for (size_t i = 0; i < 65536; i++) {
        while (by_port[i]) {
            struct record *next = by_port[i]->next;
            free(by_port[i]);
            by_port[i] = next;
        }
    }
}

/* ---- the server -------------------------------------------------------------------------------- */

static WSPPROC_TABLE T;
static SOCKET listener = INVALID_SOCKET;
static struct sockaddr_in listen_addr;

static atomic_long presentations, cf_accepts, cf_rejects, cf_defers, served_accepts,
    served_rejects;

static uint16_t port_of_id(LPWSABUF id) {
    if (!id || !id->buf || id->len < sizeof(struct sockaddr_in))
        return 0;
    return ntohs(((const struct sockaddr_in *)(const void *)id->buf)->sin_port);
}

static int condition(LPWSABUF lpCallerId, LPWSABUF lpCallerData, LPQOS lpSQOS, LPQOS lpGQOS,
                     LPWSABUF lpCalleeId, LPWSABUF lpCalleeData, GROUP *g,
                     DWORD_PTR dwCallbackData) {
    (void)lpGQOS, (void)lpCalleeId, (void)g, (void)dwCallbackData;
    atomic_fetch_add(&presentations, 1);
    uint16_t port = port_of_id(lpCallerId);
    const uint8_t *data = lpCallerData ? (const uint8_t *)lpCallerData->buf : NULL;
    uint32_t len = lpCallerData ? lpCallerData->len : 0;
    uint32_t flow[16] = {0};
    if (lpSQOS)
        flow_of_qos(lpSQOS, flow);
    uint32_t offered = lpCalleeData ? lpCalleeData->len : 0;
    uint64_t hash = content_hash(lpCallerData != NULL, data, len, lpSQOS != NULL, flow,
                                 lpSQOS ? (const uint8_t *)lpSQOS->ProviderSpecific.buf : NULL,
                                 lpSQOS ? lpSQOS->ProviderSpecific.len : 0, offered);
    struct record *rec = record_find(port, hash);
    if (!rec) {
        fail("the condition function was shown a request no sender built (client port %u, "
             "caller data %s%u bytes, QoS %s, callee capacity offered %u)",
             port, lpCallerData ? "" : "none, ", len, lpSQOS ? "yes" : "no", offered);
        return CF_REJECT;
    }
    if (!rec->valid) {
        fail("the condition function was shown a malformed request: %s (client port %u, "
             "a valid %zu-byte REQUEST followed by %zu more bytes in the same write; "
             "EXTRA-BYTES RULE: any byte after a REQUEST makes it malformed)",
             rec->kind, port, rec->request_len, rec->extra_len);
        return CF_REJECT;
    }
    int shown = atomic_fetch_add(&rec->presented, 1);
    if (rec->decision == DECIDE_REJECT) {
        atomic_fetch_add(&cf_rejects, 1);
        return CF_REJECT;
    }
    if (rec->decision == DECIDE_DEFER_ONCE && shown == 0) {
        atomic_fetch_add(&cf_defers, 1);
        return CF_DEFER;
    }
    uint32_t n = len ? callee_len_for(len, offered) : 0;
    for (uint32_t i = 0; i < n; i++)
        lpCalleeData->buf[i] = (char)callee_byte(data, len, i);
    if (lpCalleeData)
        lpCalleeData->len = n;
    atomic_fetch_add(&rec->accepted, 1);
    atomic_fetch_add(&cf_accepts, 1);
    return CF_ACCEPT;
}

static void *accept_thread(void *arg) {
    (void)arg;
    for (;;) {
        int err = 0;
        struct sockaddr_in peer;
        int peer_len = sizeof peer;
        SOCKET s = T.lpWSPAccept(listener, (struct sockaddr *)&peer, &peer_len, condition, 0,
                                 &err);
        if (s != INVALID_SOCKET) {
            atomic_fetch_add(&served_accepts, 1);
            int cerr = 0;
            if (T.lpWSPCloseSocket(s, &cerr) != 0)
                fail("closing an accepted socket: %s", WSPErrorName(cerr));
            continue;
        }
        if (err == WSATRY_AGAIN)
            continue; /* deferred: it stays first in line and is presented again */
        if (err == WSAECONNREFUSED) {
            atomic_fetch_add(&served_rejects, 1);
            continue;
        }
        if (err == WSAEINTR || err == WSAENOTSOCK)
            return NULL; /* the listener was closed: the run is over */
        fail("lpWSPAccept failed with %s (%s) for a well-behaved condition function",
             WSPErrorName(err), WSPErrorString(err));
        return NULL;
    }
}

/* ---- building byte streams --------------------------------------------------------------------- */

enum kind {
    K_VALID_V1,
    K_VALID_V2,
    K_TRUNCATED,
    K_MUTATED,
    K_OVERSIZED,
    K_DOUBLED,
    K_EXTRA,
    K_RANDOM,
    K_COUNT
};
static const char *const KIND_NAMES[K_COUNT] = {"valid-v1", "valid-v2", "truncated", "mutated",
                                                "oversized", "doubled", "extra-bytes", "random"};

enum delivery { D_ONE_WRITE, D_CHUNKS, D_DRIP, D_COUNT };
static const char *const DELIVERY_NAMES[D_COUNT] = {"one write", "chunks", "drip"};
enum ending { E_OPEN, E_HALF_CLOSE, E_RESET, E_COUNT };
static const char *const ENDING_NAMES[E_COUNT] = {"kept open", "half-closed", "reset"};

enum class { C_VALID, C_EXTRA, C_INCOMPLETE, C_BAD, C_COUNT };
static const char *const CLASS_NAMES[C_COUNT] = {"valid", "extra", "incomplete", "bad"};

/* Up to two whole frames plus extras. */
#define STREAM_CAP (2 * WSP_HS_MAX_FRAME + 256)

/* Encodes a random valid REQUEST into out (capacity STREAM_CAP); v2 adds a callee capacity;
 * max_data bounds its caller data. Often aims the whole frame at a read-buffer size. */
static size_t build_request(rng *r, int v2, uint32_t max_data, uint8_t *out,
                            uint8_t *scratch_data, uint8_t *scratch_specific) {
    wsp_hs_frame f;
    memset(&f, 0, sizeof f);
    f.type = WSP_HS_REQUEST;
    /* Version 3 now and then: a client that reads reasons, sometimes with ample patience. */
    f.reads_reasons = chance(r, 40);
    if (f.reads_reasons && chance(r, 50)) {
        f.has_patience = 1;
        f.patience_ms = 60000;
    }
    if (v2) {
        f.has_callee_capacity = 1;
        static const uint32_t caps[] = {0, 1, 3, 16, 1023, 1024, 1025, 16383};
        f.callee_capacity = chance(r, 50) ? caps[between(r, 0, 7)] : between(r, 0, WSP_HS_MAX_DATA);
    }
    f.has_qos = chance(r, 20);
    if (f.has_qos) {
        uint32_t flow[16];
        for (int i = 0; i < 16; i++)
            flow[i] = chance(r, 30) ? QOS_NOT_SPECIFIED : (uint32_t)next64(r);
        wsp_hs_flowspec *fs[2] = {&f.qos.sending, &f.qos.receiving};
        for (int i = 0; i < 2; i++)
            *fs[i] = (wsp_hs_flowspec){flow[8 * i], flow[8 * i + 1], flow[8 * i + 2],
                                       flow[8 * i + 3], flow[8 * i + 4], flow[8 * i + 5],
                                       flow[8 * i + 6], flow[8 * i + 7]};
        f.qos.specific_len = chance(r, 50) ? 0 : between(r, 0, WSP_HS_MAX_QOS_SPECIFIC);
        fill(r, scratch_specific, f.qos.specific_len);
        f.qos.specific = scratch_specific;
    }
    f.has_data = chance(r, 85);
    if (f.has_data) {
        size_t fixed = WSP_HS_HEADER_SIZE + (v2 ? WSP_HS_CAPACITY_SIZE : 0) +
                       (f.has_patience ? WSP_HS_PATIENCE_SIZE : 0) + 2 +
                       (f.has_qos ? WSP_HS_QOS_FIXED_SIZE + f.qos.specific_len : 0);
        uint32_t len;
        if (chance(r, 35)) { /* the whole frame one of the read-buffer sizes, or one off */
            size_t target = BUFFER_SIZES[between(r, 0, 4)] + between(r, 0, 2) - 1;
            len = target > fixed && target - fixed <= max_data ? (uint32_t)(target - fixed) : 0;
        } else if (chance(r, 50)) {
            len = between(r, 0, max_data < 64 ? max_data : 64);
        } else {
            len = between(r, 0, max_data);
        }
        f.data_len = len;
        fill(r, scratch_data, len);
        f.data = scratch_data;
    }
    size_t n = wsp_hs_encode(&f, out, WSP_HS_MAX_FRAME);
    if (n == 0) {
        fail("the codec refused to encode a request the fuzzer built as valid");
        exit(1);
    }
    return n;
}

struct stream {
    enum kind kind;
    uint8_t *bytes;
    size_t len;
    size_t keep_together; /* deliver bytes from here to the end in the same write */
};

static void build_stream(rng *r, struct stream *s, uint8_t *scratch_data,
                         uint8_t *scratch_specific) {
    s->kind = (enum kind)between(r, 0, K_COUNT - 1);
    uint8_t *b = s->bytes;
    size_t n = 0;
    s->keep_together = 0;
    switch (s->kind) {
    case K_VALID_V1:
    case K_VALID_V2:
        n = build_request(r, s->kind == K_VALID_V2, LISTENER_MAX_CALLER, b, scratch_data,
                          scratch_specific);
        break;
    case K_TRUNCATED:
        n = build_request(r, chance(r, 50), LISTENER_MAX_CALLER, b, scratch_data,
                          scratch_specific);
        n = between(r, 1, (uint32_t)n - 1);
        break;
    case K_MUTATED: {
        n = build_request(r, chance(r, 50), LISTENER_MAX_CALLER, b, scratch_data,
                          scratch_specific);
        uint32_t flips = between(r, 1, 4);
        for (uint32_t i = 0; i < flips; i++) {
            /* Mostly in the header and the length fields, where decisions are made. */
            size_t at = chance(r, 70) ? between(r, 0, (uint32_t)(n < 16 ? n : 16) - 1)
                                      : between(r, 0, (uint32_t)n - 1);
            b[at] ^= (uint8_t)(1u << between(r, 0, 7));
        }
        break;
    }
    case K_OVERSIZED:
        n = build_request(r, chance(r, 50), WSP_HS_MAX_DATA, b, scratch_data, scratch_specific);
        /* Rebuild until the data is over the listener's limit: then the codec says too long. */
        while (wsp_hs_decode(b, n, LISTENER_MAX_CALLER, 1u << WSP_HS_REQUEST, NULL) != WSP_HS_TOO_LONG) {
            wsp_hs_frame f;
            memset(&f, 0, sizeof f);
            f.type = WSP_HS_REQUEST;
            f.has_data = 1;
            f.data_len = between(r, LISTENER_MAX_CALLER + 1, WSP_HS_MAX_DATA);
            fill(r, scratch_data, f.data_len);
            f.data = scratch_data;
            n = wsp_hs_encode(&f, b, WSP_HS_MAX_FRAME);
        }
        break;
    case K_DOUBLED: {
        n = build_request(r, chance(r, 50), LISTENER_MAX_CALLER, b, scratch_data,
                          scratch_specific);
        s->keep_together = n - 1;
        /* Both in at most ONE_SEGMENT bytes: then the second is in the server's receive
         * queue by the time the first has been read (the EXTRA-BYTES RULE's premise). */
        size_t room = ONE_SEGMENT - n - WSP_HS_QOS_FIXED_SIZE - WSP_HS_MAX_QOS_SPECIFIC - 16;
        n += build_request(r, chance(r, 50), (uint32_t)room, b + n, scratch_data,
                           scratch_specific);
        break;
    }
    case K_EXTRA: {
        n = build_request(r, chance(r, 50), LISTENER_MAX_CALLER, b, scratch_data,
                          scratch_specific);
        s->keep_together = n - 1;
        size_t extra = chance(r, 40) ? 1 : between(r, 1, 200);
        fill(r, b + n, extra);
        n += extra;
        break;
    }
    case K_RANDOM:
        n = between(r, 1, chance(r, 80) ? 64 : 4000);
        fill(r, b, n);
        if (chance(r, 30) && n >= 2) { /* get past the magic now and then */
            b[0] = 'W';
            b[1] = 'S';
        }
        break;
    default:
        break;
    }
    s->len = n;
}

/* What the codec, the protocol's one implementation, says the server must make of the bytes.
 * Fills the content of the (valid or valid-prefix) REQUEST. */
struct classified {
    enum class cls;
    long result;                   /* wsp_hs_decode's answer for the whole stream */
    size_t request_len, extra_len; /* C_EXTRA: the valid prefix and what follows */
    wsp_hs_frame frame;            /* C_VALID, C_EXTRA: the REQUEST (points into the bytes) */
};

static void classify(const struct stream *s, struct classified *c) {
    memset(c, 0, sizeof *c);
    c->result = wsp_hs_decode(s->bytes, s->len, LISTENER_MAX_CALLER, 1u << WSP_HS_REQUEST,
                              &c->frame);
    if (c->result > 0 && (size_t)c->result == s->len) {
        c->cls = C_VALID;
        c->request_len = s->len;
    } else if (c->result > 0) {
        /* EXTRA-BYTES RULE: a REQUEST with anything after it is malformed. */
        c->cls = EXTRA_BYTES_ARE_MALFORMED ? C_EXTRA : C_VALID;
        c->request_len = (size_t)c->result;
        c->extra_len = s->len - (size_t)c->result;
    } else if (c->result == WSP_HS_NEED_MORE) {
        c->cls = C_INCOMPLETE;
    } else {
        c->cls = C_BAD;
    }
}

static uint64_t frame_hash(const wsp_hs_frame *f) {
    uint32_t flow[16] = {0};
    if (f->has_qos)
        flow_of_wire(&f->qos, flow);
    uint32_t offered = offered_for(f->has_callee_capacity, f->callee_capacity);
    return content_hash(f->has_data, f->data, f->data_len, f->has_qos, flow, f->qos.specific,
                        f->has_qos ? f->qos.specific_len : 0, offered);
}

/* ---- raw clients ------------------------------------------------------------------------------- */

enum outcome { O_ACCEPTED, O_REFUSED, O_DROPPED, O_RESET_BY_US, O_COUNT };
static const char *const OUTCOME_NAMES[O_COUNT] = {"accepted", "refused", "dropped",
                                                   "reset by client"};

static atomic_long kind_count[K_COUNT], class_count[C_COUNT], delivery_count[D_COUNT],
    ending_count[E_COUNT], outcome_count[C_COUNT][O_COUNT],
    valid_outcome_by_ending[E_COUNT][O_COUNT], raw_cases, extra_at_buffer_size;
static atomic_int stopping;
static long long run_end_ms;
static long max_cases;

static int raw_socket(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        fail("bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Sends all of p; 0, or -1 once the server has closed (which may be right: see the checks). */
static int send_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void deliver(rng *r, int fd, const struct stream *s, enum delivery d) {
    size_t split_limit = s->keep_together ? s->keep_together : s->len;
    if (d == D_ONE_WRITE || split_limit < 2) {
        send_all(fd, s->bytes, s->len);
        return;
    }
    size_t at = 0;
    while (at < s->len) {
        size_t piece;
        if (d == D_CHUNKS)
            piece = between(r, 1, (uint32_t)(split_limit / 2 + 1));
        else
            piece = between(r, 1, 3);
        if (at + piece >= split_limit)
            piece = s->len - at; /* the rest, extra bytes included, in one write */
        if (send_all(fd, s->bytes + at, piece) != 0)
            return; /* the server closed: the answer (if any) is read next */
        at += piece;
        if (d == D_DRIP && at < s->len)
            sleep_ms((int)between(r, 1, 20)); /* the point of a drip: slow on purpose */
    }
}

/* Reads until the server closes (or resets), at most CLIENT_PATIENCE_MS; returns the bytes
 * read, or -1 when the server did neither in time. */
static long read_all(int fd, uint8_t *buf, size_t cap) {
    long long give_up = now_ms() + CLIENT_PATIENCE_MS;
    size_t got = 0;
    for (;;) {
        long long left = give_up - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -1;
        if (got == cap) { /* more than any answer: report what was read */
            return (long)got;
        }
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* end of stream, or a reset: both end the answer */
            return (long)got;
        got += (size_t)n;
    }
}

/* Checks an ACCEPT against what the condition function was to write for the request. */
static int accept_matches(const wsp_hs_frame *a, const wsp_hs_frame *req, char *why, size_t wn) {
    uint32_t offered = offered_for(req->has_callee_capacity, req->callee_capacity);
    uint32_t want = req->has_data && req->data_len ? callee_len_for(req->data_len, offered) : 0;
    int want_data = req->has_data || want > 0;
    if (!a->has_data != !want_data || (a->has_data && a->data_len != want)) {
        snprintf(why, wn, "callee data %s%u bytes, expected %s%u", a->has_data ? "" : "none, ",
                 a->has_data ? a->data_len : 0, want_data ? "" : "none, ", want);
        return 0;
    }
    for (uint32_t i = 0; i < want; i++) {
        if (a->data[i] != callee_byte(req->data, req->data_len, i)) {
            snprintf(why, wn, "callee data differs at byte %u of %u", i, want);
            return 0;
        }
    }
    if (!a->has_qos != !req->has_qos) {
        snprintf(why, wn, "QoS %s in the answer, %s in the request", a->has_qos ? "present" : "absent",
                 req->has_qos ? "present" : "absent");
        return 0;
    }
    if (a->has_qos) {
        uint32_t fa[16], fr[16];
        flow_of_wire(&a->qos, fa);
        flow_of_wire(&req->qos, fr);
        if (memcmp(fa, fr, sizeof fa) != 0 || a->qos.specific_len != req->qos.specific_len ||
            (a->qos.specific_len &&
             memcmp(a->qos.specific, req->qos.specific, a->qos.specific_len) != 0)) {
            snprintf(why, wn, "the answer's QoS differs from the request's (unchanged by the "
                              "condition function)");
            return 0;
        }
    }
    return 1;
}

struct raw_case {
    const struct stream *s;
    const struct classified *c;
    enum delivery delivery;
    enum ending ending;
    struct record *rec;
    uint16_t port;
    long long elapsed_ms;
};

static void describe(const struct raw_case *k, char *out, size_t n) {
    snprintf(out, n, "%s (%s, %zu bytes%s%s), %s, %s, client port %u", KIND_NAMES[k->s->kind],
             CLASS_NAMES[k->c->cls], k->s->len, k->c->cls == C_BAD ? ": " : "",
             k->c->cls == C_BAD ? wsp_hs_result_name(k->c->result) : "",
             DELIVERY_NAMES[k->delivery], ENDING_NAMES[k->ending], k->port);
}

/* Judges what the server sent back (buf[0..n), then closed) for one case. */
static enum outcome judge(const struct raw_case *k, const uint8_t *buf, size_t n) {
    char what[200], why[200];
    describe(k, what, sizeof what);
    size_t at = 0;
    int pendings = 0;
    wsp_hs_frame answer;
    memset(&answer, 0, sizeof answer);
    int have_answer = 0;
    while (at < n && !have_answer) {
        wsp_hs_frame f;
        long res = wsp_hs_decode(buf + at, n - at, WSP_HS_MAX_DATA,
                                 (1u << WSP_HS_PENDING) | (1u << WSP_HS_ACCEPT) |
                                     (1u << WSP_HS_REFUSE),
                                 &f);
        if (res <= 0) {
            fail("%s: the server sent %zu bytes that are not a whole answer frame (%s)", what,
                 n - at, res == 0 ? "cut short" : wsp_hs_result_name(res));
            return O_DROPPED;
        }
        at += (size_t)res;
        if (f.type == WSP_HS_PENDING) {
            pendings++;
        } else {
            answer = f;
            have_answer = 1;
        }
    }
    if (at < n) {
        fail("%s: the server sent %zu bytes after its %s answer and no application data was "
             "written",
             what, n - at, answer.type == WSP_HS_ACCEPT ? "ACCEPT" : "REFUSE");
    }
    const wsp_hs_frame *req = &k->c->frame;
    if (k->c->cls != C_VALID) {
        if (have_answer && answer.type == WSP_HS_ACCEPT) {
            if (k->c->cls == C_EXTRA)
                fail("%s: ACCEPTED a valid %zu-byte REQUEST followed by %zu extra bytes "
                     "(EXTRA-BYTES RULE: any byte after a REQUEST makes it malformed)",
                     what, k->c->request_len, k->c->extra_len);
            else
                fail("%s: the server ACCEPTED a request that is not valid", what);
            return O_ACCEPTED;
        }
        if (pendings)
            fail("%s: the server sent PENDING for a request that is not valid%s", what,
                 k->c->cls == C_EXTRA ? " (EXTRA-BYTES RULE)" : "");
        return have_answer ? O_REFUSED : O_DROPPED;
    }
    if (!have_answer) {
        /* A client that half-closed may be dropped at any time: the listener takes that as
         * the client leaving. Otherwise only a handshake deadline that may have passed (the
         * request arrived too slowly) excuses no answer at all. */
        if (k->ending == E_HALF_CLOSE)
            ;
        else if (pendings)
            fail("%s: the server said PENDING, then closed without an answer", what);
        else if (k->elapsed_ms < HANDSHAKE_DEADLINE_MS)
            fail("%s: a valid request was dropped unanswered after %lld ms, before the %u ms "
                 "handshake deadline",
                 what, k->elapsed_ms, HANDSHAKE_DEADLINE_MS);
        return O_DROPPED;
    }
    int presented = atomic_load(&k->rec->presented);
    /* The provider's own refusals of a valid request, which only a version 3 client is told:
     * its request took longer to arrive than the handshake deadline, or waited past the
     * patience it stated. */
    if (answer.type == WSP_HS_REFUSE && answer.reason == WSP_HS_REASON_HANDSHAKE_TIMEOUT &&
        k->elapsed_ms >= HANDSHAKE_DEADLINE_MS)
        return O_REFUSED;
    if (answer.type == WSP_HS_REFUSE && answer.reason == WSP_HS_REASON_EXPIRED &&
        req->has_patience && k->elapsed_ms >= (long long)req->patience_ms)
        return O_REFUSED;
    if (answer.type == WSP_HS_REFUSE) {
        if (k->rec->decision != DECIDE_REJECT || answer.reason != WSP_HS_REASON_REJECTED)
            fail("%s: refused with reason %u, but its caller data decides %s", what,
                 answer.reason, k->rec->decision == DECIDE_REJECT ? "REJECTED (1)" : "accept");
        else if (!presented)
            fail("%s: refused as rejected without the condition function seeing it", what);
        return O_REFUSED;
    }
    if (k->rec->decision == DECIDE_REJECT)
        fail("%s: accepted, but its caller data decides reject", what);
    else if (!atomic_load(&k->rec->accepted))
        fail("%s: accepted without the condition function accepting it", what);
    else if (!accept_matches(&answer, req, why, sizeof why))
        fail("%s: ACCEPT answer wrong: %s", what, why);
    return O_ACCEPTED;
}

static void run_raw_case(rng *r, struct stream *s, uint8_t *answer_buf, size_t answer_cap) {
    struct classified c;
    classify(s, &c);
    struct raw_case k = {.s = s, .c = &c};
    k.delivery = (enum delivery)between(r, 0, D_COUNT - 1);
    k.ending = (enum ending)between(r, 0, E_COUNT - 1);
    int fd = raw_socket(&k.port);
    if (fd < 0)
        return;
    if (c.cls == C_VALID || c.cls == C_EXTRA) {
        uint64_t hash = frame_hash(&c.frame);
        const uint8_t *data = c.frame.has_data ? c.frame.data : NULL;
        k.rec = record_add(k.port, c.cls == C_VALID, KIND_NAMES[s->kind], hash,
                           decision_for(data, c.frame.has_data ? c.frame.data_len : 0),
                           c.request_len, c.extra_len);
    }
    for (size_t i = 0; i < sizeof BUFFER_SIZES / sizeof BUFFER_SIZES[0]; i++)
        if (c.cls == C_EXTRA && c.request_len == BUFFER_SIZES[i])
            atomic_fetch_add(&extra_at_buffer_size, 1);
    long long start = now_ms();
    if (connect(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0) {
        fail("raw client: connect: %s", strerror(errno));
        close(fd);
        return;
    }
    deliver(r, fd, s, k.delivery);
    enum outcome o;
    if (k.ending == E_RESET) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        o = O_RESET_BY_US;
    } else {
        if (k.ending == E_HALF_CLOSE)
            shutdown(fd, SHUT_WR);
        long n = read_all(fd, answer_buf, answer_cap);
        k.elapsed_ms = now_ms() - start;
        if (n < 0) {
            char what[200];
            describe(&k, what, sizeof what);
            fail("%s: the server neither answered nor closed within %d ms", what,
                 CLIENT_PATIENCE_MS);
            o = O_DROPPED;
        } else {
            o = judge(&k, answer_buf, (size_t)n);
        }
    }
    close(fd);
    atomic_fetch_add(&kind_count[s->kind], 1);
    atomic_fetch_add(&class_count[c.cls], 1);
    atomic_fetch_add(&delivery_count[k.delivery], 1);
    atomic_fetch_add(&ending_count[k.ending], 1);
    atomic_fetch_add(&outcome_count[c.cls][o], 1);
    if (c.cls == C_VALID)
        atomic_fetch_add(&valid_outcome_by_ending[k.ending][o], 1);
}

static uint64_t master_seed;

static void *raw_thread(void *arg) {
    rng r = {master_seed ^ (0x1000193ull * (uint64_t)(uintptr_t)arg + 1)};
    struct stream s;
    s.bytes = malloc(STREAM_CAP);
    uint8_t *data = malloc(WSP_HS_MAX_DATA);
    uint8_t *specific = malloc(WSP_HS_MAX_QOS_SPECIFIC);
    size_t answer_cap = WSP_HS_MAX_FRAME + 4096;
    uint8_t *answer = malloc(answer_cap);
    if (!s.bytes || !data || !specific || !answer) {
        fail("out of memory");
        exit(1);
    }
    while (!atomic_load(&stopping) && now_ms() < run_end_ms &&
           atomic_fetch_add(&raw_cases, 1) < max_cases) {
        build_stream(&r, &s, data, specific);
        run_raw_case(&r, &s, answer, answer_cap);
    }
    free(s.bytes);
    free(data);
    free(specific);
    free(answer);
    return NULL;
}

/* ---- good WSP clients ------------------------------------------------------------------------- */

static atomic_long good_ok, good_accepted, good_refused, good_late;

/* A socket of the catalog entry `catalog`. */
static void set_dword(SOCKET s, int name, DWORD v) {
    int err = 0;
    if (T.lpWSPSetSockOpt(s, SOL_WSP, name, (const char *)&v, sizeof v, &err) != 0) {
        fail("setsockopt(SOL_WSP, %d): %s", name, WSPErrorName(err));
        exit(1);
    }
}

static SOCKET socket_of(DWORD catalog) {
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = catalog;
    int err = 0;
    SOCKET s = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    if (s == INVALID_SOCKET)
        fail("lpWSPSocket(catalog %u): %s", (unsigned)catalog, WSPErrorName(err));
    return s;
}

/* Whether a failed connect may be the listener's handshake deadline passing before the
 * request arrived (a client thread stalled between connecting and sending). Only then is a
 * good client excused: the listener cannot time a request out sooner than its deadline, and
 * it says so (WSP_REFUSE_REASON) where the provider reports reasons. */
static int missed_deadline(SOCKET s, int result, long long elapsed_ms) {
    if (elapsed_ms < HANDSHAKE_DEADLINE_MS)
        return 0;
    DWORD reason = 0;
    int optlen = sizeof reason, err = 0;
    if (T.lpWSPGetSockOpt(s, SOL_WSP, WSP_REFUSE_REASON, (char *)&reason, &optlen, &err) == 0 &&
        reason != WSP_REASON_NONE)
        return reason == WSP_REASON_HANDSHAKE_TIMEOUT;
    return result == WSAECONNABORTED || result == WSAECONNRESET;
}

static void good_connect(rng *r, uint8_t *caller, uint8_t *callee) {
    SOCKET s = socket_of(WSP_CATALOG_CDATA_IPV4);
    if (s == INVALID_SOCKET)
        return;
    set_dword(s, WSP_MAX_CALLER_DATA, LISTENER_MAX_CALLER); /* the client's default is less */
    set_dword(s, WSP_CONNECT_LIMIT, CLIENT_PATIENCE_MS); /* a stuck server: a failure, not a hang */
    int err = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int alen = sizeof a;
    if (T.lpWSPBind(s, (struct sockaddr *)&a, sizeof a, &err) != 0 ||
        T.lpWSPGetSockName(s, (struct sockaddr *)&a, &alen, &err) != 0) {
        fail("good client: bind: %s", WSPErrorName(err));
        T.lpWSPCloseSocket(s, &err);
        return;
    }
    uint32_t len = between(r, 1, chance(r, 80) ? 200 : LISTENER_MAX_CALLER);
    fill(r, caller, len);
    /* No callee buffer (the answer is kept for WSP_CALLEE_DATA), a small one (the request
     * states it, version 2) or a large one. */
    int mode = (int)between(r, 0, 2);
    uint32_t cap = mode == 1 ? between(r, 0, 64) : WSP_HS_MAX_DATA;
    int states_capacity = mode == 1;
    uint32_t offered = offered_for(states_capacity, cap);
    enum decision d = decision_for(caller, len);
    uint32_t flow[16] = {0};
    record_add(ntohs(a.sin_port), 1, "good client",
               content_hash(1, caller, len, 0, flow, NULL, 0, offered), d, 0, 0);
    WSABUF caller_buf = {len, (char *)caller};
    WSABUF callee_buf = {cap, (char *)callee};
    long long start = now_ms();
    int rc = T.lpWSPConnect(s, (const struct sockaddr *)&listen_addr, sizeof listen_addr,
                            &caller_buf, mode == 0 ? NULL : &callee_buf, NULL, NULL, &err);
    int result = rc == 0 ? 0 : err;
    uint32_t want = callee_len_for(len, offered);
    if (result && missed_deadline(s, result, now_ms() - start)) {
        atomic_fetch_add(&good_late, 1);
    } else if (d == DECIDE_REJECT) {
        if (result != WSAECONNREFUSED)
            fail("good client (port %u, %u bytes of caller data deciding reject): connect "
                 "returned %s, expected WSAECONNREFUSED",
                 ntohs(a.sin_port), len, result ? WSPErrorName(result) : "success");
        else
            atomic_fetch_add(&good_refused, 1), atomic_fetch_add(&good_ok, 1);
    } else if (result != 0) {
        fail("good client (port %u, %u bytes of caller data deciding accept): connect failed "
             "with %s (%s)",
             ntohs(a.sin_port), len, WSPErrorName(result), WSPErrorString(result));
    } else {
        /* Without a buffer the answer's data is kept for getsockopt(WSP_CALLEE_DATA). */
        uint32_t got = callee_buf.len;
        if (mode == 0) {
            int optlen = (int)WSP_MAX_CONNECT_DATA;
            if (T.lpWSPGetSockOpt(s, SOL_WSP, WSP_CALLEE_DATA, (char *)callee, &optlen, &err) != 0) {
                fail("good client: getsockopt(WSP_CALLEE_DATA): %s", WSPErrorName(err));
                optlen = 0;
            }
            got = (uint32_t)optlen;
        }
        int same = got == want;
        for (uint32_t i = 0; same && i < want; i++)
            same = callee[i] == callee_byte(caller, len, i);
        if (!same)
            fail("good client (port %u): callee data of %u bytes, expected %u bytes of the "
                 "condition function's pattern",
                 ntohs(a.sin_port), got, want);
        else
            atomic_fetch_add(&good_accepted, 1), atomic_fetch_add(&good_ok, 1);
    }
    if (T.lpWSPCloseSocket(s, &err) != 0)
        fail("good client: close: %s", WSPErrorName(err));
}

static void *good_thread(void *arg) {
    rng r = {master_seed ^ (0xC2B2AE3D27D4EB4Full * ((uint64_t)(uintptr_t)arg + 1))};
    uint8_t *caller = malloc(LISTENER_MAX_CALLER);
    uint8_t *callee = malloc(WSP_MAX_CONNECT_DATA);
    if (!caller || !callee) {
        fail("out of memory");
        exit(1);
    }
    /* Good clients keep connecting for as long as raw clients send anything. */
    while (!atomic_load(&stopping)) {
        good_connect(&r, caller, callee);
        sleep_ms(GOOD_PAUSE_MS); /* pacing, not synchronization */
    }
    free(caller);
    free(callee);
    return NULL;
}

/* ---- descriptors and the watchdog -------------------------------------------------------------- */

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

static void list_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], target[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
        }
    }
    if (d)
        closedir(d);
}

/* Waits for the descriptor count to come back to `want` (closing may finish on the provider's
 * reactor thread); fails naming the open descriptors if it does not within 10 s. */
static void expect_fds(int want, const char *when) {
    long long give_up = now_ms() + 10000;
    int n;
    while ((n = open_fds()) != want && now_ms() < give_up)
        sleep_ms(5);
    if (n != want) {
        fail("%s: %d descriptors open, %d before the run", when, n, want);
        list_fds();
    }
}

static atomic_int finished;

static void *watchdog(void *arg) {
    long long limit = *(long long *)arg;
    while (!atomic_load(&finished)) {
        if (now_ms() > limit) {
            fprintf(stderr, "fuzz-net: FAIL: watchdog: the run did not end %d s after its time; "
                            "something hangs (raw cases %ld, presentations %ld)\n",
                    WATCHDOG_GRACE_S, atomic_load(&raw_cases), atomic_load(&presentations));
            _exit(3);
        }
        sleep_ms(100);
    }
    return NULL;
}

/* ---- the run ------------------------------------------------------------------------------------- */

static long env_long(const char *name, long fallback) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : fallback;
}

static void start_listener(void) {
    listener = socket_of(WSP_CATALOG_CDATA_IPV4);
    if (listener == INVALID_SOCKET)
        exit(1);
    set_dword(listener, WSP_MAX_CALLER_DATA, LISTENER_MAX_CALLER);
    set_dword(listener, WSP_MAX_CALLEE_DATA, LISTENER_MAX_CALLEE);
    set_dword(listener, WSP_HANDSHAKE_DEADLINE, HANDSHAKE_DEADLINE_MS);
    int err = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int alen = sizeof a;
    if (T.lpWSPBind(listener, (struct sockaddr *)&a, sizeof a, &err) != 0 ||
        T.lpWSPListen(listener, BACKLOG, &err) != 0 ||
        T.lpWSPGetSockName(listener, (struct sockaddr *)&a, &alen, &err) != 0) {
        fail("listener: %s", WSPErrorName(err));
        exit(1);
    }
    listen_addr = a;
}

static void print_summary(const WSP_LISTENER_STATS_DATA *st, long long ms) {
    long cases = 0;
    for (int i = 0; i < K_COUNT; i++)
        cases += atomic_load(&kind_count[i]);
    printf("fuzz-net: seed %" PRIu64 ", %lld ms, %ld raw cases:", master_seed, ms, cases);
    for (int i = 0; i < K_COUNT; i++)
        printf(" %s %ld", KIND_NAMES[i], atomic_load(&kind_count[i]));
    printf("\nfuzz-net: delivered:");
    for (int i = 0; i < D_COUNT; i++)
        printf(" %s %ld", DELIVERY_NAMES[i], atomic_load(&delivery_count[i]));
    printf(";");
    for (int i = 0; i < E_COUNT; i++)
        printf(" %s %ld", ENDING_NAMES[i], atomic_load(&ending_count[i]));
    printf("\nfuzz-net: outcomes by class:");
    for (int c = 0; c < C_COUNT; c++) {
        printf(" %s", CLASS_NAMES[c]);
        for (int o = 0; o < O_COUNT; o++)
            printf("%s%s %ld", o ? ", " : " (", OUTCOME_NAMES[o], atomic_load(&outcome_count[c][o]));
        printf(")");
    }
    printf("\nfuzz-net: valid requests by ending:");
    for (int e = 0; e < E_RESET; e++)
        printf(" %s (accepted %ld, refused %ld, dropped %ld)", ENDING_NAMES[e],
               atomic_load(&valid_outcome_by_ending[e][O_ACCEPTED]),
               atomic_load(&valid_outcome_by_ending[e][O_REFUSED]),
               atomic_load(&valid_outcome_by_ending[e][O_DROPPED]));
    printf("\nfuzz-net: extra bytes after a request of a read-buffer size: %ld\n",
           atomic_load(&extra_at_buffer_size));
    printf("fuzz-net: condition function: %ld presentations, %ld accept, %ld reject, %ld defer; "
           "good clients %ld ok (%ld accepted, %ld refused as decided), %ld past the "
           "handshake deadline\n",
           atomic_load(&presentations), atomic_load(&cf_accepts), atomic_load(&cf_rejects),
           atomic_load(&cf_defers), atomic_load(&good_ok), atomic_load(&good_accepted),
           atomic_load(&good_refused), atomic_load(&good_late));
    printf("fuzz-net: listener counters: accepted %" PRIu64 ", rejected %" PRIu64
           ", deferred %" PRIu64 ", withdrawn %" PRIu64 ", timed out %" PRIu64
           ", expired %" PRIu64 ", malformed %" PRIu64 ", too long %" PRIu64
           ", backlog full %" PRIu64 "\n",
           st->accepted, st->rejected, st->deferred, st->withdrawn, st->timed_out, st->expired,
           st->malformed, st->too_long, st->backlog_full);
    int f = atomic_load(&failures);
    printf("fuzz-net: %s (%d failure%s)\n", f ? "FAILED" : "passed", f, f == 1 ? "" : "s");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    long seconds = env_long("FUZZ_NET_SECONDS", 20);
    max_cases = env_long("FUZZ_NET_CASES", 1000000);
    master_seed = (uint64_t)env_long("FUZZ_NET_SEED", 0);
    if (!master_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        master_seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec;
        master_seed &= 0x7fffffffffffffffull; /* so that FUZZ_NET_SEED can repeat it */
    }
    printf("fuzz-net: seed %" PRIu64 " (FUZZ_NET_SEED to repeat), %ld s, at most %ld raw "
           "cases\n",
           master_seed, seconds, max_cases);

    long long t0 = now_ms();
    long long watchdog_limit = t0 + (seconds + WATCHDOG_GRACE_S) * 1000;
    pthread_t dog;
    pthread_create(&dog, NULL, watchdog, &watchdog_limit);

    int fds_before = open_fds();
    WSPDATA wsp_data;
    WSPUPCALLTABLE upcalls;
    memset(&upcalls, 0, sizeof upcalls);
    int err = WSPStartup(MAKEWORD(2, 2), &wsp_data, NULL, upcalls, &T);
    if (err) {
        fprintf(stderr, "fuzz-net: WSPStartup: %s\n", WSPErrorName(err));
        return 1;
    }
    int fds_started = open_fds();
    start_listener();

    pthread_t acceptor, raws[RAW_THREADS], goods[GOOD_THREADS];
    run_end_ms = t0 + seconds * 1000;
    pthread_create(&acceptor, NULL, accept_thread, NULL);
    for (uintptr_t i = 0; i < GOOD_THREADS; i++)
        pthread_create(&goods[i], NULL, good_thread, (void *)i);
    for (uintptr_t i = 0; i < RAW_THREADS; i++)
        pthread_create(&raws[i], NULL, raw_thread, (void *)i);
    for (int i = 0; i < RAW_THREADS; i++)
        pthread_join(raws[i], NULL);
    atomic_store(&stopping, 1);
    for (int i = 0; i < GOOD_THREADS; i++)
        pthread_join(goods[i], NULL);

    /* Reset clients may leave requests behind: wait for the accept thread to finish them
     * before comparing its counts with the listener's. */
    WSP_LISTENER_STATS_DATA st;
    long long give_up = now_ms() + 10000;
    for (;;) {
        memset(&st, 0, sizeof st);
        int optlen = sizeof st;
        if (T.lpWSPGetSockOpt(listener, SOL_WSP, WSP_LISTENER_STATS, (char *)&st, &optlen,
                              &err) != 0) {
            fail("getsockopt(WSP_LISTENER_STATS): %s", WSPErrorName(err));
            break;
        }
        int agree = st.accepted == (uint64_t)atomic_load(&served_accepts) &&
                    st.rejected == (uint64_t)atomic_load(&served_rejects);
        if (agree && st.queued == 0)
            break;
        if (now_ms() > give_up) {
            fail("the listener counts %" PRIu64 " accepted, %" PRIu64 " rejected and %u "
                 "queued; the accept thread saw %ld accepted and %ld rejected",
                 st.accepted, st.rejected, st.queued, atomic_load(&served_accepts),
                 atomic_load(&served_rejects));
            break;
        }
        sleep_ms(5);
    }
    if (T.lpWSPCloseSocket(listener, &err) != 0)
        fail("closing the listener: %s", WSPErrorName(err));
    pthread_join(acceptor, NULL);
    expect_fds(fds_started, "after closing every socket");
    if (T.lpWSPCleanup(&err) != 0)
        fail("lpWSPCleanup: %s", WSPErrorName(err));
    expect_fds(fds_before, "after lpWSPCleanup");
    atomic_store(&finished, 1);
    pthread_join(dog, NULL);
    print_summary(&st, now_ms() - t0);
    registry_free();
    return atomic_load(&failures) ? 1 : 0;
}
