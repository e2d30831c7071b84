/* Integration tests of the hair analyzer: toxlab-sim hair sends ASTM
 * messages over a real pty to a real toxlabd with a real SQLite file, and
 * the toxlab client registers, links and releases over the socket. Each
 * test waits on sim events and daemon log lines with deadlines. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* E1381 timers scaled down so that the timer faults take a fraction of a
 * second: the receiver gives up after 300 ms of silence. */
#define FAST_TIMERS                                                                                \
    "astm_frame_timeout_ms = 300\nastm_reply_timeout_ms = 2000\n"                                  \
    "astm_contention_retry_ms = 300\nastm_interrupt_retry_ms = 200\nastm_busy_retry_ms = 200\n"

#define SIM_DEVICE                                                                                 \
    "[device]\nreply_timeout_ms = 3000\nsilence_ms = 800\ncontention_retry_ms = 100\n"

#define BARCODE "HAIR-0001"

struct hair_rig {
    struct rig rig;
    struct child sim;
    char pty[128];
    const char *roles; /* [daemon] socket_group and [roles] lines, or NULL for the test's gid */
};

static void write_hair_config(struct hair_rig *h, const char *extra)
{
    char text[4096];
    char thresholds[512];
    char rules[512];
    char roles[256];
    unsigned gid = (unsigned)getgid();

    snprintf(thresholds, sizeof(thresholds), "%s/etc/thresholds.tsv",
             harness_program("TOXLAB_SOURCE_DIR"));
    snprintf(rules, sizeof(rules), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    snprintf(roles, sizeof(roles),
             "socket_group = %u\n\n[roles]\nofficer = %u\nanalyst = %u\nclerk = %u\n", gid, gid,
             gid, gid);
    snprintf(text, sizeof(text),
             "[daemon]\nlab_id = TEST1\ndatabase = %s\nsocket = %s\nthresholds = %s\n"
             "rules = %s\nbusy_timeout_ms = 50\n%s\n[instrument.hair-1]\ndriver = hair\n"
             "device = %s\nmethod = lc-ms/ms\n"
             "analytes = MAMP=methamphetamine, AMP=amphetamine\nretry_ms = 50\n%s%s",
             h->rig.database, h->rig.socket, thresholds, rules, h->roles ? h->roles : roles, h->pty,
             FAST_TIMERS, extra ? extra : "");
    harness_write_file(rig_file(&h->rig, "toxlab.conf"), text);
}

/* Starts the hair sim with a scenario and writes toxlabd's configuration. */
static void hair_start_sim(struct hair_rig *h, const char *scenario, const char *extra_config)
{
    char line[256];
    char scenario_path[600];
    char log_path[600];

    memset(h, 0, sizeof(*h));
    rig_prepare(&h->rig);
    snprintf(scenario_path, sizeof(scenario_path), "%s/hair.ini", h->rig.dir);
    snprintf(log_path, sizeof(log_path), "%s/hair-sim.log", h->rig.dir);
    harness_write_file(scenario_path, scenario);
    char *argv[] = {(char *)harness_program("TOXLAB_SIM"), "hair", scenario_path, NULL};
    child_spawn(&h->sim, argv, NULL, log_path, true, true);
    ck_assert_msg(child_wait_line(&h->sim, "pty ", EVENT_MS, line, sizeof(line)),
                  "the hair sim printed no pty line");
    snprintf(h->pty, sizeof(h->pty), "%.*s", (int)sizeof(h->pty) - 1, line + 4);
    ck_assert(child_wait_line(&h->sim, "ready", EVENT_MS, line, sizeof(line)));
    write_hair_config(h, extra_config);
}

/* Waits for hair-1 to come online and registers the subject and its hair
 * specimen. */
static void hair_register(struct hair_rig *h)
{
    ck_assert_msg(harness_wait_file(h->rig.daemon.log_path, "hair-1: online", EVENT_MS),
                  "hair-1 did not come online");
    client_ok(&h->rig, "subject", "add", SUBJECT_A, NULL);
    client_ok(&h->rig, "specimen", "add", "--subject", SUBJECT_A, "--barcode", BARCODE, "--matrix",
              "hair", "--segment-length", "3", "--segment-position", "proximal 0-3 cm", NULL);
}

/* Starts the hair sim with a scenario and toxlabd, and registers the
 * subject and its hair specimen. */
static void hair_start(struct hair_rig *h, const char *scenario, const char *extra_config)
{
    hair_start_sim(h, scenario, extra_config);
    rig_launch_daemon(&h->rig);
    hair_register(h);
}

static void hair_stop(struct hair_rig *h)
{
    rig_stop(&h->rig);
    child_stop(&h->sim, SIGTERM, EVENT_MS);
}

static void wait_event(struct hair_rig *h, const char *prefix, char *line, size_t size)
{
    char buffer[256];

    if (line == NULL) {
        line = buffer;
        size = sizeof(buffer);
    }
    if (!child_wait_line(&h->sim, prefix, EVENT_MS, line, size)) {
        harness_dump_file(h->sim.log_path);
        harness_dump_file(h->rig.daemon.log_path);
        ck_abort_msg("no hair sim event starting with '%s'", prefix);
    }
}

static void wait_log(struct hair_rig *h, const char *text)
{
    if (!harness_wait_file(h->rig.daemon.log_path, text, EVENT_MS)) {
        harness_dump_file(h->rig.daemon.log_path);
        ck_abort_msg("toxlabd logged no '%s' within %d ms", text, EVENT_MS);
    }
}

/* Copies the ID of the newest stored result. */
static void newest_result(struct hair_rig *h, char *id, size_t size)
{
    db_text(&h->rig, "SELECT id FROM results ORDER BY rowid DESC LIMIT 1", id, size);
    ck_assert_msg(id[0] != '\0', "no result stored");
}

static char *client_output(struct hair_rig *h, int expected_status, ...)
{
    char *argv[16] = {NULL};
    int argc = 0;
    va_list args;
    char *out;
    char *err;

    va_start(args, expected_status);
    for (char *arg = va_arg(args, char *); arg != NULL && argc < 15; arg = va_arg(args, char *)) {
        argv[argc++] = arg;
    }
    va_end(args);
    int status = client(&h->rig, &out, &err, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5],
                        argv[6], argv[7], NULL);
    ck_assert_msg(status == expected_status, "toxlab %s %s: exit %d, expected %d: %s%s", argv[0],
                  argv[1], status, expected_status, out, err);
    size_t out_len = strlen(out);
    out = realloc(out, out_len + strlen(err) + 1);
    strcpy(out + out_len, err);
    free(err);
    return out;
}

static const char one_message[] = SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\n"
                                             "MAMP = 1.250\nAMP = 0.080\nXYZ = 3\n";

/* The whole path: upload, link by barcode, review, release, licence. */
START_TEST(hair_released_confirmation)
{
    struct hair_rig h;
    char id[64];

    hair_start(&h, one_message, NULL);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);

    newest_result(&h, id, sizeof(id));
    /* R.13 20261204101200 in the daemon's zone, Asia/Shanghai (UTC+8). */
    char reported[64];
    db_text(&h.rig, "SELECT reported FROM results", reported, sizeof(reported));
    ck_assert_str_eq(reported, "2026-12-04T02:12:00.000Z");
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results WHERE subject_id IS NOT NULL"
                                      " AND matrix = 'hair' AND tier = 'confirm'"),
                     1);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'methamphetamine' AND outcome = 'positive'"),
                     1);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'amphetamine' AND outcome = 'negative'"),
                     1);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'XYZ' AND outcome = 'invalid'"
                                      " AND reason = 'analyte code not mapped'"),
                     1);

    char *shown = client_output(&h, 0, "specimen", "show", BARCODE, NULL);
    assert_contains(shown, "segment   3 cm, proximal 0-3 cm");
    assert_contains(shown, "awaiting review");
    free(shown);

    /* Not evidence before the release: the licence check allows. */
    char *before =
        client_output(&h, 0, "licence", "check", SUBJECT_A, "--for", "application", NULL);
    ck_assert_msg(strstr(before, "L01") == NULL, "L01 fired before release:\n%s", before);
    free(before);

    char *released = client_output(&h, 0, "result", "release", id, NULL);
    assert_contains(released, "released by uid");
    free(released);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_releases"), 1);
    char *again = client_output(&h, 1, "result", "release", id, NULL);
    assert_contains(again, "already released");
    free(again);

    char *after = client_output(&h, 0, "licence", "check", SUBJECT_A, "--for", "application", NULL);
    assert_contains(after, "decision: refuse");
    assert_contains(after, "L01 refuse");
    free(after);

    char *history = client_output(&h, 0, "subject", "show", SUBJECT_A, NULL);
    assert_contains(history, "laboratory results");
    assert_contains(history, id);
    free(history);

    /* The hair analyzer uploads on its own: it takes no test start. */
    char *start = client_output(&h, 1, "test", "start", "--subject", SUBJECT_A, "--instrument",
                                "hair-1", NULL);
    assert_contains(start, "uploads laboratory results on its own and runs no tests");
    free(start);
    hair_stop(&h);
}
END_TEST

/* An unknown barcode and a P.3 of another subject are stored unlinked and
 * count for nobody until an analyst links them with a reason. */
START_TEST(hair_unlinked_then_linked)
{
    static const char scenario[] =
        SIM_DEVICE "[message.1]\nbarcode = HAIR-UNKNOWN\nMAMP = 2\n"
                   "[message.2]\nbarcode = " BARCODE "\nsubject = TEST1-SOMEONE-ELSE\nMAMP = 2\n";
    struct hair_rig h;
    char id[64];

    hair_start(&h, scenario, NULL);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=2", NULL, 0);

    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results WHERE subject_id IS NULL"), 2);
    char *listed = client_output(&h, 0, "result", "unlinked", NULL);
    assert_contains(listed, "unlinked: unknown barcode");
    assert_contains(listed, "unlinked: P.3 does not match the subject of the barcode");
    free(listed);

    newest_result(&h, id, sizeof(id));
    char *refused = client_output(&h, 1, "result", "release", id, NULL);
    assert_contains(refused, "is unlinked");
    free(refused);

    client_ok(&h.rig, "result", "link", id, "--barcode", BARCODE, "--reason",
              "P.3 typed wrong on the analyzer, checked against the chain-of-custody form", NULL);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_links"), 1);
    client_ok(&h.rig, "result", "release", id, NULL);
    char *after = client_output(&h, 0, "licence", "check", SUBJECT_A, "--for", "application", NULL);
    assert_contains(after, "L01 refuse");
    free(after);
    hair_stop(&h);
}
END_TEST

/* A correction supersedes the final result; a preliminary is never released. */
START_TEST(hair_correction_and_preliminary)
{
    static const char scenario[] = SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\nMAMP = 2\n"
                                              "[message.2]\nbarcode = " BARCODE "\nstatus = C\n"
                                              "MAMP = 0.1\n"
                                              "[message.3]\nbarcode = " BARCODE "\nstatus = P\n"
                                              "MAMP = 5\n";
    struct hair_rig h;
    char first[64];
    char supersedes[64];
    char id[64];

    /* An analyzer clock in UTC: R.13 is stored as sent. */
    hair_start(&h, scenario, "timezone = UTC\n");
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);
    newest_result(&h, first, sizeof(first));
    char reported[64];
    db_text(&h.rig, "SELECT reported FROM results", reported, sizeof(reported));
    ck_assert_str_eq(reported, "2026-12-04T10:12:00.000Z");
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=2", NULL, 0);
    db_text(&h.rig, "SELECT supersedes FROM results WHERE status = 'correction'", supersedes,
            sizeof(supersedes));
    ck_assert_str_eq(supersedes, first);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results"), 2);

    child_send(&h.sim, "send");
    wait_event(&h, "ack message=3", NULL, 0);
    newest_result(&h, id, sizeof(id));
    char *refused = client_output(&h, 1, "result", "release", id, NULL);
    assert_contains(refused, "preliminary");
    free(refused);
    hair_stop(&h);
}
END_TEST

/* A message with two specimens, each after its own P and O records,
 * links each result to its own barcode's subject. */
START_TEST(hair_two_specimens_one_message)
{
    static const char scenario[] = SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\n"
                                              "second_barcode = HAIR-0002\nMAMP = 1.250\n";
    struct hair_rig h;
    char first[64];
    char second[64];

    hair_start(&h, scenario, NULL);
    client_ok(&h.rig, "subject", "add", SUBJECT_B, NULL);
    client_ok(&h.rig, "specimen", "add", "--subject", SUBJECT_B, "--barcode", "HAIR-0002",
              "--matrix", "hair", NULL);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);

    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results"), 2);
    db_text(&h.rig,
            "SELECT s.number FROM results r JOIN subjects s ON s.id = r.subject_id"
            " WHERE r.barcode = '" BARCODE "'",
            first, sizeof(first));
    ck_assert_str_eq(first, SUBJECT_A);
    db_text(&h.rig,
            "SELECT s.number FROM results r JOIN subjects s ON s.id = r.subject_id"
            " WHERE r.barcode = 'HAIR-0002'",
            second, sizeof(second));
    ck_assert_str_eq(second, SUBJECT_B);
    hair_stop(&h);
}
END_TEST

/* Values in pg/mg are judged against the ng/mg cutoff exactly, and a
 * censored value keeps its flag. */
START_TEST(hair_pg_per_mg_and_censored)
{
    static const char scenario[] = SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\n"
                                              "unit = pg/mg\nMAMP = 200\nAMP = <199.9\n";
    struct hair_rig h;

    hair_start(&h, scenario, NULL);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'methamphetamine' AND unit = 'pg/mg'"
                                      " AND outcome = 'positive'"),
                     1);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'amphetamine' AND under_range = 1"
                                      " AND outcome = 'negative'"),
                     1);
    hair_stop(&h);
}
END_TEST

/* Sends message 1 with a fault and checks that it is stored exactly once. */
static void run_fault(const char *fault, const char *event, const char *extra_config,
                      struct hair_rig *h)
{
    char scenario[512];

    snprintf(scenario, sizeof(scenario),
             SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\nMAMP = 1.250\nAMP = 0.080\n"
                        "fault = %s\n",
             fault);
    hair_start(h, scenario, extra_config);
    child_send(&h->sim, "send");
    wait_event(h, event, NULL, 0);
    wait_event(h, "ack message=1", NULL, 0);
}

static void assert_stored_once(struct hair_rig *h)
{
    ck_assert_int_eq(db_count(&h->rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&h->rig, "SELECT count(*) FROM result_analytes WHERE"
                                       " analyte = 'methamphetamine' AND value_text = '1.250'"
                                       " AND outcome = 'positive'"),
                     1);
}

START_TEST(fault_bad_checksum)
{
    struct hair_rig h;

    run_fault("checksum", "nak message=1 number=1", NULL, &h);
    wait_log(&h, "frame rejected with NAK: checksum mismatch");
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

START_TEST(fault_wrong_frame_number)
{
    struct hair_rig h;

    run_fault("frame-number", "nak message=1 number=1", NULL, &h);
    wait_log(&h, "frame rejected with NAK: unexpected frame number");
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

/* Records split over intermediate frames: more than two frames go out. */
START_TEST(fault_record_split)
{
    struct hair_rig h;

    run_fault("split", "frame message=1 number=3", NULL, &h);
    assert_stored_once(&h);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_analytes WHERE"
                                      " analyte = 'amphetamine' AND value_text = '0.080'"),
                     1);
    hair_stop(&h);
}
END_TEST

START_TEST(fault_noise_between_frames)
{
    struct hair_rig h;

    run_fault("noise", "fault message=1 kind=noise", NULL, &h);
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

/* The sim stops after the first frame for longer than the receiver timer:
 * toxlab drops the partial message, and stores it when it comes again. */
START_TEST(fault_silence_past_timer)
{
    struct hair_rig h;

    run_fault("silence", "silence message=1", NULL, &h);
    wait_log(&h, "link session ended (receive timeout) in the middle of a message");
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

START_TEST(fault_duplicate_message)
{
    struct hair_rig h;

    run_fault("duplicate", "ack message=1", NULL, &h);
    wait_event(&h, "fault message=1 kind=duplicate", NULL, 0);
    wait_log(&h, "was stored before; acknowledged again");
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

/* Checks the reply to a query: the order names the subject and the codes. */
static void check_order(struct hair_rig *h)
{
    char line[256];
    char subject[64];
    char expected[200];

    wait_event(h, "order ", line, sizeof(line));
    db_text(&h->rig, "SELECT id FROM subjects", subject, sizeof(subject));
    snprintf(expected, sizeof(expected), "order barcode=%s subject=%s codes=MAMP,AMP", BARCODE,
             subject);
    ck_assert_str_eq(line, expected);
}

static void run_query_fault(const char *fault, const char *event, const char *extra,
                            struct hair_rig *h)
{
    char scenario[512];

    snprintf(scenario, sizeof(scenario),
             SIM_DEVICE "[message.1]\nbarcode = " BARCODE "\nquery = yes\nMAMP = 1.250\n"
                        "AMP = 0.080\nfault = %s\n",
             fault);
    hair_start(h, scenario, extra);
    child_send(&h->sim, "send");
    wait_event(h, "queried message=1", NULL, 0);
    wait_event(h, event, NULL, 0);
}

/* Both ends send ENQ: toxlab, the host, backs off and receives first. */
START_TEST(fault_contention)
{
    struct hair_rig h;

    run_query_fault("contention", "contention message=1", NULL, &h);
    wait_event(&h, "ack message=1", NULL, 0);
    check_order(&h);
    wait_log(&h, "sending to the analyzer: contention");
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

/* The sim answers the first frame of toxlab's answer with EOT: toxlab ends
 * its link session and sends the whole answer again. */
START_TEST(fault_receiver_interrupt)
{
    struct hair_rig h;

    run_query_fault("interrupt", "interrupt", "astm_send_frame_text = 16\n", &h);
    wait_log(&h, "sending to the analyzer: interrupted");
    check_order(&h);
    wait_event(&h, "ack message=1", NULL, 0);
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

START_TEST(query_unknown_barcode)
{
    static const char scenario[] = SIM_DEVICE "[message.1]\nbarcode = HAIR-NOBODY\nquery = yes\n"
                                              "MAMP = 1\n";
    struct hair_rig h;

    hair_start(&h, scenario, NULL);
    child_send(&h.sim, "send");
    wait_event(&h, "queried message=1", NULL, 0);
    wait_event(&h, "no-order barcode=HAIR-NOBODY", NULL, 0);
    wait_event(&h, "ack message=1", NULL, 0);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results WHERE subject_id IS NULL"), 1);
    hair_stop(&h);
}
END_TEST

/* A port that another process has locked is "port busy" in the log, and
 * the line comes online once the lock goes. */
START_TEST(locked_port_busy_then_online)
{
    struct hair_rig h;
    char text[256];

    hair_start_sim(&h, one_message, NULL);
    int lock = open(h.pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    ck_assert_int_ge(lock, 0);
    ck_assert_int_eq(flock(lock, LOCK_EX | LOCK_NB), 0);
    rig_launch_daemon(&h.rig);
    snprintf(text, sizeof(text), "port busy: another process holds the lock on %s", h.pty);
    wait_log(&h, text);
    close(lock);
    hair_register(&h);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results"), 1);
    hair_stop(&h);
}
END_TEST

/* A message that could not be stored is not acknowledged, so the analyzer
 * keeps it. Sent again once the database is free, it is stored once. */
START_TEST(unstored_message_not_acknowledged)
{
    static const char scenario[] = "[device]\nreply_timeout_ms = 500\n[message.1]\n"
                                   "barcode = " BARCODE "\nMAMP = 1.250\nAMP = 0.080\n";
    struct hair_rig h;
    sqlite3 *db;

    hair_start(&h, scenario, NULL);
    ck_assert_int_eq(sqlite3_open(h.rig.database, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    child_send(&h.sim, "send 1");
    wait_log(&h, "storing failed");
    wait_event(&h, "failed message=1 reason=no-reply", NULL, 0);
    ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results"), 0);

    child_send(&h.sim, "send 1");
    wait_event(&h, "ack message=1", NULL, 0);
    assert_stored_once(&h);
    hair_stop(&h);
}
END_TEST

/* A message the analyzer sends again after a restart of toxlabd (its ACK
 * lost) is acknowledged again and not stored twice. */
START_TEST(resend_after_restart)
{
    struct hair_rig h;

    hair_start(&h, one_message, NULL);
    child_send(&h.sim, "send 1");
    wait_event(&h, "ack message=1", NULL, 0);
    int status = child_stop(&h.rig.daemon, SIGTERM, EVENT_MS);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rig_launch_daemon(&h.rig);
    wait_log(&h, "hair-1: online");
    child_send(&h.sim, "send 1");
    wait_event(&h, "ack message=1", NULL, 0);
    wait_log(&h, "was stored before; acknowledged again");
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM results"), 1);
    hair_stop(&h);
}
END_TEST

/* Runs the client as uid with the given groups (the first is the primary
 * one) and returns its exit status; its output goes to the rig's folder. */
static int client_as(struct hair_rig *h, uid_t uid, const gid_t *groups, size_t count,
                     const char *result_id)
{
    char output[600];

    snprintf(output, sizeof(output), "%s/client-as-%u.log", h->rig.dir,
             (unsigned)groups[count - 1]);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            setgroups(count, groups) != 0 || setgid(groups[0]) != 0 || setuid(uid) != 0) {
            _exit(125);
        }
        char *argv[] = {(char *)harness_program("TOXLAB"),
                        "-s",
                        h->rig.socket,
                        "result",
                        "release",
                        (char *)result_id,
                        NULL};
        execv(argv[0], argv);
        _exit(126);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Only an analyst may release a laboratory result: a peer that holds only
 * the clerk role is rejected, and the same peer with the analyst's group
 * added succeeds. */
START_TEST(release_needs_analyst)
{
    static const char roles[] = "socket_group = 4242\n\n[roles]\nclerk = 4242\n"
                                "analyst = 4243\nofficer = 0\n";
    static const gid_t clerk[] = {4242};
    static const gid_t analyst[] = {4242, 4243};
    struct hair_rig h;
    char id[64];

    if (geteuid() != 0) {
        /* NOTE: changing to another uid and groups needs root, so as another
         * user this case checks nothing. */
        return;
    }
    hair_start_sim(&h, one_message, NULL);
    h.roles = roles;
    write_hair_config(&h, NULL);
    ck_assert_int_eq(chmod(h.rig.dir, 0711), 0);
    rig_launch_daemon(&h.rig);
    hair_register(&h);
    child_send(&h.sim, "send");
    wait_event(&h, "ack message=1", NULL, 0);
    newest_result(&h, id, sizeof(id));

    ck_assert_int_ne(client_as(&h, 65534, clerk, 1, id), 0);
    wait_log(&h, "result.release rejected: roles clerk");
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_releases"), 0);
    ck_assert_int_eq(client_as(&h, 65534, analyst, 2, id), 0);
    ck_assert_int_eq(db_count(&h.rig, "SELECT count(*) FROM result_releases"), 1);
    hair_stop(&h);
}
END_TEST

static Suite *hair_suite(void)
{
    Suite *suite = suite_create("hair");
    TCase *flow = tcase_create("flow");
    TCase *faults = tcase_create("faults");

    tcase_add_test(flow, hair_released_confirmation);
    tcase_add_test(flow, hair_unlinked_then_linked);
    tcase_add_test(flow, hair_correction_and_preliminary);
    tcase_add_test(flow, query_unknown_barcode);
    tcase_add_test(flow, hair_pg_per_mg_and_censored);
    tcase_add_test(flow, hair_two_specimens_one_message);
    tcase_add_test(flow, release_needs_analyst);
    tcase_add_test(faults, fault_bad_checksum);
    tcase_add_test(faults, fault_wrong_frame_number);
    tcase_add_test(faults, fault_record_split);
    tcase_add_test(faults, fault_noise_between_frames);
    tcase_add_test(faults, fault_silence_past_timer);
    tcase_add_test(faults, fault_duplicate_message);
    tcase_add_test(faults, fault_contention);
    tcase_add_test(faults, fault_receiver_interrupt);
    tcase_add_test(faults, locked_port_busy_then_online);
    tcase_add_test(faults, unstored_message_not_acknowledged);
    tcase_add_test(faults, resend_after_restart);
    tcase_set_timeout(flow, HARNESS_CASE_TIMEOUT);
    tcase_set_timeout(faults, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, flow);
    suite_add_tcase(suite, faults);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(hair_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
