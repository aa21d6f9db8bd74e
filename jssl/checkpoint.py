"""Orbax checkpoints of the whole training state, in ``WORKDIR/checkpoints``.

The state is saved as its Flax state dict (nested dicts of arrays), so what is on
disk does not depend on Python class layouts, and restored against an abstract
state whose shardings say where each array goes (which also lets a run resume on
a different device count). Orbax writes each step into a temporary directory and
renames it when complete, so a torn save is never restored.
"""

import pathlib

import flax.serialization
import jax
import orbax.checkpoint as ocp

from jssl.errors import ConfigError, MissingError


class Checkpointer:
  """Saves every ``save_every`` steps (and when forced), keeps the last ``max_to_keep``."""

  def __init__(
    self, workdir: str | pathlib.Path, *, max_to_keep: int = 3, save_every: int = 1000, async_save: bool = True
  ):
    directory = pathlib.Path(workdir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      save_interval_steps=max(1, save_every),
      enable_async_checkpointing=async_save,
      create=True,
    )
    self._manager = ocp.CheckpointManager(directory, options=options)

  @property
  def directory(self) -> pathlib.Path:
    return pathlib.Path(self._manager.directory)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, *, force: bool = False) -> bool:
    """Starts an (async) save if ``step`` is due or ``force``; returns whether it did."""
    return self._manager.save(step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)), force=force)

  def restore(self, abstract_state, *, step: int | None = None):
    """The state at ``step`` (default: latest) laid out like ``abstract_state``
    (a pytree of ``jax.ShapeDtypeStruct`` with shardings, e.g. from ``jax.eval_shape``)."""
    steps = sorted(self.all_steps())
    if not steps:
      raise MissingError(f"No complete checkpoint in {self.directory}; run `jssl pretrain` first.")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
      raise ConfigError(
        f"No checkpoint at step {step} in {self.directory}; available steps: {', '.join(map(str, steps))}."
      )
    target = flax.serialization.to_state_dict(abstract_state)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except ValueError as error:
      # Checkpoints written before the train state had ``extra`` (2026-12-03) lack it.
      if "extra" not in target or "extra:" not in str(error) or "MISSING" not in str(error):
        raise
      if jax.tree.leaves(target["extra"]):
        raise ConfigError(
          f"The checkpoint at step {step} in {self.directory} was written by an older jssl that kept "
          "this task's state (DeepCluster's pseudo-labels, colorization's ab prior) in batch_stats; "
          "pretrain again in a new workdir."
        ) from error
      # The task keeps no extra state: the old checkpoint holds everything the state needs.
      old = {key: value for key, value in target.items() if key != "extra"}
      restored = {**self._manager.restore(step, args=ocp.args.StandardRestore(old)), "extra": target["extra"]}
    return flax.serialization.from_state_dict(abstract_state, restored)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
