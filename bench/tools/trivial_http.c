/* The HTTP ceiling for bench/ingest.sh: libmicrohttpd answering 202 to every POST. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Same daemon set-up as ingest (internal epoll threads, a thread pool of
 * INGEST_THREADS, the body read in full) but no parsing, no Redis: what is
 * left is the cost of HTTP itself on this machine. Usage: trivial_http PORT.
 */

static const char body[] = "{\"status\":\"QUEUED\",\"order_id\":\"1\",\"client_order_id\":null}";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (*con_cls == NULL) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* read and drop the body */
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, 202, r);
    MHD_destroy_response(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trivial_http PORT\n");
        return 2;
    }
    const char *t = getenv("INGEST_THREADS");
    unsigned threads = t ? (unsigned)strtol(t, NULL, 10) : 2;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)strtol(argv[1], NULL, 10), NULL,
        NULL, on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        4096u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "trivial_http: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        usleep(50000);
    MHD_stop_daemon(d);
    return 0;
}
