/* Unit tests for the connect-data handshake codec (Sources/CWSP/handshake.c). */
#include "handshake.h"
#include "harness.h"
#include "qos.h"

#define ALL_TYPES                                                                          \
    ((1u << WSP_HS_REQUEST) | (1u << WSP_HS_ACCEPT) | (1u << WSP_HS_REFUSE) |              \
     (1u << WSP_HS_PENDING))
#define SERVER_ANSWERS ((1u << WSP_HS_ACCEPT) | (1u << WSP_HS_REFUSE) | (1u << WSP_HS_PENDING))

static uint8_t payload[WSP_HS_MAX_DATA];
static uint8_t specific[WSP_HS_MAX_QOS_SPECIFIC];
static uint8_t wire[WSP_HS_MAX_FRAME + 16];

/* Distinct, position-dependent bytes, so a shifted or truncated copy cannot compare equal. */
static void fill_pattern(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed + (i >> 8));
}

static wsp_hs_qos sample_qos(uint32_t specific_len) {
    wsp_hs_qos q = {
        .sending = {0x01020304u, 2, 3, 4, 5, 6, 7, 0xfffffffeu},
        .receiving = {0x11121314u, 12, 13, 14, 15, 16, 17, 0x80000001u},
        .specific = specific,
        .specific_len = specific_len,
    };
    fill_pattern(specific, WSP_HS_MAX_QOS_SPECIFIC, 7);
    return q;
}

static wsp_hs_frame body_frame(uint8_t type, int has_data, uint32_t data_len, int has_qos,
                               uint32_t specific_len) {
    wsp_hs_frame f = {.type = type, .has_data = has_data, .has_qos = has_qos};
    fill_pattern(payload, sizeof payload, 3);
    if (has_data) {
        f.data = payload;
        f.data_len = data_len;
    }
    if (has_qos)
        f.qos = sample_qos(specific_len);
    return f;
}

static int flowspec_equal(const wsp_hs_flowspec *a, const wsp_hs_flowspec *b) {
    return a->token_rate == b->token_rate && a->token_bucket_size == b->token_bucket_size &&
           a->peak_bandwidth == b->peak_bandwidth && a->latency == b->latency &&
           a->delay_variation == b->delay_variation && a->service_type == b->service_type &&
           a->max_sdu_size == b->max_sdu_size &&
           a->minimum_policed_size == b->minimum_policed_size;
}

/* Encodes f, checks the size agrees three ways, decodes it back and compares every field. */
static void check_round_trip(const wsp_hs_frame *f) {
    size_t size = wsp_hs_encoded_size(f);
    CHECK(size >= WSP_HS_HEADER_SIZE);
    memset(wire, 0xee, sizeof wire);
    CHECK_EQ(wsp_hs_encode(f, wire, sizeof wire), size);
    CHECK_EQ(wire[size], 0xee); /* nothing written past the frame */
    wsp_hs_frame d;
    memset(&d, 0x5a, sizeof d);
    CHECK_EQ(wsp_hs_decode(wire, size, WSP_HS_MAX_DATA, ALL_TYPES, &d), size);
    CHECK_EQ(d.type, f->type);
    CHECK_EQ(d.reason, f->reason);
    unsigned version = WSP_HS_VERSION_1;
    if (f->type == WSP_HS_REFUSE && f->reason > WSP_HS_REASON_V1_MAX)
        version = WSP_HS_VERSION_3;
    else if (f->type == WSP_HS_REQUEST && (f->reads_reasons || f->has_patience))
        version = WSP_HS_VERSION_3;
    else if (f->has_callee_capacity)
        version = WSP_HS_VERSION_2;
    CHECK_EQ(wire[2], version);
    CHECK_EQ(d.reads_reasons, version == WSP_HS_VERSION_3 && f->type == WSP_HS_REQUEST);
    CHECK_EQ(d.has_patience, f->has_patience ? 1 : 0);
    CHECK_EQ(d.patience_ms, f->patience_ms);
    CHECK_EQ(d.has_callee_capacity, f->has_callee_capacity ? 1 : 0);
    CHECK_EQ(d.callee_capacity, f->callee_capacity);
    CHECK_EQ(d.has_data, f->has_data ? 1 : 0);
    CHECK_EQ(d.has_qos, f->has_qos ? 1 : 0);
    CHECK_EQ(d.data_len, f->data_len);
    if (f->has_data) {
        CHECK(d.data == wire + WSP_HS_HEADER_SIZE + (f->has_callee_capacity ? 2 : 0) +
                             (f->has_patience ? 4 : 0) + 2);
        CHECK_MEM(d.data, f->data, f->data_len);
    }
    if (f->has_qos) {
        CHECK(flowspec_equal(&d.qos.sending, &f->qos.sending));
        CHECK(flowspec_equal(&d.qos.receiving, &f->qos.receiving));
        CHECK_EQ(d.qos.specific_len, f->qos.specific_len);
        CHECK(d.qos.specific == wire + size - f->qos.specific_len);
        CHECK_MEM(d.qos.specific, f->qos.specific, f->qos.specific_len);
    }
}

static void round_trip_body_type(uint8_t type) {
    static const uint32_t data_lens[] = {0, 1, WSP_HS_MAX_DATA};
    static const uint32_t specific_lens[] = {0, 1, WSP_HS_MAX_QOS_SPECIFIC};
    for (int has_data = 0; has_data <= 1; has_data++)
        for (size_t i = 0; i < 3; i++)
            for (int has_qos = 0; has_qos <= 1; has_qos++)
                for (size_t j = 0; j < 3; j++) {
                    wsp_hs_frame f = body_frame(type, has_data, has_data ? data_lens[i] : 0,
                                                has_qos, has_qos ? specific_lens[j] : 0);
                    check_round_trip(&f);
                }
}

TEST(hs_round_trip_request) {
    round_trip_body_type(WSP_HS_REQUEST);
}

/* Version 2: the same frames with the client's callee capacity in front. */
TEST(hs_round_trip_request_with_callee_capacity) {
    static const uint32_t capacities[] = {0, 1, 16, WSP_HS_MAX_DATA};
    for (size_t c = 0; c < 4; c++)
        for (int has_data = 0; has_data <= 1; has_data++)
            for (int has_qos = 0; has_qos <= 1; has_qos++) {
                wsp_hs_frame f = body_frame(WSP_HS_REQUEST, has_data, has_data ? 7 : 0,
                                            has_qos, has_qos ? 3 : 0);
                f.has_callee_capacity = 1;
                f.callee_capacity = capacities[c];
                CHECK_EQ(wsp_hs_encoded_size(&f),
                         8 + 2 + (has_data ? 2 + 7 : 0) + (has_qos ? 66 + 3 : 0));
                check_round_trip(&f);
            }
}

TEST(hs_round_trip_accept) {
    round_trip_body_type(WSP_HS_ACCEPT);
}

TEST(hs_round_trip_refuse_every_reason) {
    for (uint8_t reason = 1; reason <= WSP_HS_REASON_MAX; reason++) {
        wsp_hs_frame f = {.type = WSP_HS_REFUSE, .reason = reason};
        CHECK_EQ(wsp_hs_encoded_size(&f), WSP_HS_HEADER_SIZE);
        check_round_trip(&f);
    }
}

TEST(hs_round_trip_pending) {
    wsp_hs_frame f = {.type = WSP_HS_PENDING};
    CHECK_EQ(wsp_hs_encoded_size(&f), WSP_HS_HEADER_SIZE);
    check_round_trip(&f);
}

TEST(hs_encoded_sizes) {
    wsp_hs_frame f = body_frame(WSP_HS_REQUEST, 0, 0, 0, 0);
    CHECK_EQ(wsp_hs_encoded_size(&f), 8);
    f = body_frame(WSP_HS_REQUEST, 1, 0, 0, 0);
    CHECK_EQ(wsp_hs_encoded_size(&f), 10);
    f = body_frame(WSP_HS_REQUEST, 1, 5, 0, 0);
    CHECK_EQ(wsp_hs_encoded_size(&f), 15);
    f = body_frame(WSP_HS_ACCEPT, 0, 0, 1, 0);
    CHECK_EQ(wsp_hs_encoded_size(&f), 8 + 66);
    f = body_frame(WSP_HS_ACCEPT, 1, WSP_HS_MAX_DATA, 1, WSP_HS_MAX_QOS_SPECIFIC);
    CHECK_EQ(wsp_hs_encoded_size(&f), 17484); /* the largest version 1 frame */
    f = body_frame(WSP_HS_REQUEST, 1, WSP_HS_MAX_DATA, 1, WSP_HS_MAX_QOS_SPECIFIC);
    f.has_callee_capacity = 1;
    f.callee_capacity = WSP_HS_MAX_DATA;
    CHECK_EQ(wsp_hs_encoded_size(&f), 17486); /* the largest version 2 frame */
    f.has_patience = 1;
    f.patience_ms = 0xffffffffu;
    CHECK_EQ(wsp_hs_encoded_size(&f), WSP_HS_MAX_FRAME);
    CHECK_EQ(WSP_HS_MAX_FRAME, 17490);
}

/* The layout in handshake.h and the worked example in docs/PROTOCOL.md, byte for byte. */
TEST(hs_request_wire_bytes) {
    static const uint8_t data[3] = {'a', 'b', 'c'};
    static const uint8_t expected[] = {0x57, 0x53, 0x01, 0x01, 0x01, 0x00, 0x00,
                                       0x05, 0x00, 0x03, 0x61, 0x62, 0x63};
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_data = 1, .data = data, .data_len = 3};
    uint8_t buf[32];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), sizeof expected);
    CHECK_MEM(buf, expected, sizeof expected);
}

/* docs/PROTOCOL.md's version 2 example: capacity 16, then "abc". */
TEST(hs_request_with_callee_capacity_wire_bytes) {
    static const uint8_t data[3] = {'a', 'b', 'c'};
    static const uint8_t expected[] = {0x57, 0x53, 0x02, 0x01, 0x05, 0x00, 0x00, 0x07,
                                       0x00, 0x10, 0x00, 0x03, 0x61, 0x62, 0x63};
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_callee_capacity = 1, .callee_capacity = 16,
                      .has_data = 1, .data = data, .data_len = 3};
    uint8_t buf[32];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), sizeof expected);
    CHECK_MEM(buf, expected, sizeof expected);
}

TEST(hs_accept_wire_bytes) {
    static const uint8_t expected[] = {0x57, 0x53, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00};
    wsp_hs_frame f = {.type = WSP_HS_ACCEPT};
    uint8_t buf[32];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), sizeof expected);
    CHECK_MEM(buf, expected, sizeof expected);
}

TEST(hs_refuse_wire_bytes) {
    static const uint8_t expected[] = {0x57, 0x53, 0x01, 0x03, 0x00, 0x02, 0x00, 0x00};
    wsp_hs_frame f = {.type = WSP_HS_REFUSE, .reason = WSP_HS_REASON_BACKLOG_FULL};
    uint8_t buf[32];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), sizeof expected);
    CHECK_MEM(buf, expected, sizeof expected);
}

/* QoS integers are big-endian, sending flowspec first, then the specific length. */
TEST(hs_qos_wire_bytes) {
    static const uint8_t spec[2] = {0xaa, 0xbb};
    wsp_hs_frame f = {.type = WSP_HS_ACCEPT, .has_qos = 1};
    f.qos.sending.token_rate = 0x01020304u;
    f.qos.sending.minimum_policed_size = 0x05060708u;
    f.qos.receiving.token_rate = 0x090a0b0cu;
    f.qos.specific = spec;
    f.qos.specific_len = 2;
    uint8_t buf[128];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 8 + 66 + 2);
    static const uint8_t header[] = {0x57, 0x53, 0x01, 0x02, 0x02, 0x00, 0x00, 68};
    CHECK_MEM(buf, header, 8);
    static const uint8_t rate[] = {1, 2, 3, 4};
    CHECK_MEM(buf + 8, rate, 4);
    static const uint8_t policed[] = {5, 6, 7, 8};
    CHECK_MEM(buf + 8 + 28, policed, 4);
    static const uint8_t recv_rate[] = {9, 10, 11, 12};
    CHECK_MEM(buf + 8 + 32, recv_rate, 4);
    static const uint8_t tail[] = {0x00, 0x02, 0xaa, 0xbb};
    CHECK_MEM(buf + 8 + 64, tail, 4);
}

/* A wire QoS read into Winsock's: the provider-specific bytes are copied up to the buffer's
 * capacity and no further, the length said is what was copied; a shorter part is copied
 * whole. */
TEST(hs_qos_from_wire_copies_at_most_the_capacity) {
    static const uint8_t spec[5] = {1, 2, 3, 4, 5};
    wsp_hs_qos w = {.specific = spec, .specific_len = 5};
    w.sending.token_rate = 77;
    char out[8];
    memset(out, 'Q', sizeof out);
    QOS q;
    wsp_qos_from_wire(&q, &w, out, 3);
    CHECK_EQ(q.SendingFlowspec.TokenRate, 77);
    CHECK(q.ProviderSpecific.buf == out);
    CHECK_EQ(q.ProviderSpecific.len, 3);
    CHECK_MEM(out, "\1\2\3QQQQQ", 8);
    memset(out, 'Q', sizeof out);
    wsp_qos_from_wire(&q, &w, out, sizeof out);
    CHECK_EQ(q.ProviderSpecific.len, 5);
    CHECK_MEM(out, "\1\2\3\4\5QQQ", 8);
}

/* has_data with zero bytes is a distinct frame from no data at all. */
TEST(hs_empty_data_differs_from_no_data) {
    wsp_hs_frame with = {.type = WSP_HS_REQUEST, .has_data = 1};
    wsp_hs_frame d;
    size_t n = wsp_hs_encode(&with, wire, sizeof wire);
    CHECK_EQ(n, 10);
    CHECK_EQ(wsp_hs_decode(wire, n, WSP_HS_MAX_DATA, ALL_TYPES, &d), 10);
    CHECK_EQ(d.has_data, 1);
    CHECK_EQ(d.data_len, 0);
    wsp_hs_frame without = {.type = WSP_HS_REQUEST};
    n = wsp_hs_encode(&without, wire, sizeof wire);
    CHECK_EQ(n, 8);
    CHECK_EQ(wsp_hs_decode(wire, n, WSP_HS_MAX_DATA, ALL_TYPES, &d), 8);
    CHECK_EQ(d.has_data, 0);
}

static void check_every_prefix_needs_more(const wsp_hs_frame *f, uint32_t max_data) {
    size_t n = wsp_hs_encode(f, wire, sizeof wire);
    CHECK(n > 0);
    wsp_hs_frame d;
    for (size_t len = 0; len < n; len++)
        CHECK_EQ(wsp_hs_decode(wire, len, max_data, ALL_TYPES, &d), WSP_HS_NEED_MORE);
    CHECK_EQ(wsp_hs_decode(wire, n, max_data, ALL_TYPES, &d), n);
}

TEST(hs_every_prefix_needs_more) {
    wsp_hs_frame f = body_frame(WSP_HS_REQUEST, 1, 300, 1, 40);
    check_every_prefix_needs_more(&f, WSP_HS_MAX_DATA);
    check_every_prefix_needs_more(&f, 300); /* data exactly at the receiver's limit */
    f = body_frame(WSP_HS_ACCEPT, 1, WSP_HS_MAX_DATA, 1, WSP_HS_MAX_QOS_SPECIFIC);
    check_every_prefix_needs_more(&f, WSP_HS_MAX_DATA);
    f = body_frame(WSP_HS_ACCEPT, 0, 0, 1, 0);
    check_every_prefix_needs_more(&f, 0);
    f = body_frame(WSP_HS_REQUEST, 1, 0, 0, 0);
    check_every_prefix_needs_more(&f, 0);
    wsp_hs_frame refuse = {.type = WSP_HS_REFUSE, .reason = WSP_HS_REASON_CLOSING};
    check_every_prefix_needs_more(&refuse, WSP_HS_MAX_DATA);
    wsp_hs_frame pending = {.type = WSP_HS_PENDING};
    check_every_prefix_needs_more(&pending, WSP_HS_MAX_DATA);
}

/* Decodes buf[0..len) and every shorter prefix, the empty one too: the error must appear at
 * exactly len bytes, proving it is reported as early as the bytes allow and not before (no
 * check looks at a byte not yet there). */
static void check_error_at(const uint8_t *buf, size_t len, uint32_t max_data, unsigned expect,
                           long error) {
    wsp_hs_frame d;
    for (size_t k = 0; k < len; k++)
        CHECK_EQ(wsp_hs_decode(buf, k, max_data, expect, &d), WSP_HS_NEED_MORE);
    CHECK_EQ(wsp_hs_decode(buf, len, max_data, expect, &d), error);
    /* More bytes cannot turn the error into anything else. */
    CHECK_EQ(wsp_hs_decode(buf, len + 1, max_data, expect, &d), error);
}

/* A valid REQUEST header with data and QoS, for the tests below to damage. */
static void valid_header(uint8_t *b, uint8_t type, uint8_t flags, uint16_t body) {
    memset(b, 0, 64);
    b[0] = 'W';
    b[1] = 'S';
    b[2] = WSP_HS_VERSION_1;
    b[3] = type;
    b[4] = flags;
    b[5] = type == WSP_HS_REFUSE ? WSP_HS_REASON_REJECTED : 0;
    b[6] = (uint8_t)(body >> 8);
    b[7] = (uint8_t)body;
}

/* Version 3: a REQUEST that says its client reads every reason, optionally with patience;
 * a REFUSE whose reason only version 3 has. */
TEST(hs_version_3_requests_round_trip) {
    static const uint8_t data[3] = {'a', 'b', 'c'};
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1};
    CHECK_EQ(wsp_hs_encoded_size(&f), WSP_HS_HEADER_SIZE);
    check_round_trip(&f);
    f.has_patience = 1;
    f.patience_ms = 0x01020304u;
    CHECK_EQ(wsp_hs_encoded_size(&f), WSP_HS_HEADER_SIZE + 4);
    check_round_trip(&f);
    f.has_callee_capacity = 1;
    f.callee_capacity = 7;
    f.has_data = 1;
    f.data = data;
    f.data_len = 3;
    check_round_trip(&f);
    /* capacity, then patience, then data */
    uint8_t buf[64];
    size_t n = wsp_hs_encode(&f, buf, sizeof buf);
    CHECK_EQ(n, 8u + 2 + 4 + 2 + 3);
    CHECK_EQ(buf[2], WSP_HS_VERSION_3);
    CHECK_EQ(wsp_hs_patience_offset(buf, n), 10);
    static const uint8_t body[] = {0x00, 0x07, 0x01, 0x02, 0x03, 0x04, 0x00, 0x03, 'a', 'b', 'c'};
    CHECK_MEM(buf + 8, body, sizeof body);
    /* patience alone makes a request version 3 */
    wsp_hs_frame g = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 5};
    CHECK_EQ(wsp_hs_encode(&g, buf, sizeof buf), 12u);
    CHECK_EQ(buf[2], WSP_HS_VERSION_3);
    CHECK_EQ(wsp_hs_patience_offset(buf, 12), 8);
    wsp_hs_frame v1 = {.type = WSP_HS_REQUEST};
    CHECK_EQ(wsp_hs_encode(&v1, buf, sizeof buf), 8u);
    CHECK_EQ(wsp_hs_patience_offset(buf, 8), 0);
}

/* wsp_hs_patience_offset answers only for a whole header: the first bytes of a REQUEST with
 * patience, fewer than the header's 8, have no patience part yet (0), whatever their type and
 * flags bytes say; nor has a frame of another type (or none) with the patience bit. */
TEST(hs_patience_offset_needs_a_whole_request_header) {
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 5};
    uint8_t buf[64];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 12u);
    CHECK_EQ(wsp_hs_patience_offset(buf, 12), 8);
    CHECK_EQ(wsp_hs_patience_offset(buf, WSP_HS_HEADER_SIZE), 8);
    for (size_t len = 0; len < WSP_HS_HEADER_SIZE; len++)
        CHECK_EQ(wsp_hs_patience_offset(buf, len), 0);
    buf[3] = WSP_HS_ACCEPT; /* the flags byte still has the patience bit */
    CHECK_EQ(wsp_hs_patience_offset(buf, 12), 0);
    buf[3] = 0; /* no type at all */
    CHECK_EQ(wsp_hs_patience_offset(buf, 12), 0);
}

/* docs/PROTOCOL.md's worked example of a version 3 REQUEST and its REFUSE. */
TEST(hs_version_3_worked_example) {
    static const uint8_t request[] = {0x57, 0x53, 0x03, 0x01, 0x0d, 0x00, 0x00, 0x0b, 0x00, 0x10,
                                      0x00, 0x00, 0x13, 0x86, 0x00, 0x03, 'a',  'b',  'c'};
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1, .has_callee_capacity = 1,
                      .callee_capacity = 16, .has_patience = 1, .patience_ms = 4998,
                      .has_data = 1, .data = (const uint8_t *)"abc", .data_len = 3};
    uint8_t buf[64];
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), sizeof request);
    CHECK_MEM(buf, request, sizeof request);
    static const uint8_t refuse[] = {0x57, 0x53, 0x03, 0x03, 0x00, 0x07, 0x00, 0x00};
    wsp_hs_frame r = {.type = WSP_HS_REFUSE, .reason = WSP_HS_REASON_UNDELIVERABLE};
    CHECK_EQ(wsp_hs_encode(&r, buf, sizeof buf), sizeof refuse);
    CHECK_MEM(buf, refuse, sizeof refuse);
}

TEST(hs_version_3_fields_only_where_they_belong) {
    wsp_hs_frame f = {.type = WSP_HS_ACCEPT, .reads_reasons = 1};
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    f = (wsp_hs_frame){.type = WSP_HS_PENDING, .has_patience = 1};
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    f = (wsp_hs_frame){.type = WSP_HS_REQUEST, .patience_ms = 3}; /* length without its flag */
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    f = (wsp_hs_frame){.type = WSP_HS_REFUSE, .reason = WSP_HS_REASON_MAX + 1};
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    uint8_t b[64];
    /* a reason of version 3 in a version 1 frame, and one of version 1 in version 3 */
    valid_header(b, WSP_HS_REFUSE, 0, 0);
    b[5] = WSP_HS_REASON_MALFORMED;
    check_error_at(b, 6, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_REFUSE, 0, 0);
    b[2] = WSP_HS_VERSION_3;
    check_error_at(b, 6, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* ... at the boundary: the last reason of version 1, in version 3 */
    valid_header(b, WSP_HS_REFUSE, 0, 0);
    b[2] = WSP_HS_VERSION_3;
    b[5] = WSP_HS_REASON_V1_MAX;
    check_error_at(b, 6, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* version 3 is a REQUEST or a REFUSE */
    valid_header(b, WSP_HS_PENDING, 0, 0);
    b[2] = WSP_HS_VERSION_3;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_ACCEPT, 0, 0);
    b[2] = WSP_HS_VERSION_3;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* the patience flag is version 3's */
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_PATIENCE, 4);
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_PATIENCE | WSP_HS_FLAG_CAPACITY, 6);
    b[2] = WSP_HS_VERSION_2;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* a version 3 request with patience but a body too short for it */
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_PATIENCE, 3);
    b[2] = WSP_HS_VERSION_3;
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* bits above 3 stay reserved */
    valid_header(b, WSP_HS_REQUEST, 0x10, 0);
    b[2] = WSP_HS_VERSION_3;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
}

/* Any byte but the magic's is refused, below it as above it. */
TEST(hs_bad_magic_at_first_byte) {
    static const uint8_t wrong[] = {'G' /* an HTTP client, say */, 'X', 0x00, 0xff};
    for (size_t i = 0; i < sizeof wrong; i++) {
        uint8_t b[64] = {0};
        valid_header(b, WSP_HS_REQUEST, 0, 0);
        b[0] = wrong[i];
        check_error_at(b, 1, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_MAGIC);
    }
}

TEST(hs_bad_magic_at_second_byte) {
    static const uint8_t wrong[] = {'W', 'R', 0x00, 0xff};
    for (size_t i = 0; i < sizeof wrong; i++) {
        uint8_t b[64] = {0};
        valid_header(b, WSP_HS_REQUEST, 0, 0);
        b[1] = wrong[i];
        check_error_at(b, 2, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_MAGIC);
    }
}

TEST(hs_bad_version) {
    uint8_t b[64] = {0};
    static const uint8_t versions[] = {0, 4, 0xff};
    for (size_t i = 0; i < sizeof versions; i++) {
        valid_header(b, WSP_HS_REQUEST, 0, 0);
        b[2] = versions[i];
        check_error_at(b, 3, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_VERSION);
    }
}

TEST(hs_bad_type) {
    uint8_t b[64] = {0};
    static const uint8_t types[] = {0, 5, 31, 32, 0xff};
    for (size_t i = 0; i < sizeof types; i++) {
        valid_header(b, types[i], 0, 0);
        check_error_at(b, 4, WSP_HS_MAX_DATA, ~0u, WSP_HS_BAD_TYPE);
    }
}

TEST(hs_unexpected_type) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, 0, 0); /* a client must never receive a REQUEST */
    check_error_at(b, 4, WSP_HS_MAX_DATA, SERVER_ANSWERS, WSP_HS_BAD_TYPE);
    valid_header(b, WSP_HS_ACCEPT, 0, 0); /* nor a server an ACCEPT */
    check_error_at(b, 4, WSP_HS_MAX_DATA, 1u << WSP_HS_REQUEST, WSP_HS_BAD_TYPE);
    /* The same bytes are fine when the mask allows them. */
    CHECK_EQ(wsp_hs_decode(b, 8, WSP_HS_MAX_DATA, SERVER_ANSWERS, NULL), 8);
    CHECK_EQ(wsp_hs_decode(b, 8, WSP_HS_MAX_DATA, 0, NULL), WSP_HS_BAD_TYPE);
}

TEST(hs_reserved_flags) {
    uint8_t b[64] = {0};
    for (unsigned bit = 2; bit < 8; bit++) {
        valid_header(b, WSP_HS_REQUEST, (uint8_t)(WSP_HS_FLAG_DATA | 1u << bit), 2);
        check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    }
}

/* Version 2 knows bit 2 (callee capacity), requires it, and allows it on a REQUEST only;
 * bits 3-7 stay reserved. */
TEST(hs_version_2_flags) {
    uint8_t b[64] = {0};
    for (unsigned bit = 3; bit < 8; bit++) {
        valid_header(b, WSP_HS_REQUEST, (uint8_t)(WSP_HS_FLAG_CAPACITY | 1u << bit), 2);
        b[2] = WSP_HS_VERSION_2;
        check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    }
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 2); /* version 2 without a capacity */
    b[2] = WSP_HS_VERSION_2;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_ACCEPT, WSP_HS_FLAG_CAPACITY, 2); /* a capacity on an answer */
    b[2] = WSP_HS_VERSION_2;
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_CAPACITY, 2); /* a capacity in version 1 */
    check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[2] = WSP_HS_VERSION_2; /* the same, correctly labelled: capacity 0 */
    CHECK_EQ(wsp_hs_decode(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, NULL), 10);
}

TEST(hs_callee_capacity_bounds) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_CAPACITY, 2);
    b[2] = WSP_HS_VERSION_2;
    b[8] = 0x40; /* 16384: the ceiling itself is fine */
    wsp_hs_frame d;
    CHECK_EQ(wsp_hs_decode(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, &d), 10);
    CHECK_EQ(d.callee_capacity, WSP_HS_MAX_DATA);
    CHECK(!d.has_data && !d.has_qos);
    b[9] = 1; /* 16385: no frame could use it */
    check_error_at(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* The capacity alone is exactly two bytes of body. */
    b[9] = 0;
    b[7] = 3;
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[7] = 1;
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    /* With data, the data length is checked against what follows the capacity. */
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_CAPACITY | WSP_HS_FLAG_DATA, 2 + 2 + 3);
    b[2] = WSP_HS_VERSION_2;
    b[11] = 4; /* says 4, the body leaves room for 3 */
    check_error_at(b, 12, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[11] = 3;
    CHECK_EQ(wsp_hs_decode(b, 15, WSP_HS_MAX_DATA, ALL_TYPES, &d), 15);
    CHECK_EQ(d.data_len, 3);
    CHECK(d.data == b + 12);
    /* A receiver's data limit applies as in version 1: here the body is already too long. */
    check_error_at(b, 8, 2, ALL_TYPES, WSP_HS_TOO_LONG);
}

TEST(hs_reason_on_non_refuse) {
    uint8_t b[64] = {0};
    static const uint8_t types[] = {WSP_HS_REQUEST, WSP_HS_ACCEPT, WSP_HS_PENDING};
    for (size_t i = 0; i < sizeof types; i++) {
        valid_header(b, types[i], 0, 0);
        b[5] = WSP_HS_REASON_REJECTED;
        check_error_at(b, 6, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    }
}

TEST(hs_refuse_reason_out_of_range) {
    uint8_t b[64] = {0};
    static const uint8_t reasons[] = {0, WSP_HS_REASON_MAX + 1, 0xff};
    for (size_t i = 0; i < sizeof reasons; i++) {
        valid_header(b, WSP_HS_REFUSE, 0, 0);
        b[5] = reasons[i];
        check_error_at(b, 6, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    }
}

TEST(hs_body_flags_on_pending_and_refuse) {
    uint8_t b[64] = {0};
    static const uint8_t types[] = {WSP_HS_PENDING, WSP_HS_REFUSE};
    for (size_t i = 0; i < sizeof types; i++)
        for (uint8_t flags = 1; flags <= 3; flags++) {
            valid_header(b, types[i], flags, 2);
            check_error_at(b, 5, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
        }
}

/* No body flags but a body length: caught when the length is read. */
TEST(hs_body_on_pending) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_PENDING, 0, 3);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_ACCEPT, 0, 1);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
}

/* A body longer than any frame could be is too long whatever the flags say. */
TEST(hs_body_longer_than_max_frame) {
    uint8_t b[64] = {0};
    uint16_t over = (uint16_t)(WSP_HS_MAX_FRAME - WSP_HS_HEADER_SIZE + 1);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, over);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
    valid_header(b, WSP_HS_PENDING, 0, 0xffff);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
    valid_header(b, WSP_HS_PENDING, 0, over); /* no flags, one byte past any frame's body */
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
    /* One byte less is a possible frame (version 3, with every part)... */
    valid_header(b, WSP_HS_REQUEST,
                 WSP_HS_FLAG_CAPACITY | WSP_HS_FLAG_PATIENCE | WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS,
                 (uint16_t)(over - 1));
    b[2] = WSP_HS_VERSION_3;
    CHECK_EQ(wsp_hs_decode(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, NULL), WSP_HS_NEED_MORE);
    /* ...without the patience part it is one byte too long (version 2)... */
    over = (uint16_t)(over - WSP_HS_PATIENCE_SIZE);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_CAPACITY | WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS,
                 over);
    b[2] = WSP_HS_VERSION_2;
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_CAPACITY | WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS,
                 (uint16_t)(over - 1));
    b[2] = WSP_HS_VERSION_2;
    CHECK_EQ(wsp_hs_decode(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, NULL), WSP_HS_NEED_MORE);
    /* ...and in version 1, without the two bytes of capacity. */
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, (uint16_t)(over - 3));
    CHECK_EQ(wsp_hs_decode(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, NULL), WSP_HS_NEED_MORE);
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, (uint16_t)(over - 2));
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
}

/* A data length over the receiver's max_data fails as soon as the length field is read. */
TEST(hs_data_longer_than_max_data) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, 2 + 11 + 66);
    b[8] = 0;
    b[9] = 11;
    check_error_at(b, 10, 10, ALL_TYPES, WSP_HS_TOO_LONG);
    CHECK_EQ(wsp_hs_decode(b, 10, 11, ALL_TYPES, NULL), WSP_HS_NEED_MORE);
}

/* Data only: a body length over 2 + max_data already shows the data must be too long. */
TEST(hs_data_body_longer_than_max_data) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 2 + 101);
    check_error_at(b, 8, 100, ALL_TYPES, WSP_HS_TOO_LONG);
    CHECK_EQ(wsp_hs_decode(b, 8, 101, ALL_TYPES, NULL), WSP_HS_NEED_MORE);
}

TEST(hs_data_over_wire_ceiling) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 2 + WSP_HS_MAX_DATA + 1);
    /* max_data above the ceiling is clamped: it cannot admit more than the format allows. */
    check_error_at(b, 8, 0xffffffffu, ALL_TYPES, WSP_HS_TOO_LONG);
}

TEST(hs_qos_specific_too_long) {
    uint8_t b[128] = {0};
    uint16_t spec = WSP_HS_MAX_QOS_SPECIFIC + 1;
    valid_header(b, WSP_HS_ACCEPT, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, (uint16_t)(2 + 66 + 5));
    b[9] = 0; /* no data */
    b[10 + 64] = (uint8_t)(spec >> 8);
    b[10 + 65] = (uint8_t)spec;
    check_error_at(b, 10 + 66, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
}

/* QoS only: a body over the fixed part plus the specific ceiling is too long at the header. */
TEST(hs_qos_body_longer_than_specific_ceiling) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_QOS, 66 + WSP_HS_MAX_QOS_SPECIFIC + 1);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
}

/* Data and QoS: the data length leaves more than the biggest QoS block could fill. */
TEST(hs_data_leaves_too_much_for_qos) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS,
                 2 + 100 + 66 + WSP_HS_MAX_QOS_SPECIFIC + 1);
    b[9] = 100;
    check_error_at(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_TOO_LONG);
}

/* Body lengths shorter than the fixed parts the flags require. */
TEST(hs_body_shorter_than_flags_require) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 1);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_ACCEPT, WSP_HS_FLAG_QOS, 65);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    valid_header(b, WSP_HS_ACCEPT, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, 67);
    check_error_at(b, 8, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
}

/* The data length disagrees with the body length, in both directions. */
TEST(hs_data_len_mismatch) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 2 + 5);
    b[9] = 6; /* more data than the body holds */
    check_error_at(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[9] = 4; /* less data than the body holds, and no QoS to fill the rest */
    check_error_at(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[9] = 5;
    CHECK_EQ(wsp_hs_decode(b, 15, WSP_HS_MAX_DATA, ALL_TYPES, NULL), 15);
}

/* With QoS after the data, the data length leaves less than the QoS fixed part. */
TEST(hs_data_len_leaves_too_little_for_qos) {
    uint8_t b[64] = {0};
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS, 2 + 3 + 66);
    b[9] = 4;
    check_error_at(b, 10, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
}

/* The QoS specific length disagrees with the body length, in both directions. */
TEST(hs_qos_specific_len_mismatch) {
    uint8_t b[128] = {0}; /* the QoS fields, the specific length's high byte included, are 0 */
    valid_header(b, WSP_HS_ACCEPT, WSP_HS_FLAG_QOS, 66 + 4);
    b[8 + 65] = 5;
    check_error_at(b, 8 + 66, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[8 + 65] = 3;
    check_error_at(b, 8 + 66, WSP_HS_MAX_DATA, ALL_TYPES, WSP_HS_BAD_FIELD);
    b[8 + 65] = 4;
    CHECK_EQ(wsp_hs_decode(b, 8 + 70, WSP_HS_MAX_DATA, ALL_TYPES, NULL), 8 + 70);
}

/* Bytes after a complete frame belong to the next frame or the application. */
TEST(hs_trailing_bytes_not_consumed) {
    wsp_hs_frame f = body_frame(WSP_HS_ACCEPT, 1, 3, 0, 0);
    size_t n = wsp_hs_encode(&f, wire, sizeof wire);
    CHECK_EQ(n, 13);
    memcpy(wire + n, "raw application bytes", 21);
    wsp_hs_frame d;
    CHECK_EQ(wsp_hs_decode(wire, n + 21, WSP_HS_MAX_DATA, ALL_TYPES, &d), n);
    CHECK_EQ(d.data_len, 3);
    /* Two frames back to back decode one at a time. */
    wsp_hs_frame pending = {.type = WSP_HS_PENDING};
    CHECK_EQ(wsp_hs_encode(&pending, wire, sizeof wire), 8);
    CHECK_EQ(wsp_hs_encode(&f, wire + 8, sizeof wire - 8), 13);
    CHECK_EQ(wsp_hs_decode(wire, 21, WSP_HS_MAX_DATA, ALL_TYPES, &d), 8);
    CHECK_EQ(d.type, WSP_HS_PENDING);
    CHECK_EQ(wsp_hs_decode(wire + 8, 13, WSP_HS_MAX_DATA, ALL_TYPES, &d), 13);
    CHECK_EQ(d.type, WSP_HS_ACCEPT);
}

TEST(hs_decode_without_output) {
    wsp_hs_frame f = body_frame(WSP_HS_REQUEST, 1, 9, 1, 2);
    size_t n = wsp_hs_encode(&f, wire, sizeof wire);
    CHECK_EQ(wsp_hs_decode(wire, n, WSP_HS_MAX_DATA, ALL_TYPES, NULL), n);
}

/* The encoder refuses exactly what the decoder would reject. */
TEST(hs_encoder_refuses_invalid_frames) {
    uint8_t buf[64];
    static const uint8_t bad_types[] = {0, 5, 0xff};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        wsp_hs_frame f = {.type = bad_types[i]};
        CHECK_EQ(wsp_hs_encoded_size(&f), 0);
        CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    }
    wsp_hs_frame accept_reason = {.type = WSP_HS_ACCEPT, .reason = WSP_HS_REASON_REJECTED};
    CHECK_EQ(wsp_hs_encode(&accept_reason, buf, sizeof buf), 0);
    wsp_hs_frame refuse_none = {.type = WSP_HS_REFUSE};
    CHECK_EQ(wsp_hs_encode(&refuse_none, buf, sizeof buf), 0);
    wsp_hs_frame refuse_high = {.type = WSP_HS_REFUSE, .reason = WSP_HS_REASON_MAX + 1};
    CHECK_EQ(wsp_hs_encode(&refuse_high, buf, sizeof buf), 0);
    wsp_hs_frame pending_data = {.type = WSP_HS_PENDING, .has_data = 1};
    CHECK_EQ(wsp_hs_encode(&pending_data, buf, sizeof buf), 0);
    wsp_hs_frame refuse_qos = {.type = WSP_HS_REFUSE, .reason = 1, .has_qos = 1};
    CHECK_EQ(wsp_hs_encode(&refuse_qos, buf, sizeof buf), 0);
    CHECK_EQ(wsp_hs_encoded_size(NULL), 0);
}

TEST(hs_encoder_refuses_over_ceilings) {
    wsp_hs_frame f = body_frame(WSP_HS_REQUEST, 1, WSP_HS_MAX_DATA + 1, 0, 0);
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    CHECK_EQ(wsp_hs_encode(&f, wire, sizeof wire), 0);
    f = body_frame(WSP_HS_ACCEPT, 0, 0, 1, WSP_HS_MAX_QOS_SPECIFIC + 1);
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    CHECK_EQ(wsp_hs_encode(&f, wire, sizeof wire), 0);
}

/* A length whose flag is off, or bytes with no pointer, would send something else. */
TEST(hs_encoder_refuses_inconsistent_fields) {
    uint8_t buf[128];
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .data = payload, .data_len = 4};
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    f = (wsp_hs_frame){.type = WSP_HS_REQUEST, .has_data = 1, .data_len = 4};
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    f = (wsp_hs_frame){.type = WSP_HS_REQUEST, .qos.specific = specific};
    f.qos.specific_len = 1;
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    f.has_qos = 1;
    f.qos.specific = NULL;
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    f.qos.specific = specific;
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 8 + 66 + 1);
}

TEST(hs_encoder_refuses_bad_callee_capacities) {
    uint8_t buf[64];
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_callee_capacity = 1,
                      .callee_capacity = WSP_HS_MAX_DATA + 1};
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    f.callee_capacity = WSP_HS_MAX_DATA;
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 10);
    f = (wsp_hs_frame){.type = WSP_HS_REQUEST, .callee_capacity = 5}; /* flag off */
    CHECK_EQ(wsp_hs_encode(&f, buf, sizeof buf), 0);
    static const uint8_t answers[] = {WSP_HS_ACCEPT, WSP_HS_PENDING};
    for (size_t i = 0; i < sizeof answers; i++) {
        f = (wsp_hs_frame){.type = answers[i], .has_callee_capacity = 1};
        CHECK_EQ(wsp_hs_encoded_size(&f), 0);
    }
    f = (wsp_hs_frame){.type = WSP_HS_REFUSE, .reason = 1, .has_callee_capacity = 1};
    CHECK_EQ(wsp_hs_encoded_size(&f), 0);
}

TEST(hs_encoder_needs_room) {
    wsp_hs_frame f = body_frame(WSP_HS_REQUEST, 1, 5, 0, 0);
    uint8_t buf[16];
    memset(buf, 0xcc, sizeof buf);
    CHECK_EQ(wsp_hs_encode(&f, buf, 14), 0);
    CHECK_EQ(buf[0], 0xcc); /* a refused encode writes nothing */
    CHECK_EQ(wsp_hs_encode(&f, NULL, 64), 0);
    CHECK_EQ(wsp_hs_encode(&f, buf, 15), 15);
}

TEST(hs_result_names) {
    const char *names[] = {
        wsp_hs_result_name(WSP_HS_NEED_MORE),   wsp_hs_result_name(WSP_HS_BAD_MAGIC),
        wsp_hs_result_name(WSP_HS_BAD_VERSION), wsp_hs_result_name(WSP_HS_BAD_TYPE),
        wsp_hs_result_name(WSP_HS_TOO_LONG),    wsp_hs_result_name(WSP_HS_BAD_FIELD),
        wsp_hs_result_name(8),                  wsp_hs_result_name(-6),
    };
    size_t n = sizeof names / sizeof names[0];
    for (size_t i = 0; i < n; i++) {
        CHECK(names[i] != NULL && names[i][0] != '\0');
        for (size_t j = i + 1; j < n; j++)
            CHECK(strcmp(names[i], names[j]) != 0);
    }
    CHECK(strcmp(wsp_hs_result_name(WSP_HS_BAD_MAGIC), "bad magic") == 0);
    CHECK(strcmp(wsp_hs_result_name(WSP_HS_NEED_MORE), "need more") == 0);
    CHECK(strcmp(wsp_hs_result_name(WSP_HS_TOO_LONG), "too long") == 0);
    CHECK(strcmp(wsp_hs_result_name(WSP_HS_BAD_FIELD), "bad field") == 0);
    CHECK(strcmp(wsp_hs_result_name(8), "frame") == 0); /* a frame's length */
    CHECK(strcmp(wsp_hs_result_name(-1000), wsp_hs_result_name(-6)) == 0);
}

/* The decoder stops at the end of the frame: what follows it (a next frame, the application's
 * bytes, anything, a QoS block's worth or more) is not read as part of it. */
TEST(hs_decoding_stops_at_the_end_of_the_frame) {
    uint8_t b[8 + 200];
    memset(b, 0xee, sizeof b);
    const uint8_t empty_request[] = {0x57, 0x53, 1, WSP_HS_REQUEST, 0, 0, 0, 0};
    memcpy(b, empty_request, sizeof empty_request);
    wsp_hs_frame f;
    CHECK_EQ(wsp_hs_decode(b, sizeof b, WSP_HS_MAX_DATA, ALL_TYPES, &f), 8);
    CHECK_EQ(f.type, WSP_HS_REQUEST);
    const uint8_t with_data[] = {0x57, 0x53, 1, WSP_HS_REQUEST, WSP_HS_FLAG_DATA, 0, 0, 4,
                                 0, 2, 'h', 'i'};
    memcpy(b, with_data, sizeof with_data);
    CHECK_EQ(wsp_hs_decode(b, sizeof b, WSP_HS_MAX_DATA, ALL_TYPES, &f), sizeof with_data);
    CHECK_EQ(f.data_len, 2);
    CHECK_MEM(f.data, "hi", 2);
}

/* The clamp of max_data holds for every frame, not only for the first byte's decode: with QoS
 * beside the data the body length alone cannot show the data too long, the data length must
 * (16385 bytes admitted by a max_data beyond the ceiling would break the format). */
TEST(hs_data_over_wire_ceiling_beside_qos) {
    uint8_t b[64] = {0};
    uint16_t data_len = WSP_HS_MAX_DATA + 1;
    valid_header(b, WSP_HS_REQUEST, WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS,
                 (uint16_t)(2 + data_len + 66));
    b[8] = (uint8_t)(data_len >> 8);
    b[9] = (uint8_t)data_len;
    CHECK_EQ(wsp_hs_decode(b, 0, 0xffffffffu, ALL_TYPES, NULL), WSP_HS_NEED_MORE); /* nothing yet */
    check_error_at(b, 10, 0xffffffffu, ALL_TYPES, WSP_HS_TOO_LONG);
    check_error_at(b, 10, WSP_HS_MAX_DATA + 1, ALL_TYPES, WSP_HS_TOO_LONG);
}

/* A REQUEST whose last part is its patience is whole at exactly its length: the decoder
 * takes the four bytes once they are all there, not one byte later. */
TEST(hs_request_ending_with_patience_is_whole_at_its_length) {
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 0x01020304};
    long n = wsp_hs_encode(&f, wire, sizeof wire);
    CHECK_EQ(n, 8 + 4);
    wsp_hs_frame d;
    CHECK_EQ(wsp_hs_decode(wire, (size_t)n - 1, WSP_HS_MAX_DATA, ALL_TYPES, &d), WSP_HS_NEED_MORE);
    CHECK_EQ(wsp_hs_decode(wire, (size_t)n, WSP_HS_MAX_DATA, ALL_TYPES, &d), n);
    CHECK(d.has_patience);
    CHECK_EQ(d.patience_ms, 0x01020304);
    CHECK(d.reads_reasons);
}
