#include "controller/interpret.h"

#include <stdio.h>
#include <string.h>

const char *outcome_name(enum outcome outcome)
{
    switch (outcome) {
    case OUTCOME_NEGATIVE:
        return "negative";
    case OUTCOME_POSITIVE:
        return "positive";
    case OUTCOME_PRESUMPTIVE:
        return "presumptive";
    default:
        return "invalid";
    }
}

static void set_invalid(struct interpretation *out, const char *reason)
{
    out->outcome = OUTCOME_INVALID;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* Compares value (in value_unit) with cutoff (in cutoff_unit) exactly.
 * Returns -1, 0 or 1 as value is below, equal to or above the cutoff, or
 * -2 when the units cannot be converted into each other. */
static int compare_with_cutoff(int64_t value, const char *value_unit, int64_t cutoff,
                               const char *cutoff_unit)
{
    int value_family;
    int cutoff_family;
    int64_t value_factor;
    int64_t cutoff_factor;

    if (unit_lookup(value_unit, &value_family, &value_factor) != 0 ||
        unit_lookup(cutoff_unit, &cutoff_family, &cutoff_factor) != 0 ||
        value_family != cutoff_family) {
        return -2;
    }
    __int128 scaled_value = (__int128)value * value_factor;
    __int128 scaled_cutoff = (__int128)cutoff * cutoff_factor;
    return (scaled_value > scaled_cutoff) - (scaled_value < scaled_cutoff);
}

void interpret_reading(const struct threshold_set *set, const struct reading_in *in,
                       struct interpretation *out)
{
    enum outcome above = strcmp(in->tier, "confirm") == 0 ? OUTCOME_POSITIVE : OUTCOME_PRESUMPTIVE;

    memset(out, 0, sizeof(*out));
    out->row = thresholds_find(set, in->matrix, in->tier, in->analyte, in->collection_date);
    if (in->invalid_reason != NULL) {
        set_invalid(out, in->invalid_reason);
        return;
    }
    if (out->row == NULL) {
        set_invalid(out, "no cutoff configured");
        return;
    }
    int order =
        compare_with_cutoff(in->value_micro, in->unit, out->row->cutoff_micro, out->row->unit);
    if (order == -2) {
        set_invalid(out, "unit cannot be converted");
        return;
    }
    /* A censored ">x" is positive only when x >= cutoff, and "<x" negative only when x <= cutoff.
     */
    if (in->over_range) {
        if (order >= 0) {
            out->outcome = above;
        } else {
            set_invalid(out, "over range below the cutoff");
        }
        return;
    }
    if (in->under_range) {
        if (order <= 0) {
            out->outcome = OUTCOME_NEGATIVE;
        } else {
            set_invalid(out, "under range above the cutoff");
        }
        return;
    }
    out->outcome = order >= 0 ? above : OUTCOME_NEGATIVE;
}
