/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include "config.h"
#include "fileio.h"

static const char main_ok[] = "daemon:\n"
                              "  state_directory: /var/lib/mk\n"
                              "  max_jobs: 2\n"
                              "  job_timeout: 1h30m\n"
                              "trust:\n"
                              "  keys: [trust/a.pub, /etc/b.pub]\n"
                              "  threshold: 2\n"
                              "encryption:\n"
                              "  recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n";

static Config *load_main(const char *text) {
        ConfigErrors e = {};
        Config *c = NULL;
        int r = config_load_main("/etc/modelkeeper/modelkeeper.yaml", text, strlen(text), &c, &e);
        for (size_t i = 0; i < e.n; i++)
                print_message("%s\n", e.lines[i]);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        config_errors_done(&e);
        return c;
}

static void test_main_ok(void **state) {
        _cleanup_(config_freep) Config *c = load_main(main_ok);

        assert_string_equal(c->daemon.state_directory, "/var/lib/mk");
        assert_string_equal(c->daemon.runtime_directory, "/run/modelkeeper");
        assert_string_equal(c->daemon.models_directory, "/etc/modelkeeper/models.d");
        assert_int_equal(c->daemon.max_jobs, 2);
        assert_int_equal(c->daemon.job_timeout, 90 * 60 * USEC_PER_SEC);
        assert_true(c->daemon.watch_models);
        assert_string_equal(c->trust.keys[0], "/etc/modelkeeper/trust/a.pub");
        assert_string_equal(c->trust.keys[1], "/etc/b.pub");
        assert_int_equal(c->trust.threshold, 2);
        assert_string_equal(c->encryption.identity_credential, "modelkeeper-age");
}

static void test_main_empty_is_defaults(void **state) {
        _cleanup_(config_freep) Config *c = load_main("");
        assert_int_equal(c->daemon.max_jobs, 0);
        assert_int_equal(c->trust.threshold, 1);
        assert_null(c->trust.keys);
}

/* Each bad file must give exactly this first error. */
static void expect_main_error(const char *text, const char *error) {
        ConfigErrors e = {};
        Config *c = NULL;
        int r = config_load_main("/etc/mk.yaml", text, strlen(text), &c, &e);

        assert_true(r < 0);
        assert_null(c);
        assert_true(e.n >= 1);
        if (!streq(e.lines[0], error))
                fail_msg("expected error\n  %s\ngot\n  %s", error, e.lines[0]);
        config_errors_done(&e);
}

static void test_main_errors(void **state) {
        expect_main_error("daemon:\n  max_job: 3\n",
                          "/etc/mk.yaml:2:3: unknown key 'max_job' in daemon (expected one of: state_directory, "
                          "runtime_directory, models_directory, max_jobs, job_timeout, admin_group, socket_group, "
                          "metrics_textfile, agent, agent_user, watch_models, scrub_every)");
        expect_main_error("daemon: [1, 2]\n", "/etc/mk.yaml:1:9: expected a mapping for daemon, got sequence");
        expect_main_error("daemon:\n  max_jobs: 1000\n", "/etc/mk.yaml:2:13: 1000 out of range [0, 256]");
        expect_main_error("daemon:\n  max_jobs: -1\n",
                          "/etc/mk.yaml:2:13: invalid number '-1' (expected a non-negative integer)");
        expect_main_error("daemon:\n  max_jobs: \"2\"\n",
                          "/etc/mk.yaml:2:14: invalid number '2' (expected a non-negative integer)");
        expect_main_error("daemon:\n  job_timeout: 15x\n",
                          "/etc/mk.yaml:2:16: invalid duration '15x' (write e.g. 30s, 15m, 1h30m)");
        expect_main_error("daemon:\n  job_timeout: 0s\n", "/etc/mk.yaml:2:16: duration 0s out of range [1s, 7d]");
        expect_main_error("daemon:\n  watch_models: yes\n", "/etc/mk.yaml:2:17: expected true or false, got 'yes'");
        expect_main_error("daemon:\n  state_directory: var/lib\n",
                          "/etc/mk.yaml:2:20: 'var/lib' is not an absolute path");
        expect_main_error("daemon: {}\ndaemon: {}\n",
                          "/etc/mk.yaml:2:1: duplicate key 'daemon' (first at line 1, column 1)");
        expect_main_error("daemon: {max_jobs: 1\n", "/etc/mk.yaml:2:1: did not find expected ',' or '}' while "
                                                    "parsing a flow mapping");
        expect_main_error("a: &x {}\n", "/etc/mk.yaml:1:4: anchors are not supported");
        expect_main_error("- 1\n", "/etc/mk.yaml:1:1: expected a mapping at the top level, got sequence");
        expect_main_error("trust:\n  keys: [a.pub]\n  threshold: 2\n",
                          "/etc/mk.yaml:3:14: threshold 2 is larger than the number of trusted keys (1)");
        expect_main_error("encryption:\n  recipient: AGE-SECRET-KEY-1XXXX\n",
                          "/etc/mk.yaml:2:14: this is an age identity (secret key), not a recipient: never put it "
                          "in this file");
        expect_main_error("---\na: 1\n---\nb: 2\n", "/etc/mk.yaml:3:1: only one YAML document per file");
}

static void test_limits(void **state) {
        _cleanup_free_ char *deep = NULL, *big = NULL;
        size_t n = 0;

        /* 40 levels of flow sequences: refused before it can exhaust anything. */
        deep = malloc(200);
        for (int i = 0; i < 40; i++)
                deep[n++] = '[';
        for (int i = 0; i < 40; i++)
                deep[n++] = ']';
        deep[n] = 0;
        expect_main_error(deep, "/etc/mk.yaml:1:33: nesting too deep (limit 32)");

        big = malloc(CONFIG_FILE_MAX + 2);
        memset(big, '#', CONFIG_FILE_MAX + 1);
        big[CONFIG_FILE_MAX + 1] = 0;
        expect_main_error(big, "/etc/mk.yaml: file too large (1048577 bytes, limit 1048576)");

        expect_main_error("a: \"\xff\"\n", "/etc/mk.yaml: not valid UTF-8");
}

static const char model_ok[] =
        "model: digits-mlp\n"
        "source:\n"
        "  url: https://models.example.com/\n"
        "  channel: stable\n"
        "  check_every: 15m\n"
        "storage: {encrypt: true, keep_versions: 3, min_free: 2GiB}\n"
        "serve:\n"
        "  reload: {systemd_unit: digits-server.service}\n"
        "  ready: {http: http://127.0.0.1:8080/ready, timeout: 60s}\n"
        "metrics:\n"
        "  scrape: {url: http://127.0.0.1:8080/metrics, every: 15s}\n"
        "  define:\n"
        "    acc: accuracy(tp_total, tn_total, fp_total, fn_total)\n"
        "rollout:\n"
        "  interval: 1m\n"
        "  iterations: 5\n"
        "  threshold: 1\n"
        "  checks:\n"
        "    - {expr: acc, min: baseline(acc) - 0.01}\n"
        "    - {expr: \"rate(errors_total[5m])\", max: 0.01}\n"
        "rules:\n"
        "  - {name: accuracy-floor, when: acc < 0.90, for: 10m, action: rollback}\n"
        "  - {name: memory-pressure, when: process_resident_memory_bytes > 6GiB, for: 5m,\n"
        "     action: {recompress: int8}}\n"
        "  - {name: page, when: up == 0, action: {exec: [/usr/bin/logger, down]}}\n"
        "recompress:\n"
        "  profiles:\n"
        "    int8: {method: int8, skip: [\"*norm*\", \"*embed*\"]}\n"
        "    fp16: {method: fp16}\n"
        "    sparse: {method: prune, sparsity: 50%}\n"
        "    q4: {method: exec, command: [/usr/bin/llama-quantize, \"{input}\", \"{output}\", Q4_K_M]}\n";

static int load_model(const char *path, const char *text, ModelConfig **ret, ConfigErrors *e) {
        _cleanup_(config_freep) Config *c = load_main(main_ok);
        return model_config_load(path, text, strlen(text), c, ret, e);
}

static void test_model_ok(void **state) {
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        ConfigErrors e = {};
        int r = load_model("/etc/modelkeeper/models.d/digits-mlp.yaml", model_ok, &m, &e);

        for (size_t i = 0; i < e.n; i++)
                print_message("%s\n", e.lines[i]);
        assert_int_equal(r, 0);
        assert_string_equal(m->name, "digits-mlp");
        assert_string_equal(m->source->url, "https://models.example.com/");
        assert_int_equal(m->source->check_every, 15 * 60 * USEC_PER_SEC);
        assert_int_equal(m->source->jitter, 90 * USEC_PER_SEC);
        assert_true(m->storage.encrypt);
        assert_int_equal(m->storage.min_free, 2 * GIB);
        assert_int_equal(m->serve.reload, RELOAD_SYSTEMD);
        assert_string_equal(m->serve.unit, "digits-server.service");
        assert_int_equal(m->serve.unit_action, UNIT_RESTART);
        assert_string_equal(m->serve.ready_url, "http://127.0.0.1:8080/ready");
        assert_int_equal(m->metrics.n_targets, 1);
        assert_int_equal(m->metrics.targets[0].every, 15 * USEC_PER_SEC);
        assert_int_equal(m->metrics.n_defines, 1);
        assert_string_equal(m->metrics.defines[0].name, "acc");
        assert_int_equal(m->metrics.defines[0].mark.line, 13);
        assert_int_equal(m->metrics.defines[0].mark.column, 10);
        assert_int_equal(m->rollout->n_checks, 2);
        assert_string_equal(m->rollout->checks[0].min, "baseline(acc) - 0.01");
        assert_string_equal(m->rollout->checks[1].name, "check2");
        assert_int_equal(m->rollout->on_no_data, NO_DATA_INCONCLUSIVE);
        assert_int_equal(m->n_rules, 3);
        assert_int_equal(m->rules[0].for_, 10 * 60 * USEC_PER_SEC);
        assert_int_equal(m->rules[0].action.type, ACTION_ROLLBACK);
        assert_int_equal(m->rules[1].action.type, ACTION_RECOMPRESS);
        assert_string_equal(m->rules[1].action.profile, "int8");
        assert_int_equal(m->rules[2].action.type, ACTION_EXEC);
        assert_string_equal(m->rules[2].action.argv[1], "down");
        assert_int_equal(m->n_profiles, 4);
        assert_true(model_config_find_profile(m, "sparse")->sparsity == 0.5);
        assert_int_equal(model_config_find_profile(m, "q4")->method, METHOD_EXEC);
        assert_null(model_config_find_profile(m, "nope"));
}

static void expect_model_error(const char *path, const char *text, const char *error) {
        ModelConfig *m = NULL;
        ConfigErrors e = {};
        int r = load_model(path, text, &m, &e);

        assert_true(r < 0);
        assert_null(m);
        assert_true(e.n >= 1);
        if (!streq(e.lines[0], error))
                fail_msg("expected error\n  %s\ngot\n  %s", error, e.lines[0]);
        config_errors_done(&e);
}

static void test_model_errors(void **state) {
        const char *p = "/m/x.yaml";

        expect_model_error(p, "model: y\n", "/m/x.yaml:1:8: model 'y' must be defined in a file named x.yaml");
        expect_model_error(p, "source: {url: https://a/, channel: c}\n", "/m/x.yaml:1:1: missing required key 'model' in a model file");
        expect_model_error(p, "model: x\nsource: {url: http://a/, channel: s}\n",
                           "/m/x.yaml:2:15: plain http:// is refused here: use https:// (or file:// for a local "
                           "repository)");
        expect_model_error(p, "model: x\nsource: {url: https://a/}\n",
                           "/m/x.yaml:2:9: missing required key 'channel' in source");
        expect_model_error(p, "model: x\nsource: {url: https://a/, channel: s, tls: {ca: /x}}\n",
                           "/m/x.yaml:2:45: unknown key 'ca' in source.tls (expected one of: ca_file, pinned_pubkey, "
                           "client_cert, client_key)");
        expect_model_error(p, "model: x\nstorage: {min_free: 2GB5}\n",
                           "/m/x.yaml:2:21: invalid size '2GB5' (write e.g. 4096, 500MB, 2GiB)");
        expect_model_error(p, "model: x\nstorage: {keep_versions: 1}\n", "/m/x.yaml:2:26: 1 out of range [2, 1000]");
        expect_model_error(p, "model: x\nserve: {reload: {}}\n",
                           "/m/x.yaml:2:17: serve.reload needs exactly one of systemd_unit, http, exec");
        expect_model_error(p, "model: x\nserve: {reload: {exec: [reload.sh]}}\n",
                           "/m/x.yaml:2:25: 'reload.sh' is not an absolute path: commands run without a shell or $PATH");
        expect_model_error(p, "model: x\nrules:\n  - {name: a, when: up == 0, action: reboot}\n",
                           "/m/x.yaml:3:38: invalid action 'reboot' (expected rollback, update, hold, log, "
                           "{recompress: PROFILE} or {exec: [PROGRAM, ARGS…]})");
        expect_model_error(p, "model: x\nrules:\n  - {name: a, when: up == 0, action: {recompress: int4}}\n",
                           "/m/x.yaml:3:38: rule 'a' names the unknown recompress profile 'int4'");
        expect_model_error(p, "model: x\nrules:\n  - {name: a, when: up == 0, action: log}\n  - {name: a, when: up == 1, action: log}\n",
                           "/m/x.yaml:4:5: duplicate rule name 'a'");
        expect_model_error(p, "model: x\nrules:\n  - {name: a, when: up == 0, fro: 5m}\n",
                           "/m/x.yaml:3:30: unknown key 'fro' in rules[0] (expected one of: name, when, for, "
                           "keep_firing_for, cooldown, action)");
        expect_model_error(p, "model: x\nrecompress:\n  profiles:\n    p: {method: prune}\n",
                           "/m/x.yaml:4:8: method prune needs 'sparsity' (e.g. 0.5 or 50%)");
        expect_model_error(p, "model: x\nrecompress:\n  profiles:\n    p: {method: int3}\n",
                           "/m/x.yaml:4:17: invalid value 'int3' (expected one of: fp16, bf16, int8, prune, exec)");
        expect_model_error(p, "model: x\nrollout: {checks: []}\n", "/m/x.yaml:2:10: rollout needs at least one check");
        expect_model_error(p, "model: x\nmetrics:\n  define: {1x: up}\n",
                           "/m/x.yaml:3:12: invalid name '1x' (letters, digits and '_', not starting with a digit)");
}

static void test_model_encrypt_needs_recipient(void **state) {
        _cleanup_(config_freep) Config *c = load_main("trust: {keys: [/k.pub]}\n");
        const char text[] = "model: x\nstorage: {encrypt: true}\n";
        ModelConfig *m = NULL;
        ConfigErrors e = {};

        assert_true(model_config_load("/m/x.yaml", text, strlen(text), c, &m, &e) < 0);
        assert_string_equal(e.lines[0],
                            "/m/x.yaml:2:20: storage.encrypt needs encryption.recipient in "
                            "/etc/modelkeeper/modelkeeper.yaml");
        config_errors_done(&e);
}

/* The files we ship must load. */
static void test_shipped_files(void **state) {
        const char *top = getenv("TOP_SRCDIR");
        _cleanup_free_ char *main_path = NULL, *model_path = NULL, *text = NULL;
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        ConfigErrors e = {};
        size_t n;

        if (!top)
                skip();
        main_path = path_join(top, "config/modelkeeper.yaml");
        model_path = path_join(top, "config/example-model.yaml");
        assert_int_equal(read_full_file(main_path, CONFIG_FILE_MAX, &text, &n), 0);
        assert_int_equal(config_load_main(main_path, text, n, &c, &e), 0);
        free(text);
        text = NULL;

        /* The example needs a trust key, as a real deployment would. */
        assert_int_equal(strv_extend(&c->trust.keys, "/etc/modelkeeper/trust/release.pub"), 0);
        assert_int_equal(read_full_file(model_path, CONFIG_FILE_MAX, &text, &n), 0);
        /* Its name must match the file it is installed as. */
        assert_int_equal(model_config_load("/etc/modelkeeper/models.d/digits-mlp.yaml", text, n, c, &m, &e), 0);
        for (size_t i = 0; i < e.n; i++)
                print_message("%s\n", e.lines[i]);
        assert_int_equal(e.n, 0);
        assert_int_equal(m->n_rules, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_main_ok),
                cmocka_unit_test(test_main_empty_is_defaults),
                cmocka_unit_test(test_main_errors),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_model_ok),
                cmocka_unit_test(test_model_errors),
                cmocka_unit_test(test_model_encrypt_needs_recipient),
                cmocka_unit_test(test_shipped_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
