/* A connect-data client whose request the server never reads: sending it (handles.c,
 * wsp_fd_send_all) waits for room only until the connect's time-out, then the connect fails
 * with WSAETIMEDOUT. */
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

TEST(cdata_request_the_server_never_reads_times_out) {
    start();
    /* A plain listener that accepts nothing and reads nothing, with the least receive
     * window (its connections inherit it). */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(lfd >= 0);
    int tiny = 1;
    CHECK_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    CHECK_EQ(listen(lfd, 4), 0);
    struct sockaddr_storage addr;
    socklen_t alen = sizeof addr;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);

    SOCKET s = new_socket(WSP_CATALOG_CDATA_IPV4);
    enum { BIG = 16384 }; /* the largest caller data: more than both buffers hold */
    set_dword(s, SOL_WSP, WSP_MAX_CALLER_DATA, BIG);
    set_dword(s, SOL_WSP, WSP_CONNECT_TIMEOUT, 300);
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, SOL_SOCKET, SO_SNDBUF, (const char *)&tiny, sizeof tiny, &err),
             0);
    static char big[BIG];
    WSABUF caller = {BIG, big};
    CHECK_EQ(connect_full(s, &addr, &caller, NULL, NULL), WSAETIMEDOUT);
    close(lfd);
}
