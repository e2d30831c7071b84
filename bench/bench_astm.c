/* B3: the ASTM E1381 framer and E1394 record parser on a large framed
 * transcript. The library runs astm_transcript_read with the wire checks,
 * then astm_record_parse on each record. `toxlab decode` reads the same
 * file, and `cat` of it and the 9600-baud wire rate are the references.
 *
 * The transcript repeats the records of the public samples, each sample
 * one link session: ENQ, frames of at most 240 characters of text with
 * checksums, EOT. */
#define _GNU_SOURCE
#include "bench/benchlib.h"
#include "protocol/astm_link.h"
#include "protocol/astm_record.h"
#include "protocol/astm_transcript.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_BYTES_PER_S (9600.0 / 10) /* 8N1: start, 8 data, stop */
#define MB 1e6

struct buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void append(struct buffer *buffer, const void *data, size_t len)
{
    if (buffer->len + len > buffer->cap) {
        buffer->cap = (buffer->len + len) * 2;
        buffer->data = realloc(buffer->data, buffer->cap);
        if (buffer->data == NULL) {
            bench_fail("out of memory");
        }
    }
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
}

/* One sample's records, each ending in CR, as one message's text. */
static int collect_record(void *context, const char *record, size_t len)
{
    append(context, record, len);
    append(context, "\r", 1);
    return 0;
}

static bool read_whole(const char *path, struct buffer *out)
{
    FILE *file = fopen(path, "rb");
    uint8_t chunk[65536];
    size_t got;

    if (file == NULL) {
        return false;
    }
    while ((got = fread(chunk, 1, sizeof(chunk), file)) > 0) {
        append(out, chunk, got);
    }
    fclose(file);
    return true;
}

/* Appends one link session carrying text to wire. */
static void append_session(struct buffer *wire, const struct buffer *text)
{
    static const uint8_t enq = ASTM_ENQ;
    static const uint8_t eot = ASTM_EOT;
    uint8_t frame[ASTM_STANDARD_FRAME_TEXT + ASTM_FRAME_OVERHEAD + 8];
    int number = 1;

    append(wire, &enq, 1);
    for (size_t at = 0; at < text->len; at += ASTM_STANDARD_FRAME_TEXT) {
        size_t chunk =
            text->len - at < ASTM_STANDARD_FRAME_TEXT ? text->len - at : ASTM_STANDARD_FRAME_TEXT;
        bool final = at + chunk == text->len;
        size_t len = astm_build_frame(number, (const char *)text->data + at, chunk, final, frame);

        append(wire, frame, len);
        number = (number + 1) % 8;
    }
    append(wire, &eot, 1);
}

static const char *samples_folder(void)
{
    static char path[4096];
    const char *folder = getenv("TOXLAB_ASTM_SAMPLES");

    if (folder != NULL) {
        return folder;
    }
    snprintf(path, sizeof(path), "%s/../shared/astm-samples", bench_program("TOXLAB_SOURCE_DIR"));
    return path;
}

/* Returns the text of every sample that reads cleanly, one message each. */
static size_t load_samples(struct buffer *messages, size_t max)
{
    const char *folder = samples_folder();
    DIR *dir = opendir(folder);
    struct dirent *entry;
    size_t count = 0;

    if (dir == NULL) {
        /* Exit status 77 makes ctest report a skip, as for the golden tests. */
        fprintf(stderr,
                "bench_astm: cannot open the ASTM samples in %s: %s (set "
                "TOXLAB_ASTM_SAMPLES)\n",
                folder, strerror(errno));
        exit(77);
    }
    while ((entry = readdir(dir)) != NULL && count < max) {
        char path[8192];
        struct buffer raw = {0};
        struct astm_transcript_error error;

        if (entry->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", folder, entry->d_name);
        memset(&messages[count], 0, sizeof(messages[count]));
        if (read_whole(path, &raw) &&
            astm_transcript_read(raw.data, raw.len, false, collect_record, &messages[count],
                                 &error) == 0 &&
            messages[count].len > 0) {
            count++;
        } else {
            free(messages[count].data);
        }
        free(raw.data);
    }
    closedir(dir);
    if (count == 0) {
        errno = 0;
        bench_fail("no ASTM sample in %s could be read", folder);
    }
    return count;
}

static void build_transcript(struct buffer *wire, size_t target)
{
    struct buffer messages[64];
    size_t count = load_samples(messages, 64);

    for (size_t i = 0; wire->len < target; i = (i + 1) % count) {
        append_session(wire, &messages[i]);
    }
    for (size_t i = 0; i < count; i++) {
        free(messages[i].data);
    }
}

struct parser {
    struct astm_delimiters delimiters;
    struct astm_record record;
    size_t records;
};

static int parse_record(void *context, const char *text, size_t len)
{
    struct parser *parser = context;

    if (text[0] == 'H' && astm_delimiters_from_header(text, len, &parser->delimiters) != 0) {
        return 1;
    }
    parser->records++;
    return astm_record_parse(text, len, &parser->delimiters, &parser->record) != 0;
}

/* Returns the library's throughput in MB/s. */
static double time_library(const struct buffer *wire, size_t *records)
{
    struct parser parser = {.records = 0};
    struct astm_transcript_error error;

    astm_delimiters_default(&parser.delimiters);
    astm_record_init(&parser.record);
    int64_t start = bench_now_ns();
    int rc = astm_transcript_read(wire->data, wire->len, true, parse_record, &parser, &error);
    int64_t elapsed = bench_now_ns() - start;
    astm_record_free(&parser.record);
    if (rc != 0) {
        errno = 0;
        bench_fail("the transcript failed to read at byte %zu: %s", error.offset, error.message);
    }
    *records = parser.records;
    return (double)wire->len / MB / ((double)elapsed / 1e9);
}

/* Runs a shell command with its output thrown away and returns MB/s. */
static double time_command(const char *command, size_t bytes)
{
    int64_t start = bench_now_ns();

    if (system(command) != 0) {
        errno = 0;
        bench_fail("'%s' failed", command);
    }
    return (double)bytes / MB / ((double)(bench_now_ns() - start) / 1e9);
}

int main(int argc, char **argv)
{
    int runs = 5;
    bool smoke = false;
    struct buffer wire = {0};
    double library[BENCH_MAX_RUNS], decode[BENCH_MAX_RUNS], cat[BENCH_MAX_RUNS];
    double ratio[BENCH_MAX_RUNS];
    char path[4096], command[8192], note[160];
    size_t records = 0;

    bench_common_options(argc, argv, &runs, &smoke);
    build_transcript(&wire, smoke ? 1000000 : 100000000);
    char *dir = bench_tmpdir("astm");
    snprintf(path, sizeof(path), "%s/transcript.astm", dir);
    FILE *file = fopen(path, "wb");
    if (file == NULL || fwrite(wire.data, 1, wire.len, file) != wire.len || fclose(file) != 0) {
        bench_fail("cannot write %s", path);
    }

    for (int r = 0; r < runs; r++) {
        library[r] = time_library(&wire, &records);
        snprintf(command, sizeof(command), "cat '%s' >/dev/null", path);
        cat[r] = time_command(command, wire.len);
        snprintf(command, sizeof(command), "'%s' decode --strict '%s' >/dev/null",
                 bench_program("TOXLAB"), path);
        decode[r] = time_command(command, wire.len);
        ratio[r] = library[r] / cat[r];
    }
    bench_rmdir(dir);
    free(dir);

    struct bench_stats lib = bench_stats_of(library, (size_t)runs);
    snprintf(note, sizeof(note), "%.1f MB, %zu records; target >= 100 MB/s: %s",
             (double)wire.len / MB, records, lib.median >= 100 ? "met" : "missed");
    bench_row("B3", "framer and record parser (library)", lib, 1, "MB/s", note);
    bench_row("B3", "toxlab decode --strict to /dev/null", bench_stats_of(decode, (size_t)runs), 1,
              "MB/s", "JSON output");
    bench_row("B3", "cat of the same file", bench_stats_of(cat, (size_t)runs), 0, "MB/s",
              "page cache");
    bench_row("B3", "library / cat", bench_stats_of(ratio, (size_t)runs), 3, "x", "");
    snprintf(note, sizeof(note), "wire at 9600 baud 8N1 is %.4f MB/s", WIRE_BYTES_PER_S / MB);
    for (int r = 0; r < runs; r++) {
        ratio[r] = library[r] * MB / WIRE_BYTES_PER_S;
    }
    bench_row("B3", "library / 9600-baud wire", bench_stats_of(ratio, (size_t)runs), 0, "x", note);
    free(wire.data);
    return 0;
}
