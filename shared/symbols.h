/* The symbol table: which instruments trade, with tick size, lot and max quantity. */
#ifndef OP_SYMBOLS_H
#define OP_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

#include "shared/decimal.h"
#include "shared/msg.h"

struct op_symbol {
    char name[OP_SYMBOL_MAX]; /* [A-Z0-9._-], 1..15 chars */
    struct op_tick tick;      /* price increment */
    int64_t lot;              /* qty must be a multiple of this, >= 1 */
    int64_t max_qty;          /* largest qty of one order, a multiple of lot */
};

/* A loaded symbol table. Owns `v`; release with op_symtab_release. */
struct op_symtab {
    struct op_symbol *v; /* sorted by name for binary search */
    size_t n;
};

/* Why: a table is read once at start-up and looked up per order, so a sorted
 * array beats a hash here for a few hundred symbols. More than this many is
 * almost certainly a wrong file. */
#define OP_SYMTAB_MAX 100000

/*
 * Loads the table from `path`: one symbol per line as
 *     SYMBOL TICK LOT MAX_QTY        e.g.  AAPL 0.01 1 1000000
 * with blank lines and '#' comments ignored. Returns 0, or -1 with a message
 * naming the file, line and problem in err (size errlen); on failure the
 * table is left empty.
 */
int op_symtab_load(struct op_symtab *t, const char *path, char *err, size_t errlen);

/* Loads the built-in defaults: AAPL MSFT GOOG AMZN TSLA, tick 0.01, lot 1,
 * max qty 1,000,000. Returns 0, or -1 on allocation failure. */
int op_symtab_defaults(struct op_symtab *t);

/* Finds the symbol of `len` bytes at `name` (no NUL needed); NULL if absent.
 * The pointer is borrowed from t and valid until op_symtab_release. */
const struct op_symbol *op_symtab_find(const struct op_symtab *t, const char *name, size_t len);

void op_symtab_release(struct op_symtab *t);

#endif
