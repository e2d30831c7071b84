/* Room in the database for new tests: daemon.max_database_kb as SQLite's
 * max_page_count (and daemon.cache_kb as its page cache), and the check that test.start makes
 * before it writes anything, so that a full disk rejects new tests instead of starting tests whose
 * results could not be stored. */
#define _GNU_SOURCE
#include "controller/storage.h"

#include "controller/db.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

/* Runs a PRAGMA and returns the first column of its first row, or -1. */
static long long pragma_number(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    long long value = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        log_msg(LOG_ERR, "%s failed: %s", sql, sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        value = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return value;
}

void storage_apply_limit(struct daemon *daemon)
{
    static long long default_pages;
    long long page_size = pragma_number(daemon->db, "PRAGMA page_size");
    long long pages;
    char sql[64];

    if (default_pages == 0) {
        default_pages = pragma_number(daemon->db, "PRAGMA max_page_count");
    }
    pages = default_pages;
    if (daemon->config.max_database_kb > 0 && page_size > 0) {
        pages = (long long)daemon->config.max_database_kb * 1024 / page_size;
    }
    /* SQLite keeps the limit at the current size when it is set lower. */
    snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", pages);
    pages = pragma_number(daemon->db, sql);
    if (daemon->config.max_database_kb > 0) {
        log_msg(LOG_NOTICE, "database size limited to %lld KiB (%lld pages of %lld bytes)",
                pages * page_size / 1024, pages, page_size);
    }
    if (db_set_cache_kb(daemon->db, daemon->config.cache_kb) == 0) {
        log_msg(LOG_INFO, "SQLite page cache: %d KiB", daemon->config.cache_kb);
    }
}

/* Returns the free bytes of the file system that holds the database, or
 * -1 when statvfs fails. */
static long long disk_free_bytes(const char *database)
{
    char folder[PATH_MAX];
    struct statvfs info;
    char *slash;

    snprintf(folder, sizeof(folder), "%s", database);
    slash = strrchr(folder, '/');
    if (slash == NULL) {
        snprintf(folder, sizeof(folder), ".");
    } else if (slash == folder) {
        folder[1] = '\0';
    } else {
        *slash = '\0';
    }
    if (statvfs(folder, &info) != 0) {
        return -1;
    }
    return (long long)info.f_bavail * (long long)info.f_frsize;
}

int storage_check_room(struct daemon *daemon, char *message, size_t size)
{
    long long page_size = pragma_number(daemon->db, "PRAGMA page_size");
    long long pages_left = pragma_number(daemon->db, "PRAGMA max_page_count") -
                           pragma_number(daemon->db, "PRAGMA page_count") +
                           pragma_number(daemon->db, "PRAGMA freelist_count");
    long long disk_left = disk_free_bytes(daemon->config.database);

    if (page_size > 0 && pages_left * page_size < STORAGE_TEST_ROOM) {
        snprintf(message, size,
                 "the database is full: %lld KiB left under daemon.max_database_kb, %d KiB "
                 "needed to start a test; raise daemon.max_database_kb, then try again",
                 pages_left * page_size / 1024, STORAGE_TEST_ROOM / 1024);
        return -1;
    }
    /* NOTE: no test fills a real file system, so this branch runs only on real disks. */
    if (disk_left >= 0 && disk_left < STORAGE_DISK_ROOM) {
        snprintf(message, size,
                 "the disk that holds %s is full: %lld KiB free, %d KiB needed to start a "
                 "test; free disk space, then try again",
                 daemon->config.database, disk_left / 1024, STORAGE_DISK_ROOM / 1024);
        return -1;
    }
    return 0;
}
