/* Interpretation of one analyte against the threshold set in force on the
 * specimen's collection date. */
#ifndef TOXLAB_INTERPRET_H
#define TOXLAB_INTERPRET_H

#include "controller/thresholds.h"

#include <stdbool.h>
#include <stdint.h>

enum outcome {
    OUTCOME_NEGATIVE,
    OUTCOME_POSITIVE,    /* confirm tier */
    OUTCOME_PRESUMPTIVE, /* screen tier */
    OUTCOME_INVALID,
};

struct reading_in {
    const char *matrix;
    const char *tier;
    const char *analyte;
    int64_t value_micro;
    const char *unit;
    bool over_range;            /* the value is the top of the range: ">value" */
    bool under_range;           /* the value is the bottom of the range: "<value" */
    const char *invalid_reason; /* set when the device reported the reading invalid */
    int collection_date;        /* YYYYMMDD */
};

struct interpretation {
    enum outcome outcome;
    char reason[96];                 /* for OUTCOME_INVALID */
    const struct threshold_row *row; /* NULL when no cutoff applies */
};

void interpret_reading(const struct threshold_set *set, const struct reading_in *in,
                       struct interpretation *out);

const char *outcome_name(enum outcome outcome);

#endif
