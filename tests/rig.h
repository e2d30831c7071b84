/* Test rig for the integration tests: toxlab-sim on real ptys, toxlabd on
 * a temporary socket and SQLite file, the toxlab client over the socket,
 * and the stored rows read back from the database file. */
#ifndef TOXLAB_RIG_H
#define TOXLAB_RIG_H

#include "harness.h"

#include <stdbool.h>
#include <stddef.h>

#define SUBJECT_A "999999199001011238"
#define SUBJECT_B "999999198506150028"
/* Deadline for one awaited event. It is generous because a loaded 2-core
 * CI machine running valgrind beside the tests is slow. A deadline costs
 * nothing when the event comes. */
#define EVENT_MS 30000
#define CLIENT_MS 30000

struct rig {
    char *dir; /* points at dir_path */
    char dir_path[256];
    char path[512];
    char socket[512];
    char database[512];
    char pty[128];        /* saliva sim */
    char breath_pty[128]; /* breath sim, when has_breath */
    const char *breath_extra;
    struct child sim;
    struct child breath;
    struct child daemon;
    bool has_breath;
    bool daemon_running;
    bool debug_log;      /* run toxlabd with -d -d, which logs each request and commit */
    bool trace_requests; /* run the sims with --trace-requests */
};

/* Scenario phases that make a test take about a tenth of a second. */
extern const char fast_phases[];
extern const char fast_breath_phases[];

/* Returns dir/name in rig->path (overwritten by the next call). */
char *rig_file(struct rig *rig, const char *name);

/* Writes toxlab.conf; extra is appended to the saliva instrument's section. */
void write_config(struct rig *rig, const char *extra);

/* Starts toxlabd and waits for READY=1 and the analyzers to come online. */
void start_daemon(struct rig *rig);

/* Starts toxlabd and waits for READY=1 only, for tests whose analyzers
 * are absent or unreachable at start-up. */
void rig_launch_daemon(struct rig *rig);

/* Makes a fresh temporary folder for the rig and points rig->dir at it. */
void rig_make_dir(struct rig *rig);

/* Makes the rig's temporary folder and names its socket and database. */
void rig_prepare(struct rig *rig);

/* Starts a saliva sim that keeps a link at link_path to its pty (the
 * config then names the link), without starting the daemon. */
void rig_start_linked_sim(struct rig *rig, struct child *sim, const char *scenario,
                          const char *link_path);

/* Starts the saliva sim with a scenario and the daemon. */
void rig_start(struct rig *rig, const char *scenario, const char *extra_config);

/* Starts the saliva sim, writes toxlab.conf, lets edit change it, then
 * starts the daemon. */
void rig_start_edited(struct rig *rig, const char *scenario,
                      void (*edit)(struct rig *rig, void *user), void *user);
/* Starts both sims (saliva-1 and breath-1) after rig_prepare and waits
 * until the breath sim has warmed up; the daemon is not started. */
void rig_start_sims(struct rig *rig, const char *saliva_scenario, const char *breath_scenario);

/* Starts both sims (saliva-1 and breath-1) and the daemon. */
void rig_start_cotest(struct rig *rig, const char *saliva_scenario, const char *breath_scenario,
                      const char *saliva_config, const char *breath_config);

/* Stops everything; the daemon must exit 0 on SIGTERM. */
void rig_stop(struct rig *rig);

/* Runs the client with the rig's socket and returns its exit status;
 * arguments end with NULL. *out and *err are malloc'd. */
int client(struct rig *rig, char **out, char **err, ...);

/* Runs the client and fails the test unless it exits 0. */
void client_ok(struct rig *rig, ...);

/* Returns the first column of the first row of a query on the database file. */
long long db_count(struct rig *rig, const char *sql);
void db_text(struct rig *rig, const char *sql, char *out, size_t size);

/* Registers a subject and an oral-fluid specimen. */
void register_subject(struct rig *rig, const char *subject, const char *barcode);

void assert_contains(const char *text, const char *part);

/* Starts a saliva test for SUBJECT_A without waiting; copies its test ID. */
void start_detached(struct rig *rig, char *test_id, size_t size);

#endif
