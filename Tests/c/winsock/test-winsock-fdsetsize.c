/* A program's own FD_SETSIZE, defined before the include as on Windows: its fd_set holds
 * that many handles, the macros fill it to that size, and the library's FD_ISSET and select
 * read the program's sets at their size, not the library's 64. */
#define FD_SETSIZE 128
#include <wsp/winsock2.h>

#include <string.h>

#include "harness.h"

TEST(winsock_fd_setsize_defined_by_the_program) {
    CHECK_EQ(FD_SETSIZE, 128);
    CHECK_EQ(sizeof(fd_set), offsetof(fd_set, fd_array) + 128 * sizeof(SOCKET));
    fd_set set;
    FD_ZERO(&set);
    for (SOCKET s = 1; s <= 130; s++)
        FD_SET(s, &set);
    CHECK_EQ(set.fd_count, 128);
    CHECK(FD_ISSET((SOCKET)100, &set)); /* beyond the library's own 64 */
    CHECK(FD_ISSET((SOCKET)128, &set));
    CHECK(!FD_ISSET((SOCKET)129, &set));
    FD_CLR((SOCKET)1, &set);
    CHECK_EQ(set.fd_array[126], 128);

    /* select with the program's sets. */
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(c, (SOCKADDR *)&a, sizeof a), 0);
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    FD_SET(l, &readable);
    FD_SET(c, &writable);
    CHECK_EQ(select(0, &readable, NULL, NULL, NULL), 1);
    CHECK(FD_ISSET(l, &readable));
    CHECK_EQ(select(0, NULL, &writable, NULL, NULL), 1);
    CHECK(FD_ISSET(c, &writable));
    CHECK_EQ(closesocket(c), 0);
    CHECK_EQ(closesocket(l), 0);
    CHECK_EQ(WSACleanup(), 0);
}

/* Sets of different sizes, the largest not the first: each reaches the provider whole. Here a
 * read set of one, a write set of 100 and an except set of 40 (the program's FD_SETSIZE is
 * 128, the library's 64). */
TEST(winsock_select_sets_of_different_sizes_reach_the_provider_whole) {
    WSADATA d;
    CHECK_EQ(WSAStartup(MAKEWORD(2, 2), &d), 0);
    SOCKADDR_IN a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(bind(l, (SOCKADDR *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 1), 0);
    int len = sizeof a;
    CHECK_EQ(getsockname(l, (SOCKADDR *)&a, &len), 0);
    SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(c, (SOCKADDR *)&a, sizeof a), 0);
    fd_set probe;
    FD_ZERO(&probe);
    FD_SET(l, &probe);
    CHECK_EQ(select(0, &probe, NULL, NULL, NULL), 1); /* the request has reached the listener */
    static SOCKET idle[99]; /* never connected: neither writable nor exceptional */
    fd_set readable, writable, failed;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    FD_ZERO(&failed);
    FD_SET(l, &readable);
    for (int i = 0; i < 99; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(idle[i] != INVALID_SOCKET);
        FD_SET(idle[i], &writable);
        if (i < 40)
            FD_SET(idle[i], &failed);
    }
    FD_SET(c, &writable); /* the last of 100 */
    CHECK_EQ(writable.fd_count, 100);
    struct timeval zero = {0, 0};
    CHECK_EQ(select(0, &readable, &writable, &failed, &zero), 2);
    CHECK_EQ(readable.fd_count, 1);
    CHECK(FD_ISSET(l, &readable));
    CHECK_EQ(writable.fd_count, 1);
    CHECK(FD_ISSET(c, &writable));
    CHECK_EQ(failed.fd_count, 0);
    CHECK_EQ(WSACleanup(), 0);
}
