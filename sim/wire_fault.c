/* Wire faults: their names, the [request.N] scenario sections and the
 * arguments of the `fault` command. The loop in slave_loop.c applies them. */
#include "sim/wire_fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Delay of a slow reply when none is given: past toxlabd's default 1000 ms
 * response timeout. */
#define DEFAULT_SLOW_MS 1500

static const char *const names[] = {
    [WIRE_FAULT_NONE] = "none",
    [WIRE_FAULT_CORRUPT] = "corrupt",
    [WIRE_FAULT_NOISE] = "noise",
    [WIRE_FAULT_DROP] = "drop",
    [WIRE_FAULT_TRUNCATE] = "truncate",
    [WIRE_FAULT_SLOW] = "slow",
    [WIRE_FAULT_BUSY] = "busy",
    [WIRE_FAULT_UNPLUG] = "unplug",
    [WIRE_FAULT_POWER_CYCLE] = "power-cycle",
    [WIRE_FAULT_RESEND] = "resend",
};

#define KIND_COUNT (sizeof names / sizeof names[0])

const char *wire_fault_name(enum wire_fault_kind kind)
{
    return (size_t)kind < KIND_COUNT ? names[kind] : "none";
}

bool wire_fault_parse_kind(const char *name, enum wire_fault_kind *kind)
{
    for (size_t i = 1; i < KIND_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *kind = (enum wire_fault_kind)i;
            return true;
        }
    }
    return false;
}

unsigned wire_fault_default_delay(enum wire_fault_kind kind)
{
    return kind == WIRE_FAULT_SLOW ? DEFAULT_SLOW_MS : 0;
}

static bool parse_request_section(const char *section, unsigned *number, bool *valid)
{
    unsigned long n;

    if (strncmp(section, "request.", 8) != 0) {
        return false;
    }
    *valid = scenario_parse_unsigned(section + 8, WIRE_FAULT_MAX_COUNT, &n) && n >= 1;
    *number = *valid ? (unsigned)n : 0;
    return true;
}

static struct wire_fault_entry *find_or_add(struct scenario_parser *p, struct wire_fault_plan *plan,
                                            unsigned request)
{
    for (size_t i = 0; i < plan->count; i++) {
        if (plan->entries[i].request == request) {
            return &plan->entries[i];
        }
    }

    struct wire_fault_entry *grown = realloc(plan->entries, (plan->count + 1) * sizeof *grown);
    if (grown == NULL) {
        scenario_report(p, p->line, "request", "", "out of memory");
        return NULL;
    }
    plan->entries = grown;

    struct wire_fault_entry *entry = &plan->entries[plan->count++];
    memset(entry, 0, sizeof *entry);
    entry->request = request;
    entry->fault.count = 1;
    entry->fault.address = -1;
    entry->line = p->line;
    return entry;
}

static void handle_key(struct scenario_parser *p, struct wire_fault_entry *entry,
                       const char *section, const char *name, const char *value)
{
    unsigned long n;

    if (strcmp(name, "fault") == 0) {
        if (!wire_fault_parse_kind(value, &entry->fault.kind)) {
            scenario_report(p, p->line, section, name,
                            "unknown fault '%s' (expected corrupt, noise, drop, truncate, slow, "
                            "busy, unplug, power-cycle or resend)",
                            value);
        } else if (entry->fault.delay_ms == 0) {
            entry->fault.delay_ms = wire_fault_default_delay(entry->fault.kind);
        }
    } else if (strcmp(name, "count") == 0) {
        if (!scenario_parse_unsigned(value, WIRE_FAULT_MAX_COUNT, &n) || n == 0) {
            scenario_report(p, p->line, section, name, "expected a count from 1 to %u",
                            WIRE_FAULT_MAX_COUNT);
        } else {
            entry->fault.count = (unsigned)n;
        }
    } else if (strcmp(name, "delay_ms") == 0) {
        if (!scenario_parse_unsigned(value, WIRE_FAULT_MAX_MS, &n)) {
            scenario_report(p, p->line, section, name, "expected milliseconds from 0 to %u",
                            WIRE_FAULT_MAX_MS);
        } else {
            entry->fault.delay_ms = (unsigned)n;
        }
    } else if (strcmp(name, "register") == 0) {
        if (!scenario_parse_unsigned(value, UINT16_MAX, &n)) {
            scenario_report(p, p->line, section, name, "expected a register from 0 to 65535");
        } else {
            entry->fault.address = (int)n;
        }
    } else {
        scenario_report(p, p->line, section, name,
                        "unknown key (expected fault, count, delay_ms or register)");
    }
}

bool wire_fault_handle_key(struct scenario_parser *p, struct wire_fault_plan *plan,
                           const char *section, const char *name, const char *value)
{
    unsigned request;
    bool valid;

    if (!parse_request_section(section, &request, &valid)) {
        return false;
    }
    if (!valid) {
        scenario_report(p, p->line, section, name,
                        "invalid request number (expected [request.N] with N from 1 to %u)",
                        WIRE_FAULT_MAX_COUNT);
        return true;
    }

    struct wire_fault_entry *entry = find_or_add(p, plan, request);
    if (entry != NULL) {
        handle_key(p, entry, section, name, value);
    }
    return true;
}

void wire_fault_check_plan(struct scenario_parser *p, const struct wire_fault_plan *plan)
{
    for (size_t i = 0; i < plan->count; i++) {
        char section[32];

        if (plan->entries[i].fault.kind != WIRE_FAULT_NONE) {
            continue;
        }
        snprintf(section, sizeof section, "request.%u", plan->entries[i].request);
        scenario_report(p, plan->entries[i].line, section, "fault", "missing key");
    }
}

const struct wire_fault *wire_fault_at(const struct wire_fault_plan *plan, unsigned request)
{
    for (size_t i = 0; plan != NULL && i < plan->count; i++) {
        if (plan->entries[i].request == request) {
            return &plan->entries[i].fault;
        }
    }
    return NULL;
}

void wire_fault_plan_free(struct wire_fault_plan *plan)
{
    free(plan->entries);
    plan->entries = NULL;
    plan->count = 0;
}

bool wire_fault_handle_test_key(struct scenario_parser *p, const char *section, const char *name,
                                const char *value, struct wire_fault_test_keys *keys)
{
    unsigned long n = 0;

    if (strcmp(name, "fault_count") == 0) {
        if (!scenario_claim_line(p, section, name, &keys->count_line)) {
            return true;
        }
        if (!scenario_parse_unsigned(value, WIRE_FAULT_MAX_COUNT, &n) || n == 0) {
            scenario_report(p, p->line, section, name, "expected a count from 1 to %u",
                            WIRE_FAULT_MAX_COUNT);
        }
        keys->count = (unsigned)n;
        return true;
    }
    if (strcmp(name, "fault_delay_ms") == 0) {
        if (!scenario_claim_line(p, section, name, &keys->delay_line)) {
            return true;
        }
        if (!scenario_parse_unsigned(value, WIRE_FAULT_MAX_MS, &n)) {
            scenario_report(p, p->line, section, name, "expected milliseconds from 0 to %u",
                            WIRE_FAULT_MAX_MS);
        }
        keys->delay_ms = (unsigned)n;
        return true;
    }
    return false;
}

struct wire_fault wire_fault_for_test(int fault, const struct wire_fault_test_keys *keys)
{
    struct wire_fault wire = {
        .kind = (enum wire_fault_kind)(fault - SCENARIO_FAULT_WIRE),
        .count = keys->count_line != 0 ? keys->count : 1,
        .address = -1,
    };

    wire.delay_ms = keys->delay_line != 0 ? keys->delay_ms : wire_fault_default_delay(wire.kind);
    return wire;
}

static bool parse_number(const char *text, unsigned long max, unsigned *out)
{
    unsigned long n;

    if (!scenario_parse_unsigned(text, max, &n)) {
        return false;
    }
    *out = (unsigned)n;
    return true;
}

bool wire_fault_parse_command(const char *arguments, struct wire_fault *fault, const char **error)
{
    char words[4][32] = {"", "", "", ""};
    char extra[2] = "";
    int n =
        sscanf(arguments, "%31s %31s %31s %31s %1s", words[0], words[1], words[2], words[3], extra);
    unsigned address;

    memset(fault, 0, sizeof *fault);
    fault->address = -1;
    if (n >= 1 && strcmp(words[0], "off") == 0 && n == 1) {
        return true;
    }
    if (n < 1 || n > 4 || !wire_fault_parse_kind(words[0], &fault->kind)) {
        *error = "expected 'fault KIND [COUNT [DELAY_MS [REGISTER]]]' or 'fault off', KIND one "
                 "of corrupt, noise, drop, truncate, slow, busy, unplug, power-cycle, resend";
        return false;
    }
    fault->count = 1;
    fault->delay_ms = wire_fault_default_delay(fault->kind);
    if (n >= 2 &&
        (!parse_number(words[1], WIRE_FAULT_MAX_COUNT, &fault->count) || fault->count == 0)) {
        *error = "COUNT must be a number of requests from 1 to 1000000";
        return false;
    }
    if (n >= 3 && !parse_number(words[2], WIRE_FAULT_MAX_MS, &fault->delay_ms)) {
        *error = "DELAY_MS must be milliseconds from 0 to 600000";
        return false;
    }
    if (n == 4 && !parse_number(words[3], UINT16_MAX, &address)) {
        *error = "REGISTER must be a register address from 0 to 65535";
        return false;
    }
    if (n == 4) {
        fault->address = (int)address;
    }
    return true;
}
