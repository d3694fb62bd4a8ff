/* Allocation through replaceable hooks, so tests can make any allocation fail. */
#ifndef OP_ALLOC_H
#define OP_ALLOC_H

#include <stddef.h>

/* The hooks every project allocation goes through; default to libc. A test
 * swaps them (op_alloc_set_hooks) to simulate out-of-memory at a chosen call. */
struct op_alloc_hooks {
    void *(*malloc_fn)(size_t n);
    void *(*realloc_fn)(void *p, size_t n);
    void (*free_fn)(void *p);
};

void op_alloc_set_hooks(const struct op_alloc_hooks *h); /* NULL restores libc */

void *op_malloc(size_t n);
void *op_calloc(size_t count, size_t size); /* NULL on overflow too */
void *op_realloc(void *p, size_t n);
void op_free(void *p);

#endif
