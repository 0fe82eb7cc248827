#!/usr/bin/env bash
# The registries redesign (issue 28: data-set and model-part registries, the framework
# package, fields beside their readers, the split distributions / losses.elbo) changed no
# number: every experiment's smoke config at OLD_REV and at this checkout, on real MNIST,
# then every results.json key compared (timings excepted).
# Usage: bash bench/registry_equivalence.sh [OLD_REV] [DATA_DIR] [OUT_DIR]   (from the repo root)
set -uo pipefail
NEW=$(pwd)
REV=${1:-7cfcfb6}
D=${2:-../shared/data}; D=$(cd "$D" && pwd)
OUT=${3:-runs/registry_equivalence}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
OLD="$OUT/$REV"
[ -d "$OLD" ] || { git clone -q "$NEW" "$OLD" && git -C "$OLD" checkout -q "$REV"; }
export GENJAX_CACHE="$OUT"/cache
EXPERIMENTS="train_vae compare_elbos anomaly train_ae semi_supervised train_cvae train_gan train_vaegan train_vqvae scaling"
for e in $EXPERIMENTS; do
  for side in old new; do
    dir=$([ $side = old ] && echo "$OLD" || echo "$NEW")
    [ -f "$OUT/${e}_$side/results.json" ] && continue
    data=$([ "$e" = scaling ] || echo "--config.data_dir=$D")   # scaling: synthetic data
    (cd "$dir" && PYTHONPATH="$dir" timeout 1200 python launch.py "$e" --workdir="$OUT/${e}_$side" \
       --config="experiments/configs/$e.py:smoke" $data --noprogress \
       > "$OUT/${e}_$side.log" 2>&1) || echo "$e $side failed: see $OUT/${e}_$side.log"
  done
done
OUT="$OUT" EXPERIMENTS="$EXPERIMENTS" python - <<'PY'
import json, math, os
out = os.environ["OUT"]
skip = ("wall_s", "train_s", "examples_per_s", "seconds", "data_source", "_per_s", "speedup",
        "efficiency", "step_ms", "time")
def flat(d, prefix=""):
  if isinstance(d, dict):
    return {k2: v2 for k, v in d.items() for k2, v2 in flat(v, f"{prefix}{k}/").items()}
  if isinstance(d, list) and d and isinstance(d[0], dict):
    return {k2: v2 for i, v in enumerate(d) for k2, v2 in flat(v, f"{prefix}{i}/").items()}
  return {prefix[:-1]: d}
for name in os.environ["EXPERIMENTS"].split():
  try:
    a = flat(json.load(open(f"{out}/{name}_old/results.json")))
    b = flat(json.load(open(f"{out}/{name}_new/results.json")))
  except Exception as e:
    print(f"{name}: MISSING ({e})"); continue
  compared = [k for k in set(a) & set(b) if not any(s in k for s in skip)]
  diff = {k: (a[k], b[k]) for k in compared if a[k] != b[k] and not (
      isinstance(a[k], float) and isinstance(b[k], float) and math.isnan(a[k]) and math.isnan(b[k]))}
  print(f"{name}: keys old/new {len(a)}/{len(b)}, compared {len(compared)}, differing "
        f"{len(diff)} {dict(list(diff.items())[:4]) if diff else ''}; only old "
        f"{sorted(set(a) - set(b))[:4]}, only new {sorted(set(b) - set(a))[:4]}")
PY
