/* API keys: bearer token -> account (and its default self-trade prevention), looked up in constant
 * time per key. */
#ifndef OP_APIKEYS_H
#define OP_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/msg.h"

/* Why 128: long enough for any generated token (a 256-bit key is 64 hex
 * chars), short enough to compare every key on every request. */
#define OP_APIKEY_MAX 128
/* At most this many keys: lookup compares against all of them to stay
 * constant-time, so the list must stay small. */
#define OP_APIKEYS_MAX 10000

struct op_apikey {
    char key[OP_APIKEY_MAX + 1]; /* printable ASCII, 8..128 chars */
    size_t key_len;
    char account[OP_ACCOUNT_MAX]; /* [a-z0-9_-], 1..32 chars */
    uint8_t stp;                  /* enum op_stp: the account's default for new orders */
    bool stp_given;               /* stp was written on this key's line */
};

/* A loaded key table; owns `v`. */
struct op_apikeys {
    struct op_apikey *v;
    size_t n;
};

/*
 * Loads `path`: one `KEY ACCOUNT [STP]` per line, blank lines and '#'
 * comments ignored. STP, optional, is the account's default self-trade
 * prevention for new orders that do not name one: none, cancel_taker,
 * cancel_maker, cancel_both or decrement (op_stp_name); without it, none.
 * Several keys may map to one account; it is the account's mode, so the
 * lines of one account that give an STP must agree, and those that give
 * none take it from them. A key may not appear twice. Returns 0, or -1
 * with a message naming the file, line and problem in err (the key itself
 * is never echoed).
 */
int op_apikeys_load(struct op_apikeys *t, const char *path, char *err, size_t errlen);

/*
 * Returns the entry of the key given as `len` bytes at `key` (its account,
 * its default stp; its index in t->v identifies the key), or NULL. The time
 * taken depends only on the number of keys, never on how much of the given
 * key matches (no early exit), so it leaks nothing to a timing attacker.
 * The entry is borrowed from t.
 */
const struct op_apikey *op_apikeys_lookup(const struct op_apikeys *t, const char *key, size_t len);

void op_apikeys_release(struct op_apikeys *t);

#endif
