/* Driver for the evidential breath-alcohol analyzer over Modbus RTU, with
 * libmodbus. The register map is in protocol/breath_map.h; the daemon, not
 * this driver, turns the breath value into a band. */
#include "instruments/driver.h"
#include "instruments/modbus_link.h"
#include "protocol/breath_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_control(struct modbus_link *link, uint32_t host_test_id, uint16_t command,
                         char *err, size_t size)
{
    uint16_t regs[BREATH_CONTROL_COUNT];

    breath_encode_control(host_test_id, command, regs);
    return modbus_link_write(link, "control block", BREATH_CONTROL_ADDR, BREATH_CONTROL_COUNT, regs,
                             err, size);
}

static int breath_identify(void *opaque, struct driver_identity *identity, char *err, size_t size)
{
    uint16_t regs[BREATH_ID_COUNT];
    struct breath_identity id;
    int status = modbus_link_read(opaque, "identity block", BREATH_ID_ADDR, BREATH_ID_COUNT, regs,
                                  err, size);

    if (status != DRIVER_OK) {
        return status;
    }
    breath_decode_identity(regs, &id);
    if (id.model != BREATH_MODEL_CODE) {
        snprintf(err, size, "model code 0x%04X at register %d is not a breath analyzer (0x%04X)",
                 id.model, BREATH_ID_ADDR + BREATH_ID_MODEL, BREATH_MODEL_CODE);
        return DRIVER_WRONG_MODEL;
    }
    memset(identity, 0, sizeof(*identity));
    snprintf(identity->model, sizeof(identity->model), "breath/%u.%u", id.protocol >> 8,
             id.protocol & 0xff);
    snprintf(identity->serial, sizeof(identity->serial), "%s", id.serial);
    snprintf(identity->firmware, sizeof(identity->firmware), "%s", id.firmware);
    driver_format_date(id.calibration_date, identity->calibration);
    driver_format_date(id.calibration_due, identity->calibration_due);
    snprintf(identity->cartridge_lot, sizeof(identity->cartridge_lot), "%s", id.mouthpiece_lot);
    driver_clean_text(identity->serial);
    driver_clean_text(identity->firmware);
    driver_clean_text(identity->cartridge_lot);
    return DRIVER_OK;
}

static int breath_start(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, BREATH_CMD_START, err, size);
}

static const struct driver_status_codes status_codes = {
    .address = BREATH_STATUS_ADDR,
    .idle_state = BREATH_READY,
    .result_state = BREATH_RESULT_READY,
    .error_state = BREATH_ERROR,
    .state_name = breath_state_name,
    .error_text = breath_error_text,
};

static int breath_poll(void *opaque, struct driver_progress *progress, char *err, size_t size)
{
    uint16_t regs[BREATH_STATUS_COUNT];
    struct breath_status status;
    int rc = modbus_link_read(opaque, "status block", BREATH_STATUS_ADDR, BREATH_STATUS_COUNT, regs,
                              err, size);

    if (rc != DRIVER_OK) {
        return rc;
    }
    breath_decode_status(regs, &status);
    struct driver_status_block common = {
        .state = status.state,
        .percent = status.percent,
        .seconds_left = status.seconds_left,
        .error_code = status.error_code,
        .sequence = status.sequence,
        .host_test_id = status.host_test_id,
    };
    return driver_fill_progress(&status_codes, &common, progress, err, size);
}

static int breath_read_result(void *opaque, uint32_t expected_id, struct driver_result *result,
                              char *err, size_t size)
{
    uint16_t regs[BREATH_RESULT_COUNT];
    struct breath_result raw;
    int status = modbus_link_read(opaque, "result block", BREATH_RESULT_ADDR, BREATH_RESULT_COUNT,
                                  regs, err, size);

    if (status != DRIVER_OK) {
        return status;
    }
    if (breath_decode_result(regs, &raw) != 0) {
        snprintf(err, size, "invalid result block at register %d: unknown flag bits 0x%04X",
                 BREATH_RESULT_ADDR, regs[5]);
        return DRIVER_CORRUPT;
    }
    if (raw.host_test_id != expected_id) {
        snprintf(err, size, "result at register %d echoes host test ID 0x%08X, expected 0x%08X",
                 BREATH_RESULT_ADDR, raw.host_test_id, expected_id);
        return DRIVER_MISMATCH;
    }
    memset(result, 0, sizeof(*result));
    result->host_test_id = raw.host_test_id;
    result->sequence = raw.sequence;
    snprintf(result->matrix, sizeof(result->matrix), "breath");
    snprintf(result->tier, sizeof(result->tier), "screen");
    result->invalid_reason = breath_flag_text(raw.flags);
    result->breath.present = true;
    result->breath.raw = raw.alcohol;
    result->breath.flags = raw.flags;
    result->breath.temperature = raw.temperature;
    return DRIVER_OK;
}

static int breath_acknowledge(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, BREATH_CMD_ACK_RESULT, err, size);
}

static int breath_abort(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, BREATH_CMD_ABORT, err, size);
}

const struct driver_ops breath_driver = {
    .name = "breath",
    .specimen_matrix = NULL,
    .refusal_step = "blow-requested",
    .open = modbus_link_new,
    .identify = breath_identify,
    .start = breath_start,
    .poll = breath_poll,
    .read_result = breath_read_result,
    .acknowledge = breath_acknowledge,
    .abort = breath_abort,
    .close = modbus_link_free,
};
