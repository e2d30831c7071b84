/* Wall-clock and monotonic time helpers. Stored timestamps are UTC text
 * with milliseconds ("2026-12-04T07:12:03.120Z"); calendar dates are local
 * dates in the configured zone, as YYYYMMDD integers. */
#ifndef TOXLAB_TIMEFMT_H
#define TOXLAB_TIMEFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TIMESTAMP_SIZE 32

int64_t time_monotonic_ms(void);
int64_t time_realtime_ms(void);

/* Formats milliseconds since the epoch as UTC RFC 3339 text. */
void time_format_utc(int64_t epoch_ms, char out[TIMESTAMP_SIZE]);

/* Parses RFC 3339 text with a 'Z' or numeric offset (fractional seconds
 * optional). Returns 0, or -1 when the text is not such a time. */
int time_parse_rfc3339(const char *text, int64_t *epoch_ms);

/* Returns the local calendar date (YYYYMMDD) of a time in the process's
 * zone (the daemon sets TZ from its configuration at start-up). */
int time_local_date(int64_t epoch_ms);

/* Formats a YYYYMMDD integer as YYYY-MM-DD; parses the reverse (0 on error). */
void time_format_date(int yyyymmdd, char out[11]);
int time_parse_date(const char *text);

/* Reports whether the kernel considers the system clock synchronised. */
bool time_clock_synchronised(void);

#endif
