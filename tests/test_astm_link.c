/* Unit tests of the ASTM E1381 link in protocol/astm_link.c, on virtual
 * time: establishment, frames, checksums, frame numbers, retransmission,
 * timers, contention, the receiver interrupt, the held final ACK and the
 * sender, plus the rule that chunking never changes the outcome. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/astm_link.h"

#define CASE_TIMEOUT 10 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */
#define MAX_EVENTS 64

/* A copy of one event, so that later calls on the link keep it intact. */
struct copy {
    enum astm_event_kind kind;
    uint8_t out[ASTM_MAX_SEND_FRAME_TEXT + ASTM_FRAME_OVERHEAD];
    size_t out_len;
    char text[8192];
    size_t text_len;
    int frame_number;
    bool final;
    bool held;
    enum astm_error error;
    size_t messages;
    size_t frame_offset;
};

struct trace {
    struct copy events[MAX_EVENTS];
    size_t count;
};

static void keep(struct trace *trace, const struct astm_event *event)
{
    ck_assert_uint_lt(trace->count, MAX_EVENTS);

    struct copy *copy = &trace->events[trace->count++];
    memset(copy, 0, sizeof(*copy));
    copy->kind = event->kind;
    ck_assert_uint_le(event->out_len, sizeof(copy->out));
    if (event->out_len > 0) {
        memcpy(copy->out, event->out, event->out_len);
    }
    copy->out_len = event->out_len;
    ck_assert_uint_le(event->text_len, sizeof(copy->text));
    if (event->text_len > 0) {
        memcpy(copy->text, event->text, event->text_len);
    }
    copy->text_len = event->text_len;
    copy->frame_number = event->frame_number;
    copy->final = event->final;
    copy->held = event->held;
    copy->error = event->error;
    copy->messages = event->messages;
    copy->frame_offset = event->frame_offset;
}

/* Feeds bytes in chunks of at most `chunk` bytes (0: all at once) and keeps
 * every event. */
static void feed_chunked(struct astm_link *link, const uint8_t *data, size_t len, size_t chunk,
                         int64_t now, struct trace *trace)
{
    struct astm_event event;
    size_t done = 0;

    while (done < len) {
        size_t size = chunk == 0 || len - done < chunk ? len - done : chunk;
        size_t used = astm_link_input(link, data + done, size, now, &event);

        ck_assert_uint_le(used, size);
        done += used;
        if (event.kind != ASTM_EV_NONE) {
            keep(trace, &event);
        } else {
            ck_assert_uint_eq(used, size);
        }
    }
}

static void feed(struct astm_link *link, const void *data, size_t len, int64_t now,
                 struct trace *trace)
{
    feed_chunked(link, data, len, 0, now, trace);
}

/* Feeds one byte that must produce exactly one event, and returns it. */
static const struct copy *feed_byte(struct astm_link *link, uint8_t byte, int64_t now,
                                    struct trace *trace)
{
    size_t before = trace->count;

    feed(link, &byte, 1, now, trace);
    ck_assert_uint_eq(trace->count, before + 1);
    return &trace->events[before];
}

static const struct copy *poll_link(struct astm_link *link, int64_t now, struct trace *trace)
{
    struct astm_event event;

    astm_link_poll(link, now, &event);
    keep(trace, &event);
    return &trace->events[trace->count - 1];
}

static size_t frame(int number, const char *text, bool final, uint8_t *out)
{
    return astm_build_frame(number, text, strlen(text), final, out);
}

static void start_link(struct astm_link *link, enum astm_role role, bool hold)
{
    struct astm_config config;

    astm_config_defaults(&config, role);
    config.hold_final_ack = hold;
    ck_assert_int_eq(astm_link_init(link, &config), 0);
}

/* Starts a host link and accepts the peer's ENQ at time 0. */
static void established(struct astm_link *link, struct trace *trace, bool hold)
{
    start_link(link, ASTM_ROLE_HOST, hold);
    const struct copy *event = feed_byte(link, ASTM_ENQ, 0, trace);
    ck_assert_int_eq(event->kind, ASTM_EV_ESTABLISHED);
}

static void assert_reply(const struct copy *event, uint8_t byte)
{
    ck_assert_uint_eq(event->out_len, 1);
    ck_assert_uint_eq(event->out[0], byte);
}

/* ---- Checksum and frame layout ------------------------------------------------ */

START_TEST(checksum_known_frames)
{
    /* Frames of a cobas u 411 and a cobas c 111 transcript: "1L|1|N" CR ETX
     * sums to 0x04 and "7L|1|N" CR ETX to 0x0A. */
    const uint8_t first[] = "1L|1|N\r\x03";
    const uint8_t seventh[] = "7L|1|N\r\x03";

    ck_assert_uint_eq(astm_checksum(first, sizeof first - 1), 0x04);
    ck_assert_uint_eq(astm_checksum(seventh, sizeof seventh - 1), 0x0A);
}
END_TEST

START_TEST(build_frame_layout)
{
    uint8_t out[64];
    size_t len = frame(3, "R|1|^^^X|\r", false, out);
    const uint8_t expected_start[] = {ASTM_STX, '3', 'R'};

    ck_assert_uint_eq(len, 10 + ASTM_FRAME_OVERHEAD);
    ck_assert_mem_eq(out, expected_start, sizeof expected_start);
    ck_assert_uint_eq(out[len - 5], ASTM_ETB);
    ck_assert_uint_eq(out[len - 2], ASTM_CR);
    ck_assert_uint_eq(out[len - 1], ASTM_LF);

    char hex[3] = {(char)out[len - 4], (char)out[len - 3], '\0'};
    char expected[3];
    snprintf(expected, sizeof expected, "%02X", astm_checksum(out + 1, len - 5));
    ck_assert_str_eq(hex, expected);
}
END_TEST

START_TEST(build_frame_uppercase_hex)
{
    uint8_t out[64];
    /* '0' + 'Z' + ETX = 0x30 + 0x5A + 0x03 = 0x8D: the letter must be upper case. */
    size_t len = frame(0, "Z", true, out);

    ck_assert_uint_eq(out[len - 4], '8');
    ck_assert_uint_eq(out[len - 3], 'D');
}
END_TEST

START_TEST(config_defaults_standard)
{
    struct astm_config host;
    struct astm_config instrument;

    astm_config_defaults(&host, ASTM_ROLE_HOST);
    astm_config_defaults(&instrument, ASTM_ROLE_INSTRUMENT);
    ck_assert_int_eq(host.reply_timeout_ms, 15000);
    ck_assert_int_eq(host.frame_timeout_ms, 30000);
    ck_assert_int_eq(host.busy_retry_ms, 10000);
    ck_assert_int_eq(host.contention_retry_ms, 20000);
    ck_assert_int_eq(instrument.contention_retry_ms, 1000);
    ck_assert_int_eq(host.max_attempts, 6);
    ck_assert_uint_eq(host.send_frame_text, 240);
    ck_assert(!host.hold_final_ack);
}
END_TEST

/* ---- Receiver ----------------------------------------------------------------- */

START_TEST(rx_enq_acknowledged)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    established(&link, &trace, false);
    assert_reply(&trace.events[0], ASTM_ACK);
    ck_assert_int_eq(astm_link_deadline(&link), 30000);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_busy_refuses_enq)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    start_link(&link, ASTM_ROLE_HOST, false);
    astm_link_set_busy(&link, true);
    const struct copy *event = feed_byte(&link, ASTM_ENQ, 0, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_REFUSED);
    assert_reply(event, ASTM_NAK);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);

    astm_link_set_busy(&link, false);
    event = feed_byte(&link, ASTM_ENQ, 10000, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_ESTABLISHED);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_neutral_ignores_noise)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t noise[64];
    size_t len = frame(1, "H|\\^&\r", true, noise);

    start_link(&link, ASTM_ROLE_HOST, false);
    noise[len++] = ASTM_EOT;
    noise[len++] = ASTM_ACK;
    noise[len++] = 'x';
    feed(&link, noise, len, 0, &trace);
    ck_assert_uint_eq(trace.count, 0);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_frame_accepted)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "H|\\^&\rL|1\r", true, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 500, &trace);
    ck_assert_uint_eq(trace.count, 2);

    const struct copy *event = &trace.events[1];
    ck_assert_int_eq(event->kind, ASTM_EV_FRAME);
    ck_assert_int_eq(event->frame_number, 1);
    ck_assert(event->final);
    ck_assert(!event->held);
    ck_assert_uint_eq(event->text_len, 10);
    ck_assert_mem_eq(event->text, "H|\\^&\rL|1\r", 10);
    ck_assert_uint_eq(event->frame_offset, 1);
    assert_reply(event, ASTM_ACK);
    ck_assert_int_eq(astm_link_deadline(&link), 500 + 30000);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_lowercase_checksum_accepted)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "Y", true, bytes); /* '1' + 'Y' + ETX = 0x8D */

    ck_assert_uint_eq(bytes[len - 3], 'D');
    bytes[len - 3] = 'd';
    established(&link, &trace, false);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_FRAME);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_bad_checksum_nak_then_retransmit)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t good[64];
    uint8_t bad[64];
    size_t len = frame(1, "P|1\r", false, good);

    memcpy(bad, good, len);
    bad[len - 3] = bad[len - 3] == '0' ? '1' : '0';
    established(&link, &trace, false);
    feed(&link, bad, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_BAD_FRAME);
    ck_assert_int_eq(trace.events[1].error, ASTM_ERR_CHECKSUM);
    ck_assert_int_eq(trace.events[1].frame_number, 1);
    assert_reply(&trace.events[1], ASTM_NAK);

    feed(&link, good, len, 100, &trace);
    ck_assert_int_eq(trace.events[2].kind, ASTM_EV_FRAME);
    ck_assert_int_eq(trace.events[2].frame_number, 1);
    ck_assert(!trace.events[2].final);
    assert_reply(&trace.events[2], ASTM_ACK);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_unexpected_number_nak)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(3, "P|1\r", false, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_BAD_FRAME);
    ck_assert_int_eq(trace.events[1].error, ASTM_ERR_FRAME_NUMBER);
    ck_assert_int_eq(trace.events[1].frame_number, 3);
    assert_reply(&trace.events[1], ASTM_NAK);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_first_frame_zero_rejected)
{
    /* Frame 0 right after ENQ is not a repeat of anything: it is refused. */
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(0, "P|1\r", false, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_BAD_FRAME);
    ck_assert_int_eq(trace.events[1].error, ASTM_ERR_FRAME_NUMBER);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_duplicate_acked_not_stored)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "P|1\r", false, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 0, &trace);
    feed(&link, bytes, len, 10, &trace);
    ck_assert_uint_eq(trace.count, 3);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_FRAME);
    ck_assert_int_eq(trace.events[2].kind, ASTM_EV_DUPLICATE);
    ck_assert_uint_eq(trace.events[2].text_len, 0);
    ck_assert_int_eq(trace.events[2].frame_number, 1);
    assert_reply(&trace.events[2], ASTM_ACK);

    /* The next frame is still number 2. */
    len = frame(2, "L|1\r", true, bytes);
    feed(&link, bytes, len, 20, &trace);
    ck_assert_int_eq(trace.events[3].kind, ASTM_EV_FRAME);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_frame_numbers_wrap)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    const int expected[] = {1, 2, 3, 4, 5, 6, 7, 0, 1, 2};

    established(&link, &trace, false);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        size_t len = frame(expected[i], "R|1\r", false, bytes);

        feed(&link, bytes, len, (int64_t)i, &trace);
        ck_assert_int_eq(trace.events[i + 1].kind, ASTM_EV_FRAME);
        ck_assert_int_eq(trace.events[i + 1].frame_number, expected[i]);
    }
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_oversize_frame_nak)
{
    struct astm_link link;
    struct astm_config config;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];

    astm_config_defaults(&config, ASTM_ROLE_HOST);
    config.max_frame_text = 10;
    ck_assert_int_eq(astm_link_init(&link, &config), 0);
    feed_byte(&link, ASTM_ENQ, 0, &trace);

    size_t len = frame(1, "0123456789A", false, bytes);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_BAD_FRAME);
    ck_assert_int_eq(trace.events[1].error, ASTM_ERR_TOO_LONG);
    assert_reply(&trace.events[1], ASTM_NAK);

    len = frame(1, "0123456789", false, bytes);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[2].kind, ASTM_EV_FRAME);
    ck_assert_uint_eq(trace.events[2].text_len, 10);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_long_frame_accepted)
{
    /* Real analyzers send single frames of 623 and 4,337 bytes. */
    struct astm_link link;
    struct trace trace = {.count = 0};
    static char text[4330];
    static uint8_t bytes[sizeof text + ASTM_FRAME_OVERHEAD];

    for (size_t i = 0; i < sizeof text - 1; i++) {
        text[i] = i % 80 == 79 ? '\r' : (char)('A' + i % 26);
    }
    text[sizeof text - 1] = '\0';
    established(&link, &trace, false);

    size_t len = frame(1, text, true, bytes);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_FRAME);
    ck_assert_uint_eq(trace.events[1].text_len, sizeof text - 1);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_malformed_frames_nak)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len;

    established(&link, &trace, false);

    /* No CR before LF. */
    len = frame(1, "P|1\r", false, bytes);
    bytes[len - 2] = ASTM_LF;
    feed(&link, bytes, len - 1, 0, &trace);
    ck_assert_int_eq(trace.events[1].error, ASTM_ERR_FORMAT);

    /* A restricted control character (DLE) in the text. */
    len = frame(1, "P|\x10|1\r", false, bytes);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[2].error, ASTM_ERR_FORMAT);

    /* No ETB or ETX. */
    const uint8_t bare[] = {ASTM_STX, '1', 'P', '|', '1', '\r', '0', '0', '\r', '\n'};
    feed(&link, bare, sizeof bare, 0, &trace);
    ck_assert_int_eq(trace.events[3].error, ASTM_ERR_FORMAT);

    /* A frame number that is not a digit. */
    len = frame(1, "P|1\r", false, bytes);
    bytes[1] = 'A';
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[4].error, ASTM_ERR_FORMAT);
    ck_assert_int_eq(trace.events[4].frame_number, -1);

    for (size_t i = 1; i < trace.count; i++) {
        ck_assert_int_eq(trace.events[i].kind, ASTM_EV_BAD_FRAME);
        assert_reply(&trace.events[i], ASTM_NAK);
    }
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_noise_and_restart_between_frames)
{
    /* Bytes between frames are ignored, and a second STX restarts a frame
     * that was cut short. */
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[128];
    size_t len = 0;

    established(&link, &trace, false);
    bytes[len++] = 'x';
    bytes[len++] = ASTM_ACK;
    bytes[len++] = ASTM_STX;
    bytes[len++] = '1';
    bytes[len++] = 'P';
    len += frame(1, "P|1\r", true, bytes + len);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_uint_eq(trace.count, 2);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_FRAME);
    ck_assert_uint_eq(trace.events[1].frame_offset, 1 + 5);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_timeout_thirty_seconds)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "P|1\r", false, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 1000, &trace);
    ck_assert_int_eq(astm_link_deadline(&link), 31000);

    const struct copy *event = poll_link(&link, 30999, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_NONE);
    event = poll_link(&link, 31000, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_RX_TIMEOUT);
    ck_assert_uint_eq(event->out_len, 0);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    ck_assert_int_eq(astm_link_deadline(&link), ASTM_NO_DEADLINE);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_timeout_before_late_bytes)
{
    /* Bytes that arrive after the deadline find the link session over. */
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "P|1\r", false, bytes);

    established(&link, &trace, false);
    feed(&link, bytes, len, 30000, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_RX_TIMEOUT);
    ck_assert_uint_eq(trace.count, 2);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_eot_ends_session)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    established(&link, &trace, false);
    const struct copy *event = feed_byte(&link, ASTM_EOT, 5, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_PEER_ENDED);
    ck_assert_uint_eq(event->out_len, 0);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_eot_inside_frame)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    const uint8_t cut[] = {ASTM_STX, '1', 'P', '|', ASTM_EOT};

    established(&link, &trace, false);
    feed(&link, cut, sizeof cut, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_PEER_ENDED);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_final_ack_held_until_release)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    struct astm_event event;
    uint8_t bytes[64];
    size_t len;

    established(&link, &trace, true);

    len = frame(1, "R|1\r", false, bytes);
    feed(&link, bytes, len, 0, &trace);
    assert_reply(&trace.events[1], ASTM_ACK); /* ETB frames get their ACK at once */

    len = frame(2, "L|1\r", true, bytes);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[2].kind, ASTM_EV_FRAME);
    ck_assert(trace.events[2].held);
    ck_assert_uint_eq(trace.events[2].out_len, 0);
    ck_assert_int_eq(astm_link_deadline(&link), ASTM_NO_DEADLINE);

    /* Nothing the sender sends meanwhile gets a reply. */
    feed(&link, bytes, len, 1000, &trace);
    ck_assert_uint_eq(trace.count, 3);

    astm_link_release(&link, 2000, &event);
    ck_assert_int_eq(event.kind, ASTM_EV_OUTPUT);
    ck_assert_uint_eq(event.out_len, 1);
    ck_assert_uint_eq(event.out[0], ASTM_ACK);
    ck_assert_int_eq(astm_link_deadline(&link), 32000);

    astm_link_release(&link, 2000, &event);
    ck_assert_int_eq(event.kind, ASTM_EV_NONE);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_held_sender_gives_up)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    struct astm_event event;
    uint8_t bytes[64];
    size_t len = frame(1, "L|1\r", true, bytes);

    established(&link, &trace, true);
    feed(&link, bytes, len, 0, &trace);
    const struct copy *ended = feed_byte(&link, ASTM_EOT, 15000, &trace);
    ck_assert_int_eq(ended->kind, ASTM_EV_PEER_ENDED);

    astm_link_release(&link, 16000, &event);
    ck_assert_int_eq(event.kind, ASTM_EV_NONE);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_interrupt_answers_eot)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];
    size_t len = frame(1, "R|1\r", false, bytes);

    established(&link, &trace, false);
    astm_link_interrupt(&link);
    feed(&link, bytes, len, 0, &trace);
    ck_assert_int_eq(trace.events[1].kind, ASTM_EV_FRAME);
    assert_reply(&trace.events[1], ASTM_EOT);

    /* The sender may go on; the next frame gets a plain ACK. */
    len = frame(2, "R|2\r", false, bytes);
    feed(&link, bytes, len, 0, &trace);
    assert_reply(&trace.events[2], ASTM_ACK);
    feed(&link, (const uint8_t[]){ASTM_EOT}, 1, 0, &trace);
    ck_assert_int_eq(trace.events[3].kind, ASTM_EV_PEER_ENDED);
    astm_link_free(&link);
}
END_TEST

START_TEST(rx_interrupt_on_held_release)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    struct astm_event event;
    uint8_t bytes[64];
    size_t len = frame(1, "L|1\r", true, bytes);

    established(&link, &trace, true);
    feed(&link, bytes, len, 0, &trace);
    astm_link_interrupt(&link);
    astm_link_release(&link, 10, &event);
    ck_assert_uint_eq(event.out_len, 1);
    ck_assert_uint_eq(event.out[0], ASTM_EOT);
    astm_link_free(&link);
}
END_TEST

/* A receiver transcript with every kind of event: frames, a checksum error,
 * a retransmission, a duplicate, noise and EOT, then a second session. */
static size_t build_transcript(uint8_t *out)
{
    size_t len = 0;

    out[len++] = ASTM_ENQ;
    len += frame(1, "H|\\^&|||sim\rP|1\r", false, out + len);
    len += frame(2, "O|1|S1||^^^A\rR|1|^^^A|1.5|ng/mg\r", false, out + len);
    out[len - 4] ^= 1; /* corrupt the checksum: NAK */
    len += frame(2, "O|1|S1||^^^A\rR|1|^^^A|1.5|ng/mg\r", false, out + len);
    len += frame(2, "O|1|S1||^^^A\rR|1|^^^A|1.5|ng/mg\r", false, out + len);
    out[len++] = 'z';
    len += frame(3, "L|1|N\r", true, out + len);
    out[len++] = ASTM_EOT;
    out[len++] = ASTM_ENQ;
    len += frame(1, "H|\\^&\rL|1\r", true, out + len);
    out[len++] = ASTM_EOT;
    return len;
}

static void run_transcript(const uint8_t *bytes, size_t len, size_t chunk, struct trace *trace)
{
    struct astm_link link;

    start_link(&link, ASTM_ROLE_HOST, false);
    feed_chunked(&link, bytes, len, chunk, 0, trace);
    astm_link_free(&link);
}

static void assert_same_trace(const struct trace *a, const struct trace *b)
{
    ck_assert_uint_eq(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        const struct copy *x = &a->events[i];
        const struct copy *y = &b->events[i];

        ck_assert_int_eq(x->kind, y->kind);
        ck_assert_uint_eq(x->out_len, y->out_len);
        ck_assert_mem_eq(x->out, y->out, x->out_len);
        ck_assert_uint_eq(x->text_len, y->text_len);
        ck_assert_mem_eq(x->text, y->text, x->text_len);
        ck_assert_int_eq(x->frame_number, y->frame_number);
        ck_assert_int_eq(x->error, y->error);
        ck_assert_uint_eq(x->frame_offset, y->frame_offset);
    }
}

START_TEST(chunking_whole_bytewise_random)
{
    static uint8_t bytes[1024];
    static struct trace whole;
    static struct trace bytewise;
    static struct trace random_split;
    size_t len = build_transcript(bytes);
    unsigned seed = 20261204;

    whole.count = 0;
    bytewise.count = 0;
    run_transcript(bytes, len, 0, &whole);
    run_transcript(bytes, len, 1, &bytewise);
    assert_same_trace(&whole, &bytewise);

    /* The expected events, once. */
    const enum astm_event_kind expected[] = {
        ASTM_EV_ESTABLISHED, ASTM_EV_FRAME,      ASTM_EV_BAD_FRAME,  ASTM_EV_FRAME,
        ASTM_EV_DUPLICATE,   ASTM_EV_FRAME,      ASTM_EV_PEER_ENDED, ASTM_EV_ESTABLISHED,
        ASTM_EV_FRAME,       ASTM_EV_PEER_ENDED,
    };
    ck_assert_uint_eq(whole.count, sizeof expected / sizeof expected[0]);
    for (size_t i = 0; i < whole.count; i++) {
        ck_assert_int_eq(whole.events[i].kind, expected[i]);
    }

    for (int round = 0; round < 50; round++) {
        struct astm_link link;
        struct astm_event event;
        size_t done = 0;

        random_split.count = 0;
        start_link(&link, ASTM_ROLE_HOST, false);
        while (done < len) {
            size_t size = 1 + (size_t)rand_r(&seed) % 40;

            if (size > len - done) {
                size = len - done;
            }
            size_t end = done + size;
            while (done < end) {
                done += astm_link_input(&link, bytes + done, end - done, 0, &event);
                if (event.kind != ASTM_EV_NONE) {
                    keep(&random_split, &event);
                }
            }
        }
        astm_link_free(&link);
        if (whole.count != random_split.count) {
            fprintf(stderr, "random split seed 20261204, round %d differs\n", round);
        }
        assert_same_trace(&whole, &random_split);
    }
}
END_TEST

/* ---- Sender ------------------------------------------------------------------- */

/* Starts a link with one queued message and sends its ENQ at time 0. */
static void sending(struct astm_link *link, enum astm_role role, const char *message,
                    struct trace *trace)
{
    start_link(link, role, false);
    ck_assert_int_eq(astm_link_deadline(link), ASTM_NO_DEADLINE);
    ck_assert_int_eq(astm_link_send(link, message, strlen(message)), 0);
    ck_assert_int_eq(astm_link_deadline(link), 0);

    const struct copy *event = poll_link(link, 0, trace);
    ck_assert_int_eq(event->kind, ASTM_EV_OUTPUT);
    assert_reply(event, ASTM_ENQ);
    ck_assert_int_eq(astm_link_deadline(link), 15000);
}

/* Checks that out is one well-formed frame and returns its text length. */
static size_t check_sent_frame(const struct copy *event, int number, bool final)
{
    size_t len = event->out_len;

    ck_assert_uint_ge(len, ASTM_FRAME_OVERHEAD);
    ck_assert_uint_eq(event->out[0], ASTM_STX);
    ck_assert_uint_eq(event->out[1], (uint8_t)('0' + number));
    ck_assert_uint_eq(event->out[len - 5], final ? ASTM_ETX : ASTM_ETB);

    char hex[3] = {(char)event->out[len - 4], (char)event->out[len - 3], '\0'};
    char expected[3];
    snprintf(expected, sizeof expected, "%02X", astm_checksum(event->out + 1, len - 5));
    ck_assert_str_eq(hex, expected);
    return len - ASTM_FRAME_OVERHEAD;
}

START_TEST(tx_nothing_without_message)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    start_link(&link, ASTM_ROLE_HOST, false);
    ck_assert_int_eq(poll_link(&link, 0, &trace)->kind, ASTM_EV_NONE);
    ck_assert_int_eq(astm_link_send(&link, "", 0), -EINVAL);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_splits_text_at_240)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    static char message[601];

    for (size_t i = 0; i < 600; i++) {
        message[i] = i % 100 == 99 ? '\r' : (char)('a' + i % 26);
    }
    message[600] = '\0';
    sending(&link, ASTM_ROLE_INSTRUMENT, message, &trace);

    const struct copy *event = feed_byte(&link, ASTM_ACK, 100, &trace);
    ck_assert_uint_eq(check_sent_frame(event, 1, false), 240);
    ck_assert_mem_eq(event->out + 2, message, 240);
    ck_assert_int_eq(astm_link_deadline(&link), 15100);

    event = feed_byte(&link, ASTM_ACK, 200, &trace);
    ck_assert_uint_eq(check_sent_frame(event, 2, false), 240);
    ck_assert_mem_eq(event->out + 2, message + 240, 240);

    event = feed_byte(&link, ASTM_ACK, 300, &trace);
    ck_assert_uint_eq(check_sent_frame(event, 3, true), 120);
    ck_assert_mem_eq(event->out + 2, message + 480, 120);

    event = feed_byte(&link, ASTM_ACK, 400, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_DELIVERED);
    ck_assert_uint_eq(event->messages, 1);
    assert_reply(event, ASTM_EOT);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    ck_assert_uint_eq(astm_link_pending(&link), 0);
    ck_assert_int_eq(astm_link_deadline(&link), ASTM_NO_DEADLINE);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_frame_numbers_wrap)
{
    struct astm_link link;
    struct astm_config config;
    struct trace trace = {.count = 0};
    const int expected[] = {1, 2, 3, 4, 5, 6, 7, 0, 1, 2};

    astm_config_defaults(&config, ASTM_ROLE_INSTRUMENT);
    config.send_frame_text = 2;
    ck_assert_int_eq(astm_link_init(&link, &config), 0);
    ck_assert_int_eq(astm_link_send(&link, "abcdefghijklmnopqrst", 20), 0);
    poll_link(&link, 0, &trace);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const struct copy *event = feed_byte(&link, ASTM_ACK, 0, &trace);

        check_sent_frame(event, expected[i], i == 9);
    }
    ck_assert_int_eq(feed_byte(&link, ASTM_ACK, 0, &trace)->kind, ASTM_EV_DELIVERED);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_nak_retransmits_then_gives_up)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_INSTRUMENT, "H|\\^&\rL|1\r", &trace);
    const struct copy *first = feed_byte(&link, ASTM_ACK, 0, &trace);
    check_sent_frame(first, 1, true);

    /* Attempts 2 to 6 repeat the same frame. */
    for (int attempt = 2; attempt <= 6; attempt++) {
        const struct copy *again = feed_byte(&link, ASTM_NAK, attempt * 100, &trace);

        ck_assert_int_eq(again->kind, ASTM_EV_OUTPUT);
        ck_assert_uint_eq(again->out_len, first->out_len);
        ck_assert_mem_eq(again->out, first->out, first->out_len);
        ck_assert_int_eq(astm_link_deadline(&link), attempt * 100 + 15000);
    }

    const struct copy *failed = feed_byte(&link, ASTM_NAK, 1000, &trace);
    ck_assert_int_eq(failed->kind, ASTM_EV_SEND_FAILED);
    ck_assert_int_eq(failed->error, ASTM_ERR_RETRIES);
    assert_reply(failed, ASTM_EOT);
    ck_assert_uint_eq(astm_link_pending(&link), 0);
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_nak_then_ack_continues)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_HOST, "L|1\r", &trace);
    feed_byte(&link, ASTM_ACK, 0, &trace);
    for (int i = 0; i < 5; i++) {
        feed_byte(&link, ASTM_NAK, 0, &trace);
    }
    const struct copy *done = feed_byte(&link, ASTM_ACK, 0, &trace);
    ck_assert_int_eq(done->kind, ASTM_EV_DELIVERED);
    assert_reply(done, ASTM_EOT);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_no_reply_to_frame)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_HOST, "L|1\r", &trace);
    feed_byte(&link, ASTM_ACK, 1000, &trace);
    ck_assert_int_eq(poll_link(&link, 15999, &trace)->kind, ASTM_EV_NONE);

    const struct copy *failed = poll_link(&link, 16000, &trace);
    ck_assert_int_eq(failed->kind, ASTM_EV_SEND_FAILED);
    ck_assert_int_eq(failed->error, ASTM_ERR_NO_REPLY);
    assert_reply(failed, ASTM_EOT);
    ck_assert_uint_eq(astm_link_pending(&link), 0);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_no_reply_to_enq)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_HOST, "L|1\r", &trace);
    const struct copy *failed = poll_link(&link, 15000, &trace);
    ck_assert_int_eq(failed->kind, ASTM_EV_SEND_FAILED);
    ck_assert_int_eq(failed->error, ASTM_ERR_NO_REPLY);
    assert_reply(failed, ASTM_EOT);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_busy_waits_ten_seconds)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_HOST, "L|1\r", &trace);
    const struct copy *busy = feed_byte(&link, ASTM_NAK, 500, &trace);
    ck_assert_int_eq(busy->kind, ASTM_EV_BUSY);
    ck_assert_uint_eq(busy->out_len, 0);
    ck_assert_int_eq(astm_link_deadline(&link), 10500);
    ck_assert_int_eq(poll_link(&link, 10499, &trace)->kind, ASTM_EV_NONE);

    const struct copy *again = poll_link(&link, 10500, &trace);
    assert_reply(again, ASTM_ENQ);
    ck_assert_uint_eq(astm_link_pending(&link), 1);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_contention_host_yields)
{
    struct astm_link link;
    struct trace trace = {.count = 0};
    uint8_t bytes[64];

    sending(&link, ASTM_ROLE_HOST, "Q|1|^S1\r", &trace);
    const struct copy *event = feed_byte(&link, ASTM_ENQ, 100, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_CONTENTION);
    ck_assert_uint_eq(event->out_len, 0);
    ck_assert_int_eq(astm_link_deadline(&link), 20100);

    /* The instrument sends ENQ again at least 1 s later and the host receives. */
    event = feed_byte(&link, ASTM_ENQ, 1100, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_ESTABLISHED);
    assert_reply(event, ASTM_ACK);
    size_t len = frame(1, "H|\\^&\rL|1\r", true, bytes);
    feed(&link, bytes, len, 1200, &trace);
    feed_byte(&link, ASTM_EOT, 1300, &trace);

    /* The host may not send its ENQ before 20 s after the contention. */
    ck_assert_int_eq(astm_link_deadline(&link), 20100);
    ck_assert_int_eq(poll_link(&link, 20099, &trace)->kind, ASTM_EV_NONE);
    assert_reply(poll_link(&link, 20100, &trace), ASTM_ENQ);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_contention_instrument_retries)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_INSTRUMENT, "R|1\r", &trace);
    const struct copy *event = feed_byte(&link, ASTM_ENQ, 100, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_CONTENTION);
    ck_assert_int_eq(astm_link_deadline(&link), 1100);
    assert_reply(poll_link(&link, 1100, &trace), ASTM_ENQ);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_receiver_interrupt)
{
    struct astm_link link;
    struct astm_config config;
    struct trace trace = {.count = 0};

    astm_config_defaults(&config, ASTM_ROLE_INSTRUMENT);
    config.send_frame_text = 4;
    ck_assert_int_eq(astm_link_init(&link, &config), 0);
    ck_assert_int_eq(astm_link_send(&link, "R|1\r", 4), 0);
    ck_assert_int_eq(astm_link_send(&link, "R|2\rL|1\r", 8), 0);
    poll_link(&link, 0, &trace);
    feed_byte(&link, ASTM_ACK, 0, &trace);                            /* frame 1: R|1 */
    const struct copy *event = feed_byte(&link, ASTM_ACK, 0, &trace); /* frame 2: R|2 */
    ck_assert_int_eq(event->kind, ASTM_EV_DELIVERED);

    /* EOT in place of ACK: frame 2 counts as accepted, the session ends and
     * the cut message waits for the next session. */
    event = feed_byte(&link, ASTM_EOT, 50, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_INTERRUPTED);
    assert_reply(event, ASTM_EOT);
    ck_assert_uint_eq(event->messages, 1);
    ck_assert_uint_eq(astm_link_pending(&link), 1);
    ck_assert_int_eq(astm_link_deadline(&link), 15050);

    assert_reply(poll_link(&link, 15050, &trace), ASTM_ENQ);
    event = feed_byte(&link, ASTM_ACK, 15100, &trace);
    check_sent_frame(event, 1, false);
    ck_assert_mem_eq(event->out + 2, "R|2\r", 4);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_interrupt_first_frame)
{
    /* Found by fuzz_astm_link: an interrupt before any message was delivered
     * read the queue's bounds at index -1. The message must stay queued. */
    struct astm_link link;
    struct astm_config config;
    struct trace trace = {.count = 0};

    astm_config_defaults(&config, ASTM_ROLE_INSTRUMENT);
    config.send_frame_text = 8;
    ck_assert_int_eq(astm_link_init(&link, &config), 0);
    ck_assert_int_eq(astm_link_send(&link, "R|1|^^^A|1.5\r", 13), 0);
    ck_assert_int_eq(astm_link_send(&link, "L|1\r", 4), 0);
    poll_link(&link, 0, &trace);
    check_sent_frame(feed_byte(&link, ASTM_ACK, 0, &trace), 1, false);

    const struct copy *event = feed_byte(&link, ASTM_EOT, 0, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_INTERRUPTED);
    ck_assert_uint_eq(event->messages, 0);
    ck_assert_uint_eq(astm_link_pending(&link), 2);
    ck_assert_uint_eq(link.queue_len, 17);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_two_messages_one_session)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    start_link(&link, ASTM_ROLE_HOST, false);
    ck_assert_int_eq(astm_link_send(&link, "H|\\^&\rL|1\r", 10), 0);
    ck_assert_int_eq(astm_link_send(&link, "H|\\^&\rL|2\r", 10), 0);
    poll_link(&link, 0, &trace);
    check_sent_frame(feed_byte(&link, ASTM_ACK, 0, &trace), 1, true);

    const struct copy *event = feed_byte(&link, ASTM_ACK, 0, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_DELIVERED);
    ck_assert_uint_eq(event->messages, 1);
    check_sent_frame(event, 2, true);
    ck_assert_mem_eq(event->out + 2, "H|\\^&\rL|2\r", 10);

    event = feed_byte(&link, ASTM_ACK, 0, &trace);
    ck_assert_int_eq(event->kind, ASTM_EV_DELIVERED);
    ck_assert_uint_eq(event->messages, 2);
    assert_reply(event, ASTM_EOT);
    ck_assert_uint_eq(astm_link_pending(&link), 0);
    astm_link_free(&link);
}
END_TEST

START_TEST(tx_ignores_noise_while_waiting)
{
    struct astm_link link;
    struct trace trace = {.count = 0};

    sending(&link, ASTM_ROLE_HOST, "L|1\r", &trace);
    feed(&link, "xyz\x02", 4, 0, &trace);
    ck_assert_uint_eq(trace.count, 1);
    ck_assert_int_eq(link.state, ASTM_TX_ENQ);
    astm_link_free(&link);
}
END_TEST

/* ---- Two links wired together --------------------------------------------------- */

/* Feeds the bytes of one link's event to the other link. */
static void pump(struct astm_link *to, const struct copy *from, int64_t now, struct trace *trace)
{
    if (from->out_len > 0) {
        feed(to, from->out, from->out_len, now, trace);
    }
}

START_TEST(loopback_instrument_to_host)
{
    struct astm_link instrument;
    struct astm_link host;
    static struct trace sent;
    static struct trace received;
    static char message[1000];
    char joined[1000];
    size_t joined_len = 0;
    int64_t now = 0;

    sent.count = 0;
    received.count = 0;
    for (size_t i = 0; i < sizeof message - 1; i++) {
        message[i] = i % 50 == 49 ? '\r' : (char)('0' + i % 10);
    }
    message[sizeof message - 1] = '\0';
    start_link(&instrument, ASTM_ROLE_INSTRUMENT, false);
    start_link(&host, ASTM_ROLE_HOST, true);
    ck_assert_int_eq(astm_link_send(&instrument, message, strlen(message)), 0);

    pump(&host, poll_link(&instrument, now, &sent), now, &received);
    while (instrument.state != ASTM_NEUTRAL || host.state != ASTM_NEUTRAL) {
        const struct copy *at_host = &received.events[received.count - 1];
        struct astm_event release;

        now += 10;
        if (at_host->kind == ASTM_EV_FRAME) {
            memcpy(joined + joined_len, at_host->text, at_host->text_len);
            joined_len += at_host->text_len;
        }
        if (at_host->held) {
            astm_link_release(&host, now, &release); /* results stored: ACK now */
            keep(&received, &release);
            at_host = &received.events[received.count - 1];
        }
        size_t before = sent.count;
        pump(&instrument, at_host, now, &sent);
        ck_assert_uint_eq(sent.count, before + 1);
        pump(&host, &sent.events[sent.count - 1], now, &received);
    }
    ck_assert_uint_eq(joined_len, strlen(message));
    ck_assert_mem_eq(joined, message, joined_len);
    ck_assert_int_eq(sent.events[sent.count - 1].kind, ASTM_EV_DELIVERED);
    ck_assert_int_eq(received.events[received.count - 1].kind, ASTM_EV_PEER_ENDED);
    astm_link_free(&instrument);
    astm_link_free(&host);
}
END_TEST

START_TEST(event_and_error_names)
{
    ck_assert_str_eq(astm_event_name(ASTM_EV_FRAME), "frame");
    ck_assert_str_eq(astm_error_name(ASTM_ERR_CHECKSUM), "checksum mismatch");
    ck_assert_str_eq(astm_event_name((enum astm_event_kind)99), "unknown");
}
END_TEST

static Suite *astm_link_suite(void)
{
    Suite *suite = suite_create("astm_link");
    TCase *frames = tcase_create("frames");
    TCase *receiver = tcase_create("receiver");
    TCase *sender = tcase_create("sender");

    tcase_set_timeout(frames, CASE_TIMEOUT);
    tcase_add_test(frames, checksum_known_frames);
    tcase_add_test(frames, build_frame_layout);
    tcase_add_test(frames, build_frame_uppercase_hex);
    tcase_add_test(frames, config_defaults_standard);
    tcase_add_test(frames, event_and_error_names);
    suite_add_tcase(suite, frames);

    tcase_set_timeout(receiver, CASE_TIMEOUT);
    tcase_add_test(receiver, rx_enq_acknowledged);
    tcase_add_test(receiver, rx_busy_refuses_enq);
    tcase_add_test(receiver, rx_neutral_ignores_noise);
    tcase_add_test(receiver, rx_frame_accepted);
    tcase_add_test(receiver, rx_lowercase_checksum_accepted);
    tcase_add_test(receiver, rx_bad_checksum_nak_then_retransmit);
    tcase_add_test(receiver, rx_unexpected_number_nak);
    tcase_add_test(receiver, rx_first_frame_zero_rejected);
    tcase_add_test(receiver, rx_duplicate_acked_not_stored);
    tcase_add_test(receiver, rx_frame_numbers_wrap);
    tcase_add_test(receiver, rx_oversize_frame_nak);
    tcase_add_test(receiver, rx_long_frame_accepted);
    tcase_add_test(receiver, rx_malformed_frames_nak);
    tcase_add_test(receiver, rx_noise_and_restart_between_frames);
    tcase_add_test(receiver, rx_timeout_thirty_seconds);
    tcase_add_test(receiver, rx_timeout_before_late_bytes);
    tcase_add_test(receiver, rx_eot_ends_session);
    tcase_add_test(receiver, rx_eot_inside_frame);
    tcase_add_test(receiver, rx_final_ack_held_until_release);
    tcase_add_test(receiver, rx_held_sender_gives_up);
    tcase_add_test(receiver, rx_interrupt_answers_eot);
    tcase_add_test(receiver, rx_interrupt_on_held_release);
    tcase_add_test(receiver, chunking_whole_bytewise_random);
    suite_add_tcase(suite, receiver);

    tcase_set_timeout(sender, CASE_TIMEOUT);
    tcase_add_test(sender, tx_nothing_without_message);
    tcase_add_test(sender, tx_splits_text_at_240);
    tcase_add_test(sender, tx_frame_numbers_wrap);
    tcase_add_test(sender, tx_nak_retransmits_then_gives_up);
    tcase_add_test(sender, tx_nak_then_ack_continues);
    tcase_add_test(sender, tx_no_reply_to_frame);
    tcase_add_test(sender, tx_no_reply_to_enq);
    tcase_add_test(sender, tx_busy_waits_ten_seconds);
    tcase_add_test(sender, tx_contention_host_yields);
    tcase_add_test(sender, tx_contention_instrument_retries);
    tcase_add_test(sender, tx_receiver_interrupt);
    tcase_add_test(sender, tx_interrupt_first_frame);
    tcase_add_test(sender, tx_two_messages_one_session);
    tcase_add_test(sender, tx_ignores_noise_while_waiting);
    tcase_add_test(sender, loopback_instrument_to_host);
    suite_add_tcase(suite, sender);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(astm_link_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
