/* libFuzzer target for the ASTM E1394 record codec (protocol/astm_record.c).
 *
 * The input is a transcript of records separated by CR. The first byte
 * chooses how the assembler receives it (frame sizes). Every record is
 * parsed with the delimiters of the last valid H record, checked against
 * the codec's invariants, written back and parsed again: the second parse
 * must equal the first, so writing escapes every delimiter correctly. */
#include "protocol/astm_record.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_invariants(const struct astm_record *record)
{
    for (size_t i = 0; i < record->count; i++) {
        const struct astm_value *value = &record->values[i];

        if (value->field == 0 || value->repeat == 0 || value->component == 0) {
            abort();
        }
        if (value->offset + value->len >= record->text_len + 1 ||
            record->text[value->offset + value->len] != '\0') {
            abort();
        }
        if (i > 0) {
            const struct astm_value *before = &record->values[i - 1];
            int ordered = before->field < value->field ||
                          (before->field == value->field && before->repeat < value->repeat) ||
                          (before->field == value->field && before->repeat == value->repeat &&
                           before->component < value->component);
            if (!ordered) {
                abort();
            }
        }
    }
}

/* Compares two parses of one record; field 2 of an H record is skipped,
 * because the writer puts the delimiters in use there. */
static void check_same(const struct astm_record *first, const struct astm_record *second)
{
    int header = astm_record_type(first) == 'H';

    if (first->count != second->count) {
        abort();
    }
    for (size_t i = 0; i < first->count; i++) {
        const struct astm_value *a = &first->values[i];
        const struct astm_value *b = &second->values[i];

        if (a->field != b->field || a->repeat != b->repeat || a->component != b->component) {
            abort();
        }
        if (header && a->field == 2) {
            continue;
        }
        if (a->len != b->len ||
            memcmp(first->text + a->offset, second->text + b->offset, a->len) != 0) {
            abort();
        }
    }
}

static void round_trip(const char *text, size_t len, struct astm_delimiters *delimiters)
{
    struct astm_record first;
    struct astm_record second;
    struct astm_buffer written = {NULL, 0, 0};

    astm_record_init(&first);
    astm_record_init(&second);
    if (len > 0 && text[0] == 'H') {
        astm_delimiters_from_header(text, len, delimiters);
    }
    if (astm_record_parse(text, len, delimiters, &first) == 0) {
        check_invariants(&first);
        if (astm_record_write(&first, delimiters, &written) != 0 || written.len == 0 ||
            written.data[written.len - 1] != '\r') {
            abort();
        }
        if (memchr(written.data, '\r', written.len - 1) != NULL) {
            abort(); /* a CR inside a value must have been escaped */
        }
        if (astm_record_parse(written.data, written.len - 1, delimiters, &second) != 0) {
            abort();
        }
        check_invariants(&second);
        check_same(&first, &second);
    }
    astm_buffer_free(&written);
    astm_record_free(&second);
    astm_record_free(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct astm_assembler assembler;
    struct astm_delimiters delimiters;
    size_t frame = 1;
    const char *text;
    size_t len;

    if (size == 0) {
        return 0;
    }
    frame += data[0];
    data++;
    size--;

    astm_delimiters_default(&delimiters);
    astm_assembler_init(&assembler);
    assembler.max_record = 4096; /* reach the overlong-record path with short inputs */
    for (size_t at = 0; at < size; at += frame) {
        size_t chunk = size - at < frame ? size - at : frame;
        int final = at + chunk == size;

        astm_assembler_add(&assembler, (const char *)data + at, chunk, final);
        while (astm_assembler_next(&assembler, &text, &len) == 1) {
            if (len == 0 || memchr(text, '\r', len) != NULL) {
                abort();
            }
            round_trip(text, len, &delimiters);
        }
    }
    astm_assembler_free(&assembler);
    return 0;
}
