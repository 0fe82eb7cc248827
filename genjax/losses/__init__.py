"""Pure losses: each is built from a model and returns ``loss_fn(params, batch, rng) ->
(scalar, metrics)``.

``elbo`` (the ELBO family: beta, warm-up, free bits, K samples, IWAE, and their gradient
estimators), ``autoencoder`` (the (denoising) autoencoder's reconstruction loss),
``semi_supervised`` (classifier cross-entropy and M2), ``gan`` (GAN losses and the R1
penalty), ``vq`` (the VQ-VAE's loss, EMA codebook and codebook statistics; its
``loss_fn`` returns ``(scalar, (metrics, codebook statistics))``, and the code prior's NLL).
"""
