/* Scenario file parser of the saliva sim. sim/scenario_parse.c reads the
 * file with inih, and this file checks every section, key and value and
 * reports each error with file, line and key. */
#include "sim/scenario.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/scenario_parse.h"

#define CONCENTRATION_DECIMALS 3 /* matches SALIVA_CONC_SCALE */

static const struct scenario_keyword outcome_keywords[] = {
    {"valid", SALIVA_RESULT_VALID},
    {"control-line-failed", SALIVA_RESULT_CONTROL_FAILED},
    {"cartridge-expired", SALIVA_RESULT_CARTRIDGE_EXPIRED},
    {NULL, 0},
};

static const struct scenario_keyword error_keywords[] = {
    {"insufficient-sample", SALIVA_ERR_INSUFFICIENT_SAMPLE},
    {"cartridge-expired", SALIVA_ERR_CARTRIDGE_EXPIRED},
    {"cartridge-used", SALIVA_ERR_CARTRIDGE_USED},
    {"temperature", SALIVA_ERR_TEMPERATURE},
    {"busy", SALIVA_ERR_BUSY},
    {NULL, 0},
};

/* The example panel of docs/sim.md. */
static const uint16_t default_panel[] = {
    SALIVA_THC,     SALIVA_AMPHETAMINE,     SALIVA_METHAMPHETAMINE, SALIVA_MDMA,     SALIVA_MDA,
    SALIVA_COCAINE, SALIVA_BENZOYLECGONINE, SALIVA_CODEINE,         SALIVA_MORPHINE, SALIVA_6MAM,
};

/* Parsing state of the saliva entry handler. */
struct parser {
    struct scenario_parser base;
    struct scenario *sc;
    unsigned device_seen; /* bit per [device] key, to catch keys set twice */
    unsigned phases_seen;
};

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
        scenario_report(&p->base, p->base.line, section, key, "list too long");
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
            scenario_report(&p->base, p->base.line, section, key, "empty item in the list '%s'",
                            value);
            return false;
        }
        int code = saliva_analyte_code(item);
        if (code == 0) {
            scenario_report(
                &p->base, p->base.line, section, key,
                "unknown analyte '%s' (expected names from docs/saliva-registers.md, such as "
                "thc or 6-mam)",
                item);
            return false;
        }
        if (*mask & (1u << code)) {
            scenario_report(&p->base, p->base.line, section, key, "analyte '%s' is listed twice",
                            item);
            return false;
        }
        *mask |= 1u << code;

        if (count != NULL) {
            if (*count >= max) {
                scenario_report(&p->base, p->base.line, section, key, "more than %zu analytes",
                                max);
                return false;
            }
            codes[(*count)++] = (uint16_t)code;
        }
    }
    return true;
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

static void handle_device(struct parser *p, const char *name, const char *value)
{
    struct scenario *sc = p->sc;
    size_t key_count = sizeof device_keys / sizeof device_keys[0];
    size_t key = 0;

    while (key < key_count && strcmp(device_keys[key], name) != 0) {
        key++;
    }
    if (key == key_count) {
        scenario_report(&p->base, p->base.line, "device", name,
                        "unknown key (expected serial, firmware, calibration, cartridge_lot, "
                        "cartridge_expiry, slave or panel)");
        return;
    }
    if (scenario_mark_seen(&p->device_seen, (unsigned)key)) {
        scenario_report(&p->base, p->base.line, "device", name, "key set more than once");
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

        if (!scenario_parse_unsigned(value, SCENARIO_MAX_SLAVE, &slave) || slave < 1) {
            scenario_report(&p->base, p->base.line, "device", name,
                            "invalid value '%s' (expected 1 to %d)", value, SCENARIO_MAX_SLAVE);
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
            scenario_report(&p->base, p->base.line, "device", name, "the panel lists no analyte");
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
                    "unknown key (expected cartridge_ms, collecting_ms or analysing_ms)");
}

static void handle_list_key(struct parser *p, const char *section, const char *name,
                            const char *value, int *line, uint32_t *mask)
{
    if (!scenario_claim_line(&p->base, section, name, line)) {
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
        if (!scenario_claim_line(&p->base, section, name, &test->concentration_line[code])) {
            return;
        }
        if (!scenario_parse_fixed(value, CONCENTRATION_DECIMALS, &test->concentration[code])) {
            scenario_report(&p->base, p->base.line, section, name,
                            "invalid concentration '%s' (expected ng/mL as decimal text with up to "
                            "three decimals, such as 120.5)",
                            value);
        }
    } else if (strcmp(name, "outcome") == 0) {
        if (scenario_handle_keyword_key(&p->base, section, name, value, outcome_keywords,
                                        &test->outcome_line, &keyword)) {
            test->outcome = (uint16_t)keyword;
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
    } else if (strcmp(name, "over_range") == 0) {
        handle_list_key(p, section, name, value, &test->over_range_line, &test->over_range);
    } else if (strcmp(name, "under_range") == 0) {
        handle_list_key(p, section, name, value, &test->under_range_line, &test->under_range);
    } else if (strcmp(name, "control_invalid") == 0) {
        handle_list_key(p, section, name, value, &test->control_invalid_line,
                        &test->control_invalid);
    } else {
        scenario_report(&p->base, p->base.line, section, name,
                        "unknown key (expected an analyte name, outcome, over_range, under_range, "
                        "control_invalid, error, fault, fault_count or fault_delay_ms)");
    }
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

static void check_mask_in_panel(struct parser *p, const char *section, const char *key, int line,
                                uint32_t mask, uint32_t panel)
{
    uint32_t outside = mask & ~panel;

    if (line == 0 || outside == 0) {
        return;
    }
    for (int code = 1; code < SALIVA_ANALYTE_LIMIT; code++) {
        if (outside & (1u << code)) {
            scenario_report(&p->base, line, section, key,
                            "analyte '%s' is not in the [device] panel",
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

            scenario_report(&p->base, test->concentration_line[code], section, name,
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
    if (scenario_parse_file(&p.base, sc->path, handle_entry, &p) != 0) {
        return -1;
    }

    check_panel(&p);
    wire_fault_check_plan(&p.base, &sc->requests);
    return p.base.errors == 0 ? 0 : -1;
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
    wire_fault_plan_free(&sc->requests);
    free(sc->tests);
    sc->tests = NULL;
    sc->test_count = 0;
}
