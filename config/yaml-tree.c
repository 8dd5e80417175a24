/* SPDX-License-Identifier: Apache-2.0 */

#include <stdarg.h>
#include <yaml.h>

#include "yaml-tree.h"

YNode *ynode_free(YNode *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
        return NULL;
}

bool ynode_is_null(const YNode *n) {
        return !n || (n->type == YNODE_SCALAR && n->plain &&
                      (n->len == 0 || streq(n->value, "~") || streq(n->value, "null") || streq(n->value, "Null") ||
                       streq(n->value, "NULL")));
}

const YNode *ynode_get(const YNode *map, const char *key) {
        if (!map || map->type != YNODE_MAPPING)
                return NULL;
        for (size_t i = 0; i + 1 < map->n_items; i += 2)
                if (streq(map->items[i]->value, key))
                        return map->items[i + 1];
        return NULL;
}

const char *ynode_type_name(const YNode *n) {
        if (ynode_is_null(n))
                return "null";
        switch (n->type) {
        case YNODE_SCALAR:
                return "scalar";
        case YNODE_MAPPING:
                return "mapping";
        case YNODE_SEQUENCE:
                return "sequence";
        }
        return "?";
}

typedef struct Builder {
        yaml_parser_t parser;
        YError *err;
        size_t nodes;
} Builder;

static int fail(Builder *b, const yaml_mark_t *mark, const char *fmt, ...) _printf_(3, 4);
static int fail(Builder *b, const yaml_mark_t *mark, const char *fmt, ...) {
        va_list ap;

        b->err->line = (unsigned) mark->line + 1;
        b->err->column = (unsigned) mark->column + 1;
        va_start(ap, fmt);
        vsnprintf(b->err->message, sizeof(b->err->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int next_event(Builder *b, yaml_event_t *ev) {
        if (!yaml_parser_parse(&b->parser, ev)) {
                yaml_mark_t m = b->parser.problem_mark;
                return fail(b, &m, "%s%s%s", b->parser.problem ?: "YAML syntax error",
                            b->parser.context ? " " : "", b->parser.context ?: "");
        }
        return 0;
}

static int add_item(YNode *parent, YNode *child) {
        YNode **a;

        a = reallocarray(parent->items, parent->n_items + 1, sizeof(YNode *));
        if (!a)
                return -ENOMEM;
        parent->items = a;
        parent->items[parent->n_items++] = child;
        return 0;
}

static YNode *node_new(YNodeType type, const yaml_mark_t *m) {
        YNode *n = calloc(1, sizeof(YNode));
        if (!n)
                return NULL;
        n->type = type;
        n->line = (unsigned) m->line + 1;
        n->column = (unsigned) m->column + 1;
        return n;
}

/* Builds the node that starts with ev (already consumed). */
static int build_node(Builder *b, yaml_event_t *ev, unsigned depth, YNode **ret) {
        _cleanup_(ynode_freep) YNode *n = NULL;
        int r;

        if (++b->nodes > YAML_TREE_MAX_NODES)
                return fail(b, &ev->start_mark, "too many nodes (limit %d)", YAML_TREE_MAX_NODES);
        if (depth > YAML_TREE_MAX_DEPTH)
                return fail(b, &ev->start_mark, "nesting too deep (limit %d)", YAML_TREE_MAX_DEPTH);

        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return fail(b, &ev->start_mark, "aliases are not supported");

        case YAML_SCALAR_EVENT:
                if (ev->data.scalar.anchor)
                        return fail(b, &ev->start_mark, "anchors are not supported");
                n = node_new(YNODE_SCALAR, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                if (memchr(ev->data.scalar.value, 0, ev->data.scalar.length))
                        return fail(b, &ev->start_mark, "NUL character in a string");
                n->value = strndup((const char *) ev->data.scalar.value, ev->data.scalar.length);
                if (!n->value)
                        return -ENOMEM;
                n->len = ev->data.scalar.length;
                n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->single_line = ev->start_mark.line == ev->end_mark.line &&
                                 (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                                  ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                                  ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
                /* Quoted scalars start one column before their text. */
                if (!n->plain && n->single_line)
                        n->column++;
                break;

        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
                bool map = ev->type == YAML_MAPPING_START_EVENT;

                if ((map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor))
                        return fail(b, &ev->start_mark, "anchors are not supported");
                n = node_new(map ? YNODE_MAPPING : YNODE_SEQUENCE, &ev->start_mark);
                if (!n)
                        return -ENOMEM;
                for (;;) {
                        yaml_event_t child_ev;
                        YNode *child = NULL;

                        r = next_event(b, &child_ev);
                        if (r < 0)
                                return r;
                        if (child_ev.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
                                yaml_event_delete(&child_ev);
                                break;
                        }
                        r = build_node(b, &child_ev, depth + 1, &child);
                        if (r >= 0 && map && (n->n_items % 2) == 0) {
                                /* A key: must be a scalar and unique in this mapping. */
                                if (child->type != YNODE_SCALAR)
                                        r = fail(b, &child_ev.start_mark, "mapping keys must be scalars");
                                else
                                        for (size_t i = 0; i < n->n_items; i += 2)
                                                if (streq(n->items[i]->value, child->value)) {
                                                        r = fail(b, &child_ev.start_mark,
                                                                 "duplicate key '%s' (first at line %u, column %u)",
                                                                 child->value, n->items[i]->line,
                                                                 n->items[i]->column);
                                                        break;
                                                }
                        }
                        yaml_event_delete(&child_ev);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                        r = add_item(n, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
                break;
        }

        default:
                return fail(b, &ev->start_mark, "unexpected YAML event");
        }

        *ret = TAKE_PTR(n);
        return 0;
}

int yaml_tree_parse(const char *data, size_t size, YNode **ret, YError *err) {
        Builder b = {.err = err};
        yaml_event_t ev;
        YNode *root = NULL;
        bool in_doc = false, done = false;
        int r = 0;

        *err = (YError){};
        if (!yaml_parser_initialize(&b.parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&b.parser, (const unsigned char *) data, size);

        while (!done) {
                r = next_event(&b, &ev);
                if (r < 0)
                        break;
                switch (ev.type) {
                case YAML_STREAM_START_EVENT:
                        break;
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (root || in_doc)
                                r = fail(&b, &ev.start_mark, "only one YAML document per file");
                        in_doc = true;
                        break;
                case YAML_DOCUMENT_END_EVENT:
                        break;
                default:
                        r = build_node(&b, &ev, 1, &root);
                        break;
                }
                yaml_event_delete(&ev);
                if (r < 0)
                        break;
        }
        yaml_parser_delete(&b.parser);
        if (r < 0) {
                ynode_free(root);
                return r;
        }
        *ret = root;
        return 0;
}
