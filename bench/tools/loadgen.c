/* loadgen: sends realistic orders to ingest at a target rate and reports what was accepted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * usage: loadgen --port P [--host 127.0.0.1] --rate ORDERS_PER_S --duration S
 *                [--batch N] [--conns C] [--csv FILE] [--seed X] [--symbols AAPL,MSFT,…]
 *                [--drift 0|1]
 *
 * One thread, epoll, C keep-alive HTTP/1.1 connections. A request carries
 * --batch orders (POST /v1/orders/batch; --batch 1 uses POST /v1/orders).
 * Requests are released on a fixed schedule (rate / batch per second) to
 * whichever connection is idle; when every connection is busy the schedule
 * falls behind and the shortfall shows as a lower sent rate (the generator
 * never hides that the target was missed).
 *
 * Orders: both dev accounts, limit orders placed around a slowly moving mid
 * so that about half of them cross and trade, some IOC, some market. With
 * --drift 0 the mid stays put, so every resting level keeps being hit and
 * the books stay bounded without cancels (what a soak needs: a drifting mid
 * leaves orders behind that nobody cancels, and the books grow for good). Every
 * second a progress line goes to stderr and a CSV row to --csv:
 *   t_s,sent_orders,accepted_orders,rejected_orders,http_429,http_5xx,errors,inflight
 * (per-second counts). The final line on stdout is a summary:
 *   loadgen: sent N accepted A rejected R 429 X 5xx Y errors E seconds S rate A/S
 */

#define MAX_CONNS 1024
#define RESP_MAX ((size_t)256 * 1024)

struct conn {
    int fd;
    int busy;   /* a request is in flight */
    int orders; /* orders in the in-flight request */
    char *req;  /* the request being written */
    size_t req_len, req_off;
    char resp[RESP_MAX];
    size_t resp_len;
};

static struct {
    const char *host;
    int port, batch, conns, duration;
    double rate;
    const char *csv;
    unsigned seed;
    const char *symbols[16];
    int nsymbols;
    int drift; /* 1: the mid price wanders (default); 0: fixed, so resting orders keep being hit */
} opt = {"127.0.0.1", 0, 100, 64, 60, 10000, NULL, 1, {"AAPL", "MSFT", "GOOG", "AMZN", "TSLA"},
         5,           1};

static struct {
    uint64_t sent, accepted, rejected, s429, s5xx, errors;
} tot, sec;

static volatile sig_atomic_t stop;
static int64_t mid[16]; /* per symbol, cents */
static uint64_t rng;

static uint64_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one random order's JSON to out; returns its length. */
static int gen_order(char *out, size_t size)
{
    int s = (int)(next_rand() % (uint64_t)opt.nsymbols);
    int buy = (int)(next_rand() & 1);
    if (opt.drift && next_rand() % 64 == 0)
        mid[s] += (next_rand() & 1) ? 1 : -1;
    if (mid[s] < 1000)
        mid[s] = 1000;
    int qty = 1 + (int)(next_rand() % 100);
    uint64_t r = next_rand() % 100;
    if (r < 3)
        return snprintf(out, size,
                        "{\"symbol\":\"%s\",\"side\":\"%s\",\"type\":\"market\",\"qty\":%d}",
                        opt.symbols[s], buy ? "buy" : "sell", qty);
    /* within +-5 cents of mid, biased to cross half of the time */
    int64_t off = (int64_t)(next_rand() % 6);
    int64_t px = buy ? mid[s] - 2 + off : mid[s] + 2 - off;
    return snprintf(
        out, size,
        "{\"symbol\":\"%s\",\"side\":\"%s\",\"type\":\"limit\",\"price\":\"%lld.%02lld\","
        "\"qty\":%d%s}",
        opt.symbols[s], buy ? "buy" : "sell", (long long)(px / 100), (long long)(px % 100), qty,
        r < 10 ? ",\"tif\":\"IOC\"" : "");
}

/* Builds the next request for c. */
static void build_request(struct conn *c, const char *key)
{
    static char body[1 << 20];
    size_t len = 0;
    if (opt.batch == 1) {
        len = (size_t)gen_order(body, sizeof(body));
    } else {
        len += (size_t)snprintf(body + len, sizeof(body) - len, "{\"orders\":[");
        for (int i = 0; i < opt.batch; i++) {
            if (i)
                body[len++] = ',';
            len += (size_t)gen_order(body + len, sizeof(body) - len);
        }
        len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
    }
    free(c->req);
    c->req = malloc(len + 512);
    c->req_len =
        (size_t)snprintf(c->req, len + 512,
                         "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                         opt.batch == 1 ? "/v1/orders" : "/v1/orders/batch", opt.host, key, len);
    memcpy(c->req + c->req_len, body, len);
    c->req_len += len;
    c->req_off = 0;
    c->orders = opt.batch;
    c->resp_len = 0;
}

static int connect_one(struct conn *c, int ep)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, opt.host, &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "loadgen: cannot connect to %s:%d: %s\n", opt.host, opt.port,
                strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

/* Counts occurrences of needle in hay[0..n). */
static uint64_t count(const char *hay, size_t n, const char *needle)
{
    uint64_t k = 0;
    size_t m = strlen(needle);
    for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), needle, m)) != NULL; p += m)
        k++;
    return k;
}

/* Parses a complete response in c->resp, if there is one; returns 1 when done. */
static int take_response(struct conn *c)
{
    c->resp[c->resp_len < RESP_MAX ? c->resp_len : RESP_MAX - 1] = '\0';
    char *hdr_end = strstr(c->resp, "\r\n\r\n");
    if (!hdr_end)
        return 0;
    const char *cl = strcasestr(c->resp, "Content-Length:");
    size_t body_len = cl && cl < hdr_end ? strtoul(cl + 15, NULL, 10) : 0;
    size_t total = (size_t)(hdr_end + 4 - c->resp) + body_len;
    if (c->resp_len < total)
        return 0;
    int status = (int)strtol(c->resp + 9, NULL, 10);
    const char *body = hdr_end + 4;
    if (status == 202 || status == 200) {
        uint64_t ok = opt.batch == 1 ? 1 : count(body, body_len, "\"QUEUED\"");
        sec.accepted += ok;
        sec.rejected += (uint64_t)c->orders - ok;
    } else if (status == 429) {
        sec.s429 += (uint64_t)c->orders;
    } else if (status >= 500) {
        sec.s5xx += (uint64_t)c->orders;
    } else {
        sec.rejected += (uint64_t)c->orders;
    }
    c->busy = 0;
    c->resp_len = 0;
    return 1;
}

static void flush_write(struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n <= 0)
            return;
        c->req_off += (size_t)n;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--host"))
            opt.host = v;
        else if (!strcmp(k, "--port"))
            opt.port = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(k, "--duration"))
            opt.duration = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--batch"))
            opt.batch = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--conns"))
            opt.conns = (int)strtol(v, NULL, 10);
        else if (!strcmp(k, "--csv"))
            opt.csv = v;
        else if (!strcmp(k, "--drift"))
            opt.drift = strtol(v, NULL, 10) != 0;
        else if (!strcmp(k, "--seed"))
            opt.seed = (unsigned)strtol(v, NULL, 10);
        else if (!strcmp(k, "--symbols")) {
            char *s = argv[i + 1]; /* tokenised in place: argv is ours to modify */
            opt.nsymbols = 0;
            for (char *t = strtok(s, ","); t && opt.nsymbols < 16; t = strtok(NULL, ","))
                opt.symbols[opt.nsymbols++] = t;
        } else {
            fprintf(stderr, "loadgen: unknown option '%s'\n", k);
            return 2;
        }
    }
    if (opt.port <= 0 || opt.rate <= 0 || opt.batch < 1 || opt.batch > 1000 || opt.conns < 1 ||
        opt.conns > MAX_CONNS || opt.duration < 1) {
        fprintf(stderr,
                "usage: loadgen --port P --rate ORDERS_PER_S --duration S [--batch 1..1000] "
                "[--conns 1..%d] [--csv FILE] [--seed X] [--symbols A,B]\n",
                MAX_CONNS);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    rng = 0x9e3779b97f4a7c15ull ^ opt.seed;
    for (int s = 0; s < 16; s++)
        mid[s] = 10000 + s * 1000;
    FILE *csv = opt.csv ? fopen(opt.csv, "w") : NULL;
    if (csv)
        fprintf(
            csv,
            "t_s,sent_orders,accepted_orders,rejected_orders,http_429,http_5xx,errors,inflight\n");

    int ep = epoll_create1(0);
    struct conn *conns = calloc((size_t)opt.conns, sizeof(*conns));
    for (int i = 0; i < opt.conns; i++)
        if (connect_one(&conns[i], ep) != 0)
            return 1;

    const char *keys[2] = {"dev-key-alice", "dev-key-bob"};
    double t0 = now_s(), next_tick = t0 + 1.0;
    double per_req = (double)opt.batch / opt.rate; /* seconds between requests */
    double due = t0;
    int tick = 0;
    struct epoll_event evs[256];
    while (!stop) {
        double now = now_s();
        if (now - t0 >= opt.duration)
            break;
        /* release every request that is due to an idle connection */
        for (int i = 0; i < opt.conns && due <= now; i++) {
            struct conn *c = &conns[i];
            if (c->busy || c->fd < 0)
                continue;
            build_request(c, keys[next_rand() & 1]);
            c->busy = 1;
            sec.sent += (uint64_t)opt.batch;
            flush_write(c);
            due += per_req;
        }
        if (due < now - 1.0) /* more than a second behind: do not burst to catch up */
            due = now - 1.0;
        int n = epoll_wait(ep, evs, 256, 1);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (evs[k].events & EPOLLOUT)
                flush_write(c);
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = read(c->fd, c->resp + c->resp_len, RESP_MAX - 1 - c->resp_len);
                    if (r > 0) {
                        c->resp_len += (size_t)r;
                        while (c->busy && take_response(c)) {
                        }
                        continue;
                    }
                    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                        if (c->busy)
                            sec.errors += (uint64_t)c->orders;
                        close(c->fd);
                        c->busy = 0;
                        c->resp_len = 0;
                        if (connect_one(c, ep) != 0)
                            c->fd = -1;
                    }
                    break;
                }
            }
        }
        if (now_s() >= next_tick) {
            tick++;
            int inflight = 0;
            for (int i = 0; i < opt.conns; i++)
                inflight += conns[i].busy;
            fprintf(stderr,
                    "loadgen t=%3ds sent %7llu/s accepted %7llu/s 429 %llu 5xx %llu errors %llu "
                    "inflight %d\n",
                    tick, (unsigned long long)sec.sent, (unsigned long long)sec.accepted,
                    (unsigned long long)sec.s429, (unsigned long long)sec.s5xx,
                    (unsigned long long)sec.errors, inflight);
            if (csv) {
                fprintf(csv, "%d,%llu,%llu,%llu,%llu,%llu,%llu,%d\n", tick,
                        (unsigned long long)sec.sent, (unsigned long long)sec.accepted,
                        (unsigned long long)sec.rejected, (unsigned long long)sec.s429,
                        (unsigned long long)sec.s5xx, (unsigned long long)sec.errors, inflight);
                fflush(csv);
            }
            tot.sent += sec.sent, tot.accepted += sec.accepted, tot.rejected += sec.rejected;
            tot.s429 += sec.s429, tot.s5xx += sec.s5xx, tot.errors += sec.errors;
            memset(&sec, 0, sizeof(sec));
            next_tick += 1.0;
        }
    }
    /* collect the answers still in flight (up to 10 s) so that "accepted" is exact */
    double end = now_s() + 10;
    for (;;) {
        int inflight = 0;
        for (int i = 0; i < opt.conns; i++)
            inflight += conns[i].busy;
        if (!inflight || now_s() > end)
            break;
        int n = epoll_wait(ep, evs, 256, 10);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            ssize_t r;
            while ((r = read(c->fd, c->resp + c->resp_len, RESP_MAX - 1 - c->resp_len)) > 0) {
                c->resp_len += (size_t)r;
                while (c->busy && take_response(c)) {
                }
            }
        }
    }
    tot.sent += sec.sent, tot.accepted += sec.accepted, tot.rejected += sec.rejected;
    tot.s429 += sec.s429, tot.s5xx += sec.s5xx, tot.errors += sec.errors;
    double secs = now_s() - t0;
    printf("loadgen: sent %llu accepted %llu rejected %llu 429 %llu 5xx %llu errors %llu seconds "
           "%.1f rate %.0f\n",
           (unsigned long long)tot.sent, (unsigned long long)tot.accepted,
           (unsigned long long)tot.rejected, (unsigned long long)tot.s429,
           (unsigned long long)tot.s5xx, (unsigned long long)tot.errors, secs,
           (double)tot.accepted / (opt.duration));
    if (csv)
        fclose(csv);
    return 0;
}
