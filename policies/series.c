/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <limits.h>
#include <math.h>

#include "series.h"
#include "strv.h"

/* ---------------------------------------------------------------------------------------------
 * Labels, matchers, selectors
 */

const char *label_set_get(const LabelSet *l, const char *name) {
        if (streq(name, "__name__"))
                return l->metric;
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->pairs[i].name, name))
                        return l->pairs[i].value;
        return NULL;
}

const char *match_op_to_string(MatchOp op) {
        static const char *const t[_MATCH_OP_MAX] = {"=", "!=", "=~", "!~"};
        return (int) op >= 0 && op < _MATCH_OP_MAX ? t[op] : NULL;
}

int matcher_init(Matcher *m, const char *name, MatchOp op, const char *value, char *msg, size_t msg_size) {
        _cleanup_free_ char *pattern = NULL;
        int r;

        *m = (Matcher){.op = op};
        if (op == MATCH_RE || op == MATCH_NRE) {
                size_t n = strlen(value);

                if (n > MATCHER_REGEX_MAX) {
                        snprintf(msg, msg_size, "regular expression longer than %d bytes", MATCHER_REGEX_MAX);
                        return -EINVAL;
                }
                /* glibc allows back-references in ERE as an extension; they make matching
                 * exponential, and PromQL (RE2) has none. */
                for (size_t i = 0; i + 1 < n; i++)
                        if (value[i] == '\\') {
                                if (value[i + 1] >= '1' && value[i + 1] <= '9') {
                                        snprintf(msg, msg_size, "back-references are not supported in regular expressions");
                                        return -EINVAL;
                                }
                                i++;
                        }
                /* PromQL anchors regexes at both ends. */
                if (asprintf(&pattern, "^(%s)$", value) < 0)
                        return -ENOMEM;
                r = regcomp(&m->re, pattern, REG_EXTENDED | REG_NOSUB);
                if (r != 0) {
                        char e[128];
                        regerror(r, &m->re, e, sizeof(e));
                        snprintf(msg, msg_size, "invalid regular expression \"%s\": %s", value, e);
                        return -EINVAL;
                }
                m->re_ready = true;
        }
        m->name = strdup(name);
        m->value = strdup(value);
        if (!m->name || !m->value) {
                matcher_done(m);
                return -ENOMEM;
        }
        return 0;
}

void matcher_done(Matcher *m) {
        if (!m)
                return;
        free(m->name);
        free(m->value);
        if (m->re_ready)
                regfree(&m->re);
        *m = (Matcher){};
}

bool matcher_matches(const Matcher *m, const char *value) {
        if (!value)
                value = "";
        switch (m->op) {
        case MATCH_EQ:
                return streq(value, m->value);
        case MATCH_NE:
                return !streq(value, m->value);
        case MATCH_RE:
                return regexec(&m->re, value, 0, NULL, 0) == 0;
        case MATCH_NRE:
                return regexec(&m->re, value, 0, NULL, 0) != 0;
        default:
                return false;
        }
}

bool selector_matches(const Selector *s, const LabelSet *l) {
        if (s->metric && (!l->metric || !streq(s->metric, l->metric)))
                return false;
        for (size_t i = 0; i < s->n_matchers; i++)
                if (!matcher_matches(&s->matchers[i], label_set_get(l, s->matchers[i].name)))
                        return false;
        return true;
}

double series_stale_value(void) {
        union {
                uint64_t u;
                double d;
        } x = {.u = SERIES_STALE_BITS};
        return x.d;
}

bool series_is_stale_value(double v) {
        union {
                uint64_t u;
                double d;
        } x = {.d = v};
        return x.u == SERIES_STALE_BITS;
}

/* ---------------------------------------------------------------------------------------------
 * The store
 */

#define NO_TARGET UINT_MAX

struct Series {
        Series *next;       /* hash chain */
        size_t index;       /* in store->all */
        uint64_t hash;
        unsigned target;
        bool ignored;       /* matches no selector: remembered to answer "no" fast */
        bool stale;         /* the newest sample is a staleness marker */
        uint64_t pending_gen;
        double pending;
        uint64_t last_seen; /* time of the last scrape that had it (gc) */
        LabelSet labels;
        uint64_t *selmask;
        SeriesSample *ring; /* NULL for ignored entries */
        size_t cap, head, count; /* logical index 0 is ring[head] */
        size_t mem;
};

struct SeriesStore {
        Selector **selectors; /* a copy of the array; the selectors are the policy's */
        size_t n_selectors, mask_words;
        char **targets;
        size_t n_targets;
        uint64_t *gen;          /* scrape generation per target */

        uint64_t lookback, span;
        size_t capacity, max_series, max_ignored, max_label_bytes, max_labels;

        /* Both grow with the series (up to max_buckets and all_max), so that a store holding a
         * handful of series does not pay for tables sized for its limits. */
        Series **buckets;
        size_t n_buckets, max_buckets;
        Series **all;
        size_t n_all, all_alloc, all_max, n_stored, n_ignored;

        /* name filter for want(): fixed names of the selectors, open addressing */
        char **names;
        size_t n_names_slots;
        bool any_nameless;

        /* scrape in progress */
        unsigned scrape_target;
        bool scraping;

        LabelPair *tmp;         /* max_labels + 1 */
        char **tmp_owned;

        uint64_t memory_bound, memory_used;
        uint64_t dropped_series, dropped_samples;
};

static uint64_t fnv1a(uint64_t h, const char *s) {
        for (; *s; s++) {
                h ^= (uint8_t) *s;
                h *= UINT64_C(0x100000001b3);
        }
        h ^= 0xff; /* separator */
        h *= UINT64_C(0x100000001b3);
        return h;
}

static uint64_t hash_labels(const char *metric, const LabelPair *p, size_t n, unsigned target) {
        uint64_t h = UINT64_C(0xcbf29ce484222325) ^ target;

        h = fnv1a(h, strempty(metric));
        for (size_t i = 0; i < n; i++) {
                h = fnv1a(h, p[i].name);
                h = fnv1a(h, p[i].value);
        }
        return h;
}

static uint64_t hash_name(const char *s, size_t len) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) s[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static void sort_pairs(LabelPair *p, size_t n) {
        for (size_t i = 1; i < n; i++) {
                LabelPair x = p[i];
                size_t j = i;
                while (j > 0 && strcmp(p[j - 1].name, x.name) > 0) {
                        p[j] = p[j - 1];
                        j--;
                }
                p[j] = x;
        }
}

static int names_add(SeriesStore *s, const char *name) {
        uint64_t h = hash_name(name, strlen(name));
        size_t i = h & (s->n_names_slots - 1);

        while (s->names[i]) {
                if (streq(s->names[i], name))
                        return 0;
                i = (i + 1) & (s->n_names_slots - 1);
        }
        s->names[i] = strdup(name);
        return s->names[i] ? 0 : -ENOMEM;
}

bool series_store_wants(const SeriesStore *s, const char *name, size_t len) {
        uint64_t h;
        size_t i;

        /* "up" is ours: a target cannot forge it. */
        if (len == 2 && memcmp(name, "up", 2) == 0)
                return false;
        h = hash_name(name, len);
        i = h & (s->n_names_slots - 1);
        while (s->names[i]) {
                if (strlen(s->names[i]) == len && memcmp(s->names[i], name, len) == 0)
                        return true;
                i = (i + 1) & (s->n_names_slots - 1);
        }
        if (s->any_nameless) {
                /* Selectors without a fixed name (e.g. {__name__=~"x.*"}): ask their name matchers. */
                char buf[1025];
                if (len >= sizeof(buf))
                        return false;
                memcpy(buf, name, len);
                buf[len] = 0;
                for (size_t k = 0; k < s->n_selectors; k++) {
                        const Selector *sel = s->selectors[k];
                        bool ok = true;

                        if (sel->metric)
                                continue;
                        for (size_t m = 0; m < sel->n_matchers && ok; m++)
                                if (streq(sel->matchers[m].name, "__name__"))
                                        ok = matcher_matches(&sel->matchers[m], buf);
                        if (ok)
                                return true;
                }
        }
        return false;
}

static size_t round_pow2(size_t n) {
        size_t p = 16;
        while (p < n && p < (SIZE_MAX >> 2))
                p <<= 1;
        return p;
}

static Series *store_lookup(const SeriesStore *s, uint64_t h, const char *metric, const LabelPair *p, size_t n,
                            unsigned target) {
        for (Series *x = s->buckets[h & (s->n_buckets - 1)]; x; x = x->next) {
                if (x->hash != h || x->target != target || x->labels.n != n ||
                    !streq(strempty(x->labels.metric), strempty(metric)))
                        continue;
                bool eq = true;
                for (size_t i = 0; i < n && eq; i++)
                        eq = streq(x->labels.pairs[i].name, p[i].name) && streq(x->labels.pairs[i].value, p[i].value);
                if (eq)
                        return x;
        }
        return NULL;
}

static void store_unlink(SeriesStore *s, Series *x) {
        Series **pp = &s->buckets[x->hash & (s->n_buckets - 1)];

        while (*pp && *pp != x)
                pp = &(*pp)->next;
        if (*pp)
                *pp = x->next;
        s->all[x->index] = s->all[--s->n_all];
        s->all[x->index]->index = x->index;
        if (x->ignored)
                s->n_ignored--;
        else
                s->n_stored--;
        s->memory_used -= x->mem;
        free(x);
}

/* Room for one more series: the list of all series, and a hash table kept at most 3/4 full. A failed
 * table growth is not an error (the chains get longer); a failed list growth is. */
static int store_reserve(SeriesStore *s) {
        if (s->n_all + 1 > s->all_alloc) {
                size_t n = MIN(MAX(s->all_alloc * 2, (size_t) 16), s->all_max);
                Series **a;

                if (n <= s->n_all)
                        return -E2BIG;
                a = reallocarray(s->all, n, sizeof(Series *));
                if (!a)
                        return -ENOMEM;
                s->all = a;
                s->all_alloc = n;
        }
        if ((s->n_all + 1) * 4 > s->n_buckets * 3 && s->n_buckets < s->max_buckets) {
                size_t nb = s->n_buckets * 2;
                Series **b = calloc(nb, sizeof(Series *));

                if (!b)
                        return 0;
                for (size_t i = 0; i < s->n_all; i++) {
                        Series *x = s->all[i];
                        x->next = b[x->hash & (nb - 1)];
                        b[x->hash & (nb - 1)] = x;
                }
                free(s->buckets);
                s->buckets = b;
                s->n_buckets = nb;
        }
        return 0;
}

/* Make a series (or an ignored entry). p must be sorted. Returns NULL when a limit refuses it. */
static Series *store_create(SeriesStore *s, uint64_t h, const char *metric, const LabelPair *p, size_t n,
                            unsigned target, bool force) {
        size_t label_bytes = strlen(strempty(metric)) + 1, mem;
        bool any = false;
        uint64_t mask[64] = {}; /* up to 4096 selectors; the policy enforces fewer */
        Series *x;
        char *o;

        for (size_t i = 0; i < n; i++)
                label_bytes += strlen(p[i].name) + strlen(p[i].value) + 2;
        if (label_bytes > s->max_label_bytes) {
                s->dropped_series++;
                return NULL;
        }
        {
                LabelSet l = {.metric = metric, .pairs = p, .n = n};
                for (size_t k = 0; k < s->n_selectors; k++)
                        if (selector_matches(s->selectors[k], &l)) {
                                mask[k / 64] |= UINT64_C(1) << (k % 64);
                                any = true;
                        }
        }
        any = any || force;
        if (any ? s->n_stored >= s->max_series : s->n_ignored >= s->max_ignored) {
                if (any)
                        s->dropped_series++;
                return NULL;
        }

        if (store_reserve(s) < 0)
                return NULL;
        mem = sizeof(Series) + s->mask_words * sizeof(uint64_t) + n * sizeof(LabelPair) + label_bytes;
        if (any)
                mem += s->capacity * sizeof(SeriesSample);
        x = calloc(1, mem);
        if (!x)
                return NULL;
        x->hash = h;
        x->target = target;
        x->ignored = !any;
        x->mem = mem;
        x->selmask = (uint64_t *) (x + 1);
        memcpy(x->selmask, mask, s->mask_words * sizeof(uint64_t));
        if (any) {
                x->ring = (SeriesSample *) (x->selmask + s->mask_words);
                x->cap = s->capacity;
        }
        {
                LabelPair *lp = (LabelPair *) ((uint8_t *) (x->selmask + s->mask_words) +
                                               (any ? s->capacity * sizeof(SeriesSample) : 0));
                o = (char *) (lp + n);
                x->labels.metric = metric ? o : NULL;
                o = stpcpy(o, strempty(metric)) + 1;
                for (size_t i = 0; i < n; i++) {
                        lp[i].name = o;
                        o = stpcpy(o, p[i].name) + 1;
                        lp[i].value = o;
                        o = stpcpy(o, p[i].value) + 1;
                }
                x->labels.pairs = lp;
                x->labels.n = n;
        }

        x->next = s->buckets[h & (s->n_buckets - 1)];
        s->buckets[h & (s->n_buckets - 1)] = x;
        x->index = s->n_all;
        s->all[s->n_all++] = x;
        if (any)
                s->n_stored++;
        else
                s->n_ignored++;
        s->memory_used += mem;
        return x;
}

static void ring_push(SeriesStore *s, Series *x, uint64_t t, double v) {
        if (x->count > 0) {
                SeriesSample *last = &x->ring[(x->head + x->count - 1) % x->cap];
                if (t < last->t) {
                        s->dropped_samples++;
                        return;
                }
                if (t == last->t) {
                        /* Same instant (a clock that did not move): the newer value wins. */
                        last->v = v;
                        x->stale = series_is_stale_value(v);
                        return;
                }
        }
        if (x->count < x->cap)
                x->ring[(x->head + x->count++) % x->cap] = (SeriesSample){t, v};
        else {
                x->ring[x->head] = (SeriesSample){t, v};
                x->head = (x->head + 1) % x->cap;
        }
        x->stale = series_is_stale_value(v);
}

static Series *up_series(SeriesStore *s, unsigned target) {
        LabelPair p = {"instance", s->targets[target]};
        uint64_t h = hash_labels("up", &p, 1, target);
        return store_lookup(s, h, "up", &p, 1, target);
}

int series_store_new(Selector *const *selectors, size_t n_selectors, const SeriesStoreOptions *o, SeriesStore **ret,
                     char *msg, size_t msg_size) {
        _cleanup_(series_store_freep) SeriesStore *s = NULL;
        uint64_t per_series, max_by_budget, budget;

        assert_return(o, -EINVAL);
        if (n_selectors > 64 * 64) {
                snprintf(msg, msg_size, "too many selectors (%zu, limit %d)", n_selectors, 64 * 64);
                return -E2BIG;
        }

        s = calloc(1, sizeof(SeriesStore));
        if (!s)
                return -ENOMEM;
        s->selectors = calloc(n_selectors + 1, sizeof(Selector *));
        if (!s->selectors)
                return -ENOMEM;
        if (n_selectors > 0)
                memcpy(s->selectors, selectors, n_selectors * sizeof(Selector *));
        s->n_selectors = n_selectors;
        s->mask_words = (n_selectors + 63) / 64;
        s->lookback = o->lookback ?: 5 * 60 * USEC_PER_SEC;
        s->max_labels = o->max_labels ?: 32;
        s->max_label_bytes = o->max_label_bytes ?: 2048;

        s->span = s->lookback;
        for (size_t i = 0; i < n_selectors; i++)
                s->span = MAX(s->span, selectors[i]->history);
        {
                uint64_t iv = MAX(o->min_interval, (uint64_t) USEC_PER_MSEC);
                uint64_t cap = MAX(s->span / iv + 2, (uint64_t) o->min_samples + 2);
                if (cap > 1000000) {
                        snprintf(msg, msg_size,
                                 "the longest range (or rollout.min_samples) needs %" PRIu64
                                 " samples per series at this scrape interval (limit 1000000)",
                                 cap);
                        return -E2BIG;
                }
                s->capacity = (size_t) cap;
        }

        budget = o->memory_budget ?: 64 * MIB;
        per_series = sizeof(Series) + s->mask_words * 8 + s->capacity * sizeof(SeriesSample) +
                     s->max_labels * sizeof(LabelPair) + s->max_label_bytes;
        max_by_budget = budget / per_series;
        s->max_series = MIN((uint64_t) (o->max_series ?: 4096), max_by_budget);
        if (s->max_series < 16) {
                snprintf(msg, msg_size,
                         "a memory budget of %" PRIu64 " bytes holds only %zu series of %zu samples (need 16)", budget,
                         s->max_series, s->capacity);
                return -E2BIG;
        }
        s->max_ignored = o->max_ignored ?: s->max_series;

        s->n_targets = strv_length(o->targets);
        if (s->n_targets > 64) {
                snprintf(msg, msg_size, "too many targets");
                return -E2BIG;
        }
        s->targets = strv_copy(o->targets ?: (char *[]){NULL});
        s->gen = calloc(s->n_targets + 1, sizeof(uint64_t));
        s->all_max = s->max_series + s->max_ignored + s->n_targets + 1;
        s->max_buckets = round_pow2(2 * s->all_max);
        s->n_buckets = round_pow2(2 * s->n_targets); /* at least 16 */
        s->buckets = calloc(s->n_buckets, sizeof(Series *));
        s->all_alloc = MIN(s->n_targets + 16, s->all_max);
        s->all = calloc(s->all_alloc, sizeof(Series *));
        s->n_names_slots = round_pow2(2 * n_selectors + 2);
        s->names = calloc(s->n_names_slots, sizeof(char *));
        s->tmp = calloc(s->max_labels + 2, sizeof(LabelPair));
        if (!s->targets || !s->gen || !s->buckets || !s->all || !s->names || !s->tmp)
                return -ENOMEM;

        for (size_t i = 0; i < n_selectors; i++) {
                if (selectors[i]->metric) {
                        if (names_add(s, selectors[i]->metric) < 0)
                                return -ENOMEM;
                } else
                        s->any_nameless = true;
        }

        /* up{instance=…} exists from the start for every target, referenced or not: it is tiny,
         * and `up` is the one series that tells a dead target from a quiet one. */
        for (unsigned t = 0; t < s->n_targets; t++) {
                LabelPair p = {"instance", s->targets[t]};
                uint64_t h = hash_labels("up", &p, 1, t);
                if (!store_create(s, h, "up", &p, 1, t, true))
                        return -ENOMEM;
        }

        s->memory_bound = (uint64_t) (s->max_series + s->n_targets) * per_series +
                          (uint64_t) s->max_ignored * (sizeof(Series) + s->mask_words * 8 +
                                                       s->max_labels * sizeof(LabelPair) + s->max_label_bytes) +
                          (uint64_t) s->max_buckets * sizeof(Series *) + (uint64_t) s->all_max * sizeof(Series *);
        *ret = TAKE_PTR(s);
        return 0;
}

SeriesStore *series_store_free(SeriesStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_all; i++)
                free(s->all[i]);
        free(s->all);
        free(s->buckets);
        for (size_t i = 0; s->names && i < s->n_names_slots; i++)
                free(s->names[i]);
        free(s->names);
        strv_free(s->targets);
        free(s->gen);
        free(s->tmp);
        free(s->selectors);
        free(s);
        return NULL;
}

int series_store_begin_scrape(SeriesStore *s, unsigned target) {
        assert_return(s && target < s->n_targets, -EINVAL);
        s->gen[target]++;
        s->scrape_target = target;
        s->scraping = true;
        return 0;
}

/* Builds the sorted label set of a sample in s->tmp. Returns the count, or -E2BIG. */
static int build_labels(SeriesStore *s, const ExpfmtSample *x, bool with_instance, unsigned target) {
        size_t n = 0;

        if (x->n_labels + 1 > s->max_labels)
                return -E2BIG;
        for (size_t i = 0; i < x->n_labels; i++) {
                const char *name = x->labels[i].name;

                if (with_instance && streq(name, "instance"))
                        name = "exported_instance";
                else if (streq(name, "__name__"))
                        continue;
                s->tmp[n++] = (LabelPair){name, x->labels[i].value};
        }
        if (with_instance)
                s->tmp[n++] = (LabelPair){"instance", s->targets[target]};
        sort_pairs(s->tmp, n);
        /* exported_instance may collide with a real one: keep the first. */
        for (size_t i = 1; i < n; i++)
                if (streq(s->tmp[i].name, s->tmp[i - 1].name))
                        return -EINVAL;
        return (int) n;
}

static int store_sample(const ExpfmtSample *x, void *userdata) {
        SeriesStore *s = userdata;
        unsigned t = s->scrape_target;
        Series *ser;
        uint64_t h;
        int n;

        if (!s->scraping)
                return -EINVAL;
        if (streq(x->name, "up"))
                return 0; /* ours */
        n = build_labels(s, x, true, t);
        if (n < 0) {
                s->dropped_series++;
                return 0;
        }
        h = hash_labels(x->name, s->tmp, (size_t) n, t);
        ser = store_lookup(s, h, x->name, s->tmp, (size_t) n, t);
        if (!ser) {
                ser = store_create(s, h, x->name, s->tmp, (size_t) n, t, false);
                if (!ser)
                        return 0; /* over a limit: counted, the scrape goes on */
        }
        if (ser->ignored) {
                ser->pending_gen = s->gen[t];
                return 0;
        }
        if (ser->pending_gen == s->gen[t]) {
                s->dropped_samples++; /* the same series twice in one exposition: the first wins */
                return 0;
        }
        ser->pending_gen = s->gen[t];
        ser->pending = x->value;
        return 0;
}

static bool store_want(const char *name, size_t len, void *userdata) {
        return series_store_wants(userdata, name, len);
}

const ExpfmtCallbacks series_store_expfmt_callbacks = {
        .want = store_want,
        .sample = store_sample,
};

int series_store_end_scrape(SeriesStore *s, unsigned target, uint64_t now, bool success) {
        uint64_t g;
        Series *up;

        assert_return(s && target < s->n_targets, -EINVAL);
        g = s->gen[target];
        s->scraping = false;

        up = up_series(s, target);
        for (size_t i = 0; i < s->n_all;) {
                Series *x = s->all[i];

                if (x->target != target || x == up) {
                        i++;
                        continue;
                }
                if (success && x->pending_gen == g) {
                        x->last_seen = now;
                        if (!x->ignored)
                                ring_push(s, x, now, x->pending);
                } else if (!x->ignored && !x->stale && x->count > 0)
                        ring_push(s, x, now, series_stale_value());

                /* Forget what has been gone longer than anything could look back. */
                if (now > x->last_seen && now - x->last_seen > s->span + s->lookback &&
                    (x->ignored || x->stale || x->count == 0)) {
                        store_unlink(s, x);
                        continue; /* the last entry moved into slot i */
                }
                i++;
        }
        if (up)
                ring_push(s, up, now, success ? 1.0 : 0.0);
        return 0;
}

int series_store_append(SeriesStore *s, const char *metric, const LabelPair *pairs, size_t n, uint64_t t, double v) {
        Series *x;
        uint64_t h;

        assert_return(s && metric, -EINVAL);
        if (n > s->max_labels)
                return -E2BIG;
        if (n > 0)
                memcpy(s->tmp, pairs, n * sizeof(LabelPair));
        sort_pairs(s->tmp, n);
        for (size_t i = 1; i < n; i++)
                if (streq(s->tmp[i].name, s->tmp[i - 1].name))
                        return -EINVAL;
        h = hash_labels(metric, s->tmp, n, NO_TARGET);
        x = store_lookup(s, h, metric, s->tmp, n, NO_TARGET);
        if (!x) {
                x = store_create(s, h, metric, s->tmp, n, NO_TARGET, false);
                if (!x)
                        return 0;
        }
        if (x->ignored)
                return 0;
        x->last_seen = t;
        ring_push(s, x, t, v);
        return 0;
}

void series_store_clear(SeriesStore *s) {
        for (size_t i = 0; i < s->n_all; i++) {
                s->all[i]->head = s->all[i]->count = 0;
                s->all[i]->stale = false;
        }
}

const Series *series_store_iterate(const SeriesStore *s, unsigned selector_id, size_t *iter) {
        if (selector_id >= s->n_selectors)
                return NULL;
        for (; *iter < s->n_all; (*iter)++) {
                const Series *x = s->all[*iter];
                if (!x->ignored && (x->selmask[selector_id / 64] & (UINT64_C(1) << (selector_id % 64)))) {
                        (*iter)++;
                        return x;
                }
        }
        return NULL;
}

uint64_t series_store_lookback(const SeriesStore *s) {
        return s->lookback;
}

const LabelSet *series_labels(const Series *x) {
        return &x->labels;
}

size_t series_n_samples(const Series *x) {
        return x->count;
}

SeriesSample series_sample(const Series *x, size_t i) {
        assert_se(i < x->count);
        return x->ring[(x->head + i) % x->cap];
}

void series_window(const Series *x, int64_t from, uint64_t to, size_t *first, size_t *last) {
        size_t lo = 0, hi = x->count;

        /* first index with t > from */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if ((int64_t) x->ring[(x->head + mid) % x->cap].t > from)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *first = lo;
        hi = x->count;
        /* first index with t > to */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (x->ring[(x->head + mid) % x->cap].t > to)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *last = lo;
}

bool series_instant(const Series *x, uint64_t t, uint64_t lookback, double *ret) {
        size_t first, last;
        SeriesSample s;

        series_window(x, (int64_t) t - (int64_t) lookback, t, &first, &last);
        if (first >= last)
                return false;
        s = series_sample(x, last - 1);
        if (series_is_stale_value(s.v))
                return false;
        *ret = s.v;
        return true;
}

void series_store_stats(const SeriesStore *s, SeriesStoreStats *ret) {
        *ret = (SeriesStoreStats){
                .series = s->n_stored,
                .ignored = s->n_ignored,
                .max_series = s->max_series,
                .capacity = s->capacity,
                .memory_bound = s->memory_bound,
                .memory_used = s->memory_used + (s->n_buckets + s->all_alloc) * sizeof(Series *),
                .dropped_series = s->dropped_series,
                .dropped_samples = s->dropped_samples,
        };
}
