/* Group commit of analyzer results; see db_results.h. */
#include "controller/db_results.h"

#include "controller/db_internal.h"
#include "controller/log.h"
#include "controller/timefmt.h"

#include <stdbool.h>
#include <syslog.h>

/* Stores one result and, when it ends its stop, the stop's decision.
 * Returns 1 when the stop ended, 0 when other tests are open, -1 on error.
 * Runs inside the batch's transaction. */
static int store_one(sqlite3 *db, const struct result_settings *settings, struct result_job *job)
{
    if (db_test_get(db, job->test_id, &job->test) != 1) {
        log_msg(LOG_ERR, "test %s: not found while storing its result", job->test_id);
        return -1;
    }
    struct result_context context = {
        .identity = &job->identity,
        .thresholds = settings->thresholds,
        .alcohol = settings->alcohol,
        .timezone = settings->timezone,
        /* A test that takes no specimen (breath) is collected as it runs. */
        .collection_date = job->test.specimen_id[0]
                               ? db_specimen_collection_date(db, job->test.specimen_id)
                               : time_local_date(time_realtime_ms()),
    };
    if (db_result_store(db, settings->lab, &job->test, job->result, &context, job->result_id) !=
        0) {
        return -1;
    }
    return db_stop_decide_if_ended(db, settings->lab, job->test.stop_id, settings->alcohol,
                                   settings->rules);
}

static void log_job_failure(sqlite3 *db, const struct result_job *job)
{
    log_msg(LOG_ERR, "%s: test %s: storing the result failed: %s",
            job->test.instrument[0] ? job->test.instrument : "?", job->test_id, db_errmsg(db));
}

/* Stores one job inside a savepoint, so that a failure undoes its rows
 * only. Returns -1 when the savepoint could not be undone, which leaves the
 * failed job's rows in the transaction. */
static int store_in_savepoint(sqlite3 *db, const struct result_settings *settings,
                              struct result_job *job)
{
    if (db_exec_sql(db, "SAVEPOINT result") != 0) {
        return -1;
    }
    job->outcome = store_one(db, settings, job);
    if (job->outcome < 0) {
        log_job_failure(db, job);
        if (db_exec_sql(db, "ROLLBACK TO result") != 0) {
            return -1;
        }
    }
    return db_exec_sql(db, "RELEASE result");
}

static void log_batch_failure(sqlite3 *db, size_t count, const char *step)
{
    if (count == 1) {
        log_msg(LOG_ERR, "storing the result failed at %s: %s", step, db_errmsg(db));
    } else {
        log_msg(LOG_ERR, "storing %zu results failed at %s: %s", count, step, db_errmsg(db));
    }
}

static void mark_not_stored(struct result_job *jobs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        jobs[i].outcome = -1;
    }
}

/* Stores the jobs in one transaction and returns the number stored. With
 * savepoints a failed job rolls back alone. Without them the first failed
 * job rolls back the whole transaction, and the return is -1. */
static long store_batch(sqlite3 *db, const struct result_settings *settings,
                        struct result_job *jobs, size_t count, bool savepoints)
{
    long stored = 0;

    mark_not_stored(jobs, count);
    if (db_begin(db) != 0) {
        log_batch_failure(db, count, "BEGIN");
        return 0;
    }
    bool stuck = false; /* a failed job's savepoint could not be undone */
    for (size_t i = 0; i < count && !stuck && !sqlite3_get_autocommit(db); i++) {
        if (savepoints) {
            stuck = store_in_savepoint(db, settings, &jobs[i]) != 0;
        } else if ((jobs[i].outcome = store_one(db, settings, &jobs[i])) < 0) {
            log_job_failure(db, &jobs[i]);
            db_rollback(db);
            mark_not_stored(jobs, count);
            return -1;
        }
        stored += jobs[i].outcome >= 0;
    }
    /* After an I/O error or a full disk, SQLite may roll the whole
     * transaction back. A later SAVEPOINT would then commit on its own, so
     * the loop stops and the batch counts as failed, as it does when a
     * savepoint could not be undone. */
    bool lost = sqlite3_get_autocommit(db);
    if (lost || stuck || db_commit(db) != 0) {
        log_batch_failure(db, count,
                          lost    ? "a statement, after which SQLite rolled the transaction back"
                          : stuck ? "ROLLBACK TO"
                                  : "COMMIT");
        db_rollback(db);
        mark_not_stored(jobs, count);
        return 0;
    }
    return stored;
}

size_t db_results_store(sqlite3 *db, const struct result_settings *settings,
                        struct result_job *jobs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        jobs[i].test.instrument[0] = '\0';
    }
    /* Savepoints cost time on every result, and a result rarely fails, so
     * the batch goes without them first. When one fails, the others are
     * stored again, each in a savepoint. */
    long stored = store_batch(db, settings, jobs, count, false);
    if (stored < 0 && count > 1) {
        stored = store_batch(db, settings, jobs, count, true);
    }
    return stored < 0 ? 0 : (size_t)stored;
}
