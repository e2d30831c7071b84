#include "protocol/client_proto.h"

#include <stdlib.h>
#include <string.h>

static const char *const error_names[PROTO_ERROR_COUNT] = {
    [PROTO_BAD_REQUEST] = "bad-request",
    [PROTO_TOO_LARGE] = "too-large",
    [PROTO_UNKNOWN_COMMAND] = "unknown-command",
    [PROTO_INVALID_ARGUMENT] = "invalid-argument",
    [PROTO_NOT_FOUND] = "not-found",
    [PROTO_CONFLICT] = "conflict",
    [PROTO_INSTRUMENT_BUSY] = "instrument-busy",
    [PROTO_INSTRUMENT_OFFLINE] = "instrument-offline",
    [PROTO_STORAGE] = "storage",
    [PROTO_INTERNAL] = "internal",
    [PROTO_FORBIDDEN] = "forbidden",
    [PROTO_INVALID_FILE] = "invalid-file",
    [PROTO_AUDIT_MISMATCH] = "audit-mismatch",
    [PROTO_UNAVAILABLE] = "unavailable",
};

const char *proto_error_name(enum proto_error code)
{
    if ((unsigned)code >= PROTO_ERROR_COUNT) {
        return "internal";
    }
    return error_names[code];
}

json_t *proto_error_response(json_int_t id, enum proto_error code, const char *message)
{
    json_t *response = json_pack("{sI sb ss}", "id", id, "ok", 0, "class", "error");
    json_t *error = json_pack("{ss ss}", "code", proto_error_name(code), "message", message);

    json_object_set_new(response, "error", error);
    return response;
}

json_t *proto_ok_response(json_int_t id, const char *cls)
{
    return json_pack("{sI sb ss}", "id", id, "ok", 1, "class", cls);
}

char *proto_encode_line(const json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t len;
    char *line;

    if (text == NULL) {
        return NULL;
    }
    len = strlen(text);
    if (len + 1 > PROTO_MAX_LINE) {
        free(text);
        return NULL;
    }
    line = realloc(text, len + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    return line;
}

void proto_reader_init(struct proto_reader *reader)
{
    memset(reader, 0, sizeof(*reader));
}

void proto_reader_free(struct proto_reader *reader)
{
    free(reader->data);
    memset(reader, 0, sizeof(*reader));
}

int proto_reader_feed(struct proto_reader *reader, const char *bytes, size_t len)
{
    if (reader->used + len > reader->capacity) {
        size_t capacity = reader->capacity ? reader->capacity : 4096;
        char *grown;

        while (capacity < reader->used + len) {
            capacity *= 2;
        }
        grown = realloc(reader->data, capacity);
        if (grown == NULL) {
            return -1;
        }
        reader->data = grown;
        reader->capacity = capacity;
    }
    memcpy(reader->data + reader->used, bytes, len);
    reader->used += len;
    return 0;
}

int proto_reader_next_sized(struct proto_reader *reader, char **line, size_t *size)
{
    char *newline;
    size_t len;

    if (reader->overflow) {
        return -1;
    }
    newline = reader->used ? memchr(reader->data, '\n', reader->used) : NULL;
    if (newline == NULL) {
        if (reader->used > PROTO_MAX_LINE) {
            reader->overflow = 1;
            return -1;
        }
        return 0;
    }
    len = (size_t)(newline - reader->data);
    if (len > PROTO_MAX_LINE) {
        reader->overflow = 1;
        return -1;
    }
    *line = malloc(len + 1);
    if (*line == NULL) {
        return -1;
    }
    memcpy(*line, reader->data, len);
    (*line)[len] = '\0';
    *size = len;
    memmove(reader->data, newline + 1, reader->used - len - 1);
    reader->used -= len + 1;
    return 1;
}

int proto_reader_next(struct proto_reader *reader, char **line)
{
    size_t size;

    return proto_reader_next_sized(reader, line, &size);
}
