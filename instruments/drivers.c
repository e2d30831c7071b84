#include "instruments/driver.h"

#include <stdio.h>
#include <string.h>

extern const struct driver_ops saliva_driver;
extern const struct driver_ops breath_driver;
extern const struct driver_ops hair_driver;

/* Every driver the daemon can run, by its configuration name. */
static const struct driver_ops *const drivers[] = {
    &saliva_driver,
    &breath_driver,
    &hair_driver,
};

const struct driver_ops *driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        if (strcmp(drivers[i]->name, name) == 0) {
            return drivers[i];
        }
    }
    return NULL;
}

const char *driver_status_text(int status)
{
    switch (status) {
    case DRIVER_OK:
        return "ok";
    case DRIVER_TIMEOUT:
        return "timed out";
    case DRIVER_CORRUPT:
        return "corrupt reply";
    case DRIVER_EXCEPTION:
        return "refused by the device";
    case DRIVER_IO:
        return "port failed";
    case DRIVER_MISMATCH:
        return "host test ID mismatch";
    case DRIVER_BUSY_PORT:
        return "port busy";
    case DRIVER_WRONG_MODEL:
        return "wrong model";
    case DRIVER_BAD_CRC:
        return "CRC error";
    default:
        return "unknown error";
    }
}

void driver_clean_text(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            *p = '?';
        }
    }
}

void driver_format_date(uint32_t yyyymmdd, char out[11])
{
    snprintf(out, 11, "%04u-%02u-%02u", yyyymmdd / 10000 % 10000, yyyymmdd / 100 % 100,
             yyyymmdd % 100);
}

int driver_fill_progress(const struct driver_status_codes *codes,
                         const struct driver_status_block *status, struct driver_progress *progress,
                         char *err, size_t size)
{
    memset(progress, 0, sizeof(*progress));
    progress->step = codes->state_name(status->state);
    if (progress->step == NULL) {
        snprintf(err, size, "unknown state %u in status block at register %d", status->state,
                 codes->address);
        return DRIVER_CORRUPT;
    }
    progress->percent = status->percent > 100 ? 100 : status->percent;
    progress->seconds_left = status->seconds_left;
    progress->host_test_id = status->host_test_id;
    progress->sequence = status->sequence;
    progress->idle = status->state == codes->idle_state;
    progress->result_ready = status->state == codes->result_state;
    progress->device_error = status->state == codes->error_state;
    if (progress->device_error) {
        const char *text = codes->error_text(status->error_code);
        snprintf(progress->error_text, sizeof(progress->error_text), "device error %u (%s)",
                 status->error_code, text ? text : "unknown");
    }
    return DRIVER_OK;
}
