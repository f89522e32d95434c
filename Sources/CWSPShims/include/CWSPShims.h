/* What the Swift module needs from Linux that Swift's Glibc module does not bring in:
 * epoll, for the poller that waits on event objects' descriptors. A shim target in the manner
 * of SwiftNIO's CNIOLinux, so that Swift never lays out a C struct by hand. */
#ifndef CWSP_SHIMS_H
#define CWSP_SHIMS_H

#include <stdint.h>

/* epoll_create1(EPOLL_CLOEXEC): the descriptor or -1 with errno. */
int cwsp_epoll_create(void);
/* Watches fd for readability, level-triggered, reporting token. 0 or an errno value. */
int cwsp_epoll_add(int epfd, int fd, uint64_t token);
/* Stops watching fd. */
void cwsp_epoll_remove(int epfd, int fd);
/* Waits (timeout_ms -1: forever) and writes the tokens of ready descriptors to tokens, at most
 * capacity (capped at 64). Returns their count, 0 after EINTR or a time-out, -1 on error. */
int cwsp_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms);

#endif
