/* Conditional accept on plain TCP and on the connect-data protocol. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"
#include "internal.h"
#include "support.h"

static int reject_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                      DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_REJECT;
}

static int defer_all(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f, GROUP *g,
                     DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g;
    (*(int *)ctx)++;
    return CF_DEFER;
}

/* Echoes the caller data back as callee data, prefixed with "re:". */
static int echo_data(LPWSABUF caller_id, LPWSABUF caller_data, LPQOS sqos, LPQOS gqos,
                     LPWSABUF callee_id, LPWSABUF callee_data, GROUP *g, DWORD_PTR ctx) {
    (void)caller_id, (void)sqos, (void)gqos, (void)callee_id, (void)g, (void)ctx;
    if (!caller_data)
        return CF_REJECT;
    if (callee_data->len < caller_data->len + 3)
        return CF_REJECT;
    memcpy(callee_data->buf, "re:", 3);
    memcpy(callee_data->buf + 3, caller_data->buf, caller_data->len);
    callee_data->len = caller_data->len + 3;
    return CF_ACCEPT;
}

struct client {
    struct sockaddr_storage addr;
    const char *data;
    int result;
    char callee[64];
    uint32_t callee_len;
};

static void *client_main(void *arg) {
    struct client *c = arg;
    DWORD cat = c->data ? WSP_CATALOG_CDATA_IPV4 : WSP_CATALOG_TCP_IPV4;
    SOCKET s = new_socket(cat);
    WSABUF callee = {sizeof c->callee, c->callee};
    c->result = connect_to(s, &c->addr, c->data, &callee);
    c->callee_len = callee.len;
    int err;
    T.lpWSPCloseSocket(s, &err);
    return NULL;
}

TEST(cdata_accept_carries_caller_and_callee_data) {
    start();
    struct client c = {.data = "hello"};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &c.addr);
    pthread_t t;
    pthread_create(&t, NULL, client_main, &c);
    int err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, echo_data, 0, &err);
    CHECK(a != INVALID_SOCKET);
    pthread_join(t, NULL);
    CHECK_EQ(c.result, 0);
    CHECK_EQ(c.callee_len, 8);
    CHECK_MEM(c.callee, "re:hello", 8);
}

TEST(cdata_reject_is_refusal_at_client) {
    start();
    struct client c = {.data = "x"};
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &c.addr);
    pthread_t t;
    pthread_create(&t, NULL, client_main, &c);
    int err = 0;
    SOCKET a = T.lpWSPAccept(l, NULL, NULL, reject_all, 0, &err);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(err, WSAECONNREFUSED);
    pthread_join(t, NULL);
    CHECK_EQ(c.result, WSAECONNREFUSED);
}

TEST(plain_defer_then_accept_same_peer) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 8, &addr);
    /* Plain TCP: the kernel completes the client's connect before any decision. */
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    struct sockaddr_storage client = local_address(c);
    int calls = 0, err = 0;
    struct sockaddr_storage seen;
    int len = sizeof seen;
    SOCKET a = T.lpWSPAccept(l, (struct sockaddr *)&seen, &len, defer_all, (DWORD_PTR)&calls,
                             &err);
    CHECK(a == INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN);
    CHECK_EQ(calls, 1);
    len = sizeof seen;
    a = T.lpWSPAccept(l, (struct sockaddr *)&seen, &len, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(err, WSATRY_AGAIN); /* a call that succeeds writes no error code, as every call */
    CHECK_EQ(((struct sockaddr_in *)&seen)->sin_port, ((struct sockaddr_in *)&client)->sin_port);
}

TEST(last_cleanup_closes_sockets_left_open) {
    int before = open_fds();
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 8, &addr);
    SOCKET plain = listener(WSP_CATALOG_TCP_IPV4, 8, NULL);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK(open_fds() > before + 3);
    int err = 0;
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
    /* Every descriptor the provider opened is closed, the reactor's included. */
    CHECK_EQ(open_fds(), before);
    start();
    char buf[4];
    WSABUF b = {sizeof buf, buf};
    DWORD n = 0, flags = 0;
    CHECK_EQ(T.lpWSPRecv(c, &b, 1, &n, &flags, NULL, NULL, NULL, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(T.lpWSPCloseSocket(l, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    CHECK_EQ(T.lpWSPCloseSocket(plain, &err), SOCKET_ERROR);
    CHECK_EQ(T.lpWSPCleanup(&err), 0);
}

/* Whether the descriptor of the provider's socket s has O_NONBLOCK. */
static int fd_nonblocking(SOCKET s) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    int flags = fcntl(so->fd, F_GETFL);
    wsp_socket_release(so);
    CHECK(flags >= 0);
    return (flags & O_NONBLOCK) != 0;
}

/* The connection is taken off the kernel's queue in the listener's mode, which the accepted
 * socket inherits: its descriptor is in that mode already, and accepting it costs no system
 * call to set the mode (ioctl FIONBIO), blocking or not. */
TEST(accepted_socket_comes_in_its_listeners_mode_without_a_call_to_set_it) {
    start();
    for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
        struct sockaddr_storage addr;
        SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
        if (nonblocking)
            set_nonblocking(l, 1);
        int fd = raw_connect(&addr);
        if (nonblocking)
            WAIT_FOR(stats_of(l).queued == 1, 10000);
        FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
        int err = 0;
        SOCKET a = accept_with(l, NULL, 0, &err);
        CHECK(a != INVALID_SOCKET);
        CHECK_EQ(fault_calls(FAULT_ioctl), 0);
        fault_clear();
        CHECK_EQ(fd_nonblocking(a), nonblocking);
        close_socket(a);
        close(fd);
        close_socket(l);
    }
}

/* A connection taken off the kernel's queue while the listener blocked, accepted after it was
 * made non-blocking: the accepted socket is non-blocking (its descriptor set so, once). */
TEST(accepted_socket_takes_the_mode_its_listener_changed_to_after_the_connection_came) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    int fd = raw_connect(&addr);
    WAIT_FOR(stats_of(l).queued == 1, 10000); /* taken by the reactor, in blocking mode */
    set_nonblocking(l, 1);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    int err = 0;
    SOCKET a = accept_with(l, NULL, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(fault_calls(FAULT_ioctl), 1);
    fault_clear();
    CHECK_EQ(fd_nonblocking(a), 1);
    close_socket(a);
    close(fd);
    close_socket(l);
}

/* An ACCEPT frame the kernel takes a few bytes at a time (short sends) goes out whole, in
 * order, without growing the send buffer: only a full buffer is a reason to. */
TEST(cdata_accept_frame_sent_in_short_pieces_arrives_whole) {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_CDATA_IPV4, 4, &addr);
    char out[] = "hello", in[32];
    WSABUF caller = {5, out}, callee = {sizeof in, in};
    static struct async_connect c;
    c = (struct async_connect){.s = new_socket(WSP_CATALOG_CDATA_IPV4), .addr = addr,
                               .caller = &caller, .callee = &callee};
    async_connect_start(&c);
    WAIT_FOR(stats_of(l).queued == 1, 10000);
    FAULT(send, .times = 2, .max_bytes = 3, .this_thread = 1);
    FAULT(setsockopt, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    int err = 0;
    SOCKET a = accept_with(l, echo_data, 0, &err);
    CHECK(a != INVALID_SOCKET);
    CHECK_EQ(fault_fired(FAULT_send), 2);
    CHECK_EQ(fault_calls(FAULT_setsockopt), 0);
    fault_clear();
    CHECK_EQ(async_connect_join(&c), 0);
    CHECK_EQ(callee.len, 8);
    CHECK_MEM(in, "re:hello", 8);
    close_socket(a);
    close_socket(c.s);
    close_socket(l);
}
