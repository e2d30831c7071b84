#include "controller/evidence.h"

#include "controller/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const status_kinds[] = {"community-detox",
                                    "compulsory-isolation",
                                    "community-rehabilitation",
                                    "psychotropic-dependence",
                                    "revoked-drunk-driving",
                                    "revoked-commercial-drink-driving",
                                    "revoked-commercial-drunk-driving",
                                    "revoked-serious-crash",
                                    NULL};

/* Error context: the path of the object being read, e.g. "results[2]". */
struct reader {
    char path[48];
    char *err;
    size_t err_size;
};

static int invalid(struct reader *reader, const char *field, const char *reason)
{
    snprintf(reader->err, reader->err_size, "%s.%s: %s", reader->path, field, reason);
    return -1;
}

/* Reads a string field; a missing optional one leaves *out NULL. */
static int read_string(struct reader *reader, const json_t *obj, const char *field, bool required,
                       const char **out)
{
    const json_t *value = json_object_get(obj, field);

    *out = NULL;
    if (value == NULL) {
        return required ? invalid(reader, field, "missing") : 0;
    }
    if (!json_is_string(value) || json_string_length(value) == 0) {
        return invalid(reader, field, "must be a non-empty string");
    }
    *out = json_string_value(value);
    return 0;
}

static int read_bool(struct reader *reader, const json_t *obj, const char *field, bool *out)
{
    const json_t *value = json_object_get(obj, field);

    *out = false;
    if (value == NULL) {
        return 0;
    }
    if (!json_is_boolean(value)) {
        return invalid(reader, field, "must be true or false");
    }
    *out = json_is_true(value);
    return 0;
}

static int read_date(struct reader *reader, const json_t *obj, const char *field, bool required,
                     int *out)
{
    const char *text;

    *out = 0;
    if (read_string(reader, obj, field, required, &text) != 0) {
        return -1;
    }
    if (text != NULL && (*out = time_parse_date(text)) == 0) {
        return invalid(reader, field, "not a date YYYY-MM-DD");
    }
    return 0;
}

static bool listed(const char *value, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(value, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int read_analytes(struct reader *reader, const json_t *list)
{
    static const char *const outcomes[] = {"negative", "positive", "presumptive", "invalid", NULL};
    size_t i;
    const json_t *entry;

    if (list != NULL && !json_is_array(list)) {
        return invalid(reader, "analytes", "must be a list");
    }
    json_array_foreach(list, i, entry)
    {
        const char *name;
        const char *outcome;
        char field[40];
        snprintf(field, sizeof(field), "analytes[%zu]", i);
        if (read_string(reader, entry, "analyte", true, &name) != 0 ||
            read_string(reader, entry, "outcome", true, &outcome) != 0) {
            return -1;
        }
        if (!listed(outcome, outcomes)) {
            return invalid(reader, field,
                           "outcome must be negative, positive, presumptive or "
                           "invalid");
        }
    }
    return 0;
}

static int read_result(struct reader *reader, const json_t *obj, void *entry)
{
    struct ev_result *result = entry;
    static const char *const statuses[] = {"final", "preliminary", "correction", NULL};
    static const char *const tiers[] = {"screen", "confirm", NULL};
    const json_t *specimen = json_object_get(obj, "specimen");
    const char *released = NULL;

    result->object = obj;
    if (!json_is_object(obj)) {
        return invalid(reader, "", "must be an object");
    }
    if (read_string(reader, obj, "id", true, &result->id) != 0 ||
        read_string(reader, obj, "matrix", true, &result->matrix) != 0 ||
        read_string(reader, obj, "tier", true, &result->tier) != 0 ||
        read_string(reader, obj, "status", false, &result->status) != 0 ||
        read_string(reader, obj, "supersedes", false, &result->supersedes) != 0 ||
        read_string(reader, obj, "released", false, &released) != 0 ||
        read_bool(reader, obj, "driving", &result->driving) != 0) {
        return -1;
    }
    if (!listed(result->tier, tiers)) {
        return invalid(reader, "tier", "must be screen or confirm");
    }
    if (result->status == NULL) {
        result->status = "final";
    } else if (!listed(result->status, statuses)) {
        return invalid(reader, "status", "must be final, preliminary or correction");
    }
    if (!json_is_object(specimen)) {
        return invalid(reader, "specimen", "missing (an object with collected_date)");
    }
    result->released = released != NULL;
    if (read_string(reader, specimen, "barcode", false, &result->barcode) != 0 ||
        read_date(reader, specimen, "collected_date", true, &result->collected) != 0) {
        return -1;
    }
    result->analytes = json_object_get(obj, "analytes");
    return read_analytes(reader, result->analytes);
}

static int read_status(struct reader *reader, const json_t *obj, void *entry)
{
    struct ev_status *status = entry;
    status->object = obj;
    if (read_string(reader, obj, "id", true, &status->id) != 0 ||
        read_string(reader, obj, "kind", true, &status->kind) != 0 ||
        read_string(reader, obj, "reference", true, &status->reference) != 0 ||
        read_string(reader, obj, "supersedes", false, &status->supersedes) != 0 ||
        read_date(reader, obj, "start", true, &status->start) != 0 ||
        read_date(reader, obj, "end", false, &status->end) != 0) {
        return -1;
    }
    if (!listed(status->kind, status_kinds)) {
        return invalid(reader, "kind", "unknown status kind (docs/rules.md lists them)");
    }
    if (status->end != 0 && status->end < status->start) {
        return invalid(reader, "end", "before start");
    }
    return 0;
}

static int read_licence(struct reader *reader, const json_t *obj, void *entry)
{
    struct ev_licence *licence = entry;
    licence->object = obj;
    return read_string(reader, obj, "id", true, &licence->id) != 0 ||
                   read_string(reader, obj, "number", true, &licence->number) != 0 ||
                   read_string(reader, obj, "supersedes", false, &licence->supersedes) != 0 ||
                   read_bool(reader, obj, "handed_back", &licence->handed_back) != 0
               ? -1
               : 0;
}

static const json_t *list_of(const json_t *document, const char *key, size_t *count, char *err,
                             size_t err_size)
{
    const json_t *list = json_object_get(document, key);

    *count = 0;
    if (list == NULL) {
        return NULL;
    }
    if (!json_is_array(list)) {
        snprintf(err, err_size, "%s: must be a list", key);
        return NULL;
    }
    *count = json_array_size(list);
    return list;
}

/* Reads the list `key` of the document into *array, elements of `size`
 * bytes, with read_one for each. Returns 0, or -1 with the error in reader. */
static int read_list(const json_t *document, const char *key, size_t size,
                     int (*read_one)(struct reader *, const json_t *, void *entry), void **array,
                     size_t *count, struct reader *reader)
{
    const json_t *list = list_of(document, key, count, reader->err, reader->err_size);

    if (list == NULL && reader->err[0] != '\0') {
        return -1;
    }
    *array = calloc(*count + 1, size);
    if (*array == NULL) {
        snprintf(reader->err, reader->err_size, "%s: out of memory", key);
        return -1;
    }
    for (size_t i = 0; i < *count; i++) {
        snprintf(reader->path, sizeof(reader->path), "%s[%zu]", key, i);
        if (read_one(reader, json_array_get(list, i), (char *)*array + i * size) != 0) {
            return -1;
        }
    }
    return 0;
}

static bool is_superseded(const char *id, const char *const *supersedes, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (supersedes[i] != NULL && strcmp(supersedes[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/* Marks each entry that a later entry names in "supersedes": a correction
 * replaces what it corrects, which then counts no more. */
static void mark_superseded(struct evidence *evidence)
{
    size_t most = evidence->result_count;
    const char **names;

    if (evidence->status_count > most) {
        most = evidence->status_count;
    }
    if (evidence->licence_count > most) {
        most = evidence->licence_count;
    }
    names = calloc(most + 1, sizeof(*names));
    for (size_t i = 0; i < evidence->result_count; i++) {
        names[i] = evidence->results[i].supersedes;
    }
    for (size_t i = 0; i < evidence->result_count; i++) {
        struct ev_result *result = &evidence->results[i];
        result->superseded = is_superseded(result->id, names, evidence->result_count);
    }
    for (size_t i = 0; i < evidence->status_count; i++) {
        names[i] = evidence->statuses[i].supersedes;
    }
    for (size_t i = 0; i < evidence->status_count; i++) {
        struct ev_status *status = &evidence->statuses[i];
        status->superseded = is_superseded(status->id, names, evidence->status_count);
    }
    for (size_t i = 0; i < evidence->licence_count; i++) {
        names[i] = evidence->licences[i].supersedes;
    }
    for (size_t i = 0; i < evidence->licence_count; i++) {
        struct ev_licence *licence = &evidence->licences[i];
        licence->superseded = is_superseded(licence->id, names, evidence->licence_count);
    }
    free(names);
}

int evidence_read(json_t *document, struct evidence *evidence, char *err, size_t err_size)
{
    struct reader reader = {"", err, err_size};

    memset(evidence, 0, sizeof(*evidence));
    err[0] = '\0';
    if (!json_is_object(document)) {
        snprintf(err, err_size, "the evidence is not a JSON object");
        return -1;
    }
    evidence->document = json_incref(document);
    void *results = NULL;
    void *statuses = NULL;
    void *licences = NULL;
    int status = read_list(document, "results", sizeof(*evidence->results), read_result, &results,
                           &evidence->result_count, &reader) != 0 ||
                 read_list(document, "statuses", sizeof(*evidence->statuses), read_status,
                           &statuses, &evidence->status_count, &reader) != 0 ||
                 read_list(document, "licences", sizeof(*evidence->licences), read_licence,
                           &licences, &evidence->licence_count, &reader) != 0;
    evidence->results = results;
    evidence->statuses = statuses;
    evidence->licences = licences;
    if (status != 0) {
        evidence_free(evidence);
        return -1;
    }
    mark_superseded(evidence);
    return 0;
}

void evidence_free(struct evidence *evidence)
{
    free(evidence->results);
    free(evidence->statuses);
    free(evidence->licences);
    json_decref(evidence->document);
    memset(evidence, 0, sizeof(*evidence));
}
