#include "controller/engine.h"

#include "controller/periods.h"
#include "controller/timefmt.h"

#include <stdio.h>
#include <string.h>

/* The finding of one rule: whether it fired, its evidence, and when the
 * restriction ends (a date, for life, or while a status lasts). */
struct finding {
    bool fired;
    bool life;
    bool open; /* lasts while a status lasts, with no end recorded */
    int ends;  /* YYYYMMDD, 0 when the window gives no date */
    json_t *evidence;
};

static const char *const policy_notes[] = {
    "drug use is dated by the collection date of the confirmed specimen",
    "only released, final or corrected, confirm-tier results count as drug-use evidence; "
    "screens only flag",
    "a period of N years ends on the same date N years after the event (28 February for "
    "29 February), which is the last restricted day",
};

int question_parse(const char *text, enum question *question)
{
    if (strcmp(text, "application") == 0) {
        *question = QUESTION_APPLICATION;
        return 0;
    }
    if (strcmp(text, "holder") == 0) {
        *question = QUESTION_HOLDER;
        return 0;
    }
    return -1;
}

const char *question_name(enum question question)
{
    return question == QUESTION_APPLICATION ? "application"
           : question == QUESTION_HOLDER    ? "holder"
                                            : "stop";
}

static bool rule_answers(const struct rule *rule, enum question question)
{
    switch (rule->decision) {
    case DECISION_FLAG:
        return true;
    case DECISION_REFUSE:
        return question == QUESTION_APPLICATION;
    case DECISION_CANCEL:
    case DECISION_VOID_NOTICE:
        return question == QUESTION_HOLDER;
    default:
        return false;
    }
}

static json_t *date_json(int date)
{
    char text[11];

    time_format_date(date, text);
    return json_string(text);
}

/* Reports whether a result counts at all on as_of: not superseded, not
 * preliminary, and collected on or before that day. */
static bool result_counts(const struct ev_result *result, int as_of)
{
    return !result->superseded && strcmp(result->status, "preliminary") != 0 &&
           result->collected <= as_of;
}

/* Lists the analytes of a result with the given outcome (all analytes when
 * analyte is NULL, else only that one). */
static json_t *analytes_with(const struct ev_result *result, const char *outcome,
                             const char *analyte)
{
    json_t *names = json_array();
    size_t i;
    const json_t *entry;

    json_array_foreach(result->analytes, i, entry)
    {
        const char *name = json_string_value(json_object_get(entry, "analyte"));
        const char *found = json_string_value(json_object_get(entry, "outcome"));
        if (strcmp(found, outcome) == 0 && (analyte == NULL || strcmp(name, analyte) == 0)) {
            json_array_append_new(names, json_string(name));
        }
    }
    return names;
}

static bool confirmed_positive(const struct ev_result *result, int as_of)
{
    json_t *positive;
    bool found;

    if (!result_counts(result, as_of) || !result->released ||
        strcmp(result->tier, "confirm") != 0) {
        return false;
    }
    positive = analytes_with(result, "positive", NULL);
    found = json_array_size(positive) > 0;
    json_decref(positive);
    return found;
}

static json_t *result_evidence(const struct ev_result *result, json_t *analytes)
{
    json_t *item = json_pack("{ss ss ss so}", "result", result->id, "matrix", result->matrix,
                             "tier", result->tier, "collected_date", date_json(result->collected));
    const json_t *laboratory = json_object_get(result->object, "laboratory");

    if (result->barcode != NULL) {
        json_object_set_new(item, "barcode", json_string(result->barcode));
    }
    if (laboratory != NULL) {
        json_object_set(item, "laboratory", (json_t *)laboratory);
    }
    json_object_set_new(item, "analytes", analytes);
    return item;
}

static json_t *status_evidence(const struct ev_status *status)
{
    json_t *item = json_pack("{ss ss ss so}", "status", status->id, "kind", status->kind,
                             "reference", status->reference, "start", date_json(status->start));

    if (status->end != 0) {
        json_object_set_new(item, "end", date_json(status->end));
    }
    return item;
}

/* Extends a finding with an event whose restriction lasts the rule's window. */
static void add_period(struct finding *finding, const struct rule *rule, int event, int as_of,
                       json_t *item)
{
    if (event > as_of) {
        json_decref(item);
        return;
    }
    if (rule->window == WINDOW_LIFE) {
        finding->life = true;
    } else {
        int last = period_last_day(event, rule->years);
        if (as_of > last) {
            json_decref(item);
            return;
        }
        if (last > finding->ends) {
            finding->ends = last;
        }
    }
    finding->fired = true;
    json_array_append_new(finding->evidence, item);
}

static void find_drug_use(const struct rule *rule, const struct evidence *evidence, int as_of,
                          struct finding *finding)
{
    for (size_t i = 0; i < evidence->result_count; i++) {
        const struct ev_result *result = &evidence->results[i];
        if (confirmed_positive(result, as_of)) {
            add_period(finding, rule, result->collected, as_of,
                       result_evidence(result, analytes_with(result, "positive", NULL)));
        }
    }
}

static bool status_counts(const struct ev_status *status, int as_of, const char *const *kinds)
{
    if (status->superseded || status->start > as_of) {
        return false;
    }
    for (size_t i = 0; kinds[i] != NULL; i++) {
        if (strcmp(status->kind, kinds[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Statuses whose start date begins the rule's period (revocations). */
static void find_status_events(const struct rule *rule, const struct evidence *evidence, int as_of,
                               const char *const *kinds, struct finding *finding)
{
    for (size_t i = 0; i < evidence->status_count; i++) {
        const struct ev_status *status = &evidence->statuses[i];
        if (status_counts(status, as_of, kinds)) {
            add_period(finding, rule, status->start, as_of, status_evidence(status));
        }
    }
}

/* Compulsory isolation: the period runs from the actual release date. A
 * subject still in isolation on as_of is restricted, with no end date when
 * no release date is recorded. */
static void find_isolation_release(const struct rule *rule, const struct evidence *evidence,
                                   int as_of, struct finding *finding)
{
    static const char *const kinds[] = {"compulsory-isolation", NULL};

    for (size_t i = 0; i < evidence->status_count; i++) {
        const struct ev_status *status = &evidence->statuses[i];
        if (!status_counts(status, as_of, kinds)) {
            continue;
        }
        if (status->end != 0 && status->end <= as_of) {
            add_period(finding, rule, status->end, as_of, status_evidence(status));
            continue;
        }
        /* Still in isolation on as_of. */
        finding->fired = true;
        if (status->end == 0) {
            finding->open = true;
        } else if (rule->window == WINDOW_LIFE) {
            finding->life = true;
        } else if (period_last_day(status->end, rule->years) > finding->ends) {
            finding->ends = period_last_day(status->end, rule->years);
        }
        json_array_append_new(finding->evidence, status_evidence(status));
    }
}

/* A status that lasts until its end date (a cure), the day before which is
 * the last restricted day. */
static void find_lasting_status(const struct evidence *evidence, int as_of,
                                const char *const *kinds, struct finding *finding)
{
    for (size_t i = 0; i < evidence->status_count; i++) {
        const struct ev_status *status = &evidence->statuses[i];
        if (!status_counts(status, as_of, kinds) || (status->end != 0 && as_of >= status->end)) {
            continue;
        }
        finding->fired = true;
        if (status->end == 0) {
            finding->open = true;
        } else if (date_previous_day(status->end) > finding->ends) {
            finding->ends = date_previous_day(status->end);
        }
        json_array_append_new(finding->evidence, status_evidence(status));
    }
}

static void find_drug_driving_order(const struct evidence *evidence, int as_of,
                                    struct finding *finding)
{
    static const char *const orders[] = {"community-detox", "community-rehabilitation",
                                         "compulsory-isolation", NULL};
    json_t *driving = json_array();
    json_t *ordered = json_array();
    int first_driving = 0;

    for (size_t i = 0; i < evidence->result_count; i++) {
        const struct ev_result *result = &evidence->results[i];
        if (result->driving && confirmed_positive(result, as_of)) {
            json_array_append_new(driving,
                                  result_evidence(result, analytes_with(result, "positive", NULL)));
            if (first_driving == 0 || result->collected < first_driving) {
                first_driving = result->collected;
            }
        }
    }
    /* The order must come on or after the drug driving; an order from
     * before it belongs to another matter. */
    for (size_t i = 0; i < evidence->status_count; i++) {
        const struct ev_status *status = &evidence->statuses[i];
        if (first_driving != 0 && status->start >= first_driving &&
            status_counts(status, as_of, orders)) {
            json_array_append_new(ordered, status_evidence(status));
        }
    }
    if (json_array_size(driving) > 0 && json_array_size(ordered) > 0) {
        finding->fired = true;
        json_array_extend(finding->evidence, driving);
        json_array_extend(finding->evidence, ordered);
    }
    json_decref(driving);
    json_decref(ordered);
}

/* Reports whether a released confirm-tier result for the analyte, collected
 * on or after the screen, settles the screen (positive or negative). */
static bool screen_confirmed(const struct evidence *evidence, const struct ev_result *screen,
                             const char *analyte, int as_of)
{
    for (size_t i = 0; i < evidence->result_count; i++) {
        const struct ev_result *result = &evidence->results[i];
        if (!result_counts(result, as_of) || !result->released ||
            strcmp(result->tier, "confirm") != 0 || result->collected < screen->collected) {
            continue;
        }
        json_t *positive = analytes_with(result, "positive", analyte);
        json_t *negative = analytes_with(result, "negative", analyte);
        bool settled = json_array_size(positive) + json_array_size(negative) > 0;
        json_decref(positive);
        json_decref(negative);
        if (settled) {
            return true;
        }
    }
    return false;
}

static void find_screen_positive(const struct evidence *evidence, int as_of,
                                 struct finding *finding)
{
    for (size_t i = 0; i < evidence->result_count; i++) {
        const struct ev_result *result = &evidence->results[i];
        if (!result_counts(result, as_of) || strcmp(result->tier, "screen") != 0) {
            continue;
        }
        json_t *presumptive = analytes_with(result, "presumptive", NULL);
        json_t *open = json_array();
        size_t j;
        json_t *name;
        json_array_foreach(presumptive, j, name)
        {
            if (!screen_confirmed(evidence, result, json_string_value(name), as_of)) {
                json_array_append(open, name);
            }
        }
        json_decref(presumptive);
        if (json_array_size(open) == 0) {
            json_decref(open);
            continue;
        }
        finding->fired = true;
        json_array_append_new(finding->evidence, result_evidence(result, open));
    }
}

static void find_not_handed_back(const struct evidence *evidence, bool cancelled,
                                 struct finding *finding)
{
    for (size_t i = 0; cancelled && i < evidence->licence_count; i++) {
        const struct ev_licence *licence = &evidence->licences[i];
        if (licence->superseded || licence->handed_back) {
            continue;
        }
        finding->fired = true;
        json_array_append_new(finding->evidence,
                              json_pack("{ss ss sb}", "licence", licence->id, "number",
                                        licence->number, "handed_back", 0));
    }
}

static void evaluate(const struct rule *rule, const struct evidence *evidence, int as_of,
                     bool cancelled, struct finding *finding)
{
    static const char *const drunk[] = {"revoked-drunk-driving", "revoked-commercial-drink-driving",
                                        "revoked-commercial-drunk-driving", NULL};
    static const char *const commercial[] = {"revoked-commercial-drunk-driving", NULL};
    static const char *const crash[] = {"revoked-serious-crash", NULL};
    static const char *const dependence[] = {"psychotropic-dependence", NULL};

    switch (rule->predicate) {
    case PREDICATE_DRUG_USE:
        find_drug_use(rule, evidence, as_of, finding);
        break;
    case PREDICATE_ISOLATION_RELEASE:
        find_isolation_release(rule, evidence, as_of, finding);
        break;
    case PREDICATE_DEPENDENCE:
        find_lasting_status(evidence, as_of, dependence, finding);
        break;
    case PREDICATE_DRUG_DRIVING_ORDER:
        find_drug_driving_order(evidence, as_of, finding);
        break;
    case PREDICATE_CANCEL_NOT_HANDED_BACK:
        find_not_handed_back(evidence, cancelled, finding);
        break;
    case PREDICATE_REVOKED_DRUNK:
        find_status_events(rule, evidence, as_of, drunk, finding);
        break;
    case PREDICATE_REVOKED_COMMERCIAL_DRUNK:
        find_status_events(rule, evidence, as_of, commercial, finding);
        break;
    case PREDICATE_SERIOUS_CRASH:
        find_status_events(rule, evidence, as_of, crash, finding);
        break;
    default:
        find_screen_positive(evidence, as_of, finding);
        break;
    }
}

static void set_ends(json_t *obj, bool life, bool open, int ends)
{
    if (life) {
        json_object_set_new(obj, "ends", json_string("life"));
    } else if (open) {
        json_object_set_new(obj, "ends", json_string("open"));
    } else if (ends != 0) {
        json_object_set_new(obj, "ends", date_json(ends));
    }
}

static json_t *fired_json(const struct rule *rule, struct finding *finding)
{
    char window[16];
    json_t *obj;

    window_format(rule, window, sizeof(window));
    obj = json_pack("{ss ss ss ss ss ss}", "id", rule->id, "decision",
                    decision_name(rule->decision), "predicate", predicate_name(rule->predicate),
                    "window", window, "text", rule->text, "source", rule->source);
    set_ends(obj, finding->life, finding->open, finding->ends);
    json_object_set_new(obj, "evidence", finding->evidence);
    finding->evidence = NULL;
    return obj;
}

/* Runs one pass over the rules; with `late`, only cancel-not-handed-back,
 * which depends on whether a cancel fired in the first pass. */
static void run_pass(const struct rule_set *rules, const struct evidence *evidence,
                     enum question question, int as_of, bool late, json_t *fired,
                     enum decision *strongest)
{
    bool cancelled = *strongest >= DECISION_CANCEL;

    for (size_t i = 0; i < rules->count; i++) {
        const struct rule *rule = &rules->rules[i];
        bool is_late = rule->predicate == PREDICATE_CANCEL_NOT_HANDED_BACK;
        if (!rule->enabled || is_late != late || !rule_answers(rule, question)) {
            continue;
        }
        struct finding finding = {.evidence = json_array()};
        evaluate(rule, evidence, as_of, cancelled, &finding);
        if (finding.fired) {
            json_array_append_new(fired, fired_json(rule, &finding));
            if (rule->decision > *strongest) {
                *strongest = rule->decision;
            }
        }
        json_decref(finding.evidence);
    }
}

/* The decision ends when the last restriction of the winning decision ends. */
static void set_decision_ends(json_t *decision, const json_t *fired, enum decision strongest)
{
    bool life = false;
    bool open = false;
    int latest = 0;
    size_t i;
    const json_t *rule;

    json_array_foreach(fired, i, rule)
    {
        const char *ends = json_string_value(json_object_get(rule, "ends"));
        if (strcmp(json_string_value(json_object_get(rule, "decision")),
                   decision_name(strongest)) != 0 ||
            ends == NULL) {
            continue;
        }
        life |= strcmp(ends, "life") == 0;
        open |= strcmp(ends, "open") == 0;
        int date = time_parse_date(ends);
        latest = date > latest ? date : latest;
    }
    set_ends(decision, life, open, latest);
}

json_t *engine_decide(const struct rule_set *rules, const struct evidence *evidence,
                      enum question question, int as_of)
{
    enum decision strongest = DECISION_NONE;
    json_t *fired = json_array();
    json_t *policy = json_array();
    json_t *decision;

    run_pass(rules, evidence, question, as_of, false, fired, &strongest);
    run_pass(rules, evidence, question, as_of, true, fired, &strongest);
    for (size_t i = 0; i < sizeof(policy_notes) / sizeof(policy_notes[0]); i++) {
        json_array_append_new(policy, json_string(policy_notes[i]));
    }
    decision = json_pack("{ss so ss}", "question", question_name(question), "as_of",
                         date_json(as_of), "decision", decision_name(strongest));
    set_decision_ends(decision, fired, strongest);
    json_object_set_new(decision, "rules", fired);
    json_object_set_new(decision, "policy", policy);
    json_object_set_new(decision, "rules_version", json_string(rules->version));
    json_object_set_new(decision, "rules_label", json_string(rules->label));
    return decision;
}
