/* WSP's own Winsock conformance suite (run with the C tests: `build/wsp-tests conformance`).
 *
 * One check per behaviour, each labelled with the statement it checks, in this project's words:
 *   CONFORMANCE(name, DOCUMENTED("page"), "statement")  a statement of Microsoft's reference
 *                                                       page for that member;
 *   CONFORMANCE(name, OBSERVED, "statement")            known only from how Windows behaves
 *                                                       (its pages say nothing either way).
 * A failing check prints its label, so a regression names the Windows behaviour it broke.
 *
 * Network-event checks run through both notification paths, event objects
 * (lpWSPEventSelect + lpWSPEnumNetworkEvents) and window messages (lpWSPAsyncSelect to a WSP
 * message queue), each with its own expected result: Windows differs between them in places. */
#ifndef WSP_CONFORMANCE_H
#define WSP_CONFORMANCE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test-netevents.h"

#include "conformance-label.h"

/* ---- network events through either path ------------------------------------------------- */

enum notify_mode { BY_EVENT, BY_MESSAGE };

struct notifier {
    enum notify_mode mode;
    WSAEVENT ev;
    HWND queue;
};

/* A notifier of the given mode (its event object or message queue made now). */
struct notifier notifier_new(enum notify_mode mode);
/* lpWSPEventSelect or lpWSPAsyncSelect of s for mask; the WSA error or 0. */
int notify_select(struct notifier *n, SOCKET s, LONG mask);
/* The events reported for s within ms (0: what is there now), each bit once, their error
 * codes in errors[] (by FD_*_BIT). Messages for other sockets are dropped. */
LONG notify_take(struct notifier *n, SOCKET s, int ms, int errors[FD_MAX_EVENTS]);
/* Waits up to ms until the events reported for s include all of want; returns what was
 * seen (a superset of want, or less when the time ran out). */
LONG notify_until(struct notifier *n, SOCKET s, LONG want, int ms, int errors[FD_MAX_EVENTS]);

#endif
