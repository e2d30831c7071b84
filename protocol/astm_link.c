/* ASTM E1381 low-level protocol as a state machine: establishment, transfer
 * and termination phases for both the receiver and the sender, with frame
 * numbers, checksums, retransmission, timers, contention and the receiver
 * interrupt. Behaviour and its sources are in docs/astm.md. */
#include "protocol/astm_link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a received frame after STX other than its text: frame number,
 * ETB or ETX, two checksum characters and CR. LF ends the frame and is not
 * stored. */
#define RX_FRAME_EXTRA 5

void astm_config_defaults(struct astm_config *config, enum astm_role role)
{
    memset(config, 0, sizeof(*config));
    config->role = role;
    config->reply_timeout_ms = 15000;
    config->frame_timeout_ms = 30000;
    config->busy_retry_ms = 10000;
    config->contention_retry_ms = role == ASTM_ROLE_HOST ? 20000 : 1000;
    /* NOTE: these two are readings that could not be checked against the
     * standard's text: six sends of one frame in all, and 15 s after an
     * interrupt before the next ENQ. */
    config->interrupt_retry_ms = 15000;
    config->max_attempts = 6;
    config->send_frame_text = ASTM_STANDARD_FRAME_TEXT;
    config->max_frame_text = 16384;
    config->hold_final_ack = false;
}

int astm_link_init(struct astm_link *link, const struct astm_config *config)
{
    memset(link, 0, sizeof(*link));
    link->config = *config;
    if (link->config.send_frame_text == 0 ||
        link->config.send_frame_text > ASTM_MAX_SEND_FRAME_TEXT) {
        link->config.send_frame_text = ASTM_MAX_SEND_FRAME_TEXT;
    }
    if (link->config.max_attempts < 1) {
        link->config.max_attempts = 1;
    }
    link->state = ASTM_NEUTRAL;
    link->deadline = ASTM_NO_DEADLINE;
    link->frame_cap = link->config.max_frame_text + RX_FRAME_EXTRA;
    link->frame = malloc(link->frame_cap);
    if (link->frame == NULL) {
        return -ENOMEM;
    }
    return 0;
}

void astm_link_free(struct astm_link *link)
{
    free(link->frame);
    free(link->queue);
    free(link->ends);
    memset(link, 0, sizeof(*link));
}

uint8_t astm_checksum(const uint8_t *bytes, size_t len)
{
    unsigned sum = 0;

    for (size_t i = 0; i < len; i++) {
        sum += bytes[i];
    }
    return (uint8_t)(sum & 0xFF);
}

static const char hex_digits[] = "0123456789ABCDEF";

size_t astm_build_frame(int number, const char *text, size_t text_len, bool final, uint8_t *out)
{
    size_t len = 0;

    out[len++] = ASTM_STX;
    out[len++] = (uint8_t)('0' + (number & 7));
    memcpy(out + len, text, text_len);
    len += text_len;
    out[len++] = final ? ASTM_ETX : ASTM_ETB;

    uint8_t sum = astm_checksum(out + 1, len - 1);
    out[len++] = (uint8_t)hex_digits[sum >> 4];
    out[len++] = (uint8_t)hex_digits[sum & 0xF];
    out[len++] = ASTM_CR;
    out[len++] = ASTM_LF;
    return len;
}

/* ---- Events ---------------------------------------------------------------- */

static void event_clear(struct astm_event *event)
{
    memset(event, 0, sizeof(*event));
    event->kind = ASTM_EV_NONE;
    event->frame_number = -1;
}

static void event_byte(struct astm_link *link, struct astm_event *event, enum astm_event_kind kind,
                       uint8_t byte)
{
    link->out[0] = byte;
    event->kind = kind;
    event->out = link->out;
    event->out_len = 1;
}

static bool deadline_passed(const struct astm_link *link, int64_t now)
{
    return link->deadline != ASTM_NO_DEADLINE && now >= link->deadline;
}

static void go_neutral(struct astm_link *link)
{
    link->state = ASTM_NEUTRAL;
    link->deadline = ASTM_NO_DEADLINE;
    link->interrupt = false;
}

/* ---- Sender queue ------------------------------------------------------------ */

/* Removes the first count messages from the queue. */
static void drop_messages(struct astm_link *link, size_t count)
{
    if (count == 0) {
        return;
    }
    if (count >= link->message_count) {
        link->queue_len = 0;
        link->message_count = 0;
        return;
    }

    size_t cut = link->ends[count - 1];
    memmove(link->queue, link->queue + cut, link->queue_len - cut);
    link->queue_len -= cut;
    for (size_t i = count; i < link->message_count; i++) {
        link->ends[i - count] = link->ends[i] - cut;
    }
    link->message_count -= count;
}

static int reserve(void **buffer, size_t *capacity, size_t needed, size_t item)
{
    if (needed <= *capacity) {
        return 0;
    }

    size_t grown = *capacity == 0 ? 8 : *capacity;
    while (grown < needed) {
        grown *= 2;
    }

    void *bigger = realloc(*buffer, grown * item);
    if (bigger == NULL) {
        return -ENOMEM;
    }
    *buffer = bigger;
    *capacity = grown;
    return 0;
}

int astm_link_send(struct astm_link *link, const char *text, size_t len)
{
    if (len == 0) {
        return -EINVAL;
    }

    char *bigger = realloc(link->queue, link->queue_len + len);
    if (bigger == NULL) {
        return -ENOMEM;
    }
    link->queue = bigger;

    void *ends = link->ends;
    if (reserve(&ends, &link->message_cap, link->message_count + 1, sizeof(size_t)) != 0) {
        return -ENOMEM;
    }
    link->ends = ends;

    memcpy(link->queue + link->queue_len, text, len);
    link->queue_len += len;
    link->ends[link->message_count++] = link->queue_len;
    return 0;
}

size_t astm_link_pending(const struct astm_link *link)
{
    return link->message_count;
}

/* ---- Sender -------------------------------------------------------------------- */

/* Builds the current frame (at link->position of link->message) into out and
 * starts the reply timer. */
static void send_frame(struct astm_link *link, int64_t now, struct astm_event *event,
                       enum astm_event_kind kind)
{
    size_t end = link->ends[link->message];
    size_t left = end - link->position;

    link->chunk = left < link->config.send_frame_text ? left : link->config.send_frame_text;

    bool final = link->position + link->chunk == end;
    size_t len = astm_build_frame(link->send_number, link->queue + link->position, link->chunk,
                                  final, link->out);

    link->state = ASTM_TX_FRAME;
    link->deadline = now + link->config.reply_timeout_ms;
    event->kind = kind;
    event->out = link->out;
    event->out_len = len;
}

/* Ends the sender's link session with EOT, dropping delivered messages and,
 * after a failure, the undelivered ones too. */
static void end_send(struct astm_link *link, struct astm_event *event, enum astm_event_kind kind,
                     bool drop_all)
{
    drop_messages(link, drop_all ? link->message_count : link->delivered);
    event->messages = link->delivered;
    go_neutral(link);
    event_byte(link, event, kind, ASTM_EOT);
}

static void start_transfer(struct astm_link *link, int64_t now, struct astm_event *event)
{
    link->send_number = 1;
    link->message = 0;
    link->position = 0;
    link->delivered = 0;
    link->attempts = 1;
    send_frame(link, now, event, ASTM_EV_OUTPUT);
}

static void frame_accepted(struct astm_link *link, int64_t now, struct astm_event *event)
{
    link->position += link->chunk;
    link->send_number = (link->send_number + 1) & 7;
    link->attempts = 1;
    if (link->position < link->ends[link->message]) {
        send_frame(link, now, event, ASTM_EV_OUTPUT);
        return;
    }

    link->message++;
    link->delivered++;
    if (link->message < link->message_count) {
        send_frame(link, now, event, ASTM_EV_DELIVERED);
        event->messages = link->delivered;
        return;
    }
    end_send(link, event, ASTM_EV_DELIVERED, false);
}

static void frame_refused(struct astm_link *link, int64_t now, struct astm_event *event)
{
    if (link->attempts >= link->config.max_attempts) {
        end_send(link, event, ASTM_EV_SEND_FAILED, true);
        event->error = ASTM_ERR_RETRIES;
        return;
    }
    link->attempts++;
    send_frame(link, now, event, ASTM_EV_OUTPUT);
}

/* The receiver replied to a frame with EOT: the frame counts as accepted and
 * the link session ends. A message cut short is sent again from its start. */
static void frame_interrupted(struct astm_link *link, int64_t now, struct astm_event *event)
{
    link->position += link->chunk;
    if (link->position == link->ends[link->message]) {
        link->delivered++;
    }
    end_send(link, event, ASTM_EV_INTERRUPTED, false);
    link->enq_allowed = now + link->config.interrupt_retry_ms;
}

static void on_enq_reply(struct astm_link *link, uint8_t byte, int64_t now,
                         struct astm_event *event)
{
    switch (byte) {
    case ASTM_ACK:
        start_transfer(link, now, event);
        break;
    case ASTM_NAK:
        go_neutral(link);
        link->enq_allowed = now + link->config.busy_retry_ms;
        event->kind = ASTM_EV_BUSY;
        break;
    case ASTM_ENQ:
        go_neutral(link);
        link->enq_allowed = now + link->config.contention_retry_ms;
        event->kind = ASTM_EV_CONTENTION;
        break;
    default:
        break; /* E1381 senders ignore anything else while waiting */
    }
}

static void on_frame_reply(struct astm_link *link, uint8_t byte, int64_t now,
                           struct astm_event *event)
{
    switch (byte) {
    case ASTM_ACK:
        frame_accepted(link, now, event);
        break;
    case ASTM_NAK:
        frame_refused(link, now, event);
        break;
    case ASTM_EOT:
        frame_interrupted(link, now, event);
        break;
    default:
        break;
    }
}

/* ---- Receiver ------------------------------------------------------------------ */

static void wait_for_frame(struct astm_link *link, int64_t now)
{
    link->state = ASTM_RX_WAIT;
    link->deadline = now + link->config.frame_timeout_ms;
}

static void peer_ended(struct astm_link *link, struct astm_event *event)
{
    go_neutral(link);
    event->kind = ASTM_EV_PEER_ENDED;
}

static void on_neutral(struct astm_link *link, uint8_t byte, int64_t now, struct astm_event *event)
{
    if (byte != ASTM_ENQ) {
        return; /* a neutral link ignores everything but ENQ */
    }
    if (link->busy) {
        event_byte(link, event, ASTM_EV_REFUSED, ASTM_NAK);
        return;
    }
    link->expected_number = 1;
    link->have_previous = false;
    link->interrupt = false;
    wait_for_frame(link, now);
    event_byte(link, event, ASTM_EV_ESTABLISHED, ASTM_ACK);
}

static void begin_frame(struct astm_link *link)
{
    link->state = ASTM_RX_FRAME;
    link->frame_len = 0;
    link->frame_overflow = false;
    link->frame_start = link->fed - 1;
}

/* Control characters that E1381 forbids in frame text; CR is allowed
 * because it ends each record. */
static bool is_restricted(uint8_t byte)
{
    switch (byte) {
    case 0x01: /* SOH */
    case ASTM_STX:
    case ASTM_ETX:
    case ASTM_EOT:
    case ASTM_ENQ:
    case ASTM_ACK:
    case ASTM_LF:
    case 0x10: /* DLE */
    case 0x11: /* DC1 */
    case 0x12: /* DC2 */
    case 0x13: /* DC3 */
    case 0x14: /* DC4 */
    case ASTM_NAK:
    case 0x16: /* SYN */
    case ASTM_ETB:
        return true;
    default:
        return false;
    }
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Checks the stored frame (frame number through CR) and returns why it is
 * defective, or ASTM_ERR_NONE. */
static enum astm_error check_frame(const struct astm_link *link)
{
    const uint8_t *frame = link->frame;
    size_t n = link->frame_len;

    if (link->frame_overflow) {
        return ASTM_ERR_TOO_LONG;
    }
    if (n < RX_FRAME_EXTRA || frame[0] < '0' || frame[0] > '7' || frame[n - 1] != ASTM_CR) {
        return ASTM_ERR_FORMAT;
    }
    if (frame[n - 4] != ASTM_ETX && frame[n - 4] != ASTM_ETB) {
        return ASTM_ERR_FORMAT;
    }
    for (size_t i = 1; i < n - 4; i++) {
        if (is_restricted(frame[i])) {
            return ASTM_ERR_FORMAT;
        }
    }

    int high = hex_value(frame[n - 3]);
    int low = hex_value(frame[n - 2]);
    if (high < 0 || low < 0) {
        return ASTM_ERR_FORMAT;
    }
    if (astm_checksum(frame, n - 3) != (uint8_t)(high * 16 + low)) {
        return ASTM_ERR_CHECKSUM;
    }
    return ASTM_ERR_NONE;
}

static void reject_frame(struct astm_link *link, enum astm_error error, int64_t now,
                         struct astm_event *event)
{
    wait_for_frame(link, now);
    event_byte(link, event, ASTM_EV_BAD_FRAME, ASTM_NAK);
    event->error = error;
}

static void accept_frame(struct astm_link *link, int64_t now, struct astm_event *event)
{
    size_t n = link->frame_len;
    bool final = link->frame[n - 4] == ASTM_ETX;

    link->expected_number = (link->expected_number + 1) & 7;
    link->have_previous = true;
    event->text = (const char *)link->frame + 1;
    event->text_len = n - RX_FRAME_EXTRA;
    event->final = final;
    if (final && link->config.hold_final_ack) {
        link->state = ASTM_RX_HELD;
        link->deadline = ASTM_NO_DEADLINE;
        event->kind = ASTM_EV_FRAME;
        event->held = true;
        return;
    }

    wait_for_frame(link, now);
    event_byte(link, event, ASTM_EV_FRAME, link->interrupt ? ASTM_EOT : ASTM_ACK);
    link->interrupt = false;
}

static void end_frame(struct astm_link *link, int64_t now, struct astm_event *event)
{
    enum astm_error error = check_frame(link);

    event->frame_offset = (size_t)link->frame_start;
    if (link->frame_len > 0 && link->frame[0] >= '0' && link->frame[0] <= '7') {
        event->frame_number = link->frame[0] - '0';
    }
    if (error != ASTM_ERR_NONE) {
        reject_frame(link, error, now, event);
        return;
    }

    int number = event->frame_number;
    if (number == link->expected_number) {
        accept_frame(link, now, event);
        return;
    }
    if (link->have_previous && number == ((link->expected_number + 7) & 7)) {
        wait_for_frame(link, now);
        event_byte(link, event, ASTM_EV_DUPLICATE, ASTM_ACK);
        return;
    }
    reject_frame(link, ASTM_ERR_FRAME_NUMBER, now, event);
}

static void on_frame_byte(struct astm_link *link, uint8_t byte, int64_t now,
                          struct astm_event *event)
{
    switch (byte) {
    case ASTM_STX:
        begin_frame(link); /* a new STX restarts a frame cut short */
        return;
    case ASTM_EOT:
        peer_ended(link, event); /* EOT cannot occur in a frame: the sender gave up */
        return;
    case ASTM_LF:
        end_frame(link, now, event);
        return;
    default:
        break;
    }

    if (link->frame_len < link->frame_cap) {
        link->frame[link->frame_len++] = byte;
    } else {
        link->frame_overflow = true;
    }
}

static void on_between_frames(struct astm_link *link, uint8_t byte, struct astm_event *event)
{
    if (byte == ASTM_STX) {
        begin_frame(link);
    } else if (byte == ASTM_EOT) {
        peer_ended(link, event);
    }
    /* Anything else between frames is line noise and ignored. */
}

/* ---- Entry points ------------------------------------------------------------ */

static void handle_byte(struct astm_link *link, uint8_t byte, int64_t now, struct astm_event *event)
{
    switch (link->state) {
    case ASTM_NEUTRAL:
        on_neutral(link, byte, now, event);
        break;
    case ASTM_RX_WAIT:
        on_between_frames(link, byte, event);
        break;
    case ASTM_RX_FRAME:
        on_frame_byte(link, byte, now, event);
        break;
    case ASTM_RX_HELD:
        if (byte == ASTM_EOT) {
            peer_ended(link, event); /* the sender stopped waiting for our reply */
        }
        break;
    case ASTM_TX_ENQ:
        on_enq_reply(link, byte, now, event);
        break;
    case ASTM_TX_FRAME:
        on_frame_reply(link, byte, now, event);
        break;
    }
}

static void handle_timeout(struct astm_link *link, struct astm_event *event)
{
    switch (link->state) {
    case ASTM_RX_WAIT:
    case ASTM_RX_FRAME:
        go_neutral(link);
        event->kind = ASTM_EV_RX_TIMEOUT;
        break;
    case ASTM_TX_ENQ:
    case ASTM_TX_FRAME:
        end_send(link, event, ASTM_EV_SEND_FAILED, true);
        event->error = ASTM_ERR_NO_REPLY;
        break;
    case ASTM_NEUTRAL:
    case ASTM_RX_HELD:
        link->deadline = ASTM_NO_DEADLINE;
        break;
    }
}

/* Takes the bytes of a frame up to the next STX, EOT or LF in one copy,
 * as on_frame_byte would one at a time, and returns how many it took.
 * Byte-at-a-time dispatch cost about half of the time spent reading a
 * transcript, and memchr finds the three bytes faster than a loop. */
static size_t take_frame_run(struct astm_link *link, const uint8_t *data, size_t len)
{
    size_t run = len;
    const uint8_t stops[] = {ASTM_LF, ASTM_STX, ASTM_EOT};

    for (size_t i = 0; i < sizeof(stops); i++) {
        const uint8_t *found = memchr(data, stops[i], run);
        if (found != NULL) {
            run = (size_t)(found - data);
        }
    }
    size_t room = link->frame_cap - link->frame_len;
    size_t copied = run < room ? run : room;
    memcpy(link->frame + link->frame_len, data, copied);
    link->frame_len += copied;
    if (copied < run) {
        link->frame_overflow = true;
    }
    link->fed += run;
    return run;
}

size_t astm_link_input(struct astm_link *link, const uint8_t *data, size_t len, int64_t now,
                       struct astm_event *event)
{
    event_clear(event);
    if (deadline_passed(link, now)) {
        handle_timeout(link, event);
        return 0;
    }

    for (size_t i = 0; i < len; i++) {
        if (link->state == ASTM_RX_FRAME) {
            i += take_frame_run(link, data + i, len - i);
            if (i == len) {
                break;
            }
        }
        link->fed++;
        handle_byte(link, data[i], now, event);
        if (event->kind != ASTM_EV_NONE) {
            return i + 1;
        }
    }
    return len;
}

void astm_link_poll(struct astm_link *link, int64_t now, struct astm_event *event)
{
    event_clear(event);
    if (deadline_passed(link, now)) {
        handle_timeout(link, event);
        return;
    }
    if (link->state == ASTM_NEUTRAL && link->message_count > 0 && now >= link->enq_allowed) {
        link->state = ASTM_TX_ENQ;
        link->deadline = now + link->config.reply_timeout_ms;
        event_byte(link, event, ASTM_EV_OUTPUT, ASTM_ENQ);
    }
}

int64_t astm_link_deadline(const struct astm_link *link)
{
    if (link->state == ASTM_NEUTRAL) {
        return link->message_count > 0 ? link->enq_allowed : ASTM_NO_DEADLINE;
    }
    return link->deadline;
}

void astm_link_release(struct astm_link *link, int64_t now, struct astm_event *event)
{
    event_clear(event);
    if (link->state != ASTM_RX_HELD) {
        return;
    }
    wait_for_frame(link, now);
    event_byte(link, event, ASTM_EV_OUTPUT, link->interrupt ? ASTM_EOT : ASTM_ACK);
    link->interrupt = false;
}

void astm_link_interrupt(struct astm_link *link)
{
    link->interrupt = true;
}

void astm_link_set_busy(struct astm_link *link, bool busy)
{
    link->busy = busy;
}

const char *astm_event_name(enum astm_event_kind kind)
{
    static const char *const names[] = {
        [ASTM_EV_NONE] = "none",
        [ASTM_EV_OUTPUT] = "output",
        [ASTM_EV_ESTABLISHED] = "established",
        [ASTM_EV_REFUSED] = "refused",
        [ASTM_EV_FRAME] = "frame",
        [ASTM_EV_DUPLICATE] = "duplicate frame",
        [ASTM_EV_BAD_FRAME] = "defective frame",
        [ASTM_EV_PEER_ENDED] = "peer ended",
        [ASTM_EV_RX_TIMEOUT] = "receive timeout",
        [ASTM_EV_BUSY] = "receiver busy",
        [ASTM_EV_CONTENTION] = "contention",
        [ASTM_EV_DELIVERED] = "delivered",
        [ASTM_EV_INTERRUPTED] = "interrupted",
        [ASTM_EV_SEND_FAILED] = "send failed",
    };

    return (size_t)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}

const char *astm_error_name(enum astm_error error)
{
    static const char *const names[] = {
        [ASTM_ERR_NONE] = "no error",
        [ASTM_ERR_CHECKSUM] = "checksum mismatch",
        [ASTM_ERR_FRAME_NUMBER] = "unexpected frame number",
        [ASTM_ERR_FORMAT] = "malformed frame",
        [ASTM_ERR_TOO_LONG] = "frame text too long",
        [ASTM_ERR_NO_REPLY] = "no reply in time",
        [ASTM_ERR_RETRIES] = "frame not accepted after the maximum attempts",
    };

    return (size_t)error < sizeof(names) / sizeof(names[0]) ? names[error] : "unknown";
}
