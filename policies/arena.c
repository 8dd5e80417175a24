/* SPDX-License-Identifier: Apache-2.0 */

#include <stdarg.h>

#include "arena.h"

struct ArenaChunk {
        ArenaChunk *next;
        size_t size, used;
        max_align_t data[];
};

#define ARENA_CHUNK_MIN (16 * 1024)
#define ARENA_ALIGN     16

void *arena_alloc(Arena *a, size_t size) {
        ArenaChunk *c = a->head;
        size_t need, csize;
        void *p;

        if (size == 0)
                size = 1;
        if (ADD_OVERFLOW(size, (size_t) ARENA_ALIGN - 1, &need))
                return NULL;
        need &= ~((size_t) ARENA_ALIGN - 1);
        if (a->limit > 0 && (need > a->limit || a->used > a->limit - need))
                return NULL;

        if (!c || c->size - c->used < need) {
                size_t want = a->next_chunk > 0 ? a->next_chunk : (size_t) ARENA_CHUNK_MIN;

                csize = MAX(want, need);
                c = malloc(sizeof(ArenaChunk) + csize);
                if (!c)
                        return NULL;
                c->size = csize;
                c->used = 0;
                c->next = a->head;
                a->head = c;
                if (a->next_chunk > 0 && a->next_chunk < ARENA_CHUNK_MIN)
                        a->next_chunk *= 2;
        }
        p = (uint8_t *) c->data + c->used;
        c->used += need;
        a->used += need;
        return p;
}

void *arena_alloc0(Arena *a, size_t size) {
        void *p = arena_alloc(a, size);
        if (p)
                memset(p, 0, size);
        return p;
}

void *arena_allocarray(Arena *a, size_t n, size_t size) {
        size_t t;

        if (MUL_OVERFLOW(n, size, &t))
                return NULL;
        return arena_alloc(a, t);
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
        char *p = arena_alloc(a, n + 1);
        if (!p)
                return NULL;
        memcpy(p, s, n);
        p[n] = 0;
        return p;
}

char *arena_strdup(Arena *a, const char *s) {
        return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...) {
        va_list ap;
        char *p;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return NULL;
        p = arena_alloc(a, (size_t) n + 1);
        if (!p)
                return NULL;
        va_start(ap, fmt);
        vsnprintf(p, (size_t) n + 1, fmt, ap);
        va_end(ap);
        return p;
}

void arena_reset(Arena *a) {
        ArenaChunk *c = a->head;

        if (!c)
                return;
        /* The oldest chunk is at the end of the list; keep the first-made one only if it is the
         * small default size, so a one-off huge evaluation does not pin its memory. */
        while (c->next) {
                ArenaChunk *n = c->next;
                free(c);
                c = n;
        }
        if (c->size > ARENA_CHUNK_MIN) {
                free(c);
                c = NULL;
        } else
                c->used = 0;
        a->head = c;
        a->used = 0;
}

void arena_done(Arena *a) {
        while (a->head) {
                ArenaChunk *n = a->head->next;
                free(a->head);
                a->head = n;
        }
        a->used = 0;
}
