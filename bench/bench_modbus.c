/* B1 and B2: the saliva driver's poll cycle (status block, then result
 * block) against toxlab-sim saliva.
 *
 * B1 runs against `--paced` at 19200 baud and compares the cycle with the
 * wire limit. A trivial reader (raw read and write on the pty) measures
 * the sim's own pacing error. B2 runs unpaced and compares the driver
 * with a plain libmodbus loop reading the same blocks, with mbpoll's time
 * for the same two reads beside it. */
#define _GNU_SOURCE
#include "bench/benchlib.h"
#include "instruments/driver.h"
#include "protocol/rtu.h"
#include "protocol/saliva_map.h"
#include "sim/paced.h"

#include <errno.h>
#include <fcntl.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

extern const struct driver_ops saliva_driver;

#define HOST_TEST_ID 0x5c01e2aaU

/* A test that finishes at once, with a realistic mix of readings. */
static const char scenario[] = "[phases]\ncartridge_ms = 0\ncollecting_ms = 0\nanalysing_ms = 0\n"
                               "[default]\nmethamphetamine = 120.5\namphetamine = 12\n"
                               "thc = 0.8\n";

struct rig {
    char *dir;
    struct bench_child sim;
    char pty[128];
    void *driver;
    modbus_t *plain;
    int raw_fd;
};

static void open_driver(struct rig *rig)
{
    struct instrument_config config = {
        .baud = PACED_DEFAULT_BAUD,
        .parity = 'E',
        .data_bits = 8,
        .stop_bits = 1,
        .slave = 1,
        .response_timeout_ms = 1000,
    };
    char err[DRIVER_ERR_SIZE];
    struct driver_progress progress;

    snprintf(config.device, sizeof(config.device), "%s", rig->pty);
    if (saliva_driver.open(&config, &rig->driver, err, sizeof(err)) != DRIVER_OK ||
        saliva_driver.start(rig->driver, HOST_TEST_ID, err, sizeof(err)) != DRIVER_OK) {
        errno = 0;
        bench_fail("saliva driver on %s: %s", rig->pty, err);
    }
    do {
        if (saliva_driver.poll(rig->driver, &progress, err, sizeof(err)) != DRIVER_OK) {
            errno = 0;
            bench_fail("saliva driver poll: %s", err);
        }
    } while (!progress.result_ready);
}

/* The plain libmodbus context. A pty takes no parity (see modbus_link.c). */
static void open_plain(struct rig *rig)
{
    rig->plain = modbus_new_rtu(rig->pty, PACED_DEFAULT_BAUD, 'N', 8, 1);
    if (rig->plain == NULL || modbus_set_slave(rig->plain, 1) != 0 ||
        modbus_connect(rig->plain) != 0) {
        bench_fail("libmodbus on %s", rig->pty);
    }
}

static void open_raw(struct rig *rig)
{
    struct termios tio;

    rig->raw_fd = open(rig->pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (rig->raw_fd < 0 || tcgetattr(rig->raw_fd, &tio) != 0) {
        bench_fail("open %s", rig->pty);
    }
    cfmakeraw(&tio);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    tcsetattr(rig->raw_fd, TCSANOW, &tio);
}

static void setup(struct rig *rig, bool paced)
{
    char *extra[] = {"--paced", NULL};

    rig->dir = bench_tmpdir(paced ? "paced" : "unpaced");
    bench_start_sim(&rig->sim, rig->dir, "saliva", "saliva", scenario, paced ? extra : NULL,
                    rig->pty, sizeof(rig->pty));
    open_driver(rig);
    open_plain(rig);
    open_raw(rig);
}

static void teardown(struct rig *rig)
{
    saliva_driver.close(rig->driver);
    modbus_close(rig->plain);
    modbus_free(rig->plain);
    close(rig->raw_fd);
    bench_stop(&rig->sim, 2000);
    bench_rmdir(rig->dir);
    free(rig->dir);
}

/* Returns the mean time of one driver poll cycle in milliseconds. */
static double time_driver(struct rig *rig, int cycles)
{
    char err[DRIVER_ERR_SIZE];
    struct driver_progress progress;
    struct driver_result result;
    int64_t start = bench_now_ns();

    for (int i = 0; i < cycles; i++) {
        if (saliva_driver.poll(rig->driver, &progress, err, sizeof(err)) != DRIVER_OK ||
            saliva_driver.read_result(rig->driver, HOST_TEST_ID, &result, err, sizeof(err)) !=
                DRIVER_OK) {
            errno = 0;
            bench_fail("driver cycle %d: %s", i, err);
        }
    }
    return (double)(bench_now_ns() - start) / 1e6 / cycles;
}

/* The reference of B2: libmodbus called directly for the same blocks. */
static double time_plain(struct rig *rig, int cycles)
{
    uint16_t status[SALIVA_STATUS_COUNT];
    uint16_t result[SALIVA_RESULT_COUNT];
    int64_t start = bench_now_ns();

    for (int i = 0; i < cycles; i++) {
        if (modbus_read_registers(rig->plain, SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT, status) !=
                SALIVA_STATUS_COUNT ||
            modbus_read_registers(rig->plain, SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT, result) !=
                SALIVA_RESULT_COUNT) {
            bench_fail("plain libmodbus cycle %d", i);
        }
    }
    return (double)(bench_now_ns() - start) / 1e6 / cycles;
}

static void raw_transaction(int fd, uint16_t address, uint16_t count)
{
    uint8_t request[RTU_MAX_FRAME];
    uint8_t reply[RTU_MAX_FRAME];
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, address, count, request);
    size_t expected = 5 + 2 * (size_t)count;
    size_t got = 0;

    if (write(fd, request, len) != (ssize_t)len) {
        bench_fail("raw write");
    }
    while (got < expected) {
        ssize_t n = read(fd, reply + got, expected - got);
        if (n <= 0) {
            bench_fail("raw read");
        }
        got += (size_t)n;
    }
}

/* The trivial reader of B1: no flush, no checks, no timeouts. */
static double time_raw(struct rig *rig, int cycles)
{
    int64_t start = bench_now_ns();

    for (int i = 0; i < cycles; i++) {
        raw_transaction(rig->raw_fd, SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT);
        raw_transaction(rig->raw_fd, SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT);
    }
    return (double)(bench_now_ns() - start) / 1e6 / cycles;
}

/* One mbpoll run per block, as a user would script it. */
static double time_mbpoll(struct rig *rig, int cycles)
{
    char command[512];
    int64_t start = bench_now_ns();

    snprintf(command, sizeof(command),
             "mbpoll -q -m rtu -b %d -P even -a 1 -0 -r %d -c %d -1 %s >/dev/null 2>&1 && "
             "mbpoll -q -m rtu -b %d -P even -a 1 -0 -r %d -c %d -1 %s >/dev/null 2>&1",
             PACED_DEFAULT_BAUD, SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT, rig->pty,
             PACED_DEFAULT_BAUD, SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT, rig->pty);
    for (int i = 0; i < cycles; i++) {
        if (system(command) != 0) {
            return -1;
        }
    }
    return (double)(bench_now_ns() - start) / 1e6 / cycles;
}

/* Wire time of one cycle at 19200 baud: each request, the 3.5-character
 * silent interval before its reply, and the reply. */
static double wire_limit_ms(void)
{
    double chars =
        2 * 8.0 + 2 * 3.5 + (5 + 2 * SALIVA_STATUS_COUNT) + (5 + 2 * SALIVA_RESULT_COUNT);

    return (double)paced_chars_ns(chars, PACED_DEFAULT_BAUD) / 1e6;
}

static void run_b1(int runs, int cycles)
{
    struct rig rig;
    double driver[BENCH_MAX_RUNS], raw[BENCH_MAX_RUNS];
    double driver_ratio[BENCH_MAX_RUNS], raw_ratio[BENCH_MAX_RUNS];
    double limit = wire_limit_ms();
    char note[160];

    setup(&rig, true);
    for (int r = 0; r < runs; r++) {
        driver[r] = time_driver(&rig, cycles);
        raw[r] = time_raw(&rig, cycles);
        driver_ratio[r] = driver[r] / limit;
        raw_ratio[r] = raw[r] / limit;
    }
    teardown(&rig);

    struct bench_stats ratio = bench_stats_of(driver_ratio, (size_t)runs);
    snprintf(note, sizeof(note), "wire limit %.2f ms", limit);
    bench_row("B1", "driver poll cycle, paced 19200 8E1", bench_stats_of(driver, (size_t)runs), 2,
              "ms", note);
    bench_row("B1", "trivial reader cycle, paced", bench_stats_of(raw, (size_t)runs), 2, "ms",
              "the sim's pacing");
    snprintf(note, sizeof(note), "target <= 1.10x: %s", ratio.median <= 1.10 ? "met" : "missed");
    bench_row("B1", "driver / wire limit", ratio, 3, "x", note);
    bench_row("B1", "trivial reader / wire limit", bench_stats_of(raw_ratio, (size_t)runs), 3, "x",
              "pacing error of the sim");
}

static void run_b2(int runs, int cycles, int mbpoll_cycles)
{
    struct rig rig;
    double driver[BENCH_MAX_RUNS], plain[BENCH_MAX_RUNS], mbpoll[BENCH_MAX_RUNS];
    double ratio[BENCH_MAX_RUNS];
    char note[160];

    setup(&rig, false);
    for (int r = 0; r < runs; r++) {
        driver[r] = 1000.0 / time_driver(&rig, cycles);
        plain[r] = 1000.0 / time_plain(&rig, cycles);
        ratio[r] = driver[r] / plain[r];
        mbpoll[r] = 1000.0 / time_mbpoll(&rig, mbpoll_cycles);
    }
    teardown(&rig);

    struct bench_stats ratio_stats = bench_stats_of(ratio, (size_t)runs);
    bench_row("B2", "driver poll cycles, unpaced", bench_stats_of(driver, (size_t)runs), 0,
              "cycles/s", "");
    bench_row("B2", "plain libmodbus loop, same blocks", bench_stats_of(plain, (size_t)runs), 0,
              "cycles/s", "reference");
    snprintf(note, sizeof(note), "target >= 0.8x: %s",
             ratio_stats.median >= 0.8 ? "met" : "missed");
    bench_row("B2", "driver / plain libmodbus", ratio_stats, 3, "x", note);
    if (mbpoll[0] > 0) {
        bench_row("B2", "mbpoll, one run per block", bench_stats_of(mbpoll, (size_t)runs), 1,
                  "cycles/s", "for users; process start-up dominates");
    }
}

int main(int argc, char **argv)
{
    int runs = 5;
    bool smoke = false;

    bench_common_options(argc, argv, &runs, &smoke);
    run_b1(runs, smoke ? 2 : 20);
    run_b2(runs, smoke ? 20 : 3000, smoke ? 1 : 10);
    return 0;
}
