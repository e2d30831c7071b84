/* The hair sim's scenario: the device section and one section per message. */
#include "sim/hair_sim_internal.h"

#include "sim/scenario_parse.h"

#include <stdlib.h>
#include <string.h>

static const struct scenario_keyword fault_keywords[] = {
    {"checksum", HAIR_FAULT_CHECKSUM},
    {"frame-number", HAIR_FAULT_FRAME_NUMBER},
    {"split", HAIR_FAULT_SPLIT},
    {"contention", HAIR_FAULT_CONTENTION},
    {"interrupt", HAIR_FAULT_INTERRUPT},
    {"noise", HAIR_FAULT_NOISE},
    {"silence", HAIR_FAULT_SILENCE},
    {"duplicate", HAIR_FAULT_DUPLICATE},
    {NULL, 0},
};

static bool set_ms(const char *value, int *out)
{
    unsigned long parsed;

    if (!scenario_parse_unsigned(value, SCENARIO_MAX_PHASE_MS, &parsed)) {
        return false;
    }
    *out = (int)parsed;
    return true;
}

static int device_key(struct scenario_parser *p, struct hair_scenario *s, const char *name,
                      const char *value)
{
    bool ok = true;

    if (strcmp(name, "id") == 0) {
        ok = scenario_is_register_text(value, sizeof(s->id) - 1);
        if (ok) {
            snprintf(s->id, sizeof(s->id), "%s", value);
        }
    } else if (strcmp(name, "reply_timeout_ms") == 0) {
        ok = set_ms(value, &s->reply_timeout_ms);
    } else if (strcmp(name, "silence_ms") == 0) {
        ok = set_ms(value, &s->silence_ms);
    } else if (strcmp(name, "contention_retry_ms") == 0) {
        ok = set_ms(value, &s->contention_retry_ms);
    } else {
        scenario_report(p, p->line, "device", name, "unknown key");
        return 1;
    }
    if (!ok) {
        scenario_report(p, p->line, "device", name, "invalid value '%s'", value);
    }
    return 1;
}

static bool text_key(const char *value, char *out, size_t size)
{
    if (strlen(value) >= size || strpbrk(value, "|\\^&\r\n") != NULL) {
        return false;
    }
    snprintf(out, size, "%s", value);
    return true;
}

static int message_key(struct scenario_parser *p, const char *section, struct hair_message *m,
                       const char *name, const char *value)
{
    bool ok = true;
    int line = 0;

    if (strcmp(name, "barcode") == 0) {
        ok = text_key(value, m->barcode, sizeof(m->barcode)) && value[0] != '\0';
    } else if (strcmp(name, "subject") == 0) {
        ok = text_key(value, m->subject, sizeof(m->subject));
    } else if (strcmp(name, "second_barcode") == 0) {
        ok = text_key(value, m->second_barcode, sizeof(m->second_barcode)) && value[0] != '\0';
    } else if (strcmp(name, "second_subject") == 0) {
        ok = text_key(value, m->second_subject, sizeof(m->second_subject));
    } else if (strcmp(name, "query") == 0) {
        ok = strcmp(value, "yes") == 0 || strcmp(value, "no") == 0;
        m->query = strcmp(value, "yes") == 0;
    } else if (strcmp(name, "status") == 0) {
        ok = strlen(value) == 1 && strchr("FCP", value[0]) != NULL;
        m->status = value[0];
    } else if (strcmp(name, "unit") == 0) {
        ok = text_key(value, m->unit, sizeof(m->unit));
    } else if (strcmp(name, "completed") == 0) {
        ok = strlen(value) == 14 && strspn(value, "0123456789") == 14;
        snprintf(m->completed, sizeof(m->completed), "%s", value);
    } else if (strcmp(name, "fault") == 0) {
        scenario_handle_keyword_key(p, section, name, value, fault_keywords, &line, &m->fault);
        return 1;
    } else if (m->code_count < HAIR_MAX_CODES) {
        ok = text_key(name, m->codes[m->code_count], sizeof(m->codes[0])) &&
             text_key(value, m->values[m->code_count], sizeof(m->values[0]));
        m->code_count += ok;
    } else {
        scenario_report(p, p->line, section, name, "more than %d analyte codes", HAIR_MAX_CODES);
        return 1;
    }
    if (!ok) {
        scenario_report(p, p->line, section, name, "invalid value '%s'", value);
    }
    return 1;
}

static int handle_entry(void *user, const char *section, const char *name, const char *value)
{
    struct hair_load *load = user;
    char *end;

    if (strcmp(section, "device") == 0) {
        return device_key(&load->parser, load->scenario, name, value);
    }
    if (strncmp(section, "message.", 8) == 0) {
        long number = strtol(section + 8, &end, 10);
        if (*end == '\0' && number >= 1 && number <= HAIR_MAX_MESSAGES) {
            struct hair_message *m = &load->scenario->messages[number - 1];
            m->defined = true;
            if ((int)number > load->scenario->count) {
                load->scenario->count = (int)number;
            }
            return message_key(&load->parser, section, m, name, value);
        }
    }
    scenario_report_bad_section(&load->parser, section, name);
    return 1;
}

static void defaults(struct hair_scenario *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "HAIR-LC-0042");
    s->reply_timeout_ms = 15000;
    s->silence_ms = 35000;
    s->contention_retry_ms = 1000;
    for (int i = 0; i < HAIR_MAX_MESSAGES; i++) {
        s->messages[i].status = 'F';
        snprintf(s->messages[i].unit, sizeof(s->messages[i].unit), "ng/mg");
        snprintf(s->messages[i].completed, sizeof(s->messages[i].completed), "20261204101200");
    }
}

void *hair_load_scenario(const char *path)
{
    struct hair_load load = {.scenario = calloc(1, sizeof(struct hair_scenario))};

    if (load.scenario == NULL) {
        return NULL;
    }
    defaults(load.scenario);
    if (path != NULL && scenario_parse_file(&load.parser, path, handle_entry, &load) != 0) {
        free(load.scenario);
        return NULL;
    }
    for (int i = 0; i < load.scenario->count; i++) {
        if (load.scenario->messages[i].defined && load.scenario->messages[i].barcode[0] == '\0') {
            fprintf(stderr, "toxlab-sim: %s: [message.%d]: missing key 'barcode'\n", path, i + 1);
            free(load.scenario);
            return NULL;
        }
    }
    return load.scenario;
}
