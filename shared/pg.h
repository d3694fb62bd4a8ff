/* The PostgreSQL helper: connect, run queries, apply migrations, COPY rows in. */
#ifndef OP_PG_H
#define OP_PG_H

#include <stddef.h>

/*
 * The only wrapper around libpq: no other file includes libpq-fe.h. Results
 * are opaque `struct pg_result *` read with op_pg_* accessors and freed with
 * op_pg_clear.
 */
struct pg_conn;
struct pg_result;

/* A connection that keeps its last error. Usable again after op_pg_reset. */
struct op_pg {
    struct pg_conn *conn; /* NULL when never connected */
    char err[256];        /* what failed last, lowercase, for logs */
    char sqlstate[6];     /* SQLSTATE of the last failed statement ("23514", …), or "" when
                             the failure carried none (connection lost, not connected) */
};

/*
 * Connects to `url` (postgresql://…) with synchronous_commit on and the
 * given application_name. Returns 0, or -1 with pg->err naming the server
 * and reason (never the password). pg->conn is kept either way, so that
 * op_pg_reset can retry.
 */
int op_pg_connect(struct op_pg *pg, const char *url, const char *app_name);

/* Re-establishes a broken connection. Returns 0 if the connection is (now) ok. */
int op_pg_reset(struct op_pg *pg);

/* 1 if the connection is up as far as libpq knows. */
int op_pg_ok(const struct op_pg *pg);

void op_pg_close(struct op_pg *pg);

/* Runs sql (one or more statements, no parameters, results discarded).
 * Returns 0, or -1 with pg->err. */
int op_pg_exec(struct op_pg *pg, const char *sql);

/*
 * Runs one statement with nparams text parameters ($1 …) that returns rows.
 * Returns the result (free with op_pg_clear), or NULL with pg->err.
 */
struct pg_result *op_pg_query(struct op_pg *pg, const char *sql, int nparams,
                              const char *const *params);

int op_pg_rows(const struct pg_result *res);
/* The text of a value ("" for NULL; see op_pg_is_null); borrowed from res. */
const char *op_pg_value(const struct pg_result *res, int row, int col);
int op_pg_is_null(const struct pg_result *res, int row, int col);
void op_pg_clear(struct pg_result *res);

/*
 * COPY: op_pg_copy_begin runs a `COPY … FROM STDIN` statement; then
 * op_pg_copy_put sends len bytes of text-format rows (any split); then
 * op_pg_copy_end finishes and reports whether the server accepted all rows.
 * op_pg_copy_end with failed != 0 aborts the COPY instead. Each returns 0,
 * or -1 with pg->err (after a failed put, still call copy_end to resync).
 */
int op_pg_copy_begin(struct op_pg *pg, const char *copy_sql);
int op_pg_copy_put(struct op_pg *pg, const char *data, size_t len);
int op_pg_copy_end(struct op_pg *pg, int failed);

/*
 * The same, with the count of rows the command affected (libpq's PQcmdTuples:
 * rows inserted, updated or copied; 0 for a command that reports none) stored
 * in *rows — so that a caller needs no `RETURNING … count(*)` to know it.
 * op_pg_exec_rows runs one statement without parameters (a prepared one via
 * EXECUTE reports the command tag of the statement it runs);
 * op_pg_copy_end_rows is op_pg_copy_end(pg, 0). Return 0, or -1 with pg->err
 * (*rows untouched).
 */
int op_pg_exec_rows(struct op_pg *pg, const char *sql, long long *rows);
int op_pg_copy_end_rows(struct op_pg *pg, long long *rows);

/*
 * Applies every `NNN_name.sql` file of dir not yet recorded in the
 * schema_migrations table, in name order, each in its own transaction, under
 * an advisory lock so that concurrent starters cannot apply one twice.
 * A recorded migration whose file content changed is an error (migrations
 * are append-only). Stores how many were applied in *applied. Returns 0, or
 * -1 with pg->err naming the file.
 */
int op_pg_migrate(struct op_pg *pg, const char *dir, int *applied);

/*
 * Creates the coming days' partitions of fills and drains its default
 * partition: migration 007's orderpipe_fills_ensure_partitions(), with its
 * default of a week ahead. Returns 1 done (the partitions it created in
 * *created), 0 when the schema has no such function (before 007: nothing to
 * do), -1 failed (pg->err, pg->sqlstate). Called by orderpipe-setup and by
 * the recorder.
 */
int op_pg_fills_partitions(struct op_pg *pg, long *created);

/* Appends s to out as a COPY text-format field, escaping backslash, tab,
 * newline and carriage return. Returns 0 or -1 on allocation failure. */
struct op_buf;
int op_pg_copy_escape(struct op_buf *out, const char *s, size_t len);

#endif
