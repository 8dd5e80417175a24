/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* modelkeeperctl: shared state of the verbs. */

#include <systemd/sd-bus.h>

#include "macros.h"

typedef struct CtlVerb {
        const char *name;
        unsigned min_args, max_args; /* after the verb */
        int (*run)(int argc, char *argv[]);
        const char *usage;
        const char *help;
} CtlVerb;

extern bool arg_json;
extern bool arg_no_pager;
extern const char *arg_socket;

/* Connect to the daemon's control socket; prints a helpful error. */
int ctl_connect(sd_bus **ret);
/* Print a D-Bus call failure as a user would want to read it; returns a negative errno. */
int ctl_bus_error(const sd_bus_error *e, int r, const char *what);

int verb_status(int argc, char *argv[]);
int verb_reload(int argc, char *argv[]);
int verb_versions(int argc, char *argv[]);
int verb_rollback(int argc, char *argv[]);
int verb_hold(int argc, char *argv[]);
int verb_release(int argc, char *argv[]);
int verb_import(int argc, char *argv[]);
int verb_keygen(int argc, char *argv[]);
int verb_release_dispatch(int argc, char *argv[]);
int verb_update(int argc, char *argv[]);
int verb_recompress(int argc, char *argv[]);
int verb_scrub(int argc, char *argv[]);
int verb_units(int argc, char *argv[]);
int verb_policy(int argc, char *argv[]);
