/* CORS: the browser origins allowed to call ingest (INGEST_CORS_ORIGINS). */
#ifndef INGEST_CORS_H
#define INGEST_CORS_H

#include <stddef.h>

/* Why 32: an origin list is a handful of web front ends (the feed's console
 * on its two loopback names, a few deployed ones); a longer one is a
 * mistake, and the lookup is a linear scan per request that has an Origin. */
#define CORS_ORIGINS_MAX 32
/* Why 272: "https://" (8) + a DNS name (at most 253) + ":65535" (6) + the
 * NUL is 268; longer is not an origin a browser can send. */
#define CORS_ORIGIN_LEN 272

/*
 * The allowed origins, each in the form a browser sends in its Origin
 * header: scheme "http" or "https", "://", host, optional ":port" —
 * lower case, without a default port (80 for http, 443 for https), no path.
 * Filled once at start-up, read-only afterwards (shared by the HTTP threads).
 */
struct cors_origins {
    int n;                                     /* origins in v; 0: CORS off */
    char v[CORS_ORIGINS_MAX][CORS_ORIGIN_LEN]; /* each NUL-terminated */
};

/*
 * Parses list, comma-separated origins (spaces around each are ignored),
 * into c; "none" gives an empty list (CORS off). Each origin is
 * "http://host[:port]" or "https://host[:port]" where host is a DNS name or
 * an IPv4 address ([A-Za-z0-9.-]) or a bracketed IPv6 address; it is
 * stored as a browser serialises it (lower case, the scheme's default port
 * dropped), so that "http://LocalHost:80" matches what a browser sends for
 * it. A repeated origin is kept once. Returns 0, or -1 with a message
 * naming the bad item in err (c then holds nothing usable).
 */
int cors_origins_parse(struct cors_origins *c, const char *list, char *err, size_t errlen);

/* The stored origin equal to origin (the len bytes of a request's Origin
 * header, compared exactly: browsers send it canonical), or NULL. The
 * result points into c and lives as long as it. */
const char *cors_origin_find(const struct cors_origins *c, const char *origin, size_t len);

#endif
