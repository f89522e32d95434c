/* Helpers the socket tests share: start the provider, make listeners and clients. */
#ifndef WSP_TEST_SUPPORT_H
#define WSP_TEST_SUPPORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <wsp.h>

#include "harness.h"

extern WSPPROC_TABLE T; /* the provider's table, filled by start() */

/* WSPStartup with a zeroed upcall table; fails the test on error. */
void start(void);
/* A bound, listening socket on 127.0.0.1 (or ::1 with AF_INET6), port chosen by the kernel;
 * catalog: a WSP_CATALOG_* id. Its address goes to *addr when addr is not NULL. */
SOCKET listener(DWORD catalog, int backlog, struct sockaddr_storage *addr);
/* A socket of a catalog entry. */
SOCKET new_socket(DWORD catalog);
/* The socket's local address. */
struct sockaddr_storage local_address(SOCKET s);
/* A blocking connect with caller data (NULL: none); returns the WSA error or 0. */
int connect_to(SOCKET s, const struct sockaddr_storage *addr, const char *data, WSABUF *callee);
/* Sets a DWORD option. */
void set_dword(SOCKET s, int level, int name, DWORD v);
/* Number of open file descriptors of this process. */
int open_fds(void);
/* Sleeps for ms milliseconds. */
void sleep_ms(int ms);
/* Milliseconds on the monotonic clock. */
long long now_ms(void);

#endif
