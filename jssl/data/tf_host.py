"""TensorFlow for the host's input pipeline only: its GPUs hidden, once per process.

jssl runs TensorFlow on the CPU (tf.data, TensorBoard summaries). Left alone, TF claims
nearly all of every GPU's memory at its first op, the memory JAX needs. The package init of
``jssl.data`` imports this module, and every jssl module that uses TF reads data through
``jssl.data``, so they all pass through here before TF runs an op.
"""

from __future__ import annotations

import logging

import tensorflow as tf

logger = logging.getLogger("jssl")

__all__ = ["hide_gpus", "GPUS_HIDDEN"]


def hide_gpus() -> bool:
  """Makes TF see no GPU; idempotent.

  Returns:
    True when TF sees no GPU now; False when it was too late: TF had already initialised its
    devices (the program imported TF and ran an op first) and keeps the GPUs it found.
  """
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # devices already initialised
    if tf.config.get_visible_devices("GPU"):
      logger.warning(
        "TensorFlow initialised its devices before jssl could hide its GPUs from it; it may hold GPU "
        "memory JAX needs. Import jssl.data before running TensorFlow ops."
      )
      return False
  return True


GPUS_HIDDEN = hide_gpus()
"""Whether TF sees no GPU, as this module left it when first imported."""
