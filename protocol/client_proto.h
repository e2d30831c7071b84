/* The client protocol of docs/protocol.md: versions, limits, error codes and
 * the line framing shared by toxlabd and toxlab. No I/O. */
#ifndef TOXLAB_CLIENT_PROTO_H
#define TOXLAB_CLIENT_PROTO_H

#include <jansson.h>
#include <stddef.h>

#define PROTO_MAJOR 1
#define PROTO_MINOR 2
#define PROTO_MAX_LINE 65536

enum proto_error {
    PROTO_BAD_REQUEST,
    PROTO_TOO_LARGE,
    PROTO_UNKNOWN_COMMAND,
    PROTO_INVALID_ARGUMENT,
    PROTO_NOT_FOUND,
    PROTO_CONFLICT,
    PROTO_INSTRUMENT_BUSY,
    PROTO_INSTRUMENT_OFFLINE,
    PROTO_STORAGE,
    PROTO_INTERNAL,
    PROTO_FORBIDDEN,
    PROTO_INVALID_FILE,
    PROTO_AUDIT_MISMATCH,
    PROTO_UNAVAILABLE,
    PROTO_ERROR_COUNT
};

/* Returns the wire name of an error code ("not-found"). */
const char *proto_error_name(enum proto_error code);

/* Builds {"id", "ok": false, "class": "error", "error": {"code", "message"}}. */
json_t *proto_error_response(json_int_t id, enum proto_error code, const char *message);

/* Builds {"id", "ok": true, "class": cls}; the caller adds the payload. */
json_t *proto_ok_response(json_int_t id, const char *cls);

/* Serialises obj as one compact line ending in '\n'. Returns a malloc'd
 * string, or NULL when it would exceed PROTO_MAX_LINE. */
char *proto_encode_line(const json_t *obj);

/* Line buffer that splits a byte stream into lines of at most
 * PROTO_MAX_LINE bytes. */
struct proto_reader {
    char *data;
    size_t used;
    size_t capacity;
    int overflow; /* set when a line exceeded PROTO_MAX_LINE */
};

void proto_reader_init(struct proto_reader *reader);
void proto_reader_free(struct proto_reader *reader);

/* Appends bytes. Returns 0, or -1 when out of memory. */
int proto_reader_feed(struct proto_reader *reader, const char *bytes, size_t len);

/* Takes the next whole line (without '\n') into a malloc'd string. Returns 1
 * with *line set, 0 when no whole line is buffered, or -1 when the current
 * line is longer than PROTO_MAX_LINE (the reader is then unusable). */
int proto_reader_next(struct proto_reader *reader, char **line);

/* The same, also setting *size to the line's length, so that a line with
 * a NUL byte can be told from a shorter one. */
int proto_reader_next_sized(struct proto_reader *reader, char **line, size_t *size);

#endif
