/* orderpipe-tail: prints stream entries as JSON lines, decoding the msgpack (like kcat). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/codec.h"
#include "shared/config.h"
#include "shared/decimal.h"
#include "shared/log.h"
#include "shared/redis.h"
#include "shared/symbols.h"

/*
 * usage: orderpipe-tail [-f] [-n COUNT] [-s START] [--raw] STREAM...
 *
 *   orderpipe-tail 'orders:{0}'             every entry of the stream, oldest first
 *   orderpipe-tail -n 10 -s - 'fills:{2}'   the first 10
 *   orderpipe-tail -f 'orders:{0}' 'fills:{0}'   follow new entries (XREAD BLOCK), Ctrl-C stops
 *
 * One JSON object per line: {"stream":…,"id":…,"type"/"sym"/"kind":…,"m":…}
 * — for orders:{S} an array of the entry's inputs (an element that does not
 * decode shows as {"error":…,"bytes":N}), for fills:{S} of its reports —
 * with every msgpack field by its wire name (schemas/messages.md) plus
 * readable names for enums and decimal prices ("px_text", "spx_text") using
 * SYMBOLS_FILE.
 * An entry that does not decode is printed with "error" and its size; the
 * tool never stops on one. It only reads (XRANGE/XREAD): it never joins a
 * consumer group, so it cannot disturb the pipeline.
 */

static struct op_symtab syms;
static struct op_span spans[OP_CODEC_ORDERS_MAX];

/* Appends s as a JSON string. */
static void put_str(struct op_buf *b, const char *s, size_t n)
{
    op_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            op_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            op_buf_printf(b, "\\u%04x", c);
        else
            op_buf_append(b, (const char *)&c, 1);
    }
    op_buf_append(b, "\"", 1);
}

static void put_price(struct op_buf *b, const char *key, const char *symbol, int64_t ticks)
{
    const struct op_symbol *s = op_symtab_find(&syms, symbol, strlen(symbol));
    char txt[64];
    if (s && op_decimal_format(ticks, s->tick, txt, sizeof(txt)) > 0)
        op_buf_printf(b, ",\"%s\":\"%s\"", key, txt);
}

static void put_order(struct op_buf *b, const struct op_order_msg *m)
{
    op_buf_printf(b,
                  "{\"k\":\"%s\",\"id\":\"%llu\",\"ts\":%llu,\"sym\":", op_msg_kind_name(m->kind),
                  (unsigned long long)m->order_id, (unsigned long long)m->ts_ns);
    put_str(b, m->symbol, strlen(m->symbol));
    op_buf_append(b, ",\"acct\":", 8);
    put_str(b, m->account, strlen(m->account));
    if (m->kind == OP_MSG_NEW) {
        op_buf_printf(b, ",\"side\":\"%s\",\"type\":\"%s\",\"tif\":\"%s\",\"po\":%s,\"px\":%lld",
                      op_side_name(m->side), op_type_name(m->type), op_tif_name(m->tif),
                      m->post_only ? "true" : "false", (long long)m->price);
        if (m->price)
            put_price(b, "px_text", m->symbol, m->price);
        if (m->client_order_id[0]) {
            op_buf_append(b, ",\"coid\":", 8);
            put_str(b, m->client_order_id, strlen(m->client_order_id));
        }
        if (m->stp)
            op_buf_printf(b, ",\"stp\":\"%s\"", op_stp_name(m->stp));
        if (m->stop_price) {
            op_buf_printf(b, ",\"spx\":%lld", (long long)m->stop_price);
            put_price(b, "spx_text", m->symbol, m->stop_price);
        }
        if (m->expire_ns)
            op_buf_printf(b, ",\"exp\":%llu", (unsigned long long)m->expire_ns);
        op_buf_printf(b, ",\"qty\":%lld", (long long)m->qty);
    } else if (m->kind == OP_MSG_AMEND) { /* a replace: what it changes, 0 = unchanged */
        if (m->price) {
            op_buf_printf(b, ",\"px\":%lld", (long long)m->price);
            put_price(b, "px_text", m->symbol, m->price);
        }
        if (m->qty)
            op_buf_printf(b, ",\"qty\":%lld", (long long)m->qty);
    } else if (m->kind == OP_MSG_CANCEL_ALL_AFTER) { /* the dead-man timeout, 0 disarms */
        op_buf_printf(b, ",\"to\":%u", (unsigned)m->timeout_ms);
    }
    op_buf_append(b, "}", 1);
}

static void put_report(struct op_buf *b, const struct op_report *r)
{
    op_buf_printf(b, "{\"k\":\"%s\",\"rid\":\"%llu\",\"ts\":%llu,\"id\":\"%llu\",\"sym\":",
                  op_report_kind_name(r->kind), (unsigned long long)r->report_id,
                  (unsigned long long)r->ts_ns, (unsigned long long)r->order_id);
    put_str(b, r->symbol, strlen(r->symbol));
    op_buf_append(b, ",\"acct\":", 8);
    put_str(b, r->account, strlen(r->account));
    if (r->req_kind)
        op_buf_printf(b, ",\"rk\":\"%s\"", op_msg_kind_name(r->req_kind));
    if (r->side)
        op_buf_printf(b, ",\"side\":\"%s\",\"type\":\"%s\",\"tif\":\"%s\"", op_side_name(r->side),
                      op_type_name(r->type), op_tif_name(r->tif));
    if (r->price)
        put_price(b, "px_text", r->symbol, r->price);
    if (r->stop_price) {
        op_buf_printf(b, ",\"spx\":%lld", (long long)r->stop_price);
        put_price(b, "spx_text", r->symbol, r->stop_price);
    }
    if (r->expire_ns)
        op_buf_printf(b, ",\"exp\":%llu", (unsigned long long)r->expire_ns);
    op_buf_printf(b, ",\"qty\":%lld,\"fq\":%lld,\"st\":\"%s\"", (long long)r->qty,
                  (long long)r->filled_qty, op_status_name(r->status));
    if (r->reason)
        op_buf_printf(b, ",\"rsn\":\"%s\"", op_reason_name(r->reason));
    if (r->kind == OP_REPORT_TRADE) {
        op_buf_printf(b, ",\"mid\":\"%llu\",\"macct\":", (unsigned long long)r->maker_order_id);
        put_str(b, r->maker_account, strlen(r->maker_account));
        op_buf_printf(b, ",\"tq\":%lld,\"tpx\":%lld", (long long)r->trade_qty,
                      (long long)r->trade_price);
        put_price(b, "tpx_text", r->symbol, r->trade_price);
        op_buf_printf(b, ",\"mfq\":%lld,\"mqty\":%lld,\"mst\":\"%s\"",
                      (long long)r->maker_filled_qty, (long long)r->maker_qty,
                      op_status_name(r->maker_status));
    }
    if (r->client_order_id[0]) {
        op_buf_append(b, ",\"coid\":", 8);
        put_str(b, r->client_order_id, strlen(r->client_order_id));
    }
    op_buf_append(b, "}", 1);
}

/* Prints one entry ([id, [field, value, …]]) of stream as a JSON line. */
static void print_entry(struct op_codec *c, struct op_buf *b, const char *stream,
                        struct redisReply *e, struct op_report *reps)
{
    struct redisReply *fields = op_reply_at(e, 1);
    const char *id = op_reply_str(op_reply_at(e, 0), NULL);
    op_buf_reset(b);
    op_buf_append(b, "{\"stream\":", 10);
    put_str(b, stream, strlen(stream));
    op_buf_printf(b, ",\"id\":\"%s\"", id ? id : "?");
    if (!fields || op_reply_count(fields) == 0) {
        op_buf_append(b, ",\"deleted\":true}\n", 17);
        fwrite(b->data, 1, b->len, stdout);
        return;
    }
    for (size_t i = 0; i + 1 < op_reply_count(fields); i += 2) {
        size_t klen, vlen;
        const char *k = op_reply_str(op_reply_at(fields, i), &klen);
        const char *v = op_reply_str(op_reply_at(fields, i + 1), &vlen);
        if (!k || !v)
            continue;
        op_buf_append(b, ",", 1);
        put_str(b, k, klen);
        op_buf_append(b, ":", 1);
        if (klen != 1 || k[0] != 'm') {
            put_str(b, v, vlen);
            continue;
        }
        struct op_order_msg m;
        size_t n;
        long nin;
        unsigned char h = vlen ? (unsigned char)v[0] : 0;
        if (strncmp(stream, "orders:", 7) == 0 && ((h & 0xf0) == 0x90 || h == 0xdc || h == 0xdd) &&
            (nin = op_codec_split_orders(c, v, vlen, spans, OP_CODEC_ORDERS_MAX)) > 0) {
            /* an entry of a writer round: an array of inputs, each on its own */
            op_buf_append(b, "[", 1);
            for (long j = 0; j < nin; j++) {
                if (j)
                    op_buf_append(b, ",", 1);
                if (op_codec_decode_order(c, v + spans[j].off, spans[j].len, &m) == 0)
                    put_order(b, &m);
                else
                    op_buf_printf(b, "{\"error\":\"%s\",\"bytes\":%zu}", op_codec_error(c),
                                  spans[j].len);
            }
            op_buf_append(b, "]", 1);
        } else if (strncmp(stream, "orders:", 7) == 0 &&
                   op_codec_decode_order(c, v, vlen, &m) == 0) {
            put_order(b, &m); /* an entry of one input in the form before group commit */
        } else if (strncmp(stream, "fills:", 6) == 0 &&
                   op_codec_decode_reports(c, v, vlen, reps, OP_CODEC_REPORTS_MAX, &n) == 0) {
            op_buf_append(b, "[", 1);
            for (size_t r = 0; r < n; r++) {
                if (r)
                    op_buf_append(b, ",", 1);
                put_report(b, &reps[r]);
            }
            op_buf_append(b, "]", 1);
        } else {
            op_buf_printf(b, "null,\"error\":\"%s\",\"m_bytes\":%zu", op_codec_error(c), vlen);
        }
    }
    op_buf_append(b, "}\n", 2);
    fwrite(b->data, 1, b->len, stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: orderpipe-tail [-f] [-n COUNT] [-s START_ID] STREAM...\n"
                    "  prints entries of orders:{S} / fills:{S} streams as JSON lines\n"
                    "  -f        follow: wait for new entries (Ctrl-C stops)\n"
                    "  -n COUNT  at most COUNT entries per stream (default: all)\n"
                    "  -s ID     start at this id (default '-', the oldest; with -f, '$')\n"
                    "  reads REDIS_URL, SYMBOLS_FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct op_config cfg;
    int follow = 0, opt;
    long long count = -1;
    const char *start = NULL;
    char err[300];

    while ((opt = getopt(argc, argv, "fn:s:h")) != -1) {
        switch (opt) {
        case 'f':
            follow = 1;
            break;
        case 'n':
            count = strtoll(optarg, NULL, 10);
            if (count < 1)
                usage();
            break;
        case 's':
            start = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    op_config_load_or_exit(&cfg, "orderpipe-tail");
    if (op_symtab_load(&syms, cfg.symbols_file, err, sizeof(err)) != 0)
        op_symtab_defaults(&syms);

    struct op_redis r;
    if (op_redis_init(&r, cfg.redis_url, 60000) != 0 || op_redis_connect(&r) != 0) {
        fprintf(stderr, "orderpipe-tail: %s (REDIS_URL)\n", r.errstr);
        return 1;
    }
    struct op_codec *c = op_codec_new();
    struct op_report *reps = calloc(OP_CODEC_REPORTS_MAX, sizeof(*reps));
    struct op_buf b;
    op_buf_init(&b);
    int rc = 0;
    for (int s = optind; s < argc && !follow; s++) {
        /* XRANGE in pages of 1000 so a long stream does not come in one reply */
        char from[64];
        snprintf(from, sizeof(from), "%s", start ? start : "-");
        long long left = count;
        for (;;) {
            long long page = (left < 0 || left > 1000) ? 1000 : left;
            struct redisReply *rep =
                op_redis_cmdf(&r, "XRANGE %s %s + COUNT %lld", argv[s], from, page);
            if (!rep || op_reply_type(rep) == OP_REPLY_ERROR) {
                fprintf(stderr, "orderpipe-tail: cannot read '%s': %s\n", argv[s],
                        rep ? op_reply_str(rep, NULL) : r.errstr);
                op_reply_free(rep);
                rc = 1;
                break;
            }
            size_t n = op_reply_count(rep);
            for (size_t i = 0; i < n; i++)
                print_entry(c, &b, argv[s], op_reply_at(rep, i), reps);
            if (n > 0) /* next page starts after the last id: "(" makes it exclusive */
                snprintf(from, sizeof(from), "(%s",
                         op_reply_str(op_reply_at(op_reply_at(rep, n - 1), 0), NULL));
            op_reply_free(rep);
            if (left > 0)
                left -= (long long)n;
            if ((long long)n < page || left == 0)
                break;
        }
    }
    if (follow) {
        int ns = argc - optind;
        char(*ids)[64] = calloc((size_t)ns, sizeof(*ids));
        for (int i = 0; i < ns; i++)
            snprintf(ids[i], sizeof(ids[i]), "%s", start ? start : "$");
        for (;;) {
            const char *args[4 + 2 * 64];
            if (ns > 64)
                ns = 64;
            int a = 0;
            args[a++] = "XREAD";
            args[a++] = "BLOCK";
            args[a++] = "30000";
            args[a++] = "STREAMS";
            for (int i = 0; i < ns; i++)
                args[a++] = argv[optind + i];
            for (int i = 0; i < ns; i++)
                args[a++] = ids[i];
            struct redisReply *rep = op_redis_cmd(&r, a, args, NULL);
            if (!rep) {
                fprintf(stderr, "orderpipe-tail: %s\n", r.errstr);
                rc = 1;
                break;
            }
            for (size_t k = 0; k < op_reply_count(rep); k++) {
                struct redisReply *st = op_reply_at(rep, k);
                const char *name = op_reply_str(op_reply_at(st, 0), NULL);
                struct redisReply *entries = op_reply_at(st, 1);
                for (size_t i = 0; i < op_reply_count(entries); i++) {
                    print_entry(c, &b, name, op_reply_at(entries, i), reps);
                    for (int j = 0; j < ns; j++)
                        if (strcmp(argv[optind + j], name) == 0)
                            snprintf(ids[j], sizeof(ids[j]), "%s",
                                     op_reply_str(op_reply_at(op_reply_at(entries, i), 0), NULL));
                }
            }
            op_reply_free(rep);
            fflush(stdout);
        }
        free(ids);
    }
    op_buf_release(&b);
    free(reps);
    op_codec_free(c);
    op_redis_release(&r);
    op_symtab_release(&syms);
    return rc;
}
