/* Sharding (contract): which stream a symbol's orders and reports go to. */
#ifndef OP_SHARD_H
#define OP_SHARD_H

#include <stddef.h>
#include <stdint.h>

/* Why 1024: report ids reserve 10 bits for the shard (see docs/engine.md),
 * and one matcher per shard makes more than this meaningless on one Redis. */
#define OP_SHARDS_MAX 1024

/* FNV-1a, 32-bit, over len bytes of data (contract). */
uint32_t op_fnv1a32(const void *data, size_t len);

/* The shard of a symbol: fnv1a32(symbol) % nshards (contract). nshards >= 1. */
uint32_t op_shard_of(const char *symbol, size_t len, uint32_t nshards);

/* Key names, written into buf (size >= OP_KEY_MAX). The {S} hash tag keeps a
 * shard's keys in one Redis Cluster slot. Return the length. */
#define OP_KEY_MAX 64
int op_key_orders(char *buf, uint32_t shard); /* "orders:{S}" */
int op_key_fills(char *buf, uint32_t shard);  /* "fills:{S}" */
int op_key_oseq(char *buf, uint32_t shard);   /* "oseq:{S}": inputs ever written to orders:{S} */
int op_key_odone(char *buf, uint32_t shard);  /* "odone:{S}": of them, processed by the matcher */

#define OP_GROUP_MATCHERS "matchers"
#define OP_GROUP_RECORDERS "recorders"

#endif
