/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperctl: the connection to modelkeeperd, error reporting, and the two smallest verbs. */

#include <jansson.h>
#include <sys/stat.h>

#include "ctl.h"
#include "log.h"

bool arg_json = false;
bool arg_no_pager = false;
const char *arg_socket = NULL;

int ctl_connect(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *address = NULL;
        const char *path = arg_socket ?: getenv("MODELKEEPER_SOCKET") ?: DEFAULT_RUNTIME_DIRECTORY "/control";
        struct stat st;
        int r;

        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return log_error_errno(-ENOENT,
                                               "modelkeeperd is not running: %s does not exist "
                                               "(try: systemctl status modelkeeperd).",
                                               path);
                if (errno == EACCES)
                        return log_error_errno(-EACCES, "Permission denied reaching %s: %m.", path);
        }
        if (asprintf(&address, "unix:path=%s", path) < 0)
                return log_oom();
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r == -EACCES || r == -EPERM)
                return log_error_errno(r, "Permission denied connecting to %s: %m. "
                                          "Reading needs the socket's group, changes need root or the admin group.",
                                       path);
        if (r == -ECONNREFUSED)
                return log_error_errno(r, "modelkeeperd is not running (%s refuses connections).", path);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to modelkeeperd at %s: %m", path);
        *ret = TAKE_PTR(bus);
        return 0;
}

int ctl_bus_error(const sd_bus_error *e, int r, const char *what) {
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED))
                return log_error_errno(-EACCES, "%s: access denied: %s", what, e->message);
        if (e && e->message)
                return log_error_errno(r, "%s: %s", what, e->message);
        return log_error_errno(r, "%s: %m", what);
}

int verb_status(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        json_t *list = NULL;
        const char *name, *state, *active, *previous, *job;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, NULL, "/dev/modelkeeper/Manager1", "dev.modelkeeper.Manager1", "ListModels", &error,
                               &reply, "");
        if (r < 0)
                return ctl_bus_error(&error, r, "ListModels");
        r = sd_bus_message_enter_container(reply, 'a', "(sssss)");
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");

        if (arg_json)
                list = json_array();
        else
                printf("%-24s %-10s %-14s %-14s %s\n", "MODEL", "STATE", "ACTIVE", "PREVIOUS", "JOB");
        while ((r = sd_bus_message_read(reply, "(sssss)", &name, &state, &active, &previous, &job)) > 0) {
                if (argc > 1 && !streq(argv[1], name))
                        continue;
                if (arg_json)
                        json_array_append_new(list, json_pack("{s:s, s:s, s:s?, s:s?, s:s?}", "model", name, "state", state,
                                                              "active", *active ? active : NULL, "previous",
                                                              *previous ? previous : NULL, "job", *job ? job : NULL));
                else
                        printf("%-24s %-10s %-14s %-14s %s\n", name, state, *active ? active : "-",
                               *previous ? previous : "-", *job ? job : "-");
        }
        if (r < 0) {
                json_decref(list);
                return log_error_errno(r, "Bad reply: %m");
        }
        if (arg_json) {
                char *s = json_dumps(list, JSON_INDENT(2));
                printf("%s\n", s ?: "[]");
                free(s);
                json_decref(list);
        }
        return 0;
}

int verb_reload(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, NULL, "/dev/modelkeeper/Manager1", "dev.modelkeeper.Manager1", "Reload", &error, NULL,
                               "");
        if (r < 0)
                return ctl_bus_error(&error, r, "Reload");
        return 0;
}
