/* Crash tests. A client streams co-tests through both simulators while
 * toxlabd is killed with SIGKILL and restarted again and again. Each kill
 * comes at a seeded point counted in events: the daemon's Nth commit in
 * that run, or a sim's Nth request. Afterwards the database must contain,
 * once each, every record the daemon sent to a client and every result it
 * acknowledged to an analyzer.
 *
 * TOXLAB_CRASH_SEED replays a schedule (the seed is printed either way) and
 * TOXLAB_CRASH_KILLS sets the number of kills (default 20). */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"
#include "protocol/client_proto.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_KILLS 20
#define MAX_IDS 16384
#define ID_SIZE 48
#define MAX_COMMIT_POINT 8
#define MAX_REQUEST_POINT 60
#define RUN_MS 30000

/* A list of IDs seen by one side: the client or an analyzer. */
struct id_list {
    char ids[MAX_IDS][ID_SIZE];
    size_t count;
};

enum { SIM_SALIVA, SIM_BREATH, SIM_COUNT };

/* What one simulator printed so far. */
struct sim_record {
    unsigned requests;
    struct id_list started; /* host test IDs of accepted start commands */
    struct id_list acked;   /* host test IDs whose result the daemon acknowledged */
    struct id_list aborted;
};

/* IDs of the records the daemon sent to the client. */
struct client_record {
    struct id_list results;
    struct id_list tests;
    struct id_list stops;
    struct id_list barcodes;
};

/* The client that streams co-tests over one connection. */
struct workload {
    int fd;
    struct proto_reader reader;
    json_int_t next_id;
    json_int_t specimen_id; /* request IDs still unanswered, 0 for none */
    json_int_t start_id;
    json_int_t instruments_id;
    char barcode[32];
    int stop_waits; /* watched stops that have not ended */
    int test_waits; /* watched tests (of a busy analyzer) that have not ended */
    bool closed;
};

static struct client_record seen;
static struct sim_record sims[SIM_COUNT];
static unsigned barcode_count;

static long long now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void id_add(struct id_list *list, const char *id)
{
    ck_assert_msg(list->count < MAX_IDS, "more than %d IDs", MAX_IDS);
    snprintf(list->ids[list->count++], ID_SIZE, "%s", id);
}

static bool id_has(const struct id_list *list, const char *id)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* Records one event line of a sim: requests, starts, acknowledgements, aborts. */
static void sim_note_line(struct sim_record *record, const char *line)
{
    unsigned number;
    char host[16];

    if (sscanf(line, "request n=%u", &number) == 1) {
        record->requests = number;
    } else if (sscanf(line, "start test=%*u host_id=%15s", host) == 1) {
        id_add(&record->started, host);
    } else if (sscanf(line, "ack test=%*u host_id=%15s", host) == 1) {
        id_add(&record->acked, host);
    } else if (sscanf(line, "abort test=%*u host_id=%15s", host) == 1) {
        id_add(&record->aborted, host);
    }
}

/* Reads every line both sims have printed so far, without waiting. */
static void drain_sims(struct rig *rig)
{
    struct child *children[SIM_COUNT] = {&rig->sim, &rig->breath};
    char line[256];

    for (int i = 0; i < SIM_COUNT; i++) {
        while (child_wait_line(children[i], "", 0, line, sizeof(line))) {
            sim_note_line(&sims[i], line);
        }
    }
}

static void send_request(struct workload *work, json_int_t id, const char *cmd, json_t *args)
{
    json_t *request = json_pack("{sI ss so}", "id", id, "cmd", cmd, "args", args);
    char *line = proto_encode_line(request);
    size_t len = strlen(line);

    json_decref(request);
    /* A daemon killed meanwhile makes send fail; the run is over then. */
    if (send(work->fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        work->closed = true;
    }
    free(line);
}

/* Registers a fresh oral-fluid specimen and starts a co-test on it. */
static void begin_stop(struct workload *work)
{
    snprintf(work->barcode, sizeof(work->barcode), "CRASH-%05u", ++barcode_count);
    work->specimen_id = ++work->next_id;
    send_request(work, work->specimen_id, "specimen.add",
                 json_pack("{ss ss ss}", "subject", SUBJECT_A, "barcode", work->barcode, "matrix",
                           "oral-fluid"));
    work->start_id = ++work->next_id;
    send_request(work, work->start_id, "test.start",
                 json_pack("{ss s[ss] ss sb}", "subject", SUBJECT_A, "instruments", "saliva-1",
                           "breath-1", "specimen", work->barcode, "watch", 1));
}

/* Records the result of a test object when the test completed with one. */
static void note_test(const json_t *test)
{
    const char *state = json_string_value(json_object_get(test, "state"));
    const char *result = json_string_value(json_object_get(json_object_get(test, "result"), "id"));

    if (state != NULL && strcmp(state, "completed") == 0 && result != NULL) {
        if (!id_has(&seen.results, result)) {
            id_add(&seen.results, result);
        }
    }
}

static void note_stop(const json_t *stop)
{
    size_t i;
    json_t *test;

    id_add(&seen.stops, json_string_value(json_object_get(stop, "id")));
    json_array_foreach(json_object_get(stop, "tests"), i, test)
    {
        id_add(&seen.tests, json_string_value(json_object_get(test, "id")));
    }
}

/* Watches the tests that keep the analyzers busy, so that the next stop
 * starts when they have ended. */
static void watch_busy_tests(struct workload *work, const json_t *response)
{
    size_t i;
    json_t *instrument;

    json_array_foreach(json_object_get(response, "instruments"), i, instrument)
    {
        const char *test = json_string_value(json_object_get(instrument, "test"));
        if (test != NULL) {
            send_request(work, ++work->next_id, "test.watch", json_pack("{ss}", "test", test));
            work->test_waits++;
        }
    }
}

static void handle_response(struct workload *work, json_int_t id, const json_t *message,
                            const char *line)
{
    bool ok = json_is_true(json_object_get(message, "ok"));
    const char *code =
        json_string_value(json_object_get(json_object_get(message, "error"), "code"));

    if (id == work->specimen_id) {
        work->specimen_id = 0;
        ck_assert_msg(ok, "specimen.add failed: %s", line);
        id_add(&seen.barcodes, work->barcode);
    } else if (id == work->start_id) {
        work->start_id = 0;
        if (ok) {
            note_stop(json_object_get(message, "stop"));
            work->stop_waits++;
            return;
        }
        /* An analyzer still finishing a test from before the kill, or not
         * yet identified after the restart: wait for it, then retry. */
        ck_assert_msg(code != NULL && (strcmp(code, "instrument-busy") == 0 ||
                                       strcmp(code, "instrument-offline") == 0),
                      "test.start failed: %s", line);
        work->instruments_id = ++work->next_id;
        send_request(work, work->instruments_id, "instruments", json_object());
    } else if (id == work->instruments_id) {
        work->instruments_id = 0;
        watch_busy_tests(work, message);
    } else if (!ok) {
        /* A test.watch on a test that is gone from the analyzer. */
        ck_assert_msg(work->test_waits > 0, "unexpected error: %s", line);
        work->test_waits--;
    }
}

static void handle_line(struct workload *work, const char *line)
{
    json_error_t error;
    json_t *message = json_loads(line, 0, &error);
    const char *event;

    ck_assert_msg(message != NULL, "invalid JSON from toxlabd: %s", line);
    event = json_string_value(json_object_get(message, "event"));
    if (event == NULL) {
        json_t *id = json_object_get(message, "id");
        if (json_is_integer(id)) {
            handle_response(work, json_integer_value(id), message, line);
        }
    } else if (strcmp(event, "test-ended") == 0) {
        note_test(message);
        if (work->stop_waits == 0 && work->test_waits > 0) {
            work->test_waits--;
        }
    } else if (strcmp(event, "stop-ended") == 0) {
        size_t i;
        json_t *test;
        json_array_foreach(json_object_get(json_object_get(message, "stop"), "tests"), i, test)
        {
            note_test(test);
        }
        work->stop_waits--;
    }
    json_decref(message);
}

/* Reads what the daemon sent; with `until_closed`, everything up to the
 * end of the connection (the daemon is dead then). */
static void read_lines(struct workload *work, bool until_closed)
{
    char buffer[8192];
    char *line;

    for (;;) {
        ssize_t got = recv(work->fd, buffer, sizeof(buffer), until_closed ? 0 : MSG_DONTWAIT);
        if (got <= 0) {
            if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                work->closed = true;
            }
            break;
        }
        proto_reader_feed(&work->reader, buffer, (size_t)got);
        while (proto_reader_next(&work->reader, &line) == 1) {
            handle_line(work, line);
            free(line);
        }
    }
}

static void workload_connect(struct workload *work, struct rig *rig)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    memset(work, 0, sizeof(*work));
    work->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(strlen(rig->socket) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, rig->socket, strlen(rig->socket) + 1);
    ck_assert_msg(connect(work->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect %s: %s",
                  rig->socket, strerror(errno));
    proto_reader_init(&work->reader);
}

static bool workload_idle(const struct workload *work)
{
    return work->specimen_id == 0 && work->start_id == 0 && work->instruments_id == 0 &&
           work->stop_waits == 0 && work->test_waits == 0;
}

/* One seeded kill point: the daemon's Nth commit in this run, or the Nth
 * request a sim receives from now on. */
struct kill_point {
    bool at_commit;
    int sim; /* SIM_SALIVA or SIM_BREATH, for a request */
    unsigned count;
};

static struct kill_point choose_kill_point(unsigned *seed)
{
    struct kill_point point = {0};

    point.at_commit = rand_r(seed) % 2 == 0;
    if (point.at_commit) {
        point.count = 1 + (unsigned)rand_r(seed) % MAX_COMMIT_POINT;
    } else {
        point.sim = rand_r(seed) % SIM_COUNT;
        point.count = 1 + (unsigned)rand_r(seed) % MAX_REQUEST_POINT;
    }
    return point;
}

static bool kill_point_reached(struct rig *rig, const struct kill_point *point, unsigned target)
{
    char text[64];

    drain_sims(rig);
    if (!point->at_commit) {
        return sims[point->sim].requests >= target;
    }
    snprintf(text, sizeof(text), "database commit %u\n", point->count);
    return harness_wait_file(rig_file(rig, "toxlabd.log"), text, 0);
}

/* Streams co-tests until the kill point, kills the daemon with SIGKILL,
 * reads what it sent before it died, and starts it again. */
static void crash_once(struct rig *rig, int run, const struct kill_point *point)
{
    struct workload work;
    char old_log[600];
    long long deadline = now_ms() + harness_ms(RUN_MS);

    drain_sims(rig);
    unsigned target = point->at_commit ? point->count : sims[point->sim].requests + point->count;
    workload_connect(&work, rig);
    while (!kill_point_reached(rig, point, target)) {
        ck_assert_msg(!work.closed, "run %d: the daemon closed the connection", run);
        ck_assert_msg(now_ms() < deadline, "run %d: the kill point never came", run);
        if (workload_idle(&work)) {
            begin_stop(&work);
        }
        /* Waits briefly for the daemon, then looks at the kill point again. */
        struct pollfd pfd = {.fd = work.fd, .events = POLLIN};
        poll(&pfd, 1, 2);
        read_lines(&work, false);
    }
    child_stop(&rig->daemon, SIGKILL, EVENT_MS);
    rig->daemon_running = false;
    read_lines(&work, true);
    close(work.fd);
    proto_reader_free(&work.reader);

    snprintf(old_log, sizeof(old_log), "%s/toxlabd-run%03d.log", rig->dir, run);
    ck_assert(rename(rig_file(rig, "toxlabd.log"), old_log) == 0);
    start_daemon(rig);
}

/* Waits until the daemon has acknowledged (or aborted) every test each
 * analyzer started and no test is pending or running. */
static void wait_until_settled(struct rig *rig)
{
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
    int waited_ms = 0;

    for (;;) {
        drain_sims(rig);
        bool done = db_count(rig, "SELECT count(*) FROM tests WHERE state IN"
                                  " ('pending', 'running')") == 0;
        for (int i = 0; i < SIM_COUNT; i++) {
            done = done && sims[i].started.count == sims[i].acked.count + sims[i].aborted.count;
        }
        if (done) {
            return;
        }
        ck_assert_msg(waited_ms < harness_ms(RUN_MS), "the tests did not settle after the restart");
        nanosleep(&pause, NULL);
        waited_ms += 5;
    }
}

/* Counts the rows of table whose column equals value and that meet the
 * extra condition (SQL text starting with " AND", or ""). */
static long long count_rows(struct rig *rig, const char *table, const char *column,
                            const char *value, const char *condition)
{
    char sql[512];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s = '%s'%s", table, column, value,
             condition);
    return db_count(rig, sql);
}

/* Converts the sim's "0x5c01e2aa" to the decimal text stored in the database. */
static void host_id_decimal(const char *hex, char *out, size_t size)
{
    snprintf(out, size, "%lu", strtoul(hex, NULL, 16));
}

static void check_client_records(struct rig *rig)
{
    for (size_t i = 0; i < seen.results.count; i++) {
        ck_assert_msg(count_rows(rig, "results", "id", seen.results.ids[i], "") == 1,
                      "result %s was sent to a client but is not stored", seen.results.ids[i]);
    }
    for (size_t i = 0; i < seen.tests.count; i++) {
        ck_assert_msg(count_rows(rig, "tests", "id", seen.tests.ids[i], "") == 1,
                      "test %s was sent to a client but is not stored", seen.tests.ids[i]);
    }
    for (size_t i = 0; i < seen.stops.count; i++) {
        ck_assert_msg(count_rows(rig, "stops", "id", seen.stops.ids[i], "") == 1,
                      "stop %s was sent to a client but is not stored", seen.stops.ids[i]);
    }
    for (size_t i = 0; i < seen.barcodes.count; i++) {
        ck_assert_msg(count_rows(rig, "specimens", "barcode", seen.barcodes.ids[i], "") == 1,
                      "specimen %s was acknowledged but is not stored", seen.barcodes.ids[i]);
    }
}

/* Checks that every acknowledged result is stored once and that every test
 * an analyzer started completed. The others must end interrupted or failed. */
static void check_analyzer_records(struct rig *rig)
{
    char host[24];

    for (int s = 0; s < SIM_COUNT; s++) {
        ck_assert_msg(sims[s].aborted.count == 0, "the daemon aborted %zu tests on sim %d",
                      sims[s].aborted.count, s);
        for (size_t i = 0; i < sims[s].acked.count; i++) {
            host_id_decimal(sims[s].acked.ids[i], host, sizeof(host));
            long long stored = count_rows(rig, "results", "host_test_id", host, "");
            ck_assert_msg(stored == 1,
                          "the analyzer forgot the result of host test ID %s, stored %lld times",
                          sims[s].acked.ids[i], stored);
        }
        for (size_t i = 0; i < sims[s].started.count; i++) {
            host_id_decimal(sims[s].started.ids[i], host, sizeof(host));
            ck_assert_msg(
                count_rows(rig, "tests", "host_test_id", host, " AND state = 'completed'") == 1,
                "the test with host test ID %s ran on the analyzer but did not"
                " complete",
                sims[s].started.ids[i]);
        }
    }
    long long started =
        (long long)(sims[SIM_SALIVA].started.count + sims[SIM_BREATH].started.count);
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM tests WHERE state = 'completed'"),
                     started);
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM tests WHERE state NOT IN"
                                   " ('completed', 'interrupted', 'failed')"),
                     0);
}

static void check_database(struct rig *rig)
{
    char text[256];

    db_text(rig, "PRAGMA integrity_check", text, sizeof(text));
    ck_assert_str_eq(text, "ok");
    db_text(rig, "PRAGMA foreign_key_check", text, sizeof(text));
    ck_assert_str_eq(text, "");
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM (SELECT host_test_id FROM results"
                                   " WHERE host_test_id IS NOT NULL GROUP BY host_test_id,"
                                   " instrument HAVING count(*) > 1)"),
                     0);
    ck_assert_int_eq(db_count(rig, "SELECT count(*) FROM results r JOIN tests t ON t.id ="
                                   " r.test_id WHERE t.state <> 'completed'"),
                     0);
    /* Every kill left the audit chain whole: each change and its entry
     * committed together or not at all. */
    char *argv[] = {
        (char *)harness_program("TOXLAB"), "audit", "verify", "--database", rig->database, NULL};
    char *out;
    char *err;
    int status = harness_run(argv, NULL, CLIENT_MS, &out, &err);
    ck_assert_msg(status == 0, "audit verify: exit %d\n%s%s", status, out, err);
    free(out);
    free(err);
}

static unsigned crash_seed(void)
{
    const char *text = getenv("TOXLAB_CRASH_SEED");

    return text != NULL ? (unsigned)strtoul(text, NULL, 10)
                        : (unsigned)time(NULL) ^ (unsigned)getpid();
}

static int crash_kills(void)
{
    const char *text = getenv("TOXLAB_CRASH_KILLS");

    return text != NULL ? atoi(text) : DEFAULT_KILLS;
}

START_TEST(kills_lose_nothing)
{
    struct rig rig;
    unsigned seed = crash_seed();
    int kills = crash_kills();
    int at_commit = 0;

    printf("crash test: seed %u, %d kills (TOXLAB_CRASH_SEED=%u replays it)\n", seed, kills, seed);
    fflush(stdout);
    rig_prepare(&rig);
    rig.debug_log = true;
    rig.trace_requests = true;
    rig_start_sims(&rig, fast_phases, fast_breath_phases);
    write_config(&rig, NULL);
    start_daemon(&rig);
    client_ok(&rig, "subject", "add", SUBJECT_A, NULL);
    for (int run = 0; run < kills; run++) {
        struct kill_point point = choose_kill_point(&seed);
        at_commit += point.at_commit;
        crash_once(&rig, run, &point);
    }
    wait_until_settled(&rig);
    check_client_records(&rig);
    check_analyzer_records(&rig);
    check_database(&rig);
    printf("crash test: %d kills (%d at a commit, %d at a request); the client saw %zu"
           " results, %zu tests, %zu stops; the analyzers forgot %zu and %zu results;"
           " %lld results stored\n",
           kills, at_commit, kills - at_commit, seen.results.count, seen.tests.count,
           seen.stops.count, sims[SIM_SALIVA].acked.count, sims[SIM_BREATH].acked.count,
           db_count(&rig, "SELECT count(*) FROM results"));
    rig_stop(&rig);
}
END_TEST

/* An analyzer that lost its test while the daemon was down (a power cycle)
 * leaves the test interrupted; the analyzer takes the next test. */
START_TEST(forgotten_test_interrupted)
{
    struct rig rig;
    char line[256];
    char test_id[64];
    char sql[256];
    char text[64];
    char old_log[600];

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    child_send(&rig.sim, "hold");
    ck_assert(child_wait_line(&rig.sim, "hold", EVENT_MS, line, sizeof(line)));
    start_detached(&rig, test_id, sizeof(test_id));
    ck_assert(
        child_wait_line(&rig.sim, "phase test=1 state=analysing", EVENT_MS, line, sizeof(line)));
    child_stop(&rig.daemon, SIGKILL, EVENT_MS);
    rig.daemon_running = false;

    /* The first request after the restart finds the analyzer restarting. */
    child_send(&rig.sim, "fault power-cycle");
    ck_assert(child_wait_line(&rig.sim, "fault-armed", EVENT_MS, line, sizeof(line)));
    child_send(&rig.sim, "release");
    snprintf(old_log, sizeof(old_log), "%s/toxlabd-killed.log", rig.dir);
    ck_assert(rename(rig_file(&rig, "toxlabd.log"), old_log) == 0);
    start_daemon(&rig);
    ck_assert(child_seen_line(&rig.sim, "power-cycle", EVENT_MS));

    /* The next test needs the analyzer idle, so the daemon has read its status. */
    register_subject(&rig, SUBJECT_B, "OF-B1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    snprintf(sql, sizeof(sql), "SELECT state FROM tests WHERE id = '%s'", test_id);
    db_text(&rig, sql, text, sizeof(text));
    ck_assert_str_eq(text, "interrupted");
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 1);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests WHERE state = 'completed'"), 1);
    rig_stop(&rig);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *suite = suite_create("crash");
    TCase *kills = tcase_create("kills");
    TCase *restart = tcase_create("restart");

    tcase_add_test(kills, kills_lose_nothing);
    tcase_add_test(restart, forgotten_test_interrupted);
    /* About a second a kill; the 200-kill run needs more than the default. */
    tcase_set_timeout(kills, HARNESS_CASE_TIMEOUT + 3 * crash_kills());
    tcase_set_timeout(restart, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, kills);
    suite_add_tcase(suite, restart);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(crash_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
