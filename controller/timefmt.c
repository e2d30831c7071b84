#define _GNU_SOURCE
#include "controller/timefmt.h"

#include <stdbool.h>
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

/* Reads exactly `count` digits at *text into *value and advances it. */
static bool read_digits(const char **text, int count, int *value)
{
    *value = 0;
    for (int i = 0; i < count; i++) {
        char c = (*text)[i];
        if (c < '0' || c > '9') {
            return false;
        }
        *value = *value * 10 + (c - '0');
    }
    *text += count;
    return true;
}

static bool expect_char(const char **text, char wanted)
{
    if (**text != wanted) {
        return false;
    }
    (*text)++;
    return true;
}

static bool valid_calendar_date(int year, int month, int day)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    if (year < 1900 || month < 1 || month > 12 || day < 1) {
        return false;
    }
    return day <= month_days[month - 1] + (month == 2 && leap);
}

/* Parses "+HH:MM", "-HH:MM", "Z" or "z" into minutes east of UTC. */
static bool read_offset(const char **text, int *minutes)
{
    int hours;
    int mins;
    char sign = **text;

    if (sign == 'Z' || sign == 'z') {
        (*text)++;
        *minutes = 0;
        return true;
    }
    if ((sign != '+' && sign != '-') || !((*text)++, read_digits(text, 2, &hours)) ||
        !expect_char(text, ':') || !read_digits(text, 2, &mins) || hours > 23 || mins > 59) {
        return false;
    }
    *minutes = (hours * 60 + mins) * (sign == '-' ? -1 : 1);
    return true;
}

int time_parse_rfc3339(const char *text, int64_t *epoch_ms)
{
    struct tm fields = {0};
    int year, month, day, hour, minute, second, offset;
    int millis = 0;

    if (!read_digits(&text, 4, &year) || !expect_char(&text, '-') ||
        !read_digits(&text, 2, &month) || !expect_char(&text, '-') ||
        !read_digits(&text, 2, &day) || !(expect_char(&text, 'T') || expect_char(&text, 't')) ||
        !read_digits(&text, 2, &hour) || !expect_char(&text, ':') ||
        !read_digits(&text, 2, &minute) || !expect_char(&text, ':') ||
        !read_digits(&text, 2, &second)) {
        return -1;
    }
    if (*text == '.') {
        int place = 100;
        int digits = 0;
        for (text++; *text >= '0' && *text <= '9'; text++, digits++) {
            millis += (*text - '0') * place;
            place /= 10;
        }
        if (digits == 0 || digits > 9) {
            return -1;
        }
    }
    if (!read_offset(&text, &offset) || *text != '\0' || !valid_calendar_date(year, month, day) ||
        hour > 23 || minute > 59 || second > 59) {
        return -1;
    }
    fields.tm_year = year - 1900;
    fields.tm_mon = month - 1;
    fields.tm_mday = day;
    fields.tm_hour = hour;
    fields.tm_min = minute;
    fields.tm_sec = second;
    *epoch_ms = ((int64_t)timegm(&fields) - (int64_t)offset * 60) * 1000 + millis;
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

    /* A year past 9999 (a period counted from a date near the end of the
     * range) cannot be written in 10 characters, so it shows as 9999-12-31. */
    if (date > 99991231) {
        date = 99991231;
    }
    snprintf(out, 11, "%04u-%02u-%02u", date / 10000 % 10000, date / 100 % 100, date % 100);
}

int time_parse_date(const char *text)
{
    int year;
    int month;
    int day;

    if (!read_digits(&text, 4, &year) || !expect_char(&text, '-') ||
        !read_digits(&text, 2, &month) || !expect_char(&text, '-') ||
        !read_digits(&text, 2, &day) || *text != '\0' || !valid_calendar_date(year, month, day)) {
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
