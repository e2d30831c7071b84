/* Saved ASTM transcripts: format detection, wire bytes through the link's
 * receiver, and the looser forms that repositories store (frames one a line
 * without CR LF or checksum, bare records). docs/astm.md lists the rules. */
#include "protocol/astm_transcript.h"

#include "protocol/astm_link.h"
#include "protocol/astm_record.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct reader {
    astm_record_callback on_record;
    void *context;
    struct astm_assembler assembler;
    struct astm_transcript_error *error;
};

__attribute__((format(printf, 4, 5))) static int fail(struct reader *reader, size_t offset,
                                                      int frame_number, const char *format, ...)
{
    va_list ap;

    reader->error->offset = offset;
    reader->error->frame_number = frame_number;
    va_start(ap, format);
    vsnprintf(reader->error->message, sizeof(reader->error->message), format, ap);
    va_end(ap);
    return -1;
}

static bool is_blank(uint8_t c)
{
    return c == ASTM_CR || c == ASTM_LF || c == ' ' || c == '\t';
}

enum astm_transcript_format astm_transcript_detect(const uint8_t *data, size_t len)
{
    size_t i = 0;

    while (i < len && is_blank(data[i])) {
        i++;
    }
    if (i == len) {
        return ASTM_TRANSCRIPT_UNKNOWN;
    }
    if (data[i] == ASTM_ENQ) {
        return ASTM_TRANSCRIPT_WIRE;
    }
    if (data[i] == ASTM_STX) {
        return ASTM_TRANSCRIPT_FRAMES;
    }
    if (i + 1 < len && data[i] >= '0' && data[i] <= '7' && isupper(data[i + 1])) {
        return ASTM_TRANSCRIPT_FRAMES;
    }
    if (i + 1 < len && isupper(data[i]) && ispunct(data[i + 1])) {
        return ASTM_TRANSCRIPT_RECORDS;
    }
    return ASTM_TRANSCRIPT_UNKNOWN;
}

/* Hands every complete record to the callback. */
static int drain(struct reader *reader)
{
    const char *record;
    size_t len;

    while (astm_assembler_next(&reader->assembler, &record, &len) == 1) {
        int rc = reader->on_record(reader->context, record, len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int add_frame_text(struct reader *reader, const char *text, size_t len, bool final,
                          size_t offset, int frame_number)
{
    int rc = astm_assembler_add(&reader->assembler, text, len, final);

    if (rc == -E2BIG) {
        return fail(reader, offset, frame_number, "record longer than %zu bytes",
                    reader->assembler.max_record);
    }
    if (rc != 0) {
        return fail(reader, offset, frame_number, "out of memory");
    }
    return drain(reader);
}

static bool message_open(const struct reader *reader)
{
    return reader->assembler.len > reader->assembler.start;
}

/* ---- Wire bytes ------------------------------------------------------------ */

/* Handles one event of the receiver. Base is 1 when an ENQ was added in
 * front of the data, and subtracting it makes offsets name bytes of the file. */
static int on_wire_event(struct reader *reader, const struct astm_event *event, size_t consumed,
                         size_t base, int *last_frame)
{
    switch (event->kind) {
    case ASTM_EV_FRAME:
        *last_frame = event->frame_number;
        return add_frame_text(reader, event->text, event->text_len, event->final,
                              event->frame_offset - base, event->frame_number);
    case ASTM_EV_BAD_FRAME:
        return fail(reader, event->frame_offset - base, event->frame_number, "%s",
                    astm_error_name(event->error));
    case ASTM_EV_PEER_ENDED:
        if (message_open(reader)) {
            return fail(reader, consumed - 1, *last_frame,
                        "EOT ended the link session inside a message");
        }
        astm_assembler_reset(&reader->assembler);
        return 0;
    default:
        return 0;
    }
}

static int feed_wire(struct reader *reader, struct astm_link *link, const uint8_t *data, size_t len,
                     size_t base)
{
    struct astm_event event;
    size_t done = 0;
    int last_frame = -1;

    while (done < len) {
        done += astm_link_input(link, data + done, len - done, 0, &event);

        int rc = on_wire_event(reader, &event, done, base, &last_frame);
        if (rc != 0) {
            return rc;
        }
    }
    if (link->state == ASTM_RX_FRAME) {
        bool numbered = link->frame_len > 0 && link->frame[0] >= '0' && link->frame[0] <= '7';
        int number = numbered ? link->frame[0] - '0' : -1;
        return fail(reader, (size_t)link->frame_start - base, number,
                    "the file ends inside a frame");
    }
    if (message_open(reader)) {
        return fail(reader, len, last_frame, "the file ends inside a message");
    }
    return 0;
}

static int read_wire(struct reader *reader, const uint8_t *data, size_t len)
{
    struct astm_config config;
    struct astm_link link;
    struct astm_event event;
    size_t base = 0;

    astm_config_defaults(&config, ASTM_ROLE_HOST);
    config.max_frame_text = len + 1; /* a saved file may hold frames of any length */
    if (astm_link_init(&link, &config) != 0) {
        return fail(reader, 0, -1, "out of memory");
    }
    if (astm_transcript_detect(data, len) != ASTM_TRANSCRIPT_WIRE) {
        static const uint8_t enq = ASTM_ENQ;

        astm_link_input(&link, &enq, 1, 0, &event); /* the capture began after ENQ */
        base = 1;
    }

    int rc = feed_wire(reader, &link, data, len, base);
    astm_link_free(&link);
    return rc;
}

/* ---- Saved frames ------------------------------------------------------------ */

static int hex_digit(uint8_t c)
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

/* Frame numbers of saved frames: the first is taken as it is, then each
 * must follow, and the previous number again is a retransmission. */
struct numbering {
    int expected; /* -1 before the first frame */
};

/* One saved frame, found by scan_frame. */
struct saved_frame {
    size_t start;     /* offset of STX, or of the frame number without STX */
    size_t number_at; /* offset of the frame number */
    size_t text_end;  /* offset after the text */
    size_t next;      /* offset after the frame and its line end */
    int number;
    bool final;
    bool terminated; /* ended with ETB or ETX */
};

/* Checks the optional checksum after ETB or ETX and skips the line end. */
static int scan_trailer(struct reader *reader, const uint8_t *data, size_t len,
                        struct saved_frame *frame)
{
    size_t at = frame->text_end + 1;

    if (at < len && data[at] != ASTM_CR && data[at] != ASTM_LF && data[at] != ASTM_STX &&
        data[at] != ASTM_EOT) {
        if (at + 1 >= len || hex_digit(data[at]) < 0 || hex_digit(data[at + 1]) < 0) {
            return fail(reader, at, frame->number, "invalid checksum characters");
        }

        unsigned expected =
            astm_checksum(data + frame->number_at, frame->text_end + 1 - frame->number_at);
        unsigned received = (unsigned)(hex_digit(data[at]) * 16 + hex_digit(data[at + 1]));
        if (expected != received) {
            return fail(reader, frame->start, frame->number,
                        "checksum mismatch (received %02X, computed %02X)", received, expected);
        }
        at += 2;
    }
    if (at < len && data[at] == ASTM_CR) {
        at++;
    }
    if (at < len && data[at] == ASTM_LF) {
        at++;
    }
    frame->next = at;
    return 0;
}

/* Tells whether the byte at `at` ends the text of a saved frame: ETB, ETX,
 * LF, STX, or a CR that ends the line because the next frame number or STX
 * follows it. Records start with a letter, so inside a frame a CR followed
 * by a digit cannot occur. */
static bool ends_saved_frame(const uint8_t *data, size_t len, size_t at)
{
    uint8_t c = data[at];

    if (c == ASTM_ETX || c == ASTM_ETB || c == ASTM_LF || c == ASTM_STX) {
        return true;
    }
    if (c != ASTM_CR || at + 1 == len) {
        return c == ASTM_CR;
    }
    return data[at + 1] == ASTM_STX || (data[at + 1] >= '0' && data[at + 1] <= '7');
}

/* Finds the frame that starts at `at`: [STX] number text [ETB|ETX [checksum]] line end. */
static int scan_frame(struct reader *reader, const uint8_t *data, size_t len, size_t at,
                      struct saved_frame *frame)
{
    memset(frame, 0, sizeof(*frame));
    frame->start = at;
    if (data[at] == ASTM_STX) {
        at++;
    }
    if (at >= len || data[at] < '0' || data[at] > '7') {
        return fail(reader, at, -1, "expected a frame number");
    }
    frame->number_at = at;
    frame->number = data[at] - '0';

    size_t end = at + 1;
    while (end < len && !ends_saved_frame(data, len, end)) {
        end++;
    }
    frame->text_end = end;
    if (end < len && data[end] == ASTM_STX) {
        return fail(reader, frame->start, frame->number, "frame has no ETB or ETX before STX");
    }
    if (end < len && (data[end] == ASTM_ETX || data[end] == ASTM_ETB)) {
        frame->terminated = true;
        frame->final = data[end] == ASTM_ETX;
        return scan_trailer(reader, data, len, frame);
    }
    frame->final = true; /* a line without ETB or ETX ends its record */
    frame->next = end < len ? end + 1 : end;
    return 0;
}

/* Returns 1 for a new frame, 0 for a retransmission to skip, or -1. */
static int check_number(struct reader *reader, struct numbering *numbering,
                        const struct saved_frame *frame)
{
    if (numbering->expected < 0 || frame->number == numbering->expected) {
        numbering->expected = (frame->number + 1) & 7;
        return 1;
    }
    if (frame->number == ((numbering->expected + 7) & 7)) {
        return 0;
    }
    return fail(reader, frame->start, frame->number, "unexpected frame number (expected %d)",
                numbering->expected);
}

static bool is_frame_separator(uint8_t c)
{
    return c == ASTM_CR || c == ASTM_LF || c == ASTM_ENQ || c == ASTM_EOT || c == ASTM_ACK ||
           c == ASTM_NAK;
}

static int read_frames(struct reader *reader, const uint8_t *data, size_t len)
{
    struct numbering numbering = {-1};
    size_t at = 0;

    while (at < len) {
        struct saved_frame frame;

        if (is_frame_separator(data[at])) {
            at++;
            continue;
        }

        int rc = scan_frame(reader, data, len, at, &frame);
        if (rc == 0) {
            rc = check_number(reader, &numbering, &frame);
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            size_t text_at = frame.number_at + 1;
            rc = add_frame_text(reader, (const char *)data + text_at, frame.text_end - text_at,
                                frame.final, frame.start, frame.number);
            if (rc != 0) {
                return rc;
            }
        }
        at = frame.next;
    }
    if (message_open(reader)) {
        return fail(reader, len, (numbering.expected + 7) & 7, "the file ends inside a message");
    }
    return 0;
}

/* ---- Bare records -------------------------------------------------------------- */

static int read_records(struct reader *reader, const uint8_t *data, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && data[i] != ASTM_CR && data[i] != ASTM_LF) {
            continue;
        }
        if (i > start) {
            int rc = reader->on_record(reader->context, (const char *)data + start, i - start);
            if (rc != 0) {
                return rc;
            }
        }
        start = i + 1;
    }
    return 0;
}

int astm_transcript_read(const uint8_t *data, size_t len, bool strict,
                         astm_record_callback on_record, void *context,
                         struct astm_transcript_error *error)
{
    struct reader reader = {on_record, context, {0}, error};
    enum astm_transcript_format format = astm_transcript_detect(data, len);
    int rc;

    memset(error, 0, sizeof(*error));
    error->frame_number = -1;
    astm_assembler_init(&reader.assembler);
    if (strict && format == ASTM_TRANSCRIPT_FRAMES && data[0] != ASTM_STX) {
        format = ASTM_TRANSCRIPT_UNKNOWN;
    }

    if (format == ASTM_TRANSCRIPT_WIRE || (strict && format == ASTM_TRANSCRIPT_FRAMES)) {
        rc = read_wire(&reader, data, len);
    } else if (strict) {
        rc = fail(&reader, 0, -1, "not wire bytes: the file starts with neither ENQ nor STX");
    } else if (format == ASTM_TRANSCRIPT_FRAMES) {
        rc = read_frames(&reader, data, len);
    } else if (format == ASTM_TRANSCRIPT_RECORDS) {
        rc = read_records(&reader, data, len);
    } else {
        rc = fail(&reader, 0, -1, "not an ASTM transcript: no ENQ, frame or record at the start");
    }
    astm_assembler_free(&reader.assembler);
    return rc;
}
