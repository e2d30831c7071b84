/* Reading saved ASTM transcripts from memory: wire bytes (ENQ, frames,
 * EOT), saved frames one a line, or bare records one a line. Frames go
 * through the same checks as on a link and their text is joined into
 * records. No I/O: the caller reads the file. */
#ifndef TOXLAB_ASTM_TRANSCRIPT_H
#define TOXLAB_ASTM_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum astm_transcript_format {
    ASTM_TRANSCRIPT_UNKNOWN,
    ASTM_TRANSCRIPT_WIRE,    /* starts with ENQ */
    ASTM_TRANSCRIPT_FRAMES,  /* frames one a line, STX and checksum optional */
    ASTM_TRANSCRIPT_RECORDS, /* records one a line, no framing */
};

/* Guesses the format from the first bytes after any line ends and spaces. */
enum astm_transcript_format astm_transcript_detect(const uint8_t *data, size_t len);

/* Position and reason of a read error. frame_number is -1 when no frame applies. */
struct astm_transcript_error {
    size_t offset;
    int frame_number;
    char message[160];
};

/* Called for each record, without its CR. A non-zero return stops the
 * reading and becomes its result. */
typedef int (*astm_record_callback)(void *context, const char *record, size_t len);

/* Reads a whole transcript and calls on_record for each record in order.
 * With strict, only wire bytes are accepted: a file that starts with STX is
 * read as a link session whose ENQ was not saved, and anything else is an
 * error. Returns 0; -1 with *error set on a framing, checksum or format
 * error; or the callback's non-zero result. */
int astm_transcript_read(const uint8_t *data, size_t len, bool strict,
                         astm_record_callback on_record, void *context,
                         struct astm_transcript_error *error);

#endif
