/* Unit tests of the daemon's pure logic: decimals, subject IDs, threshold
 * files, interpretation, record IDs and the configuration file. */
#define _GNU_SOURCE
#include "controller/alcohol.h"
#include "controller/config.h"
#include "controller/interpret.h"
#include "controller/periods.h"
#include "controller/thresholds.h"
#include "controller/timefmt.h"
#include "controller/ulid.h"
#include "harness.h"
#include "instruments/driver.h"
#include "protocol/decimal.h"
#include "protocol/subject_id.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TODAY 20261204

static const char thresholds_text[] =
    "# test set\n"
    "%label\tunit tests\n"
    "oral-fluid\tscreen\tmethamphetamine\t50\tng/mL\t2023-06-01\t49 CFR 40.91(d)\n"
    "oral-fluid\tscreen\tthc\t4\tng/mL\t2023-06-01\t49 CFR 40.91(d)\n"
    "oral-fluid\tscreen\tthc\t25\tng/mL\t2026-01-01\troadside kit\n"
    "hair\tconfirm\tcocaine\t0.5\tng/mg\t2018-09-01\t938 Art. 9\n";

/* ---- decimals ---- */

START_TEST(decimal_parse_values)
{
    static const struct {
        const char *text;
        int64_t micro;
    } cases[] = {
        {"50", 50000000},   {"0.05", 50000}, {"120.5", 120500000},
        {"-1.5", -1500000}, {"+2", 2000000}, {"0.000001", 1},
        {".5", 500000},     {"7.", 7000000}, {"49.999999", 49999999},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t value = 0;
        ck_assert_msg(decimal_parse(cases[i].text, &value) == 0, "rejected %s", cases[i].text);
        ck_assert_msg(value == cases[i].micro, "%s gave %lld", cases[i].text, (long long)value);
    }
}
END_TEST

START_TEST(decimal_parse_rejects)
{
    static const char *const bad[] = {"",    "-",   ".",  "1.2.3", "1,5",           "0.0000001",
                                      "abc", "1e3", " 1", "1 ",    "10000000000000"};
    int64_t value;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(decimal_parse(bad[i], &value) != 0, "accepted '%s'", bad[i]);
    }
}
END_TEST

START_TEST(decimal_format_places)
{
    char out[32];

    decimal_format(50000000, 0, out, sizeof(out));
    ck_assert_str_eq(out, "50");
    decimal_format(120500000, 0, out, sizeof(out));
    ck_assert_str_eq(out, "120.5");
    decimal_format(120500000, 3, out, sizeof(out));
    ck_assert_str_eq(out, "120.500");
    decimal_format(-1, 0, out, sizeof(out));
    ck_assert_str_eq(out, "-0.000001");
    decimal_format(0, 3, out, sizeof(out));
    ck_assert_str_eq(out, "0.000");
}
END_TEST

/* ---- subject IDs ---- */

START_TEST(subject_resident_valid)
{
    struct subject_id id;
    char err[160];

    ck_assert_int_eq(subject_id_parse(" 999999199001011238 ", TODAY, &id, err, sizeof(err)), 0);
    ck_assert_str_eq(id.type, "resident");
    ck_assert_str_eq(id.number, "999999199001011238");
    ck_assert_int_eq(subject_id_parse("resident:999999199001011238", TODAY, &id, err, sizeof(err)),
                     0);
}
END_TEST

START_TEST(subject_resident_lowercase_x)
{
    struct subject_id id;
    char err[160];
    char number[19] = "99999919900101001";

    number[17] = subject_resident_check_char(number);
    number[18] = '\0';
    if (number[17] != 'X') {
        /* Find a sequence whose check character is X. */
        for (int seq = 0; seq < 1000 && number[17] != 'X'; seq++) {
            snprintf(number + 14, 4, "%03d", seq);
            number[17] = subject_resident_check_char(number);
        }
    }
    ck_assert_int_eq(number[17], 'X');
    number[17] = 'x';
    ck_assert_msg(subject_id_parse(number, TODAY, &id, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(id.number[17], 'X');
}
END_TEST

START_TEST(subject_resident_rejects)
{
    static const struct {
        const char *text;
        const char *reason;
    } cases[] = {
        {"99999919900101123", "18 characters"},
        {"999999199001011239", "check character is 9, expected 8"},
        {"99999919900230123X", "not a valid date"},
        {"999999203001011231", "in the future"},
        {"9999991990A101123X", "not a digit"},
        {"99999919900101123Y", "digit or X"},
        {"licence:123", "unknown ID type"},
        {"passport:", "empty"},
        {"passport:E12 345", "letters, digits"},
    };
    struct subject_id id;
    char err[160];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(subject_id_parse(cases[i].text, TODAY, &id, err, sizeof(err)) != 0,
                      "accepted %s", cases[i].text);
        ck_assert_msg(strstr(err, cases[i].reason) != NULL, "%s: '%s' lacks '%s'", cases[i].text,
                      err, cases[i].reason);
    }
}
END_TEST

START_TEST(subject_passport_kept)
{
    struct subject_id id;
    char err[160];

    ck_assert_int_eq(subject_id_parse("Passport:E12345678", TODAY, &id, err, sizeof(err)), 0);
    ck_assert_str_eq(id.type, "passport");
    ck_assert_str_eq(id.number, "E12345678");
}
END_TEST

START_TEST(subject_mask_shapes)
{
    char out[SUBJECT_MASKED_MAX];

    subject_id_mask("999999199001011238", out, sizeof(out));
    ck_assert_str_eq(out, "999999********1238");
    subject_id_mask("E12345678", out, sizeof(out));
    ck_assert_str_eq(out, "*******78");
}
END_TEST

/* ---- threshold files ---- */

START_TEST(thresholds_parse_rows)
{
    struct threshold_set set;
    char err[256];

    ck_assert_msg(thresholds_parse(thresholds_text, "t.tsv", &set, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_uint_eq(set.count, 4);
    ck_assert_str_eq(set.label, "unit tests");
    ck_assert_int_eq(strlen(set.version), 64);
    ck_assert_int_eq(set.rows[0].line, 3);
    ck_assert_int_eq(set.rows[3].cutoff_micro, 500000);
    thresholds_free(&set);
}
END_TEST

START_TEST(thresholds_version_ignores_comments)
{
    struct threshold_set a;
    struct threshold_set b;
    struct threshold_set c;
    char err[256];
    char *commented = malloc(strlen(thresholds_text) + 64);
    char *changed = strdup(thresholds_text);

    sprintf(commented, "# another comment\n\n%s", thresholds_text);
    *strstr(changed, "\t50\t") = '\0';
    strcat(changed, "\t51\tng/mL\t2023-06-01\tx\n");
    ck_assert_int_eq(thresholds_parse(thresholds_text, "a", &a, err, sizeof(err)), 0);
    ck_assert_int_eq(thresholds_parse(commented, "b", &b, err, sizeof(err)), 0);
    ck_assert_msg(thresholds_parse(changed, "c", &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(a.version, b.version);
    ck_assert_str_ne(a.version, c.version);
    thresholds_free(&a);
    thresholds_free(&b);
    thresholds_free(&c);
    free(commented);
    free(changed);
}
END_TEST

START_TEST(thresholds_reject_bad_rows)
{
    static const struct {
        const char *row;
        const char *reason;
    } cases[] = {
        {"oral-fluid\tscreen\tthc\t4\tmg/dL\t2023-06-01\tx\n", "unknown unit"},
        {"oral-fluid\tscreen\tthc\t-4\tng/mL\t2023-06-01\tx\n", "negative cutoff"},
        {"oral-fluid\tscreen\tthc\t4\tng/mL\t2023-06-01\tx\n", "duplicate of line 3"},
        {"saliva\tscreen\tthc\t4\tng/mL\t2023-06-01\tx\n", "unknown matrix"},
        {"oral-fluid\tquick\tthc\t4\tng/mL\t2023-06-01\tx\n", "unknown tier"},
        {"oral-fluid\tscreen\tthc\tfour\tng/mL\t2023-06-01\tx\n", "not a decimal"},
        {"oral-fluid\tscreen\tthc\t4\tng/mL\t06/01/2023\tx\n", "YYYY-MM-DD"},
        {"oral-fluid\tscreen\tthc\t4\tng/mL\t2023-06-01\n", "7 tab-separated"},
        {"oral-fluid\tscreen\tthc\t4\tng/mL\t2023-06-01\t\n", "source"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        struct threshold_set set;
        snprintf(text, sizeof(text),
                 "%%label\tx\n# c\noral-fluid\tscreen\tthc\t4\tng/mL\t"
                 "2023-06-01\tx\n%s",
                 cases[i].row);
        ck_assert_msg(thresholds_parse(text, "t.tsv", &set, err, sizeof(err)) != 0, "accepted %s",
                      cases[i].row);
        ck_assert_msg(strstr(err, "t.tsv:4: ") == err, "no file and line in '%s'", err);
        ck_assert_msg(strstr(err, cases[i].reason) != NULL, "'%s' lacks '%s'", err,
                      cases[i].reason);
        ck_assert_uint_eq(set.count, 0);
    }
}
END_TEST

START_TEST(thresholds_require_label)
{
    struct threshold_set set;
    char err[256];

    ck_assert_int_ne(thresholds_parse("hair\tconfirm\tcocaine\t0.5\tng/mg\t2018-09-01\tx\n", "t",
                                      &set, err, sizeof(err)),
                     0);
    ck_assert_ptr_nonnull(strstr(err, "%label"));
}
END_TEST

START_TEST(thresholds_row_by_date)
{
    struct threshold_set set;
    char err[256];

    ck_assert_int_eq(thresholds_parse(thresholds_text, "t", &set, err, sizeof(err)), 0);
    ck_assert_str_eq(thresholds_find(&set, "oral-fluid", "screen", "thc", 20251231)->cutoff_text,
                     "4");
    ck_assert_str_eq(thresholds_find(&set, "oral-fluid", "screen", "thc", 20260101)->cutoff_text,
                     "25");
    ck_assert_ptr_null(thresholds_find(&set, "oral-fluid", "screen", "thc", 20230531));
    ck_assert_ptr_null(thresholds_find(&set, "oral-fluid", "screen", "ketamine", TODAY));
    thresholds_free(&set);
}
END_TEST

START_TEST(thresholds_shipped_file_loads)
{
    struct threshold_set set;
    char err[512];
    char path[1024];

    snprintf(path, sizeof(path), "%s/etc/thresholds.tsv", harness_program("TOXLAB_SOURCE_DIR"));
    ck_assert_msg(thresholds_load(path, &set, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_nonnull(thresholds_find(&set, "oral-fluid", "screen", "methamphetamine", TODAY));
    ck_assert_ptr_null(thresholds_find(&set, "oral-fluid", "screen", "ketamine", TODAY));
    const struct threshold_row *hair = thresholds_find(&set, "hair", "confirm", "cocaine", TODAY);
    ck_assert_ptr_nonnull(hair);
    ck_assert_str_eq(hair->cutoff_text, "0.5");
    ck_assert_str_eq(hair->unit, "ng/mg");
    /* The blood cutoffs took effect on 2025-09-01: a specimen of the day before has none. */
    ck_assert_ptr_nonnull(thresholds_find(&set, "blood", "confirm", "ketamine", 20250901));
    ck_assert_ptr_null(thresholds_find(&set, "blood", "confirm", "ketamine", 20250831));
    ck_assert_ptr_null(thresholds_find(&set, "urine", "screen", "methamphetamine", TODAY));

    /* 200 pg/mg is exactly the 0.2 ng/mg hair cutoff; 199.999 pg/mg is under it. */
    struct reading_in in = {.matrix = "hair",
                            .tier = "confirm",
                            .analyte = "methamphetamine",
                            .unit = "pg/mg",
                            .collection_date = TODAY};
    struct interpretation verdict;
    in.value_micro = 200 * DECIMAL_SCALE;
    interpret_reading(&set, &in, &verdict);
    ck_assert_int_eq(verdict.outcome, OUTCOME_POSITIVE);
    in.value_micro = 199999 * DECIMAL_SCALE / 1000;
    interpret_reading(&set, &in, &verdict);
    ck_assert_int_eq(verdict.outcome, OUTCOME_NEGATIVE);
    thresholds_free(&set);
}
END_TEST

/* ---- interpretation ---- */

static struct threshold_set test_set;

static void load_test_set(void)
{
    char err[256];

    ck_assert_int_eq(thresholds_parse(thresholds_text, "t", &test_set, err, sizeof(err)), 0);
}

static void free_test_set(void)
{
    thresholds_free(&test_set);
}

static struct interpretation judge(const char *analyte, const char *value, const char *unit,
                                   bool over, bool under)
{
    struct interpretation out;
    struct reading_in in = {.matrix = "oral-fluid",
                            .tier = "screen",
                            .analyte = analyte,
                            .unit = unit,
                            .over_range = over,
                            .under_range = under,
                            .collection_date = TODAY};

    ck_assert(decimal_parse(value, &in.value_micro) == 0);
    interpret_reading(&test_set, &in, &out);
    return out;
}

START_TEST(interpret_cutoff_edges)
{
    ck_assert_int_eq(judge("methamphetamine", "49.999999", "ng/mL", false, false).outcome,
                     OUTCOME_NEGATIVE);
    ck_assert_int_eq(judge("methamphetamine", "50", "ng/mL", false, false).outcome,
                     OUTCOME_PRESUMPTIVE);
    ck_assert_int_eq(judge("methamphetamine", "50.000001", "ng/mL", false, false).outcome,
                     OUTCOME_PRESUMPTIVE);
    ck_assert_int_eq(judge("methamphetamine", "0", "ng/mL", false, false).outcome,
                     OUTCOME_NEGATIVE);
    ck_assert_int_eq(judge("methamphetamine", "50", "ug/L", false, false).outcome,
                     OUTCOME_PRESUMPTIVE);
}
END_TEST

START_TEST(interpret_row_recorded)
{
    struct interpretation out = judge("thc", "30", "ng/mL", false, false);

    ck_assert_ptr_nonnull(out.row);
    ck_assert_int_eq(out.row->line, 5);
    ck_assert_str_eq(out.row->source, "roadside kit");
}
END_TEST

START_TEST(interpret_invalid_reasons)
{
    struct interpretation out = judge("ketamine", "900", "ng/mL", false, false);

    ck_assert_int_eq(out.outcome, OUTCOME_INVALID);
    ck_assert_str_eq(out.reason, "no cutoff configured");
    out = judge("methamphetamine", "90", "ng/mg", false, false);
    ck_assert_int_eq(out.outcome, OUTCOME_INVALID);
    ck_assert_str_eq(out.reason, "unit cannot be converted");
    out = judge("methamphetamine", "90", "furlongs", false, false);
    ck_assert_int_eq(out.outcome, OUTCOME_INVALID);
}
END_TEST

START_TEST(interpret_device_invalid)
{
    struct interpretation out;
    struct reading_in in = {.matrix = "oral-fluid",
                            .tier = "screen",
                            .analyte = "thc",
                            .value_micro = 900000000,
                            .unit = "ng/mL",
                            .invalid_reason = "control line failed",
                            .collection_date = TODAY};

    interpret_reading(&test_set, &in, &out);
    ck_assert_int_eq(out.outcome, OUTCOME_INVALID);
    ck_assert_str_eq(out.reason, "control line failed");
}
END_TEST

START_TEST(interpret_censored_values)
{
    /* ">x" is positive only when x >= cutoff; "<x" negative only when x <= cutoff. */
    ck_assert_int_eq(judge("methamphetamine", "50", "ng/mL", true, false).outcome,
                     OUTCOME_PRESUMPTIVE);
    ck_assert_int_eq(judge("methamphetamine", "40", "ng/mL", true, false).outcome, OUTCOME_INVALID);
    ck_assert_int_eq(judge("methamphetamine", "50", "ng/mL", false, true).outcome,
                     OUTCOME_NEGATIVE);
    ck_assert_int_eq(judge("methamphetamine", "60", "ng/mL", false, true).outcome, OUTCOME_INVALID);
}
END_TEST

START_TEST(interpret_hair_units)
{
    struct interpretation out;
    struct reading_in in = {.matrix = "hair",
                            .tier = "confirm",
                            .analyte = "cocaine",
                            .unit = "pg/mg",
                            .collection_date = TODAY};

    in.value_micro = 499999999; /* 499.999999 pg/mg is below 0.5 ng/mg */
    interpret_reading(&test_set, &in, &out);
    ck_assert_int_eq(out.outcome, OUTCOME_NEGATIVE);
    in.value_micro = 500000000;
    interpret_reading(&test_set, &in, &out);
    ck_assert_int_eq(out.outcome, OUTCOME_POSITIVE);
}
END_TEST

static char *write_config(const char *text);

/* ---- times ---- */

START_TEST(time_parse_valid)
{
    static const struct {
        const char *text;
        int64_t epoch_ms;
    } cases[] = {
        {"2026-12-04T09:30:00Z", 1796376600000LL},
        {"2026-12-04T17:30:00+08:00", 1796376600000LL},
        {"2026-12-04T09:30:00.250z", 1796376600250LL},
        {"2024-02-29T00:00:00-01:30", 1709170200000LL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t value = 0;
        ck_assert_msg(time_parse_rfc3339(cases[i].text, &value) == 0, "rejected %s", cases[i].text);
        ck_assert_msg(value == cases[i].epoch_ms, "%s gave %lld", cases[i].text, (long long)value);
    }
}
END_TEST

START_TEST(time_parse_rejects)
{
    static const char *const bad[] = {
        "2026-02-31T10:00:00Z",  "2026-01-01T10:00:00+99:99", "0001-01-01T00:00:00Z",
        " 2026-1-1T1:2:3Z",      "2026-01-01T10:00:00+5:00",  "2026-01-01T24:00:00Z",
        "2026-01-01T10:00:00",   "2026-01-01T10:00:00Zjunk",  "2026-01-01 10:00:00Z",
        "2026-01-01T10:00:00.Z", "2025-02-29T10:00:00Z",      "",
    };
    int64_t value;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(time_parse_rfc3339(bad[i], &value) != 0, "accepted '%s'", bad[i]);
    }
}
END_TEST

START_TEST(date_parse_checks_calendar)
{
    ck_assert_int_eq(time_parse_date("2024-02-29"), 20240229);
    ck_assert_int_eq(time_parse_date("2023-02-29"), 0);
    ck_assert_int_eq(time_parse_date("2023-02-30"), 0);
    ck_assert_int_eq(time_parse_date("2023-13-01"), 0);
    ck_assert_int_eq(time_parse_date("2023-6-01"), 0);
    ck_assert_int_eq(time_parse_date("2023-06-01x"), 0);
}
END_TEST

/* ---- licence periods ---- */

START_TEST(period_edges)
{
    static const struct {
        int event;
        int years;
        int last_day;
    } cases[] = {
        {20230510, 3, 20260510}, {20240229, 3, 20270228},  {20240229, 4, 20280229},
        {20200131, 5, 20250131}, {20161231, 10, 20261231}, {20230228, 1, 20240228},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(period_last_day(cases[i].event, cases[i].years) == cases[i].last_day,
                      "%d + %d years gave %d", cases[i].event, cases[i].years,
                      period_last_day(cases[i].event, cases[i].years));
    }
}
END_TEST

START_TEST(period_covers_boundaries)
{
    /* A confirmed use on 2023-05-10 refuses an application on 2026-05-10, not on 2026-05-11. */
    ck_assert(period_covers(20230510, 3, 20260509));
    ck_assert(period_covers(20230510, 3, 20260510));
    ck_assert(!period_covers(20230510, 3, 20260511));
    ck_assert(period_covers(20240229, 3, 20270228));
    ck_assert(!period_covers(20240229, 3, 20270301));
    /* Evidence collected after the date asked about does not restrict it. */
    ck_assert(!period_covers(20260601, 3, 20260531));
}
END_TEST

/* ---- alcohol bands ---- */

static enum alcohol_band band_at(uint32_t breath_raw, int factor)
{
    return alcohol_band_of(alcohol_blood_micro(breath_raw, factor), 20 * DECIMAL_SCALE,
                           80 * DECIMAL_SCALE);
}

START_TEST(alcohol_band_edges)
{
    static const struct {
        uint32_t raw; /* 0.1 ug/L */
        int factor;
        enum alcohol_band band;
    } cases[] = {
        {909, 2200, ALCOHOL_BELOW},  {910, 2200, ALCOHOL_DRINK},  {3636, 2200, ALCOHOL_DRINK},
        {3637, 2200, ALCOHOL_DRUNK}, {999, 2000, ALCOHOL_BELOW},  {1000, 2000, ALCOHOL_DRINK},
        {0, 2200, ALCOHOL_BELOW},    {4000, 2000, ALCOHOL_DRUNK}, {3999, 2000, ALCOHOL_DRINK},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(band_at(cases[i].raw, cases[i].factor) == cases[i].band,
                      "%u.%u ug/L at factor %d gave %s", cases[i].raw / 10, cases[i].raw % 10,
                      cases[i].factor, alcohol_band_name(band_at(cases[i].raw, cases[i].factor)));
    }
}
END_TEST

START_TEST(alcohol_blood_equivalent_exact)
{
    char text[32];

    /* 90.9 ug/L at 1:2200 is 19.998 mg/100 mL, not the 20.0 a person reads. */
    decimal_format(alcohol_blood_micro(909, 2200), 1, text, sizeof(text));
    ck_assert_str_eq(text, "19.998");
    decimal_format(alcohol_blood_micro(4123, 2200), 1, text, sizeof(text));
    ck_assert_str_eq(text, "90.706");
    ck_assert_int_eq(alcohol_blood_micro(3637, 2200), 80014000);
}
END_TEST

START_TEST(config_rejects_unknown_timezone)
{
    struct config config;
    char err[768];

    config_defaults(&config);
    ck_assert_int_eq(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_int_eq(config_override(&config, "daemon.timezone=Mars/Olympus", err, sizeof(err)), 0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "timezone 'Mars/Olympus'"));
    ck_assert_int_eq(config_override(&config, "daemon.timezone=../../etc/passwd", err, sizeof(err)),
                     0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
}
END_TEST

/* The hair driver needs a method and a map of analyte codes that parses. */
START_TEST(config_hair_instrument)
{
    struct config config;
    char err[768];
    char name[32];

    config_defaults(&config);
    ck_assert_int_eq(config_override(&config, "instrument.hair-1.driver=hair", err, sizeof(err)),
                     0);
    ck_assert_int_eq(
        config_override(&config, "instrument.hair-1.device=/dev/null", err, sizeof(err)), 0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "missing key 'method'"));
    ck_assert_int_ne(config_override(&config, "instrument.hair-1.method=gc-ms", err, sizeof(err)),
                     0);
    ck_assert_int_eq(
        config_override(&config, "instrument.hair-1.method=lc-ms/ms", err, sizeof(err)), 0);
    ck_assert_int_eq(config_override(&config, "instrument.hair-1.analytes=MAMP methamphetamine",
                                     err, sizeof(err)),
                     0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "analytes: invalid pair"));
    ck_assert_int_eq(
        config_override(&config,
                        "instrument.hair-1.analytes= MAMP = methamphetamine ,AMP=amphetamine", err,
                        sizeof(err)),
        0);
    ck_assert_msg(config_validate(&config, err, sizeof(err)) == 0, "%s", err);

    const struct instrument_config *hair = config_find_instrument(&config, "hair-1");
    ck_assert_ptr_nonnull(hair);
    ck_assert(config_map_analyte(hair, "MAMP", name, sizeof(name)));
    ck_assert_str_eq(name, "methamphetamine");
    ck_assert(config_map_analyte(hair, "AMP", name, sizeof(name)));
    ck_assert_str_eq(name, "amphetamine");
    ck_assert(!config_map_analyte(hair, "THC", name, sizeof(name)));
    ck_assert(!config_map_analyte(hair, "MAM", name, sizeof(name)));
    ck_assert_int_eq(hair->astm_frame_timeout_ms, 30000);
    ck_assert_int_eq(hair->astm_reply_timeout_ms, 15000);
}
END_TEST

START_TEST(device_text_cleaned)
{
    char text[] = "A\nZ toxlabd notice: fake\xff";

    driver_clean_text(text);
    ck_assert_str_eq(text, "A?Z toxlabd notice: fake?");
}
END_TEST

START_TEST(thresholds_reject_nul_byte)
{
    char *folder = harness_tmpdir("nul");
    char path[600];
    char err[512];
    struct threshold_set set;
    static const char text[] = "%label\tx\noral-fluid\tscreen\tthc\t4\tng/mL\t2023-06-01\tx\n"
                               "\0oral-fluid\tscreen\tcocaine\t1\tng/mL\t2023-06-01\tx\n";

    snprintf(path, sizeof(path), "%s/t.tsv", folder);
    FILE *file = fopen(path, "w");
    ck_assert_ptr_nonnull(file);
    fwrite(text, 1, sizeof(text) - 1, file);
    fclose(file);
    ck_assert_int_ne(thresholds_load(path, &set, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "NUL byte"));
    free(folder);
}
END_TEST

START_TEST(config_alcohol_source_required)
{
    struct config config;
    char err[768];

    config_defaults(&config);
    ck_assert_int_eq(config_override(&config, "alcohol.factor=2100", err, sizeof(err)), 0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "set source to where factor 2100"));
    ck_assert_int_eq(config_override(&config, "alcohol.source=country rule 7", err, sizeof(err)),
                     0);
    ck_assert_int_eq(config_validate(&config, err, sizeof(err)), 0);
}
END_TEST

START_TEST(config_alcohol_section)
{
    struct config config;
    char err[768];
    char *path = write_config("[alcohol]\nfactor = 2100\ndrink_limit = 50\ndrunk_limit = 80\n"
                              "blood_on = drunk, refusal\nsource = local rule\n");

    config_defaults(&config);
    ck_assert_msg(config_load(&config, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(config.alcohol.factor, 2100);
    ck_assert_int_eq(config.alcohol.drink_micro, 50 * DECIMAL_SCALE);
    ck_assert_uint_eq(config.alcohol.blood_on, BLOOD_ON_DRUNK | BLOOD_ON_REFUSAL);
    ck_assert_str_eq(config.alcohol.source, "local rule");
    ck_assert_int_eq(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_int_ne(config_override(&config, "alcohol.blood_on=drunk, sleepy", err, sizeof(err)),
                     0);
    ck_assert_int_ne(config_override(&config, "alcohol.factor=22", err, sizeof(err)), 0);
    ck_assert_int_eq(config_override(&config, "alcohol.drunk_limit=40", err, sizeof(err)), 0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "drunk_limit 40 is not above drink_limit 50"));
    ck_assert_int_eq(config_override(&config, "alcohol.blood_on=none", err, sizeof(err)), 0);
    ck_assert_uint_eq(config.alcohol.blood_on, 0);
    ck_assert_int_ne(config_override(&config, "alcohol.blood_on=", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "use none, or drunk"));
    free(path);
}
END_TEST

/* ---- record IDs ---- */

START_TEST(ulid_known_encoding)
{
    uint8_t zeros[10] = {0};
    uint8_t ones[10];
    char out[ULID_TEXT_LEN + 1];

    memset(ones, 0xff, sizeof(ones));
    ulid_encode(0, zeros, out);
    ck_assert_str_eq(out, "00000000000000000000000000");
    ulid_encode(0xFFFFFFFFFFFFLL, ones, out);
    ck_assert_str_eq(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    ulid_encode(1, zeros, out);
    ck_assert_str_eq(out, "00000000010000000000000000");
}
END_TEST

START_TEST(record_ids_ordered_and_prefixed)
{
    char first[RECORD_ID_SIZE];
    char second[RECORD_ID_SIZE];

    record_id_new("VAN01", first);
    ck_assert_int_eq(strncmp(first, "VAN01-", 6), 0);
    ck_assert_int_eq(strlen(first), 6 + ULID_TEXT_LEN);
    do {
        record_id_new("VAN01", second);
    } while (strncmp(first, second, 16) == 0);
    ck_assert_int_lt(strcmp(first, second), 0);
}
END_TEST

/* ---- configuration ---- */

static char *write_config(const char *text)
{
    char *folder = harness_tmpdir("config");
    char *path;

    ck_assert(asprintf(&path, "%s/toxlab.conf", folder) > 0);
    harness_write_file(path, text);
    free(folder);
    return path;
}

START_TEST(config_reads_keys)
{
    struct config config;
    char err[768];
    char *path = write_config("[daemon]\nlab_id = VAN07\nsocket = /tmp/x.sock\n\n"
                              "cache_kb = 4096\n"
                              "[instrument.saliva-1]\ndriver = saliva\ndevice = /dev/pts/9\n"
                              "response_timeout_ms = 250\nparity = N\n");

    config_defaults(&config);
    ck_assert_int_eq(config.cache_kb, 1024);
    ck_assert_msg(config_load(&config, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(config.cache_kb, 4096);
    ck_assert_str_eq(config.lab_id, "VAN07");
    ck_assert_uint_eq(config.instrument_count, 1);
    ck_assert_int_eq(config.instruments[0].response_timeout_ms, 250);
    ck_assert_int_eq(config.instruments[0].parity, 'N');
    ck_assert_int_eq(config.instruments[0].baud, 19200);
    ck_assert_int_eq(config_validate(&config, err, sizeof(err)), 0);
    free(path);
}
END_TEST

START_TEST(config_unknown_key_names_line)
{
    struct config config;
    char err[768];
    char *path = write_config("[daemon]\nlab_id = VAN07\nsocket_path = /tmp/x.sock\n");

    config_defaults(&config);
    ck_assert_int_ne(config_load(&config, path, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, ":3: unknown key 'socket_path' in [daemon]") != NULL, "%s", err);
    free(path);
}
END_TEST

START_TEST(config_bad_value_rejected)
{
    struct config config;
    char err[768];
    char *path = write_config("[instrument.saliva-1]\ndriver = saliva\nbaud = fast\n");

    config_defaults(&config);
    ck_assert_int_ne(config_load(&config, path, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, ":3: invalid value 'fast' for key 'baud'") != NULL, "%s", err);
    free(path);
}
END_TEST

START_TEST(config_override_applies)
{
    struct config config;
    char err[768];

    config_defaults(&config);
    ck_assert_int_eq(config_override(&config, "daemon.database=/tmp/a.db", err, sizeof(err)), 0);
    ck_assert_str_eq(config.database, "/tmp/a.db");
    ck_assert_int_eq(config_override(&config, "instrument.s-2.device=/dev/pts/4", err, sizeof(err)),
                     0);
    ck_assert_str_eq(config_find_instrument(&config, "s-2")->device, "/dev/pts/4");
    ck_assert_int_ne(config_override(&config, "daemon.nothing=1", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'nothing'"));
    ck_assert_int_ne(config_override(&config, "noequals", err, sizeof(err)), 0);
    ck_assert_int_ne(config_validate(&config, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "missing key 'driver'"));
}
END_TEST

static Suite *core_suite(void)
{
    Suite *suite = suite_create("core");
    TCase *numbers = tcase_create("decimal");
    TCase *ids = tcase_create("subject_id");
    TCase *sets = tcase_create("thresholds");
    TCase *judging = tcase_create("interpret");
    TCase *records = tcase_create("ulid");
    TCase *configs = tcase_create("config");

    tcase_add_test(numbers, decimal_parse_values);
    tcase_add_test(numbers, decimal_parse_rejects);
    tcase_add_test(numbers, decimal_format_places);
    tcase_add_test(ids, subject_resident_valid);
    tcase_add_test(ids, subject_resident_lowercase_x);
    tcase_add_test(ids, subject_resident_rejects);
    tcase_add_test(ids, subject_passport_kept);
    tcase_add_test(ids, subject_mask_shapes);
    tcase_add_test(sets, thresholds_parse_rows);
    tcase_add_test(sets, thresholds_version_ignores_comments);
    tcase_add_test(sets, thresholds_reject_bad_rows);
    tcase_add_test(sets, thresholds_require_label);
    tcase_add_test(sets, thresholds_row_by_date);
    tcase_add_test(sets, thresholds_shipped_file_loads);
    tcase_add_checked_fixture(judging, load_test_set, free_test_set);
    tcase_add_test(judging, interpret_cutoff_edges);
    tcase_add_test(judging, interpret_row_recorded);
    tcase_add_test(judging, interpret_invalid_reasons);
    tcase_add_test(judging, interpret_device_invalid);
    tcase_add_test(judging, interpret_censored_values);
    tcase_add_test(judging, interpret_hair_units);
    tcase_add_test(judging, alcohol_band_edges);
    tcase_add_test(judging, period_edges);
    tcase_add_test(judging, period_covers_boundaries);
    tcase_add_test(numbers, time_parse_valid);
    tcase_add_test(numbers, time_parse_rejects);
    tcase_add_test(numbers, date_parse_checks_calendar);
    tcase_add_test(judging, alcohol_blood_equivalent_exact);
    tcase_add_test(configs, config_alcohol_section);
    tcase_add_test(configs, config_hair_instrument);
    tcase_add_test(configs, config_alcohol_source_required);
    tcase_add_test(configs, config_rejects_unknown_timezone);
    tcase_add_test(configs, device_text_cleaned);
    tcase_add_test(sets, thresholds_reject_nul_byte);
    tcase_add_test(records, ulid_known_encoding);
    tcase_add_test(records, record_ids_ordered_and_prefixed);
    tcase_add_test(configs, config_reads_keys);
    tcase_add_test(configs, config_unknown_key_names_line);
    tcase_add_test(configs, config_bad_value_rejected);
    tcase_add_test(configs, config_override_applies);
    TCase *all[] = {numbers, ids, sets, judging, records, configs};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        tcase_set_timeout(all[i], HARNESS_CASE_TIMEOUT);
        suite_add_tcase(suite, all[i]);
    }
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(core_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
