"""jssl: self-supervised pretraining of image encoders in JAX."""


def __getattr__(name):  # Lazy, so that `import jssl` (and `jssl --help`) does not load JAX.
  if name == "load_encoder":
    from jssl.export import load_encoder  # noqa: PLC0415

    return load_encoder
  raise AttributeError(f"module 'jssl' has no attribute {name!r}")
