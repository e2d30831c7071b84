/* Unit tests of the breath-alcohol analyzer's register map codec in
 * protocol/breath_map.c. Register offsets are spelled out as numbers, as
 * docs/breath-registers.md documents them, so that a change to the map's
 * macros cannot pass unnoticed. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/breath_map.h"

#define CASE_TIMEOUT 10 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */

static struct breath_identity sample_identity(void)
{
    struct breath_identity id = {
        .model = BREATH_MODEL_CODE,
        .protocol = BREATH_PROTOCOL_VERSION,
        .serial = "BA-0001-ABCDEFGH",
        .firmware = "1.4.2",
        .calibration_date = 20260915,
        .calibration_due = 20270315,
        .mouthpiece_lot = "MP2411",
    };
    return id;
}

static struct breath_result sample_result(void)
{
    struct breath_result res = {
        .host_test_id = 0x5C01E2AA,
        .sequence = 42,
        .alcohol = 4123, /* 412.3 ug/L */
        .flags = BREATH_FLAG_MOUTH_ALCOHOL,
        .temperature = 210, /* 21.0 degC */
    };
    return res;
}

START_TEST(block_addresses)
{
    ck_assert_int_eq(BREATH_ID_ADDR, 0);
    ck_assert_int_eq(BREATH_ID_COUNT, 24);
    ck_assert_int_eq(BREATH_STATUS_ADDR, 100);
    ck_assert_int_eq(BREATH_STATUS_COUNT, 7);
    ck_assert_int_eq(BREATH_CONTROL_ADDR, 200);
    ck_assert_int_eq(BREATH_CONTROL_COUNT, 3);
    ck_assert_int_eq(BREATH_COMMAND_ADDR, 202);
    ck_assert_int_eq(BREATH_RESULT_ADDR, 300);
    ck_assert_int_eq(BREATH_RESULT_COUNT, 7);
    ck_assert_int_eq(BREATH_ALCOHOL_SCALE, 10);
}
END_TEST

START_TEST(identity_layout)
{
    struct breath_identity id = sample_identity();
    uint16_t regs[BREATH_ID_COUNT];

    memset(regs, 0xEE, sizeof regs);
    breath_encode_identity(&id, regs);
    ck_assert_uint_eq(regs[0], 0x4241); /* model "BA" */
    ck_assert_uint_eq(regs[1], 0x0100);
    ck_assert_uint_eq(regs[2], 0x4241);  /* serial "BA" */
    ck_assert_uint_eq(regs[3], 0x2D30);  /* "-0" */
    ck_assert_uint_eq(regs[9], 0x4748);  /* "GH", the 16th character */
    ck_assert_uint_eq(regs[10], 0x312E); /* firmware "1." */
    ck_assert_uint_eq(regs[11], 0x342E); /* "4." */
    ck_assert_uint_eq(regs[12], 0x3200); /* "2", NUL */
    ck_assert_uint_eq(regs[13], 0x0000);
    ck_assert_uint_eq(regs[14], 20260915 >> 16);
    ck_assert_uint_eq(regs[15], 20260915 & 0xFFFF);
    ck_assert_uint_eq(regs[16], 20270315 >> 16);
    ck_assert_uint_eq(regs[17], 20270315 & 0xFFFF);
    ck_assert_uint_eq(regs[18], 0x4D50); /* lot "MP" */
    ck_assert_uint_eq(regs[19], 0x3234); /* "24" */
    ck_assert_uint_eq(regs[20], 0x3131); /* "11" */
    ck_assert_uint_eq(regs[21], 0x0000);
    ck_assert_uint_eq(regs[23], 0x0000);
}
END_TEST

START_TEST(identity_round_trip)
{
    struct breath_identity id = sample_identity();
    struct breath_identity back;
    uint16_t regs[BREATH_ID_COUNT];

    breath_encode_identity(&id, regs);
    memset(&back, 0x55, sizeof back);
    breath_decode_identity(regs, &back);
    ck_assert_uint_eq(back.model, id.model);
    ck_assert_uint_eq(back.protocol, id.protocol);
    ck_assert_str_eq(back.serial, id.serial);
    ck_assert_str_eq(back.firmware, id.firmware);
    ck_assert_uint_eq(back.calibration_date, id.calibration_date);
    ck_assert_uint_eq(back.calibration_due, id.calibration_due);
    ck_assert_str_eq(back.mouthpiece_lot, id.mouthpiece_lot);
}
END_TEST

START_TEST(identity_full_lot_and_padding)
{
    struct breath_identity id = sample_identity();
    struct breath_identity back;
    uint16_t regs[BREATH_ID_COUNT];

    strcpy(id.mouthpiece_lot, "MP2411-ABCDE");
    breath_encode_identity(&id, regs);
    ck_assert_uint_eq(regs[23], 0x4445); /* "DE", the 12th character */
    breath_decode_identity(regs, &back);
    ck_assert_str_eq(back.mouthpiece_lot, "MP2411-ABCDE");

    /* Trailing spaces are padding, as in the saliva map. */
    regs[21] = 0x2020;
    regs[22] = 0x2020;
    regs[23] = 0x2020;
    breath_decode_identity(regs, &back);
    ck_assert_str_eq(back.mouthpiece_lot, "MP2411");
}
END_TEST

START_TEST(status_layout)
{
    struct breath_status st = {
        .state = BREATH_BLOWING,
        .percent = 57,
        .seconds_left = 12,
        .error_code = BREATH_ERR_NONE,
        .sequence = 9,
        .host_test_id = 0xDEADBEEF,
    };
    uint16_t regs[BREATH_STATUS_COUNT];

    breath_encode_status(&st, regs);
    ck_assert_uint_eq(regs[0], 3);
    ck_assert_uint_eq(regs[1], 57);
    ck_assert_uint_eq(regs[2], 12);
    ck_assert_uint_eq(regs[3], 0);
    ck_assert_uint_eq(regs[4], 9);
    ck_assert_uint_eq(regs[5], 0xDEAD);
    ck_assert_uint_eq(regs[6], 0xBEEF);
}
END_TEST

START_TEST(status_round_trip)
{
    const uint16_t regs[BREATH_STATUS_COUNT] = {6, 0, 0, 2, 0xFFFF, 0x0001, 0x8000};
    struct breath_status back;
    uint16_t again[BREATH_STATUS_COUNT];

    memset(&back, 0x55, sizeof back);
    breath_decode_status(regs, &back);
    ck_assert_uint_eq(back.state, BREATH_ERROR);
    ck_assert_uint_eq(back.percent, 0);
    ck_assert_uint_eq(back.seconds_left, 0);
    ck_assert_uint_eq(back.error_code, BREATH_ERR_CALIBRATION_DUE);
    ck_assert_uint_eq(back.sequence, 0xFFFF);
    ck_assert_uint_eq(back.host_test_id, 0x00018000);

    breath_encode_status(&back, again);
    ck_assert_mem_eq(again, regs, sizeof regs);
}
END_TEST

START_TEST(control_layout)
{
    uint16_t regs[BREATH_CONTROL_COUNT];

    breath_encode_control(0x5C01E2AA, BREATH_CMD_START, regs);
    ck_assert_uint_eq(regs[0], 0x5C01);
    ck_assert_uint_eq(regs[1], 0xE2AA);
    ck_assert_uint_eq(regs[2], 1);

    breath_encode_control(0, BREATH_CMD_ACK_RESULT, regs);
    ck_assert_uint_eq(regs[0], 0);
    ck_assert_uint_eq(regs[1], 0);
    ck_assert_uint_eq(regs[2], 3);
}
END_TEST

START_TEST(command_codes)
{
    ck_assert_int_eq(BREATH_CMD_NONE, 0);
    ck_assert_int_eq(BREATH_CMD_START, 1);
    ck_assert_int_eq(BREATH_CMD_ABORT, 2);
    ck_assert_int_eq(BREATH_CMD_ACK_RESULT, 3);
}
END_TEST

START_TEST(result_layout)
{
    struct breath_result res = sample_result();
    uint16_t regs[BREATH_RESULT_COUNT];

    memset(regs, 0xEE, sizeof regs);
    breath_encode_result(&res, regs);
    ck_assert_uint_eq(regs[0], 0x5C01);
    ck_assert_uint_eq(regs[1], 0xE2AA);
    ck_assert_uint_eq(regs[2], 42);
    ck_assert_uint_eq(regs[3], 0);
    ck_assert_uint_eq(regs[4], 4123);
    ck_assert_uint_eq(regs[5], 0x0004);
    ck_assert_uint_eq(regs[6], 210);
}
END_TEST

START_TEST(result_round_trip)
{
    struct breath_result res = sample_result();
    struct breath_result back;
    uint16_t regs[BREATH_RESULT_COUNT];

    breath_encode_result(&res, regs);
    memset(&back, 0x55, sizeof back);
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.host_test_id, res.host_test_id);
    ck_assert_uint_eq(back.sequence, res.sequence);
    ck_assert_uint_eq(back.alcohol, res.alcohol);
    ck_assert_uint_eq(back.flags, res.flags);
    ck_assert_int_eq(back.temperature, res.temperature);
}
END_TEST

START_TEST(result_alcohol_high_word_first)
{
    struct breath_result res = sample_result();
    struct breath_result back;
    uint16_t regs[BREATH_RESULT_COUNT];

    res.alcohol = 0x00012345;
    breath_encode_result(&res, regs);
    ck_assert_uint_eq(regs[3], 0x0001);
    ck_assert_uint_eq(regs[4], 0x2345);

    regs[3] = 0xFFFF;
    regs[4] = 0xFFFE;
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.alcohol, 0xFFFFFFFEu);
}
END_TEST

START_TEST(result_negative_temperature)
{
    struct breath_result res = sample_result();
    struct breath_result back;
    uint16_t regs[BREATH_RESULT_COUNT];

    res.temperature = -55; /* -5.5 degC */
    breath_encode_result(&res, regs);
    ck_assert_uint_eq(regs[6], 0xFFC9);
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_int_eq(back.temperature, -55);

    regs[6] = 0x8000;
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_int_eq(back.temperature, -32768);

    regs[6] = 0x7FFF;
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_int_eq(back.temperature, 32767);
}
END_TEST

START_TEST(result_cleared_block)
{
    const uint16_t regs[BREATH_RESULT_COUNT] = {0};
    struct breath_result back;

    memset(&back, 0x55, sizeof back);
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.host_test_id, 0);
    ck_assert_uint_eq(back.sequence, 0);
    ck_assert_uint_eq(back.alcohol, 0);
    ck_assert_uint_eq(back.flags, 0);
    ck_assert_int_eq(back.temperature, 0);
}
END_TEST

START_TEST(result_accepts_every_known_flag)
{
    struct breath_result res = sample_result();
    struct breath_result back;
    uint16_t regs[BREATH_RESULT_COUNT];

    res.flags = BREATH_FLAG_MASK;
    breath_encode_result(&res, regs);
    ck_assert_int_eq(breath_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.flags, 0x000F);
}
END_TEST

START_TEST(result_rejects_unknown_flags)
{
    const uint16_t bad_flags[] = {0x0010, 0x0011, 0x8000, 0xFFFF};
    struct breath_result res = sample_result();
    struct breath_result back;
    uint16_t regs[BREATH_RESULT_COUNT];

    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        breath_encode_result(&res, regs);
        regs[5] = bad_flags[i];
        ck_assert_int_eq(breath_decode_result(regs, &back), -1);
        /* The rest of the block is still decoded, for the log. */
        ck_assert_uint_eq(back.host_test_id, res.host_test_id);
        ck_assert_uint_eq(back.flags, bad_flags[i]);
    }
}
END_TEST

START_TEST(state_names)
{
    ck_assert_str_eq(breath_state_name(BREATH_WARMING_UP), "warming-up");
    ck_assert_str_eq(breath_state_name(BREATH_READY), "ready");
    ck_assert_str_eq(breath_state_name(BREATH_BLOW_REQUESTED), "blow-requested");
    ck_assert_str_eq(breath_state_name(BREATH_BLOWING), "blowing");
    ck_assert_str_eq(breath_state_name(BREATH_ANALYSING), "analysing");
    ck_assert_str_eq(breath_state_name(BREATH_RESULT_READY), "result-ready");
    ck_assert_str_eq(breath_state_name(BREATH_ERROR), "error");
    ck_assert_ptr_null(breath_state_name(7));
    ck_assert_ptr_null(breath_state_name(0xFFFF));
}
END_TEST

START_TEST(state_codes)
{
    ck_assert_int_eq(BREATH_WARMING_UP, 0);
    ck_assert_int_eq(BREATH_READY, 1);
    ck_assert_int_eq(BREATH_BLOW_REQUESTED, 2);
    ck_assert_int_eq(BREATH_BLOWING, 3);
    ck_assert_int_eq(BREATH_ANALYSING, 4);
    ck_assert_int_eq(BREATH_RESULT_READY, 5);
    ck_assert_int_eq(BREATH_ERROR, 6);
}
END_TEST

START_TEST(error_texts)
{
    ck_assert_str_eq(breath_error_text(0), "none");
    ck_assert_str_eq(breath_error_text(1), "sensor fault");
    ck_assert_str_eq(breath_error_text(2), "calibration due");
    ck_assert_str_eq(breath_error_text(3), "not ready");
    ck_assert_ptr_null(breath_error_text(4));
    ck_assert_ptr_null(breath_error_text(0xFFFF));
}
END_TEST

START_TEST(flag_texts_one_each)
{
    ck_assert_str_eq(breath_flag_text(0x0001), "insufficient volume");
    ck_assert_str_eq(breath_flag_text(0x0002), "interrupted blow");
    ck_assert_str_eq(breath_flag_text(0x0004), "mouth alcohol detected");
    ck_assert_str_eq(breath_flag_text(0x0008), "temperature out of range");
    ck_assert_ptr_null(breath_flag_text(0));
}
END_TEST

START_TEST(flag_text_first_set_wins)
{
    ck_assert_str_eq(breath_flag_text(0x000F), "insufficient volume");
    ck_assert_str_eq(breath_flag_text(0x000C), "mouth alcohol detected");
    ck_assert_str_eq(breath_flag_text(0x000A), "interrupted blow");
    ck_assert_str_eq(breath_flag_text(0x8008), "temperature out of range");
    /* Bits outside the mask have no text. */
    ck_assert_ptr_null(breath_flag_text(0x0010));
    ck_assert_ptr_null(breath_flag_text(0xFFF0));
}
END_TEST

static Suite *breath_map_suite(void)
{
    Suite *suite = suite_create("breath_map");
    TCase *blocks = tcase_create("blocks");
    TCase *result = tcase_create("result");
    TCase *names = tcase_create("names");

    tcase_set_timeout(blocks, CASE_TIMEOUT);
    tcase_add_test(blocks, block_addresses);
    tcase_add_test(blocks, identity_layout);
    tcase_add_test(blocks, identity_round_trip);
    tcase_add_test(blocks, identity_full_lot_and_padding);
    tcase_add_test(blocks, status_layout);
    tcase_add_test(blocks, status_round_trip);
    tcase_add_test(blocks, control_layout);
    tcase_add_test(blocks, command_codes);
    suite_add_tcase(suite, blocks);

    tcase_set_timeout(result, CASE_TIMEOUT);
    tcase_add_test(result, result_layout);
    tcase_add_test(result, result_round_trip);
    tcase_add_test(result, result_alcohol_high_word_first);
    tcase_add_test(result, result_negative_temperature);
    tcase_add_test(result, result_cleared_block);
    tcase_add_test(result, result_accepts_every_known_flag);
    tcase_add_test(result, result_rejects_unknown_flags);
    suite_add_tcase(suite, result);

    tcase_set_timeout(names, CASE_TIMEOUT);
    tcase_add_test(names, state_names);
    tcase_add_test(names, state_codes);
    tcase_add_test(names, error_texts);
    tcase_add_test(names, flag_texts_one_each);
    tcase_add_test(names, flag_text_first_set_wins);
    suite_add_tcase(suite, names);

    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(breath_map_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
