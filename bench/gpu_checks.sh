#!/usr/bin/env bash
# The GPU checks of bench/RESULTS.md ("On a GPU"), as one command on a machine with an
# NVIDIA GPU, JAX (CUDA), flax, optax, orbax, chex, absl, tqdm and torch but no package
# registry. Brought along in ignored folders (see README, "On a GPU"): .whl/ (genjax's
# other needs as wheels: ml_collections, tensorboardX) and .gpu/data/mnist.npz.
# Writes its reports into $OUT (default /tmp/genjax_gpu).
#
#   bash bench/gpu_checks.sh
set -u
OUT=${OUT:-/tmp/genjax_gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.45   # PyTorch shares the GPU
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, orbax.checkpoint as o, torch; print('jax', jax.__version__, \
'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, jax.devices())"
# Correctness of the one conv layer set on this backend (both implementations vs Flax).
timeout 100 python3 -m pytest -q -x -p no:cacheprovider tests/test_layers.py 2>&1 \
  | tail -n 15 | tee "$OUT/test_layers.txt"
# genjax against PyTorch on the same GPU, each library's default precision, then both float32.
timeout 220 python3 bench/throughput.py --rounds=4 --data_dir=.gpu/data \
  --out="$OUT/throughput_default.md" 2>"$OUT/throughput_default.log"
tail -n 3 "$OUT/throughput_default.log"
timeout 120 python3 bench/throughput.py --rounds=3 --no-check --precision=float32 \
  --data_dir=.gpu/data --out="$OUT/throughput_float32.md" 2>"$OUT/throughput_float32.log"
tail -n 3 "$OUT/throughput_float32.log"
# Native vs patch convolutions for the conv VAE on this backend (which should be the default?).
timeout 100 python3 bench/conv_vae_step.py --rounds=2 --steps_per_chunk=50 --chunks=4 \
  --data_dir=.gpu/data 2>&1 | tail -n 5 | tee "$OUT/conv_vae_step.md"
