/* lpWSPAddressToString and lpWSPStringToAddress: "1.2.3.4:80", "[::1]:80", with the port
 * left out when it is 0, and an IPv6 scope as "%N". */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Longest form: "[" IPv6 "%" scope "]:" port, plus the terminating zero (INET6_ADDRSTRLEN
 * counts a terminator of its own). A longer string is no address. */
#define ADDRESS_STRING_MAX (1 + (INET6_ADDRSTRLEN - 1) + 1 + 10 + 2 + 5 + 1)

int wsp_address_to_string(struct sockaddr *sa, DWORD salen, LPWSAPROTOCOL_INFO info, char *out,
                          LPDWORD outlen, LPINT lpErrno) {
    (void)info;
    if (!sa || !outlen || salen < sizeof(sa_family_t))
        return wsp_fail(lpErrno, WSAEFAULT);
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return wsp_fail(lpErrno, WSAEINVAL);
    if (salen < wsp_sockaddr_len(sa->sa_family))
        return wsp_fail(lpErrno, WSAEFAULT);
    char host[INET6_ADDRSTRLEN], text[ADDRESS_STRING_MAX];
    unsigned port;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        if (port)
            snprintf(text, sizeof text, "%s:%u", host, port);
        else
            snprintf(text, sizeof text, "%s", host);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        char scope[12] = "";
        if (in6->sin6_scope_id)
            snprintf(scope, sizeof scope, "%%%u", (unsigned)in6->sin6_scope_id);
        if (port)
            snprintf(text, sizeof text, "[%s%s]:%u", host, scope, port);
        else
            snprintf(text, sizeof text, "%s%s", host, scope);
    }
    DWORD need = (DWORD)strlen(text) + 1;
    if (!out || *outlen < need) {
        *outlen = need;
        return wsp_fail(lpErrno, WSAEFAULT);
    }
    memcpy(out, text, need);
    *outlen = need;
    return 0;
}

/* Parses a decimal port, 0..65535, the whole string. */
static int parse_port(const char *s, unsigned *port) {
    if (!*s || strlen(s) > 5)
        return 0;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return 0;
    *port = v;
    return 1;
}

/* Parses an IPv6 address with an optional "%scope" (a number or an interface name). */
static int parse_ipv6(char *host, struct sockaddr_in6 *in6) {
    char *pct = strchr(host, '%');
    if (pct) {
        *pct++ = 0;
        char *end;
        unsigned long id = strtoul(pct, &end, 10);
        if (*pct && !*end && id <= UINT32_MAX)
            in6->sin6_scope_id = (uint32_t)id;
        else if (!(in6->sin6_scope_id = if_nametoindex(pct)))
            return 0;
    }
    return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1;
}

static int parse(const char *str, int af, struct sockaddr_storage *ss) {
    char buf[ADDRESS_STRING_MAX];
    if (strlen(str) >= sizeof buf)
        return 0;
    strcpy(buf, str);
    unsigned port = 0;
    memset(ss, 0, sizeof *ss);
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = 0;
            if (!parse_port(colon + 1, &port))
                return 0;
        }
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return inet_pton(AF_INET, buf, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    char *host = buf;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close)
            return 0;
        *close = 0;
        host = buf + 1;
        if (close[1] == ':') {
            if (!parse_port(close + 2, &port))
                return 0;
        } else if (close[1]) {
            return 0;
        }
    }
    in6->sin6_port = htons((uint16_t)port);
    return parse_ipv6(host, in6);
}

int wsp_string_to_address(const char *str, int af, LPWSAPROTOCOL_INFO info, struct sockaddr *sa,
                          LPINT salen, LPINT lpErrno) {
    if (info)
        af = info->iAddressFamily;
    if (!str || !sa || !salen)
        return wsp_fail(lpErrno, WSAEFAULT);
    if (af != AF_INET && af != AF_INET6)
        return wsp_fail(lpErrno, WSAEINVAL);
    int need = (int)wsp_sockaddr_len(af);
    if (*salen < need) {
        *salen = need;
        return wsp_fail(lpErrno, WSAEFAULT);
    }
    struct sockaddr_storage ss;
    if (!parse(str, af, &ss))
        return wsp_fail(lpErrno, WSAEINVAL);
    memcpy(sa, &ss, (size_t)need);
    *salen = need;
    return 0;
}
