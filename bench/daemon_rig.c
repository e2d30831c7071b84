#define _GNU_SOURCE
#include "bench/daemon_rig.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 120000

static const char fast_scenario[] = "[phases]\ncartridge_ms = 0\ncollecting_ms = 0\n"
                                    "analysing_ms = 0\n";

void rig_init(struct daemon_rig *rig, const char *tag, const char *database)
{
    memset(rig, 0, sizeof(*rig));
    rig->notify_fd = -1;
    rig->dir = bench_tmpdir(tag);
    snprintf(rig->socket, sizeof(rig->socket), "%.90s/toxlab.sock", rig->dir);
    if (database != NULL) {
        snprintf(rig->database, sizeof(rig->database), "%s", database);
    } else {
        snprintf(rig->database, sizeof(rig->database), "%s/toxlab.db", rig->dir);
    }
}

void rig_start_sims(struct daemon_rig *rig, size_t count, const char *scenario)
{
    for (size_t i = 0; i < count && rig->sim_count < RIG_MAX_SIMS; i++) {
        char name[32];
        size_t n = rig->sim_count++;

        snprintf(name, sizeof(name), "saliva-%zu", n + 1);
        bench_start_sim(&rig->sims[n], rig->dir, name, "saliva",
                        scenario ? scenario : fast_scenario, NULL, rig->ptys[n],
                        sizeof(rig->ptys[n]));
    }
}

static void write_config(struct daemon_rig *rig, int poll_ms)
{
    char path[4200];
    FILE *file;

    snprintf(path, sizeof(path), "%s/toxlab.conf", rig->dir);
    file = fopen(path, "w");
    if (file == NULL) {
        bench_fail("cannot write %s", path);
    }
    unsigned gid = (unsigned)getgid();
    const char *source = bench_program("TOXLAB_SOURCE_DIR");
    fprintf(file,
            "[daemon]\nlab_id = BENCH\ndatabase = %s\nsocket = %s\nsocket_group = %u\n"
            "thresholds = %s/etc/thresholds.tsv\nrules = %s/etc/rules.tsv\n",
            rig->database, rig->socket, gid, source, source);
    /* Every role goes to the benchmark's own group, so a run as any user may
     * use every command. */
    fprintf(file,
            "\n[roles]\nofficer = %u\nanalyst = %u\nclerk = %u\nsupervisor = %u\nadmin = %u\n", gid,
            gid, gid, gid, gid);
    for (size_t i = 0; i < rig->sim_count; i++) {
        fprintf(file,
                "\n[instrument.saliva-%zu]\ndriver = saliva\ndevice = %s\n"
                "poll_interval_ms = %d\n",
                i + 1, rig->ptys[i], poll_ms);
    }
    fclose(file);
}

static int open_notify(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%.100s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        bench_fail("cannot bind the notify socket %s", path);
    }
    return fd;
}

static bool wait_ready(int fd, int timeout_ms)
{
    char message[4096];
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;

    for (;;) {
        int64_t left_ms = (deadline - bench_now_ns()) / 1000000;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};

        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0) {
            return false;
        }
        ssize_t got = recv(fd, message, sizeof(message) - 1, 0);
        if (got > 0) {
            message[got] = '\0';
            if (strstr(message, "READY=1") != NULL) {
                return true;
            }
        }
    }
}

int64_t rig_start_daemon(struct daemon_rig *rig, int poll_ms)
{
    char config[4200], log_path[4200], notify_path[4200], env_notify[4300];

    write_config(rig, poll_ms);
    snprintf(config, sizeof(config), "%s/toxlab.conf", rig->dir);
    snprintf(log_path, sizeof(log_path), "%s/toxlabd.log", rig->dir);
    snprintf(notify_path, sizeof(notify_path), "%.90s/notify", rig->dir);
    snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", notify_path);
    rig->notify_fd = open_notify(notify_path);
    char *argv[] = {(char *)bench_program("TOXLABD"), "-c", config, NULL};
    char *env[] = {env_notify, NULL};
    int64_t start = bench_now_ns();
    bench_spawn(&rig->daemon, argv, env, log_path, false, false);
    if (!wait_ready(rig->notify_fd, READY_TIMEOUT_MS)) {
        errno = 0;
        bench_fail("toxlabd did not report READY=1 (see %s)", log_path);
    }
    /* Closed, so that the daemon's later STATUS= messages fail at once
     * instead of blocking on a full queue that the benchmark never reads. */
    close(rig->notify_fd);
    rig->notify_fd = -1;
    unlink(notify_path);
    return bench_now_ns() - start;
}

void rig_stop_daemon(struct daemon_rig *rig)
{
    int status = bench_stop(&rig->daemon, 10000);

    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = 0;
        bench_fail("toxlabd did not stop cleanly (see %s/toxlabd.log)", rig->dir);
    }
}

void rig_cleanup(struct daemon_rig *rig)
{
    if (rig->daemon.pid > 0) {
        rig_stop_daemon(rig);
    }
    for (size_t i = 0; i < rig->sim_count; i++) {
        bench_stop(&rig->sims[i], 2000);
    }
    if (rig->notify_fd >= 0) {
        close(rig->notify_fd);
    }
    bench_rmdir(rig->dir);
    free(rig->dir);
}

void client_open(struct client *client, const char *socket_path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    memset(client, 0, sizeof(*client));
    client->next_id = 1;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%.100s", socket_path);
    client->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client->fd < 0 || connect(client->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        bench_fail("cannot connect to %s", socket_path);
    }
    json_decref(client_read(client)); /* the hello */
}

void client_close(struct client *client)
{
    close(client->fd);
}

int64_t client_send(struct client *client, const char *cmd, json_t *args)
{
    int64_t id = client->next_id++;
    json_t *request = json_pack("{sI ss so}", "id", (json_int_t)id, "cmd", cmd, "args", args);
    char *text = json_dumps(request, JSON_COMPACT);
    size_t len = strlen(text);

    text[len] = '\n';
    for (size_t done = 0; done < len + 1;) {
        ssize_t n = write(client->fd, text + done, len + 1 - done);
        if (n <= 0) {
            bench_fail("writing a request to toxlabd");
        }
        done += (size_t)n;
    }
    free(text);
    json_decref(request);
    return id;
}

json_t *client_read(struct client *client)
{
    for (;;) {
        char *newline = memchr(client->buffer, '\n', client->buffered);

        if (newline != NULL) {
            size_t len = (size_t)(newline - client->buffer);
            json_t *line = json_loadb(client->buffer, len, 0, NULL);

            memmove(client->buffer, newline + 1, client->buffered - len - 1);
            client->buffered -= len + 1;
            if (line == NULL) {
                errno = 0;
                bench_fail("toxlabd sent a line that is not JSON");
            }
            return line;
        }
        if (client->buffered == sizeof(client->buffer)) {
            errno = 0;
            bench_fail("a line from toxlabd is longer than %zu bytes", sizeof(client->buffer));
        }
        ssize_t n = read(client->fd, client->buffer + client->buffered,
                         sizeof(client->buffer) - client->buffered);
        if (n <= 0) {
            bench_fail("reading from toxlabd");
        }
        client->buffered += (size_t)n;
    }
}

json_t *client_call(struct client *client, const char *cmd, json_t *args,
                    void (*on_event)(json_t *event, void *user), void *user)
{
    int64_t id = client_send(client, cmd, args);

    for (;;) {
        json_t *line = client_read(client);
        json_t *line_id = json_object_get(line, "id");

        if (json_is_integer(line_id) && json_integer_value(line_id) == id) {
            return line;
        }
        if (on_event != NULL && line_id == NULL) {
            on_event(line, user);
        }
        json_decref(line);
    }
}

static size_t count_online(json_t *response)
{
    json_t *list = json_object_get(response, "instruments");
    size_t online = 0;

    for (size_t i = 0; i < json_array_size(list); i++) {
        online += json_is_true(json_object_get(json_array_get(list, i), "online"));
    }
    return online;
}

void client_wait_online(struct client *client, size_t count)
{
    int64_t deadline = bench_now_ns() + (int64_t)READY_TIMEOUT_MS * 1000000;

    for (;;) {
        json_t *response = client_call(client, "instruments", json_object(), NULL, NULL);
        size_t online = count_online(response);

        json_decref(response);
        if (online >= count) {
            return;
        }
        if (bench_now_ns() > deadline) {
            errno = 0;
            bench_fail("only %zu of %zu analyzers came online", online, count);
        }
        usleep(10000);
    }
}
