/* The msgpack codec for every stream message: orders in, execution reports out. */
#include "shared/codec.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shared/alloc.h"

/* Containers nest at most this deep in our messages (array > map > value);
 * a little slack, and a hard stop for hostile input. */
#define MAX_DEPTH 4

struct op_codec {
    msgpack_zone zone; /* reused across decodes: cleared, not freed */
    const char *err;   /* last error, a literal */
};

struct op_codec *op_codec_new(void)
{
    struct op_codec *c = op_malloc(sizeof(*c));
    if (!c)
        return NULL;
    /* 8 KiB chunks: one order decodes into well under that. */
    if (!msgpack_zone_init(&c->zone, 8192)) {
        op_free(c);
        return NULL;
    }
    c->err = "";
    return c;
}

void op_codec_free(struct op_codec *c)
{
    if (!c)
        return;
    msgpack_zone_destroy(&c->zone);
    op_free(c);
}

const char *op_codec_error(const struct op_codec *c)
{
    return c->err;
}

/* ---- structural pre-check ------------------------------------------------ */

/* Reads a k-byte big-endian unsigned integer (k <= 8). */
static uint64_t be_read(const unsigned char *p, int k)
{
    uint64_t v = 0;
    for (int i = 0; i < k; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * msgpack_unpack allocates a container's elements as soon as it reads the
 * header, before it knows whether the bytes are there: a 5-byte input
 * claiming 2^32 elements would ask for 64 GiB. This walk checks, without
 * allocating, that data[*off..len) holds one complete object whose every
 * container count fits in the bytes left (each element takes at least one
 * byte) and whose depth stays within max_depth. Returns 0, or -1 with *why.
 */
static int mp_check_depth(const unsigned char *p, size_t len, size_t *off, int depth, int max_depth,
                          const char **why)
{
    size_t o = *off;
    uint64_t n = 0;    /* container elements, or payload bytes */
    int container = 0; /* 1 array, 2 map */

    if (o >= len) {
        *why = "truncated input";
        return -1;
    }
    unsigned char b = p[o++];
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (len - o < (size_t)(k)) {                                                               \
            *why = "truncated input";                                                              \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
#define BE(k) be_read(p + o, k)
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        n = 0;
    } else if (b >= 0x80 && b <= 0x8f) {
        container = 2, n = b & 0x0f;
    } else if (b >= 0x90 && b <= 0x9f) {
        container = 1, n = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
    } else {
        switch (b) {
        case 0xc4:
        case 0xd9:
            NEED(1);
            n = BE(1);
            o += 1;
            break;
        case 0xc5:
        case 0xda:
            NEED(2);
            n = BE(2);
            o += 2;
            break;
        case 0xc6:
        case 0xdb:
            NEED(4);
            n = BE(4);
            o += 4;
            break;
        case 0xc7:
            NEED(2);
            n = BE(1) + 1;
            o += 1;
            break;
        case 0xc8:
            NEED(3);
            n = BE(2) + 1;
            o += 2;
            break;
        case 0xc9:
            NEED(5);
            n = BE(4) + 1;
            o += 4;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            n = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            n = 8;
            break;
        case 0xcc:
        case 0xd0:
            n = 1;
            break;
        case 0xcd:
        case 0xd1:
        case 0xd4:
            n = 2;
            break; /* u16, i16, fixext1 */
        case 0xd5:
            n = 3;
            break;
        case 0xd6:
            n = 5;
            break;
        case 0xd7:
            n = 9;
            break;
        case 0xd8:
            n = 17;
            break;
        case 0xdc:
            NEED(2);
            container = 1;
            n = BE(2);
            o += 2;
            break;
        case 0xdd:
            NEED(4);
            container = 1;
            n = BE(4);
            o += 4;
            break;
        case 0xde:
            NEED(2);
            container = 2;
            n = BE(2);
            o += 2;
            break;
        case 0xdf:
            NEED(4);
            container = 2;
            n = BE(4);
            o += 4;
            break;
        default:
            *why = "corrupt input"; /* 0xc1 is never used */
            return -1;
        }
    }
    if (!container) {
        NEED(n);
        *off = o + n;
        return 0;
    }
    if (depth >= max_depth) {
        *why = "input nested too deeply";
        return -1;
    }
    uint64_t items = container == 2 ? n * 2 : n;
    if (items > len - o) {
        *why = "truncated input";
        return -1;
    }
    for (uint64_t i = 0; i < items; i++)
        if (mp_check_depth(p, len, &o, depth + 1, max_depth, why) != 0)
            return -1;
    *off = o;
    return 0;
#undef NEED
#undef BE
}

/* mp_check_depth within the stream messages' MAX_DEPTH. */
static int mp_check(const unsigned char *p, size_t len, size_t *off, int depth, const char **why)
{
    return mp_check_depth(p, len, off, depth, MAX_DEPTH, why);
}

/* mp_check over exactly data[0..len), at most max bytes; 0 or -1 with c->err. */
static int check_one(struct op_codec *c, const void *data, size_t len, size_t max)
{
    size_t off = 0;
    const char *why = NULL;
    if (len > max) {
        c->err = "input too large";
        return -1;
    }
    if (mp_check(data, len, &off, 0, &why) != 0) {
        c->err = why;
        return -1;
    }
    if (off != len) {
        c->err = "trailing bytes after the message";
        return -1;
    }
    return 0;
}

/* Unpacks exactly one object spanning data[0..len) into *obj (memory in the
 * codec's zone, valid until the next decode). Returns 0 or -1 with c->err. */
static int unpack_one(struct op_codec *c, const void *data, size_t len, size_t max,
                      msgpack_object *obj)
{
    size_t off = 0;
    if (check_one(c, data, len, max) != 0)
        return -1;
    msgpack_zone_clear(&c->zone);
    switch (msgpack_unpack(data, len, &off, &c->zone, obj)) {
    case MSGPACK_UNPACK_SUCCESS:
        return 0;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        c->err = "out of memory";
        return -1;
    default:
        c->err = "corrupt input";
        return -1;
    }
}

/* ---- field readers ------------------------------------------------------- */

/* Field ids: one per wire key, shared by orders and reports. */
enum field {
    F_UNKNOWN = -1,
    F_K,
    F_RK,
    F_RID,
    F_ID,
    F_TS,
    F_SYM,
    F_ACCT,
    F_COID,
    F_SIDE,
    F_TYPE,
    F_TIF,
    F_PO,
    F_PX,
    F_QTY,
    F_FQ,
    F_ST,
    F_RSN,
    F_MID,
    F_MACCT,
    F_TPX,
    F_TQ,
    F_MQTY,
    F_MFQ,
    F_MST,
    F_STP,
    F_SPX,
    F_EXP,
    F_TO,
    F_COUNT
};

/* Wire names, indexed by enum field; see schemas/messages.md. */
static const char *const field_names[F_COUNT] = {
    [F_K] = "k",     [F_RK] = "rk",     [F_RID] = "rid",   [F_ID] = "id",       [F_TS] = "ts",
    [F_SYM] = "sym", [F_ACCT] = "acct", [F_COID] = "coid", [F_SIDE] = "side",   [F_TYPE] = "type",
    [F_TIF] = "tif", [F_PO] = "po",     [F_PX] = "px",     [F_QTY] = "qty",     [F_FQ] = "fq",
    [F_ST] = "st",   [F_RSN] = "rsn",   [F_MID] = "mid",   [F_MACCT] = "macct", [F_TPX] = "tpx",
    [F_TQ] = "tq",   [F_MQTY] = "mqty", [F_MFQ] = "mfq",   [F_MST] = "mst",     [F_STP] = "stp",
    [F_SPX] = "spx", [F_EXP] = "exp",   [F_TO] = "to",
};

/* A cheap first test of a key against a name: its length, first and last
 * byte in one integer (the 28 names differ in it but for a few pairs, which
 * memcmp then tells apart). */
static inline uint32_t key_sig(const char *p, size_t n)
{
    return n == 0
               ? 0
               : (uint32_t)n << 16 | (uint32_t)(unsigned char)p[0] << 8 | (unsigned char)p[n - 1];
}

static uint32_t field_sig[F_COUNT];
static uint8_t field_len[F_COUNT];

/* Fills field_sig/field_len before main (and before any thread exists). */
__attribute__((constructor)) static void field_tables(void)
{
    for (int i = 0; i < F_COUNT; i++) {
        field_len[i] = (uint8_t)strlen(field_names[i]);
        field_sig[i] = key_sig(field_names[i], field_len[i]);
    }
}

static enum field field_of(const char *key, size_t len)
{
    uint32_t g = key_sig(key, len);
    for (int i = 0; i < F_COUNT; i++)
        if (field_sig[i] == g && field_len[i] == len && memcmp(field_names[i], key, len) == 0)
            return (enum field)i;
    return F_UNKNOWN;
}

static int get_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}

static int get_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *out = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = o->via.i64;
    else
        return -1;
    return 0;
}

static int get_u32(const msgpack_object *o, uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return -1;
    *out = (uint32_t)o->via.u64;
    return 0;
}

static int get_u8(const msgpack_object *o, uint8_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT8_MAX)
        return -1;
    *out = (uint8_t)o->via.u64;
    return 0;
}

static int get_bool(const msgpack_object *o, bool *out)
{
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return -1;
    *out = o->via.boolean;
    return 0;
}

/* Copies a string field into out[size] NUL-terminated; refuses strings that
 * do not fit or contain a NUL byte. */
static int get_str(const msgpack_object *o, char *out, size_t size)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size ||
        memchr(o->via.str.ptr, '\0', o->via.str.size))
        return -1;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

/* Where a field of a decoded map goes in its struct; kind 0 means the field
 * is not part of this message and is ignored like an unknown key. One
 * constant table per message type (not a table of pointers per message: the
 * matcher and the recorder decode millions of them). */
enum dest_kind { D_NONE = 0, D_U8, D_U32, D_U64, D_I64, D_BOOL, D_STR };
struct field_dest {
    uint8_t kind; /* enum dest_kind */
    uint8_t size; /* D_STR: the array's size, NUL included */
    uint16_t off; /* offsetof the member */
};

/* NOLINTNEXTLINE(bugprone-macro-parentheses): T and M are a type and a member name */
#define DEST(F, K, T, M)                                                                           \
    [F] = {(K), (uint8_t)((K) == D_STR ? sizeof(((T *)0)->M) : 0), offsetof(T, M)}

static const struct field_dest order_dest[F_COUNT] = {
    DEST(F_K, D_U8, struct op_order_msg, kind),
    DEST(F_SIDE, D_U8, struct op_order_msg, side),
    DEST(F_TYPE, D_U8, struct op_order_msg, type),
    DEST(F_TIF, D_U8, struct op_order_msg, tif),
    DEST(F_PO, D_BOOL, struct op_order_msg, post_only),
    DEST(F_STP, D_U8, struct op_order_msg, stp),
    DEST(F_SPX, D_I64, struct op_order_msg, stop_price),
    DEST(F_EXP, D_U64, struct op_order_msg, expire_ns),
    DEST(F_TO, D_U32, struct op_order_msg, timeout_ms),
    DEST(F_ID, D_U64, struct op_order_msg, order_id),
    DEST(F_TS, D_U64, struct op_order_msg, ts_ns),
    DEST(F_PX, D_I64, struct op_order_msg, price),
    DEST(F_QTY, D_I64, struct op_order_msg, qty),
    DEST(F_SYM, D_STR, struct op_order_msg, symbol),
    DEST(F_ACCT, D_STR, struct op_order_msg, account),
    DEST(F_COID, D_STR, struct op_order_msg, client_order_id),
};

static const struct field_dest report_dest[F_COUNT] = {
    DEST(F_K, D_U8, struct op_report, kind),
    DEST(F_RK, D_U8, struct op_report, req_kind),
    DEST(F_RSN, D_U8, struct op_report, reason),
    DEST(F_ST, D_U8, struct op_report, status),
    DEST(F_SIDE, D_U8, struct op_report, side),
    DEST(F_TYPE, D_U8, struct op_report, type),
    DEST(F_TIF, D_U8, struct op_report, tif),
    DEST(F_PO, D_BOOL, struct op_report, post_only),
    DEST(F_RID, D_U64, struct op_report, report_id),
    DEST(F_TS, D_U64, struct op_report, ts_ns),
    DEST(F_ID, D_U64, struct op_report, order_id),
    DEST(F_PX, D_I64, struct op_report, price),
    DEST(F_QTY, D_I64, struct op_report, qty),
    DEST(F_FQ, D_I64, struct op_report, filled_qty),
    DEST(F_MID, D_U64, struct op_report, maker_order_id),
    DEST(F_TPX, D_I64, struct op_report, trade_price),
    DEST(F_TQ, D_I64, struct op_report, trade_qty),
    DEST(F_MQTY, D_I64, struct op_report, maker_qty),
    DEST(F_MFQ, D_I64, struct op_report, maker_filled_qty),
    DEST(F_MST, D_U8, struct op_report, maker_status),
    DEST(F_SPX, D_I64, struct op_report, stop_price),
    DEST(F_EXP, D_U64, struct op_report, expire_ns),
    DEST(F_SYM, D_STR, struct op_report, symbol),
    DEST(F_ACCT, D_STR, struct op_report, account),
    DEST(F_MACCT, D_STR, struct op_report, maker_account),
    DEST(F_COID, D_STR, struct op_report, client_order_id),
};

#undef DEST

/* Stores every known field of map `o` into the struct at base, as d says;
 * returns a bitmask of the fields seen, or -1 with c->err on a wrong type,
 * an oversized string, a duplicate key or a non-string key. */
static long long read_map(struct op_codec *c, const msgpack_object *o, const struct field_dest *d,
                          void *base)
{
    long long seen = 0;
    char *b = base;

    if (o->type != MSGPACK_OBJECT_MAP) {
        c->err = "message is not a map";
        return -1;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            c->err = "map key is not a string";
            return -1;
        }
        enum field f = field_of(kv->key.via.str.ptr, kv->key.via.str.size);
        if (f == F_UNKNOWN)
            continue;
        if (seen & (1LL << f)) {
            c->err = "duplicate key in map";
            return -1;
        }
        seen |= 1LL << f;
        int rc = 0;
        void *at = b + d[f].off;
        switch (d[f].kind) {
        case D_U8:
            rc = get_u8(&kv->val, at);
            break;
        case D_U32:
            rc = get_u32(&kv->val, at);
            break;
        case D_U64:
            rc = get_u64(&kv->val, at);
            break;
        case D_I64:
            rc = get_i64(&kv->val, at);
            break;
        case D_BOOL:
            rc = get_bool(&kv->val, at);
            break;
        case D_STR:
            rc = get_str(&kv->val, at, d[f].size);
            break;
        default: /* a field of the other message: ignored */
            break;
        }
        if (rc != 0) {
            c->err = "field has the wrong type or is too long";
            return -1;
        }
    }
    return seen;
}

#define BIT(f) (1LL << (f))

/* The checks of a decoded order after its map was read; 0 or -1 with c->err. */
static int order_complete(struct op_codec *c, const struct op_order_msg *m, long long seen)
{
    static const long long base = BIT(F_K) | BIT(F_ID) | BIT(F_TS) | BIT(F_SYM) | BIT(F_ACCT);
    long long need = base;
    if (m->kind == OP_MSG_NEW)
        need |= BIT(F_SIDE) | BIT(F_TYPE) | BIT(F_TIF) | BIT(F_QTY);
    else if (m->kind == OP_MSG_CANCEL_ALL_AFTER)
        need |= BIT(F_TO);
    else if ((m->kind < OP_MSG_CANCEL || m->kind > OP_MSG_KIND_MAX) && (seen & BIT(F_K))) {
        c->err = "unknown message kind";
        return -1;
    }
    if ((seen & need) != need) {
        c->err = "a required field is missing";
        return -1;
    }
    return 0;
}

/* The checks of a decoded report; 0 or -1 with c->err. */
static int report_complete(struct op_codec *c, const struct op_report *r, long long seen)
{
    static const long long need = BIT(F_K) | BIT(F_RID) | BIT(F_TS) | BIT(F_ID) | BIT(F_SYM);
    if ((seen & need) != need) {
        c->err = "a required field is missing";
        return -1;
    }
    if (r->kind < OP_REPORT_ACCEPTED || r->kind > OP_REPORT_KIND_MAX) {
        c->err = "unknown report kind";
        return -1;
    }
    return 0;
}

int op_codec_decode_order_msgpack(struct op_codec *c, const void *data, size_t len,
                                  struct op_order_msg *m)
{
    msgpack_object obj;

    memset(m, 0, sizeof(*m));
    if (unpack_one(c, data, len, OP_CODEC_ORDER_MAX, &obj) != 0)
        return -1;
    long long seen = read_map(c, &obj, order_dest, m);
    if (seen < 0 || order_complete(c, m, seen) != 0) {
        memset(m, 0, sizeof(*m));
        return -1;
    }
    return 0;
}

int op_codec_decode_reports_msgpack(struct op_codec *c, const void *data, size_t len,
                                    struct op_report *out, size_t max, size_t *n)
{
    msgpack_object obj;

    *n = 0;
    if (unpack_one(c, data, len, OP_CODEC_REPORTS_BYTES_MAX, &obj) != 0)
        return -1;
    if (obj.type != MSGPACK_OBJECT_ARRAY) {
        c->err = "reports are not an array";
        return -1;
    }
    if (obj.via.array.size > max) {
        c->err = "too many reports in one entry";
        return -1;
    }
    for (uint32_t i = 0; i < obj.via.array.size; i++) {
        struct op_report *r = &out[i];
        memset(r, 0, sizeof(*r));
        long long seen = read_map(c, &obj.via.array.ptr[i], report_dest, r);
        if (seen < 0 || report_complete(c, r, seen) != 0)
            return -1;
    }
    *n = obj.via.array.size;
    return 0;
}

/* ---- the decoders: straight from the bytes ---------------------------------- */

/*
 * The matcher decodes every input and the recorder every report: through
 * msgpack-c's unpacker (an object tree in a zone, then a walk of it) a
 * report cost ~1-2 us. These read the bytes once mp_check has proved them
 * well formed (every length within the buffer, depth bounded), with the
 * same rules as the msgpack-c path kept as the reference
 * (op_codec_decode_*_msgpack; tests/unit/test_codec.c checks both accept,
 * refuse and produce the same on mutated input).
 */

/* What a value is, in msgpack-c's object types. */
enum mp_class { MP_OTHER, MP_UINT, MP_NINT, MP_BOOL, MP_STR, MP_MAP, MP_ARRAY };

struct mp_val {
    enum mp_class cls;
    uint64_t u;    /* MP_UINT; MP_BOOL 0/1; MP_MAP/MP_ARRAY: elements; MP_STR: bytes */
    int64_t i;     /* MP_NINT */
    const char *s; /* MP_STR */
};

static inline uint64_t rd_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

/*
 * Reads the head of the value at p[*o] (a buffer mp_check accepted) into v
 * and advances *o past it — past its payload for scalars and strings, past
 * the header only for maps and arrays (their elements follow). Anything
 * else (nil, floats, bin, ext) is MP_OTHER and skipped whole.
 */
static void rd_val(const unsigned char *p, size_t len, size_t *o, struct mp_val *v)
{
    unsigned char b = p[(*o)++];
    memset(v, 0, sizeof(*v));
    if (b <= 0x7f) {
        v->cls = MP_UINT, v->u = b;
        return;
    } else if (b >= 0xe0) {
        v->cls = MP_NINT, v->i = (int64_t)b - 256; /* negative fixint: 0xe0 is -32 */
        return;
    } else if ((b & 0xe0) == 0xa0) {
        v->cls = MP_STR, v->u = b & 0x1f;
    } else if ((b & 0xf0) == 0x80) {
        v->cls = MP_MAP, v->u = b & 0x0f;
        return;
    } else if ((b & 0xf0) == 0x90) {
        v->cls = MP_ARRAY, v->u = b & 0x0f;
        return;
    } else {
        switch (b) {
        case 0xc2:
        case 0xc3:
            v->cls = MP_BOOL, v->u = b == 0xc3;
            return;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            int n = 1 << (b - 0xcc);
            v->cls = MP_UINT, v->u = rd_be(p + *o, n);
            *o += (size_t)n;
            return;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            int n = 1 << (b - 0xd0);
            uint64_t u = rd_be(p + *o, n);
            int64_t x = n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u : (int64_t)u;
            *o += (size_t)n;
            /* msgpack-c: a signed format holding a non-negative value is a
             * positive integer */
            if (x >= 0)
                v->cls = MP_UINT, v->u = (uint64_t)x;
            else
                v->cls = MP_NINT, v->i = x;
            return;
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
            int n = 1 << (b - 0xd9);
            v->cls = MP_STR, v->u = rd_be(p + *o, n);
            *o += (size_t)n;
            break;
        }
        case 0xdc:
        case 0xdd:
            v->cls = MP_ARRAY, v->u = rd_be(p + *o, b == 0xdc ? 2 : 4);
            *o += b == 0xdc ? 2 : 4;
            return;
        case 0xde:
        case 0xdf:
            v->cls = MP_MAP, v->u = rd_be(p + *o, b == 0xde ? 2 : 4);
            *o += b == 0xde ? 2 : 4;
            return;
        default: { /* nil, floats, bin, ext: skipped whole */
            size_t at = *o - 1;
            const char *why = NULL;
            (void)mp_check(p, len, &at, 0, &why); /* cannot fail: checked before */
            *o = at;
            v->cls = MP_OTHER;
            return;
        }
        }
    }
    /* MP_STR: the payload follows */
    v->s = (const char *)p + *o;
    *o += (size_t)v->u;
}

/* Skips the elements of a container whose head rd_val just read. */
static void rd_skip_elems(const unsigned char *p, size_t len, size_t *o, const struct mp_val *v)
{
    uint64_t items = v->cls == MP_MAP ? v->u * 2 : v->cls == MP_ARRAY ? v->u : 0;
    for (uint64_t k = 0; k < items; k++) {
        const char *why = NULL;
        (void)mp_check(p, len, o, 0, &why); /* cannot fail: checked before */
    }
}

/* Stores one field's value v into the struct at base as d says; 0 or -1
 * (wrong type, out of range, a string too long or holding a NUL). */
static int put_field(const struct field_dest *d, char *base, const struct mp_val *v)
{
    void *at = base + d->off;
    switch (d->kind) {
    case D_U8:
        if (v->cls != MP_UINT || v->u > UINT8_MAX)
            return -1;
        *(uint8_t *)at = (uint8_t)v->u;
        return 0;
    case D_U32: {
        if (v->cls != MP_UINT || v->u > UINT32_MAX)
            return -1;
        uint32_t x = (uint32_t)v->u;
        memcpy(at, &x, sizeof(x));
        return 0;
    }
    case D_U64:
        if (v->cls != MP_UINT)
            return -1;
        memcpy(at, &v->u, sizeof(v->u));
        return 0;
    case D_I64: {
        int64_t x;
        if (v->cls == MP_UINT && v->u <= INT64_MAX)
            x = (int64_t)v->u;
        else if (v->cls == MP_NINT)
            x = v->i;
        else
            return -1;
        memcpy(at, &x, sizeof(x));
        return 0;
    }
    case D_BOOL:
        if (v->cls != MP_BOOL)
            return -1;
        *(bool *)at = v->u != 0;
        return 0;
    case D_STR:
        if (v->cls != MP_STR || v->u >= d->size || memchr(v->s, '\0', (size_t)v->u))
            return -1;
        memcpy(at, v->s, (size_t)v->u);
        ((char *)at)[v->u] = '\0';
        return 0;
    default:
        return 0;
    }
}

/* Reads the map at p[*o] into the struct at base (zeroed by the caller):
 * the bitmask of fields seen, or -1 with c->err (as read_map). */
static long long rd_map(struct op_codec *c, const unsigned char *p, size_t len, size_t *o,
                        const struct field_dest *d, void *base)
{
    struct mp_val v, k;
    long long seen = 0;
    rd_val(p, len, o, &v);
    if (v.cls != MP_MAP) {
        c->err = "message is not a map";
        return -1;
    }
    for (uint64_t i = 0; i < v.u; i++) {
        rd_val(p, len, o, &k);
        if (k.cls != MP_STR) {
            c->err = "map key is not a string";
            return -1;
        }
        enum field f = field_of(k.s, (size_t)k.u);
        struct mp_val x;
        rd_val(p, len, o, &x);
        if (x.cls == MP_MAP || x.cls == MP_ARRAY)
            rd_skip_elems(p, len, o, &x);
        if (f == F_UNKNOWN)
            continue;
        if (seen & (1LL << f)) {
            c->err = "duplicate key in map";
            return -1;
        }
        seen |= 1LL << f;
        if (put_field(&d[f], base, &x) != 0) {
            c->err = "field has the wrong type or is too long";
            return -1;
        }
    }
    return seen;
}

int op_codec_decode_order(struct op_codec *c, const void *data, size_t len, struct op_order_msg *m)
{
    size_t o = 0;
    memset(m, 0, sizeof(*m));
    if (check_one(c, data, len, OP_CODEC_ORDER_MAX) != 0)
        return -1;
    long long seen = rd_map(c, data, len, &o, order_dest, m);
    if (seen < 0 || order_complete(c, m, seen) != 0) {
        memset(m, 0, sizeof(*m));
        return -1;
    }
    return 0;
}

int op_codec_decode_reports(struct op_codec *c, const void *data, size_t len, struct op_report *out,
                            size_t max, size_t *n)
{
    const unsigned char *p = data;
    size_t o = 0;
    struct mp_val v;
    *n = 0;
    if (check_one(c, data, len, OP_CODEC_REPORTS_BYTES_MAX) != 0)
        return -1;
    rd_val(p, len, &o, &v);
    if (v.cls != MP_ARRAY) {
        c->err = "reports are not an array";
        return -1;
    }
    if (v.u > max) {
        c->err = "too many reports in one entry";
        return -1;
    }
    for (uint64_t i = 0; i < v.u; i++) {
        struct op_report *r = &out[i];
        memset(r, 0, sizeof(*r));
        long long seen = rd_map(c, p, len, &o, report_dest, r);
        if (seen < 0 || report_complete(c, r, seen) != 0)
            return -1;
    }
    *n = (size_t)v.u;
    return 0;
}

long op_codec_split_orders(struct op_codec *c, const void *data, size_t len, struct op_span *out,
                           size_t max)
{
    const unsigned char *p = data;
    size_t o = 0;
    uint64_t n = 0;
    if (len > OP_CODEC_ORDERS_BYTES_MAX) {
        c->err = "orders entry too large";
        return -1;
    }
    if (len == 0 || !((p[0] & 0xf0) == 0x90 || p[0] == 0xdc || p[0] == 0xdd)) {
        if (max < 1) {
            c->err = "too many inputs in one entry";
            return -1;
        }
        out[0] = (struct op_span){0, len}; /* one input (or garbage: it will not decode) */
        return 1;
    }
    if ((p[0] & 0xf0) == 0x90) {
        n = p[0] & 0x0f, o = 1;
    } else {
        size_t k = p[0] == 0xdc ? 2 : 4;
        if (len < 1 + k) {
            c->err = "truncated input";
            return -1;
        }
        n = be_read(p + 1, (int)k), o = 1 + k;
    }
    if (n == 0) {
        c->err = "orders entry holds no input";
        return -1;
    }
    if (n > max) {
        c->err = "too many inputs in one entry";
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t at = o;
        const char *why = NULL;
        if (mp_check(p, len, &o, 0, &why) != 0) { /* the rest is one broken input */
            out[i] = (struct op_span){at, len - at};
            return (long)i + 1;
        }
        out[i] = (struct op_span){at, o - at};
    }
    if (o < len) { /* bytes after the last element: one more broken input */
        if (n < max)
            out[n++] = (struct op_span){o, len - o};
        else
            out[n - 1].len = len - out[n - 1].off;
    }
    return (long)n;
}

int op_codec_peek_symbol(const void *data, size_t len, char *sym)
{
    const unsigned char *p = data;
    size_t o = 0;
    const char *why = NULL;
    struct mp_val v, k, x;
    if (len > OP_CODEC_ORDER_MAX || mp_check(p, len, &o, 0, &why) != 0)
        return -1;
    o = 0;
    rd_val(p, len, &o, &v);
    if (v.cls != MP_MAP)
        return -1;
    for (uint64_t i = 0; i < v.u; i++) {
        rd_val(p, len, &o, &k);
        rd_val(p, len, &o, &x);
        if (x.cls == MP_MAP || x.cls == MP_ARRAY)
            rd_skip_elems(p, len, &o, &x);
        if (k.cls == MP_STR && k.u == 3 && memcmp(k.s, "sym", 3) == 0 && x.cls == MP_STR &&
            x.u > 0 && x.u < OP_SYMBOL_MAX && !memchr(x.s, '\0', (size_t)x.u)) {
            memcpy(sym, x.s, (size_t)x.u);
            sym[x.u] = '\0';
            return 0;
        }
    }
    return -1;
}

/* ---- encoders ------------------------------------------------------------ */

void op_sym_summary_add(struct op_sym_summary *s, const char *sym)
{
    for (size_t k = 0; k < s->n; k++)
        if (strcmp(s->seen[k], sym) == 0)
            return;
    if (s->n < OP_SYM_SUMMARY_MAX)
        s->seen[s->n++] = sym;
    else
        s->more = true;
}

int op_sym_summary_put(struct op_buf *out, const struct op_sym_summary *s)
{
    for (size_t k = 0; k < s->n; k++)
        if (op_buf_printf(out, "%s%s", k ? "," : "", s->seen[k]) != 0)
            return -1;
    return op_buf_append(out, s->more ? ",...\0" : "\0", s->more ? 5 : 1);
}

int op_codec_orders_fields(struct op_buf *out, const struct op_order_msg *const *msgs, size_t n)
{
    unsigned kinds = 0;
    struct op_sym_summary syms = {0};
    size_t first = n, last = n; /* the first and last input that names an order */
    for (size_t i = 0; i < n; i++) {
        kinds |= 1u << (msgs[i]->kind & 31);
        /* a cancel-all of every symbol ("") names none */
        if (msgs[i]->symbol[0])
            op_sym_summary_add(&syms, msgs[i]->symbol);
        /* a cancel-all, a cancel-all-after and a tick name no order (id 0) */
        if (msgs[i]->order_id != 0) {
            first = first == n ? i : first;
            last = i;
        }
    }
    int rc = 0;
    bool any = false;
    for (int k = OP_MSG_NEW; k <= OP_MSG_KIND_MAX; k++)
        if (kinds & (1u << k)) {
            rc |= op_buf_printf(out, "%s%s", any ? "," : "", op_msg_kind_name(k));
            any = true;
        }
    rc |= op_buf_append(out, "", 1);
    rc |= op_sym_summary_put(out, &syms);
    rc |= op_buf_printf(out, "%zu", n);
    rc |= op_buf_append(out, "", 1);
    if (first == n)
        rc |= op_buf_append(out, "-", 1);
    else if (first == last)
        rc |= op_buf_printf(out, "%llu", (unsigned long long)msgs[first]->order_id);
    else
        rc |= op_buf_printf(out, "%llu..%llu", (unsigned long long)msgs[first]->order_id,
                            (unsigned long long)msgs[last]->order_id);
    rc |= op_buf_append(out, "", 1);
    return rc ? -1 : 0;
}

int op_codec_encode_orders(struct op_buf *out, const struct op_order_msg *const *msgs, size_t n)
{
    if (n > UINT32_MAX || op_mp_put_array(out, (uint32_t)n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (op_codec_encode_order(out, msgs[i]) != 0)
            return -1;
    return 0;
}

/* msgpack_packer's write callback: appends to the op_buf in data. */
static int buf_write(void *data, const char *p, size_t n)
{
    return op_buf_append(data, p, n);
}

static int pack_key(msgpack_packer *pk, enum field f)
{
    size_t n = strlen(field_names[f]);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, field_names[f], n);
}

static int pack_str_field(msgpack_packer *pk, enum field f, const char *s)
{
    size_t n = strlen(s);
    return pack_key(pk, f) | msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static int pack_u64_field(msgpack_packer *pk, enum field f, uint64_t v)
{
    return pack_key(pk, f) | msgpack_pack_uint64(pk, v);
}

static int pack_i64_field(msgpack_packer *pk, enum field f, int64_t v)
{
    return pack_key(pk, f) | msgpack_pack_int64(pk, v);
}

static int pack_bool_field(msgpack_packer *pk, enum field f, bool v)
{
    return pack_key(pk, f) | (v ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

int op_codec_encode_order_msgpack(struct op_buf *out, const struct op_order_msg *m)
{
    msgpack_packer pk;
    size_t start = out->len;
    int rc;

    msgpack_packer_init(&pk, out, buf_write);
    bool coid = m->client_order_id[0] != '\0';
    switch (m->kind) {
    case OP_MSG_NEW:
        rc = msgpack_pack_map(&pk, 11 + (coid ? 1 : 0) + (m->stp ? 1 : 0) +
                                       (m->stop_price ? 1 : 0) + (m->expire_ns ? 1 : 0));
        break;
    case OP_MSG_CANCEL:
    case OP_MSG_CANCEL_ALL:
    case OP_MSG_TICK:
        rc = msgpack_pack_map(&pk, 5);
        break;
    case OP_MSG_CANCEL_ALL_AFTER:
        rc = msgpack_pack_map(&pk, 6);
        break;
    case OP_MSG_AMEND:
        rc = msgpack_pack_map(&pk, 5 + (m->qty ? 1 : 0) + (m->price ? 1 : 0));
        break;
    default:
        return -1;
    }
    rc |= pack_u64_field(&pk, F_K, m->kind);
    rc |= pack_u64_field(&pk, F_ID, m->order_id);
    rc |= pack_u64_field(&pk, F_TS, m->ts_ns);
    rc |= pack_str_field(&pk, F_SYM, m->symbol);
    rc |= pack_str_field(&pk, F_ACCT, m->account);
    if (m->kind == OP_MSG_NEW) {
        rc |= pack_u64_field(&pk, F_SIDE, m->side);
        rc |= pack_u64_field(&pk, F_TYPE, m->type);
        rc |= pack_u64_field(&pk, F_TIF, m->tif);
        rc |= pack_bool_field(&pk, F_PO, m->post_only);
        rc |= pack_i64_field(&pk, F_PX, m->price);
        if (coid)
            rc |= pack_str_field(&pk, F_COID, m->client_order_id);
        if (m->stp)
            rc |= pack_u64_field(&pk, F_STP, m->stp);
        if (m->stop_price)
            rc |= pack_i64_field(&pk, F_SPX, m->stop_price);
        if (m->expire_ns)
            rc |= pack_u64_field(&pk, F_EXP, m->expire_ns);
        rc |= pack_i64_field(&pk, F_QTY, m->qty);
    } else if (m->kind == OP_MSG_AMEND) {
        if (m->price)
            rc |= pack_i64_field(&pk, F_PX, m->price);
        if (m->qty)
            rc |= pack_i64_field(&pk, F_QTY, m->qty);
    } else if (m->kind == OP_MSG_CANCEL_ALL_AFTER) {
        rc |= pack_u64_field(&pk, F_TO, m->timeout_ms);
    }
    if (rc != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* Packs one report as a map of its non-zero fields (zero is the decoder's
 * default, so dropping them loses nothing and keeps entries small). */
static int pack_report(msgpack_packer *pk, const struct op_report *r)
{
    struct {
        enum field f;
        int kind; /* 0 u64, 1 i64, 2 str, 3 bool */
        uint64_t u;
        int64_t i;
        const char *s;
    } v[F_COUNT];
    int n = 0;

#define U(F, x) v[n++] = (__typeof__(v[0])){F, 0, (x), 0, NULL}
#define I(F, x)                                                                                    \
    v[n++] = (__typeof__(v[0]))                                                                    \
    {                                                                                              \
        F, 1, 0, (x), NULL                                                                         \
    }
#define S(F, x)                                                                                    \
    v[n++] = (__typeof__(v[0]))                                                                    \
    {                                                                                              \
        F, 2, 0, 0, (x)                                                                            \
    }
    U(F_K, r->kind);
    U(F_RID, r->report_id);
    U(F_TS, r->ts_ns);
    U(F_ID, r->order_id);
    S(F_SYM, r->symbol);
    if (r->req_kind)
        U(F_RK, r->req_kind);
    if (r->reason)
        U(F_RSN, r->reason);
    if (r->status)
        U(F_ST, r->status);
    if (r->side)
        U(F_SIDE, r->side);
    if (r->type)
        U(F_TYPE, r->type);
    if (r->tif)
        U(F_TIF, r->tif);
    if (r->post_only)
        v[n++] = (__typeof__(v[0])){F_PO, 3, 1, 0, NULL};
    if (r->price)
        I(F_PX, r->price);
    if (r->qty)
        I(F_QTY, r->qty);
    if (r->filled_qty)
        I(F_FQ, r->filled_qty);
    if (r->maker_order_id)
        U(F_MID, r->maker_order_id);
    if (r->trade_price)
        I(F_TPX, r->trade_price);
    if (r->trade_qty)
        I(F_TQ, r->trade_qty);
    if (r->maker_qty)
        I(F_MQTY, r->maker_qty);
    if (r->maker_filled_qty)
        I(F_MFQ, r->maker_filled_qty);
    if (r->maker_status)
        U(F_MST, r->maker_status);
    if (r->stop_price)
        I(F_SPX, r->stop_price);
    if (r->expire_ns)
        U(F_EXP, r->expire_ns);
    if (r->account[0])
        S(F_ACCT, r->account);
    if (r->maker_account[0])
        S(F_MACCT, r->maker_account);
    if (r->client_order_id[0])
        S(F_COID, r->client_order_id);
#undef U
#undef I
#undef S
    int rc = msgpack_pack_map(pk, (size_t)n);
    for (int k = 0; k < n; k++) {
        switch (v[k].kind) {
        case 0:
            rc |= pack_u64_field(pk, v[k].f, v[k].u);
            break;
        case 1:
            rc |= pack_i64_field(pk, v[k].f, v[k].i);
            break;
        case 2:
            rc |= pack_str_field(pk, v[k].f, v[k].s);
            break;
        default:
            rc |= pack_bool_field(pk, v[k].f, true);
            break;
        }
    }
    return rc;
}

/* ---- the report encoder: msgpack written straight into the buffer -------- */

/*
 * op_codec_encode_reports is the matcher's hottest step after the engine
 * (bench book: through msgpack-c's packer, some 50 callback writes per
 * report, it ran at a fifth of the engine's rate). These writers put the
 * same bytes — msgpack-c's choice of the shortest form for every value,
 * checked against op_codec_encode_reports_msgpack by tests/unit/test_codec.c
 * — into room reserved once per call, with no check per byte.
 */

/* Why 640: a report map holds at most 24 fields, each a key of at most 6
 * bytes and a number of at most 9, plus four strings of at most 15, 32, 32
 * and 36 bytes with 2-byte headers: 24 * 15 + 4 * 38 = 512, rounded up. */
#define REPORT_MAX_BYTES 640

/* Writes the low `bytes` bytes of v, big-endian; returns the end. */
static inline unsigned char *w_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

/* msgpack_pack_uint64's encoding of v. */
static inline unsigned char *w_uint(unsigned char *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (unsigned char)v;
    } else if (v < 256) {
        *p++ = 0xcc;
        *p++ = (unsigned char)v;
    } else if (v < 65536) {
        *p++ = 0xcd;
        p = w_be(p, v, 2);
    } else if (v < (UINT64_C(1) << 32)) {
        *p++ = 0xce;
        p = w_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = w_be(p, v, 8);
    }
    return p;
}

/* msgpack_pack_int64's encoding of v: non-negative values as unsigned. */
static inline unsigned char *w_int(unsigned char *p, int64_t v)
{
    if (v >= 0)
        return w_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p++ = (unsigned char)(int8_t)v; /* negative fixint */
    } else if (v >= -128) {
        *p++ = 0xd0;
        *p++ = (unsigned char)(int8_t)v;
    } else if (v >= -32768) {
        *p++ = 0xd1;
        p = w_be(p, (uint64_t)v, 2);
    } else if (v >= INT64_C(-2147483648)) {
        *p++ = 0xd2;
        p = w_be(p, (uint64_t)v, 4);
    } else {
        *p++ = 0xd3;
        p = w_be(p, (uint64_t)v, 8);
    }
    return p;
}

/* A str of n bytes (n < 2^32; every string of a stream message is < 256). */
static inline unsigned char *w_str(unsigned char *p, const char *s, size_t n)
{
    if (n < 32) {
        *p++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *p++ = 0xd9;
        *p++ = (unsigned char)n;
    } else if (n < 65536) {
        *p++ = 0xda;
        p = w_be(p, n, 2);
    } else {
        *p++ = 0xdb;
        p = w_be(p, n, 4);
    }
    memcpy(p, s, n);
    return p + n;
}

/* Field f's key: a fixstr of its wire name. */
static inline unsigned char *w_key(unsigned char *p, enum field f)
{
    return w_str(p, field_names[f], strlen(field_names[f]));
}

/* A map or array header of n elements (kind 0x80 map, 0x90 array). */
static inline unsigned char *w_head(unsigned char *p, unsigned kind, size_t n)
{
    if (n < 16) {
        *p++ = (unsigned char)(kind | n);
    } else if (n < 65536) {
        *p++ = kind == 0x80 ? 0xde : 0xdc;
        p = w_be(p, n, 2);
    } else {
        *p++ = kind == 0x80 ? 0xdf : 0xdd;
        p = w_be(p, n, 4);
    }
    return p;
}

#define W_U(F, x)                                                                                  \
    do {                                                                                           \
        q = w_key(q, F);                                                                           \
        q = w_uint(q, (x));                                                                        \
        n++;                                                                                       \
    } while (0)
#define W_I(F, x)                                                                                  \
    do {                                                                                           \
        q = w_key(q, F);                                                                           \
        q = w_int(q, (x));                                                                         \
        n++;                                                                                       \
    } while (0)
#define W_S(F, x)                                                                                  \
    do {                                                                                           \
        q = w_key(q, F);                                                                           \
        q = w_str(q, (x), strnlen((x), sizeof(x) - 1));                                            \
        n++;                                                                                       \
    } while (0)

/* Writes report r's map (its non-zero fields, in the order of pack_report)
 * at p, which has REPORT_MAX_BYTES of room; returns the end. The fields go
 * after a 3-byte hole for the header, then move up when it is shorter. */
static unsigned char *w_report(unsigned char *p, const struct op_report *r)
{
    unsigned char *q = p + 3;
    size_t n = 0;
    W_U(F_K, r->kind);
    W_U(F_RID, r->report_id);
    W_U(F_TS, r->ts_ns);
    W_U(F_ID, r->order_id);
    W_S(F_SYM, r->symbol);
    if (r->req_kind)
        W_U(F_RK, r->req_kind);
    if (r->reason)
        W_U(F_RSN, r->reason);
    if (r->status)
        W_U(F_ST, r->status);
    if (r->side)
        W_U(F_SIDE, r->side);
    if (r->type)
        W_U(F_TYPE, r->type);
    if (r->tif)
        W_U(F_TIF, r->tif);
    if (r->post_only) {
        q = w_key(q, F_PO);
        *q++ = 0xc3;
        n++;
    }
    if (r->price)
        W_I(F_PX, r->price);
    if (r->qty)
        W_I(F_QTY, r->qty);
    if (r->filled_qty)
        W_I(F_FQ, r->filled_qty);
    if (r->maker_order_id)
        W_U(F_MID, r->maker_order_id);
    if (r->trade_price)
        W_I(F_TPX, r->trade_price);
    if (r->trade_qty)
        W_I(F_TQ, r->trade_qty);
    if (r->maker_qty)
        W_I(F_MQTY, r->maker_qty);
    if (r->maker_filled_qty)
        W_I(F_MFQ, r->maker_filled_qty);
    if (r->maker_status)
        W_U(F_MST, r->maker_status);
    if (r->stop_price)
        W_I(F_SPX, r->stop_price);
    if (r->expire_ns)
        W_U(F_EXP, r->expire_ns);
    if (r->account[0])
        W_S(F_ACCT, r->account);
    if (r->maker_account[0])
        W_S(F_MACCT, r->maker_account);
    if (r->client_order_id[0])
        W_S(F_COID, r->client_order_id);
    unsigned char head[3];
    size_t hl = (size_t)(w_head(head, 0x80, n) - head);
    memmove(p + hl, p + 3, (size_t)(q - (p + 3)));
    memcpy(p, head, hl);
    return q - (3 - hl);
}

/* Why 320: an order map holds at most 15 fields (keys of at most 4 bytes,
 * numbers of at most 9) and three strings of at most 15, 32 and 36 bytes
 * with 2-byte headers: 15 * 14 + 89 = 299, rounded up. */
#define ORDER_MAX_BYTES OP_CODEC_ORDER_ENCODED_MAX

int op_codec_encode_order(struct op_buf *out, const struct op_order_msg *m)
{
    bool coid = m->client_order_id[0] != '\0';
    size_t fields;
    switch (m->kind) {
    case OP_MSG_NEW:
        fields = 11 + (coid ? 1 : 0) + (m->stp ? 1 : 0) + (m->stop_price ? 1 : 0) +
                 (m->expire_ns ? 1 : 0);
        break;
    case OP_MSG_CANCEL:
    case OP_MSG_CANCEL_ALL:
    case OP_MSG_TICK:
        fields = 5;
        break;
    case OP_MSG_CANCEL_ALL_AFTER:
        fields = 6;
        break;
    case OP_MSG_AMEND:
        fields = 5 + (m->qty ? 1 : 0) + (m->price ? 1 : 0);
        break;
    default:
        return -1;
    }
    if (op_buf_reserve(out, ORDER_MAX_BYTES) != 0)
        return -1;
    unsigned char *q = (unsigned char *)out->data + out->len;
    size_t n = 0; /* counted by the W_ macros; the header says `fields` */
    q = w_head(q, 0x80, fields);
    W_U(F_K, m->kind);
    W_U(F_ID, m->order_id);
    W_U(F_TS, m->ts_ns);
    W_S(F_SYM, m->symbol);
    W_S(F_ACCT, m->account);
    if (m->kind == OP_MSG_NEW) {
        W_U(F_SIDE, m->side);
        W_U(F_TYPE, m->type);
        W_U(F_TIF, m->tif);
        q = w_key(q, F_PO);
        *q++ = m->post_only ? 0xc3 : 0xc2;
        n++;
        W_I(F_PX, m->price);
        if (coid)
            W_S(F_COID, m->client_order_id);
        if (m->stp)
            W_U(F_STP, m->stp);
        if (m->stop_price)
            W_I(F_SPX, m->stop_price);
        if (m->expire_ns)
            W_U(F_EXP, m->expire_ns);
        W_I(F_QTY, m->qty);
    } else if (m->kind == OP_MSG_AMEND) {
        if (m->price)
            W_I(F_PX, m->price);
        if (m->qty)
            W_I(F_QTY, m->qty);
    } else if (m->kind == OP_MSG_CANCEL_ALL_AFTER) {
        W_U(F_TO, m->timeout_ms);
    }
    (void)n;
    out->len = (size_t)(q - (unsigned char *)out->data);
    return 0;
}

#undef W_U
#undef W_I
#undef W_S

int op_codec_encode_reports(struct op_buf *out, const struct op_report *r, size_t n)
{
    if (n > OP_CODEC_REPORTS_MAX)
        return -1;
    if (op_buf_reserve(out, 5 + n * REPORT_MAX_BYTES) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    p = w_head(p, 0x90, n);
    for (size_t i = 0; i < n; i++)
        p = w_report(p, &r[i]);
    out->len = (size_t)(p - (unsigned char *)out->data);
    return 0;
}

int op_codec_encode_reports_msgpack(struct op_buf *out, const struct op_report *r, size_t n)
{
    msgpack_packer pk;
    size_t start = out->len;

    if (n > OP_CODEC_REPORTS_MAX)
        return -1;
    msgpack_packer_init(&pk, out, buf_write);
    int rc = msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= pack_report(&pk, &r[i]);
    if (rc != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* ---- raw msgpack for the engine's snapshots --------------------------------- */

int op_mp_check_all(const void *data, size_t len, int max_depth)
{
    size_t off = 0;
    const char *why = NULL;
    return mp_check_depth(data, len, &off, 0, max_depth, &why) == 0 && off == len ? 0 : -1;
}

/* Room for one value's header and fixed-size payload (a uint64: 9 bytes). */
#define MP_HEAD_MAX 9

int op_mp_put_array(struct op_buf *out, uint32_t n)
{
    if (op_buf_reserve(out, MP_HEAD_MAX) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    out->len += (size_t)(w_head(p, 0x90, n) - p);
    return 0;
}

int op_mp_put_uint(struct op_buf *out, uint64_t v)
{
    if (op_buf_reserve(out, MP_HEAD_MAX) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    out->len += (size_t)(w_uint(p, v) - p);
    return 0;
}

int op_mp_put_int(struct op_buf *out, int64_t v)
{
    if (op_buf_reserve(out, MP_HEAD_MAX) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    out->len += (size_t)(w_int(p, v) - p);
    return 0;
}

int op_mp_put_bool(struct op_buf *out, bool v)
{
    unsigned char b = v ? 0xc3 : 0xc2;
    return op_buf_append(out, &b, 1);
}

int op_mp_put_str(struct op_buf *out, const char *s, size_t n)
{
    if (n > UINT32_MAX || op_buf_reserve(out, n + 5) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len;
    out->len += (size_t)(w_str(p, s, n) - p);
    return 0;
}

int op_mp_put_bin(struct op_buf *out, const void *data, size_t n)
{
    if (n > UINT32_MAX || op_buf_reserve(out, n + 5) != 0)
        return -1;
    unsigned char *p = (unsigned char *)out->data + out->len, *q = p;
    if (n < 256) {
        *q++ = 0xc4;
        *q++ = (unsigned char)n;
    } else if (n < 65536) {
        *q++ = 0xc5;
        q = w_be(q, n, 2);
    } else {
        *q++ = 0xc6;
        q = w_be(q, n, 4);
    }
    memcpy(q, data, n);
    out->len += (size_t)(q - p) + n;
    return 0;
}

/* The next value's head into v without moving r (r->off < r->len checked). */
static int mp_peek(const struct op_mp_reader *r, struct mp_val *v, size_t *next)
{
    if (r->off >= r->len)
        return -1;
    *next = r->off;
    rd_val(r->p, r->len, next, v);
    return 0;
}

int op_mp_get_array(struct op_mp_reader *r, uint32_t *n)
{
    struct mp_val v;
    size_t next;
    if (mp_peek(r, &v, &next) != 0 || v.cls != MP_ARRAY)
        return -1;
    r->off = next;
    *n = (uint32_t)v.u;
    return 0;
}

int op_mp_get_uint(struct op_mp_reader *r, uint64_t max, uint64_t *out)
{
    struct mp_val v;
    size_t next;
    if (mp_peek(r, &v, &next) != 0 || v.cls != MP_UINT || v.u > max)
        return -1;
    r->off = next;
    *out = v.u;
    return 0;
}

int op_mp_get_bool(struct op_mp_reader *r, bool *out)
{
    struct mp_val v;
    size_t next;
    if (mp_peek(r, &v, &next) != 0 || v.cls != MP_BOOL)
        return -1;
    r->off = next;
    *out = v.u != 0;
    return 0;
}

int op_mp_get_str(struct op_mp_reader *r, const char **s, size_t *n)
{
    struct mp_val v;
    size_t next;
    if (mp_peek(r, &v, &next) != 0 || v.cls != MP_STR)
        return -1;
    r->off = next;
    *s = v.s;
    *n = (size_t)v.u;
    return 0;
}

int op_mp_get_bin(struct op_mp_reader *r, const void **data, size_t *n)
{
    if (r->off >= r->len)
        return -1;
    unsigned char b = r->p[r->off];
    int w = b == 0xc4 ? 1 : b == 0xc5 ? 2 : b == 0xc6 ? 4 : 0;
    if (w == 0)
        return -1;
    uint64_t len = rd_be(r->p + r->off + 1, w); /* within the checked bytes */
    *data = r->p + r->off + 1 + w;
    *n = (size_t)len;
    r->off += 1 + (size_t)w + (size_t)len;
    return 0;
}
