/* Group commit of analyzer results. The results of one pass of the event
 * loop are stored in one transaction, so that one fdatasync covers them all.
 * When one of them fails, the batch is stored again with a savepoint for
 * each result, so that the failed one rolls back alone. The caller
 * acknowledges each stored result only after this returns. */
#ifndef TOXLAB_DB_RESULTS_H
#define TOXLAB_DB_RESULTS_H

#include "controller/db.h"

#include <stddef.h>

/* Settings that apply to every result of a batch. */
struct result_settings {
    const char *lab;
    const struct threshold_set *thresholds;
    const struct alcohol_config *alcohol;
    const struct rule_set *rules;
    const char *timezone;
};

/* One result to store: the caller fills test_id, result and identity. */
struct result_job {
    const char *test_id;
    const struct driver_result *result;
    struct driver_identity identity;
    /* Filled in by db_results_store. */
    struct test_row test;
    char result_id[RECORD_ID_SIZE];
    int outcome; /* 1: stored and the stop ended, 0: stored, -1: not stored */
};

/* Stores the jobs' results with the stops' decisions in one transaction.
 * A job whose result fails to store gets outcome -1 and leaves no rows.
 * When BEGIN or COMMIT fails, every job gets -1. Returns the number stored.
 * Each failure is logged with the test's ID. */
size_t db_results_store(sqlite3 *db, const struct result_settings *settings,
                        struct result_job *jobs, size_t count);

#endif
