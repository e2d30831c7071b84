/* Reports that toxlab prints for people: the stop report, a test with its
 * result, subjects, specimens and instruments. docs/cli.md shows each one. */
#include "controller/toxlab_report.h"

#include "controller/toxlab_lab.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Width of the labels in front of the report's header lines ("subject"). */
#define LABEL_WIDTH 9

void text_add(struct text *text, const char *format, ...)
{
    size_t room = sizeof(text->data) - text->len;
    va_list ap;
    int written;

    if (room <= 1) {
        return;
    }
    va_start(ap, format);
    written = vsnprintf(text->data + text->len, room, format, ap);
    va_end(ap);
    if (written < 0) {
        return;
    }
    text->len += (size_t)written < room ? (size_t)written : room - 1;
}

void print_json_line(const json_t *value)
{
    char *line = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER);

    printf("%s\n", line ? line : "{}");
    free(line);
}

void text_separate(struct text *text, const char *separator)
{
    if (text->len > 0) {
        text_add(text, "%s", separator);
    }
}

const char *get_string(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

int get_int(const json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);

    if (!json_is_integer(value)) {
        return -1;
    }
    return (int)json_integer_value(value);
}

const char *or_dash(const char *text)
{
    return text != NULL ? text : "-";
}

int is_same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void print_label(const char *label, const char *value)
{
    if (value != NULL) {
        printf("%-*s %s\n", LABEL_WIDTH, label, value);
    }
}

static void print_subject_line(const json_t *subject)
{
    const char *masked = get_string(subject, "masked");
    const char *type = get_string(subject, "type");

    if (subject == NULL) {
        return;
    }
    printf("%-*s %s", LABEL_WIDTH, "subject",
           or_dash(masked != NULL ? masked : get_string(subject, "id")));
    printf(type != NULL ? " (%s)\n" : "%s\n", type != NULL ? type : "");
}

static int has_flag(const json_t *object, const char *flag)
{
    json_t *item;
    size_t i;

    json_array_foreach(json_object_get(object, "flags"), i, item)
    {
        if (is_same(json_string_value(item), flag)) {
            return 1;
        }
    }
    return 0;
}

/* Formats "flags: a, b", or nothing when the object has no flags. */
static void format_flags(const json_t *object, struct text *text)
{
    json_t *flag;
    size_t i;

    json_array_foreach(json_object_get(object, "flags"), i, flag)
    {
        text_add(text, "%s %s", i > 0 ? "," : "flags:", or_dash(json_string_value(flag)));
    }
}

/* Formats the value and its unit. An over-range value is the top of the
 * analyzer's range and prints as ">value", an under-range one as "<value". */
static void format_value(const json_t *analyte, struct text *text)
{
    const char *value = get_string(analyte, "value");
    const char *unit = get_string(analyte, "unit");
    const char *bound = "";

    if (value == NULL) {
        text_add(text, "no value");
        return;
    }
    if (value[0] != '<' && value[0] != '>') {
        if (has_flag(analyte, "over-range")) {
            bound = ">";
        } else if (has_flag(analyte, "under-range")) {
            bound = "<";
        }
    }
    text_add(text, "%s%s", bound, value);
    if (unit != NULL) {
        text_add(text, " %s", unit);
    }
}

/* Formats what follows the outcome: cutoff and tier, then flags. */
static void format_analyte_details(const json_t *analyte, const char *result_tier,
                                   struct text *text)
{
    const char *cutoff = get_string(analyte, "cutoff");
    const char *cutoff_unit = get_string(analyte, "cutoff_unit");
    const char *tier = get_string(analyte, "tier");

    if (cutoff_unit == NULL) {
        cutoff_unit = get_string(analyte, "unit");
    }
    if (tier == NULL) {
        tier = result_tier;
    }
    if (cutoff != NULL) {
        text_add(text, "cutoff %s%s%s", cutoff, cutoff_unit != NULL ? " " : "",
                 cutoff_unit != NULL ? cutoff_unit : "");
        text_add(text, tier != NULL ? " (%s)" : "%s", tier != NULL ? tier : "");
    }
    if (json_array_size(json_object_get(analyte, "flags")) > 0) {
        text_separate(text, "  ");
        format_flags(analyte, text);
    }
}

static int is_invalid(const json_t *analyte)
{
    return is_same(get_string(analyte, "outcome"), "invalid");
}

/* Formats the outcome with its reason: "invalid: control line failed", or
 * "negative (reason)" when a valid outcome has one. */
static void format_outcome(const json_t *analyte, struct text *text)
{
    const char *reason = get_string(analyte, "reason");

    text_add(text, "%s", or_dash(get_string(analyte, "outcome")));
    if (reason != NULL) {
        text_add(text, is_invalid(analyte) ? ": %s" : " (%s)", reason);
    }
}

struct analyte_columns {
    int name;
    int value;
    int outcome; /* widest valid outcome; invalid ones carry long reasons and are not padded */
};

static void measure_analytes(const json_t *analytes, struct analyte_columns *columns)
{
    json_t *analyte;
    size_t i;

    memset(columns, 0, sizeof(*columns));
    json_array_foreach(analytes, i, analyte)
    {
        struct text value = {.len = 0};
        struct text outcome = {.len = 0};
        int name = (int)strlen(or_dash(get_string(analyte, "analyte")));

        format_value(analyte, &value);
        format_outcome(analyte, &outcome);
        columns->name = name > columns->name ? name : columns->name;
        columns->value = (int)value.len > columns->value ? (int)value.len : columns->value;
        if (!is_invalid(analyte) && (int)outcome.len > columns->outcome) {
            columns->outcome = (int)outcome.len;
        }
    }
}

/* Prints "analyte  value unit  outcome  cutoff ... (tier)  flags: ...". */
static void print_analyte(const json_t *analyte, const struct analyte_columns *columns,
                          const char *result_tier)
{
    struct text value = {.len = 0};
    struct text outcome = {.len = 0};
    struct text details = {.len = 0};

    format_value(analyte, &value);
    format_outcome(analyte, &outcome);
    format_analyte_details(analyte, result_tier, &details);
    printf("  %-*s  %-*s  ", columns->name, or_dash(get_string(analyte, "analyte")), columns->value,
           value.data);
    if (details.len == 0) {
        printf("%s\n", outcome.data);
        return;
    }
    printf("%-*s  %s\n", is_invalid(analyte) ? 0 : columns->outcome, outcome.data, details.data);
}

static void print_analytes(const json_t *analytes, const char *result_tier)
{
    struct analyte_columns columns;
    json_t *analyte;
    size_t i;

    if (json_array_size(analytes) == 0) {
        printf("  no analytes in the result\n");
        return;
    }
    measure_analytes(analytes, &columns);
    json_array_foreach(analytes, i, analyte)
    {
        print_analyte(analyte, &columns, result_tier);
    }
}

static void print_specimen_line(const json_t *result, const json_t *test)
{
    json_t *specimen = json_object_get(result, "specimen");
    const char *barcode = get_string(specimen, "barcode");
    const char *matrix = get_string(result, "matrix");
    const char *collected = get_string(specimen, "collected");
    struct text line = {.len = 0};

    if (barcode == NULL) {
        barcode = get_string(test, "specimen");
    }
    if (barcode == NULL) {
        return; /* a breath test takes no specimen */
    }
    text_add(&line, "specimen %s", barcode);
    if (matrix != NULL) {
        text_add(&line, " (%s)", matrix);
    }
    if (collected != NULL) {
        text_add(&line, ", collected %s", collected);
    }
    printf("  %s\n", line.data);
}

static void print_analyzer_line(const json_t *result)
{
    json_t *cartridge = json_object_get(result, "cartridge");
    const char *serial = get_string(result, "serial");
    const char *firmware = get_string(result, "firmware");
    const char *calibration = get_string(result, "calibration");
    const char *calibration_due = get_string(result, "calibration_due");
    const char *lot = get_string(cartridge, "lot");
    const char *expiry = get_string(cartridge, "expiry");
    const char *temperature = get_string(json_object_get(result, "breath"), "temperature");
    struct text line = {.len = 0};

    if (serial != NULL) {
        text_add(&line, "analyzer %s", serial);
    }
    if (firmware != NULL) {
        text_separate(&line, ", ");
        text_add(&line, "firmware %s", firmware);
    }
    if (calibration != NULL) {
        text_separate(&line, ", ");
        text_add(&line, "calibration %s", calibration);
    }
    if (calibration_due != NULL) {
        text_separate(&line, ", ");
        text_add(&line, "calibration due %s", calibration_due);
    }
    if (lot != NULL || expiry != NULL) {
        /* The breath analyzer's consumable is its mouthpiece. */
        bool breath = json_object_get(result, "breath") != NULL;
        text_separate(&line, ", ");
        text_add(&line, "%s %s", breath ? "mouthpiece lot" : "cartridge", or_dash(lot));
        if (expiry != NULL) {
            text_add(&line, " expiring %s", expiry);
        }
    }
    if (temperature != NULL) {
        text_separate(&line, ", ");
        text_add(&line, "ambient temperature %s C", temperature);
    }
    if (line.len > 0) {
        printf("  %s\n", line.data);
    }
}

/* Prints when the result was stored and which threshold set judged it. The
 * set's version is a SHA-256 in hex. Only its first 12 digits are shown, and
 * --json prints the full version. */
static void print_stored_line(const json_t *result)
{
    json_t *thresholds = json_object_get(result, "thresholds");
    const char *received = get_string(result, "received");
    const char *label = get_string(thresholds, "label");
    const char *version = get_string(thresholds, "version");
    struct text line = {.len = 0};

    if (received != NULL) {
        text_add(&line, "received %s", received);
    }
    if (label != NULL || version != NULL) {
        text_separate(&line, ", ");
        text_add(&line, "thresholds");
        if (label != NULL) {
            text_add(&line, " \"%s\"", label);
        }
        if (version != NULL) {
            text_add(&line, " %.12s", version);
        }
    }
    if (line.len > 0) {
        printf("  %s\n", line.data);
    }
}

/* Returns the words a person reads for an alcohol band. */
static const char *band_words(const char *band)
{
    if (is_same(band, "below")) {
        return "below the drink-driving limit";
    }
    if (is_same(band, "drink")) {
        return "drink-driving";
    }
    if (is_same(band, "drunk")) {
        return "drunk-driving";
    }
    return band; /* a band of a newer protocol version, shown as sent */
}

/* Formats a measured breath result, for example "412.3 ug/L breath = 90.706
 * mg/100mL blood (factor 2200): drunk-driving (drunk limit 80, drink limit 20;
 * SOURCE)". The limits are in mg/100 mL of blood. */
static void format_breath_measurement(const json_t *breath, struct text *text)
{
    const char *value = get_string(breath, "value");
    const char *unit = get_string(breath, "unit");
    const char *blood = get_string(breath, "blood_equivalent");
    const char *blood_unit = get_string(breath, "blood_unit");
    const char *factor = get_string(breath, "factor");
    const char *band = get_string(breath, "band");
    const char *drunk_limit = get_string(breath, "drunk_limit");
    const char *drink_limit = get_string(breath, "drink_limit");
    const char *source = get_string(breath, "source");
    struct text basis = {.len = 0};

    text_add(text, "%s%s%s breath", value != NULL ? value : "no value",
             value != NULL && unit != NULL ? " " : "", value != NULL && unit != NULL ? unit : "");
    if (blood != NULL) {
        text_add(text, " = %s%s%s blood", blood, blood_unit != NULL ? " " : "",
                 blood_unit != NULL ? blood_unit : "");
    }
    if (factor != NULL) {
        text_add(text, " (factor %s)", factor);
    }
    if (band != NULL) {
        text_add(text, ": %s", band_words(band));
    }
    if (drunk_limit != NULL) {
        text_add(&basis, "drunk limit %s", drunk_limit);
    }
    if (drink_limit != NULL) {
        text_separate(&basis, ", ");
        text_add(&basis, "drink limit %s", drink_limit);
    }
    if (source != NULL) {
        text_separate(&basis, "; ");
        text_add(&basis, "%s", source);
    }
    if (basis.len > 0) {
        text_add(text, " (%s)", basis.data);
    }
}

/* Prints the "alcohol" line of a breath result: the measurement with its band,
 * a refusal, or why the result is invalid (the breath reason, else the
 * result's invalid_reason), followed by any flags. */
static void print_breath(const json_t *breath, const char *invalid_reason)
{
    const char *outcome = get_string(breath, "outcome");
    const char *reason = get_string(breath, "reason");
    struct text line = {.len = 0};

    if (reason == NULL) {
        reason = invalid_reason;
    }
    if (is_same(outcome, "measured")) {
        format_breath_measurement(breath, &line);
    } else if (is_same(outcome, "refused")) {
        text_add(&line, "refused: the subject would not blow");
    } else {
        /* "invalid", or an outcome of a newer protocol version */
        text_add(&line, "%s", outcome != NULL ? outcome : "no outcome");
        if (reason != NULL) {
            text_add(&line, ": %s", reason);
        }
    }
    if (json_array_size(json_object_get(breath, "flags")) > 0) {
        text_add(&line, " (");
        format_flags(breath, &line);
        text_add(&line, ")");
    }
    printf("  alcohol  %s\n", line.data);
}

static void print_clock_line(const json_t *result)
{
    if (json_is_false(json_object_get(result, "clock_synced"))) {
        printf("  the host clock was not synchronised when the result was stored\n");
    }
}

void print_test(const json_t *test, int instrument_width, int standalone)
{
    const char *reason = get_string(test, "reason");
    json_t *result = json_object_get(test, "result");
    json_t *breath = json_object_get(result, "breath");
    json_t *analytes = json_object_get(result, "analytes");
    const char *invalid_reason = get_string(result, "invalid_reason");

    printf("%-*s  %s  %s", instrument_width, or_dash(get_string(test, "instrument")),
           or_dash(get_string(test, "id")), or_dash(get_string(test, "state")));
    printf(reason != NULL ? " (%s)\n" : "%s\n", reason != NULL ? reason : "");
    if (standalone && get_string(test, "stop") != NULL) {
        printf("  stop %s\n", get_string(test, "stop"));
    }
    print_specimen_line(result, test);
    if (!json_is_object(result)) {
        return;
    }
    print_analyzer_line(result);
    print_stored_line(result);
    if (standalone) {
        print_clock_line(result);
    }
    /* The alcohol line of an invalid breath result gives the reason itself. */
    if (invalid_reason != NULL &&
        !(json_is_object(breath) && is_same(get_string(breath, "outcome"), "invalid"))) {
        printf("  result invalid: %s\n", invalid_reason);
    }
    if (json_is_object(breath)) {
        print_breath(breath, invalid_reason);
    }
    if (!json_is_object(breath) || json_array_size(analytes) > 0) {
        print_analytes(analytes, get_string(result, "tier"));
    }
}

static void print_rule(const char *prefix, const json_t *rule, const char *suffix)
{
    const char *id = get_string(rule, "id");
    const char *text = get_string(rule, "text");

    printf("%s%s%s%s%s", prefix, or_dash(id), text != NULL ? " " : "", text != NULL ? text : "",
           suffix);
}

/* Prints "decision: flag (L10 text)", or the decision and one "rule:" line
 * for each rule when several fired, then evidence and actions. */
static void print_decision(const json_t *decision)
{
    const char *value = get_string(decision, "decision");
    json_t *rules = json_object_get(decision, "rules");
    json_t *evidence = json_object_get(decision, "evidence");
    json_t *item;
    size_t i;

    if (value == NULL) {
        printf("decision: pending until every test has ended\n");
        return;
    }
    if (json_array_size(rules) == 1) {
        printf("decision: %s ", value);
        print_rule("(", json_array_get(rules, 0), ")\n");
    } else {
        printf("decision: %s\n", value);
        json_array_foreach(rules, i, item)
        {
            print_rule("rule: ", item, "\n");
        }
    }
    if (json_array_size(evidence) > 0) {
        printf("evidence:");
        json_array_foreach(evidence, i, item)
        {
            printf("%s %s", i > 0 ? "," : "", or_dash(json_string_value(item)));
        }
        printf("\n");
    }
    json_array_foreach(json_object_get(decision, "actions"), i, item)
    {
        printf("action: %s\n", or_dash(json_string_value(item)));
    }
}

static int tests_instrument_width(const json_t *tests)
{
    json_t *test;
    size_t i;
    int width = 0;

    json_array_foreach(tests, i, test)
    {
        int length = (int)strlen(or_dash(get_string(test, "instrument")));

        width = length > width ? length : width;
    }
    return width;
}

/* Prints one line naming the tests whose results were stored while the host
 * clock was not synchronised, so that the stop report prints the warning once. */
static void print_clock_warning(const json_t *tests)
{
    struct text instruments = {.len = 0};
    size_t count = 0;
    json_t *test;
    size_t i;

    json_array_foreach(tests, i, test)
    {
        if (json_is_false(json_object_get(json_object_get(test, "result"), "clock_synced"))) {
            text_separate(&instruments, ", ");
            text_add(&instruments, "%s", or_dash(get_string(test, "instrument")));
            count++;
        }
    }
    if (count > 0) {
        printf("%-*s the host clock was not synchronised when the result%s of %s %s stored\n",
               LABEL_WIDTH, "clock", count == 1 ? "" : "s", instruments.data,
               count == 1 ? "was" : "were");
    }
}

/* Prints "note: KIND (CREATED)" for each note the officer added to the stop. */
static void print_notes(const json_t *notes)
{
    json_t *note;
    size_t i;

    json_array_foreach(notes, i, note)
    {
        const char *created = get_string(note, "created");

        printf("note: %s", or_dash(get_string(note, "kind")));
        printf(created != NULL ? " (%s)\n" : "%s\n", created != NULL ? created : "");
    }
}

void print_stop(const json_t *stop)
{
    json_t *tests = json_object_get(stop, "tests");
    json_t *driving = json_object_get(stop, "driving");
    int width = tests_instrument_width(tests);
    json_t *test;
    size_t i;

    print_label("stop", get_string(stop, "id"));
    print_subject_line(json_object_get(stop, "subject"));
    if (json_is_boolean(driving)) {
        print_label("driving", json_is_true(driving) ? "yes" : "no");
    }
    print_label("opened", get_string(stop, "opened"));
    print_clock_warning(tests);
    json_array_foreach(tests, i, test)
    {
        printf("\n");
        print_test(test, width, 0);
    }
    printf("\n");
    print_decision(json_object_get(stop, "decision"));
    print_notes(json_object_get(stop, "notes"));
}

void print_stop_response(const json_t *response)
{
    print_stop(json_object_get(response, "stop"));
}

void print_test_response(const json_t *response)
{
    print_test(json_object_get(response, "test"), 0, 1);
}

void print_subject_added(const json_t *response)
{
    json_t *subject = json_object_get(response, "subject");
    const char *masked = get_string(subject, "masked");

    printf("subject %s (%s) %s as %s\n", or_dash(masked), or_dash(get_string(subject, "type")),
           json_is_true(json_object_get(subject, "existed")) ? "was already registered"
                                                             : "registered",
           or_dash(get_string(subject, "id")));
}

/* Returns the list named key from the subject object, or else from the
 * response beside it, because docs/protocol.md does not say where the lists are. */
static json_t *subject_list(const json_t *response, const char *key)
{
    json_t *list = json_object_get(json_object_get(response, "subject"), key);

    return list != NULL ? list : json_object_get(response, key);
}

static void print_specimen_rows(const json_t *specimens)
{
    json_t *specimen;
    size_t i;
    int width = 0;

    printf("\nspecimens%s\n", json_array_size(specimens) == 0 ? ": none" : "");
    json_array_foreach(specimens, i, specimen)
    {
        int length = (int)strlen(or_dash(get_string(specimen, "barcode")));

        width = length > width ? length : width;
    }
    json_array_foreach(specimens, i, specimen)
    {
        const char *stop = get_string(specimen, "stop");

        printf("  %-*s  %-10s  collected %s", width, or_dash(get_string(specimen, "barcode")),
               or_dash(get_string(specimen, "matrix")), or_dash(get_string(specimen, "collected")));
        printf(stop != NULL ? "  stop %s\n" : "%s\n", stop != NULL ? stop : "");
    }
}

static void print_stop_rows(const json_t *stops)
{
    json_t *stop;
    size_t i;

    printf("\nstops%s\n", json_array_size(stops) == 0 ? ": none" : "");
    json_array_foreach(stops, i, stop)
    {
        json_t *driving = json_object_get(stop, "driving");
        const char *decision = get_string(json_object_get(stop, "decision"), "decision");
        size_t tests = json_array_size(json_object_get(stop, "tests"));

        printf("  %s  opened %s", or_dash(get_string(stop, "id")),
               or_dash(get_string(stop, "opened")));
        if (json_is_boolean(driving)) {
            printf("  driving %s", json_is_true(driving) ? "yes" : "no");
        }
        printf("  %zu test%s  decision %s\n", tests, tests == 1 ? "" : "s",
               decision != NULL ? decision : "pending");
    }
}

void print_subject_response(const json_t *response)
{
    json_t *subject = json_object_get(response, "subject");

    print_subject_line(subject);
    print_label("id", get_string(subject, "id"));
    print_label("created", get_string(subject, "created"));
    print_specimen_rows(subject_list(response, "specimens"));
    print_stop_rows(subject_list(response, "stops"));
    print_lab_result_rows(subject_list(response, "laboratory_results"));
}

void print_specimen_response(const json_t *response)
{
    json_t *specimen = json_object_get(response, "specimen");
    const char *stop = get_string(specimen, "stop");
    const char *collected = get_string(specimen, "collected");

    printf("specimen %s (%s) registered as %s\n", or_dash(get_string(specimen, "barcode")),
           or_dash(get_string(specimen, "matrix")), or_dash(get_string(specimen, "id")));
    print_label("subject", get_string(specimen, "subject"));
    print_label("collected", collected);
    print_label("stop", stop);
}

static void format_instrument(const json_t *instrument, int width, struct text *line)
{
    json_t *identity = json_object_get(instrument, "identity");
    const char *model = get_string(identity, "model");
    const char *lot = get_string(identity, "cartridge_lot");
    const char *expiry = get_string(identity, "cartridge_expiry");
    const char *test = get_string(instrument, "test");
    const char *error = get_string(instrument, "error");

    text_add(line, "%-*s  %-7s", width, or_dash(get_string(instrument, "id")),
             json_is_true(json_object_get(instrument, "online")) ? "online" : "offline");
    if (!json_is_object(identity)) {
        text_add(line, "  not identified");
    }
    if (model != NULL) {
        text_add(line, "  %s", model);
    }
    if (get_string(identity, "serial") != NULL) {
        text_add(line, "  serial %s", get_string(identity, "serial"));
    }
    if (get_string(identity, "firmware") != NULL) {
        text_add(line, "  firmware %s", get_string(identity, "firmware"));
    }
    if (get_string(identity, "calibration_due") != NULL) {
        text_add(line, "  calibration due %s", get_string(identity, "calibration_due"));
    }
    if (lot != NULL || expiry != NULL) {
        bool breath = strcmp(or_dash(get_string(instrument, "driver")), "breath") == 0;
        text_add(line, "  %s %s", breath ? "mouthpiece lot" : "cartridge", or_dash(lot));
        text_add(line, expiry != NULL ? " expiring %s" : "%s", expiry != NULL ? expiry : "");
    }
    if (get_string(instrument, "last_seen") != NULL) {
        text_add(line, "  last seen %s", get_string(instrument, "last_seen"));
    }
    if (test != NULL) {
        text_add(line, "  running %s", test);
    }
    if (error != NULL) {
        text_add(line, "  last error: %s", error);
    }
}

void print_instruments_response(const json_t *response)
{
    json_t *instruments = json_object_get(response, "instruments");
    json_t *instrument;
    size_t i;
    int width = 0;

    if (json_array_size(instruments) == 0) {
        printf("no instruments configured\n");
        return;
    }
    json_array_foreach(instruments, i, instrument)
    {
        int length = (int)strlen(or_dash(get_string(instrument, "id")));

        width = length > width ? length : width;
    }
    json_array_foreach(instruments, i, instrument)
    {
        struct text line = {.len = 0};

        format_instrument(instrument, width, &line);
        printf("%s\n", line.data);
    }
}
