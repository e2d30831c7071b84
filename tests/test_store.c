/* Transactions on a real SQLite file. Group commit of analyzer results
 * (controller/db_results.c): a result that fails rolls back alone, and a
 * failed COMMIT or a transaction SQLite rolled back reports every result of
 * the batch as not stored. Also the query plans of the statements used on
 * every result, and a request's audit entry committed with the command's
 * changes. Faults are injected with TEMP triggers, a TEMP view and a commit
 * hook, which live only in the test's connection. */
#define _GNU_SOURCE
#include "controller/audit.h"
#include "controller/config.h"
#include "controller/db.h"
#include "controller/db_licence.h"
#include "controller/db_results.h"
#include "controller/rules.h"
#include "controller/thresholds.h"
#include "controller/timefmt.h"
#include "harness.h"
#include "protocol/subject_id.h"

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LAB "STORE"
#define JOBS 3
#define FAIL_VALUE 666000 /* an analyte value the injected triggers look for */

struct fixture {
    char *dir;
    sqlite3 *db;
    struct threshold_set thresholds;
    struct rule_set rules;
    struct config config;
    char subject[RECORD_ID_SIZE];
    char stops[JOBS][RECORD_ID_SIZE];
    char tests[JOBS][RECORD_ID_SIZE];
    struct driver_result results[JOBS];
    struct result_job jobs[JOBS];
};

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
}

static long long count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    long long n = -1;

    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return n;
}

static void load_files(struct fixture *fx)
{
    char path[4096];
    char err[512];
    const char *top = harness_program("TOXLAB_SOURCE_DIR");

    snprintf(path, sizeof(path), "%s/etc/thresholds.tsv", top);
    ck_assert_msg(thresholds_load(path, &fx->thresholds, err, sizeof(err)) == 0, "%s", err);
    snprintf(path, sizeof(path), "%s/etc/rules.tsv", top);
    ck_assert_msg(rules_load(path, &fx->rules, err, sizeof(err)) == 0, "%s", err);
}

/* Opens a new database with JOBS running tests, one stop each, as
 * test.start leaves them. */
static void fixture_open(struct fixture *fx)
{
    struct subject_id subject = {.type = "resident", .number = "999999199001011238"};
    char path[4096], err[512];
    bool existed;

    memset(fx, 0, sizeof(*fx));
    config_defaults(&fx->config);
    load_files(fx);
    fx->dir = harness_tmpdir("store");
    snprintf(path, sizeof(path), "%s/toxlab.db", fx->dir);
    ck_assert_msg(db_open(path, 5000, &fx->db, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(db_begin(fx->db), 0);
    ck_assert_int_eq(db_subject_add(fx->db, LAB, &subject, fx->subject, &existed), 0);
    for (int i = 0; i < JOBS; i++) {
        char *stop = fx->stops[i];
        char specimen[RECORD_ID_SIZE], barcode[32];

        snprintf(barcode, sizeof(barcode), "OF-STORE-%d", i);
        ck_assert_int_eq(db_stop_create(fx->db, LAB, fx->subject, true, stop), 0);
        ck_assert_int_eq(db_specimen_add(fx->db, LAB, fx->subject, barcode, "oral-fluid", stop,
                                         time_realtime_ms(), specimen),
                         0);
        ck_assert_int_eq(
            db_test_create(fx->db, LAB, stop, "saliva-1", specimen, (uint32_t)i + 1, fx->tests[i]),
            0);
        ck_assert_int_eq(db_test_set_state(fx->db, fx->tests[i], "running", NULL), 0);
    }
    ck_assert_int_eq(db_commit(fx->db), 0);
}

/* Fills one oral-fluid screen result of two analytes for each test. */
static void fixture_jobs(struct fixture *fx)
{
    for (int i = 0; i < JOBS; i++) {
        struct driver_result *result = &fx->results[i];

        memset(result, 0, sizeof(*result));
        result->host_test_id = (uint32_t)i + 1;
        result->sequence = (uint32_t)i + 1;
        snprintf(result->matrix, sizeof(result->matrix), "oral-fluid");
        snprintf(result->tier, sizeof(result->tier), "screen");
        result->count = 2;
        snprintf(result->analytes[0].analyte, sizeof(result->analytes[0].analyte), "thc");
        snprintf(result->analytes[1].analyte, sizeof(result->analytes[1].analyte), "cocaine");
        for (int a = 0; a < 2; a++) {
            snprintf(result->analytes[a].unit, sizeof(result->analytes[a].unit), "ng/mL");
        }
        memset(&fx->jobs[i], 0, sizeof(fx->jobs[i]));
        fx->jobs[i].test_id = fx->tests[i];
        fx->jobs[i].result = result;
        snprintf(fx->jobs[i].identity.serial, sizeof(fx->jobs[i].identity.serial), "SAL-0001");
    }
}

static size_t store_first_jobs(struct fixture *fx, size_t count)
{
    struct result_settings settings = {
        .lab = LAB,
        .thresholds = &fx->thresholds,
        .alcohol = &fx->config.alcohol,
        .rules = &fx->rules,
        .timezone = "Asia/Shanghai",
    };

    return db_results_store(fx->db, &settings, fx->jobs, count);
}

static size_t store_jobs(struct fixture *fx)
{
    return store_first_jobs(fx, JOBS);
}

static void fixture_close(struct fixture *fx)
{
    db_close(fx->db);
    thresholds_free(&fx->thresholds);
    rules_free(&fx->rules);
    free(fx->dir);
}

/* Returns the number of results stored for a test. */
static long long results_of_test(sqlite3 *db, const char *test_id)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM results WHERE test_id = '%s'", test_id);
    return count_rows(db, sql);
}

static bool test_in_state(sqlite3 *db, const char *test_id, const char *state)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM tests WHERE id = '%s' AND state = '%s'",
             test_id, state);
    return count_rows(db, sql) == 1;
}

START_TEST(batch_stores_each_with_decision)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    ck_assert_uint_eq(store_jobs(&fx), JOBS);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_int_eq(fx.jobs[i].outcome, 1);
        ck_assert_int_eq(results_of_test(fx.db, fx.tests[i]), 1);
        ck_assert(test_in_state(fx.db, fx.tests[i], "completed"));
    }
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM decisions"), JOBS);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM result_analytes"), 2 * JOBS);
    fixture_close(&fx);
}
END_TEST

static char *stop_actions(sqlite3 *db, const char *stop_id)
{
    char *sql = sqlite3_mprintf("SELECT actions FROM decisions WHERE stop_id = %Q", stop_id);
    sqlite3_stmt *stmt;
    char *actions = NULL;

    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        actions = strdup((const char *)sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    ck_assert_ptr_nonnull(actions);
    return actions;
}

/* An analyte that the threshold set cannot judge gets an action in the
 * stop's decision. A stop without one gets no action. */
START_TEST(decision_names_invalid_analyte)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    snprintf(fx.results[0].analytes[1].unit, sizeof(fx.results[0].analytes[1].unit), "furlongs");
    ck_assert_uint_eq(store_jobs(&fx), JOBS);
    char *invalid = stop_actions(fx.db, fx.stops[0]);
    char *valid = stop_actions(fx.db, fx.stops[1]);
    ck_assert_str_eq(invalid, "[\"cocaine not screened: unit cannot be converted\"]");
    ck_assert_str_eq(valid, "[]");
    free(invalid);
    free(valid);
    fixture_close(&fx);
}
END_TEST

/* The middle result fails after its result row is written: its rows go,
 * the results before and after it stay. */
START_TEST(failed_result_rolls_back_alone)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    exec_ok(fx.db, "CREATE TEMP TRIGGER inject BEFORE INSERT ON main.result_analytes"
                   " WHEN NEW.value_micro = 666000 BEGIN SELECT RAISE(ABORT, 'injected'); END");
    fx.results[1].analytes[1].value_micro = FAIL_VALUE;
    ck_assert_uint_eq(store_jobs(&fx), JOBS - 1);
    ck_assert_int_eq(fx.jobs[0].outcome, 1);
    ck_assert_int_eq(fx.jobs[1].outcome, -1);
    ck_assert_int_eq(fx.jobs[2].outcome, 1);
    ck_assert_int_eq(results_of_test(fx.db, fx.tests[1]), 0);
    ck_assert(test_in_state(fx.db, fx.tests[1], "running"));
    ck_assert(test_in_state(fx.db, fx.tests[2], "completed"));
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM results"), JOBS - 1);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM result_analytes"), 2 * (JOBS - 1));
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM decisions"), JOBS - 1);
    fixture_close(&fx);
}
END_TEST

/* A batch of one has no savepoint: its failure rolls back the transaction. */
START_TEST(failed_single_result_leaves_nothing)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    exec_ok(fx.db, "CREATE TEMP TRIGGER inject BEFORE INSERT ON main.result_analytes"
                   " WHEN NEW.value_micro = 666000 BEGIN SELECT RAISE(ABORT, 'injected'); END");
    fx.results[0].analytes[1].value_micro = FAIL_VALUE;
    ck_assert_uint_eq(store_first_jobs(&fx, 1), 0);
    ck_assert_int_eq(fx.jobs[0].outcome, -1);
    ck_assert(sqlite3_get_autocommit(fx.db));
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM results"), 0);
    ck_assert(test_in_state(fx.db, fx.tests[0], "running"));
    fixture_close(&fx);
}
END_TEST

static int read_faults;

/* Fails its first two calls with SQLITE_IOERR_READ, as reads from a
 * failing disk would, one for the batch and one for its retry with
 * savepoints, and returns its argument after that. */
static void fail_first_reads(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (read_faults++ < 2) {
        sqlite3_result_error_code(context, SQLITE_IOERR_READ);
        return;
    }
    sqlite3_result_value(context, argv[0]);
}

/* An I/O error on a read whose error the code does not check (the
 * specimen's collection date) makes SQLite roll the whole transaction back.
 * No write may follow in autocommit mode: nothing is stored, every job
 * reports it, and the same results store whole when read again. */
START_TEST(read_error_stores_nothing)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    read_faults = 0;
    ck_assert_int_eq(sqlite3_create_function(fx.db, "fail_first_reads", 1, SQLITE_UTF8, NULL,
                                             fail_first_reads, NULL, NULL),
                     SQLITE_OK);
    exec_ok(fx.db, "CREATE TEMP VIEW specimens AS SELECT id, barcode, subject_id, stop_id,"
                   " matrix, collected, fail_first_reads(collected_date) AS collected_date,"
                   " created FROM main.specimens");
    ck_assert_uint_eq(store_jobs(&fx), 0);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_int_eq(fx.jobs[i].outcome, -1);
        ck_assert_int_eq(results_of_test(fx.db, fx.tests[i]), 0);
        ck_assert(test_in_state(fx.db, fx.tests[i], "running"));
    }
    ck_assert_uint_eq(store_jobs(&fx), JOBS);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM results"), JOBS);
    fixture_close(&fx);
}
END_TEST

/* Two tests of one stop in one batch: the job that ends the stop decides
 * on both results, including the one stored earlier in the batch. */
START_TEST(same_stop_in_one_batch)
{
    struct fixture fx;
    char specimen[RECORD_ID_SIZE], second[RECORD_ID_SIZE];

    fixture_open(&fx);
    fixture_jobs(&fx);
    ck_assert_int_eq(db_begin(fx.db), 0);
    ck_assert_int_eq(db_specimen_add(fx.db, LAB, fx.subject, "OF-STORE-X", "oral-fluid",
                                     fx.stops[0], time_realtime_ms(), specimen),
                     0);
    ck_assert_int_eq(db_test_create(fx.db, LAB, fx.stops[0], "saliva-2", specimen, 99, second), 0);
    ck_assert_int_eq(db_test_set_state(fx.db, second, "running", NULL), 0);
    ck_assert_int_eq(db_commit(fx.db), 0);
    snprintf(fx.results[0].analytes[1].unit, sizeof(fx.results[0].analytes[1].unit), "furlongs");
    fx.jobs[1].test_id = second;
    ck_assert_uint_eq(store_first_jobs(&fx, 2), 2);
    ck_assert_int_eq(fx.jobs[0].outcome, 0);
    ck_assert_int_eq(fx.jobs[1].outcome, 1);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM decisions"), 1);
    char *actions = stop_actions(fx.db, fx.stops[0]);
    ck_assert_str_eq(actions, "[\"cocaine not screened: unit cannot be converted\"]");
    free(actions);
    fixture_close(&fx);
}
END_TEST

static int reject_commit(void *user)
{
    (void)user;
    return 1;
}

/* A COMMIT that fails stores nothing, and every job reports it. A commit
 * hook makes it fail here, as a full disk or an I/O error would. */
START_TEST(failed_commit_stores_none)
{
    struct fixture fx;

    fixture_open(&fx);
    fixture_jobs(&fx);
    sqlite3_commit_hook(fx.db, reject_commit, NULL);
    ck_assert_uint_eq(store_jobs(&fx), 0);
    sqlite3_commit_hook(fx.db, NULL, NULL);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_int_eq(fx.jobs[i].outcome, -1);
        ck_assert(test_in_state(fx.db, fx.tests[i], "running"));
    }
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM results"), 0);
    ck_assert(sqlite3_get_autocommit(fx.db));
    fixture_close(&fx);
}
END_TEST

static int count_commit(void *user)
{
    (*(int *)user)++;
    return 0;
}

static long long request_entries(sqlite3 *db)
{
    return count_rows(db, "SELECT count(*) FROM audit WHERE action = 'request'");
}

/* A request's audit entry commits with the command's changes: one COMMIT,
 * so one fdatasync, for both. */
START_TEST(request_entry_joins_transaction)
{
    struct fixture fx;
    int commits = 0;
    json_t *args = json_pack("{ss}", "stop", "S-1");

    fixture_open(&fx);
    sqlite3_commit_hook(fx.db, count_commit, &commits);
    ck_assert_int_eq(audit_request_hold(args, false), 0);
    ck_assert_int_eq(db_begin(fx.db), 0);
    ck_assert_int_eq(db_stop_note_add(fx.db, fx.stops[0], "dispute", 0), 0);
    ck_assert_int_eq(db_commit(fx.db), 0);
    ck_assert_int_eq(audit_request_flush(fx.db), 0);
    sqlite3_commit_hook(fx.db, NULL, NULL);
    ck_assert_int_eq(commits, 1);
    ck_assert_int_eq(request_entries(fx.db), 1);
    json_decref(args);
    fixture_close(&fx);
}
END_TEST

/* A command whose transaction rolls back still leaves its request entry,
 * and one that begins no transaction gets it written alone. */
START_TEST(request_entry_outlives_rollback)
{
    struct fixture fx;
    json_t *args = json_pack("{ss}", "stop", "S-1");

    fixture_open(&fx);
    ck_assert_int_eq(audit_request_hold(args, false), 0);
    ck_assert_int_eq(db_begin(fx.db), 0);
    ck_assert_int_eq(db_stop_note_add(fx.db, fx.stops[0], "dispute", 0), 0);
    db_rollback(fx.db);
    ck_assert_int_eq(audit_request_flush(fx.db), 0);
    ck_assert_int_eq(request_entries(fx.db), 1);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM stop_notes"), 0);

    ck_assert_int_eq(audit_request_hold(args, true), 0);
    ck_assert_int_eq(audit_request_flush(fx.db), 0);
    ck_assert_int_eq(count_rows(fx.db, "SELECT count(*) FROM audit WHERE action = 'rejected'"), 1);
    ck_assert_int_eq(audit_request_flush(fx.db), 0);
    ck_assert_int_eq(request_entries(fx.db), 1);
    json_decref(args);
    fixture_close(&fx);
}
END_TEST

/* Tables that stay a few rows long, which a query may read whole. */
static bool small_table(const char *name)
{
    static const char *const small[] = {"threshold_sets", "rule_sets"};

    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        if (strcmp(name, small[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Reports whether the schema has an object of that type and name and, with
 * partial, whether it is a partial index (one with a WHERE clause). */
static bool schema_has(sqlite3 *db, const char *type, const char *name, bool partial)
{
    sqlite3_stmt *stmt;
    bool found = false;

    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT sql FROM sqlite_master WHERE type = ?1 AND"
                                        " name = ?2",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(stmt, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        found = !partial || (text != NULL && strstr(text, " WHERE ") != NULL);
    }
    sqlite3_finalize(stmt);
    return found;
}

/* Finds the table that a name in a query plan refers to: the name itself,
 * or the table before it where the SQL reads "FROM table name" or
 * "JOIN table name". Copies it into table. */
static void resolve_alias(const char *sql, const char *name, char *table, size_t size)
{
    char words[4096];
    char *tokens[512];
    size_t count = 0;

    snprintf(table, size, "%s", name);
    snprintf(words, sizeof(words), "%s", sql);
    for (char *c = words; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_') {
            *c = ' ';
        }
    }
    for (char *save, *t = strtok_r(words, " ", &save); t && count < 512;
         t = strtok_r(NULL, " ", &save)) {
        tokens[count++] = t;
    }
    for (size_t i = 2; i < count; i++) {
        if (strcmp(tokens[i], name) == 0 &&
            (strcasecmp(tokens[i - 2], "FROM") == 0 || strcasecmp(tokens[i - 2], "JOIN") == 0)) {
            snprintf(table, size, "%s", tokens[i - 1]);
            return;
        }
    }
}

/* Reports whether one step of a query plan reads a whole stored table that
 * grows with use. Partial indexes, WITH tables and small tables pass. */
static bool step_scans_table(sqlite3 *db, const char *sql, const char *detail)
{
    char name[64], table[64], index[64];

    if (sscanf(detail, "SCAN %63s", name) != 1) {
        return false;
    }
    resolve_alias(sql, name, table, sizeof(table));
    if (!schema_has(db, "table", table, false) || small_table(table)) {
        return false;
    }
    const char *using = strstr(detail, " INDEX ");
    return using == NULL || sscanf(using, " INDEX %63s", index) != 1 ||
           !schema_has(db, "index", index, true);
}

/* Returns the first step of the statement's query plan that reads a whole
 * table, or NULL. */
static char *full_scan_in_plan(sqlite3 *db, const char *sql)
{
    char *explain = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *stmt;
    char *found = NULL;

    ck_assert_msg(sqlite3_prepare_v2(db, explain, -1, &stmt, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    while (found == NULL && sqlite3_step(stmt) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(stmt, 3);
        if (step_scans_table(db, sql, detail)) {
            found = strdup(detail);
        }
    }
    sqlite3_finalize(stmt);
    sqlite3_free(explain);
    return found;
}

static void count_visit(const struct test_row *row, void *user)
{
    (void)row;
    (*(int *)user)++;
}

/* Every statement that the result path, the evidence reads and the
 * start-up check prepared stays in the connection's statement cache. None
 * of them may read a whole table, because on a large database each such
 * read costs seconds (docs/benchmarks.md, B5 and B7). */
START_TEST(hot_queries_use_indexes)
{
    struct fixture fx;
    int open = 0;

    fixture_open(&fx);
    fixture_jobs(&fx);
    ck_assert_uint_eq(store_jobs(&fx), JOBS);
    json_decref(db_evidence_json(fx.db, fx.subject, NULL));
    json_decref(db_evidence_json(fx.db, NULL, fx.stops[0]));
    ck_assert_int_eq(db_open_tests(fx.db, count_visit, &open), 0);
    ck_assert_int_eq(open, 0);

    int checked = 0;
    for (sqlite3_stmt *stmt = sqlite3_next_stmt(fx.db, NULL); stmt != NULL;
         stmt = sqlite3_next_stmt(fx.db, stmt)) {
        const char *sql = sqlite3_sql(stmt);
        /* The plan of an INSERT lists the scans of SQLite's foreign key
         * check of the new row as a parent, which run only while a
         * violation is outstanding. */
        if (strncmp(sql, "INSERT", 6) == 0) {
            continue;
        }
        char *scan = full_scan_in_plan(fx.db, sql);

        ck_assert_msg(scan == NULL, "%s reads a whole table: %s", sql, scan);
        checked++;
    }
    ck_assert_int_ge(checked, 10);
    fixture_close(&fx);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("store");
    TCase *batch = tcase_create("batch");

    setenv("TZ", "Asia/Shanghai", 1);
    tcase_add_test(batch, batch_stores_each_with_decision);
    tcase_add_test(batch, decision_names_invalid_analyte);
    tcase_add_test(batch, failed_result_rolls_back_alone);
    tcase_add_test(batch, failed_single_result_leaves_nothing);
    tcase_add_test(batch, failed_commit_stores_none);
    tcase_add_test(batch, read_error_stores_nothing);
    tcase_add_test(batch, same_stop_in_one_batch);
    tcase_add_test(batch, hot_queries_use_indexes);
    tcase_add_test(batch, request_entry_joins_transaction);
    tcase_add_test(batch, request_entry_outlives_rollback);
    suite_add_tcase(suite, batch);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
