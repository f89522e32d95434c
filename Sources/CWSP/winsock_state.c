/* The Winsock API layer's own state, at the bottom of the layer (docs/ARCHITECTURE.md):
 * whether WSAStartup is in force, and how the API reports an error. */
#include <stdatomic.h>

#include "winsock_internal.h"

static atomic_int started; /* read by every call; winsock_startup.c's count is the authority */

int winsock_fail(int code) {
    WSASetLastError(code);
    return SOCKET_ERROR;
}

int winsock_check_started(void) { return atomic_load(&started) ? 0 : WSANOTINITIALISED; }

void winsock_set_started(int on) { atomic_store(&started, on); }
