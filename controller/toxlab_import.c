/* "toxlab import FILE": reads laboratory results as JSON (the result
 * schema: one object, a list, or {"results": [...]}) or as CSV with the
 * header of docs/import.md, parsed with libcsv, and sends them to toxlabd
 * in one request, which stores all of them or none. */
#include "controller/toxlab_import.h"

#include "controller/toxlab_report.h"
#include "protocol/client_proto.h"

#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_MAX_BYTES (1024 * 1024)

static const char *const csv_columns[] = {"laboratory", "report",   "barcode", "subject",
                                          "matrix",     "analyte",  "value",   "unit",
                                          "collected",  "reported", NULL};
#define CSV_COLUMN_COUNT 10

/* State of the CSV reader: the current record's fields and the results built. */
struct csv_reader {
    const char *path;
    int record; /* 1 is the header */
    size_t field_count;
    char *fields[CSV_COLUMN_COUNT + 1];
    json_t *results;
    char error[512];
};

static void on_field(void *data, size_t len, void *user)
{
    struct csv_reader *reader = user;

    if (data != NULL && memchr(data, '\0', len) != NULL && reader->error[0] == '\0') {
        snprintf(reader->error, sizeof(reader->error), "%s: record %d: field %zu has a NUL byte",
                 reader->path, reader->record + 1, reader->field_count + 1);
    }
    if (reader->field_count <= CSV_COLUMN_COUNT) {
        reader->fields[reader->field_count] = strndup(data ? data : "", len);
    }
    reader->field_count++;
}

static void clear_fields(struct csv_reader *reader)
{
    for (size_t i = 0; i <= CSV_COLUMN_COUNT && i < reader->field_count; i++) {
        free(reader->fields[i]);
        reader->fields[i] = NULL;
    }
    reader->field_count = 0;
}

static void check_header(struct csv_reader *reader)
{
    for (size_t i = 0; i < CSV_COLUMN_COUNT; i++) {
        const char *found = i < reader->field_count ? reader->fields[i] : "";
        if (strcmp(found, csv_columns[i]) != 0) {
            snprintf(reader->error, sizeof(reader->error),
                     "%s: record 1: column %zu is '%.40s', expected '%s' (the header is "
                     "laboratory,report,barcode,subject,matrix,analyte,value,unit,collected,"
                     "reported)",
                     reader->path, i + 1, found, csv_columns[i]);
            return;
        }
    }
}

/* Returns the result of an earlier record with the same laboratory,
 * report, barcode, subject, matrix and dates, or NULL. */
static json_t *same_report(const struct csv_reader *reader)
{
    char *const *f = reader->fields;
    size_t i;
    json_t *result;

    json_array_foreach(reader->results, i, result)
    {
        const json_t *laboratory = json_object_get(result, "laboratory");
        const json_t *specimen = json_object_get(result, "specimen");
        const char *collected = get_string(specimen, "collected_date")
                                    ? get_string(specimen, "collected_date")
                                    : get_string(specimen, "collected");
        if (is_same(get_string(laboratory, "name"), f[0]) &&
            is_same(get_string(laboratory, "report"), f[1]) &&
            strcmp(get_string(specimen, "barcode") ? get_string(specimen, "barcode") : "", f[2]) ==
                0 &&
            strcmp(get_string(result, "subject") ? get_string(result, "subject") : "", f[3]) == 0 &&
            is_same(get_string(result, "matrix"), f[4]) && is_same(collected, f[8]) &&
            is_same(get_string(laboratory, "reported"), f[9])) {
            return result;
        }
    }
    return NULL;
}

/* Adds a CSV record to the results: one analyte, in the result of its
 * report when an earlier record opened it. Returns -1 on invalid UTF-8. */
static int add_record(struct csv_reader *reader)
{
    char *const *f = reader->fields;
    json_t *analyte = json_pack("{ss ss ss sI}", "analyte", f[5], "value", f[6], "unit", f[7],
                                "line", (json_int_t)reader->record);
    json_t *result = analyte ? same_report(reader) : NULL;

    if (analyte == NULL) {
        return -1;
    }
    if (result != NULL) {
        json_array_append_new(json_object_get(result, "analytes"), analyte);
        return 0;
    }
    result = json_pack("{s{ss ss ss} ss s[o] sI}", "laboratory", "name", f[0], "report", f[1],
                       "reported", f[9], "matrix", f[4], "analytes", analyte, "line",
                       (json_int_t)reader->record);
    if (result == NULL) {
        return -1;
    }
    json_t *specimen = json_object();
    if (f[2][0] != '\0') {
        json_object_set_new(specimen, "barcode", json_string(f[2]));
    }
    /* A date alone is the collection date; a time is RFC 3339. */
    json_object_set_new(specimen, strlen(f[8]) == 10 ? "collected_date" : "collected",
                        json_string(f[8]));
    json_object_set_new(result, "specimen", specimen);
    if (f[3][0] != '\0') {
        json_object_set_new(result, "subject", json_string(f[3]));
    }
    json_array_append_new(reader->results, result);
    return 0;
}

static void on_record(int terminator, void *user)
{
    struct csv_reader *reader = user;

    (void)terminator;
    reader->record++;
    if (reader->error[0] != '\0') {
        clear_fields(reader);
        return;
    }
    if (reader->record == 1) {
        check_header(reader);
    } else if (reader->field_count != CSV_COLUMN_COUNT) {
        snprintf(reader->error, sizeof(reader->error), "%s: record %d: %zu fields, expected %d",
                 reader->path, reader->record, reader->field_count, CSV_COLUMN_COUNT);
    } else if (add_record(reader) != 0) {
        snprintf(reader->error, sizeof(reader->error), "%s: record %d: a field is not valid UTF-8",
                 reader->path, reader->record);
    }
    clear_fields(reader);
}

static json_t *read_csv(const char *path, const char *text, size_t len, char *err, size_t size)
{
    struct csv_parser parser;
    struct csv_reader reader = {.path = path, .results = json_array()};

    if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        snprintf(err, size, "%s: cannot set up the CSV parser", path);
        json_decref(reader.results);
        return NULL;
    }
    if (csv_parse(&parser, text, len, on_field, on_record, &reader) != len ||
        csv_fini(&parser, on_field, on_record, &reader) != 0) {
        snprintf(reader.error, sizeof(reader.error), "%s: record %d: %s", path, reader.record + 1,
                 csv_strerror(csv_error(&parser)));
    }
    csv_free(&parser);
    clear_fields(&reader);
    if (reader.error[0] != '\0' || json_array_size(reader.results) == 0) {
        snprintf(err, size, "%s", reader.error[0] ? reader.error : "no result records");
        json_decref(reader.results);
        return NULL;
    }
    return reader.results;
}

/* Accepts one result object, a list of them, or {"results": [...]}. */
static json_t *read_json(const char *path, const char *text, char *err, size_t size)
{
    json_error_t error;
    json_t *document = json_loads(text, JSON_REJECT_DUPLICATES, &error);
    json_t *results = NULL;

    if (document == NULL) {
        snprintf(err, size, "%s:%d: invalid JSON: %s", path, error.line, error.text);
        return NULL;
    }
    if (json_is_array(document)) {
        results = json_incref(document);
    } else if (json_is_array(json_object_get(document, "results"))) {
        results = json_incref(json_object_get(document, "results"));
    } else if (json_is_object(document)) {
        results = json_pack("[O]", document);
    } else {
        snprintf(err, size, "%s: expected a result object or a list of them", path);
    }
    json_decref(document);
    return results;
}

json_t *import_read_file(const char *path, char *err, size_t size)
{
    FILE *file = fopen(path, "r");
    char *text;
    size_t len;

    if (file == NULL) {
        snprintf(err, size, "%s: cannot open the file", path);
        return NULL;
    }
    text = malloc(IMPORT_MAX_BYTES + 1);
    len = text ? fread(text, 1, IMPORT_MAX_BYTES + 1, file) : 0;
    fclose(file);
    if (text == NULL || len > IMPORT_MAX_BYTES) {
        snprintf(err, size, "%s: larger than %d bytes; split it", path, IMPORT_MAX_BYTES);
        free(text);
        return NULL;
    }
    text[len] = '\0';
    size_t first = strspn(text, " \t\r\n");
    json_t *results = text[first] == '{' || text[first] == '['
                          ? read_json(path, text, err, size)
                          : read_csv(path, text, len, err, size);
    free(text);
    return results;
}
