/* Modbus RTU framing for a slave: CRC-16, request length detection, request
 * parsing and reply building. Frame layouts follow the Modbus Application
 * Protocol Specification V1.1b3 and the Modbus over Serial Line
 * Specification V1.02. */
#include "protocol/rtu.h"

#include <stdbool.h>

/* Bytes of the fixed part of a function 16 request before the values:
 * slave, function, address (2), count (2), byte count. */
#define WRITE_MULTIPLE_HEADER 7
#define CRC_BYTES 2

uint16_t rtu_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFF;

    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) {
            if (crc & 1) {
                crc = (uint16_t)((crc >> 1) ^ 0xA001);
            } else {
                crc >>= 1;
            }
        }
    }
    return crc;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint8_t *put_u16(uint8_t *p, uint16_t value)
{
    p[0] = (uint8_t)(value >> 8);
    p[1] = (uint8_t)(value & 0xFF);
    return p + 2;
}

/* Appends the CRC (low byte first) after len bytes and returns the frame length. */
static size_t finish_frame(uint8_t *out, size_t len)
{
    uint16_t crc = rtu_crc16(out, len);

    out[len] = (uint8_t)(crc & 0xFF);
    out[len + 1] = (uint8_t)(crc >> 8);
    return len + CRC_BYTES;
}

/* A declared function 16 length over RTU_MAX_FRAME also returns -1, because
 * such a frame cannot be valid. The caller treats it like an unknown function. */
int rtu_request_length(const uint8_t *buf, size_t len)
{
    if (len < 2) {
        return 0;
    }

    switch (buf[1]) {
    case RTU_FC_READ_HOLDING:
    case RTU_FC_READ_INPUT:
    case RTU_FC_WRITE_SINGLE:
        return 8;
    case RTU_FC_WRITE_MULTIPLE: {
        if (len < WRITE_MULTIPLE_HEADER) {
            return 0;
        }

        int total = WRITE_MULTIPLE_HEADER + buf[6] + CRC_BYTES;
        if (total > RTU_MAX_FRAME) {
            return -1;
        }
        return total;
    }
    default:
        return -1;
    }
}

static bool crc_matches(const uint8_t *frame, size_t len)
{
    uint16_t expected = rtu_crc16(frame, len - CRC_BYTES);
    uint16_t received = (uint16_t)(frame[len - 2] | (frame[len - 1] << 8));

    return expected == received;
}

static enum rtu_parse_status parse_read(const uint8_t *frame, size_t len, struct rtu_request *req)
{
    if (len != 8) {
        return RTU_BAD_LENGTH;
    }

    req->address = get_u16(frame + 2);
    req->count = get_u16(frame + 4);
    if (req->count < 1 || req->count > RTU_MAX_READ_REGISTERS) {
        return RTU_BAD_VALUE;
    }
    return RTU_OK;
}

static enum rtu_parse_status parse_write_single(const uint8_t *frame, size_t len,
                                                struct rtu_request *req)
{
    if (len != 8) {
        return RTU_BAD_LENGTH;
    }

    req->address = get_u16(frame + 2);
    req->count = 1;
    req->values[0] = get_u16(frame + 4);
    return RTU_OK;
}

static enum rtu_parse_status parse_write_multiple(const uint8_t *frame, size_t len,
                                                  struct rtu_request *req)
{
    if (len < WRITE_MULTIPLE_HEADER + CRC_BYTES) {
        return RTU_BAD_LENGTH;
    }

    size_t byte_count = frame[6];
    if (len != WRITE_MULTIPLE_HEADER + byte_count + CRC_BYTES) {
        return RTU_BAD_LENGTH;
    }

    req->address = get_u16(frame + 2);
    req->count = get_u16(frame + 4);
    if (req->count < 1 || req->count > RTU_MAX_WRITE_REGISTERS) {
        return RTU_BAD_VALUE;
    }
    if (byte_count != (size_t)req->count * 2) {
        return RTU_BAD_VALUE;
    }

    for (uint16_t i = 0; i < req->count; i++) {
        req->values[i] = get_u16(frame + WRITE_MULTIPLE_HEADER + 2 * i);
    }
    return RTU_OK;
}

/* The CRC is checked before anything else, so a frame that fails it leaves
 * req untouched. Otherwise slave and function are set even when the result
 * is RTU_BAD_FUNCTION or RTU_BAD_VALUE, so the caller can address the
 * exception reply. */
enum rtu_parse_status rtu_parse_request(const uint8_t *frame, size_t len, struct rtu_request *req)
{
    /* The shortest frame is slave, function and CRC. */
    if (len < 2 + CRC_BYTES || len > RTU_MAX_FRAME) {
        return RTU_BAD_LENGTH;
    }
    if (!crc_matches(frame, len)) {
        return RTU_BAD_CRC;
    }

    req->slave = frame[0];
    req->function = frame[1];
    req->address = 0;
    req->count = 0;

    switch (req->function) {
    case RTU_FC_READ_HOLDING:
    case RTU_FC_READ_INPUT:
        return parse_read(frame, len, req);
    case RTU_FC_WRITE_SINGLE:
        return parse_write_single(frame, len, req);
    case RTU_FC_WRITE_MULTIPLE:
        return parse_write_multiple(frame, len, req);
    default:
        return RTU_BAD_FUNCTION;
    }
}

/* Returns 0 without writing when count is 0 or over RTU_MAX_READ_REGISTERS,
 * because such a reply does not fit a frame. */
size_t rtu_build_read_reply(uint8_t slave, uint8_t function, const uint16_t *values, uint16_t count,
                            uint8_t *out)
{
    if (count < 1 || count > RTU_MAX_READ_REGISTERS) {
        return 0;
    }

    out[0] = slave;
    out[1] = function;
    out[2] = (uint8_t)(count * 2);

    uint8_t *p = out + 3;
    for (uint16_t i = 0; i < count; i++) {
        p = put_u16(p, values[i]);
    }
    return finish_frame(out, (size_t)(p - out));
}

size_t rtu_build_write_single_reply(uint8_t slave, uint16_t address, uint16_t value, uint8_t *out)
{
    out[0] = slave;
    out[1] = RTU_FC_WRITE_SINGLE;
    put_u16(out + 2, address);
    put_u16(out + 4, value);
    return finish_frame(out, 6);
}

size_t rtu_build_write_multiple_reply(uint8_t slave, uint16_t address, uint16_t count, uint8_t *out)
{
    out[0] = slave;
    out[1] = RTU_FC_WRITE_MULTIPLE;
    put_u16(out + 2, address);
    put_u16(out + 4, count);
    return finish_frame(out, 6);
}

size_t rtu_build_exception(uint8_t slave, uint8_t function, uint8_t code, uint8_t *out)
{
    out[0] = slave;
    out[1] = (uint8_t)(function | 0x80);
    out[2] = code;
    return finish_frame(out, 3);
}

size_t rtu_build_read_request(uint8_t slave, uint8_t function, uint16_t address, uint16_t count,
                              uint8_t *out)
{
    out[0] = slave;
    out[1] = function;
    put_u16(out + 2, address);
    put_u16(out + 4, count);
    return finish_frame(out, 6);
}

/* Returns 0 without writing when count is 0 or over RTU_MAX_WRITE_REGISTERS. */
size_t rtu_build_write_multiple_request(uint8_t slave, uint16_t address, const uint16_t *values,
                                        uint16_t count, uint8_t *out)
{
    if (count < 1 || count > RTU_MAX_WRITE_REGISTERS) {
        return 0;
    }

    out[0] = slave;
    out[1] = RTU_FC_WRITE_MULTIPLE;
    put_u16(out + 2, address);
    put_u16(out + 4, count);
    out[6] = (uint8_t)(count * 2);

    uint8_t *p = out + WRITE_MULTIPLE_HEADER;
    for (uint16_t i = 0; i < count; i++) {
        p = put_u16(p, values[i]);
    }
    return finish_frame(out, (size_t)(p - out));
}
