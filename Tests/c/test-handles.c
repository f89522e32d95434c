/* The descriptor helpers of handles.c that the files doing I/O share: wsp_fd_send_all's
 * waiting and giving up, and the cached O_NONBLOCK of wsp_socket_fd_nonblocking. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "harness.h"
#include "internal.h"

/* Reads what the peer of sv[1] sent until it closes; returns how many bytes. */
static size_t read_to_end(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        CHECK(r >= 0);
        if (r == 0)
            return n;
        n += (size_t)r;
        CHECK(n < cap);
    }
}

static void check_sent(int sv[2], const char *msg, size_t len) {
    close(sv[0]);
    char got[64];
    CHECK_EQ(read_to_end(sv[1], got, sizeof got), len);
    CHECK_MEM(got, msg, len);
    close(sv[1]);
}

/* Without a time limit (-1), a send that finds the buffer full waits for room and goes on:
 * it never gives up with WSAETIMEDOUT. */
TEST(handles_send_all_without_a_limit_waits_for_room) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    static const char msg[] = "after a full buffer";
    FAULT(send, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], msg, sizeof msg, -1), 0);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    check_sent(sv, msg, sizeof msg);
}

/* With no time at all (0), a full buffer is WSAETIMEDOUT at once, nothing sent. */
TEST(handles_send_all_with_no_time_gives_up_at_a_full_buffer) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    FAULT(send, .err = EAGAIN, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], "x", 1, 0), WSAETIMEDOUT);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    check_sent(sv, "", 0);
}

/* An interrupted send is made again; any other failure is the call's, mapped as everywhere. */
TEST(handles_send_all_retries_an_interrupted_send_and_reports_a_failure) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    FAULT(send, .err = EINTR, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], "ab", 2, 1000), 0);
    CHECK_EQ(fault_fired(FAULT_send), 1);
    FAULT(send, .err = EPIPE, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], "cd", 2, 1000), wsp_wsa_from_errno(EPIPE));
    CHECK_EQ(fault_fired(FAULT_send), 1);
    /* One whose number is below EAGAIN's too (a firewall's EPERM): not a full buffer. */
    FAULT(send, .err = EPERM, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], "ef", 2, 1000), wsp_wsa_from_errno(EPERM));
    CHECK_EQ(fault_fired(FAULT_send), 1);
    fault_clear();
    check_sent(sv, "ab", 2);
}

/* A wait for room that fails (poll) ends the send with that failure. */
TEST(handles_send_all_reports_a_failed_wait) {
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    FAULT(send, .err = EAGAIN, .this_thread = 1);
    FAULT(poll, .err = ENOMEM, .this_thread = 1);
    CHECK_EQ(wsp_fd_send_all(sv[0], "x", 1, 1000), wsp_wsa_from_errno(ENOMEM));
    CHECK_EQ(fault_fired(FAULT_poll), 1);
    fault_clear();
    check_sent(sv, "", 0);
}
