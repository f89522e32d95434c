/* Conformance: network events (lpWSPEventSelect, lpWSPAsyncSelect, lpWSPEnumNetworkEvents).
 * Each behaviour is one function taking the notification path; a CONFORMANCE line per path
 * states what Windows does there. "Quiet" waits are short: they can only miss a wrong event
 * that comes late, never fail a right run. */
#include "conformance.h"

#define SOON 2000 /* ms: a deadline that only turns a hang into a failure */
#define QUIET 150 /* ms: how long nothing must come */

/* A connected pair on plain TCP over IPv4. */
static void pair(SOCKET *c, SOCKET *s) {
    SOCKET l;
    ne_pair(WSP_CATALOG_TCP_IPV4, c, s, &l);
}

/* ---- selecting again ----------------------------------------------------------------------- */

/* Selects FD_WRITE on a connected socket twice; returns what the second selection reported. */
static LONG write_selected_twice(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, c, FD_WRITE), 0);
    CHECK(notify_until(&n, c, FD_WRITE, SOON, NULL) & FD_WRITE);
    CHECK_EQ(notify_select(&n, c, FD_WRITE), 0);
    return notify_take(&n, c, QUIET, NULL);
}

CONFORMANCE(event_reselecting_does_not_repeat_write, OBSERVED,
            "event objects: selecting again with the same mask does not report FD_WRITE again") {
    CHECK_EQ(write_selected_twice(BY_EVENT), 0);
}

CONFORMANCE(message_reselecting_posts_write_again, OBSERVED,
            "window messages: selecting a connected socket again posts FD_WRITE again") {
    CHECK_EQ(write_selected_twice(BY_MESSAGE), FD_WRITE);
}

/* Unread data; FD_READ reported; the selection cancelled (mask 0) and made again. */
static void zero_then_mask_repeats_nothing(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    ne_send_str(c, "x");
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ);
    CHECK_EQ(notify_select(&n, s, 0), 0);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    CHECK_EQ(notify_take(&n, s, QUIET, NULL), 0); /* reported, not re-enabled by a recv */
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    ne_send_str(c, "y");
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ); /* re-enabled by the recv */
}

CONFORMANCE(event_zero_then_mask_does_not_repeat_read, OBSERVED,
            "event objects: selecting 0 and then the mask again does not repeat FD_READ; only "
            "recv re-enables it") {
    zero_then_mask_repeats_nothing(BY_EVENT);
}

CONFORMANCE(message_zero_then_mask_does_not_repeat_read, OBSERVED,
            "window messages: selecting 0 and then the mask again does not repeat FD_READ; "
            "only recv re-enables it") {
    zero_then_mask_repeats_nothing(BY_MESSAGE);
}

/* ---- FD_ACCEPT ------------------------------------------------------------------------------- */

static void accept_rules(enum notify_mode mode) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, SOON);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, l, FD_ACCEPT), 0); /* a request waits: reported now */
    CHECK_EQ(notify_until(&n, l, FD_ACCEPT, SOON, NULL), FD_ACCEPT);
    CHECK_EQ(notify_select(&n, l, FD_ACCEPT), 0); /* again: not repeated */
    CHECK_EQ(notify_take(&n, l, QUIET, NULL), 0);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4); /* a new arrival: FD_ACCEPT again */
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    CHECK_EQ(notify_until(&n, l, FD_ACCEPT, SOON, NULL), FD_ACCEPT);
    int err;
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET); /* one remains: accept re-enables */
    CHECK_EQ(notify_until(&n, l, FD_ACCEPT, SOON, NULL), FD_ACCEPT);
}

CONFORMANCE(event_accept_pending_once_then_per_arrival_and_accept, OBSERVED,
            "event objects: a pending request is reported once when FD_ACCEPT is selected, "
            "again for each new arrival and after an accept that leaves one pending") {
    accept_rules(BY_EVENT);
}

CONFORMANCE(message_accept_pending_once_then_per_arrival_and_accept, OBSERVED,
            "window messages: a pending request is posted once when FD_ACCEPT is selected, "
            "again for each new arrival and after an accept that leaves one pending") {
    accept_rules(BY_MESSAGE);
}

/* ---- FD_READ ----------------------------------------------------------------------------------- */

static void read_reenabled_by_recv(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    ne_send_str(c, "abc");
    WAIT_FOR(notify_take(&n, s, 0, NULL) & FD_READ, SOON);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* data remains: the recv raises FD_READ again */
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ);
}

CONFORMANCE(event_read_raised_again_by_a_recv_that_leaves_data, DOCUMENTED("WSAEventSelect"),
            "event objects: FD_READ is re-enabled by recv and raised again while data remains") {
    read_reenabled_by_recv(BY_EVENT);
}

CONFORMANCE(message_read_posted_again_by_a_recv_that_leaves_data,
            DOCUMENTED("WSAAsyncSelect"),
            "window messages: after a recv that leaves data another FD_READ is posted") {
    read_reenabled_by_recv(BY_MESSAGE);
}

CONFORMANCE(event_read_again_when_more_data_arrives, OBSERVED,
            "event objects: more data arriving before the recv records FD_READ again") {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(BY_EVENT);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    ne_send_str(c, "a");
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ);
    ne_send_str(c, "b");
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ);
}

CONFORMANCE(message_read_not_posted_again_until_recv, DOCUMENTED("WSAAsyncSelect"),
            "window messages: once FD_READ is posted, no further FD_READ message comes until a "
            "recv re-enables it, however much more data arrives") {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(BY_MESSAGE);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    ne_send_str(c, "a");
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ);
    ne_send_str(c, "b");
    CHECK_EQ(notify_take(&n, s, QUIET, NULL), 0);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK(notify_until(&n, s, FD_READ, SOON, NULL) & FD_READ); /* "b" is still there */
}

/* ---- FD_CONNECT and FD_WRITE -------------------------------------------------------------- */

/* A non-blocking connect that completes before anything is selected on the client. */
static SOCKET connected_unselected(SOCKET *peer) {
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    int err;
    set_nonblocking(l, 0);
    *peer = ne_accept(l, NULL, &err);
    CHECK(*peer != INVALID_SOCKET);
    WSPFD_SET w = {1, {c}};
    struct timeval tv = {2, 0};
    CHECK_EQ(T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err), 1); /* the connect is done */
    return c;
}

CONFORMANCE(event_connect_and_write_reported_when_selected_after_the_connect, OBSERVED,
            "event objects: selecting FD_CONNECT|FD_WRITE after a connect completed reports "
            "both") {
    start();
    SOCKET peer, c = connected_unselected(&peer);
    struct notifier n = notifier_new(BY_EVENT);
    CHECK_EQ(notify_select(&n, c, FD_CONNECT | FD_WRITE), 0);
    int errors[FD_MAX_EVENTS];
    CHECK_EQ(notify_until(&n, c, FD_CONNECT | FD_WRITE, SOON, errors), FD_CONNECT | FD_WRITE);
    CHECK_EQ(errors[FD_CONNECT_BIT], 0);
}

CONFORMANCE(message_selecting_after_the_connect_posts_write_only, OBSERVED,
            "window messages: selecting FD_CONNECT|FD_WRITE after a connect completed posts "
            "FD_WRITE without FD_CONNECT") {
    start();
    SOCKET peer, c = connected_unselected(&peer);
    struct notifier n = notifier_new(BY_MESSAGE);
    CHECK_EQ(notify_select(&n, c, FD_CONNECT | FD_WRITE), 0);
    CHECK(notify_until(&n, c, FD_WRITE, SOON, NULL) & FD_WRITE);
    CHECK_EQ(notify_take(&n, c, QUIET, NULL) & FD_CONNECT, 0);
}

CONFORMANCE(event_connect_alone_when_added_after_write, OBSERVED,
            "event objects: FD_CONNECT added to a selection that already reported FD_WRITE "
            "is reported alone") {
    start();
    SOCKET peer, c = connected_unselected(&peer);
    struct notifier n = notifier_new(BY_EVENT);
    CHECK_EQ(notify_select(&n, c, FD_WRITE), 0);
    CHECK_EQ(notify_until(&n, c, FD_WRITE, SOON, NULL), FD_WRITE);
    CHECK_EQ(notify_select(&n, c, FD_WRITE | FD_CONNECT), 0);
    CHECK_EQ(notify_until(&n, c, FD_CONNECT, SOON, NULL), FD_CONNECT);
}

CONFORMANCE(message_reselecting_with_connect_after_connecting_posts_write_only, OBSERVED,
            "window messages: selecting again with FD_CONNECT after connecting posts FD_WRITE "
            "only, no stale FD_CONNECT") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    struct notifier n = notifier_new(BY_MESSAGE);
    CHECK_EQ(notify_select(&n, c, FD_CONNECT | FD_WRITE), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(notify_until(&n, c, FD_CONNECT | FD_WRITE, SOON, NULL), FD_CONNECT | FD_WRITE);
    CHECK_EQ(notify_select(&n, c, FD_CONNECT | FD_WRITE), 0);
    CHECK_EQ(notify_until(&n, c, FD_WRITE, SOON, NULL), FD_WRITE);
    CHECK_EQ(notify_take(&n, c, QUIET, NULL), 0);
    (void)l;
}

static void connect_refused(enum notify_mode mode) {
    start();
    struct sockaddr_storage dead = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, c, FD_CONNECT), 0);
    CHECK_EQ(ne_connect(c, &dead, NULL, NULL), WSAEWOULDBLOCK);
    int errors[FD_MAX_EVENTS];
    CHECK(notify_until(&n, c, FD_CONNECT, SOON, errors) & FD_CONNECT);
    CHECK_EQ(errors[FD_CONNECT_BIT], WSAECONNREFUSED);
}

CONFORMANCE(event_connect_refused_carries_its_error, DOCUMENTED("WSAEventSelect"),
            "event objects: a refused connect records FD_CONNECT with WSAECONNREFUSED") {
    connect_refused(BY_EVENT);
}

CONFORMANCE(message_connect_refused_carries_its_error, DOCUMENTED("WSAAsyncSelect"),
            "window messages: a refused connect posts FD_CONNECT with WSAECONNREFUSED") {
    connect_refused(BY_MESSAGE);
}

/* FD_WRITE once after the connect; a successful send does not bring it back, one that would
 * block does once room frees. */
static void write_after_would_block(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, c, FD_WRITE), 0);
    CHECK(notify_until(&n, c, FD_WRITE, SOON, NULL) & FD_WRITE);
    ne_send_str(c, "x");
    CHECK_EQ(notify_take(&n, c, QUIET, NULL), 0);
    static char chunk[65536];
    DWORD sent;
    int err;
    while ((err = ne_send(c, chunk, sizeof chunk, 0, &sent)) == 0) {
    }
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(notify_take(&n, c, 0, NULL) & FD_WRITE, 0);
    set_nonblocking(s, 1);
    long long deadline = now_ms() + 10000;
    LONG seen = 0;
    while (!(seen & FD_WRITE)) { /* drain until the sender has room again */
        int got;
        while ((got = ne_recv(s, chunk, sizeof chunk, 0)) > 0) {
        }
        seen |= notify_take(&n, c, 5, NULL);
        CHECK(now_ms() < deadline);
    }
}

CONFORMANCE(event_write_only_after_a_send_that_would_block, DOCUMENTED("WSAEventSelect"),
            "event objects: FD_WRITE is recorded once after the connect, then only after a "
            "send failed with WSAEWOULDBLOCK and room freed") {
    write_after_would_block(BY_EVENT);
}

CONFORMANCE(message_write_only_after_a_send_that_would_block, DOCUMENTED("WSAAsyncSelect"),
            "window messages: FD_WRITE is posted once after the connect, then only after a "
            "send failed with WSAEWOULDBLOCK and room freed") {
    write_after_would_block(BY_MESSAGE);
}

/* ---- FD_CLOSE ------------------------------------------------------------------------------- */

static void not_by_own_shutdown(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ | FD_CLOSE), 0);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_BOTH, &err), 0);
    CHECK_EQ(notify_take(&n, s, QUIET, NULL) & FD_CLOSE, 0);
}

CONFORMANCE(event_close_not_raised_by_own_shutdown, OBSERVED,
            "event objects: the socket's own shutdown(SD_BOTH) does not raise FD_CLOSE") {
    not_by_own_shutdown(BY_EVENT);
}

CONFORMANCE(message_close_not_posted_by_own_shutdown, OBSERVED,
            "window messages: the socket's own shutdown(SD_BOTH) does not post FD_CLOSE") {
    not_by_own_shutdown(BY_MESSAGE);
}

static void not_by_peer_receive_shutdown(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ | FD_CLOSE), 0);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_RECEIVE, &err), 0);
    CHECK_EQ(notify_take(&n, s, QUIET, NULL) & FD_CLOSE, 0);
}

CONFORMANCE(event_close_not_raised_by_peer_receive_shutdown, OBSERVED,
            "event objects: the peer's shutdown(SD_RECEIVE) does not raise FD_CLOSE") {
    not_by_peer_receive_shutdown(BY_EVENT);
}

CONFORMANCE(message_close_not_posted_by_peer_receive_shutdown, OBSERVED,
            "window messages: the peer's shutdown(SD_RECEIVE) does not post FD_CLOSE") {
    not_by_peer_receive_shutdown(BY_MESSAGE);
}

static void close_with_data_unread(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ | FD_CLOSE), 0);
    ne_send_str(c, "hello");
    ne_close(c);
    int errors[FD_MAX_EVENTS];
    CHECK(notify_until(&n, s, FD_CLOSE, SOON, errors) & FD_CLOSE);
    CHECK_EQ(errors[FD_CLOSE_BIT], 0);
    char buf[16];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 5); /* the data was all still there */
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 0);
    CHECK_EQ(notify_take(&n, s, QUIET, NULL) & FD_CLOSE, 0); /* not again once drained */
}

CONFORMANCE(event_close_at_once_even_with_unread_data, OBSERVED,
            "event objects: FD_CLOSE is raised as soon as the peer closes, unread data or not, "
            "and not again once the data is read") {
    close_with_data_unread(BY_EVENT);
}

CONFORMANCE(message_close_at_once_even_with_unread_data, OBSERVED,
            "window messages: FD_CLOSE is posted as soon as the peer closes, unread data or "
            "not, and not again once the data is read") {
    close_with_data_unread(BY_MESSAGE);
}

static void reset_is_aborted(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ | FD_CLOSE), 0);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    int errors[FD_MAX_EVENTS];
    CHECK(notify_until(&n, s, FD_CLOSE, SOON, errors) & FD_CLOSE);
    CHECK_EQ(errors[FD_CLOSE_BIT], WSAECONNABORTED);
}

CONFORMANCE(event_reset_reports_close_with_connaborted, OBSERVED,
            "event objects: a reset by the peer records FD_CLOSE with WSAECONNABORTED") {
    reset_is_aborted(BY_EVENT);
}

CONFORMANCE(message_reset_posts_close_with_connaborted, OBSERVED,
            "window messages: a reset by the peer posts FD_CLOSE with WSAECONNABORTED") {
    reset_is_aborted(BY_MESSAGE);
}

static void graceful_close_unselected(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ), 0);
    ne_close(c);
    CHECK_EQ(notify_take(&n, s, QUIET, NULL), 0);
}

CONFORMANCE(event_graceful_close_unselected_records_nothing, OBSERVED,
            "event objects: a graceful close while FD_CLOSE is not selected records nothing") {
    graceful_close_unselected(BY_EVENT);
}

CONFORMANCE(message_graceful_close_unselected_posts_nothing, OBSERVED,
            "window messages: a graceful close while FD_CLOSE is not selected posts nothing "
            "(no FD_READ)") {
    graceful_close_unselected(BY_MESSAGE);
}

/* ---- FD_OOB --------------------------------------------------------------------------------- */

static void oob_reenabled_by_recv(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_OOB), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    CHECK(notify_until(&n, s, FD_OOB, SOON, NULL) & FD_OOB);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK_EQ(ne_send(c, "?", 1, MSG_OOB, &sent), 0);
    CHECK(notify_until(&n, s, FD_OOB, SOON, NULL) & FD_OOB); /* re-enabled by the recv */
}

CONFORMANCE(event_oob_reenabled_by_recv, DOCUMENTED("WSAEventSelect"),
            "event objects: FD_OOB is re-enabled by recv (MSG_OOB) and raised for the next "
            "urgent data") {
    oob_reenabled_by_recv(BY_EVENT);
}

CONFORMANCE(message_oob_reenabled_by_recv, DOCUMENTED("WSAAsyncSelect"),
            "window messages: FD_OOB is re-enabled by recv (MSG_OOB) and posted for the next "
            "urgent data") {
    oob_reenabled_by_recv(BY_MESSAGE);
}

static void oob_inline_is_read(enum notify_mode mode) {
    start();
    SOCKET c, s;
    pair(&c, &s);
    int on = 1, err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_OOBINLINE, (const char *)&on, sizeof on, &err),
             0);
    struct notifier n = notifier_new(mode);
    CHECK_EQ(notify_select(&n, s, FD_READ | FD_OOB), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    LONG seen = notify_until(&n, s, FD_READ, SOON, NULL);
    CHECK(seen & FD_READ);
    CHECK_EQ(seen & FD_OOB, 0);
}

CONFORMANCE(event_oob_inline_is_read_not_oob, DOCUMENTED("WSAEventSelect"),
            "event objects: with SO_OOBINLINE urgent data is reported as FD_READ, not FD_OOB") {
    oob_inline_is_read(BY_EVENT);
}

CONFORMANCE(message_oob_inline_is_read_not_oob, DOCUMENTED("WSAAsyncSelect"),
            "window messages: with SO_OOBINLINE urgent data is posted as FD_READ, not FD_OOB") {
    oob_inline_is_read(BY_MESSAGE);
}

/* ---- the record ---------------------------------------------------------------------------- */

CONFORMANCE(enumeration_clears_the_record_and_resets_the_event,
            DOCUMENTED("WSAEnumNetworkEvents"),
            "enumerating copies the record, clears it and resets the event object given") {
    start();
    SOCKET c, s;
    pair(&c, &s);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    CHECK(ne_signalled(ev, SOON));
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(!ne_signalled(ev, 0));
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
}

CONFORMANCE(event_select_makes_the_socket_nonblocking, DOCUMENTED("WSAEventSelect"),
            "selecting makes the socket non-blocking; FIONBIO back to blocking fails with "
            "WSAEINVAL while selected") {
    start();
    SOCKET c, s;
    pair(&c, &s);
    (void)ne_event_select(s, FD_READ);
    DWORD off = 0, ret = 0;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &off, sizeof off, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), -WSAEWOULDBLOCK);
}
