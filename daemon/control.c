/* SPDX-License-Identifier: Apache-2.0 */

#include <grp.h>
#include <inttypes.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include "control.h"
#include "control-methods.h"
#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"

typedef struct Client Client;

struct Client {
        Control *control;
        Client *next;
        sd_bus *bus;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t groups[64];
        size_t n_groups;
        bool dead;
};

struct Control {
        Manager *manager;
        char *path;
        int fd;
        sd_event_source *accept_source;
        sd_event_source *reap_source;
        Client *clients;
        unsigned n_clients;
        sd_id128_t server_id;
};

static Client *client_free(Client *c) {
        if (!c)
                return NULL;
        if (c->bus) {
                (void) sd_bus_detach_event(c->bus);
                sd_bus_flush_close_unref(c->bus);
        }
        free(c);
        return NULL;
}

Control *control_free(Control *c) {
        if (!c)
                return NULL;
        while (c->clients) {
                Client *n = c->clients->next;
                client_free(c->clients);
                c->clients = n;
        }
        sd_event_source_disable_unref(c->accept_source);
        sd_event_source_disable_unref(c->reap_source);
        safe_close(c->fd);
        if (c->path)
                (void) unlink(c->path);
        free(c->path);
        free(c);
        return NULL;
}

static Client *control_find_client(Control *c, sd_bus *bus) {
        for (Client *x = c->clients; x; x = x->next)
                if (x->bus == bus)
                        return x;
        return NULL;
}

/* May the sender of m change things? */
int control_check_admin(Control *c, sd_bus_message *m, sd_bus_error *error) {
        Client *x = control_find_client(c, sd_bus_message_get_bus(m));
        Manager *man = c->manager;

        if (!x)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Unknown connection.");
        if (x->uid == 0 || x->uid == man->self_uid)
                return 0;
        if (man->admin_gid != (gid_t) -1) {
                if (x->gid == man->admin_gid)
                        return 0;
                for (size_t i = 0; i < x->n_groups; i++)
                        if (x->groups[i] == man->admin_gid)
                                return 0;
        }
        log_notice("Refused %s from uid %u (pid %d): not an administrator.", sd_bus_message_get_member(m),
                   (unsigned) x->uid, (int) x->pid);
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
                                 "Changing modelkeeper requires root or membership in the admin group%s%s.",
                                 man->config->daemon.admin_group ? " " : "",
                                 man->config->daemon.admin_group ? man->config->daemon.admin_group : "");
}

Manager *control_manager(Control *c) {
        return c->manager;
}

/* busctl sends org.freedesktop.DBus.Hello first and gives up when nothing answers; answer it
 * like a bus driver would, so `busctl --address=unix:path=… introspect` works. */
static int method_hello(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "s", ":1.1");
}

static const sd_bus_vtable hello_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", "", "s", method_hello, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int on_reap(sd_event_source *s, void *userdata) {
        Control *c = userdata;

        for (Client **p = &c->clients; *p;) {
                Client *x = *p;
                if (x->dead) {
                        *p = x->next;
                        c->n_clients--;
                        client_free(x);
                } else
                        p = &x->next;
        }
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Client *x = userdata;
        Control *c = x->control;

        /* Freeing the bus inside its own callback is not allowed: defer. */
        x->dead = true;
        if (!c->reap_source) {
                if (sd_event_add_defer(c->manager->event, &c->reap_source, on_reap, c) < 0)
                        return 0;
        }
        (void) sd_event_source_set_enabled(c->reap_source, SD_EVENT_ONESHOT);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;
        _cleanup_close_ int cfd = -EBADF;
        Client *x = NULL;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(-errno, "Failed to accept a control connection: %m");
                return 0;
        }
        if (c->n_clients >= CONTROL_MAX_CLIENTS) {
                log_warning("Too many control connections (%u), refusing one.", c->n_clients);
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return 0;

        x = calloc(1, sizeof(Client));
        if (!x)
                return log_oom();
        x->control = c;
        x->uid = cred.uid;
        x->gid = cred.gid;
        x->pid = cred.pid;
        len = sizeof(x->groups);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERGROUPS, x->groups, &len) >= 0)
                x->n_groups = len / sizeof(gid_t);

        r = sd_bus_new(&x->bus);
        if (r >= 0)
                r = sd_bus_set_fd(x->bus, cfd, cfd);
        if (r >= 0) {
                TAKE_FD(cfd);
                r = sd_bus_set_server(x->bus, 1, c->server_id);
        }
        if (r >= 0)
                r = sd_bus_add_object_vtable(x->bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus", hello_vtable,
                                             c);
        if (r >= 0)
                r = sd_bus_add_object_vtable(x->bus, NULL, CONTROL_OBJECT_PATH, CONTROL_INTERFACE, control_vtable, c);
        if (r >= 0)
                r = sd_bus_add_match(x->bus, NULL,
                                     "type='signal',path='/org/freedesktop/DBus/Local',"
                                     "interface='org.freedesktop.DBus.Local',member='Disconnected'",
                                     on_disconnected, x);
        if (r >= 0)
                r = sd_bus_attach_event(x->bus, c->manager->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_start(x->bus);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up a control connection: %m");
                client_free(x);
                return 0;
        }
        x->next = c->clients;
        c->clients = x;
        c->n_clients++;
        log_debug("Control connection from uid %u pid %d.", (unsigned) x->uid, (int) x->pid);
        return 0;
}

int control_new(Manager *m, const char *path, Control **ret) {
        Control *c = NULL;
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } addr = {.un.sun_family = AF_UNIX};
        const char *group = m->config->daemon.socket_group;
        gid_t gid = (gid_t) -1;
        mode_t mode = 0600;
        int r;

        if (strlen(path) >= sizeof(addr.un.sun_path))
                return -ENAMETOOLONG;
        strcpy(addr.un.sun_path, path);
        if (group) {
                struct group *g = getgrnam(group);
                if (!g)
                        return log_error_errno(-ESRCH, "Socket group '%s' does not exist.", group);
                gid = g->gr_gid;
                mode = 0660;
        }

        c = calloc(1, sizeof(Control));
        if (!c)
                return -ENOMEM;
        c->manager = m;
        c->fd = -EBADF;
        c->path = strdup(path);
        if (!c->path) {
                r = -ENOMEM;
                goto fail;
        }
        r = sd_id128_randomize(&c->server_id);
        if (r < 0)
                goto fail;

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (c->fd < 0) {
                r = -errno;
                goto fail;
        }
        (void) unlink(path); /* a stale socket from a previous run */
        {
                /* Create the socket node with no access at all, then open it up as configured: no
                 * window in which it is reachable with the wrong mode. */
                mode_t old = umask(0777);
                r = bind(c->fd, &addr.sa, sizeof(addr.un)) < 0 ? -errno : 0;
                umask(old);
        }
        if (r < 0)
                goto fail;
        if (gid != (gid_t) -1 && chown(path, (uid_t) -1, gid) < 0) {
                r = -errno;
                goto fail;
        }
        if (chmod(path, mode) < 0) {
                r = -errno;
                goto fail;
        }
        if (listen(c->fd, 16) < 0) {
                r = -errno;
                goto fail;
        }
        r = sd_event_add_io(m->event, &c->accept_source, c->fd, EPOLLIN, on_accept, c);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        control_free(c);
        return r;
}

void control_emit_job_progress(Control *c, Job *j) {
        if (!c)
                return;
        for (Client *x = c->clients; x; x = x->next)
                if (!x->dead)
                        (void) sd_bus_emit_signal(x->bus, CONTROL_OBJECT_PATH, CONTROL_INTERFACE, "JobProgress", "stsstt",
                                                  strempty(j->model), j->id, j->verb, j->phase, j->done_bytes,
                                                  j->total_bytes);
}

void control_emit_job_finished(Control *c, const char *model, uint64_t job, const char *verb, int error,
                               const char *reason) {
        if (!c)
                return;
        for (Client *x = c->clients; x; x = x->next)
                if (!x->dead)
                        (void) sd_bus_emit_signal(x->bus, CONTROL_OBJECT_PATH, CONTROL_INTERFACE, "JobFinished", "stsbs",
                                                  strempty(model), job, verb, error >= 0, strempty(reason));
}
