/* Simulated saliva analyzer: a Modbus RTU slave on the pty's master side. */
#ifndef TOXLAB_SIM_SALIVA_SIM_H
#define TOXLAB_SIM_SALIVA_SIM_H

#include <stdbool.h>

#include "sim/pty.h"
#include "sim/scenario.h"

/* Settings every kind's run function receives from main. */
struct sim_run {
    struct sim_pty *pty;
    const struct scenario *scenario;
    int slave;        /* Modbus slave address, 1 to 247 */
    bool exit_on_eof; /* stop when standard input reaches end of file */
    int signal_fd;    /* signalfd that becomes readable on SIGTERM or SIGINT */
};

/* Serves requests and standard input commands until a stop signal, `quit`,
 * or end of standard input with exit_on_eof. Prints the `ready` event first
 * and `stop` last. Returns the process exit status. */
int saliva_sim_run(const struct sim_run *run);

#endif
