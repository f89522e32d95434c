#include "support.h"

#include <dirent.h>
#include <string.h>
#include <time.h>

WSPPROC_TABLE T;

void start(void) {
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
}

SOCKET new_socket(DWORD catalog) {
    WSAPROTOCOL_INFO info;
    memset(&info, 0, sizeof info);
    info.dwCatalogEntryId = catalog;
    int err = 0;
    SOCKET s = T.lpWSPSocket(0, 0, 0, &info, 0, 0, &err);
    CHECK(s != INVALID_SOCKET);
    return s;
}

SOCKET listener(DWORD catalog, int backlog, struct sockaddr_storage *addr) {
    SOCKET s = new_socket(catalog);
    int six = catalog == WSP_CATALOG_TCP_IPV6 || catalog == WSP_CATALOG_CDATA_IPV6;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int len;
    if (six) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    }
    int err = 0;
    CHECK_EQ(T.lpWSPBind(s, (struct sockaddr *)&ss, len, &err), 0);
    CHECK_EQ(T.lpWSPListen(s, backlog, &err), 0);
    if (addr)
        *addr = local_address(s);
    return s;
}

struct sockaddr_storage local_address(SOCKET s) {
    struct sockaddr_storage ss;
    int len = sizeof ss, err = 0;
    CHECK_EQ(T.lpWSPGetSockName(s, (struct sockaddr *)&ss, &len, &err), 0);
    return ss;
}

int connect_to(SOCKET s, const struct sockaddr_storage *addr, const char *data, WSABUF *callee) {
    WSABUF caller = {data ? (uint32_t)strlen(data) : 0, (char *)data};
    int err = 0;
    int len = addr->ss_family == AF_INET6 ? (int)sizeof(struct sockaddr_in6)
                                          : (int)sizeof(struct sockaddr_in);
    int rc = T.lpWSPConnect(s, (const struct sockaddr *)addr, len, data ? &caller : NULL, callee,
                            NULL, NULL, &err);
    return rc == 0 ? 0 : err;
}

void set_dword(SOCKET s, int level, int name, DWORD v) {
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(s, level, name, (const char *)&v, sizeof v, &err), 0);
}

int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
