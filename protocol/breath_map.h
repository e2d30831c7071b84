/* Register map of the evidential breath-alcohol analyzer, Modbus RTU.
 *
 * All blocks are holding registers (read with function 3, written with 16).
 * 32-bit values span two registers, high word first; text is ASCII, two
 * characters a register, first character in the high byte, NUL padded, as
 * in the saliva map. docs/breath-registers.md documents the same map. */
#ifndef TOXLAB_BREATH_MAP_H
#define TOXLAB_BREATH_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BREATH_MODEL_CODE 0x4241 /* "BA" */
#define BREATH_PROTOCOL_VERSION 0x0100

/* Identity block: read once after connecting. */
#define BREATH_ID_ADDR 0
#define BREATH_ID_COUNT 24
#define BREATH_ID_MODEL 0            /* model code */
#define BREATH_ID_PROTOCOL 1         /* protocol version, major in the high byte */
#define BREATH_ID_SERIAL 2           /* 8 registers, 16 characters */
#define BREATH_ID_FIRMWARE 10        /* 4 registers, 8 characters */
#define BREATH_ID_CALIBRATION 14     /* 32-bit date of the last calibration, YYYYMMDD */
#define BREATH_ID_CALIBRATION_DUE 16 /* 32-bit date the next calibration is due, YYYYMMDD */
#define BREATH_ID_MOUTHPIECE_LOT 18  /* 6 registers, 12 characters */
#define BREATH_SERIAL_CHARS 16
#define BREATH_FIRMWARE_CHARS 8
#define BREATH_LOT_CHARS 12

/* Status block: read on every poll. Offsets: state, percent, seconds left,
 * error code, result sequence number, host test ID (32-bit). */
#define BREATH_STATUS_ADDR 100
#define BREATH_STATUS_COUNT 7

/* Control block: host test ID (32-bit) then the command, written together. */
#define BREATH_CONTROL_ADDR 200
#define BREATH_CONTROL_COUNT 3
#define BREATH_COMMAND_ADDR 202

/* Result block: read once the state is result-ready. Offsets: host test ID
 * (32-bit), sequence number, breath alcohol (32-bit, in units of 0.1 ug/L),
 * flags, ambient temperature (signed, 0.1 degC). */
#define BREATH_RESULT_ADDR 300
#define BREATH_RESULT_COUNT 7

/* Breath alcohol travels in units of 0.1 ug/L. */
#define BREATH_ALCOHOL_SCALE 10

enum breath_state {
    BREATH_WARMING_UP = 0,
    BREATH_READY = 1,
    BREATH_BLOW_REQUESTED = 2,
    BREATH_BLOWING = 3,
    BREATH_ANALYSING = 4,
    BREATH_RESULT_READY = 5,
    BREATH_ERROR = 6,
    BREATH_STATE_COUNT
};

enum breath_command {
    BREATH_CMD_NONE = 0,
    BREATH_CMD_START = 1,
    BREATH_CMD_ABORT = 2,
    BREATH_CMD_ACK_RESULT = 3,
};

/* Device error codes, in the status block while the state is error. */
enum breath_error {
    BREATH_ERR_NONE = 0,
    BREATH_ERR_SENSOR = 1,
    BREATH_ERR_CALIBRATION_DUE = 2,
    BREATH_ERR_NOT_READY = 3,
    BREATH_ERR_COUNT
};

/* Result flags: any of them makes the measurement invalid. */
#define BREATH_FLAG_INSUFFICIENT_VOLUME 0x0001
#define BREATH_FLAG_INTERRUPTED_BLOW 0x0002
#define BREATH_FLAG_MOUTH_ALCOHOL 0x0004
#define BREATH_FLAG_TEMPERATURE 0x0008
#define BREATH_FLAG_MASK 0x000F

struct breath_identity {
    uint16_t model;
    uint16_t protocol;
    char serial[BREATH_SERIAL_CHARS + 1];
    char firmware[BREATH_FIRMWARE_CHARS + 1];
    uint32_t calibration_date; /* YYYYMMDD */
    uint32_t calibration_due;  /* YYYYMMDD */
    char mouthpiece_lot[BREATH_LOT_CHARS + 1];
};

struct breath_status {
    uint16_t state;
    uint16_t percent;
    uint16_t seconds_left;
    uint16_t error_code;
    uint16_t sequence;
    uint32_t host_test_id;
};

struct breath_result {
    uint32_t host_test_id;
    uint16_t sequence;
    uint32_t alcohol; /* 0.1 ug/L */
    uint16_t flags;
    int16_t temperature; /* 0.1 degC */
};

void breath_encode_identity(const struct breath_identity *id, uint16_t regs[BREATH_ID_COUNT]);
void breath_decode_identity(const uint16_t regs[BREATH_ID_COUNT], struct breath_identity *id);
void breath_encode_status(const struct breath_status *st, uint16_t regs[BREATH_STATUS_COUNT]);
void breath_decode_status(const uint16_t regs[BREATH_STATUS_COUNT], struct breath_status *st);
void breath_encode_control(uint32_t host_test_id, uint16_t command,
                           uint16_t regs[BREATH_CONTROL_COUNT]);
void breath_encode_result(const struct breath_result *res, uint16_t regs[BREATH_RESULT_COUNT]);

/* Decodes a result block. Returns 0, or -1 when flags has bits outside
 * BREATH_FLAG_MASK. */
int breath_decode_result(const uint16_t regs[BREATH_RESULT_COUNT], struct breath_result *res);

/* Names for logs and messages; NULL for unknown codes. */
const char *breath_state_name(uint16_t state); /* "warming-up", "ready", "blow-requested", ... */
const char *breath_error_text(uint16_t code);  /* "none", "sensor fault", ... */

/* Returns the text of the first flag set ("insufficient volume",
 * "interrupted blow", "mouth alcohol detected", "temperature out of
 * range"), or NULL when no flag is set. */
const char *breath_flag_text(uint16_t flags);

#endif
