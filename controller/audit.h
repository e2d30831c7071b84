/* The audit log: one row for every change to the database and every
 * client request, each hash-chained to the one before with SHA-256, so that
 * an edited or deleted row, or a rewritten chain, shows. Changes are
 * recorded by triggers in the same transaction as the change itself. */
#ifndef TOXLAB_AUDIT_H
#define TOXLAB_AUDIT_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

#define AUDIT_HASH_HEX 65

/* Creates the audit table, registers the SQL functions the triggers call,
 * and (re)creates a trigger for each change to each audited table. */
int audit_install(sqlite3 *db, char *err, size_t err_size);

/* Sets who the following changes are recorded for: the client's uid, its
 * roles and the command; toxlabd's own uid and "toxlabd" between requests. */
void audit_set_actor(unsigned uid, const char *roles, const char *command);

/* Holds the entry of a client request with its arguments (`rejected` marks
 * one that was refused) until the command's first transaction begins, so
 * that the entry commits with the command's changes under one fdatasync.
 * audit_request_flush writes it when no committed transaction took it. */
int audit_request_hold(const json_t *args, bool rejected);
int audit_request_flush(sqlite3 *db);

/* Called by db_begin after BEGIN to put a held entry in the transaction,
 * and by db_commit after COMMIT, which makes it stored. */
int audit_request_join(sqlite3 *db);
void audit_request_committed(void);

/* The outcome of a verification. */
struct audit_report {
    long long entries;
    long long first_bad; /* sequence number of the first entry that does not match, 0 if none */
    char reason[256];
    long long head_seq;
    char head[AUDIT_HASH_HEX];
};

/* Recomputes the chain and checks that every audited row still equals what
 * its latest entry recorded. Returns 0 when all match, 1 when an entry does
 * not (report names it), -1 on a database error (reason set). */
int audit_verify(sqlite3 *db, struct audit_report *report);

/* Reads the newest entry's sequence number and hash (0 and "" when empty). */
int audit_head(sqlite3 *db, long long *seq, char hash[AUDIT_HASH_HEX]);

#endif
