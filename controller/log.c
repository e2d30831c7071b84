#include "controller/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define THROTTLE_BURST 3
#define THROTTLE_EVERY 100

static int current_level = LOG_INFO;
static bool to_syslog;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_name(int level)
{
    switch (level) {
    case LOG_EMERG:
    case LOG_ALERT:
    case LOG_CRIT:
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    case LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void log_set_level(int level)
{
    current_level = level;
}

int log_get_level(void)
{
    return current_level;
}

void log_to_syslog(void)
{
    openlog("toxlabd", LOG_PID, LOG_DAEMON);
    to_syslog = true;
}

void log_msg(int level, const char *fmt, ...)
{
    struct timespec now;
    struct tm utc;
    va_list args;

    if (level > current_level) {
        return;
    }
    if (to_syslog) {
        va_start(args, fmt);
        vsyslog(level, fmt, args);
        va_end(args);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ toxlabd %s: ", utc.tm_year + 1900,
            utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000,
            level_name(level));
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

bool log_throttle_pass(struct log_throttle *throttle)
{
    throttle->count++;
    return throttle->count <= THROTTLE_BURST || throttle->count % THROTTLE_EVERY == 0;
}

void log_throttle_reset(struct log_throttle *throttle)
{
    throttle->count = 0;
}
