/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * modelkeeper-agent: the hands (DESIGN.md §2). One verb per process. Started by modelkeeperd
 * with the wire on fd 3 and the configuration on fds 4/5, or by hand for debugging
 * (`modelkeeper-agent verify --model m --version v`), in which case progress goes to stderr and
 * the result is printed as JSON on stdout.
 */

#include <jansson.h>
#include <signal.h>

#include "config.h"
#include "macros.h"

typedef struct Agent {
        const char *verb;
        uint64_t job;
        char *state_directory;
        char *runtime_directory;
        char *config_path;
        int config_fd;
        char *model_file;
        int model_fd;
        char *model_name;
        char **args;           /* verb arguments (after the common options) */
        Config *config;        /* NULL until loaded */
        ModelConfig *model;    /* NULL for verbs without a model */
        int wire_fd;           /* -EBADF when run by hand */
        bool result_sent;
} Agent;

/* Set by SIGTERM: long loops check it and stop at a point where their work stays resumable. */
extern volatile sig_atomic_t agent_terminate;

/* Report progress (throttled by the caller) and the final result. */
void agent_progress(Agent *a, const char *phase, uint64_t done, uint64_t total);
/* Success with data (stolen, may be NULL); returns 0. */
int agent_result_ok(Agent *a, json_t *data);
/* Failure with a reason (printf-style, %m is the error); returns error. */
int agent_result_error(Agent *a, int error, const char *fmt, ...) _printf_(3, 4);
/* The same with facts for the daemon (stolen), e.g. {"refused": true, "keyids": [...]}. */
int agent_result_error_data(Agent *a, int error, json_t *data, const char *fmt, ...) _printf_(4, 5);
/* The verb's arguments as a getopt_long() argv (verb name first), NULL-terminated, in *ret_argc
 * entries; pointers into a->args (which outlives it: getopt permutes the pointers only), so free
 * only the array. Also resets getopt (optind 0, opterr 0). NULL on OOM. */
char **agent_getopt_argv(const Agent *a, int *ret_argc);

typedef struct AgentVerb {
        const char *name;
        int (*run)(Agent *a);
        bool needs_model;      /* --model required, its configuration loaded */
        bool network;          /* may connect to the network (only fetching verbs) */
        const char *help;
} AgentVerb;

typedef struct Store Store;
/* Open the model's store with its group applied; reports the failure as the job's result. */
int agent_open_store(Agent *a, Store **ret);

/* Verbs. */
int verb_test(Agent *a);
int verb_import(Agent *a);
int verb_activate(Agent *a);
int verb_rollback(Agent *a);
int verb_gc(Agent *a);
int verb_verify(Agent *a);
int verb_reconcile(Agent *a);
int verb_list(Agent *a);
int verb_update(Agent *a);
int verb_recompress(Agent *a);
int verb_scrub(Agent *a);
