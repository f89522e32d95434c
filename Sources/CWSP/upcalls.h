/* WSP's built-in upcalls: what a provider gets for each member of the upcall table that its
 * caller left NULL (WSPStartup passes a zeroed table to mean "all built-in").
 */
#ifndef WSP_UPCALLS_H
#define WSP_UPCALLS_H

#include "wsp.h"

/* Replaces every NULL member of *t with the built-in upcall and keeps the others. Events
 * and messages go to WSP's own event objects and message queues (wsp/event.h); thread
 * handles are placeholders; socket-handle, provider-path and APC upcalls fail with
 * WSAEOPNOTSUPP; QueryBlockingCallback reports "no blocking hook". */
void wsp_upcalls_fill_builtin(WSPUPCALLTABLE *t);

#endif
