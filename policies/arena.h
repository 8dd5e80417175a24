/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A bump allocator for everything that lives exactly as long as one compiled policy (the ASTs)
 * or one evaluation (intermediate vectors). Freeing is all at once, so evaluation code cannot
 * leak on its error paths, and a byte limit bounds what a hostile expression can make us
 * allocate.
 */

#include "macros.h"

typedef struct ArenaChunk ArenaChunk;

typedef struct Arena {
        ArenaChunk *head;
        size_t used;  /* bytes handed out since the last reset */
        size_t limit; /* 0: no limit */
        /* Size of the next chunk; 0: 16 KiB. A smaller start doubles with each chunk up to 16 KiB, for
         * long-lived arenas that usually stay small (a daemon keeps one per watched model). */
        size_t next_chunk;
} Arena;

void *arena_alloc(Arena *a, size_t size);
void *arena_alloc0(Arena *a, size_t size);
void *arena_allocarray(Arena *a, size_t n, size_t size);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) _printf_(2, 3);
/* Free everything but keep the first chunk for the next round. */
void arena_reset(Arena *a);
void arena_done(Arena *a);
