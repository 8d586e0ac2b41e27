#!/bin/sh
# test/cli_style.sh: the rules of the readable core, checked on the sources
# and the objects of the build under test ($H2T_BIN's folder):
#   - no two .c files call each other (from `nm`: who defines and who uses
#     each external symbol), so every file can be read after the ones it uses;
#   - no function of the core (backbones, features, lasso, the pipeline) is
#     longer than 80 lines (signature to closing brace);
#   - no function-local `static` that is not const (state hidden in a function);
#   - no comment cites a document outside the repository (SPEC), and every
#     "docs/ALGORITHM.md §N" cited exists in docs/ALGORITHM.md.
H2T=${H2T_BIN:-./h2t}
B=$(dirname "$H2T")
CORE="backbone.c model.c resnet.c vit.c pooling.c extract.c lasso.c scores.c cv.c pipeline.c"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

ok() { echo "PASS cli_style: $1"; }
bad() { echo "FAIL cli_style: $1"; }
check() { if [ "$1" = 0 ]; then ok "$2"; else bad "$2"; fi; }

# ---- calls between files
if command -v nm >/dev/null 2>&1 && [ -f "$B/lasso.o" ]; then
    for o in "$B"/*.o; do
        f=$(basename "$o" .o)
        [ -f "$f.c" ] || continue
        nm "$o" 2>/dev/null | awk -v f="$f" '$2 ~ /^[TDBR]$/ { print "def", $3, f } $1 == "U" { print "use", $2, f }'
    done >"$T/syms"
    # file A uses a symbol defined by file B: the edge A -> B
    awk '$1 == "def" { d[$2] = $3 } $1 == "use" { u[NR] = $2 " " $3 }
         END { for (i in u) { split(u[i], a, " "); if ((a[1] in d) && d[a[1]] != a[2]) print a[2], d[a[1]] } }' \
        "$T/syms" | sort -u >"$T/edges"
    awk '{ e[$1 " " $2] = 1 } END { for (k in e) { split(k, a, " "); if ((a[2] " " a[1]) in e && a[1] < a[2]) print a[1] " <-> " a[2] } }' \
        "$T/edges" >"$T/mutual"
    [ ! -s "$T/mutual" ] && [ -s "$T/edges" ]
    check $? "no two .c files call each other ($(wc -l <"$T/edges") file-to-file edges$( [ -s "$T/mutual" ] && printf ', mutual: %s' "$(tr '\n' ' ' <"$T/mutual")"))"
else
    echo "SKIP cli_style: calls between files (no nm, or no objects in $B)"
fi

# ---- function length in the core (our layout: signature and braces at column 0)
awk '/^[A-Za-z_].*\(/ && !/;[ \t]*$/ { if (!infn) { sig = FNR; name = $0; sub(/\(.*/, "", name); n = split(name, a, /[ *]+/); name = a[n] } }
     /^\{/ { if (sig) infn = 1 }
     /^\}/ { if (infn) { if (FNR - sig + 1 > 80) printf "%s:%d %s (%d lines)\n", FILENAME, sig, name, FNR - sig + 1; infn = 0; sig = 0 } }' \
    $CORE >"$T/long"
[ ! -s "$T/long" ]
check $? "no function of the core is longer than 80 lines $(tr '\n' ' ' <"$T/long")"

# ---- no state in static locals (a static inside a function body that is not const)
awk '/^\{/ { infn = 1 } /^\}/ { infn = 0 }
     infn && /^[ \t]+static / && !/static const/ && !/static inline/ { print FILENAME ":" FNR ": " $0 }' \
    $CORE run.c demo.c headio.c h2t.c >"$T/statics"
[ ! -s "$T/statics" ]
check $? "no function keeps state in a static local $(head -3 "$T/statics" | tr '\n' ' ')"

# ---- citations
grep -n 'SPEC' ./*.c ./*.h >"$T/spec"
[ ! -s "$T/spec" ]
check $? "no comment cites SPEC, a document outside the repository $(head -3 "$T/spec" | tr '\n' ' ')"
n=0
for s in $(grep -ho 'ALGORITHM.md §[0-9]*' ./*.c ./*.h | sort -u | sed 's/.*§//'); do
    grep -q "^## §$s " docs/ALGORITHM.md || { echo "cited but missing: docs/ALGORITHM.md §$s"; n=1; }
done
check $n "every docs/ALGORITHM.md §N cited in the sources exists"

# ---- docs/READING.md: every file.c:function it names is defined in that file
grep -o '[a-z_0-9]*\.c:[A-Za-z_][A-Za-z_0-9]*' docs/READING.md | sort -u >"$T/refs"
: >"$T/unresolved"
while IFS=: read -r f fn; do
    [ -f "$f" ] || [ -f "test/$f" ] || { echo "$f:$fn" >>"$T/unresolved"; continue; }
    [ -f "$f" ] || f="test/$f"
    grep -q "^[A-Za-z_].*[ *]$fn(" "$f" || echo "$f:$fn" >>"$T/unresolved"
done <"$T/refs"
[ -s "$T/refs" ] && [ ! -s "$T/unresolved" ]
check $? "docs/READING.md: all $(wc -l <"$T/refs") file.c:function references resolve $(head -5 "$T/unresolved" | tr '\n' ' ')"
exit 0
