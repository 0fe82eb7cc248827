"""Training: the train state (``state``), the pure train step (``step``) and a GAN's
two-player state and step (``gan_step``), the fused fit loop and evaluation
(``loop``), placement on one, N or many devices and hosts (``parallel``), and Orbax
checkpoints (``checkpoint``)."""
