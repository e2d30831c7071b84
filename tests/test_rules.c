/* Unit tests of the licence rules: the rules file, the evidence object and
 * the engine's decisions, with no database. Each engine case states the
 * decision, the rules that fired and the date the restriction ends. */
#define _GNU_SOURCE
#include "controller/engine.h"
#include "controller/evidence.h"
#include "controller/rules.h"
#include "controller/timefmt.h"
#include "harness.h"
#include "protocol/subject_id.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Result objects in the shape of docs/result-json.md, reduced to what the
 * engine reads. */
#define RESULT(id, matrix, tier, extra, date, analyte, outcome)                                    \
    "{\"id\":\"" id "\",\"matrix\":\"" matrix "\",\"tier\":\"" tier "\"" extra                     \
    ",\"specimen\":{\"barcode\":\"B-" id "\",\"collected_date\":\"" date "\"},"                    \
    "\"analytes\":[{\"analyte\":\"" analyte "\",\"outcome\":\"" outcome "\"}]}"
#define RELEASED ",\"released\":\"2026-01-05T02:00:00Z\""
#define HAIR_POSITIVE(id, date)                                                                    \
    RESULT(id, "hair", "confirm", RELEASED, date, "methamphetamine", "positive")
#define SALIVA_PRESUMPTIVE(id, date)                                                               \
    RESULT(id, "oral-fluid", "screen", "", date, "methamphetamine", "presumptive")
#define STATUS(id, kind, start, end_field)                                                         \
    "{\"id\":\"" id "\",\"kind\":\"" kind "\",\"start\":\"" start "\"" end_field                   \
    ",\"reference\":\"ref-" id "\"}"
#define END(date) ",\"end\":\"" date "\""
#define LICENCE(id, handed_back)                                                                   \
    "{\"id\":\"" id "\",\"number\":\"N" id "\",\"class\":\"C1\",\"handed_back\":" handed_back "}"

#define EVIDENCE(results, statuses, licences)                                                      \
    "{\"results\":[" results "],\"statuses\":[" statuses "],\"licences\":[" licences "]}"

struct engine_case {
    const char *name;
    const char *evidence;
    const char *question;
    const char *as_of;
    const char *decision;
    const char *rules; /* ids of the rules that fired, in rule order, separated by spaces */
    const char *ends;  /* the decision's end, or NULL when it has none */
};

static const struct engine_case cases[] = {
    /* L01: 3 years from the collection date, the anniversary the last day. */
    {"L01 day before end", EVIDENCE(HAIR_POSITIVE("R1", "2023-05-10"), "", ""), "application",
     "2026-05-09", "refuse", "L01", "2026-05-10"},
    {"L01 on end day", EVIDENCE(HAIR_POSITIVE("R1", "2023-05-10"), "", ""), "application",
     "2026-05-10", "refuse", "L01", "2026-05-10"},
    {"L01 day after end", EVIDENCE(HAIR_POSITIVE("R1", "2023-05-10"), "", ""), "application",
     "2026-05-11", "none", "", NULL},
    {"L01 29 February", EVIDENCE(HAIR_POSITIVE("R1", "2024-02-29"), "", ""), "application",
     "2027-02-28", "refuse", "L01", "2027-02-28"},
    {"L01 after 29 February", EVIDENCE(HAIR_POSITIVE("R1", "2024-02-29"), "", ""), "application",
     "2027-03-01", "none", "", NULL},
    {"evidence after as-of", EVIDENCE(HAIR_POSITIVE("R1", "2026-06-01"), "", ""), "application",
     "2026-05-31", "none", "", NULL},
    {"imported blood positive",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"laboratory\":{\"name\":\"Lab B\"}",
                     "2026-03-02", "ketamine", "positive"),
              "", ""),
     "application", "2026-04-01", "refuse", "L01", "2029-03-02"},
    {"unreleased confirm ignored",
     EVIDENCE(RESULT("R1", "hair", "confirm", "", "2026-03-02", "methamphetamine", "positive"), "",
              ""),
     "application", "2026-04-01", "none", "", NULL},
    {"preliminary confirm ignored",
     EVIDENCE(RESULT("R1", "hair", "confirm", RELEASED ",\"status\":\"preliminary\"", "2026-03-02",
                     "methamphetamine", "positive"),
              "", ""),
     "application", "2026-04-01", "none", "", NULL},
    {"correction to negative lifts L01",
     EVIDENCE(HAIR_POSITIVE("R1", "2026-03-02") "," RESULT("R2", "hair", "confirm",
                                                           RELEASED ",\"status\":\"correction\","
                                                                    "\"supersedes\":\"R1\"",
                                                           "2026-03-02", "methamphetamine",
                                                           "negative"),
              "", ""),
     "application", "2026-04-01", "none", "", NULL},
    {"correction to positive keeps L01",
     EVIDENCE(RESULT("R1", "hair", "confirm", RELEASED, "2026-03-02", "methamphetamine",
                     "negative") "," RESULT("R2", "hair", "confirm",
                                            RELEASED ",\"status\":\"correction\","
                                                     "\"supersedes\":\"R1\"",
                                            "2026-03-02", "methamphetamine", "positive"),
              "", ""),
     "application", "2026-04-01", "refuse", "L01", "2029-03-02"},
    /* L10: a screen only flags, for either question, until a confirmation exists. */
    {"screen only flags application", EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01"), "", ""),
     "application", "2026-12-04", "flag", "L10", NULL},
    {"screen only flags holder", EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01"), "", ""), "holder",
     "2026-12-04", "flag", "L10", NULL},
    {"screen confirmed positive",
     EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01") "," HAIR_POSITIVE("R2", "2026-12-02"), "", ""),
     "application", "2026-12-04", "refuse", "L01", "2029-12-02"},
    {"screen confirmed negative",
     EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01") "," RESULT(
                  "R2", "blood", "confirm", RELEASED, "2026-12-01", "methamphetamine", "negative"),
              "", ""),
     "application", "2026-12-04", "none", "", NULL},
    {"older confirmation does not clear",
     EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01") "," RESULT(
                  "R2", "blood", "confirm", RELEASED, "2026-11-01", "methamphetamine", "negative"),
              "", ""),
     "application", "2026-12-04", "flag", "L10", NULL},
    {"unreleased confirmation does not clear",
     EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01") "," RESULT(
                  "R2", "hair", "confirm", "", "2026-12-02", "methamphetamine", "positive"),
              "", ""),
     "application", "2026-12-04", "flag", "L10", NULL},
    /* L02: 3 years from the actual release, early or not. */
    {"L02 early release last day",
     EVIDENCE("", STATUS("S1", "compulsory-isolation", "2020-01-01", END("2021-06-30")), ""),
     "application", "2024-06-30", "refuse", "L02", "2024-06-30"},
    {"L02 early release day after",
     EVIDENCE("", STATUS("S1", "compulsory-isolation", "2020-01-01", END("2021-06-30")), ""),
     "application", "2024-07-01", "none", "", NULL},
    {"L02 still in isolation",
     EVIDENCE("", STATUS("S1", "compulsory-isolation", "2026-01-01", ""), ""), "application",
     "2026-06-01", "refuse", "L02", "open"},
    {"L02 superseded release date",
     EVIDENCE("",
              STATUS("S1", "compulsory-isolation", "2020-01-01",
                     END("2021-06-30")) "," STATUS("S2", "compulsory-isolation", "2020-01-01",
                                                   END("2022-01-15") ",\"supersedes\":\"S1\""),
              ""),
     "application", "2024-12-01", "refuse", "L02", "2025-01-15"},
    {"overlapping isolations latest wins",
     EVIDENCE("",
              STATUS("S1", "compulsory-isolation", "2019-01-01", END("2020-03-01")) "," STATUS(
                  "S2", "compulsory-isolation", "2021-01-01", END("2022-02-01")),
              ""),
     "application", "2023-01-01", "refuse", "L02", "2025-02-01"},
    /* L03 and L05: while the dependence lasts; the cure date lifts it. */
    {"L03 dependence not cured",
     EVIDENCE("", STATUS("S1", "psychotropic-dependence", "2025-01-01", ""), ""), "application",
     "2026-12-04", "refuse", "L03", "open"},
    {"L03 day before cure",
     EVIDENCE("", STATUS("S1", "psychotropic-dependence", "2025-01-01", END("2026-01-01")), ""),
     "application", "2025-12-31", "refuse", "L03", "2025-12-31"},
    {"L03 cured",
     EVIDENCE("", STATUS("S1", "psychotropic-dependence", "2025-01-01", END("2026-01-01")), ""),
     "application", "2026-01-01", "none", "", NULL},
    {"L05 holder dependence",
     EVIDENCE("", STATUS("S1", "psychotropic-dependence", "2025-01-01", ""), ""), "holder",
     "2026-12-04", "cancel", "L05", "open"},
    /* L04 and L06: drug driving plus an order; a licence not handed back. */
    {"L04 with rehabilitation order",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"driving\":true", "2026-03-02",
                     "ketamine", "positive"),
              STATUS("S1", "community-rehabilitation", "2026-04-01", ""), LICENCE("L1", "true")),
     "holder", "2026-05-01", "cancel", "L04", NULL},
    {"L04 order before the driving",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"driving\":true", "2026-03-02",
                     "ketamine", "positive"),
              STATUS("S1", "community-detox", "2025-04-01", ""), LICENCE("L1", "false")),
     "holder", "2026-05-01", "none", "", NULL},
    {"L04 without order",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"driving\":true", "2026-03-02",
                     "ketamine", "positive"),
              "", LICENCE("L1", "false")),
     "holder", "2026-05-01", "none", "", NULL},
    {"L04 not driving",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED, "2026-03-02", "ketamine", "positive"),
              STATUS("S1", "community-detox", "2026-04-01", ""), LICENCE("L1", "false")),
     "holder", "2026-05-01", "none", "", NULL},
    {"L06 licence not handed back",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"driving\":true", "2026-03-02",
                     "ketamine", "positive"),
              STATUS("S1", "compulsory-isolation", "2026-04-01", ""), LICENCE("L1", "false")),
     "holder", "2026-05-01", "void-notice", "L04 L06", NULL},
    {"L06 superseded by handing back",
     EVIDENCE(RESULT("R1", "blood", "confirm", RELEASED ",\"driving\":true", "2026-03-02",
                     "ketamine", "positive"),
              STATUS("S1", "community-detox", "2026-04-01", ""),
              LICENCE("L1", "false") ",{\"id\":\"L2\",\"number\":\"NL1\",\"class\":\"C1\","
                                     "\"handed_back\":true,\"supersedes\":\"L1\"}"),
     "holder", "2026-05-01", "cancel", "L04", NULL},
    {"holder ignores refuse rules", EVIDENCE(HAIR_POSITIVE("R1", "2026-03-02"), "", ""), "holder",
     "2026-04-01", "none", "", NULL},
    /* L07 to L09: alcohol revocations recorded as statuses. */
    {"L07 day before end",
     EVIDENCE("", STATUS("S1", "revoked-drunk-driving", "2021-03-15", ""), ""), "application",
     "2026-03-14", "refuse", "L07", "2026-03-15"},
    {"L07 on end day", EVIDENCE("", STATUS("S1", "revoked-drunk-driving", "2021-03-15", ""), ""),
     "application", "2026-03-15", "refuse", "L07", "2026-03-15"},
    {"L07 day after end", EVIDENCE("", STATUS("S1", "revoked-drunk-driving", "2021-03-15", ""), ""),
     "application", "2026-03-16", "none", "", NULL},
    {"L07 commercial drink driving",
     EVIDENCE("", STATUS("S1", "revoked-commercial-drink-driving", "2024-02-29", ""), ""),
     "application", "2029-02-28", "refuse", "L07", "2029-02-28"},
    {"L08 day before end",
     EVIDENCE("", STATUS("S1", "revoked-commercial-drunk-driving", "2016-07-01", ""), ""),
     "application", "2026-06-30", "refuse", "L08", "2026-07-01"},
    {"L08 on end day",
     EVIDENCE("", STATUS("S1", "revoked-commercial-drunk-driving", "2016-07-01", ""), ""),
     "application", "2026-07-01", "refuse", "L08", "2026-07-01"},
    {"L08 day after end",
     EVIDENCE("", STATUS("S1", "revoked-commercial-drunk-driving", "2016-07-01", ""), ""),
     "application", "2026-07-02", "none", "", NULL},
    {"L07 and L08 latest end wins",
     EVIDENCE("", STATUS("S1", "revoked-commercial-drunk-driving", "2016-07-01", ""), ""),
     "application", "2019-01-01", "refuse", "L07 L08", "2026-07-01"},
    {"L09 for life", EVIDENCE("", STATUS("S1", "revoked-serious-crash", "2000-01-01", ""), ""),
     "application", "2060-01-01", "refuse", "L09", "life"},
    {"several rules latest end",
     EVIDENCE(HAIR_POSITIVE("R1", "2023-05-10"),
              STATUS("S1", "revoked-drunk-driving", "2022-01-01", ""), ""),
     "application", "2025-01-01", "refuse", "L01 L07", "2027-01-01"},
    {"refuse beats flag",
     EVIDENCE(SALIVA_PRESUMPTIVE("R1", "2026-12-01"),
              STATUS("S1", "revoked-drunk-driving", "2022-01-01", ""), ""),
     "application", "2026-12-04", "refuse", "L07 L10", "2027-01-01"},
    {"superseded status ignored",
     EVIDENCE("",
              STATUS("S1", "revoked-drunk-driving", "2022-01-01", "") "," STATUS(
                  "S2", "revoked-drunk-driving", "2020-01-01", ",\"supersedes\":\"S1\""),
              ""),
     "application", "2025-06-01", "none", "", NULL},
};

static struct rule_set shipped_rules;

static void load_shipped_rules(void)
{
    char path[512];
    char err[256];

    snprintf(path, sizeof(path), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    ck_assert_msg(rules_load(path, &shipped_rules, err, sizeof(err)) == 0, "%s", err);
}

static void free_shipped_rules(void)
{
    rules_free(&shipped_rules);
}

/* Runs the engine on evidence text; the caller frees the result. */
static json_t *decide_text(const struct rule_set *rules, const char *text, const char *question,
                           const char *as_of)
{
    json_error_t error;
    json_t *document = json_loads(text, 0, &error);
    struct evidence evidence;
    enum question parsed;
    char err[256];

    ck_assert_msg(document != NULL, "evidence is not JSON: %s", error.text);
    ck_assert_msg(evidence_read(document, &evidence, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(question_parse(question, &parsed), 0);
    json_t *decision = engine_decide(rules, &evidence, parsed, time_parse_date(as_of));
    evidence_free(&evidence);
    json_decref(document);
    return decision;
}

/* Joins the ids of the rules that fired with spaces. */
static void fired_ids(const json_t *decision, char *out, size_t size)
{
    size_t i;
    const json_t *rule;

    out[0] = '\0';
    json_array_foreach(json_object_get(decision, "rules"), i, rule)
    {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s", used ? " " : "",
                 json_string_value(json_object_get(rule, "id")));
    }
}

START_TEST(engine_case_table)
{
    const struct engine_case *c = &cases[_i];
    json_t *decision = decide_text(&shipped_rules, c->evidence, c->question, c->as_of);
    const char *ends = json_string_value(json_object_get(decision, "ends"));
    char ids[128];

    fired_ids(decision, ids, sizeof(ids));
    ck_assert_msg(strcmp(json_string_value(json_object_get(decision, "decision")), c->decision) ==
                      0,
                  "%s: decision %s, expected %s", c->name,
                  json_string_value(json_object_get(decision, "decision")), c->decision);
    ck_assert_msg(strcmp(ids, c->rules) == 0, "%s: rules '%s', expected '%s'", c->name, ids,
                  c->rules);
    if (c->ends == NULL) {
        ck_assert_msg(ends == NULL, "%s: ends %s, expected none", c->name, ends);
    } else {
        ck_assert_msg(ends != NULL && strcmp(ends, c->ends) == 0, "%s: ends %s, expected %s",
                      c->name, ends ? ends : "(none)", c->ends);
    }
    json_decref(decision);
}
END_TEST

START_TEST(engine_names_evidence)
{
    json_t *decision =
        decide_text(&shipped_rules, EVIDENCE(HAIR_POSITIVE("R7", "2026-03-02"), "", ""),
                    "application", "2026-04-01");
    json_t *rule = json_array_get(json_object_get(decision, "rules"), 0);
    json_t *item = json_array_get(json_object_get(rule, "evidence"), 0);

    ck_assert_str_eq(json_string_value(json_object_get(item, "result")), "R7");
    ck_assert_str_eq(json_string_value(json_object_get(item, "barcode")), "B-R7");
    ck_assert_str_eq(json_string_value(json_object_get(item, "collected_date")), "2026-03-02");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(item, "analytes"), 0)),
                     "methamphetamine");
    ck_assert_str_eq(json_string_value(json_object_get(rule, "source")),
                     "MPS Order 162 Art. 15(2)");
    ck_assert_int_gt(json_array_size(json_object_get(decision, "policy")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(decision, "rules_version")),
                     shipped_rules.version);
    json_decref(decision);
}
END_TEST

START_TEST(engine_disabled_rule_skipped)
{
    char path[512];
    char err[256];
    struct rule_set rules;

    snprintf(path, sizeof(path), "%s/etc/rules.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    char *text = harness_read_file(path);
    char *row = strstr(text, "L01\t");
    ck_assert_ptr_nonnull(row);
    char *enabled = strstr(row, "\tyes\n");
    ck_assert_ptr_nonnull(enabled);
    memcpy(enabled, "\tno \n", 5);
    ck_assert_msg(rules_parse(text, "edited", &rules, err, sizeof(err)) == 0, "%s", err);
    json_t *decision = decide_text(&rules, EVIDENCE(HAIR_POSITIVE("R1", "2026-03-02"), "", ""),
                                   "application", "2026-04-01");
    ck_assert_str_eq(json_string_value(json_object_get(decision, "decision")), "none");
    ck_assert_str_ne(rules.version, shipped_rules.version);
    json_decref(decision);
    rules_free(&rules);
    free(text);
}
END_TEST

START_TEST(rules_shipped_file_loads)
{
    ck_assert_int_eq(shipped_rules.count, 10);
    ck_assert_str_eq(shipped_rules.rules[0].id, "L01");
    ck_assert_int_eq(shipped_rules.rules[0].window, WINDOW_YEARS);
    ck_assert_int_eq(shipped_rules.rules[0].years, 3);
    ck_assert_int_eq(shipped_rules.rules[8].window, WINDOW_LIFE);
    ck_assert_int_eq(shipped_rules.rules[9].decision, DECISION_FLAG);
    ck_assert_int_eq(strlen(shipped_rules.version), 64);
}
END_TEST

START_TEST(rules_reject_bad_rows)
{
    static const struct {
        const char *row;
        const char *reason;
    } bad[] = {
        {"L01\tdrug-use\t3y\trefuse\ttext\tsource", "expected 7 tab-separated fields"},
        {"L01\tdrug-abuse\t3y\trefuse\ttext\tsource\tyes", "unknown predicate"},
        {"L01\tdrug-use\t3 years\trefuse\ttext\tsource\tyes", "invalid window"},
        {"L01\tdrug-use\t0y\trefuse\ttext\tsource\tyes", "invalid window"},
        {"L01\tdrug-use\tstatus\trefuse\ttext\tsource\tyes", "window 'status'"},
        {"L01\tdrug-use\t3y\tban\ttext\tsource\tyes", "unknown decision"},
        {"L01\tdrug-use\t3y\trefuse\ttext\tsource\tmaybe", "enabled must be yes or no"},
        {"L01\tdrug-use\t3y\trefuse\t\tsource\tyes", "missing or too long text"},
        {"L10\tscreen-positive\tnone\trefuse\ttext\tsource\tyes", "screen-positive can only flag"},
        {"L06\tcancel-not-handed-back\tnone\tcancel\ttext\tsource\tyes", "void-notice"},
        {"L1 0\tdrug-use\t3y\trefuse\ttext\tsource\tyes", "invalid id"},
    };
    char text[512];
    char err[256];
    struct rule_set rules;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "%%label\tt\n# comment\n%s\n", bad[i].row);
        err[0] = '\0';
        ck_assert_msg(rules_parse(text, "r.tsv", &rules, err, sizeof(err)) != 0, "accepted %s",
                      bad[i].row);
        ck_assert_msg(strstr(err, "r.tsv:3: ") == err, "no line in '%s'", err);
        ck_assert_msg(strstr(err, bad[i].reason) != NULL, "'%s' lacks '%s'", err, bad[i].reason);
    }
}
END_TEST

START_TEST(rules_reject_duplicate_and_unlabelled)
{
    char err[256];
    struct rule_set rules;
    const char *row = "L01\tdrug-use\t3y\trefuse\ttext\tsource\tyes\n";
    char text[512];

    snprintf(text, sizeof(text), "%%label\tt\n%s%s", row, row);
    ck_assert_int_ne(rules_parse(text, "r.tsv", &rules, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "r.tsv:3: duplicate id L01 (first on line 2)") != NULL, "%s", err);
    ck_assert_int_ne(rules_parse(row, "r.tsv", &rules, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "missing %label") != NULL, "%s", err);
}
END_TEST

START_TEST(evidence_names_bad_field)
{
    static const struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {EVIDENCE("{\"id\":\"R1\",\"matrix\":\"hair\",\"tier\":\"confirm\",\"specimen\":{}}", "",
                  ""),
         "results[0].collected_date: missing"},
        {EVIDENCE(RESULT("R1", "hair", "final", "", "2026-01-01", "x", "positive"), "", ""),
         "results[0].tier: must be screen or confirm"},
        {EVIDENCE(RESULT("R1", "hair", "confirm", "", "2026-02-30", "x", "positive"), "", ""),
         "results[0].collected_date: not a date"},
        {EVIDENCE(RESULT("R1", "hair", "confirm", "", "2026-01-01", "x", "high"), "", ""),
         "outcome must be"},
        {EVIDENCE("", STATUS("S1", "detox", "2026-01-01", ""), ""),
         "statuses[0].kind: unknown status kind"},
        {EVIDENCE("", STATUS("S1", "community-detox", "2026-01-01", END("2025-01-01")), ""),
         "statuses[0].end: before start"},
        {EVIDENCE("", "", "{\"id\":\"L1\",\"number\":\"N\",\"handed_back\":\"no\"}"),
         "licences[0].handed_back: must be true or false"},
        {"{\"results\":{}}", "results: must be a list"},
    };
    struct evidence evidence;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *document = json_loads(bad[i].text, 0, NULL);
        ck_assert_ptr_nonnull(document);
        ck_assert_msg(evidence_read(document, &evidence, err, sizeof(err)) != 0, "accepted %s",
                      bad[i].text);
        ck_assert_msg(strstr(err, bad[i].reason) != NULL, "'%s' lacks '%s'", err, bad[i].reason);
        json_decref(document);
    }
}
END_TEST

/* Every wrong check character of a valid resident ID is rejected, naming
 * the expected one; a wrong length, inner space or impossible date too. */
START_TEST(id_every_wrong_check_character)
{
    static const char checks[] = "0123456789X";
    const char *first17 = "99999919900101123";
    char expected = subject_resident_check_char(first17);
    struct subject_id id;
    char number[32];
    char err[160];
    int rejected = 0;

    for (const char *c = checks; *c; c++) {
        snprintf(number, sizeof(number), "%s%c", first17, *c);
        int status = subject_id_parse(number, 20261204, &id, err, sizeof(err));
        if (*c == expected) {
            ck_assert_msg(status == 0, "%s rejected: %s", number, err);
            continue;
        }
        ck_assert_msg(status != 0, "%s accepted", number);
        ck_assert_msg(strstr(err, "check character") != NULL, "%s: %s", number, err);
        rejected++;
    }
    ck_assert_int_eq(rejected, 10);
}
END_TEST

START_TEST(id_shapes_rejected)
{
    static const struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {"9999991990010112381", "18 characters"},   {"999999 199001011238", "18 characters"},
        {"999999199013011231", "not a valid date"}, {"999999199002290000", "not a valid date"},
        {"999999202701011231", "in the future"},
    };
    struct subject_id id;
    char err[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(subject_id_parse(bad[i].text, 20261204, &id, err, sizeof(err)) != 0,
                      "accepted %s", bad[i].text);
        ck_assert_msg(strstr(err, bad[i].reason) != NULL, "%s: '%s' lacks '%s'", bad[i].text, err,
                      bad[i].reason);
    }
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *suite = suite_create("rules");
    TCase *engine = tcase_create("engine");
    TCase *files = tcase_create("files");
    TCase *ids = tcase_create("ids");

    tcase_add_checked_fixture(engine, load_shipped_rules, free_shipped_rules);
    tcase_add_checked_fixture(files, load_shipped_rules, free_shipped_rules);
    tcase_add_loop_test(engine, engine_case_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(engine, engine_names_evidence);
    tcase_add_test(engine, engine_disabled_rule_skipped);
    tcase_add_test(files, rules_shipped_file_loads);
    tcase_add_test(files, rules_reject_bad_rows);
    tcase_add_test(files, rules_reject_duplicate_and_unlabelled);
    tcase_add_test(files, evidence_names_bad_field);
    tcase_add_test(ids, id_every_wrong_check_character);
    tcase_add_test(ids, id_shapes_rejected);
    TCase *all[] = {engine, files, ids};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        tcase_set_timeout(all[i], HARNESS_CASE_TIMEOUT);
        suite_add_tcase(suite, all[i]);
    }
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(rules_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
