/* Sharding (contract): which stream a symbol's orders and reports go to. */
#include "shared/shard.h"

#include <stdio.h>

uint32_t op_fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = 2166136261u; /* FNV offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u; /* FNV prime */
    }
    return h;
}

uint32_t op_shard_of(const char *symbol, size_t len, uint32_t nshards)
{
    return op_fnv1a32(symbol, len) % nshards;
}

int op_key_orders(char *buf, uint32_t shard)
{
    return snprintf(buf, OP_KEY_MAX, "orders:{%u}", shard);
}

int op_key_fills(char *buf, uint32_t shard)
{
    return snprintf(buf, OP_KEY_MAX, "fills:{%u}", shard);
}

int op_key_oseq(char *buf, uint32_t shard)
{
    return snprintf(buf, OP_KEY_MAX, "oseq:{%u}", shard);
}

int op_key_odone(char *buf, uint32_t shard)
{
    return snprintf(buf, OP_KEY_MAX, "odone:{%u}", shard);
}
