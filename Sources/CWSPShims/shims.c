#include "CWSPShims.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>

int cwsp_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cwsp_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = token};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void cwsp_epoll_remove(int epfd, int fd) { epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int cwsp_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64)
        capacity = 64;
    int n = epoll_wait(epfd, events, capacity, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++)
        tokens[i] = events[i].data.u64;
    return n;
}
