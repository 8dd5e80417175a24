/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>

#include "expr.h"
#include "parse-util.h"

/* ---------------------------------------------------------------------------------------------
 * Syntax tree
 */

typedef enum NodeKind {
        N_NUMBER,
        N_SELECTOR,
        N_NEG,
        N_BINARY,
        N_AGG,
        N_CALL,
        N_BASELINE,
        N_DEFINE,
} NodeKind;

typedef enum BinOp {
        OP_ADD,
        OP_SUB,
        OP_MUL,
        OP_DIV,
        OP_MOD,
        OP_POW,
        OP_EQ,
        OP_NE,
        OP_LT,
        OP_LE,
        OP_GT,
        OP_GE,
        OP_AND,
        OP_UNLESS,
        OP_OR,
        _OP_MAX,
        _OP_INVALID = -1,
} BinOp;

static const char *const op_names[_OP_MAX] = {
        [OP_ADD] = "+",  [OP_SUB] = "-",  [OP_MUL] = "*",  [OP_DIV] = "/",       [OP_MOD] = "%",
        [OP_POW] = "^",  [OP_EQ] = "==",  [OP_NE] = "!=",  [OP_LT] = "<",        [OP_LE] = "<=",
        [OP_GT] = ">",   [OP_GE] = ">=",  [OP_AND] = "and", [OP_UNLESS] = "unless", [OP_OR] = "or",
};

static int op_precedence(BinOp op) {
        switch (op) {
        case OP_OR:
                return 1;
        case OP_AND:
        case OP_UNLESS:
                return 2;
        case OP_EQ:
        case OP_NE:
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE:
                return 3;
        case OP_ADD:
        case OP_SUB:
                return 4;
        case OP_MUL:
        case OP_DIV:
        case OP_MOD:
                return 5;
        case OP_POW:
                return 6;
        default:
                return 0;
        }
}

static bool op_is_comparison(BinOp op) {
        return op >= OP_EQ && op <= OP_GE;
}

static bool op_is_set(BinOp op) {
        return op == OP_AND || op == OP_UNLESS || op == OP_OR;
}

typedef enum AggOp {
        AGG_SUM,
        AGG_AVG,
        AGG_MIN,
        AGG_MAX,
        AGG_COUNT,
        _AGG_MAX,
} AggOp;

static const char *const agg_names[_AGG_MAX] = {"sum", "avg", "min", "max", "count"};

typedef enum Func {
        F_RATE,
        F_INCREASE,
        F_AVG_OVER_TIME,
        F_MIN_OVER_TIME,
        F_MAX_OVER_TIME,
        F_SUM_OVER_TIME,
        F_COUNT_OVER_TIME,
        F_LAST_OVER_TIME,
        F_HISTOGRAM_QUANTILE,
        F_ABS,
        F_CLAMP_MIN,
        F_CLAMP_MAX,
        F_SCALAR,
        F_VECTOR,
        _F_MAX,
} Func;

static const struct {
        const char *name;
        ExprType args[2];
        size_t n_args;
        ExprType ret;
} funcs[_F_MAX] = {
        [F_RATE] = {"rate", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_INCREASE] = {"increase", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_AVG_OVER_TIME] = {"avg_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_MIN_OVER_TIME] = {"min_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_MAX_OVER_TIME] = {"max_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_SUM_OVER_TIME] = {"sum_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_COUNT_OVER_TIME] = {"count_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_LAST_OVER_TIME] = {"last_over_time", {EXPR_MATRIX}, 1, EXPR_VECTOR},
        [F_HISTOGRAM_QUANTILE] = {"histogram_quantile", {EXPR_SCALAR, EXPR_VECTOR}, 2, EXPR_VECTOR},
        [F_ABS] = {"abs", {EXPR_VECTOR}, 1, EXPR_VECTOR},
        [F_CLAMP_MIN] = {"clamp_min", {EXPR_VECTOR, EXPR_SCALAR}, 2, EXPR_VECTOR},
        [F_CLAMP_MAX] = {"clamp_max", {EXPR_VECTOR, EXPR_SCALAR}, 2, EXPR_VECTOR},
        [F_SCALAR] = {"scalar", {EXPR_VECTOR}, 1, EXPR_SCALAR},
        [F_VECTOR] = {"vector", {EXPR_SCALAR}, 1, EXPR_VECTOR},
};

typedef enum DefineState {
        DEF_NEW,
        DEF_BUSY,
        DEF_OK,
        DEF_FAILED,
} DefineState;

typedef struct DefineEntry {
        char *name, *text;
        DefineState state;
        Expr *root;
        ExprError err;
} DefineEntry;

struct Expr {
        NodeKind kind;
        ExprType type;
        size_t pos;
        bool has_baseline; /* a baseline() somewhere below */

        double number;

        Selector *sel; /* N_SELECTOR */
        uint64_t range, offset;

        BinOp op; /* N_BINARY */
        bool return_bool, matching, on;
        char **match_labels; /* sorted */
        size_t n_match;
        Expr *lhs, *rhs; /* also: N_NEG, N_AGG and N_BASELINE use lhs */

        AggOp agg; /* N_AGG */
        bool without, grouped;
        char **grouping; /* sorted */
        size_t n_grouping;

        Func func; /* N_CALL */
        Expr *args[2];
        size_t n_args;

        size_t baseline; /* N_BASELINE */

        DefineEntry *def; /* N_DEFINE */
};

typedef struct BaselineEntry {
        char *key;
        Expr *arg;
} BaselineEntry;

struct ExprEnv {
        Arena arena;
        DefineEntry *defines;
        size_t n_defines;
        Selector **selectors;
        size_t n_selectors;
        BaselineEntry *baselines;
        size_t n_baselines;
        DefineEntry *stack[EXPR_DEFINE_DEPTH + 1];
        unsigned n_stack;
};

const char *expr_type_to_string(ExprType t) {
        static const char *const t_names[_EXPR_TYPE_MAX] = {"scalar", "instant vector", "range vector"};
        return (int) t >= 0 && t < _EXPR_TYPE_MAX ? t_names[t] : NULL;
}

const char *expr_verdict_to_string(ExprVerdict v) {
        static const char *const v_names[_EXPR_VERDICT_MAX] = {"no data", "false", "true"};
        return (int) v >= 0 && v < _EXPR_VERDICT_MAX ? v_names[v] : NULL;
}

ExprType expr_type(const Expr *x) {
        return x->type;
}

/* ---------------------------------------------------------------------------------------------
 * Environment
 */

int expr_env_new(ExprEnv **ret) {
        ExprEnv *e = calloc(1, sizeof(ExprEnv));
        if (!e)
                return -ENOMEM;
        /* A compiled policy is a few KiB of syntax trees, kept for as long as the model is watched. */
        e->arena.next_chunk = 1024;
        *ret = e;
        return 0;
}

ExprEnv *expr_env_free(ExprEnv *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_selectors; i++) {
                Selector *s = e->selectors[i];
                for (size_t j = 0; j < s->n_matchers; j++)
                        matcher_done(&s->matchers[j]);
                free(s->matchers);
                free(s->metric);
                free(s->text);
                free(s);
        }
        free(e->selectors);
        for (size_t i = 0; i < e->n_defines; i++) {
                free(e->defines[i].name);
                free(e->defines[i].text);
        }
        free(e->defines);
        for (size_t i = 0; i < e->n_baselines; i++)
                free(e->baselines[i].key);
        free(e->baselines);
        arena_done(&e->arena);
        free(e);
        return NULL;
}

int expr_env_define(ExprEnv *e, const char *name, const char *text) {
        DefineEntry *a;

        assert_return(e && name && text, -EINVAL);
        for (size_t i = 0; i < e->n_defines; i++)
                if (streq(e->defines[i].name, name))
                        return -EEXIST;
        a = reallocarray(e->defines, e->n_defines + 1, sizeof(DefineEntry));
        if (!a)
                return -ENOMEM;
        e->defines = a;
        a = &e->defines[e->n_defines];
        *a = (DefineEntry){.name = strdup(name), .text = strdup(text)};
        if (!a->name || !a->text) {
                free(a->name);
                free(a->text);
                return -ENOMEM;
        }
        e->n_defines++;
        return 0;
}

Selector *const *expr_env_selectors(const ExprEnv *e, size_t *ret_n) {
        *ret_n = e->n_selectors;
        return e->selectors;
}

uint64_t expr_env_max_history(const ExprEnv *e) {
        uint64_t m = 0;
        for (size_t i = 0; i < e->n_selectors; i++)
                m = MAX(m, e->selectors[i]->history);
        return m;
}

size_t expr_env_n_baselines(const ExprEnv *e) {
        return e->n_baselines;
}

const char *expr_env_baseline_key(const ExprEnv *e, size_t i) {
        return i < e->n_baselines ? e->baselines[i].key : NULL;
}

const Expr *expr_env_baseline_arg(const ExprEnv *e, size_t i) {
        return i < e->n_baselines ? e->baselines[i].arg : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Printing
 */

typedef struct Buf {
        char *s;
        size_t n, size;
        bool oom;
} Buf;

static void buf_add(Buf *b, const char *fmt, ...) _printf_(2, 3);
static void buf_add(Buf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        if (b->oom)
                return;
        for (;;) {
                va_start(ap, fmt);
                k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->size - b->n : 0, fmt, ap);
                va_end(ap);
                if (k < 0) {
                        b->oom = true;
                        return;
                }
                if (b->s && b->n + (size_t) k < b->size) {
                        b->n += (size_t) k;
                        return;
                }
                {
                        size_t ns = MAX(b->size * 2, b->n + (size_t) k + 64);
                        char *p = realloc(b->s, ns);
                        if (!p || ns > 1024 * 1024) {
                                free(p);
                                b->s = NULL;
                                b->oom = true;
                                return;
                        }
                        b->s = p;
                        b->size = ns;
                }
        }
}

static void buf_quoted(Buf *b, const char *s) {
        buf_add(b, "\"");
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        buf_add(b, "\\%c", *s);
                else if (*s == '\n')
                        buf_add(b, "\\n");
                else
                        buf_add(b, "%c", *s);
        }
        buf_add(b, "\"");
}

int expr_format_number(double v, char *buf, size_t size) {
        if (isnan(v))
                return snprintf(buf, size, "NaN");
        if (isinf(v))
                return snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v)
                snprintf(buf, size, "%.17g", v);
        return 0;
}

/* For people (log messages, REASON=): six significant digits are plenty to judge "0.0842 below min
 * 0.7", where the round-trip form above would print 0.084210526315789472. Whole numbers such as
 * byte counts stay exact up to 2^53. */
int expr_format_short(double v, char *buf, size_t size) {
        if (!isfinite(v))
                return expr_format_number(v, buf, size);
        if (v == trunc(v) && fabs(v) < 9007199254740992.0)
                snprintf(buf, size, "%.0f", v);
        else
                snprintf(buf, size, "%.6g", v);
        return 0;
}

static void buf_duration(Buf *b, uint64_t usec) {
        char d[FORMAT_DURATION_MAX];
        buf_add(b, "%s", format_duration(d, usec));
}

static bool ident_is_plain(const char *s, bool metric) {
        if (!*s || (*s >= '0' && *s <= '9'))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
                      (metric && *s == ':')))
                        return false;
        return true;
}

static void print_labels_list(Buf *b, char **l, size_t n) {
        buf_add(b, "(");
        for (size_t i = 0; i < n; i++)
                buf_add(b, "%s%s", i ? ", " : "", l[i]);
        buf_add(b, ")");
}

static void print_node(Buf *b, const Expr *x) {
        char num[64];

        switch (x->kind) {
        case N_NUMBER:
                expr_format_number(x->number, num, sizeof(num));
                buf_add(b, "%s", num);
                break;
        case N_SELECTOR:
                buf_add(b, "%s", x->sel->text);
                if (x->range > 0) {
                        buf_add(b, "[");
                        buf_duration(b, x->range);
                        buf_add(b, "]");
                }
                if (x->offset > 0) {
                        buf_add(b, " offset ");
                        buf_duration(b, x->offset);
                }
                break;
        case N_NEG:
                buf_add(b, "-(");
                print_node(b, x->lhs);
                buf_add(b, ")");
                break;
        case N_BINARY:
                buf_add(b, "(");
                print_node(b, x->lhs);
                buf_add(b, " %s ", op_names[x->op]);
                if (x->return_bool)
                        buf_add(b, "bool ");
                if (x->matching) {
                        buf_add(b, "%s", x->on ? "on" : "ignoring");
                        print_labels_list(b, x->match_labels, x->n_match);
                        buf_add(b, " ");
                }
                print_node(b, x->rhs);
                buf_add(b, ")");
                break;
        case N_AGG:
                buf_add(b, "%s", agg_names[x->agg]);
                if (x->grouped) {
                        buf_add(b, " %s ", x->without ? "without" : "by");
                        print_labels_list(b, x->grouping, x->n_grouping);
                        buf_add(b, " ");
                }
                buf_add(b, "(");
                print_node(b, x->lhs);
                buf_add(b, ")");
                break;
        case N_CALL:
                buf_add(b, "%s(", funcs[x->func].name);
                for (size_t i = 0; i < x->n_args; i++) {
                        if (i > 0)
                                buf_add(b, ", ");
                        print_node(b, x->args[i]);
                }
                buf_add(b, ")");
                break;
        case N_BASELINE:
                buf_add(b, "baseline(");
                print_node(b, x->lhs);
                buf_add(b, ")");
                break;
        case N_DEFINE:
                print_node(b, x->def->root);
                break;
        }
}

char *expr_to_string(const Expr *x, Arena *a) {
        Buf b = {};
        char *r;

        print_node(&b, x);
        if (b.oom || !b.s) {
                free(b.s);
                return NULL;
        }
        r = arena_strndup(a, b.s, b.n);
        free(b.s);
        return r;
}

static char *node_to_malloc_string(const Expr *x) {
        Buf b = {};

        print_node(&b, x);
        if (b.oom) {
                free(b.s);
                return NULL;
        }
        return b.s ?: strdup("");
}

/* ---------------------------------------------------------------------------------------------
 * Lexer
 */

typedef enum TokKind {
        T_EOF,
        T_ERROR,
        T_NUMBER,
        T_IDENT,
        T_STRING,
        T_LPAREN,
        T_RPAREN,
        T_LBRACE,
        T_RBRACE,
        T_LBRACKET,
        T_RBRACKET,
        T_COMMA,
        T_ADD,
        T_SUB,
        T_MUL,
        T_DIV,
        T_MOD,
        T_POW,
        T_EQLC,
        T_NEQ,
        T_LSS,
        T_LTE,
        T_GTR,
        T_GTE,
        T_ASSIGN,
        T_EQL_REGEX,
        T_NEQ_REGEX,
} TokKind;

typedef struct Token {
        TokKind kind;
        size_t pos, len;
        double number;
        char *str; /* T_STRING: decoded, in the env arena */
} Token;

typedef struct Parser {
        ExprEnv *env;
        const char *text;
        size_t len;
        size_t pos;
        Token tok;
        ExprError *err;
        bool failed;
        unsigned depth;
} Parser;

static Expr *perr(Parser *P, size_t pos, const char *fmt, ...) _printf_(3, 4);
static Expr *perr(Parser *P, size_t pos, const char *fmt, ...) {
        va_list ap;

        if (P->failed)
                return NULL; /* keep the first error */
        P->failed = true;
        if (P->err) {
                P->err->offset = pos;
                va_start(ap, fmt);
                vsnprintf(P->err->message, sizeof(P->err->message), fmt, ap);
                va_end(ap);
        }
        return NULL;
}

static bool is_ident_start(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_ident_char(char c) {
        return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static const char *tok_describe(const Token *t, const char *text, char *buf, size_t size) {
        switch (t->kind) {
        case T_EOF:
                return "end of input";
        case T_NUMBER:
                snprintf(buf, size, "number '%.*s'", (int) MIN(t->len, (size_t) 32), text + t->pos);
                return buf;
        case T_IDENT:
                snprintf(buf, size, "'%.*s'", (int) MIN(t->len, (size_t) 64), text + t->pos);
                return buf;
        case T_STRING:
                return "string";
        default:
                snprintf(buf, size, "'%.*s'", (int) MIN(t->len, (size_t) 8), text + t->pos);
                return buf;
        }
}

static bool percent_here(const char *s) {
        /* s points after '%': a percentage when nothing operand-like follows directly. */
        return !(is_ident_char(*s) || *s == '(' || *s == '.' || *s == '{' || *s == '"' || *s == '\'' || *s == '`');
}

static void lex_number(Parser *P) {
        const char *s = P->text + P->pos, *p = s;
        uint64_t usec;
        size_t dl;
        char buf[128];
        double v;

        P->tok.kind = T_NUMBER;
        /* A duration ("5m", "1h30m") reads as seconds. */
        if (is_digit(*s) && parse_duration_prefix(s, &usec, &dl) == 0 && dl > 0 && !is_ident_char(s[dl]) &&
            s[dl] != '.' && !(dl == 1 && s[0] == '0')) {
                P->tok.number = (double) usec / (double) USEC_PER_SEC;
                P->tok.len = dl;
                return;
        }
        while (is_digit(*p))
                p++;
        if (*p == '.') {
                p++;
                while (is_digit(*p))
                        p++;
        }
        if ((*p == 'e' || *p == 'E') && (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2])))) {
                p += 2;
                while (is_digit(*p))
                        p++;
        }
        if ((size_t) (p - s) >= sizeof(buf) || p == s) {
                perr(P, P->pos, "invalid number");
                P->tok.kind = T_ERROR;
                return;
        }
        memcpy(buf, s, (size_t) (p - s));
        buf[p - s] = 0;
        if (parse_double(buf, &v) < 0) {
                perr(P, P->pos, "invalid number '%s'", buf);
                P->tok.kind = T_ERROR;
                return;
        }
        if (*p == '%' && percent_here(p + 1)) {
                v /= 100.0;
                p++;
        } else if (is_ident_start(*p)) {
                const char *u = p;
                double factor;
                size_t ul;

                while (is_ident_char(*p))
                        p++;
                if (parse_size_suffix(u, &factor, &ul) < 0 || ul != (size_t) (p - u)) {
                        perr(P, (size_t) (u - P->text), "unknown unit '%.*s' (durations: ms s m h d w y; sizes: B KB MB GB TB KiB MiB GiB TiB; or %%)",
                             (int) MIN((size_t) (p - u), (size_t) 32), u);
                        P->tok.kind = T_ERROR;
                        return;
                }
                v *= factor;
        }
        P->tok.number = v;
        P->tok.len = (size_t) (p - s);
}

static int utf8_put(char *o, uint32_t cp) {
        if (cp < 0x80) {
                o[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char) (0xc0 | (cp >> 6));
                o[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char) (0xe0 | (cp >> 12));
                o[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                o[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        o[0] = (char) (0xf0 | (cp >> 18));
        o[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

static int hexval(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Go-style string literals, as PromQL: "…" and '…' with escapes, `…` raw. */
static void lex_string(Parser *P) {
        const char *s = P->text + P->pos, *p = s + 1;
        char q = *s, *out, *o;

        P->tok.kind = T_STRING;
        out = o = arena_alloc(&P->env->arena, P->len - P->pos + 1);
        if (!out) {
                perr(P, P->pos, "out of memory");
                P->tok.kind = T_ERROR;
                return;
        }
        for (;;) {
                if (!*p || (q != '`' && *p == '\n')) {
                        perr(P, P->pos, "unterminated string");
                        P->tok.kind = T_ERROR;
                        return;
                }
                if (*p == q) {
                        p++;
                        break;
                }
                if (*p == '\\' && q != '`') {
                        size_t at = (size_t) (p - P->text);
                        int nd = 0;
                        uint32_t cp = 0;

                        p++;
                        switch (*p) {
                        case 'a': *o++ = '\a'; p++; continue;
                        case 'b': *o++ = '\b'; p++; continue;
                        case 'f': *o++ = '\f'; p++; continue;
                        case 'n': *o++ = '\n'; p++; continue;
                        case 'r': *o++ = '\r'; p++; continue;
                        case 't': *o++ = '\t'; p++; continue;
                        case 'v': *o++ = '\v'; p++; continue;
                        case '\\': *o++ = '\\'; p++; continue;
                        case '"': *o++ = '"'; p++; continue;
                        case '\'': *o++ = '\''; p++; continue;
                        case 'x': nd = 2; break;
                        case 'u': nd = 4; break;
                        case 'U': nd = 8; break;
                        default:
                                perr(P, at, "invalid escape sequence in string");
                                P->tok.kind = T_ERROR;
                                return;
                        }
                        p++;
                        for (int i = 0; i < nd; i++, p++) {
                                int h = hexval(*p);
                                if (h < 0) {
                                        perr(P, at, "invalid escape sequence in string");
                                        P->tok.kind = T_ERROR;
                                        return;
                                }
                                cp = cp * 16 + (uint32_t) h;
                        }
                        if (nd == 2)
                                *o++ = (char) cp;
                        else {
                                if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                                        perr(P, at, "invalid Unicode code point in string");
                                        P->tok.kind = T_ERROR;
                                        return;
                                }
                                o += utf8_put(o, cp);
                        }
                        continue;
                }
                *o++ = *p++;
        }
        *o = 0;
        if (memchr(out, 0, (size_t) (o - out))) {
                perr(P, P->pos, "NUL byte in string");
                P->tok.kind = T_ERROR;
                return;
        }
        P->tok.str = out;
        P->tok.len = (size_t) (p - s);
}

static void next(Parser *P) {
        const char *s;

        if (P->tok.kind == T_ERROR)
                return;
        P->pos += P->tok.len;
        for (;;) {
                while (P->pos < P->len && strchr(" \t\r\n", P->text[P->pos]))
                        P->pos++;
                if (P->pos < P->len && P->text[P->pos] == '#') { /* comment to the end of the line */
                        while (P->pos < P->len && P->text[P->pos] != '\n')
                                P->pos++;
                        continue;
                }
                break;
        }
        s = P->text + P->pos;
        P->tok = (Token){.pos = P->pos, .len = 1};
        if (P->pos >= P->len) {
                P->tok.kind = T_EOF;
                P->tok.len = 0;
                return;
        }
        if (is_digit(*s) || (*s == '.' && is_digit(s[1]))) {
                lex_number(P);
                return;
        }
        if (is_ident_start(*s)) {
                const char *p = s;
                while (is_ident_char(*p))
                        p++;
                P->tok.kind = T_IDENT;
                P->tok.len = (size_t) (p - s);
                return;
        }
        if (*s == '"' || *s == '\'' || *s == '`') {
                lex_string(P);
                return;
        }
#define TWO(a, b, k)                                                                                       \
        if (s[0] == (a) && s[1] == (b)) {                                                                  \
                P->tok.kind = (k);                                                                         \
                P->tok.len = 2;                                                                            \
                return;                                                                                    \
        }
        TWO('=', '=', T_EQLC);
        TWO('!', '=', T_NEQ);
        TWO('<', '=', T_LTE);
        TWO('>', '=', T_GTE);
        TWO('=', '~', T_EQL_REGEX);
        TWO('!', '~', T_NEQ_REGEX);
#undef TWO
        switch (*s) {
        case '(': P->tok.kind = T_LPAREN; return;
        case ')': P->tok.kind = T_RPAREN; return;
        case '{': P->tok.kind = T_LBRACE; return;
        case '}': P->tok.kind = T_RBRACE; return;
        case '[': P->tok.kind = T_LBRACKET; return;
        case ']': P->tok.kind = T_RBRACKET; return;
        case ',': P->tok.kind = T_COMMA; return;
        case '+': P->tok.kind = T_ADD; return;
        case '-': P->tok.kind = T_SUB; return;
        case '*': P->tok.kind = T_MUL; return;
        case '/': P->tok.kind = T_DIV; return;
        case '%': P->tok.kind = T_MOD; return;
        case '^': P->tok.kind = T_POW; return;
        case '<': P->tok.kind = T_LSS; return;
        case '>': P->tok.kind = T_GTR; return;
        case '=': P->tok.kind = T_ASSIGN; return;
        }
        if ((uint8_t) *s < 0x20 || (uint8_t) *s >= 0x7f)
                perr(P, P->pos, "unexpected character 0x%02x", (uint8_t) *s);
        else
                perr(P, P->pos, "unexpected character '%c'", *s);
        P->tok.kind = T_ERROR;
}

static bool tok_is_word(const Parser *P, const char *w) {
        return P->tok.kind == T_IDENT && P->tok.len == strlen(w) && strncasecmp(P->text + P->tok.pos, w, P->tok.len) == 0;
}

static Expr *expected(Parser *P, const char *what) {
        char b[96];
        return perr(P, P->tok.pos, "unexpected %s, expected %s", tok_describe(&P->tok, P->text, b, sizeof(b)), what);
}

/* ---------------------------------------------------------------------------------------------
 * Parser
 */

static Expr *parse_expr(Parser *P, int min_prec);

static Expr *new_node(Parser *P, NodeKind kind, size_t pos) {
        Expr *x = arena_alloc0(&P->env->arena, sizeof(Expr));
        if (!x)
                return perr(P, pos, "out of memory");
        x->kind = kind;
        x->pos = pos;
        return x;
}

static const char *const keywords[] = {
        "and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset", "group_left", "group_right", NULL,
};

static bool word_is_keyword(const char *s, size_t n) {
        for (const char *const *k = keywords; *k; k++)
                if (strlen(*k) == n && strncasecmp(*k, s, n) == 0)
                        return true;
        return false;
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "(a, b, c)" — label names for by/without/on/ignoring. */
static bool parse_label_list(Parser *P, char ***ret, size_t *ret_n) {
        char **l = NULL;
        size_t n = 0;

        if (P->tok.kind != T_LPAREN)
                return expected(P, "'('"), false;
        next(P);
        while (P->tok.kind != T_RPAREN) {
                char *name;

                if (P->tok.kind == T_STRING)
                        name = P->tok.str;
                else if (P->tok.kind == T_IDENT && !memchr(P->text + P->tok.pos, ':', P->tok.len))
                        name = arena_strndup(&P->env->arena, P->text + P->tok.pos, P->tok.len);
                else
                        return expected(P, "a label name or ')'"), false;
                if (!name || n >= 64)
                        return perr(P, P->tok.pos, n >= 64 ? "too many labels (limit 64)" : "out of memory"), false;
                if (!l) {
                        l = arena_allocarray(&P->env->arena, 64, sizeof(char *));
                        if (!l)
                                return perr(P, P->tok.pos, "out of memory"), false;
                }
                l[n++] = name;
                next(P);
                if (P->tok.kind == T_COMMA)
                        next(P);
                else if (P->tok.kind != T_RPAREN)
                        return expected(P, "',' or ')'"), false;
        }
        next(P);
        if (n > 1)
                qsort(l, n, sizeof(char *), cmp_strp);
        *ret = l;
        *ret_n = n;
        return true;
}

static bool parse_duration_at(Parser *P, uint64_t *ret) {
        const char *s = P->text + P->tok.pos;
        uint64_t v;
        size_t n;

        /* The lexer read "5m" as a number; re-read it as a duration from the source. */
        if (P->tok.kind != T_NUMBER || parse_duration_prefix(s, &v, &n) < 0 || n != P->tok.len)
                return expected(P, "a duration like 5m"), false;
        if (v == 0)
                return perr(P, P->tok.pos, "duration must be greater than 0"), false;
        next(P);
        *ret = v;
        return true;
}

typedef struct RawMatcher {
        char *name, *value;
        MatchOp op;
        size_t pos;
} RawMatcher;

static int cmp_raw_matcher(const void *a, const void *b) {
        const RawMatcher *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c)
                return c;
        if (x->op != y->op)
                return (int) x->op - (int) y->op;
        return strcmp(x->value, y->value);
}

/* Find or make the selector for metric + matchers (interned by canonical text). */
static Selector *intern_selector(Parser *P, const char *metric, RawMatcher *m, size_t n, size_t pos) {
        ExprEnv *e = P->env;
        Buf b = {};
        Selector *s;
        char msg[160] = "";

        if (n > 1)
                qsort(m, n, sizeof(RawMatcher), cmp_raw_matcher);
        if (metric && ident_is_plain(metric, true))
                buf_add(&b, "%s", metric);
        buf_add(&b, "{");
        if (metric && !ident_is_plain(metric, true)) {
                buf_quoted(&b, metric);
                if (n > 0)
                        buf_add(&b, ", ");
        }
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        buf_add(&b, ", ");
                if (ident_is_plain(m[i].name, false))
                        buf_add(&b, "%s", m[i].name);
                else
                        buf_quoted(&b, m[i].name);
                buf_add(&b, "%s", match_op_to_string(m[i].op));
                buf_quoted(&b, m[i].value);
        }
        buf_add(&b, "}");
        if (b.oom)
                return (void) free(b.s), (Selector *) perr(P, pos, "out of memory");
        if (n == 0 && metric) /* "name{}" reads as "name" */
                b.s[b.n - 2] = 0;

        for (size_t i = 0; i < e->n_selectors; i++)
                if (streq(e->selectors[i]->text, b.s)) {
                        free(b.s);
                        return e->selectors[i];
                }
        if (e->n_selectors >= EXPR_SELECTORS_MAX) {
                free(b.s);
                return (Selector *) perr(P, pos, "too many different selectors (limit %d)", EXPR_SELECTORS_MAX);
        }

        s = calloc(1, sizeof(Selector));
        if (!s) {
                free(b.s);
                return (Selector *) perr(P, pos, "out of memory");
        }
        s->text = b.s;
        s->metric = metric ? strdup(metric) : NULL;
        s->matchers = calloc(n + 1, sizeof(Matcher));
        if ((metric && !s->metric) || !s->matchers)
                goto oom;
        for (size_t i = 0; i < n; i++) {
                int r = matcher_init(&s->matchers[i], m[i].name, m[i].op, m[i].value, msg, sizeof(msg));
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                matcher_done(&s->matchers[j]);
                        free(s->matchers);
                        free(s->metric);
                        free(s->text);
                        free(s);
                        return (Selector *) perr(P, m[i].pos, "%s", r == -ENOMEM ? "out of memory" : msg);
                }
                s->n_matchers++;
        }
        {
                Selector **a = reallocarray(e->selectors, e->n_selectors + 1, sizeof(Selector *));
                if (!a) {
                        for (size_t j = 0; j < s->n_matchers; j++)
                                matcher_done(&s->matchers[j]);
                        goto oom;
                }
                e->selectors = a;
        }
        s->id = (unsigned) e->n_selectors;
        e->selectors[e->n_selectors++] = s;
        return s;
oom:
        free(s->matchers);
        free(s->metric);
        free(s->text);
        free(s);
        return (Selector *) perr(P, pos, "out of memory");
}

/* After the metric name (or at '{'): matchers, then [range] and offset. */
static Expr *parse_selector(Parser *P, char *metric, size_t pos) {
        RawMatcher m[64];
        size_t n = 0;
        Expr *x;

        if (P->tok.kind == T_LBRACE) {
                next(P);
                while (P->tok.kind != T_RBRACE) {
                        char *name;
                        size_t at = P->tok.pos;
                        MatchOp op;

                        if (P->tok.kind == T_STRING) {
                                name = P->tok.str;
                                next(P);
                                if (P->tok.kind == T_COMMA || P->tok.kind == T_RBRACE) {
                                        /* {"my.metric", …}: a quoted metric name */
                                        if (metric)
                                                return perr(P, at, "metric name given twice");
                                        if (!*name)
                                                return perr(P, at, "empty metric name");
                                        metric = name;
                                        if (P->tok.kind == T_COMMA)
                                                next(P);
                                        continue;
                                }
                        } else if (P->tok.kind == T_IDENT && !memchr(P->text + P->tok.pos, ':', P->tok.len)) {
                                name = arena_strndup(&P->env->arena, P->text + P->tok.pos, P->tok.len);
                                if (!name)
                                        return perr(P, at, "out of memory");
                                next(P);
                        } else
                                return expected(P, "a label name or '}'");

                        switch (P->tok.kind) {
                        case T_ASSIGN: op = MATCH_EQ; break;
                        case T_NEQ: op = MATCH_NE; break;
                        case T_EQL_REGEX: op = MATCH_RE; break;
                        case T_NEQ_REGEX: op = MATCH_NRE; break;
                        default:
                                return expected(P, "one of '=', '!=', '=~', '!~'");
                        }
                        next(P);
                        if (P->tok.kind != T_STRING)
                                return expected(P, "a quoted label value");
                        if (n >= ELEMENTSOF(m))
                                return perr(P, at, "too many label matchers (limit %zu)", ELEMENTSOF(m));
                        if (streq(name, "__name__") && op == MATCH_EQ && !metric)
                                metric = P->tok.str;
                        else
                                m[n++] = (RawMatcher){name, P->tok.str, op, at};
                        next(P);
                        if (P->tok.kind == T_COMMA)
                                next(P);
                        else if (P->tok.kind != T_RBRACE)
                                return expected(P, "',' or '}'");
                }
                next(P);
        }
        if (!metric) {
                bool ok = false;
                for (size_t i = 0; i < n && !ok; i++) {
                        Matcher tmp;
                        char msg[160];
                        if (matcher_init(&tmp, m[i].name, m[i].op, m[i].value, msg, sizeof(msg)) < 0)
                                return perr(P, m[i].pos, "%s", msg);
                        ok = !matcher_matches(&tmp, "");
                        matcher_done(&tmp);
                }
                if (!ok)
                        return perr(P, pos, "a selector needs a metric name or a matcher that does not match the empty string");
        }

        x = new_node(P, N_SELECTOR, pos);
        if (!x)
                return NULL;
        x->type = EXPR_VECTOR;
        x->sel = intern_selector(P, metric, m, n, pos);
        if (!x->sel)
                return NULL;

        if (P->tok.kind == T_LBRACKET) {
                next(P);
                if (!parse_duration_at(P, &x->range))
                        return NULL;
                if (P->tok.kind != T_RBRACKET)
                        return expected(P, "']'");
                next(P);
                x->type = EXPR_MATRIX;
        }
        if (tok_is_word(P, "offset")) {
                next(P);
                if (!parse_duration_at(P, &x->offset))
                        return NULL;
        }
        x->sel->history = MAX(x->sel->history, x->range + x->offset);
        return x;
}

static Expr *make_binary(Parser *P, BinOp op, Expr *lhs, Expr *rhs, size_t pos, bool return_bool, bool matching,
                         bool on, char **labels, size_t n_labels) {
        Expr *x;

        if (lhs->type == EXPR_MATRIX || rhs->type == EXPR_MATRIX)
                return perr(P, lhs->type == EXPR_MATRIX ? lhs->pos : rhs->pos,
                            "binary expression must contain only scalar and instant vector types (a range needs a "
                            "function such as rate())");
        if (op_is_set(op) && (lhs->type != EXPR_VECTOR || rhs->type != EXPR_VECTOR))
                return perr(P, pos, "set operator '%s' not allowed in binary scalar expression", op_names[op]);
        if (op_is_comparison(op) && lhs->type == EXPR_SCALAR && rhs->type == EXPR_SCALAR && !return_bool)
                return perr(P, pos, "comparisons between scalars must use the bool modifier");
        if (matching && (lhs->type != EXPR_VECTOR || rhs->type != EXPR_VECTOR))
                return perr(P, pos, "vector matching only allowed between instant vectors");

        x = new_node(P, N_BINARY, pos);
        if (!x)
                return NULL;
        x->op = op;
        x->lhs = lhs;
        x->rhs = rhs;
        x->return_bool = return_bool;
        x->matching = matching;
        x->on = on;
        x->match_labels = labels;
        x->n_match = n_labels;
        x->type = lhs->type == EXPR_SCALAR && rhs->type == EXPR_SCALAR ? EXPR_SCALAR : EXPR_VECTOR;
        x->has_baseline = lhs->has_baseline || rhs->has_baseline;
        return x;
}

static BinOp tok_binop(const Parser *P) {
        switch (P->tok.kind) {
        case T_ADD: return OP_ADD;
        case T_SUB: return OP_SUB;
        case T_MUL: return OP_MUL;
        case T_DIV: return OP_DIV;
        case T_MOD: return OP_MOD;
        case T_POW: return OP_POW;
        case T_EQLC: return OP_EQ;
        case T_NEQ: return OP_NE;
        case T_LSS: return OP_LT;
        case T_LTE: return OP_LE;
        case T_GTR: return OP_GT;
        case T_GTE: return OP_GE;
        case T_IDENT:
                if (tok_is_word(P, "and"))
                        return OP_AND;
                if (tok_is_word(P, "or"))
                        return OP_OR;
                if (tok_is_word(P, "unless"))
                        return OP_UNLESS;
                return _OP_INVALID;
        default:
                return _OP_INVALID;
        }
}

/* Operator modifiers: bool, on(…), ignoring(…). */
static bool parse_modifiers(Parser *P, BinOp op, bool *ret_bool, bool *ret_matching, bool *ret_on, char ***ret_labels,
                            size_t *ret_n) {
        if (tok_is_word(P, "bool")) {
                if (!op_is_comparison(op))
                        return perr(P, P->tok.pos, "bool modifier can only be used on comparison operators"), false;
                *ret_bool = true;
                next(P);
        }
        if (tok_is_word(P, "on") || tok_is_word(P, "ignoring")) {
                *ret_on = tok_is_word(P, "on");
                *ret_matching = true;
                next(P);
                if (!parse_label_list(P, ret_labels, ret_n))
                        return false;
        }
        if (tok_is_word(P, "group_left") || tok_is_word(P, "group_right"))
                return perr(P, P->tok.pos, "group_left/group_right (many-to-one matching) are not supported"), false;
        return true;
}

static Expr *parse_unary(Parser *P);

static bool parse_args(Parser *P, Expr **args, size_t max, size_t *ret_n) {
        size_t n = 0;

        /* at '(' */
        next(P);
        while (P->tok.kind != T_RPAREN) {
                Expr *a;
                if (n >= max)
                        return perr(P, P->tok.pos, "too many arguments"), false;
                a = parse_expr(P, 1);
                if (!a)
                        return false;
                args[n++] = a;
                if (P->tok.kind == T_COMMA)
                        next(P);
                else if (P->tok.kind != T_RPAREN)
                        return expected(P, "',' or ')'"), false;
        }
        next(P);
        *ret_n = n;
        return true;
}

static Expr *check_arg(Parser *P, const char *fname, size_t i, Expr *a, ExprType want) {
        if (a->type == want)
                return a;
        if (want == EXPR_MATRIX && a->type == EXPR_VECTOR)
                return perr(P, a->pos, "%s() needs a range, e.g. %s(x[5m]); got an instant vector", fname, fname);
        return perr(P, a->pos, "expected type %s in argument %zu of %s(), got %s", expr_type_to_string(want), i + 1,
                    fname, expr_type_to_string(a->type));
}

static Expr *add(Parser *P, Expr *a, Expr *b, size_t pos) {
        return make_binary(P, OP_ADD, a, b, pos, false, false, false, NULL, 0);
}

static Expr *parse_call(Parser *P, const char *name, size_t name_len, size_t pos) {
        Expr *args[4] = {};
        size_t n = 0;
        char fname[32];

        snprintf(fname, sizeof(fname), "%.*s", (int) MIN(name_len, (size_t) 31), name);

        if (streq(fname, "baseline")) {
                Expr *x;
                if (!parse_args(P, args, 1, &n))
                        return NULL;
                if (n != 1)
                        return perr(P, pos, "baseline() takes one argument");
                if (args[0]->type == EXPR_MATRIX)
                        return perr(P, args[0]->pos, "baseline() needs an instant value, e.g. baseline(rate(x[5m]))");
                if (args[0]->has_baseline)
                        return perr(P, args[0]->pos, "baseline() cannot be nested");
                x = new_node(P, N_BASELINE, pos);
                if (!x)
                        return NULL;
                x->lhs = args[0];
                x->type = EXPR_VECTOR;
                x->has_baseline = true;
                {
                        ExprEnv *e = P->env;
                        _cleanup_free_ char *key = node_to_malloc_string(args[0]);
                        size_t i;

                        if (!key)
                                return perr(P, pos, "out of memory");
                        for (i = 0; i < e->n_baselines; i++)
                                if (streq(e->baselines[i].key, key))
                                        break;
                        if (i == e->n_baselines) {
                                BaselineEntry *a = reallocarray(e->baselines, e->n_baselines + 1, sizeof(BaselineEntry));
                                if (!a)
                                        return perr(P, pos, "out of memory");
                                e->baselines = a;
                                e->baselines[i] = (BaselineEntry){TAKE_PTR(key), args[0]};
                                e->n_baselines++;
                        }
                        x->baseline = i;
                }
                return x;
        }

        if (streq(fname, "accuracy") || streq(fname, "redundancy")) {
                bool acc = streq(fname, "accuracy");
                Expr *tp, *tn, *fp, *fn, *num, *den;

                if (!parse_args(P, args, 4, &n))
                        return NULL;
                if (n != 4)
                        return perr(P, pos, "%s() takes four arguments: tp, tn, fp, fn", fname);
                for (size_t i = 0; i < 4; i++)
                        if (args[i]->type == EXPR_MATRIX)
                                return perr(P, args[i]->pos, "%s() needs instant values, not ranges", fname);
                tp = args[0], tn = args[1], fp = args[2], fn = args[3];
                /* accuracy = (tp+tn)/(tp+tn+fp+fn), redundancy = (tp+fn)/(tp+tn+fp+fn): written as the
                 * arithmetic they are, so vector matching and "no data" work as for "+" and "/". */
                num = add(P, tp, acc ? tn : fn, pos);
                if (!num)
                        return NULL;
                if (acc)
                        den = add(P, num, fp, pos);
                else {
                        den = add(P, tp, tn, pos);
                        den = den ? add(P, den, fp, pos) : NULL;
                }
                den = den ? add(P, den, fn, pos) : NULL;
                if (!den)
                        return NULL;
                return make_binary(P, OP_DIV, num, den, pos, false, false, false, NULL, 0);
        }

        for (Func f = 0; f < _F_MAX; f++) {
                Expr *x;

                if (!streq(funcs[f].name, fname))
                        continue;
                if (!parse_args(P, args, 2, &n))
                        return NULL;
                if (n != funcs[f].n_args)
                        return perr(P, pos, "%s() takes %zu argument%s, got %zu", fname, funcs[f].n_args,
                                    funcs[f].n_args == 1 ? "" : "s", n);
                for (size_t i = 0; i < n; i++)
                        if (!check_arg(P, fname, i, args[i], funcs[f].args[i]))
                                return NULL;
                x = new_node(P, N_CALL, pos);
                if (!x)
                        return NULL;
                x->func = f;
                x->n_args = n;
                for (size_t i = 0; i < n; i++) {
                        x->args[i] = args[i];
                        x->has_baseline |= args[i]->has_baseline;
                }
                x->type = funcs[f].ret;
                return x;
        }
        return perr(P, pos, "unknown function '%s'", fname);
}

static Expr *parse_aggregation(Parser *P, AggOp agg, size_t pos) {
        Expr *x = new_node(P, N_AGG, pos);

        if (!x)
                return NULL;
        x->agg = agg;
        x->type = EXPR_VECTOR;
        if (tok_is_word(P, "by") || tok_is_word(P, "without")) {
                x->without = tok_is_word(P, "without");
                x->grouped = true;
                next(P);
                if (!parse_label_list(P, &x->grouping, &x->n_grouping))
                        return NULL;
        }
        if (P->tok.kind != T_LPAREN)
                return expected(P, "'('");
        next(P);
        x->lhs = parse_expr(P, 1);
        if (!x->lhs)
                return NULL;
        if (P->tok.kind == T_COMMA)
                return perr(P, P->tok.pos, "%s() takes one argument", agg_names[agg]);
        if (P->tok.kind != T_RPAREN)
                return expected(P, "')'");
        next(P);
        if (!x->grouped && (tok_is_word(P, "by") || tok_is_word(P, "without"))) {
                x->without = tok_is_word(P, "without");
                x->grouped = true;
                next(P);
                if (!parse_label_list(P, &x->grouping, &x->n_grouping))
                        return NULL;
        }
        if (x->lhs->type != EXPR_VECTOR)
                return perr(P, x->lhs->pos, "expected type instant vector in aggregation expression, got %s",
                            expr_type_to_string(x->lhs->type));
        x->has_baseline = x->lhs->has_baseline;
        return x;
}

static int compile_define(ExprEnv *e, DefineEntry *d);

static Expr *parse_define_ref(Parser *P, DefineEntry *d, size_t pos) {
        Expr *x;
        int r;

        if (d->state == DEF_BUSY) {
                char path[256] = "";
                size_t off = 0;
                bool on = false;

                for (unsigned i = 0; i < P->env->n_stack; i++) {
                        on = on || P->env->stack[i] == d;
                        if (on && off < sizeof(path))
                                off += (size_t) snprintf(path + off, sizeof(path) - off, "%s → ", P->env->stack[i]->name);
                }
                if (off < sizeof(path))
                        snprintf(path + off, sizeof(path) - off, "%s", d->name);
                return perr(P, pos, "definition cycle: %s", path);
        }
        r = compile_define(P->env, d);
        if (r == -ENOMEM)
                return perr(P, pos, "out of memory");
        if (d->state != DEF_OK) {
                if (startswith(d->err.message, "definition cycle") || startswith(d->err.message, "definitions nested"))
                        return perr(P, pos, "%s", d->err.message);
                return perr(P, pos, "definition '%s' is invalid: %s", d->name, d->err.message);
        }

        x = new_node(P, N_DEFINE, pos);
        if (!x)
                return NULL;
        x->def = d;
        x->type = d->root->type;
        x->has_baseline = d->root->has_baseline;

        if (P->tok.kind == T_LBRACE)
                return perr(P, P->tok.pos, "'%s' is a definition: label matchers apply to metrics only", d->name);
        if (P->tok.kind == T_LBRACKET || tok_is_word(P, "offset")) {
                /* name[5m] is allowed when the definition is a plain selector (an alias). */
                Expr *root = d->root, *s;

                while (root->kind == N_DEFINE)
                        root = root->def->root;
                if (root->kind != N_SELECTOR || root->type != EXPR_VECTOR || root->offset != 0)
                        return perr(P, P->tok.pos,
                                    "'%s' is an expression, not a metric: a range needs a metric selector (subqueries "
                                    "are not supported)",
                                    d->name);
                s = new_node(P, N_SELECTOR, pos);
                if (!s)
                        return NULL;
                s->sel = root->sel;
                s->type = EXPR_VECTOR;
                if (P->tok.kind == T_LBRACKET) {
                        next(P);
                        if (!parse_duration_at(P, &s->range))
                                return NULL;
                        if (P->tok.kind != T_RBRACKET)
                                return expected(P, "']'");
                        next(P);
                        s->type = EXPR_MATRIX;
                }
                if (tok_is_word(P, "offset")) {
                        next(P);
                        if (!parse_duration_at(P, &s->offset))
                                return NULL;
                }
                s->sel->history = MAX(s->sel->history, s->range + s->offset);
                return s;
        }
        return x;
}

static Expr *parse_primary(Parser *P) {
        size_t pos = P->tok.pos;
        Expr *x;

        switch (P->tok.kind) {
        case T_NUMBER:
                x = new_node(P, N_NUMBER, pos);
                if (!x)
                        return NULL;
                x->number = P->tok.number;
                x->type = EXPR_SCALAR;
                next(P);
                return x;

        case T_LPAREN:
                next(P);
                x = parse_expr(P, 1);
                if (!x)
                        return NULL;
                if (P->tok.kind != T_RPAREN)
                        return expected(P, "')'");
                next(P);
                return x;

        case T_LBRACE:
                return parse_selector(P, NULL, pos);

        case T_IDENT: {
                const char *name = P->text + pos;
                size_t n = P->tok.len;
                char *metric;

                if ((n == 3 && strncasecmp(name, "inf", 3) == 0) || (n == 3 && strncasecmp(name, "nan", 3) == 0)) {
                        x = new_node(P, N_NUMBER, pos);
                        if (!x)
                                return NULL;
                        x->number = tolower(name[0]) == 'i' ? INFINITY : NAN;
                        x->type = EXPR_SCALAR;
                        next(P);
                        return x;
                }
                for (AggOp a = 0; a < _AGG_MAX; a++)
                        if (strlen(agg_names[a]) == n && strncmp(agg_names[a], name, n) == 0) {
                                next(P);
                                if (P->tok.kind == T_LPAREN || tok_is_word(P, "by") || tok_is_word(P, "without"))
                                        return parse_aggregation(P, a, pos);
                                return perr(P, pos, "'%s' is an aggregation: write %s(x) or %s by (label) (x)",
                                            agg_names[a], agg_names[a], agg_names[a]);
                        }
                if (word_is_keyword(name, n))
                        return perr(P, pos, "unexpected keyword '%.*s'", (int) n, name);
                next(P);
                if (P->tok.kind == T_LPAREN)
                        return parse_call(P, name, n, pos);
                for (size_t i = 0; i < P->env->n_defines; i++)
                        if (strlen(P->env->defines[i].name) == n && strncmp(P->env->defines[i].name, name, n) == 0)
                                return parse_define_ref(P, &P->env->defines[i], pos);
                metric = arena_strndup(&P->env->arena, name, n);
                if (!metric)
                        return perr(P, pos, "out of memory");
                return parse_selector(P, metric, pos);
        }

        case T_STRING:
                return perr(P, pos, "string literals are only allowed as label values");
        case T_ERROR:
                return NULL;
        default:
                return expected(P, "a number, a metric, a function or '('");
        }
}

static Expr *parse_unary(Parser *P) {
        Expr *x;

        if (++P->depth > EXPR_DEPTH_MAX)
                return perr(P, P->tok.pos, "expression nested too deeply (limit %d)", EXPR_DEPTH_MAX);
        if (P->tok.kind == T_SUB || P->tok.kind == T_ADD) {
                bool neg = P->tok.kind == T_SUB;
                size_t pos = P->tok.pos;

                next(P);
                x = parse_unary(P);
                if (!x)
                        return NULL;
                if (x->type == EXPR_MATRIX)
                        return perr(P, x->pos, "unary expression only allowed on expressions of type scalar or instant vector");
                if (neg) {
                        Expr *y;
                        if (x->kind == N_NUMBER) {
                                x->number = -x->number;
                                x->pos = pos;
                        } else {
                                y = new_node(P, N_NEG, pos);
                                if (!y)
                                        return NULL;
                                y->lhs = x;
                                y->type = x->type;
                                y->has_baseline = x->has_baseline;
                                x = y;
                        }
                }
        } else {
                x = parse_primary(P);
                if (!x)
                        return NULL;
                if (P->tok.kind == T_POW) {
                        /* ^ binds tighter than unary minus and is right-associative. */
                        size_t pos = P->tok.pos;
                        bool rb = false, matching = false, on = false;
                        char **labels = NULL;
                        size_t nl = 0;
                        Expr *rhs;

                        next(P);
                        if (!parse_modifiers(P, OP_POW, &rb, &matching, &on, &labels, &nl))
                                return NULL;
                        rhs = parse_unary(P);
                        if (!rhs)
                                return NULL;
                        x = make_binary(P, OP_POW, x, rhs, pos, rb, matching, on, labels, nl);
                }
        }
        P->depth--;
        return x;
}

static Expr *parse_expr(Parser *P, int min_prec) {
        Expr *lhs;

        if (++P->depth > EXPR_DEPTH_MAX)
                return perr(P, P->tok.pos, "expression nested too deeply (limit %d)", EXPR_DEPTH_MAX);
        lhs = parse_unary(P);
        if (!lhs)
                return NULL;
        for (;;) {
                BinOp op = tok_binop(P);
                bool rb = false, matching = false, on = false;
                char **labels = NULL;
                size_t nl = 0, pos;
                Expr *rhs;

                if (op == _OP_INVALID || op == OP_POW || op_precedence(op) < min_prec)
                        break;
                pos = P->tok.pos;
                next(P);
                if (!parse_modifiers(P, op, &rb, &matching, &on, &labels, &nl))
                        return NULL;
                rhs = parse_expr(P, op_precedence(op) + 1);
                if (!rhs)
                        return NULL;
                lhs = make_binary(P, op, lhs, rhs, pos, rb, matching, on, labels, nl);
                if (!lhs)
                        return NULL;
        }
        P->depth--;
        return lhs;
}

static Expr *parse_text(ExprEnv *e, const char *text, ExprError *err) {
        Parser P = {.env = e, .text = text, .err = err};
        Expr *x;

        P.len = strlen(text);
        if (P.len > EXPR_TEXT_MAX)
                return perr(&P, EXPR_TEXT_MAX, "expression longer than %d bytes", EXPR_TEXT_MAX);
        next(&P);
        if (P.tok.kind == T_EOF)
                return perr(&P, 0, "empty expression");
        x = parse_expr(&P, 1);
        if (!x || P.failed)
                return NULL;
        if (P.tok.kind != T_EOF)
                return expected(&P, "an operator or end of input");
        return x;
}

static int compile_define(ExprEnv *e, DefineEntry *d) {
        if (d->state == DEF_OK || d->state == DEF_FAILED)
                return 0;
        if (e->n_stack >= EXPR_DEFINE_DEPTH) {
                d->state = DEF_FAILED;
                snprintf(d->err.message, sizeof(d->err.message), "definitions nested more than %d deep",
                         EXPR_DEFINE_DEPTH);
                return 0;
        }
        d->state = DEF_BUSY;
        e->stack[e->n_stack++] = d;
        d->root = parse_text(e, d->text, &d->err);
        e->n_stack--;
        d->state = d->root ? DEF_OK : DEF_FAILED;
        if (d->root && d->root->type == EXPR_MATRIX) {
                d->state = DEF_FAILED;
                d->err.offset = d->root->pos;
                snprintf(d->err.message, sizeof(d->err.message),
                         "a definition cannot be a bare range; wrap it in a function such as rate()");
        }
        return 0;
}

int expr_env_compile_define(ExprEnv *e, size_t index, ExprError *err) {
        DefineEntry *d;

        assert_return(e && index < e->n_defines, -EINVAL);
        d = &e->defines[index];
        compile_define(e, d);
        if (d->state != DEF_OK) {
                if (err)
                        *err = d->err;
                return -EINVAL;
        }
        return 0;
}

int expr_env_check_defines(ExprEnv *e, size_t *ret_index, ExprError *err) {
        for (size_t i = 0; i < e->n_defines; i++)
                if (expr_env_compile_define(e, i, err) < 0) {
                        if (ret_index)
                                *ret_index = i;
                        return -EINVAL;
                }
        return 0;
}

int expr_compile(ExprEnv *e, const char *text, const Expr **ret, ExprError *err) {
        ExprError tmp = {};
        Expr *x;

        assert_return(e && text && ret, -EINVAL);
        x = parse_text(e, text, err ?: &tmp);
        if (!x)
                return -EINVAL;
        *ret = x;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation helpers
 */

void expr_context_init(ExprContext *c, const SeriesStore *store, uint64_t now) {
        *c = (ExprContext){.store = store, .now = now};
        c->arena.limit = EXPR_EVAL_MEMORY;
}

void expr_context_done(ExprContext *c) {
        arena_done(&c->arena);
}

static int eerr(ExprContext *c, const Expr *x, int r, const char *fmt, ...) _printf_(4, 5);
static int eerr(ExprContext *c, const Expr *x, int r, const char *fmt, ...) {
        va_list ap;

        c->err.offset = x ? x->pos : 0;
        va_start(ap, fmt);
        vsnprintf(c->err.message, sizeof(c->err.message), fmt, ap);
        va_end(ap);
        return r;
}

static int oom(ExprContext *c, const Expr *x) {
        if (c->arena.limit && c->arena.used + 4096 >= c->arena.limit)
                return eerr(c, x, -E2BIG, "evaluation needs more than %zu bytes of memory", c->arena.limit);
        return eerr(c, x, -ENOMEM, "out of memory");
}

static bool in_list(char **l, size_t n, const char *s) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int k = strcmp(l[mid], s);
                if (k == 0)
                        return true;
                if (k < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return false;
}

/* Labels with only (keep=true) or without (keep=false) the listed names; the metric name is
 * dropped either way unless kept by name. */
static int labels_filter(ExprContext *c, const LabelSet *in, char **names, size_t n, bool keep, LabelSet *out) {
        LabelPair *p = arena_allocarray(&c->arena, in->n + 1, sizeof(LabelPair));
        size_t k = 0;

        if (!p)
                return -ENOMEM;
        for (size_t i = 0; i < in->n; i++)
                if (in_list(names, n, in->pairs[i].name) == keep)
                        p[k++] = in->pairs[i];
        *out = (LabelSet){.metric = keep && in_list(names, n, "__name__") ? in->metric : NULL, .pairs = p, .n = k};
        return 0;
}

/* A key identifying the label set for matching/grouping: on=true uses only the listed names,
 * on=false every label but the listed ones; the metric name never counts unless listed with on. */
static char *signature(ExprContext *c, const LabelSet *l, char **names, size_t n, bool on) {
        size_t size = 1;
        char *s, *o;

        for (size_t i = 0; i < l->n; i++)
                size += strlen(l->pairs[i].name) + strlen(l->pairs[i].value) + 2;
        if (on) {
                size += 2 * n;
                if (l->metric)
                        size += strlen(l->metric) + 10;
        }
        s = o = arena_alloc(&c->arena, size);
        if (!s)
                return NULL;
        if (on) {
                for (size_t i = 0; i < n; i++) {
                        const char *v = label_set_get(l, names[i]);
                        o = stpcpy(o, names[i]);
                        *o++ = '\x01';
                        o = stpcpy(o, strempty(v));
                        *o++ = '\x02';
                }
        } else
                for (size_t i = 0; i < l->n; i++) {
                        if (in_list(names, n, l->pairs[i].name))
                                continue;
                        o = stpcpy(o, l->pairs[i].name);
                        *o++ = '\x01';
                        o = stpcpy(o, l->pairs[i].value);
                        *o++ = '\x02';
                }
        *o = 0;
        return s;
}

typedef struct SigEntry {
        const char *key;
        size_t idx;
        bool used;
} SigEntry;

static int cmp_sig(const void *a, const void *b) {
        const SigEntry *x = a, *y = b;
        int k = strcmp(x->key, y->key);
        if (k)
                return k;
        return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static SigEntry *sig_find(SigEntry *a, size_t n, const char *key) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int k = strcmp(a[mid].key, key);
                if (k == 0) {
                        while (mid > 0 && streq(a[mid - 1].key, key))
                                mid--;
                        return &a[mid];
                }
                if (k < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static SigEntry *sigs_of(ExprContext *c, const ExprValue *v, char **names, size_t n, bool on) {
        SigEntry *a = arena_allocarray(&c->arena, v->n + 1, sizeof(SigEntry));
        if (!a)
                return NULL;
        for (size_t i = 0; i < v->n; i++) {
                a[i] = (SigEntry){.key = signature(c, &v->samples[i].labels, names, n, on), .idx = i};
                if (!a[i].key)
                        return NULL;
        }
        if (v->n > 1)
                qsort(a, v->n, sizeof(SigEntry), cmp_sig);
        return a;
}

static ExprSample *new_samples(ExprContext *c, size_t n) {
        return arena_allocarray(&c->arena, n + 1, sizeof(ExprSample));
}

/* ---------------------------------------------------------------------------------------------
 * Operators
 */

/* (value, keep): arithmetic always keeps; a comparison keeps lhs when it holds. */
static double binop_value(BinOp op, double l, double r, bool *keep) {
        *keep = true;
        switch (op) {
        case OP_ADD: return l + r;
        case OP_SUB: return l - r;
        case OP_MUL: return l * r;
        case OP_DIV: return l / r;
        case OP_MOD: return fmod(l, r);
        case OP_POW: return pow(l, r);
        case OP_EQ: *keep = l == r; return l;
        case OP_NE: *keep = l != r; return l;
        case OP_LT: *keep = l < r; return l;
        case OP_LE: *keep = l <= r; return l;
        case OP_GT: *keep = l > r; return l;
        case OP_GE: *keep = l >= r; return l;
        default: *keep = false; return NAN;
        }
}

static int eval(const Expr *x, ExprContext *c, ExprValue *ret);

static int eval_vector_scalar(const Expr *x, ExprContext *c, const ExprValue *vec, double s, bool swap, bool rb,
                              ExprValue *ret) {
        ExprSample *out = new_samples(c, vec->n);
        size_t k = 0;

        if (!out)
                return oom(c, x);
        for (size_t i = 0; i < vec->n; i++) {
                double l = vec->samples[i].value, r = s, v;
                bool keep;

                if (swap) {
                        l = s;
                        r = vec->samples[i].value;
                }
                v = binop_value(x->op, l, r, &keep);
                if (op_is_comparison(x->op) && swap)
                        v = r; /* the vector element's value, even when it is on the right */
                if (rb) {
                        v = keep ? 1.0 : 0.0;
                        keep = true;
                }
                if (!keep)
                        continue;
                out[k] = vec->samples[i];
                out[k].value = v;
                if (!op_is_comparison(x->op) || rb)
                        out[k].labels.metric = NULL;
                k++;
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = k};
        return 0;
}

static int eval_vector_vector(const Expr *x, ExprContext *c, const ExprValue *l, const ExprValue *r, bool rb,
                              ExprValue *ret) {
        char **names = x->matching ? x->match_labels : NULL;
        size_t nn = x->matching ? x->n_match : 0;
        bool on = x->matching && x->on;
        SigEntry *rs;
        ExprSample *out;
        size_t k = 0;

        if (l->n == 0 || r->n == 0) {
                *ret = (ExprValue){.type = EXPR_VECTOR};
                return 0;
        }
        rs = sigs_of(c, r, names, nn, on);
        out = new_samples(c, l->n);
        if (!rs || !out)
                return oom(c, x);
        for (size_t i = 1; i < r->n; i++)
                if (streq(rs[i].key, rs[i - 1].key))
                        return eerr(c, x, -EINVAL,
                                    "found duplicate series for the match group on the right hand-side of '%s' "
                                    "(many-to-many matching is not allowed)",
                                    op_names[x->op]);
        for (size_t i = 0; i < l->n; i++) {
                const char *key = signature(c, &l->samples[i].labels, names, nn, on);
                SigEntry *m;
                double v;
                bool keep;

                if (!key)
                        return oom(c, x);
                m = sig_find(rs, r->n, key);
                if (!m)
                        continue;
                if (m->used)
                        return eerr(c, x, -EINVAL,
                                    "multiple matches for labels on the left hand-side of '%s' (many-to-one matching "
                                    "must be explicit, and group_left is not supported)",
                                    op_names[x->op]);
                m->used = true;
                v = binop_value(x->op, l->samples[i].value, r->samples[m->idx].value, &keep);
                if (rb) {
                        v = keep ? 1.0 : 0.0;
                        keep = true;
                }
                if (!keep)
                        continue;
                out[k].value = v;
                out[k].labels = l->samples[i].labels;
                if (!op_is_comparison(x->op) || rb)
                        out[k].labels.metric = NULL;
                if (x->matching) {
                        LabelSet tmp = out[k].labels;
                        if (labels_filter(c, &tmp, names, nn, on, &out[k].labels) < 0)
                                return oom(c, x);
                        if (!on)
                                out[k].labels.metric = tmp.metric;
                }
                k++;
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = k};
        return 0;
}

static int eval_set(const Expr *x, ExprContext *c, const ExprValue *l, const ExprValue *r, ExprValue *ret) {
        char **names = x->matching ? x->match_labels : NULL;
        size_t nn = x->matching ? x->n_match : 0;
        bool on = x->matching && x->on;
        ExprSample *out = new_samples(c, l->n + r->n);
        SigEntry *other;
        size_t k = 0;

        if (!out)
                return oom(c, x);
        if (x->op == OP_OR) {
                other = sigs_of(c, l, names, nn, on);
                if (!other)
                        return oom(c, x);
                for (size_t i = 0; i < l->n; i++)
                        out[k++] = l->samples[i];
                for (size_t i = 0; i < r->n; i++) {
                        const char *key = signature(c, &r->samples[i].labels, names, nn, on);
                        if (!key)
                                return oom(c, x);
                        if (!sig_find(other, l->n, key))
                                out[k++] = r->samples[i];
                }
        } else {
                other = sigs_of(c, r, names, nn, on);
                if (!other)
                        return oom(c, x);
                for (size_t i = 0; i < l->n; i++) {
                        const char *key = signature(c, &l->samples[i].labels, names, nn, on);
                        if (!key)
                                return oom(c, x);
                        if (!!sig_find(other, r->n, key) == (x->op == OP_AND))
                                out[k++] = l->samples[i];
                }
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = k};
        return 0;
}

static int eval_binary(const Expr *x, ExprContext *c, bool force_bool, ExprValue *ret) {
        ExprValue l, r;
        bool rb = x->return_bool || (force_bool && op_is_comparison(x->op));
        int k;

        k = eval(x->lhs, c, &l);
        if (k < 0)
                return k;
        k = eval(x->rhs, c, &r);
        if (k < 0)
                return k;

        if (op_is_set(x->op))
                return eval_set(x, c, &l, &r, ret);
        if (l.type == EXPR_SCALAR && r.type == EXPR_SCALAR) {
                bool keep;
                double v = binop_value(x->op, l.scalar, r.scalar, &keep);
                if (op_is_comparison(x->op))
                        v = keep ? 1.0 : 0.0;
                *ret = (ExprValue){.type = EXPR_SCALAR, .scalar = v};
                return 0;
        }
        if (l.type == EXPR_VECTOR && r.type == EXPR_SCALAR)
                return eval_vector_scalar(x, c, &l, r.scalar, false, rb, ret);
        if (l.type == EXPR_SCALAR && r.type == EXPR_VECTOR)
                return eval_vector_scalar(x, c, &r, l.scalar, true, rb, ret);
        return eval_vector_vector(x, c, &l, &r, rb, ret);
}

/* ---------------------------------------------------------------------------------------------
 * Selectors and range functions
 */

static int eval_selector(const Expr *x, ExprContext *c, ExprValue *ret) {
        size_t iter = 0, n = 0, cap = 16;
        ExprSample *out;
        const Series *s;
        uint64_t t;

        *ret = (ExprValue){.type = EXPR_VECTOR};
        if (!c->store || c->now < x->offset)
                return 0;
        t = c->now - x->offset;
        out = new_samples(c, cap);
        if (!out)
                return oom(c, x);
        while ((s = series_store_iterate(c->store, x->sel->id, &iter))) {
                double v;

                if (!series_instant(s, t, series_store_lookback(c->store), &v))
                        continue;
                if (n >= cap) {
                        ExprSample *bigger = new_samples(c, cap * 2);
                        if (!bigger)
                                return oom(c, x);
                        memcpy(bigger, out, n * sizeof(ExprSample));
                        out = bigger;
                        cap *= 2;
                }
                out[n++] = (ExprSample){.labels = *series_labels(s), .value = v};
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = n};
        return 0;
}

/* PromQL's extrapolatedRate (promql/functions.go): the increase between the first and last
 * sample in the window, with counter resets added back, extrapolated to the window's edges
 * when the samples come close to them (within 110% of the average spacing), else by half the
 * average spacing; never below the counter's zero point. */
static bool extrapolated_rate(const Series *s, size_t first, size_t last, int64_t range_start_us,
                              int64_t range_end_us, uint64_t range_us, bool is_rate, double *ret) {
        SeriesSample samples_first = {}, samples_last = {};
        double result, duration_to_start, duration_to_end, sampled, avg, threshold, factor;
        size_t n = 0;

        for (size_t i = first; i < last; i++) {
                SeriesSample p = series_sample(s, i);
                if (series_is_stale_value(p.v))
                        continue;
                if (n == 0)
                        samples_first = p;
                samples_last = p;
                n++;
        }
        if (n < 2)
                return false;

        result = samples_last.v - samples_first.v;
        {
                bool have_prev = false;
                double pv = 0;
                for (size_t i = first; i < last; i++) {
                        SeriesSample p = series_sample(s, i);
                        if (series_is_stale_value(p.v))
                                continue;
                        if (have_prev && p.v < pv)
                                result += pv;
                        pv = p.v;
                        have_prev = true;
                }
        }

        duration_to_start = (double) ((int64_t) samples_first.t - range_start_us) / 1e6;
        duration_to_end = (double) (range_end_us - (int64_t) samples_last.t) / 1e6;
        sampled = (double) (samples_last.t - samples_first.t) / 1e6;
        avg = sampled / (double) (n - 1);
        threshold = avg * 1.1;

        if (duration_to_start >= threshold)
                duration_to_start = avg / 2;
        if (result > 0 && samples_first.v >= 0) {
                double to_zero = sampled * (samples_first.v / result);
                if (to_zero < duration_to_start)
                        duration_to_start = to_zero;
        }
        if (duration_to_end >= threshold)
                duration_to_end = avg / 2;

        factor = (sampled + duration_to_start + duration_to_end) / sampled;
        if (is_rate)
                factor /= (double) range_us / 1e6;
        *ret = result * factor;
        return true;
}

static bool over_time(Func f, const Series *s, size_t first, size_t last, double *ret) {
        double acc = 0, comp = 0, v = NAN;
        size_t n = 0;

        for (size_t i = first; i < last; i++) {
                SeriesSample p = series_sample(s, i);

                if (series_is_stale_value(p.v))
                        continue;
                switch (f) {
                case F_AVG_OVER_TIME:
                case F_SUM_OVER_TIME: {
                        /* Kahan summation, as PromQL does. */
                        double y = p.v - comp, t = acc + y;
                        comp = (t - acc) - y;
                        acc = t;
                        break;
                }
                case F_MIN_OVER_TIME:
                        if (n == 0 || p.v < v || isnan(v))
                                v = p.v;
                        break;
                case F_MAX_OVER_TIME:
                        if (n == 0 || p.v > v || isnan(v))
                                v = p.v;
                        break;
                case F_LAST_OVER_TIME:
                        v = p.v;
                        break;
                default:
                        break;
                }
                n++;
        }
        if (n == 0)
                return false;
        switch (f) {
        case F_AVG_OVER_TIME:
                *ret = acc / (double) n;
                break;
        case F_SUM_OVER_TIME:
                *ret = acc;
                break;
        case F_COUNT_OVER_TIME:
                *ret = (double) n;
                break;
        default:
                *ret = v;
        }
        return true;
}

static int eval_range_func(const Expr *x, ExprContext *c, ExprValue *ret) {
        const Expr *m = x->args[0];
        size_t iter = 0, n = 0, cap = 16;
        const Series *s;
        ExprSample *out;
        int64_t start, end;

        *ret = (ExprValue){.type = EXPR_VECTOR};
        if (!c->store)
                return 0;
        /* Prometheus 3: the window is left-open, (t - range, t]. */
        end = (int64_t) c->now - (int64_t) m->offset;
        start = end - (int64_t) m->range;
        out = new_samples(c, cap);
        if (!out)
                return oom(c, x);
        while ((s = series_store_iterate(c->store, m->sel->id, &iter))) {
                size_t first, last;
                double v;
                bool ok;

                if (end < 0)
                        break;
                series_window(s, start, (uint64_t) end, &first, &last);
                if (x->func == F_RATE || x->func == F_INCREASE)
                        ok = extrapolated_rate(s, first, last, start, end, m->range, x->func == F_RATE, &v);
                else
                        ok = over_time(x->func, s, first, last, &v);
                if (!ok)
                        continue;
                if (n >= cap) {
                        ExprSample *bigger = new_samples(c, cap * 2);
                        if (!bigger)
                                return oom(c, x);
                        memcpy(bigger, out, n * sizeof(ExprSample));
                        out = bigger;
                        cap *= 2;
                }
                out[n].labels = *series_labels(s);
                if (x->func != F_LAST_OVER_TIME)
                        out[n].labels.metric = NULL;
                out[n].value = v;
                n++;
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = n};
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * histogram_quantile (classic buckets), after PromQL's BucketQuantile (promql/quantile.go)
 */

typedef struct Bucket {
        double upper, count;
} Bucket;

static int cmp_bucket(const void *a, const void *b) {
        const Bucket *x = a, *y = b;
        return x->upper < y->upper ? -1 : x->upper > y->upper;
}

static bool almost_equal(double a, double b, double eps) {
        const double min_normal = 2.2250738585072014e-308;
        double abs_sum, diff;

        if (a == b)
                return true;
        abs_sum = fabs(a) + fabs(b);
        diff = fabs(a - b);
        if (a == 0 || b == 0 || abs_sum < min_normal)
                return diff < eps * min_normal;
        return diff / MIN(abs_sum, 1.7976931348623157e308) < eps;
}

static double bucket_quantile(double q, Bucket *b, size_t n) {
        double rank, observations, start = 0, end, count;
        size_t k = 0, lo, hi;

        if (isnan(q))
                return NAN;
        if (q < 0)
                return -INFINITY;
        if (q > 1)
                return INFINITY;
        qsort(b, n, sizeof(Bucket), cmp_bucket);
        if (n == 0 || !(isinf(b[n - 1].upper) && b[n - 1].upper > 0))
                return NAN;

        /* coalesce equal bounds */
        for (size_t i = 1; i < n; i++) {
                if (b[i].upper == b[k].upper)
                        b[k].count += b[i].count;
                else
                        b[++k] = b[i];
        }
        n = k + 1;

        /* monotonic envelope, ignoring float noise */
        {
                double prev = b[0].count;
                for (size_t i = 1; i < n; i++) {
                        double cur = b[i].count;
                        if (cur == prev)
                                continue;
                        if (almost_equal(prev, cur, 1e-12) || cur < prev) {
                                b[i].count = prev;
                                continue;
                        }
                        prev = cur;
                }
        }
        if (n < 2)
                return NAN;
        observations = b[n - 1].count;
        if (observations == 0)
                return NAN;
        rank = q * observations;
        /* first bucket in [0, n-1) whose count >= rank, else n-1 */
        lo = 0;
        hi = n - 1;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (b[mid].count >= rank)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (lo == n - 1)
                return b[n - 2].upper;
        if (lo == 0 && b[0].upper <= 0)
                return b[0].upper;
        end = b[lo].upper;
        count = b[lo].count;
        if (lo > 0) {
                start = b[lo - 1].upper;
                count -= b[lo - 1].count;
                rank -= b[lo - 1].count;
        }
        return start + (end - start) * (rank / count);
}

static int eval_histogram_quantile(const Expr *x, ExprContext *c, double q, const ExprValue *v, ExprValue *ret) {
        static char *le_list[] = {(char *) "le"};
        SigEntry *sig = arena_allocarray(&c->arena, v->n + 1, sizeof(SigEntry));
        Bucket *b = arena_allocarray(&c->arena, v->n + 1, sizeof(Bucket));
        ExprSample *out = new_samples(c, v->n);
        size_t ns = 0, k = 0;

        if (!sig || !b || !out)
                return oom(c, x);
        for (size_t i = 0; i < v->n; i++) {
                const char *le = label_set_get(&v->samples[i].labels, "le");
                double u;

                /* Samples without a valid le are not buckets: PromQL ignores them too. */
                if (!le || expfmt_parse_float(le, strlen(le), &u) < 0)
                        continue;
                sig[ns] = (SigEntry){.key = signature(c, &v->samples[i].labels, le_list, 1, false), .idx = i};
                if (!sig[ns].key)
                        return oom(c, x);
                ns++;
        }
        if (ns > 1)
                qsort(sig, ns, sizeof(SigEntry), cmp_sig);
        for (size_t i = 0; i < ns;) {
                size_t j = i, nb = 0;

                for (; j < ns && streq(sig[j].key, sig[i].key); j++) {
                        const ExprSample *s = &v->samples[sig[j].idx];
                        const char *le = label_set_get(&s->labels, "le");
                        expfmt_parse_float(le, strlen(le), &b[nb].upper);
                        b[nb].count = s->value;
                        nb++;
                }
                if (labels_filter(c, &v->samples[sig[i].idx].labels, le_list, 1, false, &out[k].labels) < 0)
                        return oom(c, x);
                out[k].value = bucket_quantile(q, b, nb);
                k++;
                i = j;
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = k};
        return 0;
}

static int eval_call(const Expr *x, ExprContext *c, ExprValue *ret) {
        ExprValue a, b;
        int k;

        switch (x->func) {
        case F_RATE:
        case F_INCREASE:
        case F_AVG_OVER_TIME:
        case F_MIN_OVER_TIME:
        case F_MAX_OVER_TIME:
        case F_SUM_OVER_TIME:
        case F_COUNT_OVER_TIME:
        case F_LAST_OVER_TIME:
                return eval_range_func(x, c, ret);
        case F_HISTOGRAM_QUANTILE:
                k = eval(x->args[0], c, &a);
                if (k >= 0)
                        k = eval(x->args[1], c, &b);
                if (k < 0)
                        return k;
                return eval_histogram_quantile(x, c, a.scalar, &b, ret);
        case F_SCALAR:
                k = eval(x->args[0], c, &a);
                if (k < 0)
                        return k;
                *ret = (ExprValue){.type = EXPR_SCALAR, .scalar = a.n == 1 ? a.samples[0].value : NAN};
                return 0;
        case F_VECTOR: {
                ExprSample *out = new_samples(c, 1);
                k = eval(x->args[0], c, &a);
                if (k < 0)
                        return k;
                if (!out)
                        return oom(c, x);
                out[0] = (ExprSample){.value = a.scalar};
                *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = 1};
                return 0;
        }
        case F_ABS:
        case F_CLAMP_MIN:
        case F_CLAMP_MAX: {
                ExprSample *out;
                k = eval(x->args[0], c, &a);
                if (k >= 0 && x->n_args > 1)
                        k = eval(x->args[1], c, &b);
                if (k < 0)
                        return k;
                out = new_samples(c, a.n);
                if (!out)
                        return oom(c, x);
                for (size_t i = 0; i < a.n; i++) {
                        double v = a.samples[i].value;
                        out[i] = a.samples[i];
                        out[i].labels.metric = NULL;
                        out[i].value = x->func == F_ABS ? fabs(v) : x->func == F_CLAMP_MIN ? fmax(v, b.scalar) : fmin(v, b.scalar);
                        if (x->func != F_ABS && (isnan(v) || isnan(b.scalar)))
                                out[i].value = NAN;
                }
                *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = a.n};
                return 0;
        }
        default:
                return eerr(c, x, -EINVAL, "unknown function");
        }
}

static int eval_agg(const Expr *x, ExprContext *c, ExprValue *ret) {
        ExprValue v;
        SigEntry *sig;
        ExprSample *out;
        size_t k = 0;
        int r;

        r = eval(x->lhs, c, &v);
        if (r < 0)
                return r;
        sig = arena_allocarray(&c->arena, v.n + 1, sizeof(SigEntry));
        out = new_samples(c, v.n);
        if (!sig || !out)
                return oom(c, x);
        for (size_t i = 0; i < v.n; i++) {
                /* by (…) groups on the listed labels, without (…) on all others. */
                sig[i] = (SigEntry){.key = signature(c, &v.samples[i].labels, x->grouping, x->n_grouping, !x->without),
                                    .idx = i};
                if (!sig[i].key)
                        return oom(c, x);
        }
        if (v.n > 1)
                qsort(sig, v.n, sizeof(SigEntry), cmp_sig);
        for (size_t i = 0; i < v.n;) {
                double acc = 0, comp = 0, m = NAN;
                size_t j = i, n = 0;

                for (; j < v.n && streq(sig[j].key, sig[i].key); j++, n++) {
                        double s = v.samples[sig[j].idx].value;
                        double y = s - comp, t = acc + y;
                        comp = (t - acc) - y;
                        acc = t;
                        if (n == 0 || isnan(m) || (x->agg == AGG_MIN ? s < m : s > m))
                                m = s;
                }
                if (labels_filter(c, &v.samples[sig[i].idx].labels, x->grouping, x->n_grouping, !x->without,
                                  &out[k].labels) < 0)
                        return oom(c, x);
                out[k].labels.metric = NULL;
                switch (x->agg) {
                case AGG_SUM:
                        out[k].value = acc;
                        break;
                case AGG_AVG:
                        out[k].value = acc / (double) n;
                        break;
                case AGG_COUNT:
                        out[k].value = (double) n;
                        break;
                default:
                        out[k].value = m;
                }
                k++;
                i = j;
        }
        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = k};
        return 0;
}

static int eval(const Expr *x, ExprContext *c, ExprValue *ret) {
        int r = 0;

        if (++c->depth > EXPR_DEPTH_MAX * (EXPR_DEFINE_DEPTH + 1))
                return eerr(c, x, -EINVAL, "evaluation nested too deeply");

        switch (x->kind) {
        case N_NUMBER:
                *ret = (ExprValue){.type = EXPR_SCALAR, .scalar = x->number};
                break;
        case N_SELECTOR:
                if (x->type == EXPR_MATRIX)
                        r = eerr(c, x, -EINVAL, "a range cannot be evaluated on its own");
                else
                        r = eval_selector(x, c, ret);
                break;
        case N_NEG: {
                ExprValue v;
                r = eval(x->lhs, c, &v);
                if (r < 0)
                        break;
                if (v.type == EXPR_SCALAR) {
                        *ret = (ExprValue){.type = EXPR_SCALAR, .scalar = -v.scalar};
                        break;
                }
                {
                        ExprSample *out = new_samples(c, v.n);
                        if (!out) {
                                r = oom(c, x);
                                break;
                        }
                        for (size_t i = 0; i < v.n; i++) {
                                out[i] = v.samples[i];
                                out[i].value = -out[i].value;
                                out[i].labels.metric = NULL;
                        }
                        *ret = (ExprValue){.type = EXPR_VECTOR, .samples = out, .n = v.n};
                }
                break;
        }
        case N_BINARY:
                r = eval_binary(x, c, false, ret);
                break;
        case N_AGG:
                r = eval_agg(x, c, ret);
                break;
        case N_CALL:
                r = eval_call(x, c, ret);
                break;
        case N_BASELINE: {
                const ExprSnapshot *s = x->baseline < c->n_baselines ? c->baselines[x->baseline] : NULL;
                *ret = (ExprValue){.type = EXPR_VECTOR};
                if (s && s->present) {
                        ret->samples = s->samples;
                        ret->n = s->n;
                }
                break;
        }
        case N_DEFINE:
                r = eval(x->def->root, c, ret);
                break;
        }
        c->depth--;
        return r;
}

int expr_eval(const Expr *x, ExprContext *c, ExprValue *ret) {
        assert_return(x && c && ret, -EINVAL);
        c->depth = 0;
        return eval(x, c, ret);
}

/* ---------------------------------------------------------------------------------------------
 * Conditions, sample counts, snapshots, formatting
 */

static ExprVerdict verdict_of(const ExprValue *v) {
        if (v->type == EXPR_SCALAR)
                return isnan(v->scalar) ? EXPR_NO_DATA : v->scalar != 0 ? EXPR_TRUE : EXPR_FALSE;
        if (v->n == 0)
                return EXPR_NO_DATA;
        for (size_t i = 0; i < v->n; i++)
                if (!(v->samples[i].value != 0) || isnan(v->samples[i].value))
                        return EXPR_FALSE;
        return EXPR_TRUE;
}

static double first_value(const ExprValue *v) {
        if (v->type == EXPR_SCALAR)
                return v->scalar;
        return v->n > 0 ? v->samples[0].value : NAN;
}

static int condition(const Expr *x, ExprContext *c, ExprVerdict *ret, double *ret_value) {
        ExprValue v;
        int r;

        while (x->kind == N_DEFINE)
                x = x->def->root;

        if (x->kind == N_BINARY && (x->op == OP_AND || x->op == OP_OR)) {
                ExprVerdict a, b;
                double va, vb;

                r = condition(x->lhs, c, &a, &va);
                if (r >= 0)
                        r = condition(x->rhs, c, &b, &vb);
                if (r < 0)
                        return r;
                if (x->op == OP_AND)
                        *ret = a == EXPR_FALSE || b == EXPR_FALSE ? EXPR_FALSE
                                : a == EXPR_NO_DATA || b == EXPR_NO_DATA ? EXPR_NO_DATA : EXPR_TRUE;
                else
                        *ret = a == EXPR_TRUE || b == EXPR_TRUE ? EXPR_TRUE
                                : a == EXPR_FALSE || b == EXPR_FALSE ? EXPR_FALSE : EXPR_NO_DATA;
                *ret_value = isnan(va) ? vb : va;
                return 0;
        }
        if (x->kind == N_BINARY && op_is_comparison(x->op)) {
                ExprValue l;

                /* Missing operands are "no data", not "false": evaluate them first. */
                r = eval(x->lhs, c, &l);
                if (r < 0)
                        return r;
                *ret_value = first_value(&l);
                r = eval_binary(x, c, true, &v);
                if (r < 0)
                        return r;
                *ret = verdict_of(&v);
                return 0;
        }
        r = eval(x, c, &v);
        if (r < 0)
                return r;
        *ret_value = first_value(&v);
        *ret = verdict_of(&v);
        return 0;
}

int expr_eval_condition(const Expr *x, ExprContext *c, ExprVerdict *ret, double *ret_value) {
        double v = NAN;
        int r;

        assert_return(x && c && ret, -EINVAL);
        c->depth = 0;
        r = condition(x, c, ret, &v);
        if (r >= 0 && ret_value)
                *ret_value = v;
        return r;
}

static void samples_since(const Expr *x, const ExprContext *c, uint64_t since, size_t *min) {
        switch (x->kind) {
        case N_NUMBER:
        case N_BASELINE:
                return;
        case N_SELECTOR: {
                size_t iter = 0, best = 0;
                const Series *s;
                uint64_t end = c->now >= x->offset ? c->now - x->offset : 0;

                while (c->store && (s = series_store_iterate(c->store, x->sel->id, &iter))) {
                        size_t first, last, n = 0;
                        series_window(s, (int64_t) since, end, &first, &last);
                        for (size_t i = first; i < last; i++)
                                if (!series_is_stale_value(series_sample(s, i).v))
                                        n++;
                        best = MAX(best, n);
                }
                *min = MIN(*min, best);
                return;
        }
        case N_DEFINE:
                samples_since(x->def->root, c, since, min);
                return;
        default:
                if (x->lhs)
                        samples_since(x->lhs, c, since, min);
                if (x->rhs)
                        samples_since(x->rhs, c, since, min);
                for (size_t i = 0; i < x->n_args; i++)
                        samples_since(x->args[i], c, since, min);
        }
}

size_t expr_samples_since(const Expr *x, const ExprContext *c, uint64_t since) {
        size_t m = SIZE_MAX;
        samples_since(x, c, since, &m);
        return m;
}

void expr_snapshot_done(ExprSnapshot *s) {
        if (!s)
                return;
        free(s->mem);
        *s = (ExprSnapshot){};
}

int expr_snapshot_from_value(const ExprValue *v, ExprSnapshot *ret) {
        size_t n = v->type == EXPR_SCALAR ? 1 : v->n, bytes = (n + 1) * sizeof(ExprSample);
        ExprSample *out;
        uint8_t *mem;
        char *o;

        for (size_t i = 0; v->type == EXPR_VECTOR && i < n; i++) {
                bytes += v->samples[i].labels.n * sizeof(LabelPair);
                for (size_t j = 0; j < v->samples[i].labels.n; j++)
                        bytes += strlen(v->samples[i].labels.pairs[j].name) +
                                 strlen(v->samples[i].labels.pairs[j].value) + 2;
        }
        mem = calloc(1, bytes);
        if (!mem)
                return -ENOMEM;
        out = (ExprSample *) mem;
        o = (char *) (out + n + 1);
        if (v->type == EXPR_SCALAR)
                out[0] = (ExprSample){.value = v->scalar};
        else {
                LabelPair *lp = (LabelPair *) (out + n + 1);
                o = (char *) lp;
                for (size_t i = 0; i < n; i++)
                        o += v->samples[i].labels.n * sizeof(LabelPair);
                for (size_t i = 0; i < n; i++) {
                        const LabelSet *l = &v->samples[i].labels;
                        out[i].value = v->samples[i].value;
                        out[i].labels = (LabelSet){.pairs = lp, .n = l->n};
                        for (size_t j = 0; j < l->n; j++) {
                                lp[j].name = o;
                                o = stpcpy(o, l->pairs[j].name) + 1;
                                lp[j].value = o;
                                o = stpcpy(o, l->pairs[j].value) + 1;
                        }
                        lp += l->n;
                }
        }
        *ret = (ExprSnapshot){.present = true, .samples = out, .n = n, .mem = mem};
        return 0;
}

char *expr_value_to_string(const ExprValue *v, Arena *a) {
        Buf b = {};
        char num[64], *r;

        if (v->type == EXPR_SCALAR) {
                expr_format_number(v->scalar, num, sizeof(num));
                return arena_strdup(a, num);
        }
        if (v->n == 0)
                return arena_strdup(a, "no data");
        for (size_t i = 0; i < v->n && i < 3; i++) {
                const LabelSet *l = &v->samples[i].labels;

                if (i > 0)
                        buf_add(&b, ", ");
                if (l->metric || l->n > 0) {
                        buf_add(&b, "%s{", strempty(l->metric));
                        for (size_t j = 0; j < l->n; j++) {
                                buf_add(&b, "%s%s=", j ? ", " : "", l->pairs[j].name);
                                buf_quoted(&b, l->pairs[j].value);
                        }
                        buf_add(&b, "} ");
                }
                expr_format_number(v->samples[i].value, num, sizeof(num));
                buf_add(&b, "%s", num);
        }
        if (v->n > 3)
                buf_add(&b, ", … (%zu series)", v->n);
        if (b.oom || !b.s) {
                free(b.s);
                return NULL;
        }
        r = arena_strndup(a, b.s, b.n);
        free(b.s);
        return r;
}

bool expr_has_baseline(const Expr *x) {
        return x && x->has_baseline;
}
