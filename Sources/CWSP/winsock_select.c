/* select and FD_ISSET over Winsock's fd_set.
 *
 * A program's fd_set holds FD_SETSIZE handles, which the program chooses; the provider's
 * WSPFD_SET holds WSP_FD_SETSIZE. Only the count and the handles in use are copied, into
 * sets shaped as the SPI's with room for them all, so a provider that takes larger sets gets
 * them whole and one that does not answers for itself. ws2_32 likewise hands the whole call to
 * the provider of the first handle. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "winsock_internal.h"

/* The handles of a program's set, whatever its FD_SETSIZE: through a pointer, not the
 * array's declared size (the library's own is 64). */
static SOCKET *handles(ws2_fd_set *set) { return set->fd_array; }

int ws2_fd_isset(SOCKET fd, ws2_fd_set *set) {
    if (!set)
        return 0;
    const SOCKET *a = handles(set);
    for (u_int i = 0; i < set->fd_count; i++)
        if (a[i] == fd)
            return 1;
    return 0;
}

int ws2_select(int nfds, ws2_fd_set *readfds, ws2_fd_set *writefds, ws2_fd_set *exceptfds,
               const struct timeval *timeout) {
    int err = winsock_check_started();
    if (err)
        return winsock_fail(err);
    ws2_fd_set *sets[] = {readfds, writefds, exceptfds};
    SOCKET first = INVALID_SOCKET;
    size_t room = 0;
    for (int i = 2; i >= 0; i--) {
        if (!sets[i] || sets[i]->fd_count == 0)
            continue;
        first = handles(sets[i])[0];
        if (sets[i]->fd_count > room)
            room = sets[i]->fd_count;
    }
    if (first == INVALID_SOCKET)
        return winsock_fail(WSAEINVAL); /* no handle names a provider */
    struct winsock_route r;
    err = winsock_route_find(first, &r);
    if (err)
        return winsock_fail(err);

    if (room < WSP_FD_SETSIZE)
        room = WSP_FD_SETSIZE;
    size_t one = offsetof(WSPFD_SET, fd_array) + room * sizeof(SOCKET);
    char *block = malloc(3 * one);
    if (!block)
        return winsock_fail(WSAENOBUFS);
    WSPFD_SET *spi[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        if (!sets[i])
            continue;
        /* One set passed in two places stays one set: the provider answers with the union. */
        if ((i > 0 && sets[i] == sets[0]) || (i > 1 && sets[i] == sets[1])) {
            spi[i] = spi[sets[i] == sets[0] ? 0 : 1];
            continue;
        }
        spi[i] = (WSPFD_SET *)(void *)(block + (size_t)i * one);
        spi[i]->fd_count = sets[i]->fd_count;
        memcpy((char *)spi[i] + offsetof(WSPFD_SET, fd_array), handles(sets[i]),
               sets[i]->fd_count * sizeof(SOCKET));
    }
    int rc = r.provider->table.lpWSPSelect(nfds, spi[0], spi[1], spi[2], timeout, &err);
    if (rc != SOCKET_ERROR) {
        for (int i = 0; i < 3; i++) {
            if (!sets[i])
                continue;
            sets[i]->fd_count = spi[i]->fd_count;
            memcpy(handles(sets[i]), (char *)spi[i] + offsetof(WSPFD_SET, fd_array),
                   spi[i]->fd_count * sizeof(SOCKET));
        }
    }
    free(block);
    return rc == SOCKET_ERROR ? winsock_fail(err) : rc;
}
