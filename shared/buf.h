/* A growable byte buffer, reused across batches so the hot path does not allocate. */
#ifndef OP_BUF_H
#define OP_BUF_H

#include <stddef.h>

/* Owns data. op_buf_reset keeps the allocation for the next use. */
struct op_buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

void op_buf_init(struct op_buf *b);
void op_buf_release(struct op_buf *b);
static inline void op_buf_reset(struct op_buf *b)
{
    b->len = 0;
}

/* Makes room for n more bytes; returns 0, or -1 on allocation failure
 * (the buffer is then unchanged). */
int op_buf_reserve(struct op_buf *b, size_t n);

/* Appends n bytes of p; returns 0 or -1 (unchanged) on allocation failure. */
int op_buf_append(struct op_buf *b, const void *p, size_t n);

/* Appends printf-formatted text (no NUL counted in len, but data stays
 * NUL-terminated); returns 0 or -1. */
int op_buf_printf(struct op_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
