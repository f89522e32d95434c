/* Sockets registered on a built-in event are watched by the event's own epoll set
 * (Sources/CWSP/event_set.h): a waiting thread takes their readiness itself, and the reactor
 * relays it only while someone may observe the event without waiting in WSP. These tests pin
 * each way an event can be observed to "sees the socket's readiness". */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event_set.h"
#include "faults.h"
#include "test-netevents.h"

static int fd_readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

TEST(evset_exported_descriptor_turns_readable_without_a_wait) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    int fd = WSAEventFd(ev);
    CHECK(fd >= 0);
    CHECK(!fd_readable(fd, 50));
    ne_send_str(c, "x");
    CHECK(fd_readable(fd, 10000)); /* nobody waits in WSP: the reactor relayed it */
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ);
    CHECK(!fd_readable(fd, 0)); /* the enumeration reset the event */
    char b[4];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    ne_send_str(c, "y");
    CHECK(fd_readable(fd, 10000)); /* and goes on doing so */
    WSACloseEvent(ev);
}

/* Closing an exported event that a socket still names stops the reactor's relaying at once:
 * the set leaves the reactor's epoll (one epoll_ctl), though the socket keeps the set. Handing
 * the descriptor out twice (the same one) makes no difference. */
TEST(evset_closing_an_exported_event_takes_its_set_out_of_the_reactor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    int fd = WSAEventFd(ev);
    CHECK(fd >= 0);
    CHECK_EQ(WSAEventFd(ev), fd);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts this thread's calls */
    CHECK(WSACloseEvent(ev));
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 1);
}

/* A socket the event's set could not take (epoll_ctl failed) is watched by the reactor
 * instead, and the set, holding no socket, is not put into the reactor's epoll although its
 * descriptor is handed out: the registration makes the three epoll_ctl calls it makes for an
 * event not handed out (the set's failed ADD, the reactor's ADD of the socket, its re-arm). */
TEST(evset_socket_the_set_could_not_take_leaves_an_exported_set_out_of_the_reactor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int fd = WSAEventFd(ev);
    CHECK(fd >= 0);
    FAULT(epoll_ctl, .nth = 1, .err = ENOMEM, .this_thread = 1); /* the set's ADD */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    int calls = fault_calls(FAULT_epoll_ctl);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1);
    fault_clear();
    CHECK_EQ(calls, 3);
    ne_send_str(c, "x");
    CHECK(fd_readable(fd, 10000)); /* the reactor's watch relays it */
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ);
    WSACloseEvent(ev);
}

TEST(evset_descriptor_exported_after_registration_still_relays) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000); /* the readiness waits in the set: no one looked */
    int fd = WSAEventFd(ev);
    CHECK(fd_readable(fd, 10000));
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ);
    WSACloseEvent(ev);
}

TEST(evset_enumerating_alone_sees_readiness) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    CHECK(ne_enum(s, ev).lNetworkEvents == 0);
    ne_send_str(c, "x");
    /* An application that polls with lpWSPEnumNetworkEvents and never waits. */
    long long deadline = now_ms() + 10000;
    LONG seen = 0;
    while (!(seen & FD_READ) && now_ms() < deadline) {
        seen |= ne_enum(s, ev).lNetworkEvents;
        sleep_ms(1);
    }
    CHECK(seen & FD_READ);
    WSACloseEvent(ev);
}

struct wait_all_args {
    WSAEVENT ev[2];
    DWORD result;
    struct blocker blocker;
};

static void *wait_all_main(void *arg) {
    struct wait_all_args *a = arg;
    blocker_enter(&a->blocker);
    a->result = WSAWaitForMultipleEvents(2, a->ev, TRUE, 60000, FALSE);
    blocker_leave(&a->blocker);
    return NULL;
}

TEST(evset_wait_all_sees_socket_readiness) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct wait_all_args a = {.ev = {ne_event_select(s, FD_READ), WSACreateEvent()}};
    CHECK(WSASetEvent(a.ev[1]));
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_all_main, &a), 0);
    wait_blocked(&a.blocker); /* asleep in the wait-all */
    ne_send_str(c, "x");
    pthread_join(t, NULL);
    CHECK_EQ(a.result, WSA_WAIT_EVENT_0);
    CHECK(ne_enum(s, a.ev[0]).lNetworkEvents == FD_READ);
    WSACloseEvent(a.ev[0]);
    WSACloseEvent(a.ev[1]);
}

#define WAITERS 4

struct waiter_args {
    WSAEVENT ev;
    DWORD result;
    struct blocker blocker;
};

static void *wait_one_main(void *arg) {
    struct waiter_args *a = arg;
    blocker_enter(&a->blocker);
    a->result = WSAWaitForMultipleEvents(1, &a->ev, FALSE, 60000, FALSE);
    blocker_leave(&a->blocker);
    return NULL;
}

TEST(evset_every_thread_waiting_for_the_event_wakes) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct waiter_args a[WAITERS];
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        a[i] = (struct waiter_args){.ev = ev, .result = WSA_WAIT_FAILED};
        CHECK_EQ(pthread_create(&t[i], NULL, wait_one_main, &a[i]), 0);
    }
    for (int i = 0; i < WAITERS; i++)
        wait_blocked(&a[i].blocker);
    ne_send_str(c, "x"); /* one of them records FD_READ: the event is manual-reset */
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(a[i].result, WSA_WAIT_EVENT_0);
    }
    WSACloseEvent(ev);
}

/* A wait that pumps the event's set and so sets the event itself still raises the event's
 * descriptor when another thread's wait-any may be about to poll it: that thread, held just
 * before its poll (after its look at the flag), wakes at once. Without the descriptor raised
 * it would sleep in poll (the pump took the set's readiness) until its time-out: it waits
 * without one, and the test gives it 10 s to return. */
static atomic_int held_waiter_done;
static DWORD held_waiter_result;

static void *wait_with_poll_held(void *arg) {
    WSAEVENT ev = arg;
    FAULT(poll, .nth = 1, .hold = 1, .this_thread = 1);
    held_waiter_result = WSAWaitForMultipleEvents(1, &ev, FALSE, WSA_INFINITE, FALSE);
    atomic_store(&held_waiter_done, 1);
    return NULL;
}

TEST(evset_wait_that_sets_the_event_itself_wakes_another_waiter_about_to_poll) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    held_waiter_result = WSA_WAIT_FAILED;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_with_poll_held, ev), 0);
    WAIT_FOR(fault_holding() == 1, 10000); /* it looked at the flag and is about to poll */
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    fault_release();
    WAIT_FOR(atomic_load(&held_waiter_done), 10000);
    pthread_join(t, NULL);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    CHECK_EQ(held_waiter_result, WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

TEST(evset_data_that_arrives_while_read_is_off_and_is_all_read_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "a");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    ne_send_str(c, "b"); /* more data before the recv: FD_READ again (Windows) */
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[16];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 2); /* takes both */
    CHECK(!ne_wait_bit(s, ev, FD_READ, 200, &ne)); /* nothing is left: no FD_READ */
    ne_send_str(c, "c");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    WSACloseEvent(ev);
}

TEST(evset_recv_that_fills_its_buffer_with_nothing_left_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "abcd");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4); /* exactly all: the provider must look */
    CHECK(!ne_wait_bit(s, ev, FD_READ, 200, &ne));
    WSACloseEvent(ev);
}

TEST(evset_reregistering_on_another_event_moves_the_socket) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT first = ne_event_select(s, FD_READ);
    WSAEVENT second = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, second, FD_READ, 10000, &ne));
    CHECK(!ne_signalled(first, 100));
    WSACloseEvent(first);
    WSACloseEvent(second);
}

TEST(evset_event_closed_under_a_registered_socket_loses_nothing_else) {
    start();
    int before = open_fds();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    CHECK(WSACloseEvent(ev)); /* the registration now names a closed event */
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    WSAEVENT next = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, next, FD_READ, 10000, &ne)); /* reported at the new registration */
    ne_close(c);
    ne_close(s);
    ne_close(l);
    CHECK(WSACloseEvent(next));
    /* Both events' sets are gone with them (a closed socket's descriptor may wait for the
     * reactor's next round). */
    WAIT_FOR(open_fds() == before, 10000);
}

TEST(evset_socket_closed_with_readiness_pending_in_the_set) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000); /* readiness waiting in the set, taken by no one */
    ne_close(s);
    CHECK(!ne_signalled(ev, 100)); /* the wait pumps the set and finds nothing to report */
    WSACloseEvent(ev);
}

/* A recv that fills its buffer leaves "is more waiting?" for the next wait or enumeration to
 * ask (event_set.h); every way of observing the event must get the answer. */

TEST(evset_data_left_by_a_recv_is_reported_to_an_enumeration_alone) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "0123456789");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ); /* no wait in between */
    WSACloseEvent(ev);
}

TEST(evset_data_left_by_a_recv_shows_on_a_descriptor_exported_after_it) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "0123456789");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    int fd = WSAEventFd(ev); /* nothing else will happen on the socket */
    CHECK(fd_readable(fd, 10000));
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ);
    WSACloseEvent(ev);
}

/* Two sockets on one event, each with data left by a recv: handing out the event's descriptor
 * makes both checks at once, in one poll whose answer needs no count of the bytes, and each
 * socket's record has FD_READ. */
TEST(evset_every_check_pending_is_made_when_the_descriptor_is_handed_out) {
    start();
    SOCKET c[2], s[2], l[2];
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        CHECK_EQ(T.lpWSPEventSelect(s[i], ev, FD_READ, &err), 0);
        ne_send_str(c[i], "0123456789");
        WAIT_FOR(unread_bytes(s[i]) == 10, 10000);
        CHECK_EQ(ne_enum(s[i], ev).lNetworkEvents, FD_READ);
    }
    int first = s[1] > s[0]; /* the larger handle first: the checks are kept in no order */
    for (int k = 0; k < 2; k++) {
        char buf[4];
        int i = k == 0 ? first : !first;
        CHECK_EQ(ne_recv(s[i], buf, sizeof buf, 0), 4); /* 6 bytes left: a check is due */
    }
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    CHECK_EQ(wsp_event_set_checks_pending(set), 2);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts this thread's looks (FIONREAD) */
    FAULT(poll, .nth = 1000000, .this_thread = 1);  /* and its polls */
    int sleeping = fault_sleeping_polls();
    int fd = WSAEventFd(ev); /* makes them both */
    int counted = fault_calls(FAULT_ioctl);
    int polls = fault_calls(FAULT_poll);
    sleeping = fault_sleeping_polls() - sleeping;
    fault_clear();
    CHECK(fd >= 0);
    CHECK_EQ(polls, 1); /* both in one */
    CHECK_EQ(counted, 0); /* the poll's answer (data, no FIN) says enough: no byte counts */
    CHECK_EQ(sleeping, 0); /* and the poll is a look, with no time-out to wait */
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(fd_readable(fd, 10000));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ne_enum(s[i], ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A check left pending by a recv, whose socket's registration is cancelled before the check
 * is made (at the export here): the check finds no watch, and raises nothing. */
TEST(evset_check_for_a_socket_whose_registration_was_cancelled_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "0123456789");
    WAIT_FOR(unread_bytes(s) == 10, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4); /* 6 bytes left: a check is due */
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, 0, &err), 0); /* cancelled: no watch */
    CHECK(WSAEventFd(ev) >= 0); /* makes the check */
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK(WSACloseEvent(ev));
}

/* A recv that leaves data on a socket registered on an event without FD_READ keeps no check
 * for the next wait (nothing it could find would be raised) and looks at nothing itself. */
TEST(evset_recv_leaving_data_unselected_for_read_keeps_no_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_WRITE | FD_CLOSE);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    ne_send_str(c, "0123456789");
    WAIT_FOR(unread_bytes(s) == 10, 10000);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    char b[4];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 4);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* The same with errno left at EINTR by something earlier: a look that succeeds is not taken
 * for an interrupted one (and retried for ever). */
TEST(evset_pending_check_run_at_export_ignores_a_stale_eintr) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "0123456789");
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    errno = EINTR;
    int fd = WSAEventFd(ev); /* runs the recv's pending check at once */
    CHECK(fd_readable(fd, 10000));
    CHECK(ne_enum(s, ev).lNetworkEvents == FD_READ);
    WSACloseEvent(ev);
}

/* As above, with the data taken by a later recv: the check's poll finds nothing (0), which a
 * stale EINTR left in errno must not make it repeat. */
TEST(evset_pending_check_that_finds_nothing_ignores_a_stale_eintr) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[16];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2);         /* leaves 6: a check */
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 6); /* takes the rest */
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts */
    errno = EINTR;
    int fd = WSAEventFd(ev); /* runs the pending check at once */
    int polls = fault_calls(FAULT_poll);
    fault_clear();
    CHECK(fd >= 0);
    CHECK_EQ(polls, 1);
    CHECK(!fd_readable(fd, 0));
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    WSACloseEvent(ev);
}

#define MANY 12 /* more sockets than a set keeps checks for */

/* Waits on ev until every one of s[0..MANY) has reported FD_READ, recv'ing take bytes from
 * each as it does (0: none); how many did within 3 s. */
static int read_raised_on_each(const SOCKET s[], WSAEVENT ev, int take) {
    int seen[MANY] = {0}, count = 0;
    long long deadline = now_ms() + 10000;
    while (count < MANY && now_ms() < deadline) {
        if (!ne_signalled(ev, 100))
            continue;
        CHECK(WSAResetEvent(ev));
        for (int i = 0; i < MANY; i++) {
            if (!seen[i] && (ne_enum(s[i], NULL).lNetworkEvents & FD_READ)) {
                char b[8];
                if (take)
                    CHECK_EQ(ne_recv(s[i], b, (size_t)take, 0), take);
                seen[i] = 1;
                count++;
            }
        }
    }
    return count;
}

TEST(evset_data_left_on_many_sockets_of_one_event_is_reported_for_each) {
    start();
    SOCKET c[MANY], s[MANY], l[MANY];
    WSAEVENT ev = WSACreateEvent();
    int err = 0;
    for (int i = 0; i < MANY; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        CHECK_EQ(T.lpWSPEventSelect(s[i], ev, FD_READ, &err), 0);
        ne_send_str(c[i], "01234567");
    }
    /* Each socket's first FD_READ, and a recv that leaves 6 bytes behind on every one... */
    CHECK_EQ(read_raised_on_each(s, ev, 2), MANY);
    /* ...so every one raises FD_READ again. */
    CHECK_EQ(read_raised_on_each(s, ev, 0), MANY);
    WSACloseEvent(ev);
}

/* More recvs that leave data behind than a set keeps checks for (8), with no wait or
 * enumeration between them: the set keeps 8, the checks past the limit are made on the spot
 * (one FIONREAD each, in their recv), and every socket reports FD_READ again. */
#define SET_CHECKS 8
TEST(evset_data_left_by_more_recvs_than_a_set_keeps_checks_for_is_reported_for_each) {
    start();
    SOCKET c[MANY], s[MANY], l[MANY];
    WSAEVENT ev = WSACreateEvent();
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    int err = 0;
    for (int i = 0; i < MANY; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        CHECK_EQ(T.lpWSPEventSelect(s[i], ev, FD_READ, &err), 0);
        ne_send_str(c[i], "01234567");
        WAIT_FOR(unread_bytes(s[i]) == 8, 10000);
    }
    CHECK_EQ(read_raised_on_each(s, ev, 0), MANY); /* the first FD_READ of each, not re-enabled */
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts this thread's looks (FIONREAD) */
    for (int i = 0; i < MANY; i++) { /* twelve recvs in a row, each leaving 6 bytes */
        char b[2];
        CHECK_EQ(ne_recv(s[i], b, sizeof b, 0), 2);
    }
    int on_the_spot = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(wsp_event_set_checks_pending(set), SET_CHECKS);
    CHECK_EQ(on_the_spot, MANY - SET_CHECKS);
    CHECK_EQ(read_raised_on_each(s, ev, 0), MANY);
    wsp_event_set_release(set);
    WSACloseEvent(ev);
}

/* A recv that fills its buffer and leaves nothing, while the event's descriptor is handed out
 * (the reactor watches the set, so the provider looks at once): no FD_READ. */
TEST(evset_recv_that_takes_everything_raises_nothing_on_an_exported_event) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    CHECK(WSAEventFd(ev) >= 0);
    WSANETWORKEVENTS ne;
    ne_send_str(c, "abcd");
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char buf[4];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    ne_send_str(c, "e"); /* and the next data is reported */
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    WSACloseEvent(ev);
}

/* Two events, each with a socket whose recv left data behind: one wait for either looks at
 * both sockets, and each socket's FD_READ goes to its own event's record. */
TEST(evset_one_wait_on_two_events_looks_at_the_data_left_on_each) {
    start();
    SOCKET c[2], s[2], l[2];
    WSAEVENT ev[2];
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        ev[i] = ne_event_select(s[i], FD_READ);
        ne_send_str(c[i], "0123456789");
        WAIT_FOR(unread_bytes(s[i]) == 10, 10000);
        WSANETWORKEVENTS ne;
        CHECK(ne_wait_bit(s[i], ev[i], FD_READ, 10000, &ne));
    }
    for (int i = 0; i < 2; i++) {
        char buf[4];
        CHECK_EQ(ne_recv(s[i], buf, sizeof buf, 0), 4); /* 6 bytes left on each */
    }
    /* Both checks find data, so both events are signalled when the wait answers. */
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ne_enum(s[i], ev[i]).lNetworkEvents, FD_READ);
    WSACloseEvent(ev[0]);
    WSACloseEvent(ev[1]);
}

/* Both events' sockets have data before a wait for either: the wait takes the readiness of
 * both sets and, as any wait, answers with the lowest index signalled. Run with the events in
 * both orders (the sets are looked at in an order of the provider's own). */
static void wait_any_answers_lowest_of_two_ready_sets(int swap) {
    SOCKET c[2], s[2], l[2];
    WSAEVENT ev[2];
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        ev[i] = ne_event_select(s[i], FD_READ);
    }
    for (int i = 0; i < 2; i++) {
        ne_send_str(c[i], "x");
        WAIT_FOR(unread_bytes(s[i]) == 1, 10000);
    }
    WSAEVENT order[2] = {ev[swap], ev[!swap]};
    CHECK_EQ(WSAWaitForMultipleEvents(2, order, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    for (int i = 0; i < 2; i++) { /* both sets were pumped: nothing left in either */
        struct wsp_event_set *set = wsp_event_watch_set(ev[i]);
        CHECK(!fd_readable(wsp_event_set_fd(set), 0));
        wsp_event_set_release(set);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ne_enum(s[i], ev[i]).lNetworkEvents, FD_READ);
        ne_close(c[i]);
        ne_close(s[i]);
        ne_close(l[i]);
        WSACloseEvent(ev[i]);
    }
}

TEST(evset_wait_any_takes_every_ready_set_and_answers_the_lowest_index) {
    start();
    wait_any_answers_lowest_of_two_ready_sets(0);
    wait_any_answers_lowest_of_two_ready_sets(1);
}

/* A listener registered on an event that is closed before a connection arrives: the accepted
 * socket inherits a registration naming a closed event, and works. */
TEST(evset_event_closed_before_an_accept_leaves_the_accepted_socket_working) {
    start();
    struct ne_connector k = {0};
    SOCKET l = listener(WSP_CATALOG_TCP_IPV4, 4, &k.addr);
    WSAEVENT ev = ne_event_select(l, FD_ACCEPT | FD_READ | FD_WRITE | FD_CLOSE);
    CHECK(WSACloseEvent(ev));
    k.s = new_socket(WSP_CATALOG_TCP_IPV4);
    ne_start_connector(&k);
    ne_join_connector(&k);
    SOCKET s = INVALID_SOCKET;
    int err = 0;
    long long deadline = now_ms() + 10000;
    while ((s = ne_accept(l, NULL, &err)) == INVALID_SOCKET) { /* the listener is non-blocking */
        CHECK_EQ(err, WSAEWOULDBLOCK);
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    ne_send_str(k.s, "ping");
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    char buf[8];
    CHECK_EQ(ne_recv(s, buf, sizeof buf, 0), 4);
    CHECK_MEM(buf, "ping", 4);
    ne_send_str(s, "pong");
    WAIT_FOR(unread_bytes(k.s) == 4, 10000);
    CHECK_EQ(ne_recv(k.s, buf, sizeof buf, 0), 4);
    CHECK_MEM(buf, "pong", 4);
}

/* Readiness that raises nothing the registration asks for (urgent data, FD_OOB not asked)
 * does not end a wait without a time-out: it goes on until the event is set. */
static struct blocker waiting;

static void *set_once_waiting(void *arg) {
    wait_blocked(&waiting);
    CHECK(WSASetEvent(*(WSAEVENT *)arg));
    return NULL;
}

/* Urgent data on a socket selected for FD_READ alone raises nothing: a wait with timeout
 * goes on until another thread sets the event. */
static void readiness_that_raises_nothing_does_not_end_a_wait(DWORD timeout) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    CHECK_EQ(ne_send(c, "!", 1, MSG_OOB, NULL), 0);
    char b;
    long long deadline = now_ms() + 10000; /* the urgent byte is there once a peek sees it */
    while (ne_recv(s, &b, 1, MSG_OOB | MSG_PEEK) != 1) {
        CHECK(now_ms() < deadline);
        sleep_ms(2);
    }
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, set_once_waiting, &ev), 0);
    blocker_enter(&waiting);
    DWORD r = WSAWaitForMultipleEvents(1, &ev, FALSE, timeout, FALSE);
    blocker_leave(&waiting);
    CHECK_EQ(r, WSA_WAIT_EVENT_0);
    pthread_join(t, NULL);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0); /* set by the thread, nothing recorded */
    WSACloseEvent(ev);
}

TEST(evset_readiness_that_raises_nothing_does_not_end_an_infinite_wait) {
    readiness_that_raises_nothing_does_not_end_a_wait(WSA_INFINITE);
}

/* ---- issue #11: paths the mutation runs found unpinned ---------------------------------- */

/* A wait whose poll is interrupted still looks at the data a recv left behind: the check it
 * took from the set is run (the socket looks itself), not dropped, so the wait ends with the
 * event signalled rather than at its time-out. */
TEST(evset_wait_interrupted_keeps_the_check_of_data_left_by_a_recv) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check is due */
    FAULT(poll, .nth = 1, .err = EINTR, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* A wait that finds its own event's set ready records the network event itself, which
 * signals the event: with no one else polling the event and its descriptor never handed out,
 * that signal writes nothing to the event's descriptor (pins the saved write, and the read
 * that would lower it again: event_object.c's header). The same holds when the wait makes a
 * check (data a recv left) that signals the event. */
TEST(evset_wait_that_signals_its_own_event_writes_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    FAULT(write, .nth = 1000000, .this_thread = 1); /* counts this thread's writes */
    DWORD pumped = WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE);
    int writes = fault_calls(FAULT_write);
    fault_clear();
    CHECK_EQ(pumped, WSA_WAIT_EVENT_0);
    CHECK_EQ(writes, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check is due */
    FAULT(write, .nth = 1000000, .this_thread = 1);
    DWORD checked = WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE);
    writes = fault_calls(FAULT_write);
    fault_clear();
    CHECK_EQ(checked, WSA_WAIT_EVENT_0);
    CHECK_EQ(writes, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* One wait on three events whose sets hold 7 checks each (data left by a recv on 7 sockets per
 * event) takes as many checks as it has room for (16): all of two sets' and part of the third
 * one's, whichever order it takes them in. The checks it leaves stay in their set, in order,
 * and are made at the next look: every socket reports FD_READ. */
#define PER_SET 7
TEST(evset_checks_a_wait_has_no_room_for_stay_for_the_next_look) {
    start();
    SOCKET c[3][PER_SET], s[3][PER_SET], l[3][PER_SET];
    WSAEVENT ev[3];
    int err = 0;
    for (int j = 0; j < 3; j++) {
        ev[j] = WSACreateEvent();
        for (int i = 0; i < PER_SET; i++) {
            ne_pair(WSP_CATALOG_TCP_IPV4, &c[j][i], &s[j][i], &l[j][i]);
            CHECK_EQ(T.lpWSPEventSelect(s[j][i], ev[j], FD_READ, &err), 0);
            ne_send_str(c[j][i], "0123456789");
            WAIT_FOR(unread_bytes(s[j][i]) == 10, 10000);
        }
        for (int i = 0; i < PER_SET; i++)
            CHECK_EQ(ne_enum(s[j][i], ev[j]).lNetworkEvents, FD_READ);
    }
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < PER_SET; i++) {
            char buf[4];
            CHECK_EQ(ne_recv(s[j][i], buf, sizeof buf, 0), 4); /* 6 bytes left: a check */
        }
    CHECK_EQ(WSAWaitForMultipleEvents(3, ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < PER_SET; i++)
            CHECK_EQ(ne_enum(s[j][i], NULL).lNetworkEvents, FD_READ);
    for (int j = 0; j < 3; j++)
        WSACloseEvent(ev[j]);
}

/* An enumeration whose look into the set fails (epoll_wait) loses nothing: the readiness stays
 * in the set and the next look reports it. */
TEST(evset_failed_look_into_the_set_loses_no_readiness) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    FAULT(epoll_wait, .nth = 1, .err = ENOMEM, .this_thread = 1);
    WSANETWORKEVENTS first = ne_enum(s, ev);
    CHECK_EQ(fault_fired(FAULT_epoll_wait), 1);
    fault_clear();
    CHECK_EQ(first.lNetworkEvents | ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* The check of data left by a recv that finds the peer's FIN as well reports both: FD_READ for
 * the data, FD_CLOSE for the FIN, in the enumeration that makes it. */
TEST(evset_check_that_finds_data_and_a_fin_reports_read_and_close) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check is due */
    struct sockaddr_storage here = local_address(s), there = local_address(c);
    ne_close(c);
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == TCP_CLOSE_WAIT, 10000);
    WSANETWORKEVENTS ne = ne_enum(s, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_CLOSE);
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], 0);
    WSACloseEvent(ev);
}

/* An enumeration right after another one on the same thread still looks into the set: data
 * that arrived in between is reported by the second. */
TEST(evset_enumeration_right_after_another_sees_new_readiness) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* A check left by a recv, made after the socket's own SD_RECEIVE with nothing left to read,
 * raises nothing: the read side polls readable then, but there is no data. */
TEST(evset_check_after_own_receive_shutdown_with_nothing_left_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[2];
    CHECK_EQ(ne_recv(s, b, 1, 0), 1); /* 2 bytes left: a check is due */
    CHECK_EQ(ne_recv(s, b, 2, 0), 2); /* all read; the check stays due */
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_RECEIVE, &err), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    WSACloseEvent(ev);
}

/* An exported event keeps relaying across a restart of the provider: the last lpWSPCleanup
 * closes its socket (the set is then empty and leaves the reactor), and a socket registered on
 * it after the next WSPStartup is watched by the new reactor. */
TEST(evset_exported_event_relays_for_a_socket_registered_after_a_restart) {
    start();
    WSAEVENT ev = WSACreateEvent();
    int fd = WSAEventFd(ev);
    CHECK(fd >= 0);
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPCleanup(&err), 0); /* closes every socket */
    start();
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    CHECK(!fd_readable(fd, 0));
    ne_send_str(c, "x");
    CHECK(fd_readable(fd, 10000)); /* nobody waits in WSP: the new reactor relayed it */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    WSACloseEvent(ev);
}

/* The checks due when the event's descriptor is handed out are made then, once: the next
 * enumeration has none left to make (it polls nothing). */
TEST(evset_checks_made_when_the_descriptor_is_handed_out_are_made_once) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check is due */
    int fd = WSAEventFd(ev);            /* makes it: FD_READ */
    CHECK(fd >= 0);
    CHECK(fd_readable(fd, 10000));
    FAULT(poll, .nth = 1000000, .this_thread = 1); /* counts this thread's polls, fails none */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(fault_calls(FAULT_poll), 0);
    fault_clear();
    WSACloseEvent(ev);
}

/* A wait that polls a check beside its event's set (data a recv left on one socket, which a
 * second recv took) still polls the set: data for another socket in it wakes the wait. */
static WSAEVENT check_waiter_event;
static struct blocker check_waiter_blocked;
static DWORD check_waiter_result;

static void *wait_polling_a_check(void *arg) {
    (void)arg;
    blocker_enter(&check_waiter_blocked);
    check_waiter_result = WSAWaitForMultipleEvents(1, &check_waiter_event, FALSE, 10000, FALSE);
    blocker_leave(&check_waiter_blocked);
    return NULL;
}

TEST(evset_wait_polling_a_check_is_woken_by_another_socket_of_the_set) {
    start();
    SOCKET c1, s1, l1, c2, s2, l2;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c1, &s1, &l1);
    ne_pair(WSP_CATALOG_TCP_IPV4, &c2, &s2, &l2);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s1, ev, FD_READ, &err), 0);
    CHECK_EQ(T.lpWSPEventSelect(s2, ev, FD_READ, &err), 0);
    ne_send_str(c1, "0123");
    WAIT_FOR(unread_bytes(s1) == 4, 10000);
    CHECK_EQ(ne_enum(s1, ev).lNetworkEvents, FD_READ);
    char b[2];
    CHECK_EQ(ne_recv(s1, b, sizeof b, 0), 2); /* leaves 2: a check */
    CHECK_EQ(ne_recv(s1, b, sizeof b, 0), 2); /* takes them: the check will find nothing */
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    wsp_event_set_release(set);
    check_waiter_event = ev;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_polling_a_check, NULL), 0);
    wait_blocked(&check_waiter_blocked);
    ne_send_str(c2, "x");
    pthread_join(t, NULL);
    CHECK_EQ(check_waiter_result, WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s2, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_enum(s1, ev).lNetworkEvents, 0);
    CHECK(WSACloseEvent(ev));
}

/* Many recvs in a row on one socket, each leaving data behind, with no wait or enumeration
 * between them: the set keeps one check for the socket, not one per recv (which would fill
 * its list, and then some), made by the next wait, which raises FD_READ once. */
TEST(evset_recvs_in_a_row_on_one_socket_keep_one_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "0123456789abcdefghijklmnopqrstuv"); /* 32 bytes */
    WAIT_FOR(unread_bytes(s) == 32, 10000);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts this thread's looks (FIONREAD) */
    for (int i = 0; i < 20; i++) {
        char b;
        CHECK_EQ(ne_recv(s, &b, 1, 0), 1);
        CHECK_EQ(b, "0123456789abcdefghijklmnopqrstuv"[i]);
    }
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0); /* left to the next wait */
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    wsp_event_set_release(set);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char rest[16];
    CHECK_EQ(ne_recv(s, rest, sizeof rest, 0), 12);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSACloseEvent(ev));
}

/* A recv that takes everything there is and a send that goes through, on a socket registered
 * for every event a descriptor raises, make no system call besides their own: nothing to look
 * at (the set reports the next data when it comes), nothing to re-arm (the set's watch is
 * edge-triggered), no urgent data asked about. */
TEST(evset_recv_and_send_on_a_registered_socket_make_no_other_system_call) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_WRITE | FD_OOB | FD_CLOSE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_send_str(c, "abcd");
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    static const enum fault_fn watched[] = {FAULT_poll, FAULT_getsockopt, FAULT_ioctl,
                                            FAULT_epoll_ctl, FAULT_read, FAULT_write};
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++)
        fault_set(watched[i], (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    char b[16];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 4);
    CHECK_EQ(ne_send(s, "x", 1, 0, NULL), 0);
    int calls[sizeof watched / sizeof watched[0]];
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++)
        calls[i] = fault_calls(watched[i]);
    fault_clear();
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++)
        CHECK_EQ(calls[i], 0);
    CHECK(WSACloseEvent(ev));
}

/* A recv that finds nothing (WSAEWOULDBLOCK) on a socket registered with an event set leaves
 * nothing to look at: it keeps no check for the next wait and asks the kernel nothing (pins
 * the cost of a would-block recv: no FIONREAD now or later); the next data raises FD_READ. */
TEST(evset_recv_that_would_block_keeps_no_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    fault_set(FAULT_ioctl, (struct fault){.nth = 1000000, .this_thread = 1}); /* counts */
    char b[8];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), -WSAEWOULDBLOCK);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    ne_send_str(c, "x");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    CHECK(WSACloseEvent(ev));
}

/* A recv that reads the end of the stream took all there was: it keeps no check for the next
 * wait, whatever errno held before it (a successful recv leaves errno as it was), and into a
 * buffer of one byte as into a larger one. */
static void recv_of_the_stream_end_keeps_no_check(size_t size) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(c, SD_SEND, &err), 0);
    char b[8];
    int r = 0;
    WAIT_FOR((errno = ENOENT, r = ne_recv(s, b, size, 0)) != -WSAEWOULDBLOCK, 10000);
    CHECK_EQ(r, 0);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}
TEST(evset_recv_of_the_stream_end_keeps_no_check) {
    recv_of_the_stream_end_keeps_no_check(8);
}
TEST(evset_recv_of_the_stream_end_into_one_byte_keeps_no_check) {
    recv_of_the_stream_end_keeps_no_check(1);
}

/* A check that finds the data a recv left behind raises FD_READ, and nothing else (the
 * connection is fine): the watch goes on, and the next data raises FD_READ again. */
TEST(evset_check_that_finds_data_left_raises_read_alone_and_the_watch_goes_on) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[8];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2); /* leaves 6: a check for the next wait */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 6);
    ne_send_str(c, "89");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2);
    CHECK(WSACloseEvent(ev));
}

static void *wait_all_10s_main(void *arg) {
    struct wait_all_args *a = arg;
    blocker_enter(&a->blocker);
    a->result = WSAWaitForMultipleEvents(2, a->ev, TRUE, 10000, FALSE);
    blocker_leave(&a->blocker);
    return NULL;
}

/* A wait for all of two events, each with a socket registered on it: the reactor watches both
 * events' sets meanwhile, so data on both sockets satisfies it (whichever event comes first in
 * the order the wait locks them). */
TEST(evset_wait_all_sees_readiness_on_the_sockets_of_every_event) {
    start();
    SOCKET c[2], s[2], l[2];
    struct wait_all_args a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        a.ev[i] = ne_event_select(s[i], FD_READ);
    }
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_all_10s_main, &a), 0);
    wait_blocked(&a.blocker); /* asleep in the wait-all */
    ne_send_str(c[0], "x");
    ne_send_str(c[1], "y");
    pthread_join(t, NULL);
    CHECK_EQ(a.result, WSA_WAIT_EVENT_0);
    for (int i = 0; i < 2; i++) {
        CHECK(ne_enum(s[i], a.ev[i]).lNetworkEvents == FD_READ);
        WSACloseEvent(a.ev[i]);
    }
}

/* A check kept for data a recv left, that a second recv then took: the enumeration that makes
 * the check finds nothing to read, raises nothing, and returns at once. */
TEST(evset_check_for_data_a_later_recv_took_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[16];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2);         /* leaves 6: a check */
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 6); /* takes the rest */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSACloseEvent(ev));
}

/* A check whose look fails (the enumeration's poll out of memory) has its socket look itself:
 * with the data a later recv took, nothing is left and nothing is raised. */
TEST(evset_check_whose_poll_fails_for_data_a_later_recv_took_raises_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[16];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2);         /* leaves 6: a check */
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 6); /* takes the rest */
    FAULT(poll, .nth = 1, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSACloseEvent(ev));
}

/* A check left for a socket closed since is dropped by the wait that makes it: the socket is
 * looked up by handle, and a closed one has nothing to report. */
TEST(evset_check_of_a_socket_closed_since_is_dropped) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[2];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2); /* leaves 6: a check */
    ne_close(s);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK(WSACloseEvent(ev));
}

/* A lone EPOLLIN edge while FD_READ waits for its recv is new data: FD_READ is raised again
 * (Windows, event objects) without counting the bytes (netevents.c's readiness: "no count on
 * the usual path"), counted through the provider's ioctl. */
TEST(evset_more_data_before_the_recv_raises_read_again_without_counting) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "a");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    ne_send_str(c, "b");
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* Data that arrives on a socket registered for FD_CLOSE alone (FD_READ raised under an earlier
 * registration and not re-enabled since) raises nothing, and the wait that takes its edge
 * makes no look at the unread count (FIONREAD) for an event nobody asked for: pins that cost,
 * counted through the provider's ioctl. */
TEST(evset_data_on_a_socket_registered_for_close_alone_is_not_counted) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "a");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_CLOSE, &err), 0);
    ne_send_str(c, "b");
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1);      /* counts */
    FAULT(epoll_wait, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    int looks = fault_calls(FAULT_ioctl), pumps = fault_calls(FAULT_epoll_wait);
    fault_clear();
    CHECK_EQ(pumps, 1); /* the wait took the set's readiness */
    CHECK_EQ(looks, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0);
    CHECK(WSACloseEvent(ev));
}

/* A wait-any that has a check to make (data left by a recv, taken since by another) polls the
 * checked socket beside the event's own descriptor and set: a WSASetEvent while it sleeps
 * there wakes it. It waits without a time-out; the test gives it 10 s to return. */
static atomic_int checking_waiter_done;
static DWORD checking_waiter_result;
static struct blocker checking_waiter;

static void *wait_with_a_check(void *arg) {
    WSAEVENT ev = arg;
    blocker_enter(&checking_waiter);
    checking_waiter_result = WSAWaitForMultipleEvents(1, &ev, FALSE, WSA_INFINITE, FALSE);
    blocker_leave(&checking_waiter);
    atomic_store(&checking_waiter_done, 1);
    return NULL;
}

TEST(evset_wait_that_has_a_check_to_make_is_woken_by_a_set_event) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[16];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2);         /* leaves 6: a check */
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 6); /* takes the rest: the check will find nothing */
    checking_waiter_result = WSA_WAIT_FAILED;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_with_a_check, ev), 0);
    wait_blocked(&checking_waiter); /* asleep in its poll */
    CHECK(WSASetEvent(ev));
    WAIT_FOR(atomic_load(&checking_waiter_done), 10000);
    pthread_join(t, NULL);
    CHECK_EQ(checking_waiter_result, WSA_WAIT_EVENT_0);
    CHECK(WSACloseEvent(ev));
}

/* A socket registered on another event leaves the first event's set: its data no longer makes
 * that set's descriptor readable. */
TEST(evset_socket_moved_to_another_event_leaves_the_first_set) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT first = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(first);
    CHECK(set != NULL);
    WSAEVENT second = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, second, FD_READ, 10000, &ne)); /* the data is in */
    CHECK(!fd_readable(wsp_event_set_fd(set), 0));
    wsp_event_set_release(set);
    WSACloseEvent(first);
    WSACloseEvent(second);
}

/* Data that arrives while FD_READ waits for its recv leaves the recv that drains it a check to
 * keep (the data may have come after the recv looked); once that is done, the next recv that
 * drains what a wait reported keeps none. */
TEST(evset_only_a_recv_after_data_that_came_while_read_was_off_keeps_a_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    ne_send_str(c, "a");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    ne_send_str(c, "b"); /* while FD_READ is off */
    WAIT_FOR(unread_bytes(s) == 2, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ); /* more data before the recv */
    char b[8];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2);
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, 0); /* the check: nothing left */
    ne_send_str(c, "c");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* As evset_readiness_that_raises_nothing_does_not_end_an_infinite_wait with a time-out that
 * is far off: the wait goes on until the event is set, not only until its next look. */
TEST(evset_readiness_that_raises_nothing_does_not_end_a_timed_wait) {
    readiness_that_raises_nothing_does_not_end_a_wait(20000);
}

/* An enumeration right after a wait that pumped another event's set still looks into its own
 * set: only a pump of that same set spares it the look, and only once (more data before the
 * recv, FD_READ again, is seen by the enumeration after). Both ways round, so that the set the
 * wait pumped is once the later of the two in memory and once the earlier. */
TEST(evset_enumeration_after_a_wait_on_another_event_looks_into_its_own_set) {
    start();
    SOCKET c[2], s[2], l[2];
    WSAEVENT e[2];
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        e[i] = ne_event_select(s[i], FD_READ);
    }
    for (int k = 0; k < 2; k++) {
        int o = 1 - k;
        ne_send_str(c[0], "x");
        ne_send_str(c[1], "x");
        WAIT_FOR(unread_bytes(s[0]) == 1 && unread_bytes(s[1]) == 1, 10000);
        /* Nothing signalled e[k] yet: the wait pumps its set, which records the FD_READ. */
        CHECK_EQ(WSAWaitForMultipleEvents(1, &e[k], FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
        CHECK_EQ(ne_enum(s[o], e[o]).lNetworkEvents, FD_READ);
        /* More data before the recv: a wait pumps e[o]'s set, the enumeration after it is
         * spared the look, the one after that is not. */
        ne_send_str(c[o], "y");
        WAIT_FOR(unread_bytes(s[o]) == 2, 10000);
        CHECK_EQ(WSAWaitForMultipleEvents(1, &e[o], FALSE, 0, FALSE), WSA_WAIT_EVENT_0);
        CHECK_EQ(ne_enum(s[o], e[o]).lNetworkEvents, FD_READ);
        ne_send_str(c[o], "z");
        WAIT_FOR(unread_bytes(s[o]) == 3, 10000);
        CHECK_EQ(ne_enum(s[o], e[o]).lNetworkEvents, FD_READ);
        CHECK_EQ(ne_enum(s[k], e[k]).lNetworkEvents, FD_READ);
        char b[4];
        CHECK_EQ(ne_recv(s[k], b, sizeof b, 0), 1);
        CHECK_EQ(ne_recv(s[o], b, sizeof b, 0), 3);
        /* The checks these recvs left find nothing: none is left for the next round. */
        CHECK_EQ(ne_enum(s[0], e[0]).lNetworkEvents, 0);
        CHECK_EQ(ne_enum(s[1], e[1]).lNetworkEvents, 0);
    }
    CHECK(WSACloseEvent(e[0]));
    CHECK(WSACloseEvent(e[1]));
}

/* A check kept for data a recv left, made moot by new data that raised FD_READ first (the wait
 * pumps the set before it makes the checks), leaves nothing behind: the recv that then drains
 * the socket keeps no check. */
TEST(evset_check_made_moot_by_new_data_leaves_nothing_behind) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[16];
    CHECK_EQ(ne_recv(s, b, 2, 0), 2); /* leaves 6: a check */
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    ne_send_str(c, "8");
    WAIT_FOR(unread_bytes(s) == 7, 10000);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 7);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* Data, then the connection reset, seen at one look: FD_READ for the byte still unread, and
 * FD_CLOSE with WSAECONNABORTED. */
TEST(evset_one_byte_then_a_reset_report_read_and_close) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ | FD_CLOSE);
    struct sockaddr_storage here = local_address(s), there = local_address(c);
    ne_send_str(c, "x");
    struct linger lg = {1, 0};
    int err = 0;
    CHECK_EQ(T.lpWSPSetSockOpt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg, &err), 0);
    ne_close(c);
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == -1, 10000); /* the reset is in */
    CHECK_EQ(unread_bytes(s), 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    WSANETWORKEVENTS ne = ne_enum(s, ev);
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_CLOSE);
    CHECK_EQ(ne.iErrorCode[FD_CLOSE_BIT], WSAECONNABORTED);
    CHECK(WSACloseEvent(ev));
}

/* One wait on two events makes every check the two sets keep (eight each): none is left for
 * a later look. */
#define FULL_SET 8
TEST(evset_one_wait_makes_the_checks_of_two_full_sets) {
    start();
    SOCKET c[2][FULL_SET], s[2][FULL_SET], l[2][FULL_SET];
    WSAEVENT ev[2];
    struct wsp_event_set *set[2];
    int err = 0;
    for (int j = 0; j < 2; j++) {
        ev[j] = WSACreateEvent();
        set[j] = wsp_event_watch_set(ev[j]);
        for (int i = 0; i < FULL_SET; i++) {
            ne_pair(WSP_CATALOG_TCP_IPV4, &c[j][i], &s[j][i], &l[j][i]);
            CHECK_EQ(T.lpWSPEventSelect(s[j][i], ev[j], FD_READ, &err), 0);
            ne_send_str(c[j][i], "0123456789");
            WAIT_FOR(unread_bytes(s[j][i]) == 10, 10000);
        }
        for (int i = 0; i < FULL_SET; i++)
            CHECK_EQ(ne_enum(s[j][i], ev[j]).lNetworkEvents, FD_READ);
    }
    for (int j = 0; j < 2; j++) {
        for (int i = 0; i < FULL_SET; i++) {
            char buf[4];
            CHECK_EQ(ne_recv(s[j][i], buf, sizeof buf, 0), 4); /* 6 bytes left: a check */
        }
        CHECK_EQ(wsp_event_set_checks_pending(set[j]), FULL_SET);
    }
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    for (int j = 0; j < 2; j++) {
        CHECK_EQ(wsp_event_set_checks_pending(set[j]), 0);
        wsp_event_set_release(set[j]);
        WSACloseEvent(ev[j]);
    }
}

/* An event-select registration puts the socket in the event's set with one epoll_ctl, armed
 * for every edge at once: nothing to re-arm afterwards. */
TEST(evset_registration_takes_one_epoll_ctl) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ | FD_WRITE | FD_CLOSE, &err), 0);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 1);
    CHECK(WSACloseEvent(ev));
}

/* A recv that drains what a wait reported, on a socket just registered, keeps no check: no
 * data came while FD_READ was off. */
TEST(evset_first_recv_that_drains_keeps_no_check) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    ne_send_str(c, "a");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[8];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 1);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* A wait for all of two events looks into each event's set once when it starts (the reactor
 * watches them from then on), and not again when it ends. */
TEST(evset_wait_all_looks_into_each_set_once) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev[2] = {ne_event_select(s, FD_READ), WSACreateEvent()};
    CHECK(WSASetEvent(ev[0]));
    CHECK(WSASetEvent(ev[1]));
    FAULT(epoll_wait, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, TRUE, 10000, FALSE), WSA_WAIT_EVENT_0);
    int looks = fault_calls(FAULT_epoll_wait);
    fault_clear();
    CHECK_EQ(looks, 2);
    WSACloseEvent(ev[0]);
    WSACloseEvent(ev[1]);
}

/* A wait on two events whose poll finds only one set ready looks into that set alone. */
TEST(evset_wait_any_looks_only_into_the_sets_found_ready) {
    start();
    SOCKET c[2], s[2], l[2];
    WSAEVENT ev[2];
    for (int i = 0; i < 2; i++) {
        ne_pair(WSP_CATALOG_TCP_IPV4, &c[i], &s[i], &l[i]);
        ev[i] = ne_event_select(s[i], FD_READ);
    }
    ne_send_str(c[1], "x");
    WAIT_FOR(unread_bytes(s[1]) == 1, 10000);
    FAULT(epoll_wait, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(2, ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0 + 1);
    int looks = fault_calls(FAULT_epoll_wait);
    fault_clear();
    CHECK_EQ(looks, 1);
    CHECK_EQ(ne_enum(s[1], ev[1]).lNetworkEvents, FD_READ);
    for (int i = 0; i < 2; i++)
        WSACloseEvent(ev[i]);
}

/* A check that finds the data a recv left raises FD_READ without counting the bytes (no
 * FIONREAD): the poll said readable, with no FIN. */
TEST(evset_check_that_finds_data_does_not_count_it) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "01234567");
    WAIT_FOR(unread_bytes(s) == 8, 10000);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    char b[2];
    CHECK_EQ(ne_recv(s, b, sizeof b, 0), 2); /* leaves 6: a check */
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A registration that finds data and no FIN reports FD_READ without counting the bytes. */
TEST(evset_registration_that_finds_data_does_not_count_it) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_send_str(c, "0123");
    WAIT_FOR(unread_bytes(s) == 4, 10000);
    ne_fionbio(s, 1); /* the registration's own FIONBIO, done already */
    WSAEVENT ev = WSACreateEvent();
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(looks, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* An enumeration right after a wait that pumped the event's set does not look into the set
 * again (the wait took what there was). */
TEST(evset_enumeration_right_after_a_wait_does_not_pump_again) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    FAULT(epoll_wait, .nth = 1000000, .this_thread = 1); /* counts */
    WSANETWORKEVENTS ne = ne_enum(s, ev);
    int looks = fault_calls(FAULT_epoll_wait);
    fault_clear();
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    CHECK_EQ(looks, 0);
    CHECK(WSACloseEvent(ev));
}

/* More data before the recv raises FD_READ again, also when it comes on an edge that needs
 * the unread count to tell (here with the FIN): FD_READ was raised, an edge with room to send
 * was counted (FD_WRITE alone), then one more byte and the FIN arrive before anyone looks. */
TEST(evset_more_data_with_the_fin_after_a_counted_edge_raises_read_again) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_RCVBUF, 4096);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE | FD_CLOSE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_fill_until_blocked(c);
    ne_send_str(s, "x");
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    ne_fionbio(s, 1);
    LONG seen = ne_drain_until_write(s, c, ev);
    CHECK_EQ(seen, FD_WRITE);
    struct sockaddr_storage here = local_address(c), there = local_address(s);
    ne_send_str(s, "y");
    int err = 0;
    CHECK_EQ(T.lpWSPShutdown(s, SD_SEND, &err), 0);
    WAIT_FOR(tcp_state(port_of(&here), port_of(&there)) == TCP_CLOSE_WAIT, 10000);
    CHECK(ne_wait_bit(c, ev, FD_CLOSE, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ | FD_CLOSE);
    char b[2];
    CHECK_EQ(ne_recv(c, b, 2, 0), 2);
    CHECK(memcmp(b, "xy", 2) == 0);
    WSACloseEvent(ev);
}

/* An edge that brings no data while FD_READ waits for its recv (here room to send, and the
 * urgent byte, which SO_OOBINLINE turned off again has taken out of the data: the kernel no
 * longer reports it readable) makes no count of unread bytes: nothing new to read came with
 * it. Pins that cost, counted through the provider's ioctl (FIONREAD). */
TEST(evset_edge_without_data_while_read_is_off_counts_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_RCVBUF, 4096);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    set_dword(c, SOL_SOCKET, SO_OOBINLINE, 1);
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne)); /* at registration */
    CHECK_EQ(ne_send(s, "!", 1, MSG_OOB, NULL), 0);
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne)); /* inline: data */
    set_dword(c, SOL_SOCKET, SO_OOBINLINE, 0);
    ne_fill_until_blocked(c);
    ne_fionbio(s, 1);
    FAULT(ioctl, .nth = 1000000, .this_thread = 1); /* counts */
    LONG seen = ne_drain_until_write(s, c, ev);
    int looks = fault_calls(FAULT_ioctl);
    fault_clear();
    CHECK_EQ(seen, FD_WRITE);
    CHECK_EQ(looks, 0);
    WSACloseEvent(ev);
}

/* Once a blocked send's FD_WRITE is raised the set's watch stops waiting for room to send, so
 * that the edges after it are data alone: more data before the recv raises FD_READ again, as
 * it does before any send blocked. (A watch left armed for EPOLLOUT reports room to send with
 * every later edge, and an edge that comes with it cannot be told from the same data seen
 * again: the first byte more was then missed.) */
TEST(evset_more_data_after_a_blocked_sends_write_raises_read_again) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    set_dword(s, SOL_SOCKET, SO_RCVBUF, 4096);
    set_dword(c, SOL_SOCKET, SO_SNDBUF, 4096);
    WSAEVENT ev = ne_event_select(c, FD_READ | FD_WRITE);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(c, ev, FD_WRITE, 10000, &ne)); /* at registration */
    ne_fill_until_blocked(c);
    ne_fionbio(s, 1);
    LONG seen = ne_drain_until_write(s, c, ev);
    CHECK_EQ(seen, FD_WRITE);
    ne_send_str(s, "a");
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    ne_send_str(s, "b"); /* more data before the recv: FD_READ again (Windows) */
    CHECK(ne_wait_bit(c, ev, FD_READ, 10000, &ne));
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    char b[4];
    CHECK_EQ(ne_recv(c, b, sizeof b, 0), 2);
    CHECK(memcmp(b, "ab", 2) == 0);
    WSACloseEvent(ev);
}

/* A wait that pumps its event's set and, through an application's WPUSetEvent (its upcall
 * table replaced the built-in one after the socket was registered), has another event set:
 * a thread waiting on that other event alone is woken. The waiting thread's own poll on the
 * event it pumps is the only one spared a raised descriptor. Both orders of the two events. */
static WSAEVENT other_event;
static struct blocker other_waiter_blocked;
static DWORD other_waiter_result;

static BOOL set_this_and_the_other(WSAEVENT ev, LPINT err) {
    WSASetEvent(ev);
    WSASetEvent(other_event);
    *err = 0;
    return TRUE;
}

static void *wait_for_the_other(void *arg) {
    (void)arg;
    blocker_enter(&other_waiter_blocked);
    /* No time-out: one would end in a last look that finds the event set, woken or not
     * (a thread never woken hangs, and the runner's time limit fails the test). */
    other_waiter_result = WSAWaitForMultipleEvents(1, &other_event, FALSE, WSA_INFINITE, FALSE);
    blocker_leave(&other_waiter_blocked);
    return NULL;
}

static void pump_that_sets_another_event_wakes_its_waiter(int swap) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev[2] = {WSACreateEvent(), WSACreateEvent()};
    CHECK(ev[0] != WSA_INVALID_EVENT && ev[1] != WSA_INVALID_EVENT);
    WSAEVENT pumped = ev[swap];
    other_event = ev[!swap];
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, pumped, FD_READ, &err), 0);
    WSPDATA data;
    WSPUPCALLTABLE up;
    memset(&up, 0, sizeof up);
    up.lpWPUSetEvent = set_this_and_the_other;
    CHECK_EQ(WSPStartup(MAKEWORD(2, 2), &data, NULL, up, &T), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_for_the_other, NULL), 0);
    wait_blocked(&other_waiter_blocked);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &pumped, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    pthread_join(t, NULL);
    CHECK_EQ(other_waiter_result, WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(s, NULL).lNetworkEvents, FD_READ);
}

TEST(evset_pump_that_sets_another_event_wakes_its_waiter) {
    pump_that_sets_another_event_wakes_its_waiter(0);
}
TEST(evset_pump_that_sets_another_event_wakes_its_waiter_other_order) {
    pump_that_sets_another_event_wakes_its_waiter(1);
}

/* An exported event's set is watched by the reactor: its last release leaves the set to the
 * reactor, which frees it when it next passes (a batch it is working through may still name
 * it), and nothing else frees or closes it; freeing it is only memory, so the release does not
 * wake the reactor for it (no wake-up written). The provider goes on. */
TEST(evset_exported_event_closed_leaves_its_set_to_the_reactor) {
    start();
    SOCKET c, s, l, bc, bs, bl;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    ne_pair(WSP_CATALOG_TCP_IPV4, &bc, &bs, &bl);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int fd = WSAEventFd(ev);
    CHECK(fd >= 0);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    ne_send_str(c, "x");
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 10000), 1); /* the reactor relayed the readiness */
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK_EQ(T.lpWSPEventSelect(s, NULL, 0, &err), 0);
    unsigned wakes = wsp_reactor_wakes();
    CHECK(WSACloseEvent(ev));
    CHECK_EQ(wsp_reactor_wakes(), wakes);
    /* The reactor passes again (it relays b's data), freeing the set on its way. */
    HWND q = WSPCreateMessageQueue();
    CHECK_EQ(T.lpWSPAsyncSelect(bs, q, NE_MSG, FD_READ, &err), 0);
    ne_send_str(bc, "y");
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    /* Once more: the pass that relayed "y" has ended (and reaped) when "z" is relayed. */
    char b;
    CHECK_EQ(ne_recv(bs, &b, 1, 0), 1);
    ne_send_str(bc, "z");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == bs);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
}

/* A reactor item that stops the reactor in its on_ready until the test opens the gate, on each
 * of its first two passes; level-triggered on an eventfd that stays readable until the second
 * pass drains it. */
struct gate {
    struct wsp_reactor_item item;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, opened;
    atomic_int released;
};

static void gate_ready(struct wsp_reactor_item *item, uint32_t events) {
    (void)events;
    struct gate *g = (struct gate *)item;
    pthread_mutex_lock(&g->lock);
    int pass = ++g->entered;
    pthread_cond_broadcast(&g->cond);
    while (pass <= 2 && g->opened < pass)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    if (pass >= 2) {
        uint64_t v;
        CHECK_EQ(read(item->fd, &v, sizeof v), (ssize_t)sizeof v);
    }
}

static void gate_release(struct wsp_reactor_item *item) {
    atomic_store(&((struct gate *)item)->released, 1);
}

static void gate_wait_entered(struct gate *g, int pass) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&g->lock);
    int rc = 0;
    while (g->entered < pass && rc == 0)
        rc = pthread_cond_timedwait(&g->cond, &g->lock, &deadline);
    int entered = g->entered;
    pthread_mutex_unlock(&g->lock);
    CHECK_EQ(entered, pass);
}

static void gate_open(struct gate *g) {
    pthread_mutex_lock(&g->lock);
    g->opened++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* The window the test above leaves to chance, held open: the reactor has the set's readiness
 * in the batch it works through (after a gate item that holds it up) when the socket and the
 * exported event let the set go. The set's last release leaves it to the reactor, which skips
 * it in that batch and frees it after: nothing freed is dispatched. */
TEST(evset_set_let_go_while_a_reactor_batch_names_it_is_freed_by_the_reactor) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    CHECK(WSAEventFd(ev) >= 0); /* the reactor watches the set */
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    int set_fd = wsp_event_set_fd(set);
    wsp_event_set_release(set); /* the event's reference and the socket's keep it */
    static struct gate g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    g.item.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(g.item.fd >= 0);
    g.item.on_ready = gate_ready;
    g.item.release = gate_release;
    CHECK_EQ(wsp_reactor_add(&g.item, EPOLLIN), 0);
    uint64_t one = 1;
    CHECK_EQ(write(g.item.fd, &one, sizeof one), (ssize_t)sizeof one);
    gate_wait_entered(&g, 1);
    /* The set turns ready behind the gate, which stays ready: the next batch is the gate, then
     * the set. */
    ne_send_str(c, "x");
    WAIT_FOR(fd_readable(set_fd, 0), 10000);
    gate_open(&g);
    gate_wait_entered(&g, 2);
    CHECK_EQ(T.lpWSPEventSelect(s, NULL, 0, &err), 0);
    CHECK(WSACloseEvent(ev)); /* the set's last reference */
    gate_open(&g);
    wsp_reactor_remove(&g.item);
    WAIT_FOR(atomic_load(&g.released), 10000); /* the reactor has been past the batch */
    close(g.item.fd);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.lock);
}

/* n connections whose server ends are selected for FD_READ on one new event, each sent a
 * byte in turn: they are in that order in the set's ready list. */
static WSAEVENT pairs_with_a_byte_each(int n, SOCKET *s) {
    WSAEVENT ev = WSACreateEvent();
    CHECK(ev != WSA_INVALID_EVENT);
    int err = 0;
    for (int i = 0; i < n; i++) {
        SOCKET c, l;
        ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s[i], &l);
        CHECK_EQ(T.lpWSPEventSelect(s[i], ev, FD_READ, &err), 0);
        ne_send_str(c, "x");
        WAIT_FOR(unread_bytes(s[i]) == 1, 10000);
    }
    return ev;
}

/* A wait's pump takes every readiness its set holds, more than one batch of it (64) too: the
 * enumeration right after it on the same thread, which counts on that pump, finds the record
 * of the socket whose data came last. */
#define MORE_THAN_A_BATCH 70
TEST(evset_wait_pumps_more_than_a_batch) {
    start();
    static SOCKET s[MORE_THAN_A_BATCH];
    WSAEVENT ev = pairs_with_a_byte_each(MORE_THAN_A_BATCH, s);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    for (int i = MORE_THAN_A_BATCH - 1; i >= 0; i--)
        CHECK_EQ(ne_enum(s[i], ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A wait's pump that takes exactly one batch (64) ends with a look that finds nothing more:
 * it took everything all the same, and the enumeration right after it on the same thread
 * does not look into the set again (no epoll_wait). */
TEST(evset_wait_that_pumps_exactly_a_batch_spares_the_next_enumeration_its_look) {
    start();
    enum { A_BATCH = 64 };
    static SOCKET s[A_BATCH];
    WSAEVENT ev = pairs_with_a_byte_each(A_BATCH, s);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 10000, FALSE), WSA_WAIT_EVENT_0);
    FAULT(epoll_wait, .nth = 1000000, .this_thread = 1); /* counts */
    WSANETWORKEVENTS ne = ne_enum(s[A_BATCH - 1], ev);
    int looks = fault_calls(FAULT_epoll_wait);
    fault_clear();
    CHECK_EQ(ne.lNetworkEvents, FD_READ);
    CHECK_EQ(looks, 0);
    for (int i = 0; i < A_BATCH - 1; i++)
        CHECK_EQ(ne_enum(s[i], ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A wait whose look into its set fails (epoll_wait) took nothing from it: the enumeration
 * right after it looks into the set itself and reports the readiness. */
TEST(evset_wait_whose_look_into_the_set_fails_leaves_it_to_the_next_enumeration) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    FAULT(epoll_wait, .nth = 1, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, FALSE, 0, FALSE), WSA_WAIT_TIMEOUT);
    CHECK_EQ(fault_fired(FAULT_epoll_wait), 1);
    fault_clear();
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* Descriptor 0 is a descriptor like any other: a process without standard input may get it
 * for an event's epoll set (here the event's own descriptor came first, and 0 was freed while
 * the set's epoll_create1 waited), and that event works: a socket registered on it signals it,
 * and closing the event closes descriptor 0. */
static WSAEVENT created_event;

static void *create_event_main(void *arg) {
    (void)arg;
    created_event = WSACreateEvent();
    return NULL;
}

TEST(evset_set_on_descriptor_0_works) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    int saved = dup(0);
    CHECK(saved > 0);
    FAULT(epoll_create1, .nth = 1, .hold = 1);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, create_event_main, NULL), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
    CHECK_EQ(close(0), 0);
    fault_release();
    pthread_join(t, NULL);
    CHECK_EQ(fault_fired(FAULT_epoll_create1), 1);
    fault_clear();
    WSAEVENT ev = created_event;
    CHECK(ev != WSA_INVALID_EVENT);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    CHECK(set != NULL);
    CHECK_EQ(wsp_event_set_fd(set), 0);
    wsp_event_set_release(set);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(s, ev, FD_READ, &err), 0);
    ne_send_str(c, "x");
    CHECK(ne_signalled(ev, 10000));
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    ne_close(s);
    CHECK(WSACloseEvent(ev));
    CHECK_EQ(fcntl(0, F_GETFD), -1); /* closed with the event */
    CHECK_EQ(errno, EBADF);
    CHECK_EQ(dup2(saved, 0), 0);
    close(saved);
}

/* A wait-all with a time-out of 0 looks once, as a wait-any does (it polls the set, and takes
 * the socket's readiness when the set is ready): it has nothing to sleep through, so it does
 * not have the reactor watch the set meanwhile. Pins that it makes no epoll_ctl (the watch
 * would cost two: the set into the reactor's epoll and out again). */
TEST(evset_wait_all_with_a_time_out_of_0_asks_the_reactor_nothing) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1); /* counts */
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, TRUE, 0, FALSE), WSA_WAIT_TIMEOUT);
    int calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 0);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000);
    FAULT(epoll_ctl, .nth = 1000000, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, TRUE, 0, FALSE), WSA_WAIT_EVENT_0);
    calls = fault_calls(FAULT_epoll_ctl);
    fault_clear();
    CHECK_EQ(calls, 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* As a wait-any does (evset_wait_interrupted_keeps_the_check_of_data_left_by_a_recv), a
 * wait-all that will sleep makes the checks its events' sets hold (data a recv left behind)
 * before it sleeps, also when the reactor cannot watch the sets (its epoll_ctl failing here):
 * the data answers it at once instead of at its time-out. */
TEST(evset_wait_all_makes_the_pending_checks_when_the_reactor_cannot_watch) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    struct wsp_event_set *set = wsp_event_watch_set(ev);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, ev, FD_READ, 10000, &ne));
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check is due */
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, TRUE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1); /* the set into the reactor's epoll */
    fault_clear();
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(ev));
}

/* The other end of that: a wait-all that ends, its set still out of the reactor (epoll_ctl
 * failing), leaves the check a recv deferred meanwhile to the next wait or enumeration
 * (event_set.h) and makes no check itself on its way out. */
struct wait_all_unwatched {
    WSAEVENT event;
    struct blocker blocker;
    DWORD result;
    int refused;
};

static void *wait_all_unwatched_main(void *arg) {
    struct wait_all_unwatched *w = arg;
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    blocker_enter(&w->blocker);
    w->result = WSAWaitForMultipleEvents(1, &w->event, TRUE, 2000, FALSE);
    blocker_leave(&w->blocker);
    w->refused = fault_fired(FAULT_epoll_ctl);
    return NULL;
}

TEST(evset_wait_all_ending_unwatched_leaves_a_deferred_check_pending) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    struct wait_all_unwatched w = {.event = ne_event_select(s, FD_READ)};
    struct wsp_event_set *set = wsp_event_watch_set(w.event);
    ne_send_str(c, "abc");
    WAIT_FOR(unread_bytes(s) == 3, 10000);
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(s, w.event, FD_READ, 10000, &ne));
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_all_unwatched_main, &w), 0);
    wait_blocked(&w.blocker);
    char b;
    CHECK_EQ(ne_recv(s, &b, 1, 0), 1); /* 2 bytes left: a check, deferred (no reactor) */
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    pthread_join(t, NULL);
    fault_clear();
    CHECK_EQ(w.refused, 1);
    CHECK_EQ(w.result, WSA_WAIT_TIMEOUT);
    CHECK_EQ(wsp_event_set_checks_pending(set), 1);
    CHECK_EQ(ne_enum(s, w.event).lNetworkEvents, FD_READ);
    CHECK_EQ(wsp_event_set_checks_pending(set), 0);
    wsp_event_set_release(set);
    CHECK(WSACloseEvent(w.event));
}

/* A wait-all that will sleep looks into its events' sets itself first: readiness already
 * there answers it at once, even when the reactor cannot watch the sets (its epoll_ctl
 * failing here), which would otherwise be the only one to see it. */
TEST(evset_wait_all_takes_readiness_already_there_when_the_reactor_cannot_watch) {
    start();
    SOCKET c, s, l;
    ne_pair(WSP_CATALOG_TCP_IPV4, &c, &s, &l);
    WSAEVENT ev = ne_event_select(s, FD_READ);
    ne_send_str(c, "x");
    WAIT_FOR(unread_bytes(s) == 1, 10000); /* in the set: no one looked */
    FAULT(epoll_ctl, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(WSAWaitForMultipleEvents(1, &ev, TRUE, 10000, FALSE), WSA_WAIT_EVENT_0);
    CHECK_EQ(fault_fired(FAULT_epoll_ctl), 1); /* the set into the reactor's epoll */
    fault_clear();
    CHECK_EQ(ne_enum(s, ev).lNetworkEvents, FD_READ);
    CHECK(WSACloseEvent(ev));
}

/* A pump's readiness for a socket that left the set after the pump took it from the set (in
 * the same batch as another socket's, which the pump was working on) is no longer the
 * socket's. The pump of a waiting thread is held in its look at s1's unread count (s1 brought
 * data and a FIN, and is first in the batch); meanwhile the test deals with s2, whose data the
 * same look at the set took. */
struct held_pump {
    SOCKET c1, s1, l1, c2, s2, l2;
    WSAEVENT ev;
    DWORD result;
    pthread_t thread;
};

static void *held_pump_wait_main(void *arg) {
    struct held_pump *h = arg;
    h->result = WSAWaitForMultipleEvents(1, &h->ev, FALSE, 60000, FALSE);
    return NULL;
}

static int provider_fd_ready(SOCKET s, short events) {
    int err = 0;
    struct wsp_socket *so = wsp_socket_acquire(s, &err);
    CHECK(so != NULL);
    struct pollfd p = {.fd = so->fd, .events = events};
    int ready = poll(&p, 1, 10000) == 1 && (p.revents & events) == events;
    wsp_socket_release(so);
    return ready;
}

static void held_pump_start(struct held_pump *h) {
    ne_pair(WSP_CATALOG_TCP_IPV4, &h->c1, &h->s1, &h->l1);
    ne_pair(WSP_CATALOG_TCP_IPV4, &h->c2, &h->s2, &h->l2);
    h->ev = WSACreateEvent();
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(h->s1, h->ev, FD_READ | FD_CLOSE, &err), 0);
    CHECK_EQ(T.lpWSPEventSelect(h->s2, h->ev, FD_READ, &err), 0);
    ne_send_str(h->c1, "x");
    CHECK_EQ(T.lpWSPShutdown(h->c1, SD_SEND, &err), 0);
    CHECK(provider_fd_ready(h->s1, POLLIN | POLLRDHUP)); /* first in the set's ready list */
    ne_send_str(h->c2, "y");
    CHECK(provider_fd_ready(h->s2, POLLIN));
    FAULT(ioctl, .nth = 1, .hold = 1); /* the pump's look at s1's unread count */
    h->result = WSA_WAIT_FAILED;
    CHECK_EQ(pthread_create(&h->thread, NULL, held_pump_wait_main, h), 0);
    WAIT_FOR(fault_holding() == 1, 10000);
}

/* Lets the pump go on; its wait ends with s1's events. */
static void held_pump_finish(struct held_pump *h) {
    fault_release();
    pthread_join(h->thread, NULL);
    CHECK_EQ(fault_fired(FAULT_ioctl), 1);
    fault_clear();
    CHECK_EQ(h->result, WSA_WAIT_EVENT_0);
    CHECK_EQ(ne_enum(h->s1, h->ev).lNetworkEvents, FD_READ | FD_CLOSE);
    WSACloseEvent(h->ev);
}

/* s2's data read and s2 registered again, for window messages: the new registration, which
 * found nothing to read, posts nothing for the old readiness, and works on. */
TEST(evset_readiness_of_a_socket_registered_elsewhere_since_is_dropped) {
    start();
    struct held_pump h;
    held_pump_start(&h);
    char b[4];
    CHECK_EQ(ne_recv(h.s2, b, sizeof b, 0), 1);
    HWND q = WSPCreateMessageQueue();
    int err = 0;
    CHECK_EQ(T.lpWSPAsyncSelect(h.s2, q, NE_MSG, FD_READ, &err), 0); /* nothing to read */
    held_pump_finish(&h);
    WSPMSG m;
    CHECK_EQ(WSPGetMessage(q, &m, 0), 0);
    ne_send_str(h.c2, "z");
    CHECK_EQ(WSPGetMessage(q, &m, 10000), 1);
    CHECK(m.wParam == h.s2);
    CHECK_EQ(m.lParam, WSAMAKESELECTREPLY(FD_READ, 0));
    CHECK(WSPDestroyMessageQueue(q));
}

/* s2 closed: its handle names no socket any more, and the pump passes over it. */
TEST(evset_readiness_of_a_socket_closed_since_is_dropped) {
    start();
    struct held_pump h;
    held_pump_start(&h);
    ne_close(h.s2);
    held_pump_finish(&h);
}

/* s2's registration cancelled (a zero mask): s2 is watched no more, and the pump passes over
 * it; s2's FD_READ is not recorded. */
TEST(evset_readiness_of_a_socket_unregistered_since_is_dropped) {
    start();
    struct held_pump h;
    held_pump_start(&h);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(h.s2, h.ev, 0, &err), 0);
    held_pump_finish(&h);
    CHECK_EQ(ne_enum(h.s2, NULL).lNetworkEvents, 0);
}

/* s2's data read and s2 selected again on another event (another set): the new event's
 * record stays empty, the old readiness being the first set's. Both orders of the two sets
 * in memory are tried (the second event made before or after the first). */
static void registered_on_another_event_gets_nothing(int other_first) {
    WSAEVENT other = other_first ? WSACreateEvent() : WSA_INVALID_EVENT;
    struct held_pump h;
    held_pump_start(&h);
    if (!other_first)
        other = WSACreateEvent();
    CHECK(other != WSA_INVALID_EVENT);
    char b[4];
    CHECK_EQ(ne_recv(h.s2, b, sizeof b, 0), 1);
    int err = 0;
    CHECK_EQ(T.lpWSPEventSelect(h.s2, other, FD_READ, &err), 0); /* nothing to read */
    held_pump_finish(&h);
    CHECK_EQ(ne_enum(h.s2, other).lNetworkEvents, 0);
    ne_send_str(h.c2, "z"); /* the new registration works */
    WSANETWORKEVENTS ne;
    CHECK(ne_wait_bit(h.s2, other, FD_READ, 10000, &ne));
    CHECK(WSACloseEvent(other));
}

TEST(evset_readiness_of_a_socket_moved_to_another_event_since_is_dropped) {
    start();
    registered_on_another_event_gets_nothing(0);
    registered_on_another_event_gets_nothing(1);
}
