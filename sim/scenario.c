/* Scenario file parser. inih reads the file, and this file checks every
 * section, key and value and reports each error with file, line and key. */
#include "sim/scenario.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PHASE_MS 86400000u /* one day */
#define MAX_TEST_NUMBER 1000000u
#define MAX_SLAVE 247

struct keyword {
    const char *name;
    int value;
};

static const struct keyword outcome_keywords[] = {
    {"valid", SALIVA_RESULT_VALID},
    {"control-line-failed", SALIVA_RESULT_CONTROL_FAILED},
    {"cartridge-expired", SALIVA_RESULT_CARTRIDGE_EXPIRED},
    {NULL, 0},
};

static const struct keyword error_keywords[] = {
    {"insufficient-sample", SALIVA_ERR_INSUFFICIENT_SAMPLE},
    {"cartridge-expired", SALIVA_ERR_CARTRIDGE_EXPIRED},
    {"cartridge-used", SALIVA_ERR_CARTRIDGE_USED},
    {"temperature", SALIVA_ERR_TEMPERATURE},
    {"busy", SALIVA_ERR_BUSY},
    {NULL, 0},
};

static const struct keyword fault_keywords[] = {
    {"exception", SCENARIO_FAULT_EXCEPTION},
    {"wrong-id", SCENARIO_FAULT_WRONG_ID},
    {"silent", SCENARIO_FAULT_SILENT},
    {NULL, 0},
};

/* The example panel of docs/sim.md. */
static const uint16_t default_panel[] = {
    SALIVA_THC,     SALIVA_AMPHETAMINE,     SALIVA_METHAMPHETAMINE, SALIVA_MDMA,     SALIVA_MDA,
    SALIVA_COCAINE, SALIVA_BENZOYLECGONINE, SALIVA_CODEINE,         SALIVA_MORPHINE, SALIVA_6MAM,
};

/* Parsing state shared by the line reader and the entry handler. */
struct parser {
    struct scenario *sc;
    FILE *file;
    int line;       /* line number of the text inih is handling */
    int lines_read; /* complete lines read so far */
    int errors;
    char bad_section[64]; /* last bad section name reported, to report it once */
    unsigned device_seen; /* bit per [device] key, to catch keys set twice */
    unsigned phases_seen;
};

static void report(struct parser *p, int line, const char *section, const char *key,
                   const char *format, ...) __attribute__((format(printf, 5, 6)));

static void report(struct parser *p, int line, const char *section, const char *key,
                   const char *format, ...)
{
    va_list args;

    fprintf(stderr, "toxlab-sim: %s:%d: [%s] %s: ", p->sc->path, line, section, key);
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
    struct parser *p = stream;

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
    fprintf(stderr, "toxlab-sim: %s:%d: line longer than %d characters\n", p->sc->path, p->line,
            num - 2);
    p->errors++;
    snprintf(str, (size_t)num, "#\n");
    return str;
}

/* Parses decimal digits only (no sign, no spaces) up to max. */
static bool parse_unsigned(const char *text, unsigned long max, unsigned long *out)
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

/* Parses ng/mL as decimal text with up to three decimals into ng/mL times
 * SALIVA_CONC_SCALE, without going through binary floating point. */
static bool parse_concentration(const char *text, uint32_t *out)
{
    const char *dot = strchr(text, '.');
    size_t whole_len = dot != NULL ? (size_t)(dot - text) : strlen(text);
    char whole[16];
    unsigned long whole_value = 0;

    if (whole_len == 0 || whole_len >= sizeof whole) {
        return false;
    }
    memcpy(whole, text, whole_len);
    whole[whole_len] = '\0';
    if (!parse_unsigned(whole, UINT32_MAX / SALIVA_CONC_SCALE, &whole_value)) {
        return false;
    }

    unsigned long fraction = 0;
    if (dot != NULL) {
        size_t digits = strlen(dot + 1);

        if (digits < 1 || digits > 3 || !parse_unsigned(dot + 1, 999, &fraction)) {
            return false;
        }
        for (size_t i = digits; i < 3; i++) {
            fraction *= 10;
        }
    }

    uint64_t scaled = (uint64_t)whole_value * SALIVA_CONC_SCALE + fraction;
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

/* Parses YYYY-MM-DD into YYYYMMDD, checking that the day exists. */
static bool parse_date(const char *text, uint32_t *out)
{
    static const unsigned days_in_month[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    char part[5];
    unsigned long year, month, day;

    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-') {
        return false;
    }

    memcpy(part, text, 4);
    part[4] = '\0';
    if (!parse_unsigned(part, 9999, &year) || year < 1970) {
        return false;
    }
    memcpy(part, text + 5, 2);
    part[2] = '\0';
    if (!parse_unsigned(part, 12, &month) || month < 1) {
        return false;
    }
    memcpy(part, text + 8, 2);
    part[2] = '\0';

    unsigned long last_day = days_in_month[month - 1];
    if (month == 2 && is_leap_year(year)) {
        last_day = 29;
    }
    if (!parse_unsigned(part, last_day, &day) || day < 1) {
        return false;
    }

    *out = (uint32_t)(year * 10000 + month * 100 + day);
    return true;
}

/* Accepts 1 to max printable ASCII characters, because the registers carry
 * ASCII and an empty identity field would be of no use to a host. */
static bool is_register_text(const char *text, size_t max)
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

static bool find_keyword(const struct keyword *table, const char *name, int *value)
{
    for (const struct keyword *k = table; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            *value = k->value;
            return true;
        }
    }
    return false;
}

/* Writes "a, b or c" for the keywords of table into out. */
static void list_keywords(const struct keyword *table, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (const struct keyword *k = table; k->name != NULL && used < size; k++) {
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

static void report_keyword(struct parser *p, const char *section, const char *key,
                           const char *value, const struct keyword *table)
{
    char expected[160];

    list_keywords(table, expected, sizeof expected);
    report(p, p->line, section, key, "invalid value '%s' (expected %s)", value, expected);
}

/* Splits a comma-separated list of analyte names into a mask. Returns false
 * after reporting the first bad item. When count is not NULL, the codes are
 * also stored in order into codes[*count], at most max of them. */
static bool parse_analyte_list(struct parser *p, const char *section, const char *key,
                               const char *value, uint32_t *mask, uint16_t *codes, size_t *count,
                               size_t max)
{
    char copy[256];
    char *save = NULL;

    if (strlen(value) >= sizeof copy) {
        report(p, p->line, section, key, "list too long");
        return false;
    }
    strcpy(copy, value);

    *mask = 0;
    if (count != NULL) {
        *count = 0;
    }
    if (copy[0] == '\0') {
        return true;
    }

    /* strtok_r would skip empty items, so split by hand. */
    for (char *item = copy; item != NULL; item = save) {
        char *comma = strchr(item, ',');
        save = comma != NULL ? comma + 1 : NULL;
        if (comma != NULL) {
            *comma = '\0';
        }

        while (*item == ' ' || *item == '\t') {
            item++;
        }
        size_t len = strlen(item);
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t')) {
            item[--len] = '\0';
        }

        if (*item == '\0') {
            report(p, p->line, section, key, "empty item in the list '%s'", value);
            return false;
        }
        int code = saliva_analyte_code(item);
        if (code == 0) {
            report(p, p->line, section, key,
                   "unknown analyte '%s' (expected names from docs/saliva-registers.md, such as "
                   "thc or 6-mam)",
                   item);
            return false;
        }
        if (*mask & (1u << code)) {
            report(p, p->line, section, key, "analyte '%s' is listed twice", item);
            return false;
        }
        *mask |= 1u << code;

        if (count != NULL) {
            if (*count >= max) {
                report(p, p->line, section, key, "more than %zu analytes", max);
                return false;
            }
            codes[(*count)++] = (uint16_t)code;
        }
    }
    return true;
}

/* Returns whether the key was already set, and records it in seen. */
static bool mark_seen(unsigned *seen, unsigned bit)
{
    bool was_seen = (*seen & (1u << bit)) != 0;

    *seen |= 1u << bit;
    return was_seen;
}

enum device_key {
    DEVICE_SERIAL,
    DEVICE_FIRMWARE,
    DEVICE_CALIBRATION,
    DEVICE_CARTRIDGE_LOT,
    DEVICE_CARTRIDGE_EXPIRY,
    DEVICE_SLAVE,
    DEVICE_PANEL,
};

static const char *const device_keys[] = {
    [DEVICE_SERIAL] = "serial",
    [DEVICE_FIRMWARE] = "firmware",
    [DEVICE_CALIBRATION] = "calibration",
    [DEVICE_CARTRIDGE_LOT] = "cartridge_lot",
    [DEVICE_CARTRIDGE_EXPIRY] = "cartridge_expiry",
    [DEVICE_SLAVE] = "slave",
    [DEVICE_PANEL] = "panel",
};

static void set_text(struct parser *p, const char *name, const char *value, char *out, size_t max)
{
    if (!is_register_text(value, max)) {
        report(p, p->line, "device", name,
               "invalid value '%s' (expected 1 to %zu printable ASCII characters)", value, max);
        return;
    }
    strcpy(out, value);
}

static void set_date(struct parser *p, const char *name, const char *value, uint32_t *out)
{
    if (!parse_date(value, out)) {
        report(p, p->line, "device", name, "invalid date '%s' (expected YYYY-MM-DD)", value);
    }
}

static void handle_device(struct parser *p, const char *name, const char *value)
{
    struct scenario *sc = p->sc;
    size_t key_count = sizeof device_keys / sizeof device_keys[0];
    size_t key = 0;

    while (key < key_count && strcmp(device_keys[key], name) != 0) {
        key++;
    }
    if (key == key_count) {
        report(p, p->line, "device", name,
               "unknown key (expected serial, firmware, calibration, cartridge_lot, "
               "cartridge_expiry, slave or panel)");
        return;
    }
    if (mark_seen(&p->device_seen, (unsigned)key)) {
        report(p, p->line, "device", name, "key set more than once");
        return;
    }

    switch ((enum device_key)key) {
    case DEVICE_SERIAL:
        set_text(p, name, value, sc->serial, SALIVA_SERIAL_CHARS);
        break;
    case DEVICE_FIRMWARE:
        set_text(p, name, value, sc->firmware, SALIVA_FIRMWARE_CHARS);
        break;
    case DEVICE_CARTRIDGE_LOT:
        set_text(p, name, value, sc->cartridge_lot, SALIVA_LOT_CHARS);
        break;
    case DEVICE_CALIBRATION:
        set_date(p, name, value, &sc->calibration_date);
        break;
    case DEVICE_CARTRIDGE_EXPIRY:
        set_date(p, name, value, &sc->cartridge_expiry);
        break;
    case DEVICE_SLAVE: {
        unsigned long slave;

        if (!parse_unsigned(value, MAX_SLAVE, &slave) || slave < 1) {
            report(p, p->line, "device", name, "invalid value '%s' (expected 1 to %d)", value,
                   MAX_SLAVE);
            break;
        }
        sc->slave = (int)slave;
        break;
    }
    case DEVICE_PANEL: {
        uint32_t mask;
        uint16_t codes[SALIVA_MAX_PANEL];
        size_t count;

        if (!parse_analyte_list(p, "device", name, value, &mask, codes, &count, SALIVA_MAX_PANEL)) {
            break;
        }
        if (count == 0) {
            report(p, p->line, "device", name, "the panel lists no analyte");
            break;
        }
        memcpy(sc->panel, codes, count * sizeof codes[0]);
        sc->panel_size = count;
        break;
    }
    }
}

static void handle_phases(struct parser *p, const char *name, const char *value)
{
    static const char *const keys[] = {"cartridge_ms", "collecting_ms", "analysing_ms"};
    uint32_t *fields[] = {&p->sc->cartridge_ms, &p->sc->collecting_ms, &p->sc->analysing_ms};
    unsigned long ms;

    for (unsigned i = 0; i < 3; i++) {
        if (strcmp(keys[i], name) != 0) {
            continue;
        }
        if (mark_seen(&p->phases_seen, i)) {
            report(p, p->line, "phases", name, "key set more than once");
            return;
        }
        if (!parse_unsigned(value, MAX_PHASE_MS, &ms)) {
            report(p, p->line, "phases", name,
                   "invalid value '%s' (expected milliseconds, 0 to %u)", value, MAX_PHASE_MS);
            return;
        }
        *fields[i] = (uint32_t)ms;
        return;
    }
    report(p, p->line, "phases", name,
           "unknown key (expected cartridge_ms, collecting_ms or analysing_ms)");
}

/* Records the line of a test key. Returns false after reporting a key set twice. */
static bool claim_line(struct parser *p, const char *section, const char *name, int *line)
{
    if (*line != 0) {
        report(p, p->line, section, name, "key set more than once (first on line %d)", *line);
        return false;
    }
    *line = p->line;
    return true;
}

/* Returns true and sets *out when the value is one of the table's keywords. */
static bool handle_keyword_key(struct parser *p, const char *section, const char *name,
                               const char *value, const struct keyword *table, int *line, int *out)
{
    if (!claim_line(p, section, name, line)) {
        return false;
    }
    if (!find_keyword(table, value, out)) {
        report_keyword(p, section, name, value, table);
        return false;
    }
    return true;
}

static void handle_list_key(struct parser *p, const char *section, const char *name,
                            const char *value, int *line, uint32_t *mask)
{
    if (!claim_line(p, section, name, line)) {
        return;
    }
    parse_analyte_list(p, section, name, value, mask, NULL, NULL, 0);
}

static void handle_test(struct parser *p, const char *section, struct scenario_test *test,
                        const char *name, const char *value)
{
    int code = saliva_analyte_code(name);
    int keyword = 0;

    if (code != 0) {
        if (!claim_line(p, section, name, &test->concentration_line[code])) {
            return;
        }
        if (!parse_concentration(value, &test->concentration[code])) {
            report(p, p->line, section, name,
                   "invalid concentration '%s' (expected ng/mL as decimal text with up to "
                   "three decimals, such as 120.5)",
                   value);
        }
    } else if (strcmp(name, "outcome") == 0) {
        if (handle_keyword_key(p, section, name, value, outcome_keywords, &test->outcome_line,
                               &keyword)) {
            test->outcome = (uint16_t)keyword;
        }
    } else if (strcmp(name, "error") == 0) {
        if (handle_keyword_key(p, section, name, value, error_keywords, &test->error_line,
                               &keyword)) {
            test->error = (uint16_t)keyword;
        }
    } else if (strcmp(name, "fault") == 0) {
        if (handle_keyword_key(p, section, name, value, fault_keywords, &test->fault_line,
                               &keyword)) {
            test->fault = (enum scenario_fault)keyword;
        }
    } else if (strcmp(name, "over_range") == 0) {
        handle_list_key(p, section, name, value, &test->over_range_line, &test->over_range);
    } else if (strcmp(name, "under_range") == 0) {
        handle_list_key(p, section, name, value, &test->under_range_line, &test->under_range);
    } else if (strcmp(name, "control_invalid") == 0) {
        handle_list_key(p, section, name, value, &test->control_invalid_line,
                        &test->control_invalid);
    } else {
        report(p, p->line, section, name,
               "unknown key (expected an analyte name, outcome, over_range, under_range, "
               "control_invalid, error or fault)");
    }
}

/* Parses "test.N" with N from 1 to MAX_TEST_NUMBER. Returns false for other
 * section names. For a test.N name, *valid is set to whether N is valid. */
static bool parse_test_section(const char *section, unsigned *number, bool *valid)
{
    unsigned long n;

    if (strncmp(section, "test.", 5) != 0) {
        return false;
    }
    *valid = parse_unsigned(section + 5, MAX_TEST_NUMBER, &n) && n >= 1;
    *number = *valid ? (unsigned)n : 0;
    return true;
}

static struct scenario_test *find_or_add_test(struct parser *p, unsigned number)
{
    struct scenario *sc = p->sc;

    for (size_t i = 0; i < sc->test_count; i++) {
        if (sc->tests[i].number == number) {
            return &sc->tests[i].test;
        }
    }

    struct scenario_numbered_test *grown =
        realloc(sc->tests, (sc->test_count + 1) * sizeof sc->tests[0]);
    if (grown == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory reading %s\n", sc->path);
        exit(1);
    }
    sc->tests = grown;
    memset(&sc->tests[sc->test_count], 0, sizeof sc->tests[0]);
    sc->tests[sc->test_count].number = number;
    return &sc->tests[sc->test_count++].test;
}

/* Reports a bad section name once, at its first key, rather than at every key. */
static void report_bad_section(struct parser *p, const char *section, const char *name)
{
    bool valid;
    unsigned number;

    if (strncmp(p->bad_section, section, sizeof p->bad_section - 1) == 0) {
        return;
    }
    snprintf(p->bad_section, sizeof p->bad_section, "%s", section);

    if (parse_test_section(section, &number, &valid)) {
        report(p, p->line, section, name,
               "invalid test number (expected [test.N] with N from 1 to %u)", MAX_TEST_NUMBER);
    } else {
        report(p, p->line, section, name,
               "unknown section (expected [device], [phases], [default] or [test.N])");
    }
}

/* Handles one key of the file for inih. Errors are counted in the parser,
 * so it always returns 1, and the line number that ini_parse_stream returns
 * then points only at syntax errors. */
static int handle_entry(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    unsigned number;
    bool valid;

    if (strcmp(section, "device") == 0) {
        handle_device(p, name, value);
    } else if (strcmp(section, "phases") == 0) {
        handle_phases(p, name, value);
    } else if (strcmp(section, "default") == 0) {
        handle_test(p, section, &p->sc->default_test, name, value);
    } else if (parse_test_section(section, &number, &valid)) {
        if (!valid) {
            report_bad_section(p, section, name);
            return 1;
        }
        handle_test(p, section, find_or_add_test(p, number), name, value);
    } else {
        report_bad_section(p, section, name);
    }
    return 1;
}

static void check_mask_in_panel(struct parser *p, const char *section, const char *key, int line,
                                uint32_t mask, uint32_t panel)
{
    uint32_t outside = mask & ~panel;

    if (line == 0 || outside == 0) {
        return;
    }
    for (int code = 1; code < SALIVA_ANALYTE_LIMIT; code++) {
        if (outside & (1u << code)) {
            report(p, line, section, key, "analyte '%s' is not in the [device] panel",
                   saliva_analyte_name((uint16_t)code));
            return;
        }
    }
}

/* Checks after parsing that a test names only analytes of the panel, since
 * [device] may come after the tests in the file. */
static void check_test_panel(struct parser *p, const char *section,
                             const struct scenario_test *test, uint32_t panel)
{
    for (int code = 1; code < SALIVA_ANALYTE_LIMIT; code++) {
        if (test->concentration_line[code] != 0 && !(panel & (1u << code))) {
            const char *name = saliva_analyte_name((uint16_t)code);

            report(p, test->concentration_line[code], section, name,
                   "analyte '%s' is not in the [device] panel", name);
        }
    }
    check_mask_in_panel(p, section, "over_range", test->over_range_line, test->over_range, panel);
    check_mask_in_panel(p, section, "under_range", test->under_range_line, test->under_range,
                        panel);
    check_mask_in_panel(p, section, "control_invalid", test->control_invalid_line,
                        test->control_invalid, panel);
}

static void check_panel(struct parser *p)
{
    const struct scenario *sc = p->sc;
    uint32_t panel = 0;

    for (size_t i = 0; i < sc->panel_size; i++) {
        panel |= 1u << sc->panel[i];
    }

    check_test_panel(p, "default", &sc->default_test, panel);
    for (size_t i = 0; i < sc->test_count; i++) {
        char section[32];

        snprintf(section, sizeof section, "test.%u", sc->tests[i].number);
        check_test_panel(p, section, &sc->tests[i].test, panel);
    }
}

void scenario_init(struct scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    strcpy(sc->serial, "SAL-0001");
    strcpy(sc->firmware, "2.1.0");
    sc->calibration_date = 20261001;
    strcpy(sc->cartridge_lot, "L2409A");
    sc->cartridge_expiry = 20270630;
    sc->panel_size = sizeof default_panel / sizeof default_panel[0];
    memcpy(sc->panel, default_panel, sizeof default_panel);
    sc->cartridge_ms = 100;
    sc->collecting_ms = 300;
    sc->analysing_ms = 600;
}

int scenario_load(struct scenario *sc, const char *path)
{
    struct parser p = {.sc = sc};

    snprintf(sc->path, sizeof sc->path, "%s", path);
    p.file = fopen(path, "r");
    if (p.file == NULL) {
        fprintf(stderr, "toxlab-sim: cannot open scenario %s: %s\n", path, strerror(errno));
        return -1;
    }

    int syntax_line = ini_parse_stream(read_line, &p, handle_entry, &p);
    fclose(p.file);
    if (syntax_line > 0) {
        fprintf(stderr,
                "toxlab-sim: %s:%d: syntax error (expected [section], key = value or a comment)\n",
                path, syntax_line);
        p.errors++;
    } else if (syntax_line < 0) {
        fprintf(stderr, "toxlab-sim: reading scenario %s failed\n", path);
        p.errors++;
    }

    if (p.errors == 0) {
        check_panel(&p);
    }
    return p.errors == 0 ? 0 : -1;
}

const struct scenario_test *scenario_test_for(const struct scenario *sc, unsigned number)
{
    for (size_t i = 0; i < sc->test_count; i++) {
        if (sc->tests[i].number == number) {
            return &sc->tests[i].test;
        }
    }
    return &sc->default_test;
}

void scenario_free(struct scenario *sc)
{
    free(sc->tests);
    sc->tests = NULL;
    sc->test_count = 0;
}
