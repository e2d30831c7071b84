/* Unit tests of the saliva analyzer's register map codec in
 * protocol/saliva_map.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/saliva_map.h"

#define CASE_TIMEOUT 10 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */

/* Result block offsets as docs/saliva-registers.md documents them. */
#define RESULT_SEQUENCE 2
#define RESULT_PANEL_SIZE 3
#define RESULT_STATUS 4

static struct saliva_result sample_result(void)
{
    struct saliva_result res = {
        .host_test_id = 0x5C01E2AA,
        .sequence = 42,
        .panel_size = 3,
        .status = SALIVA_RESULT_VALID,
    };

    res.analytes[0] = (struct saliva_analyte_result){SALIVA_THC, 0, true, 0};
    res.analytes[1] = (struct saliva_analyte_result){SALIVA_METHAMPHETAMINE, 120500, true,
                                                     SALIVA_FLAG_OVER_RANGE};
    res.analytes[2] =
        (struct saliva_analyte_result){SALIVA_KETAMINE, 0x00012345, false, SALIVA_FLAG_UNDER_RANGE};
    return res;
}

START_TEST(u32_high_word_first)
{
    uint16_t regs[2] = {0, 0};

    saliva_put_u32(regs, 0x12345678);
    ck_assert_uint_eq(regs[0], 0x1234);
    ck_assert_uint_eq(regs[1], 0x5678);
    ck_assert_uint_eq(saliva_get_u32(regs), 0x12345678);

    const uint16_t wire[2] = {0xFFFF, 0x0001};
    ck_assert_uint_eq(saliva_get_u32(wire), 0xFFFF0001);
}
END_TEST

START_TEST(text_packs_high_byte_first)
{
    uint16_t regs[8];

    memset(regs, 0xEE, sizeof regs);
    saliva_put_text(regs, 8, "SAL-0001");
    ck_assert_uint_eq(regs[0], 0x5341); /* "SA" */
    ck_assert_uint_eq(regs[1], 0x4C2D); /* "L-" */
    ck_assert_uint_eq(regs[2], 0x3030);
    ck_assert_uint_eq(regs[3], 0x3031);
    for (int i = 4; i < 8; i++) {
        ck_assert_uint_eq(regs[i], 0);
    }
}
END_TEST

START_TEST(text_odd_length_pads_nul)
{
    uint16_t regs[4];

    saliva_put_text(regs, 4, "2.1.0");
    ck_assert_uint_eq(regs[0], 0x322E);
    ck_assert_uint_eq(regs[1], 0x312E);
    ck_assert_uint_eq(regs[2], 0x3000);
    ck_assert_uint_eq(regs[3], 0x0000);
}
END_TEST

START_TEST(text_too_long_is_cut)
{
    uint16_t regs[3];
    char out[7];

    saliva_put_text(regs, 2, "ABCDEF");
    regs[2] = 0x4747; /* must stay untouched */
    saliva_get_text(regs, 2, out);
    ck_assert_str_eq(out, "ABCD");
    ck_assert_uint_eq(regs[2], 0x4747);
}
END_TEST

START_TEST(text_unpack_trims_padding)
{
    const uint16_t spaces[3] = {0x4142, 0x2020, 0x2000};
    const uint16_t full[2] = {0x4142, 0x4344};
    const uint16_t inner_nul[3] = {0x4100, 0x4243, 0x0000};
    char out[7];

    saliva_get_text(spaces, 3, out);
    ck_assert_str_eq(out, "AB");

    saliva_get_text(full, 2, out);
    ck_assert_str_eq(out, "ABCD");

    /* The text ends at the first NUL. */
    saliva_get_text(inner_nul, 3, out);
    ck_assert_str_eq(out, "A");
}
END_TEST

START_TEST(identity_round_trip)
{
    struct saliva_identity id = {
        .model = SALIVA_MODEL_CODE,
        .protocol = SALIVA_PROTOCOL_VERSION,
        .serial = "SAL-0001-ABCDEFG",
        .firmware = "2.1.0",
        .calibration_date = 20261001,
        .cartridge_lot = "L2409A",
        .cartridge_expiry = 20270630,
    };
    struct saliva_identity back;
    uint16_t regs[SALIVA_ID_COUNT];

    saliva_encode_identity(&id, regs);
    ck_assert_uint_eq(regs[SALIVA_ID_MODEL], 0x5341);
    ck_assert_uint_eq(regs[SALIVA_ID_PROTOCOL], 0x0100);
    ck_assert_uint_eq(regs[SALIVA_ID_SERIAL], 0x5341);
    ck_assert_uint_eq(regs[SALIVA_ID_SERIAL + 7], 0x4647); /* "FG" */
    ck_assert_uint_eq(regs[SALIVA_ID_FIRMWARE], 0x322E);
    ck_assert_uint_eq(saliva_get_u32(regs + SALIVA_ID_CALIBRATION), 20261001);
    ck_assert_uint_eq(regs[SALIVA_ID_CARTRIDGE_LOT], 0x4C32);
    ck_assert_uint_eq(regs[SALIVA_ID_CARTRIDGE_EXPIRY], 20270630 >> 16);
    ck_assert_uint_eq(regs[SALIVA_ID_CARTRIDGE_EXPIRY + 1], 20270630 & 0xFFFF);

    memset(&back, 0x55, sizeof back);
    saliva_decode_identity(regs, &back);
    ck_assert_uint_eq(back.model, id.model);
    ck_assert_uint_eq(back.protocol, id.protocol);
    ck_assert_str_eq(back.serial, id.serial);
    ck_assert_str_eq(back.firmware, id.firmware);
    ck_assert_uint_eq(back.calibration_date, id.calibration_date);
    ck_assert_str_eq(back.cartridge_lot, id.cartridge_lot);
    ck_assert_uint_eq(back.cartridge_expiry, id.cartridge_expiry);
}
END_TEST

START_TEST(status_round_trip)
{
    struct saliva_status st = {
        .state = SALIVA_ANALYSING,
        .percent = 57,
        .seconds_left = 180,
        .error_code = SALIVA_ERR_NONE,
        .sequence = 9,
        .host_test_id = 0xDEADBEEF,
    };
    struct saliva_status back;
    uint16_t regs[SALIVA_STATUS_COUNT];

    saliva_encode_status(&st, regs);
    ck_assert_uint_eq(regs[0], SALIVA_ANALYSING);
    ck_assert_uint_eq(regs[1], 57);
    ck_assert_uint_eq(regs[2], 180);
    ck_assert_uint_eq(regs[3], 0);
    ck_assert_uint_eq(regs[4], 9);
    ck_assert_uint_eq(regs[5], 0xDEAD);
    ck_assert_uint_eq(regs[6], 0xBEEF);

    saliva_decode_status(regs, &back);
    ck_assert_uint_eq(back.state, st.state);
    ck_assert_uint_eq(back.percent, st.percent);
    ck_assert_uint_eq(back.seconds_left, st.seconds_left);
    ck_assert_uint_eq(back.error_code, st.error_code);
    ck_assert_uint_eq(back.sequence, st.sequence);
    ck_assert_uint_eq(back.host_test_id, st.host_test_id);
}
END_TEST

START_TEST(control_layout)
{
    uint16_t regs[SALIVA_CONTROL_COUNT];

    saliva_encode_control(0x5C01E2AA, SALIVA_CMD_START, regs);
    ck_assert_uint_eq(regs[0], 0x5C01);
    ck_assert_uint_eq(regs[1], 0xE2AA);
    ck_assert_uint_eq(regs[SALIVA_COMMAND_ADDR - SALIVA_CONTROL_ADDR], SALIVA_CMD_START);
}
END_TEST

START_TEST(result_layout)
{
    struct saliva_result res = sample_result();
    uint16_t regs[SALIVA_RESULT_COUNT];

    memset(regs, 0xEE, sizeof regs);
    saliva_encode_result(&res, regs);
    ck_assert_uint_eq(regs[0], 0x5C01);
    ck_assert_uint_eq(regs[1], 0xE2AA);
    ck_assert_uint_eq(regs[RESULT_SEQUENCE], 42);
    ck_assert_uint_eq(regs[RESULT_PANEL_SIZE], 3);
    ck_assert_uint_eq(regs[RESULT_STATUS], SALIVA_RESULT_VALID);

    const uint16_t *second = regs + SALIVA_RESULT_HEADER + SALIVA_ANALYTE_WORDS;
    ck_assert_uint_eq(second[0], SALIVA_METHAMPHETAMINE);
    ck_assert_uint_eq(second[1], 120500 >> 16);
    ck_assert_uint_eq(second[2], 120500 & 0xFFFF);
    ck_assert_uint_eq(second[3], 1);
    ck_assert_uint_eq(second[4], SALIVA_FLAG_OVER_RANGE);

    const uint16_t *third = second + SALIVA_ANALYTE_WORDS;
    ck_assert_uint_eq(third[3], 0);

    /* Entries past the panel are cleared. */
    for (size_t i = SALIVA_RESULT_HEADER + 3 * SALIVA_ANALYTE_WORDS; i < SALIVA_RESULT_COUNT; i++) {
        ck_assert_uint_eq(regs[i], 0);
    }
}
END_TEST

START_TEST(result_round_trip)
{
    struct saliva_result res = sample_result();
    struct saliva_result back;
    uint16_t regs[SALIVA_RESULT_COUNT];

    saliva_encode_result(&res, regs);
    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.host_test_id, res.host_test_id);
    ck_assert_uint_eq(back.sequence, res.sequence);
    ck_assert_uint_eq(back.panel_size, res.panel_size);
    ck_assert_uint_eq(back.status, res.status);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(back.analytes[i].code, res.analytes[i].code);
        ck_assert_uint_eq(back.analytes[i].concentration, res.analytes[i].concentration);
        ck_assert(back.analytes[i].control_valid == res.analytes[i].control_valid);
        ck_assert_uint_eq(back.analytes[i].flags, res.analytes[i].flags);
    }
}
END_TEST

START_TEST(result_full_panel)
{
    struct saliva_result res = {.host_test_id = 1, .sequence = 1, .panel_size = SALIVA_MAX_PANEL};
    struct saliva_result back;
    uint16_t regs[SALIVA_RESULT_COUNT];

    for (int i = 0; i < SALIVA_MAX_PANEL; i++) {
        res.analytes[i].code = (uint16_t)(i % (SALIVA_ANALYTE_LIMIT - 1) + 1);
        res.analytes[i].concentration = 0xFFFFFFFFu - (uint32_t)i;
        res.analytes[i].control_valid = true;
    }

    saliva_encode_result(&res, regs);
    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.panel_size, SALIVA_MAX_PANEL);
    ck_assert_uint_eq(back.analytes[SALIVA_MAX_PANEL - 1].code, res.analytes[11].code);
    ck_assert_uint_eq(back.analytes[SALIVA_MAX_PANEL - 1].concentration, 0xFFFFFFFFu - 11);
}
END_TEST

START_TEST(result_cleared_block)
{
    uint16_t regs[SALIVA_RESULT_COUNT] = {0};
    struct saliva_result back;

    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.panel_size, 0);
    ck_assert_uint_eq(back.host_test_id, 0);
}
END_TEST

START_TEST(result_rejects_large_panel)
{
    /* Room for a 13th entry, so that every entry the size claims contains a
     * valid analyte and only the size check can reject it. */
    uint16_t regs[SALIVA_RESULT_COUNT + SALIVA_ANALYTE_WORDS] = {0};
    struct saliva_result back;

    for (size_t i = 0; i < SALIVA_MAX_PANEL + 1; i++) {
        regs[SALIVA_RESULT_HEADER + i * SALIVA_ANALYTE_WORDS] = SALIVA_THC;
    }
    regs[RESULT_PANEL_SIZE] = SALIVA_MAX_PANEL;
    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);

    regs[RESULT_PANEL_SIZE] = SALIVA_MAX_PANEL + 1;
    ck_assert_int_eq(saliva_decode_result(regs, &back), -1);

    regs[RESULT_PANEL_SIZE] = 0xFFFF;
    ck_assert_int_eq(saliva_decode_result(regs, &back), -1);
}
END_TEST

START_TEST(result_rejects_unknown_analyte)
{
    const uint16_t bad_codes[] = {0, SALIVA_ANALYTE_LIMIT, 0xFFFF};
    struct saliva_result res = sample_result();
    struct saliva_result back;
    uint16_t regs[SALIVA_RESULT_COUNT];
    uint16_t *third_code = regs + SALIVA_RESULT_HEADER + 2 * SALIVA_ANALYTE_WORDS;

    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        saliva_encode_result(&res, regs);
        *third_code = bad_codes[i];
        ck_assert_int_eq(saliva_decode_result(regs, &back), -1);
    }
}
END_TEST

START_TEST(result_ignores_entries_past_panel)
{
    struct saliva_result res = sample_result();
    struct saliva_result back;
    uint16_t regs[SALIVA_RESULT_COUNT];

    saliva_encode_result(&res, regs);
    regs[SALIVA_RESULT_HEADER + 3 * SALIVA_ANALYTE_WORDS] = 0xFFFF;
    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);
    ck_assert_uint_eq(back.analytes[3].code, 0);
}
END_TEST

START_TEST(result_control_only_one_is_valid)
{
    struct saliva_result res = sample_result();
    struct saliva_result back;
    uint16_t regs[SALIVA_RESULT_COUNT];

    saliva_encode_result(&res, regs);
    regs[SALIVA_RESULT_HEADER + 3] = 2;
    ck_assert_int_eq(saliva_decode_result(regs, &back), 0);
    ck_assert(!back.analytes[0].control_valid);
}
END_TEST

START_TEST(analyte_names)
{
    static const char *const expected[] = {
        NULL,      "thc",      "amphetamine", "methamphetamine",
        "mdma",    "mda",      "cocaine",     "benzoylecgonine",
        "codeine", "morphine", "6-mam",       "ketamine",
    };

    for (uint16_t code = 1; code < SALIVA_ANALYTE_LIMIT; code++) {
        ck_assert_str_eq(saliva_analyte_name(code), expected[code]);
        ck_assert_int_eq(saliva_analyte_code(expected[code]), code);
    }
    ck_assert_ptr_null(saliva_analyte_name(0));
    ck_assert_ptr_null(saliva_analyte_name(SALIVA_ANALYTE_LIMIT));
}
END_TEST

START_TEST(analyte_code_unknown_names)
{
    ck_assert_int_eq(saliva_analyte_code("THC"), 0);
    ck_assert_int_eq(saliva_analyte_code("heroin"), 0);
    ck_assert_int_eq(saliva_analyte_code(""), 0);
    ck_assert_int_eq(saliva_analyte_code(NULL), 0);
}
END_TEST

START_TEST(state_names)
{
    ck_assert_str_eq(saliva_state_name(SALIVA_IDLE), "idle");
    ck_assert_str_eq(saliva_state_name(SALIVA_CARTRIDGE_IN), "cartridge-in");
    ck_assert_str_eq(saliva_state_name(SALIVA_COLLECTING), "collecting");
    ck_assert_str_eq(saliva_state_name(SALIVA_ANALYSING), "analysing");
    ck_assert_str_eq(saliva_state_name(SALIVA_RESULT_READY), "result-ready");
    ck_assert_str_eq(saliva_state_name(SALIVA_ERROR), "error");
    ck_assert_ptr_null(saliva_state_name(6));
}
END_TEST

START_TEST(error_texts)
{
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_INSUFFICIENT_SAMPLE), "insufficient sample");
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_CARTRIDGE_EXPIRED), "cartridge expired");
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_CARTRIDGE_USED), "cartridge used");
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_TEMPERATURE), "temperature out of range");
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_BUSY), "busy");
    ck_assert_str_eq(saliva_error_text(SALIVA_ERR_NONE), "none");
    ck_assert_ptr_null(saliva_error_text(SALIVA_ERR_COUNT));
}
END_TEST

START_TEST(result_status_texts)
{
    ck_assert_str_eq(saliva_result_status_text(SALIVA_RESULT_VALID), "valid");
    ck_assert_str_eq(saliva_result_status_text(SALIVA_RESULT_CONTROL_FAILED),
                     "control line failed");
    ck_assert_str_eq(saliva_result_status_text(SALIVA_RESULT_CARTRIDGE_EXPIRED),
                     "cartridge expired");
    ck_assert_ptr_null(saliva_result_status_text(SALIVA_RESULT_STATUS_COUNT));
}
END_TEST

static Suite *saliva_map_suite(void)
{
    Suite *suite = suite_create("saliva_map");
    TCase *packing = tcase_create("packing");
    TCase *blocks = tcase_create("blocks");
    TCase *result = tcase_create("result");
    TCase *names = tcase_create("names");

    tcase_set_timeout(packing, CASE_TIMEOUT);
    tcase_add_test(packing, u32_high_word_first);
    tcase_add_test(packing, text_packs_high_byte_first);
    tcase_add_test(packing, text_odd_length_pads_nul);
    tcase_add_test(packing, text_too_long_is_cut);
    tcase_add_test(packing, text_unpack_trims_padding);
    suite_add_tcase(suite, packing);

    tcase_set_timeout(blocks, CASE_TIMEOUT);
    tcase_add_test(blocks, identity_round_trip);
    tcase_add_test(blocks, status_round_trip);
    tcase_add_test(blocks, control_layout);
    suite_add_tcase(suite, blocks);

    tcase_set_timeout(result, CASE_TIMEOUT);
    tcase_add_test(result, result_layout);
    tcase_add_test(result, result_round_trip);
    tcase_add_test(result, result_full_panel);
    tcase_add_test(result, result_cleared_block);
    tcase_add_test(result, result_rejects_large_panel);
    tcase_add_test(result, result_rejects_unknown_analyte);
    tcase_add_test(result, result_ignores_entries_past_panel);
    tcase_add_test(result, result_control_only_one_is_valid);
    suite_add_tcase(suite, result);

    tcase_set_timeout(names, CASE_TIMEOUT);
    tcase_add_test(names, analyte_names);
    tcase_add_test(names, analyte_code_unknown_names);
    tcase_add_test(names, state_names);
    tcase_add_test(names, error_texts);
    tcase_add_test(names, result_status_texts);
    suite_add_tcase(suite, names);

    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(saliva_map_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
