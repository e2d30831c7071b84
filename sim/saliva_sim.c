/* Simulated saliva analyzer: the device behind the shared Modbus RTU slave
 * loop of sim/slave_loop.c. It keeps the register map of
 * protocol/saliva_map.h and moves each test through its phases on timers. */
#define _GNU_SOURCE
#include "sim/saliva_sim.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/rtu.h"
#include "protocol/saliva_map.h"
#include "sim/scenario.h"
#include "sim/slave_loop.h"

struct saliva_sim {
    struct slave_loop loop;
    const struct scenario *scenario;

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
    bool ack_lost;    /* fault=lost-ack already ignored this test's first acknowledgement */
};

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
    slave_loop_event(&sim->loop, "phase test=%u state=%s", sim->test_number,
                     saliva_state_name(state));

    if (state == SALIVA_ANALYSING && sim->test->fault == SCENARIO_FAULT_SILENT) {
        sim->loop.muted = true;
        slave_loop_event(&sim->loop, "mute test=%u fault=silent", sim->test_number);
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
    slave_loop_event(&sim->loop, "error test=%u code=%u text=%s", sim->test_number, sim->error_code,
                     text);
}

static void finish_test(struct saliva_sim *sim)
{
    sim->held_at_end = false;
    if (sim->test->error != SALIVA_ERR_NONE) {
        sim->state = SALIVA_ERROR;
        sim->error_code = sim->test->error;
        slave_loop_event(&sim->loop, "phase test=%u state=error", sim->test_number);
        emit_error_event(sim);
        return;
    }

    store_result(sim);
    sim->state = SALIVA_RESULT_READY;
    slave_loop_event(&sim->loop, "phase test=%u state=result-ready", sim->test_number);
}

/* Moves the running test through every phase whose time is over. Each next
 * phase starts when the previous one was due to end, so a late wake-up
 * never stretches the schedule. */
static void advance_phases(void *device, int64_t now)
{
    struct saliva_sim *sim = device;

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

/* Reads count registers for a function 3 request. The status block is
 * built once, so that every register of one reply shows the same moment. */
static uint8_t read_registers(void *device, uint16_t address, uint16_t count, int64_t now,
                              uint16_t *values)
{
    const struct saliva_sim *sim = device;
    uint16_t status[SALIVA_STATUS_COUNT];

    build_status(sim, now, status);
    for (uint16_t i = 0; i < count; i++) {
        if (!read_register(sim, status, (uint32_t)address + i, &values[i])) {
            return RTU_EX_ILLEGAL_ADDRESS;
        }
    }
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
    sim->ack_lost = false;
    slave_loop_event(&sim->loop, "start test=%u host_id=0x%08x", number, host_id);
    if (test->fault >= SCENARIO_FAULT_WIRE) {
        struct wire_fault fault = wire_fault_for_test(test->fault, &test->wire);
        slave_loop_arm_fault(&sim->loop, &fault, number);
    }
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
    slave_loop_event(&sim->loop, "abort test=%u host_id=0x%08x", sim->test_number,
                     sim->host_test_id);
    reset_to_idle(sim);
}

/* Acknowledging clears a result or an error, and does nothing in other
 * states. The host test ID written with it is not compared with the result's. */
static void acknowledge_result(struct saliva_sim *sim)
{
    if (sim->state != SALIVA_RESULT_READY && sim->state != SALIVA_ERROR) {
        return;
    }
    if (sim->test != NULL && sim->test->fault == SCENARIO_FAULT_LOST_ACK && !sim->ack_lost) {
        sim->ack_lost = true;
        slave_loop_event(&sim->loop, "ack-lost test=%u host_id=0x%08x", sim->test_number,
                         sim->host_test_id);
        return;
    }
    slave_loop_event(&sim->loop, "ack test=%u host_id=0x%08x", sim->test_number, sim->host_test_id);
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
static uint8_t write_registers(void *device, const struct rtu_request *req, int64_t now,
                               unsigned *rejected_test)
{
    struct saliva_sim *sim = device;
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

static void hold_test(struct saliva_sim *sim)
{
    sim->hold = true;
    if (is_running(sim->state)) {
        slave_loop_event(&sim->loop, "hold test=%u", sim->test_number);
    } else {
        slave_loop_event(&sim->loop, "hold");
    }
}

static void release_test(struct saliva_sim *sim)
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

static int64_t next_phase_end(const void *device)
{
    const struct saliva_sim *sim = device;

    if (is_running(sim->state) && !sim->held_at_end) {
        return sim->phase_end_ms;
    }
    return -1;
}

static bool run_device_command(void *device, const char *command)
{
    struct saliva_sim *sim = device;

    if (strcmp(command, "hold") == 0) {
        hold_test(sim);
    } else if (strcmp(command, "release") == 0) {
        release_test(sim);
    } else {
        return false;
    }
    return true;
}

/* The analyzer restarts: it drops its test and result and comes back
 * idle. */
static void power_cycle(void *device, int64_t now)
{
    struct saliva_sim *sim = device;

    (void)now;
    reset_to_idle(sim);
    slave_loop_event(&sim->loop, "power-cycle");
}

static const struct slave_device_ops saliva_ops = {
    .advance = advance_phases,
    .next_due = next_phase_end,
    .read = read_registers,
    .write = write_registers,
    .command = run_device_command,
    .power_cycle = power_cycle,
    .command_names = "hold, release",
};

static void init_sim(struct saliva_sim *sim, const struct sim_run *run, const struct scenario *sc)
{
    struct saliva_identity id = {
        .model = SALIVA_MODEL_CODE,
        .protocol = SALIVA_PROTOCOL_VERSION,
        .calibration_date = sc->calibration_date,
        .cartridge_expiry = sc->cartridge_expiry,
    };

    memset(sim, 0, sizeof *sim);
    slave_loop_init(&sim->loop, run, &saliva_ops, sim, &sc->requests);
    sim->scenario = sc;
    reset_to_idle(sim);

    snprintf(id.serial, sizeof id.serial, "%s", sc->serial);
    snprintf(id.firmware, sizeof id.firmware, "%s", sc->firmware);
    snprintf(id.cartridge_lot, sizeof id.cartridge_lot, "%s", sc->cartridge_lot);
    saliva_encode_identity(&id, sim->identity);
}

static int run_saliva(const struct sim_run *run, const void *scenario)
{
    const struct scenario *sc = scenario;
    struct saliva_sim *sim = malloc(sizeof *sim);

    if (sim == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory\n");
        return 1;
    }
    init_sim(sim, run, sc);

    slave_loop_event(&sim->loop, "ready kind=saliva serial=%s slave=%u", sc->serial,
                     sim->loop.slave);
    int status = slave_loop_run(&sim->loop);
    free(sim);
    return status;
}

static void *load_scenario(const char *path)
{
    struct scenario *sc = malloc(sizeof *sc);

    if (sc == NULL) {
        fprintf(stderr, "toxlab-sim: out of memory\n");
        return NULL;
    }
    scenario_init(sc);
    if (path != NULL && scenario_load(sc, path) < 0) {
        scenario_free(sc);
        free(sc);
        return NULL;
    }
    return sc;
}

static int scenario_slave(const void *scenario)
{
    const struct scenario *sc = scenario;

    return sc->slave;
}

static void free_scenario(void *scenario)
{
    scenario_free(scenario);
    free(scenario);
}

const struct sim_kind saliva_sim_kind = {
    .name = "saliva",
    .summary = "oral-fluid screening analyzer, Modbus RTU slave",
    .load_scenario = load_scenario,
    .scenario_slave = scenario_slave,
    .run = run_saliva,
    .free_scenario = free_scenario,
};
