/* Wire faults of the Modbus sims: what the host reads on the line (a bad
 * CRC, stray bytes, a missing, cut, late, busy or doubled reply, a pty that
 * goes away, an analyzer that restarts). A scenario schedules them by
 * request number in [request.N] sections or by test number with a
 * [test.N] fault key, and the `fault` command on standard input arms one
 * at once. docs/sim.md describes all three. */
#ifndef TOXLAB_SIM_WIRE_FAULT_H
#define TOXLAB_SIM_WIRE_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "sim/scenario_parse.h"

#define WIRE_FAULT_MAX_COUNT 1000000u
#define WIRE_FAULT_MAX_MS 600000u

enum wire_fault_kind {
    WIRE_FAULT_NONE = 0,
    WIRE_FAULT_CORRUPT,     /* the reply's CRC is wrong */
    WIRE_FAULT_NOISE,       /* stray bytes come before the reply */
    WIRE_FAULT_DROP,        /* the request is carried out, its reply never sent */
    WIRE_FAULT_TRUNCATE,    /* the first half of the reply, then silence */
    WIRE_FAULT_SLOW,        /* the reply is sent delay_ms late */
    WIRE_FAULT_BUSY,        /* exception 6 (server device busy), request not carried out */
    WIRE_FAULT_UNPLUG,      /* the pty closes; a new one opens after delay_ms or `plug` */
    WIRE_FAULT_POWER_CYCLE, /* the analyzer drops its test and restarts idle */
    WIRE_FAULT_RESEND,      /* the reply is sent twice */
};

/* One fault: kind, how many requests it applies to, and its delay. */
struct wire_fault {
    enum wire_fault_kind kind;
    unsigned count;    /* requests it applies to; unplug and power-cycle use one */
    unsigned delay_ms; /* slow: reply delay; unplug: time unplugged, 0 until `plug` */
    int address;       /* first register of the requests it applies to, or -1 for any */
};

/* A [request.N] section: the fault is armed when request N arrives. */
struct wire_fault_entry {
    unsigned request;
    struct wire_fault fault;
    int line; /* of the section's first key, for messages */
};

struct wire_fault_plan {
    struct wire_fault_entry *entries;
    size_t count;
};

/* The keys of a [test.N] section that shape a wire fault named by its
 * `fault` key. Line numbers are 0 for keys the file did not set. */
struct wire_fault_test_keys {
    unsigned count;    /* fault_count: requests it acts on */
    unsigned delay_ms; /* fault_delay_ms */
    int count_line;
    int delay_line;
};

/* Returns the kind's name in scenarios, commands and events ("power-cycle"). */
const char *wire_fault_name(enum wire_fault_kind kind);

/* Parses a fault name. Returns false for an unknown one. */
bool wire_fault_parse_kind(const char *name, enum wire_fault_kind *kind);

/* Handles one key when section is "request.N": fault, count, delay_ms or
 * register.
 * Returns false for other sections, so the kind's parser handles them.
 * Errors are reported through p. */
bool wire_fault_handle_key(struct scenario_parser *p, struct wire_fault_plan *plan,
                           const char *section, const char *name, const char *value);

/* Reports each [request.N] section without a fault key. */
void wire_fault_check_plan(struct scenario_parser *p, const struct wire_fault_plan *plan);

/* Handles fault_count and fault_delay_ms of a [test.N] section. Returns
 * false for other keys. */
bool wire_fault_handle_test_key(struct scenario_parser *p, const char *section, const char *name,
                                const char *value, struct wire_fault_test_keys *keys);

/* Returns the wire fault a test's `fault` key names (a value from
 * SCENARIO_FAULT_WIRE on), with its count and delay. */
struct wire_fault wire_fault_for_test(int fault, const struct wire_fault_test_keys *keys);

/* Returns the fault scheduled for request number `request`, or NULL. */
const struct wire_fault *wire_fault_at(const struct wire_fault_plan *plan, unsigned request);

void wire_fault_plan_free(struct wire_fault_plan *plan);

/* Parses the arguments of the `fault` command: "KIND [COUNT [DELAY_MS
 * [REGISTER]]]" or "off". Returns false with *error set for bad
 * arguments. */
bool wire_fault_parse_command(const char *arguments, struct wire_fault *fault, const char **error);

/* The delay that a kind uses when none is given. */
unsigned wire_fault_default_delay(enum wire_fault_kind kind);

#endif
