/* Conditional accept on plain TCP and on the connect-data protocol. */
#include <pthread.h>
#include <string.h>

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
