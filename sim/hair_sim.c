/* `toxlab-sim hair`: sends the scenario's messages as an ASTM E1381 sender,
 * one link session per `send`, with the faults scheduled by message number,
 * and receives the host's answers to its queries. */
#define _GNU_SOURCE
#include "sim/hair_sim.h"

#include "protocol/astm_link.h"
#include "protocol/astm_record.h"
#include "sim/hair_sim_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SPLIT_FRAME_TEXT 20
#define MAX_ATTEMPTS 6

enum { GOT_STOP = -2, GOT_TIMEOUT = -1 };

struct hair_run {
    const struct sim_run *run;
    const struct hair_scenario *scenario;
    char line[256]; /* standard input collected so far */
    size_t line_len;
    int next_message; /* for `send` without a number */
    bool stopping;
};

static int64_t now_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void event(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
}

static void write_bytes(struct hair_run *r, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(r->run->pty->master, p, len);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return;
        }
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
}

/* Reads one byte from the pty until deadline. Returns the byte, GOT_TIMEOUT
 * or GOT_STOP on a stop signal. */
static int read_byte(struct hair_run *r, int64_t deadline)
{
    while (true) {
        struct pollfd fds[2] = {{.fd = r->run->pty->master, .events = POLLIN},
                                {.fd = r->run->signal_fd, .events = POLLIN}};
        int64_t left = deadline - now_ms();
        if (left < 0) {
            return GOT_TIMEOUT;
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR) {
            return GOT_STOP;
        }
        if (fds[1].revents & POLLIN) {
            r->stopping = true;
            return GOT_STOP;
        }
        uint8_t byte;
        if ((fds[0].revents & POLLIN) && read(r->run->pty->master, &byte, 1) == 1) {
            return byte;
        }
    }
}

/* Waits for ACK, NAK, EOT or ENQ from the host, skipping other bytes. */
static int read_reply(struct hair_run *r, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    while (true) {
        int byte = read_byte(r, deadline);
        if (byte < 0 || byte == ASTM_ACK || byte == ASTM_NAK || byte == ASTM_EOT ||
            byte == ASTM_ENQ) {
            return byte;
        }
    }
}

/* Appends one P and O block with the message's R records. */
static size_t append_specimen(const struct hair_scenario *s, const struct hair_message *m,
                              int patient, const char *subject, const char *barcode, char *out,
                              size_t size)
{
    size_t used = (size_t)snprintf(out, size, "P|%d|%s\rO|1|%s||^^^HAIR-PANEL|R||||||||||hair\r",
                                   patient, subject, barcode);

    for (size_t i = 0; i < m->code_count && used < size; i++) {
        used +=
            (size_t)snprintf(out + used, size - used, "R|%zu|^^^%s|%s|%s||||%c||||%s|%s\r", i + 1,
                             m->codes[i], m->values[i], m->unit, m->status, m->completed, s->id);
    }
    return used;
}

static size_t build_records(const struct hair_scenario *s, const struct hair_message *m, bool query,
                            char *out, size_t size)
{
    size_t used =
        (size_t)snprintf(out, size, "H|\\^&|||HAIR-LC^2.0|||||||P|LIS2-A2|%s\r", m->completed);

    if (query) {
        used +=
            (size_t)snprintf(out + used, size - used, "Q|1|^%s||ALL||||||||O\rL|1|N\r", m->barcode);
        return used;
    }
    used += append_specimen(s, m, 1, m->subject, m->barcode, out + used, size - used);
    if (m->second_barcode[0] != '\0' && used < size) {
        used +=
            append_specimen(s, m, 2, m->second_subject, m->second_barcode, out + used, size - used);
    }
    used += (size_t)snprintf(out + used, size - used, "L|1|N\r");
    return used;
}

/* Sends one frame until the host accepts it. Returns 0, or -1 with the
 * session failed. */
static int send_frame(struct hair_run *r, int message, int number, const char *text, size_t len,
                      bool final, int fault)
{
    uint8_t frame[ASTM_MAX_SEND_FRAME_TEXT + ASTM_FRAME_OVERHEAD];
    static const uint8_t noise[] = {0xFF, 0x00, 'x', 0x55};

    for (int attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        bool first_send = attempt == 1 && number == 1;
        /* A wrong frame number with a checksum that matches it. */
        int sent_number = first_send && fault == HAIR_FAULT_FRAME_NUMBER ? 5 : number % 8;
        size_t frame_len = astm_build_frame(sent_number, text, len, final, frame);
        if (first_send && fault == HAIR_FAULT_CHECKSUM) {
            frame[frame_len - 3] = frame[frame_len - 3] == '0' ? '1' : '0';
            event("fault message=%d kind=checksum", message);
        }
        if (sent_number != number % 8) {
            event("fault message=%d kind=frame-number", message);
        }
        if (fault == HAIR_FAULT_NOISE) {
            write_bytes(r, noise, sizeof(noise));
            event("fault message=%d kind=noise", message);
        }
        write_bytes(r, frame, frame_len);
        event("frame message=%d number=%d", message, number % 8);
        int reply = read_reply(r, r->scenario->reply_timeout_ms);
        if (reply == ASTM_ACK) {
            return 0;
        }
        if (reply != ASTM_NAK) {
            const char *reason = "no-reply";
            if (reply == ASTM_EOT) {
                reason = "eot";
            } else if (reply == GOT_STOP) {
                reason = "stop";
            }
            event("failed message=%d reason=%s", message, reason);
            return -1;
        }
        event("nak message=%d number=%d", message, number % 8);
    }
    event("failed message=%d reason=retries", message);
    return -1;
}

/* Establishes the link: ENQ until ACK. With contention, the host's own ENQ
 * arrives first and is answered with ENQ. Returns 0 or -1. */
static int establish(struct hair_run *r, int message, bool contention)
{
    if (contention) {
        int byte = read_reply(r, r->scenario->reply_timeout_ms * 4);
        if (byte != ASTM_ENQ) {
            event("failed message=%d reason=no-host-enq", message);
            return -1;
        }
        write_bytes(r, "\x05", 1);
        event("contention message=%d", message);
        read_reply(r, r->scenario->contention_retry_ms);
    }
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        write_bytes(r, "\x05", 1);
        event("session message=%d", message);
        int reply = read_reply(r, r->scenario->reply_timeout_ms);
        if (reply == ASTM_ACK) {
            return 0;
        }
        if (reply == GOT_STOP) {
            return -1;
        }
        read_reply(r, r->scenario->contention_retry_ms);
    }
    event("failed message=%d reason=no-reply", message);
    return -1;
}

/* Sends text as one message in one link session. Returns 0 once the host
 * acknowledged the final frame, which prints `ack` for results and
 * `queried` for a query. */
static int send_session(struct hair_run *r, int message, const char *text, size_t len, int fault,
                        bool query)
{
    size_t chunk =
        fault == HAIR_FAULT_SPLIT || fault == HAIR_FAULT_SILENCE ? SPLIT_FRAME_TEXT : 240;
    int number = 1;

    if (establish(r, message, fault == HAIR_FAULT_CONTENTION) != 0) {
        return -1;
    }
    for (size_t pos = 0; pos < len; pos += chunk, number++) {
        size_t piece = len - pos < chunk ? len - pos : chunk;
        bool final = pos + piece == len;
        if (send_frame(r, message, number, text + pos, piece, final, fault) != 0) {
            write_bytes(r, "\x04", 1);
            return -1;
        }
        if (number == 1 && fault == HAIR_FAULT_SILENCE) {
            event("silence message=%d ms=%d", message, r->scenario->silence_ms);
            read_reply(r, r->scenario->silence_ms);
            return -1;
        }
    }
    event("%s message=%d", query ? "queried" : "ack", message);
    write_bytes(r, "\x04", 1);
    return 0;
}

/* Prints the host's answer to a query from its records. */
static void report_answer(const char *records, size_t len, const char *asked)
{
    struct astm_delimiters delimiters;
    struct astm_record record;
    char barcode[64] = "", subject[64] = "", codes[128] = "";
    bool no_info = false;

    astm_delimiters_default(&delimiters);
    astm_record_init(&record);
    for (const char *p = records; p < records + len;) {
        const char *end = memchr(p, '\r', (size_t)(records + len - p));
        size_t n = end ? (size_t)(end - p) : (size_t)(records + len - p);
        size_t value_len;
        if (n > 0 && astm_record_parse(p, n, &delimiters, &record) == 0) {
            char type = astm_record_type(&record);
            const char *v;
            if (type == 'P' && (v = astm_record_get(&record, 3, 1, 1, &value_len)) != NULL) {
                snprintf(subject, sizeof(subject), "%.*s", (int)value_len, v);
            } else if (type == 'O' && (v = astm_record_get(&record, 3, 1, 1, &value_len))) {
                snprintf(barcode, sizeof(barcode), "%.*s", (int)value_len, v);
                for (unsigned i = 1; i <= astm_record_repeat_count(&record, 5); i++) {
                    const char *code = astm_record_get(&record, 5, i, 4, &value_len);
                    size_t used = strlen(codes);
                    snprintf(codes + used, sizeof(codes) - used, "%s%.*s", i > 1 ? "," : "",
                             code ? (int)value_len : 0, code ? code : "");
                }
            } else if (type == 'L' && (v = astm_record_get(&record, 3, 1, 1, &value_len)) &&
                       value_len == 1 && v[0] == 'I') {
                no_info = true;
            }
        }
        p += n + 1;
    }
    astm_record_free(&record);
    if (no_info) {
        event("no-order barcode=%s", asked);
    } else {
        event("order barcode=%s subject=%s codes=%s", barcode, subject, codes);
    }
}

/* Receives the host's answer to a query: one link session with the host
 * as sender. With the interrupt fault, the first frame gets EOT and the
 * host must send the whole answer again in a new link session. */
static void receive_answer(struct hair_run *r, int message, const char *barcode, bool interrupt)
{
    struct astm_config config;
    struct astm_link link;
    char text[4096];
    size_t text_len = 0;
    int64_t deadline = now_ms() + r->scenario->reply_timeout_ms * 8;

    astm_config_defaults(&config, ASTM_ROLE_INSTRUMENT);
    if (astm_link_init(&link, &config) != 0) {
        return;
    }
    while (!r->stopping) {
        int byte = read_byte(r, deadline);
        if (byte < 0) {
            event("failed message=%d reason=no-answer", message);
            break;
        }
        uint8_t b = (uint8_t)byte;
        struct astm_event ev;
        astm_link_input(&link, &b, 1, now_ms(), &ev);
        write_bytes(r, ev.out, ev.out_len);
        if (ev.kind == ASTM_EV_ESTABLISHED && interrupt) {
            /* Establishment clears a pending interrupt, so it is asked for here. */
            astm_link_interrupt(&link);
        }
        if (ev.kind == ASTM_EV_FRAME && interrupt && ev.out_len == 1 && ev.out[0] == ASTM_EOT) {
            event("interrupt");
            interrupt = false;
            text_len = 0;
            continue;
        }
        if (ev.kind == ASTM_EV_FRAME && text_len + ev.text_len < sizeof(text)) {
            memcpy(text + text_len, ev.text, ev.text_len);
            text_len += ev.text_len;
        }
        if (ev.kind == ASTM_EV_PEER_ENDED && text_len > 0) {
            report_answer(text, text_len, barcode);
            break;
        }
    }
    astm_link_free(&link);
}

static void send_message(struct hair_run *r, int number)
{
    const struct hair_message *m = &r->scenario->messages[number - 1];
    char text[8192];

    if (number < 1 || number > r->scenario->count || !m->defined) {
        event("error text=no message %d in the scenario", number);
        return;
    }
    if (m->query) {
        size_t len = build_records(r->scenario, m, true, text, sizeof(text));
        if (send_session(r, number, text, len, HAIR_FAULT_NONE, true) == 0 &&
            m->fault != HAIR_FAULT_CONTENTION) {
            receive_answer(r, number, m->barcode, m->fault == HAIR_FAULT_INTERRUPT);
        }
    }
    size_t len = build_records(r->scenario, m, false, text, sizeof(text));
    int sends = m->fault == HAIR_FAULT_DUPLICATE ? 2 : 1;
    for (int i = 0; i < sends && !r->stopping; i++) {
        int fault = m->fault;
        /* A silent message is sent again whole, as an analyzer does after its timer. */
        while (send_session(r, number, text, len, fault, false) != 0 && !r->stopping) {
            if (fault != HAIR_FAULT_SILENCE) {
                return;
            }
            fault = HAIR_FAULT_NONE;
        }
        if (i == 1) {
            event("fault message=%d kind=duplicate", number);
        }
    }
    if (m->query && m->fault == HAIR_FAULT_CONTENTION) {
        receive_answer(r, number, m->barcode, false);
    }
}

/* Runs one command line from standard input. Returns false on quit. */
static bool run_command(struct hair_run *r, const char *line)
{
    if (strcmp(line, "quit") == 0) {
        return false;
    }
    if (strcmp(line, "send") == 0) {
        send_message(r, ++r->next_message);
    } else if (strncmp(line, "send ", 5) == 0) {
        send_message(r, atoi(line + 5));
    } else if (line[0] != '\0') {
        event("error text=unknown command '%s' (send [N], quit)", line);
    }
    return true;
}

/* Reads standard input; returns false at quit, or at end of file with
 * exit_on_eof. */
static bool read_commands(struct hair_run *r)
{
    char buffer[256];
    ssize_t got = read(STDIN_FILENO, buffer, sizeof(buffer));

    if (got <= 0) {
        return !r->run->exit_on_eof && got < 0;
    }
    for (ssize_t i = 0; i < got; i++) {
        if (buffer[i] != '\n') {
            if (r->line_len < sizeof(r->line) - 1) {
                r->line[r->line_len++] = buffer[i];
            }
            continue;
        }
        r->line[r->line_len] = '\0';
        r->line_len = 0;
        if (!run_command(r, r->line)) {
            return false;
        }
    }
    return true;
}

static int run_hair(const struct sim_run *run, const void *scenario)
{
    struct hair_run r = {.run = run, .scenario = scenario};
    bool stdin_open = true;

    event("ready kind=hair id=%s", r.scenario->id);
    while (!r.stopping) {
        struct pollfd fds[2] = {{.fd = run->signal_fd, .events = POLLIN},
                                {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        if (fds[0].revents & POLLIN) {
            break;
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!read_commands(&r)) {
                break;
            }
        }
    }
    event("stop");
    return 0;
}

static int no_slave(const void *scenario)
{
    (void)scenario;
    return 0;
}

const struct sim_kind hair_sim_kind = {
    .name = "hair",
    .summary = "hair analyzer, ASTM E1381/E1394 sender of result uploads",
    .load_scenario = hair_load_scenario,
    .scenario_slave = no_slave,
    .run = run_hair,
    .free_scenario = free,
};
