#!/usr/bin/env bash
# Every row of the README's "Reproductions" table, each from its config at this machine's
# budget (budget=machine; pass BUDGET=paper for the papers' budgets, days on a CPU):
#   IWAE Table 1 (burda2016_iwae.py), M2 (kingma2014_m2.py) and its architecture ablation
#   (:genjax_architecture, 100 labels, 2 seeds), the CVAE and the DCGAN (their defaults).
# Usage: bash bench/reproductions.sh [OUT_DIR]   (DATA_DIR defaults to ../shared/data)
# Each command prints its wall time; results.json / results.md / figures land in OUT_DIR/*.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/reproductions}
data=${DATA_DIR:-../shared/data}
budget=${BUDGET:-machine}
run() {   # run NAME EXPERIMENT ARGS...: one timed command
  local name=$1 experiment=$2; shift 2
  local start=$SECONDS
  python launch.py "$experiment" --workdir="$out/$name" --config.data_dir="$data" "$@"
  echo "== $name: $((SECONDS - start)) s wall"
}
run burda2016 compare_elbos --config=experiments/configs/burda2016_iwae.py \
    --config.budget="$budget"
run kingma2014 semi_supervised --config=experiments/configs/kingma2014_m2.py \
    --config.budget="$budget"
run kingma2014_ablation semi_supervised \
    --config=experiments/configs/kingma2014_m2.py:genjax_architecture \
    --config.budget="$budget" --config.labels_per_class=10 --config.seeds=2
run cvae train_cvae
run dcgan train_gan
