#define _GNU_SOURCE
#include "controller/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <sys/timex.h>

int64_t time_monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t time_realtime_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void time_format_utc(int64_t epoch_ms, char out[TIMESTAMP_SIZE])
{
    time_t seconds = (time_t)(epoch_ms / 1000);
    struct tm utc;

    gmtime_r(&seconds, &utc);
    snprintf(out, TIMESTAMP_SIZE, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(utc.tm_year + 1900) % 10000, (unsigned)(utc.tm_mon + 1) % 100,
             (unsigned)utc.tm_mday % 100, (unsigned)utc.tm_hour % 100, (unsigned)utc.tm_min % 100,
             (unsigned)utc.tm_sec % 100, (unsigned)(epoch_ms % 1000));
}

int time_parse_rfc3339(const char *text, int64_t *epoch_ms)
{
    struct tm fields = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &fields);
    int millis = 0;
    int offset_minutes = 0;

    if (rest == NULL) {
        return -1;
    }
    if (*rest == '.') {
        int place = 100;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
            millis += (*rest - '0') * place;
            place /= 10;
        }
    }
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        int hours;
        int minutes;
        if (sscanf(rest + 1, "%2d:%2d", &hours, &minutes) != 2) {
            return -1;
        }
        offset_minutes = (hours * 60 + minutes) * (*rest == '-' ? -1 : 1);
        rest += 6;
    } else {
        return -1;
    }
    if (*rest != '\0') {
        return -1;
    }
    *epoch_ms = ((int64_t)timegm(&fields) - offset_minutes * 60) * 1000 + millis;
    return 0;
}

int time_local_date(int64_t epoch_ms)
{
    time_t seconds = (time_t)(epoch_ms / 1000);
    struct tm local;

    localtime_r(&seconds, &local);
    return (local.tm_year + 1900) * 10000 + (local.tm_mon + 1) * 100 + local.tm_mday;
}

void time_format_date(int yyyymmdd, char out[11])
{
    unsigned date = (unsigned)yyyymmdd;

    snprintf(out, 11, "%04u-%02u-%02u", date / 10000 % 10000, date / 100 % 100, date % 100);
}

int time_parse_date(const char *text)
{
    int year;
    int month;
    int day;
    char tail;

    if (sscanf(text, "%4d-%2d-%2d%c", &year, &month, &day, &tail) != 3 || month < 1 || month > 12 ||
        day < 1 || day > 31) {
        return 0;
    }
    return year * 10000 + month * 100 + day;
}

bool time_clock_synchronised(void)
{
    struct timex status = {0};
    int state = adjtimex(&status);

    return state != TIME_ERROR && state >= 0 && !(status.status & STA_UNSYNC);
}
