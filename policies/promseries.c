/* SPDX-License-Identifier: Apache-2.0 */

#include <math.h>
#include <stdarg.h>

#include "expfmt.h"
#include "parse-util.h"
#include "promseries.h"
#include "rules.h"
#include "strv.h"
#include "yaml-tree.h"

/* ---------------------------------------------------------------------------------------------
 * Notation
 */

static int expand_error(size_t *ret_offset, size_t off, char *msg, size_t msg_size, int r, const char *fmt, ...)
        _printf_(6, 7);
static int expand_error(size_t *ret_offset, size_t off, char *msg, size_t msg_size, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_offset)
                *ret_offset = off;
        va_start(ap, fmt);
        vsnprintf(msg, msg_size, fmt, ap);
        va_end(ap);
        return r;
}

static int push(PromPoint **a, size_t *n, size_t *cap, size_t max, PromPoint p) {
        if (*n >= max)
                return -E2BIG;
        if (*n >= *cap) {
                size_t nc = MAX(*cap * 2, (size_t) 64);
                PromPoint *b = reallocarray(*a, nc, sizeof(PromPoint));
                if (!b)
                        return -ENOMEM;
                *a = b;
                *cap = nc;
        }
        (*a)[(*n)++] = p;
        return 0;
}

static int parse_count(const char *s, size_t len, uint64_t *ret) {
        char buf[24];

        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        return parse_uint64(buf, ret);
}

int promseries_expand(const char *text, size_t max_points, PromPoint **ret, size_t *ret_n, size_t *ret_offset,
                      char *msg, size_t msg_size) {
        _cleanup_free_ PromPoint *a = NULL;
        size_t n = 0, cap = 0;
        const char *p = text;
        int r;

        assert_return(text && ret && ret_n, -EINVAL);
        if (max_points == 0)
                max_points = PROMSERIES_POINTS_MAX;

        for (;;) {
                const char *tok, *x = NULL;
                size_t len, off;
                uint64_t count = 0;
                bool have_x = false;

                while (*p == ' ' || *p == '\t' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                tok = p;
                while (*p && *p != ' ' && *p != '\t' && *p != '\n')
                        p++;
                len = (size_t) (p - tok);
                off = (size_t) (tok - text);

                /* the repetition: a trailing "x<digits>" */
                for (const char *q = tok + len; q > tok; q--)
                        if (q[-1] == 'x') {
                                x = q - 1;
                                break;
                        } else if (!(q[-1] >= '0' && q[-1] <= '9'))
                                break;
                if (x && x + 1 < tok + len) {
                        if (parse_count(x + 1, (size_t) (tok + len - x - 1), &count) < 0)
                                return expand_error(ret_offset, (size_t) (x + 1 - text), msg, msg_size, -EINVAL,
                                                    "invalid repetition count");
                        have_x = true;
                        len = (size_t) (x - tok);
                } else
                        x = NULL;

                if (len == 1 && tok[0] == '_') {
                        uint64_t k = have_x ? count : 1;
                        if (k > max_points)
                                return expand_error(ret_offset, off, msg, msg_size, -E2BIG, "more than %zu points",
                                                    max_points);
                        for (uint64_t i = 0; i < k; i++) {
                                r = push(&a, &n, &cap, max_points, (PromPoint){PROM_POINT_MISSING, NAN});
                                if (r < 0)
                                        return r == -E2BIG ? expand_error(ret_offset, off, msg, msg_size, r,
                                                                          "more than %zu points", max_points)
                                                           : r;
                        }
                        continue;
                }
                if (len == 5 && memcmp(tok, "stale", 5) == 0) {
                        if (have_x)
                                return expand_error(ret_offset, off, msg, msg_size, -EINVAL,
                                                    "'stale' cannot be repeated");
                        r = push(&a, &n, &cap, max_points, (PromPoint){PROM_POINT_STALE, NAN});
                        if (r < 0)
                                return r == -E2BIG ? expand_error(ret_offset, off, msg, msg_size, r,
                                                                  "more than %zu points", max_points)
                                                   : r;
                        continue;
                }

                {
                        const char *split = NULL;
                        double base, step = 0;

                        /* "a+b" / "a-b": the sign after the first character that is not an exponent's */
                        for (const char *q = tok + 1; q < tok + len; q++)
                                if ((*q == '+' || *q == '-') && q[-1] != 'e' && q[-1] != 'E') {
                                        split = q;
                                        break;
                                }
                        if (expfmt_parse_float(tok, split ? (size_t) (split - tok) : len, &base) < 0)
                                return expand_error(ret_offset, off, msg, msg_size, -EINVAL, "invalid number '%.*s'",
                                                    (int) MIN(split ? (size_t) (split - tok) : len, (size_t) 32), tok);
                        if (split) {
                                if (!have_x)
                                        return expand_error(ret_offset, (size_t) (split - text), msg, msg_size, -EINVAL,
                                                            "expected 'x<count>' after '%.*s'", (int) MIN(len, (size_t) 32),
                                                            tok);
                                if (expfmt_parse_float(split + 1, (size_t) (tok + len - split - 1), &step) < 0 ||
                                    split + 1 == tok + len || split[1] == '+' || split[1] == '-')
                                        return expand_error(ret_offset, (size_t) (split + 1 - text), msg, msg_size,
                                                            -EINVAL, "invalid increment");
                                if (*split == '-')
                                        step = -step;
                        }
                        if (have_x && count >= max_points)
                                return expand_error(ret_offset, off, msg, msg_size, -E2BIG, "more than %zu points",
                                                    max_points);
                        for (uint64_t i = 0; i <= (have_x ? count : 0); i++) {
                                /* a + i*b, not repeated addition: no drift over long series */
                                r = push(&a, &n, &cap, max_points,
                                         (PromPoint){PROM_POINT_VALUE, step == 0 ? base : base + (double) i * step});
                                if (r < 0)
                                        return r == -E2BIG ? expand_error(ret_offset, off, msg, msg_size, r,
                                                                          "more than %zu points", max_points)
                                                           : r;
                        }
                }
        }
        *ret = TAKE_PTR(a);
        *ret_n = n;
        return 0;
}

typedef struct SeriesCapture {
        char *metric;
        LabelPair *pairs;
        size_t n;
} SeriesCapture;

static int capture_sample(const ExpfmtSample *s, void *userdata) {
        SeriesCapture *c = userdata;
        size_t bytes = (s->n_labels + 1) * sizeof(LabelPair);
        char *o;

        if (c->metric || s->has_timestamp)
                return -EBADMSG; /* "x 1" would read as the value 1 at time 0 */
        for (size_t i = 0; i < s->n_labels; i++)
                bytes += s->labels[i].name_len + s->labels[i].value_len + 2;
        c->pairs = calloc(1, bytes);
        c->metric = strdup(s->name);
        if (!c->pairs || !c->metric)
                return -ENOMEM;
        o = (char *) (c->pairs + s->n_labels + 1);
        for (size_t i = 0; i < s->n_labels; i++) {
                c->pairs[i].name = o;
                o = stpcpy(o, s->labels[i].name) + 1;
                c->pairs[i].value = o;
                o = stpcpy(o, s->labels[i].value) + 1;
        }
        c->n = s->n_labels;
        return 0;
}

int promseries_parse_series(const char *text, char **ret_metric, LabelPair **ret_pairs, size_t *ret_n, char *msg,
                            size_t msg_size) {
        static const ExpfmtCallbacks cb = {.sample = capture_sample};
        SeriesCapture c = {};
        _cleanup_free_ char *line = NULL;
        ExpfmtError e = {};
        int r;

        if (strchr(text, '\n')) {
                snprintf(msg, msg_size, "a series is one line");
                return -EINVAL;
        }
        if (asprintf(&line, "%s 0\n", text) < 0)
                return -ENOMEM;
        r = expfmt_parse(EXPFMT_TEXT, line, strlen(line), NULL, &cb, &c, NULL, &e);
        if (r == -EBADMSG || (r >= 0 && !c.metric))
                r = -EINVAL, snprintf(e.message, sizeof(e.message), "expected a series like name{label=\"value\"}");
        if (r < 0) {
                free(c.metric);
                free(c.pairs);
                snprintf(msg, msg_size, "%s", e.message[0] ? e.message : "invalid series");
                return r == -ENOMEM ? r : -EINVAL;
        }
        *ret_metric = c.metric;
        *ret_pairs = c.pairs;
        *ret_n = c.n;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * policy test
 */

typedef struct InputSeries {
        char *metric;
        LabelPair *pairs;
        size_t n_pairs;
        PromPoint *points;
        size_t n_points, next;
} InputSeries;

typedef struct Activation {
        uint64_t at;
        char *version;
} Activation;

typedef struct Hold {
        uint64_t from, until;
} Hold;

typedef struct TestSpec {
        uint64_t interval, eval_interval, duration;
        bool duration_set;
        InputSeries *series;
        size_t n_series;
        Activation *acts;
        size_t n_acts;
        Hold *holds;
        size_t n_holds;
} TestSpec;

static void spec_done(TestSpec *s) {
        for (size_t i = 0; i < s->n_series; i++) {
                free(s->series[i].metric);
                free(s->series[i].pairs);
                free(s->series[i].points);
        }
        free(s->series);
        for (size_t i = 0; i < s->n_acts; i++)
                free(s->acts[i].version);
        free(s->acts);
        free(s->holds);
}

typedef struct TCtx {
        const char *path;
        ConfigErrors *errors;
        unsigned n_errors;
} TCtx;

static int terr(TCtx *t, const YNode *n, size_t extra, const char *fmt, ...) _printf_(4, 5);
static int terr(TCtx *t, const YNode *n, size_t extra, const char *fmt, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        config_errors_add(t->errors, t->path, n ? n->line : 0,
                          n ? n->column + (n->single_line ? (unsigned) extra : 0) : 0, "%s", m ?: "out of memory");
        t->n_errors++;
        return -EINVAL;
}

static int get_duration(TCtx *t, const YNode *n, uint64_t *ret, bool positive) {
        if (!n || n->type != YNODE_SCALAR || parse_duration(n->value, ret) < 0)
                return terr(t, n, 0, "expected a duration like 1m");
        if (positive && *ret == 0)
                return terr(t, n, 0, "duration must be greater than 0");
        return 0;
}

static bool keys_ok(TCtx *t, const YNode *map, const char *const *keys, const char *what) {
        bool ok = true;

        for (size_t i = 0; i + 1 < map->n_items; i += 2) {
                bool known = false;
                for (const char *const *k = keys; *k; k++)
                        known = known || streq(*k, map->items[i]->value);
                if (!known) {
                        terr(t, map->items[i], 0, "unknown key '%s' in %s", map->items[i]->value, what);
                        ok = false;
                }
        }
        return ok;
}

static int parse_spec(TCtx *t, const YNode *root, TestSpec *s) {
        static const char *const top_keys[] = {"interval", "evaluation_interval", "duration", "activations",
                                               "hold", "input_series", NULL};
        const YNode *n;

        *s = (TestSpec){.interval = 60 * USEC_PER_SEC};
        if (!root || root->type != YNODE_MAPPING)
                return terr(t, root, 0, "expected a mapping with input_series");
        keys_ok(t, root, top_keys, "a series file");

        if ((n = ynode_get(root, "interval")))
                get_duration(t, n, &s->interval, true);
        s->eval_interval = s->interval;
        if ((n = ynode_get(root, "evaluation_interval")))
                get_duration(t, n, &s->eval_interval, true);
        if ((n = ynode_get(root, "duration"))) {
                get_duration(t, n, &s->duration, false);
                s->duration_set = true;
        }

        n = ynode_get(root, "input_series");
        if (!n || n->type != YNODE_SEQUENCE)
                return terr(t, n ?: root, 0, "expected a list 'input_series' of {series, values}");
        if (n->n_items > 10000)
                return terr(t, n, 0, "too many series (limit 10000)");
        s->series = calloc(n->n_items + 1, sizeof(InputSeries));
        if (!s->series)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_items; i++) {
                static const char *const keys[] = {"series", "values", NULL};
                const YNode *it = n->items[i], *ser, *val;
                InputSeries *is = &s->series[s->n_series];
                char msg[256];
                size_t off = 0;
                int r;

                if (it->type != YNODE_MAPPING) {
                        terr(t, it, 0, "expected a mapping {series, values}");
                        continue;
                }
                keys_ok(t, it, keys, "an input series");
                ser = ynode_get(it, "series");
                val = ynode_get(it, "values");
                if (!ser || ser->type != YNODE_SCALAR || !val || val->type != YNODE_SCALAR) {
                        terr(t, it, 0, "an input series needs 'series' and 'values' strings");
                        continue;
                }
                r = promseries_parse_series(ser->value, &is->metric, &is->pairs, &is->n_pairs, msg, sizeof(msg));
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        terr(t, ser, 0, "invalid series: %s", msg);
                        continue;
                }
                s->n_series++;
                r = promseries_expand(val->value, PROMSERIES_POINTS_MAX, &is->points, &is->n_points, &off, msg,
                                      sizeof(msg));
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        terr(t, val, off, "invalid values: %s", msg);
        }

        if ((n = ynode_get(root, "activations"))) {
                if (n->type != YNODE_SEQUENCE)
                        return terr(t, n, 0, "expected a list of {at, version}");
                s->acts = calloc(n->n_items + 1, sizeof(Activation));
                if (!s->acts)
                        return -ENOMEM;
                for (size_t i = 0; i < n->n_items && i < 1000; i++) {
                        static const char *const keys[] = {"at", "version", NULL};
                        const YNode *it = n->items[i], *v;
                        Activation *a = &s->acts[s->n_acts];

                        if (it->type != YNODE_MAPPING || !ynode_get(it, "at") || !(v = ynode_get(it, "version")) ||
                            v->type != YNODE_SCALAR) {
                                terr(t, it, 0, "an activation needs 'at' (a duration) and 'version'");
                                continue;
                        }
                        keys_ok(t, it, keys, "an activation");
                        if (get_duration(t, ynode_get(it, "at"), &a->at, false) < 0)
                                continue;
                        if (s->n_acts > 0 && a->at <= s->acts[s->n_acts - 1].at) {
                                terr(t, it, 0, "activations must be in time order");
                                continue;
                        }
                        a->version = strdup(v->value);
                        if (!a->version)
                                return -ENOMEM;
                        s->n_acts++;
                }
        }
        if ((n = ynode_get(root, "hold"))) {
                if (n->type != YNODE_SEQUENCE)
                        return terr(t, n, 0, "expected a list of {from, until}");
                s->holds = calloc(n->n_items + 1, sizeof(Hold));
                if (!s->holds)
                        return -ENOMEM;
                for (size_t i = 0; i < n->n_items && i < 1000; i++) {
                        static const char *const keys[] = {"from", "until", NULL};
                        const YNode *it = n->items[i];
                        Hold *h = &s->holds[s->n_holds];

                        if (it->type != YNODE_MAPPING || !ynode_get(it, "from") || !ynode_get(it, "until")) {
                                terr(t, it, 0, "a hold needs 'from' and 'until' (durations)");
                                continue;
                        }
                        keys_ok(t, it, keys, "a hold");
                        if (get_duration(t, ynode_get(it, "from"), &h->from, false) < 0 ||
                            get_duration(t, ynode_get(it, "until"), &h->until, false) < 0)
                                continue;
                        s->n_holds++;
                }
        }

        if (!s->duration_set) {
                size_t longest = 0;
                for (size_t i = 0; i < s->n_series; i++)
                        longest = MAX(longest, s->series[i].n_points);
                s->duration = longest > 0 ? (uint64_t) (longest - 1) * s->interval : 0;
                for (size_t i = 0; i < s->n_acts; i++)
                        s->duration = MAX(s->duration, s->acts[i].at);
        }
        return t->n_errors > 0 ? -EINVAL : 0;
}

typedef struct Out {
        char **lines;
        size_t n;
        bool oom;
} Out;

static void out_line(Out *o, uint64_t t, const char *fmt, ...) _printf_(3, 4);
static void out_line(Out *o, uint64_t t, const char *fmt, ...) {
        char d[FORMAT_DURATION_MAX];
        _cleanup_free_ char *m = NULL;
        char *l = NULL;
        va_list ap;

        if (o->oom)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        if (!m || asprintf(&l, "%s %s", format_duration(d, t), m) < 0 || strv_consume(&o->lines, l) < 0) {
                o->oom = true;
                return;
        }
        o->n++;
}

/* Figures for people: six significant digits (the exact values are in the state and the tests). */
static const char *num(double v, char *buf, size_t size) {
        if (isfinite(v))
                snprintf(buf, size, "%.6g", v);
        else
                expr_format_number(v, buf, size);
        return buf;
}

static void action_text(const Action *a, char *buf, size_t size) {
        switch (a->type) {
        case ACTION_RECOMPRESS:
                snprintf(buf, size, "recompress %s", strna(a->profile));
                break;
        case ACTION_EXEC: {
                size_t off = (size_t) snprintf(buf, size, "exec");
                STRV_FOREACH(s, a->argv)
                        if (off < size)
                                off += (size_t) snprintf(buf + off, size - off, " %s", *s);
                break;
        }
        default:
                snprintf(buf, size, "%s", strna(action_type_to_string(a->type)));
        }
}

static void report_rules(Out *o, uint64_t t, const RuleEvent *ev, size_t n) {
        char b[64], act[256];

        for (size_t i = 0; i < n; i++) {
                const RuleEvent *e = &ev[i];

                if (e->from != e->to)
                        out_line(o, t, "rule %s: %s -> %s (%s%s)", e->name, rule_state_to_string(e->from),
                                 rule_state_to_string(e->to), e->n_values > 0 ? "value " : "no data",
                                 e->n_values > 0 ? num(e->value, b, sizeof(b)) : "");
                action_text(e->action, act, sizeof(act));
                switch (e->decision) {
                case RULE_DECISION_ACT:
                        out_line(o, t, "rule %s: action %s", e->name, act);
                        break;
                case RULE_DECISION_COOLDOWN:
                        out_line(o, t, "rule %s: in cooldown, not acting (%s)", e->name, act);
                        break;
                case RULE_DECISION_HELD:
                        out_line(o, t, "rule %s: model held, not acting (%s)", e->name, act);
                        break;
                case RULE_DECISION_ERROR:
                        out_line(o, t, "rule %s: error: %s", e->name, e->message);
                        break;
                default:
                        break;
                }
        }
}

static void report_round(Out *o, uint64_t t, const RolloutRound *rr) {
        char a[64], b[64], c[64];

        out_line(o, t, "rollout %s round %u: %s (passed %u/%u, failed %u/%u, inconclusive %u)", rr->version, rr->round,
                 round_verdict_to_string(rr->verdict), rr->passed, rr->iterations, rr->failed, rr->threshold,
                 rr->inconclusive);
        for (size_t i = 0; i < rr->n_checks; i++) {
                const CheckResult *cr = &rr->checks[i];
                char bounds[160] = "";

                if (!isnan(cr->min))
                        snprintf(bounds, sizeof(bounds), ", min %s", num(cr->min, b, sizeof(b)));
                if (!isnan(cr->max))
                        snprintf(bounds + strlen(bounds), sizeof(bounds) - strlen(bounds), ", max %s",
                                 num(cr->max, c, sizeof(c)));
                out_line(o, t, "  check %s: %s, value %s%s%s%s", cr->name, check_outcome_to_string(cr->outcome),
                         isnan(cr->value) ? "none" : num(cr->value, a, sizeof(a)), bounds, cr->reason[0] ? "; " : "",
                         cr->reason);
        }
        if (rr->decision != ROLLOUT_CONTINUE)
                out_line(o, t, "rollout %s: %s (%s)", rr->version, rollout_decision_to_string(rr->decision), rr->reason);
        else if (rr->reason[0])
                out_line(o, t, "rollout %s: %s", rr->version, rr->reason);
}

static int simulate(const ModelConfig *m, TestSpec *s, Out *o, TCtx *t) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(series_store_freep) SeriesStore *store = NULL;
        PolicyError pe = {};
        char msg[256], b[64];
        uint64_t next_eval = 0, steps = 0;
        size_t next_act = 0;
        int r;

        r = policy_new(m, &p, &pe);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                config_errors_add(t->errors, strna(m->path), 0, 0, "%s: %s (at byte %zu)", pe.what, pe.message,
                                  pe.offset);
                return r;
        }
        r = policy_new_store_with_interval(p, MIN(s->interval, s->eval_interval), &store, msg, sizeof(msg));
        if (r < 0) {
                config_errors_add(t->errors, strna(m->path), 0, 0, "%s", r == -ENOMEM ? "out of memory" : msg);
                return r;
        }

        for (;;) {
                uint64_t now = next_eval;
                bool due_eval, due_act, held = false;

                now = MIN(now, policy_rollout_next(p));
                if (next_act < s->n_acts)
                        now = MIN(now, s->acts[next_act].at);
                if (now > s->duration)
                        break;
                if (++steps > 1000000) {
                        config_errors_add(t->errors, t->path, 0, 0, "simulation longer than 1000000 steps");
                        return -E2BIG;
                }

                /* Every input sample up to now. */
                for (size_t i = 0; i < s->n_series; i++) {
                        InputSeries *is = &s->series[i];
                        while (is->next < is->n_points && is->next * s->interval <= now) {
                                PromPoint *pp = &is->points[is->next];
                                uint64_t ts = is->next * s->interval;

                                if (pp->kind != PROM_POINT_MISSING) {
                                        r = series_store_append(store, is->metric, is->pairs, is->n_pairs, ts,
                                                                pp->kind == PROM_POINT_STALE ? series_stale_value()
                                                                                             : pp->value);
                                        if (r < 0)
                                                return r;
                                }
                                is->next++;
                        }
                }

                due_act = next_act < s->n_acts && s->acts[next_act].at == now;
                if (due_act) {
                        const char *v = s->acts[next_act].version;

                        r = policy_snapshot_baselines(p, store, now);
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < policy_n_baselines(p); i++) {
                                const ExprSnapshot *snap = policy_baseline(p, i);
                                if (!snap->present)
                                        out_line(o, now, "activate %s: baseline %s = no data", v, policy_baseline_key(p, i));
                                else
                                        out_line(o, now, "activate %s: baseline %s = %s%s", v, policy_baseline_key(p, i),
                                                 num(snap->samples[0].value, b, sizeof(b)),
                                                 snap->n > 1 ? " (and more series)" : "");
                        }
                        r = policy_rollout_start(p, v, now);
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                const RolloutConfig *ro = m->rollout;
                                char d[FORMAT_DURATION_MAX];
                                out_line(o, now, "activate %s: probation, %u rounds every %s, threshold %u, on_no_data %s",
                                         v, ro->iterations, format_duration(d, ro->interval), ro->threshold,
                                         no_data_policy_to_string(ro->on_no_data));
                        } else
                                out_line(o, now, "activate %s: promoted at once (no rollout section)", v);
                        next_act++;
                }

                due_eval = now == next_eval;
                for (size_t i = 0; i < s->n_holds; i++)
                        held = held || (now >= s->holds[i].from && now < s->holds[i].until);
                if (due_eval) {
                        const RuleEvent *ev;
                        size_t n;

                        r = policy_eval_rules(p, store, now, !held, &ev, &n);
                        if (r < 0)
                                return r;
                        report_rules(o, now, ev, n);
                        next_eval += s->eval_interval;
                }
                if (policy_rollout_next(p) <= now) {
                        RolloutRound rr;

                        r = policy_rollout_eval(p, store, now, &rr);
                        if (r < 0)
                                return r;
                        if (rr.evaluated)
                                report_round(o, now, &rr);
                }
                if (o->oom)
                        return -ENOMEM;
        }
        return 0;
}

int policy_test_run(const ModelConfig *m, const char *path, const char *text, size_t size, char ***ret_lines,
                    ConfigErrors *errors) {
        _cleanup_(ynode_freep) YNode *root = NULL;
        TestSpec spec = {};
        TCtx t = {.path = path, .errors = errors};
        Out o = {};
        YError yerr;
        int r;

        assert_return(m && path && text && ret_lines, -EINVAL);
        if (size > CONFIG_FILE_MAX || !utf8_is_valid(text, size)) {
                config_errors_add(errors, path, 0, 0, size > CONFIG_FILE_MAX ? "file too large" : "not valid UTF-8");
                return -EINVAL;
        }
        r = yaml_tree_parse(text, size, &root, &yerr);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                config_errors_add(errors, path, yerr.line, yerr.column, "%s", yerr.message);
                return r;
        }
        r = parse_spec(&t, root, &spec);
        if (r >= 0)
                r = simulate(m, &spec, &o, &t);
        spec_done(&spec);
        if (r < 0) {
                strv_free(o.lines);
                return r;
        }
        *ret_lines = o.lines ?: calloc(1, sizeof(char *));
        return *ret_lines ? 0 : -ENOMEM;
}
