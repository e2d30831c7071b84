#define _GNU_SOURCE
#include "rig.h"

#include "controller/roles.h"

#include <check.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char fast_phases[] = "[phases]\ncartridge_ms = 20\ncollecting_ms = 40\n"
                           "analysing_ms = 60\n";
const char fast_breath_phases[] = "[phases]\nwarmup_ms = 20\nblow_request_ms = 20\n"
                                  "blowing_ms = 40\nanalysing_ms = 60\n";

char *rig_file(struct rig *rig, const char *name)
{
    snprintf(rig->path, sizeof(rig->path), "%s/%s", rig->dir, name);
    return rig->path;
}

/* Starts `toxlab-sim KIND` with a scenario and copies its pty path. */
static void start_sim(struct rig *rig, const char *kind, const char *scenario, struct child *sim,
                      char *pty, size_t pty_size)
{
    char line[256];
    char scenario_path[512];
    char log_path[512];

    snprintf(scenario_path, sizeof(scenario_path), "%s/%s.ini", rig->dir, kind);
    snprintf(log_path, sizeof(log_path), "%s/%s-sim.log", rig->dir, kind);
    harness_write_file(scenario_path, scenario);
    char *argv[] = {(char *)harness_program("TOXLAB_SIM"), (char *)kind, scenario_path, NULL, NULL};
    if (rig->trace_requests) {
        argv[2] = "--trace-requests";
        argv[3] = scenario_path;
    }
    child_spawn(sim, argv, NULL, log_path, true, true);
    ck_assert_msg(child_wait_line(sim, "pty ", EVENT_MS, line, sizeof(line)),
                  "the %s sim printed no pty line", kind);
    snprintf(pty, pty_size, "%.*s", (int)pty_size - 1, line + 4);
    ck_assert(child_wait_line(sim, "ready", EVENT_MS, line, sizeof(line)));
}

void write_config(struct rig *rig, const char *extra)
{
    char text[8192];
    char thresholds[512];
    char rules[512];
    char roles[512];
    char breath[1024] = "";
    unsigned gid = (unsigned)getgid();

    snprintf(thresholds, sizeof(thresholds), "%s/etc/thresholds.tsv",
             harness_program("TOXLAB_SOURCE_DIR"));
    snprintf(rules, sizeof(rules), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    /* Every role goes to the test's own group, so a run as any user has them all. */
    snprintf(roles, sizeof(roles),
             "\n[roles]\nofficer = %u\nanalyst = %u\nclerk = %u\nsupervisor = %u\nadmin = %u\n",
             gid, gid, gid, gid, gid);
    if (rig->has_breath) {
        snprintf(breath, sizeof(breath),
                 "\n[instrument.breath-1]\ndriver = breath\ndevice = %s\npoll_interval_ms = 20\n"
                 "response_timeout_ms = 200\nretry_ms = 50\n%s",
                 rig->breath_pty, rig->breath_extra ? rig->breath_extra : "");
    }
    snprintf(text, sizeof(text),
             "[daemon]\nlab_id = TEST1\ndatabase = %s\nsocket = %s\nsocket_group = %u\n"
             "thresholds = %s\nrules = %s\nbusy_timeout_ms = 50\nbackup_folder = %s/backups\n\n"
             "[instrument.saliva-1]\n"
             "driver = saliva\ndevice = %s\npoll_interval_ms = 20\nresponse_timeout_ms = 200\n"
             "retry_ms = 50\n%s%s%s",
             rig->database, rig->socket, gid, thresholds, rules, rig->dir, rig->pty,
             extra ? extra : "", breath, roles);
    harness_write_file(rig_file(rig, "toxlab.conf"), text);
}

/* Puts the words of TOXLAB_DAEMON_WRAPPER (e.g. a valgrind command line)
 * into argv and returns their count; the daemon's own arguments follow. */
static int daemon_wrapper(char *argv[16])
{
    static char words[1024];
    const char *wrapper = getenv("TOXLAB_DAEMON_WRAPPER");
    int count = 0;

    if (wrapper == NULL) {
        return 0;
    }
    snprintf(words, sizeof(words), "%s", wrapper);
    for (char *word = strtok(words, " "); word != NULL && count < 10; word = strtok(NULL, " ")) {
        argv[count++] = word;
    }
    return count;
}

/* Fills argv (NULL-ended) with the daemon, the installed configuration and
 * the -o overrides that point it at the rig's files and sim. */
static void installed_config_args(struct rig *rig, const char *installed, char **argv)
{
    static char values[20][700];
    char thresholds[512];
    char rules[512];
    int count = 0;
    int value = 0;

    /* The threshold file is installed next to the configuration. */
    snprintf(thresholds, sizeof(thresholds), "%s", installed);
    char *slash = strrchr(thresholds, '/');
    ck_assert_ptr_nonnull(slash);
    snprintf(slash, sizeof(thresholds) - (size_t)(slash - thresholds), "/thresholds.tsv");
    snprintf(rules, sizeof(rules), "%.*s/rules.tsv", (int)(slash - thresholds), thresholds);
    const char *overrides[][2] = {
        {"daemon.database", rig->database},
        {"daemon.socket", rig->socket},
        {"daemon.thresholds", thresholds},
        {"daemon.rules", rules},
        {"daemon.busy_timeout_ms", "50"},
        {"instrument.saliva-1.device", rig->pty},
        {"instrument.saliva-1.poll_interval_ms", "20"},
        {"instrument.saliva-1.response_timeout_ms", "200"},
        {"instrument.saliva-1.retry_ms", "50"},
    };
    argv[count++] = (char *)harness_program("TOXLABD");
    argv[count++] = "-c";
    argv[count++] = (char *)installed;
    argv[count++] = "-d";
    snprintf(values[value], sizeof(values[value]), "daemon.socket_group=%u", (unsigned)getgid());
    argv[count++] = "-o";
    argv[count++] = values[value++];
    for (int i = 0; i < ROLE_COUNT; i++) {
        snprintf(values[value], sizeof(values[value]), "roles.%s=%u", role_name(i),
                 (unsigned)getgid());
        argv[count++] = "-o";
        argv[count++] = values[value++];
    }
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++) {
        snprintf(values[value], sizeof(values[value]), "%s=%s", overrides[i][0], overrides[i][1]);
        argv[count++] = "-o";
        argv[count++] = values[value++];
    }
    argv[count] = NULL;
}

void rig_launch_daemon(struct rig *rig)
{
    char notify_path[512];
    char config_path[512];
    char log_path[512];
    char env_notify[600];

    snprintf(notify_path, sizeof(notify_path), "%s/notify", rig->dir);
    snprintf(config_path, sizeof(config_path), "%s/toxlab.conf", rig->dir);
    snprintf(log_path, sizeof(log_path), "%s/toxlabd.log", rig->dir);
    snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify_path);
    int notify_fd = notify_open(notify_path);
    char *argv[64];
    int argc = daemon_wrapper(argv);
    const char *installed = getenv("TOXLAB_INSTALLED_CONFIG");
    char *tail[] = {(char *)harness_program("TOXLABD"), "-c", config_path, "-d",
                    rig->debug_log ? "-d" : NULL,       NULL};
    memcpy(argv + argc, tail, sizeof(tail));
    if (installed != NULL) {
        installed_config_args(rig, installed, argv + argc);
    }
    char *env[] = {env_notify, NULL};
    child_spawn(&rig->daemon, argv, env, log_path, false, false);
    rig->daemon_running = true;
    bool ready = notify_wait_ready(notify_fd, EVENT_MS);
    close(notify_fd);
    if (!ready) {
        harness_dump_file(log_path);
    }
    ck_assert_msg(ready, "toxlabd sent no READY=1");
}

void start_daemon(struct rig *rig)
{
    const char *log_path = rig_file(rig, "toxlabd.log");

    rig_launch_daemon(rig);
    ck_assert_msg(harness_wait_file(log_path, "saliva-1: online", EVENT_MS),
                  "saliva-1 did not come online");
    ck_assert_msg(!rig->has_breath || harness_wait_file(log_path, "breath-1: online", EVENT_MS),
                  "breath-1 did not come online");
}

/* Starts the sim with a scenario and the daemon with extra configuration. */
void rig_make_dir(struct rig *rig)
{
    char *dir = harness_tmpdir("e2e");

    /* A copy in the rig, so that no test leaks the folder name. */
    ck_assert(strlen(dir) < sizeof(rig->dir_path));
    snprintf(rig->dir_path, sizeof(rig->dir_path), "%s", dir);
    free(dir);
    rig->dir = rig->dir_path;
}

void rig_prepare(struct rig *rig)
{
    memset(rig, 0, sizeof(*rig));
    rig_make_dir(rig);
    snprintf(rig->socket, sizeof(rig->socket), "%s/run/toxlab.sock", rig->dir);
    snprintf(rig->database, sizeof(rig->database), "%s/toxlab.db", rig->dir);
}

void rig_start(struct rig *rig, const char *scenario, const char *extra_config)
{
    rig_prepare(rig);
    start_sim(rig, "saliva", scenario, &rig->sim, rig->pty, sizeof(rig->pty));
    write_config(rig, extra_config);
    start_daemon(rig);
}

void rig_start_edited(struct rig *rig, const char *scenario,
                      void (*edit)(struct rig *rig, void *user), void *user)
{
    rig_prepare(rig);
    start_sim(rig, "saliva", scenario, &rig->sim, rig->pty, sizeof(rig->pty));
    write_config(rig, NULL);
    edit(rig, user);
    start_daemon(rig);
}

void rig_start_sims(struct rig *rig, const char *saliva_scenario, const char *breath_scenario)
{
    char line[256];

    rig->has_breath = true;
    start_sim(rig, "saliva", saliva_scenario, &rig->sim, rig->pty, sizeof(rig->pty));
    start_sim(rig, "breath", breath_scenario, &rig->breath, rig->breath_pty,
              sizeof(rig->breath_pty));
    ck_assert_msg(child_wait_line(&rig->breath, "warm", EVENT_MS, line, sizeof(line)),
                  "the breath sim did not finish warming up");
}

void rig_start_cotest(struct rig *rig, const char *saliva_scenario, const char *breath_scenario,
                      const char *saliva_config, const char *breath_config)
{
    rig_prepare(rig);
    rig->breath_extra = breath_config;
    rig_start_sims(rig, saliva_scenario, breath_scenario);
    write_config(rig, saliva_config);
    start_daemon(rig);
}

/* Stops both; the daemon must exit 0 on SIGTERM. */
void rig_stop(struct rig *rig)
{
    if (rig->daemon_running) {
        int status = child_stop(&rig->daemon, SIGTERM, EVENT_MS);
        rig->daemon_running = false;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            harness_dump_file(rig->daemon.log_path);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "toxlabd exit status %d after SIGTERM", status);
    }
    child_stop(&rig->sim, SIGTERM, EVENT_MS);
    if (rig->has_breath) {
        child_stop(&rig->breath, SIGTERM, EVENT_MS);
    }
}

/* Runs the client with the rig's socket; arguments end with NULL. */
int client(struct rig *rig, char **out, char **err, ...)
{
    char *argv[32] = {(char *)harness_program("TOXLAB"), "-s", rig->socket};
    int argc = 3;
    va_list args;

    va_start(args, err);
    for (char *arg = va_arg(args, char *); arg != NULL && argc < 31; arg = va_arg(args, char *)) {
        argv[argc++] = arg;
    }
    va_end(args);
    argv[argc] = NULL;
    int status = harness_run(argv, NULL, CLIENT_MS, out, err);
    FILE *log = fopen(rig_file(rig, "client.log"), "a");
    if (log != NULL) {
        fprintf(log, "$ toxlab");
        for (int i = 3; i < argc; i++) {
            fprintf(log, " %s", argv[i]);
        }
        fprintf(log, "\n[exit %d]\n%s%s", status, *out, *err);
        fclose(log);
    }
    return status;
}

void client_ok(struct rig *rig, ...)
{
    char *argv[32] = {(char *)harness_program("TOXLAB"), "-s", rig->socket};
    int argc = 3;
    char *out;
    char *err;
    va_list args;

    va_start(args, rig);
    for (char *arg = va_arg(args, char *); arg != NULL && argc < 31; arg = va_arg(args, char *)) {
        argv[argc++] = arg;
    }
    va_end(args);
    argv[argc] = NULL;
    int status = harness_run(argv, NULL, CLIENT_MS, &out, &err);
    ck_assert_msg(status == 0, "toxlab %s %s failed (%d): %s%s", argv[3], argv[4], status, out,
                  err);
    free(out);
    free(err);
}

long long db_count(struct rig *rig, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;
    long long value = -1;

    ck_assert_int_eq(sqlite3_open_v2(rig->database, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
}

/* Copies the first column of the first row as text ("" when none). */
void db_text(struct rig *rig, const char *sql, char *out, size_t size)
{
    sqlite3 *db;
    sqlite3_stmt *stmt;

    out[0] = '\0';
    ck_assert_int_eq(sqlite3_open_v2(rig->database, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL) {
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

void register_subject(struct rig *rig, const char *subject, const char *barcode)
{
    client_ok(rig, "subject", "add", subject, NULL);
    client_ok(rig, "specimen", "add", "--subject", subject, "--barcode", barcode, "--matrix",
              "oral-fluid", NULL);
}

void assert_contains(const char *text, const char *part)
{
    ck_assert_msg(strstr(text, part) != NULL, "expected '%s' in:\n%s", part, text);
}

/* Starts a test without waiting and returns its ID from the JSON response. */
void start_detached(struct rig *rig, char *test_id, size_t size)
{
    char *out;
    char *err;

    ck_assert_int_eq(client(rig, &out, &err, "--json", "test", "start", "--subject", SUBJECT_A,
                            "--instrument", "saliva-1", "--no-wait", NULL),
                     0);
    char *tests = strstr(out, "\"tests\":[{\"id\":\"");
    ck_assert_msg(tests != NULL, "no test ID in %s", out);
    tests += strlen("\"tests\":[{\"id\":\"");
    snprintf(test_id, size, "%.*s", (int)strcspn(tests, "\""), tests);
    free(out);
    free(err);
}

void rig_start_linked_sim(struct rig *rig, struct child *sim, const char *scenario,
                          const char *link_path)
{
    char line[256];
    char scenario_path[600];
    char log_path[600];

    snprintf(scenario_path, sizeof(scenario_path), "%s/linked.ini", rig->dir);
    snprintf(log_path, sizeof(log_path), "%s/linked-sim.log", rig->dir);
    harness_write_file(scenario_path, scenario);
    char *argv[] = {(char *)harness_program("TOXLAB_SIM"),
                    "saliva",
                    "--link",
                    (char *)link_path,
                    scenario_path,
                    NULL};
    child_spawn(sim, argv, NULL, log_path, true, true);
    ck_assert(child_wait_line(sim, "ready", EVENT_MS, line, sizeof(line)));
    snprintf(rig->pty, sizeof(rig->pty), "%.*s", (int)sizeof(rig->pty) - 1, link_path);
}
