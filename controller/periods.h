/* Periods counted in calendar years, as the licence rules count them. The
 * day of the event is not counted. A period of N years ends on the same day
 * of the same month N years later, or on the last day of that month when it
 * has no such day (29 February plus 3 years ends on 28 February). That end
 * day is the last restricted day. This is one reading of the Civil Code,
 * Arts. 201-202, so a province that reads it differently changes only this
 * file. */
#ifndef TOXLAB_PERIODS_H
#define TOXLAB_PERIODS_H

#include <stdbool.h>

/* Returns the last restricted day (YYYYMMDD) of a period of `years` years
 * that starts with an event on `event` (YYYYMMDD). */
int period_last_day(int event, int years);

/* Reports whether `date` still lies in the period: on or before its last day
 * (and not before the event). */
bool period_covers(int event, int years, int date);

/* Returns the day before date (YYYYMMDD). */
int date_previous_day(int date);

#endif
