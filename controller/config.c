#include "controller/config.h"

#include "controller/db.h"
#include "protocol/decimal.h"
#include "version.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INSTRUMENT_PREFIX "instrument."
#define DEFAULT_ALCOHOL_SOURCE "GB 19522-2010 Table 1 (limits); breath to blood 1:2200"

struct load_state {
    struct config *config;
    char *err;
    size_t err_size;
};

void config_defaults(struct config *config)
{
    memset(config, 0, sizeof(*config));
    snprintf(config->lab_id, sizeof(config->lab_id), "LAB");
    snprintf(config->database, sizeof(config->database), "/var/lib/toxlab/toxlab.db");
    snprintf(config->socket_path, sizeof(config->socket_path), "/run/toxlab/toxlab.sock");
    snprintf(config->socket_group, sizeof(config->socket_group), "toxlab-users");
    snprintf(config->thresholds, sizeof(config->thresholds), "%s",
             TOXLAB_SYSCONFDIR "/thresholds.tsv");
    snprintf(config->rules, sizeof(config->rules), "%s", TOXLAB_SYSCONFDIR "/rules.tsv");
    snprintf(config->timezone, sizeof(config->timezone), "Asia/Shanghai");
    for (int i = 0; i < ROLE_COUNT; i++) {
        snprintf(config->role_groups[i], sizeof(config->role_groups[i]), "toxlab-%s", role_name(i));
    }
    config->max_clients = 64;
    config->alcohol.factor = 2200;
    snprintf(config->alcohol.drink_limit, sizeof(config->alcohol.drink_limit), "20");
    snprintf(config->alcohol.drunk_limit, sizeof(config->alcohol.drunk_limit), "80");
    config->alcohol.drink_micro = 20 * DECIMAL_SCALE;
    config->alcohol.drunk_micro = 80 * DECIMAL_SCALE;
    snprintf(config->alcohol.source, sizeof(config->alcohol.source), "%s", DEFAULT_ALCOHOL_SOURCE);
    config->alcohol.blood_on =
        BLOOD_ON_DRUNK | BLOOD_ON_REFUSAL | BLOOD_ON_DISPUTE | BLOOD_ON_CRASH;
    snprintf(config->alcohol.blood_source, sizeof(config->alcohol.blood_source),
             "MPS Order 157 Art. 36 (toxlab's reading)");
    config->busy_timeout_ms = 5000;
    config->cache_kb = DB_CACHE_KB;
    snprintf(config->backup_folder, sizeof(config->backup_folder), "/var/lib/toxlab/backups");
    config->audit_head_every = 1000;
}

static void instrument_defaults(struct instrument_config *inst, const char *id)
{
    memset(inst, 0, sizeof(*inst));
    snprintf(inst->id, sizeof(inst->id), "%s", id);
    inst->baud = 19200;
    inst->parity = 'E';
    inst->data_bits = 8;
    inst->stop_bits = 1;
    inst->slave = 1;
    inst->response_timeout_ms = 1000;
    inst->poll_interval_ms = 500;
    inst->retry_ms = 1000;
    inst->retry_max_ms = 30000;
    inst->grace_period_ms = 120000;
    inst->offline_after_failures = 3;
    inst->astm_reply_timeout_ms = 15000;
    inst->astm_frame_timeout_ms = 30000;
    inst->astm_busy_retry_ms = 10000;
    inst->astm_contention_retry_ms = 20000;
    inst->astm_interrupt_retry_ms = 15000;
    inst->astm_send_frame_text = 240;
    inst->astm_max_frame_text = 16384;
}

static int parse_int(const char *value, int min, int max, int *out)
{
    char *end;
    long parsed = strtol(value, &end, 10);

    if (*value == '\0' || *end != '\0' || parsed < min || parsed > max) {
        return -1;
    }
    *out = (int)parsed;
    return 0;
}

static int set_text(char *field, size_t size, const char *value)
{
    if (strlen(value) >= size) {
        return -1;
    }
    snprintf(field, size, "%s", value);
    return 0;
}

static bool valid_lab_id(const char *value)
{
    if (value[0] == '\0' || strlen(value) > 16) {
        return false;
    }
    for (const char *p = value; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Returns 0 on success, -1 for a bad value, -2 for an unknown key. */
static int set_daemon_key(struct config *config, const char *key, const char *value)
{
    if (strcmp(key, "lab_id") == 0) {
        return valid_lab_id(value) ? set_text(config->lab_id, sizeof(config->lab_id), value) : -1;
    }
    if (strcmp(key, "database") == 0) {
        return set_text(config->database, sizeof(config->database), value);
    }
    if (strcmp(key, "socket") == 0) {
        return set_text(config->socket_path, sizeof(config->socket_path), value);
    }
    if (strcmp(key, "socket_group") == 0) {
        return set_text(config->socket_group, sizeof(config->socket_group), value);
    }
    if (strcmp(key, "thresholds") == 0) {
        return set_text(config->thresholds, sizeof(config->thresholds), value);
    }
    if (strcmp(key, "rules") == 0) {
        return set_text(config->rules, sizeof(config->rules), value);
    }
    if (strcmp(key, "timezone") == 0) {
        return set_text(config->timezone, sizeof(config->timezone), value);
    }
    if (strcmp(key, "max_clients") == 0) {
        return parse_int(value, 1, 1024, &config->max_clients);
    }
    if (strcmp(key, "busy_timeout_ms") == 0) {
        return parse_int(value, 0, 600000, &config->busy_timeout_ms);
    }
    if (strcmp(key, "backup_folder") == 0) {
        return value[0] ? set_text(config->backup_folder, sizeof(config->backup_folder), value)
                        : -1;
    }
    if (strcmp(key, "audit_head_every") == 0) {
        return parse_int(value, 1, 1000000, &config->audit_head_every);
    }
    if (strcmp(key, "max_database_kb") == 0) {
        return parse_int(value, 0, 1 << 30, &config->max_database_kb);
    }
    if (strcmp(key, "cache_kb") == 0) {
        return parse_int(value, 64, 1 << 20, &config->cache_kb);
    }
    return -2;
}

static int set_parity(struct instrument_config *inst, const char *value)
{
    if (strlen(value) != 1 || strchr("NEO", value[0]) == NULL) {
        return -1;
    }
    inst->parity = value[0];
    return 0;
}

static int set_instrument_key(struct instrument_config *inst, const char *key, const char *value)
{
    static const struct {
        const char *key;
        size_t offset;
        int min;
        int max;
    } numbers[] = {
        {"baud", offsetof(struct instrument_config, baud), 300, 4000000},
        {"data_bits", offsetof(struct instrument_config, data_bits), 5, 8},
        {"stop_bits", offsetof(struct instrument_config, stop_bits), 1, 2},
        {"slave", offsetof(struct instrument_config, slave), 1, 247},
        {"response_timeout_ms", offsetof(struct instrument_config, response_timeout_ms), 1, 600000},
        {"poll_interval_ms", offsetof(struct instrument_config, poll_interval_ms), 1, 600000},
        {"retry_ms", offsetof(struct instrument_config, retry_ms), 1, 3600000},
        {"retry_max_ms", offsetof(struct instrument_config, retry_max_ms), 1, 3600000},
        {"grace_period_ms", offsetof(struct instrument_config, grace_period_ms), 1, 86400000},
        {"offline_after_failures", offsetof(struct instrument_config, offline_after_failures), 1,
         1000},
        {"astm_reply_timeout_ms", offsetof(struct instrument_config, astm_reply_timeout_ms), 1,
         600000},
        {"astm_frame_timeout_ms", offsetof(struct instrument_config, astm_frame_timeout_ms), 1,
         600000},
        {"astm_busy_retry_ms", offsetof(struct instrument_config, astm_busy_retry_ms), 1, 600000},
        {"astm_contention_retry_ms", offsetof(struct instrument_config, astm_contention_retry_ms),
         1, 600000},
        {"astm_interrupt_retry_ms", offsetof(struct instrument_config, astm_interrupt_retry_ms), 1,
         600000},
        {"astm_send_frame_text", offsetof(struct instrument_config, astm_send_frame_text), 16, 240},
        {"astm_max_frame_text", offsetof(struct instrument_config, astm_max_frame_text), 240,
         1048576},
    };

    if (strcmp(key, "driver") == 0) {
        return set_text(inst->driver, sizeof(inst->driver), value);
    }
    if (strcmp(key, "device") == 0) {
        return set_text(inst->device, sizeof(inst->device), value);
    }
    if (strcmp(key, "parity") == 0) {
        inst->framing_set = true;
        return set_parity(inst, value);
    }
    if (strcmp(key, "baud") == 0) {
        inst->framing_set = true;
    }
    if (strcmp(key, "method") == 0) {
        bool known = strcmp(value, "lc-ms/ms") == 0 || strcmp(value, "immunoassay") == 0;
        return known ? set_text(inst->method, sizeof(inst->method), value) : -1;
    }
    if (strcmp(key, "analytes") == 0) {
        return set_text(inst->analytes, sizeof(inst->analytes), value);
    }
    if (strcmp(key, "timezone") == 0) {
        return set_text(inst->timezone, sizeof(inst->timezone), value);
    }
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        if (strcmp(key, numbers[i].key) == 0) {
            return parse_int(value, numbers[i].min, numbers[i].max,
                             (int *)((char *)inst + numbers[i].offset));
        }
    }
    return -2;
}

static bool valid_instrument_id(const char *id)
{
    if (id[0] == '\0' || strlen(id) > INSTRUMENT_ID_MAX) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static struct instrument_config *instrument_for(struct config *config, const char *id)
{
    for (size_t i = 0; i < config->instrument_count; i++) {
        if (strcmp(config->instruments[i].id, id) == 0) {
            return &config->instruments[i];
        }
    }
    if (!valid_instrument_id(id) || config->instrument_count == CONFIG_MAX_INSTRUMENTS) {
        return NULL;
    }
    struct instrument_config *inst = &config->instruments[config->instrument_count++];
    instrument_defaults(inst, id);
    return inst;
}

static int set_limit(char *text, size_t size, int64_t *micro, const char *value)
{
    int64_t parsed;

    if (decimal_parse(value, &parsed) != 0 || parsed <= 0) {
        return -1;
    }
    *micro = parsed;
    return set_text(text, size, value);
}

static int set_blood_on(unsigned *mask, const char *value)
{
    static const struct {
        const char *name;
        unsigned bit;
    } triggers[] = {{"drunk", BLOOD_ON_DRUNK},
                    {"refusal", BLOOD_ON_REFUSAL},
                    {"dispute", BLOOD_ON_DISPUTE},
                    {"crash", BLOOD_ON_CRASH}};
    char copy[128];
    unsigned result = 0;

    if (strcmp(value, "none") == 0) {
        *mask = 0;
        return 0;
    }
    if (value[0] == '\0' || set_text(copy, sizeof(copy), value) != 0) {
        return -1;
    }
    for (char *word = strtok(copy, ", "); word != NULL; word = strtok(NULL, ", ")) {
        size_t i = 0;
        while (i < sizeof(triggers) / sizeof(triggers[0]) && strcmp(word, triggers[i].name) != 0) {
            i++;
        }
        if (i == sizeof(triggers) / sizeof(triggers[0])) {
            return -1;
        }
        result |= triggers[i].bit;
    }
    *mask = result;
    return 0;
}

static int set_alcohol_key(struct alcohol_config *alcohol, const char *key, const char *value)
{
    if (strcmp(key, "factor") == 0) {
        return parse_int(value, 1000, 5000, &alcohol->factor);
    }
    if (strcmp(key, "drink_limit") == 0) {
        return set_limit(alcohol->drink_limit, sizeof(alcohol->drink_limit), &alcohol->drink_micro,
                         value);
    }
    if (strcmp(key, "drunk_limit") == 0) {
        return set_limit(alcohol->drunk_limit, sizeof(alcohol->drunk_limit), &alcohol->drunk_micro,
                         value);
    }
    if (strcmp(key, "source") == 0) {
        return value[0] ? set_text(alcohol->source, sizeof(alcohol->source), value) : -1;
    }
    if (strcmp(key, "blood_on") == 0) {
        return set_blood_on(&alcohol->blood_on, value);
    }
    if (strcmp(key, "blood_source") == 0) {
        return value[0] ? set_text(alcohol->blood_source, sizeof(alcohol->blood_source), value)
                        : -1;
    }
    return -2;
}

static int set_role_key(struct config *config, const char *key, const char *value)
{
    int index = role_index(key);

    if (index < 0) {
        return -2;
    }
    config->roles_set |= 1u << index;
    return set_text(config->role_groups[index], sizeof(config->role_groups[index]), value);
}

/* Returns what a key takes, for the message about a bad value. */
static const char *value_hint(const char *key)
{
    static const struct {
        const char *key;
        const char *hint;
    } hints[] = {
        {"blood_on", " (use none, or drunk, refusal, dispute and crash separated by commas)"},
        {"factor", " (an integer from 1000 to 5000)"},
        {"parity", " (use N, E or O)"},
        {"lab_id", " (1 to 16 characters A-Z and 0-9)"},
        {"drink_limit", " (a positive decimal, mg/100 mL)"},
        {"drunk_limit", " (a positive decimal, mg/100 mL)"},
    };

    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        if (strcmp(hints[i].key, key) == 0) {
            return hints[i].hint;
        }
    }
    return "";
}

/* Applies one key; returns 0 or -1 with err holding the reason. */
static int apply_key(struct config *config, const char *section, const char *key, const char *value,
                     char *err, size_t err_size)
{
    int status;

    if (strcmp(section, "daemon") == 0) {
        status = set_daemon_key(config, key, value);
    } else if (strcmp(section, "alcohol") == 0) {
        status = set_alcohol_key(&config->alcohol, key, value);
    } else if (strcmp(section, "roles") == 0) {
        status = set_role_key(config, key, value);
    } else if (strncmp(section, INSTRUMENT_PREFIX, strlen(INSTRUMENT_PREFIX)) == 0) {
        struct instrument_config *inst =
            instrument_for(config, section + strlen(INSTRUMENT_PREFIX));
        if (inst == NULL) {
            snprintf(err, err_size,
                     "invalid instrument section [%s]: IDs use a-z, 0-9, '-' and '_', at most "
                     "%d characters and %d instruments",
                     section, INSTRUMENT_ID_MAX, CONFIG_MAX_INSTRUMENTS);
            return -1;
        }
        status = set_instrument_key(inst, key, value);
    } else {
        snprintf(err, err_size, "unknown section [%s]", section);
        return -1;
    }
    if (status == -2) {
        snprintf(err, err_size, "unknown key '%s' in [%s]", key, section);
    } else if (status != 0) {
        snprintf(err, err_size, "invalid value '%s' for key '%s' in [%s]%s", value, key, section,
                 value_hint(key));
    }
    return status == 0 ? 0 : -1;
}

static int config_ini_handler(void *user, const char *section, const char *key, const char *value)
{
    struct load_state *state = user;

    if (key == NULL) {
        return 1; /* A section header alone is fine. */
    }
    char reason[512];

    if (apply_key(state->config, section, key, value, reason, sizeof(reason)) == 0) {
        return 1;
    }
    /* inih reports the first failing line, so keep the first reason too. */
    if (state->err[0] == '\0') {
        snprintf(state->err, state->err_size, "%s", reason);
    }
    return 0;
}

int config_load(struct config *config, const char *path, char *err, size_t err_size)
{
    char reason[512] = "";
    struct load_state state = {config, reason, sizeof(reason)};
    int line = ini_parse(path, config_ini_handler, &state);

    if (line == -1) {
        snprintf(err, err_size, "%s: cannot open the configuration file: %s", path,
                 strerror(errno));
        return -1;
    }
    if (line != 0) {
        snprintf(err, err_size, "%s:%d: %s", path, line,
                 reason[0] ? reason : "syntax error (expected [section] or key = value)");
        return -1;
    }
    return 0;
}

int config_override(struct config *config, const char *assignment, char *err, size_t err_size)
{
    const char *equals = strchr(assignment, '=');
    char name[256];
    char *dot;

    if (equals == NULL || (size_t)(equals - assignment) >= sizeof(name)) {
        snprintf(err, err_size, "-o %s: expected section.key=value", assignment);
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(equals - assignment), assignment);
    dot = strrchr(name, '.');
    if (dot == NULL || dot == name || dot[1] == '\0') {
        snprintf(err, err_size, "-o %s: expected section.key=value", assignment);
        return -1;
    }
    *dot = '\0';
    char reason[512];
    if (apply_key(config, name, dot + 1, equals + 1, reason, sizeof(reason)) != 0) {
        snprintf(err, err_size, "-o %s: %s", assignment, reason);
        return -1;
    }
    return 0;
}

/* Reports whether zone names a time zone of the system's database. */
static bool known_timezone(const char *zone)
{
    char path[PATH_MAX];

    if (strcmp(zone, "UTC") == 0) {
        return true;
    }
    if (zone[0] == '\0' || zone[0] == '/' || strstr(zone, "..") != NULL) {
        return false;
    }
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
    return access(path, R_OK) == 0;
}

static int validate_hair(const struct instrument_config *inst, char *err, size_t err_size);

int config_validate(const struct config *config, char *err, size_t err_size)
{
    if (!known_timezone(config->timezone)) {
        snprintf(err, err_size,
                 "[daemon]: timezone '%s' is not in /usr/share/zoneinfo (e.g. Asia/Shanghai, UTC)",
                 config->timezone);
        return -1;
    }
    const struct alcohol_config *alcohol = &config->alcohol;
    bool defaults = alcohol->factor == 2200 && alcohol->drink_micro == 20 * DECIMAL_SCALE &&
                    alcohol->drunk_micro == 80 * DECIMAL_SCALE;
    if (!defaults && strcmp(alcohol->source, DEFAULT_ALCOHOL_SOURCE) == 0) {
        snprintf(err, err_size,
                 "[alcohol]: factor or limits differ from GB 19522 at 1:2200, but source still "
                 "names those; set source to where factor %d and limits %s/%s come from",
                 alcohol->factor, alcohol->drink_limit, alcohol->drunk_limit);
        return -1;
    }
    if (config->alcohol.drunk_micro <= config->alcohol.drink_micro) {
        snprintf(err, err_size, "[alcohol]: drunk_limit %s is not above drink_limit %s",
                 config->alcohol.drunk_limit, config->alcohol.drink_limit);
        return -1;
    }
    for (size_t i = 0; i < config->instrument_count; i++) {
        const struct instrument_config *inst = &config->instruments[i];
        if (inst->driver[0] == '\0') {
            snprintf(err, err_size, "[instrument.%s]: missing key 'driver'", inst->id);
            return -1;
        }
        if (inst->device[0] == '\0') {
            snprintf(err, err_size, "[instrument.%s]: missing key 'device'", inst->id);
            return -1;
        }
        if (strcmp(inst->driver, "hair") == 0 && validate_hair(inst, err, err_size) != 0) {
            return -1;
        }
        if (inst->retry_max_ms < inst->retry_ms) {
            snprintf(err, err_size, "[instrument.%s]: retry_max_ms is less than retry_ms",
                     inst->id);
            return -1;
        }
    }
    return 0;
}

/* Finds the next CODE=analyte pair of an analytes map from *cursor on.
 * Returns false at the end or on a pair without '='. */
static bool next_analyte_pair(const char **cursor, char *code, size_t code_size, char *name,
                              size_t name_size)
{
    const char *p = *cursor;

    while (*p == ' ' || *p == ',') {
        p++;
    }
    if (*p == '\0') {
        return false;
    }
    size_t pair_len = strcspn(p, ",");
    const char *equals = memchr(p, '=', pair_len);
    if (equals == NULL) {
        return false;
    }
    size_t code_len = (size_t)(equals - p);
    size_t name_len = pair_len - code_len - 1;
    while (code_len > 0 && p[code_len - 1] == ' ') {
        code_len--;
    }
    while (name_len > 0 && equals[1] == ' ') {
        equals++;
        name_len--;
    }
    while (name_len > 0 && equals[name_len] == ' ') {
        name_len--;
    }
    if (code_len == 0 || name_len == 0 || code_len >= code_size || name_len >= name_size) {
        return false;
    }
    snprintf(code, code_size, "%.*s", (int)code_len, p);
    snprintf(name, name_size, "%.*s", (int)name_len, equals + 1);
    *cursor = p + pair_len;
    return true;
}

bool config_map_analyte(const struct instrument_config *inst, const char *code, char *name,
                        size_t size)
{
    const char *cursor = inst->analytes;
    char pair_code[32];
    char pair_name[32];

    while (next_analyte_pair(&cursor, pair_code, sizeof(pair_code), pair_name, sizeof(pair_name))) {
        if (strcmp(pair_code, code) == 0) {
            snprintf(name, size, "%s", pair_name);
            return true;
        }
    }
    return false;
}

/* Checks the keys only the hair driver reads: its method sets the tier, and
 * every pair of its analytes map must parse. */
static int validate_hair(const struct instrument_config *inst, char *err, size_t err_size)
{
    const char *cursor = inst->analytes;
    char code[32];
    char name[32];
    size_t pairs = 0;

    if (inst->method[0] == '\0') {
        snprintf(err, err_size,
                 "[instrument.%s]: missing key 'method' (lc-ms/ms for confirm tier, immunoassay "
                 "for screen tier)",
                 inst->id);
        return -1;
    }
    while (next_analyte_pair(&cursor, code, sizeof(code), name, sizeof(name))) {
        pairs++;
    }
    while (*cursor == ' ' || *cursor == ',') {
        cursor++;
    }
    if (pairs == 0 || *cursor != '\0') {
        snprintf(err, err_size,
                 "[instrument.%s]: analytes: invalid pair near '%.40s' (expected CODE=analyte, "
                 "comma-separated)",
                 inst->id, cursor);
        return -1;
    }
    if (inst->timezone[0] != '\0' && !known_timezone(inst->timezone)) {
        snprintf(err, err_size, "[instrument.%s]: timezone '%s' is not in /usr/share/zoneinfo",
                 inst->id, inst->timezone);
        return -1;
    }
    return 0;
}

const struct instrument_config *config_find_instrument(const struct config *config, const char *id)
{
    for (size_t i = 0; i < config->instrument_count; i++) {
        if (strcmp(config->instruments[i].id, id) == 0) {
            return &config->instruments[i];
        }
    }
    return NULL;
}
