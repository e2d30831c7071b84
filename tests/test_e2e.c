/* End-to-end tests: toxlab-sim on a real pty, toxlabd on a temporary socket
 * and SQLite file, the toxlab client over the socket, and the stored rows
 * read back from the database file. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"
#include "protocol/client_proto.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(screen_negative_then_presumptive)
{
    struct rig rig;
    char scenario[512];
    char text[256];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario), "%s[test.2]\nmethamphetamine = 120.5\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", "--specimen", "OF-A1", "--driving", NULL),
                     0);
    assert_contains(out, "decision: none");
    free(out);
    free(err);

    register_subject(&rig, SUBJECT_B, "OF-B1");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_B,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(out, "presumptive");
    assert_contains(out, "decision: flag");
    assert_contains(out, "laboratory specimen required");
    free(out);
    free(err);

    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests WHERE state = 'completed'"), 2);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 2);
    db_text(&rig,
            "SELECT a.outcome || ' ' || a.value_text || ' ' || a.cutoff_text || ' ' ||"
            " a.threshold_line FROM result_analytes a JOIN results r ON r.id = a.result_id"
            " JOIN tests t ON t.id = r.test_id JOIN specimens s ON s.id = t.specimen_id"
            " WHERE s.barcode = 'OF-B1' AND a.analyte = 'methamphetamine'",
            text, sizeof(text));
    ck_assert_str_eq(text, "presumptive 120.500 50 13");
    db_text(&rig,
            "SELECT group_concat(decision, ',') FROM (SELECT d.decision FROM decisions d"
            " JOIN stops s ON s.id = d.stop_id ORDER BY d.created)",
            text, sizeof(text));
    ck_assert_str_eq(text, "none,flag");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results r JOIN threshold_sets t ON"
                                    " t.version = r.threshold_version"),
                     2);
    ck_assert_int_eq(db_count(&rig, "SELECT driving FROM stops s JOIN specimens p ON"
                                    " p.stop_id = s.id WHERE p.barcode = 'OF-A1'"),
                     1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE analyte ="
                                    " 'ketamine'"),
                     0);
    rig_stop(&rig);
}
END_TEST

START_TEST(acknowledge_follows_commit)
{
    struct rig rig;
    char line[256];

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1",
              "--no-wait", NULL);
    ck_assert(child_wait_line(&rig.sim, "ack ", EVENT_MS, line, sizeof(line)));
    /* The acknowledgement goes out only after the commit, so the row is there now. */
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes"), 10);
    rig_stop(&rig);
}
END_TEST

START_TEST(lost_acknowledgement_repeated)
{
    struct rig rig;
    char scenario[512];
    char line[256];

    snprintf(scenario, sizeof(scenario), "%s[test.1]\nfault = lost-ack\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL);
    ck_assert(child_wait_line(&rig.sim, "ack-lost test=1", EVENT_MS, line, sizeof(line)));
    /* The analyzer still shows the stored result: it is acknowledged again, not stored twice. */
    ck_assert(child_wait_line(&rig.sim, "ack test=1", EVENT_MS, line, sizeof(line)));
    ck_assert(harness_wait_file(rig.daemon.log_path, "is stored already; acknowledging it again",
                                EVENT_MS));
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests WHERE state = 'completed'"), 2);
    rig_stop(&rig);
}
END_TEST

START_TEST(unknown_instrument_rejected)
{
    struct rig rig;
    char *out;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_ne(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-9", NULL),
                     0);
    assert_contains(err, "instrument saliva-9 not found");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests"), 0);
    free(out);
    free(err);
    /* Control: the configured instrument works with the same setup. */
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(malformed_subject_rejected)
{
    struct rig rig;
    char *out;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    ck_assert_int_ne(client(&rig, &out, &err, "subject", "add", "999999199001011239", NULL), 0);
    assert_contains(err, "check character is 9, expected 8");
    free(out);
    free(err);
    ck_assert_int_ne(client(&rig, &out, &err, "subject", "add", "99999919900230123X", NULL), 0);
    assert_contains(err, "birth date");
    free(out);
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM subjects"), 0);
    client_ok(&rig, "subject", "add", SUBJECT_A, NULL);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM subjects"), 1);
    rig_stop(&rig);
}
END_TEST

START_TEST(silent_analyzer_interrupted)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char extra[64];
    char *out;
    char *err;

    snprintf(extra, sizeof(extra), "grace_period_ms = %d\n", harness_ms(3000));
    rig_start(&rig, fast_phases, extra);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));
    child_send(&rig.sim, "mute");
    ck_assert(child_wait_line(&rig.sim, "mute", EVENT_MS, line, sizeof(line)));
    ck_assert(harness_wait_file(rig.daemon.log_path,
                                "timed out reading status block at "
                                "register 100 (0x0064)",
                                EVENT_MS));

    /* Silence is not failure: the test is still running within its grace period. */
    ck_assert_int_eq(client(&rig, &out, &err, "--json", "test", "show", test_id, NULL), 0);
    assert_contains(out, "\"state\":\"running\"");
    free(out);
    free(err);

    ck_assert_int_ne(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    assert_contains(out, "interrupted");
    assert_contains(err, "timed out reading status block at register 100 (0x0064)");
    free(out);
    free(err);
    char sql[256];
    char text[512];
    snprintf(sql, sizeof(sql), "SELECT state || ': ' || reason FROM tests WHERE id = '%s'",
             test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_msg(strstr(text, "interrupted: no reply from the analyzer") == text, "%s", text);
    assert_contains(text, "timed out reading status block at register 100");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);

    /* The analyzer comes back still holding the test: it resumes and completes. */
    child_send(&rig.sim, "unmute");
    ck_assert(
        harness_wait_file(rig.daemon.log_path, "resumed: the analyzer still holds it", EVENT_MS));
    child_send(&rig.sim, "release");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "completed");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    rig_stop(&rig);
}
END_TEST

START_TEST(modbus_exception_fails_test)
{
    struct rig rig;
    char scenario[512];
    char text[512];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario), "%s[test.1]\nfault = exception\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_ne(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(out, "failed");
    free(out);
    free(err);
    db_text(&rig, "SELECT state || ': ' || reason FROM tests", text, sizeof(text));
    ck_assert_str_eq(text, "failed: Modbus exception 4 (server device failure) writing control "
                           "block at register 200 (0x00C8)");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);
    rig_stop(&rig);
}
END_TEST

START_TEST(wrong_echo_rejected)
{
    struct rig rig;
    char scenario[512];
    char text[512];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario), "%s[test.1]\nfault = wrong-id\nmethamphetamine = 300\n",
             fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_ne(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    free(out);
    free(err);
    db_text(&rig, "SELECT state || ': ' || reason FROM tests", text, sizeof(text));
    ck_assert_msg(strstr(text, "interrupted: result at register 300 echoes host test ID") == text,
                  "%s", text);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 0);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM decisions WHERE decision = 'flag'"), 0);
    ck_assert_msg(!child_wait_line(&rig.sim, "ack test=1", 0, text, sizeof(text)),
                  "the mismatched result was acknowledged");
    /* The foreign result was discarded by an abort, so the analyzer takes the next test. */
    ck_assert(child_seen_line(&rig.sim, "abort test=1", EVENT_MS));
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(device_error_fails_test)
{
    struct rig rig;
    char scenario[512];
    char text[512];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario), "%s[test.1]\nerror = insufficient-sample\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_ne(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    free(out);
    free(err);
    db_text(&rig, "SELECT state || ': ' || reason FROM tests", text, sizeof(text));
    ck_assert_str_eq(text, "failed: device error 1 (insufficient sample)");
    db_text(&rig, "SELECT actions FROM decisions", text, sizeof(text));
    assert_contains(text, "repeat the test: saliva-1 failed");
    /* The error state does not keep the analyzer from the next test. */
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(control_line_failure_invalid)
{
    struct rig rig;
    char scenario[512];
    char *out;
    char *err;

    snprintf(scenario, sizeof(scenario),
             "%s[test.1]\noutcome = control-line-failed\nmethamphetamine = 300\n", fast_phases);
    rig_start(&rig, scenario, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(out, "control line failed");
    free(out);
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE outcome <>"
                                    " 'invalid'"),
                     0);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM result_analytes WHERE reason ="
                                    " 'control line failed'"),
                     10);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM decisions WHERE decision = 'none'"), 1);
    rig_stop(&rig);
}
END_TEST

/* Connects to the daemon's socket and reads the hello line. */
static int raw_connect(struct rig *rig, struct proto_reader *reader)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *line;

    ck_assert(strlen(rig->socket) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, rig->socket, strlen(rig->socket) + 1);
    ck_assert(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    proto_reader_init(reader);
    for (;;) {
        char buffer[4096];
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        ck_assert(got > 0);
        proto_reader_feed(reader, buffer, (size_t)got);
        if (proto_reader_next(reader, &line) == 1) {
            break;
        }
    }
    assert_contains(line, "\"class\":\"hello\"");
    free(line);
    return fd;
}

/* Sends raw bytes and returns the next line, or NULL when the daemon closed. */
static char *raw_exchange(int fd, struct proto_reader *reader, const char *bytes, size_t len)
{
    char *line;
    size_t sent = 0;

    /* The daemon may close after a too-large line before it has read it all. */
    while (sent < len) {
        ssize_t done = send(fd, bytes + sent, len - sent, MSG_NOSIGNAL);
        if (done <= 0) {
            ck_assert_msg(sent > PROTO_MAX_LINE, "send failed after %zu bytes: %s", sent,
                          strerror(errno));
            break;
        }
        sent += (size_t)done;
    }
    for (;;) {
        if (proto_reader_next(reader, &line) == 1) {
            return line;
        }
        char buffer[4096];
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        if (got <= 0) {
            return NULL;
        }
        proto_reader_feed(reader, buffer, (size_t)got);
    }
}

/* Registers a subject with 700 specimens through pipelined requests on fd,
 * then requests its history, which is larger than a protocol line. */
static int client_subject_with_history(struct rig *rig, int fd, struct proto_reader *reader)
{
    size_t size = 700 * 200 + 256;
    char *requests = malloc(size);
    size_t used = 0;

    (void)rig;
    used += (size_t)snprintf(requests + used, size - used,
                             "{\"id\":100,\"cmd\":\"subject.add\",\"args\":{\"subject\":\"%s\"}}\n",
                             SUBJECT_B);
    for (int i = 0; i < 700; i++) {
        used += (size_t)snprintf(requests + used, size - used,
                                 "{\"id\":%d,\"cmd\":\"specimen.add\",\"args\":{\"subject\":"
                                 "\"%s\",\"barcode\":\"BULK-%04d\",\"matrix\":\"hair\"}}\n",
                                 101 + i, SUBJECT_B, i);
    }
    ck_assert(send(fd, requests, used, MSG_NOSIGNAL) == (ssize_t)used);
    free(requests);
    for (int i = 0; i <= 700; i++) {
        char *line = raw_exchange(fd, reader, "", 0);
        ck_assert_ptr_nonnull(line);
        ck_assert_msg(strstr(line, "\"ok\":true") != NULL, "request failed: %s", line);
        free(line);
    }
    char show[200];
    snprintf(show, sizeof(show),
             "{\"id\":900,\"cmd\":\"subject.show\",\"args\":{\"subject\":\"%s\"}}\n", SUBJECT_B);
    char *line = raw_exchange(fd, reader, show, strlen(show));
    ck_assert_ptr_nonnull(line);
    assert_contains(line, "\"id\":900");
    assert_contains(line, "\"code\":\"internal\"");
    assert_contains(line, "larger than 65536 bytes");
    free(line);
    return 0;
}

START_TEST(malformed_requests_answered)
{
    static const struct {
        const char *request;
        const char *code;
    } cases[] = {
        {"not json\n", "\"code\":\"bad-request\""},
        {"[1,2]\n", "\"code\":\"bad-request\""},
        {"{\"id\":\"x\",\"cmd\":\"instruments\"}\n", "\"code\":\"bad-request\""},
        {"{\"id\":3,\"cmd\":\"launch\",\"args\":{}}\n", "\"code\":\"unknown-command\""},
        {"{\"id\":4,\"cmd\":\"test.show\",\"args\":{}}\n", "\"code\":\"invalid-argument\""},
        {"{\"id\":5,\"cmd\":\"test.show\",\"args\":{\"test\":\"TEST1-NOPE\"}}\n",
         "\"code\":\"not-found\""},
        {"{\"id\":6,\"cmd\":\"stop.show\",\"args\":{\"stop\":7}}\n",
         "\"code\":\"invalid-argument\""},
        {"{\"id\":7,\"cmd\":\"instruments\"}\n", "\"ok\":true"},
        {"{\"id\":8,\"cmd\":\"subject.add\",\"args\":{\"subject\":123}}\n",
         "argument 'subject' must be a string"},
        {"{\"id\":9,\"cmd\":\"test.start\",\"args\":{\"driving\":\"yes\"}}\n",
         "argument 'driving' must be a boolean"},
        {"{\"id\":10,\"cmd\":\"test.show\",\"args\":{\"tset\":\"x\"}}\n",
         "unknown argument 'tset' for test.show"},
    };
    struct rig rig;
    struct proto_reader reader;

    rig_start(&rig, fast_phases, NULL);
    int fd = raw_connect(&rig, &reader);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *line = raw_exchange(fd, &reader, cases[i].request, strlen(cases[i].request));
        ck_assert_msg(line != NULL, "no response to %s", cases[i].request);
        assert_contains(line, cases[i].code);
        free(line);
    }

    /* A NUL byte inside a line is rejected, not read as the end of the request. */
    static const char with_nul[] = "{\"id\":11,\"cmd\":\"instruments\"}\0junk\n";
    char *answer = raw_exchange(fd, &reader, with_nul, sizeof(with_nul) - 1);
    ck_assert_ptr_nonnull(answer);
    assert_contains(answer, "contains a NUL byte");
    free(answer);

    /* A response over the line limit becomes an error response, never silence. */
    ck_assert_int_eq(client_subject_with_history(&rig, fd, &reader), 0);

    /* A line over the limit gets too-large and the connection is closed. */
    size_t size = PROTO_MAX_LINE + 100;
    char *huge = malloc(size);
    memset(huge, 'x', size);
    char *line = raw_exchange(fd, &reader, huge, size);
    ck_assert_ptr_nonnull(line);
    assert_contains(line, "\"code\":\"too-large\"");
    free(line);
    char rest[64];
    ck_assert_int_eq(recv(fd, rest, sizeof(rest), 0), 0);
    free(huge);
    close(fd);
    proto_reader_free(&reader);

    /* The daemon still serves other clients. */
    client_ok(&rig, "instruments", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(bad_config_names_line)
{
    struct rig rig;
    char *out;
    char *err;

    memset(&rig, 0, sizeof(rig));
    rig_make_dir(&rig);
    snprintf(rig.socket, sizeof(rig.socket), "%s/toxlab.sock", rig.dir);
    snprintf(rig.database, sizeof(rig.database), "%s/toxlab.db", rig.dir);
    snprintf(rig.pty, sizeof(rig.pty), "/dev/null");
    write_config(&rig, "response_timout_ms = 5\n");
    char *argv[] = {(char *)harness_program("TOXLABD"), "-c", rig_file(&rig, "toxlab.conf"), NULL};
    ck_assert_int_eq(harness_run(argv, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "toxlab.conf:17: unknown key 'response_timout_ms' in "
                         "[instrument.saliva-1]");
    free(out);
    free(err);
    char override[600];
    snprintf(override, sizeof(override), "daemon.lab_id=lower-case");
    char *argv2[] = {(char *)harness_program("TOXLABD"),
                     "-c",
                     rig_file(&rig, "toxlab.conf"),
                     "-o",
                     override,
                     NULL};
    write_config(&rig, NULL);
    ck_assert_int_eq(harness_run(argv2, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "-o daemon.lab_id=lower-case: invalid value");
    free(out);
    free(err);
}
END_TEST

START_TEST(socket_path_never_removes_files)
{
    struct rig rig;
    char *out;
    char *err;
    char override[700];

    memset(&rig, 0, sizeof(rig));
    rig_make_dir(&rig);
    snprintf(rig.database, sizeof(rig.database), "%s/toxlab.db", rig.dir);
    snprintf(rig.socket, sizeof(rig.socket), "%s/keep.txt", rig.dir);
    snprintf(rig.pty, sizeof(rig.pty), "/dev/null");
    harness_write_file(rig.socket, "precious\n");
    write_config(&rig, NULL);
    char *argv[] = {(char *)harness_program("TOXLABD"), "-c", rig_file(&rig, "toxlab.conf"), NULL};
    ck_assert_int_eq(harness_run(argv, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "keep.txt exists and is not a socket");
    free(out);
    free(err);
    ck_assert_int_eq(access(rig.socket, F_OK), 0);

    /* The database path itself, named as the socket, is never replaced either. */
    snprintf(override, sizeof(override), "daemon.socket=%s", rig.database);
    harness_write_file(rig.database, "not a database yet\n");
    char *argv2[] = {(char *)harness_program("TOXLABD"),
                     "-c",
                     rig_file(&rig, "toxlab.conf"),
                     "-o",
                     override,
                     NULL};
    ck_assert_int_ne(harness_run(argv2, NULL, CLIENT_MS, &out, &err), 0);
    free(out);
    free(err);
    ck_assert_int_eq(access(rig.database, F_OK), 0);
}
END_TEST

/* Socket activation: systemd-socket-activate owns the listening socket and
 * starts the daemon on the first connection, passing the socket as fd 3. */
START_TEST(socket_activation_serves)
{
    struct rig rig;
    struct child activator;
    char notify_path[600];
    char env_notify[700];
    char *out;
    char *err;

    if (access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
        fprintf(stderr, "systemd-socket-activate not found: socket activation not tested\n");
        return;
    }
    rig_start(&rig, fast_phases, NULL);
    child_stop(&rig.daemon, SIGTERM, EVENT_MS);
    rig.daemon_running = false;
    snprintf(notify_path, sizeof(notify_path), "%s/notify-activated", rig.dir);
    snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify_path);
    int notify_fd = notify_open(notify_path);
    char config_path[600];
    char log_path[600];
    snprintf(config_path, sizeof(config_path), "%s/toxlab.conf", rig.dir);
    snprintf(log_path, sizeof(log_path), "%s/activated.log", rig.dir);
    char *argv[] = {"/usr/bin/systemd-socket-activate", "-l", rig.socket,  "-E", env_notify,
                    (char *)harness_program("TOXLABD"), "-c", config_path, NULL};
    child_spawn(&activator, argv, NULL, log_path, false, true);
    ck_assert(harness_wait_file(activator.log_path, "Listening on", EVENT_MS));

    /* The first connection starts the daemon, which serves it on the passed socket. */
    ck_assert_int_eq(client(&rig, &out, &err, "instruments", NULL), 0);
    assert_contains(out, "saliva-1");
    free(out);
    free(err);
    ck_assert(notify_wait_ready(notify_fd, EVENT_MS));
    ck_assert(notify_wait_text(notify_fd, "STATUS=1 of 1 analyzers online: saliva-1", EVENT_MS));
    close(notify_fd);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL);
    int status = child_stop(&activator, SIGTERM, EVENT_MS);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    child_stop(&rig.sim, SIGTERM, EVENT_MS);
}
END_TEST

/* The analyzer is unplugged mid-test and another one appears under the
 * same link: inotify brings it online long before the 60-second retry, and
 * the test it does not know is interrupted. */
START_TEST(hotplug_link_reappears)
{
    struct rig rig;
    struct child second;
    char link_path[600];
    char line[256];
    char test_id[64];
    char sql[256];
    char text[256];

    rig_prepare(&rig);
    snprintf(link_path, sizeof(link_path), "%s/dev/saliva", rig.dir);
    ck_assert_int_eq(mkdir(rig_file(&rig, "dev"), 0755), 0);
    rig_start_linked_sim(&rig, &rig.sim, fast_phases, link_path);
    write_config(&rig, "retry_ms = 60000\nretry_max_ms = 60000\n");
    start_daemon(&rig);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));

    child_stop(&rig.sim, SIGTERM, EVENT_MS);
    ck_assert(harness_wait_file(rig.daemon.log_path, "saliva-1: offline", EVENT_MS));
    rig_start_linked_sim(&rig, &second, fast_phases, link_path);
    ck_assert(harness_wait_file(rig.daemon.log_path, "appeared; connecting", EVENT_MS));

    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    char *out;
    char *err;
    ck_assert_int_ne(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "interrupted");
    /* Online again without a restart: a new test runs on the new analyzer. */
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    rig.sim = second;
    rig_stop(&rig);
}
END_TEST

/* SIGHUP reads the configuration and the threshold set again: keys that can
 * change while running take effect, the others are logged, and a file that
 * fails validation leaves everything in force. */
START_TEST(sighup_reloads_configuration)
{
    struct rig rig;
    char thresholds[600];
    char text[512];
    char *out;
    char *err;
    char scenario[512];

    if (getenv("TOXLAB_INSTALLED_CONFIG") != NULL) {
        /* The installed configuration is not the rig's file this test rewrites. */
        return;
    }
    snprintf(scenario, sizeof(scenario), "%s[default]\nmethamphetamine = 40\n", fast_phases);
    rig_start(&rig, scenario, NULL);

    /* A new threshold set with a methamphetamine cutoff of 35 ng/mL, and a new socket path. */
    snprintf(thresholds, sizeof(thresholds), "%s/local.tsv", rig.dir);
    harness_write_file(thresholds, "%label\tlocal kit\noral-fluid\tscreen\tmethamphetamine\t35\t"
                                   "ng/mL\t2023-06-01\tkit instructions\n");
    char extra[1400];
    snprintf(extra, sizeof(extra), "thresholds = %s\nsocket = %s/other.sock\n", thresholds,
             rig.dir);
    char config[8192];
    FILE *file = fopen(rig_file(&rig, "toxlab.conf"), "r");
    size_t len = fread(config, 1, sizeof(config) - 1, file);
    fclose(file);
    config[len] = '\0';
    char *daemon_end = strstr(config, "\n\n[instrument.");
    ck_assert_ptr_nonnull(daemon_end);
    char rewritten[9000];
    snprintf(rewritten, sizeof(rewritten), "%.*s\n%s%s", (int)(daemon_end - config), config, extra,
             daemon_end);
    harness_write_file(rig_file(&rig, "toxlab.conf"), rewritten);
    kill(rig.daemon.pid, SIGHUP);
    ck_assert(harness_wait_file(rig.daemon.log_path, "threshold set 'local kit'", EVENT_MS));
    ck_assert(harness_wait_file(rig.daemon.log_path, "restart toxlabd to apply it", EVENT_MS));

    register_subject(&rig, SUBJECT_A, "OF-A1");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(out, "presumptive");
    free(out);
    free(err);
    db_text(&rig,
            "SELECT cutoff_text || ' ' || threshold_source FROM result_analytes WHERE"
            " analyte = 'methamphetamine'",
            text, sizeof(text));
    ck_assert_str_eq(text, "35 kit instructions");

    /* A file with an unknown key is rejected, and the set in force stays. */
    strcat(rewritten, "no_such_key = 1\n");
    harness_write_file(rig_file(&rig, "toxlab.conf"), rewritten);
    kill(rig.daemon.pid, SIGHUP);
    ck_assert(harness_wait_file(rig.daemon.log_path, "the configuration was rejected", EVENT_MS));
    rig_stop(&rig);
}
END_TEST

/* An abort that does not reach a silent analyzer is sent again once it
 * replies, so the analyzer is free for the next test. */
START_TEST(abort_while_silent_repeated)
{
    struct rig rig;
    char line[256];
    char test_id[64];

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));
    child_send(&rig.sim, "mute");
    ck_assert(child_wait_line(&rig.sim, "mute", EVENT_MS, line, sizeof(line)));
    client_ok(&rig, "test", "abort", test_id, NULL);
    ck_assert(harness_wait_file(rig.daemon.log_path, "writing control block", EVENT_MS));
    child_send(&rig.sim, "unmute");
    ck_assert(child_wait_line(&rig.sim, "abort test=1", EVENT_MS, line, sizeof(line)));
    child_send(&rig.sim, "release");
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    rig_stop(&rig);
}
END_TEST

/* A second daemon on the same database stops at start-up. */
START_TEST(second_daemon_on_database_refused)
{
    struct rig rig;
    char *out;
    char *err;
    char config_path[600];
    char other_socket[700];

    rig_start(&rig, fast_phases, NULL);
    snprintf(config_path, sizeof(config_path), "%s/toxlab.conf", rig.dir);
    snprintf(other_socket, sizeof(other_socket), "daemon.socket=%s/other.sock", rig.dir);
    char *argv[] = {
        (char *)harness_program("TOXLABD"),     "-c", config_path, "-o", other_socket, "-o",
        "instrument.saliva-1.device=/dev/null", NULL};
    ck_assert_int_eq(harness_run(argv, NULL, CLIENT_MS, &out, &err), 1);
    assert_contains(err, "another toxlabd uses this database");
    free(out);
    free(err);
    client_ok(&rig, "instruments", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(abort_running_test)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char *out;
    char *err;

    rig_start(&rig, "[phases]\ncartridge_ms = 20\ncollecting_ms = 40\nanalysing_ms = 60000\n",
              NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));
    ck_assert_int_eq(client(&rig, &out, &err, "test", "abort", test_id, NULL), 0);
    free(out);
    free(err);
    ck_assert(child_wait_line(&rig.sim, "abort", EVENT_MS, line, sizeof(line)));
    char sql[256];
    char text[256];
    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "aborted");
    /* The instrument is free again. */
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1",
              "--no-wait", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(restart_resumes_held_test)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char sql[256];
    char text[256];
    char *out;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));

    child_stop(&rig.daemon, SIGKILL, EVENT_MS);
    rig.daemon_running = false;
    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "running");

    start_daemon(&rig);
    ck_assert(
        harness_wait_file(rig.daemon.log_path, "resumed: the analyzer still holds it", EVENT_MS));
    child_send(&rig.sim, "release");
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    assert_contains(out, "completed");
    free(out);
    free(err);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "completed");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    /* The restart decided the stop with the test interrupted; the result adds a decision. */
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM decisions"), 2);
    db_text(&rig, "SELECT actions FROM decisions ORDER BY created DESC, rowid DESC LIMIT 1", text,
            sizeof(text));
    ck_assert_str_eq(text, "[]");
    rig_stop(&rig);
}
END_TEST

START_TEST(result_kept_while_database_locked)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char *out;
    char *err;
    sqlite3 *db;

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));

    /* Another process holds the write lock when the result arrives. */
    ck_assert_int_eq(sqlite3_open(rig.database, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    child_send(&rig.sim, "release");
    ck_assert(harness_wait_file(rig.daemon.log_path, "storing the result failed", EVENT_MS));
    ck_assert_msg(!child_wait_line(&rig.sim, "ack test=1", 0, line, sizeof(line)),
                  "the analyzer was told to forget a result that did not commit");
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* Once the lock is gone the result is read again, stored and acknowledged. */
    ck_assert_int_eq(client(&rig, &out, &err, "test", "watch", test_id, NULL), 0);
    free(out);
    free(err);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert(child_wait_line(&rig.sim, "ack test=1", EVENT_MS, line, sizeof(line)));
    rig_stop(&rig);
}
END_TEST

static Suite *e2e_suite(void)
{
    Suite *suite = suite_create("e2e");
    TCase *flow = tcase_create("flow");
    TCase *faults = tcase_create("faults");

    tcase_add_test(flow, screen_negative_then_presumptive);
    tcase_add_test(flow, acknowledge_follows_commit);
    tcase_add_test(flow, lost_acknowledgement_repeated);
    tcase_add_test(flow, abort_running_test);
    tcase_add_test(flow, restart_resumes_held_test);
    tcase_add_test(flow, socket_activation_serves);
    tcase_add_test(flow, hotplug_link_reappears);
    tcase_add_test(flow, sighup_reloads_configuration);
    tcase_add_test(flow, abort_while_silent_repeated);
    tcase_add_test(faults, second_daemon_on_database_refused);
    tcase_add_test(flow, result_kept_while_database_locked);
    tcase_add_test(faults, unknown_instrument_rejected);
    tcase_add_test(faults, malformed_subject_rejected);
    tcase_add_test(faults, silent_analyzer_interrupted);
    tcase_add_test(faults, modbus_exception_fails_test);
    tcase_add_test(faults, wrong_echo_rejected);
    tcase_add_test(faults, device_error_fails_test);
    tcase_add_test(faults, control_line_failure_invalid);
    tcase_add_test(faults, malformed_requests_answered);
    tcase_add_test(faults, bad_config_names_line);
    tcase_add_test(faults, socket_path_never_removes_files);
    tcase_set_timeout(flow, HARNESS_CASE_TIMEOUT);
    tcase_set_timeout(faults, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, flow);
    suite_add_tcase(suite, faults);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(e2e_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
