/* toxlabd for the benchmarks: a configuration in a temporary folder, the
 * daemon started with its readiness read from a NOTIFY_SOCKET the
 * benchmark owns, simulated saliva analyzers, and a client of the JSON
 * Lines protocol on the daemon's socket. */
#ifndef TOXLAB_BENCH_DAEMON_RIG_H
#define TOXLAB_BENCH_DAEMON_RIG_H

#include "bench/benchlib.h"

#include <jansson.h>
#include <stdint.h>

#define RIG_MAX_SIMS 16

struct daemon_rig {
    char *dir;
    char database[4096];
    char socket[108];
    int notify_fd;
    struct bench_child daemon;
    size_t sim_count;
    struct bench_child sims[RIG_MAX_SIMS];
    char ptys[RIG_MAX_SIMS][128];
};

/* Makes the folder and names the socket in it. The database is the given
 * path, or a new file in the folder when database is NULL. */
void rig_init(struct daemon_rig *rig, const char *tag, const char *database);

/* Starts count saliva sims with the scenario (0 ms phases when NULL). */
void rig_start_sims(struct daemon_rig *rig, size_t count, const char *scenario);

/* Writes the configuration for the sims started so far, each polled
 * every poll_ms, and starts toxlabd. Returns the nanoseconds from fork to
 * READY=1. */
int64_t rig_start_daemon(struct daemon_rig *rig, int poll_ms);

/* Stops the daemon, and exits the benchmark unless it stopped cleanly. */
void rig_stop_daemon(struct daemon_rig *rig);

/* Stops everything and removes the folder. */
void rig_cleanup(struct daemon_rig *rig);

struct client {
    int fd;
    char buffer[1 << 16];
    size_t buffered;
    int64_t next_id;
};

/* Connects and reads the daemon's hello line. */
void client_open(struct client *client, const char *socket_path);
void client_close(struct client *client);

/* Sends one request without waiting for the response and returns its
 * id. Takes the reference to args. */
int64_t client_send(struct client *client, const char *cmd, json_t *args);

/* Reads the next line as JSON: a response or an event. */
json_t *client_read(struct client *client);

/* Sends a request and returns its response; events met on the way go to
 * on_event when it is not NULL. Takes args. */
json_t *client_call(struct client *client, const char *cmd, json_t *args,
                    void (*on_event)(json_t *event, void *user), void *user);

/* Asks for the instruments until count of them are online. */
void client_wait_online(struct client *client, size_t count);

#endif
