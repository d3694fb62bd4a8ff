/* Prometheus metrics: lock-free counters and histograms, rendered as text format. */
#include "shared/metrics.h"

#include <stdio.h>

const uint64_t op_hist_bounds_us[OP_HIST_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 10000000,
};

const uint64_t op_size_bounds[OP_SIZE_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384,
};

static void observe(struct op_hist *h, const uint64_t *bounds, uint64_t v)
{
    int i = 0;
    while (i < OP_HIST_BUCKETS && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void op_hist_observe(struct op_hist *h, uint64_t v)
{
    observe(h, op_hist_bounds_us, v);
}

void op_hist_observe_size(struct op_hist *h, uint64_t v)
{
    observe(h, op_size_bounds, v);
}

int op_metrics_header(struct op_buf *b, const char *name, const char *type, const char *help)
{
    return op_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int op_metrics_sample(struct op_buf *b, const char *name, const char *labels, uint64_t value)
{
    if (labels && *labels)
        return op_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    return op_buf_printf(b, "%s %llu\n", name, (unsigned long long)value);
}

int op_metrics_sample_f(struct op_buf *b, const char *name, const char *labels, double value)
{
    if (labels && *labels)
        return op_buf_printf(b, "%s{%s} %.9g\n", name, labels, value);
    return op_buf_printf(b, "%s %.9g\n", name, value);
}

int op_metrics_hist(struct op_buf *b, const char *name, const char *labels, const struct op_hist *h,
                    double scale, int sizes)
{
    const uint64_t *bounds = sizes ? op_size_bounds : op_hist_bounds_us;
    const char *sep = (labels && *labels) ? "," : "";
    const char *lb = labels ? labels : "";
    uint64_t cum = 0;
    int rc = 0;

    for (int i = 0; i <= OP_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < OP_HIST_BUCKETS)
            rc |= op_buf_printf(b, "%s_bucket{%s%sle=\"%.9g\"} %llu\n", name, lb, sep,
                                (double)bounds[i] * scale, (unsigned long long)cum);
        else
            rc |= op_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lb, sep,
                                (unsigned long long)cum);
    }
    char full[128];
    snprintf(full, sizeof(full), "%s_sum", name);
    rc |= op_metrics_sample_f(b, full, lb, (double)atomic_load(&h->sum) * scale);
    snprintf(full, sizeof(full), "%s_count", name);
    rc |= op_metrics_sample(b, full, lb, atomic_load(&h->count));
    return rc;
}

/* The header and single sample of a family of the given type. */
static int family(struct op_buf *b, const char *name, const char *type, const char *help,
                  uint64_t v)
{
    int rc = op_metrics_header(b, name, type, help);
    return rc | op_metrics_sample(b, name, NULL, v);
}

int op_metrics_counter(struct op_buf *b, const char *name, const char *help, uint64_t v)
{
    return family(b, name, "counter", help, v);
}

int op_metrics_gauge(struct op_buf *b, const char *name, const char *help, uint64_t v)
{
    return family(b, name, "gauge", help, v);
}

int op_metrics_histogram(struct op_buf *b, const char *name, const char *help,
                         const struct op_hist *h, double scale, int sizes)
{
    int rc = op_metrics_header(b, name, "histogram", help);
    return rc | op_metrics_hist(b, name, NULL, h, scale, sizes);
}
