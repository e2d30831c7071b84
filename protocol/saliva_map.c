/* Encoding and decoding of the saliva analyzer's register blocks. The layout
 * of each block is documented in saliva_map.h and docs/saliva-registers.md. */
#include "protocol/saliva_map.h"

#include <string.h>

/* Status block offsets. */
#define STATUS_STATE 0
#define STATUS_PERCENT 1
#define STATUS_SECONDS_LEFT 2
#define STATUS_ERROR 3
#define STATUS_SEQUENCE 4
#define STATUS_HOST_ID 5

/* Result block header offsets, then the analyte entries from RESULT_PANEL. */
#define RESULT_HOST_ID 0
#define RESULT_SEQUENCE 2
#define RESULT_PANEL_SIZE 3
#define RESULT_STATUS 4
#define RESULT_PANEL SALIVA_RESULT_HEADER

/* Offsets inside one analyte entry. */
#define ANALYTE_CODE 0
#define ANALYTE_CONCENTRATION 1
#define ANALYTE_CONTROL 3
#define ANALYTE_FLAGS 4

static const char *const analyte_names[SALIVA_ANALYTE_LIMIT] = {
    [SALIVA_THC] = "thc",
    [SALIVA_AMPHETAMINE] = "amphetamine",
    [SALIVA_METHAMPHETAMINE] = "methamphetamine",
    [SALIVA_MDMA] = "mdma",
    [SALIVA_MDA] = "mda",
    [SALIVA_COCAINE] = "cocaine",
    [SALIVA_BENZOYLECGONINE] = "benzoylecgonine",
    [SALIVA_CODEINE] = "codeine",
    [SALIVA_MORPHINE] = "morphine",
    [SALIVA_6MAM] = "6-mam",
    [SALIVA_KETAMINE] = "ketamine",
};

static const char *const state_names[] = {
    [SALIVA_IDLE] = "idle",
    [SALIVA_CARTRIDGE_IN] = "cartridge-in",
    [SALIVA_COLLECTING] = "collecting",
    [SALIVA_ANALYSING] = "analysing",
    [SALIVA_RESULT_READY] = "result-ready",
    [SALIVA_ERROR] = "error",
};

static const char *const error_texts[SALIVA_ERR_COUNT] = {
    [SALIVA_ERR_NONE] = "none",
    [SALIVA_ERR_INSUFFICIENT_SAMPLE] = "insufficient sample",
    [SALIVA_ERR_CARTRIDGE_EXPIRED] = "cartridge expired",
    [SALIVA_ERR_CARTRIDGE_USED] = "cartridge used",
    [SALIVA_ERR_TEMPERATURE] = "temperature out of range",
    [SALIVA_ERR_BUSY] = "busy",
};

static const char *const result_status_texts[SALIVA_RESULT_STATUS_COUNT] = {
    [SALIVA_RESULT_VALID] = "valid",
    [SALIVA_RESULT_CONTROL_FAILED] = "control line failed",
    [SALIVA_RESULT_CARTRIDGE_EXPIRED] = "cartridge expired",
};

uint32_t saliva_get_u32(const uint16_t *regs)
{
    return ((uint32_t)regs[0] << 16) | regs[1];
}

void saliva_put_u32(uint16_t *regs, uint32_t value)
{
    regs[0] = (uint16_t)(value >> 16);
    regs[1] = (uint16_t)(value & 0xFFFF);
}

/* Text longer than count * 2 characters is cut to fit. */
void saliva_put_text(uint16_t *regs, size_t count, const char *text)
{
    size_t len = strnlen(text, count * 2);

    for (size_t i = 0; i < count; i++) {
        uint8_t high = 2 * i < len ? (uint8_t)text[2 * i] : 0;
        uint8_t low = 2 * i + 1 < len ? (uint8_t)text[2 * i + 1] : 0;

        regs[i] = (uint16_t)((high << 8) | low);
    }
}

void saliva_get_text(const uint16_t *regs, size_t count, char *out)
{
    for (size_t i = 0; i < count; i++) {
        out[2 * i] = (char)(regs[i] >> 8);
        out[2 * i + 1] = (char)(regs[i] & 0xFF);
    }
    out[count * 2] = '\0';

    /* The text ends at the first NUL, and trailing spaces are padding too. */
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == ' ') {
        len--;
    }
    out[len] = '\0';
}

void saliva_encode_identity(const struct saliva_identity *id, uint16_t regs[SALIVA_ID_COUNT])
{
    regs[SALIVA_ID_MODEL] = id->model;
    regs[SALIVA_ID_PROTOCOL] = id->protocol;
    saliva_put_text(regs + SALIVA_ID_SERIAL, SALIVA_SERIAL_CHARS / 2, id->serial);
    saliva_put_text(regs + SALIVA_ID_FIRMWARE, SALIVA_FIRMWARE_CHARS / 2, id->firmware);
    saliva_put_u32(regs + SALIVA_ID_CALIBRATION, id->calibration_date);
    saliva_put_text(regs + SALIVA_ID_CARTRIDGE_LOT, SALIVA_LOT_CHARS / 2, id->cartridge_lot);
    saliva_put_u32(regs + SALIVA_ID_CARTRIDGE_EXPIRY, id->cartridge_expiry);
}

void saliva_decode_identity(const uint16_t regs[SALIVA_ID_COUNT], struct saliva_identity *id)
{
    id->model = regs[SALIVA_ID_MODEL];
    id->protocol = regs[SALIVA_ID_PROTOCOL];
    saliva_get_text(regs + SALIVA_ID_SERIAL, SALIVA_SERIAL_CHARS / 2, id->serial);
    saliva_get_text(regs + SALIVA_ID_FIRMWARE, SALIVA_FIRMWARE_CHARS / 2, id->firmware);
    id->calibration_date = saliva_get_u32(regs + SALIVA_ID_CALIBRATION);
    saliva_get_text(regs + SALIVA_ID_CARTRIDGE_LOT, SALIVA_LOT_CHARS / 2, id->cartridge_lot);
    id->cartridge_expiry = saliva_get_u32(regs + SALIVA_ID_CARTRIDGE_EXPIRY);
}

void saliva_encode_status(const struct saliva_status *st, uint16_t regs[SALIVA_STATUS_COUNT])
{
    regs[STATUS_STATE] = st->state;
    regs[STATUS_PERCENT] = st->percent;
    regs[STATUS_SECONDS_LEFT] = st->seconds_left;
    regs[STATUS_ERROR] = st->error_code;
    regs[STATUS_SEQUENCE] = st->sequence;
    saliva_put_u32(regs + STATUS_HOST_ID, st->host_test_id);
}

void saliva_decode_status(const uint16_t regs[SALIVA_STATUS_COUNT], struct saliva_status *st)
{
    st->state = regs[STATUS_STATE];
    st->percent = regs[STATUS_PERCENT];
    st->seconds_left = regs[STATUS_SECONDS_LEFT];
    st->error_code = regs[STATUS_ERROR];
    st->sequence = regs[STATUS_SEQUENCE];
    st->host_test_id = saliva_get_u32(regs + STATUS_HOST_ID);
}

void saliva_encode_control(uint32_t host_test_id, uint16_t command,
                           uint16_t regs[SALIVA_CONTROL_COUNT])
{
    saliva_put_u32(regs, host_test_id);
    regs[2] = command;
}

/* Entries past panel_size are written as zeros. */
void saliva_encode_result(const struct saliva_result *res, uint16_t regs[SALIVA_RESULT_COUNT])
{
    memset(regs, 0, SALIVA_RESULT_COUNT * sizeof regs[0]);
    saliva_put_u32(regs + RESULT_HOST_ID, res->host_test_id);
    regs[RESULT_SEQUENCE] = res->sequence;
    regs[RESULT_PANEL_SIZE] = res->panel_size;
    regs[RESULT_STATUS] = res->status;

    size_t panel = res->panel_size <= SALIVA_MAX_PANEL ? res->panel_size : SALIVA_MAX_PANEL;
    for (size_t i = 0; i < panel; i++) {
        const struct saliva_analyte_result *a = &res->analytes[i];
        uint16_t *entry = regs + RESULT_PANEL + i * SALIVA_ANALYTE_WORDS;

        entry[ANALYTE_CODE] = a->code;
        saliva_put_u32(entry + ANALYTE_CONCENTRATION, a->concentration);
        entry[ANALYTE_CONTROL] = a->control_valid ? 1 : 0;
        entry[ANALYTE_FLAGS] = a->flags;
    }
}

/* The control register reads 1 when the analyte's control line is valid.
 * Any other value decodes as not valid, so that a damaged register never
 * passes as a valid control. Entries past panel_size are zeroed in res. */
int saliva_decode_result(const uint16_t regs[SALIVA_RESULT_COUNT], struct saliva_result *res)
{
    memset(res, 0, sizeof *res);
    res->host_test_id = saliva_get_u32(regs + RESULT_HOST_ID);
    res->sequence = regs[RESULT_SEQUENCE];
    res->panel_size = regs[RESULT_PANEL_SIZE];
    res->status = regs[RESULT_STATUS];
    if (res->panel_size > SALIVA_MAX_PANEL) {
        return -1;
    }

    for (size_t i = 0; i < res->panel_size; i++) {
        const uint16_t *entry = regs + RESULT_PANEL + i * SALIVA_ANALYTE_WORDS;
        struct saliva_analyte_result *a = &res->analytes[i];

        a->code = entry[ANALYTE_CODE];
        if (saliva_analyte_name(a->code) == NULL) {
            return -1;
        }
        a->concentration = saliva_get_u32(entry + ANALYTE_CONCENTRATION);
        a->control_valid = entry[ANALYTE_CONTROL] == 1;
        a->flags = entry[ANALYTE_FLAGS];
    }
    return 0;
}

const char *saliva_analyte_name(uint16_t code)
{
    if (code >= SALIVA_ANALYTE_LIMIT) {
        return NULL;
    }
    return analyte_names[code];
}

/* Names match exactly, case included, as the threshold file spells them. */
int saliva_analyte_code(const char *name)
{
    if (name == NULL) {
        return 0;
    }

    for (int code = 1; code < SALIVA_ANALYTE_LIMIT; code++) {
        if (strcmp(analyte_names[code], name) == 0) {
            return code;
        }
    }
    return 0;
}

const char *saliva_state_name(uint16_t state)
{
    if (state >= sizeof state_names / sizeof state_names[0]) {
        return NULL;
    }
    return state_names[state];
}

/* Code 0 (no error) has the text "none" so that logs can print any status. */
const char *saliva_error_text(uint16_t code)
{
    if (code >= SALIVA_ERR_COUNT) {
        return NULL;
    }
    return error_texts[code];
}

const char *saliva_result_status_text(uint16_t status)
{
    if (status >= SALIVA_RESULT_STATUS_COUNT) {
        return NULL;
    }
    return result_status_texts[status];
}
