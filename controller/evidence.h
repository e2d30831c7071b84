/* The evidence a licence decision is made from: one JSON object
 * {"results", "statuses", "licences"} (docs/rules.md), read into arrays that
 * point into the JSON. toxlabd builds the object from SQLite, and "toxlab
 * licence evaluate" reads it from a file, so both decide from the same
 * input. */
#ifndef TOXLAB_EVIDENCE_H
#define TOXLAB_EVIDENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct ev_result {
    const json_t *object;
    const char *id;
    const char *matrix;
    const char *tier;
    const char *status; /* final, preliminary or correction */
    const char *supersedes;
    const char *barcode;
    const json_t *analytes;
    bool released;
    bool driving;
    bool superseded; /* another result names this one in "supersedes" */
    int collected;   /* local collection date, YYYYMMDD */
};

struct ev_status {
    const json_t *object;
    const char *id;
    const char *kind;
    const char *reference;
    const char *supersedes;
    bool superseded;
    int start; /* YYYYMMDD */
    int end;   /* YYYYMMDD, 0 when none is recorded */
};

struct ev_licence {
    const json_t *object;
    const char *id;
    const char *number;
    const char *supersedes;
    bool handed_back;
    bool superseded;
};

struct evidence {
    json_t *document; /* owns the strings the arrays point to */
    size_t result_count;
    struct ev_result *results;
    size_t status_count;
    struct ev_status *statuses;
    size_t licence_count;
    struct ev_licence *licences;
};

/* The status kinds of docs/rules.md, NULL-terminated. */
extern const char *const status_kinds[];

/* Reads the evidence object (taking a reference to it). Returns 0, or -1
 * with the failing field named in err ("results[2].specimen.collected_date:
 * missing"). */
int evidence_read(json_t *document, struct evidence *evidence, char *err, size_t err_size);

void evidence_free(struct evidence *evidence);

#endif
