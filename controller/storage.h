/* Room in the database for new tests. */
#ifndef TOXLAB_STORAGE_H
#define TOXLAB_STORAGE_H

#include "controller/daemon.h"

#include <stddef.h>

/* Room a new test needs under daemon.max_database_kb. By estimate, its rows, its result
 * and the stop's decision take a few KiB, so this leaves ample margin. */
#define STORAGE_TEST_ROOM (256 * 1024)

/* Free space a new test needs on the database's file system. The WAL grows
 * by up to about 4 MiB (SQLite's default checkpoint after 1000 pages of
 * 4 KiB) before it is copied back, so this covers that and the test. */
#define STORAGE_DISK_ROOM (8 * 1024 * 1024)

/* Sets SQLite's max_page_count from daemon.max_database_kb, or back to
 * SQLite's default when it is 0, and the page cache from daemon.cache_kb.
 * Writes past the limit fail with SQLITE_FULL, as on a full disk. */
void storage_apply_limit(struct daemon *daemon);

/* Checks that the database and its disk have room for a new test. Returns
 * 0, or -1 with the reason and what to do in message. */
int storage_check_room(struct daemon *daemon, char *message, size_t size);

#endif
