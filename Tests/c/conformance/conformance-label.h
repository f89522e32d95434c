/* The conformance suite's labels (conformance.h says how they are used), on their own so that
 * a check written against the Winsock API (<wsp/winsock2.h>) can use them too. */
#ifndef WSP_CONFORMANCE_LABEL_H
#define WSP_CONFORMANCE_LABEL_H

#include "harness.h"

#define DOCUMENTED(page) "Microsoft's reference page, " page
#define OBSERVED "observed on Windows (not stated on its pages)"

struct conformance_label {
    const char *source, *statement;
    int done;
};
extern struct conformance_label conformance_current;
void conformance_begin(const char *source, const char *statement);

#define CONFORMANCE(name, source, statement)                                          \
    static void conformance_body_##name(void);                                        \
    TEST(conformance_##name) {                                                        \
        conformance_begin(source, statement);                                         \
        conformance_body_##name();                                                    \
        conformance_current.done = 1;                                                 \
    }                                                                                 \
    static void conformance_body_##name(void)

#endif
