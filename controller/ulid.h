/* Time-ordered 128-bit identifiers (ULID text: 48-bit milliseconds, 80
 * random bits, Crockford base32) prefixed by the lab's ID, so records of
 * many vans merge without a key migration: "VAN01-01JEQ7K2M3Z4X5Y6V7W8T9R0SA". */
#ifndef TOXLAB_ULID_H
#define TOXLAB_ULID_H

#include <stddef.h>
#include <stdint.h>

#define ULID_TEXT_LEN 26
#define LAB_ID_MAX 16
#define RECORD_ID_SIZE (LAB_ID_MAX + 1 + ULID_TEXT_LEN + 1)

/* Writes a ULID for epoch_ms and the given 10 random bytes. */
void ulid_encode(int64_t epoch_ms, const uint8_t random[10], char out[ULID_TEXT_LEN + 1]);

/* Writes "<lab>-<ULID>" for now, with random bits from getrandom(2). */
void record_id_new(const char *lab, char out[RECORD_ID_SIZE]);

/* Returns 32 random bits from getrandom(2), never 0. */
uint32_t random_u32_nonzero(void);

#endif
