/* toxlab-sim: simulated analyzers on a pseudo-terminal, for development and
 * tests without hardware. The options, event lines, standard input commands
 * and scenario format are documented in docs/sim.md. */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sim/breath_sim.h"
#include "sim/hair_sim.h"
#include "sim/paced.h"
#include "sim/pty.h"
#include "sim/saliva_sim.h"
#include "sim/sim_kind.h"

/* Exit statuses. */
#define EXIT_RUNTIME 1 /* the pty or the event loop failed */
#define EXIT_USAGE 2   /* bad command line or scenario */

#define MAX_SLAVE 247

static const struct sim_kind *const kinds[] = {
    &saliva_sim_kind,
    &breath_sim_kind,
    &hair_sim_kind,
};

struct options {
    const struct sim_kind *kind;
    const char *scenario_path; /* NULL for the built-in scenario */
    const char *link;          /* NULL unless --link */
    int slave;                 /* 0 unless -s */
    bool exit_on_eof;
    bool trace_requests;
    int paced_baud; /* 0 unless --paced */
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: toxlab-sim KIND [options] [SCENARIO]\n"
                 "\n"
                 "Opens a pseudo-terminal, prints its path and behaves like an analyzer of\n"
                 "KIND on it until SIGTERM, SIGINT or 'quit' on standard input. SCENARIO is\n"
                 "an INI file setting identity, phase durations and results (docs/sim.md).\n"
                 "\n"
                 "Kinds:\n");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        fprintf(out, "  %-8s %s\n", kinds[i]->name, kinds[i]->summary);
    }
    fprintf(out, "\n"
                 "Options:\n"
                 "  -s, --slave N      Modbus slave address, 1 to 247 (default: the scenario's,\n"
                 "                     or 1)\n"
                 "      --link PATH    keep a symbolic link at PATH pointing at the pty\n"
                 "      --exit-on-eof  stop when standard input reaches end of file\n"
                 "      --trace-requests\n"
                 "                     print a 'request' event line for each request\n"
                 "      --paced        send replies at the wire speed of a serial line, 11 bits\n"
                 "                     a character, after the request's own wire time and a\n"
                 "                     3.5-character gap (for benchmarks)\n"
                 "      --baud N       the line speed of --paced in bit/s (default 19200)\n"
                 "  -h, --help         print this help and exit\n"
                 "\n"
                 "Exit status: 0 after a normal stop, 1 when the pty fails, 2 for a bad\n"
                 "command line or scenario.\n");
}

static const struct sim_kind *find_kind(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kinds[i]->name, name) == 0) {
            return kinds[i];
        }
    }
    return NULL;
}

static bool parse_baud(const char *text, int *baud)
{
    char *end;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < 300 || value > 4000000) {
        return false;
    }
    *baud = (int)value;
    return true;
}

static bool parse_slave(const char *text, int *slave)
{
    char *end;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < 1 || value > MAX_SLAVE) {
        return false;
    }
    *slave = (int)value;
    return true;
}

/* Returns 0, -1 after printing a usage error, or 1 when the help was
 * printed. */
static int parse_options(int argc, char **argv, struct options *opts)
{
    enum { OPT_LINK = 256, OPT_EXIT_ON_EOF, OPT_TRACE_REQUESTS, OPT_PACED, OPT_BAUD };
    static const struct option long_options[] = {
        {"slave", required_argument, NULL, 's'},
        {"link", required_argument, NULL, OPT_LINK},
        {"exit-on-eof", no_argument, NULL, OPT_EXIT_ON_EOF},
        {"trace-requests", no_argument, NULL, OPT_TRACE_REQUESTS},
        {"paced", no_argument, NULL, OPT_PACED},
        {"baud", required_argument, NULL, OPT_BAUD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    bool paced = false;
    int baud = PACED_DEFAULT_BAUD;

    memset(opts, 0, sizeof *opts);
    while ((c = getopt_long(argc, argv, "s:h", long_options, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!parse_slave(optarg, &opts->slave)) {
                fprintf(stderr, "toxlab-sim: invalid slave address '%s' (expected 1 to %d)\n",
                        optarg, MAX_SLAVE);
                return -1;
            }
            break;
        case OPT_LINK:
            opts->link = optarg;
            break;
        case OPT_EXIT_ON_EOF:
            opts->exit_on_eof = true;
            break;
        case OPT_TRACE_REQUESTS:
            opts->trace_requests = true;
            break;
        case OPT_PACED:
            paced = true;
            break;
        case OPT_BAUD:
            if (!parse_baud(optarg, &baud)) {
                fprintf(stderr, "toxlab-sim: invalid baud rate '%s' (expected 300 to 4000000)\n",
                        optarg);
                return -1;
            }
            break;
        case 'h':
            print_usage(stdout);
            return 1;
        default:
            fprintf(stderr, "Try 'toxlab-sim --help' for more information.\n");
            return -1;
        }
    }

    opts->paced_baud = paced ? baud : 0;

    int operands = argc - optind;
    if (operands < 1 || operands > 2) {
        fprintf(stderr, "toxlab-sim: expected KIND and at most one SCENARIO\n");
        print_usage(stderr);
        return -1;
    }

    opts->kind = find_kind(argv[optind]);
    if (opts->kind == NULL) {
        fprintf(stderr, "toxlab-sim: unknown kind '%s' (see toxlab-sim --help)\n", argv[optind]);
        return -1;
    }
    if (operands == 2) {
        opts->scenario_path = argv[optind + 1];
    }
    return 0;
}

/* Blocks SIGTERM and SIGINT and returns a signalfd that reports them, so the
 * event loop receives a stop request between two polls without a race.
 * SIGPIPE is ignored because a closed standard output must not end the
 * device. */
static int open_signal_fd(void)
{
    sigset_t stop_signals;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) < 0) {
        perror("toxlab-sim: sigprocmask");
        return -1;
    }

    int fd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        perror("toxlab-sim: signalfd");
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct options opts;
    struct sim_pty pty;

    int parsed = parse_options(argc, argv, &opts);
    if (parsed != 0) {
        return parsed > 0 ? EXIT_SUCCESS : EXIT_USAGE;
    }

    int signal_fd = open_signal_fd();
    if (signal_fd < 0) {
        return EXIT_RUNTIME;
    }

    void *scenario = opts.kind->load_scenario(opts.scenario_path);
    if (scenario == NULL) {
        return EXIT_USAGE;
    }

    if (opts.paced_baud > 0 && paced_setup() != 0) {
        perror("toxlab-sim: prctl(PR_SET_TIMERSLACK)");
    }
    if (sim_pty_open(&pty, opts.link) < 0) {
        opts.kind->free_scenario(scenario);
        return EXIT_RUNTIME;
    }
    printf("pty %s\n", pty.path);
    fflush(stdout);

    int scenario_slave = opts.kind->scenario_slave(scenario);
    struct sim_run run = {
        .pty = &pty,
        .slave = opts.slave != 0 ? opts.slave : (scenario_slave != 0 ? scenario_slave : 1),
        .exit_on_eof = opts.exit_on_eof,
        .trace_requests = opts.trace_requests,
        .signal_fd = signal_fd,
        .paced_baud = opts.paced_baud,
    };
    int status = opts.kind->run(&run, scenario);

    sim_pty_close(&pty);
    opts.kind->free_scenario(scenario);
    close(signal_fd);
    return status;
}
