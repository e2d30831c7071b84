/* Breath alcohol to blood equivalent and the GB 19522 bands, in exact
 * integer arithmetic: a band is decided on the raw breath value, never on a
 * rounded figure shown to a person. */
#ifndef TOXLAB_ALCOHOL_H
#define TOXLAB_ALCOHOL_H

#include <stdint.h>

enum alcohol_band {
    ALCOHOL_BELOW, /* under the drink-driving limit */
    ALCOHOL_DRINK, /* drink-driving: from the drink limit to below the drunk limit */
    ALCOHOL_DRUNK, /* drunk-driving: at or above the drunk limit */
};

/* Returns the blood equivalent in micro mg/100 mL of a breath value given in
 * units of 0.1 ug/L, at a breath-to-blood factor such as 2200:
 * mg/100 mL = ug/L x factor / 10000, so micro-units = raw x factor x 10. */
int64_t alcohol_blood_micro(uint32_t breath_raw, int factor);

/* Returns the band of a blood equivalent; limits are micro mg/100 mL. */
enum alcohol_band alcohol_band_of(int64_t blood_micro, int64_t drink_micro, int64_t drunk_micro);

const char *alcohol_band_name(enum alcohol_band band); /* "below", "drink", "drunk" */

#endif
