/* API keys: bearer token -> account (and its default self-trade prevention), looked up in constant
 * time per key. */
#include "shared/apikeys.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/textfile.h"

/* Shortest key accepted: shorter keys are guessable. The shipped dev keys
 * ("dev-key-bob") are 11 chars, so the floor is 8; production keys should
 * be 32+ random characters (see config/api-keys.conf). */
#define APIKEY_MIN 8

static int valid_key(const char *s)
{
    size_t n = strlen(s);
    if (n < APIKEY_MIN || n > OP_APIKEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

static int valid_account(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= OP_ACCOUNT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* The enum op_stp named s ("none", "cancel_taker", …), or -1. */
static int stp_of(const char *s)
{
    for (int i = OP_STP_NONE; i <= OP_STP_MAX; i++)
        if (strcmp(s, op_stp_name(i)) == 0)
            return i;
    return -1;
}

/* Compares a[0..alen) with k's key in time independent of the contents
 * (always OP_APIKEY_MAX steps); returns 1 when equal. k->key is NUL-padded
 * to its full size; a longer alen never matches. */
static int ct_equal(const char *a, size_t alen, const struct op_apikey *k)
{
    unsigned diff = (unsigned)(alen ^ k->key_len);
    for (size_t i = 0; i < OP_APIKEY_MAX; i++) {
        unsigned char ca = i < alen ? (unsigned char)a[i] : 0;
        diff |= (unsigned)(ca ^ (unsigned char)k->key[i]);
    }
    return diff == 0;
}

int op_apikeys_load(struct op_apikeys *t, const char *path, char *err, size_t errlen)
{
    struct op_textfile tf;
    size_t cap = 0;
    char *f[4];
    int nf, stp;

    t->v = NULL;
    t->n = 0;
    if (op_textfile_open(&tf, path, err, errlen) != 0)
        return -1;
    while ((nf = op_textfile_next(&tf, f, 4)) >= 0) {
        if (nf != 2 && nf != 3) {
            snprintf(err, errlen,
                     "api keys file '%s' line %d: expected 'KEY ACCOUNT [STP]', got %d fields",
                     path, tf.line_no, nf);
            goto fail;
        }
        if (!valid_key(f[0])) {
            snprintf(err, errlen,
                     "api keys file '%s' line %d: bad key: want %d-%d printable characters", path,
                     tf.line_no, APIKEY_MIN, OP_APIKEY_MAX);
            goto fail;
        }
        if (!valid_account(f[1])) {
            snprintf(err, errlen,
                     "api keys file '%s' line %d: bad account '%.40s': want 1-%d of [a-z0-9_-]",
                     path, tf.line_no, f[1], OP_ACCOUNT_MAX - 1);
            goto fail;
        }
        stp = nf == 3 ? stp_of(f[2]) : OP_STP_NONE;
        if (stp < 0) {
            snprintf(err, errlen,
                     "api keys file '%s' line %d: bad stp '%.40s': want none, cancel_taker, "
                     "cancel_maker, cancel_both or decrement",
                     path, tf.line_no, f[2]);
            goto fail;
        }
        size_t klen = strlen(f[0]);
        bool given = nf == 3;
        for (size_t i = 0; i < t->n; i++) {
            struct op_apikey *o = &t->v[i];
            if (o->key_len == klen && memcmp(o->key, f[0], klen) == 0) {
                snprintf(err, errlen, "api keys file '%s' line %d: key listed twice", path,
                         tf.line_no);
                goto fail;
            }
            if (strcmp(o->account, f[1]) != 0)
                continue;
            /* One mode per account: agree with its earlier lines, or give
             * them ours, or take theirs. */
            if (given && o->stp_given && o->stp != stp) {
                snprintf(err, errlen,
                         "api keys file '%s' line %d: stp '%s' differs from the '%s' an earlier "
                         "line gives account '%s': an account has one default",
                         path, tf.line_no, f[2], op_stp_name(o->stp), f[1]);
                goto fail;
            }
            if (given)
                o->stp = (uint8_t)stp;
            else if (o->stp_given)
                stp = o->stp;
        }
        if (t->n == OP_APIKEYS_MAX) {
            snprintf(err, errlen, "api keys file '%s': more than %d keys", path, OP_APIKEYS_MAX);
            goto fail;
        }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 8;
            struct op_apikey *nv = realloc(t->v, cap * sizeof(*nv));
            if (!nv) {
                snprintf(err, errlen, "api keys file '%s': out of memory", path);
                goto fail;
            }
            t->v = nv;
        }
        struct op_apikey *k = &t->v[t->n++];
        memset(k, 0, sizeof(*k));
        memcpy(k->key, f[0], klen);
        k->key_len = klen;
        memcpy(k->account, f[1], strlen(f[1]) + 1);
        k->stp = (uint8_t)stp;
        k->stp_given = given;
    }
    if (nf == -2) {
        snprintf(err, errlen, "api keys file '%s' line %d: %s", path, tf.line_no, tf.err);
        goto fail;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "api keys file '%s': no keys", path);
        goto fail;
    }
    op_textfile_close(&tf);
    return 0;
fail:
    op_textfile_close(&tf);
    op_apikeys_release(t);
    return -1;
}

const struct op_apikey *op_apikeys_lookup(const struct op_apikeys *t, const char *key, size_t len)
{
    const struct op_apikey *found = NULL;
    /* Every key is compared in full, whatever matched before: no early exit. */
    for (size_t i = 0; i < t->n; i++)
        if (ct_equal(key, len, &t->v[i]))
            found = &t->v[i];
    return found;
}

void op_apikeys_release(struct op_apikeys *t)
{
    if (t->v)
        memset(t->v, 0, t->n * sizeof(*t->v)); /* do not leave keys in freed memory */
    free(t->v);
    t->v = NULL;
    t->n = 0;
}
