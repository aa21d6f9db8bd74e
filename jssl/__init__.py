"""jssl: self-supervised pretraining of image encoders in JAX."""
