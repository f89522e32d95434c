/* Held requests (CF_HOLD): the extension functions WSPAcceptHold and WSPHeld*, on both
 * protocols; withdrawals, the limit, the deadline, the listener closing, and many answers from
 * several threads racing withdrawals. */
#include <dirent.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backlog.h"
#include "faults.h"
#include "internal.h"
#include "support.h"

static LPFN_WSPACCEPTHOLD AcceptHold;
static LPFN_WSPHELDACCEPT HeldAccept;
static LPFN_WSPHELDREJECT HeldReject;
static LPFN_WSPHELDRELEASE HeldRelease;
static LPFN_WSPHELDNEWS HeldNews;

/* The extension function with that GUID, asked of socket s; NULL and *err when refused. */
static void *extension(SOCKET s, GUID id, int *err) {
    void *fn = NULL;
    DWORD returned = 0;
    *err = 0;
    if (T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &fn, sizeof fn,
                     &returned, NULL, NULL, NULL, err) != 0)
        return NULL;
    CHECK_EQ(returned, sizeof fn);
    return fn;
}

/* start(), and the extension functions asked of a fresh socket. */
static void start_held(void) {
    start();
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    AcceptHold = (LPFN_WSPACCEPTHOLD)extension(s, (GUID)WSPID_ACCEPTHOLD, &err);
    HeldAccept = (LPFN_WSPHELDACCEPT)extension(s, (GUID)WSPID_HELDACCEPT, &err);
    HeldReject = (LPFN_WSPHELDREJECT)extension(s, (GUID)WSPID_HELDREJECT, &err);
    HeldRelease = (LPFN_WSPHELDRELEASE)extension(s, (GUID)WSPID_HELDRELEASE, &err);
    HeldNews = (LPFN_WSPHELDNEWS)extension(s, (GUID)WSPID_HELDNEWS, &err);
    CHECK(AcceptHold && HeldAccept && HeldReject && HeldRelease && HeldNews);
    close_socket(s);
}

static int hold_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                    DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_HOLD;
}

/* Holds, and copies the caller data (a decimal number) to *(int *)ctx. */
static int hold_numbered(LPWSABUF a, LPWSABUF data, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                         GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)c, (void)d, (void)e, (void)f, (void)g;
    char buf[16] = {0};
    CHECK(data && data->len < sizeof buf);
    memcpy(buf, data->buf, data->len);
    *(int *)ctx = atoi(buf);
    return CF_HOLD;
}

/* WSPAcceptHold expecting a hold; returns the handle. */
static WSPHELD hold_next(SOCKET l, LPCONDITIONPROC cond, DWORD_PTR ctx) {
    SOCKET a = 0;
    WSPHELD h = 0;
    int err = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, cond, ctx, &a, &h, &err), 0);
    CHECK(a == INVALID_SOCKET);
    CHECK(h != 0);
    return h;
}

/* 0, or the WSA code of a call that returned SOCKET_ERROR (no other result is allowed). */
static int result_of(int rc, int err) {
    if (rc == 0)
        return 0;
    CHECK_EQ(rc, SOCKET_ERROR);
    CHECK(err != 0);
    return err;
}

static int held_accept(WSPHELD h, const char *callee, SOCKET *out) {
    WSABUF cd = {callee ? (uint32_t)strlen(callee) : 0, (char *)callee};
    int err = 0;
    int rc = HeldAccept(h, callee ? &cd : NULL, NULL, out, &err);
    return result_of(rc, err);
}

static int held_reject(WSPHELD h, DWORD reason) {
    int err = 0;
    int rc = HeldReject(h, reason, &err);
    return result_of(rc, err);
}

static DWORD refuse_reason(SOCKET s) {
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_WSP, WSP_REFUSE_REASON, (char *)&v, &len, &err), 0);
    return v;
}

/* A connect-data client on its own thread, with caller data and a callee buffer. */
struct cd_client {
    struct async_connect c;
    WSABUF caller, callee;
    char out[16], in[64];
};

static void cd_client_start(struct cd_client *k, const struct sockaddr_storage *addr,
                            const char *data) {
    memset(k, 0, sizeof *k);
    snprintf(k->out, sizeof k->out, "%s", data);
    k->caller = (WSABUF){(uint32_t)strlen(k->out), k->out};
    k->callee = (WSABUF){sizeof k->in, k->in};
    k->c.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    k->c.addr = *addr;
    k->c.caller = &k->caller;
    k->c.callee = &k->callee;
    async_connect_start(&k->c);
}

/* A connect-data connect started without blocking; close the socket to withdraw. */
static SOCKET cd_client_nonblocking(const struct sockaddr_storage *addr) {
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_nonblocking(s, 1);
    CHECK_EQ(connect_full(s, addr, NULL, NULL, NULL), WSAEWOULDBLOCK);
    return s;
}

/* ---- the extension functions are where Winsock puts them -------------------------------- */

TEST(held_extension_functions_by_guid) {
    start_held();
    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV6);
    int err = 0;
    CHECK(extension(s, (GUID)WSPID_HELDNEWS, &err) == (void *)HeldNews);
    GUID unknown = WSPID_HELDNEWS;
    unknown.Data1 ^= 1;
    CHECK(extension(s, unknown, &err) == NULL);
    CHECK_EQ(err, WSAEINVAL);
    /* Too short an input, and no room for the pointer. */
    void *fn = NULL;
    DWORD ret = 0;
    GUID id = WSPID_ACCEPTHOLD;
    CHECK_EQ(T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id - 1, &fn,
                          sizeof fn, &ret, NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(T.lpWSPIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &fn, 4, &ret,
                          NULL, NULL, NULL, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    close_socket(s);
}

TEST(held_options_defaults_and_bounds) {
    start_held();
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, NULL);
    DWORD v = 0;
    int len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HOLD_LIMIT, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_DEFAULT_HOLD_LIMIT);
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HOLD_DEADLINE, (char *)&v, &len, &err), 0);
    CHECK_EQ(v, WSP_DEFAULT_HOLD_DEADLINE_MS);
    v = WSP_MAX_HOLD_LIMIT + 1;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HOLD_LIMIT, (char *)&v, sizeof v, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(stats_of(l).hold_limit, WSP_DEFAULT_HOLD_LIMIT);
    /* An event that is not one. */
    WSAEVENT bogus = (WSAEVENT)(uintptr_t)12345;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&bogus, sizeof bogus, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSA_INVALID_HANDLE);
    /* A length too short for an event handle, whatever the bytes. */
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&bogus, sizeof bogus - 1,
                               &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    /* Bad handles and arguments. */
    SOCKET a;
    CHECK_EQ(held_accept(0, NULL, &a), WSA_INVALID_HANDLE);
    CHECK_EQ(held_accept((WSPHELD)0x4000123, NULL, &a), WSA_INVALID_HANDLE);
    CHECK_EQ(held_reject(l, 0), WSA_INVALID_HANDLE); /* a socket is not a held request */
    WSPHELD h;
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, NULL, &h, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    DWORD n = 1;
    CHECK_EQ(HeldNews(l, NULL, 1, &n, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(HeldNews(l, &h, 1, &n, &err), 0);
    CHECK_EQ(n, 0);
    SOCKET c = new_socket(WSP_CATALOG_CDATA_IPV4);
    CHECK_EQ(HeldNews(c, &h, 1, &n, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL); /* not a listener */
    /* No room asked for: nothing to write, so no buffer needed; no count: WSAEFAULT. */
    n = 7;
    CHECK_EQ(HeldNews(l, NULL, 0, &n, &err), 0);
    CHECK_EQ(n, 0);
    err = 0;
    CHECK_EQ(HeldNews(l, &h, 1, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, &a, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    err = 0;
    CHECK_EQ(HeldRelease(0, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSA_INVALID_HANDLE);
    /* A handle that names no socket (any more). */
    close_socket(c);
    err = 0;
    CHECK_EQ(HeldNews(c, &h, 1, &n, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    err = 0;
    a = 0;
    h = 1;
    CHECK_EQ(AcceptHold(c, NULL, NULL, hold_all, 0, &a, &h, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK(a == INVALID_SOCKET);
    CHECK(h == 0);
}

/* ---- holding and answering ----------------------------------------------------------------- */

TEST(held_request_leaves_the_queue_and_is_accepted_later) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    struct cd_client first, second;
    cd_client_start(&first, &addr, "first");
    struct sockaddr_storage peer;
    int peer_len = sizeof peer, err = 0;
    SOCKET a = 0;
    WSPHELD h = 0;
    CHECK_EQ(AcceptHold(l, (struct sockaddr *)&peer, &peer_len, hold_all, 0, &a, &h, &err), 0);
    CHECK(a == INVALID_SOCKET && h != 0);
    CHECK_EQ(peer_len, sizeof(struct sockaddr_in));
    struct sockaddr_storage mine = local_address(first.c.s);
    CHECK_EQ(port_of(&peer), port_of(&mine));
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.held, 1);
    CHECK_EQ(st.holding, 1);
    CHECK_EQ(st.queued, 0);
    /* The next accept presents the next request. */
    cd_client_start(&second, &addr, "second");
    SOCKET b = accept_with(l, NULL, 0, &err);
    CHECK(b != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&second.c), 0);
    CHECK_EQ(__atomic_load_n(&first.c.result, __ATOMIC_SEQ_CST), -1); /* still waiting */
    CHECK_EQ(held_accept(h, "later", &a), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&first.c), 0);
    CHECK_EQ(first.callee.len, 5);
    CHECK_MEM(first.in, "later", 5);
    /* Exactly one answer. */
    SOCKET again;
    CHECK_EQ(held_accept(h, NULL, &again), WSA_INVALID_HANDLE);
    CHECK_EQ(held_reject(h, 0), WSA_INVALID_HANDLE);
    int rerr = 0;
    CHECK_EQ(HeldRelease(h, &rerr), SOCKET_ERROR);
    CHECK_EQ(rerr, WSA_INVALID_HANDLE);
    /* The accepted socket works: the client's first bytes arrive. */
    send_all(first.c.s, "ping", 4);
    char buf[4];
    recv_exact(a, buf, 4);
    CHECK_MEM(buf, "ping", 4);
    st = stats_of(l);
    CHECK_EQ(st.accepted, 2);
    CHECK_EQ(st.holding, 0);
}

TEST(held_client_keeps_waiting_on_pending_notices) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 50);
    struct cd_client k;
    memset(&k, 0, sizeof k);
    k.c.s = new_socket(WSP_CATALOG_CDATA_IPV4);
    set_dword(k.c.s, SOL_WSP, WSP_CONNECT_TIMEOUT, 1000); /* notices renew it */
    k.c.addr = addr;
    async_connect_start(&k.c);
    WSPHELD h = hold_next(l, hold_all, 0);
    /* Time passing is what is tested: three connect time-outs without an answer. */
    long long until = now_ms() + 3000;
    WAIT_FOR(now_ms() >= until, 10000);
    CHECK_EQ(__atomic_load_n(&k.c.result, __ATOMIC_SEQ_CST), -1);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    CHECK_EQ(async_connect_join(&k.c), 0);
}

TEST(held_request_rejected_with_a_reason) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(held_reject(h, 99), WSAEINVAL); /* not a reason: still held */
    CHECK_EQ(held_reject(h, WSP_REASON_HOLD_TIMEOUT + 1), WSAEINVAL);
    CHECK_EQ(stats_of(l).holding, 1);
    CHECK_EQ(held_reject(h, WSP_REASON_HOLD_TIMEOUT), 0); /* the last reason there is */
    CHECK_EQ(async_connect_join(&k.c), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(k.c.s), WSP_REASON_HOLD_TIMEOUT);
    CHECK_EQ(held_reject(h, 0), WSA_INVALID_HANDLE);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.rejected, 1);
    CHECK_EQ(st.holding, 0);
}

TEST(held_accept_checks_callee_data_like_a_condition_function) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_MAX_CALLEE_DATA, 4);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    WSPHELD h = hold_next(l, hold_all, 0);
    SOCKET a;
    /* More than the listener's own limit: the application's mistake, still held. */
    CHECK_EQ(held_accept(h, "toolong", &a), WSAEFAULT);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(stats_of(l).holding, 1);
    CHECK_EQ(held_accept(h, "ok", &a), 0);
    CHECK_EQ(async_connect_join(&k.c), 0);
    CHECK_EQ(k.callee.len, 2);
    CHECK_MEM(k.in, "ok", 2);
}

/* A released connect-data request is watched again: its client leaving frees its place at
 * once (counted as withdrawn), before any accept looks. The pending notices, whose failure
 * would tell as well, are put off past the test. */
TEST(released_request_whose_client_leaves_is_withdrawn_unlooked_at) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    int fd = raw_connect(&addr);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    close(fd);
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    CHECK_EQ(stats_of(l).queued, 0);
    close_socket(l);
}

TEST(released_request_is_presented_again_in_its_place) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client first, second;
    cd_client_start(&first, &addr, "1");
    int n1 = 0, n2 = 0;
    WSPHELD h = hold_next(l, hold_numbered, (DWORD_PTR)&n1);
    CHECK_EQ(n1, 1);
    cd_client_start(&second, &addr, "2");
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 2);
    /* The first arrived first: it is presented first again. */
    WSPHELD h1 = hold_next(l, hold_numbered, (DWORD_PTR)&n1);
    WSPHELD h2 = hold_next(l, hold_numbered, (DWORD_PTR)&n2);
    CHECK_EQ(n1, 1);
    CHECK_EQ(n2, 2);
    CHECK(h1 != h && h2 != h);
    SOCKET a;
    CHECK_EQ(held_accept(h2, "b", &a), 0);
    CHECK_EQ(held_accept(h1, "a", &a), 0);
    CHECK_EQ(async_connect_join(&first.c), 0);
    CHECK_EQ(async_connect_join(&second.c), 0);
    CHECK_MEM(first.in, "a", 1);
    CHECK_MEM(second.in, "b", 1);
    CHECK_EQ(stats_of(l).held, 3);
}

TEST(plain_lpWSPAccept_takes_CF_HOLD_as_an_invalid_answer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    int err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, hold_all, 0, &err);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(stats_of(l).holding, 0);
    a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&k.c), 0);
}

/* ---- plain TCP ----------------------------------------------------------------------------- */

TEST(plain_held_connection_is_handed_out_or_reset) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int kept = raw_connect(&addr), refused = raw_connect(&addr);
    WSPHELD hk = hold_next(l, hold_all, 0);
    WSPHELD hr = hold_next(l, hold_all, 0);
    CHECK_EQ(stats_of(l).holding, 2);
    /* The client's first bytes wait for the answer; a held connection is not handed out. */
    CHECK_EQ(send(kept, "hi", 2, 0), 2);
    CHECK_EQ(held_reject(hr, 0), 0);
    char buf[8];
    CHECK_EQ(raw_recv(refused, buf, sizeof buf, 10000), -ECONNRESET);
    SOCKET a;
    CHECK_EQ(held_accept(hk, "ignored on plain TCP", &a), WSAEFAULT); /* no callee data here */
    CHECK_EQ(held_accept(hk, NULL, &a), 0);
    recv_exact(a, buf, 2);
    CHECK_MEM(buf, "hi", 2);
    close(kept);
    close(refused);
}

/* A held plain TCP client that sent bytes and half-closed still waits for its answer; the
 * reactor, told of the half-close once, stops watching for input, which would be reported
 * for as long as the bytes wait (a spinning reactor). */
TEST(plain_held_client_that_sent_and_half_closed_is_looked_at_once) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(send(fd, "hi", 2, 0), 2);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    WAIT_FOR(wsp_listener_held_checks(so) >= 1, 10000);
    /* One more trip of the reactor: it admits another client. */
    int other = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(wsp_listener_held_checks(so), 1);
    CHECK_EQ(stats_of(l).withdrawn, 0);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    char buf[2];
    recv_exact(a, buf, 2);
    CHECK_MEM(buf, "hi", 2);
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close(other);
    close_socket(l);
}

TEST(plain_withdrawal_while_held_is_news) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    close(fd);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSPHELD news[4];
    DWORD n = 0;
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == h);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    CHECK_EQ(held_accept(h, NULL, &a), WSA_INVALID_HANDLE);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    WSACloseEvent(ev);
}

/* An application's own WPUSetEvent that calls the provider back on the listener: it reads the
 * news of the held request that ended. */
static SOCKET reentry_listener;
static int reentry_news = -1;
static BOOL news_reading_set_event(WSAEVENT ev, LPINT err) {
    (void)ev;
    WSPHELD news[4];
    DWORD n = 0;
    int e = 0;
    CHECK_EQ(HeldNews(reentry_listener, news, 4, &n, &e), 0);
    __atomic_store_n(&reentry_news, (int)n, __ATOMIC_SEQ_CST);
    *err = 0;
    return TRUE;
}

/* When the reactor finds a held client gone, it sets the held event with no lock of the
 * listener's held: an application's WPUSetEvent may call the provider on the listener (here
 * WSPHeldNews) rather than deadlock on it. */
TEST(held_event_set_by_the_reactor_may_call_back_into_the_listener) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = news_reading_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    AcceptHold = (LPFN_WSPACCEPTHOLD)extension(s, (GUID)WSPID_ACCEPTHOLD, &err);
    HeldNews = (LPFN_WSPHELDNEWS)extension(s, (GUID)WSPID_HELDNEWS, &err);
    HeldAccept = (LPFN_WSPHELDACCEPT)extension(s, (GUID)WSPID_HELDACCEPT, &err);
    CHECK(AcceptHold && HeldNews && HeldAccept);
    close_socket(s);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    reentry_listener = l;
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    close(fd); /* the reactor finds it gone */
    WAIT_FOR(__atomic_load_n(&reentry_news, __ATOMIC_SEQ_CST) == 1, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    close_socket(l);
}

/* Closes the raw client (ctx) while the condition function runs, waits until the server's end
 * has its FIN, then holds. */
struct leaver {
    int fd;
    int server_port, client_port;
};

static int leave_then_hold(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                           GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct leaver *k = (struct leaver *)ctx;
    close(k->fd);
    WAIT_FOR(tcp_state(k->server_port, k->client_port) == TCP_CLOSE_WAIT, 5000);
    return CF_HOLD;
}

/* A client that left while the condition function ran is not held, whatever the reactor knows
 * of it: the hold asks the kernel. (Held once and released, the request is still registered
 * with the reactor, which no longer reports it.) */
TEST(plain_client_leaving_during_the_condition_function_is_not_held) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    struct leaver k = {.fd = raw_connect(&addr), .server_port = port_of(&addr)};
    struct sockaddr_storage me;
    socklen_t mlen = sizeof me;
    CHECK_EQ(getsockname(k.fd, (struct sockaddr *)&me, &mlen), 0);
    k.client_port = port_of(&me);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    SOCKET a = 0;
    WSPHELD again = 0;
    err = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, leave_then_hold, (DWORD_PTR)&k, &a, &again, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAEWOULDBLOCK); /* dropped, and nothing else waits */
    CHECK(again == 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.holding, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.held, 1); /* the first hold only */
}

/* A held client that sends a byte after its request broke the protocol: it is refused as
 * malformed (and told so), not counted as having left, and its answer fails. */
TEST(cdata_bytes_sent_while_held_end_the_request_as_malformed) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    const uint8_t request[] = {0x57, 0x53, 3, 1, 0, 0, 0, 0}; /* version 3: reads reasons */
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    WAIT_FOR(stats_of(l).holding == 0, 10000);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.malformed, 1);
    CHECK_EQ(st.withdrawn, 0);
    uint8_t b[8];
    size_t have = 0;
    while (have < sizeof b) {
        int n = raw_recv(fd, b + have, sizeof b - have, 10000);
        CHECK(n > 0);
        have += (size_t)n;
    }
    const uint8_t refuse[] = {0x57, 0x53, 3, 3, 0, WSP_REASON_MALFORMED, 0, 0};
    CHECK_MEM(b, refuse, sizeof refuse);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    close(fd);
}

/* ---- news: withdrawals, the deadline, the limit, the listener closing ---------------------- */

TEST(cdata_withdrawal_while_held_is_news_and_the_answer_fails) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    WSAEVENT got = NULL;
    int len = sizeof got;
    CHECK_EQ(T.lpWSPGetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&got, &len, &err), 0);
    CHECK(got == ev);
    SOCKET c1 = cd_client_nonblocking(&addr), c2 = cd_client_nonblocking(&addr);
    WSPHELD h1 = hold_next(l, hold_all, 0), h2 = hold_next(l, hold_all, 0);
    close_socket(c2);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSPHELD news[4];
    DWORD n = 0;
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == h1 || news[0] == h2);
    WSPHELD gone = news[0], still = gone == h1 ? h2 : h1;
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 0); /* listed once */
    /* The ending's code, whatever the answer (a reason that is not one included). */
    CHECK_EQ(held_reject(gone, 99), WSAECONNRESET);
    CHECK_EQ(held_reject(gone, 0), WSA_INVALID_HANDLE);
    SOCKET a;
    CHECK_EQ(held_accept(still, NULL, &a), 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.rejected, 0);
    close_socket(c1);
    WSACloseEvent(ev);
}

/* An address buffer without a length is left alone, as lpWSPAccept does (Windows). */
TEST(hold_with_an_address_buffer_and_no_length_leaves_the_buffer_alone) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    struct sockaddr_storage out;
    memset(&out, 0x5a, sizeof out);
    SOCKET a = 0;
    WSPHELD h = 0;
    int err = 0;
    CHECK_EQ(AcceptHold(l, (struct sockaddr *)&out, NULL, hold_all, 0, &a, &h, &err), 0);
    CHECK(h != 0);
    for (size_t i = 0; i < sizeof out; i++)
        CHECK_EQ(((unsigned char *)&out)[i], 0x5a);
    SOCKET s;
    CHECK_EQ(held_accept(h, NULL, &s), 0);
    CHECK_EQ(async_connect_join(&k.c), 0);
    close_socket(s);
    close_socket(k.c.s);
    close_socket(l);
}

TEST(hold_deadline_refuses_and_tells_the_application) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 50);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(async_connect_join(&k.c), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(k.c.s), WSP_REASON_HOLD_TIMEOUT);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAETIMEDOUT);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.hold_timed_out, 1);
    CHECK_EQ(st.holding, 0);
    WSACloseEvent(ev);
}

static void plain_hold_deadline_resets_with(int nonblocking) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    if (nonblocking)
        set_nonblocking(l, 1);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 50);
    int fd = raw_connect(&addr);
    if (nonblocking)
        WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    char buf[4];
    CHECK_EQ(raw_recv(fd, buf, sizeof buf, 10000), -ECONNRESET);
    CHECK_EQ(held_reject(h, 0), WSAETIMEDOUT);
    CHECK_EQ(stats_of(l).hold_timed_out, 1);
    close(fd);
}

TEST(plain_hold_deadline_resets) { plain_hold_deadline_resets_with(0); }

/* A hold deadline ends its request though an earlier held request has none: the timer looks
 * at every held request, not only the first. */
TEST(plain_hold_deadline_behind_a_request_held_without_one_resets) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    int first = raw_connect(&addr);
    WSPHELD h1 = hold_next(l, hold_all, 0);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 50);
    int second = raw_connect(&addr);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    char buf[4];
    CHECK_EQ(raw_recv(second, buf, sizeof buf, 10000), -ECONNRESET);
    CHECK_EQ(held_reject(h2, 0), WSAETIMEDOUT);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.hold_timed_out, 1);
    CHECK_EQ(st.holding, 1); /* the first, which has no deadline */
    CHECK_EQ(held_reject(h1, 0), 0);
    close(first);
    close(second);
    close_socket(l);
}

/* The hold deadline is armed by the hold itself: on a non-blocking plain-TCP listener no other
 * timer (no pending notices, no direct linger) comes round to arm it later, and the held
 * client is still reset when the deadline passes. */
TEST(plain_hold_deadline_of_a_non_blocking_listener_resets) { plain_hold_deadline_resets_with(1); }

/* A held client of version 1 (one that reads reasons 1 to 3 only) is told "closing"
 * when the listener closes: that reason is one it can read, so it gets the REFUSE, then the
 * end of the stream, not a reset. */
TEST(held_version_1_client_is_told_closing) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1's layout */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), sizeof request);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    hold_next(l, hold_all, 0);
    close_socket(l);
    uint8_t b[8];
    int end = raw_recv_frame_then_end(fd, b);
    CHECK_EQ(b[3], WSP_HS_REFUSE);
    CHECK_EQ(b[5], WSP_REASON_CLOSING);
    CHECK_EQ(end, 0);
    close(fd);
}

TEST(hold_limit_leaves_the_request_first_in_line) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_LIMIT, 2);
    struct cd_client k[3];
    int n[3] = {0};
    WSPHELD h[3];
    for (int i = 0; i < 3; i++) {
        char d[2] = {(char)('0' + i), 0};
        cd_client_start(&k[i], &addr, d);
        WAIT_FOR(stats_of(l).queued == 1, 10000); /* in this order */
        if (i < 2)
            h[i] = hold_next(l, hold_numbered, (DWORD_PTR)&n[i]);
    }
    SOCKET a = 0;
    WSPHELD none = 0;
    int err = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_numbered, (DWORD_PTR)&n[2], &a, &none, &err),
             SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(n[2], 2);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.hold_refused, 1);
    CHECK_EQ(st.holding, 2);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.deferred, 0);
    CHECK_EQ(held_reject(h[0], 0), 0);
    h[2] = hold_next(l, hold_numbered, (DWORD_PTR)&n[2]);
    CHECK_EQ(held_accept(h[1], NULL, &a), 0);
    CHECK_EQ(held_accept(h[2], NULL, &a), 0);
    CHECK_EQ(async_connect_join(&k[0].c), WSAECONNREFUSED);
    CHECK_EQ(async_connect_join(&k[1].c), 0);
    CHECK_EQ(async_connect_join(&k[2].c), 0);
}

TEST(hold_limit_then_FD_ACCEPT_once_a_held_request_leaves) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_LIMIT, 1);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    WSANETWORKEVENTS ne;
    SOCKET a;
    WSPHELD none;
    /* The second request is refused a hold and stays; FD_ACCEPT is not raised again for it
     * (as after CF_DEFER) until the held one leaves. */
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, &a, &none, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(stats_of(l).queued, 1);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* resets the event */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(held_reject(h, 0), 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK(ne.lNetworkEvents & FD_ACCEPT);
    WSPHELD h2 = hold_next(l, hold_all, 0); /* an accept call: FD_ACCEPT re-enabled */
    /* That FD_ACCEPT was the refused hold's one: a held request leaving later, with no hold
     * refused since, leaves FD_ACCEPT to the next accept call. */
    int c3 = raw_connect(&addr);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* c3's FD_ACCEPT, reset */
    CHECK(ne.lNetworkEvents & FD_ACCEPT);
    CHECK_EQ(held_reject(h2, 0), 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    close(c1);
    close(c2);
    close(c3);
    WSACloseEvent(ev);
}

TEST(answers_after_the_listener_closed_fail_and_clients_are_refused) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k1, k2;
    cd_client_start(&k1, &addr, "1");
    WSPHELD h1 = hold_next(l, hold_all, 0);
    cd_client_start(&k2, &addr, "2");
    WSPHELD h2 = hold_next(l, hold_all, 0);
    close_socket(l);
    CHECK_EQ(async_connect_join(&k1.c), WSAECONNREFUSED);
    CHECK_EQ(refuse_reason(k1.c.s), WSP_REASON_CLOSING);
    CHECK_EQ(async_connect_join(&k2.c), WSAECONNREFUSED);
    SOCKET a;
    CHECK_EQ(held_accept(h1, "late", &a), WSAEINTR);
    int err = 0;
    CHECK_EQ(HeldRelease(h2, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINTR);
    CHECK_EQ(held_accept(h1, NULL, &a), WSA_INVALID_HANDLE);
}

TEST(last_cleanup_retires_unanswered_handles) {
    int before = open_fds();
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    CHECK_EQ(open_fds(), before + 1); /* only the test's own raw client */
    start();
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSA_INVALID_HANDLE);
    close(fd);
}

/* ---- many at once ----------------------------------------------------------------------------- */

#define MANY 1000
#define ANSWERERS 4

struct many {
    SOCKET l;
    WSPHELD handles[MANY];
    int number[MANY]; /* the client each handle holds */
    int order[MANY];  /* a shuffle of 0..MANY-1 */
    int next;         /* the next index of order to answer (atomic) */
    int outcome[MANY]; /* by client number: 1 accepted, 2 rejected */
    SOCKET accepted[MANY];
};

static void *answer_many(void *arg) {
    struct many *m = arg;
    for (;;) {
        int i = __atomic_fetch_add(&m->next, 1, __ATOMIC_SEQ_CST);
        if (i >= MANY)
            return NULL;
        int k = m->order[i], num = m->number[k];
        char callee[16];
        snprintf(callee, sizeof callee, "n%d", num);
        if (num % 3 == 0) {
            CHECK_EQ(held_reject(m->handles[k], 0), 0);
            m->outcome[num] = 2;
        } else {
            CHECK_EQ(held_accept(m->handles[k], callee, &m->accepted[num]), 0);
            m->outcome[num] = 1;
        }
        SOCKET again;
        CHECK_EQ(held_accept(m->handles[k], NULL, &again), WSA_INVALID_HANDLE);
    }
}

static void *held_test_connect_main(void *arg) {
    struct async_connect *c = arg;
    int rc = connect_full(c->s, &c->addr, c->caller, c->callee, c->sqos);
    __atomic_store_n(&c->result, rc, __ATOMIC_SEQ_CST);
    return NULL;
}

TEST_WITH_TIMEOUT(thousand_held_requests_answered_in_random_order_from_threads, 180) {
    start_held();
    static struct many m;
    static struct cd_client clients[MANY];
    struct sockaddr_storage addr;
    m.l = listener(WSP_CATALOG_CDATA_IPV4, SOMAXCONN, &addr);
    set_dword(m.l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    set_dword(m.l, SOL_WSP, WSP_CONNECT_TIMEOUT, 120000);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < MANY; i++) {
        char d[16];
        snprintf(d, sizeof d, "%d", i);
        struct cd_client *k = &clients[i];
        memset(k, 0, sizeof *k);
        snprintf(k->out, sizeof k->out, "%s", d);
        k->caller = (WSABUF){(uint32_t)strlen(k->out), k->out};
        k->callee = (WSABUF){sizeof k->in, k->in};
        k->c.s = new_socket(WSP_CATALOG_CDATA_IPV4);
        set_dword(k->c.s, SOL_WSP, WSP_CONNECT_TIMEOUT, 120000);
        k->c.addr = addr;
        k->c.caller = &k->caller;
        k->c.callee = &k->callee;
        k->c.result = -1;
        /* async_connect_start with a small stack: a thousand threads */
        CHECK_EQ(pthread_create(&k->c.thread, &attr, held_test_connect_main, &k->c), 0);
        /* Hold as they come, so the backlog never fills. */
        m.handles[i] = hold_next(m.l, hold_numbered, (DWORD_PTR)&m.number[i]);
    }
    WSP_LISTENER_STATS_DATA st = stats_of(m.l);
    CHECK_EQ(st.holding, MANY);
    CHECK_EQ(st.held, MANY);
    srand(15);
    for (int i = 0; i < MANY; i++)
        m.order[i] = i;
    for (int i = MANY - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = m.order[i];
        m.order[i] = m.order[j];
        m.order[j] = t;
    }
    pthread_t t[ANSWERERS];
    for (int i = 0; i < ANSWERERS; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, answer_many, &m), 0);
    for (int i = 0; i < ANSWERERS; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    int accepted = 0, rejected = 0;
    for (int i = 0; i < MANY; i++) {
        int rc = async_connect_join(&clients[i].c);
        if (i % 3 == 0) {
            CHECK_EQ(m.outcome[i], 2);
            CHECK_EQ(rc, WSAECONNREFUSED);
            rejected++;
        } else {
            /* Each client got the answer meant for it. */
            char want[16];
            snprintf(want, sizeof want, "n%d", i);
            CHECK_EQ(m.outcome[i], 1);
            CHECK_EQ(rc, 0);
            CHECK_EQ(clients[i].callee.len, strlen(want));
            CHECK_MEM(clients[i].in, want, strlen(want));
            close_socket(m.accepted[i]);
            accepted++;
        }
        close_socket(clients[i].c.s);
    }
    st = stats_of(m.l);
    CHECK_EQ(st.holding, 0);
    CHECK_EQ(st.accepted, accepted);
    CHECK_EQ(st.rejected, rejected);
}

/* ---- answers racing withdrawals ------------------------------------------------------------- */

#define RACE 200

struct race {
    WSPHELD handles[RACE];
    SOCKET clients[RACE];
    int answer_rc[RACE];
    int next_answer, next_close;
};

static void *race_answer(void *arg) {
    struct race *r = arg;
    for (int i; (i = __atomic_fetch_add(&r->next_answer, 1, __ATOMIC_SEQ_CST)) < RACE;) {
        SOCKET a = INVALID_SOCKET;
        int rc = i % 2 ? held_accept(r->handles[i], "y", &a) : held_reject(r->handles[i], 0);
        CHECK(rc == 0 || rc == WSAECONNRESET);
        r->answer_rc[i] = rc;
        if (a != INVALID_SOCKET)
            close_socket(a);
    }
    return NULL;
}

static void *race_close(void *arg) {
    struct race *r = arg;
    for (int i; (i = __atomic_fetch_add(&r->next_close, 1, __ATOMIC_SEQ_CST)) < RACE;)
        close_socket(r->clients[i]);
    return NULL;
}

TEST_WITH_TIMEOUT(answers_race_withdrawals, 120) {
    start_held();
    static struct race r;
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, SOMAXCONN, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    for (int i = 0; i < RACE; i++) {
        r.clients[i] = cd_client_nonblocking(&addr);
        r.handles[i] = hold_next(l, hold_all, 0);
    }
    pthread_t t[3];
    CHECK_EQ(pthread_create(&t[0], NULL, race_close, &r), 0);
    CHECK_EQ(pthread_create(&t[1], NULL, race_answer, &r), 0);
    CHECK_EQ(pthread_create(&t[2], NULL, race_answer, &r), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    /* Every handle got exactly one answer that counted; the late ones learned of the
     * withdrawal; none is held any more, and none answers again. */
    int failed = 0;
    for (int i = 0; i < RACE; i++) {
        failed += r.answer_rc[i] == WSAECONNRESET;
        SOCKET a;
        CHECK_EQ(held_accept(r.handles[i], NULL, &a), WSA_INVALID_HANDLE);
    }
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.holding, 0);
    CHECK_EQ(st.accepted + st.rejected + (uint64_t)failed, RACE);
    /* A withdrawal noticed after its answer was not news; none noticed before it stays. */
    WSPHELD news[RACE];
    DWORD n = 0;
    CHECK_EQ(HeldNews(l, news, RACE, &n, &err), 0);
    CHECK_EQ(n, 0);
    WSACloseEvent(ev);
}

/* ---- the listener's bookkeeping of held and released requests ---------------------------- */

/* Counts its calls in *(int *)ctx and holds. */
static int count_and_hold(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                          GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    (*(int *)ctx)++;
    return CF_HOLD;
}

static int accept_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                      DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_ACCEPT;
}

/* WSPAcceptHold whose condition function accepts hands out the socket, and holds nothing. */
TEST(accept_hold_answered_with_cf_accept_hands_out_the_socket) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k;
    cd_client_start(&k, &addr, "x");
    SOCKET a = 0;
    WSPHELD h = 1;
    int err = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, accept_all, 0, &a, &h, &err), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(h, 0);
    CHECK_EQ(async_connect_join(&k.c), 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.held, 0);
    send_all(k.c.s, "ok", 2);
    char buf[2];
    recv_exact(a, buf, 2);
    CHECK_MEM(buf, "ok", 2);
    close_socket(a);
    close_socket(k.c.s);
    close_socket(l);
}

/* A held request that came with QoS, accepted with no QoS of the application's: the
 * client's own is agreed to. */
TEST(held_request_with_qos_accepted_without_qos_keeps_the_clients) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    QOS q;
    memset(&q, 0, sizeof q);
    q.SendingFlowspec = (FLOWSPEC){1000, 2000, 3000, 40, 50, SERVICETYPE_GUARANTEED, 1500, 64};
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr, .sqos = &q};
    async_connect_start(&c);
    WSPHELD h = hold_next(l, hold_all, 0);
    SOCKET a = INVALID_SOCKET;
    int err = 0;
    CHECK_EQ(HeldAccept(h, NULL, NULL, &a, &err), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    CHECK_EQ(q.SendingFlowspec.TokenRate, 1000);
    CHECK_EQ(q.SendingFlowspec.PeakBandwidth, 3000);
    close_socket(a);
    close_socket(c.s);
    close_socket(l);
}

/* A handle issued but not yet holding a request (its WSPAcceptHold is still asking the
 * condition function) answers nothing. The function itself tries it: the held table gives
 * out slots in order, so the handle after one still held is the next one's. */
static WSPHELD first_held;
static int answer_own_handle(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                             GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    SOCKET s = 0;
    int err = 0;
    *(int *)ctx = HeldAccept(first_held + 1, NULL, NULL, &s, &err) == 0 ? 0 : err;
    CHECK(s == INVALID_SOCKET);
    return CF_HOLD;
}

TEST(handle_not_yet_holding_a_request_is_invalid) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k1, k2;
    cd_client_start(&k1, &addr, "1");
    first_held = hold_next(l, hold_all, 0);
    cd_client_start(&k2, &addr, "2");
    int answer = -1;
    WSPHELD second = hold_next(l, answer_own_handle, (DWORD_PTR)&answer);
    CHECK_EQ(second, first_held + 1);
    CHECK_EQ(answer, WSA_INVALID_HANDLE);
    CHECK_EQ(stats_of(l).holding, 2);
    SOCKET a1, a2;
    CHECK_EQ(held_accept(second, NULL, &a2), 0);
    CHECK_EQ(held_accept(first_held, NULL, &a1), 0);
    CHECK_EQ(async_connect_join(&k1.c), 0);
    CHECK_EQ(async_connect_join(&k2.c), 0);
}

/* A request released into an empty backlog is its last as well as its first: one arriving
 * after it queues behind it, and both are handed out, oldest first. */
TEST(released_into_an_empty_backlog_then_a_new_arrival_both_come_out_in_order) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int first = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    int second = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    struct sockaddr_storage peer;
    int ports[2];
    for (int i = 0; i < 2; i++) {
        int len = sizeof peer;
        SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
        CHECK(a != INVALID_SOCKET);
        ports[i] = port_of(&peer);
        close_socket(a);
    }
    struct sockaddr_storage p1 = {0}, p2 = {0};
    socklen_t n1 = sizeof p1, n2 = sizeof p2;
    CHECK_EQ(getsockname(first, (struct sockaddr *)&p1, &n1), 0);
    CHECK_EQ(getsockname(second, (struct sockaddr *)&p2, &n2), 0);
    CHECK_EQ(ports[0], port_of(&p1));
    CHECK_EQ(ports[1], port_of(&p2));
    CHECK_EQ(stats_of(l).queued, 0);
    close(first);
    close(second);
    close_socket(l);
}

/* A released plain request is not watched (plain requests are checked when presented): a
 * client that left meanwhile is found by the accept's own look at the kernel, and the
 * condition function never sees it. */
TEST(released_plain_request_whose_client_left_is_withdrawn_unpresented) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int fd = raw_connect(&addr);
    struct sockaddr_storage mine = {0};
    socklen_t n = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &n), 0);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    close(fd);
    WAIT_FOR(tcp_state(port_of(&addr), port_of(&mine)) == TCP_CLOSE_WAIT, 10000);
    int calls = 0;
    CHECK_EQ(T.lpWSPAccept(l, NULL, NULL, count_and_hold, (DWORD_PTR)&calls, &err),
             INVALID_SOCKET);
    CHECK_EQ(err, WSAEWOULDBLOCK);
    CHECK_EQ(calls, 0);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    close_socket(l);
}

/* A held client's patience and the hold deadline are kept by the listener's timer however
 * far off the next pending notice is. */
TEST(held_client_patience_ends_the_hold_despite_a_far_notice) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    /* Long enough to outlast the steps up to the hold on a busy machine. */
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 2000};
    uint8_t req[64];
    size_t len = wsp_hs_encode(&f, req, sizeof req);
    CHECK(len > 0);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    WSPHELD h = hold_next(l, hold_all, 0);
    WAIT_FOR(stats_of(l).expired == 1, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAETIMEDOUT);
    CHECK_EQ(stats_of(l).holding, 0);
    close(fd);
    close_socket(l);
}

TEST(hold_deadline_ends_the_hold_despite_a_far_notice) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 200);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    WAIT_FOR(stats_of(l).hold_timed_out == 1, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAETIMEDOUT);
    close(fd);
    close_socket(l);
}

/* A held client hears "pending" with no other deadline due. */
TEST(held_client_hears_pending_with_no_other_timer_due) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 50);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    for (int i = 0; i < 2; i++) {
        uint8_t frame[8];
        int got = 0;
        while (got < 8) {
            int k = raw_recv(fd, frame + got, 8 - got, 10000);
            CHECK(k > 0);
            got += k;
        }
        CHECK_EQ(frame[3], WSP_HS_PENDING);
    }
    CHECK_EQ(held_reject(h, 0), 0);
    close(fd);
    close_socket(l);
}

/* A held client's next notice, far off, does not put off the handshake deadline of a
 * connection still silent. */
TEST(held_far_notice_does_not_delay_a_handshake_deadline) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    set_dword(l, SOL_WSP, WSP_HANDSHAKE_DEADLINE, 200);
    int silent = raw_connect(&addr);
    WAIT_FOR(stats_of(l).timed_out == 1, 10000);
    CHECK_EQ(stats_of(l).holding, 1);
    CHECK_EQ(held_reject(h, 0), 0);
    close(silent);
    close(fd);
    close_socket(l);
}

/* A held client hears "pending" every interval before the hold deadline, further off,
 * refuses it. */
TEST(held_client_hears_pending_before_the_hold_deadline) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 50);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 5000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    uint8_t frame[8];
    int got = 0;
    while (got < 8) {
        int k = raw_recv(fd, frame + got, 8 - got, 10000);
        CHECK(k > 0);
        got += k;
    }
    CHECK_EQ(frame[3], WSP_HS_PENDING);
    CHECK_EQ(held_reject(h, 0), 0);
    close(fd);
    close_socket(l);
}

static int accept_any(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                      GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_ACCEPT;
}

/* A request that arrives whole while an event registration waits for FD_ACCEPT is handed to
 * the accept that comes for it: that accept asks the kernel about its client once, after its
 * condition function, as a blocked accept woken for it does; a held request that leaves
 * meanwhile (rejected) does not take the hand-off away. */
TEST(held_request_leaving_keeps_the_fresh_requests_hand_off) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    WSAEVENT ev = WSACreateEvent();
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int held_fd = raw_connect(&addr);
    CHECK_EQ(send(held_fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    /* The fresh request waits whole in the kernel before the reactor takes it. */
    static struct event_thread_hold first_hold, second_hold;
    event_thread_hold(&first_hold);
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    event_thread_hold_post(&second_hold, l); /* holds once l has a request queued */
    event_thread_let_go(&first_hold); /* the first job returns; the second holds once queued */
    event_thread_wait_held(&second_hold);
    CHECK_EQ(stats_of(l).queued, 1);
    CHECK_EQ(held_reject(h, 0), 0);
    uint64_t looks = wsp_listener_client_looks(so);
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, accept_any, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(wsp_listener_client_looks(so) - looks, 1); /* after the condition function */
    event_thread_let_go(&second_hold);
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close(held_fd);
    close_socket(l);
    WSACloseEvent(ev);
}

/* A connect-data request held while still fresh (admitted unwatched, its watch due a moment
 * later) and released when neither the hold nor the release could watch it waits in line as
 * one the reactor cannot watch, as after any failed watch (the accept that presents it asks
 * the kernel about its client): the watch that was due for it before the hold is not due any
 * more, and the reactor's timer makes no epoll call for it. (The reactor is held from the
 * request's admission until after the release: no timer runs in between.) */
TEST(released_cdata_request_held_while_fresh_and_unwatched_gets_no_watch_later) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct catch_up cu;
    catch_up_start(&cu);
    set_nonblocking(l, 1); /* no blocking accept: no timer of the direct mode */
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    static struct event_thread_hold first_hold, second_hold;
    event_thread_hold(&first_hold);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0}; /* version 1, no data */
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), (ssize_t)sizeof request);
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &len), 0);
    WAIT_FOR(tcp_unread(port_of(&addr), ntohs(mine.sin_port)) == (int)sizeof request, 10000);
    event_thread_hold_post(&second_hold, l); /* holds once l has a request queued */
    event_thread_let_go(&first_hold); /* the first job returns; the second holds once queued */
    event_thread_wait_held(&second_hold);
    uint64_t admitted_by = wsp_now_ms();
    CHECK_EQ(stats_of(l).queued, 1);
    FAULT(epoll_ctl, .err = ENOMEM, .times = -1, .this_thread = 1);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 2); /* the hold's watch, the release's */
    fault_clear();
    CHECK_EQ(stats_of(l).queued, 1);
    /* Past the moment its watch was due (10 ms after its admission). */
    WAIT_FOR(wsp_now_ms() > admitted_by + 10, 10000);
    FAULT(epoll_ctl, .nth = 1 << 30); /* counts the provider's calls, fails none */
    event_thread_let_go(&second_hold);
    wait_reactor_caught_up(&cu); /* its timer's events among those seen to */
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 0);
    fault_clear();
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    uint64_t looks = wsp_listener_client_looks(so);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(wsp_listener_client_looks(so) - looks, 1); /* unwatched: the accept asks the kernel */
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    catch_up_close(&cu);
    close_socket(l);
}

/* Held requests are watched by the reactor; answering one on the application's thread removes
 * that watch without waking the reactor (its release only frees memory: the descriptor was
 * closed or handed over by the answer), whether accepted or rejected. */
TEST(held_requests_answered_on_the_applications_thread_do_not_wake_the_reactor) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSPHELD h1 = hold_next(l, hold_all, 0), h2 = hold_next(l, hold_all, 0);
    unsigned before = wsp_reactor_wakes();
    SOCKET a = INVALID_SOCKET;
    CHECK_EQ(held_accept(h1, NULL, &a), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(held_reject(h2, 0), 0);
    CHECK_EQ(wsp_reactor_wakes(), before);
    close_socket(a);
    close(c1);
    close(c2);
    close_socket(l);
}

/* A released plain request is looked at only when an accept asks: its client, which sent
 * bytes and half-closed (still waiting for its answer, as plain TCP allows), does not keep
 * the reactor looking at it. */
TEST(released_plain_client_that_sent_and_half_closed_waits_unlooked_at) {
    start_held();
    struct sockaddr_storage addr, addr2;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    SOCKET l2 = listener(WSP_CATALOG_TCP_IPV4, 8, &addr2);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int fd = raw_connect(&addr);
    struct sockaddr_storage mine = {0};
    socklen_t n = sizeof mine;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&mine, &n), 0);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(HeldRelease(h, &err), 0);
    uint64_t looks = wsp_listener_client_looks(so);
    CHECK_EQ(send(fd, "hi", 2, MSG_NOSIGNAL), 2);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    WAIT_FOR(tcp_state(port_of(&addr), port_of(&mine)) == TCP_CLOSE_WAIT, 10000);
    /* The reactor has seen to every earlier event once it takes a later arrival. */
    int other = raw_connect(&addr2);
    WAIT_FOR(stats_of(l2).queued == 1, 10000);
    CHECK_EQ(wsp_listener_client_looks(so), looks);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    char buf[2];
    recv_exact(a, buf, 2);
    CHECK_MEM(buf, "hi", 2);
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close(other);
    close_socket(l2);
    close_socket(l);
}

/* A handle in the news (its client left) and then answered leaves the news: the next look
 * at the news finds nothing. */
TEST(answered_handle_leaves_the_news) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    close(fd);
    WAIT_FOR(stats_of(l).holding == 0, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    WSPHELD news[4];
    DWORD got = 9;
    int err = 0;
    CHECK_EQ(HeldNews(l, news, 4, &got, &err), 0);
    CHECK_EQ(got, 0);
    close_socket(l);
}

/* Inside the condition function for the first request, a nested accept takes the second. */
struct nested_take {
    SOCKET l;
    SOCKET taken;
    int calls;
};

static int take_next_then_defer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                                GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    struct nested_take *x = (struct nested_take *)ctx;
    x->calls++;
    int err = 0;
    x->taken = T.lpWSPAccept(x->l, NULL, NULL, NULL, 0, &err);
    CHECK(x->taken != INVALID_SOCKET);
    return CF_DEFER;
}

/* Released requests go back in their places by arrival, linked both ways: with 1 and 2 held
 * and 3 waiting, releasing 1 and then 2 makes the line 1, 2, 3. A nested accept that takes 2
 * while 1 is being presented leaves 1 and 3 in line, 1 first. */
TEST(released_requests_rejoin_the_line_linked_both_ways) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int c[3], port[3];
    for (int i = 0; i < 3; i++) {
        c[i] = raw_connect(&addr);
        struct sockaddr_storage mine;
        socklen_t n = sizeof mine;
        CHECK_EQ(getsockname(c[i], (struct sockaddr *)&mine, &n), 0);
        port[i] = port_of(&mine);
        WAIT_FOR((int)stats_of(l).queued == i + 1, 10000);
    }
    WSPHELD h1 = hold_next(l, hold_all, 0);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h1, &err), 0);
    CHECK_EQ(HeldRelease(h2, &err), 0);
    struct nested_take x = {.l = l};
    CHECK_EQ(T.lpWSPAccept(l, NULL, NULL, take_next_then_defer, (DWORD_PTR)&x, &err),
             INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    CHECK_EQ(x.calls, 1);
    struct sockaddr_storage peer;
    int len = sizeof peer;
    CHECK_EQ(T.lpWSPGetPeerName(x.taken, (struct sockaddr *)&peer, &len, &err), 0);
    CHECK_EQ(port_of(&peer), port[1]);
    for (int i = 0; i < 2; i++) {
        len = sizeof peer;
        SOCKET s = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
        CHECK(s != INVALID_SOCKET);
        CHECK_EQ(port_of(&peer), port[i == 0 ? 0 : 2]);
        close_socket(s);
    }
    CHECK_EQ(stats_of(l).queued, 0);
    close_socket(x.taken);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close_socket(l);
}

static int raw_port_of(int fd);

/* A request released ahead of one still queued keeps the line whole: a connection that
 * arrives after the release comes out after both. */
TEST(released_ahead_of_a_queued_request_then_a_new_arrival_all_come_out_in_order) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int c[3], port[3];
    c[0] = raw_connect(&addr);
    port[0] = raw_port_of(c[0]);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    c[1] = raw_connect(&addr);
    port[1] = raw_port_of(c[1]);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 2);
    c[2] = raw_connect(&addr);
    port[2] = raw_port_of(c[2]);
    WAIT_FOR(stats_of(l).queued == 3, 10000);
    for (int i = 0; i < 3; i++) {
        struct sockaddr_storage peer;
        int len = sizeof peer;
        SOCKET s = T.lpWSPAccept(l, (struct sockaddr *)&peer, &len, NULL, 0, &err);
        CHECK(s != INVALID_SOCKET);
        CHECK_EQ(port_of(&peer), port[i]);
        close_socket(s);
    }
    CHECK_EQ(stats_of(l).queued, 0);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close_socket(l);
}

/* A released request is an arrival for FD_ACCEPT: with the backlog empty after the accept
 * call that held it, its release raises FD_ACCEPT. */
TEST(released_request_raises_fd_accept) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int c = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* resets the event */
    CHECK_EQ(ne.lNetworkEvents, FD_ACCEPT); /* the arrival's, before the accept call */
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_ACCEPT);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close(c);
    close_socket(l);
    WSACloseEvent(ev);
}

/* A held request leaving re-enables FD_ACCEPT only when a hold was refused for the limit:
 * otherwise FD_ACCEPT waits for the next accept call, as Winsock's re-enabling rule says. */
TEST(held_request_leaving_without_a_refused_hold_leaves_fd_accept_alone) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int c1 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    int c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* resets the event */
    CHECK(ne.lNetworkEvents & FD_ACCEPT); /* the second request, after the accept call */
    CHECK_EQ(held_reject(h, 0), 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    close(c1);
    close(c2);
    close_socket(l);
    WSACloseEvent(ev);
}

/* The last cleanup retires every unanswered handle, several on one listener too. */
TEST(last_cleanup_retires_several_unanswered_handles_of_one_listener) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd1 = raw_connect(&addr), fd2 = raw_connect(&addr);
    WSPHELD h1 = hold_next(l, hold_all, 0);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    start();
    SOCKET a;
    CHECK_EQ(held_accept(h1, NULL, &a), WSA_INVALID_HANDLE);
    CHECK_EQ(held_accept(h2, NULL, &a), WSA_INVALID_HANDLE);
    close(fd1);
    close(fd2);
}

/* A length with no address buffer: the hold leaves both alone. */
TEST(hold_with_a_length_and_no_address_buffer_leaves_the_length_alone) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    int len = 12345, err = 0;
    SOCKET a = 0;
    WSPHELD h = 0;
    CHECK_EQ(AcceptHold(l, NULL, &len, hold_all, 0, &a, &h, &err), 0);
    CHECK(h != 0);
    CHECK_EQ(len, 12345);
    CHECK_EQ(held_reject(h, 0), 0);
    close(fd);
    close_socket(l);
}

/* ---- the news and the handles' references, as answers end holds ------------------------- */

/* The local port of a raw descriptor. */
static int raw_port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return port_of(&ss);
}

/* The news lists the held requests that ended unanswered, newest first. Answering one of them
 * takes it out of the middle of the list; answering a request that is still held (never in
 * the news) leaves the news as it was. */
TEST(answers_take_their_handles_out_of_the_news_and_leave_the_rest) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd[4];
    WSPHELD h[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = raw_connect(&addr);
        h[i] = hold_next(l, hold_all, 0);
    }
    for (int i = 0; i < 3; i++) { /* the first three clients leave, in order */
        close(fd[i]);
        WAIT_FOR(stats_of(l).holding == (uint32_t)(3 - i), 10000);
    }
    SOCKET a;
    CHECK_EQ(held_accept(h[1], NULL, &a), WSAECONNRESET); /* the middle of the news */
    CHECK_EQ(held_reject(h[3], 0), 0);                    /* still held: not in the news */
    WSPHELD news[4] = {0};
    DWORD n = 0;
    int err = 0;
    CHECK_EQ(HeldNews(l, news, 1, &n, &err), 0); /* room for one: the newest */
    CHECK_EQ(n, 1);
    CHECK(news[0] == h[2]);
    CHECK(news[1] == 0);
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == h[0]);
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(held_accept(h[0], NULL, &a), WSAECONNRESET);
    CHECK_EQ(held_accept(h[2], NULL, &a), WSAECONNRESET);
    close(fd[3]);
    close_socket(l);
}

/* One WSPHeldNews call hands out as many handles as the news has and it has room for, newest
 * first, each once. */
TEST(held_news_hands_out_every_handle_it_has_room_for_in_one_call) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd[4];
    WSPHELD h[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = raw_connect(&addr);
        h[i] = hold_next(l, hold_all, 0);
    }
    for (int i = 0; i < 4; i++) { /* the clients leave, in order */
        close(fd[i]);
        WAIT_FOR(stats_of(l).holding == (uint32_t)(3 - i), 10000);
    }
    WSPHELD news[8] = {0};
    DWORD n = 0;
    int err = 0;
    CHECK_EQ(HeldNews(l, news, 3, &n, &err), 0); /* room for three of the four */
    CHECK_EQ(n, 3);
    CHECK(news[0] == h[3] && news[1] == h[2] && news[2] == h[1]);
    CHECK(news[3] == 0);
    CHECK_EQ(HeldNews(l, news, 8, &n, &err), 0); /* the one left */
    CHECK_EQ(n, 1);
    CHECK(news[0] == h[0]);
    CHECK_EQ(HeldNews(l, news, 8, &n, &err), 0);
    CHECK_EQ(n, 0);
    SOCKET a;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(held_accept(h[i], NULL, &a), WSAECONNRESET);
    close_socket(l);
}

/* A handle holds a reference to its listener until an answer retires it: every answer that
 * ends a hold (accepted, rejected, released, one that finds the request ended, and an
 * WSPAcceptHold that accepts at once) lets go of it, so that the closed listener's descriptor
 * closes at once rather than at the last cleanup. */
TEST(answered_handles_let_go_of_their_listener) {
    start_held();
    int before = provider_fds();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd[5];
    WSPHELD h[4];
    for (int i = 0; i < 4; i++) {
        fd[i] = raw_connect(&addr);
        h[i] = hold_next(l, hold_all, 0);
    }
    SOCKET a[2];
    CHECK_EQ(held_accept(h[0], NULL, &a[0]), 0);
    CHECK_EQ(held_reject(h[1], 0), 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h[2], &err), 0);
    close(fd[3]);
    WAIT_FOR(stats_of(l).holding == 0, 10000);
    SOCKET none;
    CHECK_EQ(held_accept(h[3], NULL, &none), WSAECONNRESET);
    /* The released request comes first again; CF_ACCEPT hands its socket out. */
    WSPHELD unused = 0;
    CHECK_EQ(AcceptHold(l, NULL, NULL, accept_all, 0, &a[1], &unused, &err), 0);
    CHECK(a[1] != INVALID_SOCKET);
    CHECK(unused == 0);
    close_socket(a[0]);
    close_socket(a[1]);
    close_socket(l);
    WAIT_FOR(provider_fds() == before, 10000);
    for (int i = 0; i < 4; i++)
        if (i != 3)
            close(fd[i]);
}

/* No memory for the answer (connect data: the buffers for callee data and QoS): the
 * application may answer again, the request still held. */
TEST(held_accept_without_memory_leaves_the_request_held) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    struct cd_client k;
    cd_client_start(&k, &addr, "held");
    WSPHELD h = hold_next(l, hold_all, 0);
    SOCKET a;
    FAULT(malloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(held_accept(h, NULL, &a), WSAENOBUFS);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(stats_of(l).holding, 1);
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(stats_of(l).holding, 0);
    CHECK_EQ(async_connect_join(&k.c), 0);
    close_socket(a);
    close_socket(k.c.s);
    close_socket(l);
}

/* A held request the reactor could not watch (epoll_ctl failed) learns that its client left
 * only when the application answers: the answer fails with WSAECONNRESET, the request is
 * counted as withdrawn and its connection closed (the leak check sees a descriptor left). */
TEST(held_request_left_unwatched_finds_its_client_gone_at_the_answer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1); /* the reactor takes the connection; the hold is this thread's */
    int fd = raw_connect(&addr);
    int cport = raw_port_of(fd);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1); /* the held request's watch */
    fault_clear();
    close(fd);
    WAIT_FOR(tcp_state(port_of(&addr), cport) == TCP_CLOSE_WAIT, 10000);
    CHECK_EQ(stats_of(l).holding, 1); /* nobody watching: still held */
    SOCKET a;
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 0); /* no watch to remove */
    fault_clear();
    CHECK(a == INVALID_SOCKET);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.holding, 0);
    CHECK_EQ(st.withdrawn, 1);
    CHECK_EQ(st.accepted, 0);
    CHECK_EQ(held_accept(h, NULL, &a), WSA_INVALID_HANDLE);
    close_socket(l);
}

/* A plain request held unwatched (its watch could not be set) and released waits in line as
 * any plain request does, looked at when an accept asks: the release sets no timer for it
 * (there is no watch to start later), and the reactor makes no pass for it. */
TEST(released_plain_request_held_unwatched_sets_no_timer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    struct catch_up cu;
    catch_up_start(&cu);
    set_nonblocking(l, 1); /* the reactor takes the connection; the hold is this thread's */
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1); /* the held request's watch */
    fault_clear();
    unsigned passes = wsp_reactor_timer_passes();
    int err = 0;
    FAULT(epoll_ctl, .nth = 1 << 30, .this_thread = 1); /* counts the release's calls */
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 0); /* nothing to unwatch: it was never watched */
    fault_clear();
    wait_reactor_caught_up(&cu); /* its timer's events among those seen to */
    CHECK_EQ(wsp_reactor_timer_passes(), passes);
    CHECK_EQ(wsp_reactor_timer_armed_ms(), 0); /* nor one far ahead */
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    close_socket(a);
    close(fd);
    catch_up_close(&cu);
    close_socket(l);
}

/* One blocking accept on its own thread, recorded as it enters. */
struct held_acceptor {
    SOCKET l;
    struct blocker blocked;
    SOCKET s;
    struct sockaddr_storage peer;
    pthread_t thread;
};

static void *held_acceptor_main(void *arg) {
    struct held_acceptor *a = arg;
    int err = 0, len = sizeof a->peer;
    blocker_enter(&a->blocked);
    a->s = T.lpWSPAccept(a->l, (struct sockaddr *)&a->peer, &len, NULL, 0, &err);
    blocker_leave(&a->blocked);
    return NULL;
}

/* A released request goes to an accept that is already waiting for one: releasing it wakes
 * the waiting accept. */
TEST(released_request_goes_to_an_accept_already_waiting) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    int cport = raw_port_of(fd);
    WSPHELD h = hold_next(l, hold_all, 0);
    static struct held_acceptor a;
    a = (struct held_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, held_acceptor_main, &a), 0);
    wait_blocked(&a.blocked);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    WAIT_FOR(__atomic_load_n(&a.blocked.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK(a.s != INVALID_SOCKET);
    CHECK_EQ(port_of(&a.peer), cport);
    /* The wake-up was used up: the next accept to wait sleeps (it does not find the wake-up
     * still pending and spin), and takes the next connection. */
    static struct held_acceptor b;
    b = (struct held_acceptor){.l = l};
    CHECK_EQ(pthread_create(&b.thread, NULL, held_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    int fd2 = raw_connect(&addr);
    WAIT_FOR(__atomic_load_n(&b.blocked.returned, __ATOMIC_SEQ_CST), 10000);
    CHECK_EQ(pthread_join(b.thread, NULL), 0);
    CHECK(b.s != INVALID_SOCKET);
    close_socket(a.s);
    close_socket(b.s);
    close(fd);
    close(fd2);
    close_socket(l);
}

/* The application's WPUSetEvent that keeps the reactor's thread (which calls it for the held
 * event) until stall_until_ms has passed. */
static long long stall_until_ms;
static BOOL stalling_set_event(WSAEVENT ev, LPINT err) {
    (void)ev;
    long long until = __atomic_load_n(&stall_until_ms, __ATOMIC_SEQ_CST);
    while (now_ms() < until)
        sleep_ms(1); /* time passing is the point: the hold deadline below is overdue */
    *err = 0;
    return TRUE;
}

/* A hold deadline that the listener's timer finds well past (the reactor was kept busy
 * meanwhile) still ends the hold: the timer acts on deadlines reached, not only on those that
 * fall in the very millisecond it runs. */
TEST(overdue_hold_deadline_still_ends_the_hold) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = stalling_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    AcceptHold = (LPFN_WSPACCEPTHOLD)extension(s, (GUID)WSPID_ACCEPTHOLD, &err);
    HeldAccept = (LPFN_WSPHELDACCEPT)extension(s, (GUID)WSPID_HELDACCEPT, &err);
    CHECK(AcceptHold && HeldAccept);
    close_socket(s);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int leaving = raw_connect(&addr);
    WSPHELD first = hold_next(l, hold_all, 0);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 30);
    int waiting = raw_connect(&addr);
    long long held_at = now_ms();
    WSPHELD second = hold_next(l, hold_all, 0);
    /* The first client's leaving has the reactor set the held event, which stalls it until
     * the second hold's deadline is 70 ms overdue. */
    __atomic_store_n(&stall_until_ms, held_at + 100, __ATOMIC_SEQ_CST);
    close(leaving);
    WAIT_FOR(stats_of(l).hold_timed_out == 1, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(second, NULL, &a), WSAETIMEDOUT);
    CHECK_EQ(held_accept(first, NULL, &a), WSAECONNRESET);
    close(waiting);
    close_socket(l);
}

/* The application's WPUSetEvent that counts its calls. */
static atomic_int set_event_calls;
static BOOL counting_set_event(WSAEVENT ev, LPINT err) {
    (void)ev;
    atomic_fetch_add(&set_event_calls, 1);
    *err = 0;
    return TRUE;
}

/* A drop handler that takes the listener's held event away. */
static atomic_int drops_heard;
static void clear_held_event(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                             DWORD_PTR context) {
    (void)addr, (void)addrlen, (void)reason, (void)context;
    WSAEVENT none = NULL;
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&none, sizeof none, &err), 0);
    atomic_fetch_add(&drops_heard, 1);
}

static atomic_int reactor_reached;
static void note_reactor_reached(void *context) {
    (void)context;
    atomic_store(&reactor_reached, 1);
}

/* The held event is set with the event the listener has when the reactor gets round to it:
 * one the application took away meanwhile is not set, and no WPUSetEvent is made for "no
 * event". Here the listener's drop handler takes it away: one timer pass ends a held request
 * (its hold deadline) and a queued one (its client's patience), and the queued one's drop
 * handler runs before the reactor sets the held event. */
TEST(held_event_taken_away_before_it_is_set_is_not_set) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = counting_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    AcceptHold = (LPFN_WSPACCEPTHOLD)extension(s, (GUID)WSPID_ACCEPTHOLD, &err);
    HeldReject = (LPFN_WSPHELDREJECT)extension(s, (GUID)WSPID_HELDREJECT, &err);
    CHECK(AcceptHold && HeldReject);
    close_socket(s);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    atomic_store(&drops_heard, 0);
    WSP_DROP_HANDLER_DATA dh = {clear_held_event, 0};
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&dh, sizeof dh, &err),
             0);
    atomic_store(&set_event_calls, 0);
    /* The reactor is held before the request is: no pass can end the hold on its own. */
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 100);
    wsp_hs_frame plain = {.type = WSP_HS_REQUEST};
    /* Long enough to outlast the steps up to the hold of the reactor on a busy machine. */
    wsp_hs_frame patient = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 2000};
    uint8_t req[64];
    size_t len = wsp_hs_encode(&plain, req, sizeof req);
    CHECK(len > 0);
    int held_fd = raw_connect(&addr);
    CHECK_EQ(send(held_fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* first in the queue: the one hold_next takes */
    len = wsp_hs_encode(&patient, req, sizeof req);
    CHECK(len > 0);
    int queued_fd = raw_connect(&addr);
    CHECK_EQ(send(queued_fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    static struct event_thread_hold hold;
    event_thread_hold(&hold);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(stats_of(l).queued, 1);
    uint64_t both_due_by = wsp_now_ms() + 2000; /* the two deadlines are no later */
    WAIT_FOR(wsp_now_ms() > both_due_by, 10000); /* time passing is the point */
    CHECK_EQ(stats_of(l).expired, 0); /* nothing ended before the one pass */
    CHECK_EQ(stats_of(l).hold_timed_out, 0);
    event_thread_let_go(&hold);
    WAIT_FOR(atomic_load(&drops_heard) == 1, 10000);
    /* The reactor runs this job after what it deferred in the pass that ended both. */
    atomic_store(&reactor_reached, 0);
    CHECK_EQ(WSPRunOnEventThread(note_reactor_reached, NULL), 0);
    WAIT_FOR(atomic_load(&reactor_reached), 10000);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.expired, 1);
    CHECK_EQ(st.hold_timed_out, 1);
    CHECK_EQ(atomic_load(&set_event_calls), 0);
    CHECK_EQ(held_reject(h, 0), WSAETIMEDOUT);
    close(held_fd);
    close(queued_fd);
    close_socket(l);
}

/* The last cleanup retires the unanswered handles in batches (of 64): more than one batch's
 * worth are all retired. */
TEST(last_cleanup_retires_more_unanswered_handles_than_one_batch) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    enum { N = 70 };
    static int fd[N];
    static WSPHELD h[N];
    for (int i = 0; i < N; i++) {
        fd[i] = raw_connect(&addr);
        h[i] = hold_next(l, hold_all, 0);
    }
    CHECK_EQ(stats_of(l).holding, N);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    start();
    SOCKET a;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(held_accept(h[i], NULL, &a), WSA_INVALID_HANDLE);
        close(fd[i]);
    }
}

/* ---- paths of the extension functions no other test takes ------------------------------------ */

/* Closing the listener ends its held requests on the closing thread, which sets the held
 * event itself (the reactor is not involved). */
TEST(listener_closing_sets_the_held_event_on_the_closing_thread) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    close_socket(l);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAEINTR);
    close(fd);
    WSACloseEvent(ev);
}

/* WSPHeldAccept without a place for the socket is WSAEFAULT, the request still held; and a
 * WSPAcceptHold that cannot allocate its handle is WSAENOBUFS, the connection left in line. */
TEST(held_calls_with_no_place_for_the_socket_or_no_memory_for_a_handle_leave_requests_waiting) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldAccept(h, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEFAULT);
    CHECK_EQ(stats_of(l).holding, 1);
    int fd2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    SOCKET a = 0;
    WSPHELD h2 = 0;
    FAULT(calloc, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, &a, &h2, &err), SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_calloc), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    CHECK(a == INVALID_SOCKET && h2 == 0);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.holding, 1);
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    close_socket(a);
    close(fd);
    close(fd2);
    close_socket(l);
}

/* A held connect-data request answered with more callee data than its client can take ends
 * (the client is refused, CALLEE_DATA_TOO_LONG): the answer is WSAEFAULT and the handle is
 * retired, as a condition function's accept would end it. */
TEST(held_accept_with_callee_data_the_client_cannot_take_ends_the_request) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    char in[2];
    WSABUF callee = {sizeof in, in};
    static struct async_connect ac;
    ac = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                .callee = &callee};
    async_connect_start(&ac);
    WSPHELD h = hold_next(l, hold_all, 0);
    SOCKET a;
    CHECK_EQ(held_accept(h, "abc", &a), WSAEFAULT);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&ac), WSAEFAULT);
    CHECK_EQ(refuse_reason(ac.s), WSP_REASON_CALLEE_DATA_TOO_LONG);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.undeliverable, 1);
    CHECK_EQ(st.holding, 0);
    CHECK_EQ(held_accept(h, NULL, &a), WSA_INVALID_HANDLE);
    close_socket(ac.s);
    close_socket(l);
}

struct held_drops {
    int count; /* written by the handler, on the answering thread */
    DWORD reason;
    int port;
    SOCKET listener;
};

static void on_held_drop(SOCKET l, const struct sockaddr *addr, int addrlen, DWORD reason,
                         DWORD_PTR ctx) {
    struct held_drops *d = (struct held_drops *)ctx;
    CHECK_EQ(l, d->listener);
    CHECK_EQ(addrlen, sizeof(struct sockaddr_in));
    d->count++;
    d->reason = reason;
    d->port = port_of((const struct sockaddr_storage *)addr);
}

/* The request a WSPHeldAccept ends because its callee data cannot reach the client is one the
 * provider ends on the application's behalf: the listener's drop handler hears of it, on the
 * answering thread, before the call returns (as for an lpWSPAccept that ends one). Before the
 * fix the notice stayed queued in the listener until its next reactor event (here none) and
 * was freed unheard with the listener. */
TEST(held_accept_with_callee_data_the_client_cannot_take_is_heard_by_the_drop_handler) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    static struct held_drops d;
    d = (struct held_drops){.listener = l};
    WSP_DROP_HANDLER_DATA dh = {on_held_drop, (DWORD_PTR)&d};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_DROP_HANDLER, (const char *)&dh, sizeof dh, &err),
             0);
    char in[2];
    WSABUF callee = {sizeof in, in};
    static struct async_connect ac;
    ac = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                                .callee = &callee};
    async_connect_start(&ac);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(d.count, 0); /* held: not dropped */
    SOCKET a;
    CHECK_EQ(held_accept(h, "abc", &a), WSAEFAULT);
    CHECK_EQ(d.count, 1);
    CHECK_EQ(d.reason, WSP_REASON_CALLEE_DATA_TOO_LONG);
    CHECK(d.port != 0 && d.port != port_of(&addr)); /* the client's address */
    CHECK_EQ(async_connect_join(&ac), WSAEFAULT);
    close_socket(ac.s);
    close_socket(l);
    CHECK_EQ(d.count, 1);
}

/* A WSPAcceptHold whose handle cannot be entered in the handle table (its first growth fails)
 * is WSAENOBUFS before anything is held: the connection waits in line, and the handle's
 * reference to the listener is given back (the leak check sees the listener closed). */
TEST(accept_hold_without_room_for_its_handle_is_enobufs) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    SOCKET a = 0;
    WSPHELD h = 0;
    int err = 0;
    FAULT(realloc, .err = ENOMEM, .this_thread = 1); /* the first handle: the table grows */
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, &a, &h, &err), SOCKET_ERROR);
    CHECK_EQ(fault_fired(FAULT_realloc), 1);
    fault_clear();
    CHECK_EQ(err, WSAENOBUFS);
    CHECK(h == 0);
    CHECK_EQ(stats_of(l).queued, 1);
    h = hold_next(l, hold_all, 0);
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* A held request with QoS accepted with the application's QoS: the client's QOS is what the
 * server answered. */
TEST(held_request_with_qos_accepted_with_qos_gives_the_client_the_answer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    QOS q;
    memset(&q, 0, sizeof q);
    q.SendingFlowspec = (FLOWSPEC){1000, 2000, 3000, 40, 50, SERVICETYPE_GUARANTEED, 1500, 64};
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr, .sqos = &q};
    async_connect_start(&c);
    WSPHELD h = hold_next(l, hold_all, 0);
    QOS answer;
    memset(&answer, 0, sizeof answer);
    answer.SendingFlowspec = (FLOWSPEC){700, 800, 900, 41, 51, SERVICETYPE_GUARANTEED, 1400, 32};
    SOCKET a = INVALID_SOCKET;
    int err = 0;
    CHECK_EQ(HeldAccept(h, NULL, &answer, &a, &err), 0);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(async_connect_join(&c), 0);
    CHECK_EQ(q.SendingFlowspec.TokenRate, 700);
    CHECK_EQ(q.SendingFlowspec.PeakBandwidth, 900);
    close_socket(a);
    close_socket(c.s);
    close_socket(l);
}

/* The application's WPUSetEvent that holds the reactor's thread (which calls it for the held
 * event) until the test opens the gate. */
static int gate_closed, in_gate;
static BOOL gated_set_event(WSAEVENT ev, LPINT err) {
    (void)ev;
    __atomic_store_n(&in_gate, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))
        sleep_ms(1); /* waits for the condition: the test opens the gate */
    *err = 0;
    return TRUE;
}

/* An accept that finds the backlog empty takes what the kernel has queued itself, but only as
 * much as the backlog has room for: with the reactor kept busy (in the application's
 * WPUSetEvent) while three connections arrive at a listener whose backlog is 2, the accept
 * takes two, hands one out, and leaves the third in the kernel's queue. */
TEST(accept_pulling_for_itself_takes_no_more_than_the_backlog_has_room_for) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = gated_set_event;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    SOCKET s = new_socket(WSP_CATALOG_TCP_IPV4);
    int err = 0;
    AcceptHold = (LPFN_WSPACCEPTHOLD)extension(s, (GUID)WSPID_ACCEPTHOLD, &err);
    CHECK(AcceptHold != NULL);
    close_socket(s);
    struct sockaddr_storage haddr, addr;
    SOCKET hl = listener(WSP_CATALOG_TCP_IPV4, 8, &haddr);
    WSAEVENT ev = (WSAEVENT)(uintptr_t)0x5157; /* the application's own: never checked */
    CHECK_EQ(T.lpWSPSetSockOpt(hl, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int leaving = raw_connect(&haddr);
    hold_next(hl, hold_all, 0);
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 2, &addr);
    set_nonblocking(l, 1);
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    close(leaving); /* the reactor sets the held event, and stays in the gate */
    WAIT_FOR(__atomic_load_n(&in_gate, __ATOMIC_SEQ_CST), 10000);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = raw_connect(&addr);
        WAIT_FOR(tcp_state(port_of(&addr), raw_port_of(c[i])) == TCP_ESTABLISHED, 10000);
    }
    CHECK_EQ(stats_of(l).queued, 0);
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(stats_of(l).queued, 1);
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
    WAIT_FOR(stats_of(l).queued == 2, 10000); /* the reactor takes the third */
    close_socket(a);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close_socket(l);
    close_socket(hl);
}

/* A held connect-data client that half-closes has left (nothing may follow its request, and
 * it will send nothing more): the provider resets its connection, with no frame. */
TEST(cdata_held_client_that_half_closes_is_reset_without_a_frame) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    int fd = raw_connect(&addr);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    uint8_t b[WSP_HS_HEADER_SIZE];
    CHECK_EQ(raw_recv(fd, b, sizeof b, 10000), -ECONNRESET);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    close(fd);
    close_socket(l);
}

/* The listener's timer is due at the earliest deadline of all its held requests: a near hold
 * deadline of the first is not put off by the far patience of one held after it. */
TEST(near_hold_deadline_is_not_put_off_by_a_later_held_clients_far_patience) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 50);
    static const uint8_t plain_request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int near = raw_connect(&addr);
    CHECK_EQ(send(near, plain_request, sizeof plain_request, MSG_NOSIGNAL), 8);
    WSPHELD h1 = hold_next(l, hold_all, 0);
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0); /* none for the next one */
    wsp_hs_frame f = {.type = WSP_HS_REQUEST, .has_patience = 1, .patience_ms = 600000};
    uint8_t req[64];
    size_t len = wsp_hs_encode(&f, req, sizeof req);
    CHECK(len > 0);
    int far = raw_connect(&addr);
    CHECK_EQ(send(far, req, len, MSG_NOSIGNAL), (ssize_t)len);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    WAIT_FOR(stats_of(l).hold_timed_out == 1, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h1, NULL, &a), WSAETIMEDOUT);
    CHECK_EQ(held_accept(h2, NULL, &a), 0);
    close_socket(a);
    close(near);
    close(far);
    close_socket(l);
}

/* A handle handed out by WSPHeldNews is out of the news: answering it later leaves the news
 * of another request that ended since as it was. */
TEST(answer_to_a_handle_already_handed_out_leaves_the_news_alone) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fa = raw_connect(&addr);
    WSPHELD a = hold_next(l, hold_all, 0);
    int fb = raw_connect(&addr);
    WSPHELD b = hold_next(l, hold_all, 0);
    close(fa);
    WAIT_FOR(stats_of(l).holding == 1, 10000);
    WSPHELD news[4];
    DWORD n = 0;
    int err = 0;
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == a);
    close(fb);
    WAIT_FOR(stats_of(l).holding == 0, 10000);
    SOCKET s;
    CHECK_EQ(held_accept(a, NULL, &s), WSAECONNRESET);
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == b);
    CHECK_EQ(held_accept(b, NULL, &s), WSAECONNRESET);
    close_socket(l);
}

/* A hold that succeeds is an accept call like any (Winsock: an accept re-enables FD_ACCEPT):
 * with a second request waiting, FD_ACCEPT comes again. */
TEST(hold_re_enables_fd_accept_for_the_next_request) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSANETWORKEVENTS ne;
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* resets the event */
    CHECK_EQ(ne.lNetworkEvents, FD_ACCEPT);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, FD_ACCEPT); /* the second request */
    WSPHELD h2 = hold_next(l, hold_all, 0);
    CHECK_EQ(held_reject(h, 0), 0);
    CHECK_EQ(held_reject(h2, 0), 0);
    close(c1);
    close(c2);
    close_socket(l);
    WSACloseEvent(ev);
}

/* A hold refused for the limit is no re-enabling call: the request it leaves in line was
 * reported already, and FD_ACCEPT comes again only once a held request leaves (else an
 * application woken by it would be refused again at once, over and over). */
TEST(hold_refused_for_the_limit_does_not_re_enable_fd_accept) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_HOLD_LIMIT, 1);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(l, ev, FD_ACCEPT, &err), 0);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSPHELD h = hold_next(l, hold_all, 0);
    WSANETWORKEVENTS ne;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0); /* resets the event */
    CHECK(ne.lNetworkEvents & FD_ACCEPT); /* the second request, after the accept call */
    SOCKET a;
    WSPHELD none;
    CHECK_EQ(AcceptHold(l, NULL, NULL, hold_all, 0, &a, &none, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOBUFS);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK_EQ(ne.lNetworkEvents, 0);
    CHECK_EQ(held_reject(h, 0), 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(T.lpWSPEnumNetworkEvents(l, ev, &ne, &err), 0);
    CHECK(ne.lNetworkEvents & FD_ACCEPT);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    CHECK_EQ(held_reject(h2, 0), 0);
    close(c1);
    close(c2);
    close_socket(l);
    WSACloseEvent(ev);
}

/* A released request with no accept waiting for one wakes no one (waking is for accepts
 * blocked on the listener: released_request_goes_to_an_accept_already_waiting). */
TEST(released_request_with_no_accept_waiting_wakes_no_one) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    uint32_t before = wsp_listener_wakes(so);
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    CHECK_EQ(wsp_listener_wakes(so), before);
    wsp_socket_release(so);
    close(fd);
    close_socket(l);
}

/* A plain request held a second time, after a release (which stopped its watch: plain
 * requests in the backlog are looked at when presented), is watched again: its client
 * leaving is news. */
TEST(plain_request_held_again_after_a_release_is_watched_again) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(l, SOL_WSP, WSP_HELD_EVENT, (char *)&ev, sizeof ev, &err), 0);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(HeldRelease(h, &err), 0);
    WSPHELD h2 = hold_next(l, hold_all, 0);
    close(fd);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSPHELD news[4];
    DWORD n = 0;
    CHECK_EQ(HeldNews(l, news, 4, &n, &err), 0);
    CHECK_EQ(n, 1);
    CHECK(news[0] == h2);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    SOCKET a;
    CHECK_EQ(held_accept(h2, NULL, &a), WSAECONNRESET);
    close_socket(l);
    WSACloseEvent(ev);
}

/* ---- a held request's answer going out while the reactor has news of its client --------- */

struct releaser {
    pthread_t thread;
    WSPHELD h;
};

/* WSPHeldRelease, held (the listener's lock taken) at its first epoll_ctl: the one that stops
 * the released plain request's watch. */
static void *release_held_at_its_watch(void *arg) {
    struct releaser *r = arg;
    FAULT(epoll_ctl, .nth = 1, .hold = 1, .this_thread = 1);
    int err = 0;
    CHECK_EQ(HeldRelease(r->h, &err), 0);
    return NULL;
}

/* A plain client that sends bytes and half-closes as its request is released still waits for
 * its answer: the reactor, which read that news while the request was still watched and then
 * waited for the listener's lock, finds it back in line, looks, and leaves it there. */
TEST(released_plain_request_whose_client_half_closed_during_the_release_still_waits) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    static struct releaser r;
    r = (struct releaser){.h = hold_next(l, hold_all, 0)};
    uint64_t looks = wsp_listener_client_looks(so);
    CHECK_EQ(pthread_create(&r.thread, NULL, release_held_at_its_watch, &r), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
    CHECK_EQ(send(fd, "hi", 2, MSG_NOSIGNAL), 2);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    WAIT_FOR(threads_in_futex_on(&so->lock) > 0, 10000); /* the reactor, with the news */
    fault_release();
    pthread_join(r.thread, NULL);
    fault_clear();
    WAIT_FOR(wsp_listener_client_looks(so) > looks, 10000); /* it has looked */
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    char buf[2];
    recv_exact(a, buf, 2);
    CHECK_MEM(buf, "hi", 2);
    CHECK_EQ(stats_of(l).withdrawn, 0);
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* An answer to a handle, on a thread of its own, recorded as it enters. */
struct answerer {
    pthread_t thread;
    WSPHELD h;
    int accept; /* WSPHeldAccept, else WSPHeldReject */
    int result;
    struct blocker blocked;
};

static void *answer_main(void *arg) {
    struct answerer *a = arg;
    SOCKET s = INVALID_SOCKET;
    blocker_enter(&a->blocked);
    a->result = a->accept ? held_accept(a->h, NULL, &s) : held_reject(a->h, 0);
    blocker_leave(&a->blocked);
    CHECK(s == INVALID_SOCKET);
    return NULL;
}

/* Two answers to a held request that ended (its client left), both past the handle's lookup
 * in the table before either takes the listener's lock (held here by a third answer): the
 * first to get the lock learns why it ended and retires the handle; the other then finds it
 * retired. Exactly one answer reports the end. */
TEST(two_answers_racing_for_an_ended_request_report_its_end_once) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1);
    int c1 = raw_connect(&addr), c2 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 2, 10000);
    WSPHELD h1 = hold_next(l, hold_all, 0);
    static struct releaser r;
    r = (struct releaser){.h = hold_next(l, hold_all, 0)};
    close(c1); /* h1's client leaves: its request ends unanswered */
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    CHECK_EQ(pthread_create(&r.thread, NULL, release_held_at_its_watch, &r), 0);
    WAIT_FOR(fault_holding() == 1, 10000); /* the listener's lock is taken */
    static struct answerer x, y;
    x = (struct answerer){.h = h1, .accept = 1};
    y = (struct answerer){.h = h1, .accept = 0};
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    CHECK_EQ(pthread_create(&x.thread, NULL, answer_main, &x), 0);
    CHECK_EQ(pthread_create(&y.thread, NULL, answer_main, &y), 0);
    /* Both past the lookup, each asleep on the listener's lock. */
    WAIT_FOR(threads_in_futex_on(&so->lock) == 2, 10000);
    wsp_socket_release(so);
    fault_release();
    pthread_join(r.thread, NULL);
    pthread_join(x.thread, NULL);
    pthread_join(y.thread, NULL);
    fault_clear();
    /* (which of the two got the lock first is the scheduler's choice) */
    CHECK_EQ((x.result == WSAECONNRESET) + (y.result == WSAECONNRESET), 1);
    CHECK_EQ((x.result == WSA_INVALID_HANDLE) + (y.result == WSA_INVALID_HANDLE), 1);
    close(c2);
    close_socket(l);
}

struct misbehaver {
    pthread_t thread;
    int client;
    struct wsp_socket *so;
};

/* Once the accepting thread is held (its lock of the listener taken, its look at the client
 * made), the client sends a byte, which the reactor reads as news of the held request and
 * then waits for the listener's lock with; then the accept goes on. */
static void *misbehave_while_held(void *arg) {
    struct misbehaver *m = arg;
    WAIT_FOR(fault_holding() == 1, 10000);
    CHECK_EQ(send(m->client, "x", 1, MSG_NOSIGNAL), 1);
    WAIT_FOR(threads_in_futex_on(&m->so->lock) > 0, 10000);
    fault_release();
    return NULL;
}

/* A held request taken by WSPHeldAccept is the accepting thread's alone, even while its answer
 * goes out with the listener unlocked: news of its client that the reactor read before the
 * take (here a byte sent after the accept looked) is left alone, and the answer stands (the
 * byte reaches the accepted socket as data). */
TEST(held_request_being_answered_is_left_alone_by_news_read_before_the_take) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000); /* no timer pass meanwhile */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    static struct misbehaver m;
    m = (struct misbehaver){.client = fd, .so = so};
    CHECK_EQ(pthread_create(&m.thread, NULL, misbehave_while_held, &m), 0);
    /* The accept's first allocation (its presentation) comes after its look at the client. */
    FAULT(malloc, .this_thread = 1, .hold = 1);
    SOCKET a = INVALID_SOCKET;
    CHECK_EQ(held_accept(h, NULL, &a), 0);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(pthread_join(m.thread, NULL), 0);
    CHECK(a != INVALID_SOCKET);
    WSP_LISTENER_STATS_DATA st = stats_of(l);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.malformed, 0);
    char b = 0;
    recv_exact(a, &b, 1);
    CHECK_EQ(b, 'x');
    wsp_socket_release(so);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* A request leaving a full backlog for the held list makes room: the reactor reads the
 * listening descriptor again, and takes the connection that waited in the kernel. */
TEST(hold_out_of_a_full_backlog_makes_room_for_the_next_connection) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 1, &addr);
    set_nonblocking(l, 1); /* a non-blocking accept leaves the descriptor to the reactor */
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int c1 = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(wsp_listener_reading(so), 0); /* full */
    int c2 = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* c2, taken by the reactor */
    CHECK_EQ(held_reject(h, 0), 0);
    wsp_socket_release(so);
    close(c1);
    close(c2);
    close_socket(l);
}

/* WSPHeldNews that fails (no socket, or one that does not listen) returns no handles: its
 * count says 0, not what it said before the call. */
TEST(held_news_that_fails_returns_a_count_of_0) {
    start_held();
    WSPHELD h[2] = {0, 0};
    DWORD n = 7;
    int err = 0;
    CHECK_EQ(HeldNews((SOCKET)0x4000123, h, 2, &n, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(n, 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    n = 7;
    CHECK_EQ(HeldNews(c, h, 2, &n, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(n, 0);
    CHECK(h[0] == 0 && h[1] == 0);
    close_socket(c);
}

struct answer_leaver {
    pthread_t thread;
    int client, server_port, client_port;
};

/* Once the accepting thread is held (after its look at the client), the client resets its
 * connection; then the accept goes on. */
static void *reset_while_answer_held(void *arg) {
    struct answer_leaver *v = arg;
    WAIT_FOR(fault_holding() == 1, 10000);
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(v->client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(v->client);
    WAIT_FOR(tcp_state(v->server_port, v->client_port) == -1, 10000);
    fault_release();
    return NULL;
}

/* A held request whose client leaves as its answer goes out fails WSPHeldAccept with
 * WSAECONNRESET (counted as withdrawn), not with an error of 0. */
TEST(held_accept_whose_client_leaves_as_the_answer_goes_is_connreset) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    set_dword(l, SOL_WSP, WSP_PENDING_INTERVAL, 600000);
    static const uint8_t request[] = {0x57, 0x53, 1, 1, 0, 0, 0, 0};
    int fd = raw_connect(&addr);
    CHECK_EQ(send(fd, request, sizeof request, MSG_NOSIGNAL), 8);
    WSPHELD h = hold_next(l, hold_all, 0);
    static struct answer_leaver v;
    v = (struct answer_leaver){.client = fd, .server_port = port_of(&addr), .client_port = raw_port_of(fd)};
    CHECK_EQ(pthread_create(&v.thread, NULL, reset_while_answer_held, &v), 0);
    FAULT(malloc, .this_thread = 1, .hold = 1); /* after the accept's look at the client */
    SOCKET a = INVALID_SOCKET;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    CHECK_EQ(fault_fired(FAULT_malloc), 1);
    fault_clear();
    CHECK_EQ(pthread_join(v.thread, NULL), 0);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    close_socket(l);
}

/* A held request nobody watches (its watch could not be set) whose client half-closed: the
 * answer finds the client gone and resets it, as the reactor's watch would have (a client
 * still reading learns it was not accepted from the reset, not from an orderly end). */
TEST(held_request_left_unwatched_resets_a_client_that_half_closed_at_the_answer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1); /* the reactor takes the connection; the hold is this thread's */
    int fd = raw_connect(&addr);
    int cport = raw_port_of(fd);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1); /* the held request's watch */
    fault_clear();
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    WAIT_FOR(tcp_state(port_of(&addr), cport) == TCP_CLOSE_WAIT, 10000);
    SOCKET a;
    CHECK_EQ(held_accept(h, NULL, &a), WSAECONNRESET);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(stats_of(l).withdrawn, 1);
    uint8_t b;
    CHECK_EQ(raw_recv(fd, &b, 1, 10000), -ECONNRESET);
    close(fd);
    close_socket(l);
}

/* A plain request held, released, and held again: the second hold changes the watch the
 * first one set (the release only paused it), in one call (issue #14's speed: a hold adds no
 * system call that can only fail, such as registering a descriptor registered already). */
TEST(plain_request_held_again_changes_its_watch_in_one_call) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    h = hold_next(l, hold_all, 0);
    CHECK_EQ(fault_calls(FAULT_epoll_ctl), 1);
    fault_clear();
    CHECK_EQ(stats_of(l).holding, 1);
    /* Still watched: the client leaving ends the hold. */
    close(fd);
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    CHECK_EQ(stats_of(l).holding, 0);
    close_socket(l);
}

/* A released request has no hold deadline any more: the listener's timer, set for that
 * deadline alone, is cleared, and the reactor's timerfd with it (no wake-up left for nothing;
 * the reactor's own check that no stale timer is left). */
TEST(released_request_leaves_no_timer_for_its_hold_deadline) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1); /* no blocking accept: no timer of the direct mode */
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 600000);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    uint64_t before = wsp_now_ms();
    WSPHELD h = hold_next(l, hold_all, 0);
    uint64_t due = wsp_reactor_timer_armed_ms();
    CHECK(due >= before + 600000 && due <= wsp_now_ms() + 600000); /* the hold deadline's */
    int err = 0;
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(wsp_reactor_timer_armed_ms(), 0);
    CHECK_EQ(stats_of(l).queued, 1);
    close(fd);
    close_socket(l);
}

/* With no hold deadline (WSP_HOLD_DEADLINE 0) a held plain request has nothing to wait for: the
 * hold sets no timer, not even one far ahead, and the reactor's timerfd stays disarmed. */
TEST(plain_request_held_without_a_hold_deadline_sets_no_timer) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    set_nonblocking(l, 1); /* no blocking accept: no timer of the direct mode */
    set_dword(l, SOL_WSP, WSP_HOLD_DEADLINE, 0);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    CHECK_EQ(wsp_reactor_timer_armed_ms(), 0);
    WSPHELD h = hold_next(l, hold_all, 0);
    CHECK_EQ(stats_of(l).holding, 1);
    CHECK_EQ(wsp_reactor_timer_armed_ms(), 0);
    close(fd); /* the held request is still watched: its client leaving ends it */
    WAIT_FOR(stats_of(l).withdrawn == 1, 10000);
    CHECK_EQ(stats_of(l).holding, 0);
    (void)h;
    close_socket(l);
}

/* A released request goes to the leader of three waiting accepts alone: its wake-up is the
 * leader's, which takes the request and wakes one sleeper to watch the queue in its place
 * (one empty look); the other sleeper is not woken for nothing. */
TEST(released_request_wakes_the_leader_alone) {
    start_held();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(l, &err);
    CHECK(so != NULL);
    int fd = raw_connect(&addr);
    WSPHELD h = hold_next(l, hold_all, 0);
    static struct held_acceptor a, b, c;
    a = (struct held_acceptor){.l = l};
    b = (struct held_acceptor){.l = l};
    c = (struct held_acceptor){.l = l};
    CHECK_EQ(pthread_create(&a.thread, NULL, held_acceptor_main, &a), 0);
    wait_blocked(&a.blocked); /* the leader */
    CHECK_EQ(pthread_create(&b.thread, NULL, held_acceptor_main, &b), 0);
    wait_blocked(&b.blocked);
    CHECK_EQ(pthread_create(&c.thread, NULL, held_acceptor_main, &c), 0);
    wait_blocked(&c.blocked);
    uint64_t looks = wsp_listener_empty_looks(so);
    CHECK_EQ(HeldRelease(h, &err), 0);
    CHECK_EQ(pthread_join(a.thread, NULL), 0);
    CHECK(a.s != INVALID_SOCKET);
    WAIT_FOR(wsp_listener_empty_looks(so) - looks >= 1, 10000); /* the successor's look */
    wait_blocked(&b.blocked);
    wait_blocked(&c.blocked);
    CHECK_EQ(wsp_listener_empty_looks(so) - looks, 1);
    int c2 = raw_connect(&addr), c3 = raw_connect(&addr);
    CHECK_EQ(pthread_join(b.thread, NULL), 0);
    CHECK_EQ(pthread_join(c.thread, NULL), 0);
    wsp_socket_release(so);
    close_socket(a.s);
    close_socket(b.s);
    close_socket(c.s);
    close(fd);
    close(c2);
    close(c3);
    close_socket(l);
}
