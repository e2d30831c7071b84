/* ASTM E1394 record codec: delimiters, parsing, escapes, writing and the
 * assembly of records from frame text. docs/astm.md describes the rules. */
#define _GNU_SOURCE /* memrchr */
#include "protocol/astm_record.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_END '\r'

static int grow(void **buffer, size_t *capacity, size_t needed, size_t item)
{
    if (needed <= *capacity) {
        return 0;
    }

    size_t grown = *capacity < 16 ? 16 : *capacity;
    while (grown < needed) {
        if (grown > SIZE_MAX / 2 / item) {
            return -ENOMEM;
        }
        grown *= 2;
    }

    void *bigger = realloc(*buffer, grown * item);
    if (bigger == NULL) {
        return -ENOMEM;
    }
    *buffer = bigger;
    *capacity = grown;
    return 0;
}

/* ---- Delimiters -------------------------------------------------------------- */

void astm_delimiters_default(struct astm_delimiters *delimiters)
{
    delimiters->field = '|';
    delimiters->repeat = '\\';
    delimiters->component = '^';
    delimiters->escape = '&';
}

static bool is_valid_delimiter(unsigned char c)
{
    return c > ' ' && c < 0x7F && !isalnum(c);
}

int astm_delimiters_from_header(const char *record, size_t len, struct astm_delimiters *delimiters)
{
    char found[3];
    size_t count = 0;

    if (len < 2 || record[0] != 'H' || !is_valid_delimiter((unsigned char)record[1])) {
        return -EINVAL;
    }

    char field = record[1];
    for (size_t i = 2; i < len && record[i] != field; i++) {
        char c = record[i];

        if (!is_valid_delimiter((unsigned char)c)) {
            return -EINVAL;
        }
        if (memchr(found, c, count) != NULL) {
            continue; /* a repeated character, as in `\\^&` */
        }
        if (count == sizeof(found)) {
            return -EINVAL;
        }
        found[count++] = c;
    }
    if (count != sizeof(found)) {
        return -EINVAL;
    }

    delimiters->field = field;
    delimiters->repeat = found[0];
    delimiters->component = found[1];
    delimiters->escape = found[2];
    return 0;
}

/* ---- Records ---------------------------------------------------------------- */

void astm_record_init(struct astm_record *record)
{
    memset(record, 0, sizeof(*record));
}

void astm_record_free(struct astm_record *record)
{
    free(record->text);
    free(record->values);
    astm_record_init(record);
}

void astm_record_clear(struct astm_record *record)
{
    record->text_len = 0;
    record->count = 0;
}

/* Appends bytes to the record's text buffer. */
static int append_text(struct astm_record *record, const char *bytes, size_t len)
{
    void *text = record->text;
    int rc = grow(&text, &record->text_cap, record->text_len + len + 1, 1);

    record->text = text;
    if (rc != 0) {
        return rc;
    }
    memcpy(record->text + record->text_len, bytes, len);
    record->text_len += len;
    return 0;
}

/* Adds a value whose text is the bytes from offset to the end of the text
 * buffer, and ends it with a NUL. */
static int push_value(struct astm_record *record, unsigned field, unsigned repeat,
                      unsigned component, size_t offset)
{
    void *values = record->values;
    int rc = grow(&values, &record->cap, record->count + 1, sizeof(struct astm_value));

    record->values = values;
    if (rc != 0) {
        return rc;
    }
    rc = append_text(record, "", 0);
    if (rc != 0) {
        return rc;
    }
    record->text[record->text_len++] = '\0';

    struct astm_value *value = &record->values[record->count++];
    value->field = field;
    value->repeat = repeat;
    value->component = component;
    value->offset = offset;
    value->len = record->text_len - 1 - offset;
    return 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Appends the bytes of a hex escape body ("X0D0A" without X) when it is an
 * even, non-zero number of hex digits. Returns 1 when appended, 0 when the
 * body is not hex, or -ENOMEM. */
static int append_hex(struct astm_record *record, const char *hex, size_t len)
{
    if (len == 0 || len % 2 != 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (hex_value((unsigned char)hex[i]) < 0) {
            return 0;
        }
    }
    for (size_t i = 0; i < len; i += 2) {
        char byte =
            (char)(hex_value((unsigned char)hex[i]) * 16 + hex_value((unsigned char)hex[i + 1]));
        int rc = append_text(record, &byte, 1);
        if (rc != 0) {
            return rc;
        }
    }
    return 1;
}

/* Appends what one escape sequence stands for, given its body between the
 * escape characters. Unknown sequences are kept with their escape
 * characters. */
static int append_escape(struct astm_record *record, const char *body, size_t len,
                         const struct astm_delimiters *delimiters)
{
    char plain = 0;

    if (len == 1) {
        switch (body[0]) {
        case 'F':
            plain = delimiters->field;
            break;
        case 'S':
            plain = delimiters->component;
            break;
        case 'R':
            plain = delimiters->repeat;
            break;
        case 'E':
            plain = delimiters->escape;
            break;
        default:
            break;
        }
    }
    if (plain != 0) {
        return append_text(record, &plain, 1);
    }
    if (len > 0 && body[0] == 'X') {
        int rc = append_hex(record, body + 1, len - 1);
        if (rc != 0) {
            return rc < 0 ? rc : 0;
        }
    }

    int rc = append_text(record, &delimiters->escape, 1);
    if (rc == 0) {
        rc = append_text(record, body, len);
    }
    if (rc == 0) {
        rc = append_text(record, &delimiters->escape, 1);
    }
    return rc;
}

/* Appends one component's raw text with its escapes resolved. */
static int append_unescaped(struct astm_record *record, const char *raw, size_t len,
                            const struct astm_delimiters *delimiters)
{
    size_t i = 0;

    while (i < len) {
        const char *escape = memchr(raw + i, delimiters->escape, len - i);
        size_t plain = escape == NULL ? len - i : (size_t)(escape - (raw + i));
        int rc = append_text(record, raw + i, plain);

        if (rc != 0) {
            return rc;
        }
        i += plain;
        if (i == len) {
            break;
        }

        const char *close = memchr(raw + i + 1, delimiters->escape, len - i - 1);
        if (close == NULL) {
            return append_text(record, raw + i, len - i); /* no closing escape: text */
        }

        size_t body = (size_t)(close - (raw + i + 1));
        rc = append_escape(record, raw + i + 1, body, delimiters);
        if (rc != 0) {
            return rc;
        }
        i += body + 2;
    }
    return 0;
}

/* Position of the value being parsed. */
struct cursor {
    unsigned field;
    unsigned repeat;
    unsigned component;
};

static int finish_value(struct astm_record *record, const struct cursor *at, const char *raw,
                        size_t len, const struct astm_delimiters *delimiters)
{
    size_t offset = record->text_len;
    int rc = append_unescaped(record, raw, len, delimiters);

    if (rc != 0) {
        return rc;
    }
    return push_value(record, at->field, at->repeat, at->component, offset);
}

/* Moves the cursor past a delimiter; returns false for an ordinary byte. */
static bool step_cursor(struct cursor *at, char c, const struct astm_delimiters *delimiters)
{
    if (c == delimiters->field) {
        at->field++;
        at->repeat = 1;
        at->component = 1;
    } else if (c == delimiters->repeat) {
        at->repeat++;
        at->component = 1;
    } else if (c == delimiters->component) {
        at->component++;
    } else {
        return false;
    }
    return true;
}

/* Parses line[from..len) as the values starting at *at. */
static int parse_values(struct astm_record *record, const char *line, size_t from, size_t len,
                        struct cursor at, const struct astm_delimiters *delimiters)
{
    size_t start = from;

    for (size_t i = from; i < len; i++) {
        struct cursor next = at;

        if (!step_cursor(&next, line[i], delimiters)) {
            continue;
        }

        int rc = finish_value(record, &at, line + start, i - start, delimiters);
        if (rc != 0) {
            return rc;
        }
        at = next;
        start = i + 1;
    }
    return finish_value(record, &at, line + start, len - start, delimiters);
}

/* An H record: field 1 is "H", field 2 the delimiter definition as sent
 * from the field delimiter up to the next one, and the rest as usual. */
static int parse_header(struct astm_record *record, const char *line, size_t len,
                        const struct astm_delimiters *delimiters)
{
    struct cursor at = {1, 1, 1};
    size_t end = len < 2 ? len : 2;
    int rc;

    while (end < len && line[end] != delimiters->field) {
        end++;
    }

    rc = append_text(record, line, 1);
    if (rc == 0) {
        rc = push_value(record, 1, 1, 1, 0);
    }
    if (rc != 0) {
        return rc;
    }
    if (len == 1) {
        return push_value(record, 2, 1, 1, record->text_len); /* "H" alone: field 2 empty */
    }

    size_t offset = record->text_len;
    rc = append_text(record, line + 1, end - 1);
    if (rc == 0) {
        rc = push_value(record, 2, 1, 1, offset);
    }
    if (rc != 0 || end == len) {
        return rc;
    }

    at.field = 3;
    return parse_values(record, line, end + 1, len, at, delimiters);
}

int astm_record_parse(const char *line, size_t len, const struct astm_delimiters *delimiters,
                      struct astm_record *record)
{
    struct cursor start = {1, 1, 1};

    astm_record_clear(record);
    if (len == 0) {
        return -EINVAL;
    }
    if (line[0] == 'H' && (len == 1 || line[1] == delimiters->field)) {
        return parse_header(record, line, len, delimiters);
    }
    return parse_values(record, line, 0, len, start, delimiters);
}

char astm_record_type(const struct astm_record *record)
{
    if (record->count == 0 || record->values[0].field != 1 || record->values[0].len == 0) {
        return 0;
    }
    return record->text[record->values[0].offset];
}

unsigned astm_record_field_count(const struct astm_record *record)
{
    return record->count == 0 ? 0 : record->values[record->count - 1].field;
}

unsigned astm_record_repeat_count(const struct astm_record *record, unsigned field)
{
    unsigned highest = 0;

    for (size_t i = 0; i < record->count; i++) {
        if (record->values[i].field == field && record->values[i].repeat > highest) {
            highest = record->values[i].repeat;
        }
    }
    return highest;
}

unsigned astm_record_component_count(const struct astm_record *record, unsigned field,
                                     unsigned repeat)
{
    unsigned highest = 0;

    for (size_t i = 0; i < record->count; i++) {
        const struct astm_value *value = &record->values[i];

        if (value->field == field && value->repeat == repeat && value->component > highest) {
            highest = value->component;
        }
    }
    return highest;
}

const char *astm_record_get(const struct astm_record *record, unsigned field, unsigned repeat,
                            unsigned component, size_t *len)
{
    for (size_t i = 0; i < record->count; i++) {
        const struct astm_value *value = &record->values[i];

        if (value->field == field && value->repeat == repeat && value->component == component) {
            if (len != NULL) {
                *len = value->len;
            }
            return record->text + value->offset;
        }
    }
    return NULL;
}

/* Orders positions by field, then repeat, then component. */
static int compare_position(const struct astm_value *value, unsigned field, unsigned repeat,
                            unsigned component)
{
    if (value->field != field) {
        return value->field < field ? -1 : 1;
    }
    if (value->repeat != repeat) {
        return value->repeat < repeat ? -1 : 1;
    }
    if (value->component != component) {
        return value->component < component ? -1 : 1;
    }
    return 0;
}

int astm_record_add(struct astm_record *record, unsigned field, unsigned repeat, unsigned component,
                    const char *text, size_t len)
{
    if (field == 0 || repeat == 0 || component == 0) {
        return -EINVAL;
    }
    if (record->count > 0 &&
        compare_position(&record->values[record->count - 1], field, repeat, component) >= 0) {
        return -EINVAL;
    }

    size_t offset = record->text_len;
    int rc = append_text(record, text, len);
    if (rc != 0) {
        return rc;
    }
    return push_value(record, field, repeat, component, offset);
}

/* ---- Writer ----------------------------------------------------------------- */

void astm_buffer_free(struct astm_buffer *buffer)
{
    free(buffer->data);
    memset(buffer, 0, sizeof(*buffer));
}

static int put_bytes(struct astm_buffer *out, const char *bytes, size_t len)
{
    void *data = out->data;
    int rc = grow(&data, &out->cap, out->len + len + 1, 1);

    out->data = data;
    if (rc != 0) {
        return rc;
    }
    memcpy(out->data + out->len, bytes, len);
    out->len += len;
    out->data[out->len] = '\0';
    return 0;
}

static int put_repeated(struct astm_buffer *out, char c, unsigned times)
{
    for (unsigned i = 0; i < times; i++) {
        int rc = put_bytes(out, &c, 1);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Writes an escape sequence: escape, body, escape. */
static int put_escape(struct astm_buffer *out, const char *body, size_t len, char escape)
{
    int rc = put_bytes(out, &escape, 1);

    if (rc == 0) {
        rc = put_bytes(out, body, len);
    }
    if (rc == 0) {
        rc = put_bytes(out, &escape, 1);
    }
    return rc;
}

static int put_escaped_byte(struct astm_buffer *out, unsigned char c,
                            const struct astm_delimiters *delimiters)
{
    static const char hex[] = "0123456789ABCDEF";

    if (c == (unsigned char)delimiters->field) {
        return put_escape(out, "F", 1, delimiters->escape);
    }
    if (c == (unsigned char)delimiters->component) {
        return put_escape(out, "S", 1, delimiters->escape);
    }
    if (c == (unsigned char)delimiters->repeat) {
        return put_escape(out, "R", 1, delimiters->escape);
    }
    if (c == (unsigned char)delimiters->escape) {
        return put_escape(out, "E", 1, delimiters->escape);
    }
    if (c < 0x20 || c == 0x7F) {
        char body[3] = {'X', hex[c >> 4], hex[c & 0xF]};
        return put_escape(out, body, sizeof(body), delimiters->escape);
    }
    return put_bytes(out, (const char *)&c, 1);
}

static int put_value_text(struct astm_buffer *out, const char *text, size_t len,
                          const struct astm_delimiters *delimiters)
{
    for (size_t i = 0; i < len; i++) {
        int rc = put_escaped_byte(out, (unsigned char)text[i], delimiters);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Writes the delimiters that lead from position *at to the value's. */
static int put_separators(struct astm_buffer *out, struct cursor *at,
                          const struct astm_value *value, const struct astm_delimiters *delimiters)
{
    int rc = 0;

    if (value->field > at->field) {
        rc = put_repeated(out, delimiters->field, value->field - at->field);
        at->field = value->field;
        at->repeat = 1;
        at->component = 1;
    }
    if (rc == 0 && value->repeat > at->repeat) {
        rc = put_repeated(out, delimiters->repeat, value->repeat - at->repeat);
        at->repeat = value->repeat;
        at->component = 1;
    }
    if (rc == 0 && value->component > at->component) {
        rc = put_repeated(out, delimiters->component, value->component - at->component);
        at->component = value->component;
    }
    return rc;
}

/* Writes "H" and the delimiter definition; the values of fields 1 and 2
 * are then skipped. */
static int put_header_start(struct astm_buffer *out, const struct astm_delimiters *delimiters,
                            struct cursor *at)
{
    const char start[] = {'H', delimiters->field, delimiters->repeat, delimiters->component,
                          delimiters->escape};

    at->field = 2;
    at->repeat = 1;
    at->component = 1;
    return put_bytes(out, start, sizeof(start));
}

/* A record is written as an H record when field 1 is exactly "H", with no
 * second component or repeat. */
static bool is_header(const struct astm_record *record)
{
    const struct astm_value *first = &record->values[0];

    if (first->field != 1 || first->repeat != 1 || first->component != 1 || first->len != 1 ||
        record->text[first->offset] != 'H') {
        return false;
    }
    return record->count == 1 || record->values[1].field >= 2;
}

int astm_record_write(const struct astm_record *record, const struct astm_delimiters *delimiters,
                      struct astm_buffer *out)
{
    struct cursor at = {1, 1, 1};
    bool header;
    int rc = 0;

    if (record->count == 0) {
        return -EINVAL;
    }
    header = is_header(record);
    if (header) {
        rc = put_header_start(out, delimiters, &at);
    }
    for (size_t i = 0; rc == 0 && i < record->count; i++) {
        const struct astm_value *value = &record->values[i];

        if (header && value->field <= 2) {
            continue;
        }
        rc = put_separators(out, &at, value, delimiters);
        if (rc == 0) {
            rc = put_value_text(out, record->text + value->offset, value->len, delimiters);
        }
    }
    if (rc == 0) {
        rc = put_bytes(out, "\r", 1);
    }
    return rc;
}

/* ---- Assembler -------------------------------------------------------------- */

void astm_assembler_init(struct astm_assembler *assembler)
{
    memset(assembler, 0, sizeof(*assembler));
    assembler->max_record = ASTM_MAX_RECORD;
}

void astm_assembler_free(struct astm_assembler *assembler)
{
    free(assembler->data);
    astm_assembler_init(assembler);
}

void astm_assembler_reset(struct astm_assembler *assembler)
{
    assembler->len = 0;
    assembler->start = 0;
    assembler->partial = 0;
    assembler->message_end = false;
    assembler->skipping = false;
}

/* Moves the unreturned bytes to the front of the buffer. */
static void compact(struct astm_assembler *assembler)
{
    if (assembler->start == 0) {
        return;
    }
    memmove(assembler->data, assembler->data + assembler->start, assembler->len - assembler->start);
    assembler->len -= assembler->start;
    assembler->partial -= assembler->start;
    assembler->start = 0;
}

/* Drops the text of an overlong record up to its CR. Returns the number of
 * bytes of text that belong to it. */
static size_t skip_overlong(struct astm_assembler *assembler, const char *text, size_t len,
                            bool final)
{
    const char *end = memchr(text, RECORD_END, len);

    if (end != NULL || final) {
        assembler->skipping = false;
    }
    return end == NULL ? len : (size_t)(end - text) + 1;
}

int astm_assembler_add(struct astm_assembler *assembler, const char *text, size_t len, bool final)
{
    if (assembler->skipping) {
        size_t skipped = skip_overlong(assembler, text, len, final);

        text += skipped;
        len -= skipped;
    }
    compact(assembler);

    void *data = assembler->data;
    int rc = grow(&data, &assembler->cap, assembler->len + len, 1);
    assembler->data = data;
    if (rc != 0) {
        return rc;
    }
    if (len > 0) {
        memcpy(assembler->data + assembler->len, text, len);
    }
    const char *last_end = len > 0 ? memrchr(text, RECORD_END, len) : NULL;
    if (last_end != NULL) {
        assembler->partial = assembler->len + (size_t)(last_end - text) + 1;
    }
    assembler->len += len;
    assembler->message_end = final;

    if (assembler->len - assembler->partial > assembler->max_record) {
        assembler->len = assembler->partial;
        assembler->skipping = !final;
        return -E2BIG;
    }
    if (final) {
        assembler->partial = assembler->len; /* the rest ends with the message */
    }
    return 0;
}

int astm_assembler_next(struct astm_assembler *assembler, const char **record, size_t *len)
{
    while (assembler->start < assembler->len) {
        const char *begin = assembler->data + assembler->start;
        size_t left = assembler->len - assembler->start;
        const char *end = memchr(begin, RECORD_END, left);

        if (end == NULL && !assembler->message_end) {
            return 0;
        }

        size_t size = end == NULL ? left : (size_t)(end - begin);
        assembler->start += end == NULL ? left : size + 1;
        if (size > 0) {
            *record = begin;
            *len = size;
            return 1;
        }
    }
    assembler->message_end = false;
    return 0;
}
