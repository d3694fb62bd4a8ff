/* Allocation through replaceable hooks, so tests can make any allocation fail. */
#include "shared/alloc.h"

#include <stdlib.h>
#include <string.h>

static struct op_alloc_hooks hooks = {malloc, realloc, free};

void op_alloc_set_hooks(const struct op_alloc_hooks *h)
{
    if (h)
        hooks = *h;
    else
        hooks = (struct op_alloc_hooks){malloc, realloc, free};
}

void *op_malloc(size_t n)
{
    return hooks.malloc_fn(n);
}

void *op_calloc(size_t count, size_t size)
{
    if (size != 0 && count > (size_t)-1 / size)
        return NULL;
    void *p = hooks.malloc_fn(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *op_realloc(void *p, size_t n)
{
    return hooks.realloc_fn(p, n);
}

void op_free(void *p)
{
    hooks.free_fn(p);
}
