#define _GNU_SOURCE
#include "controller/line.h"

#include "controller/log.h"
#include "controller/timefmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* CRC errors in a row after which the line settings are the likely cause:
 * a noisy line rarely corrupts this many replies, a baud rate or parity
 * mismatch corrupts every one. */
#define CRC_RUN_HINT 5

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static struct line_event *queue_head;
static struct line_event *queue_tail;
static int queue_fd = -1;

int line_events_init(void)
{
    queue_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return queue_fd < 0 ? -1 : 0;
}

int line_events_fd(void)
{
    return queue_fd;
}

struct line_event *line_events_take(void)
{
    uint64_t count;
    struct line_event *taken;

    if (read(queue_fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        log_msg(LOG_ERR, "reading the line event counter failed: %s", strerror(errno));
    }
    pthread_mutex_lock(&queue_lock);
    taken = queue_head;
    queue_head = queue_tail = NULL;
    pthread_mutex_unlock(&queue_lock);
    return taken;
}

static struct line_event *event_new(struct line *line, enum line_event_kind kind)
{
    struct line_event *event = calloc(1, sizeof(*event));

    if (event == NULL) {
        log_msg(LOG_CRIT, "%s: out of memory for a line event", line->config->id);
        abort();
    }
    event->kind = kind;
    event->line = line;
    event->host_test_id = line->active_id;
    return event;
}

static void event_post(struct line_event *event)
{
    uint64_t one = 1;

    pthread_mutex_lock(&queue_lock);
    if (queue_tail) {
        queue_tail->next = event;
    } else {
        queue_head = event;
    }
    queue_tail = event;
    pthread_mutex_unlock(&queue_lock);
    if (write(queue_fd, &one, sizeof(one)) < 0) {
        log_msg(LOG_ERR, "waking the event loop failed: %s", strerror(errno));
    }
}

static void post_message(struct line *line, enum line_event_kind kind, int status,
                         const char *message)
{
    struct line_event *event = event_new(line, kind);

    event->status = status;
    snprintf(event->message, sizeof(event->message), "%s", message);
    event_post(event);
}

/* Waits up to ms for a stop request, and for a command too when
 * commands_wake is set. Returns false when stopping. */
static bool line_wait(struct line *line, int ms, bool commands_wake)
{
    struct timespec deadline;
    bool stopping;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&line->lock);
    while (!line->stopping && !line->reconnect_requested &&
           !(commands_wake &&
             (line->start_requested || line->abort_requested || line->ack_requested ||
              line->forget_requested || line->reread_requested || line->adopt_requested))) {
        if (pthread_cond_timedwait(&line->wake, &line->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    stopping = line->stopping;
    pthread_mutex_unlock(&line->lock);
    return !stopping;
}

static void close_port(struct line *line)
{
    if (line->driver_state != NULL) {
        line->ops->close(line->driver_state);
        line->driver_state = NULL;
    }
    line->online = false;
}

/* Counts a failed request and rewrites its message once CRC errors come
 * in a run: from then on the message names the likely cause instead of
 * repeating the error. */
static void describe_failure(struct line *line, int status, const char *err, char *message,
                             size_t size)
{
    line->failures++;
    if (status != DRIVER_BAD_CRC) {
        snprintf(message, size, "%s", err);
        return;
    }
    line->crc_run++;
    if (line->crc_run < CRC_RUN_HINT) {
        snprintf(message, size, "%s", err);
        return;
    }
    snprintf(message, size,
             "%u CRC errors in a row on %.80s: check that the line settings (%d baud, parity %c, "
             "%d data bits, %d stop bits) match the analyzer's",
             line->crc_run, line->config->device, line->config->baud, line->config->parity,
             line->config->data_bits, line->config->stop_bits);
}

/* A reply arrived: the runs of failures end. */
static void note_reply(struct line *line)
{
    line->failures = 0;
    line->crc_run = 0;
}

/* Opens the port and reads the identity. Returns true when online. */
static bool connect_port(struct line *line)
{
    char err[DRIVER_ERR_SIZE];
    char message[DRIVER_ERR_SIZE];
    int status = line->ops->open(line->config, &line->driver_state, err, sizeof(err));

    if (status == DRIVER_OK) {
        status = line->ops->identify(line->driver_state, &line->identity, err, sizeof(err));
        if (status != DRIVER_OK) {
            close_port(line);
        }
    }
    if (status != DRIVER_OK) {
        describe_failure(line, status, err, message, sizeof(message));
        snprintf(err, sizeof(err), "%.200s; retrying in %d ms", message, line->backoff_ms);
        post_message(line, LINE_OFFLINE, status, err);
        return false;
    }
    note_reply(line);
    line->online = true;
    line->backoff_ms = line->config->retry_ms;
    struct line_event *event = event_new(line, LINE_ONLINE);
    event->identity = line->identity;
    event_post(event);
    line->found_id = 0;
    return true;
}

/* Stops polling the active test. The analyzer may still show it, so it is
 * remembered and not reported as a held test. */
static void drop_test(struct line *line)
{
    line->found_id = line->active_id;
    line->active_id = 0;
    line->awaiting_ack = false;
}

/* A failed request. The port is closed, and reopened with a backoff, when
 * it failed at the I/O level (the device vanished) or when
 * offline_after_failures requests in a row went unanswered. */
static void report_failure(struct line *line, int status, const char *err)
{
    char message[DRIVER_ERR_SIZE];

    describe_failure(line, status, err, message, sizeof(message));
    post_message(line, LINE_COMM_ERROR, status, message);
    if (status != DRIVER_IO && line->failures < (unsigned)line->config->offline_after_failures) {
        return;
    }
    close_port(line);
    if (status != DRIVER_IO) {
        char reason[DRIVER_ERR_SIZE];
        snprintf(reason, sizeof(reason), "%u failed requests in a row, the last: %.180s",
                 line->failures, message);
        snprintf(message, sizeof(message), "%s", reason);
    }
    post_message(line, LINE_OFFLINE, status, message);
}

static void post_found(struct line *line, const struct driver_progress *progress)
{
    struct line_event *event = event_new(line, LINE_FOUND);

    line->found_id = progress->host_test_id;
    event->host_test_id = progress->host_test_id;
    event->progress = *progress;
    event_post(event);
}

/* Reads the status before a start. Returns false, after reporting why, when
 * the analyzer is not free: then the start command must not be sent. */
static bool analyzer_free(struct line *line, uint32_t host_test_id)
{
    char err[DRIVER_ERR_SIZE];
    char message[DRIVER_ERR_SIZE];
    struct driver_progress progress;
    int status = line->ops->poll(line->driver_state, &progress, err, sizeof(err));

    if (status != DRIVER_OK) {
        /* Unknown: send the start anyway, and the grace period covers silence. */
        report_failure(line, status, err);
        return true;
    }
    note_reply(line);
    /* Both analyzers accept a start in the error state; it drops the error. */
    if (progress.idle || progress.device_error) {
        return true;
    }
    if (progress.host_test_id != 0) {
        snprintf(message, sizeof(message),
                 "the analyzer is busy with host test ID 0x%08X (%s); the start command was "
                 "not sent",
                 progress.host_test_id, progress.step);
    } else {
        snprintf(message, sizeof(message),
                 "the analyzer is not ready (%s); the start command was not sent", progress.step);
    }
    struct line_event *event = event_new(line, LINE_START_FAILED);
    event->host_test_id = host_test_id;
    snprintf(event->message, sizeof(event->message), "%s", message);
    event_post(event);
    if (progress.host_test_id != 0 && !progress.device_error) {
        post_found(line, &progress);
    }
    return false;
}

/* Reports a start command that was never sent, so that the loop ends the
 * test at once instead of after its grace period. */
static void post_start_not_sent(struct line *line, uint32_t host_test_id)
{
    struct line_event *event = event_new(line, LINE_TEST_LOST);

    event->host_test_id = host_test_id;
    snprintf(event->message, sizeof(event->message),
             "the start command was not sent because the analyzer went offline");
    event_post(event);
}

static void run_start(struct line *line, uint32_t host_test_id)
{
    char err[DRIVER_ERR_SIZE];
    int status;

    if (!line->online) {
        post_start_not_sent(line, host_test_id);
        return;
    }
    if (line->active_id != 0 || !analyzer_free(line, host_test_id)) {
        return;
    }
    if (!line->online) {
        /* The status read before the start closed the port. */
        post_start_not_sent(line, host_test_id);
        return;
    }
    line->active_id = host_test_id;
    line->awaiting_ack = false;
    status = line->ops->start(line->driver_state, host_test_id, err, sizeof(err));
    if (status == DRIVER_OK || status == DRIVER_EXCEPTION) {
        note_reply(line);
    }
    if (status == DRIVER_OK) {
        post_message(line, LINE_STARTED, status, "");
    } else if (status == DRIVER_EXCEPTION) {
        post_message(line, LINE_START_FAILED, status, err);
        drop_test(line);
    } else {
        /* The command may have reached the analyzer: keep polling for the test. */
        report_failure(line, status, err);
    }
}

static void run_acknowledge(struct line *line, uint32_t host_test_id)
{
    char err[DRIVER_ERR_SIZE];
    int status = line->ops->acknowledge(line->driver_state, host_test_id, err, sizeof(err));

    if (status != DRIVER_OK) {
        /* The analyzer keeps the result until acknowledged, so the next poll reads it again. */
        report_failure(line, status, err);
        line->awaiting_ack = false;
        return;
    }
    note_reply(line);
    post_message(line, LINE_ACKNOWLEDGED, status, "");
    if (line->active_id == host_test_id) {
        drop_test(line);
    }
    /* An analyzer that still shows the result lost the acknowledgement: the
     * idle poll reports it, and the loop acknowledges it again. */
    line->found_id = 0;
}

static void run_abort(struct line *line, uint32_t host_test_id)
{
    char err[DRIVER_ERR_SIZE];
    int status = line->ops->abort(line->driver_state, host_test_id, err, sizeof(err));

    if (line->active_id == host_test_id) {
        drop_test(line);
    }
    if (status != DRIVER_OK) {
        report_failure(line, status, err);
        /* The analyzer may still run the test: the idle poll reports it again. */
        line->found_id = 0;
    }
}

/* Takes the pending commands and runs them in a fixed order. */
static void run_commands(struct line *line)
{
    bool start, abort_test, ack, forget, reread, adopt;
    uint32_t start_id, abort_id, ack_id, forget_id, reread_id, adopt_id;

    pthread_mutex_lock(&line->lock);
    start = line->start_requested;
    abort_test = line->abort_requested;
    ack = line->ack_requested;
    forget = line->forget_requested;
    reread = line->reread_requested;
    adopt = line->adopt_requested;
    adopt_id = line->adopt_id;
    start_id = line->start_id;
    abort_id = line->abort_id;
    ack_id = line->ack_id;
    forget_id = line->forget_id;
    reread_id = line->reread_id;
    line->start_requested = line->abort_requested = line->ack_requested = false;
    line->forget_requested = line->reread_requested = line->adopt_requested = false;
    pthread_mutex_unlock(&line->lock);

    if (adopt && line->active_id == 0) {
        line->active_id = adopt_id;
        line->awaiting_ack = false;
    }
    if (forget && line->active_id == forget_id) {
        drop_test(line);
        /* Given up for silence: if the analyzer comes back still holding the
         * test, the idle poll reports it and the test resumes. */
        line->found_id = 0;
    }
    if (reread && line->active_id == reread_id) {
        line->awaiting_ack = false;
    }
    /* A failed command may close the port. A command skipped for that is
     * not lost: the idle poll reports a result or test the analyzer still
     * holds, and the loop acknowledges or aborts it again. */
    if (ack) {
        run_acknowledge(line, ack_id);
    }
    if (abort_test && line->online) {
        run_abort(line, abort_id);
    }
    if (start) {
        run_start(line, start_id);
    }
}

/* A result echoing another host test ID belongs to no test of ours: the
 * test is lost, and aborting it on the analyzer discards that result so the
 * analyzer can take the next test. */
static void discard_foreign_result(struct line *line, const char *err)
{
    char message[DRIVER_ERR_SIZE];
    char abort_err[DRIVER_ERR_SIZE];
    uint32_t host_test_id = line->active_id;
    int status = line->ops->abort(line->driver_state, host_test_id, abort_err, sizeof(abort_err));

    if (status == DRIVER_OK) {
        snprintf(message, sizeof(message), "%.150s; the result was discarded on the analyzer", err);
    } else {
        snprintf(message, sizeof(message), "%.120s; discarding it failed: %.100s", err, abort_err);
    }
    post_message(line, LINE_TEST_LOST, DRIVER_MISMATCH, message);
    drop_test(line);
}

static void read_result(struct line *line)
{
    char err[DRIVER_ERR_SIZE];
    struct line_event *event = event_new(line, LINE_RESULT);
    int status = line->ops->read_result(line->driver_state, line->active_id, &event->result, err,
                                        sizeof(err));

    if (status == DRIVER_OK) {
        note_reply(line);
        line->awaiting_ack = true;
        event_post(event);
        return;
    }
    free(event);
    if (status == DRIVER_MISMATCH) {
        discard_foreign_result(line, err);
        return;
    }
    report_failure(line, status, err);
}

static void poll_test(struct line *line)
{
    char err[DRIVER_ERR_SIZE];
    struct driver_progress progress;
    int status = line->ops->poll(line->driver_state, &progress, err, sizeof(err));

    if (status != DRIVER_OK) {
        report_failure(line, status, err);
        return;
    }
    note_reply(line);
    struct line_event *event = event_new(line, LINE_PROGRESS);
    event->progress = progress;
    event_post(event);
    if (progress.device_error) {
        post_message(line, LINE_DEVICE_ERROR, DRIVER_OK, progress.error_text);
        drop_test(line);
    } else if (progress.result_ready && !line->awaiting_ack) {
        read_result(line);
    } else if (progress.idle ||
               (progress.host_test_id != line->active_id && !progress.result_ready)) {
        post_message(line, LINE_TEST_LOST, DRIVER_OK, "the analyzer no longer holds the test");
        drop_test(line);
    }
}

/* Polls an analyzer that has no active test. A failure is reported like any
 * other. A test it still runs or keeps a result for is reported once, so the
 * loop can match it to an open or interrupted test. */
static void poll_idle(struct line *line)
{
    char err[DRIVER_ERR_SIZE];
    struct driver_progress progress;
    int status = line->ops->poll(line->driver_state, &progress, err, sizeof(err));

    if (status != DRIVER_OK) {
        report_failure(line, status, err);
        return;
    }
    note_reply(line);
    post_message(line, LINE_ALIVE, DRIVER_OK, "");
    if (progress.idle || progress.device_error || progress.host_test_id == 0) {
        line->found_id = 0;
        return;
    }
    if (progress.host_test_id == line->found_id) {
        return;
    }
    post_found(line, &progress);
}

static bool take_reconnect(struct line *line)
{
    bool requested;

    pthread_mutex_lock(&line->lock);
    requested = line->reconnect_requested;
    line->reconnect_requested = false;
    pthread_mutex_unlock(&line->lock);
    return requested;
}

static void wake_line(struct line *line)
{
    uint64_t one = 1;

    if (line->wake_fd >= 0 && write(line->wake_fd, &one, sizeof(one)) < 0) {
        log_msg(LOG_ERR, "%s: waking the line failed: %s", line->config->id, strerror(errno));
    }
}

/* Runs the releases and sends the loop queued, in order. */
static void run_upload_commands(struct line *line)
{
    uint32_t releases[LINE_QUEUE_MAX];
    char *sends[LINE_QUEUE_MAX];
    size_t release_count, send_count;
    uint64_t count;
    char err[DRIVER_ERR_SIZE];

    if (read(line->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        log_msg(LOG_ERR, "%s: reading the wake counter failed: %s", line->config->id,
                strerror(errno));
    }
    pthread_mutex_lock(&line->lock);
    release_count = line->release_count;
    send_count = line->send_count;
    memcpy(releases, line->releases, release_count * sizeof(releases[0]));
    memcpy(sends, line->sends, send_count * sizeof(sends[0]));
    line->release_count = line->send_count = 0;
    pthread_mutex_unlock(&line->lock);

    for (size_t i = 0; i < release_count; i++) {
        if (line->online &&
            line->ops->release(line->driver_state, releases[i], err, sizeof(err)) != DRIVER_OK) {
            post_message(line, LINE_LINK_NOTE, DRIVER_TIMEOUT, err);
        }
    }
    for (size_t i = 0; i < send_count; i++) {
        if (!line->online) {
            post_message(line, LINE_LINK_NOTE, DRIVER_IO,
                         "an answer was dropped because the analyzer went offline");
        } else if (line->ops->send_message(line->driver_state, sends[i], strlen(sends[i]), err,
                                           sizeof(err)) != DRIVER_OK) {
            post_message(line, LINE_LINK_NOTE, DRIVER_IO, err);
        }
        free(sends[i]);
    }
}

/* Receives for up to one poll interval and posts what came in. */
static void receive_uploads(struct line *line)
{
    char err[DRIVER_ERR_SIZE];
    struct driver_upload *upload = calloc(1, sizeof(*upload));

    if (upload == NULL) {
        log_msg(LOG_CRIT, "%s: out of memory for an upload", line->config->id);
        abort();
    }
    int status = line->ops->receive(line->driver_state, line->wake_fd,
                                    line->config->poll_interval_ms, upload, err, sizeof(err));
    if (status != DRIVER_OK) {
        free(upload);
        close_port(line);
        post_message(line, LINE_OFFLINE, status, err);
        return;
    }
    if (upload->kind == UPLOAD_NOTE) {
        post_message(line, LINE_LINK_NOTE, upload->note_error ? DRIVER_CORRUPT : DRIVER_OK,
                     upload->note);
    }
    if (upload->kind != UPLOAD_RESULTS && upload->kind != UPLOAD_QUERY) {
        free(upload);
        return;
    }
    struct line_event *event = event_new(line, LINE_UPLOAD);
    event->upload = upload;
    event_post(event);
}

/* The loop of an analyzer that uploads on its own (ASTM): it reads the port
 * all the time and runs commands as they come, instead of polling. */
static void upload_main(struct line *line)
{
    while (true) {
        if (take_reconnect(line)) {
            line->backoff_ms = line->config->retry_ms;
        }
        if (!line->online && !connect_port(line)) {
            int delay = line->backoff_ms;
            line->backoff_ms = line->backoff_ms * 2 > line->config->retry_max_ms
                                   ? line->config->retry_max_ms
                                   : line->backoff_ms * 2;
            if (!line_wait(line, delay, false)) {
                return;
            }
            continue;
        }
        run_upload_commands(line);
        receive_uploads(line);
        pthread_mutex_lock(&line->lock);
        bool stopping = line->stopping;
        pthread_mutex_unlock(&line->lock);
        if (stopping) {
            return;
        }
    }
}

static void *line_main(void *arg)
{
    struct line *line = arg;

    line->backoff_ms = line->config->retry_ms;
    if (line->ops->receive != NULL) {
        upload_main(line);
    }
    while (line->ops->receive == NULL) {
        if (take_reconnect(line)) {
            /* The device path appeared: an offline line tries it at once. */
            line->backoff_ms = line->config->retry_ms;
        }
        if (!line->online && !connect_port(line)) {
            int delay = line->backoff_ms;
            line->backoff_ms = line->backoff_ms * 2 > line->config->retry_max_ms
                                   ? line->config->retry_max_ms
                                   : line->backoff_ms * 2;
            /* Commands wait for the port: waking on them would spin. */
            if (!line_wait(line, delay, false)) {
                break;
            }
            continue;
        }
        run_commands(line);
        if (line->online && line->active_id != 0) {
            poll_test(line);
        } else if (line->online) {
            poll_idle(line);
        }
        if (!line_wait(line, line->config->poll_interval_ms, true)) {
            break;
        }
    }
    close_port(line);
    pthread_mutex_lock(&line->lock);
    line->exited = true;
    pthread_cond_broadcast(&line->wake);
    pthread_mutex_unlock(&line->lock);
    return NULL;
}

int line_start(struct line *line, const struct instrument_config *config,
               const struct driver_ops *ops)
{
    pthread_condattr_t attr;

    memset(line, 0, sizeof(*line));
    line->config = config;
    line->ops = ops;
    line->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (line->wake_fd < 0) {
        return -1;
    }
    pthread_mutex_init(&line->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&line->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&line->thread, NULL, line_main, line) != 0) {
        return -1;
    }
    line->thread_started = true;
    return 0;
}

void line_command(struct line *line, enum line_command_kind kind, uint32_t host_test_id)
{
    pthread_mutex_lock(&line->lock);
    switch (kind) {
    case LINE_CMD_START:
        line->start_requested = true;
        line->start_id = host_test_id;
        break;
    case LINE_CMD_ABORT:
        line->abort_requested = true;
        line->abort_id = host_test_id;
        break;
    case LINE_CMD_ACKNOWLEDGE:
        line->ack_requested = true;
        line->ack_id = host_test_id;
        break;
    case LINE_CMD_FORGET:
        line->forget_requested = true;
        line->forget_id = host_test_id;
        break;
    case LINE_CMD_REREAD:
        line->reread_requested = true;
        line->reread_id = host_test_id;
        break;
    case LINE_CMD_ADOPT:
        line->adopt_requested = true;
        line->adopt_id = host_test_id;
        break;
    case LINE_CMD_RECONNECT:
        line->reconnect_requested = true;
        break;
    case LINE_CMD_RELEASE:
        if (line->release_count == LINE_QUEUE_MAX) {
            /* The analyzer's reply timer ends the message first; it sends it again. */
            log_msg(LOG_WARNING, "%s: release queue full; message %u is not acknowledged",
                    line->config->id, host_test_id);
            break;
        }
        line->releases[line->release_count++] = host_test_id;
        break;
    }
    pthread_cond_broadcast(&line->wake);
    pthread_mutex_unlock(&line->lock);
    wake_line(line);
}

int line_send_message(struct line *line, const char *text)
{
    char *copy = strdup(text);
    int status = -1;

    if (copy == NULL) {
        return -1;
    }
    pthread_mutex_lock(&line->lock);
    if (line->send_count < LINE_QUEUE_MAX) {
        line->sends[line->send_count++] = copy;
        status = 0;
    }
    pthread_mutex_unlock(&line->lock);
    if (status != 0) {
        free(copy);
        return status;
    }
    wake_line(line);
    return 0;
}

void line_request_stop(struct line *line)
{
    if (!line->thread_started) {
        return;
    }
    pthread_mutex_lock(&line->lock);
    line->stopping = true;
    pthread_cond_broadcast(&line->wake);
    pthread_mutex_unlock(&line->lock);
    wake_line(line);
}

void line_stop(struct line *line, const struct timespec *deadline)
{
    bool exited;

    if (!line->thread_started) {
        return;
    }
    pthread_mutex_lock(&line->lock);
    line->stopping = true;
    pthread_cond_broadcast(&line->wake);
    pthread_mutex_unlock(&line->lock);
    wake_line(line);
    pthread_mutex_lock(&line->lock);
    while (!line->exited) {
        if (pthread_cond_timedwait(&line->wake, &line->lock, deadline) == ETIMEDOUT) {
            break;
        }
    }
    exited = line->exited;
    pthread_mutex_unlock(&line->lock);
    if (exited) {
        pthread_join(line->thread, NULL);
        for (size_t i = 0; i < line->send_count; i++) {
            free(line->sends[i]);
        }
        close(line->wake_fd);
    } else {
        log_msg(LOG_WARNING, "%s: line thread still busy in a driver call at exit",
                line->config->id);
        pthread_detach(line->thread);
    }
}
