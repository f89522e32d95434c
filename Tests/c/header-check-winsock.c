/* Compiled (not run) by `make check-c` as C99, C11 and C++, like header-check.c:
 * wsp/winsock2.h must stand on its own with no warning under -pedantic, with and without a
 * program's own FD_SETSIZE (WSP_CHECK_FD_SETSIZE), and with the POSIX socket headers
 * included again after it. */
#ifdef WSP_CHECK_FD_SETSIZE
#define FD_SETSIZE 300
#endif
#include <wsp/winsock2.h>
#include <sys/select.h>
#include <sys/socket.h>

#ifdef WSP_CHECK_FD_SETSIZE
typedef char fd_setsize_kept[FD_SETSIZE == 300 ? 1 : -1];
#else
typedef char fd_setsize_default[FD_SETSIZE == 64 ? 1 : -1];
#endif
typedef char fd_set_is_winsocks[sizeof(fd_set) == sizeof(SOCKET) * (FD_SETSIZE + 1) ? 1 : -1];

int main(void) {
    WSADATA data;
    fd_set set;
    SOCKET s = INVALID_SOCKET;
    FD_ZERO(&set);
    FD_SET(s, &set);
    FD_CLR(s, &set);
    if (WSAStartup(MAKEWORD(2, 2), &data) != 0)
        return 1;
    s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    (void)select(0, &set, NULL, NULL, NULL);
    (void)FD_ISSET(s, &set);
    closesocket(s);
    return WSACleanup();
}
