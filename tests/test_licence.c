/* Integration tests of the clerk's and administrator's work: statuses,
 * licences, licence decisions and their reviews, laboratory imports, the
 * offline evaluator, rule reloads, and the role of each peer. toxlabd runs
 * on a temporary socket and SQLite file; the toxlab client talks to it. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"

#include <check.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Numeric IDs the role tests act as; no such user or group needs to exist. */
#define TEST_UID 41000
#define SOCKET_GID 41100
#define OFFICER_GID 41101
#define CLERK_GID 41102
#define SUPERVISOR_GID 41103
#define ADMIN_GID 41104
#define ANALYST_GID 41105
#define OTHER_GID 41199

static const char blood_csv[] =
    "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
    "Forensic Lab B,FL-0412,BL-0001," SUBJECT_A ",blood,ketamine,35.2,ng/mL,2026-03-02,"
    "2026-03-05\n"
    "Forensic Lab B,FL-0412,BL-0001," SUBJECT_A ",blood,methamphetamine,12,ng/mL,2026-03-02,"
    "2026-03-05\n";

/* Runs the client, expects exit status `expected`, and returns its output. */
static char *expect_client(struct rig *rig, int expected, char **err_out, ...)
{
    char *argv[32] = {(char *)harness_program("TOXLAB"), "-s", rig->socket};
    int argc = 3;
    va_list args;
    char *out;
    char *err;

    va_start(args, err_out);
    for (char *arg = va_arg(args, char *); arg != NULL && argc < 31; arg = va_arg(args, char *)) {
        argv[argc++] = arg;
    }
    va_end(args);
    argv[argc] = NULL;
    int status = harness_run(argv, NULL, CLIENT_MS, &out, &err);
    ck_assert_msg(status == expected, "toxlab %s %s: exit %d, expected %d\n%s%s", argv[3],
                  argc > 4 ? argv[4] : "", status, expected, out, err);
    if (err_out != NULL) {
        *err_out = err;
    } else {
        free(err);
    }
    return out;
}

/* Returns the value of "key": "..." in the first JSON line of text. */
static void json_field(const char *text, const char *key, char *value, size_t size)
{
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\":\"", key);
    const char *start = strstr(text, pattern);

    ck_assert_msg(start != NULL, "no %s in %s", key, text);
    start += strlen(pattern);
    snprintf(value, size, "%.*s", (int)strcspn(start, "\""), start);
}

START_TEST(clerk_records_and_reviews)
{
    struct rig rig;
    char decision[64];
    char *err;

    rig_start(&rig, fast_phases, NULL);
    free(expect_client(&rig, 0, NULL, "subject", "add", SUBJECT_A, NULL));
    char *out = expect_client(&rig, 0, NULL, "status", "add", "--subject", SUBJECT_A, "--kind",
                              "revoked-drunk-driving", "--start", "2023-03-01", "--reference",
                              "JX-2023-118", NULL);
    assert_contains(out, "revoked-drunk-driving from 2023-03-01");
    free(out);
    out = expect_client(&rig, 0, NULL, "licence", "add", "--subject", SUBJECT_A, "--number",
                        "440101", "--class", "C1", NULL);
    assert_contains(out, "not handed back");
    free(out);

    out = expect_client(&rig, 0, NULL, "--json", "licence", "check", SUBJECT_A, "--for",
                        "application", "--as-of", "2028-03-01", NULL);
    assert_contains(out, "\"decision\":\"refuse\"");
    assert_contains(out, "\"id\":\"L07\"");
    assert_contains(out, "\"ends\":\"2028-03-01\"");
    assert_contains(out, "JX-2023-118");
    const char *id = strstr(out, "\"id\":\"TEST1-");
    ck_assert_ptr_nonnull(id);
    json_field(id, "id", decision, sizeof(decision));
    free(out);
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                        "--as-of", "2028-03-02", NULL);
    assert_contains(out, "decision: none");
    free(out);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM licence_decisions"), 2);

    free(expect_client(&rig, 1, &err, "decision", "override", decision, NULL));
    assert_contains(err, "an override needs a reason");
    free(err);
    out = expect_client(&rig, 0, NULL, "decision", "confirm", decision, NULL);
    assert_contains(out, "confirmed by uid");
    free(out);
    free(expect_client(&rig, 1, &err, "decision", "override", decision, "--reason", "late", NULL));
    assert_contains(err, "already reviewed");
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM decision_reviews WHERE action ="
                                    " 'confirm'"),
                     1);
    rig_stop(&rig);
}
END_TEST

/* Stands in for the daemon's audit functions in a test's own connection. */
static void stand_in_function(sqlite3_context *context, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    sqlite3_result_text(context, "x", -1, SQLITE_STATIC);
}

START_TEST(status_correction_supersedes)
{
    struct rig rig;
    char status_id[64];
    char *err;

    rig_start(&rig, fast_phases, NULL);
    free(expect_client(&rig, 0, NULL, "subject", "add", SUBJECT_A, NULL));
    char *out = expect_client(&rig, 0, NULL, "--json", "status", "add", "--subject", SUBJECT_A,
                              "--kind", "compulsory-isolation", "--start", "2020-01-01", "--end",
                              "2021-06-30", "--reference", "ISO-1", NULL);
    json_field(out, "id", status_id, sizeof(status_id));
    free(out);
    free(expect_client(&rig, 1, &err, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "compulsory-isolation", "--start", "2020-01-01", "--end", "2022-01-15",
                       "--reference", "ISO-1", "--supersedes", status_id, NULL));
    assert_contains(err, "a correction needs a reason");
    free(err);
    free(expect_client(&rig, 0, NULL, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "compulsory-isolation", "--start", "2020-01-01", "--end", "2022-01-15",
                       "--reference", "ISO-1", "--supersedes", status_id, "--reason",
                       "release date misread", NULL));
    free(expect_client(&rig, 1, &err, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "compulsory-isolation", "--start", "2020-01-01", "--reference", "ISO-1",
                       "--supersedes", status_id, "--reason", "again", NULL));
    assert_contains(err, "already replaced");
    free(err);

    out = expect_client(&rig, 0, NULL, "--json", "licence", "check", SUBJECT_A, "--for",
                        "application", "--as-of", "2024-12-01", NULL);
    assert_contains(out, "\"id\":\"L02\"");
    assert_contains(out, "\"ends\":\"2025-01-15\"");
    free(out);

    /* Statuses are append-only: the database itself rejects a change, even
     * from a connection that supplies the audit triggers' functions. */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(rig.database, &db), SQLITE_OK);
    ck_assert_int_ne(
        sqlite3_exec(db, "UPDATE statuses SET end_date = '2030-01-01'", NULL, NULL, NULL),
        SQLITE_OK);
    static const char *const functions[] = {"toxlab_audit_hash", "toxlab_audit_actor",
                                            "toxlab_audit_now"};
    static const int arguments[] = {2, 1, 0};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(sqlite3_create_function(db, functions[i], arguments[i], SQLITE_UTF8, NULL,
                                                 stand_in_function, NULL, NULL),
                         SQLITE_OK);
    }
    ck_assert_int_ne(
        sqlite3_exec(db, "UPDATE statuses SET end_date = '2030-01-01'", NULL, NULL, NULL),
        SQLITE_OK);
    ck_assert_ptr_nonnull(strstr(sqlite3_errmsg(db), "append-only"));
    ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM licence_decisions", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM statuses WHERE end_date ="
                                    " '2030-01-01'"),
                     0);
    rig_stop(&rig);
}
END_TEST

START_TEST(import_csv_refuses_application)
{
    struct rig rig;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    harness_write_file(rig_file(&rig, "bad.csv"),
                       "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,"
                       "reported\n"
                       "Lab B,R-1,,999999199001011239,blood,ketamine,35.2,ng/mL,2026-03-02,"
                       "2026-03-05\n"
                       ",R-2,," SUBJECT_A ",urine,Ketamine,1;2,mg,2026-13-02,2026-03-05\n");
    free(expect_client(&rig, 1, &err, "import", rig_file(&rig, "bad.csv"), NULL));
    assert_contains(err, "record 2: subject: resident ID check character");
    assert_contains(err, "record 3: laboratory.name: missing");
    assert_contains(err, "record 3: analytes[0].value");
    assert_contains(err, "record 3: analytes[0].unit");
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);

    harness_write_file(rig_file(&rig, "blood.csv"), blood_csv);
    char *out = expect_client(&rig, 0, NULL, "import", rig_file(&rig, "blood.csv"), NULL);
    assert_contains(out, "imported 1 result,");
    assert_contains(out, "ketamine           35.200 ng/mL  positive");
    assert_contains(out, "methamphetamine    12.000 ng/mL  negative");
    free(out);
    free(expect_client(&rig, 1, &err, "import", rig_file(&rig, "blood.csv"), NULL));
    assert_contains(err, "already imported");
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE outcome ="
                                    " 'positive' AND analyte = 'ketamine' AND cutoff_text = '20'"),
                     1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE outcome ="
                                    " 'negative' AND analyte = 'methamphetamine'"),
                     1);

    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                        "--as-of", "2029-03-02", NULL);
    assert_contains(out, "decision: refuse, until 2029-03-02 inclusive");
    assert_contains(out, "L01 refuse");
    assert_contains(out, "barcode BL-0001, collected 2026-03-02: ketamine");
    free(out);
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                        "--as-of", "2029-03-03", NULL);
    assert_contains(out, "decision: none");
    free(out);
    rig_stop(&rig);
}
END_TEST

START_TEST(import_json_correction_lifts)
{
    struct rig rig;
    char result_id[64];
    char text[1024];

    rig_start(&rig, fast_phases, NULL);
    harness_write_file(rig_file(&rig, "hair.json"),
                       "[{\"laboratory\":{\"name\":\"Hair Lab C\",\"report\":\"HC-9\","
                       "\"reported\":\"2026-04-02\"},\"subject\":\"" SUBJECT_B "\","
                       "\"specimen\":{\"barcode\":\"HC-9-1\",\"collected_date\":\"2026-03-20\"},"
                       "\"matrix\":\"hair\",\"analytes\":[{\"analyte\":\"methamphetamine\","
                       "\"value\":\"250\",\"unit\":\"pg/mg\"}]}]");
    char *out = expect_client(&rig, 0, NULL, "--json", "import", rig_file(&rig, "hair.json"), NULL);
    snprintf(result_id, sizeof(result_id), "%.*s", (int)strcspn(strstr(out, "TEST1-"), "\""),
             strstr(out, "TEST1-"));
    free(out);
    out = expect_client(&rig, 0, NULL, "--json", "licence", "check", SUBJECT_B, "--for",
                        "application", "--as-of", "2026-04-10", NULL);
    assert_contains(out, "\"decision\":\"refuse\"");
    assert_contains(out, "\"ends\":\"2029-03-20\"");
    free(out);

    snprintf(text, sizeof(text),
             "{\"laboratory\":{\"name\":\"Hair Lab C\",\"report\":\"HC-9\","
             "\"reported\":\"2026-04-09\"},\"subject\":\"" SUBJECT_B "\","
             "\"specimen\":{\"barcode\":\"HC-9-1\",\"collected_date\":\"2026-03-20\"},"
             "\"matrix\":\"hair\",\"status\":\"correction\",\"supersedes\":\"%s\","
             "\"analytes\":[{\"analyte\":\"methamphetamine\",\"value\":\"150\","
             "\"unit\":\"pg/mg\"}]}",
             result_id);
    harness_write_file(rig_file(&rig, "fix.json"), text);
    free(expect_client(&rig, 0, NULL, "import", rig_file(&rig, "fix.json"), NULL));
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_B, "--for", "application",
                        "--as-of", "2026-04-10", NULL);
    assert_contains(out, "decision: none");
    free(out);
    /* The original stays, next to its correction. */
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results WHERE laboratory ="
                                    " 'Hair Lab C'"),
                     2);
    rig_stop(&rig);
}
END_TEST

/* Each kind of bad import is rejected with the field named, and nothing
 * is stored. */
START_TEST(import_rejects_bad_links)
{
    static const struct {
        const char *file;
        const char *text;
        const char *reason;
    } cases[] = {
        {"ctl.json",
         "{\"laboratory\":{\"name\":\"Lab B\",\"report\":\"R-9\",\"reported\":"
         "\"2026-03-05\"},\"subject\":\"" SUBJECT_A "\",\"specimen\":{\"barcode\":"
         "\"B1\\ndecision: none\",\"collected_date\":\"2026-03-02\"},\"matrix\":\"blood\","
         "\"analytes\":[{\"analyte\":\"ketamine\",\"value\":\"35\",\"unit\":\"ng/mL\"}]}",
         "specimen.barcode: contains a control character"},
        {"nested.json",
         "{\"laboratory\":{\"name\":\"Lab B\",\"report\":\"R-9\",\"reported\":"
         "\"2026-03-05\",\"accredited\":false},\"subject\":\"" SUBJECT_A "\",\"specimen\":"
         "{\"collected_date\":\"2026-03-02\"},\"matrix\":\"blood\",\"analytes\":"
         "[{\"analyte\":\"ketamine\",\"value\":\"35\",\"unit\":\"ng/mL\",\"outcome\":"
         "\"negative\"}]}",
         "laboratory.accredited: unknown field"},
        {"unit.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab U,U-1,," SUBJECT_A ",blood,ketamine,35,ng/mg,2026-03-02,2026-03-05\n",
         "record 2: analytes[0].unit: ng/mg does not fit blood"},
        {"twice.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab B,R-4,BL-5," SUBJECT_A ",blood,ketamine,35,ng/mL,2026-03-02,2026-03-05\n"
         "Lab B,R-4,BL-5," SUBJECT_A ",blood,ketamine,5,ng/mL,2026-03-02,2026-03-05\n",
         "record 3: analytes[1].analyte: ketamine is listed twice"},
        {"report.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab B,R-2,BL-6," SUBJECT_A ",blood,ketamine,35,ng/mL,2026-03-02,2026-03-05\n"
         "Lab B,R-2,BL-7," SUBJECT_A ",blood,ketamine,5,ng/mL,2026-03-02,2026-03-05\n",
         "appears twice in this import"},
        {"future.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab B,R-3,," SUBJECT_A ",blood,ketamine,35,ng/mL,2026-03-02,2099-10-12\n",
         "laboratory.reported: 2099-10-12 is in the future"},
        {"specimen.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab H,H-1,OF-A1,,hair,methamphetamine,250,pg/mg,2026-03-02,2026-03-05\n",
         "matrix: specimen OF-A1 is oral-fluid, not hair"},
        {"date.csv",
         "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
         "Lab H,H-2,OF-A1,,oral-fluid,methamphetamine,250,ng/mL,2026-03-02,2026-03-05\n",
         "specimen OF-A1 was collected on"},
    };
    struct rig rig;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        harness_write_file(rig_file(&rig, cases[i].file), cases[i].text);
        free(expect_client(&rig, 1, &err, "import", rig_file(&rig, cases[i].file), NULL));
        ck_assert_msg(strstr(err, cases[i].reason) != NULL, "%s: '%s' lacks '%s'", cases[i].file,
                      err, cases[i].reason);
        free(err);
    }
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);

    /* A NUL byte in a CSV field is refused by the client before toxlabd. */
    FILE *nul = fopen(rig_file(&rig, "nul.csv"), "wb");
    ck_assert_ptr_nonnull(nul);
    static const char nul_csv[] =
        "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
        "Lab B,NUL-1\0X,," SUBJECT_A ",blood,ketamine,35,ng/mL,2026-03-02,2026-03-05\n";
    ck_assert_uint_eq(fwrite(nul_csv, 1, sizeof(nul_csv) - 1, nul), sizeof(nul_csv) - 1);
    fclose(nul);
    free(expect_client(&rig, 1, &err, "import", rig_file(&rig, "nul.csv"), NULL));
    assert_contains(err, "record 2: field 2 has a NUL byte");
    free(err);

    /* A correction names an imported result of the same laboratory, once. */
    char *out = expect_client(&rig, 0, NULL, "--json", "test", "start", "--subject", SUBJECT_A,
                              "--instrument", "saliva-1", NULL);
    free(out);
    char screen[64];
    db_text(&rig, "SELECT id FROM results WHERE test_id IS NOT NULL", screen, sizeof(screen));
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"laboratory\":{\"name\":\"Lab X\",\"report\":\"X-1\",\"reported\":"
             "\"2026-03-05\"},\"subject\":\"" SUBJECT_A "\",\"specimen\":{\"collected_date\":"
             "\"2026-03-02\"},\"matrix\":\"oral-fluid\",\"status\":\"correction\","
             "\"supersedes\":\"%s\",\"analytes\":[{\"analyte\":\"thc\",\"value\":\"0\","
             "\"unit\":\"ng/mL\"}]}",
             screen);
    harness_write_file(rig_file(&rig, "fix.json"), text);
    free(expect_client(&rig, 1, &err, "import", rig_file(&rig, "fix.json"), NULL));
    assert_contains(err, "supersedes: ");
    assert_contains(err, "imported from the same laboratory and matrix");
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);

    /* A status reference with a line break could forge a report line. */
    free(expect_client(&rig, 1, &err, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "revoked-serious-crash", "--start", "2020-01-01", "--reference",
                       "JX-1\ndecision: none", NULL));
    assert_contains(err, "argument 'reference' contains a control character");
    free(err);
    rig_stop(&rig);
}
END_TEST

START_TEST(correction_only_once)
{
    struct rig rig;
    char original[64];
    char text[2048];
    char *err;

    rig_start(&rig, fast_phases, NULL);
    harness_write_file(rig_file(&rig, "blood.csv"), blood_csv);
    free(expect_client(&rig, 0, NULL, "import", rig_file(&rig, "blood.csv"), NULL));
    db_text(&rig, "SELECT id FROM results", original, sizeof(original));
    for (int attempt = 0; attempt < 2; attempt++) {
        snprintf(text, sizeof(text),
                 "{\"laboratory\":{\"name\":\"Forensic Lab B\",\"report\":\"FL-0412\","
                 "\"reported\":\"2026-03-06\"},\"subject\":\"" SUBJECT_A "\","
                 "\"specimen\":{\"barcode\":\"BL-0001\",\"collected_date\":\"2026-03-02\"},"
                 "\"matrix\":\"blood\",\"status\":\"correction\",\"supersedes\":\"%s\","
                 "\"analytes\":[{\"analyte\":\"ketamine\",\"value\":\"%s\",\"unit\":"
                 "\"ng/mL\"}]}",
                 original, attempt == 0 ? "5" : "50");
        harness_write_file(rig_file(&rig, "fix.json"), text);
        free(expect_client(&rig, attempt, attempt ? &err : NULL, "import",
                           rig_file(&rig, "fix.json"), NULL));
    }
    assert_contains(err, "a correction already replaced it");
    free(err);
    char *out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                              "--as-of", "2026-04-01", NULL);
    assert_contains(out, "decision: none");
    free(out);
    rig_stop(&rig);
}
END_TEST

START_TEST(screen_flag_until_confirmed)
{
    struct rig rig;
    char scenario[512];
    char text[1024];

    snprintf(scenario, sizeof(scenario), "%s[default]\nmethamphetamine = 120.5\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    free(expect_client(&rig, 0, NULL, "test", "start", "--subject", SUBJECT_A, "--instrument",
                       "saliva-1", NULL));
    char *out =
        expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "holder", NULL);
    assert_contains(out, "decision: flag");
    assert_contains(out, "L10 flag");
    assert_contains(out, "barcode OF-A1");
    free(out);

    /* A released blood confirmation of the same analyte, taken later, lifts the flag. */
    db_text(&rig, "SELECT strftime('%Y-%m-%d', 'now', '+8 hours')", text, sizeof(text));
    text[10] = '\0';
    char csv[1200];
    snprintf(csv, sizeof(csv),
             "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,reported\n"
             "Lab B,R-7,BL-7," SUBJECT_A ",blood,methamphetamine,3,ng/mL,%.10s,%.10s\n",
             text, text);
    harness_write_file(rig_file(&rig, "blood.csv"), csv);
    free(expect_client(&rig, 0, NULL, "import", rig_file(&rig, "blood.csv"), NULL));
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "holder", NULL);
    assert_contains(out, "decision: none");
    free(out);
    rig_stop(&rig);
}
END_TEST

/* The offline evaluator decides exactly as toxlabd did from the same inputs. */
START_TEST(evaluate_matches_daemon)
{
    struct rig rig;
    char inputs[8192];
    char daemon_outcome[8192];
    char rules[512];

    rig_start(&rig, fast_phases, NULL);
    harness_write_file(rig_file(&rig, "blood.csv"), blood_csv);
    free(expect_client(&rig, 0, NULL, "import", rig_file(&rig, "blood.csv"), NULL));
    free(expect_client(&rig, 0, NULL, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "revoked-drunk-driving", "--start", "2025-01-01", "--reference", "R", NULL));
    free(expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                       "--as-of", "2027-06-01", NULL));
    db_text(&rig, "SELECT inputs FROM licence_decisions", inputs, sizeof(inputs));
    db_text(&rig, "SELECT outcome FROM licence_decisions", daemon_outcome, sizeof(daemon_outcome));
    harness_write_file(rig_file(&rig, "evidence.json"), inputs);
    snprintf(rules, sizeof(rules), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    char *out = expect_client(&rig, 0, NULL, "--json", "licence", "evaluate", "--evidence",
                              rig_file(&rig, "evidence.json"), "--for", "application", "--as-of",
                              "2027-06-01", "--rules", rules, NULL);
    out[strcspn(out, "\n")] = '\0';
    ck_assert_str_eq(out, daemon_outcome);
    assert_contains(out, "\"rules\":[{\"id\":\"L01\"");
    assert_contains(out, "{\"id\":\"L07\"");
    free(out);
    rig_stop(&rig);
}
END_TEST

/* Points the rig's configuration at a rules file of its own. */
static void use_own_rules(struct rig *rig, void *user)
{
    const char *rules_path = user;
    char source[512];
    snprintf(source, sizeof(source), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    char *rules = harness_read_file(source);
    harness_write_file(rules_path, rules);
    free(rules);
    char *config = harness_read_file(rig_file(rig, "toxlab.conf"));
    char *line = strstr(config, "rules = ");
    ck_assert_ptr_nonnull(line);
    char rewritten[9000];
    snprintf(rewritten, sizeof(rewritten), "%.*srules = %s%s", (int)(line - config), config,
             rules_path, strchr(line, '\n'));
    harness_write_file(rig_file(rig, "toxlab.conf"), rewritten);
    free(config);
}

START_TEST(reload_rejects_bad_rules)
{
    struct rig rig;
    char rules_path[512];
    char *err;

    /* The rig's folder does not exist yet, so the file goes next to it. */
    char *dir = harness_tmpdir("rules");
    snprintf(rules_path, sizeof(rules_path), "%s/rules.tsv", dir);
    free(dir);
    rig_start_edited(&rig, fast_phases, use_own_rules, rules_path);
    char *out = expect_client(&rig, 0, NULL, "thresholds", "reload", NULL);
    assert_contains(out, "10 rows from");
    free(out);

    char *text = harness_read_file(rules_path);
    char broken[16384];
    snprintf(broken, sizeof(broken), "%sL11\tdrug-use\t3y\tban\tx\ty\tyes\n", text);
    harness_write_file(rules_path, broken);
    free(expect_client(&rig, 1, &err, "thresholds", "reload", NULL));
    assert_contains(err, "rules.tsv:");
    assert_contains(err, "unknown decision");
    assert_contains(err, "(invalid-file)");
    free(err);
    /* The rules in force stay: L07 still fires. */
    free(expect_client(&rig, 0, NULL, "subject", "add", SUBJECT_A, NULL));
    free(expect_client(&rig, 0, NULL, "status", "add", "--subject", SUBJECT_A, "--kind",
                       "revoked-drunk-driving", "--start", "2025-01-01", "--reference", "R", NULL));
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                        "--as-of", "2026-01-01", NULL);
    assert_contains(out, "L07 refuse");
    free(out);

    /* A valid change takes effect and gets a version of its own. */
    snprintf(broken, sizeof(broken), "%s", text);
    char *l07 = strstr(broken, "L07\t");
    ck_assert_ptr_nonnull(l07);
    char *yes = strstr(l07, "\tyes\n");
    memcpy(yes, "\tno \n", 5);
    harness_write_file(rules_path, broken);
    free(expect_client(&rig, 0, NULL, "thresholds", "reload", NULL));
    out = expect_client(&rig, 0, NULL, "licence", "check", SUBJECT_A, "--for", "application",
                        "--as-of", "2026-01-01", NULL);
    assert_contains(out, "decision: none");
    free(out);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM rule_sets"), 2);
    ck_assert_int_eq(db_count(&rig, "SELECT count(DISTINCT rules_version) FROM"
                                    " licence_decisions"),
                     2);
    free(text);
    rig_stop(&rig);
}
END_TEST

/* ---- roles ---------------------------------------------------------------- */

/* Gives each role a group of its own and the socket a group of its own. */
static void use_role_groups(struct rig *rig, void *user)
{
    char roles[512];

    (void)user;
    char *config = harness_read_file(rig_file(rig, "toxlab.conf"));
    char *section = strstr(config, "\n[roles]\n");
    ck_assert_ptr_nonnull(section);
    *section = '\0';
    snprintf(roles, sizeof(roles),
             "\n[roles]\nofficer = %d\nanalyst = %d\nclerk = %d, %d\nsupervisor = %d\n"
             "admin = %d\n",
             OFFICER_GID, ANALYST_GID, CLERK_GID, ADMIN_GID, SUPERVISOR_GID, ADMIN_GID);
    char rewritten[9000];
    char *group = strstr(config, "socket_group = ");
    ck_assert_ptr_nonnull(group);
    snprintf(rewritten, sizeof(rewritten), "%.*ssocket_group = %d%s%s", (int)(group - config),
             config, SOCKET_GID, strchr(group, '\n'), roles);
    harness_write_file(rig_file(rig, "toxlab.conf"), rewritten);
    free(config);
    /* Other users must reach the socket through the test's folder. */
    ck_assert_int_eq(chmod(rig->dir, 0711), 0);
}

static void start_with_role_groups(struct rig *rig)
{
    rig_start_edited(rig, fast_phases, use_role_groups, NULL);
}

/* Runs the client as TEST_UID with the given groups; returns the exit status. */
static int client_as(struct rig *rig, const gid_t *groups, size_t count, char **out, char **err,
                     char *const *words)
{
    struct harness_identity identity = {.uid = TEST_UID, .gid = OTHER_GID};
    char *argv[24] = {(char *)harness_program("TOXLAB"), "-s", rig->socket};
    int argc = 3;

    for (size_t i = 0; i < count; i++) {
        identity.groups[identity.group_count++] = groups[i];
    }
    for (size_t i = 0; words[i] != NULL && argc < 23; i++) {
        argv[argc++] = words[i];
    }
    argv[argc] = NULL;
    return harness_run_as(&identity, argv, CLIENT_MS, out, err);
}

/* Each command is refused to a role not allowed to use it, and the same
 * request from a peer that differs only in one group succeeds. */
START_TEST(role_table_with_controls)
{
    static const struct {
        gid_t denied;
        gid_t allowed;
        char *words[16];
    } cases[] = {
        {OFFICER_GID,
         CLERK_GID,
         {"status", "add", "--subject", SUBJECT_A, "--kind", "community-detox", "--start",
          "2026-01-01", "--reference", "R", NULL}},
        {SUPERVISOR_GID, CLERK_GID, {"licence", "check", SUBJECT_A, "--for", "holder", NULL}},
        {CLERK_GID,
         OFFICER_GID,
         {"specimen", "add", "--subject", SUBJECT_A, "--barcode", "OF-R1", "--matrix", "oral-fluid",
          NULL}},
        {OFFICER_GID, ADMIN_GID, {"thresholds", "reload", NULL}},
        {ANALYST_GID, CLERK_GID, {"licence", "check", SUBJECT_A, "--for", "application", NULL}},
        {SUPERVISOR_GID,
         ANALYST_GID,
         {"specimen", "add", "--subject", SUBJECT_A, "--barcode", "H-R2", "--matrix", "hair",
          NULL}},
        {ANALYST_GID, SUPERVISOR_GID, {"audit", "head", NULL}},
        {SUPERVISOR_GID, ADMIN_GID, {"backup", NULL}},
        {SUPERVISOR_GID, ADMIN_GID, {"import", "FILE", NULL}},
    };
    struct rig rig;
    char *out;
    char *err;

    if (geteuid() != 0) {
        return; /* Acting as other users needs root; CI runs as root. */
    }
    start_with_role_groups(&rig);
    free(expect_client(&rig, 0, NULL, "subject", "add", SUBJECT_A, NULL));
    char csv_path[512];
    snprintf(csv_path, sizeof(csv_path), "%s", rig_file(&rig, "blood.csv"));
    harness_write_file(csv_path, blood_csv);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gid_t denied[] = {SOCKET_GID, cases[i].denied};
        gid_t allowed[] = {SOCKET_GID, cases[i].allowed};
        char *words[16];
        memcpy(words, cases[i].words, sizeof(words));
        if (strcmp(words[0], "import") == 0) {
            words[1] = csv_path;
        }
        int status = client_as(&rig, denied, 2, &out, &err, words);
        ck_assert_msg(status == 1 && strstr(err, "(forbidden)") != NULL,
                      "%s %s by gid %u: exit %d: %s", cases[i].words[0], cases[i].words[1],
                      (unsigned)cases[i].denied, status, err);
        free(out);
        free(err);
        status = client_as(&rig, allowed, 2, &out, &err, words);
        ck_assert_msg(status == 0, "%s %s by gid %u: exit %d: %s", cases[i].words[0],
                      cases[i].words[1], (unsigned)cases[i].allowed, status, err);
        free(out);
        free(err);
    }
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM licence_decisions"), 2);
    ck_assert_int_ge(db_count(&rig, "SELECT count(*) FROM audit WHERE action = 'rejected' AND"
                                    " uid = 41000"),
                     9);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM statuses"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results WHERE imported_by = 41000"), 1);
    ck_assert(harness_wait_file(rig.daemon.log_path, "status.add rejected", EVENT_MS));
    rig_stop(&rig);
}
END_TEST

START_TEST(peer_outside_socket_group)
{
    struct rig rig;
    char *out;
    char *err;
    char *words[] = {"instruments", NULL};

    if (geteuid() != 0) {
        return; /* Acting as other users needs root; CI runs as root. */
    }
    start_with_role_groups(&rig);
    gid_t outside[] = {OFFICER_GID};
    ck_assert_int_eq(client_as(&rig, outside, 1, &out, &err, words), 1);
    assert_contains(err, "Permission denied");
    free(out);
    free(err);
    gid_t no_role[] = {SOCKET_GID};
    ck_assert_int_eq(client_as(&rig, no_role, 1, &out, &err, words), 1);
    assert_contains(err, "holds no toxlab role");
    free(out);
    free(err);
    gid_t control[] = {SOCKET_GID, OFFICER_GID};
    ck_assert_int_eq(client_as(&rig, control, 2, &out, &err, words), 0);
    free(out);
    free(err);
    rig_stop(&rig);
}
END_TEST

START_TEST(supervisor_sees_masked_ids)
{
    struct rig rig;
    char *out;
    char *err;
    char *words[] = {"--json", "subject", "show", SUBJECT_A, NULL};

    if (geteuid() != 0) {
        return; /* Acting as other users needs root; CI runs as root. */
    }
    start_with_role_groups(&rig);
    free(expect_client(&rig, 0, NULL, "subject", "add", SUBJECT_A, NULL));
    gid_t supervisor[] = {SOCKET_GID, SUPERVISOR_GID};
    ck_assert_int_eq(client_as(&rig, supervisor, 2, &out, &err, words), 0);
    ck_assert_ptr_null(strstr(out, SUBJECT_A));
    assert_contains(out, "\"masked\":\"999999********1238\"");
    free(out);
    free(err);
    gid_t clerk[] = {SOCKET_GID, CLERK_GID};
    ck_assert_int_eq(client_as(&rig, clerk, 2, &out, &err, words), 0);
    assert_contains(out, "\"number\":\"" SUBJECT_A "\"");
    free(out);
    free(err);
    rig_stop(&rig);
}
END_TEST

static Suite *licence_suite(void)
{
    Suite *suite = suite_create("licence");
    TCase *clerk = tcase_create("clerk");
    TCase *roles = tcase_create("roles");

    tcase_add_test(clerk, clerk_records_and_reviews);
    tcase_add_test(clerk, status_correction_supersedes);
    tcase_add_test(clerk, import_csv_refuses_application);
    tcase_add_test(clerk, import_json_correction_lifts);
    tcase_add_test(clerk, screen_flag_until_confirmed);
    tcase_add_test(clerk, import_rejects_bad_links);
    tcase_add_test(clerk, correction_only_once);
    tcase_add_test(clerk, evaluate_matches_daemon);
    tcase_add_test(clerk, reload_rejects_bad_rules);
    tcase_add_test(roles, role_table_with_controls);
    tcase_add_test(roles, peer_outside_socket_group);
    tcase_add_test(roles, supervisor_sees_masked_ids);
    TCase *all[] = {clerk, roles};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        tcase_set_timeout(all[i], HARNESS_CASE_TIMEOUT);
        suite_add_tcase(suite, all[i]);
    }
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(licence_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
