/* Reading laboratory results for "toxlab import". */
#ifndef TOXLAB_IMPORT_H
#define TOXLAB_IMPORT_H

#include <jansson.h>
#include <stddef.h>

/* Reads a JSON or CSV file into a list of result objects. Returns NULL
 * with "PATH: record N: reason" in err. */
json_t *import_read_file(const char *path, char *err, size_t size);

#endif
