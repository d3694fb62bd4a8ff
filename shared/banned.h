/* Functions project code may not call: each use is a compile error (after git's banned.h). */
#ifndef OP_BANNED_H
#define OP_BANNED_H

/*
 * The Makefile force-includes this header into every project file
 * (-include shared/banned.h), so it first includes the system headers that
 * declare the banned functions: their declarations (and glibc's fortified
 * inline versions) must be read before the macros below rename any call.
 * Later includes of those headers are no-ops thanks to their guards.
 *
 * Why each is banned, and what to use instead:
 *   strcpy, strcat, strncpy, strncat   no bound, or a bound that silently
 *                                      truncates without a NUL (strncpy):
 *                                      snprintf(dst, sizeof(dst), "%s", src),
 *                                      memcpy with a checked length, op_buf
 *   sprintf, vsprintf                  no bound: snprintf, vsnprintf, op_buf_printf
 *   atoi, atol, atoll                  undefined behaviour on overflow and no
 *                                      way to see garbage: strtol/strtoll with
 *                                      an end pointer, op_env_int
 *
 * A banned call fails with an error naming it, e.g.
 *   error: 'sorry_strcpy_is_a_banned_function' undeclared
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OP_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) OP_BANNED(strcpy)
#undef strcat
#define strcat(x, y) OP_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) OP_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) OP_BANNED(strncat)

#undef sprintf
#define sprintf(...) OP_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) OP_BANNED(vsprintf)

#undef atoi
#define atoi(x) OP_BANNED(atoi)
#undef atol
#define atol(x) OP_BANNED(atol)
#undef atoll
#define atoll(x) OP_BANNED(atoll)

#endif
