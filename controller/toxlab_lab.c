#include "controller/toxlab_lab.h"

#include <stdio.h>

const struct cli_option result_link_options[] = {
    {"barcode", "barcode", 0, 1},
    {"reason", "reason", 0, 1},
    {NULL, NULL, 0, 0},
};

static const char *text_of(const json_t *obj, const char *key)
{
    const char *text = json_string_value(json_object_get(obj, key));

    return text != NULL ? text : "";
}

/* Prints one laboratory result: its state line, then one line per analyte. */
static void print_lab_result(const json_t *result)
{
    const json_t *release = json_object_get(result, "release");
    const json_t *link = json_object_get(result, "link");
    const char *unlinked = json_string_value(json_object_get(result, "unlinked_reason"));
    size_t index;
    json_t *analyte;

    printf("result %s  %s %s  barcode %s  instrument %s (%s)\n", text_of(result, "id"),
           text_of(result, "tier"), text_of(result, "status"), text_of(result, "barcode"),
           text_of(result, "instrument"), text_of(result, "serial"));
    if (json_object_get(result, "supersedes") != NULL) {
        printf("  supersedes %s\n", text_of(result, "supersedes"));
    }
    if (unlinked != NULL) {
        printf("  unlinked: %s\n", unlinked);
    } else if (link != NULL) {
        printf("  linked by uid %lld at %s: %s\n",
               (long long)json_integer_value(json_object_get(link, "uid")),
               text_of(link, "recorded"), text_of(link, "reason"));
    }
    if (release != NULL) {
        printf("  released by uid %lld at %s\n",
               (long long)json_integer_value(json_object_get(release, "uid")),
               text_of(release, "recorded"));
    } else if (json_is_true(json_object_get(result, "awaiting_review"))) {
        printf("  awaiting review\n");
    }
    json_array_foreach(json_object_get(result, "analytes"), index, analyte)
    {
        const char *reason = json_string_value(json_object_get(analyte, "reason"));
        printf("  %-16s %10s %-6s %s", text_of(analyte, "analyte"), text_of(analyte, "value"),
               text_of(analyte, "unit"), text_of(analyte, "outcome"));
        if (reason != NULL) {
            printf(" (%s)", reason);
        } else if (json_object_get(analyte, "cutoff") != NULL) {
            printf(" (cutoff %s %s)", text_of(analyte, "cutoff"), text_of(analyte, "cutoff_unit"));
        }
        printf("\n");
    }
}

void print_lab_specimen_response(const json_t *response)
{
    const json_t *specimen = json_object_get(response, "specimen");
    const json_t *segment = json_object_get(specimen, "segment");
    size_t index;
    json_t *result;

    printf("specimen  %s (%s)\n", text_of(specimen, "barcode"), text_of(specimen, "matrix"));
    printf("id        %s\n", text_of(specimen, "id"));
    printf("subject   %s\n", text_of(specimen, "subject"));
    printf("collected %s\n", text_of(specimen, "collected"));
    printf("stop      %s\n", text_of(specimen, "stop"));
    if (segment != NULL) {
        printf("segment   %s cm, %s\n", text_of(segment, "length_cm"),
               text_of(segment, "position"));
    }
    json_array_foreach(json_object_get(specimen, "results"), index, result)
    {
        printf("\n");
        print_lab_result(result);
    }
}

void print_lab_result_response(const json_t *response)
{
    print_lab_result(json_object_get(response, "result"));
}

void print_unlinked_response(const json_t *response)
{
    const json_t *results = json_object_get(response, "results");
    size_t index;
    json_t *result;

    if (json_array_size(results) == 0) {
        printf("no unlinked results\n");
    }
    json_array_foreach(results, index, result)
    {
        print_lab_result(result);
    }
}

void print_lab_result_rows(const json_t *results)
{
    size_t index;
    json_t *result;

    if (json_array_size(results) == 0) {
        return;
    }
    printf("\nlaboratory results\n");
    json_array_foreach(results, index, result)
    {
        print_lab_result(result);
    }
}
