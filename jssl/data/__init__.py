"""Data sources, host augmentation and the per-process input pipeline.

Importing any of it first hides TensorFlow's GPUs (``jssl.data.tf_host``): every jssl module
that uses TF comes through this package, so this is the one place that does it.
"""

from jssl.data import tf_host  # noqa: F401  (imported for its effect: TF off the GPUs JAX needs)
