/* Helpers the network-event and select tests share (static: each test file gets its own). */
#ifndef WSP_TEST_NETEVENTS_H
#define WSP_TEST_NETEVENTS_H

#include <pthread.h>
#include <string.h>

#include "support.h"

#define NE_MSG 0x401

static inline int ne_addr_len(const struct sockaddr_storage *ss) {
    return ss->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                     : (int)sizeof(struct sockaddr_in);
}

static inline void ne_close(SOCKET s) {
    int err = 0;
    CHECK_EQ(T.lpWSPCloseSocket(s, &err), 0);
}

static inline void ne_fionbio(SOCKET s, DWORD on) {
    int err = 0;
    DWORD ret = 0;
    CHECK_EQ(T.lpWSPIoctl(s, WSP_FIONBIO, &on, sizeof on, NULL, 0, &ret, NULL, NULL, NULL, &err),
             0);
}

static inline SOCKET ne_accept(SOCKET l, LPCONDITIONPROC cond, int *err) {
    *err = 0;
    return T.lpWSPAccept(l, NULL, NULL, cond, 0, err);
}

/* A blocking connect on its own thread (a connect-data connect waits for the accept). */
struct ne_connector {
    pthread_t thread;
    SOCKET s;
    struct sockaddr_storage addr;
    const char *data;
    int result;
};

static inline void *ne_connector_main(void *arg) {
    struct ne_connector *k = arg;
    k->result = connect_to(k->s, &k->addr, k->data, NULL);
    return NULL;
}

static inline void ne_start_connector(struct ne_connector *k) {
    CHECK_EQ(pthread_create(&k->thread, NULL, ne_connector_main, k), 0);
}

static inline void ne_join_connector(struct ne_connector *k) {
    pthread_join(k->thread, NULL);
    CHECK_EQ(k->result, 0);
}

/* A connected pair on catalog entry cat: *c the client, *s the accepted socket. */
static inline void ne_pair(DWORD cat, SOCKET *c, SOCKET *s, SOCKET *l) {
    struct ne_connector k = {.data = cat == WSP_CATALOG_CDATA_IPV4 ? "x" : NULL};
    *l = listener(cat, 16, &k.addr);
    *c = k.s = new_socket(cat);
    ne_start_connector(&k);
    int err = 0;
    *s = ne_accept(*l, NULL, &err);
    CHECK(*s != INVALID_SOCKET);
    ne_join_connector(&k);
}

/* Starts a non-blocking connect; the socket must already be non-blocking (registered). */
static inline int ne_connect(SOCKET c, const struct sockaddr_storage *addr, const char *data,
                             LPQOS qos) {
    WSABUF caller = {data ? (uint32_t)strlen(data) : 0, (char *)data};
    int err = 0;
    int rc = T.lpWSPConnect(c, (const struct sockaddr *)addr, ne_addr_len(addr),
                            data ? &caller : NULL, NULL, qos, NULL, &err);
    return rc == 0 ? 0 : err;
}

static inline int ne_send(SOCKET s, const void *buf, size_t n, DWORD flags, DWORD *sent) {
    WSABUF b = {(uint32_t)n, (char *)buf};
    int err = 0;
    DWORD done = 0;
    int rc = T.lpWSPSend(s, &b, 1, &done, flags, NULL, NULL, NULL, &err);
    if (sent)
        *sent = done;
    return rc == 0 ? 0 : err;
}

static inline void ne_send_str(SOCKET s, const char *str) {
    DWORD sent = 0;
    CHECK_EQ(ne_send(s, str, strlen(str), 0, &sent), 0);
    CHECK_EQ(sent, strlen(str));
}

/* One lpWSPRecv: the byte count, or -WSA error. */
static inline int ne_recv(SOCKET s, void *buf, size_t n, DWORD flags) {
    WSABUF b = {(uint32_t)n, (char *)buf};
    int err = 0;
    DWORD got = 0, fl = flags;
    int rc = T.lpWSPRecv(s, &b, 1, &got, &fl, NULL, NULL, NULL, &err);
    return rc == 0 ? (int)got : -err;
}

static inline int ne_signalled(WSAEVENT ev, int ms) {
    return WSAWaitForMultipleEvents(1, &ev, FALSE, (DWORD)ms, FALSE) == WSA_WAIT_EVENT_0;
}

static inline WSANETWORKEVENTS ne_enum(SOCKET s, WSAEVENT ev) {
    WSANETWORKEVENTS ne;
    memset(&ne, 0, sizeof ne);
    int err = 0;
    CHECK_EQ(T.lpWSPEnumNetworkEvents(s, ev, &ne, &err), 0);
    /* Readiness carries no error: only FD_CONNECT and FD_CLOSE report one. */
    const LONG plain = FD_READ | FD_WRITE | FD_OOB | FD_ACCEPT | FD_QOS;
    for (int i = 0; i < FD_MAX_EVENTS; i++)
        if ((ne.lNetworkEvents & plain & (1 << i)) && ne.iErrorCode[i] != 0) {
            fprintf(stderr, "event bit %d reported with error %d\n", i, ne.iErrorCode[i]);
            CHECK(0);
        }
    return ne;
}

/* Waits up to ms for the event bit on s (signalled through ev), enumerating as it goes; the
 * events seen are accumulated in *acc (error codes of the last occurrence). 1 when seen. */
static inline int ne_wait_bit(SOCKET s, WSAEVENT ev, LONG bit, int ms, WSANETWORKEVENTS *acc) {
    long long deadline = now_ms() + ms;
    memset(acc, 0, sizeof *acc);
    for (;;) {
        long long left = deadline - now_ms();
        if (left < 0)
            left = 0;
        if (ne_signalled(ev, (int)left)) {
            WSANETWORKEVENTS ne = ne_enum(s, ev);
            for (int i = 0; i < FD_MAX_EVENTS; i++)
                if (ne.lNetworkEvents & (1 << i))
                    acc->iErrorCode[i] = ne.iErrorCode[i];
            acc->lNetworkEvents |= ne.lNetworkEvents;
            if (acc->lNetworkEvents & bit)
                return 1;
        }
        if (now_ms() >= deadline)
            return 0;
    }
}

static inline WSAEVENT ne_event_select(SOCKET s, LONG events) {
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, events, &err), 0);
    return ev;
}


static inline int ne_reject(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                            GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_REJECT;
}

static inline int ne_defer(LPWSABUF a, LPWSABUF b, LPQOS c, LPQOS d, LPWSABUF e, LPWSABUF f,
                           GROUP *g, DWORD_PTR ctx) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)ctx;
    return CF_DEFER;
}

/* A blocking accept on its own thread, with a condition function; when after is set, it waits
 * for that thread to block first. */
struct ne_acceptor {
    pthread_t thread;
    SOCKET l;
    LPCONDITIONPROC cond;
    struct blocker *after;
    SOCKET result;
    int err;
};

static inline void *ne_acceptor_main(void *arg) {
    struct ne_acceptor *a = arg;
    if (a->after)
        wait_blocked(a->after);
    a->result = ne_accept(a->l, a->cond, &a->err);
    return NULL;
}

static inline void ne_start_acceptor(struct ne_acceptor *a) {
    CHECK_EQ(pthread_create(&a->thread, NULL, ne_acceptor_main, a), 0);
}

/* Sends from c until a send would block: the buffers between c and its peer are full. */
static inline void ne_fill_until_blocked(SOCKET c) {
    static char chunk[65536];
    int blocked = 0;
    for (int i = 0; i < 10000 && !blocked; i++)
        blocked = ne_send(c, chunk, sizeof chunk, 0, NULL) == WSAEWOULDBLOCK;
    CHECK(blocked);
}

/* Reads all that the non-blocking s receives until c's registration on ev reports FD_WRITE
 * (or 10 s pass); returns every event c reported meanwhile. */
static inline LONG ne_drain_until_write(SOCKET s, SOCKET c, WSAEVENT ev) {
    static char sink[65536];
    long long deadline = now_ms() + 10000;
    LONG seen = 0;
    WSANETWORKEVENTS ne;
    while (!(seen & FD_WRITE) && now_ms() < deadline) {
        while (ne_recv(s, sink, sizeof sink, 0) > 0) {
        }
        if (ne_wait_bit(c, ev, FD_WRITE, 20, &ne) || ne.lNetworkEvents)
            seen |= ne.lNetworkEvents;
    }
    return seen;
}

#endif
