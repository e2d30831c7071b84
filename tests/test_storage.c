/* Storage tests: a full database (SQLITE_FULL) makes toxlabd reject new
 * tests while it serves reads; once there is room again, tests start.
 *
 * The disk fills through daemon.max_database_kb, which sets SQLite's
 * max_page_count, so SQLite returns SQLITE_FULL on the same code paths as
 * when the file system runs out of space. A small file system would need
 * mount rights, and a file size limit (RLIMIT_FSIZE) makes write() fail
 * with EFBIG, which SQLite's unix VFS reports as SQLITE_IOERR_WRITE, not
 * as SQLITE_FULL. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"
#include "protocol/client_proto.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FILL_MAX 5000

static long long now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int socket_connect(struct rig *rig, struct proto_reader *reader)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert(strlen(rig->socket) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, rig->socket, strlen(rig->socket) + 1);
    ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect: %s",
                  strerror(errno));
    proto_reader_init(reader);
    return fd;
}

/* Returns the next line from fd, waiting up to EVENT_MS. */
static char *next_line(int fd, struct proto_reader *reader)
{
    long long deadline = now_ms() + harness_ms(EVENT_MS);
    char *line;

    while (proto_reader_next(reader, &line) != 1) {
        char buffer[4096];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long long left = deadline - now_ms();
        ck_assert_msg(left > 0 && poll(&pfd, 1, (int)left) == 1, "no line from toxlabd in time");
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        ck_assert_msg(got > 0, "toxlabd closed the connection");
        proto_reader_feed(reader, buffer, (size_t)got);
    }
    return line;
}

/* Rewrites the configuration with a database size limit and waits for
 * toxlabd to apply it after SIGHUP. */
static void set_database_limit(struct rig *rig, long long old_kb, long long kb)
{
    char extra[96];
    char logged[96];

    snprintf(extra, sizeof(extra), "\n[daemon]\nmax_database_kb = %lld\n", kb);
    write_config(rig, extra);
    ck_assert(kill(rig->daemon.pid, SIGHUP) == 0);
    snprintf(logged, sizeof(logged), "daemon.max_database_kb changed from %lld to %lld", old_kb,
             kb);
    ck_assert_msg(harness_wait_file(rig->daemon.log_path, logged, EVENT_MS),
                  "toxlabd did not apply max_database_kb = %lld", kb);
}

/* Registers specimens until the database is full; returns the error line. */
static char *fill_database(struct rig *rig)
{
    struct proto_reader reader;
    int fd = socket_connect(rig, &reader);
    char *hello = next_line(fd, &reader);

    free(hello);
    for (int i = 0; i < FILL_MAX; i++) {
        char request[256];
        int len = snprintf(request, sizeof(request),
                           "{\"id\":%d,\"cmd\":\"specimen.add\",\"args\":{\"subject\":\"%s\","
                           "\"barcode\":\"FILL-%05d-PADDING-PADDING-PADDING\",\"matrix\":"
                           "\"hair\"}}\n",
                           i + 1, SUBJECT_B, i);
        ck_assert(send(fd, request, (size_t)len, MSG_NOSIGNAL) == len);
        char *line = next_line(fd, &reader);
        if (strstr(line, "\"ok\":true") == NULL) {
            close(fd);
            proto_reader_free(&reader);
            return line;
        }
        free(line);
    }
    ck_abort_msg("the database took %d specimens under its size limit", FILL_MAX);
    return NULL;
}

START_TEST(full_database_rejects_tests)
{
    struct rig rig;
    char line[256];
    char *out;
    char *err;

    rig_start(&rig, fast_phases, NULL);
    register_subject(&rig, SUBJECT_A, "OF-A1");
    client_ok(&rig, "test", "start", "--subject", SUBJECT_A, "--instrument", "saliva-1", NULL);
    register_subject(&rig, SUBJECT_B, "OF-B1");

    /* Room for a few pages more than the database contains now. */
    long long kb = db_count(&rig, "PRAGMA page_count") * db_count(&rig, "PRAGMA page_size") / 1024;
    set_database_limit(&rig, 0, kb + 16);
    char *full = fill_database(&rig);
    assert_contains(full, "\"code\":\"storage\"");
    assert_contains(full, "the database is full");
    free(full);

    /* New tests are rejected with the reason, and nothing reaches the analyzer. */
    ck_assert_int_ne(client(&rig, &out, &err, "test", "start", "--subject", SUBJECT_B,
                            "--instrument", "saliva-1", NULL),
                     0);
    assert_contains(err, "the database is full");
    assert_contains(err, "KiB left under daemon.max_database_kb");
    free(out);
    free(err);
    ck_assert(!child_wait_line(&rig.sim, "start test=2", 0, line, sizeof(line)));

    /* Reads still work. */
    client_ok(&rig, "instruments", NULL);
    ck_assert_int_eq(client(&rig, &out, &err, "subject", "show", SUBJECT_A, NULL), 0);
    assert_contains(out, "OF-A1");
    free(out);
    free(err);

    /* With room again, tests start and their results are stored. */
    set_database_limit(&rig, kb + 16, 0);
    client_ok(&rig, "test", "start", "--subject", SUBJECT_B, "--instrument", "saliva-1", NULL);
    ck_assert(child_wait_line(&rig.sim, "ack test=2", EVENT_MS, line, sizeof(line)));
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM results"), 2);
    ck_assert_int_eq(db_count(&rig, "SELECT count(*) FROM tests WHERE state = 'completed'"), 2);
    rig_stop(&rig);
}
END_TEST

static Suite *storage_suite(void)
{
    Suite *suite = suite_create("storage");
    TCase *full = tcase_create("full");

    tcase_add_test(full, full_database_rejects_tests);
    tcase_set_timeout(full, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, full);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(storage_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
