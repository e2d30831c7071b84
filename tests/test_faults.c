/* Integration tests of line faults: toxlab-sim injects each wire fault on a
 * real pty while toxlabd runs a test with a real SQLite file, and the toxlab
 * client talks to it over the socket. Each test waits on sim events and
 * daemon log lines with deadlines, never on sleeps. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reconnection delays small enough that three failed attempts take well
 * under a second: 50 ms, then 100 ms, which is also the cap. */
#define FAST_RETRY "retry_ms = 50\nretry_max_ms = 100\noffline_after_failures = 3\n"

/* A test whose methamphetamine result the tests can check after a fault. */
static const char scenario_with_result[] = "[phases]\ncartridge_ms = 20\ncollecting_ms = 40\n"
                                           "analysing_ms = 60\n[test.1]\nmethamphetamine = 120.5\n";

/* Returns a malloc'd copy of the whole file, or aborts the test. */
static char *read_file(const char *path)
{
    FILE *file = fopen(path, "r");
    char *text = NULL;
    size_t size = 0;

    ck_assert_msg(file != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_ne(getdelim(&text, &size, '\0', file), -1);
    fclose(file);
    return text;
}

/* Counts the lines of a file that contain part. */
static int count_lines(const char *path, const char *part)
{
    char *text = read_file(path);
    int count = 0;

    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, part) != NULL) {
            count++;
        }
    }
    free(text);
    return count;
}

static void wait_log(struct rig *rig, const char *text)
{
    if (!harness_wait_file(rig->daemon.log_path, text, EVENT_MS)) {
        harness_dump_file(rig->daemon.log_path);
        ck_abort_msg("toxlabd logged no '%s' within %d ms", text, EVENT_MS);
    }
}

static void wait_event(struct child *sim, const char *prefix)
{
    char line[256];

    ck_assert_msg(child_wait_line(sim, prefix, EVENT_MS, line, sizeof(line)),
                  "no sim event starting with '%s'", prefix);
}

/* Holds test 1 in the analysing phase, so that a fault meets it mid-test. */
static void start_held_test(struct rig *rig, char *test_id, size_t size)
{
    register_subject(rig, SUBJECT_A, "OF-A1");
    child_send(&rig->sim, "hold");
    wait_event(&rig->sim, "hold");
    start_detached(rig, test_id, size);
    wait_event(&rig->sim, "phase test=1 state=analysing");
}

/* Lets the held test finish and checks that exactly one whole, matching
 * result was stored for it. */
static void finish_and_check_result(struct rig *rig, const char *test_id)
{
    char sql[256];
    char text[256];
    char *out;
    char *err;

    child_send(&rig->sim, "release");
    ck_assert_int_eq(client(rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    wait_event(&rig->sim, "ack test=1");

    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "completed");
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM result_analytes"), 10);
    db_text(rig, "SELECT value_text FROM result_analytes WHERE analyte = 'methamphetamine'", text,
            sizeof(text));
    ck_assert_str_eq(text, "120.500");
}

/* Checks that the client gets responses that show the analyzer offline. */
static void assert_served_offline(struct rig *rig, const char *test_id)
{
    char *out;
    char *err;

    ck_assert_int_eq(client(rig, &out, &err, "--json", "instruments", NULL), 0);
    assert_contains(out, "\"id\":\"saliva-1\"");
    assert_contains(out, "\"online\":false");
    free(out);
    free(err);

    ck_assert_int_eq(client(rig, &out, &err, "--json", "test", "show", test_id, NULL), 0);
    assert_contains(out, "\"state\":\"running\"");
    free(out);
    free(err);
}

/* Faults that make requests fail, each with the cause the daemon logs. */
static const struct {
    const char *kind;
    const char *cause;
} failing_faults[] = {
    {"corrupt", "CRC error reading"},
    {"noise", "reading status block"},
    {"drop", "timed out reading status block"},
    {"truncate", "timed out reading status block"},
    {"slow", "timed out reading status block"},
    {"busy", "Modbus exception 6 (server device busy) reading status block"},
};

/* A fault that lasts takes the analyzer offline after three failed
 * requests, logged once with the instrument and test IDs. The daemon
 * reconnects with a doubling delay up to its cap, keeps serving clients,
 * and once the fault ends brings the analyzer back and stores the test's
 * whole result once. */
START_TEST(fault_offline_then_online)
{
    const char *kind = failing_faults[_i].kind;
    struct rig rig;
    char test_id[64];
    char command[64];
    char text[512];

    rig_start(&rig, scenario_with_result, FAST_RETRY);
    start_held_test(&rig, test_id, sizeof(test_id));

    snprintf(command, sizeof(command), "fault %s 1000000", kind);
    child_send(&rig.sim, command);
    wait_event(&rig.sim, "fault-armed");

    snprintf(text, sizeof(text),
             "saliva-1: offline, test %s: 3 failed requests in a row, the last: ", test_id);
    wait_log(&rig, text);
    wait_log(&rig, failing_faults[_i].cause);
    wait_log(&rig, "retrying in 50 ms, test");
    wait_log(&rig, "retrying in 100 ms, test");
    snprintf(text, sizeof(text), "retrying in 100 ms, test %s (3 so far)", test_id);
    wait_log(&rig, text);
    assert_served_offline(&rig, test_id);

    child_send(&rig.sim, "fault off");
    wait_event(&rig.sim, "fault-armed kind=none");
    snprintf(text, sizeof(text), "lot L2409A expiring 2027-06-30, test %s", test_id);
    wait_log(&rig, text);
    finish_and_check_result(&rig, test_id);

    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: online"), 2);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "retrying in 200 ms"), 0);
    rig_stop(&rig);
}
END_TEST

/* The breath analyzer's line goes offline and back the same way while the
 * saliva analyzer stays online, and its held test still stores its one
 * result. */
START_TEST(breath_fault_offline_then_online)
{
    char breath_scenario[256];
    struct rig rig;
    char test_id[64];
    char text[512];
    char *out;
    char *err;

    snprintf(breath_scenario, sizeof(breath_scenario), "%s[test.1]\nalcohol = 412.3\n",
             fast_breath_phases);
    rig_start_cotest(&rig, fast_phases, breath_scenario, FAST_RETRY, FAST_RETRY);
    client_ok(&rig, "subject", "add", SUBJECT_A, NULL);
    child_send(&rig.breath, "hold");
    wait_event(&rig.breath, "hold");
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "breath-1", "--no-wait", NULL),
                     0);
    char *id = strstr(out, "\"tests\":[{\"id\":\"");
    ck_assert_msg(id != NULL, "no test ID in %s", out);
    id += strlen("\"tests\":[{\"id\":\"");
    snprintf(test_id, sizeof(test_id), "%.*s", (int)strcspn(id, "\""), id);
    free(out);
    free(err);
    wait_event(&rig.breath, "phase test=1 state=analysing");

    child_send(&rig.breath, "fault corrupt 1000000");
    wait_event(&rig.breath, "fault-armed");
    snprintf(text, sizeof(text), "breath-1: offline, test %s: 3 failed requests in a row", test_id);
    wait_log(&rig, text);
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "instruments", NULL), 0);
    assert_contains(out, "\"online\":true");
    assert_contains(out, "\"online\":false");
    free(out);
    free(err);

    child_send(&rig.breath, "fault off");
    wait_event(&rig.breath, "fault-armed kind=none");
    child_send(&rig.breath, "release");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "breath-1: online"), 2);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "breath-1: offline"), 1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 0);
    db_text(&rig, "SELECT breath_raw FROM results", text, sizeof(text));
    ck_assert_str_eq(text, "4123");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    rig_stop(&rig);
}
END_TEST

/* Faults aimed at the result block read, each with the error it causes,
 * or NULL when the read still succeeds. */
static const struct {
    const char *kind;
    const char *error;
} result_faults[] = {
    {"truncate", "timed out reading result block"},
    {"corrupt", "CRC error reading result block"},
    {"noise", "reading result block"},
    {"drop", "timed out reading result block"},
    {"busy", "Modbus exception 6 (server device busy) reading result block"},
    {"resend", NULL},
};

/* Two reads of the result block in a row go wrong (a resent reply only
 * doubles the first): the daemon stores nothing from them, reads the
 * result again, and stores it whole once. Two failures stay under
 * offline_after_failures, so the analyzer stays online. */
START_TEST(result_read_fault_retried)
{
    struct rig rig;
    char test_id[64];
    char command[64];
    char line[256];
    char *out;
    char *err;

    rig_start(&rig, scenario_with_result, FAST_RETRY);
    start_held_test(&rig, test_id, sizeof(test_id));
    snprintf(command, sizeof(command), "fault %s 2 0 300", result_faults[_i].kind);
    child_send(&rig.sim, command);
    wait_event(&rig.sim, "fault-armed");
    child_send(&rig.sim, "release");
    /* A resent reply is read at once, so only the first read meets it. */
    int faulted_reads = result_faults[_i].error != NULL ? 2 : 1;
    for (int read = 0; read < faulted_reads; read++) {
        ck_assert(child_wait_line(&rig.sim, "fault kind=", EVENT_MS, line, sizeof(line)));
        assert_contains(line, "function=3 register=300");
    }

    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    wait_event(&rig.sim, "ack test=1");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes"), 10);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE analyte ="
                                    " 'methamphetamine' AND value_text = '120.500'"),
                     1);
    if (result_faults[_i].error != NULL) {
        ck_assert_int_eq(count_lines(rig.daemon.log_path, result_faults[_i].error), 2);
    } else {
        ck_assert_int_eq(count_lines(rig.daemon.log_path, "reading result block"), 0);
    }
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 0);
    rig_stop(&rig);
}
END_TEST

/* A start command arrives while every status read fails and one failure
 * takes the analyzer offline: the status read before the start closes the
 * port, so the start is never sent. The daemon must not use the closed
 * port. It ends the test interrupted and keeps serving. */
START_TEST(start_on_failing_line_interrupted)
{
    struct rig rig;
    char test_id[64] = "";
    char sql[256];
    char text[512];
    char *out;
    char *err;

    rig_start(&rig, scenario_with_result,
              "retry_ms = 50\nretry_max_ms = 50\noffline_after_failures = 1\n");
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "fault drop 1000000 0 100");
    wait_event(&rig.sim, "fault-armed");

    /* The analyzer is online between a reconnection and its next status
     * read, so a start may be rejected as offline a few times first. */
    for (int attempt = 0; attempt < 200 && test_id[0] == '\0'; attempt++) {
        int status = client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", "--no-wait", NULL);
        char *id = strstr(out, "\"tests\":[{\"id\":\"");
        if (status == 0 && id != NULL) {
            id += strlen("\"tests\":[{\"id\":\"");
            snprintf(test_id, sizeof(test_id), "%.*s", (int)strcspn(id, "\""), id);
        } else {
            assert_contains(out, "instrument-offline");
        }
        free(out);
        free(err);
    }
    ck_assert_msg(test_id[0] != '\0', "no start was accepted in 200 attempts");

    ck_assert_int_ne(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    snprintf(sql, sizeof(sql), "SELECT state || ': ' || reason FROM tests WHERE id = '%s'",
             test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "interrupted: the start command was not sent because the analyzer "
                           "went offline");
    ck_assert_int_eq(count_lines(rig.sim.log_path, "start test="), 0);

    child_send(&rig.sim, "fault off");
    wait_event(&rig.sim, "fault-armed kind=none");
    rig_stop(&rig);
}
END_TEST

/* A reply sent twice is read once: the copy is flushed before the next
 * request, so no request fails and the result is stored once. */
START_TEST(resent_replies_stored_once)
{
    struct rig rig;
    char test_id[64];

    rig_start(&rig, scenario_with_result, FAST_RETRY);
    start_held_test(&rig, test_id, sizeof(test_id));
    child_send(&rig.sim, "fault resend 1000000");
    wait_event(&rig.sim, "fault-armed");
    wait_event(&rig.sim, "fault kind=resend");
    finish_and_check_result(&rig, test_id);

    ck_assert_int_eq(count_lines(rig.daemon.log_path, "failed requests in a row"), 0);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 0);
    ck_assert_int_eq(count_lines(rig.sim.log_path, "ack test=1"), 1);
    rig_stop(&rig);
}
END_TEST

/* An analyzer that restarts drops the test: it ends interrupted with no
 * result, and the analyzer, still online, runs the next test. */
START_TEST(power_cycle_interrupts_test)
{
    struct rig rig;
    char test_id[64];
    char sql[256];
    char text[512];
    char *out;
    char *err;

    rig_start(&rig, scenario_with_result, FAST_RETRY);
    start_held_test(&rig, test_id, sizeof(test_id));
    child_send(&rig.sim, "fault power-cycle");
    wait_event(&rig.sim, "power-cycle");

    ck_assert_int_ne(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    assert_contains(out, "interrupted");
    free(out);
    free(err);
    snprintf(sql, sizeof(sql), "SELECT state || ': ' || reason FROM tests WHERE id = '%s'",
             test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "interrupted: the analyzer no longer holds the test");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);

    child_send(&rig.sim, "release");
    wait_event(&rig.sim, "release");
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 0);
    rig_stop(&rig);
}
END_TEST

/* The port vanishes in the middle of a request: the daemon closes it, backs
 * off, and finds the analyzer again through its link once a new pty with
 * another name appears. The link's folder did not exist at start-up, so
 * no inotify watch helps and the timer alone finds the device. The held
 * test then completes. */
START_TEST(port_vanishes_mid_poll)
{
    struct rig rig;
    char link_dir[600];
    char link_path[700];
    char line[256];
    char old_pty[128] = "";
    char test_id[64];
    char text[512];

    rig_prepare(&rig);
    snprintf(link_dir, sizeof(link_dir), "%s/dev", rig.dir);
    snprintf(link_path, sizeof(link_path), "%s/saliva", link_dir);
    snprintf(rig.pty, sizeof(rig.pty), "%.*s", (int)sizeof(rig.pty) - 1, link_path);
    write_config(&rig, FAST_RETRY);
    rig_launch_daemon(&rig);
    wait_log(&rig, "cannot watch");
    wait_log(&rig, "No such file or directory; retrying in");

    ck_assert_int_eq(mkdir(link_dir, 0755), 0);
    rig_start_linked_sim(&rig, &rig.sim, scenario_with_result, link_path);
    wait_log(&rig, "saliva-1: online");
    start_held_test(&rig, test_id, sizeof(test_id));
    ck_assert_int_gt(readlink(link_path, old_pty, sizeof(old_pty) - 1), 0);

    /* Holding the old pty keeps its number taken, as a vanished USB port's
     * name can be, so the new pty gets another name. */
    int holder = open(old_pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(holder, 0);

    child_send(&rig.sim, "fault unplug");
    wait_event(&rig.sim, "unplug");
    snprintf(text, sizeof(text), "saliva-1: offline, test %s: ", test_id);
    wait_log(&rig, text);
    snprintf(text, sizeof(text), "No such file or directory; retrying in 100 ms, test %s", test_id);
    wait_log(&rig, text);

    child_send(&rig.sim, "plug");
    ck_assert(child_wait_line(&rig.sim, "plug pty=", EVENT_MS, line, sizeof(line)));
    ck_assert_str_ne(line + strlen("plug pty="), old_pty);
    snprintf(text, sizeof(text), "expiring 2027-06-30, test %s", test_id);
    wait_log(&rig, text);
    finish_and_check_result(&rig, test_id);

    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "appeared; connecting"), 0);
    close(holder);
    rig_stop(&rig);
}
END_TEST

/* A scenario unplugs the analyzer at the first request after test 1's
 * start and plugs it back 300 ms later under another name: the test goes
 * on and its result is stored once. */
START_TEST(scheduled_unplug_test_completes)
{
    struct rig rig;
    char scenario[512];
    char link_path[600];
    char old_pty[128] = "";
    char test_id[64];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario),
             "%s[test.1]\nmethamphetamine = 120.5\nfault = unplug\nfault_delay_ms = 300\n",
             fast_phases);
    rig_prepare(&rig);
    snprintf(link_path, sizeof(link_path), "%s/saliva", rig.dir);
    rig_start_linked_sim(&rig, &rig.sim, scenario, link_path);
    write_config(&rig, FAST_RETRY);
    start_daemon(&rig);
    ck_assert_int_gt(readlink(link_path, old_pty, sizeof(old_pty) - 1), 0);
    int holder = open(old_pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(holder, 0);

    register_subject(&rig, SUBJECT_A, "OF-A1");
    start_detached(&rig, test_id, sizeof(test_id));
    wait_event(&rig.sim, "fault-armed kind=unplug count=1 delay_ms=300 test=1");
    wait_event(&rig.sim, "unplug");
    wait_event(&rig.sim, "plug pty=");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);

    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE analyte ="
                                    " 'methamphetamine' AND value_text = '120.500'"),
                     1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: offline"), 1);
    close(holder);
    rig_stop(&rig);
}
END_TEST

/* Counts the open descriptors of a process, and in *on_path those open on
 * path. */
static int count_fds(pid_t pid, const char *path, int *on_path)
{
    char folder[64];
    char link[PATH_MAX + 80];
    char target[PATH_MAX];
    int count = 0;

    *on_path = 0;
    snprintf(folder, sizeof(folder), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(folder);
    ck_assert_msg(dir != NULL, "opendir %s: %s", folder, strerror(errno));
    for (struct dirent *entry = readdir(dir); entry != NULL; entry = readdir(dir)) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        count++;
        snprintf(link, sizeof(link), "%s/%s", folder, entry->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            *on_path += strcmp(target, path) == 0;
        }
    }
    closedir(dir);
    return count;
}

/* Counts the daemon's descriptors, leaving out the one a reconnection in
 * progress may hold on the port. Leaked ones would pile up past it. */
static int count_settled_fds(pid_t pid, const char *port)
{
    int on_port;
    int count = count_fds(pid, port, &on_port);

    return on_port > 0 ? count - 1 : count;
}

static bool has_fd_on(pid_t pid, const char *path)
{
    int on_path;

    count_fds(pid, path, &on_path);
    return on_path > 0;
}

/* Returns the smallest descriptor count read as the retries pass first,
 * first + 100 and first + 200, leaving out one on port. */
static int min_fds_at(struct rig *rig, const char *port, int first)
{
    int smallest = -1;
    char text[128];

    for (int retries = first; retries <= first + 200; retries += 100) {
        snprintf(text, sizeof(text), "retrying in 1 ms (%d so far)", retries);
        wait_log(rig, text);
        int count = count_settled_fds(rig->daemon.pid, port);
        if (smallest < 0 || count < smallest) {
            smallest = count;
        }
    }
    return smallest;
}

/* A thousand failed reconnections leave the daemon's descriptors as they
 * were: first with the device absent, then with its port locked, which
 * opens the port each time before failing. */
START_TEST(reconnects_leak_no_descriptors)
{
    struct rig rig;
    char pty[128];
    char text[256];

    rig_prepare(&rig);
    snprintf(rig.pty, sizeof(rig.pty), "%s/absent", rig.dir);
    write_config(&rig, "retry_ms = 1\nretry_max_ms = 1\n");
    rig_launch_daemon(&rig);
    /* The baseline comes after start-up, whose port listing opens
     * descriptors of its own for a moment. */
    wait_log(&rig, "ready: 1 instrument,");
    /* A descriptor that a moment's work keeps open (a port listing, a
     * notification) can be caught by one reading, so each side takes the
     * smallest of three readings; a leak would add a thousand. */
    int before = min_fds_at(&rig, rig.pty, 100);
    int after = min_fds_at(&rig, rig.pty, 1100);
    ck_assert_int_eq(after, before);
    rig_stop(&rig);

    rig_start(&rig, fast_phases, "retry_ms = 1\nretry_max_ms = 1\n");
    snprintf(pty, sizeof(pty), "%s", rig.pty);
    child_stop(&rig.daemon, SIGTERM, EVENT_MS);
    int lock = open(pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(lock, 0);
    ck_assert_int_eq(flock(lock, LOCK_EX | LOCK_NB), 0);
    unlink(rig.daemon.log_path);
    rig_launch_daemon(&rig);
    snprintf(text, sizeof(text), "port busy: another process holds the lock on %s", pty);
    wait_log(&rig, text);
    wait_log(&rig, "ready: 1 instrument,");
    before = min_fds_at(&rig, pty, 100);
    after = min_fds_at(&rig, pty, 1100);
    ck_assert_int_eq(after, before);
    close(lock);
    rig_stop(&rig);
}
END_TEST

/* A port another process has locked is "port busy", named in the log. The
 * analyzer stays offline with no descriptor of the port open, so clients
 * cannot start a test on it, and once the lock goes the retry timer brings
 * it online. */
START_TEST(locked_port_busy_then_online)
{
    struct rig rig;
    char text[256];
    char *out;
    char *err;

    rig_start(&rig, fast_phases, FAST_RETRY);
    child_stop(&rig.daemon, SIGTERM, EVENT_MS);
    int lock = open(rig.pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(lock, 0);
    ck_assert_int_eq(flock(lock, LOCK_EX | LOCK_NB), 0);
    unlink(rig.daemon.log_path);
    rig_launch_daemon(&rig);
    snprintf(text, sizeof(text), "port busy: another process holds the lock on %s; retrying in",
             rig.pty);
    wait_log(&rig, text);
    wait_log(&rig, "retrying in 100 ms (3 so far)");
    ck_assert(!has_fd_on(rig.daemon.pid, rig.pty));
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_ne(client(&rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(out, "\"code\":\"instrument-offline\"");
    free(out);
    free(err);

    close(lock);
    wait_log(&rig, "saliva-1: online");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    rig_stop(&rig);
}
END_TEST

/* An analyzer that replies in 550 ms, past libmodbus's 500 ms default:
 * with response_timeout_ms = 500 every request times out, and with the
 * default 1000 ms the test completes. The timeout in force is logged at
 * start-up, and an invalid one stops the daemon naming the key. */
START_TEST(slow_analyzer_needs_timeout)
{
    struct rig rig;
    char *out;
    char *err;
    char config[600];
    char test_id[64];

    rig_prepare(&rig);
    rig_start_linked_sim(&rig, &rig.sim, scenario_with_result, rig_file(&rig, "saliva"));
    child_send(&rig.sim, "fault slow 1000000 550");
    wait_event(&rig.sim, "fault-armed kind=slow");

    write_config(&rig, "response_timeout_ms = 0\n");
    snprintf(config, sizeof(config), "%s", rig_file(&rig, "toxlab.conf"));
    char *argv[] = {(char *)harness_program("TOXLABD"), "-c", config, NULL};
    ck_assert_int_eq(harness_run(argv, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "response_timeout_ms");
    free(out);
    free(err);

    /* The first retry comes after the late reply, which the reopened port
     * then flushes; an earlier one could take that reply as its own. */
    write_config(&rig, "response_timeout_ms = 500\nretry_ms = 1000\n");
    rig_launch_daemon(&rig);
    wait_log(&rig, "saliva-1: saliva driver on");
    wait_log(&rig, "response timeout 500 ms");
    wait_log(&rig, "timed out reading identity block at register 0 (0x0000); retrying in 2000 ms");
    child_stop(&rig.daemon, SIGTERM, EVENT_MS);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "saliva-1: online"), 0);

    write_config(&rig, "response_timeout_ms = 1000\n");
    unlink(rig.daemon.log_path);
    start_daemon(&rig);
    wait_log(&rig, "response timeout 1000 ms");
    register_subject(&rig, SUBJECT_A, "OF-A1");
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "timed out"), 0);
    rig_stop(&rig);
}
END_TEST

/* Every reply failing its CRC, as after a baud rate or parity mismatch:
 * after a few CRC errors the log names the line settings to check instead
 * of repeating the error. */
START_TEST(crc_errors_name_line_settings)
{
    struct rig rig;

    rig_start(&rig, fast_phases, "retry_ms = 1\nretry_max_ms = 2\n");
    child_send(&rig.sim, "fault corrupt 1000000");
    wait_event(&rig.sim, "fault-armed");
    wait_log(&rig, "check that the line settings (19200 baud, parity E, 8 data bits, 1 stop bits) "
                   "match the analyzer's");
    wait_log(&rig, "(100 so far)");

    /* Four errors, the offline line that quotes the last, and one on reconnecting. */
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "CRC error reading"), 5);
    ck_assert_int_eq(count_lines(rig.daemon.log_path, "CRC errors in a row"), 3);
    rig_stop(&rig);
}
END_TEST

/* SIGTERM while both drivers wait for a reply under a 60-second response
 * timeout: the daemon exits 0 within seconds, since the lines share one
 * stop deadline. The running test stays running (silence is not failure),
 * and the next start marks it interrupted and resumes it because the
 * analyzer still holds it. */
START_TEST(sigterm_during_long_wait)
{
    const char long_wait[] = "response_timeout_ms = 60000\n";
    struct rig rig;
    char test_id[64];
    char sql[256];
    char text[256];
    char *out;
    char *err;

    rig_start_cotest(&rig, scenario_with_result, fast_breath_phases, long_wait, long_wait);
    start_held_test(&rig, test_id, sizeof(test_id));
    child_send(&rig.breath, "stall");
    wait_event(&rig.breath, "stalled");
    child_send(&rig.sim, "stall");
    wait_event(&rig.sim, "stalled");

    int status = child_stop(&rig.daemon, SIGTERM, harness_ms(6000));
    rig.daemon_running = false;
    ck_assert_msg(WIFEXITED(status), "toxlabd did not exit after SIGTERM (status %d)", status);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    wait_log(&rig, "toxlabd stopped (clean)");
    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "running");

    child_send(&rig.sim, "unstall");
    wait_event(&rig.sim, "unstalled");
    child_send(&rig.breath, "unstall");
    wait_event(&rig.breath, "unstalled");
    unlink(rig.daemon.log_path);
    start_daemon(&rig);
    wait_log(&rig, "the daemon stopped; marked interrupted");
    wait_log(&rig, "resumed: the analyzer still holds it");
    child_send(&rig.sim, "release");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "completed");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    rig_stop(&rig);
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *suite = suite_create("faults");
    TCase *wire = tcase_create("wire");
    TCase *port = tcase_create("port");
    TCase *sigterm = tcase_create("sigterm");

    tcase_add_loop_test(wire, fault_offline_then_online, 0,
                        sizeof(failing_faults) / sizeof(failing_faults[0]));
    tcase_add_loop_test(wire, result_read_fault_retried, 0,
                        sizeof(result_faults) / sizeof(result_faults[0]));
    tcase_add_test(wire, breath_fault_offline_then_online);
    tcase_add_test(wire, resent_replies_stored_once);
    tcase_add_test(wire, start_on_failing_line_interrupted);
    tcase_add_test(wire, power_cycle_interrupts_test);
    tcase_add_test(wire, crc_errors_name_line_settings);
    tcase_add_test(wire, slow_analyzer_needs_timeout);
    tcase_add_test(port, port_vanishes_mid_poll);
    tcase_add_test(port, scheduled_unplug_test_completes);
    tcase_add_test(port, reconnects_leak_no_descriptors);
    tcase_add_test(port, locked_port_busy_then_online);
    tcase_add_test(sigterm, sigterm_during_long_wait);
    tcase_set_timeout(wire, HARNESS_CASE_TIMEOUT);
    tcase_set_timeout(port, HARNESS_CASE_TIMEOUT);
    tcase_set_timeout(sigterm, 18);
    suite_add_tcase(suite, wire);
    suite_add_tcase(suite, port);
    suite_add_tcase(suite, sigterm);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(faults_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
