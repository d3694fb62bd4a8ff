/* CORS: the browser origins allowed to call ingest (INGEST_CORS_ORIGINS). */
#include "ingest/cors.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_host_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '.' || ch == '-';
}

static bool is_ipv6_char(char ch)
{
    return isxdigit((unsigned char)ch) || ch == ':' || ch == '.';
}

/*
 * Canonicalises the origin item[0 … len) into out (CORS_ORIGIN_LEN bytes):
 * lower-case scheme and host, the port without leading zeros and left out
 * when it is the scheme's default. Returns 0, or -1 when it is not
 * "http(s)://host[:port]" or does not fit.
 */
static int canonical_origin(const char *item, size_t len, char *out)
{
    const char *p = item, *end = item + len;
    const char *scheme;
    long default_port;
    if (len >= 7 && strncasecmp(p, "http://", 7) == 0) {
        scheme = "http";
        default_port = 80;
        p += 7;
    } else if (len >= 8 && strncasecmp(p, "https://", 8) == 0) {
        scheme = "https";
        default_port = 443;
        p += 8;
    } else {
        return -1;
    }
    const char *host = p;
    if (p < end && *p == '[') { /* [IPv6] */
        p++;
        while (p < end && is_ipv6_char(*p))
            p++;
        if (p >= end || *p != ']' || p == host + 1)
            return -1;
        p++;
    } else {
        while (p < end && is_host_char(*p))
            p++;
        if (p == host)
            return -1;
    }
    size_t host_len = (size_t)(p - host);
    long port = default_port;
    if (p < end && *p == ':') {
        const char *digits = ++p;
        port = 0;
        while (p < end && isdigit((unsigned char)*p) && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (p == digits || port < 1 || port > 65535)
            return -1;
    }
    if (p != end)
        return -1; /* a path, a query, a trailing slash, a stray character */
    int n = snprintf(out, CORS_ORIGIN_LEN, "%s://%.*s", scheme, (int)host_len, host);
    if (n < 0 || n >= CORS_ORIGIN_LEN)
        return -1;
    if (port != default_port) {
        int m = snprintf(out + n, CORS_ORIGIN_LEN - (size_t)n, ":%ld", port);
        if (m < 0 || m >= CORS_ORIGIN_LEN - n)
            return -1;
    }
    for (char *q = out + strlen(scheme) + 3; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    return 0;
}

int cors_origins_parse(struct cors_origins *c, const char *list, char *err, size_t errlen)
{
    c->n = 0;
    const char *p = list;
    while (is_space(*p))
        p++;
    size_t all = strlen(p);
    while (all > 0 && is_space(p[all - 1]))
        all--;
    if (all == 4 && strncasecmp(p, "none", 4) == 0)
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_space(*b))
            b++;
        while (e > b && is_space(e[-1]))
            e--;
        if (b == e) {
            snprintf(err, errlen, "an empty origin in the list (two commas, or one at an end)");
            return -1;
        }
        char canon[CORS_ORIGIN_LEN];
        if (canonical_origin(b, (size_t)(e - b), canon) != 0) {
            snprintf(err, errlen,
                     "'%.*s' is not an origin: want scheme://host[:port], http or https, without "
                     "a path (e.g. http://127.0.0.1:8081)",
                     (int)(e - b > 100 ? 100 : e - b), b);
            return -1;
        }
        if (!cors_origin_find(c, canon, strlen(canon))) {
            if (c->n == CORS_ORIGINS_MAX) {
                snprintf(err, errlen, "more than %d origins", CORS_ORIGINS_MAX);
                return -1;
            }
            memcpy(c->v[c->n++], canon, strlen(canon) + 1);
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

const char *cors_origin_find(const struct cors_origins *c, const char *origin, size_t len)
{
    for (int i = 0; i < c->n; i++)
        if (strlen(c->v[i]) == len && memcmp(c->v[i], origin, len) == 0)
            return c->v[i];
    return NULL;
}
