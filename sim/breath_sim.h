/* Simulated breath-alcohol analyzer: a Modbus RTU slave on the pty's
 * master side. */
#ifndef TOXLAB_SIM_BREATH_SIM_H
#define TOXLAB_SIM_BREATH_SIM_H

#include "sim/sim_kind.h"

/* `toxlab-sim breath`, with the scenario of sim/breath_scenario.h. */
extern const struct sim_kind breath_sim_kind;

#endif
