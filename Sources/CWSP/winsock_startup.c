/* WSAStartup and WSACleanup: the reference count, and starting and stopping the providers
 * (the "started" flag and the API's error rules are winsock_state.c's). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "winsock_internal.h"

/* The providers in catalog order. WSP's is the only one; another would be one more line. */
struct winsock_provider winsock_providers[] = {
    {.enum_protocols = WSPEnumProtocols, .startup = WSPStartup},
};
const int winsock_provider_count = (int)(sizeof winsock_providers / sizeof winsock_providers[0]);

#define HIGHEST_VERSION MAKEWORD(2, 2)

static pthread_mutex_t startup_lock = PTHREAD_MUTEX_INITIALIZER;
static int startup_count; /* startup_lock; winsock_state.c's flag follows it */

/* Winsock compares versions major first: the low byte is the major version. */
static unsigned version_order(WORD v) { return ((unsigned)LOBYTE(v) << 8) | HIBYTE(v); }

/* startup_lock held. Stops the first n providers (all, at the last cleanup; those already
 * started, when a later one cannot start). */
static void stop_providers(int n) {
    for (int i = 0; i < n; i++) {
        int err = 0;
        winsock_providers[i].table.lpWSPCleanup(&err);
    }
}

/* startup_lock held. Starts every provider; on failure stops the ones already started. */
static int start_providers(void) {
    for (int i = 0; i < winsock_provider_count; i++) {
        struct winsock_provider *p = &winsock_providers[i];
        WSPDATA data;
        WSPUPCALLTABLE upcalls; /* zeroed: the provider's built-in upcalls */
        WSPPROC_TABLE table;
        memset(&upcalls, 0, sizeof upcalls);
        if (p->startup(HIGHEST_VERSION, &data, NULL, upcalls, &table) != 0) {
            stop_providers(i);
            return WSASYSNOTREADY;
        }
        /* Calls racing a later start-up read the table without a lock: write it only when
         * it changed, which for a given provider means the first time. */
        if (memcmp(&p->table, &table, sizeof table) != 0)
            p->table = table;
    }
    return 0;
}

int WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData) {
    if (LOBYTE(wVersionRequested) < 1)
        return WSAVERNOTSUPPORTED;
    if (!lpWSAData)
        return WSAEFAULT;
    pthread_mutex_lock(&startup_lock);
    int err = 0;
    if (startup_count == 0)
        err = start_providers();
    if (!err) {
        startup_count++;
        winsock_set_started(1);
    }
    pthread_mutex_unlock(&startup_lock);
    if (err)
        return err;
    memset(lpWSAData, 0, sizeof *lpWSAData);
    lpWSAData->wVersion = version_order(wVersionRequested) < version_order(HIGHEST_VERSION)
                              ? wVersionRequested
                              : HIGHEST_VERSION;
    lpWSAData->wHighVersion = HIGHEST_VERSION;
    snprintf(lpWSAData->szDescription, sizeof lpWSAData->szDescription,
             "WinSock 2.2 over WSP %s", WSP_VERSION_STRING);
    snprintf(lpWSAData->szSystemStatus, sizeof lpWSAData->szSystemStatus, "Running");
    return 0;
}

static void close_left_open(SOCKET s, struct winsock_route route) {
    int err = 0;
    route.provider->table.lpWSPCloseSocket(s, &err);
}

int WSACleanup(void) {
    pthread_mutex_lock(&startup_lock);
    if (startup_count == 0) {
        pthread_mutex_unlock(&startup_lock);
        return winsock_fail(WSANOTINITIALISED);
    }
    if (--startup_count == 0) {
        /* New calls fail from here on; sockets the program left open are closed, as Windows
         * does, before each provider's own cleanup. */
        winsock_set_started(0);
        winsock_route_drain(close_left_open);
        stop_providers(winsock_provider_count);
    }
    pthread_mutex_unlock(&startup_lock);
    return 0;
}
