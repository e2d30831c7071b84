/* "toxlab decode FILE...": reads saved ASTM transcripts (wire bytes, frames
 * one a line, or bare records) and prints each record as one JSON line
 * {"type": "R", "fields": [...]}, where fields[i] is field i+1 of the
 * standard as a list of repeats, each a list of components. Errors go to
 * stderr with the file, byte offset and frame number. */
#define _GNU_SOURCE

#include "controller/toxlab_decode.h"

#include "protocol/astm_record.h"
#include "protocol/astm_transcript.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { DECODE_OK = 0, DECODE_ERROR = 1, DECODE_USAGE = 2 };

/* Callback result that stops reading after an error already printed. */
#define STOPPED 1

/* State of one file being decoded. */
struct decoder {
    const char *path;
    struct astm_delimiters delimiters;
    struct astm_record record;
    size_t records; /* records printed so far, for messages */
};

void toxlab_decode_help(FILE *stream)
{
    fputs("Usage: toxlab decode [--strict] FILE...\n"
          "\n"
          "Print each ASTM E1394 record of saved transcripts as one JSON line,\n"
          "{\"type\": \"R\", \"fields\": [...]}, where fields[i] is field i+1 as a list of\n"
          "repeats, each a list of components. toxlabd is not needed.\n"
          "\n"
          "A file may hold wire bytes (ENQ, frames, EOT), frames one a line (STX and\n"
          "checksum optional), or bare records one a line.\n"
          "\n"
          "Options:\n"
          "      --strict           accept wire bytes only (a file that starts with ENQ,\n"
          "                         or with STX when the capture began after ENQ)\n"
          "  -h, --help             print this help and exit\n"
          "\n"
          "Exit status:\n"
          "  0      every file decoded\n"
          "  1      a file could not be read, or has a framing, checksum or record error\n"
          "  2      invalid command line\n",
          stream);
}

/* Reads a whole file into memory. Returns 0 or an errno value. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *file = fopen(path, "rb");
    size_t cap = 0;

    *data = NULL;
    *len = 0;
    if (file == NULL) {
        return errno;
    }
    for (;;) {
        if (*len == cap) {
            cap = cap == 0 ? 65536 : cap * 2;
            uint8_t *bigger = realloc(*data, cap);
            if (bigger == NULL) {
                fclose(file);
                return ENOMEM;
            }
            *data = bigger;
        }

        size_t got = fread(*data + *len, 1, cap - *len, file);
        *len += got;
        if (got == 0) {
            break;
        }
    }

    int failed = ferror(file) ? EIO : 0;
    fclose(file);
    return failed;
}

/* Returns a JSON string of the text: UTF-8 as it is, anything else read as
 * ISO 8859-1, the character set of many analyzers. */
static json_t *text_to_json(const char *text, size_t len)
{
    json_t *string = json_stringn(text, len);

    if (string != NULL || len == 0) {
        return string;
    }

    char *utf8 = malloc(len * 2);
    size_t out = 0;
    if (utf8 == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c < 0x80) {
            utf8[out++] = (char)c;
        } else {
            utf8[out++] = (char)(0xC0 | (c >> 6));
            utf8[out++] = (char)(0x80 | (c & 0x3F));
        }
    }
    string = json_stringn(utf8, out);
    free(utf8);
    return string;
}

/* Appends a new empty array to parent and returns it (borrowed). */
static json_t *append_array(json_t *parent)
{
    json_t *array = json_array();

    if (array == NULL || json_array_append_new(parent, array) != 0) {
        return NULL;
    }
    return array;
}

/* Builds the fields array from the parsed values, which come in order of
 * field, repeat and component with every position present. */
static json_t *fields_to_json(const struct astm_record *record)
{
    json_t *fields = json_array();
    json_t *repeats = NULL;
    json_t *components = NULL;
    unsigned field = 0;
    unsigned repeat = 0;

    for (size_t i = 0; fields != NULL && i < record->count; i++) {
        const struct astm_value *value = &record->values[i];

        while (field < value->field) {
            repeats = append_array(fields);
            field++;
            repeat = 0;
        }
        while (repeats != NULL && repeat < value->repeat) {
            components = append_array(repeats);
            repeat++;
        }
        if (repeats == NULL || components == NULL ||
            json_array_append_new(components,
                                  text_to_json(record->text + value->offset, value->len)) != 0) {
            json_decref(fields);
            return NULL;
        }
    }
    return fields;
}

static int print_record(struct decoder *decoder)
{
    json_t *object = json_object();
    char type = astm_record_type(&decoder->record);
    char *line = NULL;

    if (object != NULL &&
        json_object_set_new(object, "type", text_to_json(&type, type != '\0')) == 0 &&
        json_object_set_new(object, "fields", fields_to_json(&decoder->record)) == 0) {
        line = json_dumps(object, JSON_PRESERVE_ORDER);
    }
    json_decref(object);
    if (line == NULL) {
        fprintf(stderr, "toxlab decode: %s: out of memory\n", decoder->path);
        return STOPPED;
    }
    puts(line);
    free(line);
    return 0;
}

static int on_record(void *context, const char *text, size_t len)
{
    struct decoder *decoder = context;

    decoder->records++;
    if (text[0] == 'H' && astm_delimiters_from_header(text, len, &decoder->delimiters) != 0) {
        fprintf(stderr,
                "toxlab decode: %s: record %zu: invalid delimiter definition in the H record\n",
                decoder->path, decoder->records);
        return STOPPED;
    }
    if (astm_record_parse(text, len, &decoder->delimiters, &decoder->record) != 0) {
        fprintf(stderr, "toxlab decode: %s: record %zu: out of memory\n", decoder->path,
                decoder->records);
        return STOPPED;
    }
    return print_record(decoder);
}

static void print_read_error(const char *path, const struct astm_transcript_error *error)
{
    fprintf(stderr, "toxlab decode: %s: byte %zu: ", path, error->offset);
    if (error->frame_number >= 0) {
        fprintf(stderr, "frame %d: ", error->frame_number);
    }
    fprintf(stderr, "%s\n", error->message);
}

static int decode_file(const char *path, bool strict)
{
    struct decoder decoder = {.path = path, .records = 0};
    struct astm_transcript_error error;
    uint8_t *data;
    size_t len;
    int failed = read_file(path, &data, &len);

    if (failed != 0) {
        fprintf(stderr, "toxlab decode: cannot read %s: %s\n", path, strerror(failed));
        free(data);
        return DECODE_ERROR;
    }

    astm_delimiters_default(&decoder.delimiters);
    astm_record_init(&decoder.record);
    int rc = astm_transcript_read(data, len, strict, on_record, &decoder, &error);
    if (rc < 0) {
        print_read_error(path, &error);
    }
    astm_record_free(&decoder.record);
    free(data);
    return rc == 0 ? DECODE_OK : DECODE_ERROR;
}

static int usage_error(const char *message, const char *value)
{
    fprintf(stderr, "toxlab decode: %s%s\nTry 'toxlab decode --help'.\n", message, value);
    return DECODE_USAGE;
}

int toxlab_decode(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"strict", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool strict = false;
    int result;
    int status = DECODE_OK;

    optind = 0;
    opterr = 0;
    while ((result = getopt_long(argc, argv, "+h", long_options, NULL)) != -1) {
        if (result == 's') {
            strict = true;
        } else if (result == 'h') {
            toxlab_decode_help(stdout);
            return DECODE_OK;
        } else {
            return usage_error("invalid option ", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        return usage_error("missing FILE", "");
    }

    for (int i = optind; i < argc; i++) {
        if (decode_file(argv[i], strict) != DECODE_OK) {
            status = DECODE_ERROR;
        }
    }
    return status;
}
