/* The connect-data handshake's wire format: encoder and decoder.
 *
 * Pure code: no I/O, no allocation, no global state, so that it can be fuzzed on its own.
 * docs/PROTOCOL.md is the specification; this is its one implementation.
 *
 * Every frame starts with an 8-byte header:
 *   0  'W' (0x57)          magic
 *   1  'S' (0x53)          magic
 *   2  version             1; 2 for a REQUEST with a callee-capacity part; 3 for a REQUEST
 *                          from a client that reads every refusal reason, and for a REFUSE
 *                          with a reason above 3
 *   3  type                enum wsp_hs_type
 *   4  flags               bit 0: data present, bit 1: QoS present, bit 2 (REQUEST only;
 *                          required in version 2, optional in 3): callee capacity present,
 *                          bit 3 (version 3 REQUEST only): patience present; others 0
 *   5  reason              REFUSE frames: enum wsp_hs_reason; every other type: 0
 *   6  body length         uint16, big-endian: the bytes that follow the header
 * The body holds, in this order and only when its flag is set:
 *   callee capacity: uint16 (big-endian), 0 to WSP_HS_MAX_DATA: the most callee data the
 *          client can take
 *   patience: uint32 (big-endian), milliseconds: how much longer the client waits for a
 *          decision, counted from when it sent the request
 *   data:  uint16 length (big-endian), then that many bytes
 *   QoS:   16 x uint32 (big-endian; sending then receiving FLOWSPEC, fields in Winsock order),
 *          uint16 provider-specific length, then that many bytes
 * The body length must equal exactly what the flags and lengths describe. Every frame has
 * exactly one encoding: the version byte follows from the frame's fields.
 */
#ifndef WSP_HANDSHAKE_H
#define WSP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Version 2 is version 1 plus the REQUEST's callee-capacity part; version 3 adds the
 * REQUEST's patience part and refusal reasons 4-9, and a version 3 REQUEST says that its
 * client reads them. A frame is sent in the lowest version that carries it, so that older
 * receivers still understand every frame meant for them. */
#define WSP_HS_VERSION_1 1
#define WSP_HS_VERSION_2 2
#define WSP_HS_VERSION_3 3
#define WSP_HS_HEADER_SIZE 8
/* Hard ceilings of the wire format; the per-socket limits a user sets are at most these. */
#define WSP_HS_MAX_DATA 16384u
#define WSP_HS_MAX_QOS_SPECIFIC 1024u
#define WSP_HS_QOS_FIXED_SIZE (16u * 4u + 2u)
#define WSP_HS_CAPACITY_SIZE 2u
#define WSP_HS_PATIENCE_SIZE 4u
#define WSP_HS_MAX_FRAME                                                                   \
    (WSP_HS_HEADER_SIZE + WSP_HS_CAPACITY_SIZE + WSP_HS_PATIENCE_SIZE + 2u +               \
     WSP_HS_MAX_DATA + WSP_HS_QOS_FIXED_SIZE + WSP_HS_MAX_QOS_SPECIFIC)

enum wsp_hs_type {
    WSP_HS_REQUEST = 1, /* client -> server: caller data, caller QoS */
    WSP_HS_ACCEPT = 2,  /* server -> client: callee data, negotiated QoS */
    WSP_HS_REFUSE = 3,  /* server -> client: reason; the server then closes */
    WSP_HS_PENDING = 4, /* server -> client: still deciding (queued or deferred); no body */
};

enum wsp_hs_reason {
    WSP_HS_REASON_NONE = 0,
    WSP_HS_REASON_REJECTED = 1,     /* the condition function returned CF_REJECT */
    WSP_HS_REASON_BACKLOG_FULL = 2, /* the listener's backlog was full */
    WSP_HS_REASON_CLOSING = 3,      /* the listener closed before deciding */
    /* Version 3: sent only to clients whose REQUEST was version 3 (older ones are told
     * REJECTED). The values are wsp.h's WSP_REASON_… values. */
    WSP_HS_REASON_TOO_LONG = 4,          /* caller data or QoS above the listener's limit */
    WSP_HS_REASON_MALFORMED = 5,         /* the request broke the protocol */
    WSP_HS_REASON_HANDSHAKE_TIMEOUT = 6, /* the request was not whole within the deadline */
    WSP_HS_REASON_UNDELIVERABLE = 7,     /* the answer did not fit the client's buffers */
    WSP_HS_REASON_EXPIRED = 8,           /* the client's patience ran out while queued */
    WSP_HS_REASON_HOLD_TIMEOUT = 9,      /* held past the listener's hold deadline */
    WSP_HS_REASON_V1_MAX = 3,
    WSP_HS_REASON_MAX = 9,
};

#define WSP_HS_FLAG_DATA 0x01u
#define WSP_HS_FLAG_QOS 0x02u
#define WSP_HS_FLAG_CAPACITY 0x04u /* REQUEST only: version 2 or 3 */
#define WSP_HS_FLAG_PATIENCE 0x08u /* REQUEST only: version 3 */

typedef struct wsp_hs_flowspec {
    uint32_t token_rate, token_bucket_size, peak_bandwidth, latency, delay_variation,
        service_type, max_sdu_size, minimum_policed_size;
} wsp_hs_flowspec;

typedef struct wsp_hs_qos {
    wsp_hs_flowspec sending, receiving;
    const uint8_t *specific; /* decoded frames point into the input buffer */
    uint32_t specific_len;
} wsp_hs_qos;

typedef struct wsp_hs_frame {
    uint8_t type;   /* enum wsp_hs_type */
    uint8_t reason; /* enum wsp_hs_reason, REFUSE only */
    /* REQUEST only: the client reads every refusal reason (the frame is version 3). The
     * decoder sets it for a version 3 REQUEST; a patience part implies it. */
    bool reads_reasons;
    bool has_callee_capacity; /* REQUEST only; makes the frame version 2 (or 3) */
    uint32_t callee_capacity; /* the most callee data the client takes, <= WSP_HS_MAX_DATA */
    bool has_patience;    /* REQUEST only; makes the frame version 3 */
    uint32_t patience_ms; /* how much longer the client waits, from when it sent this */
    bool has_data;
    const uint8_t *data; /* decoded frames point into the input buffer */
    uint32_t data_len;
    bool has_qos;
    wsp_hs_qos qos;
} wsp_hs_frame;

/* Decoding results: > 0 is the size of a complete, valid frame. */
enum wsp_hs_result {
    WSP_HS_NEED_MORE = 0,      /* a valid prefix: read more bytes */
    WSP_HS_BAD_MAGIC = -1,     /* not WSP at all (e.g. a plain TCP peer) */
    WSP_HS_BAD_VERSION = -2,   /* a WSP peer speaking a version we do not know (not 1-3) */
    WSP_HS_BAD_TYPE = -3,      /* unknown or unexpected frame type */
    WSP_HS_TOO_LONG = -4,      /* data or QoS longer than the receiver allows */
    WSP_HS_BAD_FIELD = -5,     /* reserved bits set, lengths that do not add up, bad reason */
};

/* The exact encoded size of f, or 0 when f cannot be encoded (a length or capacity over a
 * ceiling, an unknown type, body fields on a frame type that carries none, a capacity,
 * patience or reads_reasons on anything but a REQUEST). Also 0 for a non-zero data_len,
 * specific_len, callee_capacity or patience_ms whose has_ flag is off, or a non-zero length
 * with a NULL pointer. Any non-zero has_ flag counts as set. */
size_t wsp_hs_encoded_size(const wsp_hs_frame *f);

/* Writes f into buf; returns the bytes written, or 0 when it cannot be encoded or cap is
 * smaller than wsp_hs_encoded_size(f). */
size_t wsp_hs_encode(const wsp_hs_frame *f, uint8_t *buf, size_t cap);

/* Decodes the frame at the start of buf[0..len). max_data bounds the data length the caller
 * accepts (<= WSP_HS_MAX_DATA). expect is a bit mask of acceptable types (1u << type); any
 * other type is WSP_HS_BAD_TYPE. Returns the frame's size when complete (out filled, pointers
 * into buf), WSP_HS_NEED_MORE when buf holds a valid but incomplete prefix, or a negative
 * enum wsp_hs_result. Errors are reported as early as the bytes allow: a bad magic after one
 * byte, a too-long length as soon as it is read. A max_data above WSP_HS_MAX_DATA is treated
 * as WSP_HS_MAX_DATA. out may be NULL to validate only. A body length the flags rule out is
 * WSP_HS_BAD_FIELD, one longer than the flags allow under the limits is WSP_HS_TOO_LONG. */
long wsp_hs_decode(const uint8_t *buf, size_t len, uint32_t max_data, unsigned expect,
                   wsp_hs_frame *out);

/* Where a REQUEST's patience part starts in its encoding (its 4 bytes may be rewritten in
 * place just before sending, so that it counts from then), or 0 when it has none. */
size_t wsp_hs_patience_offset(const uint8_t *frame, size_t len);

/* A short, stable name for a result ("bad magic"), for logs and counters. */
const char *wsp_hs_result_name(long result);

#endif
