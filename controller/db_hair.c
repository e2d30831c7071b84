#include "controller/db_hair.h"

#include "controller/db.h"
#include "controller/db_internal.h"
#include "controller/log.h"
#include "controller/timefmt.h"

#include <stdio.h>
#include <string.h>

/* astm_results: one row per uploaded result, with P.3 as sent, why it is
 * unlinked (NULL once the upload itself linked it) and the message digest
 * that spots a resend. result_links: the analyst's link of an unlinked
 * result. Both are append-only. */
static const char hair_schema[] =
    "CREATE TABLE IF NOT EXISTS hair_segments ("
    " specimen_id TEXT PRIMARY KEY REFERENCES specimens(id), length_cm TEXT, position TEXT);"
    "CREATE TABLE IF NOT EXISTS astm_results ("
    " result_id TEXT PRIMARY KEY REFERENCES results(id), instrument TEXT NOT NULL,"
    " digest TEXT NOT NULL, subject_reference TEXT, unlinked_reason TEXT,"
    " UNIQUE (instrument, digest));"
    "CREATE TABLE IF NOT EXISTS result_links ("
    " result_id TEXT NOT NULL UNIQUE REFERENCES results(id),"
    " subject_id TEXT NOT NULL REFERENCES subjects(id),"
    " specimen_id TEXT NOT NULL REFERENCES specimens(id), reason TEXT NOT NULL,"
    " uid INTEGER NOT NULL, created TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS result_links_subject ON result_links (subject_id);";

int db_hair_schema(sqlite3 *db)
{
    static const char *const tables[] = {"hair_segments", "astm_results", "result_links"};

    if (db_exec_sql(db, hair_schema) != 0) {
        return -1;
    }
    return db_make_append_only(db, tables, sizeof(tables) / sizeof(tables[0]));
}

int db_hair_segment_add(sqlite3 *db, const char *specimen_id, const char *length,
                        const char *position)
{
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO hair_segments (specimen_id, length_cm,"
                                        " position) VALUES (?1, ?2, ?3)");

    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {specimen_id, length, position};
    db_bind_texts(stmt, 3, args);
    return db_run_stmt(db, stmt);
}

/* Runs a query with text arguments and copies the first column of its
 * first row. Returns 1, 0 for no row, -1 on error. */
static int first_text(sqlite3 *db, const char *sql, int count, const char *const *args, char *out,
                      size_t size)
{
    sqlite3_stmt *stmt = db_prepare(db, sql);

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, count, args);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && out != NULL) {
        db_copy_column(stmt, 0, out, size);
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

int db_hair_seen(sqlite3 *db, const char *instrument, const char *digest)
{
    const char *args[] = {instrument, digest};

    return first_text(db,
                      "SELECT result_id FROM astm_results WHERE instrument = ?1 AND digest = ?2", 2,
                      args, NULL, 0);
}

/* Finds the newest result of the barcode that nothing supersedes yet:
 * the one a correction replaces. */
static int find_superseded(sqlite3 *db, const char *barcode, char id[RECORD_ID_SIZE])
{
    const char *args[] = {barcode};

    return first_text(db,
                      "SELECT r.id FROM results r JOIN astm_results a ON a.result_id = r.id"
                      " WHERE r.barcode = ?1 AND r.status <> 'preliminary' AND NOT EXISTS"
                      " (SELECT 1 FROM results later WHERE later.supersedes = r.id)"
                      " ORDER BY r.rowid DESC LIMIT 1",
                      1, args, id, RECORD_ID_SIZE);
}

static int insert_result(sqlite3 *db, const char *id, const struct hair_result_in *in,
                         const char *supersedes, const struct threshold_set *thresholds)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(
        db, "INSERT INTO results (id, subject_id, specimen_id, status, supersedes, barcode,"
            " reported, instrument, serial, matrix, tier, received, timezone, threshold_version,"
            " collected_date, clock_synced)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'hair', ?10, ?11, ?12, ?13, ?14, ?15)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    const char *args[] = {id,          in->subject_id, in->specimen_id,    in->status, supersedes,
                          in->barcode, in->reported,   in->instrument,     in->serial, in->tier,
                          now,         in->timezone,   thresholds->version};
    db_bind_texts(stmt, 13, args);
    sqlite3_bind_int(stmt, 14, in->collected_date);
    sqlite3_bind_int(stmt, 15, time_clock_synchronised());
    if (db_run_stmt(db, stmt) != 0) {
        return -1;
    }
    stmt = db_prepare(db, "INSERT INTO astm_results (result_id, instrument, digest,"
                          " subject_reference, unlinked_reason) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (stmt == NULL) {
        return -1;
    }
    const char *astm_args[] = {id, in->instrument, in->digest, in->subject_ref,
                               in->unlinked_reason};
    db_bind_texts(stmt, 5, astm_args);
    return db_run_stmt(db, stmt);
}

int db_hair_result_store(sqlite3 *db, const char *lab, const struct hair_result_in *in,
                         const struct threshold_set *thresholds, char id[RECORD_ID_SIZE])
{
    char superseded[RECORD_ID_SIZE] = "";

    if (strcmp(in->status, "correction") == 0 && find_superseded(db, in->barcode, superseded) < 0) {
        return -1;
    }
    record_id_new(lab, id);
    if (db_threshold_set_store(db, thresholds) != 0 ||
        insert_result(db, id, in, superseded, thresholds) != 0) {
        return -1;
    }
    /* An unlinked result has no collection date yet: it is judged by
     * today's thresholds, and the judgement stays with the row. */
    int judged_on =
        in->collected_date != 0 ? in->collected_date : time_local_date(time_realtime_ms());
    return db_result_analytes_store(db, id, "hair", in->tier, in->analytes, in->count, NULL,
                                    thresholds, judged_on);
}

/* Columns shared by the result listings; the owner is the direct subject
 * or the analyst's link. */
static const char lab_result_columns[] =
    "SELECT r.id, r.barcode, r.status, r.supersedes, r.tier, r.instrument, r.serial,"
    " r.reported, r.received, a.subject_reference, a.unlinked_reason,"
    " COALESCE(r.subject_id, l.subject_id), l.reason, l.uid, l.created,"
    " (SELECT MIN(created) FROM result_releases rr WHERE rr.result_id = r.id),"
    " (SELECT uid FROM result_releases rr WHERE rr.result_id = r.id ORDER BY rowid LIMIT 1),"
    " r.collected_date"
    " FROM results r JOIN astm_results a ON a.result_id = r.id"
    " LEFT JOIN result_links l ON l.result_id = r.id ";

static json_t *analytes_json(sqlite3 *db, const char *result_id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT analyte, value_text, unit, outcome, reason,"
                                        " cutoff_text, cutoff_unit FROM result_analytes"
                                        " WHERE result_id = ?1 ORDER BY position");
    json_t *list = json_array();

    if (stmt == NULL) {
        return list;
    }
    db_bind_texts(stmt, 1, &result_id);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *entry = json_object();
        static const char *const keys[] = {"analyte", "value",  "unit",       "outcome",
                                           "reason",  "cutoff", "cutoff_unit"};
        for (int i = 0; i < 7; i++) {
            db_set_text_column(entry, keys[i], stmt, i);
        }
        json_array_append_new(list, entry);
    }
    sqlite3_finalize(stmt);
    return list;
}

static json_t *lab_result_row_json(sqlite3 *db, sqlite3_stmt *stmt)
{
    json_t *obj = json_object();
    static const char *const keys[] = {
        "id",       "barcode",           "status",          "supersedes",
        "tier",     "instrument",        "serial",          "reported",
        "received", "subject_reference", "unlinked_reason", "subject"};
    char id[RECORD_ID_SIZE];

    for (int i = 0; i < 12; i++) {
        db_set_text_column(obj, keys[i], stmt, i);
    }
    json_object_set_new(obj, "matrix", json_string("hair"));
    if (sqlite3_column_type(stmt, 12) != SQLITE_NULL) {
        json_t *link = json_object();
        db_set_text_column(link, "reason", stmt, 12);
        json_object_set_new(link, "uid", json_integer(sqlite3_column_int64(stmt, 13)));
        db_set_text_column(link, "recorded", stmt, 14);
        json_object_set_new(obj, "link", link);
        json_object_del(obj, "unlinked_reason");
    }
    if (sqlite3_column_type(stmt, 15) != SQLITE_NULL) {
        json_t *release = json_object();
        json_object_set_new(release, "uid", json_integer(sqlite3_column_int64(stmt, 16)));
        db_set_text_column(release, "recorded", stmt, 15);
        json_object_set_new(obj, "release", release);
    } else {
        json_object_set_new(obj, "awaiting_review", json_true());
    }
    db_copy_column(stmt, 0, id, sizeof(id));
    json_object_set_new(obj, "analytes", analytes_json(db, id));
    return obj;
}

static json_t *lab_results(sqlite3 *db, const char *condition, const char *arg)
{
    char sql[1536];
    json_t *list = json_array();

    snprintf(sql, sizeof(sql), "%s WHERE %s ORDER BY r.rowid", lab_result_columns, condition);
    sqlite3_stmt *stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        json_decref(list);
        return NULL;
    }
    if (arg != NULL) {
        db_bind_texts(stmt, 1, &arg);
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_array_append_new(list, lab_result_row_json(db, stmt));
    }
    sqlite3_finalize(stmt);
    return list;
}

json_t *db_hair_unlinked_json(sqlite3 *db)
{
    return lab_results(db, "r.subject_id IS NULL AND l.result_id IS NULL", NULL);
}

json_t *db_hair_subject_results_json(sqlite3 *db, const char *subject_id)
{
    json_t *results = lab_results(db, "COALESCE(r.subject_id, l.subject_id) = ?1", subject_id);

    return results != NULL ? results : json_array();
}

json_t *db_hair_result_json(sqlite3 *db, const char *result_id)
{
    json_t *list = lab_results(db, "r.id = ?1", result_id);
    json_t *first = json_incref(json_array_get(list, 0));

    json_decref(list);
    return first;
}

json_t *db_hair_specimen_json(sqlite3 *db, const char *specimen_id)
{
    json_t *specimen = db_specimen_json(db, specimen_id);
    sqlite3_stmt *stmt;

    if (specimen == NULL) {
        return NULL;
    }
    stmt = db_prepare(db, "SELECT length_cm, position FROM hair_segments WHERE specimen_id = ?1");
    if (stmt != NULL) {
        db_bind_texts(stmt, 1, &specimen_id);
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            json_t *segment = json_object();
            db_set_text_column(segment, "length_cm", stmt, 0);
            db_set_text_column(segment, "position", stmt, 1);
            json_object_set_new(specimen, "segment", segment);
        }
        sqlite3_finalize(stmt);
    }
    json_t *results = lab_results(db, "COALESCE(r.specimen_id, l.specimen_id) = ?1", specimen_id);
    json_object_set_new(specimen, "results", results ? results : json_array());
    return specimen;
}

int db_hair_result_state(sqlite3 *db, const char *result_id, struct hair_result_state *state)
{
    sqlite3_stmt *stmt = db_prepare(
        db, "SELECT r.status, COALESCE(r.subject_id, l.subject_id), l.result_id IS NOT NULL,"
            " EXISTS (SELECT 1 FROM result_releases rr WHERE rr.result_id = r.id)"
            " FROM results r JOIN astm_results a ON a.result_id = r.id"
            " LEFT JOIN result_links l ON l.result_id = r.id WHERE r.id = ?1");

    if (stmt == NULL) {
        return -1;
    }
    db_bind_texts(stmt, 1, &result_id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        db_copy_column(stmt, 0, state->status, sizeof(state->status));
        db_copy_column(stmt, 1, state->subject_id, sizeof(state->subject_id));
        state->linked_by_analyst = sqlite3_column_int(stmt, 2) != 0;
        state->released = sqlite3_column_int(stmt, 3) != 0;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

int db_hair_link(sqlite3 *db, const char *result_id, const char *subject_id,
                 const char *specimen_id, const char *reason, unsigned uid)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO result_links (result_id, subject_id,"
                                        " specimen_id, reason, created, uid)"
                                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    const char *args[] = {result_id, subject_id, specimen_id, reason, now};
    db_bind_texts(stmt, 5, args);
    sqlite3_bind_int64(stmt, 6, uid);
    return db_run_stmt(db, stmt);
}

int db_hair_release(sqlite3 *db, const char *result_id, unsigned uid)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO result_releases (result_id, uid, created)"
                                        " VALUES (?1, ?2, ?3)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    const char *args[] = {result_id};
    db_bind_texts(stmt, 1, args);
    sqlite3_bind_int64(stmt, 2, uid);
    sqlite3_bind_text(stmt, 3, now, -1, SQLITE_TRANSIENT);
    return db_run_stmt(db, stmt);
}
