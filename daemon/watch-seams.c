/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The rule actions `update` and `recompress` need machinery that is not in the daemon yet:
 * checking a model's release source (common/release.c, run by the agent's fetch) and deriving a
 * re-compressed version (DESIGN.md §7). These two functions are the seam: the code that brings
 * that machinery replaces this file. Until then the action is refused in words, so that a rule
 * that fires says plainly why nothing happened.
 */

#include "log.h"
#include "watch.h"

int model_check_update(Model *model) {
        return log_warning_errno(
                -EOPNOTSUPP,
                "Model %s: a rule asked for an update check, but this modelkeeperd cannot check for "
                "updates yet; nothing was done.",
                model->name);
}

int model_recompress(Model *model, const char *profile, const char *reason) {
        return log_warning_errno(
                -EOPNOTSUPP,
                "Model %s: re-compression with profile %s was asked for (%s), but this modelkeeperd "
                "cannot re-compress yet; nothing was done.",
                model->name, strna(profile), strna(reason));
}
