/* Logging: one line per event to stderr, key=value or JSON, with levels. */
#ifndef OP_LOG_H
#define OP_LOG_H

#include <stdarg.h>

enum op_log_level { OP_LOG_DEBUG = 0, OP_LOG_INFO = 1, OP_LOG_WARN = 2, OP_LOG_ERROR = 3 };
enum op_log_format { OP_LOG_KV = 0, OP_LOG_JSON = 1 };

/*
 * Sets the service name stamped on every line, the lowest level written and
 * the format. Until called, lines go out as service "orderpipe", level info,
 * key=value. Not thread-safe against concurrent log calls: call it first.
 */
void op_log_init(const char *service, enum op_log_level level, enum op_log_format format);

/* Parses "debug|info|warn|error" and "kv|json"; return 0, or -1 if unknown. */
int op_log_level_parse(const char *s, enum op_log_level *out);
int op_log_format_parse(const char *s, enum op_log_format *out);

/*
 * Writes one line for `event` (a short snake_case name) at `level`. `fmt`
 * formats the rest as space-separated key=value pairs; a value containing
 * spaces or quotes must be double-quoted by the caller (or use %s with
 * op_log_quote). In JSON format the pairs become fields of one object.
 * Lines are written with one write(2), so concurrent threads never interleave.
 */
void op_log(enum op_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs at error level and returns -1, so that a failing call site is one line:
 * `return op_log_fail("redis_connect", "url=%s err=%s", url, why);` */
int op_log_fail(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define op_debug(event, ...) op_log(OP_LOG_DEBUG, event, __VA_ARGS__)
#define op_info(event, ...) op_log(OP_LOG_INFO, event, __VA_ARGS__)
#define op_warn(event, ...) op_log(OP_LOG_WARN, event, __VA_ARGS__)
#define op_error(event, ...) op_log(OP_LOG_ERROR, event, __VA_ARGS__)

/*
 * Logs a free-text message from a library callback (printf-style fmt/ap)
 * as `event msg="…"`: newlines at the end are dropped and double quotes
 * become single quotes, so the line stays one parseable key=value line.
 */
void op_log_message(enum op_log_level level, const char *event, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Whether a line at `level` would be written (to skip costly formatting). */
int op_log_enabled(enum op_log_level level);

/*
 * Formats a line into `out` (at most `size` bytes, always NUL-terminated,
 * newline included) without writing it; returns the length. Exposed for tests.
 */
int op_log_format_line(char *out, int size, enum op_log_level level, const char *event,
                       const char *pairs);

#endif
