/* Integration tests of toxlab-sim saliva and breath on a real pty: a
 * third-party master (mbpoll) reads the identity, and the test itself
 * speaks Modbus RTU on the pty's slave side to check framing, commands,
 * scenario faults and the stall command. Every wait is for an event line or
 * a reply, with a deadline. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "protocol/breath_map.h"
#include "protocol/rtu.h"
#include "protocol/saliva_map.h"

#define EVENT_TIMEOUT_MS 5000
#define REPLY_TIMEOUT_MS 2000
#define EXIT_TIMEOUT_MS 5000

/* Phases short enough that a whole test takes a few tens of milliseconds. */
#define FAST_PHASES "[phases]\ncartridge_ms = 10\ncollecting_ms = 10\nanalysing_ms = 10\n"
#define FAST_BREATH_PHASES                                                                         \
    "[phases]\nwarmup_ms = 0\nblow_request_ms = 10\nblowing_ms = 10\nanalysing_ms = 10\n"

struct sim {
    char *dir;
    char scenario_path[PATH_MAX];
    char log_path[PATH_MAX];
    char pty[PATH_MAX];
    struct child child;
    int port; /* the test's own descriptor of the pty slave, -1 until opened */
};

static void expect_event(struct sim *sim, const char *prefix, char *line, size_t size)
{
    if (!child_wait_line(&sim->child, prefix, EVENT_TIMEOUT_MS, line, size)) {
        harness_dump_file(sim->log_path);
        ck_abort_msg("no event starting with '%s' from the sim within %d ms", prefix,
                     EVENT_TIMEOUT_MS);
    }
}

/* Writes the scenario and starts `toxlab-sim KIND [extra] SCENARIO` with
 * piped standard input and output, then waits for its pty and ready lines. */
static void start_kind_sim(struct sim *sim, const char *kind, const char *tag, const char *scenario,
                           const char *extra)
{
    char line[512];
    char *argv[6];
    int argc = 0;

    memset(sim, 0, sizeof *sim);
    sim->port = -1;
    sim->dir = harness_tmpdir(tag);
    snprintf(sim->scenario_path, sizeof sim->scenario_path, "%s/scenario.ini", sim->dir);
    snprintf(sim->log_path, sizeof sim->log_path, "%s/sim.log", sim->dir);
    harness_write_file(sim->scenario_path, scenario);

    argv[argc++] = (char *)harness_program("TOXLAB_SIM");
    argv[argc++] = (char *)kind;
    if (extra != NULL) {
        argv[argc++] = (char *)extra;
    }
    argv[argc++] = sim->scenario_path;
    argv[argc] = NULL;
    child_spawn(&sim->child, argv, NULL, sim->log_path, true, true);

    expect_event(sim, "pty ", line, sizeof line);
    snprintf(sim->pty, sizeof sim->pty, "%s", line + strlen("pty "));
    expect_event(sim, "ready ", line, sizeof line);
}

static void start_sim(struct sim *sim, const char *tag, const char *scenario, const char *extra)
{
    start_kind_sim(sim, "saliva", tag, scenario, extra);
}

/* Sends SIGTERM to the sim's PID and checks that it prints `stop` and exits 0.
 * The temporary folder is removed only then, so a failed test leaves its log. */
static void stop_sim(struct sim *sim)
{
    char line[256];

    if (sim->port >= 0) {
        close(sim->port);
        sim->port = -1;
    }
    ck_assert_int_eq(kill(sim->child.pid, SIGTERM), 0);
    expect_event(sim, "stop", line, sizeof line);

    int status = child_wait(&sim->child, EXIT_TIMEOUT_MS);
    ck_assert_msg(WIFEXITED(status), "the sim did not exit by itself (wait status %d)", status);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    if (sim->child.stdin_fd >= 0) {
        close(sim->child.stdin_fd);
    }
    close(sim->child.stdout_fd);

    unlink(sim->scenario_path);
    unlink(sim->log_path);
    rmdir(sim->dir);
    free(sim->dir);
}

/* Opens the pty slave as a host would, in raw mode. */
static int open_port(struct sim *sim)
{
    struct termios tio;
    int fd = open(sim->pty, O_RDWR | O_NOCTTY | O_CLOEXEC);

    ck_assert_msg(fd >= 0, "open %s: %s", sim->pty, strerror(errno));
    ck_assert_int_eq(tcgetattr(fd, &tio), 0);
    cfmakeraw(&tio);
    ck_assert_int_eq(tcsetattr(fd, TCSANOW, &tio), 0);
    sim->port = fd;
    return fd;
}

static void send_bytes(int fd, const uint8_t *bytes, size_t len)
{
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
}

/* Returns the length of the reply frame that starts at buf, as far as its
 * first have bytes show it. While the length is still unknown the result is
 * over have, so the caller reads on. */
static size_t reply_length(const uint8_t *buf, size_t have)
{
    if (have < 2) {
        return 2;
    }
    if (buf[1] & 0x80) {
        return 5;
    }
    if (buf[1] == RTU_FC_READ_HOLDING) {
        return have < 3 ? 3 : 3 + (size_t)buf[2] + 2;
    }
    return 8;
}

/* Reads one reply frame with a deadline and checks its CRC. It reads no
 * byte past the frame, so back-to-back replies stay apart. */
static size_t read_reply(int fd, uint8_t *buf)
{
    struct timespec start;
    size_t have = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        size_t want = reply_length(buf, have);

        if (have >= want) {
            ck_assert_msg(rtu_crc16(buf, want) == 0, "reply of %zu bytes fails its CRC", want);
            return want;
        }

        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        long left = harness_ms(REPLY_TIMEOUT_MS) - elapsed;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};

        ck_assert_msg(left > 0 && poll(&pfd, 1, (int)left) > 0,
                      "no whole reply within %d ms (%zu bytes read)", REPLY_TIMEOUT_MS, have);
        ssize_t got = read(fd, buf + have, want - have);
        ck_assert_msg(got > 0, "read from the pty failed: %s", strerror(errno));
        have += (size_t)got;
    }
}

/* Reads count holding registers from slave 1 into values. */
static void read_registers(int fd, uint16_t address, uint16_t count, uint16_t *values)
{
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, address, count, frame);

    send_bytes(fd, frame, len);
    len = read_reply(fd, reply);
    ck_assert_msg(reply[1] == RTU_FC_READ_HOLDING, "read of %u got exception %u", address,
                  reply[2]);
    ck_assert_uint_eq(len, 5 + 2 * (size_t)count);
    for (uint16_t i = 0; i < count; i++) {
        values[i] = (uint16_t)((reply[3 + 2 * i] << 8) | reply[4 + 2 * i]);
    }
}

/* Writes host test ID and command to the control block. Returns the
 * exception code, or 0 for a normal reply. */
static uint8_t send_command(int fd, uint32_t host_id, uint16_t command)
{
    uint16_t control[SALIVA_CONTROL_COUNT];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    saliva_encode_control(host_id, command, control);
    size_t len = rtu_build_write_multiple_request(1, SALIVA_CONTROL_ADDR, control,
                                                  SALIVA_CONTROL_COUNT, frame);
    send_bytes(fd, frame, len);
    read_reply(fd, reply);
    if (reply[1] & 0x80) {
        ck_assert_uint_eq(reply[1], RTU_FC_WRITE_MULTIPLE | 0x80);
        return reply[2];
    }
    ck_assert_uint_eq(reply[1], RTU_FC_WRITE_MULTIPLE);
    return 0;
}

static void read_status(int fd, struct saliva_status *st)
{
    uint16_t regs[SALIVA_STATUS_COUNT];

    read_registers(fd, SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT, regs);
    saliva_decode_status(regs, st);
}

static void read_result(int fd, struct saliva_result *res)
{
    uint16_t regs[SALIVA_RESULT_COUNT];

    read_registers(fd, SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT, regs);
    ck_assert_int_eq(saliva_decode_result(regs, res), 0);
}

static const struct saliva_analyte_result *find_analyte(const struct saliva_result *res,
                                                        uint16_t code)
{
    for (size_t i = 0; i < res->panel_size; i++) {
        if (res->analytes[i].code == code) {
            return &res->analytes[i];
        }
    }
    ck_abort_msg("analyte %u missing from the result", code);
    return NULL;
}

/* Writes host test ID and command to the breath control block. Returns the
 * exception code, or 0 for a normal reply. */
static uint8_t send_breath_command(int fd, uint32_t host_id, uint16_t command)
{
    uint16_t control[BREATH_CONTROL_COUNT];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    breath_encode_control(host_id, command, control);
    size_t len = rtu_build_write_multiple_request(1, BREATH_CONTROL_ADDR, control,
                                                  BREATH_CONTROL_COUNT, frame);
    send_bytes(fd, frame, len);
    read_reply(fd, reply);
    if (reply[1] & 0x80) {
        ck_assert_uint_eq(reply[1], RTU_FC_WRITE_MULTIPLE | 0x80);
        return reply[2];
    }
    ck_assert_uint_eq(reply[1], RTU_FC_WRITE_MULTIPLE);
    return 0;
}

static void read_breath_status(int fd, struct breath_status *st)
{
    uint16_t regs[BREATH_STATUS_COUNT];

    read_registers(fd, BREATH_STATUS_ADDR, BREATH_STATUS_COUNT, regs);
    breath_decode_status(regs, st);
}

static void read_breath_result(int fd, struct breath_result *res)
{
    uint16_t regs[BREATH_RESULT_COUNT];

    read_registers(fd, BREATH_RESULT_ADDR, BREATH_RESULT_COUNT, regs);
    ck_assert_int_eq(breath_decode_result(regs, res), 0);
}

/* Waits for the next event line starting with "phase " and checks it
 * exactly, so that phases out of order fail. */
static void expect_phase(struct sim *sim, const char *expected)
{
    char line[256];

    expect_event(sim, "phase ", line, sizeof line);
    ck_assert_str_eq(line, expected);
}

/* Checks that no reply byte waits on the port. The sim writes a reply
 * before it prints the events of the request, so once an event of a later
 * step is read, a reply that was sent is already there. */
static void assert_no_reply_waiting(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    ck_assert_msg(poll(&pfd, 1, 0) == 0, "the sim sent a reply it should have withheld");
}

START_TEST(mbpoll_reads_identity)
{
    struct sim sim;
    char timeout[16];
    char *out = NULL;
    char *err = NULL;

    start_sim(&sim, "sim-mbpoll", "[device]\nserial = SAL-7731\nfirmware = 2.1.0\n", NULL);

    /* mbpoll's own timeout follows CK_TIMEOUT_MULTIPLIER, within its 10 s limit. */
    int ms = harness_ms(1000);
    snprintf(timeout, sizeof timeout, "%.2f", ms > 10000 ? 10.0 : ms / 1000.0);
    char *argv[] = {"mbpoll", "-m",    "rtu", "-b", "19200", "-P",    "even", "-d", "8",
                    "-s",     "1",     "-a",  "1",  "-0",    "-r",    "0",    "-c", "24",
                    "-t",     "4:hex", "-1",  "-o", timeout, sim.pty, NULL};
    int rc = harness_run(argv, NULL, 10000, &out, &err);

    ck_assert_msg(rc == 0, "mbpoll exited with %d: %s%s", rc, out, err);
    ck_assert_msg(strstr(out, "[0]: \t0x5341") != NULL, "no model code in:\n%s", out);
    ck_assert_msg(strstr(out, "[1]: \t0x0100") != NULL, "no protocol version in:\n%s", out);
    /* "SAL-7731": SA L- 77 31, then NUL padding. */
    ck_assert_msg(strstr(out, "[2]: \t0x5341") != NULL, "no serial 'SA' in:\n%s", out);
    ck_assert_msg(strstr(out, "[3]: \t0x4C2D") != NULL, "no serial 'L-' in:\n%s", out);
    ck_assert_msg(strstr(out, "[4]: \t0x3737") != NULL, "no serial '77' in:\n%s", out);
    ck_assert_msg(strstr(out, "[5]: \t0x3331") != NULL, "no serial '31' in:\n%s", out);
    ck_assert_msg(strstr(out, "[6]: \t0x0000") != NULL, "no serial padding in:\n%s", out);
    ck_assert_msg(strstr(out, "[23]: \t") != NULL, "fewer than 24 registers in:\n%s", out);

    free(out);
    free(err);
    stop_sim(&sim);
}
END_TEST

START_TEST(bad_crc_gets_no_reply)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-crc", "", NULL);
    int fd = open_port(&sim);

    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_ADDR, 2, frame);
    frame[len - 1] ^= 0xFF;
    send_bytes(fd, frame, len);
    expect_event(&sim, "bad-frame ", line, sizeof line);
    ck_assert_msg(strstr(line, "reason=crc") != NULL, "unexpected event: %s", line);

    /* Control: a valid request gets a reply, and it is the first thing on
     * the line, so the corrupted request got none. */
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_ADDR, 2, frame);
    send_bytes(fd, frame, len);
    len = read_reply(fd, reply);
    ck_assert_uint_eq(len, 9);
    ck_assert_uint_eq(reply[0], 1);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING);
    ck_assert_uint_eq(reply[3], 0x53);
    ck_assert_uint_eq(reply[4], 0x41);

    stop_sim(&sim);
}
END_TEST

START_TEST(other_slave_ignored)
{
    struct sim sim;
    uint8_t frames[2 * RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-slave", "", NULL);
    int fd = open_port(&sim);

    /* Both requests in one write: the one for slave 2 must get no reply. */
    size_t len = rtu_build_read_request(2, RTU_FC_READ_HOLDING, SALIVA_ID_ADDR, 1, frames);
    len += rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_ADDR, 1, frames + len);
    send_bytes(fd, frames, len);

    read_reply(fd, reply);
    ck_assert_uint_eq(reply[0], 1);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING);

    stop_sim(&sim);
}
END_TEST

START_TEST(requests_split_and_joined)
{
    struct sim sim;
    char line[256];
    uint8_t frames[2 * RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];
    uint16_t model = 0;

    start_sim(&sim, "sim-split", "", NULL);
    int fd = open_port(&sim);

    /* One request in two reads. The sim serves the pty before standard
     * input in each poll() round, so once the `unmute` event is out, the
     * first 3 bytes have been read on their own. */
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_MODEL, 1, frames);
    send_bytes(fd, frames, 3);
    child_send(&sim.child, "unmute");
    expect_event(&sim, "unmute", line, sizeof line);
    send_bytes(fd, frames + 3, len - 3);
    read_reply(fd, reply);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING);
    ck_assert_uint_eq((reply[3] << 8) | reply[4], SALIVA_MODEL_CODE);

    /* Two requests in one write get two replies, in order. */
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_MODEL, 1, frames);
    len += rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_STATUS_ADDR, 1, frames + len);
    send_bytes(fd, frames, len);
    read_reply(fd, reply);
    ck_assert_uint_eq((reply[3] << 8) | reply[4], SALIVA_MODEL_CODE);
    read_reply(fd, reply);
    ck_assert_uint_eq((reply[3] << 8) | reply[4], SALIVA_IDLE);

    read_registers(fd, SALIVA_ID_MODEL, 1, &model);
    ck_assert_uint_eq(model, SALIVA_MODEL_CODE);
    stop_sim(&sim);
}
END_TEST

START_TEST(cut_frame_dropped)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint16_t model = 0;

    start_sim(&sim, "sim-cut", "", NULL);
    int fd = open_port(&sim);

    /* The rest of the frame never comes: after a silent gap the sim drops it. */
    rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_MODEL, 1, frame);
    send_bytes(fd, frame, 3);
    expect_event(&sim, "bad-frame ", line, sizeof line);
    ck_assert_str_eq(line, "bad-frame reason=short bytes=3");

    read_registers(fd, SALIVA_ID_MODEL, 1, &model);
    ck_assert_uint_eq(model, SALIVA_MODEL_CODE);
    stop_sim(&sim);
}
END_TEST

START_TEST(unsupported_function_gets_exception)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x11};
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-function", "", NULL);
    int fd = open_port(&sim);

    /* Function 17 (report server ID) has no length rule in rtu.c, so the
     * sim frames it by the silence after it. */
    uint16_t crc = rtu_crc16(frame, 2);
    frame[2] = (uint8_t)(crc & 0xFF);
    frame[3] = (uint8_t)(crc >> 8);
    send_bytes(fd, frame, 4);
    size_t len = read_reply(fd, reply);
    ck_assert_uint_eq(len, 5);
    ck_assert_uint_eq(reply[1], 0x11 | 0x80);
    ck_assert_uint_eq(reply[2], RTU_EX_ILLEGAL_FUNCTION);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=17 register=0 code=1");

    stop_sim(&sim);
}
END_TEST

START_TEST(unmapped_read_gets_exception)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-unmapped", "", NULL);
    int fd = open_port(&sim);

    /* Identity ends at register 23, so 20..27 runs past it. */
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 20, 8, frame);
    send_bytes(fd, frame, len);
    len = read_reply(fd, reply);
    ck_assert_uint_eq(len, 5);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING | 0x80);
    ck_assert_uint_eq(reply[2], RTU_EX_ILLEGAL_ADDRESS);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=3 register=20 code=2");

    stop_sim(&sim);
}
END_TEST

START_TEST(start_result_ack)
{
    struct sim sim;
    char line[256];
    struct saliva_status st;
    struct saliva_result res;
    const uint32_t host_id = 0x5C01E2AA;

    start_sim(&sim, "sim-flow",
              "[device]\nserial = SAL-0001\n" FAST_PHASES
              "[test.1]\nmethamphetamine = 120.5\namphetamine = 12\nover_range = thc\n",
              NULL);
    int fd = open_port(&sim);

    ck_assert_uint_eq(send_command(fd, host_id, SALIVA_CMD_START), 0);
    expect_event(&sim, "start ", line, sizeof line);
    ck_assert_str_eq(line, "start test=1 host_id=0x5c01e2aa");
    expect_event(&sim, "phase test=1 state=result-ready", line, sizeof line);

    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_RESULT_READY);
    ck_assert_uint_eq(st.percent, 100);
    ck_assert_uint_eq(st.host_test_id, host_id);
    ck_assert_uint_eq(st.sequence, 1);

    read_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, host_id);
    ck_assert_uint_eq(res.sequence, 1);
    ck_assert_uint_eq(res.status, SALIVA_RESULT_VALID);
    ck_assert_uint_eq(res.panel_size, 10);
    ck_assert_uint_eq(find_analyte(&res, SALIVA_METHAMPHETAMINE)->concentration, 120500);
    ck_assert_uint_eq(find_analyte(&res, SALIVA_AMPHETAMINE)->concentration, 12000);
    ck_assert_uint_eq(find_analyte(&res, SALIVA_MDMA)->concentration, 0);
    ck_assert_uint_eq(find_analyte(&res, SALIVA_THC)->flags, SALIVA_FLAG_OVER_RANGE);
    ck_assert(find_analyte(&res, SALIVA_THC)->control_valid);

    /* An unacknowledged result makes the analyzer busy. */
    ck_assert_uint_eq(send_command(fd, 0x11111111, SALIVA_CMD_START), RTU_EX_BUSY);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=16 register=200 code=6");

    /* The refused write changed no register. */
    uint16_t control[SALIVA_CONTROL_COUNT];
    read_registers(fd, SALIVA_CONTROL_ADDR, 2, control);
    ck_assert_uint_eq(saliva_get_u32(control), host_id);

    ck_assert_uint_eq(send_command(fd, host_id, SALIVA_CMD_ACK_RESULT), 0);
    expect_event(&sim, "ack ", line, sizeof line);
    ck_assert_str_eq(line, "ack test=1 host_id=0x5c01e2aa");

    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_IDLE);
    ck_assert_uint_eq(st.host_test_id, 0);
    read_result(fd, &res);
    ck_assert_uint_eq(res.panel_size, 0);
    ck_assert_uint_eq(res.host_test_id, 0);

    /* The next test gets the next sequence number and [default]'s zeros. */
    ck_assert_uint_eq(send_command(fd, 0x22222222, SALIVA_CMD_START), 0);
    expect_event(&sim, "phase test=2 state=result-ready", line, sizeof line);
    read_result(fd, &res);
    ck_assert_uint_eq(res.sequence, 2);
    ck_assert_uint_eq(res.host_test_id, 0x22222222);
    ck_assert_uint_eq(find_analyte(&res, SALIVA_METHAMPHETAMINE)->concentration, 0);

    stop_sim(&sim);
}
END_TEST

START_TEST(single_register_command)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME] = {0x01, RTU_FC_WRITE_SINGLE, 0x00, 0xCA, 0x00, 0x01};
    uint8_t request[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];
    uint16_t control[SALIVA_CONTROL_COUNT];

    start_sim(&sim, "sim-single", FAST_PHASES, NULL);
    int fd = open_port(&sim);

    /* The host ID alone first (200..201), then the start command on 202. */
    saliva_encode_control(0xA1B2C3D4, SALIVA_CMD_NONE, control);
    size_t len = rtu_build_write_multiple_request(1, SALIVA_CONTROL_ADDR, control, 2, request);
    send_bytes(fd, request, len);
    read_reply(fd, reply);
    ck_assert_uint_eq(reply[1], RTU_FC_WRITE_MULTIPLE);

    uint16_t crc = rtu_crc16(frame, 6);
    frame[6] = (uint8_t)(crc & 0xFF);
    frame[7] = (uint8_t)(crc >> 8);
    send_bytes(fd, frame, 8);
    len = read_reply(fd, reply);
    ck_assert_mem_eq(reply, frame, len);

    expect_event(&sim, "start ", line, sizeof line);
    ck_assert_str_eq(line, "start test=1 host_id=0xa1b2c3d4");

    read_registers(fd, SALIVA_CONTROL_ADDR, SALIVA_CONTROL_COUNT, control);
    ck_assert_uint_eq(saliva_get_u32(control), 0xA1B2C3D4);
    ck_assert_uint_eq(control[2], SALIVA_CMD_NONE);

    stop_sim(&sim);
}
END_TEST

START_TEST(hold_keeps_analysing)
{
    struct sim sim;
    char line[256];
    struct saliva_status st;

    /* With phases of 0 ms only the hold keeps the test from its result. */
    start_sim(&sim, "sim-hold", "[phases]\ncartridge_ms = 0\ncollecting_ms = 0\nanalysing_ms = 0\n",
              NULL);
    int fd = open_port(&sim);

    child_send(&sim.child, "hold");
    expect_event(&sim, "hold", line, sizeof line);
    ck_assert_uint_eq(send_command(fd, 0x0000BEEF, SALIVA_CMD_START), 0);
    expect_event(&sim, "phase test=1 state=analysing", line, sizeof line);

    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_ANALYSING);
    ck_assert_uint_le(st.percent, 99);
    ck_assert_uint_eq(st.host_test_id, 0x0000BEEF);

    child_send(&sim.child, "release");
    expect_event(&sim, "release", line, sizeof line);
    expect_event(&sim, "phase test=1 state=result-ready", line, sizeof line);
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_RESULT_READY);

    stop_sim(&sim);
}
END_TEST

START_TEST(fault_exception_then_wrong_id)
{
    struct sim sim;
    char line[256];
    struct saliva_result res;

    start_sim(&sim, "sim-fault",
              FAST_PHASES "[test.1]\nfault = exception\n[test.2]\nfault = wrong-id\n", NULL);
    int fd = open_port(&sim);

    ck_assert_uint_eq(send_command(fd, 100, SALIVA_CMD_START), RTU_EX_DEVICE_FAILURE);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=16 register=200 code=4 test=1");

    ck_assert_uint_eq(send_command(fd, 200, SALIVA_CMD_START), 0);
    expect_event(&sim, "start ", line, sizeof line);
    ck_assert_str_eq(line, "start test=2 host_id=0x000000c8");
    expect_event(&sim, "phase test=2 state=result-ready", line, sizeof line);
    read_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, 201);

    stop_sim(&sim);
}
END_TEST

START_TEST(scenario_error_names_line)
{
    static const struct {
        const char *text;
        const char *where; /* "scenario.ini:LINE:" */
        const char *key;
    } cases[] = {
        {"[device]\nserial = SAL-1\nbogus = 1\n", "scenario.ini:3:", "bogus"},
        {"[phases]\ncollecting_ms = soon\n", "scenario.ini:2:", "collecting_ms"},
        {"[nonsense]\nkey = 1\n", "scenario.ini:2:", "[nonsense]"},
        {"[test.1]\nthc = 1,5\n", "scenario.ini:2:", "thc"},
        {"[device]\ncalibration = 2026-02-30\n", "scenario.ini:2:", "calibration"},
        {"[test.1]\nketamine = 3\n[device]\npanel = thc, mdma\n", "scenario.ini:2:", "ketamine"},
        {"[test.2]\nfault = sometimes\n", "scenario.ini:2:", "fault"},
    };
    char *dir = harness_tmpdir("sim-scenario");
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/scenario.ini", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {(char *)harness_program("TOXLAB_SIM"), "saliva", path, NULL};
        char *out = NULL;
        char *err = NULL;

        harness_write_file(path, cases[i].text);
        int rc = harness_run(argv, NULL, EXIT_TIMEOUT_MS, &out, &err);
        ck_assert_msg(rc == 2, "case %zu: exit code %d, expected 2. Standard error: %s", i, rc,
                      err);
        ck_assert_msg(strstr(err, cases[i].where) != NULL, "case %zu: no '%s' in: %s", i,
                      cases[i].where, err);
        ck_assert_msg(strstr(err, cases[i].key) != NULL, "case %zu: no '%s' in: %s", i,
                      cases[i].key, err);
        ck_assert_msg(out[0] == '\0', "case %zu: the sim printed events: %s", i, out);
        free(out);
        free(err);
    }

    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(scenario_without_error_starts)
{
    /* Control for scenario_error_names_line: the first case without its
     * unknown key. */
    struct sim sim;

    start_sim(&sim, "sim-scenario-ok", "[device]\nserial = SAL-1\n", NULL);
    stop_sim(&sim);
}
END_TEST

START_TEST(link_follows_pty)
{
    struct sim sim;
    char link[PATH_MAX];
    char option[PATH_MAX + 8];
    char target[PATH_MAX];
    char *dir = harness_tmpdir("sim-link");
    struct stat st;

    snprintf(link, sizeof link, "%s/saliva", dir);
    snprintf(option, sizeof option, "--link=%s", link);
    start_sim(&sim, "sim-link-run", "", option);

    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_msg(n > 0, "readlink %s: %s", link, strerror(errno));
    target[n] = '\0';
    ck_assert_str_eq(target, sim.pty);

    stop_sim(&sim);
    ck_assert_msg(lstat(link, &st) < 0 && errno == ENOENT, "%s still exists after stop", link);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(eof_stops_only_when_asked)
{
    struct sim sim;
    char line[256];
    uint16_t model = 0;

    start_sim(&sim, "sim-eof", "", "--exit-on-eof");
    close(sim.child.stdin_fd);
    sim.child.stdin_fd = -1;
    expect_event(&sim, "stop", line, sizeof line);
    int status = child_wait(&sim.child, EXIT_TIMEOUT_MS);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(sim.child.stdout_fd);
    unlink(sim.scenario_path);
    unlink(sim.log_path);
    rmdir(sim.dir);
    free(sim.dir);

    /* Control: without --exit-on-eof the sim keeps serving. The end of file
     * comes before the first request, so the poll() that reports that
     * request reports the end of file too, if no earlier one did. The
     * second reply therefore comes from a sim that has handled it. */
    start_sim(&sim, "sim-no-eof", "", NULL);
    close(sim.child.stdin_fd);
    sim.child.stdin_fd = -1;
    int fd = open_port(&sim);
    read_registers(fd, SALIVA_ID_MODEL, 1, &model);
    model = 0;
    read_registers(fd, SALIVA_ID_MODEL, 1, &model);
    ck_assert_uint_eq(model, SALIVA_MODEL_CODE);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_mbpoll_reads_identity)
{
    struct sim sim;
    char timeout[16];
    char *out = NULL;
    char *err = NULL;

    start_kind_sim(&sim, "breath", "sim-breath-mbpoll",
                   "[device]\nserial = BA-7731\nmouthpiece_lot = MP2411\n", NULL);

    /* mbpoll's own timeout follows CK_TIMEOUT_MULTIPLIER, within its 10 s limit. */
    int ms = harness_ms(1000);
    snprintf(timeout, sizeof timeout, "%.2f", ms > 10000 ? 10.0 : ms / 1000.0);
    char *argv[] = {"mbpoll", "-m",    "rtu", "-b", "19200", "-P",    "even", "-d", "8",
                    "-s",     "1",     "-a",  "1",  "-0",    "-r",    "0",    "-c", "24",
                    "-t",     "4:hex", "-1",  "-o", timeout, sim.pty, NULL};
    int rc = harness_run(argv, NULL, 10000, &out, &err);

    ck_assert_msg(rc == 0, "mbpoll exited with %d: %s%s", rc, out, err);
    ck_assert_msg(strstr(out, "[0]: \t0x4241") != NULL, "no model code in:\n%s", out);
    ck_assert_msg(strstr(out, "[1]: \t0x0100") != NULL, "no protocol version in:\n%s", out);
    /* "BA-7731": BA -7 73 1, then NUL padding. */
    ck_assert_msg(strstr(out, "[2]: \t0x4241") != NULL, "no serial 'BA' in:\n%s", out);
    ck_assert_msg(strstr(out, "[3]: \t0x2D37") != NULL, "no serial '-7' in:\n%s", out);
    ck_assert_msg(strstr(out, "[4]: \t0x3733") != NULL, "no serial '73' in:\n%s", out);
    ck_assert_msg(strstr(out, "[5]: \t0x3100") != NULL, "no serial '1' in:\n%s", out);
    ck_assert_msg(strstr(out, "[6]: \t0x0000") != NULL, "no serial padding in:\n%s", out);
    ck_assert_msg(strstr(out, "[18]: \t0x4D50") != NULL, "no mouthpiece lot 'MP' in:\n%s", out);
    ck_assert_msg(strstr(out, "[23]: \t") != NULL, "fewer than 24 registers in:\n%s", out);

    free(out);
    free(err);
    stop_sim(&sim);
}
END_TEST

START_TEST(breath_start_result_ack)
{
    struct sim sim;
    char line[256];
    struct breath_status st;
    struct breath_result res;
    const uint32_t host_id = 0x5C01E2AA;

    start_kind_sim(&sim, "breath", "sim-breath-flow",
                   FAST_BREATH_PHASES "[test.1]\nalcohol = 412.3\n"
                                      "flags = mouth-alcohol, temperature\ntemperature = -5.5\n",
                   NULL);
    int fd = open_port(&sim);
    expect_event(&sim, "warm", line, sizeof line);
    ck_assert_str_eq(line, "warm");

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_READY);
    ck_assert_uint_eq(st.host_test_id, 0);

    ck_assert_uint_eq(send_breath_command(fd, host_id, BREATH_CMD_START), 0);
    expect_event(&sim, "start ", line, sizeof line);
    ck_assert_str_eq(line, "start test=1 host_id=0x5c01e2aa");
    expect_phase(&sim, "phase test=1 state=blow-requested");
    expect_phase(&sim, "phase test=1 state=blowing");
    expect_phase(&sim, "phase test=1 state=analysing");
    expect_phase(&sim, "phase test=1 state=result-ready");

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_RESULT_READY);
    ck_assert_uint_eq(st.percent, 100);
    ck_assert_uint_eq(st.seconds_left, 0);
    ck_assert_uint_eq(st.host_test_id, host_id);
    ck_assert_uint_eq(st.sequence, 1);

    read_breath_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, host_id);
    ck_assert_uint_eq(res.sequence, 1);
    ck_assert_uint_eq(res.alcohol, 4123);
    ck_assert_uint_eq(res.flags, BREATH_FLAG_MOUTH_ALCOHOL | BREATH_FLAG_TEMPERATURE);
    ck_assert_int_eq(res.temperature, -55);

    /* An unacknowledged result makes the analyzer busy. */
    ck_assert_uint_eq(send_breath_command(fd, 0x11111111, BREATH_CMD_START), RTU_EX_BUSY);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=16 register=200 code=6");

    ck_assert_uint_eq(send_breath_command(fd, host_id, BREATH_CMD_ACK_RESULT), 0);
    expect_event(&sim, "ack ", line, sizeof line);
    ck_assert_str_eq(line, "ack test=1 host_id=0x5c01e2aa");

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_READY);
    ck_assert_uint_eq(st.host_test_id, 0);
    read_breath_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, 0);
    ck_assert_uint_eq(res.sequence, 0);
    ck_assert_uint_eq(res.alcohol, 0);
    ck_assert_int_eq(res.temperature, 0);

    /* The next test reads [default]'s built-in values: 0 ug/L at 21.0 degC. */
    ck_assert_uint_eq(send_breath_command(fd, 0x22222222, BREATH_CMD_START), 0);
    expect_phase(&sim, "phase test=2 state=blow-requested");
    expect_event(&sim, "phase test=2 state=result-ready", line, sizeof line);
    read_breath_result(fd, &res);
    ck_assert_uint_eq(res.sequence, 2);
    ck_assert_uint_eq(res.host_test_id, 0x22222222);
    ck_assert_uint_eq(res.alcohol, 0);
    ck_assert_uint_eq(res.flags, 0);
    ck_assert_int_eq(res.temperature, 210);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_busy_while_warming_up)
{
    struct sim sim;
    char line[256];
    struct breath_status st;

    /* A warm-up of a day never ends during the test. breath_start_result_ack,
     * with no warm-up, is the control in which the same start is accepted. */
    start_kind_sim(&sim, "breath", "sim-breath-warm", "[phases]\nwarmup_ms = 86400000\n", NULL);
    int fd = open_port(&sim);

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_WARMING_UP);
    ck_assert_uint_gt(st.seconds_left, 0);

    ck_assert_uint_eq(send_breath_command(fd, 0xABCD0001, BREATH_CMD_START), RTU_EX_BUSY);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=16 register=200 code=6");

    /* The refused start changed no register. */
    uint16_t control[BREATH_CONTROL_COUNT];
    read_registers(fd, BREATH_CONTROL_ADDR, BREATH_CONTROL_COUNT, control);
    ck_assert_uint_eq(control[0], 0);
    ck_assert_uint_eq(control[1], 0);
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_WARMING_UP);
    ck_assert_uint_eq(st.host_test_id, 0);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_never_blows_until_abort)
{
    struct sim sim;
    char line[256];
    struct breath_status st;

    start_kind_sim(&sim, "breath", "sim-breath-refusal",
                   FAST_BREATH_PHASES "[test.1]\nblow = never\nalcohol = 800\n", NULL);
    int fd = open_port(&sim);
    expect_event(&sim, "warm", line, sizeof line);

    ck_assert_uint_eq(send_breath_command(fd, 0x0BAD0001, BREATH_CMD_START), 0);
    expect_phase(&sim, "phase test=1 state=blow-requested");

    /* The blow request lasts 10 ms, so the status read after this hold
     * command comes long after the blow request would have ended. */
    child_send(&sim.child, "hold");
    expect_event(&sim, "hold ", line, sizeof line);
    ck_assert_str_eq(line, "hold test=1");
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_BLOW_REQUESTED);
    ck_assert_uint_eq(st.host_test_id, 0x0BAD0001);
    ck_assert_uint_lt(st.percent, 100);
    ck_assert_uint_gt(st.seconds_left, 0);

    ck_assert_uint_eq(send_breath_command(fd, 0x0BAD0001, BREATH_CMD_ABORT), 0);
    expect_event(&sim, "abort ", line, sizeof line);
    ck_assert_str_eq(line, "abort test=1 host_id=0x0bad0001");

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_READY);
    ck_assert_uint_eq(st.host_test_id, 0);
    ck_assert_uint_eq(st.sequence, 0);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_hold_keeps_analysing)
{
    struct sim sim;
    char line[256];
    struct breath_status st;

    /* With phases of 0 ms only the hold keeps the test from its result. */
    start_kind_sim(&sim, "breath", "sim-breath-hold",
                   "[phases]\nwarmup_ms = 0\nblow_request_ms = 0\nblowing_ms = 0\n"
                   "analysing_ms = 0\n",
                   NULL);
    int fd = open_port(&sim);
    expect_event(&sim, "warm", line, sizeof line);

    child_send(&sim.child, "hold");
    expect_event(&sim, "hold", line, sizeof line);
    ck_assert_uint_eq(send_breath_command(fd, 0x0000BEEF, BREATH_CMD_START), 0);
    expect_event(&sim, "phase test=1 state=analysing", line, sizeof line);

    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_ANALYSING);
    ck_assert_uint_eq(st.percent, 99);
    ck_assert_uint_eq(st.seconds_left, 0);

    child_send(&sim.child, "release");
    expect_event(&sim, "release", line, sizeof line);
    expect_event(&sim, "phase test=1 state=result-ready", line, sizeof line);
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_RESULT_READY);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_error_and_faults)
{
    struct sim sim;
    char line[256];
    struct breath_status st;
    struct breath_result res;

    start_kind_sim(&sim, "breath", "sim-breath-faults",
                   FAST_BREATH_PHASES "[test.1]\nerror = calibration-due\n"
                                      "[test.2]\nfault = exception\n"
                                      "[test.3]\nfault = wrong-id\nalcohol = 90.9\n",
                   NULL);
    int fd = open_port(&sim);
    expect_event(&sim, "warm", line, sizeof line);

    ck_assert_uint_eq(send_breath_command(fd, 100, BREATH_CMD_START), 0);
    expect_event(&sim, "phase test=1 state=error", line, sizeof line);
    expect_event(&sim, "error ", line, sizeof line);
    ck_assert_str_eq(line, "error test=1 code=2 text=calibration-due");
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_ERROR);
    ck_assert_uint_eq(st.error_code, BREATH_ERR_CALIBRATION_DUE);
    read_breath_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, 0);

    ck_assert_uint_eq(send_breath_command(fd, 100, BREATH_CMD_ACK_RESULT), 0);
    expect_event(&sim, "ack ", line, sizeof line);

    ck_assert_uint_eq(send_breath_command(fd, 200, BREATH_CMD_START), RTU_EX_DEVICE_FAILURE);
    expect_event(&sim, "exception ", line, sizeof line);
    ck_assert_str_eq(line, "exception function=16 register=200 code=4 test=2");

    ck_assert_uint_eq(send_breath_command(fd, 300, BREATH_CMD_START), 0);
    expect_event(&sim, "start ", line, sizeof line);
    ck_assert_str_eq(line, "start test=3 host_id=0x0000012c");
    expect_event(&sim, "phase test=3 state=result-ready", line, sizeof line);
    read_breath_result(fd, &res);
    ck_assert_uint_eq(res.host_test_id, 301);
    ck_assert_uint_eq(res.alcohol, 909);
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.host_test_id, 300);

    stop_sim(&sim);
}
END_TEST

/* Runs for each kind: both sims share the stall command. */
static const char *const stall_kinds[] = {"saliva", "breath"};

START_TEST(stall_withholds_one_reply)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];
    uint16_t model = 0;
    const char *kind = stall_kinds[_i];
    uint16_t expected_model = _i == 0 ? SALIVA_MODEL_CODE : BREATH_MODEL_CODE;

    start_kind_sim(&sim, kind, "sim-stall", "", NULL);
    int fd = open_port(&sim);

    child_send(&sim.child, "stall");
    expect_event(&sim, "stall", line, sizeof line);
    ck_assert_str_eq(line, "stall");

    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, 1, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "stalled ", line, sizeof line);
    ck_assert_str_eq(line, "stalled function=3 register=0");
    assert_no_reply_waiting(fd);

    /* A request that comes while a reply is withheld is dropped. */
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 100, 7, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "dropped ", line, sizeof line);
    ck_assert_str_eq(line, "dropped function=3 register=100");
    assert_no_reply_waiting(fd);

    child_send(&sim.child, "unstall");
    expect_event(&sim, "unstalled", line, sizeof line);
    ck_assert_str_eq(line, "unstalled function=3 register=0");
    len = read_reply(fd, reply);
    ck_assert_uint_eq(len, 7);
    ck_assert_uint_eq((reply[3] << 8) | reply[4], expected_model);
    assert_no_reply_waiting(fd);

    /* The stall is used up: the next request gets its reply at once. */
    read_registers(fd, 0, 1, &model);
    ck_assert_uint_eq(model, expected_model);

    /* A stall given while a reply is withheld applies to the request after
     * the unstall. */
    child_send(&sim.child, "stall");
    expect_event(&sim, "stall", line, sizeof line);
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 100, 7, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "stalled ", line, sizeof line);
    ck_assert_str_eq(line, "stalled function=3 register=100");
    child_send(&sim.child, "stall");
    expect_event(&sim, "stall", line, sizeof line);
    ck_assert_str_eq(line, "stall");
    child_send(&sim.child, "unstall");
    expect_event(&sim, "unstalled", line, sizeof line);
    ck_assert_str_eq(line, "unstalled function=3 register=100");
    read_reply(fd, reply);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING);
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, 1, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "stalled ", line, sizeof line);
    ck_assert_str_eq(line, "stalled function=3 register=0");
    assert_no_reply_waiting(fd);
    child_send(&sim.child, "unstall");
    expect_event(&sim, "unstalled", line, sizeof line);
    read_reply(fd, reply);
    ck_assert_uint_eq((reply[3] << 8) | reply[4], expected_model);

    /* An unstall before any request cancels the stall. */
    child_send(&sim.child, "stall");
    expect_event(&sim, "stall", line, sizeof line);
    child_send(&sim.child, "unstall");
    expect_event(&sim, "unstalled", line, sizeof line);
    ck_assert_str_eq(line, "unstalled");
    model = 0;
    read_registers(fd, 0, 1, &model);
    ck_assert_uint_eq(model, expected_model);

    stop_sim(&sim);
}
END_TEST

START_TEST(breath_scenario_error_names_line)
{
    static const struct {
        const char *text;
        const char *where; /* "scenario.ini:LINE:" */
        const char *key;
    } cases[] = {
        {"[device]\nserial = BA-1\nmouthpiece = MP1\n", "scenario.ini:3:", "mouthpiece"},
        {"[device]\ncalibration_due = 2027-02-30\n", "scenario.ini:2:", "calibration_due"},
        {"[phases]\nwarmup_ms = soon\n", "scenario.ini:2:", "warmup_ms"},
        {"[phases]\ncartridge_ms = 10\n", "scenario.ini:2:", "cartridge_ms"},
        {"[test.1]\nalcohol = 12.34\n", "scenario.ini:2:", "alcohol"},
        {"[test.1]\nalcohol = -3\n", "scenario.ini:2:", "alcohol"},
        {"[default]\nflags = mouth-alcohol, hiccups\n", "scenario.ini:2:", "flags"},
        {"[default]\nflags = temperature, temperature\n", "scenario.ini:2:", "flags"},
        {"[test.3]\ntemperature = warm\n", "scenario.ini:2:", "temperature"},
        {"[test.3]\ntemperature = 21.05\n", "scenario.ini:2:", "temperature"},
        {"[test.2]\n\nblow = sometimes\n", "scenario.ini:3:", "blow"},
        {"[test.1]\nerror = sensor-fault\n", "scenario.ini:2:", "error"},
        {"[test.1]\nfault = melt\n", "scenario.ini:2:", "fault"},
        {"[test.1]\nthc = 3\n", "scenario.ini:2:", "thc"},
        {"[test.1]\nalcohol = 1\nalcohol = 2\n", "scenario.ini:3:", "alcohol"},
    };
    char *dir = harness_tmpdir("sim-breath-scenario");
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/scenario.ini", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {(char *)harness_program("TOXLAB_SIM"), "breath", path, NULL};
        char *out = NULL;
        char *err = NULL;

        harness_write_file(path, cases[i].text);
        int rc = harness_run(argv, NULL, EXIT_TIMEOUT_MS, &out, &err);
        ck_assert_msg(rc == 2, "case %zu: exit code %d, expected 2. Standard error: %s", i, rc,
                      err);
        ck_assert_msg(strstr(err, cases[i].where) != NULL, "case %zu: no '%s' in: %s", i,
                      cases[i].where, err);
        ck_assert_msg(strstr(err, cases[i].key) != NULL, "case %zu: no '%s' in: %s", i,
                      cases[i].key, err);
        ck_assert_msg(out[0] == '\0', "case %zu: the sim printed events: %s", i, out);
        free(out);
        free(err);
    }

    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(breath_scenario_every_key_starts)
{
    /* Control for breath_scenario_error_names_line: every key with a valid
     * value, so that only the bad value or key makes those cases fail. */
    struct sim sim;
    char line[256];

    start_kind_sim(&sim, "breath", "sim-breath-scenario-ok",
                   "[device]\nserial = BA-1\nfirmware = 1.4.2\ncalibration = 2026-09-15\n"
                   "calibration_due = 2027-02-28\nmouthpiece_lot = MP1\nslave = 1\n"
                   "[phases]\nwarmup_ms = 0\nblow_request_ms = 5\nblowing_ms = 5\n"
                   "analysing_ms = 5\n"
                   "[default]\nflags = mouth-alcohol, temperature\ntemperature = 21.5\n"
                   "[test.1]\nalcohol = 12.3\ntemperature = -3276.8\nflags =\n"
                   "[test.2]\nblow = never\nerror = sensor\nfault = silent\n",
                   NULL);
    expect_event(&sim, "warm", line, sizeof line);
    stop_sim(&sim);
}
END_TEST

/* Reads exactly len bytes with a deadline, without checking a CRC. */
static void read_exactly(int fd, uint8_t *buf, size_t len)
{
    size_t have = 0;

    while (have < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};

        ck_assert_msg(poll(&pfd, 1, harness_ms(REPLY_TIMEOUT_MS)) > 0,
                      "only %zu of %zu bytes within %d ms", have, len, REPLY_TIMEOUT_MS);
        ssize_t got = read(fd, buf + have, len - have);
        ck_assert_msg(got > 0, "read from the pty failed: %s", strerror(errno));
        have += (size_t)got;
    }
}

/* Arms one wire fault, sends a status read and checks the event. */
static void send_faulted_read(struct sim *sim, const char *command, const char *kind,
                              unsigned request)
{
    char line[256];
    char expected[128];
    uint8_t frame[RTU_MAX_FRAME];

    child_send(&sim->child, command);
    snprintf(expected, sizeof expected, "fault-armed kind=%s", kind);
    expect_event(sim, expected, line, sizeof line);

    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_STATUS_ADDR,
                                        SALIVA_STATUS_COUNT, frame);
    send_bytes(sim->port, frame, len);
    snprintf(expected, sizeof expected, "fault kind=%s request=%u function=3 register=%u", kind,
             request, SALIVA_STATUS_ADDR);
    expect_event(sim, "fault kind=", line, sizeof line);
    ck_assert_str_eq(line, expected);
}

/* Each fault that changes one reply, as the host reads it. */
START_TEST(wire_faults_change_replies)
{
    struct sim sim;
    struct saliva_status st;
    uint8_t reply[2 * RTU_MAX_FRAME];
    const size_t whole = 5 + 2 * SALIVA_STATUS_COUNT;

    start_sim(&sim, "sim-wire-faults", FAST_PHASES, NULL);
    int fd = open_port(&sim);

    send_faulted_read(&sim, "fault corrupt", "corrupt", 1);
    read_exactly(fd, reply, whole);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING);
    ck_assert_uint_ne(rtu_crc16(reply, whole), 0);

    send_faulted_read(&sim, "fault noise", "noise", 2);
    read_exactly(fd, reply, 4 + whole);
    ck_assert_uint_eq(reply[0], 0xFF);
    ck_assert_uint_eq(reply[1], 0x00);
    ck_assert_uint_eq(rtu_crc16(reply + 4, whole), 0);

    send_faulted_read(&sim, "fault truncate", "truncate", 3);
    read_exactly(fd, reply, whole / 2);
    assert_no_reply_waiting(fd);

    send_faulted_read(&sim, "fault resend", "resend", 4);
    read_exactly(fd, reply, 2 * whole);
    ck_assert_uint_eq(rtu_crc16(reply, whole), 0);
    ck_assert_int_eq(memcmp(reply, reply + whole, whole), 0);

    send_faulted_read(&sim, "fault busy", "busy", 5);
    read_exactly(fd, reply, 5);
    ck_assert_uint_eq(reply[1], RTU_FC_READ_HOLDING | 0x80);
    ck_assert_uint_eq(reply[2], RTU_EX_BUSY);
    ck_assert_uint_eq(rtu_crc16(reply, 5), 0);

    send_faulted_read(&sim, "fault drop", "drop", 6);
    assert_no_reply_waiting(fd);

    /* The count is used up: the next request gets its normal reply. */
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_IDLE);

    /* A fault for one register waits for a request that reads it. */
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    child_send(&sim.child, "fault drop 1 0 300");
    expect_event(&sim, "fault-armed kind=drop count=1 delay_ms=0 register=300", line, sizeof line);
    read_status(fd, &st);
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_RESULT_ADDR,
                                        SALIVA_RESULT_COUNT, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "fault kind=drop", line, sizeof line);
    ck_assert_str_eq(line, "fault kind=drop request=9 function=3 register=300");
    assert_no_reply_waiting(fd);
    stop_sim(&sim);
}
END_TEST

/* A fault with a count acts on that many requests in a row, and a [request.N]
 * section arms it at request N. */
START_TEST(request_section_schedules_fault)
{
    struct sim sim;
    struct saliva_status st;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-request-fault", FAST_PHASES "[request.2]\nfault = busy\ncount = 2\n",
              NULL);
    int fd = open_port(&sim);

    read_status(fd, &st);
    for (unsigned request = 2; request <= 3; request++) {
        size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_STATUS_ADDR,
                                            SALIVA_STATUS_COUNT, frame);
        send_bytes(fd, frame, len);
        read_reply(fd, reply);
        ck_assert_uint_eq(reply[2], RTU_EX_BUSY);
        expect_event(&sim, "fault kind=busy", line, sizeof line);
    }
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_IDLE);
    stop_sim(&sim);
}
END_TEST

/* A slow reply comes late, and a request sent meanwhile is dropped. */
START_TEST(slow_reply_arrives_late)
{
    struct sim sim;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-slow", FAST_PHASES, NULL);
    int fd = open_port(&sim);

    send_faulted_read(&sim, "fault slow 1 1000", "slow", 1);
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_ID_ADDR, 1, frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "dropped function=3 register=0", line, sizeof line);

    ck_assert_uint_eq(read_reply(fd, reply), 5 + 2 * SALIVA_STATUS_COUNT);
    stop_sim(&sim);
}
END_TEST

/* Unplugging closes the pty under the host and removes the link; plugging in
 * opens a pty with another name, and the analyzer kept its test. */
START_TEST(unplug_then_plug_new_pty)
{
    struct sim sim;
    struct saliva_status st;
    struct stat info;
    char line[256];
    char link[PATH_MAX];
    char option[PATH_MAX + 8];
    char target[PATH_MAX];
    char *dir = harness_tmpdir("sim-unplug");
    uint8_t byte;

    snprintf(link, sizeof link, "%s/saliva", dir);
    snprintf(option, sizeof option, "--link=%s", link);
    start_sim(&sim, "sim-unplug-run", FAST_PHASES, option);
    int fd = open_port(&sim);
    child_send(&sim.child, "hold");
    expect_event(&sim, "hold", line, sizeof line);
    ck_assert_uint_eq(send_command(fd, 0x00C0FFEE, SALIVA_CMD_START), 0);

    send_faulted_read(&sim, "fault unplug", "unplug", 2);
    expect_event(&sim, "unplug", line, sizeof line);
    ssize_t got = read(fd, &byte, 1);
    ck_assert_msg(got == 0 || (got < 0 && errno == EIO), "read after unplug returned %zd (%s)", got,
                  strerror(errno));
    ck_assert_msg(lstat(link, &info) < 0 && errno == ENOENT, "%s still exists", link);

    child_send(&sim.child, "plug");
    expect_event(&sim, "plug pty=", line, sizeof line);
    ck_assert_str_ne(line + strlen("plug pty="), sim.pty);
    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_msg(n > 0, "readlink %s: %s", link, strerror(errno));
    target[n] = '\0';
    ck_assert_str_eq(target, line + strlen("plug pty="));

    close(fd);
    snprintf(sim.pty, sizeof sim.pty, "%s", target);
    fd = open_port(&sim);
    read_status(fd, &st);
    ck_assert_uint_eq(st.host_test_id, 0x00C0FFEE);
    stop_sim(&sim);
    rmdir(dir);
    free(dir);
}
END_TEST

/* A request that meets a power cycle gets no reply, and the analyzer is
 * left idle, without its test. */
START_TEST(power_cycle_drops_test)
{
    struct sim sim;
    struct saliva_status st;
    char line[256];

    start_sim(&sim, "sim-power", FAST_PHASES, NULL);
    int fd = open_port(&sim);
    child_send(&sim.child, "hold");
    expect_event(&sim, "hold", line, sizeof line);
    ck_assert_uint_eq(send_command(fd, 0x00C0FFEE, SALIVA_CMD_START), 0);

    send_faulted_read(&sim, "fault power-cycle", "power-cycle", 2);
    expect_event(&sim, "power-cycle", line, sizeof line);
    assert_no_reply_waiting(fd);
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_IDLE);
    ck_assert_uint_eq(st.host_test_id, 0);
    stop_sim(&sim);
}
END_TEST

/* Bad [request.N] sections and fault commands are rejected with the reason. */
START_TEST(request_section_errors_named)
{
    const char scenario[] = "[request.0]\nfault = drop\n"
                            "[request.3]\nfault = melt\n"
                            "[request.4]\ncount = 0\n";
    char path[PATH_MAX];
    char *dir = harness_tmpdir("sim-request-errors");
    char *out = NULL;
    char *err = NULL;

    snprintf(path, sizeof path, "%s/scenario.ini", dir);
    harness_write_file(path, scenario);
    char *argv[] = {(char *)harness_program("TOXLAB_SIM"), "saliva", path, NULL};
    ck_assert_int_eq(harness_run(argv, NULL, 10000, &out, &err), 2);
    ck_assert_msg(strstr(err, ":2: [request.0] fault: invalid request number") != NULL, "%s", err);
    ck_assert_msg(strstr(err, ":4: [request.3] fault: unknown fault 'melt'") != NULL, "%s", err);
    ck_assert_msg(strstr(err, ":6: [request.4] count: expected a count") != NULL, "%s", err);
    free(out);
    free(err);

    harness_write_file(path, "[test.2]\nfault = unplug\nfault_count = 0\n");
    ck_assert_int_eq(harness_run(argv, NULL, 10000, &out, &err), 2);
    ck_assert_msg(strstr(err, ":3: [test.2] fault_count: expected a count") != NULL, "%s", err);
    free(out);
    free(err);

    harness_write_file(path, "[request.4]\ncount = 2\n");
    ck_assert_int_eq(harness_run(argv, NULL, 10000, &out, &err), 2);
    ck_assert_msg(strstr(err, ":2: [request.4] fault: missing key") != NULL, "%s", err);
    free(out);
    free(err);
    unlink(path);
    rmdir(dir);
    free(dir);
}
END_TEST

/* The breath sim takes the same wire faults: a [request.N] section makes
 * request 2 busy, and a power cycle drops the test and starts the warm-up
 * again. */
START_TEST(breath_power_cycle_warms_up)
{
    struct sim sim;
    struct breath_status st;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_kind_sim(&sim, "breath", "sim-breath-power",
                   "[phases]\nwarmup_ms = 86400000\n[request.2]\nfault = busy\n", NULL);
    int fd = open_port(&sim);
    read_breath_status(fd, &st);
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, BREATH_STATUS_ADDR,
                                        BREATH_STATUS_COUNT, frame);
    send_bytes(fd, frame, len);
    read_reply(fd, reply);
    ck_assert_uint_eq(reply[2], RTU_EX_BUSY);
    expect_event(&sim, "fault kind=busy request=2", line, sizeof line);
    stop_sim(&sim);

    start_kind_sim(&sim, "breath", "sim-breath-power-run", FAST_BREATH_PHASES, NULL);
    fd = open_port(&sim);
    expect_event(&sim, "warm", line, sizeof line);
    child_send(&sim.child, "hold");
    expect_event(&sim, "hold", line, sizeof line);
    ck_assert_uint_eq(send_breath_command(fd, 0xABCD0002, BREATH_CMD_START), 0);
    expect_event(&sim, "phase test=1 state=analysing", line, sizeof line);

    child_send(&sim.child, "fault power-cycle");
    expect_event(&sim, "fault-armed kind=power-cycle", line, sizeof line);
    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, BREATH_STATUS_ADDR, BREATH_STATUS_COUNT,
                                 frame);
    send_bytes(fd, frame, len);
    expect_event(&sim, "power-cycle", line, sizeof line);
    expect_event(&sim, "warm", line, sizeof line);
    read_breath_status(fd, &st);
    ck_assert_uint_eq(st.state, BREATH_READY);
    ck_assert_uint_eq(st.host_test_id, 0);
    stop_sim(&sim);
}
END_TEST

/* A [test.N] fault that names a wire fault is armed when that test starts
 * and acts on the requests after the start: two busy replies for test 1,
 * and a power cycle that drops test 2. */
START_TEST(test_section_arms_wire_fault)
{
    struct sim sim;
    struct saliva_status st;
    char line[256];
    uint8_t frame[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];

    start_sim(&sim, "sim-test-fault",
              FAST_PHASES "[test.1]\nfault = busy\nfault_count = 2\n"
                          "[test.2]\nfault = power-cycle\n",
              NULL);
    int fd = open_port(&sim);
    ck_assert_uint_eq(send_command(fd, 0x00000001, SALIVA_CMD_START), 0);
    expect_event(&sim, "fault-armed", line, sizeof line);
    ck_assert_str_eq(line, "fault-armed kind=busy count=2 delay_ms=0 test=1");
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, SALIVA_STATUS_ADDR,
                                        SALIVA_STATUS_COUNT, frame);
    for (int i = 0; i < 2; i++) {
        send_bytes(fd, frame, len);
        read_reply(fd, reply);
        ck_assert_uint_eq(reply[2], RTU_EX_BUSY);
    }
    expect_event(&sim, "phase test=1 state=result-ready", line, sizeof line);
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_RESULT_READY);
    ck_assert_uint_eq(send_command(fd, 0x00000001, SALIVA_CMD_ACK_RESULT), 0);

    ck_assert_uint_eq(send_command(fd, 0x00000002, SALIVA_CMD_START), 0);
    expect_event(&sim, "fault-armed kind=power-cycle count=1 delay_ms=0 test=2", line, sizeof line);
    send_bytes(fd, frame, len);
    expect_event(&sim, "power-cycle", line, sizeof line);
    read_status(fd, &st);
    ck_assert_uint_eq(st.state, SALIVA_IDLE);
    ck_assert_uint_eq(st.host_test_id, 0);
    stop_sim(&sim);
}
END_TEST

static Suite *sim_suite(void)
{
    Suite *suite = suite_create("sim");
    TCase *wire = tcase_create("wire");
    TCase *commands = tcase_create("commands");
    TCase *breath = tcase_create("breath");
    TCase *process = tcase_create("process");

    tcase_set_timeout(wire, HARNESS_CASE_TIMEOUT);
    tcase_add_test(wire, mbpoll_reads_identity);
    tcase_add_test(wire, bad_crc_gets_no_reply);
    tcase_add_test(wire, other_slave_ignored);
    tcase_add_test(wire, requests_split_and_joined);
    tcase_add_test(wire, cut_frame_dropped);
    tcase_add_test(wire, unsupported_function_gets_exception);
    tcase_add_test(wire, unmapped_read_gets_exception);
    tcase_add_test(wire, wire_faults_change_replies);
    tcase_add_test(wire, request_section_schedules_fault);
    tcase_add_test(wire, slow_reply_arrives_late);
    tcase_add_test(wire, unplug_then_plug_new_pty);
    tcase_add_test(wire, power_cycle_drops_test);
    suite_add_tcase(suite, wire);

    tcase_set_timeout(commands, HARNESS_CASE_TIMEOUT);
    tcase_add_test(commands, start_result_ack);
    tcase_add_test(commands, single_register_command);
    tcase_add_test(commands, hold_keeps_analysing);
    tcase_add_test(commands, fault_exception_then_wrong_id);
    tcase_add_test(commands, test_section_arms_wire_fault);
    tcase_add_loop_test(commands, stall_withholds_one_reply, 0,
                        sizeof stall_kinds / sizeof stall_kinds[0]);
    suite_add_tcase(suite, commands);

    tcase_set_timeout(breath, HARNESS_CASE_TIMEOUT);
    tcase_add_test(breath, breath_mbpoll_reads_identity);
    tcase_add_test(breath, breath_start_result_ack);
    tcase_add_test(breath, breath_busy_while_warming_up);
    tcase_add_test(breath, breath_never_blows_until_abort);
    tcase_add_test(breath, breath_hold_keeps_analysing);
    tcase_add_test(breath, breath_error_and_faults);
    tcase_add_test(breath, breath_power_cycle_warms_up);
    suite_add_tcase(suite, breath);

    tcase_set_timeout(process, HARNESS_CASE_TIMEOUT);
    tcase_add_test(process, scenario_error_names_line);
    tcase_add_test(process, request_section_errors_named);
    tcase_add_test(process, scenario_without_error_starts);
    tcase_add_test(process, breath_scenario_error_names_line);
    tcase_add_test(process, breath_scenario_every_key_starts);
    tcase_add_test(process, link_follows_pty);
    tcase_add_test(process, eof_stops_only_when_asked);
    suite_add_tcase(suite, process);

    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(sim_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
