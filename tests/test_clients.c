/* Client input tests: requests that name the wrong field, clients that
 * send half a line and stall, clients that never read, and many clients at
 * once, each while a well-behaved client still gets responses. */
#define _GNU_SOURCE
#include "harness.h"
#include "rig.h"
#include "protocol/client_proto.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MANY_CLIENTS 200
/* CLIENT_MAX_OUTPUT of controller/daemon.h: the unread output a client may have. */
#define DAEMON_OUTPUT_LIMIT 4194304
#define UNREAD_REQUESTS_MAX 200000

static long long now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int socket_connect(struct rig *rig)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert(strlen(rig->socket) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, rig->socket, strlen(rig->socket) + 1);
    ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/* Returns the next line from fd, waiting up to EVENT_MS, or NULL when the
 * daemon closed the connection first. */
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
        if (got <= 0) {
            return NULL;
        }
        proto_reader_feed(reader, buffer, (size_t)got);
    }
    return line;
}

/* Connects and reads the hello. */
static int client_connect(struct rig *rig, struct proto_reader *reader)
{
    int fd = socket_connect(rig);

    proto_reader_init(reader);
    char *hello = next_line(fd, reader);
    ck_assert_ptr_nonnull(hello);
    assert_contains(hello, "\"class\":\"hello\"");
    free(hello);
    return fd;
}

static void send_text(int fd, const char *text)
{
    ck_assert(send(fd, text, strlen(text), MSG_NOSIGNAL) == (ssize_t)strlen(text));
}

/* Sends one request line and returns the response line. */
static char *exchange(int fd, struct proto_reader *reader, const char *request)
{
    send_text(fd, request);
    char *line = next_line(fd, reader);
    ck_assert_msg(line != NULL, "the connection closed after %s", request);
    return line;
}

/* Waits until the daemon closes fd; returns false when it stays open. */
static bool wait_closed(int fd)
{
    long long deadline = now_ms() + harness_ms(EVENT_MS);

    for (;;) {
        char buffer[65536];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) != 1) {
            return false;
        }
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        if (got == 0 || (got < 0 && errno == ECONNRESET)) {
            return true;
        }
    }
}

START_TEST(wrong_fields_named)
{
    static const struct {
        const char *request;
        const char *code;
        const char *message;
    } cases[] = {
        {"{\"id\":1,\"cmd\":\"instruments\"\n", "bad-request", "request is not JSON"},
        {"[\"instruments\"]\n", "bad-request", "must be a JSON object"},
        {"{\"cmd\":\"instruments\"}\n", "bad-request", "field 'id'"},
        {"{\"id\":1.5,\"cmd\":\"instruments\"}\n", "bad-request", "field 'id'"},
        {"{\"id\":2}\n", "bad-request", "field 'cmd'"},
        {"{\"id\":3,\"cmd\":[\"instruments\"]}\n", "bad-request", "field 'cmd'"},
        {"{\"id\":4,\"cmd\":\"instruments\",\"args\":[]}\n", "bad-request", "field 'args'"},
        {"{\"id\":5,\"cmd\":\"instruments\",\"arg\":{}}\n", "bad-request", "unknown field 'arg'"},
        {"{\"id\":6,\"cmd\":\"test.begin\",\"args\":{}}\n", "unknown-command", "'test.begin'"},
        {"{\"id\":7,\"cmd\":\"subject.add\",\"args\":{}}\n", "invalid-argument", "'subject'"},
        {"{\"id\":8,\"cmd\":\"test.show\",\"args\":{}}\n", "invalid-argument", "'test'"},
        {"{\"id\":9,\"cmd\":\"stop.show\",\"args\":{}}\n", "invalid-argument", "'stop'"},
        {"{\"id\":10,\"cmd\":\"test.watch\",\"args\":{}}\n", "invalid-argument", "'test'"},
        {"{\"id\":11,\"cmd\":\"test.abort\",\"args\":{}}\n", "invalid-argument", "'test'"},
        {"{\"id\":12,\"cmd\":\"specimen.add\",\"args\":{\"subject\":\"" SUBJECT_A "\"}}\n",
         "invalid-argument", "barcode"},
        {"{\"id\":13,\"cmd\":\"test.start\",\"args\":{\"subject\":\"" SUBJECT_A "\"}}\n",
         "invalid-argument", "'instruments'"},
        {"{\"id\":14,\"cmd\":\"test.start\",\"args\":{\"subject\":\"" SUBJECT_A
         "\",\"instruments\":\"saliva-1\"}}\n",
         "invalid-argument", "'instruments' must be a list of strings"},
        {"{\"id\":15,\"cmd\":\"test.start\",\"args\":{\"subject\":\"" SUBJECT_A
         "\",\"instruments\":[7]}}\n",
         "invalid-argument", "'instruments'"},
        {"{\"id\":16,\"cmd\":\"stop.note\",\"args\":{\"stop\":\"TEST1-X\"}}\n", "invalid-argument",
         "missing kind"},
        {"{\"id\":17,\"cmd\":\"test.show\",\"args\":{\"test\":\"x\",\"verbose\":true}}\n",
         "invalid-argument", "unknown argument 'verbose' for test.show"},
        {"{\"id\":18,\"cmd\":\"specimen.add\",\"args\":{\"subject\":\"" SUBJECT_A
         "\",\"barcode\":\"B1\",\"matrix\":\"sweat\"}}\n",
         "invalid-argument", "invalid or missing matrix"},
    };
    struct rig rig;
    struct proto_reader reader;

    rig_start(&rig, fast_phases, NULL);
    client_ok(&rig, "subject", "add", SUBJECT_A, NULL);
    int fd = client_connect(&rig, &reader);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char code[64];
        char *line = exchange(fd, &reader, cases[i].request);
        snprintf(code, sizeof(code), "\"code\":\"%s\"", cases[i].code);
        ck_assert_msg(strstr(line, code) != NULL, "case %zu: expected %s in %s", i, code, line);
        ck_assert_msg(strstr(line, cases[i].message) != NULL, "case %zu: expected '%s' in %s", i,
                      cases[i].message, line);
        free(line);
    }
    close(fd);
    proto_reader_free(&reader);
    rig_stop(&rig);
}
END_TEST

START_TEST(half_line_stall_served)
{
    struct rig rig;
    struct proto_reader stalled_reader;
    struct proto_reader long_reader;

    rig_start(&rig, fast_phases, NULL);
    int stalled = client_connect(&rig, &stalled_reader);
    send_text(stalled, "{\"id\":41,\"cmd\":\"instr");

    /* Another client is served while the first one's line is incomplete. */
    client_ok(&rig, "instruments", NULL);

    /* A line that grows past the limit without a newline is rejected. */
    int endless = client_connect(&rig, &long_reader);
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    for (size_t sent = 0; sent <= PROTO_MAX_LINE;) {
        ssize_t done = send(endless, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (done <= 0) {
            break;
        }
        sent += (size_t)done;
    }
    char *line = next_line(endless, &long_reader);
    ck_assert_ptr_nonnull(line);
    assert_contains(line, "\"code\":\"too-large\"");
    free(line);
    ck_assert(wait_closed(endless));
    close(endless);
    proto_reader_free(&long_reader);

    /* The stalled client finishes its line and gets its response. */
    line = exchange(stalled, &stalled_reader, "uments\"}\n");
    assert_contains(line, "\"id\":41");
    assert_contains(line, "\"ok\":true");
    free(line);
    close(stalled);
    proto_reader_free(&stalled_reader);
    rig_stop(&rig);
}
END_TEST

START_TEST(unread_output_dropped)
{
    static const char request[] = "{\"id\":1,\"cmd\":\"instruments\"}\n";
    struct rig rig;
    struct proto_reader reader;
    char text[96];
    int sent = 0;

    rig_start(&rig, fast_phases, NULL);
    int fd = client_connect(&rig, &reader);
    /* Requests go out until the daemon drops the client that reads nothing. */
    while (sent < UNREAD_REQUESTS_MAX &&
           send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) == sizeof(request) - 1) {
        sent++;
    }
    ck_assert_msg(sent < UNREAD_REQUESTS_MAX, "toxlabd kept a client that reads nothing");
    snprintf(text, sizeof(text), "dropped, more than %d bytes of output unread",
             DAEMON_OUTPUT_LIMIT);
    ck_assert(harness_wait_file(rig.daemon.log_path, text, EVENT_MS));
    ck_assert(wait_closed(fd));
    close(fd);
    proto_reader_free(&reader);
    client_ok(&rig, "instruments", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(many_clients_served)
{
    struct rig rig;
    struct rlimit limit;
    int fds[MANY_CLIENTS];
    struct proto_reader readers[MANY_CLIENTS];

    /* The daemon starts with a soft limit of 64 open files, too few for
     * 256 clients, so it must raise the limit itself. */
    ck_assert(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    ck_assert(limit.rlim_max >= 512);
    struct rlimit low = {.rlim_cur = 64, .rlim_max = limit.rlim_max};
    ck_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);
    rig_start(&rig, fast_phases, "\n[daemon]\nmax_clients = 256\n");
    ck_assert(setrlimit(RLIMIT_NOFILE, &limit) == 0);

    for (int i = 0; i < MANY_CLIENTS; i++) {
        fds[i] = client_connect(&rig, &readers[i]);
        /* Half of them leave a line unfinished. */
        if (i % 2 == 1) {
            send_text(fds[i], "{\"id\":");
        }
    }
    client_ok(&rig, "instruments", NULL);
    for (int i = 0; i < MANY_CLIENTS; i++) {
        char request[96];
        snprintf(request, sizeof(request), "%s{\"id\":%d,\"cmd\":\"instruments\"}\n",
                 i % 2 == 1 ? "1}\n" : "", 1000 + i);
        send_text(fds[i], request);
    }
    for (int i = 0; i < MANY_CLIENTS; i++) {
        char id[32];
        char *line = next_line(fds[i], &readers[i]);
        if (i % 2 == 1) {
            ck_assert_ptr_nonnull(line);
            assert_contains(line, "\"code\":\"bad-request\"");
            free(line);
            line = next_line(fds[i], &readers[i]);
        }
        ck_assert_msg(line != NULL, "client %d got no answer", i);
        snprintf(id, sizeof(id), "\"id\":%d,", 1000 + i);
        assert_contains(line, id);
        assert_contains(line, "\"ok\":true");
        free(line);
    }
    for (int i = 0; i < MANY_CLIENTS; i++) {
        close(fds[i]);
        proto_reader_free(&readers[i]);
    }
    client_ok(&rig, "instruments", NULL);
    rig_stop(&rig);
}
END_TEST

START_TEST(over_limit_rejected)
{
    struct rig rig;
    struct proto_reader readers[3];
    struct proto_reader rejected_reader;
    int fds[3];

    rig_start(&rig, fast_phases, "\n[daemon]\nmax_clients = 3\n");
    for (int i = 0; i < 3; i++) {
        fds[i] = client_connect(&rig, &readers[i]);
    }
    int rejected = socket_connect(&rig);
    proto_reader_init(&rejected_reader);
    char *line = next_line(rejected, &rejected_reader);
    ck_assert_ptr_nonnull(line);
    assert_contains(line, "\"code\":\"unavailable\"");
    assert_contains(line, "daemon.max_clients");
    free(line);
    ck_assert(wait_closed(rejected));
    close(rejected);
    proto_reader_free(&rejected_reader);
    ck_assert(
        harness_wait_file(rig.daemon.log_path, "client rejected: already 3 clients", EVENT_MS));

    /* The clients within the limit are still served, and a freed place
     * goes to the next client. */
    line = exchange(fds[0], &readers[0], "{\"id\":5,\"cmd\":\"instruments\"}\n");
    assert_contains(line, "\"ok\":true");
    free(line);
    close(fds[2]);
    proto_reader_free(&readers[2]);
    client_ok(&rig, "instruments", NULL);
    for (int i = 0; i < 2; i++) {
        close(fds[i]);
        proto_reader_free(&readers[i]);
    }
    rig_stop(&rig);
}
END_TEST

static Suite *clients_suite(void)
{
    Suite *suite = suite_create("clients");
    TCase *input = tcase_create("input");
    TCase *load = tcase_create("load");

    tcase_add_test(input, wrong_fields_named);
    tcase_add_test(input, half_line_stall_served);
    tcase_add_test(load, unread_output_dropped);
    tcase_add_test(load, many_clients_served);
    tcase_add_test(load, over_limit_rejected);
    tcase_set_timeout(input, HARNESS_CASE_TIMEOUT);
    tcase_set_timeout(load, HARNESS_CASE_TIMEOUT);
    suite_add_tcase(suite, input);
    suite_add_tcase(suite, load);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(clients_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
