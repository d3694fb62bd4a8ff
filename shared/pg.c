/* The PostgreSQL helper: connect, run queries, apply migrations, COPY rows in. */
#include "shared/pg.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/alloc.h"
#include "shared/buf.h"
#include "shared/shard.h"

/* Copies libpq's message (trimmed of its trailing newline) into pg->err,
 * prefixed by what; returns -1. */
static int fail(struct op_pg *pg, const char *what, const char *why)
{
    char msg[200];
    pg->sqlstate[0] = '\0';
    snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    snprintf(pg->err, sizeof(pg->err), "%.50s: %s", what, msg);
    return -1;
}

/* Like fail, with the server's message and SQLSTATE taken from res (may be NULL). */
static int fail_res(struct op_pg *pg, const char *what, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    fail(pg, what, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
    snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", st ? st : "");
    return -1;
}

static int fail_conn(struct op_pg *pg, const char *what)
{
    return fail(pg, what, pg->conn ? PQerrorMessage(pg->conn) : "not connected");
}

int op_pg_connect(struct op_pg *pg, const char *url, const char *app_name)
{
    const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
    const char *vals[] = {url, app_name, "-c synchronous_commit=on -c client_min_messages=warning",
                          "5", NULL};

    pg->err[0] = '\0';
    /* expand_dbname=1: the URL in dbname supplies host, port, user, db. */
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn)
        return fail(pg, "cannot connect to postgresql", "out of memory");
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        char what[160];
        snprintf(what, sizeof(what), "cannot connect to postgresql at '%.64s:%.8s'",
                 PQhost(pg->conn) ? PQhost(pg->conn) : "?",
                 PQport(pg->conn) ? PQport(pg->conn) : "?");
        return fail(pg, what, PQerrorMessage(pg->conn));
    }
    return 0;
}

int op_pg_reset(struct op_pg *pg)
{
    if (!pg->conn)
        return fail(pg, "cannot reconnect to postgresql", "never connected");
    if (PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    PQreset(pg->conn);
    if (PQstatus(pg->conn) != CONNECTION_OK)
        return fail_conn(pg, "cannot reconnect to postgresql");
    return 0;
}

int op_pg_ok(const struct op_pg *pg)
{
    return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

void op_pg_close(struct op_pg *pg)
{
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
}

int op_pg_exec(struct op_pg *pg, const char *sql)
{
    long long ignored;
    return op_pg_exec_rows(pg, sql, &ignored);
}

struct pg_result *op_pg_query(struct op_pg *pg, const char *sql, int nparams,
                              const char *const *params)
{
    if (!pg->conn) {
        fail(pg, "query failed", "not connected");
        return NULL;
    }
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_res(pg, "query failed", res);
        PQclear(res);
        return NULL;
    }
    return res;
}

int op_pg_rows(const struct pg_result *res)
{
    return PQntuples(res);
}

const char *op_pg_value(const struct pg_result *res, int row, int col)
{
    return PQgetvalue(res, row, col);
}

int op_pg_is_null(const struct pg_result *res, int row, int col)
{
    return PQgetisnull(res, row, col);
}

void op_pg_clear(struct pg_result *res)
{
    PQclear(res);
}

int op_pg_copy_begin(struct op_pg *pg, const char *copy_sql)
{
    if (!pg->conn)
        return fail(pg, "copy failed", "not connected");
    PGresult *res = PQexec(pg->conn, copy_sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        fail_res(pg, "copy failed", res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

int op_pg_copy_put(struct op_pg *pg, const char *data, size_t len)
{
    /* PQputCopyData takes an int length: send in chunks below INT_MAX. */
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        if (PQputCopyData(pg->conn, data, n) != 1)
            return fail_conn(pg, "copy failed");
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int op_pg_copy_end(struct op_pg *pg, int failed)
{
    int rc = 0;
    if (PQputCopyEnd(pg->conn, failed ? "aborted by orderpipe" : NULL) != 1)
        rc = fail_conn(pg, "copy failed");
    PGresult *res;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0 && !failed)
            rc = fail_res(pg, "copy failed", res);
        PQclear(res);
    }
    return failed ? -1 : rc;
}

/* The count in res's command tag, or 0 when it has none. */
static long long cmd_rows(PGresult *res)
{
    const char *n = PQcmdTuples(res);
    return n && *n ? strtoll(n, NULL, 10) : 0;
}

int op_pg_exec_rows(struct op_pg *pg, const char *sql, long long *rows)
{
    if (!pg->conn)
        return fail(pg, "query failed", "not connected");
    PGresult *res = PQexec(pg->conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_res(pg, "query failed", res);
        PQclear(res);
        return -1;
    }
    *rows = cmd_rows(res);
    PQclear(res);
    return 0;
}

int op_pg_copy_end_rows(struct op_pg *pg, long long *rows)
{
    int rc = 0;
    long long n = 0;
    if (PQputCopyEnd(pg->conn, NULL) != 1)
        rc = fail_conn(pg, "copy failed");
    PGresult *res;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            if (rc == 0)
                rc = fail_res(pg, "copy failed", res);
        } else {
            n += cmd_rows(res);
        }
        PQclear(res);
    }
    if (rc == 0)
        *rows = n;
    return rc;
}

int op_pg_copy_escape(struct op_buf *out, const char *s, size_t len)
{
    if (op_buf_reserve(out, len * 2) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        char *d = out->data + out->len;
        switch (c) {
        case '\\':
            d[0] = '\\', d[1] = '\\', out->len += 2;
            break;
        case '\t':
            d[0] = '\\', d[1] = 't', out->len += 2;
            break;
        case '\n':
            d[0] = '\\', d[1] = 'n', out->len += 2;
            break;
        case '\r':
            d[0] = '\\', d[1] = 'r', out->len += 2;
            break;
        default:
            d[0] = c, out->len += 1;
            break;
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

/* ---- migrations ---------------------------------------------------------- */

/* Reads the whole file at path into a NUL-terminated buffer (caller frees).
 * Returns NULL with pg->err on failure. Migrations are small: cap at 16 MiB. */
static char *read_file(struct op_pg *pg, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    if (!f) {
        char what[300];
        snprintf(what, sizeof(what), "cannot open migration '%.200s'", path);
        fail(pg, what, strerror(errno));
        return NULL;
    }
    struct op_buf b;
    op_buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > (16u << 20) || op_buf_append(&b, chunk, n) != 0) {
            fail(pg, "cannot read migration", "file too large or out of memory");
            op_buf_release(&b);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    if (op_buf_append(&b, "", 0) != 0) {
        op_buf_release(&b);
        return NULL;
    }
    data = b.data;
    return data;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the *.sql names in dir, sorted. Returns count or -1 (pg->err). */
static int list_sql(struct op_pg *pg, const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    if (!d) {
        char what[300];
        snprintf(what, sizeof(what), "cannot open migrations directory '%.200s'", dir);
        return fail(pg, what, strerror(errno));
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = op_realloc(names, (size_t)cap * sizeof(*nn));
            if (!nn)
                goto oom;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (!names[n])
            goto oom;
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, (size_t)n, sizeof(*names), cmp_names);
    *out = names;
    return n;
oom:
    closedir(d);
    for (int i = 0; i < n; i++)
        free(names[i]);
    op_free(names);
    return fail(pg, "cannot list migrations", "out of memory");
}

/* Applies one migration file if not recorded yet; 1 applied, 0 skipped, -1 error. */
static int apply_one(struct op_pg *pg, const char *dir, const char *name)
{
    char path[1024], sum[16];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *sql = read_file(pg, path);
    if (!sql)
        return -1;
    snprintf(sum, sizeof(sum), "%08x", op_fnv1a32(sql, strlen(sql)));

    const char *params[] = {name};
    struct pg_result *res =
        op_pg_query(pg, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, params);
    if (!res) {
        free(sql);
        return -1;
    }
    int rc = 0;
    if (op_pg_rows(res) > 0) {
        if (strcmp(op_pg_value(res, 0, 0), sum) != 0) {
            char what[300];
            snprintf(what, sizeof(what), "migration '%.200s'", name);
            rc = fail(pg, what, "changed after it was applied; add a new migration instead");
        }
        op_pg_clear(res);
        free(sql);
        return rc;
    }
    op_pg_clear(res);
    if (op_pg_exec(pg, "BEGIN") != 0 || op_pg_exec(pg, sql) != 0)
        goto bad;
    const char *ins[] = {name, sum};
    res = op_pg_query(
        pg, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2) RETURNING version",
        2, ins);
    if (!res)
        goto bad;
    op_pg_clear(res);
    if (op_pg_exec(pg, "COMMIT") != 0)
        goto bad;
    free(sql);
    return 1;
bad:;
    char why[256];
    snprintf(why, sizeof(why), "%s", pg->err);
    op_pg_exec(pg, "ROLLBACK");
    char what[300];
    snprintf(what, sizeof(what), "migration '%.200s' failed", name);
    fail(pg, what, why);
    free(sql);
    return -1;
}

/* Advisory lock key: "orderpipe" in ASCII, so that nothing else collides. */
#define MIGRATE_LOCK "SELECT pg_advisory_lock(6873354845781012325)"
#define MIGRATE_UNLOCK "SELECT pg_advisory_unlock(6873354845781012325)"

int op_pg_migrate(struct op_pg *pg, const char *dir, int *applied)
{
    char **names = NULL;
    int n, rc = 0;

    *applied = 0;
    if (op_pg_exec(pg, MIGRATE_LOCK) != 0)
        return -1;
    if (op_pg_exec(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version text PRIMARY KEY,"
                       " checksum text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())") != 0) {
        rc = -1;
        goto out;
    }
    n = list_sql(pg, dir, &names);
    if (n < 0 || (n > 0 && !names)) {
        rc = -1;
        goto out;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        int r = apply_one(pg, dir, names[i]);
        if (r < 0)
            rc = -1;
        else
            *applied += r;
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    op_free(names);
out:;
    char keep[256];
    snprintf(keep, sizeof(keep), "%s", pg->err);
    op_pg_exec(pg, MIGRATE_UNLOCK);
    snprintf(pg->err, sizeof(pg->err), "%s", keep);
    return rc;
}

int op_pg_fills_partitions(struct op_pg *pg, long *created)
{
    *created = 0;
    struct pg_result *res = op_pg_query(pg, "SELECT orderpipe_fills_ensure_partitions()", 0, NULL);
    if (!res) /* 42883 undefined_function: the schema is older than 007 */
        return strcmp(pg->sqlstate, "42883") == 0 ? 0 : -1;
    if (op_pg_rows(res) == 1)
        *created = strtol(op_pg_value(res, 0, 0), NULL, 10);
    op_pg_clear(res);
    return 1;
}
