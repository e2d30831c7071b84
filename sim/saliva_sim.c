/* Simulated saliva analyzer. One poll() loop serves Modbus RTU requests on
 * the pty master, commands on standard input and the phase timers of the
 * running test, and prints an event line for each thing that happens. The
 * register map is protocol/saliva_map.h. Replies are built with
 * protocol/rtu.c so that the sim controls every byte on the wire. */
#define _GNU_SOURCE
#include "sim/saliva_sim.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "protocol/rtu.h"
#include "protocol/saliva_map.h"

/* Silence that ends a frame whose length is still unknown or incomplete.
 * Modbus RTU's 3.5 character times are about 2 ms at 19200 baud, but a pty
 * carries no line timing and a writer may be descheduled between two
 * writes, so the sim waits longer before it judges a frame cut short. */
#define FRAME_GAP_MS 100

/* Time a reply may wait for room in the pty's queue before it is dropped. */
#define WRITE_TIMEOUT_MS 1000

#define INPUT_MAX (2 * RTU_MAX_FRAME)
#define COMMAND_MAX 128
#define EVENTS_MAX 4096
#define EVENT_LINE_MAX 256 /* longer event lines are cut */

struct saliva_sim {
    const struct sim_run *run;
    const struct scenario *scenario;
    uint8_t slave;

    uint16_t identity[SALIVA_ID_COUNT];
    uint16_t result[SALIVA_RESULT_COUNT]; /* zeros unless a result is ready */
    uint32_t control_host_id;             /* registers 200 and 201 as last written */

    enum saliva_state state;
    uint16_t error_code;
    uint16_t sequence;      /* sequence number of the last result */
    uint32_t host_test_id;  /* host test ID of the current test, 0 when idle */
    unsigned tests_started; /* start commands that began a test or hit fault=exception */
    unsigned test_number;
    const struct scenario_test *test;
    int64_t test_start_ms;
    int64_t phase_end_ms;
    bool hold;        /* `hold` was given and not yet released */
    bool held_at_end; /* the analysing time is over but `hold` keeps the test there */
    bool muted;       /* requests are dropped unanswered */

    uint8_t input[INPUT_MAX]; /* request bytes not yet framed */
    size_t input_len;
    int64_t last_input_ms;

    char command[COMMAND_MAX]; /* standard input line being read */
    size_t command_len;
    bool command_too_long;
    bool stdin_open;
    bool stopping;

    char events[EVENTS_MAX]; /* event lines not yet written to stdout */
    size_t events_len;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void flush_events(struct saliva_sim *sim)
{
    if (sim->events_len == 0) {
        return;
    }

    /* A closed standard output must not stop the device, so write errors
     * are ignored. */
    fwrite(sim->events, 1, sim->events_len, stdout);
    fflush(stdout);
    sim->events_len = 0;
}

/* Queues one event line. The queue is written by flush_events, which runs
 * after the reply to the request that caused the events, so that a reader
 * of an event can already read that reply. Only a queue that is nearly full
 * is written earlier. */
static void emit_event(struct saliva_sim *sim, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void emit_event(struct saliva_sim *sim, const char *format, ...)
{
    va_list args;

    if (sim->events_len + EVENT_LINE_MAX > EVENTS_MAX) {
        flush_events(sim);
    }

    va_start(args, format);
    int n = vsnprintf(sim->events + sim->events_len, EVENT_LINE_MAX, format, args);
    va_end(args);
    if (n < 0) {
        return;
    }

    /* Room for the newline in place of the NUL that vsnprintf wrote. */
    size_t len = (size_t)n < EVENT_LINE_MAX ? (size_t)n : EVENT_LINE_MAX - 1;
    sim->events[sim->events_len + len] = '\n';
    sim->events_len += len + 1;
}

static bool is_running(enum saliva_state state)
{
    return state == SALIVA_CARTRIDGE_IN || state == SALIVA_COLLECTING || state == SALIVA_ANALYSING;
}

static int64_t phase_ms(const struct saliva_sim *sim, enum saliva_state state)
{
    switch (state) {
    case SALIVA_CARTRIDGE_IN:
        return sim->scenario->cartridge_ms;
    case SALIVA_COLLECTING:
        return sim->scenario->collecting_ms;
    case SALIVA_ANALYSING:
        return sim->scenario->analysing_ms;
    default:
        return 0;
    }
}

static int64_t test_ms(const struct saliva_sim *sim)
{
    return phase_ms(sim, SALIVA_CARTRIDGE_IN) + phase_ms(sim, SALIVA_COLLECTING) +
           phase_ms(sim, SALIVA_ANALYSING);
}

static void reset_to_idle(struct saliva_sim *sim)
{
    sim->state = SALIVA_IDLE;
    sim->error_code = SALIVA_ERR_NONE;
    sim->host_test_id = 0;
    sim->test = NULL;
    sim->held_at_end = false;
    memset(sim->result, 0, sizeof sim->result);
}

static void enter_phase(struct saliva_sim *sim, enum saliva_state state, int64_t start_ms)
{
    sim->state = state;
    sim->phase_end_ms = start_ms + phase_ms(sim, state);
    emit_event(sim, "phase test=%u state=%s", sim->test_number, saliva_state_name(state));

    if (state == SALIVA_ANALYSING && sim->test->fault == SCENARIO_FAULT_SILENT) {
        sim->muted = true;
        emit_event(sim, "mute test=%u fault=silent", sim->test_number);
    }
}

/* Fills the result block from the scenario's entry for the current test. */
static void store_result(struct saliva_sim *sim)
{
    const struct scenario *sc = sim->scenario;
    const struct scenario_test *test = sim->test;
    struct saliva_result res = {0};

    /* Sequence numbers skip 0, which the cleared block reads. */
    sim->sequence++;
    if (sim->sequence == 0) {
        sim->sequence = 1;
    }

    res.host_test_id = sim->host_test_id;
    if (test->fault == SCENARIO_FAULT_WRONG_ID) {
        res.host_test_id++;
    }
    res.sequence = sim->sequence;
    res.panel_size = (uint16_t)sc->panel_size;
    res.status = test->outcome;

    for (size_t i = 0; i < sc->panel_size; i++) {
        uint16_t code = sc->panel[i];
        uint32_t bit = 1u << code;
        struct saliva_analyte_result *a = &res.analytes[i];

        a->code = code;
        a->concentration = test->concentration[code];
        a->control_valid = (test->control_invalid & bit) == 0;
        a->flags = 0;
        if (test->over_range & bit) {
            a->flags |= SALIVA_FLAG_OVER_RANGE;
        }
        if (test->under_range & bit) {
            a->flags |= SALIVA_FLAG_UNDER_RANGE;
        }
    }
    saliva_encode_result(&res, sim->result);
}

/* Queues the error event, with hyphens for the spaces of the error text so
 * that each value stays one word. */
static void emit_error_event(struct saliva_sim *sim)
{
    char text[64];

    snprintf(text, sizeof text, "%s", saliva_error_text(sim->error_code));
    for (char *c = text; *c != '\0'; c++) {
        if (*c == ' ') {
            *c = '-';
        }
    }
    emit_event(sim, "error test=%u code=%u text=%s", sim->test_number, sim->error_code, text);
}

static void finish_test(struct saliva_sim *sim)
{
    sim->held_at_end = false;
    if (sim->test->error != SALIVA_ERR_NONE) {
        sim->state = SALIVA_ERROR;
        sim->error_code = sim->test->error;
        emit_event(sim, "phase test=%u state=error", sim->test_number);
        emit_error_event(sim);
        return;
    }

    store_result(sim);
    sim->state = SALIVA_RESULT_READY;
    emit_event(sim, "phase test=%u state=result-ready", sim->test_number);
}

/* Moves the running test through every phase whose time is over. Each next
 * phase starts when the previous one was due to end, so a late wake-up
 * never stretches the schedule. */
static void advance_phases(struct saliva_sim *sim, int64_t now)
{
    while (is_running(sim->state) && !sim->held_at_end && now >= sim->phase_end_ms) {
        int64_t end = sim->phase_end_ms;

        switch (sim->state) {
        case SALIVA_CARTRIDGE_IN:
            enter_phase(sim, SALIVA_COLLECTING, end);
            break;
        case SALIVA_COLLECTING:
            enter_phase(sim, SALIVA_ANALYSING, end);
            break;
        default:
            if (sim->hold) {
                sim->held_at_end = true;
            } else {
                finish_test(sim);
            }
            break;
        }
    }
}

/* Percent done and seconds left run over the whole test, so that percent
 * only rises and seconds left only falls. A test held past its time stays
 * at 99 % and 0 s. */
static void build_status(const struct saliva_sim *sim, int64_t now,
                         uint16_t regs[SALIVA_STATUS_COUNT])
{
    struct saliva_status st = {
        .state = (uint16_t)sim->state,
        .error_code = sim->error_code,
        .sequence = sim->sequence,
        .host_test_id = sim->host_test_id,
    };

    if (is_running(sim->state)) {
        int64_t total = test_ms(sim);
        int64_t elapsed = now - sim->test_start_ms;
        int64_t percent = total > 0 ? elapsed * 100 / total : 99;
        int64_t left_ms = total - elapsed;
        int64_t seconds = left_ms > 0 ? (left_ms + 999) / 1000 : 0;

        st.percent = (uint16_t)(percent < 99 ? percent : 99);
        st.seconds_left = (uint16_t)(seconds < UINT16_MAX ? seconds : UINT16_MAX);
    } else if (sim->state == SALIVA_RESULT_READY) {
        st.percent = 100;
    }
    saliva_encode_status(&st, regs);
}

static bool in_block(uint32_t address, uint32_t start, uint32_t count)
{
    return address >= start && address < start + count;
}

/* Returns false for an address outside every block. */
static bool read_register(const struct saliva_sim *sim, const uint16_t *status, uint32_t address,
                          uint16_t *value)
{
    if (in_block(address, SALIVA_ID_ADDR, SALIVA_ID_COUNT)) {
        *value = sim->identity[address - SALIVA_ID_ADDR];
    } else if (in_block(address, SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT)) {
        *value = status[address - SALIVA_STATUS_ADDR];
    } else if (in_block(address, SALIVA_CONTROL_ADDR, SALIVA_CONTROL_COUNT)) {
        /* The command register reads 0 because each command acts when written. */
        uint16_t control[SALIVA_CONTROL_COUNT];

        saliva_encode_control(sim->control_host_id, SALIVA_CMD_NONE, control);
        *value = control[address - SALIVA_CONTROL_ADDR];
    } else if (in_block(address, SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT)) {
        *value = sim->result[address - SALIVA_RESULT_ADDR];
    } else {
        return false;
    }
    return true;
}

/* Builds the reply to a function 3 request into reply, or returns an
 * exception code. */
static uint8_t handle_read(const struct saliva_sim *sim, const struct rtu_request *req, int64_t now,
                           uint8_t *reply, size_t *reply_len)
{
    uint16_t status[SALIVA_STATUS_COUNT];
    uint16_t values[RTU_MAX_READ_REGISTERS];

    build_status(sim, now, status);
    for (uint16_t i = 0; i < req->count; i++) {
        if (!read_register(sim, status, (uint32_t)req->address + i, &values[i])) {
            return RTU_EX_ILLEGAL_ADDRESS;
        }
    }
    *reply_len = rtu_build_read_reply(req->slave, req->function, values, req->count, reply);
    return 0;
}

static uint8_t start_test(struct saliva_sim *sim, uint32_t host_id, int64_t now,
                          unsigned *rejected_test)
{
    if (is_running(sim->state) || sim->state == SALIVA_RESULT_READY) {
        return RTU_EX_BUSY;
    }

    unsigned number = ++sim->tests_started;
    const struct scenario_test *test = scenario_test_for(sim->scenario, number);
    if (test->fault == SCENARIO_FAULT_EXCEPTION) {
        *rejected_test = number;
        return RTU_EX_DEVICE_FAILURE;
    }

    /* A start from the error state drops the error, as a new cartridge would. */
    reset_to_idle(sim);
    sim->test = test;
    sim->test_number = number;
    sim->host_test_id = host_id;
    sim->test_start_ms = now;
    emit_event(sim, "start test=%u host_id=0x%08x", number, host_id);
    enter_phase(sim, SALIVA_CARTRIDGE_IN, now);
    return 0;
}

/* Abort drops whatever the analyzer holds: a running test, an unread result
 * or an error. In idle it does nothing. */
static void abort_test(struct saliva_sim *sim)
{
    if (sim->state == SALIVA_IDLE) {
        return;
    }
    emit_event(sim, "abort test=%u host_id=0x%08x", sim->test_number, sim->host_test_id);
    reset_to_idle(sim);
}

/* Acknowledging clears a result or an error, and does nothing in other
 * states. The host test ID written with it is not compared with the result's. */
static void acknowledge_result(struct saliva_sim *sim)
{
    if (sim->state != SALIVA_RESULT_READY && sim->state != SALIVA_ERROR) {
        return;
    }
    emit_event(sim, "ack test=%u host_id=0x%08x", sim->test_number, sim->host_test_id);
    reset_to_idle(sim);
}

static uint8_t run_command(struct saliva_sim *sim, uint16_t command, uint32_t host_id, int64_t now,
                           unsigned *rejected_test)
{
    switch (command) {
    case SALIVA_CMD_NONE:
        return 0;
    case SALIVA_CMD_START:
        return start_test(sim, host_id, now, rejected_test);
    case SALIVA_CMD_ABORT:
        abort_test(sim);
        return 0;
    case SALIVA_CMD_ACK_RESULT:
        acknowledge_result(sim);
        return 0;
    case SALIVA_CMD_SELF_TEST:
        /* The simulated self-test passes at once, unless a test is running. */
        return is_running(sim->state) ? RTU_EX_BUSY : 0;
    default:
        return RTU_EX_ILLEGAL_VALUE;
    }
}

/* Applies a function 6 or 16 write to the control block. A write that
 * reaches the command register runs the command with the host test ID of
 * the same write, or the one last written. A command that fails changes no
 * register. */
static uint8_t handle_write(struct saliva_sim *sim, const struct rtu_request *req, int64_t now,
                            unsigned *rejected_test)
{
    uint32_t first = req->address;
    uint32_t last = first + req->count - 1;
    uint16_t control[SALIVA_CONTROL_COUNT];

    if (first < SALIVA_CONTROL_ADDR || last > SALIVA_COMMAND_ADDR) {
        return RTU_EX_ILLEGAL_ADDRESS;
    }

    saliva_encode_control(sim->control_host_id, SALIVA_CMD_NONE, control);
    for (uint16_t i = 0; i < req->count; i++) {
        control[first - SALIVA_CONTROL_ADDR + i] = req->values[i];
    }

    uint32_t host_id = saliva_get_u32(control);
    if (last == SALIVA_COMMAND_ADDR) {
        uint16_t command = control[SALIVA_COMMAND_ADDR - SALIVA_CONTROL_ADDR];
        uint8_t exception = run_command(sim, command, host_id, now, rejected_test);

        if (exception != 0) {
            return exception;
        }
    }
    sim->control_host_id = host_id;
    return 0;
}

static void write_reply(struct saliva_sim *sim, const uint8_t *reply, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(sim->run->pty->master, reply + done, len - done);

        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = sim->run->pty->master, .events = POLLOUT};

            if (poll(&pfd, 1, WRITE_TIMEOUT_MS) > 0) {
                continue;
            }
        }
        fprintf(stderr, "toxlab-sim: reply dropped after %zu of %zu bytes: %s\n", done, len,
                n < 0 ? strerror(errno) : "the pty's queue stayed full");
        return;
    }
}

static void emit_bad_frame(struct saliva_sim *sim, const char *reason, size_t len)
{
    if (!sim->muted) {
        emit_event(sim, "bad-frame reason=%s bytes=%zu", reason, len);
    }
}

/* Serves one whole frame. Frames for another slave are ignored. Broadcast
 * writes (slave 0) are carried out without a reply, as Modbus requires. */
static void handle_frame(struct saliva_sim *sim, const uint8_t *frame, size_t len, int64_t now)
{
    struct rtu_request req;
    enum rtu_parse_status status = rtu_parse_request(frame, len, &req);

    if (status == RTU_BAD_CRC) {
        emit_bad_frame(sim, "crc", len);
        return;
    }
    if (status == RTU_BAD_LENGTH) {
        emit_bad_frame(sim, "length", len);
        return;
    }

    bool broadcast = req.slave == 0;
    bool is_write = req.function == RTU_FC_WRITE_SINGLE || req.function == RTU_FC_WRITE_MULTIPLE;
    if (sim->muted || (req.slave != sim->slave && !broadcast) || (broadcast && !is_write)) {
        return;
    }

    advance_phases(sim, now);

    uint8_t reply[RTU_MAX_FRAME];
    size_t reply_len = 0;
    uint8_t exception = 0;
    unsigned rejected_test = 0;

    if (status == RTU_BAD_FUNCTION || req.function == RTU_FC_READ_INPUT) {
        exception = RTU_EX_ILLEGAL_FUNCTION;
    } else if (status == RTU_BAD_VALUE) {
        exception = RTU_EX_ILLEGAL_VALUE;
    } else if (req.function == RTU_FC_READ_HOLDING) {
        exception = handle_read(sim, &req, now, reply, &reply_len);
    } else {
        exception = handle_write(sim, &req, now, &rejected_test);
    }

    /* A broadcast gets no reply, not even an exception. */
    if (broadcast) {
        return;
    }

    if (exception != 0) {
        reply_len = rtu_build_exception(req.slave, req.function, exception, reply);
        if (rejected_test != 0) {
            emit_event(sim, "exception function=%u register=%u code=%u test=%u", req.function,
                       req.address, exception, rejected_test);
        } else {
            emit_event(sim, "exception function=%u register=%u code=%u", req.function, req.address,
                       exception);
        }
    } else if (req.function == RTU_FC_WRITE_SINGLE) {
        reply_len = rtu_build_write_single_reply(req.slave, req.address, req.values[0], reply);
    } else if (req.function == RTU_FC_WRITE_MULTIPLE) {
        reply_len = rtu_build_write_multiple_reply(req.slave, req.address, req.count, reply);
    }
    write_reply(sim, reply, reply_len);
}

static void consume_input(struct saliva_sim *sim, size_t len)
{
    memmove(sim->input, sim->input + len, sim->input_len - len);
    sim->input_len -= len;
}

/* Serves every whole frame in the buffered bytes, however the reads split
 * them. Once the line has been silent for FRAME_GAP_MS (or the buffer is
 * full), the bytes left over are one frame of unknown length or a frame cut
 * short. */
static void process_input(struct saliva_sim *sim, int64_t now, bool gap_passed)
{
    while (sim->input_len > 0) {
        int len = rtu_request_length(sim->input, sim->input_len);

        if (len > 0 && (size_t)len <= sim->input_len) {
            handle_frame(sim, sim->input, (size_t)len, now);
            consume_input(sim, (size_t)len);
            continue;
        }
        if (!gap_passed) {
            return;
        }

        if (len < 0) {
            handle_frame(sim, sim->input, sim->input_len, now);
        } else {
            emit_bad_frame(sim, "short", sim->input_len);
        }
        sim->input_len = 0;
    }
}

/* Returns -1 after a read error that the sim cannot recover from. */
static int read_requests(struct saliva_sim *sim, int64_t now)
{
    ssize_t n = read(sim->run->pty->master, sim->input + sim->input_len,
                     sizeof sim->input - sim->input_len);

    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return 0;
        }
        fprintf(stderr, "toxlab-sim: read %s: %s\n", sim->run->pty->path, strerror(errno));
        return -1;
    }

    sim->input_len += (size_t)n;
    sim->last_input_ms = now;
    process_input(sim, now, false);
    if (sim->input_len == sizeof sim->input) {
        process_input(sim, now, true);
    }
    return 0;
}

static void hold_test(struct saliva_sim *sim)
{
    sim->hold = true;
    if (is_running(sim->state)) {
        emit_event(sim, "hold test=%u", sim->test_number);
    } else {
        emit_event(sim, "hold");
    }
}

static void release_test(struct saliva_sim *sim)
{
    sim->hold = false;
    if (is_running(sim->state)) {
        emit_event(sim, "release test=%u", sim->test_number);
    } else {
        emit_event(sim, "release");
    }
    if (sim->held_at_end) {
        finish_test(sim);
    }
}

static void run_stdin_command(struct saliva_sim *sim, char *line)
{
    size_t len = strlen(line);

    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r')) {
        line[--len] = '\0';
    }
    while (*line == ' ' || *line == '\t') {
        line++;
    }

    if (*line == '\0') {
        return;
    } else if (strcmp(line, "mute") == 0) {
        sim->muted = true;
        emit_event(sim, "mute");
    } else if (strcmp(line, "unmute") == 0) {
        sim->muted = false;
        emit_event(sim, "unmute");
    } else if (strcmp(line, "hold") == 0) {
        hold_test(sim);
    } else if (strcmp(line, "release") == 0) {
        release_test(sim);
    } else if (strcmp(line, "quit") == 0) {
        sim->stopping = true;
    } else {
        fprintf(stderr,
                "toxlab-sim: unknown command '%s' on standard input (expected mute, unmute, "
                "hold, release or quit)\n",
                line);
    }
}

static void take_stdin_byte(struct saliva_sim *sim, char c)
{
    if (c != '\n') {
        if (sim->command_len < sizeof sim->command - 1) {
            sim->command[sim->command_len++] = c;
        } else {
            sim->command_too_long = true;
        }
        return;
    }

    sim->command[sim->command_len] = '\0';
    if (sim->command_too_long) {
        fprintf(stderr, "toxlab-sim: command on standard input longer than %zu bytes ignored\n",
                sizeof sim->command - 1);
    } else {
        run_stdin_command(sim, sim->command);
    }
    sim->command_len = 0;
    sim->command_too_long = false;
}

static void read_commands(struct saliva_sim *sim)
{
    char buffer[256];
    ssize_t n = read(STDIN_FILENO, buffer, sizeof buffer);

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        if (n < 0) {
            fprintf(stderr, "toxlab-sim: read standard input: %s\n", strerror(errno));
        }
        if (sim->command_len > 0) {
            take_stdin_byte(sim, '\n');
        }
        sim->stdin_open = false;
        if (sim->run->exit_on_eof) {
            sim->stopping = true;
        }
        return;
    }

    for (ssize_t i = 0; i < n && !sim->stopping; i++) {
        take_stdin_byte(sim, buffer[i]);
    }
}

/* Returns the poll timeout: the end of the current phase or of the frame
 * gap, whichever comes first, or -1 when nothing is due. */
static int next_timeout(const struct saliva_sim *sim, int64_t now)
{
    int64_t due = -1;

    if (is_running(sim->state) && !sim->held_at_end) {
        due = sim->phase_end_ms;
    }
    if (sim->input_len > 0) {
        int64_t gap_end = sim->last_input_ms + FRAME_GAP_MS;

        if (due < 0 || gap_end < due) {
            due = gap_end;
        }
    }

    if (due < 0) {
        return -1;
    }
    return due <= now ? 0 : (int)(due - now);
}

static void init_sim(struct saliva_sim *sim, const struct sim_run *run)
{
    const struct scenario *sc = run->scenario;
    struct saliva_identity id = {
        .model = SALIVA_MODEL_CODE,
        .protocol = SALIVA_PROTOCOL_VERSION,
        .calibration_date = sc->calibration_date,
        .cartridge_expiry = sc->cartridge_expiry,
    };

    memset(sim, 0, sizeof *sim);
    sim->run = run;
    sim->scenario = sc;
    sim->slave = (uint8_t)run->slave;
    sim->stdin_open = true;
    reset_to_idle(sim);

    snprintf(id.serial, sizeof id.serial, "%s", sc->serial);
    snprintf(id.firmware, sizeof id.firmware, "%s", sc->firmware);
    snprintf(id.cartridge_lot, sizeof id.cartridge_lot, "%s", sc->cartridge_lot);
    saliva_encode_identity(&id, sim->identity);
}

/* Waits for the next request, command, signal or timer and handles it.
 * Returns -1 on an error that ends the run. */
static int serve_once(struct saliva_sim *sim)
{
    struct pollfd fds[3] = {
        {.fd = sim->run->signal_fd, .events = POLLIN},
        {.fd = sim->run->pty->master, .events = POLLIN},
        {.fd = sim->stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
    };
    int64_t now = now_ms();

    advance_phases(sim, now);
    flush_events(sim);

    if (poll(fds, 3, next_timeout(sim, now)) < 0) {
        if (errno == EINTR) {
            return 0;
        }
        fprintf(stderr, "toxlab-sim: poll: %s\n", strerror(errno));
        return -1;
    }
    now = now_ms();

    if (fds[0].revents & POLLIN) {
        struct signalfd_siginfo info;

        if (read(sim->run->signal_fd, &info, sizeof info) > 0) {
            sim->stopping = true;
        }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (read_requests(sim, now) < 0) {
            return -1;
        }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
        read_commands(sim);
    }
    if (sim->input_len > 0 && now - sim->last_input_ms >= FRAME_GAP_MS) {
        process_input(sim, now, true);
    }
    flush_events(sim);
    return 0;
}

int saliva_sim_run(const struct sim_run *run)
{
    struct saliva_sim *sim = malloc(sizeof *sim);
    int status = 0;

    if (sim == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory\n");
        return 1;
    }
    init_sim(sim, run);

    emit_event(sim, "ready kind=saliva serial=%s slave=%u", run->scenario->serial, sim->slave);
    while (!sim->stopping) {
        if (serve_once(sim) < 0) {
            status = 1;
            break;
        }
    }

    emit_event(sim, "stop");
    flush_events(sim);
    free(sim);
    return status;
}
