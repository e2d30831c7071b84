/* Scenario file parser of the breath sim. sim/scenario_parse.c reads the
 * file with inih, and this file checks every section, key and value and
 * reports each error with file, line and key. */
#include "sim/breath_scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEMPERATURE 210 /* 21.0 degC */
#define ALCOHOL_DECIMALS 1      /* matches BREATH_ALCOHOL_SCALE */
#define TEMPERATURE_DECIMALS 1

static const struct scenario_keyword blow_keywords[] = {
    {"normal", 0},
    {"never", 1},
    {NULL, 0},
};

static const struct scenario_keyword error_keywords[] = {
    {"sensor", BREATH_ERR_SENSOR},
    {"calibration-due", BREATH_ERR_CALIBRATION_DUE},
    {"not-ready", BREATH_ERR_NOT_READY},
    {NULL, 0},
};

static const struct scenario_keyword flag_keywords[] = {
    {"insufficient-volume", BREATH_FLAG_INSUFFICIENT_VOLUME},
    {"interrupted-blow", BREATH_FLAG_INTERRUPTED_BLOW},
    {"mouth-alcohol", BREATH_FLAG_MOUTH_ALCOHOL},
    {"temperature", BREATH_FLAG_TEMPERATURE},
    {NULL, 0},
};

/* Parsing state of the breath entry handler. */
struct parser {
    struct scenario_parser base;
    struct breath_scenario *sc;
    unsigned device_seen; /* bit per [device] key, to catch keys set twice */
    unsigned phases_seen;
};

enum device_key {
    DEVICE_SERIAL,
    DEVICE_FIRMWARE,
    DEVICE_CALIBRATION,
    DEVICE_CALIBRATION_DUE,
    DEVICE_MOUTHPIECE_LOT,
    DEVICE_SLAVE,
    DEVICE_KEY_COUNT
};

static const char *const device_keys[DEVICE_KEY_COUNT] = {
    [DEVICE_SERIAL] = "serial",
    [DEVICE_FIRMWARE] = "firmware",
    [DEVICE_CALIBRATION] = "calibration",
    [DEVICE_CALIBRATION_DUE] = "calibration_due",
    [DEVICE_MOUTHPIECE_LOT] = "mouthpiece_lot",
    [DEVICE_SLAVE] = "slave",
};

static void set_text(struct parser *p, const char *name, const char *value, char *out, size_t max)
{
    if (!scenario_is_register_text(value, max)) {
        scenario_report(&p->base, p->base.line, "device", name,
                        "invalid value '%s' (expected 1 to %zu printable ASCII characters)", value,
                        max);
        return;
    }
    strcpy(out, value);
}

static void set_date(struct parser *p, const char *name, const char *value, uint32_t *out)
{
    if (!scenario_parse_date(value, out)) {
        scenario_report(&p->base, p->base.line, "device", name,
                        "invalid date '%s' (expected YYYY-MM-DD)", value);
    }
}

static void set_slave(struct parser *p, const char *name, const char *value)
{
    unsigned long slave;

    if (!scenario_parse_unsigned(value, SCENARIO_MAX_SLAVE, &slave) || slave < 1) {
        scenario_report(&p->base, p->base.line, "device", name,
                        "invalid value '%s' (expected 1 to %d)", value, SCENARIO_MAX_SLAVE);
        return;
    }
    p->sc->slave = (int)slave;
}

static void handle_device(struct parser *p, const char *name, const char *value)
{
    struct breath_scenario *sc = p->sc;
    unsigned key = 0;

    while (key < DEVICE_KEY_COUNT && strcmp(device_keys[key], name) != 0) {
        key++;
    }
    if (key == DEVICE_KEY_COUNT) {
        scenario_report(&p->base, p->base.line, "device", name,
                        "unknown key (expected serial, firmware, calibration, calibration_due, "
                        "mouthpiece_lot or slave)");
        return;
    }
    if (scenario_mark_seen(&p->device_seen, key)) {
        scenario_report(&p->base, p->base.line, "device", name, "key set more than once");
        return;
    }

    switch ((enum device_key)key) {
    case DEVICE_SERIAL:
        set_text(p, name, value, sc->serial, BREATH_SERIAL_CHARS);
        break;
    case DEVICE_FIRMWARE:
        set_text(p, name, value, sc->firmware, BREATH_FIRMWARE_CHARS);
        break;
    case DEVICE_MOUTHPIECE_LOT:
        set_text(p, name, value, sc->mouthpiece_lot, BREATH_LOT_CHARS);
        break;
    case DEVICE_CALIBRATION:
        set_date(p, name, value, &sc->calibration_date);
        break;
    case DEVICE_CALIBRATION_DUE:
        set_date(p, name, value, &sc->calibration_due);
        break;
    case DEVICE_SLAVE:
        set_slave(p, name, value);
        break;
    case DEVICE_KEY_COUNT:
        break;
    }
}

static void handle_phases(struct parser *p, const char *name, const char *value)
{
    static const char *const keys[] = {"warmup_ms", "blow_request_ms", "blowing_ms",
                                       "analysing_ms"};
    uint32_t *fields[] = {&p->sc->warmup_ms, &p->sc->blow_request_ms, &p->sc->blowing_ms,
                          &p->sc->analysing_ms};
    unsigned long ms;

    for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(keys[i], name) != 0) {
            continue;
        }
        if (scenario_mark_seen(&p->phases_seen, i)) {
            scenario_report(&p->base, p->base.line, "phases", name, "key set more than once");
            return;
        }
        if (!scenario_parse_unsigned(value, SCENARIO_MAX_PHASE_MS, &ms)) {
            scenario_report(&p->base, p->base.line, "phases", name,
                            "invalid value '%s' (expected milliseconds, 0 to %u)", value,
                            SCENARIO_MAX_PHASE_MS);
            return;
        }
        *fields[i] = (uint32_t)ms;
        return;
    }
    scenario_report(&p->base, p->base.line, "phases", name,
                    "unknown key (expected warmup_ms, blow_request_ms, blowing_ms or "
                    "analysing_ms)");
}

/* Parses degC with at most one decimal and an optional minus sign into
 * units of 0.1 degC, within the range of the signed register. */
static bool parse_temperature(const char *text, int16_t *out)
{
    bool negative = text[0] == '-';
    uint32_t magnitude;

    if (!scenario_parse_fixed(negative ? text + 1 : text, TEMPERATURE_DECIMALS, &magnitude)) {
        return false;
    }
    if (magnitude > (negative ? 32768u : 32767u)) {
        return false;
    }
    *out = (int16_t)(negative ? -(int32_t)magnitude : (int32_t)magnitude);
    return true;
}

/* Returns item without its leading and trailing spaces and tabs, which it
 * cuts off in place. */
static char *trim(char *item)
{
    while (*item == ' ' || *item == '\t') {
        item++;
    }
    size_t len = strlen(item);
    while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t')) {
        item[--len] = '\0';
    }
    return item;
}

static bool find_flag(const char *name, uint16_t *bit)
{
    for (const struct scenario_keyword *k = flag_keywords; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            *bit = (uint16_t)k->value;
            return true;
        }
    }
    return false;
}

/* Splits a comma-separated list of flag names into BREATH_FLAG_* bits. An
 * empty value sets no flag. Returns false after reporting the first bad
 * item. */
static bool parse_flag_list(struct parser *p, const char *section, const char *key,
                            const char *value, uint16_t *flags)
{
    char copy[256];
    char *next = NULL;

    if (strlen(value) >= sizeof copy) {
        scenario_report(&p->base, p->base.line, section, key, "list too long");
        return false;
    }
    strcpy(copy, value);

    *flags = 0;
    if (copy[0] == '\0') {
        return true;
    }

    /* strtok_r would skip empty items, so split by hand. */
    for (char *item = copy; item != NULL; item = next) {
        char *comma = strchr(item, ',');
        uint16_t bit;

        next = comma != NULL ? comma + 1 : NULL;
        if (comma != NULL) {
            *comma = '\0';
        }
        item = trim(item);
        if (*item == '\0') {
            scenario_report(&p->base, p->base.line, section, key, "empty item in the list '%s'",
                            value);
            return false;
        }
        if (!find_flag(item, &bit)) {
            scenario_report(&p->base, p->base.line, section, key,
                            "unknown flag '%s' (expected insufficient-volume, interrupted-blow, "
                            "mouth-alcohol or temperature)",
                            item);
            return false;
        }
        if (*flags & bit) {
            scenario_report(&p->base, p->base.line, section, key, "flag '%s' is listed twice",
                            item);
            return false;
        }
        *flags |= bit;
    }
    return true;
}

static void handle_alcohol(struct parser *p, const char *section, struct breath_test *test,
                           const char *name, const char *value)
{
    if (!scenario_claim_line(&p->base, section, name, &test->alcohol_line)) {
        return;
    }
    if (!scenario_parse_fixed(value, ALCOHOL_DECIMALS, &test->alcohol)) {
        scenario_report(&p->base, p->base.line, section, name,
                        "invalid breath alcohol '%s' (expected ug/L as decimal text with at most "
                        "one decimal, such as 412.3)",
                        value);
    }
}

static void handle_temperature(struct parser *p, const char *section, struct breath_test *test,
                               const char *name, const char *value)
{
    if (!scenario_claim_line(&p->base, section, name, &test->temperature_line)) {
        return;
    }
    if (!parse_temperature(value, &test->temperature)) {
        scenario_report(&p->base, p->base.line, section, name,
                        "invalid temperature '%s' (expected degC with at most one decimal, "
                        "-3276.8 to 3276.7, such as 21.0)",
                        value);
    }
}

static void handle_test(struct parser *p, const char *section, struct breath_test *test,
                        const char *name, const char *value)
{
    int keyword = 0;

    if (strcmp(name, "alcohol") == 0) {
        handle_alcohol(p, section, test, name, value);
    } else if (strcmp(name, "temperature") == 0) {
        handle_temperature(p, section, test, name, value);
    } else if (strcmp(name, "flags") == 0) {
        if (scenario_claim_line(&p->base, section, name, &test->flags_line)) {
            parse_flag_list(p, section, name, value, &test->flags);
        }
    } else if (strcmp(name, "blow") == 0) {
        if (scenario_handle_keyword_key(&p->base, section, name, value, blow_keywords,
                                        &test->blow_line, &keyword)) {
            test->never_blows = keyword != 0;
        }
    } else if (strcmp(name, "error") == 0) {
        if (scenario_handle_keyword_key(&p->base, section, name, value, error_keywords,
                                        &test->error_line, &keyword)) {
            test->error = (uint16_t)keyword;
        }
    } else if (strcmp(name, "fault") == 0) {
        if (scenario_handle_keyword_key(&p->base, section, name, value, scenario_fault_keywords,
                                        &test->fault_line, &keyword)) {
            test->fault = (enum scenario_fault)keyword;
        }
    } else if (wire_fault_handle_test_key(&p->base, section, name, value, &test->wire)) {
        return;
    } else {
        scenario_report(&p->base, p->base.line, section, name,
                        "unknown key (expected alcohol, flags, temperature, blow, error, fault, "
                        "fault_count or fault_delay_ms)");
    }
}

static void init_test(struct breath_test *test)
{
    memset(test, 0, sizeof *test);
    test->temperature = DEFAULT_TEMPERATURE;
}

static struct breath_test *find_or_add_test(struct parser *p, unsigned number)
{
    struct breath_scenario *sc = p->sc;

    for (size_t i = 0; i < sc->test_count; i++) {
        if (sc->tests[i].number == number) {
            return &sc->tests[i].test;
        }
    }

    struct breath_numbered_test *grown =
        realloc(sc->tests, (sc->test_count + 1) * sizeof sc->tests[0]);
    if (grown == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory reading %s\n", sc->path);
        exit(1);
    }
    sc->tests = grown;
    sc->tests[sc->test_count].number = number;
    init_test(&sc->tests[sc->test_count].test);
    return &sc->tests[sc->test_count++].test;
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
    } else if (wire_fault_handle_key(&p->base, &p->sc->requests, section, name, value)) {
        return 1;
    } else if (scenario_parse_test_section(section, &number, &valid)) {
        if (!valid) {
            scenario_report_bad_section(&p->base, section, name);
            return 1;
        }
        handle_test(p, section, find_or_add_test(p, number), name, value);
    } else {
        scenario_report_bad_section(&p->base, section, name);
    }
    return 1;
}

void breath_scenario_init(struct breath_scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    strcpy(sc->serial, "BA-0001");
    strcpy(sc->firmware, "1.4.2");
    sc->calibration_date = 20260915;
    sc->calibration_due = 20270315;
    strcpy(sc->mouthpiece_lot, "MP2411");
    sc->warmup_ms = 200;
    sc->blow_request_ms = 300;
    sc->blowing_ms = 300;
    sc->analysing_ms = 300;
    init_test(&sc->default_test);
}

int breath_scenario_load(struct breath_scenario *sc, const char *path)
{
    struct parser p = {.sc = sc};

    snprintf(sc->path, sizeof sc->path, "%s", path);
    if (scenario_parse_file(&p.base, sc->path, handle_entry, &p) != 0) {
        return -1;
    }
    wire_fault_check_plan(&p.base, &sc->requests);
    return p.base.errors == 0 ? 0 : -1;
}

const struct breath_test *breath_scenario_test_for(const struct breath_scenario *sc,
                                                   unsigned number)
{
    for (size_t i = 0; i < sc->test_count; i++) {
        if (sc->tests[i].number == number) {
            return &sc->tests[i].test;
        }
    }
    return &sc->default_test;
}

void breath_scenario_free(struct breath_scenario *sc)
{
    wire_fault_plan_free(&sc->requests);
    free(sc->tests);
    sc->tests = NULL;
    sc->test_count = 0;
}
