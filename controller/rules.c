#include "controller/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_COUNT 7
#define MAX_FILE_BYTES (256 * 1024)
#define MAX_YEARS 100

static const char *const decision_names[] = {"none", "flag", "refuse", "cancel", "void-notice"};

static const char *const predicate_names[PREDICATE_COUNT] = {
    [PREDICATE_DRUG_USE] = "drug-use",
    [PREDICATE_ISOLATION_RELEASE] = "isolation-release",
    [PREDICATE_DEPENDENCE] = "dependence",
    [PREDICATE_DRUG_DRIVING_ORDER] = "drug-driving-order",
    [PREDICATE_CANCEL_NOT_HANDED_BACK] = "cancel-not-handed-back",
    [PREDICATE_REVOKED_DRUNK] = "revoked-drunk",
    [PREDICATE_REVOKED_COMMERCIAL_DRUNK] = "revoked-commercial-drunk",
    [PREDICATE_SERIOUS_CRASH] = "serious-crash",
    [PREDICATE_SCREEN_POSITIVE] = "screen-positive",
};

/* The windows each predicate can use, as bits of 1 << enum window. */
static const unsigned predicate_windows[PREDICATE_COUNT] = {
    [PREDICATE_DRUG_USE] = 1u << WINDOW_YEARS | 1u << WINDOW_LIFE,
    [PREDICATE_ISOLATION_RELEASE] = 1u << WINDOW_YEARS | 1u << WINDOW_LIFE,
    [PREDICATE_DEPENDENCE] = 1u << WINDOW_STATUS,
    [PREDICATE_DRUG_DRIVING_ORDER] = 1u << WINDOW_NONE,
    [PREDICATE_CANCEL_NOT_HANDED_BACK] = 1u << WINDOW_NONE,
    [PREDICATE_REVOKED_DRUNK] = 1u << WINDOW_YEARS | 1u << WINDOW_LIFE,
    [PREDICATE_REVOKED_COMMERCIAL_DRUNK] = 1u << WINDOW_YEARS | 1u << WINDOW_LIFE,
    [PREDICATE_SERIOUS_CRASH] = 1u << WINDOW_YEARS | 1u << WINDOW_LIFE,
    [PREDICATE_SCREEN_POSITIVE] = 1u << WINDOW_NONE,
};

const char *decision_name(enum decision decision)
{
    return (unsigned)decision < sizeof(decision_names) / sizeof(decision_names[0])
               ? decision_names[decision]
               : "none";
}

const char *predicate_name(enum predicate predicate)
{
    return (unsigned)predicate < PREDICATE_COUNT ? predicate_names[predicate] : "unknown";
}

void window_format(const struct rule *rule, char *out, size_t size)
{
    static const char *const names[] = {"", "life", "status", "none"};

    if (rule->window == WINDOW_YEARS) {
        snprintf(out, size, "%dy", rule->years);
    } else {
        snprintf(out, size, "%s", names[rule->window]);
    }
}

static int parse_window(const char *text, struct rule *rule)
{
    char *end;
    long years;

    if (strcmp(text, "life") == 0 || strcmp(text, "status") == 0 || strcmp(text, "none") == 0) {
        rule->window = WINDOW_NONE;
        if (text[0] == 'l') {
            rule->window = WINDOW_LIFE;
        } else if (text[0] == 's') {
            rule->window = WINDOW_STATUS;
        }
        return 0;
    }
    years = strtol(text, &end, 10);
    if (text[0] < '1' || text[0] > '9' || strcmp(end, "y") != 0 || years > MAX_YEARS) {
        return -1;
    }
    rule->window = WINDOW_YEARS;
    rule->years = (int)years;
    return 0;
}

static int lookup(const char *text, const char *const *names, int count)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(text, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static bool valid_id(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > 15) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Checks that the predicate, window and decision go together. */
static const char *check_combination(const struct rule *rule)
{
    if (!(predicate_windows[rule->predicate] & (1u << rule->window))) {
        return rule->window == WINDOW_STATUS || rule->predicate == PREDICATE_DEPENDENCE
                   ? "window 'status' fits only the dependence predicate, and it needs it"
                   : "this predicate takes another window (drug-use, isolation-release and the "
                     "revoked predicates take Ny or life; the others take none)";
    }
    if (rule->predicate == PREDICATE_SCREEN_POSITIVE && rule->decision != DECISION_FLAG) {
        return "screen-positive can only flag: no licence action rests on a screen alone";
    }
    if (rule->predicate == PREDICATE_CANCEL_NOT_HANDED_BACK &&
        rule->decision != DECISION_VOID_NOTICE) {
        return "cancel-not-handed-back takes the decision void-notice";
    }
    if (rule->decision == DECISION_NONE) {
        return "a rule with decision none has no effect; disable it instead";
    }
    return NULL;
}

static const char *parse_fields(char **fields, struct rule *rule)
{
    int predicate = lookup(fields[1], predicate_names, PREDICATE_COUNT);
    int decision = lookup(fields[3], decision_names, 5);

    if (!valid_id(fields[0]) || tsv_copy(rule->id, sizeof(rule->id), fields[0]) != 0) {
        return "invalid id (1 to 15 letters, digits or '-')";
    }
    if (predicate < 0) {
        return "unknown predicate (use drug-use, isolation-release, dependence, "
               "drug-driving-order, cancel-not-handed-back, revoked-drunk, "
               "revoked-commercial-drunk, serious-crash or screen-positive)";
    }
    rule->predicate = (enum predicate)predicate;
    if (parse_window(fields[2], rule) != 0) {
        return "invalid window (use Ny for N years from 1 to 100, life, status or none)";
    }
    if (decision < 0) {
        return "unknown decision (use flag, refuse, cancel or void-notice)";
    }
    rule->decision = (enum decision)decision;
    if (tsv_copy(rule->text, sizeof(rule->text), fields[4]) != 0) {
        return "missing or too long text (at most 255 bytes)";
    }
    if (tsv_copy(rule->source, sizeof(rule->source), fields[5]) != 0) {
        return "missing or too long source (at most 159 bytes)";
    }
    if (strcmp(fields[6], "yes") != 0 && strcmp(fields[6], "no") != 0) {
        return "enabled must be yes or no";
    }
    rule->enabled = strcmp(fields[6], "yes") == 0;
    return check_combination(rule);
}

static void append_canonical(struct rule_set *set, size_t *used, const struct rule *rule)
{
    char window[16];
    char text[1024];

    window_format(rule, window, sizeof(window));
    int len = snprintf(text, sizeof(text), "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rule->id,
                       predicate_name(rule->predicate), window, decision_name(rule->decision),
                       rule->text, rule->source, rule->enabled ? "yes" : "no");
    memcpy(set->canonical + *used, text, (size_t)len);
    *used += (size_t)len;
    set->canonical[*used] = '\0';
}

/* Parses one non-comment line into the set; returns NULL or the reason. */
static const char *parse_line(char *line, struct rule_set *set, size_t *used, int line_number)
{
    static char reason[64];
    char *fields[FIELD_COUNT + 1];
    struct rule rule = {0};

    if (strncmp(line, "%label", 6) == 0) {
        const char *label = tsv_trim(line + 6);
        return tsv_copy(set->label, sizeof(set->label), label) == 0 ? NULL
                                                                    : "empty or too long label";
    }
    if (tsv_split(line, fields, FIELD_COUNT + 1) != FIELD_COUNT) {
        return "expected 7 tab-separated fields: id, predicate, window, decision, text, source, "
               "enabled";
    }
    const char *failed = parse_fields(fields, &rule);
    if (failed != NULL) {
        return failed;
    }
    for (size_t i = 0; i < set->count; i++) {
        if (strcmp(set->rules[i].id, rule.id) == 0) {
            snprintf(reason, sizeof(reason), "duplicate id %s (first on line %d)", rule.id,
                     set->rules[i].line);
            return reason;
        }
    }
    if (set->count == RULES_MAX) {
        return "too many rules";
    }
    rule.line = line_number;
    set->rules[set->count] = rule;
    append_canonical(set, used, &set->rules[set->count++]);
    return NULL;
}

/* The state of one parse: the set and how much of its canonical text is used. */
struct rules_parse {
    struct rule_set *set;
    size_t used;
};

static const char *parse_numbered_line(char *line, int number, void *user)
{
    struct rules_parse *parse = user;

    return parse_line(line, parse->set, &parse->used, number);
}

int rules_parse(const char *text, const char *name, struct rule_set *set, char *err,
                size_t err_size)
{
    struct rules_parse parse = {set, 0};

    memset(set, 0, sizeof(*set));
    set->canonical = malloc((size_t)RULES_MAX * 1024 + 1);
    if (set->canonical == NULL) {
        snprintf(err, err_size, "%s: out of memory", name);
        return -1;
    }
    set->canonical[0] = '\0';
    if (tsv_parse_lines(text, name, parse_numbered_line, &parse, err, err_size) != 0) {
        rules_free(set);
        return -1;
    }
    if (set->label[0] == '\0') {
        snprintf(err, err_size, "%s: missing %%label line", name);
        rules_free(set);
        return -1;
    }
    tsv_sha256_hex(set->canonical, set->version);
    return 0;
}

int rules_load(const char *path, struct rule_set *set, char *err, size_t err_size)
{
    char *text = tsv_read_file(path, MAX_FILE_BYTES, err, err_size);

    if (text == NULL) {
        return -1;
    }
    int status = rules_parse(text, path, set, err, err_size);
    free(text);
    return status;
}

void rules_free(struct rule_set *set)
{
    free(set->canonical);
    memset(set, 0, sizeof(*set));
}
