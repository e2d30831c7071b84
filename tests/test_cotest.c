/* Co-testing: a breath-alcohol and a saliva analyzer in one stop, each on
 * its own simulator and pty, run at once by one toxlabd. */
#define _GNU_SOURCE
#include "rig.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char saliva_scenario[512];
static char breath_scenario[512];

/* Sets both sims' scenarios: phases plus the [test.1] sections given. */
static void scenarios(const char *saliva_test, const char *breath_test)
{
    snprintf(saliva_scenario, sizeof(saliva_scenario), "%s[test.1]\n%s", fast_phases, saliva_test);
    snprintf(breath_scenario, sizeof(breath_scenario), "%s[test.1]\n%s", fast_breath_phases,
             breath_test);
}

/* Runs a co-test for SUBJECT_A on specimen OF-A1; returns the exit status. */
static int run_cotest(struct rig *rig, char **out, char **err)
{
    register_subject(rig, SUBJECT_A, "OF-A1");
    return client(rig, out, err, "test", "start", "--subject", SUBJECT_A, "--instrument",
                  "breath-1", "--instrument", "saliva-1", "--specimen", "OF-A1", "--driving", NULL);
}

static void free_output(char *out, char *err)
{
    free(out);
    free(err);
}

START_TEST(cotest_both_negative)
{
    struct rig rig;
    char *out;
    char *err;

    scenarios("thc = 1\n", "alcohol = 0\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    ck_assert_int_eq(run_cotest(&rig, &out, &err), 0);
    assert_contains(out, "decision: none");
    ck_assert_ptr_null(strstr(out, "blood sample"));
    free_output(out, err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(DISTINCT stop_id) FROM tests"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests WHERE state = 'completed'"), 2);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results WHERE alcohol_band = 'below'"),
                     1);
    char actions[256];
    db_text(&rig, "SELECT actions FROM decisions", actions, sizeof(actions));
    ck_assert_str_eq(actions, "[]");
    rig_stop(&rig);
}
END_TEST

START_TEST(cotest_drunk_and_presumptive)
{
    struct rig rig;
    char text[512];
    char *out;
    char *err;

    scenarios("methamphetamine = 182.4\n", "alcohol = 412.3\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    ck_assert_int_eq(run_cotest(&rig, &out, &err), 0);
    assert_contains(out, "decision: flag");
    assert_contains(out, "blood sample required (drunk-driving breath result)");
    assert_contains(out, "laboratory specimen required");
    free_output(out, err);

    db_text(&rig,
            "SELECT breath_raw || ' ' || alcohol_band || ' ' || blood_equivalent || ' ' ||"
            " alcohol_factor || ' ' || drink_limit || ' ' || drunk_limit FROM results"
            " WHERE breath_outcome = 'measured'",
            text, sizeof(text));
    ck_assert_str_eq(text, "4123 drunk 90.706 2200 20 80");
    db_text(&rig, "SELECT decision || ' ' || actions FROM decisions", text, sizeof(text));
    ck_assert_str_eq(text, "flag [\"blood sample required (drunk-driving breath result)\","
                           "\"laboratory specimen required\"]");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE outcome ="
                                    " 'presumptive' AND analyte = 'methamphetamine'"),
                     1);
    rig_stop(&rig);
}
END_TEST

START_TEST(breath_mouth_alcohol_invalid)
{
    struct rig rig;
    char text[512];
    char *out;
    char *err;

    scenarios("thc = 1\n", "alcohol = 1500\nflags = mouth-alcohol\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    ck_assert_int_eq(run_cotest(&rig, &out, &err), 0);
    assert_contains(out, "mouth alcohol detected");
    free_output(out, err);
    /* Invalid, never a low value: no band, and no blood sample for a drunk band. */
    db_text(&rig,
            "SELECT breath_outcome || ' ' || coalesce(alcohol_band, '-') || ' ' ||"
            " invalid_reason FROM results WHERE matrix = 'breath'",
            text, sizeof(text));
    ck_assert_str_eq(text, "invalid - mouth alcohol detected");
    db_text(&rig, "SELECT actions FROM decisions", text, sizeof(text));
    ck_assert_str_eq(text, "[\"repeat the test: breath-1 result invalid (mouth alcohol "
                           "detected)\"]");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes"), 10);
    rig_stop(&rig);
}
END_TEST

/* Waits until the daemon's last poll of breath-1 saw the given step. */
static void wait_for_step(struct rig *rig, const char *step)
{
    char wanted[64];
    char *out;
    char *err;

    snprintf(wanted, sizeof(wanted), "\"step\":\"%s\"", step);
    for (int attempt = 0; attempt < 200; attempt++) {
        ck_assert_int_eq(client(rig, &out, &err, "--json", "instruments", NULL), 0);
        bool seen = strstr(out, wanted) != NULL;
        free(out);
        free(err);
        if (seen) {
            return;
        }
    }
    ck_abort_msg("the daemon never saw step %s", step);
}

START_TEST(breath_refusal_recorded)
{
    struct rig rig;
    char line[256];
    char text[512];
    char *out;
    char *err;

    scenarios("thc = 1\n", "blow = never\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "breath-1", "--no-wait", NULL),
                     0);
    char *id = strstr(out, "\"tests\":[{\"id\":\"");
    ck_assert_ptr_nonnull(id);
    id += strlen("\"tests\":[{\"id\":\"");
    char test_id[64];
    snprintf(test_id, sizeof(test_id), "%.*s", (int)strcspn(id, "\""), id);
    free_output(out, err);
    ck_assert(child_wait_line(&rig.breath, "phase test=1 state=blow-requested", EVENT_MS, line,
                              sizeof(line)));
    wait_for_step(&rig, "blow-requested");

    ck_assert_int_eq(client(&rig, &out, &err, "test", "refuse", test_id, NULL), 0);
    free_output(out, err);
    ck_assert(child_wait_line(&rig.breath, "abort", EVENT_MS, line, sizeof(line)));
    db_text(&rig,
            "SELECT t.state || ' ' || r.breath_outcome FROM tests t JOIN results r ON"
            " r.test_id = t.id",
            text, sizeof(text));
    ck_assert_str_eq(text, "completed refused");
    db_text(&rig, "SELECT actions FROM decisions", text, sizeof(text));
    ck_assert_str_eq(text, "[\"blood sample required (refused the breath test)\"]");

    /* Control: a saliva test takes no refusal. */
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", "--no-wait", NULL),
                     0);
    id = strstr(out, "\"tests\":[{\"id\":\"") + strlen("\"tests\":[{\"id\":\"");
    snprintf(test_id, sizeof(test_id), "%.*s", (int)strcspn(id, "\""), id);
    free_output(out, err);
    ck_assert_int_ne(client(&rig, &out, &err, "test", "refuse", test_id, NULL), 0);
    assert_contains(err, "records no refusal");
    free_output(out, err);
    rig_stop(&rig);
}
END_TEST

START_TEST(refusal_rejected_once_blowing)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char *out;
    char *err;

    snprintf(saliva_scenario, sizeof(saliva_scenario), "%s", fast_phases);
    snprintf(breath_scenario, sizeof(breath_scenario),
             "[phases]\nwarmup_ms = 20\nblow_request_ms = 20\nblowing_ms = 60000\n"
             "[test.1]\nalcohol = 400\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "breath-1", "--no-wait", NULL),
                     0);
    char *id = strstr(out, "\"tests\":[{\"id\":\"") + strlen("\"tests\":[{\"id\":\"");
    snprintf(test_id, sizeof(test_id), "%.*s", (int)strcspn(id, "\""), id);
    free_output(out, err);
    ck_assert(
        child_wait_line(&rig.breath, "phase test=1 state=blowing", EVENT_MS, line, sizeof(line)));
    wait_for_step(&rig, "blowing");

    /* The subject is blowing: the measurement is kept, so no refusal is recorded. */
    ck_assert_int_ne(client(&rig, &out, &err, "test", "refuse", test_id, NULL), 0);
    assert_contains(err, "only while the analyzer requests a blow");
    free_output(out, err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);
    ck_assert(!child_wait_line(&rig.breath, "abort", 0, line, sizeof(line)));
    client_ok(&rig, "test", "abort", test_id, NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(saliva_fails_breath_completes)
{
    struct rig rig;
    char text[512];
    char *out;
    char *err;

    scenarios("fault = exception\n", "alcohol = 150\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    ck_assert_int_ne(run_cotest(&rig, &out, &err), 0);
    assert_contains(out, "Modbus exception 4");
    assert_contains(out, "drink-driving");
    free_output(out, err);
    db_text(&rig,
            "SELECT group_concat(instrument || ' ' || state, ', ') FROM (SELECT * FROM"
            " tests ORDER BY instrument)",
            text, sizeof(text));
    ck_assert_str_eq(text, "breath-1 completed, saliva-1 failed");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results WHERE alcohol_band = 'drink'"),
                     1);
    db_text(&rig, "SELECT actions FROM decisions", text, sizeof(text));
    ck_assert_str_eq(text, "[\"repeat the test: saliva-1 failed\"]");
    rig_stop(&rig);
}
END_TEST

/* The saliva sim withholds a reply while its driver waits inside libmodbus.
 * Another client's request must be served before the test lets the sim
 * reply, so a waiting driver that blocked the daemon would fail the test. */
START_TEST(daemon_serves_while_driver_waits)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char *out;
    char *err;

    snprintf(saliva_scenario, sizeof(saliva_scenario), "%s", fast_phases);
    snprintf(breath_scenario, sizeof(breath_scenario), "%s", fast_breath_phases);
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, "response_timeout_ms = 60000\n", NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "stall");
    ck_assert(child_wait_line(&rig.sim, "stall", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(child_wait_line(&rig.sim, "stalled", EVENT_MS, line, sizeof(line)));

    ck_assert_int_eq(client(&rig, &out, &err, "instruments", NULL), 0);
    assert_contains(out, "breath-1");
    free_output(out, err);
    ck_assert_int_eq(client(&rig, &out, &err, "test", "show", test_id, NULL), 0);
    assert_contains(out, "running");
    free_output(out, err);

    child_send(&rig.sim, "unstall");
    ck_assert(child_wait_line(&rig.sim, "unstalled", EVENT_MS, line, sizeof(line)));
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free_output(out, err);
    rig_stop(&rig);
}
END_TEST

START_TEST(dispute_note_asks_blood)
{
    struct rig rig;
    char stop_id[64];
    char text[512];
    char *out;
    char *err;

    scenarios("thc = 1\n", "alcohol = 50\n");
    rig_start_cotest(&rig, saliva_scenario, breath_scenario, NULL, NULL);
    ck_assert_int_eq(run_cotest(&rig, &out, &err), 0);
    free_output(out, err);
    db_text(&rig, "SELECT stop_id FROM tests LIMIT 1", stop_id, sizeof(stop_id));
    db_text(&rig, "SELECT actions FROM decisions", text, sizeof(text));
    ck_assert_str_eq(text, "[]");

    ck_assert_int_eq(client(&rig, &out, &err, "stop", "note", stop_id, "--dispute", NULL), 0);
    assert_contains(out, "blood sample required (breath result disputed)");
    free_output(out, err);
    db_text(&rig, "SELECT actions FROM decisions ORDER BY created DESC, rowid DESC LIMIT 1", text,
            sizeof(text));
    ck_assert_str_eq(text, "[\"blood sample required (breath result disputed)\"]");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM decisions"), 2);
    /* A crash note needs a result in the drink band or above: 50 ug/L is below. */
    ck_assert_int_eq(client(&rig, &out, &err, "stop", "note", stop_id, "--crash", NULL), 0);
    free_output(out, err);
    db_text(&rig, "SELECT actions FROM decisions ORDER BY created DESC, rowid DESC LIMIT 1", text,
            sizeof(text));
    ck_assert_str_eq(text, "[\"blood sample required (breath result disputed)\"]");
    rig_stop(&rig);
}
END_TEST

static Suite *cotest_suite(void)
{
    Suite *suite = suite_create("cotest");
    TCase *cases = tcase_create("cotest");

    tcase_add_test(cases, cotest_both_negative);
    tcase_add_test(cases, cotest_drunk_and_presumptive);
    tcase_add_test(cases, breath_mouth_alcohol_invalid);
    tcase_add_test(cases, breath_refusal_recorded);
    tcase_add_test(cases, refusal_rejected_once_blowing);
    tcase_add_test(cases, saliva_fails_breath_completes);
    tcase_add_test(cases, daemon_serves_while_driver_waits);
    tcase_add_test(cases, dispute_note_asks_blood);
    tcase_set_timeout(cases, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, cases);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(cotest_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
