/* Unit tests of the Modbus RTU framing in protocol/rtu.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/rtu.h"

#define CASE_TIMEOUT 10 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */

/* Appends the CRC to a frame written by hand and returns the new length. */
static size_t append_crc(uint8_t *frame, size_t len)
{
    uint16_t crc = rtu_crc16(frame, len);

    frame[len] = (uint8_t)(crc & 0xFF);
    frame[len + 1] = (uint8_t)(crc >> 8);
    return len + 2;
}

START_TEST(crc_check_value)
{
    /* The catalogued check value of CRC-16/MODBUS. */
    const char *text = "123456789";

    ck_assert_uint_eq(rtu_crc16((const uint8_t *)text, strlen(text)), 0x4B37);
}
END_TEST

START_TEST(crc_read_request_wire_bytes)
{
    const uint8_t request[] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x0A};
    uint8_t built[RTU_MAX_FRAME];

    ck_assert_uint_eq(rtu_crc16(request, sizeof request), 0xCDC5);

    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, 10, built);
    ck_assert_uint_eq(len, 8);
    ck_assert_mem_eq(built, request, sizeof request);
    ck_assert_uint_eq(built[6], 0xC5);
    ck_assert_uint_eq(built[7], 0xCD);
}
END_TEST

START_TEST(crc_spec_example)
{
    /* Read 3 registers from 0x006B of slave 17: 11 03 00 6B 00 03 76 87. */
    uint8_t built[RTU_MAX_FRAME];
    const uint8_t expected[] = {0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87};

    size_t len = rtu_build_read_request(0x11, RTU_FC_READ_HOLDING, 0x006B, 3, built);
    ck_assert_uint_eq(len, sizeof expected);
    ck_assert_mem_eq(built, expected, sizeof expected);
}
END_TEST

START_TEST(crc_empty_input)
{
    ck_assert_uint_eq(rtu_crc16(NULL, 0), 0xFFFF);
}
END_TEST

START_TEST(length_needs_function_code)
{
    const uint8_t frame[] = {0x01, 0x03};

    ck_assert_int_eq(rtu_request_length(frame, 0), 0);
    ck_assert_int_eq(rtu_request_length(frame, 1), 0);
    ck_assert_int_eq(rtu_request_length(frame, 2), 8);
}
END_TEST

START_TEST(length_fixed_functions)
{
    const uint8_t functions[] = {RTU_FC_READ_HOLDING, RTU_FC_READ_INPUT, RTU_FC_WRITE_SINGLE};

    for (size_t i = 0; i < sizeof functions; i++) {
        uint8_t frame[2] = {0x01, functions[i]};

        ck_assert_int_eq(rtu_request_length(frame, sizeof frame), 8);
    }
}
END_TEST

START_TEST(length_write_multiple_split)
{
    const uint16_t values[] = {0x5C01, 0xE2AA, 0x0001};
    uint8_t frame[RTU_MAX_FRAME];
    size_t len = rtu_build_write_multiple_request(1, 200, values, 3, frame);

    ck_assert_uint_eq(len, 15);

    /* Byte by byte, as a pty may deliver it. The length stays unknown until
     * the byte count arrives. */
    for (size_t have = 0; have < 7; have++) {
        ck_assert_int_eq(rtu_request_length(frame, have), 0);
    }
    for (size_t have = 7; have <= len; have++) {
        ck_assert_int_eq(rtu_request_length(frame, have), 15);
    }
}
END_TEST

START_TEST(length_unknown_function)
{
    const uint8_t frame[] = {0x01, 0x2B, 0x0E, 0x01, 0x00};

    ck_assert_int_eq(rtu_request_length(frame, sizeof frame), -1);
}
END_TEST

START_TEST(length_byte_count_too_large)
{
    /* 7 + 250 + 2 bytes would not fit RTU_MAX_FRAME. */
    const uint8_t frame[] = {0x01, 0x10, 0x00, 0xC8, 0x00, 0x7D, 250};

    ck_assert_int_eq(rtu_request_length(frame, sizeof frame), -1);
}
END_TEST

START_TEST(length_two_frames_one_buffer)
{
    uint8_t buffer[2 * RTU_MAX_FRAME];
    const uint16_t values[] = {1, 2};
    size_t first = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 100, 7, buffer);
    size_t second = rtu_build_write_multiple_request(1, 200, values, 2, buffer + first);
    struct rtu_request req;

    ck_assert_int_eq(rtu_request_length(buffer, first + second), (int)first);
    ck_assert_int_eq(rtu_parse_request(buffer, first, &req), RTU_OK);
    ck_assert_uint_eq(req.address, 100);

    ck_assert_int_eq(rtu_request_length(buffer + first, second), (int)second);
    ck_assert_int_eq(rtu_parse_request(buffer + first, second, &req), RTU_OK);
    ck_assert_uint_eq(req.function, RTU_FC_WRITE_MULTIPLE);
    ck_assert_uint_eq(req.values[1], 2);
}
END_TEST

START_TEST(parse_read_request)
{
    uint8_t frame[RTU_MAX_FRAME];
    struct rtu_request req;
    size_t len = rtu_build_read_request(7, RTU_FC_READ_HOLDING, 300, 65, frame);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_OK);
    ck_assert_uint_eq(req.slave, 7);
    ck_assert_uint_eq(req.function, RTU_FC_READ_HOLDING);
    ck_assert_uint_eq(req.address, 300);
    ck_assert_uint_eq(req.count, 65);
}
END_TEST

START_TEST(parse_write_single)
{
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x06, 0x00, 0xCA, 0x00, 0x03};
    struct rtu_request req;
    size_t len = append_crc(frame, 6);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_OK);
    ck_assert_uint_eq(req.function, RTU_FC_WRITE_SINGLE);
    ck_assert_uint_eq(req.address, 202);
    ck_assert_uint_eq(req.count, 1);
    ck_assert_uint_eq(req.values[0], 3);
}
END_TEST

START_TEST(parse_write_multiple)
{
    const uint16_t values[] = {0x5C01, 0xE2AA, 0x0001};
    uint8_t frame[RTU_MAX_FRAME];
    struct rtu_request req;
    size_t len = rtu_build_write_multiple_request(1, 200, values, 3, frame);

    ck_assert_uint_eq(frame[6], 6);
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_OK);
    ck_assert_uint_eq(req.address, 200);
    ck_assert_uint_eq(req.count, 3);
    ck_assert_uint_eq(req.values[0], 0x5C01);
    ck_assert_uint_eq(req.values[1], 0xE2AA);
    ck_assert_uint_eq(req.values[2], 0x0001);
}
END_TEST

START_TEST(parse_bad_crc)
{
    uint8_t frame[RTU_MAX_FRAME];
    struct rtu_request req;
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, 24, frame);

    frame[len - 1] ^= 0x01;
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_CRC);

    frame[len - 1] ^= 0x01;
    frame[3] ^= 0x80;
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_CRC);
}
END_TEST

START_TEST(parse_too_short)
{
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x03, 0x00};
    struct rtu_request req;

    ck_assert_int_eq(rtu_parse_request(frame, 0, &req), RTU_BAD_LENGTH);
    ck_assert_int_eq(rtu_parse_request(frame, 3, &req), RTU_BAD_LENGTH);

    /* A read request of 6 bytes with a valid CRC is still too short. */
    size_t len = append_crc(frame, 4);
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_LENGTH);
}
END_TEST

START_TEST(parse_length_mismatch)
{
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00};
    struct rtu_request req;
    size_t len = append_crc(frame, 7);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_LENGTH);

    /* Function 16 whose byte count promises more bytes than the frame has. */
    uint8_t write[RTU_MAX_FRAME] = {0x01, 0x10, 0x00, 0xC8, 0x00, 0x02, 0x04, 0x00, 0x01};
    len = append_crc(write, 9);
    ck_assert_int_eq(rtu_parse_request(write, len, &req), RTU_BAD_LENGTH);
}
END_TEST

START_TEST(parse_unsupported_function)
{
    uint8_t frame[RTU_MAX_FRAME] = {0x05, 0x2B, 0x0E, 0x01, 0x00};
    struct rtu_request req;
    size_t len = append_crc(frame, 5);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_FUNCTION);
    ck_assert_uint_eq(req.slave, 5);
    ck_assert_uint_eq(req.function, 0x2B);
}
END_TEST

START_TEST(parse_read_count_out_of_range)
{
    uint8_t frame[RTU_MAX_FRAME];
    struct rtu_request req;
    size_t len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, 0, frame);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_VALUE);
    ck_assert_uint_eq(req.slave, 1);
    ck_assert_uint_eq(req.function, RTU_FC_READ_HOLDING);

    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, RTU_MAX_READ_REGISTERS + 1, frame);
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_VALUE);

    len = rtu_build_read_request(1, RTU_FC_READ_HOLDING, 0, RTU_MAX_READ_REGISTERS, frame);
    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_OK);
}
END_TEST

START_TEST(parse_write_byte_count_mismatch)
{
    /* Count 2 with byte count 2 makes a whole frame with too few values. */
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x10, 0x00, 0xC8, 0x00, 0x02, 0x02, 0x00, 0x01};
    struct rtu_request req;
    size_t len = append_crc(frame, 9);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_VALUE);
    ck_assert_uint_eq(req.function, RTU_FC_WRITE_MULTIPLE);
}
END_TEST

START_TEST(parse_write_count_out_of_range)
{
    uint8_t frame[RTU_MAX_FRAME] = {0x01, 0x10, 0x00, 0xC8, 0x00, 0x00, 0x00};
    struct rtu_request req;
    size_t len = append_crc(frame, 7);

    ck_assert_int_eq(rtu_parse_request(frame, len, &req), RTU_BAD_VALUE);
}
END_TEST

START_TEST(exception_frame)
{
    const uint8_t expected[] = {0x01, 0x83, 0x02, 0xC0, 0xF1};
    uint8_t out[RTU_MAX_FRAME];
    size_t len = rtu_build_exception(1, RTU_FC_READ_HOLDING, RTU_EX_ILLEGAL_ADDRESS, out);

    ck_assert_uint_eq(len, sizeof expected);
    ck_assert_mem_eq(out, expected, sizeof expected);
}
END_TEST

START_TEST(exception_busy_on_write)
{
    uint8_t out[RTU_MAX_FRAME];
    size_t len = rtu_build_exception(1, RTU_FC_WRITE_MULTIPLE, RTU_EX_BUSY, out);

    ck_assert_uint_eq(len, 5);
    ck_assert_uint_eq(out[1], 0x90);
    ck_assert_uint_eq(out[2], 0x06);
    ck_assert_uint_eq(rtu_crc16(out, len), 0);
}
END_TEST

START_TEST(read_reply_layout)
{
    const uint16_t values[] = {0x5341, 0x0100, 0xABCD};
    uint8_t out[RTU_MAX_FRAME];
    size_t len = rtu_build_read_reply(1, RTU_FC_READ_HOLDING, values, 3, out);

    ck_assert_uint_eq(len, 3 + 6 + 2);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[1], RTU_FC_READ_HOLDING);
    ck_assert_uint_eq(out[2], 6);
    ck_assert_uint_eq(out[3], 0x53);
    ck_assert_uint_eq(out[4], 0x41);
    ck_assert_uint_eq(out[7], 0xAB);
    ck_assert_uint_eq(out[8], 0xCD);
    /* The CRC of a frame with its CRC appended is 0. */
    ck_assert_uint_eq(rtu_crc16(out, len), 0);
}
END_TEST

START_TEST(read_reply_max_count)
{
    uint16_t values[RTU_MAX_READ_REGISTERS + 1] = {0};
    uint8_t out[RTU_MAX_FRAME];

    ck_assert_uint_eq(rtu_build_read_reply(1, 3, values, RTU_MAX_READ_REGISTERS, out), 255);
    ck_assert_uint_eq(rtu_build_read_reply(1, 3, values, RTU_MAX_READ_REGISTERS + 1, out), 0);
    ck_assert_uint_eq(rtu_build_read_reply(1, 3, values, 0, out), 0);
}
END_TEST

START_TEST(write_single_reply_echoes)
{
    uint8_t request[RTU_MAX_FRAME] = {0x01, 0x06, 0x00, 0xCA, 0x00, 0x03};
    uint8_t reply[RTU_MAX_FRAME];
    size_t request_len = append_crc(request, 6);
    size_t len = rtu_build_write_single_reply(1, 202, 3, reply);

    ck_assert_uint_eq(len, request_len);
    ck_assert_mem_eq(reply, request, len);
}
END_TEST

START_TEST(write_multiple_reply_layout)
{
    const uint8_t expected[] = {0x01, 0x10, 0x00, 0xC8, 0x00, 0x03};
    uint8_t out[RTU_MAX_FRAME];
    size_t len = rtu_build_write_multiple_reply(1, 200, 3, out);

    ck_assert_uint_eq(len, 8);
    ck_assert_mem_eq(out, expected, sizeof expected);
    ck_assert_uint_eq(rtu_crc16(out, len), 0);
}
END_TEST

START_TEST(write_request_max_count)
{
    uint16_t values[RTU_MAX_WRITE_REGISTERS + 1] = {0};
    uint8_t out[RTU_MAX_FRAME];
    struct rtu_request req;

    size_t len = rtu_build_write_multiple_request(1, 0, values, RTU_MAX_WRITE_REGISTERS, out);
    ck_assert_uint_eq(len, 9 + 2 * RTU_MAX_WRITE_REGISTERS);
    ck_assert_int_eq(rtu_request_length(out, len), (int)len);
    ck_assert_int_eq(rtu_parse_request(out, len, &req), RTU_OK);
    ck_assert_uint_eq(req.count, RTU_MAX_WRITE_REGISTERS);

    len = rtu_build_write_multiple_request(1, 0, values, RTU_MAX_WRITE_REGISTERS + 1, out);
    ck_assert_uint_eq(len, 0);
}
END_TEST

static Suite *rtu_suite(void)
{
    Suite *suite = suite_create("rtu");
    TCase *crc = tcase_create("crc");
    TCase *length = tcase_create("length");
    TCase *parse = tcase_create("parse");
    TCase *build = tcase_create("build");

    tcase_set_timeout(crc, CASE_TIMEOUT);
    tcase_add_test(crc, crc_check_value);
    tcase_add_test(crc, crc_read_request_wire_bytes);
    tcase_add_test(crc, crc_spec_example);
    tcase_add_test(crc, crc_empty_input);
    suite_add_tcase(suite, crc);

    tcase_set_timeout(length, CASE_TIMEOUT);
    tcase_add_test(length, length_needs_function_code);
    tcase_add_test(length, length_fixed_functions);
    tcase_add_test(length, length_write_multiple_split);
    tcase_add_test(length, length_unknown_function);
    tcase_add_test(length, length_byte_count_too_large);
    tcase_add_test(length, length_two_frames_one_buffer);
    suite_add_tcase(suite, length);

    tcase_set_timeout(parse, CASE_TIMEOUT);
    tcase_add_test(parse, parse_read_request);
    tcase_add_test(parse, parse_write_single);
    tcase_add_test(parse, parse_write_multiple);
    tcase_add_test(parse, parse_bad_crc);
    tcase_add_test(parse, parse_too_short);
    tcase_add_test(parse, parse_length_mismatch);
    tcase_add_test(parse, parse_unsupported_function);
    tcase_add_test(parse, parse_read_count_out_of_range);
    tcase_add_test(parse, parse_write_byte_count_mismatch);
    tcase_add_test(parse, parse_write_count_out_of_range);
    suite_add_tcase(suite, parse);

    tcase_set_timeout(build, CASE_TIMEOUT);
    tcase_add_test(build, exception_frame);
    tcase_add_test(build, exception_busy_on_write);
    tcase_add_test(build, read_reply_layout);
    tcase_add_test(build, read_reply_max_count);
    tcase_add_test(build, write_single_reply_echoes);
    tcase_add_test(build, write_multiple_reply_layout);
    tcase_add_test(build, write_request_max_count);
    suite_add_tcase(suite, build);

    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(rtu_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
