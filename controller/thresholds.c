#include "controller/thresholds.h"

#include "controller/timefmt.h"
#include "controller/tsv.h"
#include "protocol/decimal.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_COUNT 7
#define MAX_ROWS 4096
#define MAX_FILE_BYTES (1024 * 1024)

static const char *const matrices[] = {"oral-fluid", "hair", "blood", "urine", "breath"};
static const char *const tiers[] = {"screen", "confirm"};

/* Units by family: concentrations in fluids, in hair, and breath alcohol. */
static const struct {
    const char *name;
    int family;
    int64_t factor;
} units[] = {
    {"ng/mL", 1, 1}, {"ug/L", 1, 1},     {"µg/L", 1, 1},
    {"pg/mg", 2, 1}, {"ng/mg", 2, 1000}, {"mg/100mL", 3, 1},
};

int unit_lookup(const char *unit, int *family, int64_t *factor)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(units[i].name, unit) == 0) {
            *family = units[i].family;
            *factor = units[i].factor;
            return 0;
        }
    }
    return -1;
}

static bool in_list(const char *value, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(value, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Fills row from the fields of one line; returns NULL or the failed check. */
static const char *parse_row(char **fields, struct threshold_row *row)
{
    int family;
    int64_t factor;

    if (!in_list(fields[0], matrices, sizeof(matrices) / sizeof(matrices[0]))) {
        return "unknown matrix (use oral-fluid, hair, blood, urine or breath)";
    }
    if (!in_list(fields[1], tiers, sizeof(tiers) / sizeof(tiers[0]))) {
        return "unknown tier (use screen or confirm)";
    }
    if (tsv_copy(row->matrix, sizeof(row->matrix), fields[0]) != 0 ||
        tsv_copy(row->tier, sizeof(row->tier), fields[1]) != 0 ||
        tsv_copy(row->analyte, sizeof(row->analyte), fields[2]) != 0) {
        return "empty or too long analyte name";
    }
    if (decimal_parse(fields[3], &row->cutoff_micro) != 0 ||
        tsv_copy(row->cutoff_text, sizeof(row->cutoff_text), fields[3]) != 0) {
        return "cutoff is not a decimal number";
    }
    if (row->cutoff_micro < 0) {
        return "negative cutoff";
    }
    if (unit_lookup(fields[4], &family, &factor) != 0 ||
        tsv_copy(row->unit, sizeof(row->unit), fields[4]) != 0) {
        return "unknown unit (use ng/mL, ug/L, µg/L, ng/mg, pg/mg or mg/100mL)";
    }
    row->effective = time_parse_date(fields[5]);
    if (row->effective == 0) {
        return "effective date is not YYYY-MM-DD";
    }
    if (tsv_copy(row->source, sizeof(row->source), fields[6]) != 0) {
        return "missing or too long source";
    }
    return NULL;
}

static const char *check_duplicate(const struct threshold_set *set, const struct threshold_row *row)
{
    static char reason[96];

    for (size_t i = 0; i < set->count; i++) {
        const struct threshold_row *other = &set->rows[i];
        if (strcmp(other->matrix, row->matrix) == 0 && strcmp(other->tier, row->tier) == 0 &&
            strcmp(other->analyte, row->analyte) == 0 && other->effective == row->effective) {
            snprintf(reason, sizeof(reason),
                     "duplicate of line %d (same matrix, tier, analyte "
                     "and effective date)",
                     other->line);
            return reason;
        }
    }
    return NULL;
}

static void append_canonical(struct threshold_set *set, size_t *used,
                             const struct threshold_row *row)
{
    char effective[11];
    char text[512];

    time_format_date(row->effective, effective);
    int len = snprintf(text, sizeof(text), "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row->matrix, row->tier,
                       row->analyte, row->cutoff_text, row->unit, effective, row->source);
    memcpy(set->canonical + *used, text, (size_t)len);
    *used += (size_t)len;
    set->canonical[*used] = '\0';
}

/* Parses one non-comment line into the set; returns NULL or the reason. */
static const char *parse_line(char *line, struct threshold_set *set, size_t *used, int number)
{
    char *fields[FIELD_COUNT + 1];
    struct threshold_row row = {0};

    if (strncmp(line, "%label", 6) == 0) {
        const char *label = tsv_trim(line + 6);
        if (label[0] == '\0' || strlen(label) >= sizeof(set->label)) {
            return "empty or too long label";
        }
        snprintf(set->label, sizeof(set->label), "%s", label);
        return NULL;
    }
    if (tsv_split(line, fields, FIELD_COUNT + 1) != FIELD_COUNT) {
        return "expected 7 tab-separated fields: matrix, tier, analyte, cutoff, unit, "
               "effective date, source";
    }
    const char *reason = parse_row(fields, &row);
    if (reason == NULL) {
        reason = check_duplicate(set, &row);
    }
    if (reason != NULL) {
        return reason;
    }
    if (set->count == MAX_ROWS) {
        return "too many rows";
    }
    row.line = number;
    set->rows[set->count] = row;
    append_canonical(set, used, &set->rows[set->count]);
    set->count++;
    return NULL;
}

/* The state of one parse: the set and how much of its canonical text is used. */
struct thresholds_parse {
    struct threshold_set *set;
    size_t used;
};

static const char *parse_numbered_line(char *line, int number, void *user)
{
    struct thresholds_parse *parse = user;

    return parse_line(line, parse->set, &parse->used, number);
}

int thresholds_parse(const char *text, const char *name, struct threshold_set *set, char *err,
                     size_t err_size)
{
    struct thresholds_parse parse = {set, 0};

    memset(set, 0, sizeof(*set));
    set->rows = calloc(MAX_ROWS, sizeof(*set->rows));
    set->canonical = malloc(strlen(text) + MAX_ROWS * 16 + 1);
    if (set->rows == NULL || set->canonical == NULL) {
        thresholds_free(set);
        snprintf(err, err_size, "%s: out of memory", name);
        return -1;
    }
    set->canonical[0] = '\0';
    if (tsv_parse_lines(text, name, parse_numbered_line, &parse, err, err_size) != 0) {
        thresholds_free(set);
        return -1;
    }
    if (set->label[0] == '\0') {
        snprintf(err, err_size, "%s: missing %%label line", name);
        thresholds_free(set);
        return -1;
    }
    tsv_sha256_hex(set->canonical, set->version);
    return 0;
}

int thresholds_load(const char *path, struct threshold_set *set, char *err, size_t err_size)
{
    char *text = tsv_read_file(path, MAX_FILE_BYTES, err, err_size);

    if (text == NULL) {
        return -1;
    }
    int status = thresholds_parse(text, path, set, err, err_size);
    free(text);
    return status;
}

void thresholds_free(struct threshold_set *set)
{
    free(set->rows);
    free(set->canonical);
    memset(set, 0, sizeof(*set));
}

const struct threshold_row *thresholds_find(const struct threshold_set *set, const char *matrix,
                                            const char *tier, const char *analyte, int date)
{
    const struct threshold_row *best = NULL;

    for (size_t i = 0; i < set->count; i++) {
        const struct threshold_row *row = &set->rows[i];
        if (strcmp(row->matrix, matrix) != 0 || strcmp(row->tier, tier) != 0 ||
            strcmp(row->analyte, analyte) != 0 || row->effective > date) {
            continue;
        }
        if (best == NULL || row->effective > best->effective) {
            best = row;
        }
    }
    return best;
}
