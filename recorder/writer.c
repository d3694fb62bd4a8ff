/* The recorder's writer thread: commits batch n while the main thread reads batch n+1. */
#include "recorder/writer.h"

#include <signal.h>
#include <string.h>

#include "shared/log.h"

/* The thread: waits for a batch, writes it, posts the result. */
static void *writer_main(void *arg)
{
    struct rec_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->batch)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        struct rec_batch *b = w->batch;
        pthread_mutex_unlock(&w->mu);
        int rc = rec_store_write(w->store, b);
        pthread_mutex_lock(&w->mu);
        w->rc = rc;
        w->batch = NULL; /* done: rec_writer_wait collects rc */
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int rec_writer_start(struct rec_writer *w, struct rec_store *st)
{
    memset(w, 0, sizeof(*w));
    w->store = st;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* SIGTERM/SIGINT go to the main thread, which owns the loop and its
     * stop logic: the new thread inherits this mask. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int err = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return op_log_fail("writer_thread", "err=\"cannot create thread: %s\"", strerror(err));
    }
    w->started = 1;
    return 0;
}

void rec_writer_submit(struct rec_writer *w, struct rec_batch *b)
{
    pthread_mutex_lock(&w->mu);
    w->batch = b;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int rec_writer_wait(struct rec_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->batch)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->rc;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int rec_writer_busy(struct rec_writer *w)
{
    pthread_mutex_lock(&w->mu);
    int busy = w->batch != NULL;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

void rec_writer_stop(struct rec_writer *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = 0;
}
