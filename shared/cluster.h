/* Redis Cluster's pure parts: key slots, how a command is routed, redirection errors. */
#ifndef OP_CLUSTER_H
#define OP_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

/*
 * No I/O here: shared/redis.c's cluster client calls these on the commands
 * it sends and the errors it gets, and tests/unit/test_cluster.c checks
 * them on their own.
 */

/* Redis Cluster's fixed number of hash slots. */
#define OP_CLUSTER_SLOTS 16384

/*
 * The hash slot of key[0..len): CRC16 (XMODEM) modulo 16384 of the key, or
 * of the text between its first '{' and the next '}' when that text is not
 * empty (the hash tag: every key of shard S carries "{S}", so a shard is one
 * slot and one MULTI or script can span its keys).
 */
uint16_t op_cluster_slot(const char *key, size_t len);

/* One argument of a command, pointing into the command's buffer. */
struct op_cmd_arg {
    const char *p; /* (ref) */
    size_t len;
};

/*
 * Splits cmd[0..len), a command in RESP as hiredis formats it
 * ("*<n>\r\n" then n times "$<len>\r\n<bytes>\r\n"), into its arguments:
 * fills args[0 .. min(n, max)) and returns n, or -1 when cmd is not such a
 * command. A caller with max < n grows args and calls again.
 */
int op_cmd_parse(const char *cmd, size_t len, struct op_cmd_arg *args, int max);

/* Where a command goes on a cluster. */
enum op_route_kind {
    OP_ROUTE_KEY,     /* to the owner of the slot of args[key] */
    OP_ROUTE_ANY,     /* no key: to the node used last (PING, TIME, INFO …) */
    OP_ROUTE_MULTI,   /* opens a transaction: goes with the next keyed command */
    OP_ROUTE_EXEC,    /* EXEC, DISCARD: to the transaction's node */
    OP_ROUTE_WAIT,    /* WAIT: to every node written since its last WAIT */
    OP_ROUTE_UNWATCH, /* UNWATCH: to every node holding a WATCH */
    OP_ROUTE_ALL,     /* SCRIPT …: to every primary */
    OP_ROUTE_STREAMS, /* XREAD, XREADGROUP: split by the slots of the streams */
};

struct op_cmd_route {
    enum op_route_kind kind;
    int key;            /* OP_ROUTE_KEY: index of the key argument */
    int streams;        /* OP_ROUTE_STREAMS: index of the STREAMS argument */
    int nstreams;       /* OP_ROUTE_STREAMS: number of streams (then as many ids) */
    int block;          /* OP_ROUTE_STREAMS: index of the BLOCK argument, -1 if none */
    long long block_ms; /* its value, -1 if none */
};

/*
 * Decides how args[0 .. argc) is routed. The key is args[1] for most
 * commands, args[2] for XINFO and XGROUP, args[3] for EVAL and EVALSHA with
 * at least one key (without keys they go anywhere). Returns 0, or -1 for a
 * command it cannot route (XREAD without a well-formed STREAMS part, a
 * keyed command without its key).
 */
int op_cmd_route(const struct op_cmd_arg *args, int argc, struct op_cmd_route *rt);

enum op_redirect {
    OP_REDIRECT_NONE,
    OP_REDIRECT_MOVED,    /* the slot lives on host:port now: refresh the map, resend there */
    OP_REDIRECT_ASK,      /* the key is being migrated: ASKING + the command on host:port, once */
    OP_REDIRECT_TRYAGAIN, /* a multi-key command during a migration: wait and resend */
};

/*
 * Reads an error reply's text err: "MOVED <slot> <host>:<port>",
 * "ASK <slot> <host>:<port>" or "TRYAGAIN …". Fills slot, host (NUL-terminated,
 * at most hostlen - 1 bytes) and port for MOVED and ASK. Anything else, and
 * a malformed MOVED or ASK, is OP_REDIRECT_NONE.
 */
enum op_redirect op_cluster_redirect(const char *err, int *slot, char *host, size_t hostlen,
                                     int *port);

#endif
