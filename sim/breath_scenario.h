/* Scenario files for toxlab-sim breath: identity, phase durations and what
 * each test returns. The format is documented in docs/sim.md. */
#ifndef TOXLAB_SIM_BREATH_SCENARIO_H
#define TOXLAB_SIM_BREATH_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/breath_map.h"
#include "sim/scenario_parse.h"
#include "sim/wire_fault.h"

/* Result and faults of one test. Line numbers are 0 for keys the file did
 * not set, so that a key set twice can name its first line. */
struct breath_test {
    uint32_t alcohol;    /* breath alcohol in units of 0.1 ug/L */
    uint16_t flags;      /* BREATH_FLAG_* bits */
    int16_t temperature; /* ambient temperature in units of 0.1 degC */
    bool never_blows;    /* blow = never: the test stays in blow-requested */
    uint16_t error;      /* enum breath_error, or BREATH_ERR_NONE for a result */
    enum scenario_fault fault;
    struct wire_fault_test_keys wire; /* fault_count and fault_delay_ms */

    int alcohol_line;
    int flags_line;
    int temperature_line;
    int blow_line;
    int error_line;
    int fault_line;
};

struct breath_numbered_test {
    unsigned number;
    struct breath_test test;
};

struct breath_scenario {
    char path[512]; /* file the scenario came from, or empty for the defaults */

    char serial[BREATH_SERIAL_CHARS + 1];
    char firmware[BREATH_FIRMWARE_CHARS + 1];
    uint32_t calibration_date; /* YYYYMMDD */
    uint32_t calibration_due;  /* YYYYMMDD */
    char mouthpiece_lot[BREATH_LOT_CHARS + 1];
    int slave; /* 0 when the file sets none */

    uint32_t warmup_ms;
    uint32_t blow_request_ms;
    uint32_t blowing_ms;
    uint32_t analysing_ms;

    struct breath_test default_test;
    struct breath_numbered_test *tests;
    size_t test_count;

    struct wire_fault_plan requests; /* [request.N] sections */
};

/* Fills sc with the built-in scenario: the defaults of docs/sim.md, every
 * test reading 0 ug/L at 21.0 degC without flags. */
void breath_scenario_init(struct breath_scenario *sc);

/* Reads the file at path over the values already in sc. Returns 0, or -1
 * after printing one line on stderr for each error, naming file, line and
 * key. */
int breath_scenario_load(struct breath_scenario *sc, const char *path);

/* Returns the [test.N] section for test number N, or else [default]. */
const struct breath_test *breath_scenario_test_for(const struct breath_scenario *sc,
                                                   unsigned number);

void breath_scenario_free(struct breath_scenario *sc);

#endif
