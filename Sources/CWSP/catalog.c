/* The provider's catalog: which protocols WSP offers and how a socket picks one. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const struct wsp_catalog_entry entries[] = {
    {WSP_CATALOG_TCP_IPV4, AF_INET, 0},
    {WSP_CATALOG_TCP_IPV6, AF_INET6, 0},
    {WSP_CATALOG_CDATA_IPV4, AF_INET, 1},
    {WSP_CATALOG_CDATA_IPV6, AF_INET6, 1},
};
#define ENTRY_COUNT ((int)(sizeof entries / sizeof entries[0]))

/* A fixed GUID for WSP's provider: {57535000-0000-4000-8000-000000000001}. */
static const GUID provider_id = {0x57535000, 0x0000, 0x4000, {0x80, 0, 0, 0, 0, 0, 0, 0x01}};

static void describe(const struct wsp_catalog_entry *e, WSAPROTOCOL_INFO *info) {
    memset(info, 0, sizeof *info);
    info->dwServiceFlags1 = XP1_GUARANTEED_DELIVERY | XP1_GUARANTEED_ORDER | XP1_GRACEFUL_CLOSE |
                            XP1_EXPEDITED_DATA | XP1_IFS_HANDLES;
    if (e->connect_data)
        info->dwServiceFlags1 |= XP1_CONNECT_DATA | XP1_QOS_SUPPORTED;
    info->dwProviderFlags = PFL_MULTIPLE_PROTO_ENTRIES;
    if (!e->connect_data)
        info->dwProviderFlags |= PFL_RECOMMENDED_PROTO_ENTRY;
    info->ProviderId = provider_id;
    info->dwCatalogEntryId = e->id;
    info->ProtocolChain.ChainLen = BASE_PROTOCOL;
    info->iVersion = 2;
    info->iAddressFamily = e->af;
    info->iMaxSockAddr = (int)wsp_sockaddr_len(e->af);
    info->iMinSockAddr = (int)wsp_sockaddr_len(e->af);
    info->iSocketType = SOCK_STREAM;
    info->iProtocol = IPPROTO_TCP;
    info->iNetworkByteOrder = BIGENDIAN;
    info->iSecurityScheme = SECURITY_PROTOCOL_NONE;
    info->dwMessageSize = 0; /* a stream */
    snprintf(info->szProtocol, sizeof info->szProtocol, "WSP TCP/%s%s",
             e->af == AF_INET6 ? "IPv6" : "IPv4", e->connect_data ? " with connect data" : "");
}

static int selected(const struct wsp_catalog_entry *e, const int *protocols) {
    if (!protocols)
        return 1;
    for (; *protocols; protocols++)
        if (*protocols == IPPROTO_TCP)
            return 1;
    (void)e;
    return 0;
}

int WSPEnumProtocols(LPINT lpiProtocols, LPWSAPROTOCOL_INFO lpProtocolBuffer,
                     LPDWORD lpdwBufferLength, LPINT lpErrno) {
    if (!lpdwBufferLength)
        return wsp_fail(lpErrno, WSAEFAULT);
    int n = 0;
    for (int i = 0; i < ENTRY_COUNT; i++)
        n += selected(&entries[i], lpiProtocols);
    DWORD need = (DWORD)n * (DWORD)sizeof(WSAPROTOCOL_INFO);
    if (!lpProtocolBuffer || *lpdwBufferLength < need) {
        *lpdwBufferLength = need;
        return wsp_fail(lpErrno, WSAENOBUFS);
    }
    int k = 0;
    for (int i = 0; i < ENTRY_COUNT; i++)
        if (selected(&entries[i], lpiProtocols))
            describe(&entries[i], &lpProtocolBuffer[k++]);
    *lpdwBufferLength = need;
    return n;
}

const struct wsp_catalog_entry *wsp_catalog_entry_of(const WSAPROTOCOL_INFO *info) {
    for (int i = 0; i < ENTRY_COUNT; i++)
        if (entries[i].id == info->dwCatalogEntryId)
            return &entries[i];
    return NULL;
}

const struct wsp_catalog_entry *wsp_catalog_find(const WSAPROTOCOL_INFO *info, int af, int type,
                                                 int protocol, int *err) {
    if (info) {
        const struct wsp_catalog_entry *entry = wsp_catalog_entry_of(info);
        if (!entry)
            *err = WSAEINVAL;
        return entry;
    }
    if (af != AF_INET && af != AF_INET6) {
        *err = WSAEAFNOSUPPORT;
        return NULL;
    }
    if (type != SOCK_STREAM) {
        *err = WSAESOCKTNOSUPPORT;
        return NULL;
    }
    if (protocol != 0 && protocol != IPPROTO_TCP) {
        *err = WSAEPROTONOSUPPORT;
        return NULL;
    }
    return &entries[af == AF_INET6 ? 1 : 0];
}

socklen_t wsp_sockaddr_len(int af) {
    return af == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                          : (socklen_t)sizeof(struct sockaddr_in);
}
