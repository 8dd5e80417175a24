#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The man pages: each renders without a single warning (`man --warnings`, as lintian runs it, at the
# default width of 80 columns), has a NAME line `man` can index, and every page it refers to
# (and the unit's Documentation=) is one we ship or a well-known one. modelkeeper.yaml(5) documents
# every key of the schema in config/config.c.
#
# Usage: test-man-pages.sh SRCDIR UNIT MAN_PAGE... Exit 77 (SKIP) without man or groff.

set -euo pipefail
src=${1:?usage: $0 SRCDIR UNIT MAN_PAGE...}
unit=${2:?}
shift 2
command -v man >/dev/null && command -v groff >/dev/null || { echo "SKIP: man or groff is not installed"; exit 77; }

fail=0
ours=()
for page in "$@"; do
        ours+=("$(basename "$page")")
done

for page in "$@"; do
        name=$(basename "$page")
        for width in 80; do
                warnings=$(MANWIDTH=$width LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null || echo "man failed")
                if [ -n "$warnings" ]; then
                        echo "FAIL: $name at width $width:"
                        printf '%s\n' "$warnings" | sed 's/^/    /'
                        fail=1
                fi
        done
        # NAME: "page \- description" on one line, as lexgrog(1) wants it.
        if ! lexgrog "$page" >/dev/null 2>&1; then
                echo "FAIL: $name: lexgrog cannot parse its NAME section"
                fail=1
        fi
        # Cross references to pages of our own must exist.
        while read -r ref; do
                if ! printf '%s\n' "${ours[@]}" | grep -qxF "$ref"; then
                        echo "FAIL: $name refers to $ref, which is not shipped"
                        fail=1
                fi
        done < <(grep -oE '^\.BR modelkeeper[a-z.\\-]* \([0-9]\)' "$page" | sed -E 's/^\.BR ([^ ]*) \(([0-9])\)/\1.\2/; s/\\-/-/g' | sort -u)
done

# The unit's Documentation= names our pages.
for doc in $(sed -n 's/^Documentation=//p' "$unit"); do
        ref=$(printf '%s' "$doc" | sed -E 's/^man:([^()]*)\(([0-9])\)$/\1.\2/')
        if ! printf '%s\n' "${ours[@]}" | grep -qxF "$ref"; then
                echo "FAIL: Documentation=$doc in the unit is not a page we ship"
                fail=1
        fi
done

# Every key of the schema appears as a bold term in modelkeeper.yaml(5).
yaml5=
for page in "$@"; do
        [ "$(basename "$page")" = modelkeeper.yaml.5 ] && yaml5=$page
done
if [ -n "$yaml5" ]; then
        keys=$(grep -oE '\{"[a-z_]+", p_[a-z_]+' "$src/config/config.c" | sed -E 's/^\{"([a-z_]+)".*/\1/' | sort -u)
        [ -n "$keys" ] || { echo "FAIL: no keys found in config/config.c"; fail=1; }
        n=0
        for key in $keys; do
                n=$((n + 1))
                if ! grep -qE "^\.(B|BR|RB|IR|BI|SS) .*\b${key}\b" "$yaml5"; then
                        echo "FAIL: modelkeeper.yaml(5) does not document the key '$key'"
                        fail=1
                fi
        done
        echo "modelkeeper.yaml(5) documents the $n keys of config/config.c"
fi

[ $fail = 0 ] && echo "PASS: $# man pages"
exit $fail
