/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A small YAML document tree built from libyaml's event stream, with the position of every node,
 * so that every error can say file:line:col. Limits (size, depth, node count) are checked while
 * parsing; anchors and aliases are refused outright (no "billion laughs"), as are duplicate keys
 * and non-scalar keys.
 */

#include "macros.h"

#define YAML_TREE_MAX_DEPTH 32
#define YAML_TREE_MAX_NODES 100000

typedef enum YNodeType {
        YNODE_SCALAR,
        YNODE_MAPPING,
        YNODE_SEQUENCE,
} YNodeType;

typedef struct YNode YNode;
struct YNode {
        YNodeType type;
        unsigned line, column;  /* 1-based */
        char *value;            /* scalar: the text (NUL-terminated; length in len) */
        size_t len;
        bool plain;             /* scalar written without quotes (a "null" or "~" only means null then) */
        bool single_line;       /* scalar text sits on its node's line, so column + offset is exact */
        YNode **items;          /* mapping: key0, value0, key1, value1, …; sequence: items */
        size_t n_items;
};

typedef struct YError {
        unsigned line, column;
        char message[256];
} YError;

YNode *ynode_free(YNode *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(YNode *, ynode_free);

/* Parse one document. On a syntax or limit error returns -EINVAL and fills *err. An empty
 * document gives *ret = NULL. */
int yaml_tree_parse(const char *data, size_t size, YNode **ret, YError *err);

bool ynode_is_null(const YNode *n) _pure_;
/* Value node of a key in a mapping, or NULL. */
const YNode *ynode_get(const YNode *map, const char *key) _pure_;
const char *ynode_type_name(const YNode *n) _pure_;
