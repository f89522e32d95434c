/* The conformance suite's labels and its notifiers (conformance.h). */
#include "conformance.h"

struct conformance_label conformance_current;

/* A check that ends the process before it finished failed: say which statement broke. */
static void report_label(void) {
    if (conformance_current.statement && !conformance_current.done)
        fprintf(stderr, "  conformance: \"%s\" (%s)\n", conformance_current.statement,
                conformance_current.source);
}

void conformance_begin(const char *source, const char *statement) {
    conformance_current = (struct conformance_label){source, statement, 0};
    atexit(report_label);
}

struct notifier notifier_new(enum notify_mode mode) {
    struct notifier n = {.mode = mode};
    if (mode == BY_EVENT) {
        n.ev = WSACreateEvent();
        CHECK(n.ev != WSA_INVALID_EVENT);
    } else {
        n.queue = WSPCreateMessageQueue();
        CHECK(n.queue != NULL);
    }
    return n;
}

int notify_select(struct notifier *n, SOCKET s, LONG mask) {
    int err = 0, rc;
    if (n->mode == BY_EVENT)
        rc = T.lpWSPEventSelect(s, n->ev, mask, &err);
    else
        rc = T.lpWSPAsyncSelect(s, n->queue, NE_MSG, mask, &err);
    return rc == 0 ? 0 : err;
}

/* What arrived for s within ms, added to *seen. */
static void take_once(struct notifier *n, SOCKET s, int ms, LONG *seen, int errors[]) {
    if (n->mode == BY_EVENT) {
        if (!ne_signalled(n->ev, ms))
            return;
        WSANETWORKEVENTS ne = ne_enum(s, n->ev);
        for (int i = 0; i < FD_MAX_EVENTS; i++)
            if (ne.lNetworkEvents & (1 << i))
                errors[i] = ne.iErrorCode[i];
        *seen |= ne.lNetworkEvents;
        return;
    }
    WSPMSG m;
    int wait = ms;
    while (WSPGetMessage(n->queue, &m, (DWORD)wait) == 1) {
        wait = 0; /* the rest of what is queued, without waiting again */
        if (m.message != NE_MSG || m.wParam != (WPARAM)s)
            continue;
        LONG ev = WSAGETSELECTEVENT(m.lParam);
        for (int i = 0; i < FD_MAX_EVENTS; i++)
            if (ev & (1 << i))
                errors[i] = WSAGETSELECTERROR(m.lParam);
        *seen |= ev;
    }
}

LONG notify_take(struct notifier *n, SOCKET s, int ms, int errors[FD_MAX_EVENTS]) {
    int scratch[FD_MAX_EVENTS];
    if (!errors)
        errors = scratch;
    memset(errors, 0, sizeof(int) * FD_MAX_EVENTS);
    LONG seen = 0;
    long long deadline = now_ms() + ms;
    do {
        long long left = deadline - now_ms();
        take_once(n, s, left > 0 ? (int)left : 0, &seen, errors);
    } while (now_ms() < deadline);
    take_once(n, s, 0, &seen, errors);
    return seen;
}

LONG notify_until(struct notifier *n, SOCKET s, LONG want, int ms, int errors[FD_MAX_EVENTS]) {
    int scratch[FD_MAX_EVENTS];
    if (!errors)
        errors = scratch;
    memset(errors, 0, sizeof(int) * FD_MAX_EVENTS);
    LONG seen = 0;
    long long deadline = now_ms() + ms;
    while ((seen & want) != want) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        take_once(n, s, (int)left, &seen, errors);
    }
    take_once(n, s, 0, &seen, errors); /* whatever came with it */
    return seen;
}
