#include "controller/ulid.h"

#include "controller/timefmt.h"

#include <stdio.h>
#include <sys/random.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void ulid_encode(int64_t epoch_ms, const uint8_t random[10], char out[ULID_TEXT_LEN + 1])
{
    uint8_t bytes[16];

    for (int i = 0; i < 6; i++) {
        bytes[i] = (uint8_t)((uint64_t)epoch_ms >> (40 - 8 * i));
    }
    for (int i = 0; i < 10; i++) {
        bytes[6 + i] = random[i];
    }
    /* 128 bits as 26 base32 digits: the first digit carries the top 3 bits. */
    for (int digit = 0; digit < ULID_TEXT_LEN; digit++) {
        int bit = digit == 0 ? 0 : 3 + (digit - 1) * 5;
        int width = digit == 0 ? 3 : 5;
        unsigned value = 0;
        for (int k = 0; k < width; k++) {
            int index = bit + k;
            value = (value << 1) | ((bytes[index / 8] >> (7 - index % 8)) & 1);
        }
        out[digit] = crockford[value];
    }
    out[ULID_TEXT_LEN] = '\0';
}

static void fill_random(void *buffer, size_t len)
{
    uint8_t *bytes = buffer;
    size_t done = 0;

    while (done < len) {
        ssize_t got = getrandom(bytes + done, len - done, 0);
        if (got > 0) {
            done += (size_t)got;
        }
    }
}

void record_id_new(const char *lab, char out[RECORD_ID_SIZE])
{
    uint8_t random[10];
    char ulid[ULID_TEXT_LEN + 1];

    fill_random(random, sizeof(random));
    ulid_encode(time_realtime_ms(), random, ulid);
    snprintf(out, RECORD_ID_SIZE, "%.*s-%s", LAB_ID_MAX, lab, ulid);
}

uint32_t random_u32_nonzero(void)
{
    uint32_t value = 0;

    while (value == 0) {
        fill_random(&value, sizeof(value));
    }
    return value;
}
