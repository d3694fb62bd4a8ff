/* Strict JSON reading for request bodies: jsmn tokens plus the checks jsmn skips. */
#ifndef INGEST_JSON_H
#define INGEST_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The only file that includes <jsmn.h> is json.c. A parsed document is an
 * array of tokens into the caller's text; numbers keep their exact text
 * (prices are parsed from it, never through a double).
 */

enum json_type {
    JSON_OBJECT = 1,
    JSON_ARRAY,
    JSON_STRING,
    JSON_NUMBER,
    JSON_TRUE,
    JSON_FALSE,
    JSON_NULL
};

struct json_tok {
    enum json_type type;
    int start, end; /* text[start..end): strings without their quotes */
    int size;       /* object: number of keys; array: number of elements */
    int next;       /* index of the token after this one and all its children */
};

/* A parsed document; tokens are owned by the caller (see json_parse). */
struct json_doc {
    const char *text;
    struct json_tok *toks;
    int ntoks;
};

/*
 * Parses len bytes of text as exactly one JSON value (RFC 8259: correct
 * separators, valid escapes, no control characters in strings, valid number
 * grammar, only whitespace after the value) into toks[0..max). Returns 0, or
 * -1 with *err a constant message ("body is not valid JSON", "too many JSON
 * values"). Duplicate keys are not checked here (json_object_check does).
 */
int json_parse(struct json_doc *d, const char *text, size_t len, struct json_tok *toks, int max,
               const char **err);

/*
 * Token space reused across documents, so that parsing a request body does
 * not allocate once it is large enough: json_tok for the document and jsmn's
 * own tokens. Owns both arrays (init/release).
 */
struct json_parser {
    struct json_tok *toks; /* [cap], what json_parse_with's documents point into */
    void *jsmn;            /* [cap] jsmn tokens (the type stays inside json.c) */
    int cap;
};

void json_parser_init(struct json_parser *p);
void json_parser_release(struct json_parser *p);

/* Makes room for documents of max tokens. Returns 0, or -1 out of memory
 * (p unchanged). */
int json_parser_reserve(struct json_parser *p, int max);

/* Bytes p holds (for the caller's decision to keep or release it). */
size_t json_parser_size(const struct json_parser *p);

/* json_parse into p's tokens, at most min(max, what json_parser_reserve made
 * room for); never allocates. d->toks points into p until the next parse
 * or json_parser_release. */
int json_parse_with(struct json_parser *p, struct json_doc *d, const char *text, size_t len,
                    int max, const char **err);

/* 1 if the token is a string equal to s. */
bool json_eq(const struct json_doc *d, int tok, const char *s);

/*
 * Decodes the string token into out (size bytes incl. NUL), resolving
 * escapes. Returns the length, or -1 if it is not a string, does not fit,
 * or holds a NUL or a non-ASCII character (no field of ours needs one).
 */
int json_string(const struct json_doc *d, int tok, char *out, size_t size);

/*
 * Checks that object token obj has no duplicate key and only keys from the
 * NULL-terminated list allowed. Returns 0, or -1 with *bad_key pointing to
 * the offending key's text (a static copy, NUL-terminated, truncated) and
 * *dup telling which problem it is.
 */
int json_object_check(const struct json_doc *d, int obj, const char *const *allowed,
                      const char **bad_key, bool *dup);

/* Index of the value of key in object obj, or -1 if absent. */
int json_get(const struct json_doc *d, int obj, const char *key);

struct op_buf;
/* Appends s as a JSON string literal (quotes included, everything escaped). */
int json_put_str(struct op_buf *b, const char *s);
#endif
