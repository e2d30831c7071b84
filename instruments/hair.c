/* The hair analyzer: ASTM E1381 frames and E1394 records on a termios port
 * (docs/hair-astm.md). The driver handles only the wire: it turns each
 * uploaded message into a driver_upload, sends ACKs and queued messages,
 * and leaves linking, mapping and storage to the daemon. */
#include "instruments/driver.h"
#include "instruments/serial_port.h"
#include "protocol/astm_link.h"
#include "protocol/astm_record.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hair_state {
    const struct instrument_config *config;
    int fd;
    struct astm_link link;
    struct astm_assembler assembler;
    struct astm_delimiters delimiters;
    struct astm_record record;
    struct driver_upload message; /* the message being received */
    bool has_order;               /* an O record arrived in it */
    bool has_query;
    uint32_t next_number;
    uint32_t held_number; /* the message whose final ACK is held, 0 for none */
    uint8_t input[4096];
    size_t input_len;
    size_t input_pos;
};

static int64_t now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void link_config(const struct instrument_config *config, struct astm_config *astm)
{
    astm_config_defaults(astm, ASTM_ROLE_HOST);
    astm->reply_timeout_ms = config->astm_reply_timeout_ms;
    astm->frame_timeout_ms = config->astm_frame_timeout_ms;
    astm->busy_retry_ms = config->astm_busy_retry_ms;
    astm->contention_retry_ms = config->astm_contention_retry_ms;
    astm->interrupt_retry_ms = config->astm_interrupt_retry_ms;
    astm->send_frame_text = (size_t)config->astm_send_frame_text;
    astm->max_frame_text = (size_t)config->astm_max_frame_text;
    astm->hold_final_ack = true;
}

static void reset_message(struct hair_state *hair)
{
    memset(&hair->message, 0, sizeof(hair->message));
    hair->has_order = false;
    hair->has_query = false;
    astm_delimiters_default(&hair->delimiters);
}

static int hair_open(const struct instrument_config *config, void **state, char *err, size_t size)
{
    struct hair_state *hair = calloc(1, sizeof(*hair));
    struct astm_config astm;

    if (hair == NULL) {
        snprintf(err, size, "out of memory");
        return DRIVER_IO;
    }
    /* ASTM analyzers default to 9600 baud 8N1, not the Modbus 19200 8E1. */
    int baud = config->framing_set ? config->baud : 9600;
    char parity = config->framing_set ? config->parity : 'N';
    hair->fd = serial_port_open(config->device, baud, parity, config->data_bits, config->stop_bits,
                                err, size);
    if (hair->fd < 0) {
        int status = hair->fd;
        free(hair);
        return status;
    }
    hair->config = config;
    link_config(config, &astm);
    if (astm_link_init(&hair->link, &astm) != 0) {
        close(hair->fd);
        free(hair);
        snprintf(err, size, "out of memory");
        return DRIVER_IO;
    }
    astm_assembler_init(&hair->assembler);
    astm_record_init(&hair->record);
    reset_message(hair);
    *state = hair;
    return DRIVER_OK;
}

static void hair_close(void *state)
{
    struct hair_state *hair = state;

    astm_link_free(&hair->link);
    astm_assembler_free(&hair->assembler);
    astm_record_free(&hair->record);
    close(hair->fd);
    free(hair);
}

/* ASTM gives no identity request: the analyzer is known by its configured
 * ID until its records name it (R.14). */
static int hair_identify(void *state, struct driver_identity *identity, char *err, size_t size)
{
    struct hair_state *hair = state;

    (void)err;
    (void)size;
    memset(identity, 0, sizeof(*identity));
    snprintf(identity->model, sizeof(identity->model), "hair (ASTM)");
    snprintf(identity->serial, sizeof(identity->serial), "%.31s", hair->config->id);
    return DRIVER_OK;
}

static void copy_component(const struct astm_record *record, unsigned field, unsigned component,
                           char *out, size_t size)
{
    size_t len = 0;
    const char *text = astm_record_get(record, field, 1, component, &len);

    if (text == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), text);
    driver_clean_text(out);
}

static void take_result_record(struct hair_state *hair)
{
    struct driver_upload *m = &hair->message;
    char status[4];

    if (m->count == DRIVER_MAX_UPLOAD_ROWS) {
        m->skipped++;
        return;
    }
    struct driver_upload_row *row = &m->rows[m->count++];
    snprintf(row->specimen, sizeof(row->specimen), "%s", m->specimen);
    snprintf(row->subject_ref, sizeof(row->subject_ref), "%s", m->subject_ref);
    copy_component(&hair->record, 3, 4, row->code, sizeof(row->code));
    copy_component(&hair->record, 4, 1, row->value, sizeof(row->value));
    copy_component(&hair->record, 5, 1, row->unit, sizeof(row->unit));
    copy_component(&hair->record, 9, 1, status, sizeof(status));
    copy_component(&hair->record, 13, 1, row->completed, sizeof(row->completed));
    copy_component(&hair->record, 14, 1, row->instrument, sizeof(row->instrument));
    row->status = status[0];
}

static void take_record(struct hair_state *hair, const char *text, size_t len)
{
    if (len > 0 && text[0] == 'H') {
        reset_message(hair);
        if (astm_delimiters_from_header(text, len, &hair->delimiters) != 0) {
            astm_delimiters_default(&hair->delimiters);
        }
    }
    if (astm_record_parse(text, len, &hair->delimiters, &hair->record) != 0) {
        return;
    }
    switch (astm_record_type(&hair->record)) {
    case 'P':
        copy_component(&hair->record, 3, 1, hair->message.subject_ref,
                       sizeof(hair->message.subject_ref));
        /* A new patient starts without a specimen until its O record. */
        hair->message.specimen[0] = '\0';
        break;
    case 'O':
        copy_component(&hair->record, 3, 1, hair->message.specimen, sizeof(hair->message.specimen));
        hair->has_order = true;
        break;
    case 'R':
        take_result_record(hair);
        break;
    case 'Q':
        copy_component(&hair->record, 3, 2, hair->message.specimen, sizeof(hair->message.specimen));
        if (hair->message.specimen[0] == '\0') {
            copy_component(&hair->record, 3, 1, hair->message.specimen,
                           sizeof(hair->message.specimen));
        }
        hair->has_query = true;
        break;
    default:
        break;
    }
}

static int write_out(struct hair_state *hair, const struct astm_event *event, char *err,
                     size_t size)
{
    if (event->out_len == 0) {
        return DRIVER_OK;
    }
    return serial_port_write(hair->fd, event->out, event->out_len,
                             now_ms() + hair->config->astm_reply_timeout_ms, err, size);
}

/* Fills upload with a note to log. number is a frame number, or -1. An
 * error note reports lost or rejected data. */
static void note(struct driver_upload *upload, const char *text, int number, bool error)
{
    upload->kind = UPLOAD_NOTE;
    upload->note_error = error;
    if (number >= 0) {
        snprintf(upload->note, sizeof(upload->note), "%s (frame number %d)", text, number);
    } else {
        snprintf(upload->note, sizeof(upload->note), "%s", text);
    }
}

/* A frame ending with ETX completed a message: results wait for release,
 * anything else is acknowledged at once. */
static int finish_message(struct hair_state *hair, struct driver_upload *upload, char *err,
                          size_t size)
{
    struct astm_event release;

    if (hair->has_order && !hair->has_query) {
        hair->held_number = ++hair->next_number;
        *upload = hair->message;
        upload->kind = UPLOAD_RESULTS;
        upload->number = hair->held_number;
        reset_message(hair);
        return DRIVER_OK;
    }
    astm_link_release(&hair->link, now_ms(), &release);
    int status = write_out(hair, &release, err, size);
    if (hair->has_query) {
        *upload = hair->message;
        upload->kind = UPLOAD_QUERY;
    } else {
        note(upload, "a message without O or Q record was acknowledged and ignored", -1, true);
    }
    reset_message(hair);
    return status;
}

static int take_frame(struct hair_state *hair, const struct astm_event *event,
                      struct driver_upload *upload, char *err, size_t size)
{
    const char *record;
    size_t len;

    if (astm_assembler_add(&hair->assembler, event->text, event->text_len, event->final) ==
        -E2BIG) {
        note(upload, "a record over the size limit was dropped", event->frame_number, true);
    }
    while (astm_assembler_next(&hair->assembler, &record, &len) == 1) {
        take_record(hair, record, len);
    }
    if (!event->final) {
        return DRIVER_OK;
    }
    return finish_message(hair, upload, err, size);
}

/* Acts on one link event: writes its bytes and fills upload when the event
 * completes a message or deserves a log line. */
static int handle_event(struct hair_state *hair, const struct astm_event *event,
                        struct driver_upload *upload, char *err, size_t size)
{
    int status = write_out(hair, event, err, size);
    char text[160];

    if (status != DRIVER_OK) {
        return status;
    }
    switch (event->kind) {
    case ASTM_EV_FRAME:
        return take_frame(hair, event, upload, err, size);
    case ASTM_EV_BAD_FRAME:
        snprintf(text, sizeof(text), "frame rejected with NAK: %s", astm_error_name(event->error));
        note(upload, text, event->frame_number, true);
        break;
    case ASTM_EV_RX_TIMEOUT:
    case ASTM_EV_PEER_ENDED:
        if (hair->assembler.len > hair->assembler.start || hair->message.count > 0 ||
            hair->has_order) {
            snprintf(text, sizeof(text),
                     "link session ended (%s) in the middle of a message, "
                     "which was dropped",
                     astm_event_name(event->kind));
            note(upload, text, -1, true);
        }
        astm_assembler_reset(&hair->assembler);
        reset_message(hair);
        hair->held_number = 0;
        break;
    case ASTM_EV_CONTENTION:
    case ASTM_EV_INTERRUPTED:
    case ASTM_EV_BUSY:
        snprintf(text, sizeof(text), "sending to the analyzer: %s", astm_event_name(event->kind));
        note(upload, text, -1, false);
        break;
    case ASTM_EV_DELIVERED:
        note(upload, "message delivered to the analyzer", -1, false);
        break;
    case ASTM_EV_SEND_FAILED:
        snprintf(text, sizeof(text), "sending to the analyzer failed: %s",
                 astm_error_name(event->error));
        note(upload, text, -1, true);
        break;
    default:
        break;
    }
    return DRIVER_OK;
}

/* Feeds the bytes read so far to the link. Returns early when an event
 * filled upload. */
static int feed_input(struct hair_state *hair, struct driver_upload *upload, char *err, size_t size)
{
    while (hair->input_pos < hair->input_len && upload->kind == UPLOAD_NONE) {
        struct astm_event event;
        size_t used = astm_link_input(&hair->link, hair->input + hair->input_pos,
                                      hair->input_len - hair->input_pos, now_ms(), &event);
        hair->input_pos += used;
        int status = handle_event(hair, &event, upload, err, size);
        if (status != DRIVER_OK) {
            return status;
        }
    }
    return DRIVER_OK;
}

static int read_port(struct hair_state *hair, char *err, size_t size)
{
    ssize_t got = read(hair->fd, hair->input, sizeof(hair->input));

    if (got > 0) {
        hair->input_len = (size_t)got;
        hair->input_pos = 0;
        return DRIVER_OK;
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return DRIVER_OK;
    }
    snprintf(err, size, "reading %s failed: %s", hair->config->device,
             got == 0 ? "end of file" : strerror(errno));
    return DRIVER_IO;
}

/* Waits on the port and wake_fd until until_ms or the link's next timer.
 * Sets *woken when wake_fd became readable. */
static int wait_port(struct hair_state *hair, int wake_fd, int64_t until_ms, bool *woken, char *err,
                     size_t size)
{
    int64_t deadline = astm_link_deadline(&hair->link);
    int64_t now = now_ms();

    if (deadline == ASTM_NO_DEADLINE || deadline > until_ms) {
        deadline = until_ms;
    }
    struct pollfd fds[2] = {{.fd = hair->fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
    int timeout = deadline > now ? (int)(deadline - now) : 0;
    if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
        snprintf(err, size, "poll on %s failed: %s", hair->config->device, strerror(errno));
        return DRIVER_IO;
    }
    *woken = (fds[1].revents & POLLIN) != 0;
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
        snprintf(err, size, "%s hung up", hair->config->device);
        return DRIVER_IO;
    }
    if (fds[0].revents & POLLIN) {
        return read_port(hair, err, size);
    }
    return DRIVER_OK;
}

static int hair_receive(void *state, int wake_fd, int wait_ms, struct driver_upload *upload,
                        char *err, size_t size)
{
    struct hair_state *hair = state;
    int64_t until = now_ms() + wait_ms;

    upload->kind = UPLOAD_NONE;
    while (true) {
        int status = feed_input(hair, upload, err, size);
        if (status != DRIVER_OK || upload->kind != UPLOAD_NONE) {
            return status;
        }
        struct astm_event event;
        astm_link_poll(&hair->link, now_ms(), &event);
        status = handle_event(hair, &event, upload, err, size);
        if (status != DRIVER_OK || upload->kind != UPLOAD_NONE) {
            return status;
        }
        bool woken = false;
        status = wait_port(hair, wake_fd, until, &woken, err, size);
        if (status != DRIVER_OK || woken ||
            (now_ms() >= until && hair->input_pos >= hair->input_len)) {
            return status;
        }
    }
}

static int hair_release(void *state, uint32_t number, char *err, size_t size)
{
    struct hair_state *hair = state;
    struct astm_event event;

    if (hair->held_number != number || hair->link.state != ASTM_RX_HELD) {
        snprintf(err, size,
                 "message %u is no longer held (the analyzer ended the link session); it will "
                 "send the message again",
                 number);
        return DRIVER_TIMEOUT;
    }
    hair->held_number = 0;
    astm_link_release(&hair->link, now_ms(), &event);
    return write_out(hair, &event, err, size);
}

static int hair_send_message(void *state, const char *text, size_t len, char *err, size_t size)
{
    struct hair_state *hair = state;

    if (astm_link_send(&hair->link, text, len) != 0) {
        snprintf(err, size, "cannot queue a message of %zu bytes", len);
        return DRIVER_IO;
    }
    return DRIVER_OK;
}

static int not_polled(void *state, char *err, size_t size)
{
    (void)state;
    snprintf(err, size, "the hair analyzer uploads results on its own and takes no commands");
    return DRIVER_EXCEPTION;
}

static int hair_start(void *state, uint32_t host_test_id, char *err, size_t size)
{
    (void)host_test_id;
    return not_polled(state, err, size);
}

static int hair_poll(void *state, struct driver_progress *progress, char *err, size_t size)
{
    memset(progress, 0, sizeof(*progress));
    progress->step = "idle";
    progress->idle = true;
    (void)state;
    (void)err;
    (void)size;
    return DRIVER_OK;
}

static int hair_read_result(void *state, uint32_t expected_id, struct driver_result *result,
                            char *err, size_t size)
{
    (void)expected_id;
    (void)result;
    return not_polled(state, err, size);
}

static int hair_acknowledge(void *state, uint32_t host_test_id, char *err, size_t size)
{
    (void)host_test_id;
    return not_polled(state, err, size);
}

const struct driver_ops hair_driver = {
    .name = "hair",
    .specimen_matrix = "hair",
    .refusal_step = NULL,
    .open = hair_open,
    .identify = hair_identify,
    .start = hair_start,
    .poll = hair_poll,
    .read_result = hair_read_result,
    .acknowledge = hair_acknowledge,
    .abort = hair_acknowledge,
    .close = hair_close,
    .receive = hair_receive,
    .release = hair_release,
    .send_message = hair_send_message,
};
