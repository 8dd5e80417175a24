/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include "fileio.h"
#include "state.h"

static void test_roundtrip(void **state) {
        _cleanup_(model_state_file_freep) ModelStateFile *s = NULL, *t = NULL;
        _cleanup_free_ char *dir = test_mkdtemp();

        assert_int_equal(model_state_file_new(&s), 0);
        assert_int_equal(model_state_file_set(&s->active, "3"), 0);
        assert_int_equal(model_state_file_set(&s->previous, "2"), 0);
        assert_int_equal(model_state_file_set(&s->last_good, "2"), 0);
        assert_int_equal(model_state_file_quarantine(s, "4"), 0);
        assert_int_equal(model_state_file_quarantine(s, "4"), 0);
        assert_int_equal(model_state_file_set_high_water(s, "stable", 4, "52a7c5ee3f680f7a17de8b02731747c990d1658f90141dc6657bf845f9537496"), 0);
        s->hold = true;
        s->in_progress = json_pack("{s:s, s:s, s:s}", "op", "activate", "to", "3", "from", "2");

        assert_int_equal(model_state_file_save(dir, s), 0);
        assert_int_equal(model_state_file_load(dir, &t), 0);
        assert_string_equal(t->active, "3");
        assert_string_equal(t->last_good, "2");
        assert_true(t->hold);
        assert_true(model_state_file_is_quarantined(t, "4"));
        assert_false(model_state_file_is_quarantined(t, "3"));
        assert_int_equal(model_state_file_high_water(t, "stable"), 4);
        assert_int_equal(model_state_file_high_water(t, "beta"), 0);
        assert_string_equal(model_state_file_high_water_content(t, "stable"),
                            "52a7c5ee3f680f7a17de8b02731747c990d1658f90141dc6657bf845f9537496");
        assert_null(model_state_file_high_water_content(t, "beta"));
        assert_string_equal(json_string_value(json_object_get(t->in_progress, "to")), "3");
        assert_int_equal(model_state_file_unquarantine(t, "4"), 1);
        assert_int_equal(model_state_file_unquarantine(t, "4"), 0);
        (void) rm_rf_at(AT_FDCWD, dir);
}

static void test_missing_is_empty(void **state) {
        _cleanup_(model_state_file_freep) ModelStateFile *s = NULL;
        assert_int_equal(model_state_file_load("/nonexistent/x", &s), 0);
        assert_null(s->active);
        assert_false(s->hold);
}

static void test_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "[]",
                "{}",
                "{\"format\": 2}",
                "{\"format\": 1, \"active\": \"../x\"}",
                "{\"format\": 1, \"active\": 3}",
                "{\"format\": 1, \"hold\": \"yes\"}",
                "{\"format\": 1, \"quarantine\": [\"a b\"]}",
                "{\"format\": 1, \"high_water\": {\"stable\": -1}}",
                "{\"format\": 1, \"in_progress\": {\"to\": \"3\"}}",
                "{\"format\": 1, \"format\": 1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ModelStateFile *s = NULL;
                if (model_state_file_parse(bad[i], strlen(bad[i]), &s) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_missing_is_empty),
                cmocka_unit_test(test_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
