/* Fixed-point decimals: price text <-> int64 ticks of a symbol's tick size, exactly. */
#ifndef OP_DECIMAL_H
#define OP_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * A tick size as a decimal: value = mantissa * 10^-scale, e.g. 0.01 is
 * {1, 2}, 0.05 is {5, 2}, 1 is {1, 0}. scale <= OP_DECIMAL_MAX_SCALE.
 */
struct op_tick {
    int64_t mantissa; /* >= 1 */
    int scale;        /* digits after the point, 0..OP_DECIMAL_MAX_SCALE */
};

/* 9 decimals covers every listed instrument's tick (crypto goes to 1e-8)
 * while leaving 10^9 ticks of integer range below INT64_MAX / 10^9. */
#define OP_DECIMAL_MAX_SCALE 9
/* Longest price text accepted: 19 digits, a point and some slack zeros. */
#define OP_DECIMAL_MAX_LEN 40

/* Parse outcomes; each has a message in op_decimal_strerror. */
enum op_decimal_err {
    OP_DEC_OK = 0,
    OP_DEC_EMPTY,             /* no characters */
    OP_DEC_SIGN,              /* leading '+' or '-' */
    OP_DEC_EXPONENT,          /* 'e' or 'E' form */
    OP_DEC_SYNTAX,            /* anything else that is not digits[.digits] */
    OP_DEC_TOO_LONG,          /* more than OP_DECIMAL_MAX_LEN characters */
    OP_DEC_TOO_MANY_DECIMALS, /* non-zero digits beyond the tick's scale */
    OP_DEC_NOT_TICK_MULTIPLE, /* not an integer number of ticks */
    OP_DEC_OVERFLOW,          /* more ticks than fit in int64 */
    OP_DEC_ZERO,              /* zero: prices are strictly positive */
};

/*
 * Parses `len` bytes of `s` ("187.25", "187", "0.5") as a positive price and
 * stores the number of `tick`s in *ticks. No floating point is involved.
 * Trailing zeros past the tick's scale are accepted ("187.250" with tick
 * 0.01). Returns OP_DEC_OK, or the reason it refused (then *ticks is
 * untouched).
 */
enum op_decimal_err op_decimal_parse(const char *s, size_t len, struct op_tick tick,
                                     int64_t *ticks);

/* Parses a tick size such as "0.01" (positive, at most OP_DECIMAL_MAX_SCALE
 * decimals). Returns 0, or -1 if it is not one. */
int op_tick_parse(const char *s, struct op_tick *tick);

/*
 * Writes `ticks` * `tick` as a decimal with exactly tick.scale decimals
 * ("187.25", "-0.05", "3") into buf (NUL-terminated). Returns the length, or
 * -1 if size is too small (buf is then "").
 */
int op_decimal_format(int64_t ticks, struct op_tick tick, char *buf, size_t size);

/* A constant, lowercase description of err ("price has too many decimals"). */
const char *op_decimal_strerror(enum op_decimal_err err);

#endif
