/* ASTM E1394 (CLSI LIS2-A2) records: delimiters from the H record, parsing
 * into fields, repeats and components with escapes resolved, writing with
 * escapes, and joining frame text into records. No I/O. Field, repeat and
 * component numbers start at 1, as in the standard (P.3 is field 3 of P). */
#ifndef TOXLAB_ASTM_RECORD_H
#define TOXLAB_ASTM_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* Maximum record length the assembler keeps: 1 MiB, far above the
 * 11,068-character M records that real analyzers send. */
#define ASTM_MAX_RECORD (1024 * 1024)

struct astm_delimiters {
    char field;
    char repeat;
    char component;
    char escape;
};

/* Sets the usual delimiters: field |, repeat \, component ^, escape &. */
void astm_delimiters_default(struct astm_delimiters *delimiters);

/* Reads the delimiters from an H record. The character after H is the field
 * delimiter. The distinct characters up to the next field delimiter are the
 * repeat, component and escape delimiters in that order, so `\\^&`, which
 * some writers send, reads as `\^&`. Returns 0, or -EINVAL when the
 * record is not an H record, or declares fewer than three distinct
 * delimiters, a delimiter twice, a letter, a digit, a space or a control
 * character. */
int astm_delimiters_from_header(const char *record, size_t len, struct astm_delimiters *delimiters);

/* One component value: its position and its text in the record's buffer.
 * The text is followed by a NUL but may contain NULs (from &X00&). */
struct astm_value {
    unsigned field;
    unsigned repeat;
    unsigned component;
    size_t offset;
    size_t len;
};

/* A record as a list of values in order of field, repeat and component. */
struct astm_record {
    char *text;
    size_t text_len;
    size_t text_cap;
    struct astm_value *values;
    size_t count;
    size_t cap;
};

void astm_record_init(struct astm_record *record);
void astm_record_free(struct astm_record *record);
void astm_record_clear(struct astm_record *record);

/* Parses one record (without its CR) with the given delimiters, replacing
 * the record's contents. Every field, repeat and component present in the
 * text gets a value, empty ones included. In an H record, field 2 is the
 * delimiter definition as sent, from the field delimiter on (`|\^&`), and is
 * not split. Escapes &F& &S& &R& &E& and &Xhh...& are resolved; any other
 * escape sequence, and an escape character without its closing one, stay
 * as text. Returns 0, -EINVAL for an empty record, or -ENOMEM. */
int astm_record_parse(const char *line, size_t len, const struct astm_delimiters *delimiters,
                      struct astm_record *record);

/* Returns the record type (the first character of field 1), or 0. */
char astm_record_type(const struct astm_record *record);

/* Returns the number of fields: the highest field number present. */
unsigned astm_record_field_count(const struct astm_record *record);

/* Returns the highest repeat number of a field, 0 when the field is absent. */
unsigned astm_record_repeat_count(const struct astm_record *record, unsigned field);

/* Returns the highest component number of one repeat, 0 when absent. */
unsigned astm_record_component_count(const struct astm_record *record, unsigned field,
                                     unsigned repeat);

/* Returns the text of one component and sets *len (when len is not NULL),
 * or returns NULL when the record has no such component. */
const char *astm_record_get(const struct astm_record *record, unsigned field, unsigned repeat,
                            unsigned component, size_t *len);

/* Appends a value after the last one, for building records to write.
 * Returns 0, -EINVAL when the position is not after the last value or a
 * number is 0, or -ENOMEM. */
int astm_record_add(struct astm_record *record, unsigned field, unsigned repeat, unsigned component,
                    const char *text, size_t len);

/* Growable output of the writer. */
struct astm_buffer {
    char *data;
    size_t len;
    size_t cap;
};

void astm_buffer_free(struct astm_buffer *buffer);

/* Appends the record and its CR to out, using the given delimiters and
 * escaping delimiter characters and control characters in values (&F&,
 * &S&, &R&, &E&, &Xhh&). Absent positions between values are written empty
 * and nothing follows the last value. An H record gets its delimiter
 * definition from `delimiters`, whatever its field 2 holds. Returns 0,
 * -EINVAL for a record without values, or -ENOMEM. */
int astm_record_write(const struct astm_record *record, const struct astm_delimiters *delimiters,
                      struct astm_buffer *out);

/* Joins the text of consecutive frames and splits it into records at CR. */
struct astm_assembler {
    char *data;
    size_t len;
    size_t cap;
    size_t start;      /* first byte not yet returned */
    size_t partial;    /* where the record after the last CR starts, at or after start */
    bool message_end;  /* a final frame was added: the rest is a record */
    bool skipping;     /* dropping the rest of a record that grew over max_record */
    size_t max_record; /* ASTM_MAX_RECORD unless changed after init */
};

void astm_assembler_init(struct astm_assembler *assembler);
void astm_assembler_free(struct astm_assembler *assembler);

/* Discards a record cut short, when a link session ends mid-message. */
void astm_assembler_reset(struct astm_assembler *assembler);

/* Appends the text of one frame; final marks the frame that ended with ETX.
 * Returns 0, -E2BIG when a record grows over max_record (that record is
 * dropped up to its CR or the message end; the records before it stay), or
 * -ENOMEM. */
int astm_assembler_add(struct astm_assembler *assembler, const char *text, size_t len, bool final);

/* Takes the next complete record, without its CR, skipping empty ones.
 * Returns 1 with *record and *len set (valid until the next add), or 0. */
int astm_assembler_next(struct astm_assembler *assembler, const char **record, size_t *len);

#endif
