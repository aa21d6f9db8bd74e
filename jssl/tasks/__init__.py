"""Pretext tasks: how examples are made on the host, which model, which loss.

A task is a class with ``host_example(image, seed)``, ``init(rng, batch)``,
``loss_and_grads(params, batch_stats, batch, rng)`` and ``encoder_variables(params, batch_stats)``;
the train loop knows nothing else about it. A new task is one new module here.
"""

from jssl.tasks.simclr import SimCLR, build_encoder, encoder_kwargs

TASKS = {"simclr": SimCLR}


def make_task(config, *, mesh=None):
  """The task named by ``config.task``; ``mesh`` is for losses that shard explicitly."""
  if config.task not in TASKS:
    raise ValueError(f"Unknown task {config.task!r}; choose one of {', '.join(TASKS)}.")
  return TASKS[config.task](config, mesh=mesh)


__all__ = ["TASKS", "build_encoder", "encoder_kwargs", "make_task"]
