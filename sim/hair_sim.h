#ifndef TOXLAB_SIM_HAIR_SIM_H
#define TOXLAB_SIM_HAIR_SIM_H

#include "sim/sim_kind.h"

/* `toxlab-sim hair`: an ASTM hair analyzer (docs/sim.md, docs/hair-astm.md). */
extern const struct sim_kind hair_sim_kind;

#endif
