/* libFuzzer target for the client protocol codec (protocol/client_proto.c).
 *
 * The first byte of the input chooses a chunk size. The rest is a byte
 * stream from a client, fed to one line reader whole and to another in
 * chunks of that size. Both readers must return the same lines and end in
 * the same state, so the framing does not depend on how recv() splits the
 * stream. Every line that parses as JSON is encoded again, and the encoded
 * line must read back through a fresh reader as one line holding an equal
 * value. An error response built from the line must round-trip the same
 * way. */
#include "protocol/client_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 4096

struct lines {
    char *text[MAX_LINES];
    size_t size[MAX_LINES];
    size_t count;
    int status; /* the reader's last return: 0, or -1 after an overlong line */
};

static void lines_free(struct lines *lines)
{
    for (size_t i = 0; i < lines->count; i++) {
        free(lines->text[i]);
    }
}

/* Takes every whole line the reader holds and checks the framing rules. */
static void drain(struct proto_reader *reader, struct lines *lines)
{
    char *line;
    size_t size;
    int status;

    while ((status = proto_reader_next_sized(reader, &line, &size)) == 1) {
        if (size > PROTO_MAX_LINE || memchr(line, '\n', size) != NULL || line[size] != '\0') {
            abort();
        }
        if (lines->count == MAX_LINES) {
            free(line);
            continue;
        }
        lines->text[lines->count] = line;
        lines->size[lines->count] = size;
        lines->count++;
    }
    lines->status = status;
}

static void read_stream(const uint8_t *data, size_t size, size_t chunk, struct lines *lines)
{
    struct proto_reader reader;

    proto_reader_init(&reader);
    for (size_t at = 0; at < size && lines->status == 0; at += chunk) {
        size_t len = size - at < chunk ? size - at : chunk;

        if (proto_reader_feed(&reader, (const char *)data + at, len) != 0) {
            abort();
        }
        drain(&reader, lines);
    }
    /* Once a line is too long the reader must stay unusable. */
    if (lines->status < 0 && proto_reader_next_sized(&reader, &(char *){NULL}, &(size_t){0}) >= 0) {
        abort();
    }
    proto_reader_free(&reader);
}

/* Encodes value, reads the line back through a fresh reader and compares. */
static void round_trip(const json_t *value)
{
    char *encoded = proto_encode_line(value);

    if (encoded == NULL) {
        return; /* larger than the line limit */
    }

    size_t len = strlen(encoded);
    if (len == 0 || encoded[len - 1] != '\n' || memchr(encoded, '\n', len - 1) != NULL) {
        abort();
    }

    struct proto_reader reader;
    char *line = NULL;
    size_t size = 0;

    proto_reader_init(&reader);
    if (proto_reader_feed(&reader, encoded, len) != 0 ||
        proto_reader_next_sized(&reader, &line, &size) != 1 || size != len - 1) {
        abort();
    }
    if (proto_reader_next_sized(&reader, &(char *){NULL}, &(size_t){0}) != 0) {
        abort();
    }

    json_error_t error;
    json_t *decoded = json_loadb(line, size, JSON_REJECT_DUPLICATES, &error);
    if (decoded == NULL || !json_equal(decoded, value)) {
        abort();
    }
    json_decref(decoded);
    free(line);
    proto_reader_free(&reader);
    free(encoded);
}

static void check_line(const char *text, size_t size, uint8_t code)
{
    json_error_t error;
    json_t *value = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);

    if (value != NULL) {
        round_trip(value);
        json_decref(value);
    }

    /* A message with a NUL or invalid UTF-8 cannot become a JSON string. */
    json_t *message = json_stringn(text, size);
    if (message == NULL) {
        return;
    }
    json_decref(message);

    enum proto_error kind = (enum proto_error)(code % (PROTO_ERROR_COUNT + 1));
    json_t *response = proto_error_response((json_int_t)size, kind, text);
    if (response == NULL) {
        abort();
    }
    const char *name =
        json_string_value(json_object_get(json_object_get(response, "error"), "code"));
    if (name == NULL || strcmp(name, proto_error_name(kind)) != 0) {
        abort();
    }
    round_trip(response);
    json_decref(response);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lines whole;
    static struct lines chunked;

    if (size == 0) {
        return 0;
    }
    size_t chunk = (size_t)data[0] + 1;
    uint8_t code = data[0];
    data++;
    size--;

    memset(&whole, 0, sizeof whole);
    memset(&chunked, 0, sizeof chunked);
    read_stream(data, size, size == 0 ? 1 : size, &whole);
    read_stream(data, size, chunk, &chunked);

    if (whole.count != chunked.count || whole.status != chunked.status) {
        abort();
    }
    for (size_t i = 0; i < whole.count; i++) {
        if (whole.size[i] != chunked.size[i] ||
            memcmp(whole.text[i], chunked.text[i], whole.size[i]) != 0) {
            abort();
        }
        check_line(whole.text[i], whole.size[i], code);
    }
    lines_free(&whole);
    lines_free(&chunked);
    return 0;
}
