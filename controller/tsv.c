#include "controller/tsv.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *tsv_trim(char *text)
{
    size_t len = strlen(text);

    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t')) {
        text[--len] = '\0';
    }
    while (*text == ' ' || *text == '\t') {
        text++;
    }
    return text;
}

size_t tsv_split(char *line, char **fields, size_t max)
{
    size_t count = 0;

    while (count < max) {
        fields[count++] = line;
        char *tab = strchr(line, '\t');
        if (tab == NULL) {
            break;
        }
        *tab = '\0';
        line = tab + 1;
    }
    for (size_t i = 0; i < count; i++) {
        fields[i] = tsv_trim(fields[i]);
    }
    return count;
}

int tsv_copy(char *field, size_t size, const char *value)
{
    if (value[0] == '\0' || strlen(value) >= size) {
        return -1;
    }
    snprintf(field, size, "%s", value);
    return 0;
}

void tsv_sha256_hex(const char *text, char out[TSV_VERSION_HEX])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;

    out[0] = '\0';
    EVP_Digest(text, strlen(text), digest, &digest_len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < digest_len && i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    }
}

char *tsv_read_file(const char *path, size_t max_bytes, char *err, size_t err_size)
{
    FILE *file = fopen(path, "r");
    char *text;
    size_t len;

    if (file == NULL) {
        snprintf(err, err_size, "%s: cannot open the file", path);
        return NULL;
    }
    text = malloc(max_bytes + 1);
    len = text ? fread(text, 1, max_bytes + 1, file) : 0;
    fclose(file);
    if (text == NULL || len > max_bytes) {
        free(text);
        snprintf(err, err_size, "%s: larger than %zu bytes", path, max_bytes);
        return NULL;
    }
    text[len] = '\0';
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        snprintf(err, err_size, "%s: NUL byte at offset %zu; the file is not text", path,
                 (size_t)(nul - text));
        free(text);
        return NULL;
    }
    return text;
}

int tsv_parse_lines(const char *text, const char *name,
                    const char *(*parse)(char *line, int number, void *user), void *user, char *err,
                    size_t err_size)
{
    char *copy = strdup(text);
    char *cursor = copy;
    int number = 0;

    if (copy == NULL) {
        snprintf(err, err_size, "%s: out of memory", name);
        return -1;
    }
    while (cursor != NULL) {
        char *line = cursor;
        char *newline = strchr(cursor, '\n');
        cursor = newline ? newline + 1 : NULL;
        if (newline) {
            *newline = '\0';
        }
        number++;
        if (line[0] == '#' || tsv_trim(line)[0] == '\0') {
            continue;
        }
        const char *reason = parse(line, number, user);
        if (reason != NULL) {
            snprintf(err, err_size, "%s:%d: %s", name, number, reason);
            free(copy);
            return -1;
        }
    }
    free(copy);
    return 0;
}
