#!/usr/bin/env bash
# Instruction counts per operation (valgrind --tool=callgrind; stable on this machine, unlike
# timings), and the top functions, for single-thread ops on a full cache.
#
#   scripts/callgrind.sh                       # session-cache: get miss add remove churn
#   SUBJECTS="session-cache scc-HashMap quick_cache" OPS="get add" scripts/callgrind.sh
#
# Output: target/callgrind/<subject>-<op>.out (open with callgrind_annotate or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS="${SUBJECTS:-session-cache}"
OPS="${OPS:-get miss add remove churn}"
N="${N:-20000}"
TOP="${TOP:-15}"
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
bin=$(cargo bench --no-run --bench compare --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="compare" and m.get("executable"): print(m["executable"])')
mkdir -p target/callgrind
printf '%-14s %-7s %12s\n' subject op instr/op
for s in $SUBJECTS; do
  for op in $OPS; do
    f=target/callgrind/$s-$op.out
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*' \
      --callgrind-out-file="$f" "$bin" profile --subject "$s" --op "$op" --n "$N" >/dev/null 2>&1
    total=$(grep -m1 -E '^(summary|totals):' "$f" | awk '{print $2}')
    printf '%-14s %-7s %12.0f\n' "$s" "$op" "$(echo "$total / $N" | bc -l)"
    if [ "${VERBOSE:-0}" = 1 ]; then
      callgrind_annotate --inclusive=no "$f" 2>/dev/null | grep -E '^ *[0-9,]+ ' | sed -n "2,$((TOP + 1))p" | cut -c1-160 || true
    fi
  done
done
