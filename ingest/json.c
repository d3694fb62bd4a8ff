/* Strict JSON reading for request bodies: jsmn tokens plus the checks jsmn skips. */
#include "ingest/json.h"

#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/buf.h"

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

/* jsmn validates structure loosely (it accepts a missing ',' or ':' in
 * places and does not check number grammar or escapes), so each gap between
 * tokens and each primitive is checked here as well. */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Checks text[from..to) is whitespace around exactly the separator sep
 * ('\0' for none). */
static bool gap_ok(const char *text, int from, int to, char sep)
{
    bool seen = sep == '\0';
    for (int i = from; i < to; i++) {
        if (is_ws(text[i]))
            continue;
        if (!seen && text[i] == sep) {
            seen = true;
            continue;
        }
        return false;
    }
    return seen;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number_ok(const char *s, int n)
{
    int i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        int d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        int d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks a string body: escapes valid, no raw control characters. */
static bool string_ok(const char *s, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (++i >= n)
            return false;
        switch (s[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;
        case 'u':
            for (int k = 1; k <= 4; k++)
                if (i + k >= n || hexval(s[i + k]) < 0)
                    return false;
            i += 4;
            break;
        default:
            return false;
        }
    }
    return true;
}

/* Converts jsmn's n tokens (or its error code n) into d->toks and checks
 * what jsmn does not. Returns 0 or -1 with *err. */
static int json_check(struct json_doc *d, const char *text, size_t len, const jsmntok_t *jt, int n,
                      const char **err)
{
    struct json_tok *toks = d->toks;
    if (n == JSMN_ERROR_NOMEM) {
        *err = "body has too many JSON values";
        return -1;
    }
    if (n <= 0) {
        *err = "body is not valid JSON";
        return -1;
    }
    for (int i = 0; i < n; i++) {
        jsmntok_t t = jt[i];
        struct json_tok *o = &toks[i];
        o->start = t.start;
        o->end = t.end;
        o->size = t.size;
        o->next = i + 1;
        switch (t.type) {
        case JSMN_OBJECT:
            o->type = JSON_OBJECT;
            break;
        case JSMN_ARRAY:
            o->type = JSON_ARRAY;
            break;
        case JSMN_STRING:
            o->type = JSON_STRING;
            break;
        default: {
            const char *s = text + t.start;
            int l = t.end - t.start;
            if (l == 4 && memcmp(s, "true", 4) == 0)
                o->type = JSON_TRUE;
            else if (l == 5 && memcmp(s, "false", 5) == 0)
                o->type = JSON_FALSE;
            else if (l == 4 && memcmp(s, "null", 4) == 0)
                o->type = JSON_NULL;
            else if (number_ok(s, l))
                o->type = JSON_NUMBER;
            else {
                *err = "body is not valid JSON";
                return -1;
            }
        }
        }
        if (o->type == JSON_STRING && !string_ok(text + o->start, o->end - o->start)) {
            *err = "body has an invalid JSON string";
            return -1;
        }
    }
    /* Walk in document order with a stack of open containers, checking the
     * separator in every gap and computing each token's `next`. */
    struct frame {
        int tok, left; /* container, children still to come (keys+values) */
        bool object;
    } stack[64];
    int depth = 0, pos = 0;
    for (int i = 0; i < n; i++) {
        char sep = '\0';
        if (depth > 0) {
            struct frame *f = &stack[depth - 1];
            int done = (f->object ? toks[f->tok].size * 2 : toks[f->tok].size) - f->left;
            if (f->object)
                sep = (done % 2 == 1) ? ':' : (done > 0 ? ',' : '\0');
            else
                sep = done > 0 ? ',' : '\0';
        }
        int start = toks[i].type == JSON_STRING ? toks[i].start - 1 : toks[i].start;
        if (!gap_ok(text, pos, start, sep)) {
            *err = "body is not valid JSON";
            return -1;
        }
        if (depth > 0)
            stack[depth - 1].left--;
        pos = toks[i].type == JSON_STRING ? toks[i].end + 1 : toks[i].end;
        if (toks[i].type == JSON_OBJECT || toks[i].type == JSON_ARRAY) {
            if (depth == 64) {
                *err = "body nests too deeply";
                return -1;
            }
            bool obj = toks[i].type == JSON_OBJECT;
            stack[depth++] = (struct frame){i, obj ? toks[i].size * 2 : toks[i].size, obj};
            pos = toks[i].start + 1;
        }
        /* close every container whose children are all seen */
        while (depth > 0 && stack[depth - 1].left == 0) {
            struct frame *f = &stack[depth - 1];
            int close = toks[f->tok].end - 1;
            if (!gap_ok(text, pos, close, '\0')) {
                *err = "body is not valid JSON";
                return -1;
            }
            pos = toks[f->tok].end;
            toks[f->tok].next = i + 1;
            depth--;
        }
        if (depth == 0 && i != n - 1) {
            *err = "body holds more than one JSON value";
            return -1;
        }
    }
    if (depth != 0 || !gap_ok(text, pos, (int)len, '\0')) {
        *err = "body is not valid JSON";
        return -1;
    }
    d->ntoks = n;
    return 0;
}

void json_parser_init(struct json_parser *p)
{
    p->toks = NULL;
    p->jsmn = NULL;
    p->cap = 0;
}

void json_parser_release(struct json_parser *p)
{
    op_free(p->toks);
    op_free(p->jsmn);
    json_parser_init(p);
}

int json_parser_reserve(struct json_parser *p, int max)
{
    if (max <= p->cap)
        return 0;
    struct json_tok *t = op_malloc((size_t)max * sizeof(*t));
    jsmntok_t *j = op_malloc((size_t)max * sizeof(*j));
    if (!t || !j) {
        op_free(t);
        op_free(j);
        return -1;
    }
    json_parser_release(p);
    p->toks = t;
    p->jsmn = j;
    p->cap = max;
    return 0;
}

size_t json_parser_size(const struct json_parser *p)
{
    return (size_t)p->cap * (sizeof(struct json_tok) + sizeof(jsmntok_t));
}

/* json_parse with jsmn's tokens in jt[0..max), converted into toks. */
static int parse_into(struct json_doc *d, const char *text, size_t len, struct json_tok *toks,
                      jsmntok_t *jt, int max, const char **err)
{
    jsmn_parser p;

    d->text = text;
    d->toks = toks;
    d->ntoks = 0;
    if (len > (size_t)1 << 30) {
        *err = "body is too large";
        return -1;
    }
    jsmn_init(&p);
    int n = jsmn_parse(&p, text, len, jt, (unsigned)max);
    return json_check(d, text, len, jt, n, err);
}

int json_parse_with(struct json_parser *p, struct json_doc *d, const char *text, size_t len,
                    int max, const char **err)
{
    if (max > p->cap)
        max = p->cap;
    return parse_into(d, text, len, p->toks, p->jsmn, max, err);
}

int json_parse(struct json_doc *d, const char *text, size_t len, struct json_tok *toks, int max,
               const char **err)
{
    /* jsmn's own tokens, converted into toks; freed before returning. */
    jsmntok_t *jt = op_malloc((size_t)max * sizeof(*jt));
    if (!jt) {
        d->text = text;
        d->toks = toks;
        d->ntoks = 0;
        *err = "out of memory";
        return -1;
    }
    int rc = parse_into(d, text, len, toks, jt, max, err);
    op_free(jt);
    return rc;
}

bool json_eq(const struct json_doc *d, int tok, const char *s)
{
    const struct json_tok *t = &d->toks[tok];
    size_t n = strlen(s);
    return t->type == JSON_STRING && (size_t)(t->end - t->start) == n &&
           memcmp(d->text + t->start, s, n) == 0;
}

int json_string(const struct json_doc *d, int tok, char *out, size_t size)
{
    const struct json_tok *t = &d->toks[tok];
    if (t->type != JSON_STRING)
        return -1;
    const char *s = d->text + t->start;
    int n = t->end - t->start;
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\') {
            c = s[++i];
            switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                /* json_parse checked the four hex digits; check again so this
                 * function stands alone */
                unsigned v = 0;
                for (int k = 1; k <= 4; k++) {
                    int h = i + k < n ? hexval(s[i + k]) : -1;
                    if (h < 0)
                        return -1;
                    v = (v << 4) | (unsigned)h;
                }
                if (v == 0 || v > 0x7f)
                    return -1;
                c = (char)v;
                i += 4;
                break;
            }
            default:
                break; /* '"', '\\', '/' stand for themselves */
            }
        } else if ((unsigned char)c > 0x7f) {
            return -1;
        }
        if (o + 1 >= size)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
    int k = obj + 1;
    for (int i = 0; i < d->toks[obj].size; i++) {
        if (json_eq(d, k, key))
            return k + 1;
        k = d->toks[k + 1].next;
    }
    return -1;
}

int json_object_check(const struct json_doc *d, int obj, const char *const *allowed,
                      const char **bad_key, bool *dup)
{
    static __thread char keybuf[48];
    int k = obj + 1;
    for (int i = 0; i < d->toks[obj].size; i++) {
        const struct json_tok *t = &d->toks[k];
        int len = t->end - t->start;
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            if (json_eq(d, k, *a))
                known = true;
        bool twice = false;
        for (int j = obj + 1; j < k && !twice; j = d->toks[j + 1].next) {
            const struct json_tok *u = &d->toks[j];
            twice = u->end - u->start == len &&
                    memcmp(d->text + u->start, d->text + t->start, (size_t)len) == 0;
        }
        if (!known || twice) {
            int c = len < (int)sizeof(keybuf) - 1 ? len : (int)sizeof(keybuf) - 1;
            memcpy(keybuf, d->text + t->start, (size_t)c);
            keybuf[c] = '\0';
            *bad_key = keybuf;
            *dup = twice;
            return -1;
        }
        k = d->toks[k + 1].next;
    }
    return 0;
}

int json_put_str(struct op_buf *b, const char *s)
{
    int rc = op_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc |= op_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            rc |= op_buf_printf(b, "\\u%04x", c);
        else
            rc |= op_buf_append(b, s, 1);
    }
    return rc | op_buf_append(b, "\"", 1);
}
