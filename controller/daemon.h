/* State of toxlabd shared by the event loop's modules: the server (socket
 * and clients), the stop and test logic, and main. Only the event loop's
 * thread touches it; line threads talk to it through line events. */
#ifndef TOXLAB_DAEMON_H
#define TOXLAB_DAEMON_H

#include "controller/config.h"
#include "controller/line.h"
#include "controller/log.h"
#include "controller/roles.h"
#include "controller/rules.h"
#include "controller/thresholds.h"
#include "controller/ulid.h"
#include "protocol/client_proto.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/types.h>

#define CLIENT_MAX_WATCHES 16
#define CLIENT_MAX_OUTPUT (4 * 1024 * 1024)
/* Descriptors kept free of clients: the database, its journal files, the
 * lines, the listening socket, signals, inotify and logs. An estimate with
 * room to spare, not a count. */
#define DAEMON_RESERVED_FDS 64

struct instrument {
    const struct instrument_config *config;
    const struct driver_ops *ops;
    struct line line;
    bool online;
    struct driver_identity identity;
    char last_error[DRIVER_ERR_SIZE];
    struct log_throttle errors;
    /* The test in progress; empty when the instrument is free. */
    char test_id[RECORD_ID_SIZE];
    char stop_id[RECORD_ID_SIZE];
    uint32_t host_test_id;
    int64_t last_contact_ms; /* monotonic time of the last good reply */
    char step[24];
    int percent;
    int watch;            /* inotify watch of the device's folder, -1 for none */
    int64_t last_seen_ms; /* wall-clock time of the last good reply, 0 for never */
};

struct client {
    struct client *next;
    int fd;
    pid_t pid;
    uid_t uid;
    unsigned roles; /* ROLE_* bits */
    struct proto_reader reader;
    char *output;
    size_t output_used;
    size_t output_size;
    bool closing;
    size_t watch_count;
    char watches[CLIENT_MAX_WATCHES][RECORD_ID_SIZE]; /* stop or test IDs */
};

struct daemon {
    struct config config;
    sqlite3 *db;
    int db_lock_fd; /* flock on DATABASE-toxlabd.lock: one daemon per database */
    struct threshold_set thresholds;
    struct rule_set rules;
    struct role_table roles;
    size_t instrument_count;
    struct instrument instruments[CONFIG_MAX_INSTRUMENTS];
    int listen_fd;
    bool listen_fd_inherited;
    struct client *clients;
    size_t client_count;
    bool accept_paused;       /* accept ran out of descriptors; see server_accept */
    int64_t accept_paused_ms; /* monotonic time of the pause */
};

/* server.c: the UNIX socket and the clients. */

/* Raises the soft open file limit so that config->max_clients clients fit,
 * or lowers max_clients to what the hard limit allows, with a warning. */
void server_fit_clients(struct config *config);
int server_listen(struct daemon *daemon, char *err, size_t err_size);
void server_close(struct daemon *daemon);
void server_accept(struct daemon *daemon);
void server_read(struct daemon *daemon, struct client *client);
void server_flush(struct client *client);
void server_reap(struct daemon *daemon);
void client_send(struct client *client, json_t *message); /* takes the reference */
void client_watch(struct client *client, const char *id);
void client_unwatch(struct client *client, const char *id);

/* Sends an event to every client watching one of the IDs (NULLs skipped);
 * unwatch removes those watches afterwards. Takes the reference. */
void server_publish(struct daemon *daemon, const char *stop_id, const char *test_id, json_t *event,
                    bool unwatch);

/* stops.c: commands and line events. */
json_t *command_dispatch(struct daemon *daemon, struct client *client, json_int_t id,
                         const char *cmd, json_t *args);
/* Handles a list of line events, oldest first, and frees them. The results
 * among them are stored in one transaction before they are acknowledged. */
void stops_handle_events(struct daemon *daemon, struct line_event *events);

/* Interrupts tests whose analyzer stayed silent past the grace period and
 * returns the milliseconds until the next deadline (or -1 for none). */
int stops_check_grace(struct daemon *daemon);

struct instrument *daemon_find_instrument(struct daemon *daemon, const char *id);

#endif
