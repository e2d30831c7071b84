/* B4: results committed per second through the daemon's storage path,
 * with 1, 4 and 16 concurrent sources. The daemon's event loop stores the
 * results of one pass over the line events in one transaction, with
 * db_results_store in controller/db_results.c: the test, the result with
 * its analytes, the test's state and the stop's decision. It acknowledges
 * them after the COMMIT. This program calls db_results_store with k
 * results for k sources. The reference inserts the same rows with plain
 * SQL, k results in one transaction. Both files use WAL with
 * synchronous=FULL, in one folder on the same disk. */
#define _GNU_SOURCE
#include "bench/benchlib.h"
#include "controller/config.h"
#include "controller/db.h"
#include "controller/db_results.h"
#include "controller/thresholds.h"
#include "controller/timefmt.h"
#include "protocol/decimal.h"
#include "protocol/subject_id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAB "BENCH"
#define PANEL 10

static const char *const panel[PANEL] = {
    "thc",     "amphetamine",     "methamphetamine", "mdma",     "mda",
    "cocaine", "benzoylecgonine", "codeine",         "morphine", "6-mam",
};

struct store {
    sqlite3 *db;
    struct threshold_set thresholds;
    struct rule_set rules;
    struct config config;
    struct driver_identity identity;
    size_t count;
    char (*tests)[RECORD_ID_SIZE];
};

static void check(int status, struct store *store, const char *operation)
{
    if (status != 0) {
        errno = 0;
        bench_fail("%s failed: %s", operation, sqlite3_errmsg(store->db));
    }
}

static void open_store(struct store *store, const char *path)
{
    char err[512];
    char thresholds[4096];
    char rules[4096];

    memset(store, 0, sizeof(*store));
    config_defaults(&store->config);
    snprintf(thresholds, sizeof(thresholds), "%s/etc/thresholds.tsv",
             bench_program("TOXLAB_SOURCE_DIR"));
    snprintf(rules, sizeof(rules), "%s/etc/rules.tsv", bench_program("TOXLAB_SOURCE_DIR"));
    if (thresholds_load(thresholds, &store->thresholds, err, sizeof(err)) != 0 ||
        rules_load(rules, &store->rules, err, sizeof(err)) != 0 ||
        db_open(path, 5000, &store->db, err, sizeof(err)) != 0) {
        errno = 0;
        bench_fail("%s", err);
    }
    check(db_threshold_set_store(store->db, &store->thresholds), store, "storing the thresholds");
    snprintf(store->identity.serial, sizeof(store->identity.serial), "SAL-0001");
    snprintf(store->identity.firmware, sizeof(store->identity.firmware), "2.1.0");
    snprintf(store->identity.calibration, sizeof(store->identity.calibration), "2026-10-01");
    snprintf(store->identity.cartridge_lot, sizeof(store->identity.cartridge_lot), "L2409A");
    snprintf(store->identity.cartridge_expiry, sizeof(store->identity.cartridge_expiry),
             "2027-06-30");
}

static void close_store(struct store *store)
{
    db_close(store->db);
    thresholds_free(&store->thresholds);
    rules_free(&store->rules);
    free(store->tests);
}

/* Writes count running tests, each in a stop of its own with a specimen,
 * as test.start leaves them. Not timed. */
static void prepare_tests(struct store *store, size_t count)
{
    struct subject_id subject = {.type = "resident", .number = "999999199001011238"};
    char subject_row[RECORD_ID_SIZE];
    bool existed;

    store->tests = calloc(count, sizeof(*store->tests));
    store->count = count;
    check(db_begin(store->db), store, "BEGIN");
    check(db_subject_add(store->db, LAB, &subject, subject_row, &existed), store, "subject");
    for (size_t i = 0; i < count; i++) {
        char stop[RECORD_ID_SIZE], specimen[RECORD_ID_SIZE], barcode[32];

        snprintf(barcode, sizeof(barcode), "OF-%08zu", i);
        check(db_stop_create(store->db, LAB, subject_row, true, stop), store, "stop");
        check(db_specimen_add(store->db, LAB, subject_row, barcode, "oral-fluid", stop,
                              time_realtime_ms(), specimen),
              store, "specimen");
        check(db_test_create(store->db, LAB, stop, "saliva-1", specimen, (uint32_t)i + 1,
                             store->tests[i]),
              store, "test");
        check(db_test_set_state(store->db, store->tests[i], "running", NULL), store, "state");
    }
    check(db_commit(store->db), store, "COMMIT");
}

static void fill_result(struct driver_result *result, uint32_t host_test_id)
{
    memset(result, 0, sizeof(*result));
    result->host_test_id = host_test_id;
    result->sequence = host_test_id;
    snprintf(result->matrix, sizeof(result->matrix), "oral-fluid");
    snprintf(result->tier, sizeof(result->tier), "screen");
    result->count = PANEL;
    for (size_t i = 0; i < PANEL; i++) {
        snprintf(result->analytes[i].analyte, sizeof(result->analytes[i].analyte), "%s", panel[i]);
        snprintf(result->analytes[i].unit, sizeof(result->analytes[i].unit), "ng/mL");
        result->analytes[i].value_micro = i == 2 && host_test_id % 10 == 0 ? 120500000 : 0;
    }
}

/* Stores results k at a time with the daemon's db_results_store, as its
 * event loop does when each of k analyzers has a result waiting in one pass
 * over the line events. */
static void store_like_daemon(struct store *store, size_t first, size_t k)
{
    struct driver_result results[16];
    struct result_job jobs[16];
    struct result_settings settings = {
        .lab = LAB,
        .thresholds = &store->thresholds,
        .alcohol = &store->config.alcohol,
        .rules = &store->rules,
        .timezone = "Asia/Shanghai",
    };

    for (size_t j = 0; j < k; j++) {
        fill_result(&results[j], (uint32_t)(first + j) + 1);
        memset(&jobs[j], 0, sizeof(jobs[j]));
        jobs[j].test_id = store->tests[first + j];
        jobs[j].result = &results[j];
        jobs[j].identity = store->identity;
    }
    if (db_results_store(store->db, &settings, jobs, k) != k) {
        errno = 0;
        bench_fail("storing results %zu to %zu failed", first, first + k - 1);
    }
}

/* Returns results per second through the daemon's path with k sources. */
static double time_daemon_path(const char *path, size_t count, int sources)
{
    struct store store;

    open_store(&store, path);
    prepare_tests(&store, count);
    int64_t start = bench_now_ns();
    for (size_t i = 0; i < count; i += (size_t)sources) {
        size_t k = count - i < (size_t)sources ? count - i : (size_t)sources;
        store_like_daemon(&store, i, k);
    }
    double rate = (double)count / ((double)(bench_now_ns() - start) / 1e9);
    close_store(&store);
    return rate;
}

/* The reference's statements, prepared once. */
enum { REF_RESULT, REF_ANALYTE, REF_TEST, REF_DECISION, REF_COUNT };

static const char *const reference_sql[REF_COUNT] = {
    "INSERT INTO results (id, test_id, instrument, serial, firmware, calibration, cartridge_lot,"
    " cartridge_expiry, matrix, tier, received, timezone, threshold_version, host_test_id,"
    " sequence, clock_synced, collected_date) VALUES (?1, ?2, 'saliva-1', 'SAL-0001', '2.1.0',"
    " '2026-10-01', 'L2409A', '2027-06-30', 'oral-fluid', 'screen', ?3, 'Asia/Shanghai', ?4, ?5,"
    " ?5, 1, 20261204)",
    "INSERT INTO result_analytes (result_id, analyte, value_text, unit, outcome, cutoff_text,"
    " cutoff_unit, threshold_source, position, value_micro, over_range, under_range,"
    " threshold_line) VALUES (?1, ?2, ?3, 'ng/mL', ?4, '50', 'ng/mL', '49 CFR 40.91(d)', ?5, ?6,"
    " 0, 0, 12)",
    "UPDATE tests SET state = 'completed', reason = NULL, updated = ?2 WHERE id = ?1",
    "INSERT INTO decisions (id, stop_id, subject_id, question, decision, rules, evidence,"
    " actions, created) SELECT ?1, t.stop_id, s.subject_id, 'screen', 'none', '[]', '[]', '[]',"
    " ?2 FROM tests t JOIN stops s ON s.id = t.stop_id WHERE t.id = ?3",
};

static void step_reference(struct store *store, sqlite3_stmt *stmt)
{
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        check(-1, store, sqlite3_sql(stmt));
    }
    sqlite3_reset(stmt);
}

static void insert_reference(struct store *store, sqlite3_stmt **stmt, size_t i)
{
    char result_id[RECORD_ID_SIZE], decision_id[RECORD_ID_SIZE], now[TIMESTAMP_SIZE];
    struct driver_result result;

    fill_result(&result, (uint32_t)i + 1);
    record_id_new(LAB, result_id);
    record_id_new(LAB, decision_id);
    time_format_utc(time_realtime_ms(), now);
    sqlite3_bind_text(stmt[REF_RESULT], 1, result_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_RESULT], 2, store->tests[i], -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_RESULT], 3, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_RESULT], 4, store->thresholds.version, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt[REF_RESULT], 5, result.host_test_id);
    step_reference(store, stmt[REF_RESULT]);
    for (size_t a = 0; a < result.count; a++) {
        char value[32];
        decimal_format(result.analytes[a].value_micro, 3, value, sizeof(value));
        sqlite3_bind_text(stmt[REF_ANALYTE], 1, result_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt[REF_ANALYTE], 2, result.analytes[a].analyte, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt[REF_ANALYTE], 3, value, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt[REF_ANALYTE], 4, "negative", -1, SQLITE_STATIC);
        sqlite3_bind_int(stmt[REF_ANALYTE], 5, (int)a);
        sqlite3_bind_int64(stmt[REF_ANALYTE], 6, result.analytes[a].value_micro);
        step_reference(store, stmt[REF_ANALYTE]);
    }
    sqlite3_bind_text(stmt[REF_TEST], 1, store->tests[i], -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_TEST], 2, now, -1, SQLITE_TRANSIENT);
    step_reference(store, stmt[REF_TEST]);
    sqlite3_bind_text(stmt[REF_DECISION], 1, decision_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_DECISION], 2, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(stmt[REF_DECISION], 3, store->tests[i], -1, SQLITE_TRANSIENT);
    step_reference(store, stmt[REF_DECISION]);
}

/* Returns results per second with k results in each transaction. */
static double time_reference(const char *path, size_t count, int batch)
{
    struct store store;
    sqlite3_stmt *stmt[REF_COUNT];

    open_store(&store, path);
    prepare_tests(&store, count);
    for (int i = 0; i < REF_COUNT; i++) {
        if (sqlite3_prepare_v2(store.db, reference_sql[i], -1, &stmt[i], NULL) != SQLITE_OK) {
            check(-1, &store, reference_sql[i]);
        }
    }
    int64_t start = bench_now_ns();
    for (size_t i = 0; i < count; i += (size_t)batch) {
        check(db_begin(store.db), &store, "BEGIN");
        for (size_t j = i; j < count && j < i + (size_t)batch; j++) {
            insert_reference(&store, stmt, j);
        }
        check(db_commit(store.db), &store, "COMMIT");
    }
    double rate = (double)count / ((double)(bench_now_ns() - start) / 1e9);
    for (int i = 0; i < REF_COUNT; i++) {
        sqlite3_finalize(stmt[i]);
    }
    close_store(&store);
    return rate;
}

static void remove_database(const char *path)
{
    char extra[4200];

    unlink(path);
    snprintf(extra, sizeof(extra), "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", path);
    unlink(extra);
}

static void run_sources(const char *dir, int sources, int runs, size_t count)
{
    double daemon[BENCH_MAX_RUNS], reference[BENCH_MAX_RUNS], ratio[BENCH_MAX_RUNS];
    char path[4096], figure[128], note[128];

    for (int r = 0; r < runs; r++) {
        snprintf(path, sizeof(path), "%s/daemon.db", dir);
        daemon[r] = time_daemon_path(path, count, sources);
        remove_database(path);
        snprintf(path, sizeof(path), "%s/reference.db", dir);
        reference[r] = time_reference(path, count, sources);
        remove_database(path);
        ratio[r] = daemon[r] / reference[r];
    }
    struct bench_stats ratio_stats = bench_stats_of(ratio, (size_t)runs);
    snprintf(figure, sizeof(figure), "storage path, %d source%s", sources, sources > 1 ? "s" : "");
    snprintf(note, sizeof(note), "%d result%s a transaction", sources, sources > 1 ? "s" : "");
    bench_row("B4", figure, bench_stats_of(daemon, (size_t)runs), 0, "results/s", note);
    snprintf(figure, sizeof(figure), "plain SQLite, %d result%s a transaction", sources,
             sources > 1 ? "s" : "");
    bench_row("B4", figure, bench_stats_of(reference, (size_t)runs), 0, "results/s", "reference");
    snprintf(figure, sizeof(figure), "storage path / reference, %d source%s", sources,
             sources > 1 ? "s" : "");
    snprintf(note, sizeof(note), "target >= 0.8x: %s",
             ratio_stats.median >= 0.8 ? "met" : "missed");
    bench_row("B4", figure, ratio_stats, 3, "x", note);
}

int main(int argc, char **argv)
{
    int runs = 5;
    bool smoke = false;
    static const int sources[] = {1, 4, 16};

    bench_common_options(argc, argv, &runs, &smoke);
    setenv("TZ", "Asia/Shanghai", 1);
    tzset();
    char *dir = bench_tmpdir("store");
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        run_sources(dir, sources[i], runs, smoke ? 32 : 1600);
    }
    bench_rmdir(dir);
    free(dir);
    return 0;
}
