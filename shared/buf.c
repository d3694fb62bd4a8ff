/* A growable byte buffer, reused across batches so the hot path does not allocate. */
#include "shared/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"

void op_buf_init(struct op_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void op_buf_release(struct op_buf *b)
{
    op_free(b->data);
    op_buf_init(b);
}

int op_buf_reserve(struct op_buf *b, size_t n)
{
    if (b->data && n < b->cap - b->len) /* < keeps a byte for the NUL */
        return 0;
    size_t need = b->len + n + 1; /* +1 keeps room for a NUL */
    if (need < b->len)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *nd = op_realloc(b->data, cap);
    if (!nd)
        return -1;
    b->data = nd;
    b->cap = cap;
    return 0;
}

int op_buf_append(struct op_buf *b, const void *p, size_t n)
{
    if (op_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int op_buf_printf(struct op_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || op_buf_reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}
