/* Conformance through the Winsock API (<wsp/winsock2.h>): what the API layer itself must keep
 * of the provider's answers. */
#define FD_SETSIZE 128
#include <wsp/winsock2.h>

#include <string.h>

#include "conformance-label.h"

/* A listener on loopback and a client connected to it; *l, *c. */
static void connected(SOCKET *l, SOCKET *c, SOCKADDR_IN *a) {
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(bind(*l, (SOCKADDR *)a, sizeof *a), 0);
    CHECK_EQ(listen(*l, 4), 0);
    int len = sizeof *a;
    CHECK_EQ(getsockname(*l, (SOCKADDR *)a, &len), 0);
    *c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(*c, (SOCKADDR *)a, sizeof *a), 0);
}

CONFORMANCE(winsock_select_one_set_as_read_and_write_gets_the_union, OBSERVED,
            "select with one fd_set passed as both read and write set leaves the union of both "
            "answers in it") {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKET l, c;
    SOCKADDR_IN a;
    connected(&l, &c, &a);
    fd_set both, probe;
    FD_ZERO(&probe);
    FD_SET(l, &probe);
    struct timeval wait = {2, 0};
    CHECK_EQ(select(0, &probe, NULL, NULL, &wait), 1); /* the request has reached the listener */
    FD_ZERO(&both);
    FD_SET(l, &both); /* readable: a request waits */
    FD_SET(c, &both); /* writable */
    struct timeval tv = {2, 0};
    CHECK_EQ(select(0, &both, &both, NULL, &tv), 2);
    CHECK(FD_ISSET(l, &both));
    CHECK(FD_ISSET(c, &both));
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}

CONFORMANCE(winsock_select_takes_the_programs_fd_setsize, DOCUMENTED("select"),
            "a program that defines FD_SETSIZE above 64 before the include gets sets of that "
            "size, and select takes them") {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKET l, c;
    SOCKADDR_IN a;
    connected(&l, &c, &a);
    fd_set w;
    FD_ZERO(&w);
    SOCKET idle[100];
    for (int i = 0; i < 100; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM, 0); /* never connected: not writable */
        FD_SET(idle[i], &w);
    }
    FD_SET(c, &w); /* the 101st */
    struct timeval tv = {2, 0};
    CHECK_EQ(select(0, NULL, &w, NULL, &tv), 1);
    CHECK(FD_ISSET(c, &w));
    for (int i = 0; i < 100; i++)
        closesocket(idle[i]);
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}
