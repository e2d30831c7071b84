/* libFuzzer target for the saved-transcript reader
 * (protocol/astm_transcript.c), which "toxlab decode" runs on files from
 * anywhere. The first byte chooses strict mode; the rest is the file. Every
 * record is parsed with the delimiters of the last valid H record, as
 * toxlab decode does, and an error must point inside the file. */
#include "protocol/astm_record.h"
#include "protocol/astm_transcript.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct state {
    struct astm_delimiters delimiters;
    struct astm_record record;
};

static int on_record(void *context, const char *text, size_t len)
{
    struct state *state = context;

    if (len == 0 || memchr(text, '\r', len) != NULL) {
        abort(); /* records come without their CR, and empty ones are skipped */
    }
    if (text[0] == 'H') {
        astm_delimiters_from_header(text, len, &state->delimiters);
    }
    if (astm_record_parse(text, len, &state->delimiters, &state->record) != 0) {
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state state;
    struct astm_transcript_error error;

    if (size == 0) {
        return 0;
    }
    astm_delimiters_default(&state.delimiters);
    astm_record_init(&state.record);

    int rc =
        astm_transcript_read(data + 1, size - 1, (data[0] & 1) != 0, on_record, &state, &error);
    if (rc != 0 && (rc != -1 || error.offset > size - 1 || error.message[0] == '\0' ||
                    error.frame_number < -1 || error.frame_number > 7)) {
        abort();
    }
    astm_record_free(&state.record);
    return 0;
}
