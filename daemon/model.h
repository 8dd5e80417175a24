/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The daemon's view of one model: its last good configuration, its decisions (state.json) and
 * the one operation that may be in flight for it (import, activation with its reload/readiness
 * steps, gc, start-up reconciliation). Operations are chains of asynchronous steps; each step's
 * decision is written to state.json before the step runs.
 */

#include <systemd/sd-bus.h>

#include <jansson.h>

#include "config.h"
#include "jobs.h"
#include "macros.h"
#include "state.h"

typedef struct Manager Manager;
typedef struct Job Job;
typedef struct ServeOp ServeOp;

typedef enum ModelState {
        MODEL_STATE_IDLE,        /* nothing installed yet */
        MODEL_STATE_OK,          /* an active version, promoted */
        MODEL_STATE_BUSY,        /* an operation is running */
        MODEL_STATE_PROBATION,   /* an activated version under rollout analysis */
        MODEL_STATE_HELD,        /* an operator put it on hold: no automatic action */
        MODEL_STATE_FAILED,      /* the last operation failed */
        _MODEL_STATE_MAX,
        _MODEL_STATE_INVALID = -EINVAL,
} ModelState;

typedef enum ActivationKind {
        ACTIVATION_UPDATE,       /* a verified release from the source */
        ACTIVATION_IMPORT,       /* an operator's import */
        ACTIVATION_RECOMPRESS,   /* a derived version */
        ACTIVATION_ROLLBACK,     /* operator or policy: back to a version that served before */
        ACTIVATION_RESTORE,      /* undoing a failed activation */
        _ACTIVATION_KIND_MAX,
        _ACTIVATION_KIND_INVALID = -EINVAL,
} ActivationKind;

typedef enum OpType {
        OP_RECONCILE,
        OP_IMPORT,
        OP_ACTIVATE,
        OP_GC,
        OP_UPDATE,
        OP_RECOMPRESS,
        OP_SCRUB,
        _OP_TYPE_MAX,
} OpType;

typedef struct ModelOp {
        OpType type;
        ActivationKind kind;
        char *to, *from;
        char *previous_before;   /* what "previous" was before this activation (for a restore) */
        char *reason;            /* why, in words (journal REASON=) */
        char *rule;              /* the policy rule that decided it, if any */
        char *import_dir;
        bool then_activate;
        bool failed_once;        /* an activation that already fell back */
        bool serving_failed;     /* the model server could not load it or never became ready */
        bool serving_unreachable; /* the model server could not be reached with it (host or version?) */
        char *suspect;           /* a new version restored away from while the server was unreachable:
                                  * quarantined if the restored version then becomes ready */
        char *failure;           /* why it fell back: the operation's outcome even if the restore works */
        char *result;            /* what a successful operation answers (default: the version) */
        sd_bus_message *reply;   /* a control API call waiting for the outcome */
} ModelOp;

/* An operator request that arrived while another operation ran: it runs next. */
typedef struct ModelRequest ModelRequest;
struct ModelRequest {
        ModelRequest *next;
        OpType type;             /* OP_IMPORT or OP_ACTIVATE (a rollback) */
        char *dir, *id, *reason;
        bool activate;
        sd_bus_message *reply;
};

#define MODEL_REQUESTS_MAX 16

typedef struct Model {
        Manager *manager;
        char *name;
        ModelConfig *config;     /* owned; the last good one */
        char *dir;               /* $STATE/models/<name> */
        ModelStateFile *state;
        bool started;            /* start-up reconciliation done */
        ModelOp *op;
        Job *job;
        ServeOp *serve_op;
        char *last_error;
        uint64_t job_id;         /* of the last job, for JOB= */
        void *watch;             /* owned by watch.c: scraping, rules, probation */
        sd_event_source *check_timer; /* update checks (update.c) */
        sd_event_source *scrub_timer; /* scrubs (scrub.c) */
        ModelRequest *requests;  /* queued operator requests, oldest first */
        unsigned n_requests;
        sd_event_source *dispatch_source;
} Model;

int model_new(Manager *m, ModelConfig *config, Model **ret);
Model *model_free(Model *model);
DEFINE_TRIVIAL_CLEANUP_FUNC(Model *, model_free);

/* Swap in a new configuration (ownership taken); runtime state stays. */
void model_set_config(Model *model, ModelConfig *config);

ModelState model_get_state(const Model *model) _pure_;
const char *model_state_to_string(ModelState s) _const_;
const char *activation_kind_to_string(ActivationKind k) _const_;
ActivationKind activation_kind_from_string(const char *s) _pure_;

/* Load state.json and reconcile the store with it (an agent job). */
int model_start(Model *model);

/* Operations. reply (may be NULL) is answered when the operation ends. -EBUSY while another
 * operation runs. */
int model_import(Model *model, const char *dir, const char *id, bool activate, sd_bus_message *reply);
int model_activate(Model *model, const char *to, const char *from, ActivationKind kind, const char *reason,
                   const char *rule, sd_bus_message *reply);
/* to == NULL: the last good version, else previous. */
int model_rollback(Model *model, const char *to, const char *reason, const char *rule, sd_bus_message *reply);
int model_gc(Model *model);
int model_set_hold(Model *model, bool hold, const char *who);
/* The watch's verdicts on a version on probation. */
int model_promote(Model *model, const char *version, const char *reason);
int model_quarantine(Model *model, const char *version, const char *reason);
int model_unquarantine(Model *model, const char *id, const char *who);
/* Updates (update.c): the check timer, and a check now. reply may be NULL. */
int model_update_start(Model *model);
void model_update_stop(Model *model);
int model_check_update(Model *model, sd_bus_message *reply, const char *why);

/* Scrubs (scrub.c): re-verify the store at rest every daemon.scrub_every, and now. */
int model_scrub_start(Model *model);
void model_scrub_stop(Model *model);
int model_scrub(Model *model, sd_bus_message *reply, const char *why);

/* Re-compression (recompress.c): build <release>~<profile> from what serves and activate it.
 * -ENOPKG: no such profile; -EKEYREVOKED: that derived version is quarantined. */
int model_recompress(Model *model, const char *profile, const char *reason, const char *rule, sd_bus_message *reply);

/* For the operation modules (model.c, update.c): one operation at a time per model. */
int model_op_new(Model *model, OpType type, sd_bus_message *reply);
void model_op_finish(Model *model, int error, const char *reason);
/* Finish successfully, answering the caller with text instead of the version. */
void model_op_finish_with(Model *model, int error, const char *text);
int model_enqueue(Model *model, OpType type, const char *dir, const char *id, bool activate, const char *reason,
                  sd_bus_message *reply);
int model_submit(Model *model, const char *verb, char **args, JobDoneFn done);

/* An operation's error as the control API reports it. */
int model_error_to_bus(const Model *model, int r, sd_bus_error *error);

/* Abandon the running operation (shutdown, model removed); state.json keeps what a restart needs. */
void model_abort(Model *model, const char *why);
