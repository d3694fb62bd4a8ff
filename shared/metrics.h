/* Prometheus metrics: lock-free counters and histograms, rendered as text format. */
#ifndef OP_METRICS_H
#define OP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "shared/buf.h"

/* Upper bounds of histogram buckets, in microseconds; +Inf is implicit.
 * Why these: 50 µs resolves a pipelined Redis round trip on loopback, 10 s
 * covers a timeout; 14 buckets keep a scrape small. */
#define OP_HIST_BUCKETS 14
extern const uint64_t op_hist_bounds_us[OP_HIST_BUCKETS];

/* A latency (or size) histogram; all fields atomic, zero-initialise it. */
struct op_hist {
    _Atomic uint64_t buckets[OP_HIST_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum; /* in the observed unit */
};

/* Records one observation of v (µs for latencies). Thread-safe. */
void op_hist_observe(struct op_hist *h, uint64_t v);

/* A size histogram uses these bounds instead (batch sizes: 1 … 4096). */
#define OP_SIZE_BUCKETS 14
extern const uint64_t op_size_bounds[OP_SIZE_BUCKETS];
void op_hist_observe_size(struct op_hist *h, uint64_t v);

/* Appends a metric family header (# HELP / # TYPE). */
int op_metrics_header(struct op_buf *b, const char *name, const char *type, const char *help);

/* Appends one sample line: name{labels} value. labels may be "" or NULL. */
int op_metrics_sample(struct op_buf *b, const char *name, const char *labels, uint64_t value);
int op_metrics_sample_f(struct op_buf *b, const char *name, const char *labels, double value);

/* Appends the _bucket/_sum/_count lines of h. scale converts the stored unit
 * to the exported one (1e-6 for µs -> seconds, 1 for sizes); sizes=1 selects
 * the size bounds. */
int op_metrics_hist(struct op_buf *b, const char *name, const char *labels, const struct op_hist *h,
                    double scale, int sizes);

/* A whole family with one unlabelled sample: the header (# HELP help,
 * # TYPE counter or gauge) and `name v`. Return 0, or -1 when b could not
 * grow (b then holds a prefix of the text). */
int op_metrics_counter(struct op_buf *b, const char *name, const char *help, uint64_t v);
int op_metrics_gauge(struct op_buf *b, const char *name, const char *help, uint64_t v);

/* A whole histogram family without labels: header, buckets, _sum, _count
 * (scale and sizes as op_metrics_hist). 0 or -1 as above. */
int op_metrics_histogram(struct op_buf *b, const char *name, const char *help,
                         const struct op_hist *h, double scale, int sizes);

#endif
