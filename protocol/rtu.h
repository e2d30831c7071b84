/* Modbus RTU framing: CRC-16 and the request and reply frames that a slave
 * (the simulator) parses and builds. No I/O. */
#ifndef TOXLAB_RTU_H
#define TOXLAB_RTU_H

#include <stddef.h>
#include <stdint.h>

#define RTU_MAX_FRAME 256
#define RTU_MAX_READ_REGISTERS 125
#define RTU_MAX_WRITE_REGISTERS 123

#define RTU_FC_READ_HOLDING 0x03
#define RTU_FC_READ_INPUT 0x04
#define RTU_FC_WRITE_SINGLE 0x06
#define RTU_FC_WRITE_MULTIPLE 0x10

#define RTU_EX_ILLEGAL_FUNCTION 0x01
#define RTU_EX_ILLEGAL_ADDRESS 0x02
#define RTU_EX_ILLEGAL_VALUE 0x03
#define RTU_EX_DEVICE_FAILURE 0x04
#define RTU_EX_BUSY 0x06

/* CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF). On the wire
 * the low byte goes first. */
uint16_t rtu_crc16(const uint8_t *data, size_t len);

/* Returns the length of the request frame that starts at buf, 0 when more
 * bytes are needed to know it, or -1 when the function code is one whose
 * length cannot be known (the caller then waits for a silent interval). */
int rtu_request_length(const uint8_t *buf, size_t len);

struct rtu_request {
    uint8_t slave;
    uint8_t function;
    uint16_t address;
    uint16_t count;                          /* registers to read or write */
    uint16_t values[RTU_MAX_WRITE_REGISTERS]; /* written values */
};

enum rtu_parse_status {
    RTU_OK = 0,
    RTU_BAD_CRC = -1,
    RTU_BAD_LENGTH = -2,
    RTU_BAD_FUNCTION = -3, /* valid frame, unsupported function: reply exception 1 */
    RTU_BAD_VALUE = -4,    /* valid frame, count or byte count out of range: exception 3 */
};

/* Parses one whole request frame of `len` bytes. */
enum rtu_parse_status rtu_parse_request(const uint8_t *frame, size_t len, struct rtu_request *req);

/* Build reply frames (CRC appended) into out, which has RTU_MAX_FRAME bytes.
 * Each returns the frame length. */
size_t rtu_build_read_reply(uint8_t slave, uint8_t function, const uint16_t *values,
                            uint16_t count, uint8_t *out);
size_t rtu_build_write_single_reply(uint8_t slave, uint16_t address, uint16_t value,
                                    uint8_t *out);
size_t rtu_build_write_multiple_reply(uint8_t slave, uint16_t address, uint16_t count,
                                      uint8_t *out);
size_t rtu_build_exception(uint8_t slave, uint8_t function, uint8_t code, uint8_t *out);

/* Builds a request frame, as a master would (used by tests and benchmarks). */
size_t rtu_build_read_request(uint8_t slave, uint8_t function, uint16_t address, uint16_t count,
                              uint8_t *out);
size_t rtu_build_write_multiple_request(uint8_t slave, uint16_t address, const uint16_t *values,
                                        uint16_t count, uint8_t *out);

#endif
