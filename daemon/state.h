/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * state.json of a model: the daemon's decisions, written by the daemon only, atomically (temp
 * file + fsync + rename + fsync of the directory), and always *before* the decision is acted on
 * so that start-up can finish or undo what a crash interrupted (STYLE.md §14).
 *
 *   {
 *     "format": 1,
 *     "active": "3", "previous": "2", "last_good": "2",
 *     "hold": false,
 *     "quarantine": ["4"],
 *     "high_water": {"stable": 4},
 *     "high_water_content": {"stable": "<sha256 hex of the sorted (name, size, digest) list>"},
 *     "in_progress": {"op": "activate", "to": "3", "from": "2", "kind": "update",
 *                     "reason": "…", "since": "2026-11-29T10:00:00Z"},
 *     "probation": {…}                 (the rollout analysis, owned by the policy engine)
 *   }
 */

#include <jansson.h>

#include "macros.h"

typedef struct ModelStateFile {
        char *active;
        char *previous;
        char *last_good;
        bool hold;
        char **quarantine;
        json_t *high_water;     /* object: channel → integer */
        json_t *high_water_content; /* object: channel → content id (hex) of that version */
        json_t *in_progress;    /* object or NULL */
        json_t *probation;      /* object or NULL */
} ModelStateFile;

#define STATE_JSON_MAX (1024 * 1024)

ModelStateFile *model_state_file_free(ModelStateFile *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModelStateFile *, model_state_file_free);
int model_state_file_new(ModelStateFile **ret);

/* Pure: parse the JSON text (strict; -EBADMSG on anything malformed). */
int model_state_file_parse(const char *text, size_t size, ModelStateFile **ret);
char *model_state_file_format(const ModelStateFile *s);

/* Load from <model_dir>/state.json; a missing file gives an empty state (and returns 0). */
int model_state_file_load(const char *model_dir, ModelStateFile **ret);
int model_state_file_save(const char *model_dir, const ModelStateFile *s);

bool model_state_file_is_quarantined(const ModelStateFile *s, const char *id) _pure_;
int model_state_file_quarantine(ModelStateFile *s, const char *id);
int model_state_file_unquarantine(ModelStateFile *s, const char *id);
uint64_t model_state_file_high_water(const ModelStateFile *s, const char *channel) _pure_;
int model_state_file_set_high_water(ModelStateFile *s, const char *channel, uint64_t v, const char *content_id);
const char *model_state_file_high_water_content(const ModelStateFile *s, const char *channel) _pure_;
int model_state_file_set(char **field, const char *value);
