#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Interoperability with the reference age tool (Debian package "age"), both directions:
#   ours -> age -d     files sealed by mk-age open with age, with our key and with age-keygen's
#   age -r -> ours     files from age open with mk-age, also with several recipients and via pipes
# Usage: age-interop.sh MK_AGE SIZE...    (sizes in bytes; exit 77 = skipped when age is missing)
set -euo pipefail

MK_AGE=$(realpath "$1")
shift
if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null; then
        echo "SKIP: age/age-keygen not installed (Debian package 'age')"
        exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/var/tmp}/age-interop.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

age-keygen -o theirs.key 2>/dev/null
"$MK_AGE" keygen ours.key
# Each tool must read the other's identity file.
theirs=$(age-keygen -y theirs.key)
ours=$(age-keygen -y ours.key)
[ "$("$MK_AGE" recipient theirs.key)" = "$theirs" ]
[ "$("$MK_AGE" recipient ours.key)" = "$ours" ]

fail=0
check() { # what, expected file, got file
        if ! cmp -s "$2" "$3"; then
                echo "FAIL: $1"
                fail=1
        fi
}

for size in "$@"; do
        head -c "$size" /dev/urandom > plain
        echo "size $size"

        # ours -> age -d (age does not create -o for an empty output: use stdout)
        "$MK_AGE" seal -r "$ours" plain sealed.ours
        age -d -i ours.key sealed.ours > out
        check "mk-age seal -> age -d ($size)" plain out
        ours_size=$(stat -c %s sealed.ours)
        rm -f sealed.ours
        "$MK_AGE" seal -j 1 -r "$theirs" -r "$ours" plain sealed.ours
        age -d -i theirs.key sealed.ours > out
        check "mk-age seal -j1, 2 recipients -> age -d ($size)" plain out
        rm -f sealed.ours
        # A pipe in and out of mk-age (partial reads and writes).
        cat plain | "$MK_AGE" seal -r "$theirs" - - | age -d -i theirs.key > out
        check "mk-age seal via pipes -> age -d ($size)" plain out

        # age -r -> ours
        age -r "$theirs" -o sealed.theirs plain
        # Same layout apart from randomness: exactly the size age produces.
        [ "$ours_size" = "$(stat -c %s sealed.theirs)" ] || { echo "FAIL: sizes differ ($size)"; fail=1; }
        "$MK_AGE" open -i theirs.key sealed.theirs out
        check "age -r -> mk-age open ($size)" plain out
        cat sealed.theirs | "$MK_AGE" open -i theirs.key - - > out
        check "age -r -> mk-age open via pipes ($size)" plain out
        age -r "$ours" -r "$theirs" plain | "$MK_AGE" open -j 1 -i ours.key - out
        check "age -r, 2 recipients -> mk-age open -j1 ($size)" plain out

        # Each side refuses the other's file when it has the wrong key, with the right class.
        if "$MK_AGE" open -i ours.key sealed.theirs out 2>/dev/null; then
                echo "FAIL: opened with the wrong key ($size)"
                fail=1
        elif [ $? -ne 2 ]; then
                echo "FAIL: wrong key is not 'no match' ($size)"
                fail=1
        fi
        rm -f plain out sealed.*
done

exit $fail
