/* Storage of laboratory results that the hair analyzer uploads: hair
 * segments, the results with their link state, and the analyst's link and
 * release rows (append-only). Runs on the event loop's thread. */
#ifndef TOXLAB_DB_HAIR_H
#define TOXLAB_DB_HAIR_H

#include "controller/thresholds.h"
#include "controller/ulid.h"
#include "instruments/driver.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

/* One uploaded result to store: a message's R records of one status. */
struct hair_result_in {
    const char *instrument;  /* configured instrument ID */
    const char *serial;      /* R.14 */
    const char *digest;      /* SHA-256 of the message's records, to spot a resend */
    const char *barcode;     /* O.3 */
    const char *subject_ref; /* P.3, NULL when empty */
    const char *status;      /* final, correction or preliminary */
    const char *tier;
    const char *reported; /* R.13 as UTC text, NULL when unreadable */
    const char *timezone;
    const char *specimen_id; /* NULL when unlinked */
    const char *subject_id;  /* NULL when unlinked */
    const char *unlinked_reason;
    int collected_date; /* YYYYMMDD; 0 when unlinked */
    const struct driver_analyte *analytes;
    size_t count;
};

int db_hair_schema(sqlite3 *db);

int db_hair_segment_add(sqlite3 *db, const char *specimen_id, const char *length,
                        const char *position);

/* Returns 1 when this instrument already stored a message with this
 * digest, 0 if not, -1 on error. */
int db_hair_seen(sqlite3 *db, const char *instrument, const char *digest);

/* Stores the result and its analytes. A correction supersedes the newest
 * result of the barcode that nothing supersedes yet. Run in a transaction. */
int db_hair_result_store(sqlite3 *db, const char *lab, const struct hair_result_in *in,
                         const struct threshold_set *thresholds, char id[RECORD_ID_SIZE]);

/* Laboratory results that no subject owns. */
json_t *db_hair_unlinked_json(sqlite3 *db);

/* A laboratory result with its link and release rows, or NULL. */
json_t *db_hair_result_json(sqlite3 *db, const char *result_id);

/* The laboratory results a subject owns, directly or by an analyst's link. */
json_t *db_hair_subject_results_json(sqlite3 *db, const char *subject_id);

/* The specimen with its segment and laboratory results, or NULL. */
json_t *db_hair_specimen_json(sqlite3 *db, const char *specimen_id);

struct hair_result_state {
    char status[16];
    char subject_id[RECORD_ID_SIZE]; /* the owner, linked directly or by an analyst */
    bool linked_by_analyst;
    bool released;
};

/* Reads a laboratory result's state. Returns 1, 0 when no uploaded result
 * has that ID, -1 on error. */
int db_hair_result_state(sqlite3 *db, const char *result_id, struct hair_result_state *state);

int db_hair_link(sqlite3 *db, const char *result_id, const char *subject_id,
                 const char *specimen_id, const char *reason, unsigned uid);
int db_hair_release(sqlite3 *db, const char *result_id, unsigned uid);

#endif
