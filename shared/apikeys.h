/* API keys: bearer token -> account, looked up in constant time per key. */
#ifndef OP_APIKEYS_H
#define OP_APIKEYS_H

#include <stddef.h>

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
};

/* A loaded key table; owns `v`. */
struct op_apikeys {
    struct op_apikey *v;
    size_t n;
};

/*
 * Loads `path`: one `KEY ACCOUNT` pair per line, blank lines and '#'
 * comments ignored. Several keys may map to one account; a key may not
 * appear twice. Returns 0, or -1 with a message naming the file, line and
 * problem in err (the key itself is never echoed).
 */
int op_apikeys_load(struct op_apikeys *t, const char *path, char *err, size_t errlen);

/*
 * Returns the account of the key given as `len` bytes at `key`, or NULL.
 * The time taken depends only on the number of keys, never on how much of
 * the given key matches (no early exit), so it leaks nothing to a timing
 * attacker. The string is borrowed from t.
 */
const char *op_apikeys_lookup(const struct op_apikeys *t, const char *key, size_t len);

void op_apikeys_release(struct op_apikeys *t);

#endif
