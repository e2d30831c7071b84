/* Interface between toxlab-sim's main and each simulated kind: the settings
 * main passes on and the operations a kind provides. main loads the
 * scenario first, so that a bad scenario stops the sim before it opens a
 * pty or prints any event. */
#ifndef TOXLAB_SIM_SIM_KIND_H
#define TOXLAB_SIM_SIM_KIND_H

#include <stdbool.h>

#include "sim/pty.h"

/* Settings every kind's run function receives from main. */
struct sim_run {
    struct sim_pty *pty;
    int slave;           /* Modbus slave address, 1 to 247 */
    bool exit_on_eof;    /* stop when standard input reaches end of file */
    bool trace_requests; /* print a `request` event for each counted request */
    int signal_fd;       /* signalfd that becomes readable on SIGTERM or SIGINT */
    int paced_baud;      /* 0, or the baud rate that --paced replies keep to */
};

struct sim_kind {
    const char *name;    /* KIND on the command line */
    const char *summary; /* one line for --help */

    /* Reads the scenario file at path over the kind's built-in scenario, or
     * returns the built-in one when path is NULL. Returns NULL after
     * printing each error on stderr. */
    void *(*load_scenario)(const char *path);

    /* Returns the slave address the scenario sets, or 0 when it sets none. */
    int (*scenario_slave)(const void *scenario);

    /* Serves requests and standard input commands until a stop signal,
     * `quit`, or end of standard input with exit_on_eof. Prints the `ready`
     * event first and `stop` last. Returns the process exit status. */
    int (*run)(const struct sim_run *run, const void *scenario);

    void (*free_scenario)(void *scenario);
};

#endif
