/* "import": results from outside laboratories (a forensic blood test, a
 * hair re-test). Every row is checked before anything is stored, the import
 * is one transaction, and each imported result is confirm tier, released
 * by its laboratory, and judged against the threshold set like any other. */
#include "controller/commands.h"

#include "controller/db.h"
#include "controller/db_internal.h"
#include "controller/thresholds.h"
#include "controller/timefmt.h"
#include "protocol/decimal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMPORT_MAX_ROWS 500
#define IMPORT_MAX_ERRORS 10

struct import_row {
    const char *laboratory;
    const char *report;
    const char *reported;
    const char *matrix;
    const char *status;
    const char *supersedes;
    const char *barcode;
    char subject_id[RECORD_ID_SIZE];
    char specimen_id[RECORD_ID_SIZE];
    struct subject_id subject; /* when the subject is not registered yet */
    bool new_subject;
    int collected;
    size_t count;
    struct driver_analyte analytes[DRIVER_MAX_ANALYTES];
};

/* Collects the errors of all rows, so one response names every bad field. */
struct import_errors {
    char text[4096];
    size_t used;
    int count;
};

__attribute__((format(printf, 4, 5))) static void
add_error(struct import_errors *errors, const json_t *obj, size_t index, const char *format, ...)
{
    va_list args;
    json_int_t line = json_integer_value(json_object_get(obj, "line"));

    errors->count++;
    if (errors->count > IMPORT_MAX_ERRORS || errors->used >= sizeof(errors->text) - 1) {
        return;
    }
    char *out = errors->text + errors->used;
    size_t room = sizeof(errors->text) - errors->used;
    int len =
        line > 0 ? snprintf(out, room, "%srecord %lld: ", errors->used ? "; " : "", (long long)line)
                 : snprintf(out, room, "%sresults[%zu]: ", errors->used ? "; " : "", index);
    va_start(args, format);
    len += vsnprintf(out + len, room - (size_t)len, format, args);
    va_end(args);
    errors->used += (size_t)len < room ? (size_t)len : room - 1;
}

static const char *member_string(const json_t *obj, const char *key)
{
    const char *value = json_string_value(json_object_get(obj, key));

    return value && value[0] ? value : NULL;
}

static bool listed_key(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (strcmp(keys[i], key) == 0) {
            return true;
        }
    }
    return false;
}

/* Reports each member of object that keys does not list, and each string
 * with a control character, so nothing misspelt is lost quietly and no
 * text can forge lines in a report. */
static void check_members(const json_t *obj, const char *path, const char *const *keys,
                          const json_t *row, size_t index, struct import_errors *errors)
{
    const char *key;
    const json_t *value;

    json_object_foreach((json_t *)obj, key, value)
    {
        if (!listed_key(key, keys)) {
            add_error(errors, row, index, "%s%.40s: unknown field", path, key);
        } else if (json_is_string(value) && text_has_control(json_string_value(value))) {
            add_error(errors, row, index, "%s%.40s: contains a control character", path, key);
        }
    }
}

static void check_all_members(const json_t *obj, size_t index, struct import_errors *errors)
{
    static const char *const top[] = {"laboratory", "subject",    "specimen", "matrix", "tier",
                                      "status",     "supersedes", "analytes", "line",   NULL};
    static const char *const laboratory[] = {"name", "report", "reported", NULL};
    static const char *const specimen[] = {"barcode", "collected_date", "collected", NULL};
    static const char *const analyte[] = {"analyte", "value", "unit", "line", NULL};
    const json_t *entry;
    size_t i;

    check_members(obj, "", top, obj, index, errors);
    check_members(json_object_get(obj, "laboratory"), "laboratory.", laboratory, obj, index,
                  errors);
    check_members(json_object_get(obj, "specimen"), "specimen.", specimen, obj, index, errors);
    json_array_foreach(json_object_get(obj, "analytes"), i, entry)
    {
        char path[32];
        snprintf(path, sizeof(path), "analytes[%zu].", i);
        check_members(entry, path, analyte, obj, index, errors);
    }
    const json_t *given = json_object_get(obj, "specimen");
    if (json_object_get(given, "collected") != NULL &&
        json_object_get(given, "collected_date") != NULL) {
        add_error(errors, obj, index, "specimen: give collected or collected_date, not both");
    }
}

static bool valid_analyte_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len > 31) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            return false;
        }
    }
    return true;
}

/* Reports whether a unit family (thresholds.c: 1 fluids, 2 hair) fits the
 * matrix. */
static bool unit_fits_matrix(const char *matrix, int family)
{
    if (matrix == NULL) {
        return true; /* The missing matrix is reported on its own. */
    }
    return strcmp(matrix, "hair") == 0 ? family == 2 : family == 1;
}

/* Reads "value": decimal text, with "<" or ">" for a value at the end of
 * the laboratory's range. Returns NULL or the failed check. */
static const char *read_value(const char *text, struct driver_analyte *analyte)
{
    if (text == NULL) {
        return "missing";
    }
    analyte->under_range = text[0] == '<';
    analyte->over_range = text[0] == '>';
    if (decimal_parse(text + (analyte->under_range || analyte->over_range),
                      &analyte->value_micro) != 0 ||
        analyte->value_micro < 0) {
        return "not a non-negative decimal (a leading < or > marks the end of the range)";
    }
    return NULL;
}

static void check_analytes(const json_t *obj, size_t index, struct import_row *row,
                           struct import_errors *errors)
{
    const json_t *list = json_object_get(obj, "analytes");
    size_t i;
    const json_t *entry;

    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > DRIVER_MAX_ANALYTES) {
        add_error(errors, obj, index, "analytes: a list of 1 to %d analytes", DRIVER_MAX_ANALYTES);
        return;
    }
    json_array_foreach(list, i, entry)
    {
        struct driver_analyte *analyte = &row->analytes[i];
        const char *name = member_string(entry, "analyte");
        const char *unit = member_string(entry, "unit");
        const char *failed = read_value(member_string(entry, "value"), analyte);
        /* A CSV record is one analyte: its errors name the record. */
        const json_t *where = json_object_get(entry, "line") ? entry : obj;
        int family;
        int64_t factor;
        if (!valid_analyte_name(name)) {
            add_error(errors, where, index,
                      "analytes[%zu].analyte: missing or not a lowercase name", i);
        } else {
            snprintf(analyte->analyte, sizeof(analyte->analyte), "%s", name);
        }
        if (failed != NULL) {
            add_error(errors, where, index, "analytes[%zu].value: %s", i, failed);
        }
        if (unit == NULL || unit_lookup(unit, &family, &factor) != 0) {
            add_error(errors, where, index,
                      "analytes[%zu].unit: missing or unknown (use ng/mL, ug/L, ng/mg or pg/mg)",
                      i);
        } else if (!unit_fits_matrix(row->matrix, family)) {
            add_error(errors, where, index,
                      "analytes[%zu].unit: %.16s does not fit %.16s (hair takes ng/mg or pg/mg; "
                      "fluids take ng/mL or ug/L)",
                      i, unit, row->matrix ? row->matrix : "the matrix");
        } else {
            snprintf(analyte->unit, sizeof(analyte->unit), "%s", unit);
        }
        for (size_t j = 0; name != NULL && j < i; j++) {
            if (strcmp(row->analytes[j].analyte, name) == 0) {
                add_error(errors, where, index, "analytes[%zu].analyte: %.31s is listed twice", i,
                          name);
            }
        }
    }
    row->count = json_array_size(list);
}

/* Reads the collection date: specimen.collected_date, or the local date of
 * specimen.collected (RFC 3339). */
static int read_collected(const json_t *specimen)
{
    const char *date = member_string(specimen, "collected_date");
    const char *time = member_string(specimen, "collected");
    int64_t ms;

    if (date != NULL) {
        return time_parse_date(date);
    }
    if (time != NULL && time_parse_rfc3339(time, &ms) == 0) {
        return time_local_date(ms);
    }
    return 0;
}

static void check_laboratory(const json_t *obj, size_t index, struct import_row *row,
                             struct import_errors *errors)
{
    const json_t *laboratory = json_object_get(obj, "laboratory");

    row->laboratory = member_string(laboratory, "name");
    row->report = member_string(laboratory, "report");
    row->reported = member_string(laboratory, "reported");
    if (row->laboratory == NULL) {
        add_error(errors, obj, index, "laboratory.name: missing");
    }
    if (row->report == NULL) {
        add_error(errors, obj, index, "laboratory.report: missing (the report number)");
    }
    if (row->reported == NULL || time_parse_date(row->reported) == 0) {
        add_error(errors, obj, index, "laboratory.reported: missing or not a date YYYY-MM-DD");
    } else if (time_parse_date(row->reported) > req_today()) {
        add_error(errors, obj, index, "laboratory.reported: %.10s is in the future", row->reported);
    }
}

static void check_fields(const json_t *obj, size_t index, struct import_row *row,
                         struct import_errors *errors, int today)
{
    static const char *const matrices[] = {"blood", "hair", "urine", "oral-fluid", NULL};
    const char *tier = member_string(obj, "tier");
    bool matrix_ok = false;

    check_all_members(obj, index, errors);
    check_laboratory(obj, index, row, errors);
    row->matrix = member_string(obj, "matrix");
    for (size_t i = 0; row->matrix != NULL && matrices[i] != NULL; i++) {
        matrix_ok |= strcmp(row->matrix, matrices[i]) == 0;
    }
    if (!matrix_ok) {
        add_error(errors, obj, index, "matrix: missing or not blood, hair, urine or oral-fluid");
    }
    if (tier != NULL && strcmp(tier, "confirm") != 0) {
        add_error(errors, obj, index, "tier: imported results are confirm tier");
    }
    row->status = member_string(obj, "status") ? member_string(obj, "status") : "final";
    row->supersedes = member_string(obj, "supersedes");
    if (strcmp(row->status, "final") != 0 && strcmp(row->status, "correction") != 0) {
        add_error(errors, obj, index, "status: final or correction");
    } else if ((strcmp(row->status, "correction") == 0) != (row->supersedes != NULL)) {
        add_error(errors, obj, index,
                  "supersedes: a correction names the result it corrects, "
                  "and only a correction does");
    }
    row->collected = read_collected(json_object_get(obj, "specimen"));
    if (row->collected == 0 || row->collected > today) {
        add_error(errors, obj, index,
                  "specimen.collected_date: missing, not a date YYYY-MM-DD, or in the future");
    } else if (row->reported != NULL && time_parse_date(row->reported) != 0 &&
               time_parse_date(row->reported) < row->collected) {
        add_error(errors, obj, index, "laboratory.reported: before the collection date");
    }
    check_analytes(obj, index, row, errors);
}

/* Links the row to its subject: the registered specimen's, or the subject
 * given, which must agree when both are there. */
static void link_subject(sqlite3 *db, const json_t *obj, size_t index, struct import_row *row,
                         struct import_errors *errors, int today)
{
    const char *subject_text = member_string(obj, "subject");
    char subject_id[RECORD_ID_SIZE] = "";
    struct specimen_row specimen;
    char err[160];

    row->barcode = member_string(json_object_get(obj, "specimen"), "barcode");
    if (row->barcode != NULL && !barcode_is_valid(row->barcode)) {
        add_error(errors, obj, index,
                  "specimen.barcode: use 1 to 63 letters, digits, '-', '_' or '.'");
        return;
    }
    if (subject_text != NULL) {
        if (subject_id_parse(subject_text, today, &row->subject, err, sizeof(err)) != 0) {
            add_error(errors, obj, index, "subject: %s", err);
            return;
        }
        row->new_subject = db_subject_find(db, &row->subject, subject_id) == 0;
    }
    if (row->barcode != NULL && db_specimen_by_barcode(db, row->barcode, &specimen) == 1) {
        if (subject_text != NULL && strcmp(subject_id, specimen.subject_id) != 0) {
            add_error(errors, obj, index, "subject: specimen %s belongs to another subject",
                      row->barcode);
            return;
        }
        if (row->matrix != NULL && strcmp(row->matrix, specimen.matrix) != 0) {
            add_error(errors, obj, index, "matrix: specimen %.63s is %s, not %s", row->barcode,
                      specimen.matrix, row->matrix);
        }
        if (row->collected != 0 && row->collected != specimen.collected_date) {
            char registered[11];
            time_format_date(specimen.collected_date, registered);
            add_error(errors, obj, index,
                      "specimen.collected_date: specimen %.63s was collected on %s", row->barcode,
                      registered);
        }
        snprintf(row->specimen_id, sizeof(row->specimen_id), "%s", specimen.id);
        snprintf(row->subject_id, sizeof(row->subject_id), "%s", specimen.subject_id);
        row->new_subject = false;
        return;
    }
    if (subject_text == NULL) {
        add_error(errors, obj, index,
                  "subject: missing, and specimen.barcode names no registered specimen");
        return;
    }
    snprintf(row->subject_id, sizeof(row->subject_id), "%s", subject_id);
}

static int insert_import(sqlite3 *db, const char *lab, const struct import_row *row,
                         const struct daemon *daemon, unsigned uid, char id[RECORD_ID_SIZE])
{
    char now[TIMESTAMP_SIZE];
    sqlite3_stmt *stmt = db_prepare(
        db, "INSERT INTO results (id, subject_id, specimen_id, matrix, status, supersedes,"
            " laboratory, report_number, reported, received, timezone, threshold_version,"
            " barcode, collected_date, imported_by, clock_synced, tier)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
            " 'confirm')");

    if (stmt == NULL) {
        return -1;
    }
    db_now_text(now);
    record_id_new(lab, id);
    const char *args[] = {id,
                          row->subject_id,
                          row->specimen_id,
                          row->matrix,
                          row->status,
                          row->supersedes,
                          row->laboratory,
                          row->report,
                          row->reported,
                          now,
                          daemon->config.timezone,
                          daemon->thresholds.version,
                          row->barcode};
    db_bind_texts(stmt, 13, args);
    sqlite3_bind_int(stmt, 14, row->collected);
    sqlite3_bind_int64(stmt, 15, uid);
    sqlite3_bind_int(stmt, 16, time_clock_synchronised());
    if (db_run_stmt(db, stmt) != 0) {
        return -1;
    }
    stmt = db_prepare(db, "INSERT INTO result_releases (result_id, uid, created)"
                          " VALUES (?1, ?2, ?3)");
    if (stmt == NULL) {
        return -1;
    }
    const char *release[] = {id};
    db_bind_texts(stmt, 1, release);
    sqlite3_bind_int64(stmt, 2, uid);
    sqlite3_bind_text(stmt, 3, now, -1, SQLITE_TRANSIENT);
    return db_run_stmt(db, stmt) == 0
               ? db_result_analytes_store(db, id, row->matrix, "confirm", row->analytes, row->count,
                                          NULL, &daemon->thresholds, row->collected)
               : -1;
}

/* Rejects a report that was imported before, unless the row corrects it. */
static void check_duplicate(sqlite3 *db, const json_t *obj, size_t index,
                            const struct import_row *row, struct import_errors *errors)
{
    char found[RECORD_ID_SIZE] = "";
    sqlite3_stmt *stmt;

    if (row->supersedes != NULL || row->laboratory == NULL || row->report == NULL ||
        row->matrix == NULL) {
        return;
    }
    stmt = db_prepare(db, "SELECT id FROM results WHERE laboratory = ?1 AND report_number = ?2"
                          " AND matrix = ?3 AND supersedes IS NULL");
    if (stmt == NULL) {
        return;
    }
    const char *args[] = {row->laboratory, row->report, row->matrix};
    db_bind_texts(stmt, 3, args);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        db_copy_column(stmt, 0, found, sizeof(found));
    }
    sqlite3_finalize(stmt);
    if (found[0] != '\0') {
        add_error(errors, obj, index,
                  "laboratory.report: %.64s %.64s (%s) was already imported as result %s; a "
                  "changed result is a correction (status correction, supersedes %s)",
                  row->laboratory, row->report, row->matrix, found, found);
    }
}

/* Checks that a correction names an imported result of the same subject. */
static void check_supersedes(sqlite3 *db, const json_t *obj, size_t index,
                             const struct import_row *row, struct import_errors *errors)
{
    char found[RECORD_ID_SIZE];
    sqlite3_stmt *stmt;

    if (row->supersedes == NULL || row->subject_id[0] == '\0') {
        return;
    }
    /* Only an imported result of the same laboratory and matrix that no
     * correction replaced yet can be corrected by an import. */
    stmt = db_prepare(db, "SELECT id FROM results r WHERE id = ?1 AND subject_id = ?2"
                          " AND laboratory = ?3 AND matrix = ?4 AND NOT EXISTS"
                          " (SELECT 1 FROM results later WHERE later.supersedes = r.id)");
    if (stmt == NULL) {
        return;
    }
    const char *args[] = {row->supersedes, row->subject_id, row->laboratory, row->matrix};
    db_bind_texts(stmt, 4, args);
    found[0] = '\0';
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        db_copy_column(stmt, 0, found, sizeof(found));
    }
    sqlite3_finalize(stmt);
    if (found[0] == '\0') {
        add_error(errors, obj, index,
                  "supersedes: %.64s is not a current result of this subject imported from the "
                  "same laboratory and matrix (it does not exist, or a correction already "
                  "replaced it)",
                  row->supersedes);
    }
}

/* Two rows naming one new barcode name one specimen: same subject, matrix
 * and collection date. */
static void check_new_barcodes(const json_t *list, const struct import_row *rows, size_t count,
                               struct import_errors *errors)
{
    for (size_t i = 0; i < count; i++) {
        const struct import_row *a = &rows[i];
        for (size_t j = 0; a->barcode != NULL && a->specimen_id[0] == '\0' && j < i; j++) {
            const struct import_row *b = &rows[j];
            if (b->barcode == NULL || strcmp(a->barcode, b->barcode) != 0) {
                continue;
            }
            if (strcmp(a->subject.number, b->subject.number) != 0 ||
                strcmp(a->subject.type, b->subject.type) != 0 || a->matrix == NULL ||
                b->matrix == NULL || strcmp(a->matrix, b->matrix) != 0 ||
                a->collected != b->collected) {
                add_error(errors, json_array_get(list, i), i,
                          "specimen.barcode: %.63s names another subject, matrix or collection "
                          "date in an earlier result of this import",
                          a->barcode);
            }
            break;
        }
    }
}

/* Rejects a report that appears twice in one import (as two results). */
static void check_repeated_reports(const json_t *list, const struct import_row *rows, size_t count,
                                   struct import_errors *errors)
{
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct import_row *a = &rows[i];
            const struct import_row *b = &rows[j];
            if (a->supersedes == NULL && b->supersedes == NULL && a->laboratory && b->laboratory &&
                a->report && b->report && a->matrix && b->matrix &&
                strcmp(a->laboratory, b->laboratory) == 0 && strcmp(a->report, b->report) == 0 &&
                strcmp(a->matrix, b->matrix) == 0) {
                add_error(errors, json_array_get(list, i), i,
                          "laboratory.report: %.64s %.64s (%s) appears twice in this import; "
                          "one report of one matrix is one result",
                          a->laboratory, a->report, a->matrix);
                break;
            }
        }
    }
}

static json_t *import_failed(const struct request *req, const struct import_errors *errors)
{
    char message[4200];

    snprintf(message, sizeof(message), "%d invalid field%s, nothing was imported: %s%s",
             errors->count, errors->count == 1 ? "" : "s", errors->text,
             errors->count > IMPORT_MAX_ERRORS ? "; ..." : "");
    return proto_error_response(req->id, PROTO_INVALID_ARGUMENT, message);
}

/* Registers a barcode the import names for the first time as a specimen
 * of its own stop, so that a later import or analyzer result with the same
 * barcode finds it (and must agree with it). */
static int register_specimen(struct daemon *daemon, struct import_row *row)
{
    struct specimen_row found;
    char stop_id[RECORD_ID_SIZE];

    if (row->barcode == NULL || row->specimen_id[0] != '\0') {
        return 0;
    }
    int status = db_specimen_by_barcode(daemon->db, row->barcode, &found);
    if (status != 0) {
        snprintf(row->specimen_id, sizeof(row->specimen_id), "%s", found.id);
        return status < 0 ? -1 : 0;
    }
    /* The laboratory gives a date; noon local time stands for the day. */
    struct tm day = {.tm_year = row->collected / 10000 - 1900,
                     .tm_mon = row->collected / 100 % 100 - 1,
                     .tm_mday = row->collected % 100,
                     .tm_hour = 12,
                     .tm_isdst = -1};
    int64_t collected_ms = (int64_t)mktime(&day) * 1000;
    return db_stop_create(daemon->db, daemon->config.lab_id, row->subject_id, false, stop_id) ||
           db_specimen_add(daemon->db, daemon->config.lab_id, row->subject_id, row->barcode,
                           row->matrix, stop_id, collected_ms, row->specimen_id);
}

/* Stores the checked rows in one transaction. Returns the IDs, or NULL. */
static json_t *store_rows(const struct request *req, struct import_row *rows, size_t count)
{
    struct daemon *daemon = req->daemon;
    json_t *ids = json_array();
    bool existed;

    if (db_begin(daemon->db) != 0) {
        json_decref(ids);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        char id[RECORD_ID_SIZE];
        struct import_row *row = &rows[i];
        if ((row->new_subject && db_subject_add(daemon->db, daemon->config.lab_id, &row->subject,
                                                row->subject_id, &existed) != 0) ||
            register_specimen(daemon, row) != 0 ||
            insert_import(daemon->db, daemon->config.lab_id, row, daemon,
                          (unsigned)req->client->uid, id) != 0) {
            json_decref(ids);
            return NULL;
        }
        json_array_append_new(ids, json_string(id));
        /* A later row of the same new subject finds it registered now. */
        for (size_t j = i + 1; j < count; j++) {
            if (rows[j].new_subject && strcmp(rows[j].subject.number, row->subject.number) == 0 &&
                strcmp(rows[j].subject.type, row->subject.type) == 0) {
                rows[j].new_subject = false;
                memcpy(rows[j].subject_id, row->subject_id, sizeof(rows[j].subject_id));
            }
        }
    }
    if (db_commit(daemon->db) != 0) {
        json_decref(ids);
        return NULL;
    }
    return ids;
}

/* Lists how each imported analyte was judged: result, analyte, value, unit,
 * outcome and the reason of an invalid one. */
static json_t *imported_outcomes(sqlite3 *db, const json_t *ids)
{
    json_t *list = json_array();
    size_t i;
    const json_t *id;

    json_array_foreach(ids, i, id)
    {
        const char *result_id = json_string_value(id);
        sqlite3_stmt *stmt = db_prepare(db, "SELECT analyte, value_text, unit, outcome, reason"
                                            " FROM result_analytes WHERE result_id = ?1"
                                            " ORDER BY position");
        if (stmt == NULL) {
            continue;
        }
        db_bind_texts(stmt, 1, &result_id);
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            json_t *entry = json_pack("{ss}", "result", result_id);
            static const char *const keys[] = {"analyte", "value", "unit", "outcome", "reason"};
            for (int column = 0; column < 5; column++) {
                db_set_text_column(entry, keys[column], stmt, column);
            }
            json_array_append_new(list, entry);
        }
        sqlite3_finalize(stmt);
    }
    return list;
}

json_t *cmd_import(const struct request *req)
{
    const json_t *list = json_object_get(req->args, "results");
    size_t count = json_array_size(list);
    struct import_errors errors = {.used = 0, .count = 0};
    int today = req_today();
    struct import_row *rows;
    size_t i;
    const json_t *obj;

    if (count == 0 || count > IMPORT_MAX_ROWS) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "'results' must list 1 to %d results; split a larger import",
                        IMPORT_MAX_ROWS);
    }
    rows = calloc(count, sizeof(*rows));
    json_array_foreach(list, i, obj)
    {
        if (!json_is_object(obj)) {
            add_error(&errors, obj, i, "not an object");
            continue;
        }
        check_fields(obj, i, &rows[i], &errors, today);
        link_subject(req->daemon->db, obj, i, &rows[i], &errors, today);
        check_supersedes(req->daemon->db, obj, i, &rows[i], &errors);
        check_duplicate(req->daemon->db, obj, i, &rows[i], &errors);
    }
    check_repeated_reports(list, rows, count, &errors);
    check_new_barcodes(list, rows, count, &errors);
    if (errors.count > 0) {
        free(rows);
        return import_failed(req, &errors);
    }
    json_t *ids = store_rows(req, rows, count);
    free(rows);
    if (ids == NULL) {
        return req_storage_failure(req, "the imported results");
    }
    log_msg(LOG_NOTICE, "%zu laboratory results imported by uid %u", count,
            (unsigned)req->client->uid);
    return req_ok(req, "imported",
                  json_pack("{sI so so}", "count", (json_int_t)count, "results", ids, "analytes",
                            imported_outcomes(req->daemon->db, ids)));
}
