/* Commands of administrators on the evidence itself: verifying the audit
 * chain, reading its head, and writing a backup with SQLite's online backup
 * API while the daemon runs. */
#include "controller/commands.h"

#include "controller/audit.h"
#include "controller/db.h"
#include "controller/timefmt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static json_t *report_json(const struct audit_report *report)
{
    json_t *obj = json_pack("{sI sI ss}", "entries", (json_int_t)report->entries, "head_seq",
                            (json_int_t)report->head_seq, "head", report->head);

    json_object_set_new(obj, "ok", json_boolean(report->first_bad == 0 && report->reason[0] == 0));
    if (report->reason[0] != '\0') {
        json_object_set_new(obj, "first_bad", json_integer(report->first_bad));
        json_object_set_new(obj, "reason", json_string(report->reason));
    }
    return obj;
}

json_t *cmd_audit_verify(const struct request *req)
{
    struct audit_report report;
    int status = audit_verify(req->daemon->db, &report);

    if (status < 0) {
        log_msg(LOG_ERR, "audit verify failed: %s", report.reason);
        return req_fail(req, PROTO_STORAGE, "reading the audit log failed: %s", report.reason);
    }
    if (status > 0) {
        log_msg(LOG_CRIT, "audit log does not verify: entry %lld: %s", report.first_bad,
                report.reason);
        return req_fail(req, PROTO_AUDIT_MISMATCH,
                        "the audit log does not verify: the first entry that does not match is "
                        "%lld: %s",
                        report.first_bad, report.reason);
    }
    return req_ok(req, "audit", report_json(&report));
}

json_t *cmd_audit_head(const struct request *req)
{
    long long seq;
    char hash[AUDIT_HASH_HEX];

    if (audit_head(req->daemon->db, &seq, hash) != 0) {
        return req_fail(req, PROTO_STORAGE, "reading the audit log failed: %s",
                        db_errmsg(req->daemon->db));
    }
    return req_ok(req, "audit", json_pack("{sI ss}", "head_seq", (json_int_t)seq, "head", hash));
}

void audit_log_head(struct daemon *daemon)
{
    static long long logged_block;
    static sqlite3_int64 seen_changes = -1;
    long long seq;
    char hash[AUDIT_HASH_HEX];

    /* Most line events (progress polls) change nothing, so the head is
     * read only after rows changed on this connection. */
    sqlite3_int64 changes = sqlite3_total_changes64(daemon->db);
    if (changes == seen_changes) {
        return;
    }
    seen_changes = changes;
    if (audit_head(daemon->db, &seq, hash) != 0) {
        return;
    }
    long long block = seq / daemon->config.audit_head_every;
    if (block > logged_block) {
        logged_block = block;
        log_msg(LOG_NOTICE, "audit chain head: entry %lld, hash %s", seq, hash);
    }
}

/* Copies the live database into path, all pages in one step. */
static int copy_database(sqlite3 *source, const char *path, char *err, size_t err_size)
{
    sqlite3 *target = NULL;
    int rc = sqlite3_open_v2(path, &target, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_backup *backup = sqlite3_backup_init(target, "main", source, "main");
        if (backup == NULL) {
            rc = sqlite3_errcode(target);
        } else {
            /* NOTE: one step copies the whole file while the event loop waits;
             * a large database would want steps between client requests. */
            rc = sqlite3_backup_step(backup, -1);
            sqlite3_backup_finish(backup);
            rc = rc == SQLITE_DONE ? sqlite3_errcode(target) : rc;
        }
        /* The copy inherits WAL mode; a rollback journal keeps it one file. */
        if (rc == SQLITE_OK) {
            rc = sqlite3_exec(target, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
        }
    }
    /* The copy contains full subject IDs: only toxlabd's user may read it. */
    if (rc == SQLITE_OK && chmod(path, 0600) != 0) {
        rc = SQLITE_CANTOPEN;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "%s: %s", path,
                 target ? sqlite3_errmsg(target) : sqlite3_errstr(rc));
    }
    sqlite3_close(target);
    return rc == SQLITE_OK ? 0 : -1;
}

json_t *cmd_backup(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    char stamp[TIMESTAMP_SIZE];
    char path[PATH_MAX];
    char err[PATH_MAX + 128];
    struct audit_report report;

    if (mkdir(daemon->config.backup_folder, 0700) != 0 && errno != EEXIST) {
        log_msg(LOG_ERR, "backup: cannot create %s: %s", daemon->config.backup_folder,
                strerror(errno));
        return req_fail(req, PROTO_STORAGE,
                        "cannot create the backup folder %s (daemon.backup_folder): %s",
                        daemon->config.backup_folder, strerror(errno));
    }
    time_format_utc(time_realtime_ms(), stamp);
    for (char *p = stamp; *p; p++) {
        *p = *p == ':' ? '-' : *p;
    }
    snprintf(path, sizeof(path), "%.*s/toxlab-%s-%s.db", PATH_MAX - 64,
             daemon->config.backup_folder, daemon->config.lab_id, stamp);
    if (copy_database(daemon->db, path, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "backup failed: %s", err);
        return req_fail(req, PROTO_STORAGE, "backup failed: %s; no backup was written", err);
    }
    sqlite3 *copy = NULL;
    int checked = sqlite3_open_v2(path, &copy, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
                      ? audit_verify(copy, &report)
                      : -1;
    sqlite3_close(copy);
    if (checked != 0) {
        log_msg(LOG_ERR, "backup %s does not verify: %s", path, report.reason);
        return req_fail(req, PROTO_STORAGE, "backup %s was written but does not verify: %s", path,
                        report.reason);
    }
    log_msg(LOG_NOTICE, "backup written to %s: audit entry %lld, hash %s", path, report.head_seq,
            report.head);
    json_t *result = report_json(&report);
    json_object_set_new(result, "file", json_string(path));
    return req_ok(req, "backup", result);
}
