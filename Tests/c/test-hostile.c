/* Careless and hostile clients (issue 10): nothing a client chooses — its buffer sizes, the
 * bytes it sends, its timing — can read another client's data, keep its request first in
 * line or stop a server; every such request ends with a defined answer for that client only,
 * and the reason reaches the client and the server's drop handler. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "handshake.h"
#include "support.h"

/* ---- helpers -------------------------------------------------------------------------- */

/* A condition function that records what it saw and writes `callee` (len bytes). */
struct answer {
    int calls;
    char seen[8][16]; /* the caller data of each call, as a string */
    const char *callee;
    uint32_t callee_len;
    uint32_t offered; /* lpCalleeData->len on entry, last call */
};

static int answer_fn(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                     LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)sqos, (void)gqos, (void)callee_id, (void)g;
    struct answer *a = (struct answer *)ctx;
    if (a->calls < 8 && caller_data && caller_data->len < 16)
        memcpy(a->seen[a->calls], caller_data->buf, caller_data->len);
    a->calls++;
    a->offered = callee_data->len;
    memcpy(callee_data->buf, a->callee, a->callee_len);
    callee_data->len = a->callee_len;
    return CF_ACCEPT;
}

/* "Just accept": lpCalleeData is left as the provider offered it. */
static int lazy_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                       GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_ACCEPT;
}

static int plain_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                        GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    return CF_ACCEPT;
}

static int counting_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                           GROUP *g, DWORD_PTR ctx) {
    (*(int *)ctx)++;
    return plain_accept(a, b, c, d, e, f, g, ctx);
}

static DWORD refuse_reason(SOCKET s) {
    DWORD v = 0xdead;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_REFUSE_REASON, (char *)&v, &len, &err), 0);
    return v;
}

/* A raw client sends f (plus `extra` bytes after it) in one write. */
static int raw_send_request(const struct sockaddr_storage *addr, const wsp_hs_frame *f,
                            const char *extra, size_t extra_len) {
    static uint8_t buf[WSP_HS_MAX_FRAME + 64];
    size_t n = wsp_hs_encode(f, buf, sizeof buf);
    CHECK(n > 0);
    if (extra_len)
        memcpy(buf + n, extra, extra_len);
    int fd = raw_connect(addr);
    CHECK_EQ(send(fd, buf, n + extra_len, MSG_NOSIGNAL), n + extra_len);
    return fd;
}

/* Waits for the server to close a raw client without sending it anything (a client that
 * cannot read the reason is reset, as before reasons existed). */
static void expect_reset(int fd) {
    char b;
    int n;
    long long deadline = now_ms() + 5000;
    while ((n = raw_recv(fd, &b, 1, 100)) == -EAGAIN)
        CHECK(now_ms() < deadline);
    CHECK_EQ(n, -ECONNRESET);
}

/* Reads the server's REFUSE on a raw client and checks its version and reason; then the
 * server closes. */
static void expect_refuse(int fd, int version, int reason) {
    uint8_t b[8];
    int end = raw_recv_frame_then_end(fd, b);
    const uint8_t expected[] = {0x57, 0x53, (uint8_t)version, WSP_HS_REFUSE, 0, (uint8_t)reason,
                                0, 0};
    CHECK_MEM(b, expected, sizeof expected);
    CHECK(end == 0 || end == -ECONNRESET);
}

/* ---- defect 1: stale memory ---------------------------------------------------------- */

/* A function that accepts without setting lpCalleeData->len sends the offered capacity: those
 * bytes are zeros, never what an earlier client's function wrote in the same buffer. */
TEST(hostile_untouched_callee_buffer_sends_zeros_not_the_previous_clients_data) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static const char token[] = "SECRET-TOKEN-OF-A";
    for (int round = 0; round < 5; round++) {
        char in_a[64], in_b[64];
        WSABUF callee_a = {sizeof in_a, in_a}, callee_b = {sizeof in_b, in_b};
        struct async_connect a = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                  .callee = &callee_a};
        async_connect_start(&a);
        struct answer ans = {.callee = token, .callee_len = sizeof token};
        int err = 0;
        SOCKET sa = accept_with(l, answer_fn, (DWORD_PTR)&ans, &err);
        CHECK(sa != INVALID_SOCKET);
        CHECK_EQ(async_connect_join(&a), 0);
        CHECK_MEM(in_a, token, sizeof token);
        memset(in_b, 0x77, sizeof in_b);
        struct async_connect b = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                  .callee = &callee_b};
        async_connect_start(&b);
        SOCKET sb = accept_with(l, lazy_accept, 0, &err);
        CHECK(sb != INVALID_SOCKET);
        CHECK_EQ(async_connect_join(&b), 0);
        CHECK_EQ(callee_b.len, sizeof in_b); /* the capacity it was offered, untouched */
        for (size_t i = 0; i < sizeof in_b; i++)
            CHECK_EQ(in_b[i], 0);
        close_socket(sa);
        close_socket(sb);
        close_socket(a.s);
        close_socket(b.s);
    }
    close_socket(l);
}

/* ---- defect 2: one client stalls the queue ------------------------------------------- */

/* A client whose callee buffer (3 bytes) cannot take the answer (7 bytes) ends its own
 * request: WSAEFAULT once at the accept and at that client; the next accept presents the
 * good client behind it. The function runs twice in all: nothing spins. */
TEST(hostile_small_callee_buffer_cannot_stall_the_queue) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    char small[3], big[64];
    WSABUF callee_small = {sizeof small, small}, callee_big = {sizeof big, big};
    WSABUF bad_data = {3, "bad"}, good_data = {4, "good"};
    struct async_connect bad = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                .caller = &bad_data, .callee = &callee_small};
    async_connect_start(&bad);
    WAIT_FOR(stats_of(l).queued == 1, 5000);
    struct async_connect good = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                 .caller = &good_data, .callee = &callee_big};
    async_connect_start(&good);
    WAIT_FOR(stats_of(l).queued == 2, 5000);
    struct answer ans = {.callee = "welcome", .callee_len = 7};
    int err = 0;
    CHECK(accept_with(l, answer_fn, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(ans.offered, 3);
    CHECK_MEM(ans.seen[0], "bad", 3);
    SOCKET s = accept_with(l, answer_fn, (DWORD_PTR)&ans, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(ans.calls, 2);
    CHECK_MEM(ans.seen[1], "good", 4);
    CHECK_EQ(async_connect_join(&bad), WSAEFAULT);
    CHECK_EQ(refuse_reason(bad.s), WSP_REASON_CALLEE_DATA_TOO_LONG);
    CHECK_EQ(async_connect_join(&good), 0);
    CHECK_EQ(callee_big.len, 7);
    CHECK_MEM(big, "welcome", 7);
    CHECK_EQ(refuse_reason(good.s), WSP_REASON_NONE);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.undeliverable, 1);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.withdrawn + st.rejected + st.malformed, 0);
    close_socket(s);
    close_socket(bad.s);
    close_socket(good.s);
    close_socket(l);
}

/* An old (version 2) client cannot read the new reason, and any it could read would be false:
 * it is reset, as before (it reports a refusal), and the server moves on all the same. */
TEST(hostile_version_2_client_with_a_small_buffer_is_reset) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_callee_capacity = 1, .callee_capacity = 3};
    int fd = raw_send_request(&addr, &f, NULL, 0);
    struct answer ans = {.callee = "welcome", .callee_len = 7};
    int err = 0;
    CHECK(accept_with(l, answer_fn, (DWORD_PTR)&ans, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEFAULT);
    expect_reset(fd);
    CHECK_EQ(stats_of(l).undeliverable, 1);
    CHECK_EQ(stats_of(l).queued, 0);
    close(fd);
    close_socket(l);
}

/* ---- defect 3: the application's mistakes are its own ---------------------------------- */

static int null_buffer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                       GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->buf = NULL;
    f->len = 5;
    return CF_ACCEPT;
}

/* The smallest such mistake: one byte said, no buffer. */
static int null_buffer_of_one_byte(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                   LPWSABUF f, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)g, (void)ctx;
    f->buf = NULL;
    f->len = 1;
    return CF_ACCEPT;
}

static char huge_specific[WSP_HS_MAX_QOS_SPECIFIC + 1];

static int huge_qos(LPWSABUF a, LPWSABUF b, LPQOS sqos, LPQOS d, LPWSABUF e, LPWSABUF f,
                    GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    CHECK(sqos != NULL);
    sqos->ProviderSpecific = (WSABUF){sizeof huge_specific, huge_specific};
    return CF_ACCEPT;
}

/* A provider-specific length with no buffer (longer than the client's own part, so that
 * only the missing buffer makes it the application's mistake rather than the client's). */
static int null_specific(LPWSABUF a, LPWSABUF b, LPQOS sqos, LPQOS d, LPWSABUF e, LPWSABUF f,
                         GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    CHECK(sqos != NULL);
    sqos->ProviderSpecific = (WSABUF){5, NULL};
    return CF_ACCEPT;
}

/* The smallest such mistake: one byte said, no buffer (within the client's own part). */
static int null_specific_of_one_byte(LPWSABUF a, LPWSABUF b, LPQOS sqos, LPQOS d, LPWSABUF e,
                                     LPWSABUF f, GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)d, (void)e, (void)g, (void)ctx;
    f->len = 0;
    CHECK(sqos != NULL);
    sqos->ProviderSpecific = (WSABUF){1, NULL};
    return CF_ACCEPT;
}

/* Each mistake fails the accept with its code and leaves the request first in line, counted
 * nowhere; a correct answer then connects the same client. */
static void mistake_keeps_the_request(LPCONDITIONPROC mistake, int expected) {
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    char specific[4] = {1, 2, 3, 4};
    QOS q;
    memset(&q, 0, sizeof q);
    q.ProviderSpecific = (WSABUF){sizeof specific, specific};
    char in[16];
    WSABUF callee = {sizeof in, in};
    struct async_connect c = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                              .callee = &callee, .sqos = &q};
    async_connect_start(&c);
    int err = 0;
    CHECK(accept_with(l, mistake, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, expected);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.withdrawn + st.undeliverable + st.malformed + st.rejected, 0);
    SOCKET s = accept_with(l, plain_accept, 0, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    close_socket(s);
    close_socket(c.s);
    close_socket(l);
}

TEST(hostile_application_mistakes_fail_the_accept_and_keep_the_request) {
    start();
    mistake_keeps_the_request(null_buffer, WSAEFAULT);
    mistake_keeps_the_request(null_buffer_of_one_byte, WSAEFAULT);
    mistake_keeps_the_request(huge_qos, WSAEINVAL);
    mistake_keeps_the_request(null_specific, WSAEFAULT);
    mistake_keeps_the_request(null_specific_of_one_byte, WSAEFAULT);
}

/* ---- defect 4: bytes after a request ------------------------------------------------- */

/* Nothing may follow a REQUEST: not at the sizes of the server's read buffers (512 … 4096
 * bytes), nor at any other. Such a request is dropped as malformed, never presented. */
TEST(hostile_bytes_after_a_request_are_malformed_at_every_size) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 16, &addr);
    set_dword(l, SOL_WSP, WSP_MAX_CALLER_DATA, WSP_MAX_CONNECT_DATA);
    set_nonblocking(l, 1);
    static const size_t sizes[] = {13, 511, 512, 513, 1024, 2048, 4096, 8192, 16394};
    static uint8_t data[WSP_MAX_CONNECT_DATA];
    int n = (int)(sizeof sizes / sizeof sizes[0]);
    for (int i = 0; i < n; i++) {
        for (int v3 = 0; v3 < 2; v3++) {
            /* header, data length, data: sizes[i] bytes in all */
            wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_data = 1, .data = data,
                              .data_len = (uint32_t)(sizes[i] - 10), .reads_reasons = v3};
            CHECK_EQ(wsp_hs_encoded_size(&f), sizes[i]);
            uint64_t before = stats_of(l).malformed;
            int fd = raw_send_request(&addr, &f, "x", 1);
            WAIT_FOR(stats_of(l).malformed == before + 1, 5000);
            if (v3)
                expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
            else
                expect_reset(fd);
            close(fd);
        }
    }
    int calls = 0, err = 0;
    CHECK(accept_with(l, counting_accept, (DWORD_PTR)&calls, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(calls, 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.malformed, 2 * n);
    CHECK_EQ(st.queued + st.accepted, 0);
    close_socket(l);
}

/* Many bytes behind a request that fills a read buffer exactly (the look behind it sees them
 * without taking them) make it malformed the same way; the look is at one byte, whatever
 * waits (AddressSanitizer checks what it writes). */
TEST(hostile_many_bytes_behind_a_request_that_fills_the_read_buffer_are_malformed) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 16, &addr);
    set_dword(l, SOL_WSP, WSP_MAX_CALLER_DATA, WSP_MAX_CONNECT_DATA);
    set_nonblocking(l, 1);
    static const size_t sizes[] = {512, 1024};
    static uint8_t data[1024];
    static char tail[256];
    memset(tail, 't', sizeof tail);
    for (int i = 0; i < 2; i++) {
        wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_data = 1, .data = data,
                          .data_len = (uint32_t)(sizes[i] - 10), .reads_reasons = 1};
        CHECK_EQ(wsp_hs_encoded_size(&f), sizes[i]);
        uint64_t before = stats_of(l).malformed;
        int fd = raw_send_request(&addr, &f, tail, sizeof tail);
        WAIT_FOR(stats_of(l).malformed == before + 1, 5000);
        expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
        close(fd);
    }
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.malformed, 2);
    CHECK_EQ(st.queued + st.accepted, 0);
    close_socket(l);
}

/* The REFUSE for a malformed request is followed by a FIN, not by a reset that could overtake
 * it: what the client sent behind its request is read and discarded first, up to 32 KiB (8
 * reads of 4 KiB; a client that sends more is reset). Here about 29 KiB wait behind the first
 * read: the client reads the reason, then the end of the stream. */
TEST(hostile_refusal_behind_unread_bytes_ends_with_a_fin) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    static uint8_t buf[8 + 30000];
    static const uint8_t reserved_flag[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    memcpy(buf, reserved_flag, sizeof reserved_flag);
    memset(buf + 8, 'j', sizeof buf - 8);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, buf, sizeof buf, MSG_NOSIGNAL), sizeof buf);
    WAIT_FOR(stats_of(l).malformed == 1, 5000);
    uint8_t b[8];
    int end = raw_recv_frame_then_end(fd, b);
    CHECK_EQ(b[3], WSP_HS_REFUSE);
    CHECK_EQ(b[5], WSP_HS_REASON_MALFORMED);
    CHECK_EQ(end, 0); /* a FIN: everything the client sent was read */
    close(fd);
    close_socket(l);
}

/* The event thread held in a job while hostile_holding is set. */
static atomic_int hostile_holding, hostile_held;

static void hostile_hold(void *context) {
    (void)context;
    atomic_store(&hostile_held, 1);
    WAIT_FOR(!atomic_load(&hostile_holding), 10000);
}

/* The discard before the FIN stops at its first short read: a few bytes behind a malformed
 * request, taken with it by the reactor's one read, leave the discard one read that finds
 * nothing more. (The event thread is held until the request and its tail wait whole in the
 * kernel, so that the reactor takes the connection with them.) */
TEST(hostile_refusal_behind_a_few_bytes_stops_discarding_at_the_first_short_read) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    atomic_store(&hostile_holding, 1);
    CHECK_EQ(WSPRunOnEventThread(hostile_hold, NULL), 0);
    WAIT_FOR(atomic_load(&hostile_held), 10000);
    static uint8_t buf[8 + 100];
    static const uint8_t reserved_flag[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    memcpy(buf, reserved_flag, sizeof reserved_flag);
    memset(buf + 8, 'j', sizeof buf - 8);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, buf, sizeof buf, MSG_NOSIGNAL), sizeof buf);
    struct sockaddr_storage mine = {0};
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), port_of(&mine)) == (int)sizeof buf, 10000);
    FAULT(recv, .nth = 1 << 30); /* counts the provider's reads, fails none */
    atomic_store(&hostile_holding, 0);
    WAIT_FOR(stats_of(l).malformed == 1, 5000);
    CHECK_EQ(fault_calls(FAULT_recv), 2); /* the request's read (all 108 bytes), the discard's */
    fault_clear();
    uint8_t b[8];
    int end = raw_recv_frame_then_end(fd, b);
    CHECK_EQ(b[3], WSP_HS_REFUSE);
    CHECK_EQ(b[5], WSP_HS_REASON_MALFORMED);
    CHECK_EQ(end, 0); /* a FIN */
    close(fd);
    close_socket(l);
}

/* A byte sent later, while the request waits in the backlog, ends it the same way. */
TEST(hostile_bytes_sent_while_queued_end_the_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1};
    int fd = raw_send_request(&addr, &f, NULL, 0);
    WAIT_FOR(stats_of(l).queued == 1, 5000);
    CHECK_EQ(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    WAIT_FOR(stats_of(l).malformed == 1, 5000);
    expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    CHECK_EQ(stats_of(l).queued, 0);
    int calls = 0, err = 0;
    CHECK(accept_with(l, counting_accept, (DWORD_PTR)&calls, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(calls, 0);
    close(fd);
    close_socket(l);
}

/* The same byte found by the accept itself (before the reactor watches the request). */
TEST(hostile_bytes_found_at_presentation_end_the_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1};
    int fd = raw_send_request(&addr, &f, NULL, 0);
    WAIT_FOR(stats_of(l).queued == 1, 5000);
    CHECK_EQ(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    int calls = 0, err = 0;
    /* Either the accept finds the byte, or the reactor found it first: never presented. */
    CHECK(accept_with(l, counting_accept, (DWORD_PTR)&calls, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(calls, 0);
    WAIT_FOR(stats_of(l).malformed == 1, 5000);
    expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    close(fd);
    close_socket(l);
}

/* ---- defect 5: an event handle that is not an event object ---------------------------- */

TEST(hostile_event_select_refuses_a_handle_that_is_not_an_event) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, (WSAEVENT)(uintptr_t)0x12345, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    CHECK(WSACloseEvent(ev));
    err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), SOCKET_ERROR); /* closed */
    CHECK_EQ(err, WSAEINVAL);
    ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPEventSelect(s, (WSAEVENT)(uintptr_t)0x12345, 0, &err), 0); /* cancels */
    close_socket(s);
    CHECK(WSACloseEvent(ev));
}

/* ---- refusals carry their reason -------------------------------------------------------- */

static int reject_fn(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                     GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_REJECT;
}

TEST(hostile_refusals_tell_the_client_why) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 1, &addr);
    /* rejected by the condition function */
    struct async_connect c = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&c);
    int err = 0;
    CHECK(accept_with(l, reject_fn, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(c.s), WSP_REASON_REJECTED);
    /* the next connect starts with no reason */
    struct async_connect again = {.s = c.s, .addr = addr};
    async_connect_start(&again);
    SOCKET s = accept_with(l, plain_accept, 0, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&again), 0);
    CHECK_EQ(refuse_reason(c.s), WSP_REASON_NONE);
    close_socket(s);
    close_socket(c.s);
    /* the backlog (1) is full */
    struct async_connect first = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&first);
    WAIT_FOR(stats_of(l).queued == 1, 5000);
    SOCKET late = new_socket(WSP_CATALOG_CDATA_IPV4);
    CHECK_EQ(connect_to(late, &addr, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(late), WSP_REASON_BACKLOG_FULL);
    /* caller data over the listener's limit (1024 by default) */
    static char big[2000];
    WSABUF caller = {sizeof big, big};
    SOCKET wordy = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(wordy, SOL_WSP, WSP_MAX_CALLER_DATA, sizeof big);
    CHECK_EQ(connect_full(wordy, &addr, &caller, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(wordy), WSP_REASON_DATA_TOO_LONG);
    /* the listener closes before deciding */
    close_socket(l);
    CHECK_EQ(async_connect_join(&first), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(first.s), WSP_REASON_CLOSING);
    close_socket(first.s);
    close_socket(late);
    close_socket(wordy);
}

TEST(hostile_malformed_and_slow_version_3_requests_are_told_why) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 100);
    static const uint8_t reserved_flag[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    int bad = raw_connect(&addr);
    CHECK_EQ(send(bad, reserved_flag, sizeof reserved_flag, MSG_NOSIGNAL), 8);
    expect_refuse(bad, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    static const uint8_t prefix[] = {0x57, 0x53, 3, 1};
    int slow = raw_connect(&addr);
    CHECK_EQ(send(slow, prefix, sizeof prefix, MSG_NOSIGNAL), 4);
    expect_refuse(slow, WSP_HS_VERSION_3, WSP_HS_REASON_HANDSHAKE_TIMEOUT);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.malformed, 1);
    CHECK_EQ(st.timed_out, 1);
    close(bad);
    close(slow);
    close_socket(l);
}

/* Only a peer whose first bytes open a WSP request of a known version is told why it is
 * dropped: any other (a wrong magic byte, another frame type, an unknown version) never
 * spoke WSP, or not one this server knows, and is reset. */
TEST(hostile_a_peer_that_never_opened_a_request_is_reset_not_told) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static const uint8_t openings[][8] = {
        {0x58, 0x53, 3, 1, 0, 0, 0, 0}, /* first magic byte wrong */
        {0x56, 0x53, 3, 1, 0, 0, 0, 0}, /* first magic byte wrong, below it */
        {0x57, 0x54, 3, 1, 0, 0, 0, 0}, /* second magic byte wrong */
        {0x57, 0x52, 3, 1, 0, 0, 0, 0}, /* second magic byte wrong, below it */
        {0x57, 0x53, 3, 2, 0, 0, 0, 0}, /* an ACCEPT, not a request */
        {0x57, 0x53, 3, 0, 0, 0, 0, 0}, /* frame type 0, below a request */
        {0x57, 0x53, 0, 1, 0, 0, 0, 0}, /* version 0 */
        {0x57, 0x53, 4, 1, 0, 0, 0, 0}, /* version 4 */
    };
    for (size_t i = 0; i < sizeof openings / sizeof openings[0]; i++) {
        int fd = raw_connect(&addr);
        CHECK_EQ(send(fd, openings[i], 8, MSG_NOSIGNAL), 8);
        expect_reset(fd);
        close(fd);
    }
    WAIT_FOR(stats_of(l).malformed == sizeof openings / sizeof openings[0], 10000);
    /* The same opening with the right bytes is told (the control). */
    static const uint8_t reserved_flag[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    int told = raw_connect(&addr);
    CHECK_EQ(send(told, reserved_flag, sizeof reserved_flag, MSG_NOSIGNAL), 8);
    expect_refuse(told, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    close(told);
    close_socket(l);
}

/* A request whose client's patience runs out while it waits in the backlog, with no accept
 * looking, is ended by the listener's timer: the client is told EXPIRED, it is counted as
 * timed out, and it leaves the backlog. */
TEST(hostile_request_whose_patience_runs_out_unlooked_at_is_told_expired) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 150};
    int fd = raw_send_request(&addr, &f, NULL, 0);
    expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_EXPIRED);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.expired, 1);
    CHECK_EQ(st.timed_out, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.withdrawn, 0);
    close(fd);
    close_socket(l);
}

/* A drop handler that keeps the reactor (on whose thread it runs) busy until released. */
static int reactor_held, reactor_release;
static void hold_the_reactor(SOCKET s, const struct sockaddr *a, int alen, DWORD reason,
                             DWORD_PTR ctx) {
    (void)s, (void)a, (void)alen, (void)reason, (void)ctx;
    __atomic_store_n(&reactor_held, 1, __ATOMIC_SEQ_CST);
    WAIT_FOR(__atomic_load_n(&reactor_release, __ATOMIC_SEQ_CST), 20000);
}

/* An accept that looks after a queued client's patience ran out, before the listener's
 * timer has ended it (the reactor is busy elsewhere), ends it itself: never presented, told
 * EXPIRED, counted as timed out. */
TEST(hostile_request_found_expired_by_an_accept_is_never_presented) {
    start();
    struct sockaddr_storage addr, addr2;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    SOCKET busy = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr2);
    WSP_DROP_HANDLER_DATA h = {hold_the_reactor, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(busy, SOL_WSP, WSP_DROP_HANDLER, (const char *)&h, sizeof h, &err),
             0);
    /* The reactor must be held before the patience runs out, or its timer ends the request
     * and the accept below finds nothing for another reason: 2 s outlasts those steps on a
     * busy machine, and the test checks that it did. */
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 2000};
    long long sent = now_ms();
    int fd = raw_send_request(&addr, &f, NULL, 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    static const uint8_t bad[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    int bfd = raw_connect(&addr2);
    CHECK_EQ(send(bfd, bad, sizeof bad, MSG_NOSIGNAL), 8);
    WAIT_FOR(__atomic_load_n(&reactor_held, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(stats_of(l).queued, 1); /* the reactor is held and the timer did not end it */
    while (now_ms() < sent + 2100) /* its patience passes (time itself, not a sync) */
        sleep_ms(10);
    CHECK(accept_with(l, NULL, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.expired, 1);
    CHECK_EQ(st.timed_out, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.accepted, 0);
    __atomic_store_n(&reactor_release, 1, __ATOMIC_SEQ_CST);
    expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_EXPIRED);
    close(fd);
    close(bfd);
    close_socket(busy);
    close_socket(l);
}

/* ---- the drop handler ----------------------------------------------------------------- */

struct drops {
    pthread_mutex_t lock;
    int count;
    DWORD reasons[8];
    int ports[8];
    SOCKET listener;
};

static void on_drop(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                    DWORD_PTR ctx) {
    struct drops *d = (struct drops *)ctx;
    CHECK_EQ(addrlen, sizeof(struct sockaddr_in));
    pthread_mutex_lock(&d->lock);
    CHECK_EQ(l, d->listener);
    if (d->count < 8) {
        d->reasons[d->count] = reason;
        d->ports[d->count] = port_of((const struct sockaddr_storage *)addr);
    }
    d->count++;
    pthread_mutex_unlock(&d->lock);
}

static int drop_count(struct drops *d) {
    pthread_mutex_lock(&d->lock);
    int n = d->count;
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* Each request the provider ends reaches the handler once, with the client's address and
 * the reason; the application's own rejections do not. */
TEST(hostile_drop_handler_hears_each_dropped_request) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    static struct drops d = {.lock = PTHREAD_MUTEX_INITIALIZER};
    d.listener = l;
    WSP_DROP_HANDLER_DATA h = {on_drop, (DWORD_PTR)&d};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&h, sizeof h, &err),
             0);
    /* too long */
    static char big[2000];
    WSABUF caller = {sizeof big, big};
    SOCKET wordy = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(wordy, SOL_WSP, WSP_MAX_CALLER_DATA, sizeof big);
    CHECK_EQ(connect_full(wordy, &addr, &caller, NULL, NULL), WSAECONNREFUSED);
    WAIT_FOR(drop_count(&d) == 1, 5000);
    /* rejected by the application: not a drop */
    struct async_connect c = {.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr};
    async_connect_start(&c);
    CHECK(accept_with(l, reject_fn, 0, &err) == INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), WSAECONNREFUSED);
    /* malformed */
    static const uint8_t reserved_flag[] = {0x57, 0x53, 3, 1, 0x80, 0, 0, 0};
    int bad = raw_connect(&addr);
    struct sockaddr_storage bad_local;
    socklen_t blen = sizeof bad_local;
    CHECK_EQ(getsockname(bad, (struct sockaddr *)&bad_local, &blen), 0);
    CHECK_EQ(send(bad, reserved_flag, sizeof reserved_flag, MSG_NOSIGNAL), 8);
    expect_refuse(bad, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    WAIT_FOR(drop_count(&d) == 2, 5000);
    CHECK_EQ(d.reasons[0], WSP_REASON_DATA_TOO_LONG);
    CHECK_EQ(d.reasons[1], WSP_REASON_MALFORMED);
    CHECK_EQ(d.ports[1], port_of(&bad_local)); /* the client's own address */
    close(bad);
    close_socket(c.s);
    close_socket(wordy);
    h.lpfnHandler = NULL;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&h, sizeof h, &err),
             0);
    close_socket(l);
    CHECK_EQ(drop_count(&d), 2);
}

/* Sends a byte after its request while the condition function runs, and returns once the
 * server's end of the connection holds it. */
struct late_byte {
    int fd;
    int server_port, client_port;
};

static int send_byte_then_accept(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e,
                                 LPWSABUF f, GROUP *g, DWORD_PTR ctx) {
    struct late_byte *k = (struct late_byte *)ctx;
    CHECK_EQ(send(k->fd, "x", 1, MSG_NOSIGNAL), 1);
    WAIT_FOR(tcp_unread(k->server_port, k->client_port) == 1, 5000);
    return plain_accept(a, b, c, d, e, f, g, 0);
}

/* A request the accepting thread itself ends (its client broke the protocol while the
 * condition function ran) reaches the drop handler before that lpWSPAccept returns, on its
 * thread. */
TEST(hostile_drop_found_by_an_accept_is_heard_before_it_returns) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    static struct drops d = {.lock = PTHREAD_MUTEX_INITIALIZER};
    d.listener = l;
    WSP_DROP_HANDLER_DATA h = {on_drop, (DWORD_PTR)&d};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&h, sizeof h, &err),
             0);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .reads_reasons = 1};
    struct late_byte k = {.fd = raw_send_request(&addr, &f, NULL, 0)};
    struct sockaddr_storage me;
    socklen_t mlen = sizeof me;
    CHECK_EQ(getsockname(k.fd, (struct sockaddr *)&me, &mlen), 0);
    k.client_port = port_of(&me);
    k.server_port = port_of(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 5000);
    CHECK(accept_with(l, send_byte_then_accept, (DWORD_PTR)&k, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK); /* the request ended; no other waits */
    CHECK_EQ(drop_count(&d), 1);
    CHECK_EQ(d.reasons[0], WSP_REASON_MALFORMED);
    CHECK_EQ(d.ports[0], k.client_port);
    CHECK_EQ(stats_of(l).malformed, 1);
    expect_refuse(k.fd, WSP_HS_VERSION_3, WSP_HS_REASON_MALFORMED);
    close(k.fd);
    close_socket(l);
}

/* ---- patience ----------------------------------------------------------------------------- */

/* A client that said it waits 100 ms more (then, say, a partition hid its close) is never
 * presented after that: the server ends the request as timed out and tells it so. */
TEST(hostile_request_past_its_clients_patience_is_never_presented) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    set_nonblocking(l, 1);
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 100};
    int fd = raw_send_request(&addr, &f, NULL, 0);
    WAIT_FOR(stats_of(l).expired == 1, 5000);
    expect_refuse(fd, WSP_HS_VERSION_3, WSP_HS_REASON_EXPIRED);
    int calls = 0, err = 0;
    CHECK(accept_with(l, counting_accept, (DWORD_PTR)&calls, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(calls, 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.queued + st.accepted + st.withdrawn, 0);
    close(fd);
    close_socket(l);
}

/* The patience a non-blocking connect with that limit states in its request. */
static uint32_t stated_patience(DWORD limit) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 1), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(s, SOL_WSP, WSP_CONNECT_LIMIT, limit);
    set_nonblocking(s, 1);
    CHECK_EQ(connect_full(s, &addr, NULL, NULL, NULL), WSAEWOULDBLOCK);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    uint8_t b[64];
    size_t have = 0;
    while (have < 12) {
        int n = raw_recv(fd, b + have, sizeof b - have, 5000);
        CHECK(n > 0);
        have += (size_t)n;
    }
    wsp_hs_frame got;
    CHECK_EQ(wsp_hs_decode(b, have, WSP_HS_MAX_DATA, 1u << WSP_HS_REQUEST, &got), 12);
    CHECK(got.reads_reasons);
    CHECK(got.has_patience);
    close(fd);
    close(lfd);
    close_socket(s);
    return got.patience_ms;
}

/* A WSP client states its connect limit: the request it sends carries it as patience, what
 * is left of it as the request goes (every byte of it: a limit of days too). */
TEST(hostile_client_states_its_connect_limit_as_patience) {
    start();
    const DWORD limits[] = {60000, 0x12345678};
    for (int i = 0; i < 2; i++) {
        uint32_t p = stated_patience(limits[i]);
        CHECK(p <= limits[i]);
        CHECK(p > limits[i] - 10000); /* stamped as sent, not a small number by mistake */
    }
}
