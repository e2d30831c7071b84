#include "controller/periods.h"

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return days[month - 1] + (month == 2 && is_leap(year));
}

int period_last_day(int event, int years)
{
    int year = event / 10000 + years;
    int month = event / 100 % 100;
    int day = event % 100;
    int last = days_in_month(year, month);

    return year * 10000 + month * 100 + (day > last ? last : day);
}

bool period_covers(int event, int years, int date)
{
    return date >= event && date <= period_last_day(event, years);
}

int date_previous_day(int date)
{
    int year = date / 10000;
    int month = date / 100 % 100;
    int day = date % 100;

    if (day > 1) {
        return date - 1;
    }
    if (month == 1) {
        return (year - 1) * 10000 + 1231;
    }
    return year * 10000 + (month - 1) * 100 + days_in_month(year, month - 1);
}
