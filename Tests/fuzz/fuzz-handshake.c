/* libFuzzer target for the connect-data handshake codec (Sources/CWSP/handshake.c).
 *
 * Properties checked, each ending in abort() so the fuzzer records the input:
 *   - decode never claims more bytes than it was given, and returns only known results;
 *   - a decoded frame's version is the lowest that carries it (3 for a REQUEST whose client
 *     reads reasons or states its patience, or a REFUSE with a reason above 3; 2 for a
 *     REQUEST with a callee capacity; else 1);
 *   - a decoded frame re-encodes to exactly the bytes it was decoded from (the format has one
 *     encoding per frame), and those bytes decode to the same fields;
 *   - every strict prefix of a decoded frame is NEED_MORE;
 *   - a frame the encoder accepts (built from the input's bytes) decodes back to itself.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -ISources/CWSP \
 *            Tests/fuzz/fuzz-handshake.c Sources/CWSP/handshake.c -o /tmp/fuzz-hs
 * Seeds: Tests/fuzz/corpus/handshake/
 */
#include "handshake.h"

#include <stdlib.h>
#include <string.h>

#define ALL_TYPES 0x1eu

static uint8_t reencoded[WSP_HS_MAX_FRAME];

static void require(int cond) {
    if (!cond)
        abort();
}

static int flowspec_equal(const wsp_hs_flowspec *a, const wsp_hs_flowspec *b) {
    return memcmp(a, b, sizeof *a) == 0; /* eight uint32_t: no padding */
}

static int bytes_equal(const uint8_t *a, const uint8_t *b, size_t n) {
    return n == 0 || memcmp(a, b, n) == 0;
}

static int frames_equal(const wsp_hs_frame *a, const wsp_hs_frame *b) {
    if (a->type != b->type || a->reason != b->reason || !a->has_data != !b->has_data ||
        !a->has_qos != !b->has_qos || !a->has_callee_capacity != !b->has_callee_capacity ||
        a->callee_capacity != b->callee_capacity || !a->reads_reasons != !b->reads_reasons ||
        !a->has_patience != !b->has_patience || a->patience_ms != b->patience_ms)
        return 0;
    if (a->has_data && (a->data_len != b->data_len || !bytes_equal(a->data, b->data, a->data_len)))
        return 0;
    if (!a->has_qos)
        return 1;
    return flowspec_equal(&a->qos.sending, &b->qos.sending) &&
           flowspec_equal(&a->qos.receiving, &b->qos.receiving) &&
           a->qos.specific_len == b->qos.specific_len &&
           bytes_equal(a->qos.specific, b->qos.specific, a->qos.specific_len);
}

static void check_reencode(const uint8_t *data, size_t n, const wsp_hs_frame *f,
                           uint32_t max_data, unsigned expect) {
    require(wsp_hs_encoded_size(f) == n);
    require(wsp_hs_encode(f, reencoded, sizeof reencoded) == n);
    require(memcmp(reencoded, data, n) == 0);
    wsp_hs_frame again;
    require(wsp_hs_decode(reencoded, n, max_data, expect, &again) == (long)n);
    require(frames_equal(f, &again));
    /* Checking every prefix is quadratic; the longest and a middle one catch most bugs. */
    require(wsp_hs_decode(data, n - 1, max_data, expect, &again) == WSP_HS_NEED_MORE);
    require(wsp_hs_decode(data, n / 2, max_data, expect, &again) == WSP_HS_NEED_MORE);
}

static unsigned expected_version(const wsp_hs_frame *f) {
    if (f->type == WSP_HS_REFUSE)
        return f->reason > WSP_HS_REASON_V1_MAX ? WSP_HS_VERSION_3 : WSP_HS_VERSION_1;
    if (f->type == WSP_HS_REQUEST && (f->reads_reasons || f->has_patience))
        return WSP_HS_VERSION_3;
    return f->has_callee_capacity ? WSP_HS_VERSION_2 : WSP_HS_VERSION_1;
}

static void check_decode(const uint8_t *data, size_t size, uint32_t max_data, unsigned expect) {
    wsp_hs_frame f;
    long r = wsp_hs_decode(data, size, max_data, expect, &f);
    require(r >= WSP_HS_BAD_FIELD);
    require(r <= (long)size && r <= (long)WSP_HS_MAX_FRAME);
    if (r > 0) {
        require(!f.has_data || f.data_len <= max_data);
        require(f.callee_capacity <= WSP_HS_MAX_DATA);
        require(data[2] == expected_version(&f));
        check_reencode(data, (size_t)r, &f, max_data, expect);
    }
}

static uint32_t read32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void flowspec_from(const uint8_t *p, wsp_hs_flowspec *fs) {
    *fs = (wsp_hs_flowspec){read32(p),      read32(p + 4),  read32(p + 8),  read32(p + 12),
                            read32(p + 16), read32(p + 20), read32(p + 24), read32(p + 28)};
}

/* Builds a frame from the input's first bytes (type, reason, flags, lengths, QoS numbers) with
 * data and specific bytes taken from the rest, so the encoder sees invalid fields too. Flag
 * values other than 1 check that any nonzero has_data/has_qos counts as set. */
static void check_encode(const uint8_t *data, size_t size) {
    if (size < 8 + 64)
        return;
    wsp_hs_frame f = {.type = data[0], .reason = data[1], .has_data = data[2] & 0x11,
                      .has_qos = data[2] & 0x22, .has_callee_capacity = data[2] & 0x44,
                      .callee_capacity = (uint32_t)data[7] * 0x81u, /* up to 32895 */
                      .reads_reasons = data[2] & 0x08, .has_patience = data[2] & 0x80,
                      .patience_ms = (data[2] & 0x80) ? read32(data + 8) : 0};
    uint32_t data_len = (uint32_t)data[3] << 8 | data[4];
    uint32_t spec_len = (uint32_t)data[5] << 8 | data[6];
    const uint8_t *rest = data + 8 + 64;
    size_t rest_len = size - 8 - 64;
    /* A length the input cannot back gets a NULL pointer, which the encoder must refuse. */
    f.data = data_len <= rest_len ? rest : NULL;
    f.data_len = data_len;
    f.qos.specific = spec_len <= rest_len ? rest : NULL;
    f.qos.specific_len = spec_len;
    flowspec_from(data + 8, &f.qos.sending);
    flowspec_from(data + 8 + 32, &f.qos.receiving);
    size_t n = wsp_hs_encode(&f, reencoded, sizeof reencoded);
    require(n == wsp_hs_encoded_size(&f));
    if (n == 0)
        return;
    wsp_hs_frame d;
    require(wsp_hs_decode(reencoded, n, WSP_HS_MAX_DATA, ALL_TYPES, &d) == (long)n);
    if (f.has_patience)
        f.reads_reasons = 1; /* a patience part makes the request version 3, which says so */
    require(frames_equal(&f, &d));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct {
        uint32_t max_data;
        unsigned expect;
    } modes[] = {
        {WSP_HS_MAX_DATA, ALL_TYPES},
        {0, ALL_TYPES},
        {16, 1u << WSP_HS_REQUEST},                                             /* server */
        {WSP_HS_MAX_DATA, (1u << WSP_HS_ACCEPT) | (1u << WSP_HS_REFUSE) | (1u << WSP_HS_PENDING)},
        {0xffffffffu, ~0u},                                                     /* clamped */
        {1, 0},                                                                 /* nothing */
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        check_decode(data, size, modes[i].max_data, modes[i].expect);
    check_encode(data, size);
    return 0;
}
