/* Storage of what licence decisions rest on: statuses, licences, the
 * evidence object the rule engine reads, and the recorded decisions with
 * their reviews. Every table here is append-only; a correction is a new row
 * that names the row it supersedes. */
#ifndef TOXLAB_DB_LICENCE_H
#define TOXLAB_DB_LICENCE_H

#include "controller/rules.h"
#include "controller/ulid.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

struct status_in {
    const char *kind;
    const char *start; /* YYYY-MM-DD */
    const char *end;   /* YYYY-MM-DD or NULL */
    const char *reference;
    const char *supersedes; /* status ID or NULL */
    const char *reason;     /* required with supersedes */
};

struct licence_in {
    const char *number;
    const char *class_name;
    bool commercial;
    bool handed_back;
    const char *supersedes;
    const char *reason;
};

int db_rule_set_store(sqlite3 *db, const struct rule_set *set);

int db_status_add(sqlite3 *db, const char *lab, const char *subject_id, const struct status_in *in,
                  unsigned uid, char id[RECORD_ID_SIZE]);
int db_licence_add(sqlite3 *db, const char *lab, const char *subject_id,
                   const struct licence_in *in, unsigned uid, char id[RECORD_ID_SIZE]);

/* Returns 1 when a row with id exists in table ("statuses" or "licences")
 * for the subject and is not yet superseded, 0 if not, -1 on error. */
int db_supersedable(sqlite3 *db, const char *table, const char *id, const char *subject_id);

json_t *db_status_json(sqlite3 *db, const char *id);
json_t *db_licence_json(sqlite3 *db, const char *id);

/* Builds the engine's evidence object {"results", "statuses", "licences"}
 * for a subject, or for the drug results of one stop when stop_id is set. */
json_t *db_evidence_json(sqlite3 *db, const char *subject_id, const char *stop_id);

/* Records a decision a clerk asked for, with its inputs and outcome. */
int db_decision_record(sqlite3 *db, const char *lab, const char *subject_id, const json_t *inputs,
                       const json_t *outcome, unsigned uid, char id[RECORD_ID_SIZE]);

/* Records a clerk's confirmation or override ("confirm" or "override"). */
int db_decision_review(sqlite3 *db, const char *decision_id, const char *action, const char *reason,
                       unsigned uid);

/* The recorded decision with its reviews, or NULL when not found. */
json_t *db_decision_json(sqlite3 *db, const char *id);

#endif
