/* toxlab: the command-line client of toxlabd.
 *
 * Connects to toxlabd's UNIX socket, checks the hello, sends one request of
 * the JSON Lines protocol in docs/protocol.md and prints the response for a
 * person, or unchanged with --json. "test start" and "test watch" then follow
 * the test events until the stop or the test ends. toxlab_report.c prints the
 * reports. docs/cli.md is the reference for commands, output and exit
 * statuses. */
#define _GNU_SOURCE

#include "controller/toxlab_cli.h"
#include "controller/toxlab_audit.h"
#include "controller/toxlab_decode.h"
#include "controller/toxlab_lab.h"
#include "controller/toxlab_licence.h"
#include "controller/toxlab_report.h"
#include "protocol/client_proto.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET_PATH "/run/toxlab/toxlab.sock"

/* The exit statuses for --help. docs/cli.md has the same table. */
#define EXIT_STATUS_HELP                                                                           \
    "Exit status:\n"                                                                               \
    "  0      success; for test start and test watch, every test completed\n"                      \
    "  1      toxlabd rejected the command, or toxlab could not talk to toxlabd\n"                 \
    "  2      invalid command line\n"                                                              \
    "  3      test start or test watch: a test ended failed, aborted or interrupted\n"             \
    "         (with --no-wait: a test was already in one of those states in the response)\n"       \
    "  128+N  signal N (SIGINT 130, SIGTERM 143) ended a wait; the tests go on in\n"               \
    "         toxlabd\n"

/* Receive deadlines in milliseconds. toxlabd sends the hello as soon as it
 * accepts a connection and sends most responses after one database commit.
 * test.start, test.abort and test.refuse wait for analyzer replies, each bounded by that
 * instrument's Modbus timeouts and retries. The values are generous estimates,
 * not measurements. While following events there is no deadline, because
 * toxlabd ends every test by itself (at the latest when its grace period runs
 * out). */
#define HELLO_TIMEOUT_MS 10000
#define ANALYZER_RESPONSE_TIMEOUT_MS 120000
/* Maximum wait for stop-ended once every test of the stop has ended. */
#define STOP_ENDED_TIMEOUT_MS 30000
#define NO_DEADLINE (-1)

/* Signal that interrupted a wait. Once setup_signals has run, SIGINT and
 * SIGTERM are delivered only inside ppoll, so the handler interrupts nothing else. */
static volatile sig_atomic_t received_signal;

struct connection {
    int fd;
    struct proto_reader reader;
    json_int_t next_id;
    sigset_t wait_mask; /* signal mask inside ppoll, with SIGINT and SIGTERM unblocked */
    char error[512];    /* why the last read failed */
};

/* One line from toxlabd: the text as received and its parsed object. */
struct message {
    char *line;
    json_t *object;
};

enum read_result { READ_OK, READ_EOF, READ_TIMEOUT, READ_SIGNAL, READ_FAILED };

/* A test whose events the client follows, with the progress last shown. */
struct tracked_test {
    char *id;
    char *instrument;
    char *step;       /* latest analyzer step (or test state) */
    char *shown_step; /* step on the last printed line, when stdout is not a terminal */
    int percent;      /* -1 when the event had none */
    int seconds_left; /* -1 when the event had none */
    int ended;
    int started; /* started by this "test start", so its state sets the exit status */
};

/* State of "test start" (following a stop) or "test watch" (following one test). */
struct follow {
    int quiet;           /* --json: track events but print nothing for people */
    int tty;             /* stdout is a terminal, so progress rewrites one status line */
    int columns;         /* terminal width */
    int status_shown;    /* a status line is on screen */
    const char *stop_id; /* the followed stop, NULL until known */
    const char *test_id; /* the followed test for "test watch", else NULL */
    struct tracked_test *tests;
    size_t count;
    json_t *ended_stop; /* stop object of the stop-ended event */
    json_t *ended_test; /* test-ended event of the followed test */
};

struct client {
    const struct options *options;
    struct connection connection;
    struct follow *follow; /* non-NULL while events are followed */
    int daemon_minor;      /* minor protocol version from toxlabd's hello */
};

__attribute__((format(printf, 1, 2))) void print_error(const char *format, ...)
{
    va_list ap;

    fputs("toxlab: ", stderr);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t deadline_after(int timeout_ms)
{
    if (timeout_ms < 0) {
        return NO_DEADLINE;
    }
    return monotonic_ms() + timeout_ms;
}

/* A test has ended unless it is pending or running. Unknown states from a
 * newer minor version count as ended, so that toxlab does not wait for a
 * test-ended event that may never come. */
static int state_has_ended(const char *state)
{
    return state != NULL && strcmp(state, "pending") != 0 && strcmp(state, "running") != 0;
}

/* ---- Connection ---------------------------------------------------------- */

static void on_signal(int signal_number)
{
    received_signal = signal_number;
}

/* Installs the SIGINT and SIGTERM handlers and blocks both signals outside
 * ppoll, so that a signal can only end a wait and never a half-done write. */
static void setup_signals(struct connection *connection)
{
    struct sigaction action;
    sigset_t block;

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &connection->wait_mask);
    sigdelset(&connection->wait_mask, SIGINT);
    sigdelset(&connection->wait_mask, SIGTERM);
}

static void print_connect_hint(int error)
{
    if (error == EACCES || error == EPERM) {
        fputs("toxlabd's socket accepts the members of the group named by its socket_group\n"
              "setting; ask an administrator to add you to that group.\n",
              stderr);
        return;
    }
    fputs("Start toxlabd, or give its socket with --socket PATH or TOXLAB_SOCKET.\n", stderr);
}

static int connect_daemon(struct connection *connection, const char *path)
{
    struct sockaddr_un address;
    int error;

    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address.sun_path)) {
        print_error("socket path %s is longer than the maximum of %zu bytes", path,
                    sizeof(address.sun_path) - 1);
        return -1;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);

    connection->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connection->fd < 0) {
        print_error("cannot create a UNIX socket: %s", strerror(errno));
        return -1;
    }
    if (connect(connection->fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        error = errno;
        print_error("cannot connect to toxlabd at %s: %s", path, strerror(error));
        print_connect_hint(error);
        return -1;
    }
    return 0;
}

/* Takes one buffered line as a message. Returns 1 with *message set, 0 when no
 * whole line is buffered, or -1 with connection->error set. */
static int take_line(struct connection *connection, struct message *message)
{
    json_error_t parse_error;
    char *line = NULL;
    json_t *object;
    int taken = proto_reader_next(&connection->reader, &line);

    if (taken == 0) {
        return 0;
    }
    if (taken < 0) {
        snprintf(connection->error, sizeof(connection->error),
                 connection->reader.overflow ? "toxlabd sent a line longer than %d bytes"
                                             : "out of memory reading a line of up to %d bytes",
                 PROTO_MAX_LINE);
        return -1;
    }

    object = json_loads(line, 0, &parse_error);
    if (!json_is_object(object)) {
        snprintf(connection->error, sizeof(connection->error),
                 "toxlabd sent a line that is not a JSON object: %s",
                 object == NULL ? parse_error.text : "expected an object");
        json_decref(object);
        free(line);
        return -1;
    }
    message->line = line;
    message->object = object;
    return 1;
}

static void message_free(struct message *message)
{
    free(message->line);
    json_decref(message->object);
    message->line = NULL;
    message->object = NULL;
}

/* Waits until the socket is readable or the deadline passes, then appends what
 * arrived to the reader. READ_OK means "look for a line again". */
static enum read_result receive_bytes(struct connection *connection, int64_t deadline)
{
    struct pollfd poll_fd = {.fd = connection->fd, .events = POLLIN};
    struct timespec timeout;
    struct timespec *timeout_pointer = NULL;
    char buffer[16384];
    ssize_t received;
    int ready;

    if (deadline != NO_DEADLINE) {
        int64_t left = deadline - monotonic_ms();

        if (left <= 0) {
            return READ_TIMEOUT;
        }
        timeout.tv_sec = left / 1000;
        timeout.tv_nsec = (long)(left % 1000) * 1000000;
        timeout_pointer = &timeout;
    }

    ready = ppoll(&poll_fd, 1, timeout_pointer, &connection->wait_mask);
    if (ready < 0 && errno == EINTR) {
        return received_signal ? READ_SIGNAL : READ_OK;
    }
    if (ready < 0) {
        snprintf(connection->error, sizeof(connection->error),
                 "poll on toxlabd's socket failed: %s", strerror(errno));
        return READ_FAILED;
    }
    if (ready == 0) {
        return READ_TIMEOUT;
    }

    received = recv(connection->fd, buffer, sizeof(buffer), 0);
    if (received < 0 && (errno == EINTR || errno == EAGAIN)) {
        return READ_OK;
    }
    if (received < 0) {
        snprintf(connection->error, sizeof(connection->error), "cannot read from toxlabd: %s",
                 strerror(errno));
        return READ_FAILED;
    }
    if (received == 0) {
        return READ_EOF;
    }
    if (proto_reader_feed(&connection->reader, buffer, (size_t)received) != 0) {
        snprintf(connection->error, sizeof(connection->error),
                 "out of memory reading from toxlabd");
        return READ_FAILED;
    }
    return READ_OK;
}

/* Reads the next whole line as a JSON object. Bytes of an unfinished line
 * at end of file are dropped, and the result is READ_EOF. */
static enum read_result read_message(struct connection *connection, int64_t deadline,
                                     struct message *message)
{
    for (;;) {
        int taken = take_line(connection, message);
        enum read_result result;

        if (taken != 0) {
            return taken > 0 ? READ_OK : READ_FAILED;
        }
        result = receive_bytes(connection, deadline);
        if (result != READ_OK) {
            return result;
        }
    }
}

static int send_line(struct connection *connection, const char *cmd, const char *line)
{
    size_t length = strlen(line);
    size_t sent = 0;

    while (sent < length) {
        ssize_t written = send(connection->fd, line + sent, length - sent, MSG_NOSIGNAL);

        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written < 0) {
            print_error("cannot send the %s request to toxlabd: %s", cmd, strerror(errno));
            return -1;
        }
        sent += (size_t)written;
    }
    return 0;
}

/* Sends {"id", "cmd", "args"} and stores the id it used in *id. */
static int send_request(struct connection *connection, const char *cmd, json_t *args,
                        json_int_t *id)
{
    json_t *request;
    char *line;
    int sent;

    *id = connection->next_id++;
    request = json_pack("{sI ss sO}", "id", *id, "cmd", cmd, "args", args);
    if (request == NULL) {
        print_error("out of memory building the %s request", cmd);
        return -1;
    }
    line = proto_encode_line(request);
    json_decref(request);
    if (line == NULL) {
        print_error("the %s request is longer than the protocol's limit of %d bytes", cmd,
                    PROTO_MAX_LINE);
        return -1;
    }
    sent = send_line(connection, cmd, line);
    free(line);
    return sent;
}

/* ---- Progress display ---------------------------------------------------- */

static void print_raw_line(const char *line)
{
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void replace_string(char **slot, const char *value)
{
    free(*slot);
    *slot = value != NULL ? strdup(value) : NULL;
}

static struct tracked_test *find_test(const struct follow *follow, const char *id)
{
    for (size_t i = 0; i < follow->count; i++) {
        if (is_same(follow->tests[i].id, id)) {
            return &follow->tests[i];
        }
    }
    return NULL;
}

/* Returns the tracked test with this id, adding it when it is new, or NULL
 * when id is NULL or memory ran out. */
static struct tracked_test *track_test(struct follow *follow, const char *id,
                                       const char *instrument)
{
    struct tracked_test *test = find_test(follow, id);
    struct tracked_test *grown;

    if (test == NULL && id != NULL) {
        grown = realloc(follow->tests, (follow->count + 1) * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        follow->tests = grown;
        test = &follow->tests[follow->count++];
        memset(test, 0, sizeof(*test));
        test->id = strdup(id);
        test->percent = -1;
        test->seconds_left = -1;
    }
    if (test != NULL && test->instrument == NULL && instrument != NULL) {
        test->instrument = strdup(instrument);
    }
    return test;
}

static int instrument_column_width(const struct follow *follow)
{
    int width = 0;

    for (size_t i = 0; i < follow->count; i++) {
        const char *name = or_dash(follow->tests[i].instrument);
        int length = (int)strlen(name);

        width = length > width ? length : width;
    }
    return width;
}

static void format_progress(const struct tracked_test *test, int width, struct text *line)
{
    text_add(line, "%-*s  %s", width, or_dash(test->instrument), or_dash(test->step));
    if (test->percent >= 0) {
        text_add(line, "  %d%%", test->percent);
    }
    if (test->seconds_left >= 0) {
        text_add(line, "  %d s left", test->seconds_left);
    }
}

/* Formats "breath-1 analysing 80% 3s", for a status line that is too narrow
 * for format_progress. */
static void format_short_progress(const struct tracked_test *test, struct text *line)
{
    text_add(line, "%s %s", or_dash(test->instrument), or_dash(test->step));
    if (test->percent >= 0) {
        text_add(line, " %d%%", test->percent);
    }
    if (test->seconds_left >= 0) {
        text_add(line, " %ds", test->seconds_left);
    }
}

/* Formats the progress of every running test on one line, in the short form
 * when short_form is set. */
static void format_status_line(const struct follow *follow, int short_form, struct text *line)
{
    for (size_t i = 0; i < follow->count; i++) {
        const struct tracked_test *test = &follow->tests[i];

        if (test->ended || test->step == NULL) {
            continue;
        }
        text_separate(line, short_form ? " | " : "  |  ");
        if (short_form) {
            format_short_progress(test, line);
        } else {
            format_progress(test, 0, line);
        }
    }
}

/* Draws one line on the terminal with the progress of every running test. It
 * switches to the short form when the line is wider than the terminal, and
 * cuts the line when even that is too wide. */
static void draw_status_line(struct follow *follow)
{
    struct text line = {.len = 0};
    size_t limit = follow->columns > 1 ? (size_t)follow->columns - 1 : 79;

    format_status_line(follow, 0, &line);
    if (line.len > limit) {
        line.len = 0;
        format_status_line(follow, 1, &line);
    }
    if (line.len > limit) {
        line.len = limit;
        line.data[limit] = '\0';
    }
    if (line.len == 0 && !follow->status_shown) {
        return;
    }
    printf("\r\033[K%s", line.data);
    fflush(stdout);
    follow->status_shown = line.len > 0;
}

/* Removes the status line so that a whole line can be printed. */
static void clear_status_line(struct follow *follow)
{
    if (follow != NULL && follow->status_shown) {
        printf("\r\033[K");
        fflush(stdout);
        follow->status_shown = 0;
    }
}

/* Prints a progress line when the test's step differs from the one on its
 * last printed line, so a log gets one line per step of each test. */
static void print_progress_line(struct follow *follow, struct tracked_test *test)
{
    struct text line = {.len = 0};

    if (is_same(test->step, test->shown_step)) {
        return;
    }
    format_progress(test, instrument_column_width(follow), &line);
    printf("%s\n", line.data);
    fflush(stdout);
    replace_string(&test->shown_step, test->step);
}

static void on_progress(struct follow *follow, const json_t *event)
{
    const char *step = get_string(event, "step");
    struct tracked_test *test =
        track_test(follow, get_string(event, "test"), get_string(event, "instrument"));

    if (test == NULL) {
        return;
    }
    /* toxlabd resumes an interrupted test when the analyzer still has it, and
     * its progress events start again. */
    if (!state_has_ended(get_string(event, "state"))) {
        test->ended = 0;
    }
    replace_string(&test->step, step != NULL ? step : get_string(event, "state"));
    test->percent = get_int(event, "percent");
    test->seconds_left = get_int(event, "seconds_left");
    if (follow->quiet) {
        return;
    }
    if (follow->tty) {
        draw_status_line(follow);
    } else {
        print_progress_line(follow, test);
    }
}

static void on_instrument_error(struct follow *follow, const json_t *event)
{
    const char *instrument = get_string(event, "instrument");
    struct tracked_test *test = find_test(follow, get_string(event, "test"));

    if (follow->quiet) {
        return;
    }
    if (instrument == NULL && test != NULL) {
        instrument = test->instrument;
    }
    clear_status_line(follow);
    fprintf(stderr, "%s: %s\n", or_dash(instrument), or_dash(get_string(event, "message")));
    if (follow->tty) {
        draw_status_line(follow);
    }
}

static void on_test_ended(struct follow *follow, const json_t *event)
{
    const char *id = get_string(event, "test");
    const char *reason = get_string(event, "reason");
    struct tracked_test *test = track_test(follow, id, get_string(event, "instrument"));

    if (test != NULL) {
        test->ended = 1;
    }
    if (follow->test_id != NULL && is_same(follow->test_id, id)) {
        json_decref(follow->ended_test);
        follow->ended_test = json_incref((json_t *)event);
    }
    if (follow->quiet) {
        return;
    }
    clear_status_line(follow);
    printf("%-*s  %s", instrument_column_width(follow),
           or_dash(test != NULL ? test->instrument : NULL), or_dash(get_string(event, "state")));
    printf(reason != NULL ? " (%s)\n" : "%s\n", reason != NULL ? reason : "");
    fflush(stdout);
    if (follow->tty) {
        draw_status_line(follow);
    }
}

static void on_stop_ended(struct follow *follow, const json_t *event)
{
    json_t *stop = json_object_get(event, "stop");

    if (follow->test_id != NULL || !json_is_object(stop)) {
        return;
    }
    if (follow->stop_id != NULL && !is_same(follow->stop_id, get_string(stop, "id"))) {
        return;
    }
    json_decref(follow->ended_stop);
    follow->ended_stop = json_incref(stop);
    for (size_t i = 0; i < follow->count; i++) {
        follow->tests[i].ended = 1;
    }
}

/* Handles a line without an id. In --json mode every event is printed as
 * received; lines of other classes are ignored. */
static void handle_event(struct client *client, const struct message *message)
{
    const char *event = get_string(message->object, "event");
    struct follow *follow = client->follow;

    if (!is_same(get_string(message->object, "class"), "event")) {
        return;
    }
    if (client->options->json) {
        print_raw_line(message->line);
    }
    if (follow == NULL || event == NULL) {
        return;
    }
    if (strcmp(event, "progress") == 0) {
        on_progress(follow, message->object);
    } else if (strcmp(event, "instrument-error") == 0) {
        on_instrument_error(follow, message->object);
    } else if (strcmp(event, "test-ended") == 0) {
        on_test_ended(follow, message->object);
    } else if (strcmp(event, "stop-ended") == 0) {
        on_stop_ended(follow, message->object);
    }
}

/* ---- Requests and responses ---------------------------------------------- */

/* Prints why a read ended without a message and returns the exit status. */
static int report_read_failure(struct client *client, enum read_result result, const char *awaited,
                               int timeout_ms)
{
    clear_status_line(client->follow);
    switch (result) {
    case READ_EOF:
        print_error("toxlabd closed the connection while toxlab waited for %s", awaited);
        return STATUS_ERROR;
    case READ_TIMEOUT:
        print_error("timed out after %d s waiting for %s from toxlabd", timeout_ms / 1000, awaited);
        return STATUS_ERROR;
    case READ_SIGNAL:
        print_error("interrupted while waiting for %s", awaited);
        return STATUS_SIGNAL_BASE + received_signal;
    case READ_FAILED:
    case READ_OK:
        break;
    }
    print_error("%s", client->connection.error);
    return STATUS_ERROR;
}

static int report_daemon_error(const json_t *response)
{
    json_t *error = json_object_get(response, "error");
    const char *message = get_string(error, "message");
    const char *code = get_string(error, "code");

    print_error("%s (%s)", message != NULL ? message : "toxlabd rejected the request",
                or_dash(code));
    return STATUS_ERROR;
}

/* Checks the response to request id. When it is not ok, prints the error and
 * returns the exit status. */
static int accept_response(struct client *client, const char *cmd, json_int_t id,
                           const struct message *message, json_t **response)
{
    json_t *response_id = json_object_get(message->object, "id");
    json_t *ok = json_object_get(message->object, "ok");

    if (client->options->json) {
        print_raw_line(message->line);
    }
    clear_status_line(client->follow);
    if (!json_is_integer(response_id) || json_integer_value(response_id) != id) {
        print_error("toxlabd sent a response to another request while request %" JSON_INTEGER_FORMAT
                    " (%s) was open",
                    id, cmd);
        return STATUS_ERROR;
    }
    if (!json_is_boolean(ok)) {
        print_error("toxlabd sent a response to %s without a boolean \"ok\"", cmd);
        return STATUS_ERROR;
    }
    if (json_is_false(ok)) {
        return report_daemon_error(message->object);
    }
    *response = json_incref(message->object);
    return STATUS_OK;
}

/* Sends one request and reads lines until its response arrives, passing any
 * events in between to handle_event. On success *response is the response. */
static int exchange(struct client *client, const char *cmd, json_t *args, int timeout_ms,
                    json_t **response)
{
    struct connection *connection = &client->connection;
    int64_t deadline = deadline_after(timeout_ms);
    char awaited[128];
    json_int_t id;

    if (send_request(connection, cmd, args, &id) != 0) {
        return STATUS_ERROR;
    }
    snprintf(awaited, sizeof(awaited), "the response to %s", cmd);
    for (;;) {
        struct message message;
        enum read_result result = read_message(connection, deadline, &message);
        int status;

        if (result != READ_OK) {
            return report_read_failure(client, result, awaited, timeout_ms);
        }
        if (json_object_get(message.object, "id") == NULL) {
            handle_event(client, &message);
            message_free(&message);
            continue;
        }
        status = accept_response(client, cmd, id, &message, response);
        message_free(&message);
        return status;
    }
}

/* Accepts a hello of any minor version of this major version, and stores the
 * minor version, which determines the commands that toxlabd has. */
static int check_hello(struct client *client, const json_t *hello)
{
    json_t *protocol = json_object_get(hello, "protocol");
    int major = get_int(protocol, "major");
    int minor = get_int(protocol, "minor");

    if (is_same(get_string(hello, "class"), "error")) {
        return report_daemon_error(hello);
    }
    if (!is_same(get_string(hello, "class"), "hello") || major < 0) {
        print_error("the first line from %s is not a hello with a protocol version; is it "
                    "toxlabd's socket?",
                    client->options->socket_path);
        return STATUS_ERROR;
    }
    if (major != PROTO_MAJOR) {
        print_error("toxlabd %s speaks protocol %d.%d, but this toxlab %s speaks %d.%d; use a "
                    "toxlab of protocol version %d",
                    or_dash(get_string(hello, "version")), major, minor, TOXLAB_VERSION,
                    PROTO_MAJOR, PROTO_MINOR, major);
        return STATUS_ERROR;
    }
    client->daemon_minor = minor > 0 ? minor : 0;
    return STATUS_OK;
}

static int read_hello(struct client *client)
{
    struct message message;
    enum read_result result =
        read_message(&client->connection, deadline_after(HELLO_TIMEOUT_MS), &message);
    int status;

    if (result != READ_OK) {
        return report_read_failure(client, result, "the hello", HELLO_TIMEOUT_MS);
    }
    status = check_hello(client, message.object);
    message_free(&message);
    return status;
}

/* ---- Commands ------------------------------------------------------------ */

int run_request(struct client *client, const struct command *command, struct request *request)
{
    json_t *response = NULL;
    int status = exchange(client, command->cmd, request->args, command->timeout_ms, &response);

    if (status == STATUS_OK && !client->options->json) {
        command->print(response);
    }
    json_decref(response);
    return status;
}

static void follow_init(struct follow *follow, const struct options *options)
{
    struct winsize size;

    memset(follow, 0, sizeof(*follow));
    follow->quiet = options->json;
    follow->tty = isatty(STDOUT_FILENO);
    follow->columns = 80;
    if (follow->tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
        follow->columns = size.ws_col;
    }
}

static void follow_free(struct follow *follow)
{
    for (size_t i = 0; i < follow->count; i++) {
        free(follow->tests[i].id);
        free(follow->tests[i].instrument);
        free(follow->tests[i].step);
        free(follow->tests[i].shown_step);
    }
    free(follow->tests);
    json_decref(follow->ended_stop);
    json_decref(follow->ended_test);
}

static int follow_is_done(const struct follow *follow)
{
    return follow->test_id != NULL ? follow->ended_test != NULL : follow->ended_stop != NULL;
}

static int every_test_ended(const struct follow *follow)
{
    for (size_t i = 0; i < follow->count; i++) {
        if (!follow->tests[i].ended) {
            return 0;
        }
    }
    return follow->count > 0;
}

/* Adds the tests of a response to the followed set. */
static void track_tests(struct follow *follow, const json_t *tests)
{
    json_t *test;
    size_t i;

    json_array_foreach(tests, i, test)
    {
        struct tracked_test *tracked =
            track_test(follow, get_string(test, "id"), get_string(test, "instrument"));

        if (tracked != NULL && state_has_ended(get_string(test, "state"))) {
            tracked->ended = 1;
        }
    }
}

/* Prints why following ended early and returns the exit status. */
static int report_follow_end(struct client *client, enum read_result result, const char *id,
                             int timeout_ms)
{
    const char *what = client->follow->test_id != NULL ? "test" : "stop";
    char awaited[160];

    clear_status_line(client->follow);
    switch (result) {
    case READ_SIGNAL:
        print_error("stopped watching; the tests go on in toxlabd (toxlab %s show %s)", what,
                    or_dash(id));
        return STATUS_SIGNAL_BASE + received_signal;
    case READ_TIMEOUT:
        print_error("every test of stop %s ended, but toxlabd sent no stop-ended event within %d s",
                    or_dash(id), timeout_ms / 1000);
        return STATUS_ERROR;
    case READ_EOF:
        print_error("toxlabd closed the connection before %s %s ended; the tests may go on "
                    "(toxlab %s show %s)",
                    what, or_dash(id), what, or_dash(id));
        return STATUS_ERROR;
    case READ_FAILED:
    case READ_OK:
        break;
    }
    snprintf(awaited, sizeof(awaited), "the end of %s %s", what, or_dash(id));
    return report_read_failure(client, result, awaited, timeout_ms);
}

/* Reads events until the followed stop or test ends. A deadline applies only
 * once every test of a stop has ended and stop-ended is still missing. */
static int follow_events(struct client *client)
{
    struct follow *follow = client->follow;
    int following_stop = follow->test_id == NULL;
    const char *id = following_stop ? follow->stop_id : follow->test_id;

    while (!follow_is_done(follow)) {
        int timeout_ms =
            following_stop && every_test_ended(follow) ? STOP_ENDED_TIMEOUT_MS : NO_DEADLINE;
        struct message message;
        enum read_result result =
            read_message(&client->connection, deadline_after(timeout_ms), &message);

        if (result != READ_OK) {
            return report_follow_end(client, result, id, timeout_ms);
        }
        if (json_object_get(message.object, "id") != NULL) {
            clear_status_line(follow);
            print_error("toxlabd sent a response although no request was open");
            message_free(&message);
            return STATUS_ERROR;
        }
        handle_event(client, &message);
        message_free(&message);
    }
    clear_status_line(follow);
    return STATUS_OK;
}

static int is_listed(const json_t *strings, const char *value)
{
    json_t *item;
    size_t i;

    json_array_foreach(strings, i, item)
    {
        if (is_same(json_string_value(item), value)) {
            return 1;
        }
    }
    return 0;
}

/* Marks the tests that the test.start request created: those on a requested
 * instrument that are pending or running in the response. The stop may be
 * older, because a test on a specimen joins the specimen's stop, and its
 * earlier tests do not set the exit status. When no test matches, every test
 * of the stop counts as started. */
static void mark_started_tests(struct follow *follow, const json_t *tests,
                               const json_t *instruments)
{
    json_t *test;
    size_t i;
    int marked = 0;

    json_array_foreach(tests, i, test)
    {
        struct tracked_test *tracked = find_test(follow, get_string(test, "id"));

        if (tracked != NULL && !state_has_ended(get_string(test, "state")) &&
            is_listed(instruments, get_string(test, "instrument"))) {
            tracked->started = 1;
            marked++;
        }
    }
    for (size_t j = 0; marked == 0 && j < follow->count; j++) {
        follow->tests[j].started = 1;
    }
}

/* Prints "stop STOP: test TEST on INSTRUMENT" for each started test. The line
 * does not claim that the stop is new, because the response does not show it. */
static void print_started_tests(const struct follow *follow)
{
    for (size_t i = 0; i < follow->count; i++) {
        if (follow->tests[i].started) {
            printf("stop %s: test %s on %s\n", or_dash(follow->stop_id), follow->tests[i].id,
                   or_dash(follow->tests[i].instrument));
        }
    }
    fflush(stdout);
}

/* Returns STATUS_NOT_COMPLETED when a started test is in a state other than
 * completed in tests. With require_ended, a pending or running test counts too. */
static int started_tests_status(const struct follow *follow, const json_t *tests, int require_ended)
{
    json_t *test;
    size_t i;

    json_array_foreach(tests, i, test)
    {
        const char *state = get_string(test, "state");
        const struct tracked_test *tracked = find_test(follow, get_string(test, "id"));

        if (tracked == NULL || !tracked->started || is_same(state, "completed")) {
            continue;
        }
        if (require_ended || state_has_ended(state)) {
            return STATUS_NOT_COMPLETED;
        }
    }
    return STATUS_OK;
}

/* Takes the stop of a test.start response: tracks its tests, marks those the
 * request started and prints them. */
static void begin_following_stop(struct follow *follow, const json_t *stop,
                                 const json_t *instruments)
{
    follow->stop_id = get_string(stop, "id");
    track_tests(follow, json_object_get(stop, "tests"));
    mark_started_tests(follow, json_object_get(stop, "tests"), instruments);
    if (follow->ended_stop != NULL &&
        !is_same(follow->stop_id, get_string(follow->ended_stop, "id"))) {
        json_decref(follow->ended_stop);
        follow->ended_stop = NULL;
    }
    if (!follow->quiet) {
        print_started_tests(follow);
    }
}

/* Follows the stop until stop-ended and prints its report. */
static int follow_stop(struct client *client)
{
    struct follow *follow = client->follow;
    int status = follow_events(client);

    if (status != STATUS_OK) {
        return status;
    }
    if (!follow->quiet) {
        printf("\n");
        print_stop(follow->ended_stop);
    }
    return started_tests_status(follow, json_object_get(follow->ended_stop, "tests"), 1);
}

static int run_test_start(struct client *client, const struct command *command,
                          struct request *request)
{
    struct follow follow;
    json_t *response = NULL;
    json_t *stop;
    int status;

    follow_init(&follow, client->options);
    client->follow = &follow;
    status = exchange(client, command->cmd, request->args, command->timeout_ms, &response);
    stop = json_object_get(response, "stop");
    if (status == STATUS_OK && !json_is_object(stop)) {
        print_error("toxlabd's response to test.start holds no stop object");
        status = STATUS_ERROR;
    } else if (status == STATUS_OK) {
        begin_following_stop(&follow, stop, json_object_get(request->args, "instruments"));
        status = request->no_wait ? STATUS_OK : follow_stop(client);
    }
    if (status == STATUS_OK && request->no_wait) {
        if (!follow.quiet) {
            printf("\n");
            print_stop(stop);
        }
        status = started_tests_status(&follow, json_object_get(stop, "tests"), 0);
    }
    client->follow = NULL;
    follow_free(&follow);
    json_decref(response);
    return status;
}

/* Returns the watched test with the state, reason and result of its
 * test-ended event, which do not repeat the rest of the test object. */
static json_t *merge_ended_test(const json_t *test, const json_t *event)
{
    static const char *const keys[] = {"state", "reason", "result"};
    json_t *merged = json_deep_copy(test);

    for (size_t i = 0; merged != NULL && i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *value = json_object_get(event, keys[i]);

        if (value != NULL) {
            json_object_set(merged, keys[i], value);
        }
    }
    return merged;
}

/* Follows a test.watch response until its test ends and prints the test. */
static int follow_test(struct client *client, const json_t *test)
{
    struct follow *follow = client->follow;
    const char *state = get_string(test, "state");
    json_t *ended;
    int status;

    track_test(follow, get_string(test, "id"), get_string(test, "instrument"));
    if (state_has_ended(state)) {
        if (!follow->quiet) {
            print_test(test, 0, 1);
        }
        return is_same(state, "completed") ? STATUS_OK : STATUS_NOT_COMPLETED;
    }
    status = follow_events(client);
    if (status != STATUS_OK) {
        return status;
    }
    ended = merge_ended_test(test, follow->ended_test);
    if (!follow->quiet) {
        printf("\n");
        print_test(ended, 0, 1);
    }
    status = is_same(get_string(ended, "state"), "completed") ? STATUS_OK : STATUS_NOT_COMPLETED;
    json_decref(ended);
    return status;
}

static int run_test_watch(struct client *client, const struct command *command,
                          struct request *request)
{
    struct follow follow;
    json_t *response = NULL;
    json_t *test;
    int status;

    follow_init(&follow, client->options);
    follow.test_id = get_string(request->args, "test");
    client->follow = &follow;
    status = exchange(client, command->cmd, request->args, command->timeout_ms, &response);
    test = json_object_get(response, "test");
    if (status == STATUS_OK && !json_is_object(test)) {
        print_error("toxlabd's response to test.watch holds no test object");
        status = STATUS_ERROR;
    } else if (status == STATUS_OK) {
        status = follow_test(client, test);
    }
    client->follow = NULL;
    follow_free(&follow);
    json_decref(response);
    return status;
}

/* ---- Command line -------------------------------------------------------- */

static void print_command_words(FILE *stream, const struct command *command)
{
    fprintf(stream, "%s%s%s", command->group, command->name != NULL ? " " : "",
            command->name != NULL ? command->name : "");
}

__attribute__((format(printf, 2, 3))) int usage_error(const struct command *command,
                                                      const char *format, ...)
{
    va_list ap;

    fputs("toxlab ", stderr);
    print_command_words(stderr, command);
    fputs(": ", stderr);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputs("\nTry 'toxlab ", stderr);
    print_command_words(stderr, command);
    fputs(" --help'.\n", stderr);
    return STATUS_USAGE;
}

void print_command_help(const struct command *command)
{
    printf("Usage: toxlab [-s PATH] [--json] ");
    print_command_words(stdout, command);
    printf("%s%s\n\n%s\n", command->synopsis[0] != '\0' ? " " : "", command->synopsis,
           command->summary);
    printf("\nOptions:\n%s  -h, --help             print this help and exit\n",
           command->option_help != NULL ? command->option_help : "");
    if (command->exit_help != NULL) {
        printf("\n%s", command->exit_help);
    }
}

static int is_global_option(const char *option)
{
    static const char *const names[] = {"--json", "--socket", "-s"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t length = strlen(names[i]);

        if (strncmp(option, names[i], length) == 0 &&
            (option[length] == '\0' || option[length] == '=')) {
            return 1;
        }
    }
    return 0;
}

/* Reports a getopt_long error: a missing value (':') or an invalid option ('?'). */
int option_error(const struct command *command, int result, char **argv)
{
    const char *option = argv[optind - 1];

    if (is_global_option(option)) {
        return usage_error(command, "option %s goes before the command: toxlab %s ...", option,
                           option);
    }
    if (result == ':') {
        return usage_error(command, "option %s needs a value", option);
    }
    if (optopt != 0 && strncmp(option, "--", 2) != 0) {
        return usage_error(command, "invalid option -%c", optopt);
    }
    return usage_error(command, "invalid option %s", option);
}

/* Stores a string argument, rejecting empty, repeated and non-UTF-8 values. */
int set_argument(const struct command *command, json_t *args, const char *key, const char *label,
                 const char *value)
{
    json_t *string;

    if (json_object_get(args, key) != NULL) {
        return usage_error(command, "%s given more than once", label);
    }
    if (value[0] == '\0') {
        return usage_error(command, "%s is empty", label);
    }
    string = json_string(value);
    if (string == NULL) {
        return usage_error(command, "%s is not valid UTF-8", label);
    }
    json_object_set_new(args, key, string);
    return CONTINUE;
}

int require_argument(const struct command *command, const json_t *args, const char *key)
{
    if (json_object_get(args, key) == NULL) {
        return usage_error(command, "missing --%s", key);
    }
    return CONTINUE;
}

int reject_extra_arguments(const struct command *command, int argc, char **argv)
{
    if (optind < argc) {
        return usage_error(command, "unexpected argument '%s'", argv[optind]);
    }
    return CONTINUE;
}

/* Parses commands that take no options and at most one positional argument. */
static int parse_positional(const struct command *command, int argc, char **argv,
                            struct request *request)
{
    static const struct option long_options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *value;
    int result;

    optind = 0;
    while ((result = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        if (result != 'h') {
            return option_error(command, result, argv);
        }
        print_command_help(command);
        return STATUS_OK;
    }
    if (command->argument == NULL) {
        return reject_extra_arguments(command, argc, argv);
    }
    if (optind >= argc) {
        return usage_error(command, "missing %s", command->synopsis);
    }
    value = argv[optind++];
    if (reject_extra_arguments(command, argc, argv) != CONTINUE) {
        return STATUS_USAGE;
    }
    return set_argument(command, request->args, command->argument, command->synopsis, value);
}

static int parse_specimen_add(const struct command *command, int argc, char **argv,
                              struct request *request)
{
    static const struct option long_options[] = {
        {"subject", required_argument, NULL, 'S'},
        {"barcode", required_argument, NULL, 'b'},
        {"matrix", required_argument, NULL, 'm'},
        {"stop", required_argument, NULL, 's'},
        {"collected", required_argument, NULL, 'c'},
        {"segment-length", required_argument, NULL, 'L'},
        {"segment-position", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const required[] = {"subject", "barcode", "matrix"};
    int index = 0;
    int result;

    optind = 0;
    while ((result = getopt_long(argc, argv, ":h", long_options, &index)) != -1) {
        char label[32];

        if (result == 'h') {
            print_command_help(command);
            return STATUS_OK;
        }
        if (result == ':' || result == '?') {
            return option_error(command, result, argv);
        }
        snprintf(label, sizeof(label), "--%s", long_options[index].name);
        const char *key = long_options[index].name;
        if (result == 'L' || result == 'P') {
            key = result == 'L' ? "segment_length" : "segment_position";
        }
        if (set_argument(command, request->args, key, label, optarg) != CONTINUE) {
            return STATUS_USAGE;
        }
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (require_argument(command, request->args, required[i]) != CONTINUE) {
            return STATUS_USAGE;
        }
    }
    return reject_extra_arguments(command, argc, argv);
}

/* Parses "stop note STOP --dispute|--crash". */
static int parse_stop_note(const struct command *command, int argc, char **argv,
                           struct request *request)
{
    static const struct option long_options[] = {
        {"dispute", no_argument, NULL, 'D'},
        {"crash", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *kind = NULL;
    const char *stop;
    int result;

    optind = 0;
    while ((result = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        const char *option_kind = result == 'D' ? "dispute" : "crash";

        if (result == 'h') {
            print_command_help(command);
            return STATUS_OK;
        }
        if (result == ':' || result == '?') {
            return option_error(command, result, argv);
        }
        if (kind != NULL && !is_same(kind, option_kind)) {
            return usage_error(command, "give only one of --dispute and --crash");
        }
        kind = option_kind;
    }
    if (kind == NULL) {
        return usage_error(command, "missing --dispute or --crash");
    }
    if (optind >= argc) {
        return usage_error(command, "missing STOP");
    }
    stop = argv[optind++];
    if (reject_extra_arguments(command, argc, argv) != CONTINUE ||
        set_argument(command, request->args, "stop", "STOP", stop) != CONTINUE) {
        return STATUS_USAGE;
    }
    json_object_set_new(request->args, "kind", json_string(kind));
    return CONTINUE;
}

static int add_instrument(const struct command *command, json_t *instruments, const char *id)
{
    json_t *listed;
    size_t i;

    if (id[0] == '\0') {
        return usage_error(command, "--instrument is empty");
    }
    json_array_foreach(instruments, i, listed)
    {
        if (is_same(json_string_value(listed), id)) {
            return usage_error(command, "instrument %s given more than once", id);
        }
    }
    if (json_array_append_new(instruments, json_string(id)) != 0) {
        return usage_error(command, "--instrument %s is not valid UTF-8", id);
    }
    return CONTINUE;
}

/* Applies one option of "test start". A string option's long name is its argument's key. */
static int apply_test_start_option(const struct command *command, int result, const char *name,
                                   struct request *request)
{
    char label[32];

    switch (result) {
    case 'i':
        return add_instrument(command, json_object_get(request->args, "instruments"), optarg);
    case 'd':
        json_object_set_new(request->args, "driving", json_true());
        return CONTINUE;
    case 'n':
        request->no_wait = 1;
        return CONTINUE;
    default:
        snprintf(label, sizeof(label), "--%s", name);
        return set_argument(command, request->args, name, label, optarg);
    }
}

static int parse_test_start(const struct command *command, int argc, char **argv,
                            struct request *request)
{
    static const struct option long_options[] = {
        {"subject", required_argument, NULL, 'S'},
        {"instrument", required_argument, NULL, 'i'},
        {"specimen", required_argument, NULL, 'b'},
        {"driving", no_argument, NULL, 'd'},
        {"no-wait", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int index = 0;
    int result;

    json_object_set_new(request->args, "instruments", json_array());
    json_object_set_new(request->args, "driving", json_false());
    optind = 0;
    while ((result = getopt_long(argc, argv, ":h", long_options, &index)) != -1) {
        if (result == 'h') {
            print_command_help(command);
            return STATUS_OK;
        }
        if (result == ':' || result == '?') {
            return option_error(command, result, argv);
        }
        if (apply_test_start_option(command, result, long_options[index].name, request) !=
            CONTINUE) {
            return STATUS_USAGE;
        }
    }
    if (require_argument(command, request->args, "subject") != CONTINUE) {
        return STATUS_USAGE;
    }
    if (json_array_size(json_object_get(request->args, "instruments")) == 0) {
        return usage_error(command, "missing --instrument");
    }
    json_object_set_new(request->args, "watch", json_boolean(!request->no_wait));
    return reject_extra_arguments(command, argc, argv);
}

static const struct command commands[] = {
    {
        .group = "subject",
        .name = "add",
        .cmd = "subject.add",
        .synopsis = "SUBJECT",
        .summary = "Register a subject. SUBJECT is [type:]number, where type is resident\n"
                   "(the default), passport, foreign-permanent or other.",
        .argument = "subject",
        .parse = parse_positional,
        .run = run_request,
        .print = print_subject_added,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "subject",
        .name = "show",
        .cmd = "subject.show",
        .synopsis = "SUBJECT",
        .summary = "Show a subject with its specimens and stops.",
        .argument = "subject",
        .parse = parse_positional,
        .run = run_request,
        .print = print_subject_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "specimen",
        .name = "add",
        .cmd = "specimen.add",
        .synopsis = "--subject S --barcode B --matrix M [--stop ID] [--collected TIME]\n"
                    "       [--segment-length CM] [--segment-position TEXT]",
        .summary = "Register a specimen of subject S. Without --stop the specimen opens a\n"
                   "stop of its own.",
        .option_help = "      --subject S        the subject, [type:]number\n"
                       "      --barcode B        the specimen's barcode\n"
                       "      --matrix M         oral-fluid, hair, blood, urine or breath\n"
                       "      --stop ID          attach the specimen to this stop\n"
                       "      --collected TIME   collection time, RFC 3339 (default: now)\n"
                       "      --segment-length CM      hair only: segment length in cm\n"
                       "      --segment-position TEXT  hair only: where the segment was cut\n",
        .parse = parse_specimen_add,
        .run = run_request,
        .print = print_specimen_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "specimen",
        .name = "show",
        .cmd = "specimen.show",
        .synopsis = "BARCODE",
        .summary = "Show a specimen with its hair segment and its laboratory results.",
        .argument = "barcode",
        .parse = parse_positional,
        .run = run_request,
        .print = print_lab_specimen_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "result",
        .name = "unlinked",
        .cmd = "result.unlinked",
        .synopsis = "",
        .summary = "List the laboratory results that no subject owns, with the reason\n"
                   "(analyst).",
        .options = no_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_unlinked_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "result",
        .name = "link",
        .cmd = "result.link",
        .synopsis = "RESULT --barcode B --reason TEXT",
        .summary = "Link an unlinked laboratory result to the subject of hair specimen B\n"
                   "(analyst). The link is a row of its own with the reason.",
        .option_help = "      --barcode B        the hair specimen the result belongs to\n"
                       "      --reason TEXT      why the link is right\n",
        .argument = "result",
        .options = result_link_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_lab_result_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "result",
        .name = "release",
        .cmd = "result.release",
        .synopsis = "RESULT",
        .summary = "Release a reviewed laboratory result as evidence (analyst).",
        .argument = "result",
        .parse = parse_positional,
        .run = run_request,
        .print = print_lab_result_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "test",
        .name = "start",
        .cmd = "test.start",
        .synopsis = "--subject S --instrument I... [--specimen B] [--driving] [--no-wait]",
        .summary = "Start a test on each instrument in one stop for subject S, then print\n"
                   "progress until every test has ended and print the stop's report. The stop\n"
                   "is the specimen's stop when the specimen has one, else a new stop.",
        .option_help =
            "      --subject S        the subject, [type:]number\n"
            "      --instrument I     an instrument to test on; repeat for several\n"
            "      --specimen B       barcode of the specimen for instruments that take one\n"
            "                         (default: the subject's newest untested oral-fluid one)\n"
            "      --driving          the subject was driving\n"
            "      --no-wait          print the stop and its tests and exit at once; the tests\n"
            "                         go on in toxlabd (see stop show and test watch)\n",
        .exit_help = EXIT_STATUS_HELP,
        .parse = parse_test_start,
        .run = run_test_start,
        .timeout_ms = ANALYZER_RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "test",
        .name = "watch",
        .cmd = "test.watch",
        .synopsis = "TEST",
        .summary = "Print the progress of a test until it ends, then the test's report.",
        .argument = "test",
        .exit_help = EXIT_STATUS_HELP,
        .parse = parse_positional,
        .run = run_test_watch,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "test",
        .name = "abort",
        .cmd = "test.abort",
        .synopsis = "TEST",
        .summary = "Abort a running test.",
        .argument = "test",
        .parse = parse_positional,
        .run = run_request,
        .print = print_test_response,
        .timeout_ms = ANALYZER_RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "test",
        .name = "refuse",
        .cmd = "test.refuse",
        .synopsis = "TEST",
        .summary = "Record that the subject would not blow: the running breath test TEST\n"
                   "ends completed with the outcome refused. Prints the test.",
        .argument = "test",
        .min_minor = 1,
        .parse = parse_positional,
        .run = run_request,
        .print = print_test_response,
        .timeout_ms = ANALYZER_RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "test",
        .name = "show",
        .cmd = "test.show",
        .synopsis = "TEST",
        .summary = "Show a test with its result.",
        .argument = "test",
        .parse = parse_positional,
        .run = run_request,
        .print = print_test_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "stop",
        .name = "show",
        .cmd = "stop.show",
        .synopsis = "STOP",
        .summary = "Show a stop: its subject, every test with its result, and the decision.",
        .argument = "stop",
        .parse = parse_positional,
        .run = run_request,
        .print = print_stop_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "stop",
        .name = "note",
        .cmd = "stop.note",
        .synopsis = "STOP --dispute|--crash",
        .summary = "Add a note to stop STOP and print the stop's report. The note may make\n"
                   "toxlabd record a new decision that asks for a blood sample.",
        .option_help = "      --dispute          the driver disputes the breath result\n"
                       "      --crash            the subject had a crash after drinking\n",
        .min_minor = 1,
        .parse = parse_stop_note,
        .run = run_request,
        .print = print_stop_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "id",
        .name = "check",
        .synopsis = "ID...",
        .summary = "Check subject IDs offline, without toxlabd: each ID is [type:]number\n"
                   "(resident by default). Prints each ID normalised, or the check it\n"
                   "failed. Exit status 1 when any ID is invalid. Today's date, for the\n"
                   "birth-date check, is taken in $TZ, by default Asia/Shanghai.",
        .parse = parse_id_check,
        .run_offline = run_id_check,
    },
    {
        .group = "status",
        .name = "add",
        .cmd = "status.add",
        .synopsis = "--subject S --kind K --start DATE [--end DATE] --reference REF\n"
                    "       [--supersedes ID --reason TEXT]",
        .summary = "Record a dated status of subject S from the issuing authority (clerk).\n"
                   "Statuses are never changed: a correction is a new status that supersedes\n"
                   "the old one, with a reason.",
        .option_help =
            "      --subject S        the subject, [type:]number\n"
            "      --kind K           community-detox, compulsory-isolation,\n"
            "                         community-rehabilitation, psychotropic-dependence,\n"
            "                         revoked-drunk-driving, revoked-commercial-drink-driving,\n"
            "                         revoked-commercial-drunk-driving or revoked-serious-crash\n"
            "      --start DATE       the day the order or revocation took effect (YYYY-MM-DD)\n"
            "      --end DATE         the actual release date (isolation), the cure date\n"
            "                         (dependence) or the end of an order\n"
            "      --reference REF    the issuing authority's reference\n"
            "      --supersedes ID    the status this entry corrects\n"
            "      --reason TEXT      why the correction was made\n",
        .min_minor = 2,
        .options = status_add_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_status_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "licence",
        .name = "add",
        .cmd = "licence.add",
        .synopsis = "--subject S --number N --class C [--commercial] [--handed-back]\n"
                    "       [--supersedes ID --reason TEXT]",
        .summary = "Record a driving licence that subject S holds (clerk). A correction, such\n"
                   "as a licence handed back, is a new entry that supersedes the old one.",
        .option_help = "      --subject S        the subject, [type:]number\n"
                       "      --number N         the licence number\n"
                       "      --class C          the licence class, e.g. C1\n"
                       "      --commercial       the licence is for commercial vehicles\n"
                       "      --handed-back      the holder has handed the licence back\n"
                       "      --supersedes ID    the licence entry this one corrects\n"
                       "      --reason TEXT      why the correction was made\n",
        .min_minor = 2,
        .options = licence_add_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_licence_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "licence",
        .name = "check",
        .cmd = "licence.check",
        .synopsis = "SUBJECT --for application|holder [--as-of DATE]",
        .summary = "Decide whether SUBJECT may apply for a driving licence (application) or\n"
                   "must lose the one held (holder), from the evidence toxlabd stores (clerk).\n"
                   "Prints the decision, each rule that fired with its evidence and end date,\n"
                   "and the policy applied. The decision is recorded; confirm or override it\n"
                   "with 'toxlab decision'.",
        .option_help = "      --for Q            application or holder\n"
                       "      --as-of DATE       decide as on this day (default: today)\n",
        .argument = "subject",
        .min_minor = 2,
        .options = licence_check_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_decision_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "licence",
        .name = "evaluate",
        .synopsis = "--evidence FILE --for application|holder --as-of DATE [--rules FILE]",
        .summary = "Run the licence rules offline, without toxlabd, on an evidence file:\n"
                   "one JSON object {\"results\", \"statuses\", \"licences\"} (docs/rules.md).\n"
                   "Prints what toxlabd would decide from the same evidence.",
        .option_help =
            "      --evidence FILE    the evidence object\n"
            "      --for Q            application or holder\n"
            "      --as-of DATE       decide as on this day\n"
            "      --rules FILE       the rules file (default: " DEFAULT_RULES_PATH ")\n",
        .options = licence_evaluate_options,
        .parse = parse_options,
        .run_offline = run_licence_evaluate,
    },
    {
        .group = "decision",
        .name = "confirm",
        .cmd = "decision.confirm",
        .synopsis = "DECISION [--reason TEXT]",
        .summary = "Confirm a recorded licence decision (clerk).",
        .option_help = "      --reason TEXT      a note kept with the confirmation\n",
        .argument = "decision",
        .min_minor = 2,
        .options = decision_review_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_decision_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "decision",
        .name = "override",
        .cmd = "decision.override",
        .synopsis = "DECISION --reason TEXT",
        .summary = "Override a recorded licence decision, with the reason (clerk).",
        .option_help = "      --reason TEXT      why the decision does not stand\n",
        .argument = "decision",
        .min_minor = 2,
        .options = decision_review_options,
        .parse = parse_options,
        .run = run_request,
        .print = print_decision_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "decision",
        .name = "show",
        .cmd = "decision.show",
        .synopsis = "DECISION",
        .summary = "Show a recorded licence decision with its reviews.",
        .argument = "decision",
        .min_minor = 2,
        .parse = parse_positional,
        .run = run_request,
        .print = print_decision_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "thresholds",
        .name = "reload",
        .cmd = "thresholds.reload",
        .synopsis = "",
        .summary = "Read the threshold set and the licence rules again (admin). A file that\n"
                   "fails validation is rejected with its line and reason, and the sets in\n"
                   "force stay. Results already judged keep the version they were judged by.",
        .min_minor = 2,
        .parse = parse_positional,
        .run = run_request,
        .print = print_reloaded_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "import",
        .cmd = "import",
        .synopsis = "FILE",
        .summary = "Import results from outside laboratories (admin): JSON in the result\n"
                   "schema, or CSV with the header laboratory,report,barcode,subject,matrix,\n"
                   "analyte,value,unit,collected,reported (docs/import.md). Every row is\n"
                   "checked first; toxlabd stores all of them or none and names each bad\n"
                   "field. Imported results are confirm tier and count as released evidence.",
        .argument = "file",
        .min_minor = 2,
        .parse = parse_positional,
        .run = run_import,
        .print = print_imported_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "audit",
        .name = "verify",
        .cmd = "audit.verify",
        .synopsis = "[--database FILE]",
        .summary = "Check the audit log (admin): recompute its hash chain and compare every\n"
                   "audited row with what its latest entry recorded. Names the first entry\n"
                   "that does not match and exits 1. With --database, checks a database\n"
                   "file (a backup) offline, without toxlabd.",
        .option_help = "      --database FILE    check this SQLite file instead, read-only\n",
        .min_minor = 2,
        .options = audit_verify_options,
        .parse = parse_options,
        .run = run_request,
        .run_offline = run_audit_verify_offline,
        .offline_key = "database",
        .print = print_audit_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "audit",
        .name = "head",
        .cmd = "audit.head",
        .synopsis = "",
        .summary = "Print the audit chain's head: the newest entry's number and hash (admin,\n"
                   "supervisor). A copy kept outside the database exposes a rewritten chain.",
        .min_minor = 2,
        .parse = parse_positional,
        .run = run_request,
        .print = print_audit_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "backup",
        .cmd = "backup",
        .synopsis = "",
        .summary = "Write a consistent copy of the database into daemon.backup_folder while\n"
                   "toxlabd runs (admin), check the copy's audit log, and print its file.",
        .min_minor = 2,
        .parse = parse_positional,
        .run = run_request,
        .print = print_backup_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
    {
        .group = "instruments",
        .cmd = "instruments",
        .synopsis = "",
        .summary = "List the configured instruments: online or offline, identity,\n"
                   "cartridge, running test and last communication error.",
        .parse = parse_positional,
        .run = run_request,
        .print = print_instruments_response,
        .timeout_ms = RESPONSE_TIMEOUT_MS,
    },
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *stream)
{
    fprintf(stream, "Usage: toxlab [-s PATH] [--json] COMMAND [ARGUMENTS]\n"
                    "\n"
                    "Send a command to toxlabd and print its response.\n"
                    "\n"
                    "Options:\n"
                    "  -s, --socket PATH  toxlabd's socket (default: $TOXLAB_SOCKET, else\n"
                    "                     " DEFAULT_SOCKET_PATH ")\n"
                    "      --json         print each protocol response and event unchanged,\n"
                    "                     one JSON line each, and nothing else on stdout\n"
                    "  -h, --help         print this help and exit\n"
                    "  -V, --version      print the version and exit\n"
                    "\n"
                    "Commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        fputs("  ", stream);
        print_command_words(stream, &commands[i]);
        fprintf(stream, "%s%s\n", commands[i].synopsis[0] != '\0' ? " " : "", commands[i].synopsis);
    }
    fprintf(stream, "  decode [--strict] FILE...\n"
                    "  help [COMMAND]\n"
                    "\n"
                    "'toxlab COMMAND --help' and 'toxlab help COMMAND' describe a command.\n"
                    "\n" EXIT_STATUS_HELP);
}

static int group_exists(const char *group)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].group, group) == 0) {
            return 1;
        }
    }
    return 0;
}

static const struct command *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        const struct command *command = &commands[i];

        if (strcmp(command->group, group) != 0) {
            continue;
        }
        if (command->name == NULL || is_same(command->name, name)) {
            return command;
        }
    }
    return NULL;
}

static void print_group_usage(FILE *stream, const char *group)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].group, group) == 0) {
            fprintf(stream, "Usage: toxlab %s %s %s\n", group, commands[i].name,
                    commands[i].synopsis);
        }
    }
    fprintf(stream, "'toxlab %s SUBCOMMAND --help' describes a subcommand.\n", group);
}

static int is_help_option(const char *word)
{
    return is_same(word, "--help") || is_same(word, "-h");
}

/* Finds the command named by words, which start with a command group. Prints
 * help or a usage error and returns its status when no command is selected. */
static int select_command(int count, char **words, const struct command **selected)
{
    const char *group = words[0];

    if (!group_exists(group)) {
        fprintf(stderr, "toxlab: unknown command '%s'\nTry 'toxlab --help'.\n", group);
        return STATUS_USAGE;
    }
    *selected = find_command(group, NULL);
    if (*selected != NULL) {
        return CONTINUE;
    }
    if (count < 2 || words[1][0] == '-') {
        if (count >= 2 && is_help_option(words[1])) {
            print_group_usage(stdout, group);
            return STATUS_OK;
        }
        fprintf(stderr, "toxlab %s: missing subcommand\n", group);
        print_group_usage(stderr, group);
        return STATUS_USAGE;
    }
    *selected = find_command(group, words[1]);
    if (*selected == NULL) {
        fprintf(stderr, "toxlab %s: unknown subcommand '%s'\n", group, words[1]);
        print_group_usage(stderr, group);
        return STATUS_USAGE;
    }
    return CONTINUE;
}

/* Runs "toxlab help [COMMAND]". */
static int print_help_topic(int count, char **words)
{
    const struct command *command = NULL;
    int status;

    if (count == 0) {
        print_usage(stdout);
        return STATUS_OK;
    }
    if (strcmp(words[0], "decode") == 0) {
        toxlab_decode_help(stdout);
        return STATUS_OK;
    }
    if (count == 1 && group_exists(words[0]) && find_command(words[0], NULL) == NULL) {
        print_group_usage(stdout, words[0]);
        return STATUS_OK;
    }
    status = select_command(count, words, &command);
    if (status != CONTINUE) {
        return status;
    }
    print_command_help(command);
    return STATUS_OK;
}

static int parse_global_options(int argc, char **argv, struct options *options)
{
    static const struct option long_options[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *from_environment = getenv("TOXLAB_SOCKET");
    int result;

    options->socket_path = from_environment != NULL && from_environment[0] != '\0'
                               ? from_environment
                               : DEFAULT_SOCKET_PATH;
    opterr = 0;
    while ((result = getopt_long(argc, argv, "+:s:hV", long_options, NULL)) != -1) {
        switch (result) {
        case 's':
            options->socket_path = optarg;
            break;
        case 'j':
            options->json = 1;
            break;
        case 'h':
            print_usage(stdout);
            return STATUS_OK;
        case 'V':
            printf("toxlab %s (protocol %d.%d)\n", TOXLAB_VERSION, PROTO_MAJOR, PROTO_MINOR);
            return STATUS_OK;
        case ':':
            fprintf(stderr, "toxlab: option %s needs a value\nTry 'toxlab --help'.\n",
                    argv[optind - 1]);
            return STATUS_USAGE;
        default:
            fprintf(stderr, "toxlab: invalid option %s\nTry 'toxlab --help'.\n", argv[optind - 1]);
            return STATUS_USAGE;
        }
    }
    return CONTINUE;
}

/* Parses the whole command line into options, command and request. */
static int parse_command_line(int argc, char **argv, struct options *options,
                              const struct command **command, struct request *request)
{
    int status = parse_global_options(argc, argv, options);
    char **words = argv + optind;
    int count = argc - optind;

    if (status != CONTINUE) {
        return status;
    }
    if (count == 0) {
        fprintf(stderr, "toxlab: missing command\nTry 'toxlab --help'.\n");
        return STATUS_USAGE;
    }
    if (strcmp(words[0], "help") == 0) {
        return print_help_topic(count - 1, words + 1);
    }
    if (strcmp(words[0], "decode") == 0) {
        return toxlab_decode(count, words);
    }
    status = select_command(count, words, command);
    if (status != CONTINUE) {
        return status;
    }
    if ((*command)->name != NULL) {
        words++;
        count--;
    }
    return (*command)->parse(*command, count, words, request);
}

static int run_with_daemon(const struct options *options, const struct command *command,
                           struct request *request)
{
    struct client client;
    int status;

    memset(&client, 0, sizeof(client));
    client.options = options;
    client.connection.fd = -1;
    client.connection.next_id = 1;
    proto_reader_init(&client.connection.reader);
    setup_signals(&client.connection);

    status =
        connect_daemon(&client.connection, options->socket_path) == 0 ? STATUS_OK : STATUS_ERROR;
    if (status == STATUS_OK) {
        status = read_hello(&client);
    }
    if (status == STATUS_OK && client.daemon_minor < command->min_minor) {
        print_error("toxlabd speaks protocol %d.%d, which has no %s (added in %d.%d); upgrade "
                    "toxlabd",
                    PROTO_MAJOR, client.daemon_minor, command->cmd, PROTO_MAJOR,
                    command->min_minor);
        status = STATUS_ERROR;
    }
    if (status == STATUS_OK) {
        status = command->run(&client, command, request);
    }

    if (client.connection.fd >= 0) {
        close(client.connection.fd);
    }
    proto_reader_free(&client.connection.reader);
    return status;
}

/* Flushes stdout and turns a failed write (a full disk, for example) into
 * exit status 1. */
static int finish_output(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        print_error("cannot write to standard output: %s", strerror(errno));
        return status == STATUS_OK ? STATUS_ERROR : status;
    }
    return status;
}

int main(int argc, char **argv)
{
    struct options options = {.socket_path = NULL, .json = 0};
    struct request request = {.args = json_object(), .no_wait = 0};
    const struct command *command = NULL;
    int status;

    if (request.args == NULL) {
        print_error("out of memory");
        return STATUS_ERROR;
    }
    status = parse_command_line(argc, argv, &options, &command, &request);
    if (status == CONTINUE && command->run_offline != NULL &&
        (command->offline_key == NULL ||
         json_object_get(request.args, command->offline_key) != NULL)) {
        status = command->run_offline(command, &options, &request);
    } else if (status == CONTINUE) {
        status = run_with_daemon(&options, command, &request);
    }
    json_decref(request.args);
    return finish_output(status);
}
