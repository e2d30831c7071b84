/* Event loop of a simulated Modbus RTU slave on the pty's master side,
 * shared by the Modbus kinds of toxlab-sim. One poll() loop frames
 * requests, replies with frames built by protocol/rtu.c, reads standard
 * input commands, runs the device's timers and prints one event line for
 * each thing that happens. The device (saliva, breath) supplies its
 * registers, commands and timers through struct slave_device_ops. */
#ifndef TOXLAB_SIM_SLAVE_LOOP_H
#define TOXLAB_SIM_SLAVE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/rtu.h"
#include "sim/sim_kind.h"
#include "sim/wire_fault.h"

#define SLAVE_LOOP_INPUT_MAX (2 * RTU_MAX_FRAME)
#define SLAVE_LOOP_COMMAND_MAX 128
#define SLAVE_LOOP_EVENTS_MAX 4096

/* Times are CLOCK_MONOTONIC milliseconds (slave_loop_now_ms). */
struct slave_device_ops {
    /* Moves the device's timers on to now, printing phase events. */
    void (*advance)(void *device, int64_t now);

    /* Returns when advance next has work to do, or -1 when nothing is due. */
    int64_t (*next_due)(const void *device);

    /* Reads count holding registers (function 3) from address into values.
     * Returns 0, or the exception code to reply with. */
    uint8_t (*read)(void *device, uint16_t address, uint16_t count, int64_t now, uint16_t *values);

    /* Carries out a function 6 or 16 write. Returns 0, or the exception code
     * to reply with. Sets *test to the test number that the exception
     * belongs to, when there is one, for the exception event. */
    uint8_t (*write)(void *device, const struct rtu_request *req, int64_t now, unsigned *test);

    /* Runs a standard input command that the loop does not handle itself.
     * Returns false for an unknown command. */
    bool (*command)(void *device, const char *command);

    /* Restarts the analyzer: it forgets any test and result and comes back
     * as after power-on (the power-cycle fault). */
    void (*power_cycle)(void *device, int64_t now);

    /* The device's commands for the unknown-command message, such as
     * "hold, release". */
    const char *command_names;
};

struct slave_loop {
    const struct sim_run *run;
    const struct slave_device_ops *ops;
    void *device;
    uint8_t slave;
    bool muted; /* requests are dropped unanswered, after `mute` or a device's fault=silent */

    bool stall_next;                 /* `stall` given: withhold the next reply */
    uint8_t withheld[RTU_MAX_FRAME]; /* the withheld reply */
    size_t withheld_len;             /* 0 unless a reply is withheld */
    uint8_t withheld_function;       /* function and address of its request */
    uint16_t withheld_address;

    uint8_t input[SLAVE_LOOP_INPUT_MAX]; /* request bytes not yet framed */
    size_t input_len;
    int64_t last_input_ms;
    int64_t input_start_ns; /* when the first unframed byte arrived, for pacing */
    size_t request_len;     /* length of the request being served, for pacing */

    char command[SLAVE_LOOP_COMMAND_MAX]; /* standard input line being read */
    size_t command_len;
    bool command_too_long;
    bool stdin_open;
    bool stopping;

    char events[SLAVE_LOOP_EVENTS_MAX]; /* event lines not yet written to stdout */
    size_t events_len;

    const struct wire_fault_plan *plan; /* the scenario's [request.N] faults, or NULL */
    unsigned requests;                  /* requests for this slave so far */
    struct wire_fault fault;            /* armed fault; count is the requests left */

    uint8_t delayed[RTU_MAX_FRAME]; /* a reply the slow fault sends late */
    size_t delayed_len;             /* 0 unless a reply waits */
    int64_t delayed_due_ms;

    bool unplugged;        /* the pty is closed (unplug fault or command) */
    int64_t plug_due_ms;   /* when a new pty opens, or -1 to wait for `plug` */
    const char *plug_link; /* the --link path to restore on plugging in */
};

int64_t slave_loop_now_ms(void);

/* plan is the scenario's [request.N] faults, or NULL for none. */
void slave_loop_init(struct slave_loop *loop, const struct sim_run *run,
                     const struct slave_device_ops *ops, void *device,
                     const struct wire_fault_plan *plan);

/* Queues one event line (printf format, no newline). The queue is written
 * to stdout after the reply to the request that caused the events, so that
 * a reader of an event can already read that reply. */
void slave_loop_event(struct slave_loop *loop, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Arms a wire fault for the next requests, as the `fault` command does,
 * and prints fault-armed with the test number when test is not 0. */
void slave_loop_arm_fault(struct slave_loop *loop, const struct wire_fault *fault, unsigned test);

/* Serves requests, commands and timers until a stop signal, `quit`, or end
 * of standard input with exit_on_eof, then prints the `stop` event. Returns
 * 0, or 1 when the pty or poll() failed. */
int slave_loop_run(struct slave_loop *loop);

#endif
