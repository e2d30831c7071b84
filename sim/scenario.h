/* Scenario files for toxlab-sim saliva: identity, phase durations and what
 * each test returns. The format is documented in docs/sim.md. */
#ifndef TOXLAB_SIM_SCENARIO_H
#define TOXLAB_SIM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/saliva_map.h"
#include "sim/scenario_parse.h"
#include "sim/wire_fault.h"

/* Result and faults of one test. Masks have bit (1 << analyte code). Line
 * numbers are 0 for keys the file did not set. They let errors found after
 * parsing name their line. */
struct scenario_test {
    uint32_t concentration[SALIVA_ANALYTE_LIMIT]; /* ng/mL times SALIVA_CONC_SCALE */
    uint16_t outcome;                             /* enum saliva_result_status */
    uint32_t over_range;
    uint32_t under_range;
    uint32_t control_invalid;
    uint16_t error; /* enum saliva_error, or SALIVA_ERR_NONE for a result */
    enum scenario_fault fault;
    struct wire_fault_test_keys wire; /* fault_count and fault_delay_ms */

    int concentration_line[SALIVA_ANALYTE_LIMIT];
    int outcome_line;
    int over_range_line;
    int under_range_line;
    int control_invalid_line;
    int error_line;
    int fault_line;
};

struct scenario_numbered_test {
    unsigned number;
    struct scenario_test test;
};

struct scenario {
    char path[512]; /* file the scenario came from, or empty for the defaults */

    char serial[SALIVA_SERIAL_CHARS + 1];
    char firmware[SALIVA_FIRMWARE_CHARS + 1];
    uint32_t calibration_date; /* YYYYMMDD */
    char cartridge_lot[SALIVA_LOT_CHARS + 1];
    uint32_t cartridge_expiry; /* YYYYMMDD */
    int slave;                 /* 0 when the file sets none */
    uint16_t panel[SALIVA_MAX_PANEL];
    size_t panel_size;

    uint32_t cartridge_ms;
    uint32_t collecting_ms;
    uint32_t analysing_ms;

    struct scenario_test default_test;
    struct scenario_numbered_test *tests;
    size_t test_count;

    struct wire_fault_plan requests; /* [request.N] sections */
};

/* Fills sc with the built-in scenario (the example of docs/sim.md, every
 * analyte reading 0). */
void scenario_init(struct scenario *sc);

/* Reads the file at path over the values already in sc. Returns 0, or -1
 * after printing one line on stderr for each error, naming file, line and
 * key. */
int scenario_load(struct scenario *sc, const char *path);

/* Returns the [test.N] section for test number N, or else [default]. */
const struct scenario_test *scenario_test_for(const struct scenario *sc, unsigned number);

void scenario_free(struct scenario *sc);

#endif
