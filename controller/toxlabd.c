/* toxlabd: talks to the analyzers, stores and interprets their results,
 * and serves clients on a UNIX socket. Runs in the foreground. */
#define _GNU_SOURCE
#include "controller/daemon.h"

#include "controller/audit.h"

#include "controller/db.h"
#include "controller/db_licence.h"
#include "controller/hotplug.h"
#include "controller/reload.h"
#include "controller/storage.h"
#include "controller/timefmt.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG TOXLAB_SYSCONFDIR "/toxlab.conf"
#define MAX_OVERRIDES 64
#define LINE_STOP_TIMEOUT_MS 3000
#define IDLE_WAKE_MS 1000

struct options {
    const char *config_path;
    const char *overrides[MAX_OVERRIDES];
    int override_count;
    int verbosity;
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: toxlabd [-c PATH] [-o SECTION.KEY=VALUE]... [-d]... [-h] [-V]\n"
            "Runs the toxlab daemon in the foreground: drives the analyzers, stores\n"
            "their results in SQLite and serves clients on a UNIX socket.\n\n"
            "  -c, --config PATH   configuration file (default %s)\n"
            "  -o, --option S.K=V  override one configuration key, e.g.\n"
            "                      -o daemon.socket=/tmp/t/toxlab.sock\n"
            "  -d, --debug         log more; twice logs every request\n"
            "  -h, --help          print this help and exit\n"
            "  -V, --version       print the version and exit\n",
            DEFAULT_CONFIG);
}

static int parse_options(int argc, char **argv, struct options *opts)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"option", required_argument, NULL, 'o'},
        {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    int opt;

    opts->config_path = DEFAULT_CONFIG;
    while ((opt = getopt_long(argc, argv, "c:o:dhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            opts->config_path = optarg;
            break;
        case 'o':
            if (opts->override_count == MAX_OVERRIDES) {
                fprintf(stderr, "toxlabd: more than %d -o options\n", MAX_OVERRIDES);
                return 2;
            }
            opts->overrides[opts->override_count++] = optarg;
            break;
        case 'd':
            opts->verbosity++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("toxlabd %s\n", TOXLAB_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try 'toxlabd --help' for the options.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "toxlabd: unexpected argument '%s'\nTry 'toxlabd --help' for the options.\n",
                argv[optind]);
        return 2;
    }
    return -1;
}

static int load_config(const struct options *opts, struct config *config)
{
    char err[768];

    config_defaults(config);
    if (config_load(config, opts->config_path, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "%s", err);
        return -1;
    }
    for (int i = 0; i < opts->override_count; i++) {
        if (config_override(config, opts->overrides[i], err, sizeof(err)) != 0) {
            log_msg(LOG_ERR, "%s", err);
            return -1;
        }
    }
    if (config_validate(config, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "invalid configuration (%s and -o options): %s", opts->config_path, err);
        return -1;
    }
    for (size_t i = 0; i < config->instrument_count; i++) {
        if (driver_find(config->instruments[i].driver) == NULL) {
            log_msg(LOG_ERR, "%s: [instrument.%s]: unknown driver '%s' (known: saliva, breath)",
                    opts->config_path, config->instruments[i].id, config->instruments[i].driver);
            return -1;
        }
    }
    return 0;
}

/* Logs the audit chain's head at start-up, so that the log marks where a
 * restored backup's chain goes on. */
static void log_start_head(struct daemon *daemon)
{
    long long seq;
    char hash[AUDIT_HASH_HEX];

    if (audit_head(daemon->db, &seq, hash) == 0) {
        log_msg(LOG_NOTICE, "audit chain head at start: entry %lld, hash %s", seq,
                seq ? hash : "(empty)");
    }
}

static int load_rule_files(struct daemon *daemon)
{
    char err[512];

    if (reload_rule_files(daemon, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "%s", err);
        return -1;
    }
    log_msg(LOG_NOTICE, "threshold set '%s' version %.12s: %zu rows from %s",
            daemon->thresholds.label, daemon->thresholds.version, daemon->thresholds.count,
            daemon->config.thresholds);
    log_msg(LOG_NOTICE, "rule set '%s' version %.12s: %zu rules from %s", daemon->rules.label,
            daemon->rules.version, daemon->rules.count, daemon->config.rules);
    return 0;
}

/* Takes an exclusive lock that a second toxlabd on the same database fails
 * to get. A separate file, because closing any descriptor of the database
 * itself would drop SQLite's own locks. */
static int lock_database(struct daemon *daemon)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%.*s-toxlabd.lock", PATH_MAX - 16, daemon->config.database);
    daemon->db_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (daemon->db_lock_fd < 0) {
        log_msg(LOG_ERR, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(daemon->db_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_msg(LOG_ERR, "%s: another toxlabd uses this database (%s is locked)",
                daemon->config.database, path);
        return -1;
    }
    return 0;
}

static int open_database(struct daemon *daemon)
{
    char err[512];

    if (lock_database(daemon) != 0) {
        return -1;
    }

    if (db_open(daemon->config.database, daemon->config.busy_timeout_ms, &daemon->db, err,
                sizeof(err)) != 0) {
        log_msg(LOG_ERR, "%s", err);
        return -1;
    }
    storage_apply_limit(daemon);
    if (db_threshold_set_store(daemon->db, &daemon->thresholds) != 0 ||
        db_rule_set_store(daemon->db, &daemon->rules) != 0) {
        log_msg(LOG_ERR, "%s: storing the threshold set or rule set failed",
                daemon->config.database);
        return -1;
    }
    return 0;
}

/* Tests left open by an earlier run end as interrupted. When their analyzer
 * still runs them, the idle line reports that and the test resumes. */
static void interrupt_left_open(const struct test_row *row, void *user)
{
    struct daemon *daemon = user;

    log_msg(LOG_WARNING, "%s: test %s was %s when the daemon stopped; marked interrupted",
            row->instrument, row->id, row->state);
    if (db_begin(daemon->db) != 0 ||
        db_test_set_state(daemon->db, row->id, "interrupted",
                          "the daemon restarted during the test") != 0 ||
        (db_stop_ended(daemon->db, row->stop_id) == 1 &&
         db_stop_decide(daemon->db, daemon->config.lab_id, row->stop_id, &daemon->config.alcohol,
                        &daemon->rules) != 0) ||
        db_commit(daemon->db) != 0) {
        log_msg(LOG_ERR, "%s: test %s: marking it interrupted failed: %s", row->instrument, row->id,
                db_errmsg(daemon->db));
        db_rollback(daemon->db);
    }
}

/* Logs the timers in force, because a response timeout too short for the
 * analyzer shows only as timeouts. */
static void log_instrument_settings(const struct instrument *inst)
{
    const struct instrument_config *c = inst->config;

    log_msg(LOG_NOTICE,
            "%s: %s driver on %s: response timeout %d ms, poll every %d ms, offline after %d "
            "failed requests, reconnect after %d ms doubling to %d ms, grace period %d ms",
            c->id, inst->ops->name, c->device, c->response_timeout_ms, c->poll_interval_ms,
            c->offline_after_failures, c->retry_ms, c->retry_max_ms, c->grace_period_ms);
}

static int start_lines(struct daemon *daemon)
{
    for (size_t i = 0; i < daemon->config.instrument_count; i++) {
        struct instrument *inst = &daemon->instruments[i];
        inst->config = &daemon->config.instruments[i];
        inst->watch = -1;
        inst->ops = driver_find(inst->config->driver);
        if (line_start(&inst->line, inst->config, inst->ops) != 0) {
            log_msg(LOG_ERR, "%s: cannot start the line thread", inst->config->id);
            return -1;
        }
        daemon->instrument_count++;
        log_instrument_settings(inst);
    }
    return 0;
}

/* Stops every line with one shared deadline, so that several analyzers
 * stuck in long response timeouts delay the exit only once. */
static void stop_lines(struct daemon *daemon)
{
    struct timespec deadline;

    for (size_t i = 0; i < daemon->instrument_count; i++) {
        line_request_stop(&daemon->instruments[i].line);
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += LINE_STOP_TIMEOUT_MS / 1000;
    for (size_t i = 0; i < daemon->instrument_count; i++) {
        line_stop(&daemon->instruments[i].line, &deadline);
    }
}

/* Blocks the signals the loop reads from a signalfd; threads inherit the mask. */
static int open_signals(void)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Returns false when the daemon should stop. */
/* Reads the configuration file again and applies what can change. */
static void reload(struct daemon *daemon, const struct options *opts)
{
    static struct config fresh;

    log_msg(LOG_NOTICE, "SIGHUP: reading %s and the threshold set again", opts->config_path);
    if (load_config(opts, &fresh) != 0) {
        log_msg(LOG_ERR, "reload: the configuration was rejected; the one in force stays");
        reload_configuration(daemon, NULL);
        return;
    }
    reload_configuration(daemon, &fresh);
}

static bool handle_signal(struct daemon *daemon, const struct options *opts, int signal_fd)
{
    struct signalfd_siginfo info;

    if (read(signal_fd, &info, sizeof(info)) != sizeof(info)) {
        return true;
    }
    if (info.ssi_signo == SIGHUP) {
        reload(daemon, opts);
        return true;
    }
    log_msg(LOG_NOTICE, "%s received: stopping", strsignal((int)info.ssi_signo));
    return false;
}

static void drain_line_events(struct daemon *daemon)
{
    stops_handle_events(daemon, line_events_take());
}

enum { POLL_SIGNALS, POLL_LINES, POLL_LISTEN, POLL_HOTPLUG, POLL_CLIENTS };

static int run_loop(struct daemon *daemon, const struct options *opts, int signal_fd,
                    int hotplug_fd)
{
    struct pollfd fds[POLL_CLIENTS + 1024];
    struct client *polled[1024];

    for (;;) {
        size_t count = POLL_CLIENTS;
        int timeout = stops_check_grace(daemon);
        fds[POLL_SIGNALS] = (struct pollfd){.fd = signal_fd, .events = POLLIN};
        fds[POLL_LINES] = (struct pollfd){.fd = line_events_fd(), .events = POLLIN};
        /* After accept ran out of descriptors, the listening socket rests
         * until a client leaves or a second has passed. */
        if (daemon->accept_paused &&
            time_monotonic_ms() - daemon->accept_paused_ms >= IDLE_WAKE_MS) {
            daemon->accept_paused = false;
        }
        fds[POLL_LISTEN] =
            (struct pollfd){.fd = daemon->accept_paused ? -1 : daemon->listen_fd, .events = POLLIN};
        fds[POLL_HOTPLUG] = (struct pollfd){.fd = hotplug_fd, .events = POLLIN};
        for (struct client *c = daemon->clients; c != NULL && count < POLL_CLIENTS + 1024;
             c = c->next) {
            polled[count - POLL_CLIENTS] = c;
            fds[count++] =
                (struct pollfd){.fd = c->fd, .events = POLLIN | (c->output_used ? POLLOUT : 0)};
        }
        if (timeout < 0 || timeout > IDLE_WAKE_MS) {
            timeout = IDLE_WAKE_MS;
        }
        if (poll(fds, count, timeout) < 0 && errno != EINTR) {
            log_msg(LOG_ERR, "poll failed: %s", strerror(errno));
            return -1;
        }
        if ((fds[POLL_SIGNALS].revents & POLLIN) && !handle_signal(daemon, opts, signal_fd)) {
            return 0;
        }
        if (fds[POLL_LINES].revents & POLLIN) {
            drain_line_events(daemon);
        }
        if (fds[POLL_LISTEN].revents & POLLIN) {
            server_accept(daemon);
        }
        if (fds[POLL_HOTPLUG].revents & POLLIN) {
            hotplug_handle(daemon, hotplug_fd);
        }
        for (size_t i = POLL_CLIENTS; i < count; i++) {
            if (fds[i].revents & POLLOUT) {
                server_flush(polled[i - POLL_CLIENTS]);
            }
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                server_read(daemon, polled[i - POLL_CLIENTS]);
            }
        }
        server_reap(daemon);
    }
}

int main(int argc, char **argv)
{
    static struct daemon daemon = {.listen_fd = -1, .db_lock_fd = -1};
    struct options opts = {0};
    char err[512];
    int status = EXIT_FAILURE;
    int signal_fd;
    int hotplug_fd = -1;

    /* The database, its backups and the socket's folder hold full subject IDs. */
    umask(027);
    int parsed = parse_options(argc, argv, &opts);
    if (parsed >= 0) {
        return parsed;
    }
    if (opts.verbosity >= 2) {
        log_set_level(LOG_DEBUG);
    } else if (opts.verbosity == 1) {
        log_set_level(LOG_INFO);
    } else {
        log_set_level(LOG_NOTICE);
    }
    /* systemd sets INVOCATION_ID for the processes of a unit. */
    if (getenv("INVOCATION_ID") != NULL) {
        log_to_syslog();
    }
    if (load_config(&opts, &daemon.config) != 0) {
        return EXIT_FAILURE;
    }
    setenv("TZ", daemon.config.timezone, 1);
    tzset();
    log_msg(LOG_NOTICE, "toxlabd %s starting: lab %s, database %s, socket %s, uid %u",
            TOXLAB_VERSION, daemon.config.lab_id, daemon.config.database, daemon.config.socket_path,
            (unsigned)getuid());

    signal_fd = open_signals();
    if (signal_fd < 0 || line_events_init() != 0) {
        log_msg(LOG_ERR, "cannot set up signals or the line event queue: %s", strerror(errno));
        return EXIT_FAILURE;
    }
    if (load_rule_files(&daemon) != 0 || open_database(&daemon) != 0) {
        goto out;
    }
    db_open_tests(daemon.db, interrupt_left_open, &daemon);
    if (server_listen(&daemon, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "%s", err);
        goto out;
    }
    if (start_lines(&daemon) != 0) {
        goto out;
    }
    hotplug_fd = hotplug_open(&daemon);
    hotplug_list_ports(&daemon);
    sd_notify(0, "READY=1\nSTATUS=serving clients");
    log_start_head(&daemon);
    log_msg(LOG_NOTICE, "ready: %zu instrument%s, listening on %s", daemon.instrument_count,
            daemon.instrument_count == 1 ? "" : "s", daemon.config.socket_path);
    status = run_loop(&daemon, &opts, signal_fd, hotplug_fd) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    sd_notify(0, "STOPPING=1");

out:
    stop_lines(&daemon);
    drain_line_events(&daemon);
    if (hotplug_fd >= 0) {
        close(hotplug_fd);
    }
    server_close(&daemon);
    if (daemon.db != NULL) {
        db_close(daemon.db);
    }
    thresholds_free(&daemon.thresholds);
    rules_free(&daemon.rules);
    if (daemon.db_lock_fd >= 0) {
        close(daemon.db_lock_fd);
    }
    log_msg(LOG_NOTICE, "toxlabd stopped (%s)", status == EXIT_SUCCESS ? "clean" : "error");
    return status;
}
