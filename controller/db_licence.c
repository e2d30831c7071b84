#include "controller/db_licence.h"

#include "controller/db_internal.h"
#include "controller/log.h"
#include "protocol/subject_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_rule_set_store(sqlite3 *db, const struct rule_set *set)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT OR IGNORE INTO rule_sets (version, label,"
                                        " canonical, loaded) VALUES (?1, ?2, ?3, ?4)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    const char *args[] = {set->version, set->label, set->canonical, now};
    db_bind_texts(stmt, 4, args);
    return db_run_stmt(db, stmt);
}

int db_status_add(sqlite3 *db, const char *lab, const char *subject_id, const struct status_in *in,
                  unsigned uid, char id[RECORD_ID_SIZE])
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO statuses (id, subject_id, kind, start_date,"
                                        " end_date, reference, supersedes, reason, created, uid)"
                                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    record_id_new(lab, id);
    const char *args[] = {id,      subject_id,    in->kind,       in->start,
                          in->end, in->reference, in->supersedes, in->reason,
                          now};
    db_bind_texts(stmt, 9, args);
    sqlite3_bind_int64(stmt, 10, uid);
    return db_run_stmt(db, stmt);
}

int db_licence_add(sqlite3 *db, const char *lab, const char *subject_id,
                   const struct licence_in *in, unsigned uid, char id[RECORD_ID_SIZE])
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO licences (id, subject_id, number, class,"
                                        " supersedes, reason, created, commercial, handed_back,"
                                        " uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    record_id_new(lab, id);
    const char *args[] = {id,         subject_id, in->number, in->class_name, in->supersedes,
                          in->reason, now};
    db_bind_texts(stmt, 7, args);
    sqlite3_bind_int(stmt, 8, in->commercial);
    sqlite3_bind_int(stmt, 9, in->handed_back);
    sqlite3_bind_int64(stmt, 10, uid);
    return db_run_stmt(db, stmt);
}

int db_supersedable(sqlite3 *db, const char *table, const char *id, const char *subject_id)
{
    char sql[256];
    sqlite3_stmt *stmt;
    int rc;

    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM %s WHERE id = ?1 AND subject_id = ?2 AND NOT EXISTS"
             " (SELECT 1 FROM %s later WHERE later.supersedes = ?1)",
             table, table);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        return -1;
    }
    const char *args[] = {id, subject_id};
    db_bind_texts(stmt, 2, args);
    rc = sqlite3_step(stmt);
    db_release(stmt);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static void set_uid_and_time(json_t *obj, sqlite3_stmt *stmt, int uid_column, int time_column)
{
    json_object_set_new(obj, "uid", json_integer(sqlite3_column_int64(stmt, uid_column)));
    db_set_text_column(obj, "recorded", stmt, time_column);
}

/* Reads a status row: id, kind, start_date, end_date, reference,
 * supersedes, reason, uid, created. */
static json_t *status_row_json(sqlite3_stmt *stmt)
{
    json_t *obj = json_object();

    db_set_text_column(obj, "id", stmt, 0);
    db_set_text_column(obj, "kind", stmt, 1);
    db_set_text_column(obj, "start", stmt, 2);
    db_set_text_column(obj, "end", stmt, 3);
    db_set_text_column(obj, "reference", stmt, 4);
    db_set_text_column(obj, "supersedes", stmt, 5);
    db_set_text_column(obj, "reason", stmt, 6);
    set_uid_and_time(obj, stmt, 7, 8);
    return obj;
}

static const char status_columns[] =
    "SELECT id, kind, start_date, end_date, reference, supersedes, reason, uid, created"
    " FROM statuses";

/* Reads a licence row: id, number, class, commercial, handed_back,
 * supersedes, reason, uid, created. */
static json_t *licence_row_json(sqlite3_stmt *stmt)
{
    json_t *obj = json_object();

    db_set_text_column(obj, "id", stmt, 0);
    db_set_text_column(obj, "number", stmt, 1);
    db_set_text_column(obj, "class", stmt, 2);
    json_object_set_new(obj, "commercial", json_boolean(sqlite3_column_int(stmt, 3)));
    json_object_set_new(obj, "handed_back", json_boolean(sqlite3_column_int(stmt, 4)));
    db_set_text_column(obj, "supersedes", stmt, 5);
    db_set_text_column(obj, "reason", stmt, 6);
    set_uid_and_time(obj, stmt, 7, 8);
    return obj;
}

static const char licence_columns[] =
    "SELECT id, number, class, commercial, handed_back, supersedes, reason, uid, created"
    " FROM licences";

/* Runs columns + " WHERE " + condition with one bound argument and
 * collects each row with row_json. Returns NULL on error. */
static json_t *collect(sqlite3 *db, const char *columns, const char *condition, const char *arg,
                       json_t *(*row_json)(sqlite3_stmt *stmt))
{
    char sql[512];
    sqlite3_stmt *stmt;
    json_t *list = json_array();
    int rc;

    snprintf(sql, sizeof(sql), "%s WHERE %s ORDER BY rowid", columns, condition);
    stmt = db_prepare(db, sql);
    if (stmt == NULL) {
        json_decref(list);
        return NULL;
    }
    db_bind_texts(stmt, 1, &arg);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_array_append_new(list, row_json(stmt));
    }
    db_release(stmt);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return NULL;
    }
    return list;
}

static json_t *first_of(json_t *list)
{
    json_t *first = json_incref(json_array_get(list, 0));

    json_decref(list);
    return first;
}

json_t *db_status_json(sqlite3 *db, const char *id)
{
    return first_of(collect(db, status_columns, "id = ?1", id, status_row_json));
}

json_t *db_licence_json(sqlite3 *db, const char *id)
{
    return first_of(collect(db, licence_columns, "id = ?1", id, licence_row_json));
}

/* TODO: a failed step ends the list early without an error, so a decision
 * could rest on part of a result's analytes. */
static json_t *analyte_outcomes(sqlite3 *db, const char *result_id)
{
    static const char sql[] = "SELECT analyte, outcome, value_text, unit FROM result_analytes"
                              " WHERE result_id = ?1 ORDER BY position";
    sqlite3_stmt *stmt = db_prepare(db, sql);
    json_t *list = json_array();

    if (stmt == NULL) {
        return list;
    }
    db_bind_texts(stmt, 1, &result_id);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *entry = json_object();
        db_set_text_column(entry, "analyte", stmt, 0);
        db_set_text_column(entry, "outcome", stmt, 1);
        db_set_text_column(entry, "value", stmt, 2);
        db_set_text_column(entry, "unit", stmt, 3);
        json_array_append_new(list, entry);
    }
    db_release(stmt);
    return list;
}

/* Columns: id, matrix, tier, status, supersedes, collected_date, barcode,
 * driving, released, laboratory, report_number. */
static json_t *evidence_result_json(sqlite3 *db, sqlite3_stmt *stmt)
{
    json_t *obj = json_object();
    json_t *specimen = json_object();
    char date[11];
    char id[RECORD_ID_SIZE];

    db_copy_column(stmt, 0, id, sizeof(id));
    json_object_set_new(obj, "id", json_string(id));
    db_set_text_column(obj, "matrix", stmt, 1);
    db_set_text_column(obj, "tier", stmt, 2);
    db_set_text_column(obj, "status", stmt, 3);
    db_set_text_column(obj, "supersedes", stmt, 4);
    time_format_date(sqlite3_column_int(stmt, 5), date);
    db_set_text_column(specimen, "barcode", stmt, 6);
    json_object_set_new(specimen, "collected_date", json_string(date));
    json_object_set_new(obj, "specimen", specimen);
    json_object_set_new(obj, "driving", json_boolean(sqlite3_column_int(stmt, 7)));
    db_set_text_column(obj, "released", stmt, 8);
    if (sqlite3_column_type(stmt, 9) != SQLITE_NULL) {
        json_t *laboratory = json_object();
        db_set_text_column(laboratory, "name", stmt, 9);
        db_set_text_column(laboratory, "report", stmt, 10);
        json_object_set_new(obj, "laboratory", laboratory);
    }
    json_object_set_new(obj, "analytes", analyte_outcomes(db, id));
    return obj;
}

static json_t *evidence_results(sqlite3 *db, const char *subject_id, const char *stop_id)
{
    /* The candidates come from indexed lookups first (the subject's own and
     * linked results, or the stop's tests), because a filter written with
     * "?1 IS NULL OR ..." makes SQLite scan every result. */
    static const char sql[] =
        "WITH chosen(id) AS ("
        " SELECT id FROM results WHERE ?1 IS NOT NULL AND subject_id = ?1"
        " UNION SELECT result_id FROM result_links WHERE ?1 IS NOT NULL AND subject_id = ?1"
        " UNION SELECT r.id FROM tests t JOIN results r ON r.test_id = t.id"
        "  WHERE ?2 IS NOT NULL AND t.stop_id = ?2)"
        " SELECT r.id, r.matrix, r.tier, r.status, r.supersedes,"
        " COALESCE(NULLIF(r.collected_date, 0), sp.collected_date),"
        " COALESCE(sp.barcode, r.barcode),"
        " COALESCE(st.driving, 0),"
        " (SELECT MIN(created) FROM result_releases rr WHERE rr.result_id = r.id),"
        " r.laboratory, r.report_number"
        " FROM chosen c JOIN results r ON r.id = c.id LEFT JOIN tests t ON t.id = r.test_id"
        " LEFT JOIN result_links rl ON rl.result_id = r.id"
        " LEFT JOIN specimens sp ON sp.id = COALESCE(r.specimen_id, rl.specimen_id)"
        " LEFT JOIN stops st ON st.id = COALESCE(t.stop_id, sp.stop_id)"
        " WHERE r.breath_outcome IS NULL AND r.invalid_reason IS NULL"
        " AND (?1 IS NULL OR COALESCE(r.subject_id, rl.subject_id) = ?1)"
        " AND (?2 IS NULL OR t.stop_id = ?2)"
        " ORDER BY r.rowid";
    sqlite3_stmt *stmt = db_prepare(db, sql);
    json_t *list = json_array();
    int rc;

    if (stmt == NULL) {
        json_decref(list);
        return NULL;
    }
    const char *args[] = {subject_id, stop_id};
    db_bind_texts(stmt, 2, args);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        json_array_append_new(list, evidence_result_json(db, stmt));
    }
    db_release(stmt);
    if (rc != SQLITE_DONE) {
        json_decref(list);
        return NULL;
    }
    return list;
}

json_t *db_evidence_json(sqlite3 *db, const char *subject_id, const char *stop_id)
{
    json_t *results = evidence_results(db, stop_id ? NULL : subject_id, stop_id);
    json_t *statuses =
        stop_id ? json_array()
                : collect(db, status_columns, "subject_id = ?1", subject_id, status_row_json);
    json_t *licences =
        stop_id ? json_array()
                : collect(db, licence_columns, "subject_id = ?1", subject_id, licence_row_json);

    if (results == NULL || statuses == NULL || licences == NULL) {
        json_decref(results);
        json_decref(statuses);
        json_decref(licences);
        return NULL;
    }
    return json_pack("{so so so}", "results", results, "statuses", statuses, "licences", licences);
}

int db_decision_record(sqlite3 *db, const char *lab, const char *subject_id, const json_t *inputs,
                       const json_t *outcome, unsigned uid, char id[RECORD_ID_SIZE])
{
    char now[TIMESTAMP_SIZE];
    char *inputs_text = json_dumps(inputs, JSON_COMPACT | JSON_SORT_KEYS);
    char *outcome_text = json_dumps(outcome, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO licence_decisions (id, subject_id, question,"
                                        " as_of, decision, rules_version, inputs, outcome,"
                                        " created, uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                                        " ?9, ?10)");
    int status = -1;

    db_now_text(now);
    record_id_new(lab, id);
    if (stmt != NULL && inputs_text != NULL && outcome_text != NULL) {
        const char *args[] = {id,
                              subject_id,
                              json_string_value(json_object_get(outcome, "question")),
                              json_string_value(json_object_get(outcome, "as_of")),
                              json_string_value(json_object_get(outcome, "decision")),
                              json_string_value(json_object_get(outcome, "rules_version")),
                              inputs_text,
                              outcome_text,
                              now};
        db_bind_texts(stmt, 9, args);
        sqlite3_bind_int64(stmt, 10, uid);
        status = db_run_stmt(db, stmt);
        stmt = NULL;
    }
    db_release(stmt);
    free(inputs_text);
    free(outcome_text);
    return status;
}

int db_decision_review(sqlite3 *db, const char *decision_id, const char *action, const char *reason,
                       unsigned uid)
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(db, "INSERT INTO decision_reviews (decision_id, action,"
                                        " reason, created, uid) VALUES (?1, ?2, ?3, ?4, ?5)");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    const char *args[] = {decision_id, action, reason, now};
    db_bind_texts(stmt, 4, args);
    sqlite3_bind_int64(stmt, 5, uid);
    return db_run_stmt(db, stmt);
}

static json_t *review_row_json(sqlite3_stmt *stmt)
{
    json_t *obj = json_object();

    db_set_text_column(obj, "action", stmt, 0);
    db_set_text_column(obj, "reason", stmt, 1);
    set_uid_and_time(obj, stmt, 2, 3);
    return obj;
}

json_t *db_decision_json(sqlite3 *db, const char *id)
{
    sqlite3_stmt *stmt = db_prepare(db, "SELECT d.outcome, d.id, s.id_type, s.number, d.uid,"
                                        " d.created FROM licence_decisions d"
                                        " JOIN subjects s ON s.id = d.subject_id WHERE d.id = ?1");
    json_t *obj = NULL;

    if (stmt == NULL) {
        return NULL;
    }
    db_bind_texts(stmt, 1, &id);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        obj = json_loads((const char *)sqlite3_column_text(stmt, 0), 0, NULL);
    }
    if (obj != NULL) {
        char masked[SUBJECT_MASKED_MAX];
        subject_id_mask((const char *)sqlite3_column_text(stmt, 3), masked, sizeof(masked));
        db_set_text_column(obj, "id", stmt, 1);
        json_t *subject = json_object();
        db_set_text_column(subject, "type", stmt, 2);
        db_set_text_column(subject, "number", stmt, 3);
        json_object_set_new(subject, "masked", json_string(masked));
        json_object_set_new(obj, "subject", subject);
        set_uid_and_time(obj, stmt, 4, 5);
        json_t *reviews = collect(db, "SELECT action, reason, uid, created FROM decision_reviews",
                                  "decision_id = ?1", id, review_row_json);
        json_object_set_new(obj, "reviews", reviews ? reviews : json_array());
    }
    db_release(stmt);
    return obj;
}
