/* Conformance: lpWSPSelect and WSPFDIsSet. */
#include <unistd.h>

#include "conformance.h"

#define SOON 2000

/* A set of n handles (n may pass WSP_FD_SETSIZE: the storage is the caller's). */
struct big_set {
    UINT fd_count;
    SOCKET fd_array[200];
};

static int select_one(WSPFD_SET *r, WSPFD_SET *w, WSPFD_SET *e, long ms, int *err) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    *err = 0;
    return T.lpWSPSelect(0, r, w, e, &tv, err);
}

CONFORMANCE(select_listener_readable_with_a_pending_request, DOCUMENTED("select"),
            "a listening socket is readable when a connection is pending, so accept will not "
            "block") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    WSPFD_SET r = {1, {l}};
    int err;
    CHECK_EQ(select_one(&r, NULL, NULL, 0, &err), 0);
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    r = (WSPFD_SET){1, {l}};
    CHECK_EQ(select_one(&r, NULL, NULL, SOON, &err), 1);
    CHECK(WSP_FD_ISSET(l, &r));
}

CONFORMANCE(select_with_no_socket_is_einval, DOCUMENTED("select"),
            "with no socket in any set, select fails with WSAEINVAL") {
    start();
    WSPFD_SET r = {0, {0}};
    int err;
    CHECK_EQ(select_one(&r, NULL, NULL, 0, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
    CHECK_EQ(select_one(NULL, NULL, NULL, 0, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAEINVAL);
}

CONFORMANCE(select_time_out_returns_zero_and_empties_the_sets, DOCUMENTED("select"),
            "select returns 0 when the time limit expires, with the sets emptied") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSPFD_SET r = {1, {s}};
    int err;
    CHECK_EQ(select_one(&r, NULL, NULL, 20, &err), 0);
    CHECK_EQ(r.fd_count, 0);
}

CONFORMANCE(select_counts_a_socket_listed_twice_once, OBSERVED,
            "a socket listed twice in one set is reported, and counted, once") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSPFD_SET w = {2, {c, c}};
    int err;
    CHECK_EQ(select_one(NULL, &w, NULL, SOON, &err), 1);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == c);
}

CONFORMANCE(select_one_set_as_read_and_write_gets_the_union, OBSERVED,
            "one set passed as both the read and the write set holds the union of both "
            "answers") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    /* s is writable, not readable; l is readable once a request waits. */
    struct sockaddr_storage addr = local_address(l);
    SOCKET c2 = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c2, &addr, NULL, NULL), 0);
    WSPFD_SET probe = {1, {l}};
    int err;
    CHECK_EQ(select_one(&probe, NULL, NULL, SOON, &err), 1);
    WSPFD_SET both = {2, {l, s}};
    CHECK_EQ(select_one(&both, &both, NULL, SOON, &err), 2);
    CHECK_EQ(both.fd_count, 2);
    CHECK(WSP_FD_ISSET(l, &both));
    CHECK(WSP_FD_ISSET(s, &both));
}

CONFORMANCE(select_completed_nonblocking_connect_is_writable_and_usable_at_once, OBSERVED,
            "a non-blocking connect the kernel has completed is writable in the same select "
            "as its accepted peer, and a send right after succeeds") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    for (int round = 0; round < 20; round++) {
        SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
        set_nonblocking(c, 1);
        CHECK_EQ(ne_connect(c, &addr, NULL, NULL), WSAEWOULDBLOCK);
        int err;
        SOCKET a = accept_with(l, NULL, 0, &err); /* blocking: the connection is up */
        CHECK(a != INVALID_SOCKET);
        WSPFD_SET w = {2, {a, c}};
        CHECK_EQ(select_one(NULL, &w, NULL, SOON, &err), 2);
        DWORD sent;
        CHECK_EQ(ne_send(c, "x", 1, 0, &sent), 0);
        CHECK_EQ(sent, 1);
        close_socket(c);
        close_socket(a);
    }
}

static struct sockaddr_storage refusing_address(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    close(fd); /* bound, never listening, closed: connects there are refused */
    return ss;
}

static int so_error(SOCKET s) {
    int v = -1, len = sizeof v, err = 0;
    CHECK_EQ(T.lpWSPGetSockOpt(s, SOL_SOCKET, SO_ERROR, (char *)&v, &len, &err), 0);
    return v;
}

CONFORMANCE(select_failed_nonblocking_connect_stays_exceptional_with_its_error,
            DOCUMENTED("select"),
            "a failed non-blocking connect puts the socket in the except set; it stays there "
            "and SO_ERROR keeps WSAECONNREFUSED (reading it does not clear it: observed) "
            "until a connect succeeds") {
    start();
    struct sockaddr_storage dead = refusing_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    set_nonblocking(c, 1);
    CHECK_EQ(ne_connect(c, &dead, NULL, NULL), WSAEWOULDBLOCK);
    WSPFD_SET e = {1, {c}};
    int err;
    CHECK_EQ(select_one(NULL, NULL, &e, SOON, &err), 1);
    CHECK_EQ(so_error(c), WSAECONNREFUSED);
    CHECK_EQ(so_error(c), WSAECONNREFUSED);
    e = (WSPFD_SET){1, {c}};
    CHECK_EQ(select_one(NULL, NULL, &e, 0, &err), 1);
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    set_nonblocking(c, 0);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    CHECK_EQ(so_error(c), 0);
    e = (WSPFD_SET){1, {c}};
    CHECK_EQ(select_one(NULL, NULL, &e, 0, &err), 0);
    (void)l;
}

CONFORMANCE(select_failed_blocking_connect_keeps_its_error_too, OBSERVED,
            "after a refused blocking connect SO_ERROR reports WSAECONNREFUSED and the socket "
            "is in the except set") {
    start();
    struct sockaddr_storage dead = refusing_address();
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &dead, NULL, NULL), WSAECONNREFUSED);
    CHECK_EQ(so_error(c), WSAECONNREFUSED);
    WSPFD_SET e = {1, {c}};
    int err;
    CHECK_EQ(select_one(NULL, NULL, &e, 0, &err), 1);
}

static void urgent_byte(int inline_oob, int *readable, int *exceptional) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int on = inline_oob, err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_OOBINLINE, (const char *)&on, sizeof on, &err),
             0);
    DWORD sent;
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, &sent), 0);
    WSPFD_SET r = {1, {s}}, e = {1, {s}};
    CHECK(select_one(&r, NULL, &e, SOON, &err) >= 1); /* it has arrived */
    r = (WSPFD_SET){1, {s}};
    e = (WSPFD_SET){1, {s}};
    CHECK(select_one(&r, NULL, &e, 0, &err) >= 1);
    *readable = (int)r.fd_count;
    *exceptional = (int)e.fd_count;
}

CONFORMANCE(select_urgent_data_is_exceptional, DOCUMENTED("select"),
            "urgent (OOB) data puts the socket in the except set when SO_OOBINLINE is off") {
    int r, e;
    urgent_byte(0, &r, &e);
    CHECK_EQ(e, 1);
}

CONFORMANCE(select_urgent_data_inline_is_readable_only, DOCUMENTED("select"),
            "with SO_OOBINLINE, urgent data makes the socket readable, not exceptional") {
    int r, e;
    urgent_byte(1, &r, &e);
    CHECK_EQ(r, 1);
    CHECK_EQ(e, 0);
}

struct closer {
    SOCKET s;
};

static void *close_soon(void *arg) {
    struct closer *k = arg;
    sleep_ms(50); /* lets the select start waiting; either order gives the same answer */
    int err = 0;
    T.lpWSPCloseSocket(k->s, &err);
    return NULL;
}

CONFORMANCE(select_socket_closed_by_another_thread_in_the_except_set_is_enotsock, OBSERVED,
            "a socket closed by another thread while in the except set makes select fail with "
            "WSAENOTSOCK") {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct closer k = {s};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, close_soon, &k), 0);
    WSPFD_SET e = {1, {s}};
    int err;
    CHECK_EQ(select_one(NULL, NULL, &e, 10000, &err), SOCKET_ERROR);
    CHECK_EQ(err, WSAENOTSOCK);
    pthread_join(t, NULL);
}

CONFORMANCE(select_takes_sets_past_64_sockets, DOCUMENTED("select"),
            "a program may raise FD_SETSIZE: select takes a set of more than 64 sockets") {
    start();
    struct sockaddr_storage addr;
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &addr);
    struct big_set w = {0, {0}};
    for (int i = 0; i < 100; i++)
        w.fd_array[w.fd_count++] = new_socket(WSP_CATALOG_TCP_IPV4); /* not writable */
    SOCKET c = new_socket(WSP_CATALOG_TCP_IPV4);
    CHECK_EQ(connect_to(c, &addr, NULL, NULL), 0);
    w.fd_array[w.fd_count++] = c; /* the 101st, and the one writable */
    int err;
    CHECK_EQ(select_one(NULL, (WSPFD_SET *)&w, NULL, SOON, &err), 1);
    CHECK_EQ(w.fd_count, 1);
    CHECK(w.fd_array[0] == c);
    struct big_set probe = {0, {0}};
    for (int i = 0; i < 150; i++)
        probe.fd_array[probe.fd_count++] = (SOCKET)(uintptr_t)(1000 + i);
    CHECK(WSPFDIsSet((SOCKET)(uintptr_t)1149, (WSPFD_SET *)&probe)); /* past 64 too */
    (void)l;
}
