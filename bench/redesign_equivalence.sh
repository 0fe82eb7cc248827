#!/usr/bin/env bash
# The redesign (config files, runner, model protocol, library split) changed no number:
# every experiment at d9d5e88 (flags) and at this checkout (configs), on real MNIST at tiny
# budgets, then every results.json key compared (timings excepted).
# Usage: bash bench/redesign_equivalence.sh [DATA_DIR] [OUT_DIR]   (from the repository root)
set -uo pipefail
NEW=$(pwd)
D=${1:-../shared/data}; D=$(cd "$D" && pwd)
OUT=${2:-runs/equivalence}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
OLD="$OUT/d9d5e88"
[ -d "$OLD" ] || git clone -q "$NEW" "$OLD" && git -C "$OLD" checkout -q d9d5e88
export GENJAX_CACHE="$OUT"/cache
old() { (cd "$OLD" && PYTHONPATH="$OLD" timeout 900 python launch.py "$@" > /dev/null 2>&1); }
new() { (cd "$NEW" && timeout 900 python launch.py "$@" > /dev/null 2>&1); }
# train_vae: the default config at 1 epoch, 1000 prior samples scored
old train_vae --workdir="$OUT"/vae_old --data_dir=$D --epochs=1 --quality_samples=1000
new train_vae --workdir="$OUT"/vae_new --config.data_dir=$D --config.epochs=1 --config.quality_samples=1000
# compare_elbos: 2 variants, 1 epoch, 1 seed, IS on 50 images
old compare_elbos --workdir="$OUT"/cmp_old --data_dir=$D --variants=elbo,iwae_dreg=5 --seeds=2 --epochs=1 --hidden=64 --latent_dim=4 --ll_samples=50 --ll_examples=50 --snr_draws=4 --snr_batch=16
new compare_elbos --workdir="$OUT"/cmp_new --config.data_dir=$D --config.variants=elbo,iwae_dreg=5 --config.seeds=2 --config.epochs=1 --config.hidden=64 --config.latent_dim=4 --config.ll_samples=50 --config.ll_examples=50 --config.snr_draws=4 --config.snr_batch=16
# anomaly: 2 held-out classes, 1 epoch
old anomaly --workdir="$OUT"/an_old --data_dir=$D --epochs=1 --hidden=64 --latent_dim=4 --holdout_classes=1,7 --score_samples=2
new anomaly --workdir="$OUT"/an_new --config.data_dir=$D --config.epochs=1 --config.hidden=64 --config.latent_dim=4 --config.holdout_classes=1,7 --config.score_samples=2
# train_ae: 1 epoch
old train_ae --workdir="$OUT"/ae_old --data_dir=$D --epochs=1 --hidden=64 --latent_dim=4
new train_ae --workdir="$OUT"/ae_new --config.data_dir=$D --config.epochs=1 --config.hidden=64 --config.latent_dim=4
# semi_supervised: 1 epoch, 1 seed, 10 labels per class, few steps
old semi_supervised --workdir="$OUT"/ss_old --data_dir=$D --epochs=1 --m2_epochs=1 --hidden=64 --latent_dim=4 --seeds=1 --labels_per_class=10 --finetune_steps=100
new semi_supervised --workdir="$OUT"/ss_new --config.data_dir=$D --config.epochs=1 --config.m2_epochs=1 --config.hidden=64 --config.latent_dim=4 --config.seeds=1 --config.labels_per_class=10 --config.finetune_steps=100
# train_cvae: 1 epoch, 1000 quality samples
old train_cvae --workdir="$OUT"/cv_old --data_dir=$D --epochs=1 --hidden=64 --latent_dim=4 --quality_samples=1000
new train_cvae --workdir="$OUT"/cv_new --config.data_dir=$D --config.epochs=1 --config.hidden=64 --config.latent_dim=4 --config.quality_samples=1000
# train_gan: 1 epoch on a small width
old train_gan --workdir="$OUT"/gan_old --data_dir=$D --epochs=1 --gan_width=8 --quality_samples=1000
new train_gan --workdir="$OUT"/gan_new --config.data_dir=$D --config.epochs=1 --config.gan_width=8 --config.quality_samples=1000
OUT="$OUT" python - <<'PY'
import json, math, os
out = os.environ["OUT"]
for name in ("vae", "cmp", "an", "ae", "ss", "cv", "gan"):
  try:
    a = json.load(open(f"{out}/{name}_old/results.json"))
    b = json.load(open(f"{out}/{name}_new/results.json"))
  except Exception as e:
    print(name, "MISSING", e); continue
  skip = ("wall_s", "train_s", "examples_per_s", "per_seed")
  diff = {k: (a.get(k), b.get(k)) for k in set(a) & set(b)
          if not any(s in k for s in skip) and a.get(k) != b.get(k)
          and not (isinstance(a.get(k), float) and isinstance(b.get(k), float) and math.isnan(a[k]) and math.isnan(b[k]))}
  print(name, "keys old/new/common", len(a), len(b), len(set(a) & set(b)), "differing:", diff,
        "only old:", sorted(set(a) - set(b))[:8], "only new:", sorted(set(b) - set(a))[:8])
PY
