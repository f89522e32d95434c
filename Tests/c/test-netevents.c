/* Network events (SEMANTICS §5): lpWSPEventSelect, lpWSPAsyncSelect, lpWSPEnumNetworkEvents.
 * One rule per test. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "event_set.h"
#include "faults.h"
#include "netevents.h"
#include "test-netevents.h"

/* ---- FD_READ ------------------------------------------------------------------------------- */

TEST(netev_read_is_level_triggered_reenabled_by_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    CHECK(!ne_signalled(ev, 100));
    ne_send_str(c, "0123456789");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_READ_BIT], 0);
    char buf[16];
    CHECK_EQ(ne_recv(s, buf, 4, 0), 4);
    /* Data remains: the recv re-enables FD_READ and it is raised again at once. */
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 6);
    CHECK(!ne_wait_bit(s, ev, FD_READ, 200, &ne));
}

TEST(netev_read_raised_again_only_by_more_data_or_a_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "a");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK(!ne_wait_bit(s, ev, FD_READ, 200, &ne)); /* nothing new, no recv: stays off */
    ne_send_str(c, "b");
    CHECK(ne_wait_bit(s, ev, FD_READ, 2000, &ne)); /* more data: again, as on Windows */
    char buf[4];
    CHECK(ne_recv(s, buf, 1, 0) == 1);
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne)); /* "b" is still there */
}

TEST(netev_failed_recv_still_reenables_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "a");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, 1, 0), 1);
    CHECK_EQ(ne_recv(s, buf, 1, 0), -WSAEWOULDBLOCK); /* re-enables too */
    CHECK(!ne_wait_bit(s, ev, FD_READ, 100, &ne));
    ne_send_str(c, "b");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
}

/* Window messages (the reactor watches the socket): a recv that fills its buffer and leaves
 * data behind posts FD_READ again before it returns, with no round trip through the reactor
 * for a reader that keeps up with its sender; a recv that takes the rest posts nothing. */
TEST(netev_message_read_again_posted_by_the_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(c, "0123456789"); /* one segment: all ten bytes arrive together */
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    char buf[16];
    CHECK_EQ(ne_recv(s, buf, 4, 0), 4);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* already there */
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 6);
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0);
    ne_send_str(c, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1); /* the watch waits for more as before */
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
}

/* Two recvs in one job on the event thread, each leaving data: FD_READ raised twice while
 * the thread defers its upcalls. Every message posted after the job names FD_READ. */
static SOCKET twice_s = INVALID_SOCKET;
static atomic_int twice_jobs;

static void recv_twice(void *context) {
    (void)context;
    char b;
    if (ne_recv(twice_s, &b, 1, 0) == 1 && ne_recv(twice_s, &b, 1, 0) == 1)
        atomic_fetch_add(&twice_jobs, 1);
    else
        atomic_fetch_add(&twice_jobs, 100);
}

static void count_job(void *context) {
    (void)context;
    atomic_fetch_add(&twice_jobs, 1);
}

TEST(netev_message_read_raised_twice_in_one_job_posts_only_read) {
    start();
    SOCKET c, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &twice_s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(twice_s, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(c, "0123");
    WAIT_FOR(unread_bytes(twice_s) == 4, 10000);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    atomic_store(&twice_jobs, 0);
    CHECK_EQ(WSPRunOnEventThread(recv_twice, NULL), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1); /* the first of the job's upcalls */
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    CHECK_EQ(atomic_load(&twice_jobs), 1);
    /* A job queued now runs once the event thread has made the rest of those upcalls. */
    CHECK_EQ(WSPRunOnEventThread(count_job, NULL), 0);
    WAIT_FOR(atomic_load(&twice_jobs) == 2, 10000);
    while (WSPGetMessage(q, &m, 0) == 1) {
        CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
        CHECK((SOCKET)m.wParam == twice_s);
    }
}

/* Two sockets' FD_READ raised in one job on the event thread, the first socket's first: their
 * messages come in that order (as Windows posts them), though the thread makes both upcalls
 * only after the job. */
static SOCKET order_s[2] = {INVALID_SOCKET, INVALID_SOCKET};
static atomic_int order_jobs;

static void recv_from_both(void *context) {
    (void)context;
    char b;
    for (int i = 0; i < 2; i++)
        atomic_fetch_add(&order_jobs, ne_recv(order_s[i], &b, 1, 0) == 1 ? 1 : 100);
}

TEST(netev_messages_raised_for_two_sockets_in_one_job_come_in_their_order) {
    start();
    SOCKET c[2], l[2];
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &order_s[i], &l[i]);
        CHECK_EQ(T.lpWSPAsyncSelect(order_s[i], q, NE_MSG, FD_READ, &err), 0);
        ne_send_str(c[i], "01");
        WAIT_FOR(unread_bytes(order_s[i]) == 2, 10000);
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK((SOCKET)m.wParam == order_s[i]);
    }
    CHECK_EQ(WSPRunOnEventThread(recv_from_both, NULL), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK((SOCKET)m.wParam == order_s[i]);
        CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    }
    CHECK_EQ(atomic_load(&order_jobs), 2);
}

/* A window-message registration keeps no record: lpWSPEnumNetworkEvents finds nothing after
 * FD_READ was posted (the record belongs to lpWSPEventSelect). */
TEST(netev_message_registration_leaves_the_record_empty) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(c, "x");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, 0);
}

/* A peek takes nothing: it too posts FD_READ again before it returns, itself (the event
 * thread, kept busy meanwhile by a job, could not have). */
TEST(netev_message_read_again_posted_by_a_peek) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(c, "0123456789");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    char buf[16];
    CHECK_EQ(ne_recv(s, buf, 4, MSG_PEEK), 4);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* already there */
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    event_thread_let_go(&hold);
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 10); /* the peek took nothing */
}

/* ---- FD_WRITE ------------------------------------------------------------------------------ */

TEST(netev_write_on_connect_then_only_after_wouldblock) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT | FD_WRITE);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne));
    CHECK(ne.lNetworkEvents & FD_CONNECT);
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    CHECK_EQ(ne.iErrorCode[FD_WRITE_BIT], 0);
    int err = 0;
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    set_dword(s, SOL_SOCKET, SO_RCVBUF, 4096);
    /* Sends that succeed raise nothing. */
    ne_send_str(c, "hello");
    CHECK(!ne_wait_bit(c, ev, FD_WRITE, 150, &ne));
    /* Fill the pipe until a send would block. */
    ne_fill_until_blocked(c);
    CHECK(!ne_wait_bit(c, ev, FD_WRITE, 150, &ne)); /* nothing freed yet */
    ne_fionbio(s, 1);
    static char sink[65536];
    long long deadline = now_ms() + 5000;
    int seen = 0;
    while (!seen && now_ms() < deadline) {
        while (ne_recv(s, sink, sizeof sink, 0) > 0) {
        }
        seen = ne_wait_bit(c, ev, FD_WRITE, 20, &ne);
    }
    CHECK(seen);
    CHECK_EQ(ne.iErrorCode[FD_WRITE_BIT], 0);
}

/* A send that would block on a socket whose descriptor is watched already only re-arms the
 * watch for room: it looks at nothing itself (no poll on the sending thread). */
TEST(netev_send_that_would_block_on_a_watched_socket_polls_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE);
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, FD_WRITE); /* at registration */
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls */
    ne_fill_until_blocked(c);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK_EQ(polls, 0);
    WSACloseEvent(ev);
}

TEST(netev_write_reported_at_registration_when_connected) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(c, FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne));
    ne_send_str(c, "x");
    CHECK(!ne_wait_bit(c, ev, FD_WRITE, 150, &ne));
}

/* ---- FD_OOB -------------------------------------------------------------------------------- */

TEST(netev_oob_reenabled_by_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_OOB);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_OOB_BIT], 0);
    CHECK_EQ(ne_send(c, "?", 1, MSG_OOB, &sent), 0);
    CHECK(!ne_wait_bit(s, ev, FD_OOB, 150, &ne)); /* not re-enabled yet */
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK(!ne_wait_bit(s, ev, FD_OOB, 100, &ne)); /* the urgent byte was read */
    CHECK_EQ(ne_send(c, "#", 1, MSG_OOB, &sent), 0);
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne)); /* re-enabled by the recv */
}

/* A MSG_OOB recv re-enables FD_OOB alone: it leaves FD_READ (still armed here: no ordinary
 * data came) to the watch and makes no look at the unread count (FIONREAD) for it. Pins that
 * cost (no system call beyond the recv's own for FD_READ), counted through the provider's
 * ioctl. */
TEST(netev_message_oob_recv_makes_no_look_for_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_OOB, &err), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_OOB);
    char b;
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(b, '!');
    CHECK_EQ(looks, 0);
    CHECK(WSPDestroyMessageQueue(q));
}

/* On the reactor's watch (level-triggered, re-armed after each event) a MSG_OOB recv leaves
 * urgent data still there to the re-armed watch: it makes no look of its own (no poll for
 * POLLPRI, which only an event's edge-triggered watch needs). Pins that cost, counted through
 * the provider's poll; the next urgent byte is posted as before. */
TEST(netev_message_oob_recv_makes_no_poll_for_urgent_data) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_OOB, &err), 0);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_OOB, 0));
    char b;
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK_EQ(b, '!');
    CHECK_EQ(polls, 0);
    CHECK_EQ(ne_send(c, "?", 1, MSG_OOB, NULL), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_OOB, 0));
    CHECK(WSPDestroyMessageQueue(q));
}

/* The same on an event object's edge-triggered watch: a MSG_OOB recv that fills its buffer
 * says nothing about ordinary data, so it leaves the event's set no check to make for FD_READ
 * (a check costs the next wait or enumeration a poll). */
TEST(netev_event_oob_recv_leaves_no_check_for_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK_EQ(b, '!');
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* After the peer's FIN (FD_CLOSE seen) nothing more can arrive: a recv that fills its buffer
 * with data left raises FD_READ for it then and there, and leaves the event's set no check to
 * make (a check costs the next wait or enumeration a poll). */
TEST(netev_event_recv_after_the_fin_leaves_no_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    ne_send_str(c, "abcd");
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    char b[2];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ); /* the 2 bytes left */
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* An unregistered socket has no events to raise: an urgent recv on it asks the kernel nothing
 * of SO_OOBINLINE (which only decides between FD_OOB and FD_READ for a registration). */
TEST(netev_unregistered_urgent_recv_asks_nothing_of_oob_inline) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_fionbio(s, 1);
    fault_set(FAULT_getsockopt, (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    char b[2];
    CHECK(ne_recv(s, b, sizeof b, MSG_OOB) < 0); /* nothing urgent came */
    CHECK_EQ(fault_calls(FAULT_getsockopt), 0);
    fault_clear();
}

/* A registration without FD_OOB on a connected socket asks nothing of SO_OOBINLINE. */
TEST(netev_registration_without_oob_asks_nothing_of_oob_inline) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    fault_set(FAULT_getsockopt, (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ | FD_WRITE | FD_CLOSE, &err), 0);
    int asked = fault_calls(FAULT_getsockopt);
    fault_clear();
    CHECK_EQ(asked, 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* the registration's look was made */
    WSACloseEvent(ev);
}

/* A registration raises what the descriptor's state says without waiting for any of it
 * (WSAEventSelect does not block): its look at the descriptor is a poll with a time-out of 0,
 * with data already there or not. */
TEST(netev_event_registration_looks_without_waiting) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "ab");
    int slept = fault_sleeping_polls();
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE | FD_CLOSE);
    CHECK_EQ(fault_sleeping_polls(), slept);
    CHECK(ne_signalled(ev, 10000));
    CHECK(WSACloseEvent(ev));
}

/* After the FIN only a recv's re-enabling looks for data left (FD_READ): a send, which
 * re-enables FD_WRITE only, asks the kernel nothing of what is unread (one ioctl per send
 * on a half-closed socket would be a system call for nothing; issue #14's speed). */
TEST(netev_event_send_after_the_fin_looks_for_no_data) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE | FD_CLOSE);
    ne_send_str(c, "abcd");
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    fault_set(FAULT_ioctl, (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    DWORD sent = 0;
    CHECK_EQ(ne_send(s, "x", 1, 0, &sent), 0);
    CHECK_EQ(sent, 1);
    CHECK_EQ(fault_calls(FAULT_ioctl), 0);
    fault_clear();
    char b[8];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 4); /* the data was left for the recv */
    CHECK(WSACloseEvent(ev));
}

/* ---- FD_ACCEPT ----------------------------------------------------------------------------- */

TEST(netev_accept_level_reenabled_by_accept) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT);
    CHECK(!ne_signalled(ev, 50));
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4), c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_ACCEPT_BIT], 0);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    ne_wait_bit(l, ev, FD_ACCEPT, 100, &ne); /* the second arrival may have raised it again */
    CHECK(!ne_wait_bit(l, ev, FD_ACCEPT, 100, &ne)); /* no arrival, no accept: nothing */
    int err;
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne)); /* one more waits: raised again */
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK(!ne_wait_bit(l, ev, FD_ACCEPT, 150, &ne)); /* empty */
    /* An accept that finds nothing still re-enables: the next request raises it. */
    CHECK(ne_accept(l, NULL, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    SOCKET c3 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c3, &addr, NULL, NULL), 0);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
}

/* A listener selected for connection events too gets FD_ACCEPT for arrivals, never FD_READ:
 * an accept's re-enabling does not start a connected socket's watch on it. */
TEST(netev_listener_selected_for_read_gets_only_accept) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT | FD_READ | FD_CLOSE);
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    int err;
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_ACCEPT);
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK(!ne_wait_bit(l, ev, FD_READ, 100, &ne)); /* the event stays quiet */
}

TEST(netev_accept_not_reenabled_after_try_again) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT);
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    int err;
    CHECK(ne_accept(l, ne_defer, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    CHECK(!ne_wait_bit(l, ev, FD_ACCEPT, 150, &ne)); /* the request is there, but no event */
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    /* A new arrival raises it, as on Windows (a deferral does not). */
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne)); /* re-enabled; one remains */
}

/* Re-enabling belongs to the socket, not to the registration: an accept made while the
 * listener is not selected re-enables FD_ACCEPT, so selecting it again reports a request that
 * arrived meanwhile. (Swift's async accept selects the listener only while it waits: without
 * this, such a request was never reported and the accept waited for ever.) */
TEST(netev_accept_reenabled_while_unselected) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT);
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, NULL, 0, &err), 0); /* unselected (stays non-blocking) */
    CHECK(ne_accept(l, NULL, &err) != INVALID_SOCKET);
    CHECK(ne_accept(l, NULL, &err) == INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
}

/* A new arrival raises FD_ACCEPT again (SEMANTICS §8) whether or not the listener is selected
 * when it comes: selecting again then reports it. */
TEST(netev_accept_arrival_while_unselected_is_reported) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT);
    SOCKET c1 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c1, &addr, NULL, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, NULL, 0, &err), 0);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
}

/* ---- FD_CONNECT ---------------------------------------------------------------------------- */

TEST(netev_connect_success_reports_0) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    (void)l;
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    CHECK(!ne_wait_bit(c, ev, FD_CONNECT, 150, &ne)); /* once */
}

/* A non-blocking connect the reactor finished leaves its fired one-shot registration of the
 * descriptor in the reactor's epoll set (saving a system call per connection); the watch a
 * later async selection starts takes that registration over, rather than watching a
 * duplicate of the descriptor, and reports what it should. */
TEST(netev_async_watch_after_a_nonblocking_connect_takes_over_the_connects_registration) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    HWND queue = WSPCreateMessageQueue();
    CHECK(queue != NULL);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_CONNECT, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPMSG msg;
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_CONNECT);
    CHECK_EQ(WSAGETSELECTERROR(msg.lParam), 0);
    SOCKET s = ne_accept(l, NULL, &err); /* first: the reactor opens no descriptor after */
    CHECK(s != INVALID_SOCKET);
    int fds = provider_fds();
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(provider_fds(), fds); /* no duplicate descriptor to watch */
    send_all(s, "x", 1);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(msg.wParam, c);
    CHECK_EQ(WSAGETSELECTEVENT(msg.lParam), FD_READ);
    ne_close(c);
    ne_close(s);
    ne_close(l);
    CHECK(WSPDestroyMessageQueue(queue));
}

/* Taking the connect's registration over can fail (EPOLL_CTL_MOD, for want of kernel
 * memory): the watch then watches a duplicate of the descriptor, as when another item holds
 * it, and still reports what it should. */
TEST(netev_async_watch_whose_takeover_fails_watches_a_duplicate) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    HWND queue = WSPCreateMessageQueue();
    CHECK(queue != NULL);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_CONNECT, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPMSG msg;
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(msg.lParam, WSAMAKESELECTREPLY(FD_CONNECT, 0));
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    int fds = provider_fds();
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1);
    fault_clear();
    CHECK_EQ(provider_fds(), fds + 1); /* the duplicate */
    send_all(s, "x", 1);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(msg.wParam, c);
    CHECK_EQ(msg.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    ne_close(c);
    ne_close(s);
    ne_close(l);
    CHECK(WSPDestroyMessageQueue(queue));
}

/* The connect's registration is taken over once: a watch started again afterwards (a selection
 * that cancelled the first one's, then a new one) adds the descriptor afresh, with one
 * EPOLL_CTL_ADD and one EPOLL_CTL_MOD arming it, and no first try at taking over a
 * registration that is gone. Pins that cost, counted through the provider's epoll_ctl. */
TEST(netev_async_watch_started_again_after_a_connect_adds_the_descriptor_afresh) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    HWND queue = WSPCreateMessageQueue();
    CHECK(queue != NULL);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_CONNECT | FD_READ, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPMSG msg;
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(msg.lParam, WSAMAKESELECTREPLY(FD_CONNECT, 0));
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, 0, 0, &err), 0); /* cancels: the watch goes */
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1);   /* counts */
    CHECK_EQ(T.lpWSPAsyncSelect(c, queue, NE_MSG, FD_READ, &err), 0);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 2);
    send_all(s, "x", 1);
    CHECK_EQ(WSPGetMessage(queue, &msg, 10000), 1);
    CHECK_EQ(msg.wParam, c);
    CHECK_EQ(msg.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(WSPGetMessage(queue, &msg, 0), 0);
    ne_close(c);
    ne_close(s);
    ne_close(l);
    CHECK(WSPDestroyMessageQueue(queue));
}

TEST(netev_connect_refused_when_nobody_listens) {
    start();
    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT | FD_WRITE);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAECONNREFUSED);
    CHECK(!(ne.lNetworkEvents & FD_WRITE)); /* not connected: no FD_WRITE */
}

/* FD_CONNECT is raised once per connect: a refused connect raises it with its error, and the
 * same socket's next connect, which succeeds, raises it again, with 0. */
TEST(netev_connect_after_a_refused_one_raises_connect_again) {
    start();
    struct sockaddr_storage dead = dead_address(), addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT);
    CHECK_EQ(ne_connect(c, &dead, NULL, NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAECONNREFUSED);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    int err = 0;
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
}

TEST(netev_connect_refused_by_condition_function_on_connect_data) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    struct ne_acceptor a = {.l = l, .cond = ne_reject};
    ne_start_acceptor(&a);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT | FD_WRITE);
    CHECK_EQ(ne_connect(c, &addr, "hello", NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAECONNREFUSED);
    CHECK(!(ne.lNetworkEvents & FD_WRITE));
    pthread_join(a.thread, NULL);
    CHECK(a.result == INVALID_SOCKET);
    CHECK_EQ(a.err, WSAECONNREFUSED);
}

TEST(netev_connect_data_accept_reports_connect_write_and_qos) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    struct ne_acceptor a = {.l = l, .cond = NULL};
    ne_start_acceptor(&a);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT | FD_WRITE | FD_QOS);
    QOS q;
    memset(&q, 0, sizeof q);
    q.SendingFlowspec.ServiceType = SERVICETYPE_BESTEFFORT;
    q.ReceivingFlowspec.ServiceType = SERVICETYPE_BESTEFFORT;
    CHECK_EQ(ne_connect(c, &addr, "hi", &q), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_QOS, 10000, &ne));
    CHECK(ne.lNetworkEvents & FD_CONNECT);
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    if (!(ne.lNetworkEvents & FD_WRITE))
        CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne));
    pthread_join(a.thread, NULL);
    CHECK(a.result != INVALID_SOCKET);
}

/* A connection that carries no quality of service raises no FD_QOS, though it is asked for:
 * the connect's end records FD_CONNECT and FD_WRITE (room to send), and nothing else. */
TEST(netev_connect_without_qos_reports_no_qos) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT | FD_WRITE | FD_QOS);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne)); /* one record: all raised at once */
    CHECK_EQ(ne.lNetworkEvents, FD_CONNECT | FD_WRITE);
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, 0);
    int err = 0;
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    CHECK(WSACloseEvent(ev));
}

/* ---- FD_CLOSE ------------------------------------------------------------------------------ */

TEST(netev_close_graceful_at_once_with_data_unread) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_send_str(c, "hello");
    ne_close(c);
    WSANETWORKEVENTS ne = {0};
    /* The FIN raises FD_CLOSE at once, unread data or not (Windows); FD_READ says the data is
     * there. */
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
    CHECK(ne.lNetworkEvents & FD_READ);
    char buf[8];
    CHECK_EQ(ne_recv(s, buf, 2, 0), 2);
    CHECK(ne_wait_bit(s, ev, FD_READ, 2000, &ne)); /* still 3 bytes */
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 3);
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 0);
    CHECK(!ne_wait_bit(s, ev, FD_CLOSE, 150, &ne)); /* once: not again when drained */
}

TEST(netev_close_without_data_is_immediate) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
    CHECK(!(ne.lNetworkEvents & FD_READ));
}

/* After the peer's FIN with nothing left, a recv (end of stream) re-enables FD_READ, and no
 * FD_READ is raised: there is nothing to read and nothing more can come. */
TEST(netev_recv_at_end_of_stream_raises_no_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    char buf[8];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK(WSACloseEvent(ev));
}

TEST(netev_close_abort_reports_connaborted) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_CLOSE);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], WSAECONNABORTED); /* Windows' code for a reset */
}

TEST(netev_nothing_after_close) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE | FD_OOB);
    ne_close(s);
    ne_send_str(c, "data");
    DWORD sent;
    ne_send(c, "!", 1, MSG_OOB, &sent);
    ne_close(c);
    CHECK(!ne_signalled(ev, 300));
}

/* ---- registration -------------------------------------------------------------------------- */

TEST(netev_registration_reports_conditions_that_hold) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000); /* the data is there before the registration */
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE);
    CHECK(ne_signalled(ev, 0)); /* at once, from inside the call */
    WSANETWORKEVENTS ne = ne_enum(s, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_WRITE);
    /* A listener with a request waiting reports FD_ACCEPT at once too. */
    struct sockaddr_storage addr;
    SOCKET l2 = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WAIT_FOR(stats_of(l2).queued == 1, 10000);
    WSAEVENT ev2 = ne_event_select(l2, FD_ACCEPT);
    CHECK(ne_signalled(ev2, 0));
    WSANETWORKEVENTS ne2 = ne_enum(l2, ev2);
    CHECK_EQ(ne2.lNetworkEvents, FD_ACCEPT);
    CHECK_EQ(ne2.iErrorCode[FD_ACCEPT_BIT], 0);
}

TEST(netev_new_registration_replaces_old) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev1 = ne_event_select(s, FD_READ);
    WSAEVENT ev2 = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev2, FD_READ, 10000, &ne));
    CHECK(!ne_signalled(ev1, 100));
    /* Replacing event select by async select: messages, no event. */
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    CHECK(!ne_signalled(ev2, 0));
    WSPMSG m;
    /* The unread "x" was reported and no recv re-enabled FD_READ: selecting again does not
     * repeat it (Windows). */
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    ne_send_str(c, "y");
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    CHECK(m.wParam == s);
}

/* As above with an event object selected again: the new watch in the event's set reports the
 * unread "x" at once, which is no news (no recv re-enabled FD_READ). */
TEST(netev_event_selected_again_does_not_repeat_unanswered_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0); /* its look at the set takes the report */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    ne_send_str(c, "y");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
}

TEST(netev_zero_mask_cancels) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, 0, &err), 0);
    ne_send_str(c, "x");
    ne_close(c);
    CHECK(!ne_signalled(ev, 200));
    /* The socket stays non-blocking after the cancel. */
    char b[4];
    CHECK_EQ(ne_recv(s, b, 4, 0), 1);
    CHECK_EQ(ne_recv(s, b, 4, 0), 0);
}

TEST(netev_blocking_mode_locked_while_registered) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    DWORD zero = 0, ret;
    int err = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &zero, sizeof zero, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    /* Registration made the socket non-blocking. */
    char b[4];
    CHECK_EQ(ne_recv(s, b, 4, 0), -WSAEWOULDBLOCK);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, 0, &err), 0);
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &zero, sizeof zero, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             0);
    /* Async select locks it the same way. */
    HWND q = WSPCreateMessageQueue();
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &zero, sizeof zero, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
}

TEST(netev_bad_arguments) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, NULL, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(T.lpWSPAsyncSelect(s, NULL, NE_MSG, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect((SOCKET)12345, ev, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    ne_close(s);
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
}

/* With the application's own event upcalls (any handle may be its event), a null event
 * handle is still refused: WSAEINVAL. */
static BOOL app_set_event(WSAEVENT e, LPINT err) {
    (void)e;
    (void)err;
    return TRUE;
}

TEST(netev_null_event_refused_under_the_applications_event_upcalls) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = app_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, NULL, FD_READ, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    ne_close(s);
}

/* Whether s is writable now (a select that does not wait). */
static int ne_writable_now(SOCKET s) {
    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(s, &w);
    struct timeval tv = {0, 0};
    int err = 0;
    return T.lpWSPSelect(0, NULL, &w, NULL, &tv, &err);
}

/* A send that would block while the socket was not registered still owes its FD_WRITE: a
 * registration made while there is no room records nothing, and FD_WRITE comes once room
 * frees (Windows records FD_WRITE when a send is possible again after one failed with
 * WSAEWOULDBLOCK). */
TEST(netev_send_blocked_before_the_registration_gets_write_when_room_frees) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_fionbio(c, 1);
    /* Full for good: the peer reads nothing, so once what was in flight has settled the
     * socket stays unwritable. */
    long long deadline = now_ms() + test_patience(10000);
    do {
        CHECK(now_ms() < deadline);
        ne_fill_until_blocked(c);
        sleep_ms(10);
    } while (ne_writable_now(c) != 0);
    WSAEVENT ev = ne_event_select(c, FD_WRITE);
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, 0); /* no room: nothing yet */
    ne_fionbio(s, 1);
    CHECK(ne_drain_until_write(s, c, ev) & FD_WRITE);
    WSACloseEvent(ev);
}

/* ---- lpWSPEnumNetworkEvents ---------------------------------------------------------------- */

TEST(netev_enum_copies_clears_resets_and_writes_only_set_bits) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_send_str(c, "x");
    CHECK(ne_signalled(ev, 10000));
    WSANETWORKEVENTS ne;
    memset(&ne, 0x5a, sizeof ne);
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    CHECK_EQ(ne.iErrorCode[FD_READ_BIT], 0);
    for (int i = 1; i < FD_MAX_EVENTS; i++)
        CHECK_EQ(ne.iErrorCode[i], 0x5a5a5a5a); /* untouched */
    CHECK(!ne_signalled(ev, 0)); /* reset */
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, 0); /* cleared */
    /* Without an event handle the record is still copied and cleared. */
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    ne_send_str(c, "y");
    CHECK(ne_signalled(ev, 10000));
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ);
    CHECK(ne_signalled(ev, 0)); /* not reset: no handle given */
}

/* A handle that is not an event fails the enumeration with Winsock's WSAEINVAL and leaves
 * the record for the next enumeration. */
TEST(netev_enum_with_a_bad_event_handle_fails_and_keeps_the_record) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    CHECK(ne_signalled(ev, 10000));
    WSANETWORKEVENTS ne;
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, (WSAEVENT)(uintptr_t)0x7ff0, &ne, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ); /* still there */
}

/* After the socket's own shutdown(SD_RECEIVE) its descriptor shows a hang-up already; the
 * peer's close is then told apart by TCP's state, and raises FD_CLOSE. */
TEST(netev_peer_close_after_own_receive_shutdown_raises_close) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_RECEIVE, &err), 0);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_close(c);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
}

/* Once FD_CLOSE is raised the peer's close is known: a later hang-up (the socket's own
 * SD_SEND, both sides now shut) does not ask TCP's state again (no getsockopt). */
TEST(netev_hang_up_after_close_was_raised_asks_tcp_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_RECEIVE, &err), 0);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(T.lpWSPShutdown(s, SD_SEND, &err), 0); /* a hang-up edge for the event's set */
    FAULT(getsockopt, .nth = 1000000, .this_thread = 1); /* counts this thread's calls */
    FAULT(ioctl, .nth = 1000000, .this_thread = 1);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0); /* pumps the set: the edge is looked at */
    int asked = fault_calls(FAULT_getsockopt);
    int counted = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK(counted >= 1); /* the hang-up's FIONREAD: this thread handled the edge */
    CHECK_EQ(asked, 0);
    WSACloseEvent(ev);
}

/* More data while FD_READ waits for its recv raises it again (event objects, as on Windows),
 * told by the count of unread bytes when the edge comes with urgent data. That count stops at
 * urgent data not yet passed, so it can be 0 with data waiting: a later count above 0 is
 * still more data. Here urgent data heads the stream, so the first count is 0; once the
 * urgent byte is inline, the count takes in everything, and FD_READ is raised again. */
TEST(netev_more_data_after_a_count_of_0_raises_read_again) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    struct sockaddr_storage here = local_address(s), there = local_address(c);
    int sp = port_of(&here), cp = port_of(&there);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WAIT_FOR(tcp_unread(sp, cp) == 1, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_OOB);
    ne_send_str(c, "ab");
    WAIT_FOR(tcp_unread(sp, cp) == 3, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    ne_send_str(c, "cd"); /* counted: 0 bytes before the urgent byte */
    WAIT_FOR(tcp_unread(sp, cp) == 5, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    set_dword(s, SOL_SOCKET, SO_OOBINLINE, 1);
    ne_send_str(c, "ef"); /* counted: all 7 */
    WAIT_FOR(tcp_unread(sp, cp) == 7, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* A reset socket registered on an event whose descriptor was handed out (the reactor then
 * watches the event's set): once FD_CLOSE is recorded, the dead socket leaves the event thread
 * asleep. Between two jobs handed over one after the other, the thread makes one wait that
 * could sleep (two, if the idle grace for a stale timer ran out meanwhile), not thousands. */
static atomic_int waits_at_job[2], jobs_noted;

static void note_sleeping_waits(void *context) {
    atomic_store(&waits_at_job[(intptr_t)context], fault_sleeping_epoll_waits());
    atomic_fetch_add(&jobs_noted, 1);
}

TEST(netev_reset_socket_on_a_handed_out_event_leaves_the_event_thread_asleep) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    CHECK(WSAEventFd(ev) >= 0);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], WSAECONNABORTED);
    CHECK_EQ(WSPRunOnEventThread(note_sleeping_waits, (void *)(intptr_t)0), 0);
    WAIT_FOR(atomic_load(&jobs_noted) == 1, 10000);
    CHECK_EQ(WSPRunOnEventThread(note_sleeping_waits, (void *)(intptr_t)1), 0);
    WAIT_FOR(atomic_load(&jobs_noted) == 2, 10000);
    int waits = atomic_load(&waits_at_job[1]) - atomic_load(&waits_at_job[0]);
    CHECK(waits >= 1);
    CHECK(waits <= 2);
    WSACloseEvent(ev);
}

/* ---- inheritance --------------------------------------------------------------------------- */

static void inherit_event_select(DWORD cat) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(cat, 4, &addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT | FD_READ | FD_WRITE | FD_CLOSE);
    struct ne_connector k = {.addr = addr, .data = cat == WSP_CATALOG_CDATA_IPV4 ? "x" : NULL};
    SOCKET c = k.s = new_socket(cat);
    ne_start_connector(&k);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(l, ev, FD_ACCEPT, 10000, &ne));
    int err = 0;
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
    ne_join_connector(&k);
    /* FD_WRITE at once, on the listener's event object. */
    CHECK(ne_wait_bit(a, ev, FD_WRITE, 10000, &ne));
    /* Non-blocking like the listener, and locked so. */
    char b[8];
    CHECK_EQ(ne_recv(a, b, sizeof b, 0), -WSAEWOULDBLOCK);
    DWORD zero = 0, ret;
    CHECK_EQ(T.lpWSPIoctl(a, WSP_FIONBIO, &zero, sizeof zero, NULL, 0, &ret, NULL, NULL, NULL,
                          &err),
             SOCKET_ERROR);
    ne_send_str(c, "ping");
    CHECK(ne_wait_bit(a, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne_recv(a, b, sizeof b, 0), 4);
    ne_close(c);
    CHECK(ne_wait_bit(a, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
}

TEST(netev_inherit_event_select_on_accept) { inherit_event_select(WSP_CATALOG_TCP_IPV4); }

TEST(netev_inherit_event_select_on_accept_connect_data) {
    inherit_event_select(WSP_CATALOG_CDATA_IPV4);
}

TEST(netev_inherit_async_select_on_accept) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(l, q, NE_MSG, FD_ACCEPT | FD_READ | FD_WRITE, &err), 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK(m.wParam == l);
    CHECK_EQ(m.message, NE_MSG);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_ACCEPT);
    CHECK_EQ(WSAGETSELECTERROR(m.lParam), 0);
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK(m.wParam == a);
    CHECK_EQ(m.message, NE_MSG); /* the listener's message too */
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_WRITE);
    ne_send_str(c, "hi");
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK(m.wParam == a);
    CHECK_EQ(m.message, NE_MSG);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0); /* one message per occurrence */
}

/* An accepted socket can send at once: it inherits a selection of FD_WRITE with FD_WRITE
 * posted even when the look at its descriptor (the poll that reports what holds) fails. */
TEST(netev_inherited_selection_posts_write_without_a_look) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(l, q, NE_MSG, FD_ACCEPT | FD_WRITE, &err), 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_ACCEPT, 0));
    FAULT(poll, .nth = 1, .times = -1, .err = ENOMEM, .this_thread = 1);
    SOCKET a = ne_accept(l, NULL, &err);
    int failed = fault_fired(FAULT_poll);
    fault_clear();
    CHECK(a != INVALID_SOCKET);
    CHECK(failed >= 1);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == a);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    CHECK(WSPDestroyMessageQueue(q));
}

/* Data that came before the accept: the accepted socket, which inherits the listener's window
 * messages, has FD_WRITE and FD_READ posted by the accepting call itself, and its watch then
 * waits for nothing the reactor would have to relay (the one relay counted is another
 * socket's FD_READ). */
TEST(netev_inherited_selection_posts_data_there_at_the_accept) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    SOCKET bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(l, q, NE_MSG, FD_ACCEPT | FD_READ | FD_WRITE, &err), 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == l);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_ACCEPT, 0));
    ne_send_str(c, "hi");
    struct sockaddr_storage there = local_address(c);
    WAIT_FOR(tcp_unread(port_of(&addr), port_of(&there)) == 2, 10000);
    unsigned before = wsp_netevents_relays();
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
    LONG seen = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* posted already */
        CHECK(m.wParam == a);
        CHECK_EQ(WSAGETSELECTERROR(m.lParam), 0);
        seen |= WSAGETSELECTEVENT(m.lParam);
    }
    CHECK_EQ(seen, FD_READ | FD_WRITE);
    ne_send_str(bc, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* ---- async select -------------------------------------------------------------------------- */

TEST(netev_async_select_with_builtin_message_queue) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    HWND q = WSPCreateMessageQueue();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, q, NE_MSG, FD_CONNECT | FD_WRITE | FD_READ | FD_CLOSE, &err),
             0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK(m.hwnd == q);
    CHECK(m.wParam == c);
    CHECK_EQ(m.message, NE_MSG);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_CONNECT);
    CHECK_EQ(WSAGETSELECTERROR(m.lParam), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_WRITE);
    SOCKET s = ne_accept(l, NULL, &err); /* the listener is blocking: waits for the request */
    CHECK(s != INVALID_SOCKET);
    ne_send_str(s, "abc");
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    ne_close(s);
    char b[8];
    CHECK_EQ(ne_recv(c, b, sizeof b, 0), 3);
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_CLOSE);
    CHECK_EQ(WSAGETSELECTERROR(m.lParam), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0);
}

static atomic_int event_thread_ran;
static void note_event_thread_ran(void *context) {
    (void)context;
    atomic_store(&event_thread_ran, 1);
}

/* A cancelled registration asks for nothing: a connect made afterwards, and data arriving on
 * the connection, post nothing to the window the registration named. */
TEST(netev_cancelled_async_registration_posts_nothing_after_a_connect) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(c, q, 0, 0, &err), 0); /* cancelled */
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    ne_send_str(s, "xy");
    WAIT_FOR(unread_bytes(c) == 2, 10000);
    char b;
    CHECK_EQ(ne_recv(c, &b, 1, 0), 1); /* connected; a byte is left */
    /* A registration left behind would post from the event thread: let it run twice (what
     * the recv re-armed reports, then what that queued), then look. */
    for (int i = 0; i < 2; i++) {
        atomic_store(&event_thread_ran, 0);
        CHECK_EQ(WSPRunOnEventThread(note_event_thread_ran, NULL), 0);
        WAIT_FOR(atomic_load(&event_thread_ran), 10000);
    }
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    ne_close(c);
    ne_close(s);
    CHECK(WSPDestroyMessageQueue(q));
}

TEST(netev_async_select_refused_connect_message) {
    start();
    struct sockaddr_storage addr = dead_address();
    HWND q = WSPCreateMessageQueue();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, q, NE_MSG, FD_CONNECT, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 2000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_CONNECT);
    CHECK_EQ(WSAGETSELECTERROR(m.lParam), WSAECONNREFUSED);
}

/* An application-supplied WPUPostMessage. */
static pthread_mutex_t posted_lock = PTHREAD_MUTEX_INITIALIZER;
static WSPMSG posted[64];
static int posted_count;

static BOOL record_post(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    pthread_mutex_lock(&posted_lock);
    if (posted_count < 64)
        posted[posted_count++] = (WSPMSG){hWnd, Msg, wParam, lParam};
    pthread_mutex_unlock(&posted_lock);
    return TRUE;
}

static int posted_now(void) {
    pthread_mutex_lock(&posted_lock);
    int n = posted_count;
    pthread_mutex_unlock(&posted_lock);
    return n;
}

TEST(netev_async_select_with_application_post_message) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = record_post;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND wnd = (HWND)(uintptr_t)0x1234; /* the application's own window handle */
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, wnd, 0x555, FD_READ | FD_CLOSE, &err), 0);
    ne_send_str(c, "x");
    WAIT_FOR(posted_now() == 1, 10000);
    pthread_mutex_lock(&posted_lock);
    CHECK(posted[0].hwnd == wnd);
    CHECK_EQ(posted[0].message, 0x555);
    CHECK(posted[0].wParam == s);
    CHECK_EQ(posted[0].lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    pthread_mutex_unlock(&posted_lock);
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WAIT_FOR(posted_now() == 2, 10000);
    CHECK_EQ(posted[1].lParam, WSAMAKESELECTREPLY(FD_CLOSE, WSAECONNABORTED));
}

/* ---- a whole conversation through events ------------------------------------------------- */

#define ROUNDS 20
#define MSGLEN 8

TEST(netev_conversation_only_through_events) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    WSAEVENT server_ev = ne_event_select(l, FD_ACCEPT | FD_READ | FD_CLOSE);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT client_ev = ne_event_select(c, FD_CONNECT | FD_READ | FD_WRITE | FD_CLOSE);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    SOCKET a = INVALID_SOCKET;
    int round = 0, client_done = 0, server_done = 0, err = 0;
    char cbuf[32], sbuf[MSGLEN + 1];
    size_t chave = 0, shave = 0;
    WSAEVENT evs[2] = {server_ev, client_ev};
    while (!client_done || !server_done) {
        DWORD w = WSAWaitForMultipleEvents(2, evs, FALSE, 5000, FALSE);
        CHECK(w == WSA_WAIT_EVENT_0 || w == WSA_WAIT_EVENT_0 + 1);
        if (w == WSA_WAIT_EVENT_0) {
            /* The listener and the accepted socket share server_ev: reset it first, then read
             * both records, so an event that comes in between signals it again. */
            CHECK(WSAResetEvent(server_ev));
            WSANETWORKEVENTS ne = ne_enum(l, NULL);
            if (ne.lNetworkEvents & FD_ACCEPT) {
                a = ne_accept(l, NULL, &err);
                CHECK(a != INVALID_SOCKET);
            }
            if (a == INVALID_SOCKET)
                continue;
            ne = ne_enum(a, NULL);
            if (ne.lNetworkEvents & FD_READ) {
                int n;
                while ((n = ne_recv(a, sbuf + shave, MSGLEN - shave, 0)) > 0) {
                    shave += (size_t)n;
                    if (shave == MSGLEN) {
                        sbuf[0] = 'P'; /* ping -> Pong */
                        DWORD sent;
                        CHECK_EQ(ne_send(a, sbuf, MSGLEN, 0, &sent), 0);
                        shave = 0;
                    }
                }
            }
            if (ne.lNetworkEvents & FD_CLOSE) {
                CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
                ne_close(a);
                server_done = 1;
            }
        } else {
            WSANETWORKEVENTS ne = ne_enum(c, client_ev);
            if (ne.lNetworkEvents & FD_CONNECT)
                CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
            if (ne.lNetworkEvents & FD_WRITE) {
                CHECK_EQ(round, 0);
                snprintf(cbuf, sizeof cbuf, "ping%04d", round % 10000);
                ne_send_str(c, cbuf);
            }
            if (ne.lNetworkEvents & FD_READ) {
                int n;
                while ((n = ne_recv(c, cbuf + chave, MSGLEN - chave, 0)) > 0) {
                    chave += (size_t)n;
                    if (chave == MSGLEN) {
                        char want[32];
                        snprintf(want, sizeof want, "Ping%04d", round % 10000);
                        CHECK_MEM(cbuf, want, MSGLEN);
                        chave = 0;
                        if (++round < ROUNDS) {
                            snprintf(cbuf, sizeof cbuf, "ping%04d", round % 10000);
                            ne_send_str(c, cbuf);
                        } else {
                            CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
                        }
                    }
                }
            }
            if (ne.lNetworkEvents & FD_CLOSE) {
                CHECK_EQ(round, ROUNDS);
                CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
                ne_close(c);
                client_done = 1;
            }
        }
    }
    CHECK_EQ(round, ROUNDS);
}

TEST(netev_connect_timed_out) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr); /* nobody accepts */
    (void)l;
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(c, SOL_WSP, WSP_CONNECT_LIMIT, 200);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT);
    CHECK_EQ(ne_connect(c, &addr, "x", NULL), WSAEWOULDBLOCK);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAETIMEDOUT);
}

/* A zero-time select's verdict on a non-blocking connect: 1 when it has failed. */
static int connect_failed(SOCKET c) {
    WSPFD_SET ex;
    WSP_FD_ZERO(&ex);
    WSP_FD_SET(c, &ex);
    struct timeval zero = {0, 0};
    int err = 0;
    int rc = T.lpWSPSelect(0, NULL, NULL, &ex, &zero, &err);
    CHECK(rc != SOCKET_ERROR);
    return rc == 1;
}

TEST(netev_connect_outcome_reported_when_registered_after) {
    start();
    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    /* The refusal comes before the registration: the provider has recorded it once select
     * shows the socket in its exception set (which reads the outcome without taking it). */
    WAIT_FOR(connect_failed(c), 10000);
    WSAEVENT ev = ne_event_select(c, FD_CONNECT);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_CONNECT, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAECONNREFUSED);
}

/* A registration that does not ask for FD_CONNECT leaves a refused connect's outcome
 * unreported: the next one that asks for it still gets it, with the refusal. */
TEST(netev_connect_outcome_kept_through_a_registration_that_does_not_ask_for_it) {
    start();
    struct sockaddr_storage addr = dead_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_fionbio(c, 1);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WAIT_FOR(connect_failed(c), 10000);
    WSAEVENT ev = ne_event_select(c, FD_READ);
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, 0);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(c, ev, FD_READ | FD_CONNECT, &err), 0);
    WSANETWORKEVENTS ne = ne_enum(c, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_CONNECT);
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], WSAECONNREFUSED);
    WSACloseEvent(ev);
}

TEST(netev_oob_inline_is_read_not_oob) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_OOBINLINE, 1);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK(!ne_wait_bit(s, ev, FD_OOB, 200, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK_EQ(b, '!');
}

/* A connect-data socket registered for window messages (events, on *q) while its blocking
 * connect is under way (its request queued), then accepted (*a) and connected. */
static SOCKET async_registered_during_blocking_connect(LONG events, HWND *q, SOCKET *a) {
    struct ne_connector k = {.data = "x"};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &k.addr);
    SOCKET c = k.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    ne_start_connector(&k); /* blocking: waits for the accept below */
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* its request is in: the connect is under way */
    *q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, *q, NE_MSG, events, &err), 0);
    *a = ne_accept(l, NULL, &err);
    CHECK(*a != INVALID_SOCKET);
    ne_join_connector(&k);
    return c;
}

TEST(netev_registered_during_blocking_connect_watches_from_first_send) {
    start();
    struct ne_connector k = {.data = "x"};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &k.addr);
    SOCKET c = k.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    ne_start_connector(&k); /* blocking: waits for the accept below */
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* its request is in: the connect is under way */
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE);
    int err;
    SOCKET a = ne_accept(l, NULL, &err);
    CHECK(a != INVALID_SOCKET);
    ne_join_connector(&k);
    ne_send_str(c, "hi");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne));
    ne_send_str(a, "yo");
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne));
}

/* As above with window messages: the reactor watches the socket, one-shot, and the first
 * send has to arm that watch for what the registration asks (FD_READ here). */
TEST(netev_async_registered_during_blocking_connect_watches_from_first_send) {
    start();
    HWND q;
    SOCKET a, c = async_registered_during_blocking_connect(FD_READ | FD_WRITE, &q, &a);
    ne_send_str(c, "hi");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
    ne_send_str(a, "yo");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
}

/* As above, counted: the connect's end put the descriptor in the socket's mode (non-blocking,
 * as the registration made the socket), so the watch the first send starts changes no mode
 * (no FIONBIO). Pins that cost, counted through the provider's ioctl. */
TEST(netev_watch_started_after_a_blocking_connect_changes_no_mode) {
    start();
    HWND q;
    SOCKET a, c = async_registered_during_blocking_connect(FD_READ, &q, &a);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    ne_send_str(c, "hi");
    int calls = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(calls, 0);
    ne_send_str(a, "yo");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
}

/* As above with a QOS query (SIO_GET_QOS re-enables FD_QOS) as the first call after the
 * connect: the watch it starts is armed for FD_READ at once, and the data that comes next is
 * posted. */
TEST(netev_async_registered_during_blocking_connect_watches_from_a_qos_query) {
    start();
    HWND q;
    SOCKET a, c = async_registered_during_blocking_connect(FD_READ, &q, &a);
    int err = 0;
    QOS got;
    DWORD ret = 0;
    CHECK_EQ(T.lpWSPIoctl(c, SIO_GET_QOS, NULL, 0, &got, sizeof got, &ret, NULL, NULL, NULL, &err),
             0);
    ne_send_str(a, "yo");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
}

/* Once the room a blocked send waited for has come (FD_WRITE posted), the reactor stops
 * watching for room: the socket costs it nothing until the next condition it was asked for,
 * here one relay for the data that raises FD_READ. */
TEST(netev_write_posted_after_wouldblock_ends_the_watch_for_room) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_WRITE, &err), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0)); /* at registration */
    static char chunk[65536];
    long long sent_total = 0;
    DWORD sent = 0;
    int rc = 0;
    for (int i = 0; i < 10000 && (rc = ne_send(s, chunk, sizeof chunk, 0, &sent)) == 0; i++)
        sent_total += sent;
    CHECK_EQ(rc, WSAEWOULDBLOCK); /* the peer reads nothing: the buffers are full */
    static char sink[65536];
    for (long long got = 0; got < sent_total;) {
        int n = ne_recv(c, sink, sizeof sink, 0);
        CHECK(n > 0);
        got += n;
    }
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
    unsigned before = wsp_netevents_relays();
    ne_send_str(c, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
}

/* A send that would block leaves FD_WRITE owed; when the connection is then reset, FD_CLOSE
 * reports the reset and the owed FD_WRITE comes too, so that the next send reports the error
 * rather than the application waiting for room forever. */
TEST(netev_reset_while_a_send_waits_for_room_reports_close_and_write) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_WRITE | FD_CLOSE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* the first FD_WRITE, at registration */
    static char chunk[65536];
    DWORD sent = 0;
    int rc;
    while ((rc = ne_send(s, chunk, sizeof chunk, 0, &sent)) == 0) {
    }
    CHECK_EQ(rc, WSAEWOULDBLOCK); /* the peer reads nothing: the buffers are full */
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], WSAECONNABORTED); /* Windows' code for a reset */
    if (!(ne.lNetworkEvents & FD_WRITE))
        CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne));
    CHECK_EQ(ne_send(s, "x", 1, 0, &sent), WSAECONNRESET);
}

/* A socket with nothing to read and a full send buffer holds no condition at registration:
 * nothing is reported until something happens. */
TEST(netev_registration_with_nothing_to_read_and_no_room_to_send_reports_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_fionbio(s, 1);
    static char chunk[65536];
    int err = 0;
    for (int i = 0; i < 1000 && (err = ne_send(s, chunk, sizeof chunk, 0, NULL)) == 0; i++)
        ;
    CHECK_EQ(err, WSAEWOULDBLOCK); /* the peer reads nothing: the buffers fill */
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* lpWSPAccept on a non-blocking listener until a connection is there. */
static SOCKET accept_soon(SOCKET l) {
    int err = 0;
    SOCKET a;
    long long deadline = now_ms() + 10000;
    while ((a = ne_accept(l, NULL, &err)) == INVALID_SOCKET) {
        CHECK_EQ(err, WSAEWOULDBLOCK);
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    return a;
}

/* A socket that connects with an async selection: the connector may still watch its
 * descriptor when the connect ends, so the reactor watches a duplicate, closed with the
 * socket. */
static void async_selected_connect_leaks_no_descriptor(DWORD cat) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(cat, 4, &addr);
    ne_fionbio(l, 1); /* a blocking accept would open the listener's wake-up descriptor */
    HWND q = WSPCreateMessageQueue();
    int before = open_fds();
    SOCKET c = new_socket(cat);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(c, q, NE_MSG, FD_CONNECT | FD_READ | FD_CLOSE, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, cat == WSP_CATALOG_CDATA_IPV4 ? "x" : NULL, NULL),
             WSAEWOULDBLOCK);
    SOCKET a = accept_soon(l);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CONNECT, 0));
    ne_send_str(a, "hi");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    ne_close(a);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == c);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, 0));
    ne_close(c);
    WAIT_FOR(open_fds() == before, 10000);
}

TEST(netev_async_selected_connect_leaks_no_descriptor) {
    async_selected_connect_leaks_no_descriptor(WSP_CATALOG_TCP_IPV4);
}

TEST(netev_async_selected_connect_data_connect_leaks_no_descriptor) {
    async_selected_connect_leaks_no_descriptor(WSP_CATALOG_CDATA_IPV4);
}

/* A new selection clears the record of the one it replaces (Winsock: "clears the internal
 * network event record"): an event recorded and not yet enumerated is gone. */
TEST(netev_new_registration_clears_the_record) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    CHECK(ne_signalled(ev, 10000)); /* FD_READ recorded; no enumeration */
    CHECK(WSAResetEvent(ev));
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    WSACloseEvent(ev);
}

/* A connected socket may be registered for events its descriptor never raises. */
TEST(netev_connected_socket_registered_only_for_accept_or_connect) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_ACCEPT, &err), 0);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_CONNECT | FD_QOS, &err), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    WSACloseEvent(ev);
}


/* A recv that re-enables FD_OOB while the urgent byte is still unread (a peek) reports FD_OOB
 * again at once: the edge that announced the byte will not come again. */
TEST(netev_oob_still_unread_after_a_peek_is_reported_again) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_OOB);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB | MSG_PEEK), 1);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_OOB);
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK_EQ(b, '!');
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0); /* read now: nothing more */
    WSACloseEvent(ev);
}

/* ---- issue #11: paths the mutation runs found unpinned ---------------------------------- */

static int write_ready(SOCKET c) {
    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(c, &w);
    struct timeval zero = {0, 0};
    int err = 0;
    int rc = T.lpWSPSelect(0, NULL, &w, NULL, &zero, &err);
    CHECK(rc != SOCKET_ERROR);
    return rc == 1;
}

/* A connect that ends while the event registration does not ask for FD_CONNECT is recorded as
 * not yet reported: a later registration on an event object that asks for it gets it, once. */
TEST(netev_connect_reported_to_a_later_registration_that_asks_for_it) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    (void)l;
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = ne_event_select(c, FD_READ);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    WAIT_FOR(write_ready(c), 10000); /* connected */
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, 0);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(c, ev, FD_READ | FD_CONNECT, &err), 0);
    WSANETWORKEVENTS ne = ne_enum(c, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_CONNECT);
    CHECK_EQ(ne.iErrorCode[FD_CONNECT_BIT], 0);
    CHECK_EQ(T.lpWSPEventSelect(c, ev, FD_READ | FD_CONNECT, &err), 0);
    CHECK_EQ(ne_enum(c, ev).lNetworkEvents, 0); /* once */
    WSACloseEvent(ev);
}

/* The thread each message was posted from, beside record_post's list. */
static pthread_t posted_by[64];

static BOOL record_post_and_thread(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    pthread_mutex_lock(&posted_lock);
    if (posted_count < 64) {
        posted_by[posted_count] = pthread_self();
        posted[posted_count++] = (WSPMSG){hWnd, Msg, wParam, lParam};
    }
    pthread_mutex_unlock(&posted_lock);
    return TRUE;
}

/* On a socket the reactor watches (window messages), a recv that fills its buffer with data
 * left posts FD_READ again itself, on the receiving thread, before it returns: the reactor is
 * not woken to do it. */
TEST(netev_read_left_by_a_recv_is_posted_by_the_receiving_thread) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = record_post_and_thread;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, (HWND)(uintptr_t)0x1234, 0x555, FD_READ, &err), 0);
    ne_send_str(c, "abc");
    WAIT_FOR(posted_now() == 1, 10000);
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK_EQ(posted_now(), 2);
    pthread_mutex_lock(&posted_lock);
    CHECK_EQ(posted[1].lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK(pthread_equal(posted_by[1], pthread_self()));
    pthread_mutex_unlock(&posted_lock);
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* and again for the last byte */
    CHECK_EQ(posted_now(), 3);
    char rest[4];
    CHECK_EQ(ne_recv(s, rest, sizeof rest, 0), 1); /* drained: nothing more */
    CHECK_EQ(posted_now(), 3);
}

/* A reset on a socket the reactor watches for window messages posts FD_CLOSE, and leaves
 * the one-shot watch that reported it as it is: a dead socket has nothing to wait for, so no
 * epoll_ctl re-arms (or tries to re-arm) anything. */
TEST(netev_reset_posts_close_and_rearms_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_CLOSE, &err), 0);
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    /* The listener goes first: the end of its direct mode, 20 ms after the accept, would add
     * its descriptor to the reactor's set again in the window counted below. */
    ne_close(l);
    FAULT(epoll_ctl, .nth = 1000000); /* counts every thread's calls, fails none */
    ne_close(c);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, WSAECONNABORTED));
    CHECK_EQ(calls, 0);
    ne_close(s);
    CHECK(WSPDestroyMessageQueue(q));
}

/* As netev_reset_while_a_send_waits_for_room_reports_close_and_write, with window messages
 * (the reactor's one-shot watch, which a dead socket no longer re-arms): the reset posts both
 * FD_CLOSE and the owed FD_WRITE. */
TEST(netev_reset_while_a_send_waits_for_room_posts_close_and_write) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_WRITE | FD_CLOSE, &err), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0)); /* at registration */
    static char chunk[65536];
    DWORD sent = 0;
    int rc;
    while ((rc = ne_send(s, chunk, sizeof chunk, 0, &sent)) == 0) {
    }
    CHECK_EQ(rc, WSAEWOULDBLOCK); /* the peer reads nothing: the buffers are full */
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    int close_seen = 0, write_seen = 0;
    while (!(close_seen && write_seen)) {
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK(m.wParam == s);
        if (WSAGETSELECTEVENT(m.lParam) == FD_CLOSE) {
            CHECK_EQ(WSAGETSELECTERROR(m.lParam), WSAECONNABORTED);
            close_seen++;
        } else {
            CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
            write_seen++;
        }
    }
    CHECK_EQ(ne_send(s, "x", 1, 0, &sent), WSAECONNRESET);
    CHECK_EQ(WSPGetMessage(q, &m, 100), 0); /* each once */
}

/* A send that would block on a socket whose registration does not ask for FD_WRITE, then a
 * reset: the room that send waited for is moot (the next send reports the reset). A later
 * selection that asks for FD_WRITE posts it itself, and the reset socket then costs the reactor
 * one relay, its new watch's hang-up (epoll always reports EPOLLHUP; one-shot, once), and not
 * one more for room to send; the other relays counted are another socket's FD_READ. */
TEST(netev_reset_after_a_blocked_send_unselected_for_write_costs_no_relay_later) {
    start();
    SOCKET c, s, l, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_CLOSE, &err), 0);
    static char chunk[65536];
    DWORD sent = 0;
    int rc;
    while ((rc = ne_send(s, chunk, sizeof chunk, 0, &sent)) == 0) {
    }
    CHECK_EQ(rc, WSAEWOULDBLOCK); /* the peer reads nothing: the buffers are full */
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, WSAECONNABORTED));
    CHECK_EQ(ne_send(s, "x", 1, 0, &sent), WSAECONNRESET);
    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_WRITE | FD_CLOSE, &err), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 1); /* posted already */
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
    /* Two rounds: whatever the reset socket's watch does after a relay is queued before the
     * second round's data, so that its relay comes after it. */
    for (int i = 0; i < 2; i++) {
        ne_send_str(bc, "x");
        CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
        CHECK(m.wParam == bs);
        CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
        char b;
        CHECK_EQ(ne_recv(bs, &b, 1, 0), 1);
    }
    CHECK_EQ(wsp_netevents_relays() - before, 1 + 2);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* An application's own WPUSetEvent (the reactor then watches the socket, level-triggered). */
static atomic_int app_sets;
static BOOL count_set_event(WSAEVENT ev, LPINT err) {
    (void)ev;
    atomic_fetch_add(&app_sets, 1);
    *err = 0;
    return TRUE;
}

/* With an application's WPUSetEvent the reactor watches an event registration's socket (one
 * one-shot registration): a recv that re-enables FD_READ re-arms that registration with one
 * epoll_ctl, and keeps the watch it has (no removal and new registration). */
TEST(netev_recv_rearms_the_reactors_watch_in_one_call_under_an_application_set_event) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = count_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5158; /* the application's own */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    int sets = atomic_load(&app_sets);
    ne_send_str(c, "ab");
    WAIT_FOR(atomic_load(&app_sets) > sets, 10000); /* FD_READ, raised by the reactor */
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ);
    char b[2];
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts this thread's calls */
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 1);
}

/* On an event registration watched through the event's set (edge-triggered), a recv of
 * urgent data looks once more for urgent data still there: a look, no wait. */
TEST(netev_recv_of_urgent_data_looks_for_more_without_waiting) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne));
    char b;
    int sleeping = fault_sleeping_polls();
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    sleeping = fault_sleeping_polls() - sleeping;
    CHECK_EQ(b, '!');
    CHECK_EQ(sleeping, 0);
    WSACloseEvent(ev);
}

static LONG app_record;
static int app_record_has(SOCKET s, LONG bit) {
    app_record |= ne_enum(s, NULL).lNetworkEvents;
    return (app_record & bit) != 0;
}

/* A registration that reports a past FD_CONNECT still starts watching the socket for the rest:
 * data that arrives afterwards raises FD_READ (with the application's event upcalls, through
 * the reactor's watch). */
TEST(netev_registration_reporting_a_past_connect_watches_for_the_rest) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = count_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(c, ev, FD_READ, &err), 0);
    CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
    SOCKET s = ne_accept(l, NULL, &err);
    CHECK(s != INVALID_SOCKET);
    WAIT_FOR(write_ready(c), 10000); /* connected */
    CHECK_EQ(T.lpWSPEventSelect(c, ev, FD_READ | FD_CONNECT, &err), 0);
    WSANETWORKEVENTS ne = ne_enum(c, NULL);
    CHECK_EQ(ne.lNetworkEvents, FD_CONNECT);
    int sets = atomic_load(&app_sets);
    ne_send_str(s, "x");
    WAIT_FOR(app_record_has(c, FD_READ), 10000);
    /* The reactor records under the socket's lock and makes its upcalls after letting go
     * (netevents.c, begin_deferring): the record can be read in between. */
    WAIT_FOR(atomic_load(&app_sets) > sets, 10000);
}

/* A connection reset before the registration: the registration reports FD_CLOSE with
 * WSAECONNABORTED at once (and FD_WRITE no more). */
TEST(netev_registration_after_a_reset_reports_close_aborted) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct sockaddr_storage here = local_address(s), there = local_address(c);
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == -1, 10000); /* the reset is in */
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE | FD_CLOSE);
    WSANETWORKEVENTS ne = ne_enum(s, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_CLOSE); /* asked for, FD_WRITE is not reported */
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], WSAECONNABORTED);
    WSACloseEvent(ev);
}

/* The reactor signals an event once for all it records at one look at the socket: data with
 * urgent data in one segment records FD_READ and FD_OOB, and the application's WPUSetEvent
 * is called once, after the socket's lock is released. */
TEST(netev_events_recorded_together_are_signalled_once) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = count_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ | FD_OOB, &err), 0);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, 0);
    int sets = atomic_load(&app_sets);
    DWORD sent;
    CHECK_EQ(ne_send(c, "ab", 2, MSG_OOB, &sent), 0); /* "a" data, "b" urgent: one segment */
    WAIT_FOR(atomic_load(&app_sets) > sets, 10000);
    WSANETWORKEVENTS ne = ne_enum(s, NULL);
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_OOB);
    CHECK_EQ(atomic_load(&app_sets) - sets, 1);
}

/* With window messages the reactor watches the socket, one-shot: a recv that takes everything
 * re-arms the watch for FD_READ (one epoll_ctl) and a send that goes through changes nothing;
 * neither looks at anything else. */
TEST(netev_async_recv_and_send_make_one_epoll_ctl_and_nothing_else) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_WRITE | FD_OOB | FD_CLOSE, &err), 0);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0)); /* at registration */
    ne_send_str(c, "abcd");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    static const enum fault_fn watched[] = {FAULT_poll, FAULT_getsockopt, FAULT_ioctl,
                                            FAULT_epoll_ctl, FAULT_read, FAULT_write};
    enum { N = sizeof watched / sizeof watched[0] };
    for (int i = 0; i < N; i++)
        fault_set(watched[i], (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    char b[16];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 4);
    CHECK_EQ(ne_send(s, "x", 1, 0, NULL), 0);
    int calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = fault_calls(watched[i]);
    fault_clear();
    for (int i = 0; i < N; i++)
        CHECK_EQ(calls[i], watched[i] == FAULT_epoll_ctl ? 1 : 0);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* A window-message registration for FD_WRITE alone (posted at once, re-enabled only by a send
 * that would block) leaves the reactor's watch with nothing to wait for: its one system call
 * is the watch's EPOLL_CTL_ADD, no re-arm follows. Pins that cost, counted through the
 * provider's epoll_ctl. */
TEST(netev_async_registration_for_write_alone_makes_one_epoll_ctl) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_WRITE, &err), 0);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 1);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_WRITE, 0));
    CHECK(WSPDestroyMessageQueue(q));
}

/* A send that would block re-enables FD_WRITE, but a registration that does not ask for
 * FD_WRITE has no use for the room: its watch is not re-armed to wait for EPOLLOUT, on the
 * reactor (window messages) or in an event's set. Pins that cost (no epoll_ctl), counted
 * through the provider's epoll_ctl; a fault makes the send find the buffer full. */
TEST(netev_send_that_would_block_unselected_for_write_rearms_nothing) {
    start();
    for (int async = 0; async < 2; async++) {
        SOCKET c, s, l;
        ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
        HWND q = NULL;
        WSAEVENT ev = NULL;
        int err = 0;
        if (async) {
            q = WSPCreateMessageQueue();
            CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
        } else {
            ev = ne_event_select(s, FD_READ);
        }
        FAULT(send, .nth = 1, .err = EAGAIN, .this_thread = 1);
        FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
        CHECK_EQ(ne_send(s, "x", 1, 0, NULL), WSAEWOULDBLOCK);
        int fired = fault_fired(FAULT_send), calls = fault_calls(FAULT_epoll_ctl);
        fault_clear();
        CHECK_EQ(fired, 1);
        CHECK_EQ(calls, 0);
        ne_send_str(c, "y"); /* the watch still waits for data */
        if (async) {
            WSPMSG m;
            CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
            CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
            ne_close(s);
            CHECK(WSPDestroyMessageQueue(q));
        } else {
            WSANETWORKEVENTS ne;
            CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
            ne_close(s);
        }
        ne_close(c);
        ne_close(l);
    }
}

/* With an event object the socket is watched in the event's own set: a send that would block
 * re-arms that watch for room with one epoll_ctl, the set's, and FD_WRITE follows once there
 * is room (here at once: a fault made the send find the buffer full). The reactor, which
 * does not watch the socket, is not asked to. */
TEST(netev_event_send_that_would_block_rearms_the_set_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* at registration */
    FAULT(send, .nth = 1, .err = EAGAIN, .this_thread = 1);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(ne_send(s, "x", 1, 0, NULL), WSAEWOULDBLOCK);
    int fired = fault_fired(FAULT_send), calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(fired, 1);
    CHECK_EQ(calls, 1);
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne));
    CHECK_EQ(ne.iErrorCode[FD_WRITE_BIT], 0);
}

/* Cancelling a window-message registration removes the reactor's watch without waking the
 * reactor: the removed watch is only memory, freed when the reactor next wakes for anything.
 * Pins that cost (no wake-up written), counted through the provider's write. */
TEST(netev_async_cancel_wakes_no_one) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, 0, 0, &err), 0);
    int calls = fault_calls(FAULT_write);
    fault_clear();
    CHECK_EQ(calls, 0);
    ne_send_str(c, "x");
    CHECK_EQ(ne_recv(s, (char[4]){0}, 4, 0), 1); /* the socket works on, unregistered */
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    CHECK(WSPDestroyMessageQueue(q));
}

/* An application's WPUPostMessage that holds the reactor in the upcall for hold_socket's
 * message until released, and records every other message. */
static SOCKET hold_socket;
static atomic_int post_held, post_release;

static BOOL hold_or_record_post(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    if (wParam == hold_socket) {
        atomic_store(&post_held, 1);
        long long deadline = now_ms() + 20000;
        while (!atomic_load(&post_release) && now_ms() < deadline)
            sleep_ms(1);
        return TRUE;
    }
    return record_post(hWnd, Msg, wParam, lParam);
}

/* Data, urgent data and the peer's FIN seen at one look: the reactor posts a message for each
 * of the three events, after unlocking the socket. */
TEST(netev_three_events_at_one_look_post_three_messages) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = hold_or_record_post;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c0, s0, l0, c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c0, &s0, &l0);
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND wnd = (HWND)(uintptr_t)0x1234;
    int err = 0;
    hold_socket = c0;
    CHECK_EQ(T.lpWSPAsyncSelect(c0, wnd, 0x555, FD_READ, &err), 0);
    ne_send_str(s0, "x");
    WAIT_FOR(atomic_load(&post_held), 10000); /* the reactor is held in c0's upcall */
    CHECK_EQ(T.lpWSPAsyncSelect(s, wnd, 0x555, FD_READ | FD_OOB | FD_CLOSE, &err), 0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "ab", 2, MSG_OOB, &sent), 0);
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    struct sockaddr_storage here = local_address(s), there = local_address(c);
    /* All of it has arrived once the FIN has. */
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == TCP_CLOSE_WAIT, 10000);
    CHECK_EQ(posted_now(), 0);
    atomic_store(&post_release, 1);
    WAIT_FOR(posted_now() == 3, 10000);
    LONG seen = 0;
    pthread_mutex_lock(&posted_lock);
    for (int i = 0; i < 3; i++) {
        CHECK(posted[i].wParam == s);
        CHECK_EQ(WSAGETSELECTERROR(posted[i].lParam), 0);
        LONG ev = WSAGETSELECTEVENT(posted[i].lParam);
        CHECK(!(seen & ev));
        seen |= ev;
    }
    pthread_mutex_unlock(&posted_lock);
    CHECK_EQ(seen, FD_READ | FD_OOB | FD_CLOSE);
}

/* The peer's FIN arrives while the socket is being closed: lpWSPCloseSocket has taken the
 * handle away and waits for the socket's lock, which another thread holds in an upcall (a
 * recv that left data behind posts FD_READ itself). The reactor, held until then, relays the
 * FIN's readiness to a socket its handle no longer names: it drops it, and no FD_CLOSE is
 * posted for the closed socket. */
static atomic_int close_race_held, close_race_release;
static SOCKET close_race_socket;

static BOOL hold_off_reactor_post(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    if (wParam == close_race_socket && !wsp_reactor_is_current()) {
        atomic_store(&close_race_held, 1);
        long long deadline = now_ms() + 20000;
        while (!atomic_load(&close_race_release) && now_ms() < deadline)
            sleep_ms(1);
    }
    return record_post(hWnd, Msg, wParam, lParam);
}

struct close_race_call {
    SOCKET s;
    int rc;
};

static void *close_race_recv_main(void *arg) {
    struct close_race_call *a = arg;
    char b;
    a->rc = ne_recv(a->s, &b, 1, 0);
    return NULL;
}

static void *close_race_close_main(void *arg) {
    struct close_race_call *a = arg;
    int err = 0;
    a->rc = T.lpWSPCloseSocket(a->s, &err);
    return NULL;
}

/* Whether s names no socket any more (its close has begun). */
static int handle_taken_away(SOCKET s) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    if (so)
        wsp_socket_release(so);
    return so == NULL;
}

TEST(netev_relay_for_a_socket_closed_meanwhile_is_dropped) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = hold_off_reactor_post;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c0, s0, l0, c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c0, &s0, &l0);
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND wnd = (HWND)(uintptr_t)0x1234;
    int err = 0;
    close_race_socket = s;
    CHECK_EQ(T.lpWSPAsyncSelect(s0, wnd, 0x555, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(s, wnd, 0x555, FD_READ | FD_CLOSE, &err), 0);
    ne_send_str(c, "ab");
    WAIT_FOR(posted_now() == 1, 10000); /* FD_READ, from the reactor */
    FAULT(epoll_wait, .hold = 1);       /* the reactor's next wait */
    ne_send_str(c0, "w");               /* wakes the reactor into the hold */
    WAIT_FOR(fault_holding() == 1, 10000);
    struct close_race_call r = {.s = s}, k = {.s = s};
    pthread_t rt, kt;
    CHECK_EQ(pthread_create(&rt, NULL, close_race_recv_main, &r), 0);
    WAIT_FOR(atomic_load(&close_race_held), 10000); /* in its upcall, s's lock held */
    CHECK_EQ(pthread_create(&kt, NULL, close_race_close_main, &k), 0);
    WAIT_FOR(handle_taken_away(s), 10000); /* the close waits for the lock */
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    unsigned relays = wsp_netevents_relays();
    fault_clear();
    fault_release();
    WAIT_FOR(wsp_netevents_relays() > relays, 10000); /* the FIN's readiness, relayed */
    atomic_store(&close_race_release, 1);
    pthread_join(rt, NULL);
    pthread_join(kt, NULL);
    CHECK_EQ(r.rc, 1);
    CHECK_EQ(k.rc, 0);
    pthread_mutex_lock(&posted_lock);
    int n = posted_count;
    for (int i = 0; i < n; i++)
        if (posted[i].wParam == s)
            CHECK_EQ(posted[i].lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    pthread_mutex_unlock(&posted_lock);
}

/* lpWSPCloseSocket while the reactor is in an upcall for the socket (made after unlocking
 * it): the close waits for that upcall before it cancels the registration, so no upcall is
 * made after it returns. Seen from here: once the socket's lock shows it closing, its
 * registration still stands (the close waits, the lock released), until the upcall ends. */
static atomic_int inflight_held, inflight_release;
static SOCKET inflight_socket;

static BOOL hold_reactor_post(HWND hWnd, UINT Msg, WPARAM wParam, LPARAM lParam) {
    if (wParam == inflight_socket && wsp_reactor_is_current()) {
        atomic_store(&inflight_held, 1);
        long long deadline = now_ms() + 20000;
        while (!atomic_load(&inflight_release) && now_ms() < deadline)
            sleep_ms(1);
    }
    return record_post(hWnd, Msg, wParam, lParam);
}

/* Whether so is closing; *registered then says whether its registration still stands. */
static int closing_seen(struct wsp_socket *so, int *registered) {
    pthread_mutex_lock(&so->lock);
    int closing = so->closing;
    if (closing)
        *registered = wsp_netevents_registered(so);
    pthread_mutex_unlock(&so->lock);
    return closing;
}

TEST(netev_close_waits_for_an_upcall_in_flight_before_cancelling) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUPostMessage = hold_reactor_post;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND wnd = (HWND)(uintptr_t)0x1234;
    int err = 0;
    inflight_socket = s;
    CHECK_EQ(T.lpWSPAsyncSelect(s, wnd, 0x555, FD_READ, &err), 0);
    ne_send_str(c, "x");
    WAIT_FOR(atomic_load(&inflight_held), 10000); /* the reactor, in FD_READ's upcall */
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct close_race_call k = {.s = s};
    pthread_t kt;
    CHECK_EQ(pthread_create(&kt, NULL, close_race_close_main, &k), 0);
    int registered = 0;
    WAIT_FOR(closing_seen(so, &registered), 10000);
    CHECK(registered);
    atomic_store(&inflight_release, 1);
    pthread_join(kt, NULL);
    CHECK_EQ(k.rc, 0);
    CHECK(!wsp_netevents_registered(so));
    wsp_socket_release(so);
    CHECK_EQ(posted_now(), 1);
}

/* A recv that leaves data behind on a reactor-watched socket registered without FD_READ has
 * nothing to raise: it looks at nothing (no FIONREAD). */
TEST(netev_recv_leaving_data_unselected_for_read_looks_at_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_WRITE | FD_CLOSE, &err), 0);
    ne_send_str(c, "01234567");
    long long deadline = now_ms() + 10000;
    char peek[8];
    while (ne_recv(s, peek, sizeof peek, MSG_PEEK) != 8) {
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    char b[2];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
}

/* A recv into two buffers that takes all there was (fewer bytes than the buffers hold
 * together, more than the first does) left nothing behind: it looks at nothing (no FIONREAD)
 * to raise FD_READ again. */
TEST(netev_recv_into_two_buffers_taking_all_looks_at_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(c, "0123"); /* one segment: all four bytes arrive together */
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK_EQ(WSAGETSELECTEVENT(m.lParam), FD_READ);
    char b1[2], b2[8];
    WSABUF bufs[2] = {{sizeof b1, b1}, {sizeof b2, b2}};
    DWORD got = 0, flags = 0;
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(T.lpWSPRecv(s, bufs, 2, &got, &flags, NULL, NULL, NULL, &err), 0);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(got, 4);
    CHECK_MEM(b1, "01", 2);
    CHECK_MEM(b2, "23", 2);
    CHECK_EQ(looks, 0);
}

/* A successful lpWSPAsyncSelect leaves the thread's last error (WSAGetLastError) alone. */
TEST(netev_async_select_leaves_the_last_error_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    WSASetLastError(12345);
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_CLOSE, &err), 0);
    CHECK_EQ(WSAGetLastError(), 12345);
}

/* A registration that finds the peer's FIN reports FD_CLOSE itself and leaves nothing for the
 * reactor: the read side is done, so the watch does not wait on it (the relay counted below
 * is another socket's FD_READ, and the only one). */
TEST(netev_registration_after_the_fin_costs_the_reactor_no_relay) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPShutdown(ac, SD_SEND, &err), 0);
    struct sockaddr_storage here = local_address(as), there = local_address(ac);
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == TCP_CLOSE_WAIT, 10000);
    unsigned before = wsp_netevents_relays();
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_READ | FD_CLOSE, &err), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == as);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, 0));
    ne_send_str(bc, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* A socket registered on a built-in event whose upcall table the application then replaces
 * (a second WSPStartup with its own WPUSetEvent): the next re-arm moves the socket to the
 * reactor, armed for what the registration asks, and data raises FD_READ through the
 * application's upcall. */
TEST(netev_registration_outlives_a_replaced_upcall_table) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = count_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    char b[4];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), -WSAEWOULDBLOCK); /* re-arms the watch */
    int sets = atomic_load(&app_sets);
    ne_send_str(c, "x");
    WAIT_FOR(atomic_load(&app_sets) > sets, 10000);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ);
    (void)ev;
}

/* As above, with no memory for the reactor's watch when the re-arm moves the socket: the
 * socket is left unwatched (the recv still reports WSAEWOULDBLOCK), and, as any registered
 * socket whose watch could not start, gets its watch from its next recv, which raises FD_READ
 * for the data it leaves through the application's upcall. */
TEST(netev_registration_whose_move_to_the_reactor_finds_no_memory_is_watched_from_the_next_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = count_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    char b[4];
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), -WSAEWOULDBLOCK); /* re-arms: the watch moves */
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    int sets = atomic_load(&app_sets);
    ne_send_str(c, "xy");
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    CHECK_EQ(ne_recv(s, b, 1, 0), 1);
    WAIT_FOR(atomic_load(&app_sets) > sets, 10000);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ);
    (void)ev;
}

/* A connection reset ends the watch: once FD_CLOSE is posted, the reset socket costs the
 * reactor nothing (the relay counted below is another socket's FD_READ, and the only one). */
TEST(netev_reset_socket_costs_the_reactor_no_more_relays) {
    start();
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    SOCKET ac, as, al, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &ac, &as, &al);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPAsyncSelect(as, q, NE_MSG, FD_READ | FD_CLOSE, &err), 0);
    struct linger lg = {1, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(ac, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(ac);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == as);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_CLOSE, WSAECONNABORTED));
    unsigned before = wsp_netevents_relays();
    ne_send_str(bc, "x");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(wsp_netevents_relays() - before, 1);
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
}

/* A registration looks again at SO_OOBINLINE: after urgent data was read inline (FD_READ),
 * the application turns it off and selects FD_OOB alone; the reactor's watch must then wait
 * for urgent data, which is FD_OOB now. */
TEST(netev_oob_registration_sees_oobinline_turned_off) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    HWND q = WSPCreateMessageQueue();
    WSPMSG m;
    int err = 0;
    char b;
    set_dword(s, SOL_SOCKET, SO_OOBINLINE, 1);
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_READ | FD_OOB, &err), 0);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK_EQ(b, '!');
    set_dword(s, SOL_SOCKET, SO_OOBINLINE, 0);
    CHECK_EQ(T.lpWSPAsyncSelect(s, q, NE_MSG, FD_OOB, &err), 0);
    CHECK_EQ(ne_send(c, "?", 1, MSG_OOB, NULL), 0);
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == s);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_OOB, 0));
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK_EQ(b, '?');
}

/* SO_OOBINLINE turned on after the registration: urgent data is read inline, so it is FD_READ
 * and not FD_OOB (the choice is made when the urgent data arrives). */
TEST(netev_oobinline_turned_on_after_registration_makes_urgent_data_read) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    set_dword(s, SOL_SOCKET, SO_OOBINLINE, 1);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    CHECK(!ne_wait_bit(s, ev, FD_OOB, 200, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK_EQ(b, '!');
}

/* The peer's FIN after data whose FD_READ is recorded but not yet answered by a recv is
 * FD_CLOSE alone: the edge it comes with (EPOLLIN with EPOLLRDHUP) brings no new data, so
 * FD_READ is not raised again for the same byte. */
TEST(netev_fin_after_unread_data_is_close_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_CLOSE);
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
    CHECK_EQ(b, 'x');
}

/* As above for urgent data: the edge that brings it (EPOLLPRI with EPOLLIN) is FD_OOB; the
 * data whose FD_READ waits for its recv does not raise FD_READ again. */
TEST(netev_urgent_after_unread_data_is_oob_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_OOB);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    CHECK(ne_wait_bit(s, ev, FD_OOB, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_OOB);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, MSG_OOB), 1);
    CHECK_EQ(b, '!');
}

/* As above for room to send: a send blocked, then data came (FD_READ, not yet answered by a
 * recv); the edge that brings room (EPOLLOUT, with EPOLLIN for the unread byte) is FD_WRITE
 * alone. */
TEST(netev_room_after_unread_data_is_write_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_RCVBUF, 4096);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_fill_until_blocked(c);
    ne_send_str(s, "x");
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ); /* no room yet: s has read nothing */
    ne_fionbio(s, 1);
    LONG seen = ne_drain_until_write(s, c, ev);
    CHECK_EQ(seen, FD_WRITE);
    char b;
    CHECK_EQ(ne_recv(c, &b, 1, 0), 1);
    CHECK_EQ(b, 'x');
}

/* After the peer's FIN nothing new can arrive: an edge that comes with EPOLLIN then (here the
 * room a blocked send waited for) is not examined for new data, and the one look at the
 * unread count is the one that finds the byte FD_READ was raised for still there (no FD_READ
 * again: it was not re-enabled). Pins that cost (one FIONREAD), counted through the
 * provider's ioctl; a fault makes the send find the buffer full. */
TEST(netev_room_after_the_fin_looks_at_the_unread_count_once) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE | FD_CLOSE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_send_str(c, "x");
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    CHECK(ne_wait_bit(s, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_CLOSE);
    FAULT(send, .nth = 1, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(ne_send(s, "y", 1, 0, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne));
    int calls = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(ne.lNetworkEvents, FD_WRITE);
    CHECK_EQ(calls, 1);
    char b[4];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'x');
}

/* As above with the room coming at once (a fault made the send find the buffer full): the
 * watch, re-armed for room and then again without it, reports the unread byte each time, and
 * FD_READ, raised for it and not yet answered by a recv, is not raised again for it. */
TEST(netev_room_at_once_after_unread_data_is_write_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_send_str(c, "x");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    FAULT(send, .nth = 1, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(ne_send(s, "y", 1, 0, NULL), WSAEWOULDBLOCK);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_WRITE);
    /* The re-arm without EPOLLOUT that followed FD_WRITE reported the byte again: looked at
     * now, it is no news. */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    char b[4];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'x');
}

/* As above with the highest event of the record alone (FD_CLOSE): the entries below its bit
 * are as untouched as those above. */
TEST(netev_enum_of_close_alone_writes_only_its_code) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_CLOSE);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    CHECK(ne_signalled(ev, 10000));
    WSANETWORKEVENTS ne;
    memset(&ne, 0x5a, sizeof ne);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_CLOSE);
    for (int i = 0; i < FD_MAX_EVENTS; i++)
        CHECK_EQ(ne.iErrorCode[i], i == FD_CLOSE_BIT ? 0 : 0x5a5a5a5a);
}

/* ---- lpWSPSelect's waiters on a socket ------------------------------------------------------ */

/* Two selects wait on one socket and the later one (first in the socket's list of waiters)
 * ends first: the list is left holding the earlier one alone, first and last, and once that
 * one ends too, nothing. A link left behind names a returned call's stack frame, which the
 * socket's next wake-up (an arrival, a close) would write through. */
struct netev_selector {
    SOCKET s;
    int rc;
    struct blocker blocker;
};

static void *netev_select_read_main(void *arg) {
    struct netev_selector *a = arg;
    WSPFD_SET r;
    WSP_FD_ZERO(&r);
    WSP_FD_SET(a->s, &r);
    struct timeval tv = {60, 0};
    int err = 0;
    blocker_enter(&a->blocker);
    a->rc = T.lpWSPSelect(0, &r, NULL, NULL, &tv, &err);
    blocker_leave(&a->blocker);
    return NULL;
}

/* How many selects wait on s (0 to 2); each link checked against its neighbours. */
static int netev_select_waiters(SOCKET s) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    pthread_mutex_lock(&so->lock);
    const struct wsp_select_link *first = so->netev.waiters;
    int n = 0, linked = 1;
    for (const struct wsp_select_link *l = first; l && n < 3; l = l->next, n++)
        linked &= l->prev ? l->prev->next == l : l == first;
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    CHECK(linked);
    return n;
}

TEST(netev_select_ending_before_an_earlier_one_on_its_socket_leaves_that_one_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct netev_selector a = {.s = s};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, netev_select_read_main, &a), 0);
    wait_blocked(&a.blocker); /* waiting for s to turn readable */
    CHECK_EQ(netev_select_waiters(s), 1);
    WSPFD_SET w;
    WSP_FD_ZERO(&w);
    WSP_FD_SET(s, &w);
    struct timeval now = {0, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSelect(0, NULL, &w, NULL, &now, &err), 1); /* writable: ends at once */
    CHECK_EQ(netev_select_waiters(s), 1);
    ne_send_str(c, "x");
    pthread_join(t, NULL);
    CHECK_EQ(a.rc, 1);
    CHECK_EQ(netev_select_waiters(s), 0);
}

/* A link taken off the list can be enlisted again (netevents.h: the caller sets only its
 * wake_fd): enlisting starts it afresh, so what it pointed at while it was linked before is
 * forgotten. Here b was enlisted behind a and taken off while a stayed: enlisted again it is
 * first, and taking it off again leaves a alone in the list. */
TEST(netev_waiter_link_enlisted_again_starts_afresh) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct wsp_select_link a = {.wake_fd = -1}, b = {.wake_fd = -1};
    pthread_mutex_lock(&so->lock);
    wsp_netevents_add_waiter(so, &b);
    wsp_netevents_add_waiter(so, &a); /* the list: a, b */
    wsp_netevents_remove_waiter(so, &b); /* the list: a */
    wsp_netevents_add_waiter(so, &b);    /* the list: b, a */
    int b_first = so->netev.waiters == &b && b.next == &a && a.prev == &b;
    wsp_netevents_remove_waiter(so, &b); /* the list: a */
    int a_alone = so->netev.waiters == &a && a.prev == NULL && a.next == NULL;
    wsp_netevents_remove_waiter(so, &a);
    int empty = so->netev.waiters == NULL;
    pthread_mutex_unlock(&so->lock);
    wsp_socket_release(so);
    CHECK(b_first);
    CHECK(a_alone);
    CHECK(empty);
}
