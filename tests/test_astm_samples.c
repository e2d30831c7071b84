/* Golden tests on public ASTM transcripts from real analyzers: each one
 * decodes without error, its frame checksums verify, and a few record
 * counts and field values match. The transcripts are read at test time from
 * $TOXLAB_ASTM_SAMPLES, else from $TOXLAB_SOURCE_DIR/../shared/astm-samples;
 * the repository contains none of their bytes. When $TOXLAB names the client,
 * "toxlab decode" runs on them too. */
#define _GNU_SOURCE

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "protocol/astm_link.h"
#include "protocol/astm_record.h"
#include "protocol/astm_transcript.h"

#define CASE_TIMEOUT 20 /* seconds; Check scales it by CK_TIMEOUT_MULTIPLIER */
#define MAX_RECORDS 256

/* The records of one transcript, each with the delimiters in force. */
struct collected {
    size_t count;
    char *texts[MAX_RECORDS];
    size_t lens[MAX_RECORDS];
    struct astm_delimiters delimiters[MAX_RECORDS];
    struct astm_delimiters current;
    size_t longest;
};

static char *sample_path(const char *name)
{
    const char *folder = getenv("TOXLAB_ASTM_SAMPLES");
    const char *source = getenv("TOXLAB_SOURCE_DIR");
    char *path;
    int rc;

    if (folder != NULL && folder[0] != '\0') {
        rc = asprintf(&path, "%s/%s", folder, name);
    } else {
        ck_assert_msg(source != NULL, "set TOXLAB_ASTM_SAMPLES or TOXLAB_SOURCE_DIR");
        rc = asprintf(&path, "%s/../shared/astm-samples/%s", source, name);
    }
    ck_assert_int_ge(rc, 0);
    return path;
}

static uint8_t *read_sample(const char *name, size_t *len)
{
    char *path = sample_path(name);
    FILE *file = fopen(path, "rb");

    ck_assert_msg(file != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(file, 0, SEEK_END), 0);
    long size = ftell(file);
    ck_assert_int_ge(size, 0);
    rewind(file);

    uint8_t *data = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)size, file), (size_t)size);
    fclose(file);
    free(path);
    *len = (size_t)size;
    return data;
}

static int collect(void *context, const char *record, size_t len)
{
    struct collected *collected = context;

    ck_assert_uint_lt(collected->count, MAX_RECORDS);
    if (record[0] == 'H') {
        ck_assert_int_eq(astm_delimiters_from_header(record, len, &collected->current), 0);
    }
    collected->texts[collected->count] = strndup(record, len);
    collected->lens[collected->count] = len;
    collected->delimiters[collected->count] = collected->current;
    collected->count++;
    if (len > collected->longest) {
        collected->longest = len;
    }
    return 0;
}

/* Reads a sample and returns astm_transcript_read's result; the records go
 * to *collected and a failure's details to *error. */
static int load(const char *name, bool strict, struct collected *collected,
                struct astm_transcript_error *error)
{
    size_t len;
    uint8_t *data = read_sample(name, &len);

    memset(collected, 0, sizeof(*collected));
    astm_delimiters_default(&collected->current);
    int rc = astm_transcript_read(data, len, strict, collect, collected, error);
    free(data);
    return rc;
}

/* Loads a sample that must decode without error. */
static void load_ok(const char *name, struct collected *collected)
{
    struct astm_transcript_error error;
    int rc = load(name, false, collected, &error);

    ck_assert_msg(rc == 0, "%s: byte %zu: frame %d: %s", name, error.offset, error.frame_number,
                  error.message);
}

static void release(struct collected *collected)
{
    for (size_t i = 0; i < collected->count; i++) {
        free(collected->texts[i]);
    }
}

static size_t count_type(const struct collected *collected, char type)
{
    size_t count = 0;

    for (size_t i = 0; i < collected->count; i++) {
        count += collected->texts[i][0] == type;
    }
    return count;
}

/* Parses the nth record (from 0) of a type. */
static void nth(const struct collected *collected, char type, size_t n, struct astm_record *record)
{
    for (size_t i = 0; i < collected->count; i++) {
        if (collected->texts[i][0] != type || n-- > 0) {
            continue;
        }
        astm_record_init(record);
        ck_assert_int_eq(astm_record_parse(collected->texts[i], collected->lens[i],
                                           &collected->delimiters[i], record),
                         0);
        return;
    }
    ck_abort_msg("no record %c number %zu", type, n);
}

static void assert_value(const struct astm_record *record, unsigned field, unsigned repeat,
                         unsigned component, const char *expected)
{
    size_t len;
    const char *text = astm_record_get(record, field, repeat, component, &len);

    ck_assert_msg(text != NULL, "no value at %u.%u.%u", field, repeat, component);
    ck_assert_uint_eq(len, strlen(expected));
    ck_assert_mem_eq(text, expected, len);
}

/* Checks one value of the nth record of a type. */
static void check(const struct collected *collected, char type, size_t n, unsigned field,
                  unsigned repeat, unsigned component, const char *expected)
{
    struct astm_record record;

    nth(collected, type, n, &record);
    assert_value(&record, field, repeat, component, expected);
    astm_record_free(&record);
}

/* ---- One test per transcript -------------------------------------------------------- */

START_TEST(cobas_c111_saved_frames)
{
    struct collected c;
    struct astm_record m;

    load_ok("senaite_cobas_c111.astm.raw", &c);
    ck_assert_uint_eq(c.count, 7);
    check(&c, 'H', 0, 5, 1, 1, "SENAITE");
    check(&c, 'R', 0, 3, 1, 4, "413");
    check(&c, 'R', 0, 4, 1, 1, "40.13");
    check(&c, 'R', 0, 5, 1, 1, "g/L");
    nth(&c, 'M', 0, &m);
    ck_assert_uint_eq(astm_record_repeat_count(&m, 5), 18);
    assert_value(&m, 5, 18, 1, "141");
    astm_record_free(&m);
    release(&c);
}
END_TEST

START_TEST(cobas_c311_long_frame)
{
    struct collected c;
    struct astm_record order;

    load_ok("senaite_cobas_c311.astm.raw", &c);
    ck_assert_uint_eq(c.count, 18);
    ck_assert_uint_eq(count_type(&c, 'R'), 7);
    ck_assert_uint_eq(count_type(&c, 'C'), 7);
    nth(&c, 'O', 0, &order);
    ck_assert_uint_eq(astm_record_repeat_count(&order, 5), 7);
    assert_value(&order, 5, 1, 4, "685/");
    assert_value(&order, 5, 7, 4, "690/");
    astm_record_free(&order);
    check(&c, 'R', 0, 4, 1, 1, "22.4");
    release(&c);
}
END_TEST

START_TEST(genexpert_at_repeat_delimiter)
{
    struct collected c;

    load_ok("senaite_genexpert.astm.raw", &c);
    ck_assert_uint_eq(c.count, 91);
    ck_assert_uint_eq(count_type(&c, 'R'), 84);
    ck_assert_int_eq(c.current.repeat, '@');
    ck_assert_int_eq(c.current.escape, '\\');
    check(&c, 'H', 0, 2, 1, 1, "|@^\\");
    check(&c, 'R', 0, 3, 1, 2, "MTB-RIF");
    check(&c, 'R', 0, 4, 1, 1, "NOT DETECTED");
    check(&c, 'O', 0, 3, 1, 1, "PR25A137");
    release(&c);
}
END_TEST

START_TEST(pentra_frame_numbers_wrap)
{
    struct collected c;

    load_ok("senaite_pentra_xlr.astm.raw", &c);
    ck_assert_uint_eq(c.count, 28);
    ck_assert_uint_eq(count_type(&c, 'R'), 21);
    check(&c, 'R', 9, 3, 1, 4, "BAS#");
    check(&c, 'R', 9, 4, 1, 1, "-----");
    check(&c, 'P', 0, 6, 1, 1, "Mohale");
    release(&c);
}
END_TEST

START_TEST(sysmex_leading_spaces)
{
    struct collected c;

    load_ok("senaite_sysmex_xp100.astm.raw", &c);
    ck_assert_uint_eq(c.count, 24);
    ck_assert_uint_eq(count_type(&c, 'R'), 20);
    check(&c, 'R', 0, 4, 1, 1, "  5.5");
    check(&c, 'O', 0, 4, 1, 3, "            113");
    release(&c);
}
END_TEST

START_TEST(galileo_bare_records)
{
    struct collected c;
    struct astm_record result;

    load_ok("goastm_immucor_galileo_result.astm", &c);
    ck_assert_uint_eq(c.count, 19);
    ck_assert_uint_eq(count_type(&c, 'O'), 2);
    ck_assert_uint_eq(count_type(&c, 'R'), 14);
    nth(&c, 'R', 2, &result);
    ck_assert_uint_eq(astm_record_component_count(&result, 4, 1), 3);
    assert_value(&result, 4, 1, 1, "3+");
    assert_value(&result, 4, 1, 3, "45");
    astm_record_free(&result);
    check(&c, 'O', 1, 5, 1, 4, "Screen");
    release(&c);
}
END_TEST

START_TEST(biorad_repeat_in_order)
{
    struct collected c;
    struct astm_record order;
    struct astm_record result;

    load_ok("goastm_biorad_ihcom52_bloodtype.astm", &c);
    ck_assert_uint_eq(c.count, 12);
    nth(&c, 'O', 0, &order);
    ck_assert_uint_eq(astm_record_repeat_count(&order, 4), 2);
    assert_value(&order, 4, 2, 1, "1122206642");
    astm_record_free(&order);
    nth(&c, 'R', 0, &result);
    ck_assert_uint_eq(astm_record_component_count(&result, 4, 1), 3);
    assert_value(&result, 4, 1, 1, "40");
    assert_value(&result, 4, 1, 3, "");
    astm_record_free(&result);
    check(&c, 'L', 0, 3, 1, 1, "N");
    release(&c);
}
END_TEST

START_TEST(yumizen_long_m_record)
{
    struct collected c;

    load_ok("goastm_horiba_yumizen_h550_result.astm", &c);
    ck_assert_uint_eq(c.count, 27);
    ck_assert_uint_eq(count_type(&c, 'M'), 3);
    ck_assert_uint_eq(c.longest, 11068);
    check(&c, 'H', 0, 2, 1, 1, "|\\\\^&");
    check(&c, 'M', 0, 6, 1, 1, "FLOATLE-stream/deflate:base64");
    check(&c, 'R', 0, 3, 1, 4, "MCV");
    check(&c, 'R', 0, 4, 1, 1, "78.4");
    release(&c);
}
END_TEST

START_TEST(euroimmun_twenty_patients)
{
    struct collected c;

    load_ok("goastm_euroimmun_analyzer1_sampleigg.astm", &c);
    ck_assert_uint_eq(c.count, 62);
    ck_assert_uint_eq(count_type(&c, 'P'), 20);
    check(&c, 'R', 0, 4, 1, 1, ">8");
    check(&c, 'R', 1, 4, 1, 1, "7,41");
    check(&c, 'P', 14, 4, 1, 1, "TEST-27-026-5-1  57  ");
    release(&c);
}
END_TEST

START_TEST(cobas_u411_wire_session)
{
    struct collected c;
    struct astm_transcript_error error;

    ck_assert_int_eq(load("roche_cobas_u411_session.bin", true, &c, &error), 0);
    ck_assert_uint_eq(c.count, 17);
    ck_assert_uint_eq(count_type(&c, 'R'), 12);
    check(&c, 'R', 9, 3, 1, 2, "ERY");
    check(&c, 'R', 10, 4, 1, 1, "p.yel");
    check(&c, 'M', 0, 3, 1, 1, "RC");
    release(&c);
}
END_TEST

/* ---- Strict mode and errors ------------------------------------------------------------ */

START_TEST(strict_accepts_wire_frames)
{
    /* The c 311 file contains one whole wire frame, ENQ not saved. */
    struct collected c;
    struct astm_transcript_error error;

    ck_assert_int_eq(load("senaite_cobas_c311.astm.raw", true, &c, &error), 0);
    ck_assert_uint_eq(c.count, 18);
    release(&c);
}
END_TEST

START_TEST(strict_rejects_saved_lines)
{
    struct collected c;
    struct astm_transcript_error error;

    /* The c 111 frames lost the CR before LF. */
    ck_assert_int_eq(load("senaite_cobas_c111.astm.raw", true, &c, &error), -1);
    ck_assert_uint_eq(error.offset, 0);
    ck_assert_int_eq(error.frame_number, 1);
    ck_assert_str_eq(error.message, "malformed frame");
    release(&c);

    /* The GeneXpert frame ends with CR and no LF. */
    ck_assert_int_eq(load("senaite_genexpert.astm.raw", true, &c, &error), -1);
    ck_assert_str_eq(error.message, "the file ends inside a frame");
    ck_assert_int_eq(error.frame_number, 1);
    release(&c);

    ck_assert_int_eq(load("goastm_immucor_galileo_result.astm", true, &c, &error), -1);
    ck_assert_uint_eq(c.count, 0);
    release(&c);
}
END_TEST

/* Returns the offset of the nth STX (from 1). */
static size_t nth_stx(const uint8_t *data, size_t len, int n)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == ASTM_STX && --n == 0) {
            return i;
        }
    }
    ck_abort_msg("too few frames");
    return 0;
}

/* Flips the first checksum character of the third frame. */
static void corrupt_third_checksum(uint8_t *data, size_t len)
{
    size_t at = nth_stx(data, len, 3);

    while (data[at] != ASTM_ETX && data[at] != ASTM_ETB) {
        at++;
    }
    data[at + 1] = data[at + 1] == '0' ? '1' : '0';
}

START_TEST(corrupt_checksum_located)
{
    const char *names[] = {"roche_cobas_u411_session.bin", "senaite_pentra_xlr.astm.raw"};

    for (size_t i = 0; i < 2; i++) {
        struct collected c;
        struct astm_transcript_error error;
        size_t len;
        uint8_t *data = read_sample(names[i], &len);

        corrupt_third_checksum(data, len);
        memset(&c, 0, sizeof(c));
        astm_delimiters_default(&c.current);
        ck_assert_int_eq(astm_transcript_read(data, len, false, collect, &c, &error), -1);
        ck_assert_uint_eq(error.offset, nth_stx(data, len, 3));
        ck_assert_int_eq(error.frame_number, 3);
        ck_assert_msg(strstr(error.message, "checksum") != NULL, "%s", error.message);
        ck_assert_uint_eq(c.count, 2);
        release(&c);
        free(data);
    }
}
END_TEST

/* Feeds the wire session through a receiving link in chunks of `chunk`
 * bytes (0: all at once, SIZE_MAX: random sizes from seed) and returns a
 * digest of the frame texts and replies. */
static unsigned long feed_session(const uint8_t *data, size_t len, size_t chunk, unsigned seed,
                                  size_t *frames)
{
    struct astm_config config;
    struct astm_link link;
    struct astm_event event;
    unsigned long digest = 5381;
    size_t done = 0;

    astm_config_defaults(&config, ASTM_ROLE_HOST);
    ck_assert_int_eq(astm_link_init(&link, &config), 0);
    *frames = 0;
    while (done < len) {
        size_t size = chunk == 0          ? len - done
                      : chunk == SIZE_MAX ? 1 + (size_t)rand_r(&seed) % 64
                                          : chunk;
        size_t end = done + size < len ? done + size : len;

        while (done < end) {
            done += astm_link_input(&link, data + done, end - done, 0, &event);
            if (event.kind == ASTM_EV_NONE) {
                continue;
            }
            digest = digest * 33 + event.kind;
            for (size_t i = 0; i < event.out_len; i++) {
                digest = digest * 33 + event.out[i];
            }
            for (size_t i = 0; i < event.text_len; i++) {
                digest = digest * 33 + (unsigned char)event.text[i];
            }
            *frames += event.kind == ASTM_EV_FRAME;
            ck_assert_int_ne(event.kind, ASTM_EV_BAD_FRAME);
        }
    }
    ck_assert_int_eq(link.state, ASTM_NEUTRAL);
    astm_link_free(&link);
    return digest;
}

START_TEST(wire_session_any_chunking)
{
    size_t len;
    uint8_t *data = read_sample("roche_cobas_u411_session.bin", &len);
    size_t frames;
    size_t other;
    unsigned long whole = feed_session(data, len, 0, 0, &frames);

    ck_assert_uint_eq(frames, 17);
    ck_assert_uint_eq(feed_session(data, len, 1, 0, &other), whole);
    ck_assert_uint_eq(other, 17);
    for (unsigned seed = 1; seed <= 20; seed++) {
        ck_assert_msg(feed_session(data, len, SIZE_MAX, seed, &other) == whole,
                      "random split with seed %u differs", seed);
    }
    free(data);
}
END_TEST

/* ---- Saved forms written by hand ----------------------------------------------------- */

/* Reads text with astm_transcript_read and returns its result. */
static int read_text(const char *text, bool strict, struct collected *collected,
                     struct astm_transcript_error *error)
{
    memset(collected, 0, sizeof(*collected));
    astm_delimiters_default(&collected->current);
    return astm_transcript_read((const uint8_t *)text, strlen(text), strict, collect, collected,
                                error);
}

static void assert_records(const struct collected *collected, const char *const *expected,
                           size_t count)
{
    ck_assert_uint_eq(collected->count, count);
    for (size_t i = 0; i < count; i++) {
        ck_assert_str_eq(collected->texts[i], expected[i]);
    }
}

START_TEST(forms_frame_numbers_without_stx)
{
    /* Frame numbers directly, no ETB, ETX or checksum, and CR, LF or CR LF ends. */
    const char *endings[] = {"\r", "\n", "\r\n"};
    const char *expected[] = {"H|\\^&", "P|1", "L|1|N"};

    for (size_t i = 0; i < 3; i++) {
        struct collected c;
        struct astm_transcript_error error;
        char text[128];

        snprintf(text, sizeof text, "1H|\\^&%s2P|1%s3L|1|N%s", endings[i], endings[i], endings[i]);
        ck_assert_int_eq(astm_transcript_detect((const uint8_t *)text, strlen(text)),
                         ASTM_TRANSCRIPT_FRAMES);
        ck_assert_int_eq(read_text(text, false, &c, &error), 0);
        assert_records(&c, expected, 3);
        release(&c);
    }
}
END_TEST

START_TEST(forms_etx_without_checksum)
{
    struct collected c;
    struct astm_transcript_error error;
    const char *expected[] = {"H|\\^&", "R|1|^^^A|1", "L|1"};
    const char *text = "\x02"
                       "1H|\\^&\rR|1|^^^A|\x17\r\n\x02"
                       "21\rL|1\r\x03\r\n";

    ck_assert_int_eq(read_text(text, false, &c, &error), 0);
    assert_records(&c, expected, 3);
    release(&c);
}
END_TEST

START_TEST(forms_retransmission_skipped)
{
    struct collected c;
    struct astm_transcript_error error;
    const char *expected[] = {"H|\\^&", "L|1"};

    ck_assert_int_eq(read_text("1H|\\^&\n1H|\\^&\n2L|1\n", false, &c, &error), 0);
    assert_records(&c, expected, 2);
    release(&c);

    ck_assert_int_eq(read_text("1H|\\^&\n3L|1\n", false, &c, &error), -1);
    ck_assert_int_eq(error.frame_number, 3);
    ck_assert_uint_eq(error.offset, 7); /* "1H|\\^&" and LF come first */
    ck_assert_str_eq(error.message, "unexpected frame number (expected 2)");
    release(&c);
}
END_TEST

START_TEST(forms_bare_records)
{
    struct collected c;
    struct astm_transcript_error error;
    const char *expected[] = {"H|\\^&", "P|1", "L|1|N"};

    ck_assert_int_eq(read_text("\r\nH|\\^&\r\nP|1\r\n\r\nL|1|N", false, &c, &error), 0);
    assert_records(&c, expected, 3);
    release(&c);

    ck_assert_int_eq(read_text("hello", false, &c, &error), -1);
    ck_assert_int_eq(error.frame_number, -1);
    release(&c);
}
END_TEST

START_TEST(forms_message_cut_short)
{
    struct collected c;
    struct astm_transcript_error error;
    uint8_t wire[128];
    size_t len = 0;

    wire[len++] = ASTM_ENQ;
    len += astm_build_frame(1, "H|\\^&\rR|1", 9, false, wire + len);
    wire[len++] = ASTM_EOT;
    wire[len] = '\0';
    ck_assert_int_eq(read_text((const char *)wire, true, &c, &error), -1);
    ck_assert_str_eq(error.message, "EOT ended the link session inside a message");
    ck_assert_uint_eq(error.offset, len - 1);
    ck_assert_uint_eq(c.count, 1);
    release(&c);
}
END_TEST

START_TEST(forms_cut_frame_bad_number)
{
    /* Found by fuzz_astm_transcript: a wire file that ends inside a frame
     * whose number is 8 or 9 reported "frame 9". Only 0 to 7 are frame
     * numbers. */
    struct collected c;
    struct astm_transcript_error error;

    ck_assert_int_eq(read_text("\x05\x02"
                               "9H|",
                               true, &c, &error),
                     -1);
    ck_assert_str_eq(error.message, "the file ends inside a frame");
    ck_assert_uint_eq(error.offset, 1);
    ck_assert_int_eq(error.frame_number, -1);
    release(&c);

    ck_assert_int_eq(read_text("\x05\x02"
                               "7H|",
                               true, &c, &error),
                     -1);
    ck_assert_int_eq(error.frame_number, 7);
    release(&c);
}
END_TEST

/* ---- toxlab decode -------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t records;
} expected_records[] = {
    {"senaite_cobas_c111.astm.raw", 7},
    {"senaite_cobas_c311.astm.raw", 18},
    {"senaite_genexpert.astm.raw", 91},
    {"senaite_pentra_xlr.astm.raw", 28},
    {"senaite_sysmex_xp100.astm.raw", 24},
    {"goastm_immucor_galileo_result.astm", 19},
    {"goastm_biorad_ihcom52_bloodtype.astm", 12},
    {"goastm_horiba_yumizen_h550_result.astm", 27},
    {"goastm_euroimmun_analyzer1_sampleigg.astm", 62},
    {"roche_cobas_u411_session.bin", 17},
};

/* Runs toxlab decode with up to two arguments; returns the exit status. */
static int run_decode(const char *first, const char *second, char **out, char **err)
{
    const char *toxlab = getenv("TOXLAB");
    char *argv[] = {(char *)toxlab, "decode", (char *)first, (char *)second, NULL};

    return harness_run(argv, NULL, harness_ms(10000), out, err);
}

START_TEST(decode_prints_json_lines)
{
    if (getenv("TOXLAB") == NULL) {
        return; /* only the unit part runs without the client */
    }
    for (size_t i = 0; i < sizeof expected_records / sizeof expected_records[0]; i++) {
        char *path = sample_path(expected_records[i].name);
        char *out;
        char *err;

        ck_assert_int_eq(run_decode(path, NULL, &out, &err), 0);
        ck_assert_str_eq(err, "");

        size_t lines = 0;
        for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            json_error_t error;
            json_t *object = json_loads(line, 0, &error);

            ck_assert_msg(object != NULL, "%s: %s", expected_records[i].name, error.text);
            ck_assert(json_is_string(json_object_get(object, "type")));
            ck_assert(json_is_array(json_object_get(object, "fields")));
            json_decref(object);
            lines++;
        }
        ck_assert_uint_eq(lines, expected_records[i].records);
        free(out);
        free(err);
        free(path);
    }
}
END_TEST

START_TEST(decode_first_record_shape)
{
    char *path;
    char *out;
    char *err;

    if (getenv("TOXLAB") == NULL) {
        return;
    }
    path = sample_path("roche_cobas_u411_session.bin");
    ck_assert_int_eq(run_decode("--strict", path, &out, &err), 0);
    *strchr(out, '\n') = '\0';
    ck_assert_str_eq(out, "{\"type\": \"H\", \"fields\": [[[\"H\"]], [[\"|\\\\^&\"]], [[\"\"]], "
                          "[[\"\"]], [[\"cobas u 411\", \"8\", \"3.2.0.1001\", \"Int\"]], "
                          "[[\"\"]], [[\"\"]], [[\"\"]], [[\"\"]], [[\"\"]], [[\"\"]], "
                          "[[\"P\"]], [[\"\"]], [[\"20110315101822\"]]]}");
    free(out);
    free(err);
    free(path);
}
END_TEST

START_TEST(decode_errors_and_usage)
{
    char *dir;
    char *bad;
    char *path;
    char *out;
    char *err;
    size_t len;

    if (getenv("TOXLAB") == NULL) {
        return;
    }

    /* A checksum error names the file, the byte offset and the frame. */
    uint8_t *data = read_sample("roche_cobas_u411_session.bin", &len);
    corrupt_third_checksum(data, len);
    dir = harness_tmpdir("decode");
    ck_assert_int_ge(asprintf(&bad, "%s/bad.bin", dir), 0);
    FILE *file = fopen(bad, "wb");
    ck_assert_ptr_nonnull(file);
    ck_assert_uint_eq(fwrite(data, 1, len, file), len);
    fclose(file);

    char *expected;
    ck_assert_int_ge(asprintf(&expected, "toxlab decode: %s: byte %zu: frame 3: checksum mismatch",
                              bad, nth_stx(data, len, 3)),
                     0);
    ck_assert_int_eq(run_decode(bad, NULL, &out, &err), 1);
    ck_assert_msg(strstr(err, expected) != NULL, "%s", err);
    free(out);
    free(err);

    /* --strict accepts wire bytes only. */
    path = sample_path("goastm_immucor_galileo_result.astm");
    ck_assert_int_eq(run_decode("--strict", path, &out, &err), 1);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(strstr(err, "not wire bytes"));
    free(out);
    free(err);

    ck_assert_int_eq(run_decode(NULL, NULL, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "missing FILE"));
    free(out);
    free(err);
    ck_assert_int_eq(run_decode("--bogus", path, &out, &err), 2);
    free(out);
    free(err);

    ck_assert_int_eq(run_decode("/nonexistent/file", NULL, &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "cannot read /nonexistent/file"));
    free(out);
    free(err);

    free(expected);
    free(path);
    free(bad);
    free(dir);
    free(data);
}
END_TEST

static Suite *astm_samples_suite(void)
{
    Suite *suite = suite_create("astm_samples");
    TCase *golden = tcase_create("golden");
    TCase *errors = tcase_create("errors");
    TCase *decode = tcase_create("decode");

    tcase_set_timeout(golden, CASE_TIMEOUT);
    tcase_add_test(golden, cobas_c111_saved_frames);
    tcase_add_test(golden, cobas_c311_long_frame);
    tcase_add_test(golden, genexpert_at_repeat_delimiter);
    tcase_add_test(golden, pentra_frame_numbers_wrap);
    tcase_add_test(golden, sysmex_leading_spaces);
    tcase_add_test(golden, galileo_bare_records);
    tcase_add_test(golden, biorad_repeat_in_order);
    tcase_add_test(golden, yumizen_long_m_record);
    tcase_add_test(golden, euroimmun_twenty_patients);
    tcase_add_test(golden, cobas_u411_wire_session);
    tcase_add_test(golden, wire_session_any_chunking);
    suite_add_tcase(suite, golden);

    tcase_set_timeout(errors, CASE_TIMEOUT);
    tcase_add_test(errors, strict_accepts_wire_frames);
    tcase_add_test(errors, strict_rejects_saved_lines);
    tcase_add_test(errors, corrupt_checksum_located);
    suite_add_tcase(suite, errors);

    tcase_add_test(errors, forms_frame_numbers_without_stx);
    tcase_add_test(errors, forms_etx_without_checksum);
    tcase_add_test(errors, forms_retransmission_skipped);
    tcase_add_test(errors, forms_bare_records);
    tcase_add_test(errors, forms_message_cut_short);
    tcase_add_test(errors, forms_cut_frame_bad_number);

    tcase_set_timeout(decode, CASE_TIMEOUT * 3);
    tcase_add_test(decode, decode_prints_json_lines);
    tcase_add_test(decode, decode_first_record_shape);
    tcase_add_test(decode, decode_errors_and_usage);
    suite_add_tcase(suite, decode);
    return suite;
}

int main(void)
{
    /* The captures live beside the checkout (../shared, as CI lays it out);
     * a checkout without them cannot run these tests, which is not a failure. */
    const char *folder = getenv("TOXLAB_ASTM_SAMPLES");
    const char *source = getenv("TOXLAB_SOURCE_DIR");
    char *probe = NULL;
    int made = folder != NULL && folder[0] != '\0'
                   ? asprintf(&probe, "%s/senaite_cobas_c111.astm.raw", folder)
                   : asprintf(&probe, "%s/../shared/astm-samples/senaite_cobas_c111.astm.raw",
                              source ? source : ".");
    if (made < 0 || access(probe, R_OK) != 0) {
        fprintf(stderr,
                "%s not found: set TOXLAB_ASTM_SAMPLES to the folder of the shared "
                "ASTM captures; the golden tests were not run\n",
                probe);
        free(probe);
        return 77;
    }
    free(probe);
    SRunner *runner = srunner_create(astm_samples_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
