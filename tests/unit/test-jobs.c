/* SPDX-License-Identifier: Apache-2.0 */

/* The job runner against the real modelkeeper-agent binary and its test verb. */

#include <signal.h>
#include <sys/wait.h>

#include "test-util.h"

#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "strv.h"

typedef struct Outcome {
        bool done;
        int error;
        char reason[1100];
        json_t *data;
        unsigned progress_seen;
        uint64_t last_done, last_total;
} Outcome;

static char *tmpdir;

static void on_done(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Outcome *o = userdata;

        o->done = true;
        o->error = error;
        snprintf(o->reason, sizeof(o->reason), "%s", strempty(reason));
        o->data = data ? json_incref(data) : NULL;
}

static void on_progress(Job *j, void *userdata) {
        Outcome *o = j->userdata;
        o->progress_seen++;
        o->last_done = j->done_bytes;
        o->last_total = j->total_bytes;
}

static JobRunner *runner_new(sd_event *e) {
        JobRunner *r = NULL;
        _cleanup_free_ char *agent = NULL, *state = path_join(tmpdir, "state"), *run = path_join(tmpdir, "run");

        assert_true(asprintf(&agent, "%s/agent/modelkeeper-agent", getenv("TOP_BUILDDIR")) > 0);
        assert_int_equal(job_runner_new(e, &r), 0);
        assert_int_equal(job_runner_configure(r, agent, state, run, 2, 20 * USEC_PER_SEC), 0);
        r->progress = on_progress;
        return r;
}

/* Run the loop until every outcome is done (or 30 s pass). */
static void run_until_done(sd_event *e, Outcome *const *outs, size_t n) {
        for (unsigned rounds = 0; rounds < 3000; rounds++) {
                bool all = true;
                for (size_t i = 0; i < n; i++)
                        all = all && outs[i]->done;
                if (all)
                        return;
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("jobs did not finish");
}

static void assert_no_zombies(void) {
        /* Every agent has been reaped by sd-event: nothing is left to wait for. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

/* The data of the last run_one() (also reported with failures); freed by the next one. */
static json_t *last_data = NULL;

static Outcome run_one(const char *const *args, uint64_t timeout) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(job_runner_freep) JobRunner *r = NULL;
        _cleanup_(strv_freep) char **a = strv_copy((char *const *) args);
        Outcome o = {};
        Outcome *outs[] = {&o};
        JobSpec spec = {.verb = "test", .args = a, .timeout = timeout, .done = on_done, .userdata = &o};

        assert_int_equal(sd_event_new(&e), 0);
        r = runner_new(e);
        assert_int_equal(job_submit(r, &spec, NULL), 0);
        run_until_done(e, outs, 1);
        assert_int_equal(job_runner_running(r), 0);
        assert_no_zombies();
        json_decref(last_data);
        last_data = o.data;
        return o;
}

static void test_success_with_progress(void **state) {
        const char *args[] = {"progress=5", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, 0);
        assert_true(o.progress_seen >= 1);
        assert_int_equal(o.last_done, 5);
        assert_int_equal(o.last_total, 5);
        assert_non_null(o.data);
}

static void test_failure_reason(void **state) {
        const char *args[] = {"fail=digest mismatch for 'model.safetensors'", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EIO);
        assert_string_equal(o.reason, "digest mismatch for 'model.safetensors'");
}

static void test_crash(void **state) {
        const char *args[] = {"crash", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -ECHILD);
        assert_non_null(strstr(o.reason, "SIGABRT"));
}

static void test_timeout(void **state) {
        const char *args[] = {"sleep-ms=20000", "ignore-term", NULL};
        Outcome o = run_one(args, 300 * USEC_PER_MSEC);

        assert_int_equal(o.error, -ETIMEDOUT);
        assert_string_equal(o.reason, "timed out after 300ms");
}

static void test_malformed(void **state) {
        const char *args[] = {"garbage", "sleep-ms=20000", "ignore-term", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EPROTO);
        assert_string_equal(o.reason, "malformed message from the agent");
}

static void test_oversize(void **state) {
        const char *args[] = {"oversize", "sleep-ms=20000", "ignore-term", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EPROTO);
        assert_string_equal(o.reason, "malformed message from the agent");
}

static void test_nonzero_exit_after_success(void **state) {
        const char *args[] = {"exit=3", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EPROTO);
        assert_string_equal(o.reason, "agent exited with status 3");
}

static void test_no_result(void **state) {
        const char *args[] = {"no-result", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EPROTO);
        assert_string_equal(o.reason, "agent exited without reporting a result");
}

static void test_message_after_result(void **state) {
        const char *args[] = {"result-then-garbage", "sleep-ms=20000", "ignore-term", NULL};
        Outcome o = run_one(args, 0);

        assert_int_equal(o.error, -EPROTO);
        assert_string_equal(o.reason, "message from the agent after its result");
}

static void test_cancel_and_limits(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(job_runner_freep) JobRunner *r = NULL;
        _cleanup_(strv_freep) char **slow = NULL, **quick = NULL;
        Outcome a = {}, b = {}, c = {}, d = {};
        Outcome *outs[] = {&a, &b, &c, &d};
        Job *ja = NULL, *jb = NULL;

        assert_int_equal(strv_extend(&slow, "sleep-ms=20000"), 0);
        assert_int_equal(strv_extend(&quick, "progress=1"), 0);
        assert_int_equal(sd_event_new(&e), 0);
        r = runner_new(e); /* at most 2 at once */

        JobSpec s1 = {.model = "m1", .verb = "test", .args = slow, .done = on_done, .userdata = &a};
        JobSpec s2 = {.model = "m1", .verb = "test", .args = quick, .done = on_done, .userdata = &b};
        JobSpec s3 = {.model = "m2", .verb = "test", .args = slow, .done = on_done, .userdata = &c};
        JobSpec s4 = {.model = "m3", .verb = "test", .args = quick, .done = on_done, .userdata = &d};
        assert_int_equal(job_submit(r, &s1, &ja), 0);
        assert_int_equal(job_submit(r, &s2, &jb), 0);
        assert_int_equal(job_submit(r, &s3, NULL), 0);
        assert_int_equal(job_submit(r, &s4, NULL), 0);

        /* m1's second job waits for the first (per model); m2 runs; m3 waits for a free slot. */
        assert_int_equal(job_runner_running(r), 2);
        assert_int_equal(ja->state, JOB_RUNNING);
        assert_int_equal(jb->state, JOB_PENDING);
        assert_int_equal(job_runner_pending(r), 2);

        /* Cancel the running m1 job: SIGTERM, the agent leaves cleanly, then m1's next job runs. */
        job_cancel(ja, "operator cancelled");
        assert_non_null(job_runner_find_model(r, "m2"));
        run_until_done(e, (Outcome *[]){&a, &b}, 2);
        assert_int_equal(a.error, -ECANCELED);
        assert_string_equal(a.reason, "operator cancelled");
        assert_int_equal(b.error, 0);
        json_decref(b.data);

        job_runner_cancel_all(r, "shutting down");
        run_until_done(e, outs, 4);
        assert_int_equal(c.error, -ECANCELED);
        assert_true(d.done);
        json_decref(d.data);
        assert_int_equal(job_runner_running(r), 0);
        assert_no_zombies();
}

static void test_cancel_ignoring_agent_is_killed(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(job_runner_freep) JobRunner *r = NULL;
        _cleanup_(strv_freep) char **args = NULL;
        Outcome a = {};
        Job *j = NULL;
        uint64_t t0, t1;

        assert_int_equal(strv_extend(&args, "sleep-ms=30000"), 0);
        assert_int_equal(strv_extend(&args, "ignore-term"), 0);
        assert_int_equal(sd_event_new(&e), 0);
        r = runner_new(e);
        JobSpec s = {.model = "m1", .verb = "test", .args = args, .done = on_done, .userdata = &a};
        assert_int_equal(job_submit(r, &s, &j), 0);
        assert_true(sd_event_now(e, CLOCK_MONOTONIC, &t0) >= 0);
        job_cancel(j, "stop");
        run_until_done(e, (Outcome *[]){&a}, 1);
        assert_true(sd_event_now(e, CLOCK_MONOTONIC, &t1) >= 0);
        assert_int_equal(a.error, -ECANCELED);
        /* Killed after the grace period, not after the 30 s sleep. */
        assert_true(t1 - t0 < 10 * USEC_PER_SEC);
        assert_no_zombies();
}

static void test_sandbox_limits_writes(void **state) {
        _cleanup_free_ char *outside = NULL, *inside = NULL;
        const char *args[3] = {};
        Outcome o;

        /* No model: nothing is writable, so writing a file under /tmp must fail where Landlock
         * exists. Where it does not, the write succeeds; say so rather than pretend. */
        assert_int_equal(asprintf(&outside, "write=%s/escape", tmpdir) > 0, 1);
        args[0] = outside;
        o = run_one(args, 0);
        assert_int_equal(o.error, 0);
        {
                int e = (int) json_integer_value(json_object_get(o.data, "write_errno"));
                if (e == 0)
                        print_message("Landlock unavailable here: the agent could write outside its directories\n");
                else
                        assert_int_equal(e, EACCES);
        }
        (void) inside;
}

static int setup(void **state) {
        tmpdir = test_mkdtemp();
        log_set_max_level(LOG_WARNING);
        /* sd_event_add_child wants SIGCHLD blocked. */
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        if (!getenv("TOP_BUILDDIR"))
                return -1;
        return 0;
}

static int teardown(void **state) {
        json_decref(last_data);
        last_data = NULL;
        (void) rm_rf_at(AT_FDCWD, tmpdir);
        free(tmpdir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_success_with_progress),
                cmocka_unit_test(test_failure_reason),
                cmocka_unit_test(test_crash),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_nonzero_exit_after_success),
                cmocka_unit_test(test_no_result),
                cmocka_unit_test(test_message_after_result),
                cmocka_unit_test(test_cancel_and_limits),
                cmocka_unit_test(test_cancel_ignoring_agent_is_killed),
                cmocka_unit_test(test_sandbox_limits_writes),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
