/* Storage in one SQLite file (WAL, synchronous=FULL, foreign keys). Every
 * function runs on the event loop's thread. Functions that change rows
 * return 0, or -1 after logging the SQLite error. Callers group them in
 * db_begin/db_commit, so that a result and its decision commit together. */
#ifndef TOXLAB_DB_H
#define TOXLAB_DB_H

#include "controller/interpret.h"
#include "controller/rules.h"
#include "controller/thresholds.h"
#include "controller/ulid.h"
#include "instruments/driver.h"
#include "protocol/subject_id.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct specimen_row {
    char id[RECORD_ID_SIZE];
    char barcode[64];
    char subject_id[RECORD_ID_SIZE];
    char stop_id[RECORD_ID_SIZE];
    char matrix[16];
    int collected_date; /* YYYYMMDD, local */
    int test_count;
};

struct test_row {
    char id[RECORD_ID_SIZE];
    char stop_id[RECORD_ID_SIZE];
    char instrument[INSTRUMENT_ID_MAX + 1];
    char specimen_id[RECORD_ID_SIZE]; /* empty when the test takes no specimen */
    uint32_t host_test_id;
    char state[16];
    char reason[256];
};

/* Analyzer identity and settings that apply to an arriving result. */
struct result_context {
    const struct driver_identity *identity;
    const struct threshold_set *thresholds;
    const struct alcohol_config *alcohol;
    const char *timezone;
    int collection_date;
};

/* The schema version stored in PRAGMA user_version. Version 1 is the
 * schema in db.c. Every later change ships a migration from the version
 * before, and a test on a database that version made. */
#define DB_SCHEMA_VERSION 1

/* SQLite's page cache for a connection in KiB, the default of
 * daemon.cache_kb. It is half SQLite's default, which keeps the daemon's
 * memory within its target (docs/benchmarks.md, B6). */
#define DB_CACHE_KB 1024

int db_open(const char *path, int busy_timeout_ms, sqlite3 **db, char *err, size_t err_size);
int db_set_cache_kb(sqlite3 *db, int kib);
void db_close(sqlite3 *db);
int db_begin(sqlite3 *db);
int db_commit(sqlite3 *db);
void db_rollback(sqlite3 *db);

/* Returns 1 and fills id when found, 0 when not, -1 on error. */
int db_subject_find(sqlite3 *db, const struct subject_id *subject, char id[RECORD_ID_SIZE]);
int db_subject_add(sqlite3 *db, const char *lab, const struct subject_id *subject,
                   char id[RECORD_ID_SIZE], bool *existed);

int db_specimen_by_barcode(sqlite3 *db, const char *barcode, struct specimen_row *row);
int db_specimen_newest_untested(sqlite3 *db, const char *subject_id, const char *matrix,
                                struct specimen_row *row);
int db_specimen_add(sqlite3 *db, const char *lab, const char *subject_id, const char *barcode,
                    const char *matrix, const char *stop_id, int64_t collected_ms,
                    char id[RECORD_ID_SIZE]);

/* Returns 1 when the stop exists and belongs to subject_id, 0 if not, -1 on error. */
int db_stop_belongs_to(sqlite3 *db, const char *stop_id, const char *subject_id);
int db_stop_create(sqlite3 *db, const char *lab, const char *subject_id, bool driving,
                   char id[RECORD_ID_SIZE]);
int db_stop_mark_driving(sqlite3 *db, const char *stop_id);

/* Reports whether a host test ID is in use by a pending, running or
 * interrupted test. */
bool db_host_id_in_use(sqlite3 *db, uint32_t host_test_id);
int db_test_create(sqlite3 *db, const char *lab, const char *stop_id, const char *instrument,
                   const char *specimen_id, uint32_t host_test_id, char id[RECORD_ID_SIZE]);
int db_test_get(sqlite3 *db, const char *test_id, struct test_row *row);
int db_test_set_state(sqlite3 *db, const char *test_id, const char *state, const char *reason);

/* Finds the pending, running or interrupted test of an instrument with a
 * host test ID. Returns 1 when found, 0 if not, -1 on error. */
int db_test_find_by_host_id(sqlite3 *db, const char *instrument, uint32_t host_test_id,
                            struct test_row *row);

/* Calls visit for each test in state pending or running. */
int db_open_tests(sqlite3 *db, void (*visit)(const struct test_row *row, void *user), void *user);

int db_threshold_set_store(sqlite3 *db, const struct threshold_set *set);

/* Interprets and stores a result with its analytes and marks the test
 * completed. Run inside a transaction. */
int db_result_store(sqlite3 *db, const char *lab, const struct test_row *test,
                    const struct driver_result *result, const struct result_context *context,
                    char id[RECORD_ID_SIZE]);

/* Interprets each analyte against the threshold set in force on the
 * collection date and stores it with the cutoff row it was judged by.
 * panel_invalid, when set, makes every analyte invalid for that reason. */
int db_result_analytes_store(sqlite3 *db, const char *result_id, const char *matrix,
                             const char *tier, const struct driver_analyte *analytes, size_t count,
                             const char *panel_invalid, const struct threshold_set *thresholds,
                             int collection_date);

/* Returns 1 when every test of the stop has ended, 0 if not, -1 on error. */
int db_stop_ended(sqlite3 *db, const char *stop_id);

/* Returns 1 when the analyzer result (serial, sequence, host test ID) is stored. */
int db_result_exists(sqlite3 *db, const char *serial, uint32_t sequence, uint32_t host_test_id);

/* Returns the local collection date (YYYYMMDD) of a specimen, 0 if unknown. */
int db_specimen_collection_date(sqlite3 *db, const char *specimen_id);

/* Records the stop's screening decision (the flag rules run on the stop's
 * own results) and the officer's next actions.
 * Run inside a transaction. */
int db_stop_decide(sqlite3 *db, const char *lab, const char *stop_id,
                   const struct alcohol_config *alcohol, const struct rule_set *rules);

/* Decides the stop with db_stop_decide when none of its tests is open.
 * Returns 1 when it decided, 0 when tests are still open, -1 on a storage
 * error. Run inside a transaction. */
int db_stop_decide_if_ended(sqlite3 *db, const char *lab, const char *stop_id,
                            const struct alcohol_config *alcohol, const struct rule_set *rules);

/* Records a dispute or crash note on a stop. */
int db_stop_note_add(sqlite3 *db, const char *stop_id, const char *kind, unsigned uid);

/* Returns the number of the specimen's tests that are pending, running or
 * completed (a specimen takes no new test then), or -1 on error. */
int db_specimen_busy_tests(sqlite3 *db, const char *specimen_id);

/* JSON objects of docs/protocol.md, or NULL when not found. */
json_t *db_subject_json(sqlite3 *db, const char *subject_id, bool with_history);
json_t *db_test_json(sqlite3 *db, const char *test_id);
json_t *db_stop_json(sqlite3 *db, const char *stop_id);
json_t *db_specimen_json(sqlite3 *db, const char *specimen_id);

const char *db_errmsg(sqlite3 *db);

#endif
