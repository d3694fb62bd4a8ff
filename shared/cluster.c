/* Redis Cluster's pure parts: key slots, how a command is routed, redirection errors. */
#include "shared/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), bit by bit: a shard's
 * hash tag is a few bytes, so a table would save nothing measurable. */
static uint16_t crc16(const char *s, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t op_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (OP_CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (OP_CLUSTER_SLOTS - 1);
}

/* Reads the decimal number ending at "\r\n" after *p (within end) into *n
 * and moves *p past the "\r\n". 0 or -1. */
static int read_count(const char **p, const char *end, long long *n)
{
    const char *q = *p;
    long long v = 0;
    if (q >= end || *q < '0' || *q > '9')
        return -1;
    while (q < end && *q >= '0' && *q <= '9') {
        if (v > (1LL << 40))
            return -1;
        v = v * 10 + (*q++ - '0');
    }
    if (end - q < 2 || q[0] != '\r' || q[1] != '\n')
        return -1;
    *p = q + 2;
    *n = v;
    return 0;
}

int op_cmd_parse(const char *cmd, size_t len, struct op_cmd_arg *args, int max)
{
    const char *p = cmd, *end = cmd + len;
    long long n;
    if (p >= end || *p++ != '*' || read_count(&p, end, &n) != 0 || n < 1 || n > (1 << 24))
        return -1;
    for (long long i = 0; i < n; i++) {
        long long l;
        if (p >= end || *p++ != '$' || read_count(&p, end, &l) != 0 || end - p < l + 2 ||
            p[l] != '\r' || p[l + 1] != '\n')
            return -1;
        if (i < max)
            args[i] = (struct op_cmd_arg){p, (size_t)l};
        p += l + 2;
    }
    return p == end ? (int)n : -1;
}

/* 1 when a equals the command name s, ignoring case. */
static int is(const struct op_cmd_arg *a, const char *s)
{
    size_t n = strlen(s);
    return a->len == n && strncasecmp(a->p, s, n) == 0;
}

/* Why a list: these commands take no key, so that "the key is args[1]"
 * would route them by whatever their first argument is. */
static const char *const KEYLESS[] = {
    "PING",     "TIME",      "INFO",    "CLUSTER", "CLIENT",       "CONFIG",   "DBSIZE",
    "ECHO",     "FLUSHALL",  "FLUSHDB", "COMMAND", "ROLE",         "SLOWLOG",  "LATENCY",
    "MEMORY",   "LASTSAVE",  "SAVE",    "BGSAVE",  "BGREWRITEAOF", "DEBUG",    "ASKING",
    "READONLY", "READWRITE", "AUTH",    "HELLO",   "SELECT",       "FUNCTION",
};

/* Reads a BLOCK value: a non-negative number of milliseconds, or -1. */
static long long block_value(const struct op_cmd_arg *a)
{
    char buf[24];
    if (a->len == 0 || a->len >= sizeof(buf))
        return -1;
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    char *e;
    long long v = strtoll(buf, &e, 10);
    return *e || v < 0 ? -1 : v;
}

/* XREAD [COUNT n] [BLOCK ms] STREAMS k… id…, XREADGROUP GROUP g c [COUNT n]
 * [BLOCK ms] [NOACK] STREAMS k… id…. */
static int route_streams(const struct op_cmd_arg *args, int argc, struct op_cmd_route *rt)
{
    rt->kind = OP_ROUTE_STREAMS;
    rt->block = -1;
    rt->block_ms = -1;
    for (int i = 1; i < argc; i++) {
        if (is(&args[i], "BLOCK") && i + 1 < argc) {
            rt->block = i;
            rt->block_ms = block_value(&args[i + 1]);
            if (rt->block_ms < 0)
                return -1;
            i++;
        } else if (is(&args[i], "STREAMS")) {
            int rest = argc - i - 1;
            if (rest < 2 || rest % 2 != 0)
                return -1;
            rt->streams = i;
            rt->nstreams = rest / 2;
            return 0;
        } else if (is(&args[i], "COUNT") || is(&args[i], "GROUP")) {
            i += is(&args[i], "GROUP") ? 2 : 1; /* skip the values: a group named STREAMS */
        }
    }
    return -1;
}

int op_cmd_route(const struct op_cmd_arg *args, int argc, struct op_cmd_route *rt)
{
    memset(rt, 0, sizeof(*rt));
    rt->block = -1;
    rt->block_ms = -1;
    if (argc < 1)
        return -1;
    const struct op_cmd_arg *c = &args[0];
    if (is(c, "XREAD") || is(c, "XREADGROUP"))
        return route_streams(args, argc, rt);
    if (is(c, "MULTI"))
        return rt->kind = OP_ROUTE_MULTI, 0;
    if (is(c, "EXEC") || is(c, "DISCARD"))
        return rt->kind = OP_ROUTE_EXEC, 0;
    if (is(c, "WAIT"))
        return rt->kind = OP_ROUTE_WAIT, 0;
    if (is(c, "UNWATCH"))
        return rt->kind = OP_ROUTE_UNWATCH, 0;
    if (is(c, "SCRIPT"))
        return rt->kind = OP_ROUTE_ALL, 0;
    for (size_t i = 0; i < sizeof(KEYLESS) / sizeof(KEYLESS[0]); i++)
        if (is(c, KEYLESS[i]))
            return rt->kind = OP_ROUTE_ANY, 0;
    rt->kind = OP_ROUTE_KEY;
    if (is(c, "EVAL") || is(c, "EVALSHA") || is(c, "EVAL_RO") || is(c, "EVALSHA_RO")) {
        if (argc < 3)
            return -1;
        if (args[2].len == 1 && args[2].p[0] == '0')
            return rt->kind = OP_ROUTE_ANY, 0;
        rt->key = 3;
    } else if (is(c, "XINFO") || is(c, "XGROUP") || is(c, "OBJECT")) {
        rt->key = 2;
    } else {
        rt->key = 1;
    }
    return rt->key < argc ? 0 : -1;
}

enum op_redirect op_cluster_redirect(const char *err, int *slot, char *host, size_t hostlen,
                                     int *port)
{
    enum op_redirect kind;
    const char *p;
    if (!err)
        return OP_REDIRECT_NONE;
    if (strncmp(err, "TRYAGAIN", 8) == 0)
        return OP_REDIRECT_TRYAGAIN;
    if (strncmp(err, "MOVED ", 6) == 0) {
        kind = OP_REDIRECT_MOVED;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        kind = OP_REDIRECT_ASK;
        p = err + 4;
    } else {
        return OP_REDIRECT_NONE;
    }
    char *e;
    long s = strtol(p, &e, 10);
    if (e == p || *e != ' ' || s < 0 || s >= OP_CLUSTER_SLOTS)
        return OP_REDIRECT_NONE;
    p = e + 1;
    const char *colon = strrchr(p, ':'); /* an IPv6 address holds colons too */
    if (!colon || colon == p || (size_t)(colon - p) >= hostlen)
        return OP_REDIRECT_NONE;
    long pt = strtol(colon + 1, &e, 10);
    if (e == colon + 1 || *e || pt < 1 || pt > 65535)
        return OP_REDIRECT_NONE;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *slot = (int)s;
    *port = (int)pt;
    return kind;
}
