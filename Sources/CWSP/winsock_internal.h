/* The Winsock API layer's private parts (winsock_*.c), shared by its files only.
 *
 * The layer sits where Windows' ws2_32 sits: above providers, knowing each only by the two
 * functions it exports (its catalog and its start-up) and the WSPPROC_TABLE start-up hands
 * out. Nothing here reaches into WSP's provider internals, so a second provider would be one
 * more entry in the provider list (winsock_startup.c).
 */
#ifndef WSP_WINSOCK_INTERNAL_H
#define WSP_WINSOCK_INTERNAL_H

#include "wsp/winsock2.h"

struct winsock_provider {
    int (*enum_protocols)(LPINT, LPWSAPROTOCOL_INFO, LPDWORD, LPINT);
    int (*startup)(WORD, LPWSPDATA, LPWSAPROTOCOL_INFO, WSPUPCALLTABLE, LPWSPPROC_TABLE);
    WSPPROC_TABLE table; /* what startup handed out; written while no call can read it */
};

/* The providers, in catalog order. */
extern struct winsock_provider winsock_providers[];
extern const int winsock_provider_count;

/* ---- the layer's own state (winsock_state.c, below the other winsock_*.c) -------------- */

/* Sets the calling thread's last error to code and returns SOCKET_ERROR. */
int winsock_fail(int code);

/* 0 when WSAStartup is in force, else WSANOTINITIALISED. */
int winsock_check_started(void);
/* WSAStartup and WSACleanup (winsock_startup.c), under their lock: whether it is in force. */
void winsock_set_started(int on);

/* ---- per-handle routing (winsock_routes.c) -------------------------------------------- */

/* Where a handle's calls go: the provider that made it. */
struct winsock_route {
    struct winsock_provider *provider;
};

/* 0, or WSAENOBUFS when memory ran out. */
int winsock_route_add(SOCKET s, struct winsock_route route);
/* 0 with *route filled, or WSAENOTSOCK for a handle no provider made through this layer. */
int winsock_route_find(SOCKET s, struct winsock_route *route);
void winsock_route_remove(SOCKET s);
/* How many handles the table routes: tests check that a closed socket leaves none behind. */
size_t winsock_route_count(void);
/* The longest chain of the table: tests check that handles differing only in their index or
 * only in their generation spread over the buckets. */
size_t winsock_route_longest_chain(void);
/* Empties the table, calling fn for each handle it held (WSACleanup's closes). */
void winsock_route_drain(void (*fn)(SOCKET s, struct winsock_route route));

/* The route for a call on s, after the start-up check: 0 or the WSA error code. */
int winsock_route_call(SOCKET s, struct winsock_route *route);

/* ---- the catalog (winsock_catalog.c) ---------------------------------------------------- */

/* A catalog entry and the provider that offers it. */
struct winsock_entry {
    WSAPROTOCOL_INFO info;
    struct winsock_provider *provider;
};

/* Every provider's entries, in order; *count set. NULL with *err set on failure (a count of
 * zero is not a failure: the result is then a non-NULL empty allocation). Free with free(). */
struct winsock_entry *winsock_catalog_read(int *count, int *err);

#endif
