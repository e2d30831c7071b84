/* Statement helpers shared by the files that make up the storage layer
 * (db.c, db_licence.c). Not for use outside it. */
#ifndef TOXLAB_DB_INTERNAL_H
#define TOXLAB_DB_INTERNAL_H

#include "controller/timefmt.h"

#include <jansson.h>
#include <sqlite3.h>

void db_now_text(char out[TIMESTAMP_SIZE]);

/* Returns a statement for sql, logging the error and returning NULL on
 * failure. It may be a cached one that an earlier caller reset, so finalize
 * it or reset it (db_run_stmt does) when done, and do not prepare the same
 * SQL again while holding one that was not stepped yet. */
sqlite3_stmt *db_prepare(sqlite3 *db, const char *sql);

/* Hands a statement from db_prepare back for the next caller (a reset,
 * which a NULL statement skips). db_close finalizes it. */
void db_release(sqlite3_stmt *stmt);

/* Binds text arguments 1..count (NULL pointers and empty strings bind SQL NULL). */
void db_bind_texts(sqlite3_stmt *stmt, int count, const char *const *values);

/* Steps a statement that returns no rows, then resets it for reuse. */
int db_run_stmt(sqlite3 *db, sqlite3_stmt *stmt);

int db_exec_sql(sqlite3 *db, const char *sql);

/* Makes each table append-only with triggers that reject UPDATE and DELETE:
 * a correction is a new row that points at the row it corrects. */
int db_make_append_only(sqlite3 *db, const char *const *tables, size_t count);
void db_copy_column(sqlite3_stmt *stmt, int column, char *out, size_t size);

/* Sets key to the text of a column, omitting it when the column is NULL. */
void db_set_text_column(json_t *obj, const char *key, sqlite3_stmt *stmt, int column);

#endif
