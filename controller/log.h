/* Logging for the daemon: stderr in the foreground, with syslog levels and
 * a verbosity raised by -d. Repeated errors are throttled by the caller
 * through log_throttle. */
#ifndef TOXLAB_LOG_H
#define TOXLAB_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_set_level(int level); /* LOG_ERR .. LOG_DEBUG */

/* Sends the log to syslog instead of stderr (under systemd). */
void log_to_syslog(void);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counter for one repeating condition: the first `burst` occurrences are
 * logged, then every `every`th, with the count of those skipped. */
struct log_throttle {
    unsigned count;
};

/* Returns true when this occurrence should be logged. */
bool log_throttle_pass(struct log_throttle *throttle);
void log_throttle_reset(struct log_throttle *throttle);

#endif
