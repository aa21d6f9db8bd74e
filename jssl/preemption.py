"""Graceful stop on SIGTERM / SIGINT: finish the step, save, exit 0.

Preemptible VMs send SIGTERM shortly before they go; a user presses Ctrl-C. Either
way the loop should finish its current step, write a checkpoint and leave cleanly.
JAX's own preemption sync point needs ``jax.distributed``, so this works on its own:
a signal handler sets a flag, and in multi-process runs every process shares its
flag with the others each step, so all stop after the same step.
"""

import logging
import signal

import jax
import numpy as np

log = logging.getLogger("jssl")


class PreemptionGuard:
  """Context manager that turns SIGTERM/SIGINT into ``stop_requested()``.

  A second signal while a stop is pending restores Python's default behaviour and
  re-raises, so a stuck run can still be interrupted.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self._requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    if self._requested:
      self.__exit__(None, None, None)
      signal.raise_signal(signum)
      return
    self._requested = True
    log.warning("Received %s: finishing this step, saving a checkpoint, then exiting.", signal.Signals(signum).name)

  def __enter__(self):
    for sig in self.SIGNALS:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
    return False

  def stop_requested(self) -> bool:
    """True once any process got a signal; the same answer on every process at each step."""
    if jax.process_count() == 1:
      return self._requested
    from jax.experimental import multihost_utils  # noqa: PLC0415

    flags = multihost_utils.process_allgather(np.asarray(self._requested, np.int32))
    return bool(np.any(flags))
