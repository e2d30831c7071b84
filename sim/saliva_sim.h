/* Simulated saliva analyzer: a Modbus RTU slave on the pty's master side. */
#ifndef TOXLAB_SIM_SALIVA_SIM_H
#define TOXLAB_SIM_SALIVA_SIM_H

#include "sim/sim_kind.h"

/* `toxlab-sim saliva`, with the scenario of sim/scenario.h. */
extern const struct sim_kind saliva_sim_kind;

#endif
