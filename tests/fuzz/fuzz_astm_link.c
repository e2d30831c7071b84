/* libFuzzer target for the ASTM E1381 link (protocol/astm_link.c).
 *
 * The input is a small script of operations on one link: feed bytes, let
 * time pass and poll, release a held ACK, request an interrupt, queue a
 * message, toggle busy. The script runs twice, once feeding each chunk in
 * one call and once a byte per call, and both runs must produce the same
 * events: the chunking of received bytes must never change the outcome.
 * Each event is also checked against the link's invariants, and accepted
 * frame text goes through the record assembler and parser. */
#include "protocol/astm_link.h"
#include "protocol/astm_record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Events of one run, flattened into bytes for comparison. */
struct trace {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void trace_put(struct trace *trace, const void *bytes, size_t len)
{
    if (trace->len + len > trace->cap) {
        size_t cap = (trace->len + len) * 2;
        uint8_t *bigger = realloc(trace->data, cap);

        if (bigger == NULL) {
            abort();
        }
        trace->data = bigger;
        trace->cap = cap;
    }
    memcpy(trace->data + trace->len, bytes, len);
    trace->len += len;
}

static int is_restricted(uint8_t byte)
{
    return byte == 0x01 || byte == ASTM_STX || byte == ASTM_ETX || byte == ASTM_EOT ||
           byte == ASTM_ENQ || byte == ASTM_ACK || byte == ASTM_LF ||
           (byte >= 0x10 && byte <= 0x14) || byte == ASTM_NAK || byte == 0x16 || byte == ASTM_ETB;
}

/* Checks one event and appends it to the trace; frame text also feeds the
 * record assembler. */
static void record_event(const struct astm_link *link, const struct astm_event *event,
                         struct trace *trace, struct astm_assembler *assembler,
                         struct astm_record *record)
{
    const uint8_t kind = (uint8_t)event->kind;

    if (event->out_len > sizeof(link->out) || (event->out_len > 0 && event->out == NULL)) {
        abort();
    }
    trace_put(trace, &kind, 1);
    trace_put(trace, &event->out_len, sizeof(event->out_len));
    if (event->out_len > 0) {
        trace_put(trace, event->out, event->out_len);
    }
    trace_put(trace, &event->frame_number, sizeof(event->frame_number));
    trace_put(trace, &event->error, sizeof(event->error));
    trace_put(trace, &event->messages, sizeof(event->messages));
    trace_put(trace, &event->frame_offset, sizeof(event->frame_offset));
    if (event->kind != ASTM_EV_FRAME) {
        return;
    }

    if (event->text_len > link->config.max_frame_text || event->frame_number < 0 ||
        event->frame_number > 7) {
        abort();
    }
    for (size_t i = 0; i < event->text_len; i++) {
        if (is_restricted((uint8_t)event->text[i])) {
            abort();
        }
    }
    trace_put(trace, event->text, event->text_len);

    struct astm_delimiters delimiters;
    const char *text;
    size_t len;

    astm_delimiters_default(&delimiters);
    astm_assembler_add(assembler, event->text, event->text_len, event->final);
    while (astm_assembler_next(assembler, &text, &len) == 1) {
        astm_delimiters_from_header(text, len, &delimiters);
        astm_record_parse(text, len, &delimiters, record);
    }
}

/* Reads the script byte at *at, or 0 past the end. */
static uint8_t next_byte(const uint8_t *data, size_t size, size_t *at)
{
    return *at < size ? data[(*at)++] : 0;
}

static void feed(struct astm_link *link, const uint8_t *bytes, size_t len, int64_t now,
                 int one_at_a_time, struct trace *trace, struct astm_assembler *assembler,
                 struct astm_record *record)
{
    struct astm_event event;
    size_t done = 0;

    while (done < len) {
        size_t chunk = one_at_a_time ? 1 : len - done;
        size_t used = astm_link_input(link, bytes + done, chunk, now, &event);

        if (used > chunk || (event.kind == ASTM_EV_NONE && used != chunk)) {
            abort();
        }
        done += used;
        if (event.kind != ASTM_EV_NONE) {
            record_event(link, &event, trace, assembler, record);
        }
    }
}

static void configure(struct astm_config *config, uint8_t options)
{
    astm_config_defaults(config, (options & 1) ? ASTM_ROLE_INSTRUMENT : ASTM_ROLE_HOST);
    config->hold_final_ack = (options & 2) != 0;
    if (options & 4) {
        config->max_frame_text = 32; /* reach the too-long path with short inputs */
    }
    if (options & 8) {
        config->send_frame_text = 8; /* many frames per queued message */
    }
    config->max_attempts = 1 + (options >> 4) % 6;
}

static void run(const uint8_t *data, size_t size, int one_at_a_time, struct trace *trace)
{
    struct astm_config config;
    struct astm_link link;
    struct astm_assembler assembler;
    struct astm_record record;
    struct astm_event event;
    int64_t now = 0;
    size_t at = 0;

    configure(&config, next_byte(data, size, &at));
    if (astm_link_init(&link, &config) != 0) {
        abort();
    }
    astm_assembler_init(&assembler);
    astm_record_init(&record);

    while (at < size) {
        uint8_t op = next_byte(data, size, &at);
        size_t n = next_byte(data, size, &at);

        if (n > size - at) {
            n = size - at;
        }
        switch (op % 8) {
        case 0:
        case 6:
        case 7:
            feed(&link, data + at, n, now, one_at_a_time, trace, &assembler, &record);
            at += n;
            break;
        case 1: {
            int64_t deadline = astm_link_deadline(&link);

            now += (int64_t)n * 250;
            if ((op & 0x80) && deadline != ASTM_NO_DEADLINE && deadline > now) {
                now = deadline; /* jump exactly onto the deadline */
            }
            astm_link_poll(&link, now, &event);
            record_event(&link, &event, trace, &assembler, &record);
            break;
        }
        case 2:
            astm_link_release(&link, now, &event);
            record_event(&link, &event, trace, &assembler, &record);
            break;
        case 3:
            astm_link_interrupt(&link);
            break;
        case 4:
            astm_link_send(&link, (const char *)data + at, n);
            at += n;
            break;
        case 5:
            astm_link_set_busy(&link, (op & 0x10) != 0);
            break;
        }
    }

    astm_record_free(&record);
    astm_assembler_free(&assembler);
    astm_link_free(&link);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace whole = {NULL, 0, 0};
    struct trace bytewise = {NULL, 0, 0};

    run(data, size, 0, &whole);
    run(data, size, 1, &bytewise);
    if (whole.len != bytewise.len ||
        (whole.len > 0 && memcmp(whole.data, bytewise.data, whole.len) != 0)) {
        abort(); /* chunking changed the outcome */
    }
    free(whole.data);
    free(bytewise.data);
    return 0;
}
