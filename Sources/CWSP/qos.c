/* Converting Winsock's QOS to and from the handshake's wire form. */
#include <string.h>

#include "qos.h"

void wsp_qos_to_wire(wsp_hs_qos *w, const QOS *q) {
    const FLOWSPEC *in[2] = {&q->SendingFlowspec, &q->ReceivingFlowspec};
    wsp_hs_flowspec *out[2] = {&w->sending, &w->receiving};
    for (int i = 0; i < 2; i++)
        *out[i] = (wsp_hs_flowspec){in[i]->TokenRate,      in[i]->TokenBucketSize,
                                    in[i]->PeakBandwidth,  in[i]->Latency,
                                    in[i]->DelayVariation, in[i]->ServiceType,
                                    in[i]->MaxSduSize,     in[i]->MinimumPolicedSize};
    w->specific = (const uint8_t *)q->ProviderSpecific.buf;
    w->specific_len = q->ProviderSpecific.buf ? q->ProviderSpecific.len : 0;
}

void wsp_qos_from_wire(QOS *q, const wsp_hs_qos *w, char *specific, uint32_t cap) {
    const wsp_hs_flowspec *in[2] = {&w->sending, &w->receiving};
    FLOWSPEC *out[2] = {&q->SendingFlowspec, &q->ReceivingFlowspec};
    for (int i = 0; i < 2; i++)
        *out[i] = (FLOWSPEC){in[i]->token_rate,      in[i]->token_bucket_size,
                             in[i]->peak_bandwidth,  in[i]->latency,
                             in[i]->delay_variation, in[i]->service_type,
                             in[i]->max_sdu_size,    in[i]->minimum_policed_size};
    uint32_t n = w->specific_len < cap ? w->specific_len : cap;
    if (n) /* then cap is not 0, and specific not NULL */
        memcpy(specific, w->specific, n);
    q->ProviderSpecific.buf = specific;
    q->ProviderSpecific.len = n;
}
