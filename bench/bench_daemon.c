/* Benchmarks of the running daemon:
 * - B4 end to end: 16 simulated saliva analyzers whose tests take no time,
 *   each kept busy by one client, results per second;
 * - B5: licence checks over the socket with 1 and 2 client processes on
 *   the generated database, beside the disk's fsync latency;
 * - B6: the daemon's private memory (RssAnon) with 8 simulated analyzers,
 *   idle after a warm-up of requests and after many more;
 * - B7: start-up to READY=1 on the generated database. */
#define _GNU_SOURCE
#include "bench/daemon_rig.h"
#include "controller/db.h"
#include "controller/db_licence.h"
#include "controller/engine.h"
#include "controller/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUBJECT "999999199001011238"
#define GENERATED_SUBJECT "99999919500101000X" /* toxlab-bench-gen's first subject */

/* Fails the benchmark unless the response is ok; takes the reference. */
static void expect_ok(json_t *response, const char *request)
{
    if (!json_is_true(json_object_get(response, "ok"))) {
        char *text = json_dumps(response, JSON_COMPACT);
        errno = 0;
        bench_fail("%s failed: %s", request, text);
    }
    json_decref(response);
}

/* ---- B7 ---------------------------------------------------------------- */

static void run_b7(const char *database, int runs)
{
    double ms[BENCH_MAX_RUNS];
    char note[160];

    for (int r = 0; r < runs; r++) {
        struct daemon_rig rig;

        rig_init(&rig, "startup", database);
        rig_start_sims(&rig, 1, NULL);
        ms[r] = (double)rig_start_daemon(&rig, 500) / 1e6;
        rig_cleanup(&rig);
    }
    struct bench_stats stats = bench_stats_of(ms, (size_t)runs);
    snprintf(note, sizeof(note), "target <= 100 ms: %s", stats.median <= 100 ? "met" : "missed");
    bench_row("B7", "start-up to READY=1, generated database", stats, 1, "ms", note);
}

/* ---- B6 ---------------------------------------------------------------- */

/* Sends count requests in windows of 32, alternating a command that reads
 * the database with one that does not. */
static void send_requests(struct client *client, long count)
{
    for (long done = 0; done < count;) {
        long window = count - done < 32 ? count - done : 32;

        for (long i = 0; i < window; i++) {
            if ((done + i) % 2 == 0) {
                client_send(client, "instruments", json_object());
            } else {
                client_send(client, "subject.show", json_pack("{ss}", "subject", SUBJECT));
            }
        }
        for (long i = 0; i < window;) {
            json_t *line = client_read(client);
            i += json_object_get(line, "id") != NULL;
            json_decref(line);
        }
        done += window;
    }
}

/* Returns the cache_size that a connection made by db_open gets. */
static long cache_size_of(const char *database)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    char err[512];
    long size = 0;

    if (db_open(database, 1000, &db, err, sizeof(err)) != 0) {
        return 0;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA cache_size", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        size = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
    db_close(db);
    return size;
}

static long idle_rss(pid_t pid)
{
    usleep(1000000); /* let the analyzers' polls settle */
    return bench_rss_anon_kib(pid);
}

static void run_b6(bool smoke)
{
    struct daemon_rig rig;
    struct client client;
    long warmup = smoke ? 100 : 10000;
    long many = smoke ? 1000 : 1000000;
    char figure[128], note[160];

    rig_init(&rig, "memory", NULL);
    rig_start_sims(&rig, 8, NULL);
    rig_start_daemon(&rig, 500);
    client_open(&client, rig.socket);
    expect_ok(
        client_call(&client, "subject.add", json_pack("{ss}", "subject", SUBJECT), NULL, NULL),
        "subject.add");
    send_requests(&client, warmup);
    double after_warmup = (double)idle_rss(rig.daemon.pid);
    send_requests(&client, many);
    double after_many = (double)idle_rss(rig.daemon.pid);
    client_close(&client);
    long cache_size = cache_size_of(rig.database);
    rig_cleanup(&rig);

    struct bench_stats warm = {after_warmup, after_warmup, after_warmup};
    snprintf(note, sizeof(note), "target <= 4096 KiB: %s; cache_size %ld",
             after_warmup <= 4096 ? "met" : "missed", cache_size);
    snprintf(figure, sizeof(figure), "RssAnon idle after %ld requests, 8 analyzers", warmup);
    bench_row("B6", figure, warm, 0, "KiB", note);
    struct bench_stats growth = {after_many - after_warmup, after_many - after_warmup,
                                 after_many - after_warmup};
    snprintf(figure, sizeof(figure), "RssAnon growth over %ld more requests", many);
    snprintf(note, sizeof(note), "target <= 256 KiB: %s", growth.median <= 256 ? "met" : "missed");
    bench_row("B6", figure, growth, 0, "KiB", note);
}

/* ---- B4 end to end ------------------------------------------------------ */

struct e2e {
    struct client client;
    size_t instruments;
    char stops[RIG_MAX_SIMS][RECORD_ID_SIZE]; /* the open stop of each analyzer */
    long started;
    long ended;
    long serial; /* barcodes */
};

static void start_test(struct e2e *e2e, size_t instrument)
{
    char barcode[32], name[32];

    snprintf(barcode, sizeof(barcode), "OF-%08ld", e2e->serial++);
    snprintf(name, sizeof(name), "saliva-%zu", instrument + 1);
    client_send(
        &e2e->client, "specimen.add",
        json_pack("{ss ss ss}", "subject", SUBJECT, "barcode", barcode, "matrix", "oral-fluid"));
    client_send(&e2e->client, "test.start",
                json_pack("{ss s[s] ss sb}", "subject", SUBJECT, "instruments", name, "specimen",
                          barcode, "watch", 1));
    e2e->stops[instrument][0] = '\0';
    e2e->started++;
}

static size_t instrument_of_stop(const struct e2e *e2e, const char *stop)
{
    for (size_t i = 0; i < e2e->instruments; i++) {
        if (strcmp(e2e->stops[i], stop) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* Handles one line: a test.start response names the analyzer's stop, and
 * a test-ended event frees the analyzer for its next test. */
static void handle_line(struct e2e *e2e, json_t *line, long total)
{
    const char *event = json_string_value(json_object_get(line, "event"));
    json_t *stop = json_object_get(line, "stop");

    if (json_is_false(json_object_get(line, "ok"))) {
        expect_ok(json_incref(line), "a request of the end-to-end run");
    }
    if (json_is_object(stop) && json_object_get(line, "id") != NULL) {
        json_t *tests = json_object_get(stop, "tests");
        const char *name =
            json_string_value(json_object_get(json_array_get(tests, 0), "instrument"));
        size_t instrument = name ? (size_t)atoi(name + strlen("saliva-")) - 1 : SIZE_MAX;
        if (instrument < e2e->instruments) {
            snprintf(e2e->stops[instrument], RECORD_ID_SIZE, "%s",
                     json_string_value(json_object_get(stop, "id")));
        }
    }
    if (event != NULL && strcmp(event, "test-ended") == 0) {
        size_t instrument = instrument_of_stop(e2e, json_string_value(stop));
        e2e->ended++;
        if (instrument != SIZE_MAX && e2e->started < total) {
            start_test(e2e, instrument);
        }
    }
}

static double run_e2e_once(long total)
{
    struct daemon_rig rig;
    struct e2e e2e = {.instruments = RIG_MAX_SIMS};

    rig_init(&rig, "e2e", NULL);
    rig_start_sims(&rig, RIG_MAX_SIMS, NULL);
    rig_start_daemon(&rig, 5);
    client_open(&e2e.client, rig.socket);
    client_wait_online(&e2e.client, RIG_MAX_SIMS);
    expect_ok(
        client_call(&e2e.client, "subject.add", json_pack("{ss}", "subject", SUBJECT), NULL, NULL),
        "subject.add");
    int64_t start = bench_now_ns();
    for (size_t i = 0; i < e2e.instruments && e2e.started < total; i++) {
        start_test(&e2e, i);
    }
    while (e2e.ended < total) {
        json_t *line = client_read(&e2e.client);
        handle_line(&e2e, line, total);
        json_decref(line);
    }
    double rate = (double)total / ((double)(bench_now_ns() - start) / 1e9);
    client_close(&e2e.client);
    rig_cleanup(&rig);
    return rate;
}

static void run_b4_e2e(int runs, bool smoke)
{
    double rate[BENCH_MAX_RUNS];

    for (int r = 0; r < runs; r++) {
        rate[r] = run_e2e_once(smoke ? 32 : 1600);
    }
    bench_row("B4", "end to end, 16 analyzers, tests of 0 ms, 5 ms polls",
              bench_stats_of(rate, (size_t)runs), 0, "results/s", "through toxlabd");
}

/* ---- B5 ---------------------------------------------------------------- */

/* Measures the latency of a 4 KiB write and fdatasync in folder, in ms. */
static void fsync_latency(const char *folder, struct bench_stats *stats)
{
    double ms[200];
    char path[4300], block[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/fsync-probe", folder);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        bench_fail("open %s", path);
    }
    memset(block, 'x', sizeof(block));
    for (size_t i = 0; i < 200; i++) {
        int64_t start = bench_now_ns();
        if (pwrite(fd, block, sizeof(block), (off_t)(i % 16) * 4096) < 0 || fdatasync(fd) != 0) {
            bench_fail("fdatasync %s", path);
        }
        ms[i] = (double)(bench_now_ns() - start) / 1e6;
    }
    close(fd);
    unlink(path);
    *stats = bench_stats_of(ms, 200);
    stats->max = ms[197]; /* the spread's upper end is the 99th percentile */
}

/* The arguments of main's licence.check: an application for a licence. */
static json_t *licence_args(void)
{
    return json_pack("{ss ss}", "subject", GENERATED_SUBJECT, "for", "application");
}

/* Runs count licence checks from each of `processes` client processes and
 * returns checks per second. Each process writes its latencies to a pipe. */
static double time_licence(const char *socket, int processes, long count, double *p50, double *p99)
{
    double *latency = calloc((size_t)count * (size_t)processes, sizeof(double));
    int pipes[8][2];
    int64_t start = bench_now_ns();

    for (int p = 0; p < processes; p++) {
        if (pipe(pipes[p]) != 0) {
            bench_fail("pipe");
        }
        if (fork() == 0) {
            struct client client;
            client_open(&client, socket);
            for (long i = 0; i < count; i++) {
                int64_t begin = bench_now_ns();
                json_decref(client_call(&client, "licence.check", licence_args(), NULL, NULL));
                double ms = (double)(bench_now_ns() - begin) / 1e6;
                if (write(pipes[p][1], &ms, sizeof(ms)) != sizeof(ms)) {
                    _exit(1);
                }
            }
            _exit(0);
        }
        close(pipes[p][1]);
    }
    size_t got = 0;
    for (int p = 0; p < processes; p++) {
        while (read(pipes[p][0], &latency[got], sizeof(double)) == sizeof(double)) {
            got++;
        }
        close(pipes[p][0]);
        wait(NULL);
    }
    double rate = (double)got / ((double)(bench_now_ns() - start) / 1e9);
    struct bench_stats stats = bench_stats_of(latency, got);
    *p50 = stats.median;
    *p99 = got > 0 ? latency[got * 99 / 100] : 0;
    free(latency);
    return rate;
}

/* One licence check in-process: the daemon's own steps for licence.check
 * (register the subject, read its evidence, decide, record the decision)
 * in one transaction on the same file, without the socket. */
static void check_in_process(sqlite3 *db, const struct rule_set *rules,
                             const struct subject_id *subject, int today)
{
    char subject_row[RECORD_ID_SIZE];
    char decision_id[RECORD_ID_SIZE];
    char err[256];
    struct evidence evidence;
    bool existed;

    if (db_begin(db) != 0 || db_subject_add(db, "BENCH", subject, subject_row, &existed) != 0) {
        bench_fail("registering the subject in-process failed: %s", db_errmsg(db));
    }
    json_t *inputs = db_evidence_json(db, subject_row, NULL);
    if (inputs == NULL || evidence_read(inputs, &evidence, err, sizeof(err)) != 0) {
        bench_fail("reading the evidence in-process failed");
    }
    json_t *outcome = engine_decide(rules, &evidence, QUESTION_APPLICATION, today);
    if (db_decision_record(db, "BENCH", subject_row, inputs, outcome, 0, decision_id) != 0 ||
        db_commit(db) != 0) {
        bench_fail("recording the decision in-process failed: %s", db_errmsg(db));
    }
    evidence_free(&evidence);
    json_decref(inputs);
    json_decref(outcome);
}

/* Runs count in-process checks on database and returns checks per second. */
static double time_in_process(const char *database, long count)
{
    char rules_path[4200];
    char err[512];
    struct rule_set rules;
    struct subject_id subject;
    sqlite3 *db = NULL;
    int today = time_local_date(time_realtime_ms());

    snprintf(rules_path, sizeof(rules_path), "%s/etc/rules.tsv",
             bench_program("TOXLAB_SOURCE_DIR"));
    if (rules_load(rules_path, &rules, err, sizeof(err)) != 0 ||
        subject_id_parse(GENERATED_SUBJECT, today, &subject, err, sizeof(err)) != 0 ||
        db_open(database, 5000, &db, err, sizeof(err)) != 0 || db_rule_set_store(db, &rules) != 0) {
        errno = 0;
        bench_fail("%s", err);
    }
    int64_t start = bench_now_ns();
    for (long i = 0; i < count; i++) {
        check_in_process(db, &rules, &subject, today);
    }
    double rate = (double)count / ((double)(bench_now_ns() - start) / 1e9);
    db_close(db);
    rules_free(&rules);
    return rate;
}

/* Reports whether the daemon on socket has the licence.check command. */
static bool has_licence_check(const char *socket)
{
    struct client client;

    client_open(&client, socket);
    json_t *probe = client_call(&client, "licence.check", licence_args(), NULL, NULL);
    const char *code = json_string_value(json_object_get(json_object_get(probe, "error"), "code"));
    bool missing = code != NULL && strcmp(code, "unknown-command") == 0;
    json_decref(probe);
    client_close(&client);
    return !missing;
}

/* Latency figures of one client count over the runs. */
struct b5_clients {
    double rate[BENCH_MAX_RUNS];
    double p50[BENCH_MAX_RUNS];
    double p99[BENCH_MAX_RUNS];
};

static void print_b5_clients(int processes, struct b5_clients *figures, int runs)
{
    char figure[128], note[200];
    struct bench_stats p50 = bench_stats_of(figures->p50, (size_t)runs);
    struct bench_stats p99 = bench_stats_of(figures->p99, (size_t)runs);

    snprintf(figure, sizeof(figure), "licence check over the socket, %d client%s", processes,
             processes > 1 ? "s" : "");
    snprintf(note, sizeof(note), "p50 %.3f ms, p99 %.3f ms (medians of the runs)", p50.median,
             p99.median);
    bench_row("B5", figure, bench_stats_of(figures->rate, (size_t)runs), 0, "checks/s", note);
}

/* Each run starts toxlabd on the database, times the checks from one and
 * from two client processes, stops it, and times the same steps in-process
 * on the file, so that each run's ratio compares figures taken together. */
/* TODO: the checks record their decisions in the generated database, which
 * bench/run keeps for later runs, so it grows by about 2 GB a run. */
static void run_b5(const char *database, int runs, bool smoke)
{
    struct daemon_rig rig;
    struct bench_stats fsync_ms;
    struct b5_clients clients[2];
    double in_process[BENCH_MAX_RUNS], ratio[BENCH_MAX_RUNS];
    long count = smoke ? 10 : 2000;
    char note[200];

    rig_init(&rig, "licence", database);
    rig_start_sims(&rig, 1, NULL);
    rig_start_daemon(&rig, 500);
    char folder[4200];
    snprintf(folder, sizeof(folder), "%s", rig.database);
    *strrchr(folder, '/') = '\0';
    fsync_latency(folder, &fsync_ms);
    if (!has_licence_check(rig.socket)) {
        printf("| B5 | licence check over the socket | not measured | | this toxlabd has no "
               "licence.check: it answers unknown-command |\n");
        runs = 0;
    }
    for (int r = 0; r < runs; r++) {
        if (r > 0) {
            rig_start_daemon(&rig, 500);
        }
        for (int p = 0; p < 2; p++) {
            clients[p].rate[r] =
                time_licence(rig.socket, p + 1, count, &clients[p].p50[r], &clients[p].p99[r]);
        }
        /* The daemon is stopped here, so the reference has the file alone. */
        rig_stop_daemon(&rig);
        in_process[r] = time_in_process(rig.database, count);
        ratio[r] = in_process[r] > 0 ? clients[0].rate[r] / in_process[r] : 0;
    }
    if (runs > 0) {
        print_b5_clients(1, &clients[0], runs);
        print_b5_clients(2, &clients[1], runs);
        bench_row("B5", "licence check in-process, same steps and transaction",
                  bench_stats_of(in_process, (size_t)runs), 0, "checks/s", "reference");
        struct bench_stats ratio_stats = bench_stats_of(ratio, (size_t)runs);
        snprintf(note, sizeof(note), "target >= 0.5x: %s",
                 ratio_stats.median >= 0.5 ? "met" : "missed");
        bench_row("B5", "socket, 1 client / in-process", ratio_stats, 2, "x", note);
    } else {
        rig_stop_daemon(&rig);
    }
    bench_row("B5", "disk fsync latency (p50)", fsync_ms, 3, "ms",
              "spread is minimum to p99; 4 KiB write and fdatasync beside the database");
    rig_cleanup(&rig);
}

/* ---- main -------------------------------------------------------------- */

/* Generates a small database in its own folder when none was given. */
static const char *small_database(char **dir)
{
    static char path[4200];
    char command[9000];

    *dir = bench_tmpdir("gen");
    snprintf(path, sizeof(path), "%s/generated.db", *dir);
    snprintf(command, sizeof(command), "'%s' --subjects 1000 --results 2000 '%s' >/dev/null",
             bench_program("TOXLAB_BENCH_GEN"), path);
    if (system(command) != 0) {
        errno = 0;
        bench_fail("'%s' failed", command);
    }
    return path;
}

/* Reports whether BENCH_ONLY is unset or names this benchmark, so that a
 * profiler can watch one benchmark alone. */
static bool selected(const char *id)
{
    const char *only = getenv("BENCH_ONLY");

    return only == NULL || strcmp(only, id) == 0;
}

/* Usage: bench_daemon [--smoke] [--runs N] [DATABASE]. Without DATABASE,
 * B5 and B7 run on a small generated one. BENCH_ONLY=B4 (or B5, B6, B7)
 * runs one benchmark. */
int main(int argc, char **argv)
{
    int runs = 5;
    bool smoke = false;
    char *generated_dir = NULL;

    int first = bench_common_options(argc, argv, &runs, &smoke);
    const char *database = first < argc ? argv[first] : small_database(&generated_dir);
    signal(SIGPIPE, SIG_IGN);
    if (selected("B4")) {
        run_b4_e2e(runs < 3 ? runs : 3, smoke);
    }
    if (selected("B5")) {
        run_b5(database, runs, smoke);
    }
    if (selected("B6")) {
        run_b6(smoke);
    }
    if (selected("B7")) {
        run_b7(database, runs);
    }
    if (generated_dir != NULL) {
        bench_rmdir(generated_dir);
        free(generated_dir);
    }
    return 0;
}
