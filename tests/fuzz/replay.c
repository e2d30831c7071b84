/* Runs a libFuzzer target over files without libFuzzer, so that ctest
 * checks the committed corpus with any compiler. Each argument is a file or
 * a folder of files. Exits 0 when every input ran, 1 when one could not be
 * read; a failing input aborts the process. */
#define _GNU_SOURCE

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0;
    size_t cap = 0;

    if (file == NULL) {
        perror(path);
        return -1;
    }
    for (;;) {
        if (size == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            uint8_t *bigger = realloc(data, cap);
            if (bigger == NULL) {
                fclose(file);
                free(data);
                fprintf(stderr, "%s: out of memory\n", path);
                return -1;
            }
            data = bigger;
        }

        size_t got = fread(data + size, 1, cap - size, file);
        size += got;
        if (got == 0) {
            break;
        }
    }
    fclose(file);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int run_path(const char *path, size_t *count)
{
    struct stat info;

    if (stat(path, &info) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(info.st_mode)) {
        (*count)++;
        return run_file(path);
    }

    struct dirent **entries;
    int n = scandir(path, &entries, NULL, alphasort);
    int rc = 0;

    if (n < 0) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (entries[i]->d_name[0] != '.') {
            char *child;

            if (asprintf(&child, "%s/%s", path, entries[i]->d_name) < 0) {
                rc = -1;
            } else {
                rc |= run_path(child, count);
                free(child);
            }
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        rc |= run_path(argv[i], &count);
    }
    printf("ran %zu inputs\n", count);
    return rc == 0 ? 0 : 1;
}
