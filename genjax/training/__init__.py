"""Training: the train state (``state``), the pure train step (``step``) and a GAN's
two-player state and step (``gan_step``), a VQ-VAE's state with its EMA codebook
statistics and step (``vq_step``), the fused fit loop and evaluation
(``loop``), placement on one, N or many devices and hosts (``parallel``), and Orbax
checkpoints (``checkpoint``)."""
