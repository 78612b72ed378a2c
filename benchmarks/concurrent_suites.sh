#!/usr/bin/env bash
# The README's test command twice at the same time, each in its own clean clone of this repository: the suite must
# stay green on a busy machine (no test may depend on this machine's speed). Results: results/concurrent_suites.md.
#
#   bash benchmarks/concurrent_suites.sh [WORK_DIR]
#
# Writes WORK_DIR/a.log and b.log (pytest, with /usr/bin/time -v's figures where it exists), load.txt (the 1-, 5- and
# 15-minute load averages every 30 s) and times.txt (start, exit statuses, end). Exits 0 only if both copies passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work" && cd "$work" || exit 1
for copy in a b; do rm -rf "$copy" && git clone -q "$repo" "$copy" || exit 1; done
timer=()
[ -x /usr/bin/time ] && timer=(/usr/bin/time -v)
date -u +"start %FT%TZ" > times.txt
(while sleep 30; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)" >> load.txt; done) &
sampler=$!
pids=()
for copy in a b; do
  # The editable install points at one checkout; PYTHONPATH makes each copy (and its subprocesses) import its own.
  (cd "$copy" && PYTHONPATH="$work/$copy" "${timer[@]}" python -m pytest -p no:cacheprovider > "../$copy.log" 2>&1) &
  pids+=($!)
done
status=0
for index in 0 1; do
  wait "${pids[$index]}"; code=$?
  echo "$([ "$index" = 0 ] && echo a || echo b) rc=$code" >> times.txt
  [ "$code" = 0 ] || status=1
done
kill "$sampler"
date -u +"end %FT%TZ" >> times.txt
grep -h -E "passed|failed" a.log b.log | tail -2
echo "logs in $work"
exit $status
