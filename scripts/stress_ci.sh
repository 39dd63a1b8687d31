#!/usr/bin/env bash
# Run the test suite RUNS times in a row (default 3) while a background load keeps every core
# busy, to show that no test depends on how busy the machine is. Exits non-zero if any run
# fails; the load always stops, also on Ctrl-C.
#   bash scripts/stress_ci.sh            # 3 x `make test` beside nproc busy loops
#   RUNS=1 LOAD=4 bash scripts/stress_ci.sh
set -uo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
LOAD=${LOAD:-$(nproc)}
LOG_DIR=${LOG_DIR:-out/stress}
mkdir -p "$LOG_DIR"

load_pids=()
stop_load() {
  ((${#load_pids[@]})) && kill "${load_pids[@]}" 2>/dev/null
  wait "${load_pids[@]}" 2>/dev/null
  load_pids=()
}
trap stop_load EXIT INT TERM

make setup >/dev/null || exit 1
for _ in $(seq "$LOAD"); do
  # A busy loop per core, at the same priority as the tests: they compete for every cycle.
  bash -c 'while :; do :; done' &
  load_pids+=($!)
done
echo "stress: $LOAD busy loops on $(nproc) cores; $RUNS runs of make test; logs in $LOG_DIR"

failed=0
for run in $(seq "$RUNS"); do
  start=$(date +%s)
  if make test PYTEST_ARGS="${PYTEST_ARGS:-}" >"$LOG_DIR/run$run.log" 2>&1; then
    result=passed
  else
    result=FAILED
    failed=$((failed + 1))
  fi
  summary=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$LOG_DIR/run$run.log" | tail -1)
  echo "stress: run $run $result in $(( $(date +%s) - start )) s: $summary"
done
stop_load
echo "stress: $((RUNS - failed)) of $RUNS runs passed"
exit $((failed > 0))
