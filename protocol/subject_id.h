/* Subject identifiers written `[type:]number`. Resident IDs follow
 * GB 11643-1999: 6-digit address code, birth date YYYYMMDD, 3-digit
 * sequence and a check character. */
#ifndef TOXLAB_SUBJECT_ID_H
#define TOXLAB_SUBJECT_ID_H

#include <stddef.h>

#define SUBJECT_NUMBER_MAX 32
#define SUBJECT_MASKED_MAX (SUBJECT_NUMBER_MAX + 1)

struct subject_id {
    char type[24]; /* "resident", "passport", "foreign-permanent", "other" */
    char number[SUBJECT_NUMBER_MAX + 1];
};

/* Returns the GB 11643 check character for the first 17 digits. */
char subject_resident_check_char(const char *first17);

/* Parses and normalises text (trimmed, type lowercase, a resident ID's
 * trailing x made X). today is YYYYMMDD, for the birth-date check. Returns
 * 0, or -1 with the failed check described in err. */
int subject_id_parse(const char *text, int today, struct subject_id *id, char *err,
                     size_t err_size);

/* Masks a number for logs and roles that do not need it in full: the first
 * 6 and last 4 characters stay, the rest become '*'. Numbers of 10
 * characters or fewer are masked whole except the last 2. */
void subject_id_mask(const char *number, char *out, size_t size);

#endif
