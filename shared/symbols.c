/* The symbol table: which instruments trade, with tick size, lot and max quantity. */
#include "shared/symbols.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/textfile.h"

static int cmp_symbol(const void *a, const void *b)
{
    return strcmp(((const struct op_symbol *)a)->name, ((const struct op_symbol *)b)->name);
}

static bool valid_symbol_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= OP_SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Parses a whole decimal integer in 1..INT64_MAX; returns 0 or -1. */
static int parse_pos_int(const char *s, int64_t *out)
{
    char *end;
    if (!(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1)
        return -1;
    *out = v;
    return 0;
}

/* Parses one line's fields into sym; returns 0 or -1 with err set. */
static int parse_symbol_line(char **f, int nf, struct op_symbol *sym, char *err, size_t errlen)
{
    if (nf != 4) {
        snprintf(err, errlen, "expected 'SYMBOL TICK LOT MAX_QTY', got %d fields", nf);
        return -1;
    }
    if (!valid_symbol_name(f[0])) {
        snprintf(err, errlen, "bad symbol '%.40s': want 1-15 of [A-Z0-9._-]", f[0]);
        return -1;
    }
    memcpy(sym->name, f[0], strlen(f[0]) + 1);
    if (op_tick_parse(f[1], &sym->tick) != 0) {
        snprintf(err, errlen,
                 "bad tick '%.40s' for '%s': want a positive decimal with at most %d decimals",
                 f[1], sym->name, OP_DECIMAL_MAX_SCALE);
        return -1;
    }
    if (parse_pos_int(f[2], &sym->lot) != 0) {
        snprintf(err, errlen, "bad lot '%.40s' for '%s': want an integer >= 1", f[2], sym->name);
        return -1;
    }
    if (parse_pos_int(f[3], &sym->max_qty) != 0 || sym->max_qty % sym->lot != 0) {
        snprintf(err, errlen,
                 "bad max qty '%.40s' for '%s': want an integer >= 1, a multiple of the lot", f[3],
                 sym->name);
        return -1;
    }
    return 0;
}

int op_symtab_load(struct op_symtab *t, const char *path, char *err, size_t errlen)
{
    struct op_textfile tf;
    char why[200];
    size_t cap = 0;

    t->v = NULL;
    t->n = 0;
    if (op_textfile_open(&tf, path, err, errlen) != 0)
        return -1;
    char *f[8];
    int nf;
    while ((nf = op_textfile_next(&tf, f, 8)) >= 0) {
        if (t->n == OP_SYMTAB_MAX) {
            snprintf(err, errlen, "symbols file '%s': more than %d symbols", path, OP_SYMTAB_MAX);
            goto fail;
        }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct op_symbol *nv = realloc(t->v, cap * sizeof(*nv));
            if (!nv) {
                snprintf(err, errlen, "symbols file '%s': out of memory", path);
                goto fail;
            }
            t->v = nv;
        }
        if (parse_symbol_line(f, nf, &t->v[t->n], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "symbols file '%s' line %d: %s", path, tf.line_no, why);
            goto fail;
        }
        t->n++;
    }
    if (nf == -2) {
        snprintf(err, errlen, "symbols file '%s' line %d: %s", path, tf.line_no, tf.err);
        goto fail;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "symbols file '%s': no symbols", path);
        goto fail;
    }
    qsort(t->v, t->n, sizeof(t->v[0]), cmp_symbol);
    for (size_t i = 1; i < t->n; i++) {
        if (strcmp(t->v[i - 1].name, t->v[i].name) == 0) {
            snprintf(err, errlen, "symbols file '%s': symbol '%s' listed twice", path,
                     t->v[i].name);
            goto fail;
        }
    }
    op_textfile_close(&tf);
    return 0;
fail:
    op_textfile_close(&tf);
    op_symtab_release(t);
    return -1;
}

int op_symtab_defaults(struct op_symtab *t)
{
    static const char *const names[] = {"AAPL", "AMZN", "GOOG", "MSFT", "TSLA"}; /* sorted */
    size_t n = sizeof(names) / sizeof(names[0]);

    t->n = 0;
    t->v = calloc(n, sizeof(*t->v));
    if (!t->v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        memcpy(t->v[i].name, names[i], strlen(names[i]) + 1);
        t->v[i].tick = (struct op_tick){1, 2};
        t->v[i].lot = 1;
        t->v[i].max_qty = 1000000;
    }
    t->n = n;
    return 0;
}

const struct op_symbol *op_symtab_find(const struct op_symtab *t, const char *name, size_t len)
{
    if (len == 0 || len >= OP_SYMBOL_MAX)
        return NULL;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = t->v[mid].name;
        int c = strncmp(m, name, len);
        if (c == 0 && m[len] != '\0')
            c = 1; /* m is longer: it sorts after name */
        if (c == 0)
            return &t->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void op_symtab_release(struct op_symtab *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}
