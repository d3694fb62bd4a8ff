/* Fixed-point decimals: price text <-> int64 ticks of a symbol's tick size, exactly. */
#include "shared/decimal.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* *units = *units * 10 + digit c, unless that exceeds INT64_MAX: then
 * returns true and leaves *units alone. */
static bool push_digit(int64_t *units, char c)
{
    int d = c - '0';
    if (*units > (INT64_MAX - d) / 10)
        return true;
    *units = *units * 10 + d;
    return false;
}

enum op_decimal_err op_decimal_parse(const char *s, size_t len, struct op_tick tick, int64_t *ticks)
{
    if (len == 0)
        return OP_DEC_EMPTY;
    if (len > OP_DECIMAL_MAX_LEN)
        return OP_DEC_TOO_LONG;
    if (s[0] == '+' || s[0] == '-')
        return OP_DEC_SIGN;
    for (size_t i = 0; i < len; i++)
        if (s[i] == 'e' || s[i] == 'E')
            return OP_DEC_EXPONENT;

    /* units = value * 10^tick.scale, accumulated digit by digit. */
    int64_t units = 0;
    size_t i = 0, int_digits = 0, frac_digits = 0;
    bool overflow = false, excess = false;

    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, int_digits++)
        overflow |= push_digit(&units, s[i]);
    if (int_digits == 0)
        return OP_DEC_SYNTAX; /* ".5", "", "abc" */
    if (i < len) {
        if (s[i] != '.')
            return OP_DEC_SYNTAX;
        i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, frac_digits++) {
            if ((int)frac_digits >= tick.scale) {
                if (s[i] != '0')
                    excess = true;
                continue;
            }
            overflow |= push_digit(&units, s[i]);
        }
        if (frac_digits == 0 || i < len)
            return OP_DEC_SYNTAX; /* "5.", "5.x", "1.2.3" */
    }
    if (excess)
        return OP_DEC_TOO_MANY_DECIMALS;
    for (int k = (int)frac_digits; k < tick.scale; k++)
        overflow |= push_digit(&units, '0');
    if (overflow)
        return OP_DEC_OVERFLOW;
    if (units == 0)
        return OP_DEC_ZERO;
    if (units % tick.mantissa != 0)
        return OP_DEC_NOT_TICK_MULTIPLE;
    *ticks = units / tick.mantissa;
    return OP_DEC_OK;
}

int op_tick_parse(const char *s, struct op_tick *tick)
{
    /* A tick of 1 at the largest scale parses any valid tick text exactly;
     * then strip trailing zeros of the mantissa into a smaller scale. */
    struct op_tick unit = {1, OP_DECIMAL_MAX_SCALE};
    int64_t v;

    if (op_decimal_parse(s, strlen(s), unit, &v) != OP_DEC_OK)
        return -1;
    int scale = OP_DECIMAL_MAX_SCALE;
    while (scale > 0 && v % 10 == 0) {
        v /= 10;
        scale--;
    }
    tick->mantissa = v;
    tick->scale = scale;
    return 0;
}

int op_decimal_format(int64_t ticks, struct op_tick tick, char *buf, size_t size)
{
    /* |ticks * mantissa| may exceed int64: compute in unsigned 128 bits. */
    bool neg = ticks < 0;
    unsigned __int128 mag = neg ? (unsigned __int128)(-(ticks + 1)) + 1 : (unsigned __int128)ticks;
    mag *= (unsigned __int128)tick.mantissa;

    char digits[64];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    } while (mag != 0);
    while (n <= tick.scale)
        digits[n++] = '0'; /* at least one integer digit */

    size_t need = (size_t)n + (neg ? 1 : 0) + (tick.scale > 0 ? 1 : 0);
    if (need + 1 > size) {
        if (size > 0)
            buf[0] = '\0';
        return -1;
    }
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    for (int k = n - 1; k >= 0; k--) {
        buf[o++] = digits[k];
        if (k == tick.scale && k != 0)
            buf[o++] = '.';
    }
    buf[o] = '\0';
    return (int)o;
}

const char *op_decimal_strerror(enum op_decimal_err err)
{
    switch (err) {
    case OP_DEC_OK:
        return "ok";
    case OP_DEC_EMPTY:
        return "price is empty";
    case OP_DEC_SIGN:
        return "price must not carry a sign";
    case OP_DEC_EXPONENT:
        return "price must not use exponent notation";
    case OP_DEC_SYNTAX:
        return "price must be a decimal such as \"187.25\"";
    case OP_DEC_TOO_LONG:
        return "price has too many characters";
    case OP_DEC_TOO_MANY_DECIMALS:
        return "price has more decimals than the symbol's tick size";
    case OP_DEC_NOT_TICK_MULTIPLE:
        return "price is not a multiple of the symbol's tick size";
    case OP_DEC_OVERFLOW:
        return "price is too large";
    case OP_DEC_ZERO:
        return "price must be greater than zero";
    }
    return "invalid price";
}
