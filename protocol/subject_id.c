#include "protocol/subject_id.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const int resident_weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
static const char resident_check_chars[11] = "10X98765432";
static const char *const id_types[] = {"resident", "passport", "foreign-permanent", "other"};

char subject_resident_check_char(const char *first17)
{
    int sum = 0;

    for (int i = 0; i < 17; i++) {
        sum += (first17[i] - '0') * resident_weights[i];
    }
    return resident_check_chars[sum % 11];
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static bool valid_date(int yyyymmdd)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = yyyymmdd / 10000;
    int month = yyyymmdd / 100 % 100;
    int day = yyyymmdd % 100;
    int last;

    if (year < 1900 || month < 1 || month > 12 || day < 1) {
        return false;
    }
    last = month_days[month - 1] + (month == 2 && is_leap(year));
    return day <= last;
}

static int check_resident(char *number, int today, char *err, size_t err_size)
{
    size_t len = strlen(number);
    int birth = 0;

    if (len != 18) {
        snprintf(err, err_size, "resident ID must have 18 characters, not %zu", len);
        return -1;
    }
    if (number[17] == 'x') {
        number[17] = 'X';
    }
    for (size_t i = 0; i < 17; i++) {
        if (!isdigit((unsigned char)number[i])) {
            snprintf(err, err_size, "resident ID character %zu is not a digit", i + 1);
            return -1;
        }
    }
    if (!isdigit((unsigned char)number[17]) && number[17] != 'X') {
        snprintf(err, err_size, "resident ID check character must be a digit or X");
        return -1;
    }
    sscanf(number + 6, "%8d", &birth);
    if (!valid_date(birth)) {
        snprintf(err, err_size, "resident ID birth date %.8s is not a valid date", number + 6);
        return -1;
    }
    if (birth > today) {
        snprintf(err, err_size, "resident ID birth date %.8s is in the future", number + 6);
        return -1;
    }
    char expected = subject_resident_check_char(number);
    if (number[17] != expected) {
        snprintf(err, err_size, "resident ID check character is %c, expected %c", number[17],
                 expected);
        return -1;
    }
    return 0;
}

static int check_other(const char *number, char *err, size_t err_size)
{
    if (number[0] == '\0') {
        snprintf(err, err_size, "ID number is empty");
        return -1;
    }
    for (const char *p = number; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-') {
            snprintf(err, err_size, "ID number may hold only letters, digits and '-'");
            return -1;
        }
    }
    return 0;
}

static int split_type(const char *text, struct subject_id *id, char *err, size_t err_size)
{
    const char *colon = strchr(text, ':');
    size_t type_len = colon ? (size_t)(colon - text) : 0;
    const char *number = colon ? colon + 1 : text;
    bool known = !colon;

    snprintf(id->type, sizeof(id->type), "resident");
    if (colon) {
        for (size_t i = 0; i < sizeof(id_types) / sizeof(id_types[0]); i++) {
            if (strlen(id_types[i]) == type_len && strncasecmp(text, id_types[i], type_len) == 0) {
                snprintf(id->type, sizeof(id->type), "%s", id_types[i]);
                known = true;
            }
        }
    }
    if (!known) {
        snprintf(err, err_size,
                 "unknown ID type '%.*s' (use resident, passport, foreign-permanent or other)",
                 (int)type_len, text);
        return -1;
    }
    if (strlen(number) > SUBJECT_NUMBER_MAX) {
        snprintf(err, err_size, "ID number is longer than %d characters", SUBJECT_NUMBER_MAX);
        return -1;
    }
    snprintf(id->number, sizeof(id->number), "%s", number);
    return 0;
}

int subject_id_parse(const char *text, int today, struct subject_id *id, char *err, size_t err_size)
{
    char trimmed[128];
    size_t start = 0;
    size_t len = strlen(text);

    while (start < len && isspace((unsigned char)text[start])) {
        start++;
    }
    while (len > start && isspace((unsigned char)text[len - 1])) {
        len--;
    }
    if (len - start >= sizeof(trimmed)) {
        snprintf(err, err_size, "ID is too long");
        return -1;
    }
    snprintf(trimmed, sizeof(trimmed), "%.*s", (int)(len - start), text + start);
    if (split_type(trimmed, id, err, err_size) != 0) {
        return -1;
    }
    if (strcmp(id->type, "resident") == 0) {
        return check_resident(id->number, today, err, err_size);
    }
    return check_other(id->number, err, err_size);
}

void subject_id_mask(const char *number, char *out, size_t size)
{
    size_t len = strlen(number);
    size_t keep_head = len > 10 ? 6 : 0;
    size_t keep_tail = len > 10 ? 4 : (len > 2 ? 2 : 0);

    if (size == 0) {
        return;
    }
    for (size_t i = 0; i < len && i + 1 < size; i++) {
        out[i] = (i < keep_head || i >= len - keep_tail) ? number[i] : '*';
    }
    out[len < size ? len : size - 1] = '\0';
}
