/* The catalog as programs see it: every provider's entries in order (WSAEnumProtocols), and
 * the address-string conversions, which go to the provider of the address's family. */
#include <stdlib.h>
#include <string.h>

#include "winsock_internal.h"

/* Reads one provider's entries with lpiProtocols applied: a malloc'd array (NULL when there
 * are none), *count set; 0 or the error. */
static int read_provider(struct winsock_provider *p, LPINT protocols, WSAPROTOCOL_INFO **out,
                         int *count) {
    *out = NULL;
    *count = 0;
    for (;;) {
        DWORD len = 0;
        int err = 0;
        if (p->enum_protocols(protocols, NULL, &len, &err) != SOCKET_ERROR || err != WSAENOBUFS)
            return err;
        if (len == 0)
            return 0;
        WSAPROTOCOL_INFO *buf = malloc(len);
        if (!buf)
            return WSAENOBUFS;
        int n = p->enum_protocols(protocols, buf, &len, &err);
        if (n >= 0) {
            *out = buf;
            *count = n;
            return 0;
        }
        free(buf);
        if (err != WSAENOBUFS) /* else the catalog grew between the two calls: again */
            return err;
    }
}

static struct winsock_entry *read_all(LPINT protocols, int *count, int *err) {
    struct winsock_entry *all = malloc(1);
    *count = 0;
    if (!all) {
        *err = WSAENOBUFS;
        return NULL;
    }
    for (int i = 0; i < winsock_provider_count; i++) {
        WSAPROTOCOL_INFO *infos;
        int n;
        *err = read_provider(&winsock_providers[i], protocols, &infos, &n);
        if (*err) {
            free(all);
            return NULL;
        }
        struct winsock_entry *more = n ? realloc(all, (size_t)(*count + n) * sizeof *all) : all;
        if (!more) {
            free(infos);
            free(all);
            *err = WSAENOBUFS;
            return NULL;
        }
        all = more;
        for (int k = 0; k < n; k++)
            all[*count + k] = (struct winsock_entry){infos[k], &winsock_providers[i]};
        *count += n;
        free(infos);
    }
    return all;
}

struct winsock_entry *winsock_catalog_read(int *count, int *err) {
    return read_all(NULL, count, err);
}

int WSAEnumProtocols(LPINT lpiProtocols, LPWSAPROTOCOL_INFO lpProtocolBuffer,
                     LPDWORD lpdwBufferLength) {
    int err = winsock_check_started();
    if (err)
        return winsock_fail(err);
    if (!lpdwBufferLength)
        return winsock_fail(WSAEFAULT);
    int n;
    struct winsock_entry *all = read_all(lpiProtocols, &n, &err);
    if (!all)
        return winsock_fail(err);
    DWORD need = (DWORD)n * (DWORD)sizeof(WSAPROTOCOL_INFO);
    if (!lpProtocolBuffer || *lpdwBufferLength < need) {
        free(all);
        *lpdwBufferLength = need;
        return winsock_fail(WSAENOBUFS);
    }
    for (int i = 0; i < n; i++)
        lpProtocolBuffer[i] = all[i].info;
    free(all);
    *lpdwBufferLength = need;
    return n;
}

/* The provider for an address conversion: the entry info names, else the first entry of the
 * family. *chosen receives the entry's description; 0 or the error. */
static int pick_provider(const WSAPROTOCOL_INFO *info, int af, struct winsock_provider **p,
                         WSAPROTOCOL_INFO *chosen) {
    int err = winsock_check_started();
    if (err)
        return err;
    int n;
    struct winsock_entry *all = winsock_catalog_read(&n, &err);
    if (!all)
        return err;
    err = WSAEINVAL; /* Windows' answer when no provider takes the family */
    for (int i = 0; i < n; i++) {
        if (info ? all[i].info.dwCatalogEntryId == info->dwCatalogEntryId
                 : all[i].info.iAddressFamily == af) {
            *p = all[i].provider;
            *chosen = all[i].info;
            err = 0;
            break;
        }
    }
    free(all);
    return err;
}

int WSAAddressToString(LPSOCKADDR lpsaAddress, DWORD dwAddressLength,
                       LPWSAPROTOCOL_INFO lpProtocolInfo, LPSTR lpszAddressString,
                       LPDWORD lpdwAddressStringLength) {
    if (!lpsaAddress || dwAddressLength < sizeof(lpsaAddress->sa_family))
        return winsock_fail(WSAEFAULT);
    struct winsock_provider *p;
    WSAPROTOCOL_INFO entry;
    int err = pick_provider(lpProtocolInfo, lpsaAddress->sa_family, &p, &entry);
    if (err)
        return winsock_fail(err);
    if (p->table.lpWSPAddressToString(lpsaAddress, dwAddressLength, &entry, lpszAddressString,
                                      lpdwAddressStringLength, &err) != 0)
        return winsock_fail(err);
    return 0;
}

int WSAStringToAddress(LPCSTR AddressString, INT AddressFamily,
                       LPWSAPROTOCOL_INFO lpProtocolInfo, LPSOCKADDR lpAddress,
                       LPINT lpAddressLength) {
    struct winsock_provider *p;
    WSAPROTOCOL_INFO entry;
    int err = pick_provider(lpProtocolInfo, AddressFamily, &p, &entry);
    if (err)
        return winsock_fail(err);
    if (p->table.lpWSPStringToAddress(AddressString, AddressFamily, &entry, lpAddress,
                                      lpAddressLength, &err) != 0)
        return winsock_fail(err);
    return 0;
}
