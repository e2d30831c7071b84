#include "protocol/decimal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

int decimal_parse(const char *text, int64_t *micro)
{
    const char *p = text;
    bool negative = false;
    int64_t units = 0;
    int64_t fraction = 0;
    int places = 0;
    int digits = 0;

    if (*p == '+' || *p == '-') {
        negative = *p == '-';
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        units = units * 10 + (*p - '0');
        if (units > DECIMAL_MAX_UNITS) {
            return -1;
        }
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (++places > DECIMAL_PLACES) {
                return -1;
            }
            fraction = fraction * 10 + (*p - '0');
        }
    }
    if (*p != '\0' || digits == 0) {
        return -1;
    }
    for (; places < DECIMAL_PLACES; places++) {
        fraction *= 10;
    }
    *micro = units * DECIMAL_SCALE + fraction;
    if (negative) {
        *micro = -*micro;
    }
    return 0;
}

void decimal_format(int64_t micro, int min_places, char *out, size_t size)
{
    const char *sign = micro < 0 ? "-" : "";
    uint64_t magnitude = micro < 0 ? (uint64_t)(-(micro + 1)) + 1 : (uint64_t)micro;
    uint64_t units = magnitude / DECIMAL_SCALE;
    uint64_t fraction = magnitude % DECIMAL_SCALE;
    int places = DECIMAL_PLACES;

    while (places > min_places && fraction % 10 == 0) {
        fraction /= 10;
        places--;
    }
    if (places == 0) {
        snprintf(out, size, "%s%llu", sign, (unsigned long long)units);
        return;
    }
    snprintf(out, size, "%s%llu.%0*llu", sign, (unsigned long long)units, places,
             (unsigned long long)fraction);
}
