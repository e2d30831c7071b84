#include "controller/audit.h"

#include "controller/timefmt.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tables whose changes are recorded. Each keeps its rowid, so an entry
 * names the row by rowid and the check can find it again. */
static const char *const audited_tables[] = {"subjects",
                                             "stops",
                                             "specimens",
                                             "tests",
                                             "threshold_sets",
                                             "results",
                                             "result_analytes",
                                             "decisions",
                                             "stop_notes",
                                             "result_releases",
                                             "rule_sets",
                                             "statuses",
                                             "licences",
                                             "licence_decisions",
                                             "decision_reviews",
                                             "hair_segments",
                                             "astm_results",
                                             "result_links",
                                             NULL};

static const char audit_schema[] =
    "CREATE TABLE IF NOT EXISTS audit ("
    " seq INTEGER PRIMARY KEY, at TEXT NOT NULL, uid INTEGER NOT NULL, roles TEXT NOT NULL,"
    " command TEXT NOT NULL, tbl TEXT, action TEXT NOT NULL, row_id INTEGER, content TEXT,"
    " prev TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_row ON audit (tbl, row_id);"
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;";

/* The columns of an entry that its hash covers, in this order. */
#define ENTRY_COLUMNS "seq, at, uid, roles, command, tbl, action, row_id, content"

static struct {
    unsigned uid;
    char roles[80];
    char command[48];
} actor;

void audit_set_actor(unsigned uid, const char *roles, const char *command)
{
    actor.uid = uid;
    snprintf(actor.roles, sizeof(actor.roles), "%s", roles);
    snprintf(actor.command, sizeof(actor.command), "%s", command);
}

/* Computes SHA-256(prev "\n" text) as lowercase hex. */
static void chain_hash(const char *prev, const char *text, char out[AUDIT_HASH_HEX])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, prev, strlen(prev));
    EVP_DigestUpdate(ctx, "\n", 1);
    EVP_DigestUpdate(ctx, text, strlen(text));
    EVP_DigestFinal_ex(ctx, digest, &len);
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    unsigned int i;

    /* Each audit row is hashed, so the digits are written without snprintf. */
    for (i = 0; i < len && i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[2 * i] = '\0';
}

/* SQL: toxlab_audit_hash(prev, text). */
static void sql_hash(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    char out[AUDIT_HASH_HEX] = "";
    const char *prev = (const char *)sqlite3_value_text(argv[0]);
    const char *text = (const char *)sqlite3_value_text(argv[1]);

    (void)argc;
    chain_hash(prev ? prev : "", text ? text : "", out);
    sqlite3_result_text(context, out, -1, SQLITE_TRANSIENT);
}

/* SQL: toxlab_audit_actor(field) returns the actor's uid, roles or command. */
static void sql_actor(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    const char *field = (const char *)sqlite3_value_text(argv[0]);

    (void)argc;
    if (field != NULL && strcmp(field, "uid") == 0) {
        sqlite3_result_int64(context, actor.uid);
    } else if (field != NULL && strcmp(field, "roles") == 0) {
        sqlite3_result_text(context, actor.roles, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_result_text(context, actor.command, -1, SQLITE_TRANSIENT);
    }
}

/* SQL: toxlab_audit_now() returns the time in the stored format. */
static void sql_now(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    char now[TIMESTAMP_SIZE];

    (void)argc;
    (void)argv;
    time_format_utc(time_realtime_ms(), now);
    sqlite3_result_text(context, now, -1, SQLITE_TRANSIENT);
}

/* The text an entry's hash covers: its columns joined with '|'. */
#define ENTRY_TEXT_SQL                                                                             \
    "printf('%d|%s|%d|%s|%s|%s|%s|%s|%s', seq, at, uid, roles, command, COALESCE(tbl, ''),"        \
    " action, COALESCE(row_id, ''), COALESCE(content, ''))"

/* Appends an entry: the values are SQL expressions for tbl, action,
 * row_id and content. */
static void entry_insert_sql(char *out, size_t size, const char *tbl, const char *action,
                             const char *row_id, const char *content)
{
    snprintf(out, size,
             "INSERT INTO audit (" ENTRY_COLUMNS ", prev, hash)"
             " SELECT seq, at, uid, roles, command, tbl, action, row_id, content, prev,"
             " toxlab_audit_hash(prev, %s) FROM ("
             "SELECT (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit) AS seq,"
             " toxlab_audit_now() AS at, toxlab_audit_actor('uid') AS uid,"
             " toxlab_audit_actor('roles') AS roles, toxlab_audit_actor('command') AS command,"
             " %s AS tbl, %s AS action, %s AS row_id, %s AS content,"
             " COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1), '') AS prev)",
             ENTRY_TEXT_SQL, tbl, action, row_id, content);
}

/* Writes json_object('col', ROW.col, ...) for every column of a table. */
static int row_json_sql(sqlite3 *db, const char *table, const char *row, char *out, size_t size)
{
    char sql[128];
    sqlite3_stmt *stmt;
    size_t used = (size_t)snprintf(out, size, "json_object(");
    int columns = 0;

    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        return -1;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW && used < size) {
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        used += (size_t)snprintf(out + used, size - used, "%s'%s', %s.%s", columns ? ", " : "",
                                 name, row, name);
        columns++;
    }
    sqlite3_finalize(stmt);
    if (used + 2 >= size || columns == 0) {
        return -1;
    }
    snprintf(out + used, size - used, ")");
    return 0;
}

/* (Re)creates the insert, update and delete triggers of one table, so that
 * a column added later is covered too. */
static int install_table_triggers(sqlite3 *db, const char *table)
{
    static const char *const events[] = {"INSERT", "UPDATE", "DELETE"};
    static const char *const actions[] = {"'insert'", "'update'", "'delete'"};
    char content[4096];
    char quoted[64];
    char insert[6144];
    char sql[8192];

    snprintf(quoted, sizeof(quoted), "'%s'", table);
    for (size_t i = 0; i < 3; i++) {
        const char *row = i == 2 ? "OLD" : "NEW";
        char row_id[16];
        if (row_json_sql(db, table, row, content, sizeof(content)) != 0) {
            return -1;
        }
        snprintf(row_id, sizeof(row_id), "%s.rowid", row);
        entry_insert_sql(insert, sizeof(insert), quoted, actions[i], row_id,
                         i == 2 ? "NULL" : content);
        snprintf(sql, sizeof(sql),
                 "DROP TRIGGER IF EXISTS audit_%s_%s;"
                 "CREATE TRIGGER audit_%s_%s AFTER %s ON %s BEGIN %s; END;",
                 table, events[i], table, events[i], events[i], table, insert);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            return -1;
        }
    }
    return 0;
}

int audit_install(sqlite3 *db, char *err, size_t err_size)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;

    if (actor.command[0] == '\0') {
        audit_set_actor((unsigned)getuid(), "daemon", "toxlabd");
    }
    if (sqlite3_create_function(db, "toxlab_audit_hash", 2, flags, NULL, sql_hash, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_create_function(db, "toxlab_audit_actor", 1, SQLITE_UTF8, NULL, sql_actor, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_create_function(db, "toxlab_audit_now", 0, SQLITE_UTF8, NULL, sql_now, NULL,
                                NULL) != SQLITE_OK ||
        sqlite3_exec(db, audit_schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, err_size, "setting up the audit log failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    for (size_t i = 0; audited_tables[i] != NULL; i++) {
        if (install_table_triggers(db, audited_tables[i]) != 0) {
            snprintf(err, err_size, "setting up the audit triggers of %s failed: %s",
                     audited_tables[i], sqlite3_errmsg(db));
            return -1;
        }
    }
    return 0;
}

/* A client request's entry, held until a transaction takes it. */
static struct {
    enum { REQUEST_NONE, REQUEST_HELD, REQUEST_IN_TRANSACTION } state;
    bool rejected;
    char *content;
} request;

/* Inserts the held request's entry in the current transaction, or in one of
 * its own when none is open. */
static int insert_request(sqlite3 *db)
{
    char sql[4096];
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_ERROR;

    entry_insert_sql(sql, sizeof(sql), "NULL", request.rejected ? "'rejected'" : "'request'",
                     "NULL", "?1");
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, request.content, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt);
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void forget_request(void)
{
    free(request.content);
    request.content = NULL;
    request.state = REQUEST_NONE;
}

int audit_request_hold(const json_t *args, bool rejected)
{
    forget_request();
    request.content = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    if (request.content == NULL) {
        return -1;
    }
    request.rejected = rejected;
    request.state = REQUEST_HELD;
    return 0;
}

int audit_request_join(sqlite3 *db)
{
    if (request.state != REQUEST_HELD) {
        return 0;
    }
    if (insert_request(db) != 0) {
        return -1;
    }
    request.state = REQUEST_IN_TRANSACTION;
    return 0;
}

void audit_request_committed(void)
{
    if (request.state == REQUEST_IN_TRANSACTION) {
        forget_request();
    }
}

int audit_request_flush(sqlite3 *db)
{
    /* A transaction that took the entry and ended without a commit (a
     * rollback, by the command or by SQLite itself) lost it. */
    if (request.state == REQUEST_IN_TRANSACTION && sqlite3_get_autocommit(db)) {
        request.state = REQUEST_HELD;
    }
    int status = request.state == REQUEST_HELD ? insert_request(db) : 0;
    forget_request();
    return status;
}

int audit_head(sqlite3 *db, long long *seq, char hash[AUDIT_HASH_HEX])
{
    sqlite3_stmt *stmt;
    int rc;

    *seq = 0;
    hash[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &stmt,
                           NULL) != SQLITE_OK) {
        return -1;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(stmt, 0);
        snprintf(hash, AUDIT_HASH_HEX, "%s", (const char *)sqlite3_column_text(stmt, 1));
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Records the first entry that does not match, and why. */
static int fail_entry(struct audit_report *report, long long seq, const char *subject,
                      const char *reason)
{
    report->first_bad = seq;
    snprintf(report->reason, sizeof(report->reason), "%s%s%s", subject, subject[0] ? " " : "",
             reason);
    return 1;
}

/* Recomputes each entry's hash from its content and the hash before it. */
static int verify_chain(sqlite3 *db, struct audit_report *report)
{
    sqlite3_stmt *stmt;
    char expected_prev[AUDIT_HASH_HEX] = "";
    long long expected_seq = 1;
    int status = 0;

    if (sqlite3_prepare_v2(db, "SELECT seq, prev, hash, " ENTRY_TEXT_SQL " FROM audit ORDER BY seq",
                           -1, &stmt, NULL) != SQLITE_OK) {
        snprintf(report->reason, sizeof(report->reason), "%s", sqlite3_errmsg(db));
        return -1;
    }
    while (status == 0 && sqlite3_step(stmt) == SQLITE_ROW) {
        long long seq = sqlite3_column_int64(stmt, 0);
        const char *prev = (const char *)sqlite3_column_text(stmt, 1);
        const char *hash = (const char *)sqlite3_column_text(stmt, 2);
        char computed[AUDIT_HASH_HEX] = "";
        chain_hash(prev, (const char *)sqlite3_column_text(stmt, 3), computed);
        report->entries++;
        if (seq != expected_seq) {
            status = fail_entry(report, expected_seq, "", "the entry is missing");
        } else if (strcmp(prev, expected_prev) != 0) {
            status = fail_entry(report, seq, "",
                                "its link to the entry before does not match that entry's hash");
        } else if (strcmp(hash, computed) != 0) {
            status = fail_entry(report, seq, "", "its hash does not match its content");
        }
        snprintf(expected_prev, sizeof(expected_prev), "%s", hash);
        expected_seq++;
    }
    sqlite3_finalize(stmt);
    report->head_seq = expected_seq - 1;
    snprintf(report->head, sizeof(report->head), "%s", expected_prev);
    return status;
}

/* Runs a query that returns (seq, row_id) of the first mismatch, if any. */
static int first_mismatch(sqlite3 *db, const char *sql, long long *seq, long long *row_id)
{
    sqlite3_stmt *stmt;
    int rc;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        return -1;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(stmt, 0);
        *row_id = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Checks one table: each row equals what its latest entry recorded, and
 * each row has an entry. */
static int verify_table(sqlite3 *db, const char *table, struct audit_report *report)
{
    char content[4096];
    char sql[6144];
    long long seq = 0;
    long long row_id = 0;
    char detail[128];

    if (row_json_sql(db, table, "t", content, sizeof(content)) != 0) {
        return -1;
    }
    snprintf(sql, sizeof(sql),
             "SELECT a.seq, a.row_id FROM audit a WHERE a.tbl = '%s' AND a.seq ="
             " (SELECT MAX(b.seq) FROM audit b WHERE b.tbl = a.tbl AND b.row_id = a.row_id)"
             " AND (SELECT %s FROM %s t WHERE t.rowid = a.row_id) IS NOT a.content"
             " ORDER BY a.seq LIMIT 1",
             table, content, table);
    int found = first_mismatch(db, sql, &seq, &row_id);
    if (found != 0) {
        snprintf(detail, sizeof(detail), "row %lld of %s", row_id, table);
        return found < 0 ? -1
                         : fail_entry(report, seq, detail, "differs from what this entry recorded");
    }
    snprintf(sql, sizeof(sql),
             "SELECT 0, t.rowid FROM %s t WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE"
             " a.tbl = '%s' AND a.row_id = t.rowid) LIMIT 1",
             table, table);
    found = first_mismatch(db, sql, &seq, &row_id);
    if (found != 0) {
        snprintf(detail, sizeof(detail), "row %lld of %s", row_id, table);
        return found < 0 ? -1 : fail_entry(report, 0, detail, "has no audit entry");
    }
    return 0;
}

int audit_verify(sqlite3 *db, struct audit_report *report)
{
    memset(report, 0, sizeof(*report));
    int status = verify_chain(db, report);

    for (size_t i = 0; status == 0 && audited_tables[i] != NULL; i++) {
        status = verify_table(db, audited_tables[i], report);
    }
    if (status < 0 && report->reason[0] == '\0') {
        snprintf(report->reason, sizeof(report->reason), "%s", sqlite3_errmsg(db));
    }
    return status;
}
