#!/usr/bin/env bash
# The IWAE paper's Table 1 protocol (experiments/configs/iwae_table1.py), at the budget this
# machine allows: VAE (k=1), IWAE K=5, IWAE K=50 and IWAE K=50 with DReG; the paper's
# 1-stochastic-layer network (784-200-200-50, tanh); test NLL by importance sampling, K=5000.
# Usage: bash bench/iwae_table.sh EPOCHS LL_EXAMPLES OUT_DIR   (needs ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-20}; ll_examples=${2:-5000}; out=${3:-runs/bench_iwae}
data=${DATA_DIR:-../shared/data}
common=(--config.epochs="$epochs" --config.ll_examples="$ll_examples" --config.data_dir="$data")
python launch.py compare_elbos --workdir="$out/dynamic" \
    --config=experiments/configs/iwae_table1.py "${common[@]}"
python launch.py compare_elbos --workdir="$out/static" \
    --config=experiments/configs/iwae_table1.py:static "${common[@]}"
