/* The connect-data handshake codec; handshake.h is the contract, docs/PROTOCOL.md the spec.
 *
 * The decoder validates each field as soon as all of its bytes are present, so a receiver
 * that calls it after every read drops a bad peer at the first wrong byte instead of after
 * waiting for a body that may never come. Integers are assembled byte by byte: the input is
 * a network buffer with no alignment guarantee.
 */
#include "handshake.h"

#define MAGIC_0 0x57u /* 'W' */
#define MAGIC_1 0x53u /* 'S' */
#define FLAGS_V1 (WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS)
#define FLAGS_V2 (FLAGS_V1 | WSP_HS_FLAG_CAPACITY)
#define FLAGS_V3 (FLAGS_V2 | WSP_HS_FLAG_PATIENCE)
/* Offsets within the header and within the QoS block. */
#define OFF_VERSION 2u
#define OFF_TYPE 3u
#define OFF_FLAGS 4u
#define OFF_REASON 5u
#define OFF_BODY_LEN 6u
#define QOS_SPECIFIC_LEN_OFF (16u * 4u)
#define DATA_LEN_SIZE 2u
#define MAX_BODY (WSP_HS_MAX_FRAME - WSP_HS_HEADER_SIZE)

static uint16_t get16(const uint8_t *p) {
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *put16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static int type_known(unsigned type) {
    return type >= WSP_HS_REQUEST && type <= WSP_HS_PENDING;
}

/* Only REQUEST and ACCEPT carry a body; the others are pure signals. */
static int type_has_body(unsigned type) {
    return type == WSP_HS_REQUEST || type == WSP_HS_ACCEPT;
}

/* Version 1 knows bits 0 and 1; version 2 adds bit 2, which a version 2 frame must set (it is
 * what makes the frame version 2) and only a REQUEST may carry. Version 3 is a REQUEST, with
 * bits 2 and 3 optional, or a REFUSE (whose reason makes it version 3). */
static int flags_valid(unsigned version, unsigned type, unsigned flags) {
    if (version == WSP_HS_VERSION_3) {
        if (type == WSP_HS_REFUSE)
            return flags == 0;
        if (type != WSP_HS_REQUEST || (flags & ~FLAGS_V3))
            return 0;
    } else if (version == WSP_HS_VERSION_2) {
        if ((flags & ~FLAGS_V2) || !(flags & WSP_HS_FLAG_CAPACITY) || type != WSP_HS_REQUEST)
            return 0;
    } else if (flags & ~FLAGS_V1) {
        return 0;
    }
    return type_has_body(type) || flags == 0;
}

/* A REFUSE must say why, with a reason of its version (1-3 in version 1, 4 and above in
 * version 3: one encoding per frame); any other type has nothing to say. */
static int reason_valid(unsigned version, unsigned type, unsigned reason) {
    if (type != WSP_HS_REFUSE)
        return reason == WSP_HS_REASON_NONE;
    if (version == WSP_HS_VERSION_3)
        return reason > WSP_HS_REASON_V1_MAX && reason <= WSP_HS_REASON_MAX;
    return reason >= 1 && reason <= WSP_HS_REASON_V1_MAX;
}

/* The body bytes the flags require before any variable-length part. */
static size_t body_fixed_size(unsigned flags) {
    return ((flags & WSP_HS_FLAG_CAPACITY) ? WSP_HS_CAPACITY_SIZE : 0u) +
           ((flags & WSP_HS_FLAG_PATIENCE) ? WSP_HS_PATIENCE_SIZE : 0u) +
           ((flags & WSP_HS_FLAG_DATA) ? DATA_LEN_SIZE : 0u) +
           ((flags & WSP_HS_FLAG_QOS) ? WSP_HS_QOS_FIXED_SIZE : 0u);
}

/* Bytes 0..5 of the header, each checked as soon as it is present. */
static long check_header_bytes(const uint8_t *b, size_t len, unsigned expect) {
    if (len > 0 && b[0] != MAGIC_0)
        return WSP_HS_BAD_MAGIC;
    if (len > 1 && b[1] != MAGIC_1)
        return WSP_HS_BAD_MAGIC;
    if (len > OFF_VERSION &&
        (b[OFF_VERSION] < WSP_HS_VERSION_1 || b[OFF_VERSION] > WSP_HS_VERSION_3))
        return WSP_HS_BAD_VERSION;
    /* type_known() first: shifting by an arbitrary byte would be undefined. */
    if (len > OFF_TYPE && (!type_known(b[OFF_TYPE]) || !(expect & (1u << b[OFF_TYPE]))))
        return WSP_HS_BAD_TYPE;
    if (len > OFF_FLAGS && !flags_valid(b[OFF_VERSION], b[OFF_TYPE], b[OFF_FLAGS]))
        return WSP_HS_BAD_FIELD;
    if (len > OFF_REASON && !reason_valid(b[OFF_VERSION], b[OFF_TYPE], b[OFF_REASON]))
        return WSP_HS_BAD_FIELD;
    return WSP_HS_NEED_MORE;
}

/* The body length against the flags, before any body byte arrives. Too short for the fixed
 * parts, or longer than them when the flags describe no part of variable length, cannot be
 * right at all (BAD_FIELD); longer than the largest body the flags and max_data allow means
 * some length inside must exceed a limit (TOO_LONG). */
static long check_body_len(unsigned flags, size_t body, uint32_t max_data) {
    if (body < body_fixed_size(flags))
        return WSP_HS_BAD_FIELD;
    if (body > MAX_BODY)
        return WSP_HS_TOO_LONG;
    if (!(flags & (WSP_HS_FLAG_DATA | WSP_HS_FLAG_QOS)))
        return body == body_fixed_size(flags) ? WSP_HS_NEED_MORE : WSP_HS_BAD_FIELD;
    size_t limit = body_fixed_size(flags);
    if (flags & WSP_HS_FLAG_DATA)
        limit += max_data;
    if (flags & WSP_HS_FLAG_QOS)
        limit += WSP_HS_MAX_QOS_SPECIFIC;
    return body > limit ? WSP_HS_TOO_LONG : WSP_HS_NEED_MORE;
}

/* What is left for the QoS block once the data length is known. With no QoS nothing may be
 * left; with QoS the rest must hold the fixed part plus at most the specific ceiling. */
static long check_after_data(unsigned flags, size_t rest) {
    if (!(flags & WSP_HS_FLAG_QOS))
        return rest == 0 ? WSP_HS_NEED_MORE : WSP_HS_BAD_FIELD;
    if (rest < WSP_HS_QOS_FIXED_SIZE)
        return WSP_HS_BAD_FIELD;
    if (rest > WSP_HS_QOS_FIXED_SIZE + WSP_HS_MAX_QOS_SPECIFIC)
        return WSP_HS_TOO_LONG;
    return WSP_HS_NEED_MORE;
}

/* rest is the body bytes from the data part's start to the end of the frame. */
static long check_data_len(unsigned flags, size_t rest, size_t data_len, uint32_t max_data) {
    if (data_len > max_data)
        return WSP_HS_TOO_LONG;
    if (DATA_LEN_SIZE + data_len > rest)
        return WSP_HS_BAD_FIELD;
    return check_after_data(flags, rest - DATA_LEN_SIZE - data_len);
}

/* qos_rest is the body bytes from the start of the QoS block to the end of the frame. */
static long check_specific_len(size_t qos_rest, size_t specific_len) {
    if (specific_len > WSP_HS_MAX_QOS_SPECIFIC)
        return WSP_HS_TOO_LONG;
    return WSP_HS_QOS_FIXED_SIZE + specific_len == qos_rest ? WSP_HS_NEED_MORE
                                                            : WSP_HS_BAD_FIELD;
}

/* The body's fields, each checked once its two bytes are present. *data_off and *qos_off
 * receive the data part's and the QoS block's offsets in the frame. (check_body_len has made
 * sure the body holds every fixed part, so end - off never underflows.) */
static long check_body(const uint8_t *b, size_t len, size_t body, uint32_t max_data,
                       size_t *data_off, size_t *qos_off) {
    unsigned flags = b[OFF_FLAGS];
    size_t off = WSP_HS_HEADER_SIZE, end = WSP_HS_HEADER_SIZE + body;
    if (flags & WSP_HS_FLAG_CAPACITY) {
        if (len < off + WSP_HS_CAPACITY_SIZE)
            return WSP_HS_NEED_MORE;
        if (get16(b + off) > WSP_HS_MAX_DATA)
            return WSP_HS_BAD_FIELD; /* a capacity no frame could ever use */
        off += WSP_HS_CAPACITY_SIZE;
    }
    /* Every patience is valid, and its bytes are not read here: a frame cut short within them
     * is found incomplete by the checks below, which each need bytes past them. */
    if (flags & WSP_HS_FLAG_PATIENCE)
        off += WSP_HS_PATIENCE_SIZE;
    *data_off = off;
    if (flags & WSP_HS_FLAG_DATA) {
        if (len < off + DATA_LEN_SIZE)
            return WSP_HS_NEED_MORE;
        size_t data_len = get16(b + off);
        long r = check_data_len(flags, end - off, data_len, max_data);
        if (r < 0)
            return r;
        off += DATA_LEN_SIZE + data_len;
    }
    *qos_off = off;
    if (!(flags & WSP_HS_FLAG_QOS) || len < off + WSP_HS_QOS_FIXED_SIZE)
        return WSP_HS_NEED_MORE;
    return check_specific_len(end - off, get16(b + off + QOS_SPECIFIC_LEN_OFF));
}

static const uint8_t *read_flowspec(const uint8_t *p, wsp_hs_flowspec *fs) {
    uint32_t *fields[] = {&fs->token_rate,      &fs->token_bucket_size, &fs->peak_bandwidth,
                          &fs->latency,         &fs->delay_variation,   &fs->service_type,
                          &fs->max_sdu_size,    &fs->minimum_policed_size};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++, p += 4)
        *fields[i] = get32(p);
    return p;
}

/* Fills out from a frame already known to be complete and valid. */
static void fill_frame(const uint8_t *b, size_t data_off, size_t qos_off, wsp_hs_frame *out) {
    unsigned flags = b[OFF_FLAGS];
    *out = (wsp_hs_frame){.type = b[OFF_TYPE], .reason = b[OFF_REASON]};
    out->reads_reasons = b[OFF_VERSION] == WSP_HS_VERSION_3 && b[OFF_TYPE] == WSP_HS_REQUEST;
    size_t off = WSP_HS_HEADER_SIZE;
    if (flags & WSP_HS_FLAG_CAPACITY) {
        out->has_callee_capacity = 1;
        out->callee_capacity = get16(b + off);
        off += WSP_HS_CAPACITY_SIZE;
    }
    if (flags & WSP_HS_FLAG_PATIENCE) {
        out->has_patience = 1;
        out->patience_ms = get32(b + off);
    }
    if (flags & WSP_HS_FLAG_DATA) {
        out->has_data = 1;
        out->data_len = get16(b + data_off);
        out->data = b + data_off + DATA_LEN_SIZE;
    }
    if (flags & WSP_HS_FLAG_QOS) {
        const uint8_t *p = read_flowspec(b + qos_off, &out->qos.sending);
        p = read_flowspec(p, &out->qos.receiving);
        out->has_qos = 1;
        out->qos.specific_len = get16(p);
        out->qos.specific = p + 2;
    }
}

/* max_data above the wire ceiling is clamped to it: no sender may exceed the ceiling, so a
 * larger limit can only mean "the most the format allows". out may be NULL to only validate. */
long wsp_hs_decode(const uint8_t *buf, size_t len, uint32_t max_data, unsigned expect,
                   wsp_hs_frame *out) {
    if (max_data > WSP_HS_MAX_DATA)
        max_data = WSP_HS_MAX_DATA;
    long r = check_header_bytes(buf, len, expect);
    if (r < 0 || len < WSP_HS_HEADER_SIZE)
        return r;
    size_t body = get16(buf + OFF_BODY_LEN);
    r = check_body_len(buf[OFF_FLAGS], body, max_data);
    if (r < 0)
        return r;
    size_t data_off = WSP_HS_HEADER_SIZE, qos_off = WSP_HS_HEADER_SIZE;
    r = check_body(buf, len, body, max_data, &data_off, &qos_off);
    if (r < 0 || len < WSP_HS_HEADER_SIZE + body)
        return r;
    if (out)
        fill_frame(buf, data_off, qos_off, out);
    return (long)(WSP_HS_HEADER_SIZE + body);
}

/* The encoder refuses every frame the decoder (with max_data at the ceiling) would reject,
 * and also a length whose flag is off or whose pointer is NULL: either would silently send
 * something other than what the caller described. */
static int data_encodable(const wsp_hs_frame *f) {
    if (!f->has_data)
        return f->data_len == 0;
    return f->data_len <= WSP_HS_MAX_DATA && (f->data_len == 0 || f->data != NULL);
}

static int qos_encodable(const wsp_hs_frame *f) {
    if (!f->has_qos)
        return f->qos.specific_len == 0;
    return f->qos.specific_len <= WSP_HS_MAX_QOS_SPECIFIC &&
           (f->qos.specific_len == 0 || f->qos.specific != NULL);
}

static int capacity_encodable(const wsp_hs_frame *f) {
    if (!f->has_callee_capacity)
        return f->callee_capacity == 0;
    return f->callee_capacity <= WSP_HS_MAX_DATA;
}

/* What only a REQUEST says: a REQUEST from a client that reads reasons, or its patience. */
static int request_fields_encodable(const wsp_hs_frame *f) {
    if (!f->has_patience && f->patience_ms != 0)
        return 0;
    return f->type == WSP_HS_REQUEST || (!f->reads_reasons && !f->has_patience);
}

static unsigned frame_flags(const wsp_hs_frame *f) {
    return (f->has_data ? WSP_HS_FLAG_DATA : 0u) | (f->has_qos ? WSP_HS_FLAG_QOS : 0u) |
           (f->has_callee_capacity ? WSP_HS_FLAG_CAPACITY : 0u) |
           (f->has_patience ? WSP_HS_FLAG_PATIENCE : 0u);
}

/* The lowest version that carries the frame. */
static unsigned frame_version(const wsp_hs_frame *f) {
    if (f->type == WSP_HS_REFUSE)
        return f->reason > WSP_HS_REASON_V1_MAX ? WSP_HS_VERSION_3 : WSP_HS_VERSION_1;
    if (f->type == WSP_HS_REQUEST && (f->reads_reasons || f->has_patience))
        return WSP_HS_VERSION_3;
    return f->has_callee_capacity ? WSP_HS_VERSION_2 : WSP_HS_VERSION_1;
}

size_t wsp_hs_encoded_size(const wsp_hs_frame *f) {
    if (!f || !type_known(f->type) || !request_fields_encodable(f) ||
        !reason_valid(frame_version(f), f->type, f->reason))
        return 0;
    if (!flags_valid(frame_version(f), f->type, frame_flags(f)) || !data_encodable(f) ||
        !qos_encodable(f) || !capacity_encodable(f))
        return 0;
    /* data_encodable and qos_encodable hold an absent part's length at 0. */
    return WSP_HS_HEADER_SIZE + body_fixed_size(frame_flags(f)) + f->data_len +
           f->qos.specific_len;
}

static uint8_t *write_flowspec(uint8_t *p, const wsp_hs_flowspec *fs) {
    const uint32_t fields[] = {fs->token_rate,   fs->token_bucket_size, fs->peak_bandwidth,
                               fs->latency,      fs->delay_variation,   fs->service_type,
                               fs->max_sdu_size, fs->minimum_policed_size};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        p = put32(p, fields[i]);
    return p;
}

/* Copies n bytes; src may be NULL when n is 0, which memcpy does not allow. */
static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = src[i];
    return p + n;
}

size_t wsp_hs_encode(const wsp_hs_frame *f, uint8_t *buf, size_t cap) {
    size_t size = wsp_hs_encoded_size(f);
    if (size == 0 || !buf || cap < size)
        return 0;
    uint8_t *p = buf;
    *p++ = MAGIC_0;
    *p++ = MAGIC_1;
    *p++ = (uint8_t)frame_version(f);
    *p++ = f->type;
    *p++ = (uint8_t)frame_flags(f);
    *p++ = f->reason;
    p = put16(p, (uint32_t)(size - WSP_HS_HEADER_SIZE));
    if (f->has_callee_capacity)
        p = put16(p, f->callee_capacity);
    if (f->has_patience)
        p = put32(p, f->patience_ms);
    if (f->has_data) {
        p = put16(p, f->data_len);
        p = put_bytes(p, f->data, f->data_len);
    }
    if (f->has_qos) {
        p = write_flowspec(p, &f->qos.sending);
        p = write_flowspec(p, &f->qos.receiving);
        p = put16(p, f->qos.specific_len);
        p = put_bytes(p, f->qos.specific, f->qos.specific_len);
    }
    return (size_t)(p - buf);
}

size_t wsp_hs_patience_offset(const uint8_t *frame, size_t len) {
    if (len < WSP_HS_HEADER_SIZE || frame[OFF_TYPE] != WSP_HS_REQUEST ||
        !(frame[OFF_FLAGS] & WSP_HS_FLAG_PATIENCE))
        return 0;
    return WSP_HS_HEADER_SIZE +
           ((frame[OFF_FLAGS] & WSP_HS_FLAG_CAPACITY) ? WSP_HS_CAPACITY_SIZE : 0u);
}

const char *wsp_hs_result_name(long result) {
    static const char *const names[] = {"need more", "bad magic", "bad version",
                                        "bad type",  "too long",  "bad field"};
    if (result > 0)
        return "frame";
    if (result < WSP_HS_BAD_FIELD)
        return "unknown";
    return names[-result];
}
