/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Telling the model server (serve.reload in the model file) and waiting until it is ready
 * (serve.ready), all asynchronous on the daemon's loop:
 *
 *   systemd_unit  RestartUnit/ReloadUnit/… on org.freedesktop.systemd1 over the system bus, then
 *                 the job's JobRemoved signal says whether it worked;
 *   http          a request (e.g. Triton's POST /v2/repository/models/<m>/load), 2xx = success;
 *   exec          a command, argv without a shell, MODEL= and VERSION= in its environment,
 *                 exit 0 = success.
 *
 * Then readiness: GET serve.ready.http every interval until it answers 200 or the timeout passes.
 */

#include <systemd/sd-event.h>

#include "macros.h"

typedef struct Model Model;
typedef struct ServeOp ServeOp;

typedef void (*ServeDoneFn)(Model *model, int error, const char *reason, void *userdata);

/* Start reloading; done is called exactly once (unless cancelled). */
int serve_reload(Model *model, const char *version, ServeDoneFn done, void *userdata, ServeOp **ret);
/* Poll readiness; done is called exactly once (unless cancelled). Immediately successful when no
 * serve.ready is configured. */
int serve_wait_ready(Model *model, ServeDoneFn done, void *userdata, ServeOp **ret);
void serve_op_cancel(ServeOp *op);

/* Run a command (argv, no shell) with MODEL= and VERSION= set, watched by a child source that
 * kills and reaps it when freed. */
typedef struct Manager Manager;
int serve_spawn(Manager *m, char *const *argv, const char *model, const char *version, sd_event_child_handler_t cb,
                void *userdata, sd_event_source **ret);
