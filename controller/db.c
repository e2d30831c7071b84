#include "controller/db.h"

#include "controller/audit.h"
#include "controller/db_hair.h"
#include "controller/db_internal.h"
#include "controller/db_licence.h"
#include "controller/engine.h"

#include "controller/alcohol.h"
#include "controller/log.h"
#include "controller/timefmt.h"
#include "protocol/breath_map.h"
#include "protocol/decimal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS subjects ("
    " id TEXT PRIMARY KEY, id_type TEXT NOT NULL, number TEXT NOT NULL,"
    " created TEXT NOT NULL, UNIQUE (id_type, number));"
    "CREATE TABLE IF NOT EXISTS stops ("
    " id TEXT PRIMARY KEY, subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " driving INTEGER NOT NULL, opened TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS specimens ("
    " id TEXT PRIMARY KEY, barcode TEXT NOT NULL UNIQUE,"
    " subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " stop_id TEXT NOT NULL REFERENCES stops(id), matrix TEXT NOT NULL,"
    " collected TEXT NOT NULL, collected_date INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tests ("
    " id TEXT PRIMARY KEY, stop_id TEXT NOT NULL REFERENCES stops(id),"
    " instrument TEXT NOT NULL, specimen_id TEXT REFERENCES specimens(id),"
    " host_test_id INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'failed',"
    "  'aborted', 'interrupted')),"
    " reason TEXT, created TEXT NOT NULL, updated TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS tests_open_host_id ON tests (host_test_id)"
    " WHERE state IN ('pending', 'running', 'interrupted');"
    "CREATE TABLE IF NOT EXISTS threshold_sets ("
    " version TEXT PRIMARY KEY, label TEXT NOT NULL, canonical TEXT NOT NULL,"
    " loaded TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS results ("
    " id TEXT PRIMARY KEY, test_id TEXT UNIQUE REFERENCES tests(id),"
    " subject_id TEXT REFERENCES subjects(id), specimen_id TEXT REFERENCES specimens(id),"
    " collected_date INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'final' CHECK (status IN ('final', 'preliminary',"
    "  'correction')),"
    " supersedes TEXT REFERENCES results(id), laboratory TEXT, report_number TEXT, barcode TEXT,"
    " reported TEXT, imported_by INTEGER,"
    " host_test_id INTEGER, sequence INTEGER, instrument TEXT,"
    " serial TEXT, firmware TEXT, calibration TEXT, cartridge_lot TEXT, cartridge_expiry TEXT,"
    " matrix TEXT NOT NULL, tier TEXT NOT NULL, invalid_reason TEXT,"
    " received TEXT NOT NULL, clock_synced INTEGER NOT NULL, timezone TEXT NOT NULL,"
    " threshold_version TEXT NOT NULL REFERENCES threshold_sets(version),"
    " calibration_due TEXT,"
    " breath_outcome TEXT CHECK (breath_outcome IN ('measured', 'invalid', 'refused')),"
    " breath_raw INTEGER, breath_flags INTEGER, temperature INTEGER,"
    " alcohol_band TEXT CHECK (alcohol_band IN ('below', 'drink', 'drunk')),"
    " blood_equivalent TEXT, alcohol_factor INTEGER, drink_limit TEXT, drunk_limit TEXT,"
    " alcohol_source TEXT);"
    "CREATE TABLE IF NOT EXISTS stop_notes ("
    " stop_id TEXT NOT NULL REFERENCES stops(id),"
    " kind TEXT NOT NULL CHECK (kind IN ('dispute', 'crash')), created TEXT NOT NULL,"
    " uid INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS result_analytes ("
    " result_id TEXT NOT NULL REFERENCES results(id), position INTEGER NOT NULL,"
    " analyte TEXT NOT NULL, value_text TEXT NOT NULL, value_micro INTEGER NOT NULL,"
    " unit TEXT NOT NULL, over_range INTEGER NOT NULL, under_range INTEGER NOT NULL,"
    " outcome TEXT NOT NULL CHECK (outcome IN ('negative', 'positive', 'presumptive',"
    "  'invalid')),"
    " reason TEXT, cutoff_text TEXT, cutoff_unit TEXT, threshold_line INTEGER,"
    " threshold_source TEXT, PRIMARY KEY (result_id, position));"
    "CREATE TABLE IF NOT EXISTS decisions ("
    " id TEXT PRIMARY KEY, stop_id TEXT NOT NULL REFERENCES stops(id),"
    " subject_id TEXT NOT NULL REFERENCES subjects(id), question TEXT NOT NULL,"
    " decision TEXT NOT NULL CHECK (decision IN ('refuse', 'cancel', 'void-notice', 'flag',"
    "  'none')),"
    " rules TEXT NOT NULL, evidence TEXT NOT NULL, actions TEXT NOT NULL,"
    " created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS result_releases ("
    " result_id TEXT NOT NULL REFERENCES results(id), uid INTEGER NOT NULL,"
    " created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rule_sets ("
    " version TEXT PRIMARY KEY, label TEXT NOT NULL, canonical TEXT NOT NULL,"
    " loaded TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS statuses ("
    " id TEXT PRIMARY KEY, subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " kind TEXT NOT NULL, start_date TEXT NOT NULL, end_date TEXT, reference TEXT NOT NULL,"
    " supersedes TEXT REFERENCES statuses(id), reason TEXT, uid INTEGER NOT NULL,"
    " created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS licences ("
    " id TEXT PRIMARY KEY, subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " number TEXT NOT NULL, class TEXT NOT NULL, commercial INTEGER NOT NULL,"
    " handed_back INTEGER NOT NULL, supersedes TEXT REFERENCES licences(id), reason TEXT,"
    " uid INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS licence_decisions ("
    " id TEXT PRIMARY KEY, subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " question TEXT NOT NULL CHECK (question IN ('application', 'holder')),"
    " as_of TEXT NOT NULL,"
    " decision TEXT NOT NULL CHECK (decision IN ('refuse', 'cancel', 'void-notice', 'flag',"
    "  'none')),"
    " rules_version TEXT NOT NULL REFERENCES rule_sets(version), inputs TEXT NOT NULL,"
    " outcome TEXT NOT NULL, uid INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS decision_reviews ("
    " decision_id TEXT NOT NULL REFERENCES licence_decisions(id),"
    " action TEXT NOT NULL CHECK (action IN ('confirm', 'override')), reason TEXT,"
    " uid INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tests_stop ON tests (stop_id);"
    "CREATE INDEX IF NOT EXISTS stop_notes_stop ON stop_notes (stop_id);"
    /* Corrections are found by what they supersede; few rows have one. */
    "CREATE INDEX IF NOT EXISTS results_supersedes ON results (supersedes)"
    " WHERE supersedes IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS statuses_supersedes ON statuses (supersedes)"
    " WHERE supersedes IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS licences_supersedes ON licences (supersedes)"
    " WHERE supersedes IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS results_subject ON results (subject_id);"
    "CREATE INDEX IF NOT EXISTS result_releases_result ON result_releases (result_id);"
    "CREATE UNIQUE INDEX IF NOT EXISTS results_laboratory_report"
    " ON results (laboratory, report_number, matrix) WHERE laboratory IS NOT NULL"
    " AND supersedes IS NULL;"
    "CREATE INDEX IF NOT EXISTS statuses_subject ON statuses (subject_id);"
    "CREATE INDEX IF NOT EXISTS licences_subject ON licences (subject_id);"
    "CREATE INDEX IF NOT EXISTS specimens_subject ON specimens (subject_id);"
    "CREATE INDEX IF NOT EXISTS stops_subject ON stops (subject_id);";

#define STRINGIFY(x) #x
#define SCHEMA_VERSION_TEXT(v) STRINGIFY(v)
static const char schema_version_sql[] =
    "PRAGMA user_version = " SCHEMA_VERSION_TEXT(DB_SCHEMA_VERSION) ";";

const char *db_errmsg(sqlite3 *db)
{
    return sqlite3_errmsg(db);
}

void db_now_text(char out[TIMESTAMP_SIZE])
{
    time_format_utc(time_realtime_ms(), out);
}

/* Returns a statement for sql, reusing one that an earlier call released,
 * because parsing the SQL again cost more than running it on each result.
 * The connection's own list of statements is the cache. */
sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    while ((stmt = sqlite3_next_stmt(db, stmt)) != NULL) {
        if (!sqlite3_stmt_busy(stmt) && strcmp(sqlite3_sql(stmt), sql) == 0) {
            sqlite3_clear_bindings(stmt);
            return stmt;
        }
    }
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
        log_msg(LOG_ERR, "preparing SQL failed: %s: %s", sqlite3_errmsg(db), sql);
        return NULL;
    }
    return stmt;
}

void db_release(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
}

/* Binds text arguments 1..n (NULL pointers bind SQL NULL). */
void db_bind_texts(sqlite3_stmt *stmt, int count, const char *const *values)
{
    for (int i = 0; i < count; i++) {
        if (values[i] == NULL || values[i][0] == '\0') {
            sqlite3_bind_null(stmt, i + 1);
        } else {
            sqlite3_bind_text(stmt, i + 1, values[i], -1, SQLITE_TRANSIENT);
        }
    }
}

/* Set from db_begin until db_commit or db_rollback. */
static bool transaction_open;

/* Steps a statement that returns no rows, then resets it for reuse. */
int db_run_stmt(sqlite3 *db, sqlite3_stmt *stmt)
{
    int rc;

    if (stmt == NULL) {
        return -1;
    }
    /* After an I/O error, a full disk or a failed allocation, SQLite may roll
     * the whole transaction back, even on a read whose error went unchecked.
     * A write after that would commit on its own, so none is run. */
    if (transaction_open && sqlite3_get_autocommit(db)) {
        db_release(stmt);
        log_msg(LOG_ERR, "SQL statement not run: SQLite rolled the transaction back after an "
                         "earlier error");
        return -1;
    }
    rc = sqlite3_step(stmt);
    db_release(stmt);
    if (rc != SQLITE_DONE) {
        log_msg(LOG_ERR, "SQL statement failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

int db_exec_sql(sqlite3 *db, const char *sql)
{
    char *message = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        log_msg(LOG_ERR, "SQL failed: %s", message ? message : sqlite3_errmsg(db));
        sqlite3_free(message);
        return -1;
    }
    return 0;
}

void db_copy_column(sqlite3_stmt *stmt, int column, char *out, size_t size)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);

    snprintf(out, size, "%s", text ? (const char *)text : "");
}

int db_make_append_only(sqlite3 *db, const char *const *tables, size_t count)
{
    char sql[512];

    for (size_t i = 0; i < count; i++) {
        snprintf(sql, sizeof(sql),
                 "CREATE TRIGGER IF NOT EXISTS %s_no_update BEFORE UPDATE ON %s"
                 " BEGIN SELECT RAISE(ABORT, '%s rows are append-only'); END;"
                 "CREATE TRIGGER IF NOT EXISTS %s_no_delete BEFORE DELETE ON %s"
                 " BEGIN SELECT RAISE(ABORT, '%s rows are append-only'); END;",
                 tables[i], tables[i], tables[i], tables[i], tables[i], tables[i]);
        if (db_exec_sql(db, sql) != 0) {
            return -1;
        }
    }
    return 0;
}

static int add_append_only_triggers(sqlite3 *db)
{
    static const char *const tables[] = {"results",   "result_analytes",   "result_releases",
                                         "decisions", "stop_notes",        "statuses",
                                         "licences",  "licence_decisions", "decision_reviews",
                                         "rule_sets", "threshold_sets"};

    return db_make_append_only(db, tables, sizeof(tables) / sizeof(tables[0]));
}

/* Reads PRAGMA user_version and whether the file has any table yet. */
static int read_schema_state(sqlite3 *db, int *version, bool *empty)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                        " (SELECT count(*) FROM sqlite_schema WHERE type ="
                                        " 'table')");

    if (stmt == NULL || sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return -1;
    }
    *version = sqlite3_column_int(stmt, 0);
    *empty = sqlite3_column_int(stmt, 1) == 0;
    sqlite3_finalize(stmt);
    return 0;
}

/* Checks the file's schema version against this build's. A new file gets
 * the current version; an older version would be migrated here, one step
 * at a time, once a version 2 exists. */
static int check_schema_version(sqlite3 *db, char *err, size_t err_size)
{
    int version;
    bool empty;

    if (read_schema_state(db, &version, &empty) != 0) {
        snprintf(err, err_size, "reading the schema version failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    if (empty || version == DB_SCHEMA_VERSION) {
        return 0;
    }
    if (version > DB_SCHEMA_VERSION) {
        snprintf(err, err_size,
                 "the database has schema version %d, made by a newer toxlab; this toxlabd "
                 "knows versions up to %d, so upgrade toxlabd",
                 version, DB_SCHEMA_VERSION);
        return -1;
    }
    snprintf(err, err_size,
             "the database has no schema version (a development build made it); start with a "
             "new database file");
    return -1;
}

int db_open(const char *path, int busy_timeout_ms, sqlite3 **db, char *err, size_t err_size)
{
    /* Only the event loop's thread uses the connection (db.h), so SQLite
     * need not lock it around each call. */
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "%s: cannot open the database: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(*db, busy_timeout_ms);
    sqlite3_extended_result_codes(*db, 1);
    err[0] = '\0';
    /* temp_store=MEMORY keeps the statement and savepoint journals (a few
     * pages a result) in memory rather than in files under /var/tmp. */
    if (db_exec_sql(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;") != 0 ||
        db_set_cache_kb(*db, DB_CACHE_KB) != 0 || check_schema_version(*db, err, err_size) != 0 ||
        db_exec_sql(*db, schema) != 0 || db_exec_sql(*db, schema_version_sql) != 0 ||
        add_append_only_triggers(*db) != 0 || db_hair_schema(*db) != 0 ||
        audit_install(*db, err, err_size) != 0) {
        char reason[300];
        snprintf(reason, sizeof(reason), "%s", err[0] ? err : sqlite3_errmsg(*db));
        snprintf(err, err_size, "%s: cannot set up the database: %s", path, reason);
        sqlite3_close(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

int db_set_cache_kb(sqlite3 *db, int kib)
{
    char sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", kib);
    return db_exec_sql(db, sql);
}

void db_close(sqlite3 *db)
{
    sqlite3_stmt *stmt;

    while ((stmt = sqlite3_next_stmt(db, NULL)) != NULL) {
        sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
}

int db_begin(sqlite3 *db)
{
    if (db_exec_sql(db, "BEGIN IMMEDIATE") != 0) {
        return -1;
    }
    transaction_open = true;
    if (audit_request_join(db) != 0) {
        log_msg(LOG_ERR, "writing the request's audit entry failed: %s", sqlite3_errmsg(db));
        db_rollback(db);
        return -1;
    }
    return 0;
}

int db_commit(sqlite3 *db)
{
    static unsigned long long commits;

    if (db_exec_sql(db, "COMMIT") != 0) {
        return -1;
    }
    transaction_open = false;
    audit_request_committed();
    /* The crash test counts these lines to kill the daemon after its Nth commit. */
    log_msg(LOG_DEBUG, "database commit %llu", ++commits);
    return 0;
}

void db_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db)) {
        db_exec_sql(db, "ROLLBACK");
    }
    transaction_open = false;
}

/* Runs a query with text arguments whose first column is an ID; returns 1
 * and copies it when a row exists, 0 when none, -1 on error. */
static int find_id(sqlite3 *db, const char *sql, int count, const char *const *args, char *id,
                   size_t size)
{
    sqlite3_stmt *stmt = db_prepare(db, sql);
    int rc;

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, count, args);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && id != NULL) {
        db_copy_column(stmt, 0, id, size);
    }
    db_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_msg(LOG_ERR, "SQL query failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    return rc == SQLITE_ROW;
}

int db_subject_find(sqlite3 *db, const struct subject_id *subject, char id[RECORD_ID_SIZE])
{
    const char *args[] = {subject->type, subject->number};

    return find_id(db, "SELECT id FROM subjects WHERE id_type = ?1 AND number = ?2", 2, args, id,
                   RECORD_ID_SIZE);
}

int db_subject_add(sqlite3 *db, const char *lab, const struct subject_id *subject,
                   char id[RECORD_ID_SIZE], bool *existed)
{
    char created[TIMESTAMP_SIZE];
    int found = db_subject_find(db, subject, id);

    *existed = found == 1;
    if (found != 0) {
        return found < 0 ? -1 : 0;
    }
    record_id_new(lab, id);
    db_now_text(created);
    const char *args[] = {id, subject->type, subject->number, created};
    sqlite3_stmt *stmt = db_prepare(
        db, "INSERT INTO subjects (id, id_type, number, created) VALUES (?1, ?2, ?3, ?4)");
    if (stmt != NULL) {
        db_bind_texts(stmt, 4, args);
    }
    return db_run_stmt(db, stmt);
}

static const char specimen_columns[] =
    "SELECT s.id, s.barcode, s.subject_id, s.stop_id, s.matrix, s.collected_date,"
    " (SELECT count(*) FROM tests t WHERE t.specimen_id = s.id) FROM specimens s ";

static int read_specimen(sqlite3 *db, sqlite3_stmt *stmt, struct specimen_row *row)
{
    int rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        db_copy_column(stmt, 0, row->id, sizeof(row->id));
        db_copy_column(stmt, 1, row->barcode, sizeof(row->barcode));
        db_copy_column(stmt, 2, row->subject_id, sizeof(row->subject_id));
        db_copy_column(stmt, 3, row->stop_id, sizeof(row->stop_id));
        db_copy_column(stmt, 4, row->matrix, sizeof(row->matrix));
        row->collected_date = sqlite3_column_int(stmt, 5);
        row->test_count = sqlite3_column_int(stmt, 6);
    }
    db_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_msg(LOG_ERR, "reading a specimen failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    return rc == SQLITE_ROW;
}

int db_specimen_by_barcode(sqlite3 *db, const char *barcode, struct specimen_row *row)
{
    char sql[512];
    sqlite3_stmt *stmt;

    snprintf(sql, sizeof(sql), "%s WHERE s.barcode = ?1", specimen_columns);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &barcode);
    return read_specimen(db, stmt, row);
}

int db_specimen_newest_untested(sqlite3 *db, const char *subject_id, const char *matrix,
                                struct specimen_row *row)
{
    char sql[512];
    const char *args[] = {subject_id, matrix};
    sqlite3_stmt *stmt;

    snprintf(sql, sizeof(sql),
             "%s WHERE s.subject_id = ?1 AND s.matrix = ?2 AND NOT EXISTS"
             " (SELECT 1 FROM tests t WHERE t.specimen_id = s.id)"
             " ORDER BY s.created DESC, s.id DESC LIMIT 1",
             specimen_columns);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 2, args);
    return read_specimen(db, stmt, row);
}

int db_specimen_add(sqlite3 *db, const char *lab, const char *subject_id, const char *barcode,
                    const char *matrix, const char *stop_id, int64_t collected_ms,
                    char id[RECORD_ID_SIZE])
{
    char created[TIMESTAMP_SIZE];
    char collected[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt;

    record_id_new(lab, id);
    db_now_text(created);
    time_format_utc(collected_ms, collected);
    stmt = db_prepare(db, "INSERT INTO specimens (id, barcode, subject_id, stop_id, matrix,"
                          " collected, collected_date, created)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7)");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {id, barcode, subject_id, stop_id, matrix, collected, created};
    db_bind_texts(stmt, 7, args);
    sqlite3_bind_int(stmt, 8, time_local_date(collected_ms));
    return db_run_stmt(db, stmt);
}

int db_stop_belongs_to(sqlite3 *db, const char *stop_id, const char *subject_id)
{
    const char *args[] = {stop_id, subject_id};

    return find_id(db, "SELECT id FROM stops WHERE id = ?1 AND subject_id = ?2", 2, args, NULL, 0);
}

int db_stop_create(sqlite3 *db, const char *lab, const char *subject_id, bool driving,
                   char id[RECORD_ID_SIZE])
{
    char opened[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt;

    record_id_new(lab, id);
    db_now_text(opened);
    stmt = db_prepare(db, "INSERT INTO stops (id, subject_id, driving, opened)"
                          " VALUES (?1, ?2, ?4, ?3)");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {id, subject_id, opened};
    db_bind_texts(stmt, 3, args);
    sqlite3_bind_int(stmt, 4, driving);
    return db_run_stmt(db, stmt);
}

int db_stop_mark_driving(sqlite3 *db, const char *stop_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "UPDATE stops SET driving = 1 WHERE id = ?1");

    if (stmt != NULL) {
        db_bind_texts(stmt, 1, &stop_id);
    }
    return db_run_stmt(db, stmt);
}

bool db_host_id_in_use(sqlite3 *db, uint32_t host_test_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT 1 FROM tests WHERE host_test_id = ?1 AND state IN"
                                        " ('pending', 'running', 'interrupted')");
    int rc;

    if (stmt == NULL) {
        return true;
    }
    sqlite3_bind_int64(stmt, 1, host_test_id);
    rc = sqlite3_step(stmt);
    db_release(stmt);
    return rc != SQLITE_DONE;
}

int db_test_create(sqlite3 *db, const char *lab, const char *stop_id, const char *instrument,
                   const char *specimen_id, uint32_t host_test_id, char id[RECORD_ID_SIZE])
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt;

    record_id_new(lab, id);
    db_now_text(now);
    stmt =
        db_prepare(db, "INSERT INTO tests (id, stop_id, instrument, specimen_id, created, updated,"
                       " host_test_id, state) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 'pending')");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {id, stop_id, instrument, specimen_id, now};
    db_bind_texts(stmt, 5, args);
    sqlite3_bind_int64(stmt, 6, host_test_id);
    return db_run_stmt(db, stmt);
}

static const char test_columns[] =
    "SELECT id, stop_id, instrument, specimen_id, host_test_id, state, reason FROM tests ";

static void read_test_columns(sqlite3_stmt *stmt, struct test_row *row)
{
    db_copy_column(stmt, 0, row->id, sizeof(row->id));
    db_copy_column(stmt, 1, row->stop_id, sizeof(row->stop_id));
    db_copy_column(stmt, 2, row->instrument, sizeof(row->instrument));
    db_copy_column(stmt, 3, row->specimen_id, sizeof(row->specimen_id));
    row->host_test_id = (uint32_t)sqlite3_column_int64(stmt, 4);
    db_copy_column(stmt, 5, row->state, sizeof(row->state));
    db_copy_column(stmt, 6, row->reason, sizeof(row->reason));
}

int db_test_get(sqlite3 *db, const char *test_id, struct test_row *row)
{
    char sql[256];
    sqlite3_stmt *stmt;
    int rc;

    snprintf(sql, sizeof(sql), "%s WHERE id = ?1", test_columns);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &test_id);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        read_test_columns(stmt, row);
    }
    db_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return -1;
    }
    return rc == SQLITE_ROW;
}

int db_test_set_state(sqlite3 *db, const char *test_id, const char *state, const char *reason)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt;

    db_now_text(now);
    stmt = db_prepare(db, "UPDATE tests SET state = ?2, reason = ?3, updated = ?4 WHERE id = ?1");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {test_id, state, reason, now};
    db_bind_texts(stmt, 4, args);
    return db_run_stmt(db, stmt);
}

int db_open_tests(sqlite3 *db, void (*visit)(const struct test_row *row, void *user), void *user)
{
    char sql[256];
    sqlite3_stmt *stmt;
    int rc;

    /* The first term is the WHERE of the partial index tests_open_host_id,
     * which SQLite uses only when a query repeats it. "+id" keeps the
     * planner from walking the whole table in ID order instead, which took
     * over a second at start-up on five million tests. */
    snprintf(sql, sizeof(sql),
             "%s WHERE state IN ('pending', 'running', 'interrupted') AND"
             " state IN ('pending', 'running') ORDER BY +id",
             test_columns);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    /* Rows are collected first because visit may change them. */
    struct test_row *rows = NULL;
    size_t count = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct test_row *grown = realloc(rows, (count + 1) * sizeof(*rows));
        if (grown == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        rows = grown;
        read_test_columns(stmt, &rows[count++]);
    }
    db_release(stmt);
    for (size_t i = 0; rc == SQLITE_DONE && i < count; i++) {
        visit(&rows[i], user);
    }
    free(rows);
    return rc == SQLITE_DONE ? 0 : -1;
}

int db_threshold_set_store(sqlite3 *db, const struct threshold_set *set)
{
    char now[TIMESTAMP_SIZE];
    const char *version = set->version;
    sqlite3_stmt *stmt;

    /* Each result calls this, and the set is stored already but for the
     * first, so a lookup spares copying the whole file into the statement. */
    int stored =
        find_id(db, "SELECT version FROM threshold_sets WHERE version = ?1", 1, &version, NULL, 0);
    if (stored != 0) {
        return stored < 0 ? -1 : 0;
    }
    db_now_text(now);
    stmt = db_prepare(db, "INSERT OR IGNORE INTO threshold_sets (version, label, canonical, loaded)"
                          " VALUES (?1, ?2, ?3, ?4)");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {set->version, set->label, set->canonical, now};
    db_bind_texts(stmt, 4, args);
    return db_run_stmt(db, stmt);
}

/* Binds the breath columns (?15..?25) of a result row, all NULL for other results. */
static void bind_breath(sqlite3_stmt *stmt, const struct driver_result *result,
                        const struct alcohol_config *alcohol)
{
    const struct driver_breath *breath = &result->breath;
    char blood[32];

    if (!breath->present) {
        return;
    }
    const char *outcome = breath->refused          ? "refused"
                          : result->invalid_reason ? "invalid"
                                                   : "measured";
    sqlite3_bind_text(stmt, 15, outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 24, alcohol->factor);
    sqlite3_bind_text(stmt, 25, alcohol->drink_limit, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 26, alcohol->drunk_limit, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt, 27, alcohol->source, -1, SQLITE_TRANSIENT);
    if (breath->refused) {
        return;
    }
    sqlite3_bind_int64(stmt, 16, breath->raw);
    sqlite3_bind_int(stmt, 17, (int)breath->flags);
    sqlite3_bind_int(stmt, 18, breath->temperature);
    if (result->invalid_reason == NULL) {
        int64_t blood_micro = alcohol_blood_micro(breath->raw, alcohol->factor);
        enum alcohol_band band =
            alcohol_band_of(blood_micro, alcohol->drink_micro, alcohol->drunk_micro);
        decimal_format(blood_micro, 3, blood, sizeof(blood));
        sqlite3_bind_text(stmt, 19, alcohol_band_name(band), -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 20, blood, -1, SQLITE_TRANSIENT);
    }
}

static int insert_result_row(sqlite3 *db, const char *id, const struct test_row *test,
                             const struct driver_result *result,
                             const struct result_context *context)
{
    char received[TIMESTAMP_SIZE];
    const struct driver_identity *identity = context->identity;
    sqlite3_stmt *stmt;

    db_now_text(received);
    stmt = db_prepare(db, "INSERT INTO results (id, test_id, instrument, serial, firmware,"
                          " calibration, cartridge_lot, cartridge_expiry, matrix, tier,"
                          " invalid_reason, received, timezone, threshold_version, breath_outcome,"
                          " breath_raw, breath_flags, temperature, alcohol_band, blood_equivalent,"
                          " host_test_id, sequence, clock_synced, alcohol_factor, drink_limit,"
                          " drunk_limit, alcohol_source, calibration_due, subject_id, specimen_id,"
                          " collected_date)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                          " ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28,"
                          " (SELECT subject_id FROM stops WHERE id = ?29), ?30, ?31)");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {id,
                          test->id,
                          test->instrument,
                          identity->serial,
                          identity->firmware,
                          identity->calibration,
                          identity->cartridge_lot,
                          identity->cartridge_expiry,
                          result->matrix,
                          result->tier,
                          result->invalid_reason,
                          received,
                          context->timezone,
                          context->thresholds->version};
    db_bind_texts(stmt, 14, args);
    bind_breath(stmt, result, context->alcohol);
    sqlite3_bind_int64(stmt, 21, result->host_test_id);
    sqlite3_bind_int64(stmt, 22, result->sequence);
    sqlite3_bind_int(stmt, 23, time_clock_synchronised());
    if (identity->calibration_due[0] != '\0') {
        sqlite3_bind_text(stmt, 28, identity->calibration_due, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_text(stmt, 29, test->stop_id, -1, SQLITE_TRANSIENT);
    if (test->specimen_id[0] != '\0') {
        sqlite3_bind_text(stmt, 30, test->specimen_id, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int(stmt, 31, context->collection_date);
    return db_run_stmt(db, stmt);
}

/* Inserts one analyte with stmt, the insert that db_result_analytes_store
 * prepared once for all of a result's analytes. Every parameter is bound
 * again, because the statement keeps the previous analyte's bindings. */
static int insert_analyte(sqlite3 *db, sqlite3_stmt *stmt, const char *result_id, int position,
                          const struct driver_analyte *analyte,
                          const struct interpretation *verdict)
{
    char value_text[32];
    const struct threshold_row *row = verdict->row;

    decimal_format(analyte->value_micro, 3, value_text, sizeof(value_text));
    const char *args[] = {result_id,
                          analyte->analyte,
                          value_text,
                          analyte->unit,
                          outcome_name(verdict->outcome),
                          verdict->outcome == OUTCOME_INVALID ? verdict->reason : NULL,
                          row ? row->cutoff_text : NULL,
                          row ? row->unit : NULL,
                          row ? row->source : NULL};
    db_bind_texts(stmt, 9, args);
    sqlite3_bind_int(stmt, 10, position);
    sqlite3_bind_int64(stmt, 11, analyte->value_micro);
    sqlite3_bind_int(stmt, 12, analyte->over_range);
    sqlite3_bind_int(stmt, 13, analyte->under_range);
    if (row) {
        sqlite3_bind_int(stmt, 14, row->line);
    } else {
        sqlite3_bind_null(stmt, 14);
    }
    return db_run_stmt(db, stmt);
}

int db_result_analytes_store(sqlite3 *db, const char *result_id, const char *matrix,
                             const char *tier, const struct driver_analyte *analytes, size_t count,
                             const char *panel_invalid, const struct threshold_set *thresholds,
                             int collection_date)
{
    sqlite3_stmt *stmt =
        db_prepare(db, "INSERT INTO result_analytes (result_id, analyte, value_text, unit,"
                       " outcome, reason, cutoff_text, cutoff_unit, threshold_source, position,"
                       " value_micro, over_range, under_range, threshold_line)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");

    if (stmt == NULL) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const struct driver_analyte *analyte = &analytes[i];
        struct reading_in in = {
            .matrix = matrix,
            .tier = tier,
            .analyte = analyte->analyte,
            .value_micro = analyte->value_micro,
            .unit = analyte->unit,
            .over_range = analyte->over_range,
            .under_range = analyte->under_range,
            .invalid_reason = panel_invalid ? panel_invalid : analyte->invalid_reason,
            .collection_date = collection_date,
        };
        struct interpretation verdict;
        interpret_reading(thresholds, &in, &verdict);
        if (insert_analyte(db, stmt, result_id, (int)i, analyte, &verdict) != 0) {
            return -1;
        }
    }
    return 0;
}

int db_result_store(sqlite3 *db, const char *lab, const struct test_row *test,
                    const struct driver_result *result, const struct result_context *context,
                    char id[RECORD_ID_SIZE])
{
    record_id_new(lab, id);
    if (db_threshold_set_store(db, context->thresholds) != 0 ||
        insert_result_row(db, id, test, result, context) != 0 ||
        db_result_analytes_store(db, id, result->matrix, result->tier, result->analytes,
                                 result->count, result->invalid_reason, context->thresholds,
                                 context->collection_date) != 0) {
        return -1;
    }
    return db_test_set_state(db, test->id, "completed", NULL);
}

int db_stop_ended(sqlite3 *db, const char *stop_id)
{
    const char *args[] = {stop_id};
    int open = find_id(db,
                       "SELECT id FROM tests WHERE stop_id = ?1 AND state IN ('pending',"
                       " 'running')",
                       1, args, NULL, 0);

    return open < 0 ? -1 : !open;
}

/* Appends one action for each row of a query on stop_id that selects two
 * text columns: prefix, first column, middle, second column, suffix. */
static int append_actions(sqlite3 *db, const char *sql, const char *stop_id,
                          const char *const parts[3], json_t *actions)
{
    sqlite3_stmt *stmt = db_prepare(db, sql);
    int rc;

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &stop_id);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        char action[256];
        const unsigned char *first = sqlite3_column_text(stmt, 0);
        const unsigned char *second = sqlite3_column_text(stmt, 1);
        snprintf(action, sizeof(action), "%s%s%s%s%s", parts[0], first ? (const char *)first : "",
                 parts[1], second ? (const char *)second : "", parts[2]);
        json_array_append_new(actions, json_string(action));
    }
    db_release(stmt);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Adds the follow-up for tests without a usable result: repeats for tests
 * that ended without one, and for results or analytes the analyzer or the
 * threshold set left invalid. */
static int add_repeat_actions(sqlite3 *db, const char *stop_id, json_t *actions)
{
    static const char unfinished[] =
        "SELECT instrument, state FROM tests WHERE stop_id = ?1 AND state IN ('failed',"
        " 'aborted', 'interrupted') ORDER BY created, id";
    static const char invalid_results[] =
        "SELECT t.instrument, r.invalid_reason FROM results r JOIN tests t ON t.id = r.test_id"
        " WHERE t.stop_id = ?1 AND r.invalid_reason IS NOT NULL AND"
        " (r.breath_outcome IS NULL OR r.breath_outcome <> 'refused') ORDER BY t.created, t.id";
    static const char invalid_analytes[] =
        "SELECT a.analyte, a.reason FROM result_analytes a JOIN results r ON r.id = a.result_id"
        " JOIN tests t ON t.id = r.test_id WHERE t.stop_id = ?1 AND r.invalid_reason IS NULL"
        " AND a.outcome = 'invalid' ORDER BY t.created, a.position";

    static const char *const repeat[3] = {"repeat the test: ", " ", ""};
    static const char *const repeat_invalid[3] = {"repeat the test: ", " result invalid (", ")"};
    static const char *const not_screened[3] = {"", " not screened: ", ""};

    if (append_actions(db, unfinished, stop_id, repeat, actions) != 0 ||
        append_actions(db, invalid_results, stop_id, repeat_invalid, actions) != 0) {
        return -1;
    }
    return append_actions(db, invalid_analytes, stop_id, not_screened, actions);
}

/* Facts about a stop, beyond its drug results, that its decision needs. */
struct stop_facts {
    bool drunk;        /* a breath result in the drunk-driving band */
    bool refused;      /* a refused breath test */
    bool breath;       /* any breath result */
    bool drinking;     /* a breath result in the drink- or drunk-driving band */
    bool disputed;     /* a dispute note */
    bool crash;        /* a crash note */
    bool needs_repeat; /* a test ended without a result, or a result or analyte is invalid */
};

/* Reads the stop's facts with one statement: one pass over its results, and
 * index lookups for the notes and for anything to repeat. */
static int read_stop_facts(sqlite3 *db, const char *stop_id, struct stop_facts *facts)
{
    sqlite3_stmt *stmt = db_prepare(
        db, "SELECT sum(r.alcohol_band = 'drunk'), sum(r.breath_outcome = 'refused'),"
            " sum(r.breath_outcome IS NOT NULL), sum(r.alcohol_band IN ('drink', 'drunk')),"
            " (SELECT count(*) FROM stop_notes WHERE stop_id = ?1 AND kind = 'dispute'),"
            " (SELECT count(*) FROM stop_notes WHERE stop_id = ?1 AND kind = 'crash'),"
            " sum(r.invalid_reason IS NOT NULL) OR EXISTS (SELECT 1 FROM tests u WHERE"
            " u.stop_id = ?1 AND u.state IN ('failed', 'aborted', 'interrupted')) OR EXISTS"
            " (SELECT 1 FROM tests u JOIN results v ON v.test_id = u.id JOIN result_analytes a"
            " ON a.result_id = v.id WHERE u.stop_id = ?1 AND a.outcome = 'invalid')"
            " FROM tests t JOIN results r ON r.test_id = t.id WHERE t.stop_id = ?1");

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &stop_id);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        db_release(stmt);
        return -1;
    }
    /* A sum over no rows is NULL, which reads as 0. */
    *facts = (struct stop_facts){
        .drunk = sqlite3_column_int(stmt, 0) > 0,
        .refused = sqlite3_column_int(stmt, 1) > 0,
        .breath = sqlite3_column_int(stmt, 2) > 0,
        .drinking = sqlite3_column_int(stmt, 3) > 0,
        .disputed = sqlite3_column_int(stmt, 4) > 0,
        .crash = sqlite3_column_int(stmt, 5) > 0,
        .needs_repeat = sqlite3_column_int(stmt, 6) > 0,
    };
    db_release(stmt);
    return 0;
}

/* Writes the reasons for a blood sample in this stop, joined with "; ",
 * under the configured triggers; empty when none applies. */
static void blood_reasons(const struct stop_facts *facts, const struct alcohol_config *alcohol,
                          char *out, size_t size)
{
    const struct {
        unsigned trigger;
        bool applies;
        const char *reason;
    } reasons[] = {
        {BLOOD_ON_DRUNK, facts->drunk, "drunk-driving breath result"},
        {BLOOD_ON_REFUSAL, facts->refused, "refused the breath test"},
        {BLOOD_ON_DISPUTE, facts->disputed && facts->breath, "breath result disputed"},
        {BLOOD_ON_CRASH, facts->crash && facts->drinking, "crash after drinking"},
    };

    out[0] = '\0';
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if ((alcohol->blood_on & reasons[i].trigger) && reasons[i].applies) {
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s%s", used ? "; " : "", reasons[i].reason);
        }
    }
}

/* Runs the flag rules on the stop's own drug results. Fills the fired
 * rules ({"id", "text"}) and the result IDs they rest on; returns the
 * decision ("flag" or "none"), or NULL on error. */
static const char *screen_rules(sqlite3 *db, const char *stop_id, const struct rule_set *rules,
                                json_t *fired, json_t *evidence)
{
    json_t *document = db_evidence_json(db, NULL, stop_id);
    struct evidence input;
    char err[256];
    size_t i;
    const json_t *rule;

    if (document == NULL || evidence_read(document, &input, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "stop %s: reading its results for the decision failed", stop_id);
        json_decref(document);
        return NULL;
    }
    json_t *decision =
        engine_decide(rules, &input, QUESTION_STOP, time_local_date(time_realtime_ms()));
    json_array_foreach(json_object_get(decision, "rules"), i, rule)
    {
        size_t j;
        const json_t *item;
        json_array_append_new(fired, json_pack("{sO sO}", "id", json_object_get(rule, "id"), "text",
                                               json_object_get(rule, "text")));
        json_array_foreach(json_object_get(rule, "evidence"), j, item)
        {
            json_array_append(evidence, json_object_get(item, "result"));
        }
    }
    const char *name = json_array_size(fired) > 0 ? "flag" : "none";
    json_decref(decision);
    evidence_free(&input);
    json_decref(document);
    return name;
}

static int insert_decision(sqlite3 *db, const char *id, const char *stop_id, const char *decision,
                           json_t *rules, json_t *evidence, json_t *actions)
{
    char now[TIMESTAMP_SIZE];
    char *rules_text = json_dumps(rules, JSON_COMPACT);
    char *evidence_text = json_dumps(evidence, JSON_COMPACT);
    char *actions_text = json_dumps(actions, JSON_COMPACT);
    sqlite3_stmt *stmt;
    int status = -1;

    db_now_text(now);
    stmt = db_prepare(db, "INSERT INTO decisions (id, stop_id, subject_id, question, decision,"
                          " rules, evidence, actions, created) SELECT ?1, id, subject_id, 'screen',"
                          " ?3, ?4, ?5, ?6, ?7 FROM stops WHERE id = ?2");
    if (stmt != NULL && rules_text && evidence_text && actions_text) {
        const char *args[] = {id, stop_id, decision, rules_text, evidence_text, actions_text, now};
        db_bind_texts(stmt, 7, args);
        status = db_run_stmt(db, stmt);
        stmt = NULL;
    }
    db_release(stmt);
    free(rules_text);
    free(evidence_text);
    free(actions_text);
    return status;
}

int db_stop_decide(sqlite3 *db, const char *lab, const char *stop_id,
                   const struct alcohol_config *alcohol, const struct rule_set *rules)
{
    char id[RECORD_ID_SIZE];
    char blood[256];
    json_t *fired = json_array();
    json_t *evidence = json_array();
    json_t *actions = json_array();
    const char *decision = NULL;
    struct stop_facts facts;
    int status = -1;

    if (read_stop_facts(db, stop_id, &facts) == 0) {
        blood_reasons(&facts, alcohol, blood, sizeof(blood));
        decision = screen_rules(db, stop_id, rules, fired, evidence);
    }
    if (decision != NULL) {
        if (blood[0] != '\0') {
            char action[300];
            snprintf(action, sizeof(action), "blood sample required (%s)", blood);
            json_array_append_new(actions, json_string(action));
        }
        if (json_array_size(fired) > 0) {
            json_array_append_new(actions, json_string("laboratory specimen required"));
        }
        if (!facts.needs_repeat || add_repeat_actions(db, stop_id, actions) == 0) {
            record_id_new(lab, id);
            status = insert_decision(db, id, stop_id, decision, fired, evidence, actions);
        }
    }
    json_decref(fired);
    json_decref(evidence);
    json_decref(actions);
    return status;
}

int db_stop_decide_if_ended(sqlite3 *db, const char *lab, const char *stop_id,
                            const struct alcohol_config *alcohol, const struct rule_set *rules)
{
    int ended = db_stop_ended(db, stop_id);

    if (ended <= 0) {
        return ended;
    }
    return db_stop_decide(db, lab, stop_id, alcohol, rules) == 0 ? 1 : -1;
}

/* Sets key to the text of a column, omitting it when the column is NULL. */
void db_set_text_column(json_t *obj, const char *key, sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);

    if (text != NULL) {
        json_object_set_new(obj, key, json_string((const char *)text));
    }
}

/* Sets key to an object, or omits the key (and frees the object) when empty. */
static void set_unless_empty(json_t *obj, const char *key, json_t *value)
{
    if (json_object_size(value) == 0) {
        json_decref(value);
        return;
    }
    json_object_set_new(obj, key, value);
}

/* Sets key to a JSON value stored as text in a column. */
static void set_json_column(json_t *obj, const char *key, sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    json_t *value = text ? json_loads((const char *)text, 0, NULL) : NULL;

    if (value != NULL) {
        json_object_set_new(obj, key, value);
    }
}

static json_t *subject_brief(sqlite3 *db, const char *subject_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT id, id_type, number, created FROM subjects"
                                        " WHERE id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &subject_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        char masked[SUBJECT_MASKED_MAX];
        subject_id_mask((const char *)sqlite3_column_text(stmt, 2), masked, sizeof(masked));
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        db_set_text_column(obj, "type", stmt, 1);
        db_set_text_column(obj, "number", stmt, 2);
        json_object_set_new(obj, "masked", json_string(masked));
        db_set_text_column(obj, "created", stmt, 3);
    }
    db_release(stmt);
    return obj;
}

static json_t *analytes_json(sqlite3 *db, const char *result_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT analyte, value_text, unit, outcome, reason,"
                                        " cutoff_text, cutoff_unit, threshold_line,"
                                        " threshold_source, over_range, under_range"
                                        " FROM result_analytes WHERE result_id = ?1"
                                        " ORDER BY position");
    json_t *list = json_array();

    if (stmt == NULL) {
        return list;
    }
    db_bind_texts(stmt, 1, &result_id);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *item = json_object();
        json_t *flags = json_array();
        db_set_text_column(item, "analyte", stmt, 0);
        db_set_text_column(item, "value", stmt, 1);
        db_set_text_column(item, "unit", stmt, 2);
        db_set_text_column(item, "outcome", stmt, 3);
        db_set_text_column(item, "reason", stmt, 4);
        db_set_text_column(item, "cutoff", stmt, 5);
        db_set_text_column(item, "cutoff_unit", stmt, 6);
        if (sqlite3_column_type(stmt, 7) != SQLITE_NULL) {
            json_object_set_new(item, "threshold_row", json_integer(sqlite3_column_int(stmt, 7)));
        }
        db_set_text_column(item, "source", stmt, 8);
        if (sqlite3_column_int(stmt, 9)) {
            json_array_append_new(flags, json_string("over-range"));
        }
        if (sqlite3_column_int(stmt, 10)) {
            json_array_append_new(flags, json_string("under-range"));
        }
        json_object_set_new(item, "flags", flags);
        json_array_append_new(list, item);
    }
    db_release(stmt);
    return list;
}

/* Builds the breath object from the result columns starting at `first`:
 * outcome, raw, flags, temperature, band, blood equivalent, factor, drink
 * and drunk limits, source. */
static json_t *breath_json(sqlite3_stmt *stmt, int first)
{
    static const struct {
        unsigned bit;
        const char *name;
    } flag_names[] = {{BREATH_FLAG_INSUFFICIENT_VOLUME, "insufficient-volume"},
                      {BREATH_FLAG_INTERRUPTED_BLOW, "interrupted-blow"},
                      {BREATH_FLAG_MOUTH_ALCOHOL, "mouth-alcohol"},
                      {BREATH_FLAG_TEMPERATURE, "temperature"}};
    json_t *obj = json_object();
    json_t *flags = json_array();
    char text[32];

    db_set_text_column(obj, "outcome", stmt, first);
    if (sqlite3_column_type(stmt, first + 1) != SQLITE_NULL) {
        int64_t raw = sqlite3_column_int64(stmt, first + 1);
        decimal_format(raw * (DECIMAL_SCALE / BREATH_ALCOHOL_SCALE), 1, text, sizeof(text));
        json_object_set_new(obj, "value", json_string(text));
        json_object_set_new(obj, "unit", json_string("ug/L"));
        json_object_set_new(obj, "raw", json_integer(raw));
        decimal_format((int64_t)sqlite3_column_int(stmt, first + 3) * (DECIMAL_SCALE / 10), 1, text,
                       sizeof(text));
        json_object_set_new(obj, "temperature", json_string(text));
    }
    db_set_text_column(obj, "band", stmt, first + 4);
    db_set_text_column(obj, "blood_equivalent", stmt, first + 5);
    if (sqlite3_column_type(stmt, first + 5) != SQLITE_NULL) {
        json_object_set_new(obj, "blood_unit", json_string("mg/100mL"));
    }
    snprintf(text, sizeof(text), "%d", sqlite3_column_int(stmt, first + 6));
    json_object_set_new(obj, "factor", json_string(text));
    db_set_text_column(obj, "drink_limit", stmt, first + 7);
    db_set_text_column(obj, "drunk_limit", stmt, first + 8);
    db_set_text_column(obj, "source", stmt, first + 9);
    unsigned bits = (unsigned)sqlite3_column_int(stmt, first + 2);
    for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
        if (bits & flag_names[i].bit) {
            json_array_append_new(flags, json_string(flag_names[i].name));
        }
    }
    json_object_set_new(obj, "flags", flags);
    return obj;
}

static json_t *result_json(sqlite3 *db, const char *test_id)
{
    sqlite3_stmt *stmt = db_prepare(
        db, "SELECT r.id, r.test_id, r.instrument, r.serial, r.firmware, r.calibration,"
            " r.cartridge_lot, r.cartridge_expiry, r.matrix, r.tier, r.invalid_reason,"
            " r.received, r.clock_synced, r.timezone, r.threshold_version, ts.label,"
            " s.barcode, s.collected, r.host_test_id, r.sequence, r.calibration_due,"
            " r.breath_outcome, r.breath_raw, r.breath_flags, r.temperature, r.alcohol_band,"
            " r.blood_equivalent, r.alcohol_factor, r.drink_limit, r.drunk_limit,"
            " r.alcohol_source"
            " FROM results r JOIN threshold_sets ts ON ts.version = r.threshold_version"
            " JOIN tests t ON t.id = r.test_id LEFT JOIN specimens s ON s.id = t.specimen_id"
            " WHERE r.test_id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &test_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        db_set_text_column(obj, "test", stmt, 1);
        db_set_text_column(obj, "instrument", stmt, 2);
        db_set_text_column(obj, "serial", stmt, 3);
        db_set_text_column(obj, "firmware", stmt, 4);
        db_set_text_column(obj, "calibration", stmt, 5);
        json_t *cartridge = json_object();
        db_set_text_column(cartridge, "lot", stmt, 6);
        db_set_text_column(cartridge, "expiry", stmt, 7);
        set_unless_empty(obj, "cartridge", cartridge);
        json_object_set_new(obj, "host_test_id", json_integer(sqlite3_column_int64(stmt, 18)));
        json_object_set_new(obj, "sequence", json_integer(sqlite3_column_int64(stmt, 19)));
        db_set_text_column(obj, "matrix", stmt, 8);
        db_set_text_column(obj, "tier", stmt, 9);
        db_set_text_column(obj, "invalid_reason", stmt, 10);
        db_set_text_column(obj, "received", stmt, 11);
        json_object_set_new(obj, "clock_synced", json_boolean(sqlite3_column_int(stmt, 12)));
        db_set_text_column(obj, "timezone", stmt, 13);
        json_t *specimen = json_object();
        db_set_text_column(specimen, "barcode", stmt, 16);
        db_set_text_column(specimen, "collected", stmt, 17);
        set_unless_empty(obj, "specimen", specimen);
        json_t *thresholds = json_object();
        db_set_text_column(thresholds, "version", stmt, 14);
        db_set_text_column(thresholds, "label", stmt, 15);
        json_object_set_new(obj, "thresholds", thresholds);
        db_set_text_column(obj, "calibration_due", stmt, 20);
        char result_id[RECORD_ID_SIZE];
        db_copy_column(stmt, 0, result_id, sizeof(result_id));
        if (sqlite3_column_type(stmt, 21) != SQLITE_NULL) {
            json_t *breath = breath_json(stmt, 21);
            db_set_text_column(breath, "reason", stmt, 10);
            json_object_set_new(obj, "breath", breath);
        } else {
            json_object_set_new(obj, "analytes", analytes_json(db, result_id));
        }
    }
    db_release(stmt);
    return obj;
}

json_t *db_test_json(sqlite3 *db, const char *test_id)
{
    sqlite3_stmt *stmt =
        db_prepare(db, "SELECT t.id, t.stop_id, t.instrument, s.barcode,"
                       " t.host_test_id, t.state, t.reason, t.created, t.updated"
                       " FROM tests t LEFT JOIN specimens s ON s.id = t.specimen_id"
                       " WHERE t.id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &test_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        db_set_text_column(obj, "stop", stmt, 1);
        db_set_text_column(obj, "instrument", stmt, 2);
        db_set_text_column(obj, "specimen", stmt, 3);
        json_object_set_new(obj, "host_test_id", json_integer(sqlite3_column_int64(stmt, 4)));
        db_set_text_column(obj, "state", stmt, 5);
        db_set_text_column(obj, "reason", stmt, 6);
        db_set_text_column(obj, "created", stmt, 7);
        db_set_text_column(obj, "updated", stmt, 8);
        json_t *result = result_json(db, test_id);
        if (result != NULL) {
            json_object_set_new(obj, "result", result);
        }
    }
    db_release(stmt);
    return obj;
}

static json_t *decision_json(sqlite3 *db, const char *stop_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT id, question, decision, rules, evidence, actions,"
                                        " created FROM decisions WHERE stop_id = ?1"
                                        " ORDER BY rowid DESC LIMIT 1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &stop_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        db_set_text_column(obj, "question", stmt, 1);
        db_set_text_column(obj, "decision", stmt, 2);
        set_json_column(obj, "rules", stmt, 3);
        set_json_column(obj, "evidence", stmt, 4);
        set_json_column(obj, "actions", stmt, 5);
        db_set_text_column(obj, "created", stmt, 6);
    }
    db_release(stmt);
    return obj;
}

/* Appends the JSON of every row's first column, built by make, to list. */
static void append_each(sqlite3 *db, const char *sql, const char *key, json_t *list,
                        json_t *(*make)(sqlite3 *, const char *))
{
    sqlite3_stmt *stmt = db_prepare(db, sql);

    if (stmt == NULL) {
        return;
    }
    db_bind_texts(stmt, 1, &key);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *item = make(db, (const char *)sqlite3_column_text(stmt, 0));
        if (item != NULL) {
            json_array_append_new(list, item);
        }
    }
    db_release(stmt);
}

static json_t *notes_json(sqlite3 *db, const char *stop_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT kind, created FROM stop_notes WHERE stop_id = ?1"
                                        " ORDER BY created, rowid");
    json_t *list = json_array();

    if (stmt == NULL) {
        return list;
    }
    db_bind_texts(stmt, 1, &stop_id);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *note = json_object();
        db_set_text_column(note, "kind", stmt, 0);
        db_set_text_column(note, "created", stmt, 1);
        json_array_append_new(list, note);
    }
    db_release(stmt);
    return list;
}

json_t *db_stop_json(sqlite3 *db, const char *stop_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT id, subject_id, driving, opened FROM stops"
                                        " WHERE id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &stop_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *subject = subject_brief(db, (const char *)sqlite3_column_text(stmt, 1));
        json_t *tests = json_array();
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        if (subject != NULL) {
            json_object_del(subject, "number");
            json_object_del(subject, "created");
            json_object_set_new(obj, "subject", subject);
        }
        json_object_set_new(obj, "driving", json_boolean(sqlite3_column_int(stmt, 2)));
        db_set_text_column(obj, "opened", stmt, 3);
        append_each(db, "SELECT id FROM tests WHERE stop_id = ?1 ORDER BY rowid", stop_id, tests,
                    db_test_json);
        json_object_set_new(obj, "tests", tests);
        json_object_set_new(obj, "notes", notes_json(db, stop_id));
        json_t *decision = db_stop_ended(db, stop_id) == 1 ? decision_json(db, stop_id) : NULL;
        if (decision != NULL) {
            json_object_set_new(obj, "decision", decision);
        }
    }
    db_release(stmt);
    return obj;
}

static json_t *specimen_json(sqlite3 *db, const char *specimen_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT id, barcode, matrix, subject_id, stop_id, collected"
                                        " FROM specimens WHERE id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &specimen_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        obj = json_object();
        db_set_text_column(obj, "id", stmt, 0);
        db_set_text_column(obj, "barcode", stmt, 1);
        db_set_text_column(obj, "matrix", stmt, 2);
        db_set_text_column(obj, "subject", stmt, 3);
        db_set_text_column(obj, "stop", stmt, 4);
        db_set_text_column(obj, "collected", stmt, 5);
    }
    db_release(stmt);
    return obj;
}

json_t *db_specimen_json(sqlite3 *db, const char *specimen_id)
{
    return specimen_json(db, specimen_id);
}

json_t *db_subject_json(sqlite3 *db, const char *subject_id, bool with_history)
{
    json_t *obj = subject_brief(db, subject_id);

    if (obj == NULL || !with_history) {
        return obj;
    }
    json_t *specimens = json_array();
    json_t *stops = json_array();
    append_each(db, "SELECT id FROM specimens WHERE subject_id = ?1 ORDER BY created, id",
                subject_id, specimens, specimen_json);
    append_each(db, "SELECT id FROM stops WHERE subject_id = ?1 ORDER BY opened, id", subject_id,
                stops, db_stop_json);
    json_object_set_new(obj, "specimens", specimens);
    json_object_set_new(obj, "stops", stops);
    json_object_set_new(obj, "laboratory_results", db_hair_subject_results_json(db, subject_id));
    return obj;
}

int db_specimen_collection_date(sqlite3 *db, const char *specimen_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT collected_date FROM specimens WHERE id = ?1");
    int date = 0;

    if (stmt == NULL) {
        return 0;
    }
    db_bind_texts(stmt, 1, &specimen_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        date = sqlite3_column_int(stmt, 0);
    }
    db_release(stmt);
    return date;
}

int db_result_exists(sqlite3 *db, const char *serial, uint32_t sequence, uint32_t host_test_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT 1 FROM results WHERE serial = ?1 AND sequence = ?2"
                                        " AND host_test_id = ?3");
    int rc;

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &serial);
    sqlite3_bind_int64(stmt, 2, sequence);
    sqlite3_bind_int64(stmt, 3, host_test_id);
    rc = sqlite3_step(stmt);
    db_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return -1;
    }
    return rc == SQLITE_ROW;
}

int db_test_find_by_host_id(sqlite3 *db, const char *instrument, uint32_t host_test_id,
                            struct test_row *row)
{
    char sql[320];
    sqlite3_stmt *stmt;
    int rc;

    snprintf(sql, sizeof(sql),
             "%s WHERE instrument = ?1 AND host_test_id = ?2 AND state IN ('pending', 'running',"
             " 'interrupted')",
             test_columns);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &instrument);
    sqlite3_bind_int64(stmt, 2, host_test_id);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        read_test_columns(stmt, row);
    }
    db_release(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return -1;
    }
    return rc == SQLITE_ROW;
}

int db_stop_note_add(sqlite3 *db, const char *stop_id, const char *kind, unsigned uid)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt;

    db_now_text(now);
    stmt = db_prepare(
        db, "INSERT INTO stop_notes (stop_id, kind, created, uid) VALUES (?1, ?2, ?3, ?4)");
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {stop_id, kind, now};
    db_bind_texts(stmt, 3, args);
    sqlite3_bind_int64(stmt, 4, uid);
    return db_run_stmt(db, stmt);
}

int db_specimen_busy_tests(sqlite3 *db, const char *specimen_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT count(*) FROM tests WHERE specimen_id = ?1 AND"
                                        " state IN ('pending', 'running', 'completed')");
    int count = -1;

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &specimen_id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        count = sqlite3_column_int(stmt, 0);
    }
    db_release(stmt);
    return count;
}
