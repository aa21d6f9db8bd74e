"""TensorFlow for the host's input pipeline only: imported when first used, its GPUs hidden then.

jssl runs TensorFlow on the CPU (tf.data, TensorBoard summaries). Left alone, TF claims
nearly all of every GPU's memory at its first op, the memory JAX needs. Every jssl module
uses TF as ``from jssl.data.tf_host import tf``: a stand-in that imports TensorFlow at its
first attribute access and hides TF's GPUs right then, before any op can run. So importing
the trainer, the tasks, the models or the losses does not import TensorFlow (seconds of
start-up, and a package an accelerator image may not have: the step benchmarks run without
it); a program that reads data pays for it when it builds the pipeline.
"""

from __future__ import annotations

import logging
import sys
import threading
import types

logger = logging.getLogger("jssl")

__all__ = ["tf", "load", "hide_gpus", "gpus_hidden"]

_lock = threading.Lock()
_module: types.ModuleType | None = None
_gpus_hidden: bool | None = None


def load() -> types.ModuleType:
  """The ``tensorflow`` module, imported on the first call, with its GPUs hidden then."""
  global _module, _gpus_hidden
  with _lock:
    if _module is None:
      _module = _import_tensorflow_without_keras()
      _gpus_hidden = hide_gpus()
  return _module


# TensorFlow's __init__ imports this eagerly (to register Keras optimizers for SavedModel),
# pulling in all of Keras and, through its wrappers, scikit-learn: 2-4 s of every start-up,
# none of it used by tf.data or summaries. TF skips it on ImportError.
KERAS_EAGER_IMPORT = "keras.src.optimizers"


def _import_tensorflow_without_keras() -> types.ModuleType:
  """``import tensorflow`` with its eager Keras import made to fail, then unblocked, so that a
  program that uses Keras later imports it as usual."""
  blocked = KERAS_EAGER_IMPORT not in sys.modules
  if blocked:
    sys.modules[KERAS_EAGER_IMPORT] = None  # an import of a None entry raises ImportError
  try:
    import tensorflow  # noqa: PLC0415  (the one place jssl imports it)
  finally:
    if blocked and sys.modules.get(KERAS_EAGER_IMPORT, False) is None:
      del sys.modules[KERAS_EAGER_IMPORT]
  return tensorflow


def gpus_hidden() -> bool:
  """Whether TF sees no GPU, as ``load`` left it (loads TF if nothing has yet)."""
  load()
  return bool(_gpus_hidden)


def hide_gpus() -> bool:
  """Makes TF see no GPU; idempotent.

  Returns:
    True when TF sees no GPU now; False when it was too late: TF had already initialised its
    devices (the program imported TF and ran an op first) and keeps the GPUs it found.
  """
  tf_ = _module if _module is not None else load()
  try:
    tf_.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # devices already initialised
    if tf_.config.get_visible_devices("GPU"):
      logger.warning(
        "TensorFlow initialised its devices before jssl could hide its GPUs from it; it may hold GPU "
        "memory JAX needs. Call jssl.data.tf_host.load() before running TensorFlow ops of your own."
      )
      return False
  return True


class _TensorFlow:
  """Stands in for the ``tensorflow`` module: ``tf.data``, ``tf.Tensor``... load it on first use."""

  def __getattr__(self, name: str):
    return getattr(load(), name)

  def __repr__(self) -> str:
    return f"<tensorflow, {'loaded' if _module is not None else 'not imported yet'} (jssl.data.tf_host)>"


tf = _TensorFlow()
