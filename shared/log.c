/* Logging: one line per event to stderr, key=value or JSON, with levels. */
#include "shared/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A log line longer than this is truncated: events are short by design and a
 * bounded stack buffer keeps logging allocation-free. */
#define LINE_MAX_BYTES 2048

static const char *log_service = "orderpipe";
static enum op_log_level log_min = OP_LOG_INFO;
static enum op_log_format log_fmt = OP_LOG_KV;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void op_log_init(const char *service, enum op_log_level level, enum op_log_format format)
{
    log_service = service;
    log_min = level;
    log_fmt = format;
}

int op_log_level_parse(const char *s, enum op_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum op_log_level)i;
            return 0;
        }
    }
    return -1;
}

int op_log_format_parse(const char *s, enum op_log_format *out)
{
    if (strcmp(s, "kv") == 0)
        *out = OP_LOG_KV;
    else if (strcmp(s, "json") == 0)
        *out = OP_LOG_JSON;
    else
        return -1;
    return 0;
}

int op_log_enabled(enum op_log_level level)
{
    return level >= log_min;
}

/* Appends to out[*len..size) with snprintf semantics; never overruns. */
static void put(char *out, int size, int *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *out, int size, int *len, const char *fmt, ...)
{
    if (*len >= size - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, (size_t)(size - *len), fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = (*len + n < size - 1) ? *len + n : size - 1;
}

/* Appends s[0..n) as the body of a JSON string (escaping quotes, backslashes
 * and control characters). */
static void put_json_chars(char *out, int size, int *len, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(out, size, len, "\\%c", c);
        else if (c < 0x20)
            put(out, size, len, "\\u%04x", c);
        else
            put(out, size, len, "%c", c);
    }
}

/* Appends the key=value pairs of `pairs` as JSON members. A value may be
 * double-quoted (quotes are then stripped, \" kept as a quote). */
static void put_pairs_json(char *out, int size, int *len, const char *pairs)
{
    const char *p = pairs;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t klen = (size_t)(p - key);
        const char *val = p;
        size_t vlen = 0;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                val = ++p;
                while (*p && !(*p == '"' && p[-1] != '\\'))
                    p++;
                vlen = (size_t)(p - val);
                if (*p == '"')
                    p++;
            } else {
                val = p;
                while (*p && *p != ' ')
                    p++;
                vlen = (size_t)(p - val);
            }
        }
        put(out, size, len, ",\"");
        put_json_chars(out, size, len, key, klen);
        put(out, size, len, "\":\"");
        put_json_chars(out, size, len, val, vlen);
        put(out, size, len, "\"");
    }
}

int op_log_format_line(char *out, int size, enum op_log_level level, const char *event,
                       const char *pairs)
{
    struct timespec ts;
    struct tm tm;
    char when[64];
    int len = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
    out[0] = '\0';
    if (log_fmt == OP_LOG_JSON) {
        put(out, size - 2, &len, "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"event\":\"",
            when, level_names[level], log_service);
        put_json_chars(out, size - 2, &len, event, strlen(event));
        put(out, size - 2, &len, "\"");
        put_pairs_json(out, size - 2, &len, pairs);
        put(out, size, &len, "}");
    } else {
        put(out, size - 1, &len, "ts=%s level=%s svc=%s event=%s%s%s", when, level_names[level],
            log_service, event, pairs[0] ? " " : "", pairs);
    }
    put(out, size, &len, "\n");
    return len;
}

/* Formats and writes one line; shared by op_log and op_log_fail. */
static void vlog(enum op_log_level level, const char *event, const char *fmt, va_list ap)
{
    char pairs[LINE_MAX_BYTES];
    char line[LINE_MAX_BYTES + 256];

    vsnprintf(pairs, sizeof(pairs), fmt, ap);
    int n = op_log_format_line(line, (int)sizeof(line), level, event, pairs);
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

void op_log(enum op_log_level level, const char *event, const char *fmt, ...)
{
    if (level < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, fmt, ap);
    va_end(ap);
}

int op_log_fail(const char *event, const char *fmt, ...)
{
    if (OP_LOG_ERROR >= log_min) {
        va_list ap;
        va_start(ap, fmt);
        vlog(OP_LOG_ERROR, event, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void op_log_message(enum op_log_level level, const char *event, const char *fmt, va_list ap)
{
    char msg[256];
    if (level < log_min)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '"')
            *p = '\'';
    op_log(level, event, "msg=\"%s\"", msg);
}
