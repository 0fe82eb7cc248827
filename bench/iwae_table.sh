#!/usr/bin/env bash
# The IWAE paper's Table 1 protocol, at the budget this machine allows.
# VAE (k=1), IWAE K=5, IWAE K=50 and IWAE K=50 with DReG; the paper's 1-stochastic-layer
# network (784-200-200-50, tanh); test NLL by importance sampling with K=5000.
# Usage: bash bench/iwae_table.sh EPOCHS LL_EXAMPLES OUT_DIR   (needs ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-5}; ll_examples=${2:-1000}; out=${3:-runs/bench_iwae}
data=${DATA_DIR:-../shared/data}
common=(--variants=elbo,iwae=5,iwae=50,iwae_dreg=50 --iwae_arch --seeds=1 --epochs="$epochs"
        --batch_size=100 --learning_rate=1e-3 --ll_samples=5000 --ll_examples="$ll_examples"
        --eval_every=1 --checkpoint_every=1 --data_dir="$data")
python launch.py compare_elbos --workdir="$out/dynamic" --dataset=mnist --preprocess=dynamic "${common[@]}"
python launch.py compare_elbos --workdir="$out/static" --dataset=binarized_mnist --preprocess=static "${common[@]}"
