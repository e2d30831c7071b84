/* Threshold sets: cutoff rows read from a tab-separated file. Each row is
 * matrix, tier, analyte, cutoff, unit, effective date, source. A set's
 * version is the SHA-256 of its canonical text; a "%label" line names it. */
#ifndef TOXLAB_THRESHOLDS_H
#define TOXLAB_THRESHOLDS_H

#include <stddef.h>
#include <stdint.h>

#define THRESHOLD_VERSION_HEX 65

struct threshold_row {
    char matrix[16]; /* oral-fluid, hair, blood, urine, breath */
    char tier[8];    /* screen, confirm */
    char analyte[32];
    char cutoff_text[24];
    int64_t cutoff_micro;
    char unit[12];
    int effective; /* YYYYMMDD, the first day the row is in force */
    char source[128];
    int line; /* line in the file, stored with each result judged by it */
};

struct threshold_set {
    char label[128];
    char version[THRESHOLD_VERSION_HEX]; /* SHA-256 of the canonical text, hex */
    char *canonical;                     /* the rows as stored with the version */
    size_t count;
    struct threshold_row *rows;
};

/* Parses the text of a threshold file. Returns 0, or -1 with
 * "NAME:LINE: reason" in err; the set is then empty. */
int thresholds_parse(const char *text, const char *name, struct threshold_set *set, char *err,
                     size_t err_size);

/* Reads and parses a file. */
int thresholds_load(const char *path, struct threshold_set *set, char *err, size_t err_size);

void thresholds_free(struct threshold_set *set);

/* Returns the row in force on `date` (YYYYMMDD): the one with the latest
 * effective date not after it. NULL when none applies. */
const struct threshold_row *thresholds_find(const struct threshold_set *set, const char *matrix,
                                            const char *tier, const char *analyte, int date);

/* Reports whether a unit is known, and its family and factor to the
 * family's smallest unit (pg/mg is 1, ng/mg is 1000). */
int unit_lookup(const char *unit, int *family, int64_t *factor);

#endif
