/* The echo client of the Winsock server tests (echo-client.c). */
#ifndef WSP_TEST_WINSOCK_ECHO_CLIENT_H
#define WSP_TEST_WINSOCK_ECHO_CLIENT_H

#include <pthread.h>

/* Connects to 127.0.0.1:port, sends "hello from client <id>", checks the echo and closes.
 * Waits at connected (after the connect) and echoed (before the close) unless NULL, so that
 * a test can hold all its clients connected at once. 0 on success. */
int echo_client_main(const char *port, int id, pthread_barrier_t *connected,
                     pthread_barrier_t *echoed);

#endif
