/* Compiled (not run) by `make check-c` as C99, C11 and C++: wsp.h must stand on its own, with
 * no warning under -pedantic, for every language a porting project may use. */
#include <wsp.h>

int main(void) {
    WSPPROC_TABLE table;
    WSPUPCALLTABLE upcalls;
    WSANETWORKEVENTS events;
    (void)table;
    (void)upcalls;
    (void)events;
    return WSAECONNREFUSED == 10061 ? 0 : 1;
}
