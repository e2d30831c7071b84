/* Event loop of a simulated Modbus RTU slave. Everything here is the same
 * for every Modbus kind: framing, slave addressing, broadcasts, replies,
 * the standard input commands mute, unmute, stall, unstall and quit, and
 * the event queue. The device's registers and commands come through
 * struct slave_device_ops. */
#define _GNU_SOURCE
#include "sim/slave_loop.h"

#include "sim/paced.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Silence that ends a frame whose length is still unknown or incomplete.
 * Modbus RTU's 3.5 character times are about 2 ms at 19200 baud, but a pty
 * carries no line timing and a writer may be descheduled between two
 * writes, so the sim waits longer before it judges a frame cut short. */
#define FRAME_GAP_MS 100

/* Time a reply may wait for room in the pty's queue before it is dropped. */
#define WRITE_TIMEOUT_MS 1000

#define EVENT_LINE_MAX 256 /* longer event lines are cut */

int64_t slave_loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void slave_loop_init(struct slave_loop *loop, const struct sim_run *run,
                     const struct slave_device_ops *ops, void *device,
                     const struct wire_fault_plan *plan)
{
    memset(loop, 0, sizeof *loop);
    loop->run = run;
    loop->ops = ops;
    loop->device = device;
    loop->slave = (uint8_t)run->slave;
    loop->stdin_open = true;
    loop->plan = plan;
    loop->plug_due_ms = -1;
}

static void flush_events(struct slave_loop *loop)
{
    if (loop->events_len == 0) {
        return;
    }

    /* A closed standard output must not stop the device, so write errors
     * are ignored. */
    fwrite(loop->events, 1, loop->events_len, stdout);
    fflush(stdout);
    loop->events_len = 0;
}

/* Only a queue that is nearly full is written before the reply. */
void slave_loop_event(struct slave_loop *loop, const char *format, ...)
{
    va_list args;

    if (loop->events_len + EVENT_LINE_MAX > SLAVE_LOOP_EVENTS_MAX) {
        flush_events(loop);
    }

    va_start(args, format);
    int n = vsnprintf(loop->events + loop->events_len, EVENT_LINE_MAX, format, args);
    va_end(args);
    if (n < 0) {
        return;
    }

    /* Room for the newline in place of the NUL that vsnprintf wrote. */
    size_t len = (size_t)n < EVENT_LINE_MAX ? (size_t)n : EVENT_LINE_MAX - 1;
    loop->events[loop->events_len + len] = '\n';
    loop->events_len += len + 1;
}

static void write_reply(struct slave_loop *loop, const uint8_t *reply, size_t len)
{
    size_t done = 0;

    if (loop->unplugged) {
        return;
    }
    if (loop->run->paced_baud > 0) {
        done = paced_write(loop->run->pty->master, reply, len, loop->input_start_ns,
                           loop->request_len, loop->run->paced_baud);
        if (done < len) {
            fprintf(stderr, "toxlab-sim: paced reply dropped after %zu of %zu bytes: %s\n", done,
                    len, strerror(errno));
        }
        return;
    }

    while (done < len) {
        ssize_t n = write(loop->run->pty->master, reply + done, len - done);

        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = loop->run->pty->master, .events = POLLOUT};

            if (poll(&pfd, 1, WRITE_TIMEOUT_MS) > 0) {
                continue;
            }
        }
        fprintf(stderr, "toxlab-sim: reply dropped after %zu of %zu bytes: %s\n", done, len,
                n < 0 ? strerror(errno) : "the pty's queue stayed full");
        return;
    }
}

static void emit_bad_frame(struct slave_loop *loop, const char *reason, size_t len)
{
    if (!loop->muted) {
        slave_loop_event(loop, "bad-frame reason=%s bytes=%zu", reason, len);
    }
}

/* Sends the reply, or keeps it back when `stall` asked for that. */
static void send_or_withhold(struct slave_loop *loop, const struct rtu_request *req,
                             const uint8_t *reply, size_t len)
{
    if (!loop->stall_next) {
        write_reply(loop, reply, len);
        return;
    }

    memcpy(loop->withheld, reply, len);
    loop->withheld_len = len;
    loop->withheld_function = req->function;
    loop->withheld_address = req->address;
    loop->stall_next = false;
    slave_loop_event(loop, "stalled function=%u register=%u", req->function, req->address);
}

/* Builds the reply to a request that this slave serves, or returns the
 * exception code for it. */
static uint8_t serve_request(struct slave_loop *loop, enum rtu_parse_status status,
                             const struct rtu_request *req, int64_t now, uint8_t *reply,
                             size_t *reply_len, unsigned *test)
{
    uint16_t values[RTU_MAX_READ_REGISTERS];
    uint8_t exception;

    if (status == RTU_BAD_FUNCTION || req->function == RTU_FC_READ_INPUT) {
        return RTU_EX_ILLEGAL_FUNCTION;
    }
    if (status == RTU_BAD_VALUE) {
        return RTU_EX_ILLEGAL_VALUE;
    }
    if (req->function != RTU_FC_READ_HOLDING) {
        return loop->ops->write(loop->device, req, now, test);
    }

    exception = loop->ops->read(loop->device, req->address, req->count, now, values);
    if (exception == 0) {
        *reply_len = rtu_build_read_reply(req->slave, req->function, values, req->count, reply);
    }
    return exception;
}

/* Stray bytes of the noise fault: no valid frame starts with them, because
 * 0xFF is no slave address and 0x00 no function code. */
static const uint8_t noise_bytes[] = {0xFF, 0x00, 0x55, 0xAA};

/* Closes the pty as a pulled cable would: the host's reads then fail. The
 * analyzer behind it keeps its test. */
static void unplug(struct slave_loop *loop, unsigned delay_ms, int64_t now)
{
    if (loop->unplugged) {
        return;
    }
    loop->plug_link = loop->run->pty->link;
    sim_pty_close(loop->run->pty);
    loop->unplugged = true;
    loop->plug_due_ms = delay_ms > 0 ? now + delay_ms : -1;
    loop->delayed_len = 0;
    loop->withheld_len = 0;
    slave_loop_event(loop, "unplug");
}

/* Opens a new pty, which gets another name while the host still holds the
 * old one, and points the link at it. Returns -1 when that fails. */
static int plug(struct slave_loop *loop)
{
    if (!loop->unplugged) {
        return 0;
    }
    if (sim_pty_open(loop->run->pty, loop->plug_link) < 0) {
        return -1;
    }
    loop->unplugged = false;
    loop->plug_due_ms = -1;
    loop->input_len = 0;
    slave_loop_event(loop, "plug pty=%s", loop->run->pty->path);
    return 0;
}

/* Counts the request and arms the fault the scenario schedules for it. */
static void count_request(struct slave_loop *loop, const struct rtu_request *req)
{
    const struct wire_fault *scheduled;

    loop->requests++;
    if (loop->run->trace_requests) {
        slave_loop_event(loop, "request n=%u function=%u register=%u", loop->requests,
                         req->function, req->address);
    }
    scheduled = wire_fault_at(loop->plan, loop->requests);
    if (scheduled != NULL) {
        loop->fault = *scheduled;
    }
}

/* Returns the fault kind that applies to this request, using up one of
 * its count. */
static enum wire_fault_kind take_fault(struct slave_loop *loop, const struct rtu_request *req)
{
    if (loop->fault.kind == WIRE_FAULT_NONE || loop->fault.count == 0) {
        return WIRE_FAULT_NONE;
    }
    if (loop->fault.address >= 0 && loop->fault.address != req->address) {
        return WIRE_FAULT_NONE;
    }

    enum wire_fault_kind kind = loop->fault.kind;
    if (--loop->fault.count == 0) {
        loop->fault.kind = WIRE_FAULT_NONE;
    }
    slave_loop_event(loop, "fault kind=%s request=%u function=%u register=%u",
                     wire_fault_name(kind), loop->requests, req->function, req->address);
    return kind;
}

/* Sends the reply as the fault changes it. Without a fault the reply is
 * sent normally, or withheld after `stall`. */
static void send_faulted(struct slave_loop *loop, enum wire_fault_kind fault,
                         const struct rtu_request *req, uint8_t *reply, size_t len, int64_t now)
{
    switch (fault) {
    case WIRE_FAULT_CORRUPT:
        reply[len - 1] ^= 0xFF;
        write_reply(loop, reply, len);
        break;
    case WIRE_FAULT_NOISE:
        write_reply(loop, noise_bytes, sizeof noise_bytes);
        write_reply(loop, reply, len);
        break;
    case WIRE_FAULT_DROP:
        break;
    case WIRE_FAULT_TRUNCATE:
        write_reply(loop, reply, len / 2);
        break;
    case WIRE_FAULT_SLOW:
        memcpy(loop->delayed, reply, len);
        loop->delayed_len = len;
        loop->delayed_due_ms = now + loop->fault.delay_ms;
        break;
    case WIRE_FAULT_RESEND:
        write_reply(loop, reply, len);
        write_reply(loop, reply, len);
        break;
    default:
        send_or_withhold(loop, req, reply, len);
        break;
    }
}

/* Handles the faults that replace the request: the analyzer is busy, it
 * restarts, or its cable is pulled. Returns true when the request was
 * used up. */
static bool fault_replaces_request(struct slave_loop *loop, enum wire_fault_kind fault,
                                   const struct rtu_request *req, int64_t now)
{
    uint8_t reply[RTU_MAX_FRAME];

    switch (fault) {
    case WIRE_FAULT_BUSY:
        write_reply(loop, reply,
                    rtu_build_exception(req->slave, req->function, RTU_EX_BUSY, reply));
        return true;
    case WIRE_FAULT_POWER_CYCLE:
        loop->ops->power_cycle(loop->device, now);
        return true;
    case WIRE_FAULT_UNPLUG:
        unplug(loop, loop->fault.delay_ms, now);
        return true;
    default:
        return false;
    }
}

/* Serves one whole frame. Frames for another slave are ignored. Broadcast
 * writes (slave 0) are carried out without a reply, as Modbus requires.
 * While a reply is withheld, requests are dropped without being acted on. */
static void handle_frame(struct slave_loop *loop, const uint8_t *frame, size_t len, int64_t now)
{
    struct rtu_request req;
    enum rtu_parse_status status = rtu_parse_request(frame, len, &req);

    if (status == RTU_BAD_CRC) {
        emit_bad_frame(loop, "crc", len);
        return;
    }
    if (status == RTU_BAD_LENGTH) {
        emit_bad_frame(loop, "length", len);
        return;
    }

    bool broadcast = req.slave == 0;
    bool is_write = req.function == RTU_FC_WRITE_SINGLE || req.function == RTU_FC_WRITE_MULTIPLE;
    if (loop->muted || (req.slave != loop->slave && !broadcast) || (broadcast && !is_write)) {
        return;
    }
    if (!broadcast) {
        count_request(loop, &req);
    }
    if (loop->withheld_len > 0 || loop->delayed_len > 0) {
        slave_loop_event(loop, "dropped function=%u register=%u", req.function, req.address);
        return;
    }
    enum wire_fault_kind fault = broadcast ? WIRE_FAULT_NONE : take_fault(loop, &req);

    loop->ops->advance(loop->device, now);
    if (fault_replaces_request(loop, fault, &req, now)) {
        return;
    }

    uint8_t reply[RTU_MAX_FRAME];
    size_t reply_len = 0;
    unsigned test = 0;
    loop->request_len = len;
    uint8_t exception = serve_request(loop, status, &req, now, reply, &reply_len, &test);

    /* A broadcast gets no reply, not even an exception. */
    if (broadcast) {
        return;
    }

    if (exception != 0) {
        reply_len = rtu_build_exception(req.slave, req.function, exception, reply);
        if (test != 0) {
            slave_loop_event(loop, "exception function=%u register=%u code=%u test=%u",
                             req.function, req.address, exception, test);
        } else {
            slave_loop_event(loop, "exception function=%u register=%u code=%u", req.function,
                             req.address, exception);
        }
    } else if (req.function == RTU_FC_WRITE_SINGLE) {
        reply_len = rtu_build_write_single_reply(req.slave, req.address, req.values[0], reply);
    } else if (req.function == RTU_FC_WRITE_MULTIPLE) {
        reply_len = rtu_build_write_multiple_reply(req.slave, req.address, req.count, reply);
    }
    send_faulted(loop, fault, &req, reply, reply_len, now);
}

static void consume_input(struct slave_loop *loop, size_t len)
{
    memmove(loop->input, loop->input + len, loop->input_len - len);
    loop->input_len -= len;
}

/* Serves every whole frame in the buffered bytes, however the reads split
 * them. Once the line has been silent for FRAME_GAP_MS (or the buffer is
 * full), the bytes left over are one frame of unknown length or a frame cut
 * short. */
static void process_input(struct slave_loop *loop, int64_t now, bool gap_passed)
{
    while (loop->input_len > 0) {
        int len = rtu_request_length(loop->input, loop->input_len);

        if (len > 0 && (size_t)len <= loop->input_len) {
            handle_frame(loop, loop->input, (size_t)len, now);
            if (loop->unplugged) {
                /* Bytes after the request went with the old pty. */
                loop->input_len = 0;
                return;
            }
            consume_input(loop, (size_t)len);
            continue;
        }
        if (!gap_passed) {
            return;
        }

        if (len < 0) {
            handle_frame(loop, loop->input, loop->input_len, now);
        } else {
            emit_bad_frame(loop, "short", loop->input_len);
        }
        loop->input_len = 0;
    }
}

/* Returns -1 after a read error that the sim cannot recover from. */
static int read_requests(struct slave_loop *loop, int64_t now)
{
    if (loop->input_len == 0) {
        loop->input_start_ns = paced_now_ns();
    }

    ssize_t n = read(loop->run->pty->master, loop->input + loop->input_len,
                     sizeof loop->input - loop->input_len);

    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) {
            return 0;
        }
        fprintf(stderr, "toxlab-sim: read %s: %s\n", loop->run->pty->path, strerror(errno));
        return -1;
    }

    loop->input_len += (size_t)n;
    loop->last_input_ms = now;
    process_input(loop, now, false);
    if (loop->input_len == sizeof loop->input) {
        process_input(loop, now, true);
    }
    return 0;
}

/* Sends the withheld reply, if any, and leaves a `stall` given meanwhile
 * armed for the next request. Without a withheld reply, it cancels a
 * `stall` that no request has met yet. */
static void unstall(struct slave_loop *loop)
{
    if (loop->withheld_len == 0) {
        loop->stall_next = false;
        slave_loop_event(loop, "unstalled");
        return;
    }

    write_reply(loop, loop->withheld, loop->withheld_len);
    loop->withheld_len = 0;
    slave_loop_event(loop, "unstalled function=%u register=%u", loop->withheld_function,
                     loop->withheld_address);
}

void slave_loop_arm_fault(struct slave_loop *loop, const struct wire_fault *fault, unsigned test)
{
    char where[48] = "";

    loop->fault = *fault;
    if (fault->kind == WIRE_FAULT_NONE) {
        slave_loop_event(loop, "fault-armed kind=none");
        return;
    }
    if (fault->address >= 0) {
        snprintf(where, sizeof where, " register=%d", fault->address);
    }
    if (test != 0) {
        size_t used = strlen(where);
        snprintf(where + used, sizeof where - used, " test=%u", test);
    }
    slave_loop_event(loop, "fault-armed kind=%s count=%u delay_ms=%u%s",
                     wire_fault_name(fault->kind), fault->count, fault->delay_ms, where);
}

static void arm_fault(struct slave_loop *loop, const char *arguments)
{
    struct wire_fault fault;
    const char *error = NULL;

    if (!wire_fault_parse_command(arguments, &fault, &error)) {
        fprintf(stderr, "toxlab-sim: fault %s: %s\n", arguments, error);
        return;
    }
    slave_loop_arm_fault(loop, &fault, 0);
}

/* Runs the commands that change the wire: fault, unplug and plug. Returns
 * false for other commands. */
static bool run_wire_command(struct slave_loop *loop, const char *line)
{
    unsigned long delay = 0;

    if (strncmp(line, "fault ", 6) == 0) {
        arm_fault(loop, line + 6);
    } else if (strcmp(line, "unplug") == 0 ||
               (strncmp(line, "unplug ", 7) == 0 &&
                scenario_parse_unsigned(line + 7, WIRE_FAULT_MAX_MS, &delay))) {
        unplug(loop, (unsigned)delay, slave_loop_now_ms());
    } else if (strcmp(line, "plug") == 0) {
        if (plug(loop) < 0) {
            loop->stopping = true;
        }
    } else {
        return false;
    }
    return true;
}

static void run_stdin_command(struct slave_loop *loop, char *line)
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
        loop->muted = true;
        slave_loop_event(loop, "mute");
    } else if (strcmp(line, "unmute") == 0) {
        loop->muted = false;
        slave_loop_event(loop, "unmute");
    } else if (strcmp(line, "stall") == 0) {
        loop->stall_next = true;
        slave_loop_event(loop, "stall");
    } else if (strcmp(line, "unstall") == 0) {
        unstall(loop);
    } else if (strcmp(line, "quit") == 0) {
        loop->stopping = true;
    } else if (!run_wire_command(loop, line) && !loop->ops->command(loop->device, line)) {
        fprintf(stderr,
                "toxlab-sim: unknown command '%s' on standard input (expected mute, unmute, "
                "stall, unstall, fault, unplug, plug, %s or quit)\n",
                line, loop->ops->command_names);
    }
}

static void take_stdin_byte(struct slave_loop *loop, char c)
{
    if (c != '\n') {
        if (loop->command_len < sizeof loop->command - 1) {
            loop->command[loop->command_len++] = c;
        } else {
            loop->command_too_long = true;
        }
        return;
    }

    loop->command[loop->command_len] = '\0';
    if (loop->command_too_long) {
        fprintf(stderr, "toxlab-sim: command on standard input longer than %zu bytes ignored\n",
                sizeof loop->command - 1);
    } else {
        run_stdin_command(loop, loop->command);
    }
    loop->command_len = 0;
    loop->command_too_long = false;
}

static void read_commands(struct slave_loop *loop)
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
        if (loop->command_len > 0) {
            take_stdin_byte(loop, '\n');
        }
        loop->stdin_open = false;
        if (loop->run->exit_on_eof) {
            loop->stopping = true;
        }
        return;
    }

    for (ssize_t i = 0; i < n && !loop->stopping; i++) {
        take_stdin_byte(loop, buffer[i]);
    }
}

/* Returns the poll timeout: the device's next due time or the end of the
 * frame gap, whichever comes first, or -1 when nothing is due. */
static int64_t earlier(int64_t due, int64_t other)
{
    return due < 0 || (other >= 0 && other < due) ? other : due;
}

static int next_timeout(const struct slave_loop *loop, int64_t now)
{
    int64_t due = loop->ops->next_due(loop->device);

    if (loop->delayed_len > 0) {
        due = earlier(due, loop->delayed_due_ms);
    }
    if (loop->unplugged) {
        due = earlier(due, loop->plug_due_ms);
    }

    if (loop->input_len > 0) {
        int64_t gap_end = loop->last_input_ms + FRAME_GAP_MS;

        if (due < 0 || gap_end < due) {
            due = gap_end;
        }
    }

    if (due < 0) {
        return -1;
    }
    return due <= now ? 0 : (int)(due - now);
}

/* Sends a late reply that is due and plugs the pty in again when its
 * time has come. Returns -1 when a new pty cannot be opened. */
static int run_wire_timers(struct slave_loop *loop, int64_t now)
{
    if (loop->delayed_len > 0 && now >= loop->delayed_due_ms) {
        write_reply(loop, loop->delayed, loop->delayed_len);
        loop->delayed_len = 0;
    }
    if (loop->unplugged && loop->plug_due_ms >= 0 && now >= loop->plug_due_ms && plug(loop) < 0) {
        return -1;
    }
    flush_events(loop);
    return 0;
}

/* Waits for the next request, command, signal or timer and handles it.
 * Returns -1 on an error that ends the run. The pty is served before
 * standard input in each round. */
static int serve_once(struct slave_loop *loop)
{
    struct pollfd fds[3] = {
        {.fd = loop->run->signal_fd, .events = POLLIN},
        {.fd = loop->unplugged ? -1 : loop->run->pty->master, .events = POLLIN},
        {.fd = loop->stdin_open ? STDIN_FILENO : -1, .events = POLLIN},
    };
    int64_t now = slave_loop_now_ms();

    loop->ops->advance(loop->device, now);
    flush_events(loop);

    if (poll(fds, 3, next_timeout(loop, now)) < 0) {
        if (errno == EINTR) {
            return 0;
        }
        fprintf(stderr, "toxlab-sim: poll: %s\n", strerror(errno));
        return -1;
    }
    now = slave_loop_now_ms();

    if (fds[0].revents & POLLIN) {
        struct signalfd_siginfo info;

        if (read(loop->run->signal_fd, &info, sizeof info) > 0) {
            loop->stopping = true;
        }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (read_requests(loop, now) < 0) {
            return -1;
        }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
        read_commands(loop);
    }
    if (loop->input_len > 0 && now - loop->last_input_ms >= FRAME_GAP_MS) {
        process_input(loop, now, true);
    }
    return run_wire_timers(loop, now);
}

/* A reply still withheld at the stop is never sent. */
int slave_loop_run(struct slave_loop *loop)
{
    int status = 0;

    while (!loop->stopping) {
        if (serve_once(loop) < 0) {
            status = 1;
            break;
        }
    }

    slave_loop_event(loop, "stop");
    flush_events(loop);
    return status;
}
