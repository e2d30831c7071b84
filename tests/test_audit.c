/* Integration tests of the audit log and backups: the hash chain and the
 * audited rows verify, an edited row or entry is named, a backup taken
 * while toxlabd runs verifies and restores. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char blood_csv[] =
    "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
    "Forensic Lab B,FL-0412,BL-0001," SUBJECT_A ",blood,ketamine,35.2,ng/mL,2026-03-02,"
    "2026-03-05\n";

/* Runs the client; fails the test unless it exits with `expected`. */
static char *run_client(struct rig *rig, int expected, char **err, char *const *words)
{
    char *argv[16] = {(char *)harness_program("TOXLAB"), "-s", rig->socket};
    int argc = 3;
    char *out;
    char *err_text;

    for (size_t i = 0; words[i] != NULL && argc < 15; i++) {
        argv[argc++] = words[i];
    }
    argv[argc] = NULL;
    int status = harness_run(argv, NULL, CLIENT_MS, &out, &err_text);
    ck_assert_msg(status == expected, "toxlab %s: exit %d, expected %d\n%s%s", argv[3], status,
                  expected, out, err_text);
    if (err != NULL) {
        *err = err_text;
    } else {
        free(err_text);
    }
    return out;
}

/* Stores a little of everything: a screen, an import, a status, a decision. */
static void make_history(struct rig *rig)
{
    harness_write_file(rig_file(rig, "blood.csv"), blood_csv);
    register_subject(rig, SUBJECT_A, "OF-A1");
    char *start[] = {"test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL};
    char *import[] = {"import", rig_file(rig, "blood.csv"), NULL};
    free(run_client(rig, 0, NULL, start));
    free(run_client(rig, 0, NULL, import));
    char *status[] = {
        "status",  "add",        "--subject",   SUBJECT_A, "--kind", "revoked-drunk-driving",
        "--start", "2024-01-01", "--reference", "R-1",     NULL};
    char *check[] = {"licence", "check", SUBJECT_A, "--for", "application", NULL};
    free(run_client(rig, 0, NULL, status));
    free(run_client(rig, 0, NULL, check));
}

/* Copies the database file and edits the copy with SQL run after the
 * named triggers are dropped, as someone with the file in hand could. */
static void tamper(const char *from, const char *to, const char *sql)
{
    sqlite3 *db;
    char *text;
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    char buffer[65536];
    size_t got;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    while ((got = fread(buffer, 1, sizeof(buffer), in)) > 0) {
        ck_assert_uint_eq(fwrite(buffer, 1, got, out), got);
    }
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(sqlite3_open(to, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &text);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, text ? text : "");
    sqlite3_close(db);
}

/* Runs "audit verify --database FILE" and returns its exit status and stderr. */
static int verify_file(struct rig *rig, const char *path, char **err)
{
    char *words[] = {"audit", "verify", "--database", (char *)path, NULL};
    char *argv[8] = {(char *)harness_program("TOXLAB")};
    char *out;

    for (int i = 0; words[i] != NULL; i++) {
        argv[i + 1] = words[i];
    }
    (void)rig;
    int status = harness_run(argv, NULL, CLIENT_MS, &out, err);
    free(out);
    return status;
}

START_TEST(audit_records_changes_and_requests)
{
    struct rig rig;
    char text[512];

    rig_start(&rig, fast_phases, NULL);
    make_history(&rig);
    char *verify[] = {"audit", "verify", NULL};
    char *out = run_client(&rig, 0, NULL, verify);
    assert_contains(out, "every entry and every audited row matches");
    free(out);
    /* The result from the analyzer is toxlabd's change; the import is the admin's. */
    db_text(&rig,
            "SELECT command FROM audit WHERE tbl = 'results' AND action = 'insert' ORDER BY seq"
            " LIMIT 1",
            text, sizeof(text));
    ck_assert_str_eq(text, "toxlabd");
    db_text(&rig,
            "SELECT command || ' ' || uid FROM audit WHERE tbl = 'statuses' AND action ="
            " 'insert'",
            text, sizeof(text));
    ck_assert_str_eq(text, "status.add 0");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM audit WHERE action = 'request' AND"
                                    " command = 'licence.check'"),
                     1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM audit WHERE tbl = 'tests' AND action ="
                                    " 'update'"),
                     2);
    /* A routine read of instrument state is not entered; a subject's history is. */
    char *instruments[] = {"instruments", NULL};
    char *show[] = {"subject", "show", SUBJECT_A, NULL};
    free(run_client(&rig, 0, NULL, instruments));
    free(run_client(&rig, 0, NULL, show));
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM audit WHERE command = 'instruments'"), 0);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM audit WHERE command = 'subject.show'"),
                     1);
    rig_stop(&rig);
}
END_TEST

START_TEST(audit_names_tampered_entry)
{
    struct rig rig;
    char copy[512];
    char *err;

    rig_start(&rig, fast_phases, NULL);
    make_history(&rig);
    rig_stop(&rig);
    snprintf(copy, sizeof(copy), "%s/copy.db", rig.dir);

    /* Control: an untouched copy verifies. */
    tamper(rig.database, copy, "SELECT 1");
    ck_assert_int_eq(verify_file(&rig, copy, &err), 0);
    free(err);

    tamper(rig.database, copy,
           "DROP TRIGGER result_analytes_no_update;"
           " DROP TRIGGER audit_result_analytes_UPDATE;"
           " UPDATE result_analytes SET outcome = 'negative' WHERE analyte = 'ketamine'");
    ck_assert_int_eq(verify_file(&rig, copy, &err), 1);
    assert_contains(err, "of result_analytes differs from what this entry recorded");
    free(err);

    tamper(rig.database, copy,
           "DROP TRIGGER results_no_delete; DROP TRIGGER result_analytes_no_delete;"
           " DROP TRIGGER result_releases_no_delete;"
           " DROP TRIGGER audit_results_DELETE; DROP TRIGGER audit_result_analytes_DELETE;"
           " DROP TRIGGER audit_result_releases_DELETE;"
           " DELETE FROM result_analytes WHERE result_id IN (SELECT id FROM results WHERE"
           " laboratory IS NOT NULL);"
           " DELETE FROM result_releases; DELETE FROM results WHERE laboratory IS NOT NULL");
    ck_assert_int_eq(verify_file(&rig, copy, &err), 1);
    assert_contains(err, "differs from what this entry recorded");
    free(err);

    /* Rewriting an entry to hide an edit breaks the chain at that entry. */
    tamper(rig.database, copy,
           "DROP TRIGGER audit_no_update;"
           " UPDATE audit SET content = replace(content, 'R-1', 'R-2') WHERE tbl = 'statuses'");
    ck_assert_int_eq(verify_file(&rig, copy, &err), 1);
    assert_contains(err, "its hash does not match its content");
    free(err);
    long long seq = db_count(&rig, "SELECT seq FROM audit WHERE tbl = 'statuses'");
    char named[64];
    snprintf(named, sizeof(named), "does not match is %lld:", seq);
    ck_assert_int_eq(verify_file(&rig, copy, &err), 1);
    assert_contains(err, named);
    free(err);
}
END_TEST

START_TEST(backup_verifies_and_restores)
{
    struct rig rig;
    char backup[512];

    rig_start(&rig, fast_phases, NULL);
    make_history(&rig);
    char *words[] = {"backup", NULL};
    char *out = run_client(&rig, 0, NULL, words);
    assert_contains(out, "every entry and every audited row matches");
    char *line = strstr(out, "backup: ");
    ck_assert_ptr_nonnull(line);
    snprintf(backup, sizeof(backup), "%.*s", (int)strcspn(line + 8, "\n"), line + 8);
    free(out);
    ck_assert_int_eq(access(backup, R_OK), 0);

    /* A change after the backup is not in it. */
    char *later[] = {"subject", "add", SUBJECT_B, NULL};
    free(run_client(&rig, 0, NULL, later));
    rig_stop(&rig);

    /* Restore: the backup replaces the database file and its WAL. */
    char path[600];
    snprintf(path, sizeof(path), "%s-wal", rig.database);
    unlink(path);
    snprintf(path, sizeof(path), "%s-shm", rig.database);
    unlink(path);
    tamper(backup, rig.database, "SELECT 1");
    rig.daemon_running = false;
    start_daemon(&rig);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 2);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM subjects"), 1);
    char *check[] = {"licence", "check", SUBJECT_A, "--for", "application", NULL};
    free(run_client(&rig, 0, NULL, check));
    char *verify[] = {"audit", "verify", NULL};
    free(run_client(&rig, 0, NULL, verify));
    rig_stop(&rig);
}
END_TEST

/* Sets daemon.audit_head_every to 5. */
static void log_head_often(struct rig *rig, void *user)
{
    (void)user;
    char *config = harness_read_file(rig_file(rig, "toxlab.conf"));
    char *daemon_end = strstr(config, "\n\n[instrument.");
    ck_assert_ptr_nonnull(daemon_end);
    char rewritten[9000];
    snprintf(rewritten, sizeof(rewritten), "%.*s\naudit_head_every = 5%s",
             (int)(daemon_end - config), config, daemon_end);
    harness_write_file(rig_file(rig, "toxlab.conf"), rewritten);
    free(config);
}

START_TEST(audit_head_logged)
{
    struct rig rig;
    char query[160];
    char stored[80];
    int logged = 0;

    rig_start_edited(&rig, fast_phases, log_head_often, NULL);
    make_history(&rig);
    ck_assert_int_ge(db_count(&rig, "SELECT max(seq) FROM audit"), 10);
    ck_assert(harness_wait_file(rig.daemon.log_path, "audit chain head: entry ", EVENT_MS));
    rig_stop(&rig);

    /* Each head in the log names an entry whose stored hash it repeats. */
    char *log = harness_read_file(rig.daemon.log_path);
    for (char *at = strstr(log, "audit chain head: entry "); at != NULL;
         at = strstr(at + 1, "audit chain head: entry ")) {
        long long seq = 0;
        char hash[80] = "";
        ck_assert_int_eq(sscanf(at, "audit chain head: entry %lld, hash %64s", &seq, hash), 2);
        snprintf(query, sizeof(query), "SELECT hash FROM audit WHERE seq = %lld", seq);
        db_text(&rig, query, stored, sizeof(stored));
        ck_assert_str_eq(hash, stored);
        logged++;
    }
    free(log);
    ck_assert_int_ge(logged, 2);
}
END_TEST

START_TEST(newer_schema_rejected)
{
    struct rig rig;
    sqlite3 *db;
    char *out;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    rig_stop(&rig);
    ck_assert_int_eq(db_count(&rig, "PRAGMA user_version"), 1);
    ck_assert_int_eq(sqlite3_open(rig.database, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char *argv[] = {(char *)harness_program("TOXLABD"), "-c", rig_file(&rig, "toxlab.conf"), NULL};
    ck_assert_int_eq(harness_run(argv, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "schema version 2, made by a newer toxlab");
    free(out);
    free(err);
    ck_assert_int_eq(db_count(&rig, "PRAGMA user_version"), 2);
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *suite = suite_create("audit");
    TCase *chain = tcase_create("chain");

    tcase_add_test(chain, audit_records_changes_and_requests);
    tcase_add_test(chain, audit_names_tampered_entry);
    tcase_add_test(chain, backup_verifies_and_restores);
    tcase_add_test(chain, newer_schema_rejected);
    tcase_add_test(chain, audit_head_logged);
    tcase_set_timeout(chain, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, chain);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(audit_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
