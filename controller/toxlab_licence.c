#define _GNU_SOURCE

#include "controller/toxlab_licence.h"

#include "controller/engine.h"
#include "controller/evidence.h"
#include "controller/rules.h"
#include "controller/timefmt.h"
#include "controller/toxlab_import.h"
#include "controller/toxlab_report.h"
#include "protocol/client_proto.h"
#include "protocol/subject_id.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct cli_option status_add_options[] = {
    {"subject", "subject", 0, 1},     {"kind", "kind", 0, 1},
    {"start", "start", 0, 1},         {"end", "end", 0, 0},
    {"reference", "reference", 0, 1}, {"supersedes", "supersedes", 0, 0},
    {"reason", "reason", 0, 0},       {NULL, NULL, 0, 0},
};

const struct cli_option licence_add_options[] = {
    {"subject", "subject", 0, 1},
    {"number", "number", 0, 1},
    {"class", "class", 0, 1},
    {"commercial", "commercial", 1, 0},
    {"handed-back", "handed_back", 1, 0},
    {"supersedes", "supersedes", 0, 0},
    {"reason", "reason", 0, 0},
    {NULL, NULL, 0, 0},
};

const struct cli_option licence_check_options[] = {
    {"for", "for", 0, 1},
    {"as-of", "as_of", 0, 0},
    {NULL, NULL, 0, 0},
};

const struct cli_option licence_evaluate_options[] = {
    {"evidence", "evidence", 0, 1}, {"for", "for", 0, 1}, {"as-of", "as_of", 0, 1},
    {"rules", "rules", 0, 0},       {NULL, NULL, 0, 0},
};

const struct cli_option decision_review_options[] = {
    {"reason", "reason", 0, 0},
    {NULL, NULL, 0, 0},
};

const struct cli_option no_options[] = {{NULL, NULL, 0, 0}};

/* ---- id check ------------------------------------------------------------ */

int parse_id_check(const struct command *command, int argc, char **argv, struct request *request)
{
    static const struct option long_options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *ids = json_array();
    int result;

    json_object_set_new(request->args, "ids", ids);
    optind = 0;
    while ((result = getopt_long(argc, argv, "+:h", long_options, NULL)) != -1) {
        if (result != 'h') {
            return option_error(command, result, argv);
        }
        print_command_help(command);
        return STATUS_OK;
    }
    for (int i = optind; i < argc; i++) {
        json_array_append_new(ids, json_string(argv[i]));
    }
    return json_array_size(ids) > 0 ? CONTINUE : usage_error(command, "missing ID");
}

int run_id_check(const struct command *command, const struct options *options,
                 struct request *request)
{
    int status = STATUS_OK;
    size_t i;
    json_t *text;

    /* A birth date "in the future" is judged in the zone toxlabd uses by
     * default, unless TZ names another. */
    setenv("TZ", DEFAULT_TIMEZONE, 0);
    tzset();
    int today = time_local_date(time_realtime_ms());

    (void)command;
    json_array_foreach(json_object_get(request->args, "ids"), i, text)
    {
        const char *input = json_string_value(text);
        struct subject_id id;
        char err[160];
        int valid = input != NULL && subject_id_parse(input, today, &id, err, sizeof(err)) == 0;
        if (options->json) {
            json_t *line = valid ? json_pack("{ss sb ss ss}", "input", input, "valid", 1, "type",
                                             id.type, "number", id.number)
                                 : json_pack("{ss? sb ss}", "input", input, "valid", 0, "error",
                                             input ? err : "not valid UTF-8");
            print_json_line(line);
            json_decref(line);
        } else if (valid) {
            printf("%s: valid %s ID %s\n", input, id.type, id.number);
        } else {
            printf("%s: invalid: %s\n", input ? input : "(not UTF-8)", input ? err : "");
        }
        if (!valid) {
            status = STATUS_ERROR;
        }
    }
    return status;
}

/* ---- printing ------------------------------------------------------------ */

static void print_status(const json_t *status)
{
    printf("status %s: %s from %s", or_dash(get_string(status, "id")),
           or_dash(get_string(status, "kind")), or_dash(get_string(status, "start")));
    if (get_string(status, "end") != NULL) {
        printf(" to %s", get_string(status, "end"));
    }
    printf(", reference %s\n", or_dash(get_string(status, "reference")));
    if (get_string(status, "supersedes") != NULL) {
        printf("  supersedes %s: %s\n", get_string(status, "supersedes"),
               or_dash(get_string(status, "reason")));
    }
}

void print_status_response(const json_t *response)
{
    print_status(json_object_get(response, "status"));
}

void print_licence_response(const json_t *response)
{
    const json_t *licence = json_object_get(response, "licence");

    printf("licence %s: number %s, class %s%s, %s\n", or_dash(get_string(licence, "id")),
           or_dash(get_string(licence, "number")), or_dash(get_string(licence, "class")),
           json_is_true(json_object_get(licence, "commercial")) ? " (commercial)" : "",
           json_is_true(json_object_get(licence, "handed_back")) ? "handed back"
                                                                 : "not handed back");
    if (get_string(licence, "supersedes") != NULL) {
        printf("  supersedes %s: %s\n", get_string(licence, "supersedes"),
               or_dash(get_string(licence, "reason")));
    }
}

static void print_evidence_item(const json_t *item)
{
    if (get_string(item, "result") != NULL) {
        struct text analytes = {.len = 0};
        size_t i;
        const json_t *name;
        json_array_foreach(json_object_get(item, "analytes"), i, name)
        {
            text_separate(&analytes, ", ");
            text_add(&analytes, "%s", json_string_value(name));
        }
        printf("      result %s: %s %s, barcode %s, collected %s: %s\n", get_string(item, "result"),
               or_dash(get_string(item, "matrix")), or_dash(get_string(item, "tier")),
               or_dash(get_string(item, "barcode")), or_dash(get_string(item, "collected_date")),
               analytes.data);
    } else if (get_string(item, "status") != NULL) {
        printf("      status %s: %s from %s%s%s, reference %s\n", get_string(item, "status"),
               or_dash(get_string(item, "kind")), or_dash(get_string(item, "start")),
               get_string(item, "end") ? " to " : "",
               get_string(item, "end") ? get_string(item, "end") : "",
               or_dash(get_string(item, "reference")));
    } else {
        printf("      licence %s: number %s, not handed back\n",
               or_dash(get_string(item, "licence")), or_dash(get_string(item, "number")));
    }
}

/* Writes how long a restriction lasts: "until 2029-12-02 (the last
 * restricted day)", "for life", or "while the status lasts". */
static const char *describe_ends(const char *ends, char *out, size_t size)
{
    if (ends == NULL) {
        snprintf(out, size, "%s", "");
    } else if (strcmp(ends, "life") == 0) {
        snprintf(out, size, ", for life");
    } else if (strcmp(ends, "open") == 0) {
        snprintf(out, size, ", while the status lasts (no end date recorded)");
    } else {
        snprintf(out, size, ", until %s inclusive", ends);
    }
    return out;
}

static void print_fired_rule(const json_t *rule)
{
    char ends[96];
    size_t i;
    const json_t *item;

    printf("  %s %s%s: %s\n", or_dash(get_string(rule, "id")),
           or_dash(get_string(rule, "decision")),
           describe_ends(get_string(rule, "ends"), ends, sizeof(ends)),
           or_dash(get_string(rule, "text")));
    printf("    source: %s\n", or_dash(get_string(rule, "source")));
    printf("    evidence:\n");
    json_array_foreach(json_object_get(rule, "evidence"), i, item)
    {
        print_evidence_item(item);
    }
}

static void print_reviews(const json_t *reviews)
{
    size_t i;
    const json_t *review;

    json_array_foreach(reviews, i, review)
    {
        printf("%s by uid %d at %s%s%s\n",
               is_same(get_string(review, "action"), "override") ? "overridden" : "confirmed",
               get_int(review, "uid"), or_dash(get_string(review, "recorded")),
               get_string(review, "reason") ? ": " : "",
               get_string(review, "reason") ? get_string(review, "reason") : "");
    }
}

/* Prints a decision object of docs/rules.md for a person. */
static void print_decision_object(const json_t *decision)
{
    char ends[96];
    size_t i;
    const json_t *item;
    const json_t *subject = json_object_get(decision, "subject");

    printf("decision: %s%s\n", or_dash(get_string(decision, "decision")),
           describe_ends(get_string(decision, "ends"), ends, sizeof(ends)));
    if (subject != NULL) {
        printf("subject: %s:%s\n", or_dash(get_string(subject, "type")),
               get_string(subject, "number") ? get_string(subject, "number")
                                             : or_dash(get_string(subject, "masked")));
    }
    printf("question: %s, as of %s\n", or_dash(get_string(decision, "question")),
           or_dash(get_string(decision, "as_of")));
    json_array_foreach(json_object_get(decision, "rules"), i, item)
    {
        print_fired_rule(item);
    }
    if (json_array_size(json_object_get(decision, "rules")) == 0) {
        printf("  no rule fired\n");
    }
    printf("policy:\n");
    json_array_foreach(json_object_get(decision, "policy"), i, item)
    {
        printf("  %s\n", json_string_value(item));
    }
    printf("rules: %s (version %.12s)\n", or_dash(get_string(decision, "rules_label")),
           or_dash(get_string(decision, "rules_version")));
}

void print_decision_response(const json_t *response)
{
    const json_t *decision = json_object_get(response, "decision");
    const json_t *reviews = json_object_get(decision, "reviews");

    print_decision_object(decision);
    printf("recorded: decision %s by uid %d at %s\n", or_dash(get_string(decision, "id")),
           get_int(decision, "uid"), or_dash(get_string(decision, "recorded")));
    if (json_array_size(reviews) == 0) {
        printf("review: none yet; use 'toxlab decision confirm %s' or 'toxlab decision override "
               "%s --reason TEXT'\n",
               or_dash(get_string(decision, "id")), or_dash(get_string(decision, "id")));
    }
    print_reviews(reviews);
}

void print_reloaded_response(const json_t *response)
{
    const json_t *reloaded = json_object_get(response, "reloaded");
    static const char *const sets[] = {"thresholds", "rules"};

    for (size_t i = 0; i < 2; i++) {
        const json_t *set = json_object_get(reloaded, sets[i]);
        printf("%s: '%s' version %.12s, %d rows from %s\n", sets[i],
               or_dash(get_string(set, "label")), or_dash(get_string(set, "version")),
               get_int(set, "rows"), or_dash(get_string(set, "file")));
    }
}

/* ---- licence evaluate ---------------------------------------------------- */

static json_t *load_evidence(const char *path)
{
    json_error_t error;
    json_t *document = json_load_file(path, JSON_REJECT_DUPLICATES, &error);

    if (document == NULL) {
        print_error("%s:%d: invalid evidence JSON: %s", path, error.line, error.text);
    }
    return document;
}

int run_licence_evaluate(const struct command *command, const struct options *options,
                         struct request *request)
{
    const char *path = json_string_value(json_object_get(request->args, "evidence"));
    const char *rules_path = json_string_value(json_object_get(request->args, "rules"));
    int as_of = time_parse_date(json_string_value(json_object_get(request->args, "as_of")));
    enum question question;
    struct rule_set rules;
    struct evidence evidence;
    char err[512];

    if (question_parse(json_string_value(json_object_get(request->args, "for")), &question) != 0) {
        return usage_error(command, "--for takes application or holder");
    }
    if (as_of == 0) {
        return usage_error(command, "--as-of takes a date YYYY-MM-DD");
    }
    if (rules_load(rules_path ? rules_path : DEFAULT_RULES_PATH, &rules, err, sizeof(err)) != 0) {
        print_error("%s", err);
        return STATUS_ERROR;
    }
    json_t *document = load_evidence(path);
    if (document == NULL || evidence_read(document, &evidence, err, sizeof(err)) != 0) {
        if (document != NULL) {
            print_error("%s: %s", path, err);
        }
        json_decref(document);
        rules_free(&rules);
        return STATUS_ERROR;
    }
    json_t *decision = engine_decide(&rules, &evidence, question, as_of);
    if (options->json) {
        print_json_line(decision);
    } else {
        print_decision_object(decision);
    }
    json_decref(decision);
    evidence_free(&evidence);
    json_decref(document);
    rules_free(&rules);
    return STATUS_OK;
}

/* ---- import -------------------------------------------------------------- */

int run_import(struct client *client, const struct command *command, struct request *request)
{
    const char *path = json_string_value(json_object_get(request->args, "file"));
    char err[600];
    json_t *results = import_read_file(path, err, sizeof(err));

    if (results == NULL) {
        print_error("%s", err);
        return STATUS_ERROR;
    }
    json_object_set_new(request->args, "results", results);
    char *encoded = json_dumps(request->args, JSON_COMPACT);
    size_t length = encoded ? strlen(encoded) : 0;
    free(encoded);
    if (length + 256 > PROTO_MAX_LINE) {
        print_error("%s: %zu results make a request of %zu bytes, over the protocol's line limit "
                    "of %d bytes; split the file",
                    path, json_array_size(results), length, PROTO_MAX_LINE);
        return STATUS_ERROR;
    }
    return run_request(client, command, request);
}

void print_imported_response(const json_t *response)
{
    const json_t *imported = json_object_get(response, "imported");
    size_t i;
    const json_t *id;

    int count = get_int(imported, "count");

    printf("imported %d result%s, released by %s laboratory:\n", count, count == 1 ? "" : "s",
           count == 1 ? "its" : "their");
    json_array_foreach(json_object_get(imported, "results"), i, id)
    {
        const json_t *analyte;
        size_t j;
        printf("  %s\n", json_string_value(id));
        json_array_foreach(json_object_get(imported, "analytes"), j, analyte)
        {
            if (!is_same(get_string(analyte, "result"), json_string_value(id))) {
                continue;
            }
            printf("    %-18s %s %s  %s%s%s\n", or_dash(get_string(analyte, "analyte")),
                   or_dash(get_string(analyte, "value")), or_dash(get_string(analyte, "unit")),
                   or_dash(get_string(analyte, "outcome")),
                   get_string(analyte, "reason") ? ": " : "",
                   get_string(analyte, "reason") ? get_string(analyte, "reason") : "");
        }
    }
}
