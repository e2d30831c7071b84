/* Client commands on the evidence itself: "audit verify" (by toxlabd, or
 * offline on a database file such as a backup), "audit head" and "backup". */
#include "controller/toxlab_audit.h"

#include "controller/audit.h"
#include "controller/toxlab_report.h"

#include <sqlite3.h>
#include <stdio.h>

const struct cli_option audit_verify_options[] = {
    {"database", "database", 0, 0},
    {NULL, NULL, 0, 0},
};

static void print_report(const json_t *report)
{
    printf("audit entries: %d\n", get_int(report, "entries"));
    printf("chain head: entry %d, hash %s\n", get_int(report, "head_seq"),
           or_dash(get_string(report, "head")));
    if (get_string(report, "reason") != NULL) {
        printf("first entry that does not match: %d: %s\n", get_int(report, "first_bad"),
               get_string(report, "reason"));
    } else {
        printf("every entry and every audited row matches\n");
    }
}

void print_audit_response(const json_t *response)
{
    const json_t *audit = json_object_get(response, "audit");

    if (json_object_get(audit, "entries") != NULL) {
        print_report(audit);
        return;
    }
    printf("chain head: entry %d, hash %s\n", get_int(audit, "head_seq"),
           or_dash(get_string(audit, "head")));
}

void print_backup_response(const json_t *response)
{
    const json_t *backup = json_object_get(response, "backup");

    printf("backup: %s\n", or_dash(get_string(backup, "file")));
    print_report(backup);
}

int run_audit_verify_offline(const struct command *command, const struct options *options,
                             struct request *request)
{
    const char *path = json_string_value(json_object_get(request->args, "database"));
    char uri[4200];
    sqlite3 *db = NULL;
    struct audit_report report;

    (void)command;
    /* Read-only and immutable: a backup is never changed by checking it. */
    snprintf(uri, sizeof(uri), "file:%s?mode=ro", path);
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        print_error("%s: cannot open the database: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return STATUS_ERROR;
    }
    int status = audit_verify(db, &report);
    sqlite3_close(db);
    if (status < 0) {
        print_error("%s: reading the audit log failed: %s", path, report.reason);
        return STATUS_ERROR;
    }
    json_t *obj = json_pack("{sI sI ss sb}", "entries", (json_int_t)report.entries, "head_seq",
                            (json_int_t)report.head_seq, "head", report.head, "ok", status == 0);
    if (status > 0) {
        json_object_set_new(obj, "first_bad", json_integer(report.first_bad));
        json_object_set_new(obj, "reason", json_string(report.reason));
        print_error("%s: the audit log does not verify: the first entry that does not match is "
                    "%lld: %s",
                    path, report.first_bad, report.reason);
    }
    if (options->json) {
        print_json_line(obj);
    } else {
        print_report(obj);
    }
    json_decref(obj);
    return status == 0 ? STATUS_OK : STATUS_ERROR;
}
