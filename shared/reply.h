/* Shapes of Redis replies the services read: flat field/value arrays and XINFO GROUPS. */
#ifndef OP_REPLY_H
#define OP_REPLY_H

#include <stddef.h>

#include "shared/redis.h"
#include "shared/sid.h"

/*
 * Built on the op_reply_* accessors of shared/redis.h only (no hiredis
 * here), so they accept NULL and malformed replies like those do: a
 * missing field is NULL, never a crash. Everything returned points into
 * the reply (borrowed): copy what outlives it.
 */

/*
 * The value of field `name` in a flat [f1, v1, f2, v2, …] array (a stream
 * entry's fields, one group of XINFO GROUPS): the first field whose bytes
 * equal name exactly (binary-safe, case-sensitive), or NULL when there is
 * none, flat is not an array, or its last field has no value.
 */
const struct redisReply *op_reply_field(const struct redisReply *flat, const char *name);

/* As op_reply_field, but the value's string (len may be NULL); NULL when
 * the field is missing or its value is not a string. */
const char *op_reply_field_str(const struct redisReply *flat, const char *name, size_t *len);

/* One consumer group of an XINFO GROUPS reply. */
struct op_group {
    const char *name; /* (ref) into the reply, NUL-terminated */
    size_t name_len;
    struct op_sid last_delivered; /* last-delivered-id */
    long long pending;            /* `pending`: delivered, not acknowledged; 0 if absent */
};

/*
 * Reads group i of an XINFO GROUPS reply (an array of flat arrays) into
 * *out. Returns 0, or -1 when there is no group i or it lacks a name or a
 * last-delivered-id that op_sid_parse accepts (the caller skips it).
 */
int op_groups_at(const struct redisReply *groups, size_t i, struct op_group *out);

/*
 * Finds the group called name in an XINFO GROUPS reply. Returns 0 (*out
 * filled), or -1 when no valid group (as op_groups_at) has that name, which
 * includes an error reply (e.g. no such stream).
 */
int op_groups_find(const struct redisReply *groups, const char *name, struct op_group *out);

#endif
