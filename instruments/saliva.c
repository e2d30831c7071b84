/* Driver for the saliva (oral-fluid) screening analyzer over Modbus RTU,
 * with libmodbus. The register map is in protocol/saliva_map.h. */
#include "instruments/driver.h"
#include "instruments/modbus_link.h"
#include "protocol/saliva_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_control(struct modbus_link *link, uint32_t host_test_id, uint16_t command,
                         char *err, size_t size)
{
    uint16_t regs[SALIVA_CONTROL_COUNT];

    saliva_encode_control(host_test_id, command, regs);
    return modbus_link_write(link, "control block", SALIVA_CONTROL_ADDR, SALIVA_CONTROL_COUNT, regs,
                             err, size);
}

static int saliva_identify(void *opaque, struct driver_identity *identity, char *err, size_t size)
{
    struct modbus_link *state = opaque;
    uint16_t regs[SALIVA_ID_COUNT];
    struct saliva_identity id;
    int status =
        modbus_link_read(state, "identity block", SALIVA_ID_ADDR, SALIVA_ID_COUNT, regs, err, size);

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
    driver_clean_text(identity->serial);
    driver_clean_text(identity->firmware);
    driver_format_date(id.calibration_date, identity->calibration);
    snprintf(identity->cartridge_lot, sizeof(identity->cartridge_lot), "%s", id.cartridge_lot);
    driver_clean_text(identity->cartridge_lot);
    driver_format_date(id.cartridge_expiry, identity->cartridge_expiry);
    return DRIVER_OK;
}

static int saliva_start(void *opaque, uint32_t host_test_id, char *err, size_t size)
{
    return write_control(opaque, host_test_id, SALIVA_CMD_START, err, size);
}

static const struct driver_status_codes status_codes = {
    .address = SALIVA_STATUS_ADDR,
    .idle_state = SALIVA_IDLE,
    .result_state = SALIVA_RESULT_READY,
    .error_state = SALIVA_ERROR,
    .state_name = saliva_state_name,
    .error_text = saliva_error_text,
};

static int saliva_poll(void *opaque, struct driver_progress *progress, char *err, size_t size)
{
    uint16_t regs[SALIVA_STATUS_COUNT];
    struct saliva_status status;
    int rc = modbus_link_read(opaque, "status block", SALIVA_STATUS_ADDR, SALIVA_STATUS_COUNT, regs,
                              err, size);

    if (rc != DRIVER_OK) {
        return rc;
    }
    saliva_decode_status(regs, &status);
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

/* Rejects result blocks that no analyzer should send: an unknown status,
 * an empty panel, an analyte twice, or flags that are unknown or
 * contradict each other. */
static int check_panel(const struct saliva_result *raw, char *err, size_t size)
{
    const uint16_t known_flags = SALIVA_FLAG_OVER_RANGE | SALIVA_FLAG_UNDER_RANGE;

    if (raw->status >= SALIVA_RESULT_STATUS_COUNT) {
        snprintf(err, size, "invalid result block at register %d: unknown result status %u",
                 SALIVA_RESULT_ADDR, raw->status);
        return DRIVER_CORRUPT;
    }
    if (raw->panel_size == 0) {
        snprintf(err, size, "invalid result block at register %d: empty panel", SALIVA_RESULT_ADDR);
        return DRIVER_CORRUPT;
    }
    for (size_t i = 0; i < raw->panel_size; i++) {
        const struct saliva_analyte_result *item = &raw->analytes[i];
        if ((item->flags & ~known_flags) != 0 || item->flags == known_flags) {
            snprintf(err, size, "invalid result block at register %d: flags 0x%04X of %s",
                     SALIVA_RESULT_ADDR, item->flags, saliva_analyte_name(item->code));
            return DRIVER_CORRUPT;
        }
        for (size_t j = 0; j < i; j++) {
            if (raw->analytes[j].code == item->code) {
                snprintf(err, size, "invalid result block at register %d: %s appears twice",
                         SALIVA_RESULT_ADDR, saliva_analyte_name(item->code));
                return DRIVER_CORRUPT;
            }
        }
    }
    return DRIVER_OK;
}

static int saliva_read_result(void *opaque, uint32_t expected_id, struct driver_result *result,
                              char *err, size_t size)
{
    struct modbus_link *state = opaque;
    uint16_t regs[SALIVA_RESULT_COUNT];
    struct saliva_result raw;
    int status = modbus_link_read(state, "result block", SALIVA_RESULT_ADDR, SALIVA_RESULT_COUNT,
                                  regs, err, size);

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
    status = check_panel(&raw, err, size);
    if (status != DRIVER_OK) {
        return status;
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
    .open = modbus_link_new,
    .identify = saliva_identify,
    .start = saliva_start,
    .poll = saliva_poll,
    .read_result = saliva_read_result,
    .acknowledge = saliva_acknowledge,
    .abort = saliva_abort,
    .close = modbus_link_free,
};
