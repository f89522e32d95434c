/* Converting Winsock's QOS to and from the handshake's wire form. */
#ifndef WSP_QOS_H
#define WSP_QOS_H

#include "handshake.h"
#include "internal.h"

/* w->specific points at q's provider-specific bytes afterwards. */
void wsp_qos_to_wire(wsp_hs_qos *w, const QOS *q) WSP_INTERNAL;
/* Copies at most cap provider-specific bytes into specific (which may be NULL when cap is 0)
 * and points q's ProviderSpecific at it. */
void wsp_qos_from_wire(QOS *q, const wsp_hs_qos *w, char *specific, uint32_t cap) WSP_INTERNAL;

#endif
