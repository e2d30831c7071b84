/* Shared scenario parsing for toxlab-sim: inih reads the file, and each
 * kind's handler checks its sections, keys and values with these helpers,
 * so every error names file, line and key in the same way. */
#include "sim/scenario_parse.h"
#include "sim/wire_fault.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

const struct scenario_keyword scenario_fault_keywords[] = {
    {"exception", SCENARIO_FAULT_EXCEPTION},
    {"wrong-id", SCENARIO_FAULT_WRONG_ID},
    {"silent", SCENARIO_FAULT_SILENT},
    {"lost-ack", SCENARIO_FAULT_LOST_ACK},
    {"corrupt", SCENARIO_FAULT_WIRE + WIRE_FAULT_CORRUPT},
    {"noise", SCENARIO_FAULT_WIRE + WIRE_FAULT_NOISE},
    {"drop", SCENARIO_FAULT_WIRE + WIRE_FAULT_DROP},
    {"truncate", SCENARIO_FAULT_WIRE + WIRE_FAULT_TRUNCATE},
    {"slow", SCENARIO_FAULT_WIRE + WIRE_FAULT_SLOW},
    {"busy", SCENARIO_FAULT_WIRE + WIRE_FAULT_BUSY},
    {"unplug", SCENARIO_FAULT_WIRE + WIRE_FAULT_UNPLUG},
    {"power-cycle", SCENARIO_FAULT_WIRE + WIRE_FAULT_POWER_CYCLE},
    {"resend", SCENARIO_FAULT_WIRE + WIRE_FAULT_RESEND},
    {NULL, 0},
};

void scenario_report(struct scenario_parser *p, int line, const char *section, const char *key,
                     const char *format, ...)
{
    va_list args;

    fprintf(stderr, "toxlab-sim: %s:%d: [%s] %s: ", p->path, line, section, key);
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    p->errors++;
}

/* fgets for inih that tracks line numbers. A line too long for inih's
 * buffer is reported here and handed to inih as a comment, because inih
 * would otherwise parse its pieces as separate lines. */
static char *read_line(char *str, int num, void *stream)
{
    struct scenario_parser *p = stream;

    if (fgets(str, num, p->file) == NULL) {
        return NULL;
    }
    p->line = p->lines_read + 1;

    size_t len = strlen(str);
    if (len > 0 && str[len - 1] == '\n') {
        p->lines_read++;
        return str;
    }
    if (feof(p->file)) {
        return str;
    }

    int c;
    while ((c = fgetc(p->file)) != EOF && c != '\n') {
    }
    p->lines_read++;
    fprintf(stderr, "toxlab-sim: %s:%d: line longer than %d characters\n", p->path, p->line,
            num - 2);
    p->errors++;
    snprintf(str, (size_t)num, "#\n");
    return str;
}

int scenario_parse_file(struct scenario_parser *p, const char *path, ini_handler handler,
                        void *user)
{
    p->path = path;
    p->file = fopen(path, "r");
    if (p->file == NULL) {
        fprintf(stderr, "toxlab-sim: cannot open scenario %s: %s\n", path, strerror(errno));
        return -1;
    }

    int syntax_line = ini_parse_stream(read_line, p, handler, user);
    fclose(p->file);
    p->file = NULL;
    if (syntax_line > 0) {
        fprintf(stderr,
                "toxlab-sim: %s:%d: syntax error (expected [section], key = value or a comment)\n",
                path, syntax_line);
        p->errors++;
    } else if (syntax_line < 0) {
        fprintf(stderr, "toxlab-sim: reading scenario %s failed\n", path);
        p->errors++;
    }
    return p->errors;
}

bool scenario_parse_unsigned(const char *text, unsigned long max, unsigned long *out)
{
    unsigned long value = 0;

    if (*text == '\0') {
        return false;
    }
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        value = value * 10 + (unsigned long)(*c - '0');
        if (value > max) {
            return false;
        }
    }
    *out = value;
    return true;
}

bool scenario_parse_fixed(const char *text, unsigned decimals, uint32_t *out)
{
    const char *dot = strchr(text, '.');
    size_t whole_len = dot != NULL ? (size_t)(dot - text) : strlen(text);
    char whole[16];
    unsigned long whole_value = 0;
    uint32_t scale = 1;

    for (unsigned i = 0; i < decimals; i++) {
        scale *= 10;
    }

    if (whole_len == 0 || whole_len >= sizeof whole) {
        return false;
    }
    memcpy(whole, text, whole_len);
    whole[whole_len] = '\0';
    if (!scenario_parse_unsigned(whole, UINT32_MAX / scale, &whole_value)) {
        return false;
    }

    unsigned long fraction = 0;
    if (dot != NULL) {
        size_t digits = strlen(dot + 1);

        if (digits < 1 || digits > decimals ||
            !scenario_parse_unsigned(dot + 1, scale - 1, &fraction)) {
            return false;
        }
        for (size_t i = digits; i < decimals; i++) {
            fraction *= 10;
        }
    }

    uint64_t scaled = (uint64_t)whole_value * scale + fraction;
    if (scaled > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)scaled;
    return true;
}

static bool is_leap_year(unsigned long year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

bool scenario_parse_date(const char *text, uint32_t *out)
{
    static const unsigned days_in_month[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    char part[5];
    unsigned long year, month, day;

    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-') {
        return false;
    }

    memcpy(part, text, 4);
    part[4] = '\0';
    if (!scenario_parse_unsigned(part, 9999, &year) || year < 1970) {
        return false;
    }
    memcpy(part, text + 5, 2);
    part[2] = '\0';
    if (!scenario_parse_unsigned(part, 12, &month) || month < 1) {
        return false;
    }
    memcpy(part, text + 8, 2);
    part[2] = '\0';

    unsigned long last_day = days_in_month[month - 1];
    if (month == 2 && is_leap_year(year)) {
        last_day = 29;
    }
    if (!scenario_parse_unsigned(part, last_day, &day) || day < 1) {
        return false;
    }

    *out = (uint32_t)(year * 10000 + month * 100 + day);
    return true;
}

bool scenario_is_register_text(const char *text, size_t max)
{
    size_t len = strlen(text);

    if (len < 1 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < 0x20 || text[i] > 0x7E) {
            return false;
        }
    }
    return true;
}

static bool find_keyword(const struct scenario_keyword *table, const char *name, int *value)
{
    for (const struct scenario_keyword *k = table; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            *value = k->value;
            return true;
        }
    }
    return false;
}

/* Writes "a, b or c" for the keywords of table into out. */
static void list_keywords(const struct scenario_keyword *table, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (const struct scenario_keyword *k = table; k->name != NULL && used < size; k++) {
        const char *separator = "";

        if (k != table) {
            separator = k[1].name == NULL ? " or " : ", ";
        }
        int n = snprintf(out + used, size - used, "%s%s", separator, k->name);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

static void report_keyword(struct scenario_parser *p, const char *section, const char *key,
                           const char *value, const struct scenario_keyword *table)
{
    char expected[160];

    list_keywords(table, expected, sizeof expected);
    scenario_report(p, p->line, section, key, "invalid value '%s' (expected %s)", value, expected);
}

bool scenario_mark_seen(unsigned *seen, unsigned bit)
{
    bool was_seen = (*seen & (1u << bit)) != 0;

    *seen |= 1u << bit;
    return was_seen;
}

bool scenario_claim_line(struct scenario_parser *p, const char *section, const char *name,
                         int *line)
{
    if (*line != 0) {
        scenario_report(p, p->line, section, name, "key set more than once (first on line %d)",
                        *line);
        return false;
    }
    *line = p->line;
    return true;
}

bool scenario_handle_keyword_key(struct scenario_parser *p, const char *section, const char *name,
                                 const char *value, const struct scenario_keyword *table, int *line,
                                 int *out)
{
    if (!scenario_claim_line(p, section, name, line)) {
        return false;
    }
    if (!find_keyword(table, value, out)) {
        report_keyword(p, section, name, value, table);
        return false;
    }
    return true;
}

bool scenario_parse_test_section(const char *section, unsigned *number, bool *valid)
{
    unsigned long n;

    if (strncmp(section, "test.", 5) != 0) {
        return false;
    }
    *valid = scenario_parse_unsigned(section + 5, SCENARIO_MAX_TEST_NUMBER, &n) && n >= 1;
    *number = *valid ? (unsigned)n : 0;
    return true;
}

void scenario_report_bad_section(struct scenario_parser *p, const char *section, const char *name)
{
    bool valid;
    unsigned number;

    if (strncmp(p->bad_section, section, sizeof p->bad_section - 1) == 0) {
        return;
    }
    snprintf(p->bad_section, sizeof p->bad_section, "%s", section);

    if (scenario_parse_test_section(section, &number, &valid)) {
        scenario_report(p, p->line, section, name,
                        "invalid test number (expected [test.N] with N from 1 to %u)",
                        SCENARIO_MAX_TEST_NUMBER);
    } else {
        scenario_report(p, p->line, section, name,
                        "unknown section (expected [device], [phases], [default], [test.N] or "
                        "[request.N])");
    }
}
