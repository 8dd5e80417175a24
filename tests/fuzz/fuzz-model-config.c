/* SPDX-License-Identifier: Apache-2.0 */

/* The model-file loader with the policy validator installed, and what follows a successful load:
 * compiling the policy, making its store, evaluating its rules and a rollout round. */

#include "config.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(series_store_freep) SeriesStore *s = NULL;
        ConfigErrors e = {};
        PolicyError pe;
        char msg[256];
        const RuleEvent *ev;
        RolloutRound rr;
        size_t n;
        json_t *j;

        policies_install_config_validator();
        if (model_config_load("/etc/modelkeeper/models.d/m.yaml", (const char *) data, size, NULL, &m, &e) < 0) {
                config_errors_done(&e);
                return 0;
        }
        config_errors_done(&e);
        /* Whatever the validator accepted must compile. */
        if (policy_new(m, &p, &pe) < 0)
                abort();
        if (policy_new_store(p, &s, msg, sizeof(msg)) < 0)
                return 0;
        (void) policy_eval_rules(p, s, 60 * USEC_PER_SEC, true, &ev, &n);
        (void) policy_snapshot_baselines(p, s, 60 * USEC_PER_SEC);
        if (policy_rollout_start(p, "1", 60 * USEC_PER_SEC) > 0)
                (void) policy_rollout_eval(p, s, policy_rollout_next(p), &rr);
        j = policy_state_to_json(p);
        if (j)
                (void) policy_state_from_json(p, j, 0);
        json_decref(j);
        return 0;
}
