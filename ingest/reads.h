/* The read side of the REST API: orders and fills from PostgreSQL, owner-only. */
#ifndef INGEST_READS_H
#define INGEST_READS_H

#include <stdint.h>

#include "ingest/order.h"
#include "shared/buf.h"

/* Sets the database every HTTP thread connects to (lazily, one connection
 * per thread, re-established after a failure). Call once before serving. */
void reads_init(const char *database_url);

/*
 * Appends the JSON of order `id` to out if it exists and belongs to account.
 * Returns 0; or -1 with e: 404 when absent or another account's (the two
 * are not told apart), 503 when PostgreSQL is unavailable.
 */
int reads_order(uint64_t id, const char *account, struct op_buf *out, struct api_error *e);

/*
 * Appends {"fills":[…]} of account's fills, newest first, optionally only of
 * symbol and/or order_id (0 = any), at most limit. Returns 0 or -1 with e.
 */
int reads_fills(const char *account, const char *symbol, uint64_t order_id, int limit,
                struct op_buf *out, struct api_error *e);

/* 1 if this thread's connection (or a new one) answers SELECT 1. */
int reads_db_ok(void);

#endif
