/* Register map of the saliva (oral-fluid) screening analyzer, Modbus RTU.
 *
 * All blocks are holding registers (read with function 3, written with 16).
 * 32-bit values span two registers, high word first. Text is ASCII, two
 * characters a register, first character in the high byte, padded with NUL.
 * docs/saliva-registers.md documents the same map for third-party tools. */
#ifndef TOXLAB_SALIVA_MAP_H
#define TOXLAB_SALIVA_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SALIVA_MODEL_CODE 0x5341 /* "SA" */
#define SALIVA_PROTOCOL_VERSION 0x0100

/* Identity block: read once after connecting. */
#define SALIVA_ID_ADDR 0
#define SALIVA_ID_COUNT 24
#define SALIVA_ID_MODEL 0           /* model code */
#define SALIVA_ID_PROTOCOL 1        /* protocol version, major in the high byte */
#define SALIVA_ID_SERIAL 2          /* 8 registers, 16 characters */
#define SALIVA_ID_FIRMWARE 10       /* 4 registers, 8 characters, e.g. "2.1.0" */
#define SALIVA_ID_CALIBRATION 14    /* 32-bit date as YYYYMMDD */
#define SALIVA_ID_CARTRIDGE_LOT 16  /* 6 registers, 12 characters */
#define SALIVA_ID_CARTRIDGE_EXPIRY 22 /* 32-bit date as YYYYMMDD */
#define SALIVA_SERIAL_CHARS 16
#define SALIVA_FIRMWARE_CHARS 8
#define SALIVA_LOT_CHARS 12

/* Status block: read on every poll. */
#define SALIVA_STATUS_ADDR 100
#define SALIVA_STATUS_COUNT 7
/* Offsets: state, percent, seconds left, error code, result sequence number,
 * host test ID of the current test (32-bit). */

/* Control block: host test ID (32-bit) then the command, written together. */
#define SALIVA_CONTROL_ADDR 200
#define SALIVA_CONTROL_COUNT 3
#define SALIVA_COMMAND_ADDR 202

/* Result block: read once the state is result-ready. */
#define SALIVA_RESULT_ADDR 300
#define SALIVA_RESULT_HEADER 5
#define SALIVA_ANALYTE_WORDS 5
#define SALIVA_MAX_PANEL 12
#define SALIVA_RESULT_COUNT (SALIVA_RESULT_HEADER + SALIVA_MAX_PANEL * SALIVA_ANALYTE_WORDS)

/* Concentrations are ng/mL times SALIVA_CONC_SCALE. */
#define SALIVA_CONC_SCALE 1000
#define SALIVA_CONC_UNIT "ng/mL"

enum saliva_state {
    SALIVA_IDLE = 0,
    SALIVA_CARTRIDGE_IN = 1,
    SALIVA_COLLECTING = 2,
    SALIVA_ANALYSING = 3,
    SALIVA_RESULT_READY = 4,
    SALIVA_ERROR = 5,
};

enum saliva_command {
    SALIVA_CMD_NONE = 0,
    SALIVA_CMD_START = 1,
    SALIVA_CMD_ABORT = 2,
    SALIVA_CMD_ACK_RESULT = 3,
    SALIVA_CMD_SELF_TEST = 4,
};

/* Device error codes, in the status block while the state is error. */
enum saliva_error {
    SALIVA_ERR_NONE = 0,
    SALIVA_ERR_INSUFFICIENT_SAMPLE = 1,
    SALIVA_ERR_CARTRIDGE_EXPIRED = 2,
    SALIVA_ERR_CARTRIDGE_USED = 3,
    SALIVA_ERR_TEMPERATURE = 4,
    SALIVA_ERR_BUSY = 5,
    SALIVA_ERR_COUNT
};

/* Result status: a whole-panel reason why the result cannot be read. */
enum saliva_result_status {
    SALIVA_RESULT_VALID = 0,
    SALIVA_RESULT_CONTROL_FAILED = 1,
    SALIVA_RESULT_CARTRIDGE_EXPIRED = 2,
    SALIVA_RESULT_STATUS_COUNT
};

/* Per-analyte flags. */
#define SALIVA_FLAG_OVER_RANGE 0x0001
#define SALIVA_FLAG_UNDER_RANGE 0x0002

/* Analyte codes on the wire. The names match the threshold file. */
enum saliva_analyte {
    SALIVA_THC = 1,
    SALIVA_AMPHETAMINE = 2,
    SALIVA_METHAMPHETAMINE = 3,
    SALIVA_MDMA = 4,
    SALIVA_MDA = 5,
    SALIVA_COCAINE = 6,
    SALIVA_BENZOYLECGONINE = 7,
    SALIVA_CODEINE = 8,
    SALIVA_MORPHINE = 9,
    SALIVA_6MAM = 10,
    SALIVA_KETAMINE = 11,
    SALIVA_ANALYTE_LIMIT
};

struct saliva_identity {
    uint16_t model;
    uint16_t protocol;
    char serial[SALIVA_SERIAL_CHARS + 1];
    char firmware[SALIVA_FIRMWARE_CHARS + 1];
    uint32_t calibration_date; /* YYYYMMDD */
    char cartridge_lot[SALIVA_LOT_CHARS + 1];
    uint32_t cartridge_expiry; /* YYYYMMDD */
};

struct saliva_status {
    uint16_t state;
    uint16_t percent;
    uint16_t seconds_left;
    uint16_t error_code;
    uint16_t sequence;
    uint32_t host_test_id;
};

struct saliva_analyte_result {
    uint16_t code;
    uint32_t concentration; /* ng/mL times SALIVA_CONC_SCALE */
    bool control_valid;
    uint16_t flags;
};

struct saliva_result {
    uint32_t host_test_id;
    uint16_t sequence;
    uint16_t panel_size;
    uint16_t status; /* enum saliva_result_status */
    struct saliva_analyte_result analytes[SALIVA_MAX_PANEL];
};

/* Splits and joins 32-bit values across two registers, high word first. */
uint32_t saliva_get_u32(const uint16_t *regs);
void saliva_put_u32(uint16_t *regs, uint32_t value);

/* Packs text into registers (NUL padded) and unpacks it (NUL terminated,
 * trailing spaces and NULs dropped). `out` has room for count * 2 + 1 bytes. */
void saliva_put_text(uint16_t *regs, size_t count, const char *text);
void saliva_get_text(const uint16_t *regs, size_t count, char *out);

void saliva_encode_identity(const struct saliva_identity *id, uint16_t regs[SALIVA_ID_COUNT]);
void saliva_decode_identity(const uint16_t regs[SALIVA_ID_COUNT], struct saliva_identity *id);
void saliva_encode_status(const struct saliva_status *st, uint16_t regs[SALIVA_STATUS_COUNT]);
void saliva_decode_status(const uint16_t regs[SALIVA_STATUS_COUNT], struct saliva_status *st);
void saliva_encode_control(uint32_t host_test_id, uint16_t command,
                           uint16_t regs[SALIVA_CONTROL_COUNT]);
void saliva_encode_result(const struct saliva_result *res, uint16_t regs[SALIVA_RESULT_COUNT]);

/* Decodes a result block. Returns 0, or -1 when the panel size is over
 * SALIVA_MAX_PANEL or an analyte code is unknown. */
int saliva_decode_result(const uint16_t regs[SALIVA_RESULT_COUNT], struct saliva_result *res);

/* Names for logs, messages and the threshold file; NULL for unknown codes. */
const char *saliva_analyte_name(uint16_t code);
int saliva_analyte_code(const char *name); /* 0 when unknown */
const char *saliva_state_name(uint16_t state);
const char *saliva_error_text(uint16_t code);
const char *saliva_result_status_text(uint16_t status);

#endif
