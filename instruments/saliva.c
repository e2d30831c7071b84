/* Driver for the saliva (oral-fluid) screening analyzer over Modbus RTU,
 * with libmodbus. The register map is in protocol/saliva_map.h. */
#include "instruments/driver.h"
#include "protocol/saliva_map.h"

#include <errno.h>
#include <limits.h>
#include <modbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/major.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct saliva_link {
    modbus_t *ctx;
    char device[PATH_MAX];
};

static const char *exception_text(int code)
{
    static const char *const texts[] = {
        [1] = "illegal function",      [2] = "illegal data address", [3] = "illegal data value",
        [4] = "server device failure", [5] = "acknowledge",          [6] = "server device busy",
    };

    if (code >= 1 && code <= 6) {
        return texts[code];
    }
    return "unknown exception";
}

/* Classifies the errno of a failed libmodbus call and writes the message
 * naming the block, register address and cause. */
static int modbus_failure(const char *action, const char *block, int address, char *err,
                          size_t size)
{
    int code = errno;
    int status;
    char cause[96];

    if (code == ETIMEDOUT) {
        status = DRIVER_TIMEOUT;
        snprintf(cause, sizeof(cause), "timed out");
    } else if (code == EMBBADCRC) {
        status = DRIVER_CORRUPT;
        snprintf(cause, sizeof(cause), "CRC error");
    } else if (code > MODBUS_ENOBASE && code <= MODBUS_ENOBASE + 11) {
        int exception = code - MODBUS_ENOBASE;
        status = DRIVER_EXCEPTION;
        snprintf(cause, sizeof(cause), "Modbus exception %d (%s)", exception,
                 exception_text(exception));
    } else if (code == EMBBADDATA || code == EMBBADEXC || code == EMBMDATA || code == EMBBADSLAVE) {
        status = DRIVER_CORRUPT;
        snprintf(cause, sizeof(cause), "malformed reply (%s)", modbus_strerror(code));
    } else {
        status = DRIVER_IO;
        snprintf(cause, sizeof(cause), "%s", modbus_strerror(code));
    }
    snprintf(err, size, "%s %s %s at register %d (0x%04X)", cause, action, block, address, address);
    return status;
}

static int read_block(struct saliva_link *state, const char *block, int address, int count,
                      uint16_t *regs, char *err, size_t size)
{
    int got;

    /* Bytes waiting before a request are stale: a late reply or noise. */
    modbus_flush(state->ctx);
    got = modbus_read_registers(state->ctx, address, count, regs);

    if (got == count) {
        return DRIVER_OK;
    }
    if (got >= 0) {
        snprintf(err, size, "short reply reading %s at register %d (0x%04X): %d of %d registers",
                 block, address, address, got, count);
        return DRIVER_CORRUPT;
    }
    return modbus_failure("reading", block, address, err, size);
}

static int write_control(struct saliva_link *state, uint32_t host_test_id, uint16_t command,
                         char *err, size_t size)
{
    uint16_t regs[SALIVA_CONTROL_COUNT];

    saliva_encode_control(host_test_id, command, regs);
    modbus_flush(state->ctx);
    if (modbus_write_registers(state->ctx, SALIVA_CONTROL_ADDR, SALIVA_CONTROL_COUNT, regs) ==
        SALIVA_CONTROL_COUNT) {
        return DRIVER_OK;
    }
    return modbus_failure("writing", "control block", SALIVA_CONTROL_ADDR, err, size);
}

static int lock_port(struct saliva_link *state, char *err, size_t size)
{
    int fd = modbus_get_socket(state->ctx);

    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        return DRIVER_OK;
    }
    if (errno == EWOULDBLOCK) {
        snprintf(err, size, "port busy: another process holds the lock on %s", state->device);
        return DRIVER_BUSY_PORT;
    }
    snprintf(err, size, "cannot lock %s: %s", state->device, strerror(errno));
    return DRIVER_IO;
}

static void saliva_close(void *opaque)
{
    struct saliva_link *state = opaque;

    if (state == NULL) {
        return;
    }
    if (state->ctx != NULL) {
        modbus_close(state->ctx);
        modbus_free(state->ctx);
    }
    free(state);
}

/* Reports whether path is the slave side of a pseudo-terminal (a simulator). */
static bool is_pty(const char *path)
{
    struct stat info;

    return stat(path, &info) == 0 && S_ISCHR(info.st_mode) &&
           major(info.st_rdev) >= UNIX98_PTY_SLAVE_MAJOR &&
           major(info.st_rdev) < UNIX98_PTY_SLAVE_MAJOR + UNIX98_PTY_MAJOR_COUNT;
}

/* A pty has no parity: Linux clears PARENB, and glibc 2.36's tcsetattr then
 * fails with EINVAL whenever that bit was the only change, as on every
 * reopen. So ptys are opened without parity, which changes nothing on the wire. */
static char line_parity(const struct instrument_config *config)
{
    return is_pty(config->device) ? 'N' : config->parity;
}

static int saliva_open(const struct instrument_config *config, void **out, char *err, size_t size)
{
    struct saliva_link *state = calloc(1, sizeof(*state));

    if (state == NULL) {
        snprintf(err, size, "out of memory");
        return DRIVER_IO;
    }
    snprintf(state->device, sizeof(state->device), "%s", config->device);
    state->ctx = modbus_new_rtu(config->device, config->baud, line_parity(config),
                                config->data_bits, config->stop_bits);
    if (state->ctx == NULL || modbus_set_slave(state->ctx, config->slave) != 0) {
        snprintf(err, size, "invalid serial settings for %s: %s", config->device,
                 modbus_strerror(errno));
        saliva_close(state);
        return DRIVER_IO;
    }
    /* No byte timeout: the response timeout then bounds the whole reply,
     * so a device that trickles bytes cannot hold a request open. */
    modbus_set_response_timeout(state->ctx, (uint32_t)(config->response_timeout_ms / 1000),
                                (uint32_t)(config->response_timeout_ms % 1000) * 1000);
    modbus_set_byte_timeout(state->ctx, 0, 0);
    modbus_set_error_recovery(state->ctx, MODBUS_ERROR_RECOVERY_NONE);
    if (modbus_connect(state->ctx) != 0) {
        snprintf(err, size, "cannot open %s: %s", config->device, modbus_strerror(errno));
        saliva_close(state);
        return DRIVER_IO;
    }
    int status = lock_port(state, err, size);
    if (status != DRIVER_OK) {
        saliva_close(state);
        return status;
    }
    *out = state;
    return DRIVER_OK;
}

static void format_date(uint32_t yyyymmdd, char out[11])
{
    snprintf(out, 11, "%04u-%02u-%02u", yyyymmdd / 10000 % 10000, yyyymmdd / 100 % 100,
             yyyymmdd % 100);
}

static int saliva_identify(void *opaque, struct driver_identity *identity, char *err, size_t size)
{
    struct saliva_link *state = opaque;
    uint16_t regs[SALIVA_ID_COUNT];
    struct saliva_identity id;
    int status =
        read_block(state, "identity block", SALIVA_ID_ADDR, SALIVA_ID_COUNT, regs, err, size);

    if (status != DRIVER_OK) {
        return status;
    }
    saliva_decode_identity(regs, &id);
    if (id.model != SALIVA_MODEL_CODE) {
        snprintf(err, size, "model code 0x%04X at register %d is not a saliva analyzer (0x%04X)",
                 id.model, SALIVA_ID_ADDR + SALIVA_ID_MODEL, SALIVA_MODEL_CODE);
        return DRIVER_WRONG_MODEL;
    }
    memset(identity, 0, sizeof(*identity));
    snprintf(identity->model, sizeof(identity->model), "saliva/%u.%u", id.protocol >> 8,
             id.protocol & 0xff);
    snprintf(identity->serial, sizeof(identity->serial), "%s", id.serial);
    snprintf(identity->firmware, sizeof(identity->firmware), "%s", id.firmware);
    format_date(id.calibration_date, identity->calibration);
    snprintf(identity->cartridge_lot, sizeof(identity->cartridge_lot), "%s", id.cartridge_lot);
    format_date(id.cartridge_expiry, identity->cartridge_expiry);
    return DRIVER_OK;
}

static int saliva_start(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, SALIVA_CMD_START, err, size);
}

static int saliva_poll(void *opaque, struct driver_progress *progress, char *err, size_t size)
{
    struct saliva_link *state = opaque;
    uint16_t regs[SALIVA_STATUS_COUNT];
    struct saliva_status status;
    int rc =
        read_block(state, "status block", SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT, regs, err, size);

    if (rc != DRIVER_OK) {
        return rc;
    }
    saliva_decode_status(regs, &status);
    memset(progress, 0, sizeof(*progress));
    progress->step = saliva_state_name(status.state);
    if (progress->step == NULL) {
        snprintf(err, size, "unknown state %u in status block at register %d", status.state,
                 SALIVA_STATUS_ADDR);
        return DRIVER_CORRUPT;
    }
    progress->percent = status.percent > 100 ? 100 : status.percent;
    progress->seconds_left = status.seconds_left;
    progress->host_test_id = status.host_test_id;
    progress->idle = status.state == SALIVA_IDLE;
    progress->result_ready = status.state == SALIVA_RESULT_READY;
    progress->device_error = status.state == SALIVA_ERROR;
    if (progress->device_error) {
        const char *text = saliva_error_text(status.error_code);
        snprintf(progress->error_text, sizeof(progress->error_text), "device error %u (%s)",
                 status.error_code, text ? text : "unknown");
    }
    return DRIVER_OK;
}

static void convert_analyte(const struct saliva_analyte_result *in, struct driver_analyte *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->analyte, sizeof(out->analyte), "%s", saliva_analyte_name(in->code));
    /* Concentration is ng/mL times SALIVA_CONC_SCALE; micro-units are 1e6. */
    out->value_micro = (int64_t)in->concentration * (1000000 / SALIVA_CONC_SCALE);
    snprintf(out->unit, sizeof(out->unit), "%s", SALIVA_CONC_UNIT);
    out->over_range = in->flags & SALIVA_FLAG_OVER_RANGE;
    out->under_range = in->flags & SALIVA_FLAG_UNDER_RANGE;
    if (!in->control_valid) {
        out->invalid_reason = "control line failed";
    }
}

static int saliva_read_result(void *opaque, uint32_t expected_id, struct driver_result *result,
                              char *err, size_t size)
{
    struct saliva_link *state = opaque;
    uint16_t regs[SALIVA_RESULT_COUNT];
    struct saliva_result raw;
    int status =
        read_block(state, "result block", SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT, regs, err, size);

    if (status != DRIVER_OK) {
        return status;
    }
    if (saliva_decode_result(regs, &raw) != 0) {
        snprintf(err, size,
                 "invalid result block at register %d: panel size or analyte code "
                 "out of range",
                 SALIVA_RESULT_ADDR);
        return DRIVER_CORRUPT;
    }
    if (raw.host_test_id != expected_id) {
        snprintf(err, size, "result at register %d echoes host test ID 0x%08X, expected 0x%08X",
                 SALIVA_RESULT_ADDR, raw.host_test_id, expected_id);
        return DRIVER_MISMATCH;
    }
    memset(result, 0, sizeof(*result));
    result->host_test_id = raw.host_test_id;
    result->sequence = raw.sequence;
    snprintf(result->matrix, sizeof(result->matrix), "oral-fluid");
    snprintf(result->tier, sizeof(result->tier), "screen");
    if (raw.status != SALIVA_RESULT_VALID) {
        result->invalid_reason = saliva_result_status_text(raw.status);
    }
    result->count = raw.panel_size;
    for (size_t i = 0; i < result->count; i++) {
        convert_analyte(&raw.analytes[i], &result->analytes[i]);
    }
    return DRIVER_OK;
}

static int saliva_acknowledge(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, SALIVA_CMD_ACK_RESULT, err, size);
}

static int saliva_abort(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, SALIVA_CMD_ABORT, err, size);
}

const struct driver_ops saliva_driver = {
    .name = "saliva",
    .specimen_matrix = "oral-fluid",
    .open = saliva_open,
    .identify = saliva_identify,
    .start = saliva_start,
    .poll = saliva_poll,
    .read_result = saliva_read_result,
    .acknowledge = saliva_acknowledge,
    .abort = saliva_abort,
    .close = saliva_close,
};
