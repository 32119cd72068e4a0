#!/usr/bin/env bash
# The recovery benchmark of issue 4: every schedule (and iterative with distillation) x weight,unit
# pruning x the 13 reference sparsities on MNIST with the reference MLP, layer-wise; then the
# best accuracy per (method, sparsity), checked against the targets, and the total time.
#
#   scripts/bench_recovery.sh [OUT] [extra prunekit sweep options...]
#
# OUT defaults to runs/recovery; SCHEDULES and SPARSITIES (environment) narrow the run, e.g.
#   SPARSITIES=75,90 SCHEDULES=gradual scripts/bench_recovery.sh runs/try --methods unit
# Expect about 290 epochs of training: ~35-45 min on 2 idle CPU cores (7-9 s per epoch).
# Finished points are kept: rerunning after an interruption (Ctrl-C) resumes, chained schedules
# from their last finished level. Exit status 1 if a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/recovery}
shift || true
PRUNEKIT=${PRUNEKIT:-.venv/bin/prunekit}
PYTHON=${PYTHON:-.venv/bin/python}
SCHEDULES=${SCHEDULES:-oneshot,finetune,iterative,gradual,lottery,iterative+distill}
SPARSITIES=${SPARSITIES:-0,25,50,60,70,75,80,85,90,92.5,95,97.5,99}
if [[ -z "${PRUNEKIT_DATA:-}" && -d ../shared/data/mnist ]]; then export PRUNEKIT_DATA=../shared/data/mnist; fi

start=$(date +%s)
"$PRUNEKIT" sweep --model mlp --schedules "$SCHEDULES" --methods weight,unit --scope layer \
    --sparsities "$SPARSITIES" --out "$OUT" "$@"
end=$(date +%s)

"$PYTHON" - "$OUT" "$((end - start))" <<'EOF'
import sys

from prunekit.study import read_results

out, seconds = sys.argv[1], int(sys.argv[2])
TARGETS = {("weight", 97.5): 98.0, ("weight", 99.0): 97.5, ("unit", 75.0): 98.0, ("unit", 90.0): 97.0}
best = {}
for p in read_results(out):
    key = (p["method"], p["sparsity_target"])
    if key not in best or p["test_accuracy"] > best[key]["test_accuracy"]:
        best[key] = p
print(f"\nbest test accuracy per (method, sparsity) in {out}:")
print(f"{'method':8s} {'sparsity %':>10s} {'accuracy %':>10s}  {'schedule (epochs)':24s}  target")
failed = 0
for (method, k), p in sorted(best.items()):
    target = TARGETS.get((method, k))
    verdict = "" if target is None else (f">= {target:.1f}  ok" if 100 * p["test_accuracy"] >= target
                                         else f">= {target:.1f}  MISSED")
    failed += verdict.endswith("MISSED")
    print(f"{method:8s} {k:10g} {100 * p['test_accuracy']:10.2f}  "
          f"{p['schedule'] + ' (' + format(p.get('train_epochs') or 0, 'g') + ')':24s}  {verdict}")
missing = [key for key in TARGETS if key not in best]
print(f"\ntotal time {seconds // 60} min {seconds % 60} s (target: <= 60 min on 2 CPU cores); "
      f"accuracy targets: {len(TARGETS) - failed - len(missing)}/{len(TARGETS)} met")
sys.exit(1 if failed or missing else 0)
EOF
