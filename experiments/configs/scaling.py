"""scaling: training throughput across placements, device counts, batch and model sizes.

Defaults: every placement, device counts 1, 2, 4, ... up to all, 64 examples per device,
MLP VAEs with one hidden layer of 256 and of 1024, strong and weak scaling, 3 timed
chunks of 20 steps.

  python launch.py scaling --workdir=runs/scaling --host_devices=8

No measured figures: on simulated CPU devices, which share the same cores, the run tests
the code path, not speed (README, "Scale-out").
Variants:
  smoke: tiny, for tests.
"""

import ml_collections

from experiments.configs import base


def get_config(variant=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.learning_rate = 1e-3
  c.latent_dim = 32
  c.placements = "none,pmap,sharded"
  c.device_counts = ()
  c.per_device_batch = (64,)
  c.model_sizes = "256,1024"
  c.modes = "strong,weak"
  c.steps = 20
  c.repeats = 3
  return base.with_variant(c, variant, {
      "smoke": dict(placements="none", device_counts=(1,), per_device_batch=(8,),
                    model_sizes="16", modes="weak", steps=2, repeats=1, latent_dim=2),
  })
