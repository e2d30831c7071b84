/* Decimal values as scaled integers: micro-units (1e-6) in an int64_t, so
 * cutoffs and measurements compare exactly, never as binary floats. */
#ifndef TOXLAB_DECIMAL_H
#define TOXLAB_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define DECIMAL_SCALE 1000000LL
#define DECIMAL_PLACES 6
/* Largest magnitude accepted: 10^12 units, far beyond any concentration. */
#define DECIMAL_MAX_UNITS 1000000000000LL

/* Parses decimal text ("50", "0.05", "-1.5", "+2") into micro-units.
 * Returns 0, or -1 on empty text, stray characters, more than six
 * decimal places or a magnitude over DECIMAL_MAX_UNITS. */
int decimal_parse(const char *text, int64_t *micro);

/* Formats micro-units with the fewest decimals that keep the value exact,
 * at least `min_places` (e.g. 50000000 -> "50", 120500000 -> "120.5"). */
void decimal_format(int64_t micro, int min_places, char *out, size_t size);

#endif
