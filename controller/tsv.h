/* Helpers for the line-oriented files people edit (threshold sets, licence
 * rules): tab-separated fields, trimming, and the SHA-256 version. */
#ifndef TOXLAB_TSV_H
#define TOXLAB_TSV_H

#include <stdbool.h>
#include <stddef.h>

#define TSV_VERSION_HEX 65

/* Splits line at tabs, in place, into at most max fields, each trimmed.
 * Returns the count. */
size_t tsv_split(char *line, char **fields, size_t max);

/* Trims spaces, tabs and a carriage return from both ends, in place. */
char *tsv_trim(char *text);

/* Copies a non-empty value that fits; returns 0, or -1 when it is empty or too long. */
int tsv_copy(char *field, size_t size, const char *value);

/* Writes the SHA-256 of text as lowercase hex. */
void tsv_sha256_hex(const char *text, char out[TSV_VERSION_HEX]);

/* Calls parse for each line of text that is neither blank nor a '#'
 * comment, with its 1-based number, on a copy it may change. Returns 0, or
 * -1 with "NAME:LINE: reason" in err for the first line parse rejects. */
int tsv_parse_lines(const char *text, const char *name,
                    const char *(*parse)(char *line, int number, void *user), void *user, char *err,
                    size_t err_size);

/* Reads a whole text file of at most max_bytes. Returns a malloc'd string,
 * or NULL with "PATH: reason" in err. */
char *tsv_read_file(const char *path, size_t max_bytes, char *err, size_t err_size);

#endif
