/* Shapes of Redis replies the services read: flat field/value arrays and XINFO GROUPS. */
#include "shared/reply.h"

#include <string.h>

const struct redisReply *op_reply_field(const struct redisReply *flat, const char *name)
{
    size_t n = op_reply_count(flat), nl = strlen(name);
    for (size_t i = 0; i + 1 < n; i += 2) {
        size_t kl;
        const char *k = op_reply_str(op_reply_at(flat, i), &kl);
        if (k && kl == nl && memcmp(k, name, nl) == 0)
            return op_reply_at(flat, i + 1);
    }
    return NULL;
}

const char *op_reply_field_str(const struct redisReply *flat, const char *name, size_t *len)
{
    return op_reply_str(op_reply_field(flat, name), len);
}

int op_groups_at(const struct redisReply *groups, size_t i, struct op_group *out)
{
    if (i >= op_reply_count(groups))
        return -1;
    const struct redisReply *g = op_reply_at(groups, i);
    size_t idlen = 0;
    const char *id = op_reply_field_str(g, "last-delivered-id", &idlen);
    out->name = op_reply_field_str(g, "name", &out->name_len);
    out->pending = op_reply_int(op_reply_field(g, "pending"));
    if (!out->name || !id || op_sid_parse(id, idlen, &out->last_delivered) != 0)
        return -1;
    return 0;
}

int op_groups_find(const struct redisReply *groups, const char *name, struct op_group *out)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < op_reply_count(groups); i++) {
        struct op_group g;
        if (op_groups_at(groups, i, &g) == 0 && g.name_len == nl && memcmp(g.name, name, nl) == 0) {
            *out = g;
            return 0;
        }
    }
    return -1;
}
