/* Unit tests of the ASTM E1394 record codec in protocol/astm_record.c:
 * delimiters, parsing, escapes both ways, the writer and the assembly of
 * records from frame text. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/astm_record.h"

#define CASE_TIMEOUT 10 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */

static struct astm_delimiters standard(void)
{
    struct astm_delimiters delimiters;

    astm_delimiters_default(&delimiters);
    return delimiters;
}

static void parse(const char *text, const struct astm_delimiters *delimiters,
                  struct astm_record *record)
{
    astm_record_init(record);
    ck_assert_int_eq(astm_record_parse(text, strlen(text), delimiters, record), 0);
}

/* Asserts the text of one component. */
static void assert_value(const struct astm_record *record, unsigned field, unsigned repeat,
                         unsigned component, const char *expected)
{
    size_t len;
    const char *text = astm_record_get(record, field, repeat, component, &len);

    ck_assert_msg(text != NULL, "no value at %u.%u.%u", field, repeat, component);
    ck_assert_uint_eq(len, strlen(expected));
    ck_assert_mem_eq(text, expected, len);
}

/* ---- Delimiters ----------------------------------------------------------------- */

START_TEST(delimiters_standard_header)
{
    struct astm_delimiters delimiters;
    const char *header = "H|\\^&|||host";

    ck_assert_int_eq(astm_delimiters_from_header(header, strlen(header), &delimiters), 0);
    ck_assert_int_eq(delimiters.field, '|');
    ck_assert_int_eq(delimiters.repeat, '\\');
    ck_assert_int_eq(delimiters.component, '^');
    ck_assert_int_eq(delimiters.escape, '&');
}
END_TEST

START_TEST(delimiters_repeat_at_sign)
{
    /* A GeneXpert declares H|@^\ : repeat @, component ^, escape \. */
    struct astm_delimiters delimiters;
    const char *header = "H|@^\\|URM";

    ck_assert_int_eq(astm_delimiters_from_header(header, strlen(header), &delimiters), 0);
    ck_assert_int_eq(delimiters.repeat, '@');
    ck_assert_int_eq(delimiters.component, '^');
    ck_assert_int_eq(delimiters.escape, '\\');
}
END_TEST

START_TEST(delimiters_doubled_backslash)
{
    /* A Yumizen H550 writes the definition as \\^& (the backslash doubled). */
    struct astm_delimiters delimiters;
    const char *header = "H|\\\\^&|||H550";

    ck_assert_int_eq(astm_delimiters_from_header(header, strlen(header), &delimiters), 0);
    ck_assert_int_eq(delimiters.repeat, '\\');
    ck_assert_int_eq(delimiters.component, '^');
    ck_assert_int_eq(delimiters.escape, '&');
}
END_TEST

START_TEST(delimiters_end_of_record)
{
    struct astm_delimiters delimiters;

    ck_assert_int_eq(astm_delimiters_from_header("H!@#$", 5, &delimiters), 0);
    ck_assert_int_eq(delimiters.field, '!');
    ck_assert_int_eq(delimiters.escape, '$');
}
END_TEST

START_TEST(delimiters_invalid)
{
    struct astm_delimiters delimiters = standard();
    const char *cases[] = {
        "H",        /* no field delimiter */
        "P|\\^&",   /* not an H record */
        "H|\\^|",   /* two delimiters */
        "H|\\^&#|", /* four */
        "H|\\^a|",  /* a letter */
        "H|\\ &|",  /* a space */
        "Ha\\^&",   /* a letter as field delimiter */
        "H|\\\t&|", /* a control character */
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(astm_delimiters_from_header(cases[i], strlen(cases[i]), &delimiters),
                         -EINVAL);
    }
    ck_assert_int_eq(delimiters.field, '|'); /* unchanged after failures */
    ck_assert_int_eq(delimiters.repeat, '\\');
}
END_TEST

/* ---- Parsing -------------------------------------------------------------------- */

START_TEST(parse_fields_repeats_components)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;

    parse("O|1|S-1^2||^^^THC\\^^^MET|R", &delimiters, &record);
    ck_assert_int_eq(astm_record_type(&record), 'O');
    ck_assert_uint_eq(astm_record_field_count(&record), 6);
    assert_value(&record, 1, 1, 1, "O");
    assert_value(&record, 2, 1, 1, "1");
    assert_value(&record, 3, 1, 1, "S-1");
    assert_value(&record, 3, 1, 2, "2");
    assert_value(&record, 4, 1, 1, "");
    ck_assert_uint_eq(astm_record_repeat_count(&record, 5), 2);
    ck_assert_uint_eq(astm_record_component_count(&record, 5, 1), 4);
    assert_value(&record, 5, 1, 4, "THC");
    assert_value(&record, 5, 2, 4, "MET");
    assert_value(&record, 6, 1, 1, "R");
    ck_assert_ptr_null(astm_record_get(&record, 7, 1, 1, NULL));
    ck_assert_ptr_null(astm_record_get(&record, 5, 3, 1, NULL));
    astm_record_free(&record);
}
END_TEST

START_TEST(parse_trailing_empty_and_omitted)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record with_empties;
    struct astm_record omitted;

    parse("R|1|^^^A|1.5|||", &delimiters, &with_empties);
    ck_assert_uint_eq(astm_record_field_count(&with_empties), 7);
    assert_value(&with_empties, 7, 1, 1, "");

    parse("R|1|^^^A|1.5", &delimiters, &omitted);
    ck_assert_uint_eq(astm_record_field_count(&omitted), 4);
    ck_assert_ptr_null(astm_record_get(&omitted, 5, 1, 1, NULL));

    /* Trailing empty components stay, as sent. */
    struct astm_record components;
    parse("R|1|40^^", &delimiters, &components);
    ck_assert_uint_eq(astm_record_component_count(&components, 3, 1), 3);
    assert_value(&components, 3, 1, 3, "");

    astm_record_free(&with_empties);
    astm_record_free(&omitted);
    astm_record_free(&components);
}
END_TEST

START_TEST(parse_header_keeps_definition)
{
    struct astm_delimiters delimiters;
    struct astm_record record;
    const char *header = "H|\\\\^&|||H550^909^1.2|||||||Q|LIS2-A2|20240912070504";

    ck_assert_int_eq(astm_delimiters_from_header(header, strlen(header), &delimiters), 0);
    parse(header, &delimiters, &record);
    assert_value(&record, 1, 1, 1, "H");
    assert_value(&record, 2, 1, 1, "|\\\\^&");
    ck_assert_uint_eq(astm_record_component_count(&record, 2, 1), 1);
    assert_value(&record, 5, 1, 2, "909");
    assert_value(&record, 14, 1, 1, "20240912070504");
    astm_record_free(&record);
}
END_TEST

START_TEST(parse_header_alone)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record bare;
    struct astm_record definition_only;

    parse("H", &delimiters, &bare);
    ck_assert_uint_eq(astm_record_field_count(&bare), 2);
    assert_value(&bare, 2, 1, 1, "");

    parse("H|\\^&", &delimiters, &definition_only);
    ck_assert_uint_eq(astm_record_field_count(&definition_only), 2);
    assert_value(&definition_only, 2, 1, 1, "|\\^&");
    astm_record_free(&bare);
    astm_record_free(&definition_only);
}
END_TEST

START_TEST(parse_other_delimiters)
{
    struct astm_delimiters delimiters = {'|', '@', '^', '\\'};
    struct astm_record record;

    parse("R|1|^MTB^^Xpert@^RIF|NOT DETECTED^|x\\F\\y", &delimiters, &record);
    assert_value(&record, 3, 1, 2, "MTB");
    assert_value(&record, 3, 2, 2, "RIF");
    assert_value(&record, 4, 1, 1, "NOT DETECTED");
    assert_value(&record, 5, 1, 1, "x|y");
    astm_record_free(&record);
}
END_TEST

START_TEST(parse_empty_rejected)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;

    astm_record_init(&record);
    ck_assert_int_eq(astm_record_parse("", 0, &delimiters, &record), -EINVAL);
    astm_record_free(&record);
}
END_TEST

/* ---- Escapes -------------------------------------------------------------------- */

START_TEST(escapes_resolved)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;

    parse("C|1|a&F&b&S&c&R&d&E&e|&X0D0A&|&x41&|&X4a&", &delimiters, &record);
    assert_value(&record, 3, 1, 1, "a|b^c\\d&e");
    assert_value(&record, 4, 1, 1, "\r\n");
    assert_value(&record, 5, 1, 1, "&x41&"); /* lower-case x is not the hex escape */
    assert_value(&record, 6, 1, 1, "J");
    astm_record_free(&record);
}
END_TEST

START_TEST(escapes_nul_byte)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;
    size_t len;

    parse("C|1|a&X00&b", &delimiters, &record);
    const char *text = astm_record_get(&record, 3, 1, 1, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(text, "a\0b", 3);
    astm_record_free(&record);
}
END_TEST

START_TEST(escapes_unknown_kept)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;

    parse("C|1|&H&bold&N&|&X4&|&X&|&Zlocal&|a&b|&&|50 & 60", &delimiters, &record);
    assert_value(&record, 3, 1, 1, "&H&bold&N&");
    assert_value(&record, 4, 1, 1, "&X4&"); /* an odd number of hex digits */
    assert_value(&record, 5, 1, 1, "&X&");
    assert_value(&record, 6, 1, 1, "&Zlocal&");
    assert_value(&record, 7, 1, 1, "a&b"); /* no closing escape character */
    assert_value(&record, 8, 1, 1, "&&");
    assert_value(&record, 9, 1, 1, "50 & 60");
    astm_record_free(&record);
}
END_TEST

/* ---- Writing -------------------------------------------------------------------- */

static void write_record(const struct astm_record *record, const struct astm_delimiters *d,
                         const char *expected)
{
    struct astm_buffer out = {NULL, 0, 0};

    ck_assert_int_eq(astm_record_write(record, d, &out), 0);
    ck_assert_str_eq(out.data, expected);
    astm_buffer_free(&out);
}

static void add(struct astm_record *record, unsigned field, unsigned repeat, unsigned component,
                const char *text)
{
    ck_assert_int_eq(astm_record_add(record, field, repeat, component, text, strlen(text)), 0);
}

START_TEST(write_escapes_delimiters)
{
    struct astm_delimiters delimiters = standard();
    struct astm_record record;

    astm_record_init(&record);
    add(&record, 1, 1, 1, "C");
    add(&record, 2, 1, 1, "1");
    add(&record, 4, 1, 1, "a|b^c\\d&e\r\x01");
    write_record(&record, &delimiters, "C|1||a&F&b&S&c&R&d&E&e&X0D&&X01&\r");
    astm_record_free(&record);
}
END_TEST

START_TEST(write_order_with_announced_delimiters)
{
    /* An order for an analyzer that announced H|@^\ : repeats with @,
     * escapes with backslash. */
    struct astm_delimiters delimiters = {'|', '@', '^', '\\'};
    struct astm_record header;
    struct astm_record order;

    astm_record_init(&header);
    add(&header, 1, 1, 1, "H");
    add(&header, 5, 1, 1, "toxlab");
    add(&header, 12, 1, 1, "P");
    write_record(&header, &delimiters, "H|@^\\|||toxlab|||||||P\r");

    astm_record_init(&order);
    add(&order, 1, 1, 1, "O");
    add(&order, 2, 1, 1, "1");
    add(&order, 3, 1, 1, "HAIR@0001");
    add(&order, 5, 1, 4, "THC");
    add(&order, 5, 2, 4, "MET^AMP");
    add(&order, 6, 1, 1, "R");
    write_record(&order, &delimiters, "O|1|HAIR\\R\\0001||^^^THC@^^^MET\\S\\AMP|R\r");
    astm_record_free(&header);
    astm_record_free(&order);
}
END_TEST

START_TEST(write_query_answer)
{
    /* The reply to a Q record: H, P with the subject reference in P.3, O, L. */
    struct astm_delimiters delimiters = standard();
    struct astm_record records[4];
    struct astm_buffer out = {NULL, 0, 0};

    for (int i = 0; i < 4; i++) {
        astm_record_init(&records[i]);
    }
    add(&records[0], 1, 1, 1, "H");
    add(&records[1], 1, 1, 1, "P");
    add(&records[1], 2, 1, 1, "1");
    add(&records[1], 3, 1, 1, "VAN01-REF");
    add(&records[2], 1, 1, 1, "O");
    add(&records[2], 2, 1, 1, "1");
    add(&records[2], 3, 1, 1, "HAIR-0001");
    add(&records[2], 5, 1, 4, "MET");
    add(&records[3], 1, 1, 1, "L");
    add(&records[3], 2, 1, 1, "1");
    add(&records[3], 3, 1, 1, "F");
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(astm_record_write(&records[i], &delimiters, &out), 0);
        astm_record_free(&records[i]);
    }
    ck_assert_str_eq(out.data, "H|\\^&\rP|1|VAN01-REF\rO|1|HAIR-0001||^^^MET\rL|1|F\r");
    astm_buffer_free(&out);
}
END_TEST

START_TEST(write_rejects_bad_positions)
{
    struct astm_record record;
    struct astm_delimiters delimiters = standard();
    struct astm_buffer out = {NULL, 0, 0};

    astm_record_init(&record);
    ck_assert_int_eq(astm_record_write(&record, &delimiters, &out), -EINVAL);
    add(&record, 1, 1, 1, "R");
    add(&record, 3, 1, 1, "x");
    ck_assert_int_eq(astm_record_add(&record, 3, 1, 1, "y", 1), -EINVAL);
    ck_assert_int_eq(astm_record_add(&record, 2, 1, 1, "y", 1), -EINVAL);
    ck_assert_int_eq(astm_record_add(&record, 0, 1, 1, "y", 1), -EINVAL);
    ck_assert_int_eq(astm_record_add(&record, 4, 0, 1, "y", 1), -EINVAL);
    astm_record_free(&record);
}
END_TEST

/* Parses text, writes it and parses it again. Both parses must match, except
 * for the delimiter declaration of an H record. */
static void assert_round_trip(const char *text, const struct astm_delimiters *delimiters)
{
    struct astm_record first;
    struct astm_record second;
    struct astm_buffer out = {NULL, 0, 0};

    parse(text, delimiters, &first);
    ck_assert_int_eq(astm_record_write(&first, delimiters, &out), 0);
    ck_assert_uint_gt(out.len, 0);
    ck_assert_int_eq(out.data[out.len - 1], '\r');
    astm_record_init(&second);
    ck_assert_int_eq(astm_record_parse(out.data, out.len - 1, delimiters, &second), 0);
    ck_assert_uint_eq(first.count, second.count);
    for (size_t i = 0; i < first.count; i++) {
        const struct astm_value *a = &first.values[i];
        const struct astm_value *b = &second.values[i];

        ck_assert_uint_eq(a->field, b->field);
        ck_assert_uint_eq(a->repeat, b->repeat);
        ck_assert_uint_eq(a->component, b->component);
        if (astm_record_type(&first) == 'H' && a->field == 2) {
            continue; /* the writer puts the delimiters in use there */
        }
        ck_assert_uint_eq(a->len, b->len);
        ck_assert_mem_eq(first.text + a->offset, second.text + b->offset, a->len);
    }
    astm_buffer_free(&out);
    astm_record_free(&first);
    astm_record_free(&second);
}

START_TEST(round_trip_write_parse)
{
    struct astm_delimiters delimiters = standard();
    struct astm_delimiters genexpert = {'|', '@', '^', '\\'};

    assert_round_trip("H|\\^&|||toxlab^1.0|||||||P|LIS2-A2|20261204", &delimiters);
    assert_round_trip("R|1|^^^MET|0.25|ng/mg|0.2^1.0|H||F||||20261204101400", &delimiters);
    assert_round_trip("C|1|I|a&F&b&S&c&R&d&E&e&X0D0A&|G", &delimiters);
    assert_round_trip("O|1|S1||^^^A\\^^^B\\|R|||", &delimiters);
    assert_round_trip("C|1|&H&x&N&|a&b|&X00&", &delimiters);
    assert_round_trip("R|1|^MTB@^RIF|x\\F\\y\\E\\z", &genexpert);

    /* Found by fuzz_astm_record: "H" alone was written back as "H|\\^&",
     * which parsed into one more field. */
    assert_round_trip("H", &delimiters);
    assert_round_trip("H|", &delimiters);
    assert_round_trip("H^x|y", &delimiters);
}
END_TEST

/* ---- Assembler -------------------------------------------------------------------- */

/* Adds frames and returns the records joined with '/' into out. */
static void assemble(struct astm_assembler *assembler, const char *const *frames, size_t count,
                     char *out, size_t size)
{
    const char *record;
    size_t len;

    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        ck_assert_int_eq(
            astm_assembler_add(assembler, frames[i], strlen(frames[i]), i + 1 == count), 0);
        while (astm_assembler_next(assembler, &record, &len) == 1) {
            ck_assert_uint_lt(strlen(out) + len + 2, size);
            strncat(out, record, len);
            strcat(out, "/");
        }
    }
}

START_TEST(assembler_joins_split_record)
{
    struct astm_assembler assembler;
    const char *frames[] = {"H|\\^&\rR|1|^^^MET|0.2", "5|ng/mg\rR|2", "|x\rL|1\r"};
    char joined[256];

    astm_assembler_init(&assembler);
    assemble(&assembler, frames, 3, joined, sizeof joined);
    ck_assert_str_eq(joined, "H|\\^&/R|1|^^^MET|0.25|ng/mg/R|2|x/L|1/");
    astm_assembler_free(&assembler);
}
END_TEST

START_TEST(assembler_final_without_cr)
{
    struct astm_assembler assembler;
    const char *frames[] = {"H|\\^&\r\r", "L|1|N"};
    char joined[256];

    astm_assembler_init(&assembler);
    assemble(&assembler, frames, 2, joined, sizeof joined);
    ck_assert_str_eq(joined, "H|\\^&/L|1|N/");
    astm_assembler_free(&assembler);
}
END_TEST

START_TEST(assembler_waits_for_cr)
{
    struct astm_assembler assembler;
    const char *record;
    size_t len;

    astm_assembler_init(&assembler);
    ck_assert_int_eq(astm_assembler_add(&assembler, "R|1|", 4, false), 0);
    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 0);
    astm_assembler_reset(&assembler); /* the link session ended mid-message */
    ck_assert_int_eq(astm_assembler_add(&assembler, "L|1\r", 4, true), 0);
    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 1);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(record, "L|1", 3);
    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 0);
    astm_assembler_free(&assembler);
}
END_TEST

START_TEST(assembler_overlong_record_dropped)
{
    struct astm_assembler assembler;
    const char *record;
    size_t len;

    astm_assembler_init(&assembler);
    assembler.max_record = 8;
    /* "M|1|0123" is 8 bytes, the most allowed; two more bytes are too many. */
    ck_assert_int_eq(astm_assembler_add(&assembler, "P|1\rM|1|0123", 12, false), 0);
    ck_assert_int_eq(astm_assembler_add(&assembler, "45", 2, false), -E2BIG);
    ck_assert_int_eq(astm_assembler_add(&assembler, "6789", 4, false), 0);
    ck_assert_int_eq(astm_assembler_add(&assembler, "abc\rL|1\r", 8, true), 0);

    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 1);
    ck_assert_mem_eq(record, "P|1", 3);
    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 1);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(record, "L|1", 3);
    ck_assert_int_eq(astm_assembler_next(&assembler, &record, &len), 0);
    astm_assembler_free(&assembler);
}
END_TEST

static Suite *astm_record_suite(void)
{
    Suite *suite = suite_create("astm_record");
    TCase *delimiters = tcase_create("delimiters");
    TCase *parsing = tcase_create("parse");
    TCase *escapes = tcase_create("escapes");
    TCase *writing = tcase_create("write");
    TCase *assembly = tcase_create("assembler");

    tcase_set_timeout(delimiters, CASE_TIMEOUT);
    tcase_add_test(delimiters, delimiters_standard_header);
    tcase_add_test(delimiters, delimiters_repeat_at_sign);
    tcase_add_test(delimiters, delimiters_doubled_backslash);
    tcase_add_test(delimiters, delimiters_end_of_record);
    tcase_add_test(delimiters, delimiters_invalid);
    suite_add_tcase(suite, delimiters);

    tcase_set_timeout(parsing, CASE_TIMEOUT);
    tcase_add_test(parsing, parse_fields_repeats_components);
    tcase_add_test(parsing, parse_trailing_empty_and_omitted);
    tcase_add_test(parsing, parse_header_keeps_definition);
    tcase_add_test(parsing, parse_header_alone);
    tcase_add_test(parsing, parse_other_delimiters);
    tcase_add_test(parsing, parse_empty_rejected);
    suite_add_tcase(suite, parsing);

    tcase_set_timeout(escapes, CASE_TIMEOUT);
    tcase_add_test(escapes, escapes_resolved);
    tcase_add_test(escapes, escapes_nul_byte);
    tcase_add_test(escapes, escapes_unknown_kept);
    suite_add_tcase(suite, escapes);

    tcase_set_timeout(writing, CASE_TIMEOUT);
    tcase_add_test(writing, write_escapes_delimiters);
    tcase_add_test(writing, write_order_with_announced_delimiters);
    tcase_add_test(writing, write_query_answer);
    tcase_add_test(writing, write_rejects_bad_positions);
    tcase_add_test(writing, round_trip_write_parse);
    suite_add_tcase(suite, writing);

    tcase_set_timeout(assembly, CASE_TIMEOUT);
    tcase_add_test(assembly, assembler_joins_split_record);
    tcase_add_test(assembly, assembler_final_without_cr);
    tcase_add_test(assembly, assembler_waits_for_cr);
    tcase_add_test(assembly, assembler_overlong_record_dropped);
    suite_add_tcase(suite, assembly);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(astm_record_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
