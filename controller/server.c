/* The daemon's UNIX socket: JSON Lines requests, responses and events. */
#define _GNU_SOURCE
#include "controller/daemon.h"

#include "controller/roles.h"
#include "controller/timefmt.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define LISTEN_BACKLOG 16
#define PEER_GROUPS_FIRST_TRY 64

/* Creates the socket's folder with mode 0711 when it does not exist. */
static int make_socket_folder(const char *path, char *err, size_t err_size)
{
    char copy[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *folder;
    struct stat info;

    snprintf(copy, sizeof(copy), "%s", path);
    folder = dirname(copy);
    if (stat(folder, &info) == 0) {
        return 0;
    }
    if (mkdir(folder, 0711) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create the socket folder %s: %s", folder, strerror(errno));
        return -1;
    }
    chmod(folder, 0711);
    return 0;
}

/* Removes a socket file that no daemon listens on. Fails when a daemon
 * listens on it, or when the path is anything but a socket, because only an
 * old socket may be replaced. */
static int remove_stale_socket(const struct sockaddr_un *addr, char *err, size_t err_size)
{
    struct stat info;

    if (lstat(addr->sun_path, &info) != 0) {
        return 0;
    }
    if (!S_ISSOCK(info.st_mode)) {
        snprintf(err, err_size, "%s exists and is not a socket; set daemon.socket to another path",
                 addr->sun_path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int connected = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));

    close(probe);
    if (connected == 0) {
        snprintf(err, err_size, "%s: another toxlabd is listening on this socket", addr->sun_path);
        return -1;
    }
    if (errno == ECONNREFUSED) {
        unlink(addr->sun_path);
    }
    return 0;
}

static int open_listener(const struct config *config, char *err, size_t err_size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    gid_t gid;
    int fd;

    if (group_resolve(config->socket_group, &gid) != 0) {
        snprintf(err, err_size,
                 "socket_group '%s' is not a group on this system; set "
                 "daemon.socket_group to an existing group name or number",
                 config->socket_group);
        return -1;
    }
    if (strlen(config->socket_path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_size, "socket path is longer than %zu bytes: %s",
                 sizeof(addr.sun_path) - 1, config->socket_path);
        return -1;
    }
    strcpy(addr.sun_path, config->socket_path);
    if (make_socket_folder(config->socket_path, err, err_size) != 0 ||
        remove_stale_socket(&addr, err, err_size) != 0) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        chown(addr.sun_path, (uid_t)-1, gid) != 0 || chmod(addr.sun_path, 0660) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, err_size, "cannot listen on %s: %s", config->socket_path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* Resolves the groups of each role. A group the configuration names must
 * exist; a default group that does not exist leaves its role to root. */
static int resolve_roles(struct daemon *daemon, char *err, size_t err_size)
{
    const struct config *config = &daemon->config;

    for (int i = 0; i < ROLE_COUNT; i++) {
        char reason[300];
        if (roles_set_groups(&daemon->roles, i, config->role_groups[i], reason, sizeof(reason)) ==
            0) {
            continue;
        }
        if (config->roles_set & (1u << i)) {
            snprintf(err, err_size, "[roles] %s: %s", role_name(i), reason);
            return -1;
        }
        log_msg(LOG_WARNING, "%s; only root holds role %s (set roles.%s)", reason, role_name(i),
                role_name(i));
        daemon->roles.count[i] = 0;
    }
    return 0;
}

void server_fit_clients(struct config *config)
{
    struct rlimit limit;
    rlim_t needed = (rlim_t)config->max_clients + DAEMON_RESERVED_FDS;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) {
        return;
    }
    rlim_t soft = limit.rlim_max < needed ? limit.rlim_max : needed;
    if (soft > limit.rlim_cur) {
        struct rlimit raised = {.rlim_cur = soft, .rlim_max = limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            log_msg(LOG_INFO, "open file limit raised from %llu to %llu for %d clients",
                    (unsigned long long)limit.rlim_cur, (unsigned long long)soft,
                    config->max_clients);
            limit.rlim_cur = soft;
        }
    }
    if (limit.rlim_cur < needed) {
        int fit = limit.rlim_cur > DAEMON_RESERVED_FDS + 1
                      ? (int)(limit.rlim_cur - DAEMON_RESERVED_FDS)
                      : 1;
        log_msg(LOG_WARNING,
                "daemon.max_clients lowered from %d to %d: the open file limit is %llu; raise "
                "LimitNOFILE or ulimit -n to serve more",
                config->max_clients, fit, (unsigned long long)limit.rlim_cur);
        config->max_clients = fit;
    }
}

int server_listen(struct daemon *daemon, char *err, size_t err_size)
{
    server_fit_clients(&daemon->config);
    if (resolve_roles(daemon, err, err_size) != 0) {
        return -1;
    }
    /* Under systemd socket activation the socket arrives as fd 3. */
    if (sd_listen_fds(1) == 1) {
        daemon->listen_fd = SD_LISTEN_FDS_START;
        daemon->listen_fd_inherited = true;
        fcntl(daemon->listen_fd, F_SETFL, fcntl(daemon->listen_fd, F_GETFL) | O_NONBLOCK);
        return 0;
    }
    daemon->listen_fd = open_listener(&daemon->config, err, err_size);
    return daemon->listen_fd < 0 ? -1 : 0;
}

static void client_free(struct client *client)
{
    close(client->fd);
    proto_reader_free(&client->reader);
    free(client->output);
    free(client);
}

void server_close(struct daemon *daemon)
{
    while (daemon->clients != NULL) {
        struct client *next = daemon->clients->next;
        client_free(daemon->clients);
        daemon->clients = next;
    }
    if (daemon->listen_fd >= 0) {
        close(daemon->listen_fd);
        if (!daemon->listen_fd_inherited) {
            unlink(daemon->config.socket_path);
        }
    }
}

void server_flush(struct client *client)
{
    while (client->output_used > 0) {
        ssize_t sent = send(client->fd, client->output, client->output_used, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                client->closing = true;
            }
            return;
        }
        memmove(client->output, client->output + sent, client->output_used - (size_t)sent);
        client->output_used -= (size_t)sent;
    }
}

static void queue_output(struct client *client, const char *text, size_t len)
{
    if (client->closing) {
        return;
    }
    if (client->output_used + len > CLIENT_MAX_OUTPUT) {
        log_msg(LOG_WARNING, "client pid %d: dropped, more than %d bytes of output unread",
                (int)client->pid, CLIENT_MAX_OUTPUT);
        client->closing = true;
        return;
    }
    if (client->output_used + len > client->output_size) {
        size_t size = client->output_size ? client->output_size : 4096;
        while (size < client->output_used + len) {
            size *= 2;
        }
        char *grown = realloc(client->output, size);
        if (grown == NULL) {
            client->closing = true;
            return;
        }
        client->output = grown;
        client->output_size = size;
    }
    memcpy(client->output + client->output_used, text, len);
    client->output_used += len;
}

void client_send(struct client *client, json_t *message)
{
    char *line = proto_encode_line(message);

    json_decref(message);
    if (line == NULL) {
        log_msg(LOG_ERR, "client pid %d: a message exceeds %d bytes and was not sent",
                (int)client->pid, PROTO_MAX_LINE);
        return;
    }
    queue_output(client, line, strlen(line));
    free(line);
    server_flush(client);
}

void client_watch(struct client *client, const char *id)
{
    for (size_t i = 0; i < client->watch_count; i++) {
        if (strcmp(client->watches[i], id) == 0) {
            return;
        }
    }
    if (client->watch_count < CLIENT_MAX_WATCHES) {
        snprintf(client->watches[client->watch_count++], RECORD_ID_SIZE, "%s", id);
    }
}

void client_unwatch(struct client *client, const char *id)
{
    for (size_t i = 0; i < client->watch_count; i++) {
        if (strcmp(client->watches[i], id) == 0) {
            client->watch_count--;
            memmove(client->watches[i], client->watches[client->watch_count], RECORD_ID_SIZE);
            return;
        }
    }
}

static bool client_watches(const struct client *client, const char *id)
{
    for (size_t i = 0; id != NULL && i < client->watch_count; i++) {
        if (strcmp(client->watches[i], id) == 0) {
            return true;
        }
    }
    return false;
}

void server_publish(struct daemon *daemon, const char *stop_id, const char *test_id, json_t *event,
                    bool unwatch)
{
    for (struct client *client = daemon->clients; client != NULL; client = client->next) {
        if (!client_watches(client, stop_id) && !client_watches(client, test_id)) {
            continue;
        }
        client_send(client, json_incref(event));
        if (unwatch) {
            if (stop_id != NULL) {
                client_unwatch(client, stop_id);
            }
            if (test_id != NULL) {
                client_unwatch(client, test_id);
            }
        }
    }
    json_decref(event);
}

static void send_hello(struct daemon *daemon, struct client *client)
{
    json_t *hello = json_pack("{ss s{si si} ss ss ss}", "class", "hello", "protocol", "major",
                              PROTO_MAJOR, "minor", PROTO_MINOR, "server", "toxlabd", "version",
                              TOXLAB_VERSION, "lab", daemon->config.lab_id);
    json_t *roles = json_array();

    for (int i = 0; i < ROLE_COUNT; i++) {
        if (client->roles & (1u << i)) {
            json_array_append_new(roles, json_string(role_name(i)));
        }
    }
    json_object_set_new(hello, "roles", roles);

    client_send(client, hello);
}

/* Returns the roles of a peer from its primary group and its supplementary
 * groups: SO_PEERCRED carries only the primary one, SO_PEERGROUPS the rest
 * (Linux 4.13 and later). */
static unsigned peer_roles(const struct daemon *daemon, int fd, const struct ucred *peer)
{
    socklen_t len = sizeof(gid_t) * PEER_GROUPS_FIRST_TRY;
    gid_t *groups = malloc(len + sizeof(gid_t));
    size_t count = 0;
    int rc = groups ? getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups + 1, &len) : -1;

    /* ERANGE reports the size needed; a peer may be in up to NGROUPS_MAX groups. */
    if (rc != 0 && groups != NULL && errno == ERANGE) {
        gid_t *bigger = realloc(groups, len + sizeof(gid_t));
        groups = bigger ? bigger : groups;
        rc = bigger ? getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups + 1, &len) : -1;
    }
    if (rc == 0) {
        count = len / sizeof(gid_t);
    } else {
        log_msg(LOG_WARNING,
                "reading the groups of client pid %d failed: %s; only its primary group counts",
                (int)peer->pid, strerror(errno));
    }
    if (groups == NULL) {
        return roles_of_peer(&daemon->roles, peer->uid, &peer->gid, 1);
    }
    groups[0] = peer->gid;
    unsigned roles = roles_of_peer(&daemon->roles, peer->uid, groups, count + 1);
    free(groups);
    return roles;
}

/* Sends a peer that holds no role an error in place of the hello. */
static void reject_without_role(struct client *client)
{
    char message[200];

    snprintf(message, sizeof(message),
             "uid %u holds no toxlab role: none of its groups is named in [roles]; ask an "
             "administrator to add it to a role's group",
             (unsigned)client->uid);
    log_msg(LOG_NOTICE, "client pid %d rejected: %s", (int)client->pid, message);
    client_send(client, proto_error_response(0, PROTO_FORBIDDEN, message));
    client->closing = true;
}

/* Sends a connection over daemon.max_clients an error and closes it. */
static void reject_over_limit(struct daemon *daemon, int fd)
{
    char message[160];
    json_t *response;
    char *line;

    snprintf(message, sizeof(message),
             "toxlabd already serves %d clients (daemon.max_clients); try again later",
             daemon->config.max_clients);
    log_msg(LOG_WARNING, "client rejected: already %d clients (daemon.max_clients)",
            daemon->config.max_clients);
    response = proto_error_response(0, PROTO_UNAVAILABLE, message);
    line = proto_encode_line(response);
    json_decref(response);
    /* A fresh socket's buffer takes the short line, so one send does. */
    if (line != NULL && send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        log_msg(LOG_DEBUG, "sending the rejection failed: %s", strerror(errno));
    }
    free(line);
    close(fd);
}

/* Stops polling the listening socket after accept ran out of descriptors,
 * because it stays readable and the loop would spin. */
static void pause_accepting(struct daemon *daemon, int error)
{
    log_msg(LOG_ERR, "accept on %s failed: %s; no new clients until one disconnects",
            daemon->config.socket_path, strerror(error));
    daemon->accept_paused = true;
    daemon->accept_paused_ms = time_monotonic_ms();
}

void server_accept(struct daemon *daemon)
{
    int fd = accept4(daemon->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    struct ucred peer;
    socklen_t len = sizeof(peer);

    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            pause_accepting(daemon, errno);
        } else if (errno != EAGAIN && errno != EINTR) {
            log_msg(LOG_ERR, "accept on %s failed: %s", daemon->config.socket_path,
                    strerror(errno));
        }
        return;
    }
    if (daemon->client_count >= (size_t)daemon->config.max_clients) {
        reject_over_limit(daemon, fd);
        return;
    }
    struct client *client = calloc(1, sizeof(*client));
    if (client == NULL) {
        close(fd);
        return;
    }
    client->fd = fd;
    client->uid = (uid_t)-1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0) {
        client->pid = peer.pid;
        client->uid = peer.uid;
        client->roles = peer_roles(daemon, fd, &peer);
    }
    proto_reader_init(&client->reader);
    client->next = daemon->clients;
    daemon->clients = client;
    daemon->client_count++;
    log_msg(LOG_DEBUG, "client connected: pid %d, uid %u", (int)client->pid, (unsigned)client->uid);
    if (client->roles == 0) {
        reject_without_role(client);
        return;
    }
    send_hello(daemon, client);
}

/* Sends a response, or an error in its place when it is too large for a line. */
static void send_response(struct client *client, json_int_t request_id, json_t *response)
{
    char *line = proto_encode_line(response);
    char message[160];

    if (line != NULL) {
        free(line);
        client_send(client, response);
        return;
    }
    json_decref(response);
    snprintf(message, sizeof(message),
             "the response is larger than %d bytes, the line limit of the protocol",
             PROTO_MAX_LINE);
    log_msg(LOG_ERR, "client pid %d: %s", (int)client->pid, message);
    client_send(client, proto_error_response(request_id, PROTO_INTERNAL, message));
}

/* Checks the envelope of a request: an object with an integer "id", a
 * string "cmd", an optional object "args" and nothing else. Returns NULL,
 * or the message naming the field that is wrong. */
static const char *request_envelope_error(const json_t *request, char *message, size_t size)
{
    const char *key;
    json_t *value;

    if (!json_is_object(request)) {
        return "a request must be a JSON object with \"id\", \"cmd\" and \"args\"";
    }
    if (!json_is_integer(json_object_get(request, "id"))) {
        return "field 'id' is missing or not an integer";
    }
    if (!json_is_string(json_object_get(request, "cmd"))) {
        return "field 'cmd' is missing or not a string";
    }
    value = json_object_get(request, "args");
    if (value != NULL && !json_is_object(value)) {
        return "field 'args' must be an object";
    }
    json_object_foreach((json_t *)request, key, value)
    {
        if (strcmp(key, "id") != 0 && strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0) {
            snprintf(message, size,
                     "unknown field '%.64s' in the request; a request has only \"id\", "
                     "\"cmd\" and \"args\"",
                     key);
            return message;
        }
    }
    return NULL;
}

/* Parses one request line and sends the response. */
static void handle_line(struct daemon *daemon, struct client *client, const char *line)
{
    json_error_t error;
    json_t *request = json_loads(line, JSON_REJECT_DUPLICATES, &error);
    json_t *id = request ? json_object_get(request, "id") : NULL;
    json_int_t request_id = json_is_integer(id) ? json_integer_value(id) : 0;
    char message[300];
    const char *invalid;
    json_t *response;

    if (request == NULL) {
        snprintf(message, sizeof(message), "request is not JSON: %s at column %d", error.text,
                 error.column);
        invalid = message;
    } else {
        invalid = request_envelope_error(request, message, sizeof(message));
    }
    if (invalid != NULL) {
        response = proto_error_response(request_id, PROTO_BAD_REQUEST, invalid);
    } else {
        json_t *args = json_object_get(request, "args");
        json_t *empty = args ? NULL : json_object();
        response = command_dispatch(daemon, client, request_id,
                                    json_string_value(json_object_get(request, "cmd")),
                                    args ? args : empty);
        json_decref(empty);
    }
    json_decref(request);
    if (response != NULL) {
        send_response(client, request_id, response);
    }
}

void server_read(struct daemon *daemon, struct client *client)
{
    char buffer[8192];
    ssize_t got = recv(client->fd, buffer, sizeof(buffer), 0);
    char *line;
    int status = 0;

    if (got <= 0) {
        if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            client->closing = true;
        }
        return;
    }
    if (proto_reader_feed(&client->reader, buffer, (size_t)got) != 0) {
        client->closing = true;
        return;
    }
    size_t size;
    /* A client dropped meanwhile gets no more of its requests carried out. */
    while (!client->closing &&
           (status = proto_reader_next_sized(&client->reader, &line, &size)) == 1) {
        if (strlen(line) != size) {
            client_send(client, proto_error_response(0, PROTO_BAD_REQUEST,
                                                     "request line contains a NUL byte"));
        } else {
            handle_line(daemon, client, line);
        }
        free(line);
    }
    if (status < 0) {
        char message[96];
        snprintf(message, sizeof(message), "request line is longer than %d bytes", PROTO_MAX_LINE);
        client_send(client, proto_error_response(0, PROTO_TOO_LARGE, message));
        log_msg(LOG_WARNING, "client pid %d: %s; connection closed", (int)client->pid, message);
        client->closing = true;
    }
}

void server_reap(struct daemon *daemon)
{
    struct client **link = &daemon->clients;

    while (*link != NULL) {
        struct client *client = *link;
        if (client->closing) {
            server_flush(client);
            *link = client->next;
            daemon->client_count--;
            log_msg(LOG_DEBUG, "client disconnected: pid %d", (int)client->pid);
            client_free(client);
            daemon->accept_paused = false;
        } else {
            link = &client->next;
        }
    }
}
