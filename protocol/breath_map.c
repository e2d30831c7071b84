/* Encoding and decoding of the breath-alcohol analyzer's register blocks.
 * The layout of each block is documented in breath_map.h and
 * docs/breath-registers.md. 32-bit values and text use the same register
 * layout as the saliva map, so its packing helpers serve both. */
#include "protocol/breath_map.h"

#include "protocol/saliva_map.h"

/* Status block offsets. */
#define STATUS_STATE 0
#define STATUS_PERCENT 1
#define STATUS_SECONDS_LEFT 2
#define STATUS_ERROR 3
#define STATUS_SEQUENCE 4
#define STATUS_HOST_ID 5

/* Control block offsets. */
#define CONTROL_HOST_ID 0
#define CONTROL_COMMAND (BREATH_COMMAND_ADDR - BREATH_CONTROL_ADDR)

/* Result block offsets. */
#define RESULT_HOST_ID 0
#define RESULT_SEQUENCE 2
#define RESULT_ALCOHOL 3
#define RESULT_FLAGS 5
#define RESULT_TEMPERATURE 6

static const char *const state_names[BREATH_STATE_COUNT] = {
    [BREATH_WARMING_UP] = "warming-up",
    [BREATH_READY] = "ready",
    [BREATH_BLOW_REQUESTED] = "blow-requested",
    [BREATH_BLOWING] = "blowing",
    [BREATH_ANALYSING] = "analysing",
    [BREATH_RESULT_READY] = "result-ready",
    [BREATH_ERROR] = "error",
};

static const char *const error_texts[BREATH_ERR_COUNT] = {
    [BREATH_ERR_NONE] = "none",
    [BREATH_ERR_SENSOR] = "sensor fault",
    [BREATH_ERR_CALIBRATION_DUE] = "calibration due",
    [BREATH_ERR_NOT_READY] = "not ready",
};

/* Flag texts in bit order, which is the order breath_flag_text checks them. */
static const struct {
    uint16_t bit;
    const char *text;
} flag_texts[] = {
    {BREATH_FLAG_INSUFFICIENT_VOLUME, "insufficient volume"},
    {BREATH_FLAG_INTERRUPTED_BLOW, "interrupted blow"},
    {BREATH_FLAG_MOUTH_ALCOHOL, "mouth alcohol detected"},
    {BREATH_FLAG_TEMPERATURE, "temperature out of range"},
};

/* Converts the register's two's complement bits without relying on the
 * implementation-defined conversion of out-of-range values to int16_t. */
static int16_t to_signed(uint16_t value)
{
    return value < 0x8000 ? (int16_t)value : (int16_t)((int32_t)value - 0x10000);
}

void breath_encode_identity(const struct breath_identity *id, uint16_t regs[BREATH_ID_COUNT])
{
    regs[BREATH_ID_MODEL] = id->model;
    regs[BREATH_ID_PROTOCOL] = id->protocol;
    saliva_put_text(regs + BREATH_ID_SERIAL, BREATH_SERIAL_CHARS / 2, id->serial);
    saliva_put_text(regs + BREATH_ID_FIRMWARE, BREATH_FIRMWARE_CHARS / 2, id->firmware);
    saliva_put_u32(regs + BREATH_ID_CALIBRATION, id->calibration_date);
    saliva_put_u32(regs + BREATH_ID_CALIBRATION_DUE, id->calibration_due);
    saliva_put_text(regs + BREATH_ID_MOUTHPIECE_LOT, BREATH_LOT_CHARS / 2, id->mouthpiece_lot);
}

void breath_decode_identity(const uint16_t regs[BREATH_ID_COUNT], struct breath_identity *id)
{
    id->model = regs[BREATH_ID_MODEL];
    id->protocol = regs[BREATH_ID_PROTOCOL];
    saliva_get_text(regs + BREATH_ID_SERIAL, BREATH_SERIAL_CHARS / 2, id->serial);
    saliva_get_text(regs + BREATH_ID_FIRMWARE, BREATH_FIRMWARE_CHARS / 2, id->firmware);
    id->calibration_date = saliva_get_u32(regs + BREATH_ID_CALIBRATION);
    id->calibration_due = saliva_get_u32(regs + BREATH_ID_CALIBRATION_DUE);
    saliva_get_text(regs + BREATH_ID_MOUTHPIECE_LOT, BREATH_LOT_CHARS / 2, id->mouthpiece_lot);
}

void breath_encode_status(const struct breath_status *st, uint16_t regs[BREATH_STATUS_COUNT])
{
    regs[STATUS_STATE] = st->state;
    regs[STATUS_PERCENT] = st->percent;
    regs[STATUS_SECONDS_LEFT] = st->seconds_left;
    regs[STATUS_ERROR] = st->error_code;
    regs[STATUS_SEQUENCE] = st->sequence;
    saliva_put_u32(regs + STATUS_HOST_ID, st->host_test_id);
}

void breath_decode_status(const uint16_t regs[BREATH_STATUS_COUNT], struct breath_status *st)
{
    st->state = regs[STATUS_STATE];
    st->percent = regs[STATUS_PERCENT];
    st->seconds_left = regs[STATUS_SECONDS_LEFT];
    st->error_code = regs[STATUS_ERROR];
    st->sequence = regs[STATUS_SEQUENCE];
    st->host_test_id = saliva_get_u32(regs + STATUS_HOST_ID);
}

void breath_encode_control(uint32_t host_test_id, uint16_t command,
                           uint16_t regs[BREATH_CONTROL_COUNT])
{
    saliva_put_u32(regs + CONTROL_HOST_ID, host_test_id);
    regs[CONTROL_COMMAND] = command;
}

void breath_encode_result(const struct breath_result *res, uint16_t regs[BREATH_RESULT_COUNT])
{
    saliva_put_u32(regs + RESULT_HOST_ID, res->host_test_id);
    regs[RESULT_SEQUENCE] = res->sequence;
    saliva_put_u32(regs + RESULT_ALCOHOL, res->alcohol);
    regs[RESULT_FLAGS] = res->flags;
    regs[RESULT_TEMPERATURE] = (uint16_t)res->temperature;
}

/* Every field is filled even when the flags are rejected, so that a caller
 * can log what the analyzer sent. */
int breath_decode_result(const uint16_t regs[BREATH_RESULT_COUNT], struct breath_result *res)
{
    res->host_test_id = saliva_get_u32(regs + RESULT_HOST_ID);
    res->sequence = regs[RESULT_SEQUENCE];
    res->alcohol = saliva_get_u32(regs + RESULT_ALCOHOL);
    res->flags = regs[RESULT_FLAGS];
    res->temperature = to_signed(regs[RESULT_TEMPERATURE]);
    return (res->flags & ~BREATH_FLAG_MASK) != 0 ? -1 : 0;
}

const char *breath_state_name(uint16_t state)
{
    if (state >= BREATH_STATE_COUNT) {
        return NULL;
    }
    return state_names[state];
}

/* Code 0 (no error) has the text "none" so that logs can print any status. */
const char *breath_error_text(uint16_t code)
{
    if (code >= BREATH_ERR_COUNT) {
        return NULL;
    }
    return error_texts[code];
}

/* Bits outside BREATH_FLAG_MASK have no text, so flags made only of such
 * bits also return NULL. breath_decode_result rejects them, so a decoded
 * result never carries them. */
const char *breath_flag_text(uint16_t flags)
{
    for (size_t i = 0; i < sizeof flag_texts / sizeof flag_texts[0]; i++) {
        if (flags & flag_texts[i].bit) {
            return flag_texts[i].text;
        }
    }
    return NULL;
}
