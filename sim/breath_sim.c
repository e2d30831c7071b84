/* Simulated evidential breath-alcohol analyzer: the device behind the
 * shared Modbus RTU slave loop of sim/slave_loop.c. It keeps the register
 * map of protocol/breath_map.h, warms up after start-up, and moves each
 * test through blow-requested, blowing and analysing on timers. */
#define _GNU_SOURCE
#include "sim/breath_sim.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/breath_map.h"
#include "protocol/rtu.h"
#include "sim/breath_scenario.h"
#include "sim/slave_loop.h"

struct breath_sim {
    struct slave_loop loop;
    const struct breath_scenario *scenario;

    uint16_t identity[BREATH_ID_COUNT];
    uint16_t result[BREATH_RESULT_COUNT]; /* zeros unless a result is ready */
    uint32_t control_host_id;             /* registers 200 and 201 as last written */

    enum breath_state state;
    uint16_t error_code;
    uint16_t sequence;      /* sequence number of the last result */
    uint32_t host_test_id;  /* host test ID of the current test, 0 without one */
    unsigned tests_started; /* start commands that began a test or hit fault=exception */
    unsigned test_number;
    const struct breath_test *test;
    int64_t warm_end_ms; /* end of the warm-up that follows start-up */
    int64_t phase_end_ms;
    bool hold;        /* `hold` was given and not yet released */
    bool held_at_end; /* the analysing time is over but `hold` keeps the test there */
};

static bool is_running(enum breath_state state)
{
    return state == BREATH_BLOW_REQUESTED || state == BREATH_BLOWING || state == BREATH_ANALYSING;
}

static int64_t phase_ms(const struct breath_sim *sim, enum breath_state state)
{
    switch (state) {
    case BREATH_BLOW_REQUESTED:
        return sim->scenario->blow_request_ms;
    case BREATH_BLOWING:
        return sim->scenario->blowing_ms;
    case BREATH_ANALYSING:
        return sim->scenario->analysing_ms;
    default:
        return 0;
    }
}

/* Returns whether the running test's phase has no end, because the subject
 * never blows or `hold` keeps the test in analysing. */
static bool phase_waits(const struct breath_sim *sim)
{
    return sim->held_at_end || (sim->state == BREATH_BLOW_REQUESTED && sim->test->never_blows);
}

static void reset_to_ready(struct breath_sim *sim)
{
    sim->state = BREATH_READY;
    sim->error_code = BREATH_ERR_NONE;
    sim->host_test_id = 0;
    sim->test = NULL;
    sim->held_at_end = false;
    memset(sim->result, 0, sizeof sim->result);
}

static void enter_phase(struct breath_sim *sim, enum breath_state state, int64_t start_ms)
{
    sim->state = state;
    sim->phase_end_ms = start_ms + phase_ms(sim, state);
    slave_loop_event(&sim->loop, "phase test=%u state=%s", sim->test_number,
                     breath_state_name(state));

    if (state == BREATH_ANALYSING && sim->test->fault == SCENARIO_FAULT_SILENT) {
        sim->loop.muted = true;
        slave_loop_event(&sim->loop, "mute test=%u fault=silent", sim->test_number);
    }
}

/* Fills the result block from the scenario's entry for the current test. */
static void store_result(struct breath_sim *sim)
{
    const struct breath_test *test = sim->test;
    struct breath_result res = {
        .host_test_id = sim->host_test_id,
        .alcohol = test->alcohol,
        .flags = test->flags,
        .temperature = test->temperature,
    };

    /* Sequence numbers skip 0, which the cleared block reads. */
    sim->sequence++;
    if (sim->sequence == 0) {
        sim->sequence = 1;
    }
    res.sequence = sim->sequence;
    if (test->fault == SCENARIO_FAULT_WRONG_ID) {
        res.host_test_id++;
    }
    breath_encode_result(&res, sim->result);
}

/* Queues the error event, with hyphens for the spaces of the error text so
 * that each value stays one word. */
static void emit_error_event(struct breath_sim *sim)
{
    char text[64];

    snprintf(text, sizeof text, "%s", breath_error_text(sim->error_code));
    for (char *c = text; *c != '\0'; c++) {
        if (*c == ' ') {
            *c = '-';
        }
    }
    slave_loop_event(&sim->loop, "error test=%u code=%u text=%s", sim->test_number, sim->error_code,
                     text);
}

static void finish_test(struct breath_sim *sim)
{
    sim->held_at_end = false;
    if (sim->test->error != BREATH_ERR_NONE) {
        sim->state = BREATH_ERROR;
        sim->error_code = sim->test->error;
        slave_loop_event(&sim->loop, "phase test=%u state=error", sim->test_number);
        emit_error_event(sim);
        return;
    }

    store_result(sim);
    sim->state = BREATH_RESULT_READY;
    slave_loop_event(&sim->loop, "phase test=%u state=result-ready", sim->test_number);
}

/* Ends the warm-up and moves the running test through every phase whose
 * time is over. Each next phase starts when the previous one was due to
 * end, so a late wake-up never stretches the schedule. */
static void advance_phases(void *device, int64_t now)
{
    struct breath_sim *sim = device;

    if (sim->state == BREATH_WARMING_UP && now >= sim->warm_end_ms) {
        sim->state = BREATH_READY;
        slave_loop_event(&sim->loop, "warm");
    }

    while (is_running(sim->state) && !phase_waits(sim) && now >= sim->phase_end_ms) {
        int64_t end = sim->phase_end_ms;

        switch (sim->state) {
        case BREATH_BLOW_REQUESTED:
            enter_phase(sim, BREATH_BLOWING, end);
            break;
        case BREATH_BLOWING:
            enter_phase(sim, BREATH_ANALYSING, end);
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

static int64_t next_due(const void *device)
{
    const struct breath_sim *sim = device;

    if (sim->state == BREATH_WARMING_UP) {
        return sim->warm_end_ms;
    }
    if (is_running(sim->state) && !phase_waits(sim)) {
        return sim->phase_end_ms;
    }
    return -1;
}

static uint16_t seconds_until(int64_t now, int64_t end)
{
    int64_t left_ms = end - now;
    int64_t seconds = left_ms > 0 ? (left_ms + 999) / 1000 : 0;

    return (uint16_t)(seconds < UINT16_MAX ? seconds : UINT16_MAX);
}

/* Percent done and seconds left run over the whole test (blow request,
 * blowing and analysing), so that percent only rises and seconds left only
 * falls. Time in a phase counts up to the phase's length, so a subject who
 * never blows leaves both where the blow request ends, and a test held past
 * its time stays at 99 % and 0 s. During the warm-up, seconds left counts
 * down to ready. */
static void build_status(const struct breath_sim *sim, int64_t now,
                         uint16_t regs[BREATH_STATUS_COUNT])
{
    struct breath_status st = {
        .state = (uint16_t)sim->state,
        .error_code = sim->error_code,
        .sequence = sim->sequence,
        .host_test_id = sim->host_test_id,
    };

    if (sim->state == BREATH_WARMING_UP) {
        st.seconds_left = seconds_until(now, sim->warm_end_ms);
    } else if (is_running(sim->state)) {
        int64_t total = 0;
        int64_t elapsed = 0;

        for (int s = BREATH_BLOW_REQUESTED; s <= BREATH_ANALYSING; s++) {
            total += phase_ms(sim, (enum breath_state)s);
            if (s < (int)sim->state) {
                elapsed += phase_ms(sim, (enum breath_state)s);
            }
        }
        int64_t length = phase_ms(sim, sim->state);
        int64_t in_phase = now - (sim->phase_end_ms - length);
        elapsed += in_phase < 0 ? 0 : (in_phase > length ? length : in_phase);

        int64_t percent = total > 0 ? elapsed * 100 / total : 99;
        st.percent = (uint16_t)(percent < 99 ? percent : 99);
        st.seconds_left = seconds_until(now, now + (total - elapsed));
    } else if (sim->state == BREATH_RESULT_READY) {
        st.percent = 100;
    }
    breath_encode_status(&st, regs);
}

static bool in_block(uint32_t address, uint32_t start, uint32_t count)
{
    return address >= start && address < start + count;
}

/* Returns false for an address outside every block. */
static bool read_register(const struct breath_sim *sim, const uint16_t *status, uint32_t address,
                          uint16_t *value)
{
    if (in_block(address, BREATH_ID_ADDR, BREATH_ID_COUNT)) {
        *value = sim->identity[address - BREATH_ID_ADDR];
    } else if (in_block(address, BREATH_STATUS_ADDR, BREATH_STATUS_COUNT)) {
        *value = status[address - BREATH_STATUS_ADDR];
    } else if (in_block(address, BREATH_CONTROL_ADDR, BREATH_CONTROL_COUNT)) {
        /* The command register reads 0 because each command acts when written. */
        uint16_t control[BREATH_CONTROL_COUNT];

        breath_encode_control(sim->control_host_id, BREATH_CMD_NONE, control);
        *value = control[address - BREATH_CONTROL_ADDR];
    } else if (in_block(address, BREATH_RESULT_ADDR, BREATH_RESULT_COUNT)) {
        *value = sim->result[address - BREATH_RESULT_ADDR];
    } else {
        return false;
    }
    return true;
}

/* Reads count registers for a function 3 request. The status block is
 * built once, so that every register of one reply shows the same moment. */
static uint8_t read_registers(void *device, uint16_t address, uint16_t count, int64_t now,
                              uint16_t *values)
{
    const struct breath_sim *sim = device;
    uint16_t status[BREATH_STATUS_COUNT];

    build_status(sim, now, status);
    for (uint16_t i = 0; i < count; i++) {
        if (!read_register(sim, status, (uint32_t)address + i, &values[i])) {
            return RTU_EX_ILLEGAL_ADDRESS;
        }
    }
    return 0;
}

/* The analyzer is busy while it warms up, while a test runs and while a
 * result waits for its acknowledgement. A start in the error state drops
 * the error. */
static uint8_t start_test(struct breath_sim *sim, uint32_t host_id, int64_t now,
                          unsigned *rejected_test)
{
    if (sim->state == BREATH_WARMING_UP || is_running(sim->state) ||
        sim->state == BREATH_RESULT_READY) {
        return RTU_EX_BUSY;
    }

    unsigned number = ++sim->tests_started;
    const struct breath_test *test = breath_scenario_test_for(sim->scenario, number);
    if (test->fault == SCENARIO_FAULT_EXCEPTION) {
        *rejected_test = number;
        return RTU_EX_DEVICE_FAILURE;
    }

    reset_to_ready(sim);
    sim->test = test;
    sim->test_number = number;
    sim->host_test_id = host_id;
    slave_loop_event(&sim->loop, "start test=%u host_id=0x%08x", number, host_id);
    if (test->fault >= SCENARIO_FAULT_WIRE) {
        struct wire_fault fault = wire_fault_for_test(test->fault, &test->wire);
        slave_loop_arm_fault(&sim->loop, &fault, number);
    }
    enter_phase(sim, BREATH_BLOW_REQUESTED, now);
    return 0;
}

/* Abort drops whatever the analyzer holds: a running test, an unread result
 * or an error. While warming up or ready it does nothing. */
static void abort_test(struct breath_sim *sim)
{
    if (sim->state == BREATH_WARMING_UP || sim->state == BREATH_READY) {
        return;
    }
    slave_loop_event(&sim->loop, "abort test=%u host_id=0x%08x", sim->test_number,
                     sim->host_test_id);
    reset_to_ready(sim);
}

/* Acknowledging clears a result or an error, and does nothing in other
 * states. The host test ID written with it is not compared with the result's. */
static void acknowledge_result(struct breath_sim *sim)
{
    if (sim->state != BREATH_RESULT_READY && sim->state != BREATH_ERROR) {
        return;
    }
    slave_loop_event(&sim->loop, "ack test=%u host_id=0x%08x", sim->test_number, sim->host_test_id);
    reset_to_ready(sim);
}

static uint8_t run_command(struct breath_sim *sim, uint16_t command, uint32_t host_id, int64_t now,
                           unsigned *rejected_test)
{
    switch (command) {
    case BREATH_CMD_NONE:
        return 0;
    case BREATH_CMD_START:
        return start_test(sim, host_id, now, rejected_test);
    case BREATH_CMD_ABORT:
        abort_test(sim);
        return 0;
    case BREATH_CMD_ACK_RESULT:
        acknowledge_result(sim);
        return 0;
    default:
        return RTU_EX_ILLEGAL_VALUE;
    }
}

/* Applies a function 6 or 16 write to the control block. A write that
 * reaches the command register runs the command with the host test ID of
 * the same write, or the one last written. A command that fails changes no
 * register. */
static uint8_t write_registers(void *device, const struct rtu_request *req, int64_t now,
                               unsigned *rejected_test)
{
    struct breath_sim *sim = device;
    uint32_t first = req->address;
    uint32_t last = first + req->count - 1;
    uint16_t control[BREATH_CONTROL_COUNT];

    if (first < BREATH_CONTROL_ADDR || last > BREATH_COMMAND_ADDR) {
        return RTU_EX_ILLEGAL_ADDRESS;
    }

    breath_encode_control(sim->control_host_id, BREATH_CMD_NONE, control);
    for (uint16_t i = 0; i < req->count; i++) {
        control[first - BREATH_CONTROL_ADDR + i] = req->values[i];
    }

    uint32_t host_id = ((uint32_t)control[0] << 16) | control[1];
    if (last == BREATH_COMMAND_ADDR) {
        uint16_t command = control[BREATH_COMMAND_ADDR - BREATH_CONTROL_ADDR];
        uint8_t exception = run_command(sim, command, host_id, now, rejected_test);

        if (exception != 0) {
            return exception;
        }
    }
    sim->control_host_id = host_id;
    return 0;
}

static void hold_test(struct breath_sim *sim)
{
    sim->hold = true;
    if (is_running(sim->state)) {
        slave_loop_event(&sim->loop, "hold test=%u", sim->test_number);
    } else {
        slave_loop_event(&sim->loop, "hold");
    }
}

static void release_test(struct breath_sim *sim)
{
    sim->hold = false;
    if (is_running(sim->state)) {
        slave_loop_event(&sim->loop, "release test=%u", sim->test_number);
    } else {
        slave_loop_event(&sim->loop, "release");
    }
    if (sim->held_at_end) {
        finish_test(sim);
    }
}

static bool run_device_command(void *device, const char *command)
{
    struct breath_sim *sim = device;

    if (strcmp(command, "hold") == 0) {
        hold_test(sim);
    } else if (strcmp(command, "release") == 0) {
        release_test(sim);
    } else {
        return false;
    }
    return true;
}

/* The analyzer restarts: it drops its test and warms up again. */
static void power_cycle(void *device, int64_t now)
{
    struct breath_sim *sim = device;

    reset_to_ready(sim);
    sim->state = BREATH_WARMING_UP;
    sim->warm_end_ms = now + sim->scenario->warmup_ms;
    slave_loop_event(&sim->loop, "power-cycle");
}

static const struct slave_device_ops breath_ops = {
    .advance = advance_phases,
    .next_due = next_due,
    .read = read_registers,
    .write = write_registers,
    .command = run_device_command,
    .power_cycle = power_cycle,
    .command_names = "hold, release",
};

static void init_sim(struct breath_sim *sim, const struct sim_run *run,
                     const struct breath_scenario *sc)
{
    struct breath_identity id = {
        .model = BREATH_MODEL_CODE,
        .protocol = BREATH_PROTOCOL_VERSION,
        .calibration_date = sc->calibration_date,
        .calibration_due = sc->calibration_due,
    };

    memset(sim, 0, sizeof *sim);
    slave_loop_init(&sim->loop, run, &breath_ops, sim, &sc->requests);
    sim->scenario = sc;
    reset_to_ready(sim);
    sim->state = BREATH_WARMING_UP;
    sim->warm_end_ms = slave_loop_now_ms() + sc->warmup_ms;

    snprintf(id.serial, sizeof id.serial, "%s", sc->serial);
    snprintf(id.firmware, sizeof id.firmware, "%s", sc->firmware);
    snprintf(id.mouthpiece_lot, sizeof id.mouthpiece_lot, "%s", sc->mouthpiece_lot);
    breath_encode_identity(&id, sim->identity);
}

static int run_breath(const struct sim_run *run, const void *scenario)
{
    const struct breath_scenario *sc = scenario;
    struct breath_sim *sim = malloc(sizeof *sim);

    if (sim == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory\n");
        return 1;
    }
    init_sim(sim, run, sc);

    slave_loop_event(&sim->loop, "ready kind=breath serial=%s slave=%u", sc->serial,
                     sim->loop.slave);
    int status = slave_loop_run(&sim->loop);
    free(sim);
    return status;
}

static void *load_scenario(const char *path)
{
    struct breath_scenario *sc = malloc(sizeof *sc);

    if (sc == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory\n");
        return NULL;
    }
    breath_scenario_init(sc);
    if (path != NULL && breath_scenario_load(sc, path) < 0) {
        breath_scenario_free(sc);
        free(sc);
        return NULL;
    }
    return sc;
}

static int scenario_slave(const void *scenario)
{
    const struct breath_scenario *sc = scenario;

    return sc->slave;
}

static void free_scenario(void *scenario)
{
    breath_scenario_free(scenario);
    free(scenario);
}

const struct sim_kind breath_sim_kind = {
    .name = "breath",
    .summary = "evidential breath-alcohol analyzer, Modbus RTU slave",
    .load_scenario = load_scenario,
    .scenario_slave = scenario_slave,
    .run = run_breath,
    .free_scenario = free_scenario,
};
