/* WSP's own version: the library release, not the Winsock version it implements (2.2). */
#ifndef WSP_VERSION_H
#define WSP_VERSION_H

#define WSP_VERSION_MAJOR 0
#define WSP_VERSION_MINOR 2
#define WSP_VERSION_PATCH 0
/* Comparable as a number: 0xMMmmpp. */
#define WSP_VERSION_HEX ((WSP_VERSION_MAJOR << 16) | (WSP_VERSION_MINOR << 8) | WSP_VERSION_PATCH)
#define WSP_VERSION_STRING "0.2.0"

#endif
