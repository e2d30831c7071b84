#include "controller/hotplug.h"

#include <errno.h>
#include <libgen.h>
#include <libserialport.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define WATCHED_EVENTS (IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE | IN_MOVED_FROM)

int hotplug_open(struct daemon *daemon)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

    if (fd < 0) {
        log_msg(LOG_WARNING, "inotify unavailable (%s): devices are found by timed retries only",
                strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < daemon->instrument_count; i++) {
        struct instrument *inst = &daemon->instruments[i];
        char folder[PATH_MAX];

        snprintf(folder, sizeof(folder), "%s", inst->config->device);
        inst->watch = inotify_add_watch(fd, dirname(folder), WATCHED_EVENTS);
        if (inst->watch < 0) {
            log_msg(LOG_WARNING,
                    "%s: cannot watch %s (%s): the device is found by timed "
                    "retries only",
                    inst->config->id, folder, strerror(errno));
        }
    }
    return fd;
}

static void device_changed(struct daemon *daemon, const struct inotify_event *event)
{
    for (size_t i = 0; i < daemon->instrument_count; i++) {
        struct instrument *inst = &daemon->instruments[i];
        char path[PATH_MAX];

        snprintf(path, sizeof(path), "%s", inst->config->device);
        if (inst->watch != event->wd || strcmp(basename(path), event->name) != 0) {
            continue;
        }
        if (event->mask & (IN_DELETE | IN_MOVED_FROM)) {
            log_msg(LOG_NOTICE, "%s: %s disappeared", inst->config->id, inst->config->device);
        } else if (!inst->online) {
            log_msg(LOG_NOTICE, "%s: %s appeared; connecting", inst->config->id,
                    inst->config->device);
            line_command(&inst->line, LINE_CMD_RECONNECT, 0);
        }
    }
}

void hotplug_handle(struct daemon *daemon, int fd)
{
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t got;

    while ((got = read(fd, buffer, sizeof(buffer))) > 0) {
        for (char *p = buffer; p < buffer + got;) {
            const struct inotify_event *event = (const struct inotify_event *)p;
            if (event->len > 0) {
                device_changed(daemon, event);
            }
            p += sizeof(*event) + event->len;
        }
    }
}

/* Returns the instrument configured on port_name (compared by real path), or NULL. */
static const struct instrument *instrument_on(const struct daemon *daemon, const char *port_name)
{
    char port[PATH_MAX];

    if (realpath(port_name, port) == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < daemon->instrument_count; i++) {
        char device[PATH_MAX];
        if (realpath(daemon->instruments[i].config->device, device) != NULL &&
            strcmp(device, port) == 0) {
            return &daemon->instruments[i];
        }
    }
    return NULL;
}

void hotplug_list_ports(const struct daemon *daemon)
{
    struct sp_port **ports = NULL;

    if (sp_list_ports(&ports) != SP_OK) {
        log_msg(LOG_WARNING, "listing serial ports failed: %s", sp_last_error_message());
        return;
    }
    for (size_t i = 0; ports[i] != NULL; i++) {
        int vendor = 0;
        int product = 0;
        const char *name = sp_get_port_name(ports[i]);
        if (sp_get_port_transport(ports[i]) != SP_TRANSPORT_USB ||
            sp_get_port_usb_vid_pid(ports[i], &vendor, &product) != SP_OK) {
            continue;
        }
        const char *serial = sp_get_port_usb_serial(ports[i]);
        const struct instrument *inst = instrument_on(daemon, name);
        log_msg(LOG_NOTICE, "serial port %s: USB %04x:%04x serial %s%s%s", name, vendor, product,
                serial ? serial : "(none)", inst ? ", instrument " : ", no instrument configured",
                inst ? inst->config->id : "");
    }
    sp_free_port_list(ports);
}
