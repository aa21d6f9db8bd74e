"""Training state, the jit-compiled train step, and the pretraining loop.

One step is written for the whole global batch; ``jax.jit`` with the batch sharded
along the mesh's ``data`` axis and the state replicated partitions it over every
device of every process. The task (``jssl.tasks``) supplies the model and loss; this
module owns the state, the optimizer update, the online linear probe and the loop.
What the loop writes to its workdir, and reading it back, is ``jssl.workdir``'s; the
held-out reconstructions it reports are ``jssl.evaluate.Holdout``'s.
"""

import contextlib
import dataclasses
import logging
import pathlib
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jssl import config as config_lib
from jssl import optim, parallel, workdir_guard
from jssl import workdir as workdir_lib
from jssl.checkpoint import Checkpointer
from jssl.data import pipeline
from jssl.data.sources import Source, source_from_config
from jssl.errors import ConfigError
from jssl.schedules import training_length
from jssl.tasks import make_task

log = logging.getLogger("jssl")


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes; a pytree, saved whole by the checkpointer."""

  step: jax.Array  # int32 [], steps completed
  params: Any  # task model parameters
  batch_stats: Any  # batch-norm running statistics
  extra: Any  # the task's state that is not trained (an EMA target, pseudo-labels ...), {} if none
  opt_state: Any
  probe: Any  # online linear probe {"kernel": [F, K], "bias": [K]}, or None
  probe_opt_state: Any
  rng: jax.Array  # uint32 [2] raw key data (plain arrays checkpoint anywhere)
  skipped_steps: jax.Array  # int32 [], steps whose loss or gradients were not finite


@dataclasses.dataclass
class Setup:
  """The parts of a run that depend on the config and data, but not on the state."""

  config: ml_collections.ConfigDict
  source: Source
  task: Any
  mesh: jax.sharding.Mesh
  tx: optax.GradientTransformation
  probe_tx: optax.GradientTransformation
  schedule: optax.Schedule
  total_steps: int
  steps_per_epoch: int
  local_batch_size: int


def make_setup(config: ml_collections.ConfigDict, *, mesh=None, source: Source | None = None) -> Setup:
  """Validates the config against the data and devices before anything compiles.

  ``source`` stands in for ``config.data``'s (e.g. a ``jssl.data.facts.RecordedSource``,
  which describes a run's data without it, to restore a run where the data is not).
  """
  source = source_from_config(config.data, seed=config.seed) if source is None else source
  mesh = (
    parallel.make_mesh(parallel.devices_to_use(config.parallel.devices), fsdp=config.parallel.fsdp)
    if mesh is None
    else mesh
  )
  batch = config.train.batch_size
  local_batch_size = parallel.check_global_batch(batch, mesh)
  total_steps, steps_per_epoch = training_length(config, source)
  tx, schedule = optim.make_optimizer(
    config.optim, batch_size=batch, total_steps=total_steps, steps_per_epoch=steps_per_epoch
  )
  task = make_task(config, mesh=mesh, source=source)
  task.batch_spec(batch, source)  # the task's checks of the data (e.g. colour images) fail here
  if task.produces_images and config.data.eval_split not in source.splits:  # the held-out images come from it
    raise ConfigError(
      f"Source {source.name!r} has no {config.data.eval_split!r} split (data.eval_split) for {config.task}'s "
      f"held-out reconstructions; its splits are {source.splits}. Set --config.data.eval_split to one of them."
    )
  return Setup(
    config=config,
    source=source,
    task=task,
    mesh=mesh,
    tx=task.optimizer(tx),
    probe_tx=optax.adam(config.train.probe_lr),
    schedule=schedule,
    total_steps=total_steps,
    steps_per_epoch=steps_per_epoch,
    local_batch_size=local_batch_size,
  )


def batch_spec(setup: Setup) -> dict:
  """Global shapes and dtypes of a batch the host feeds the step (the task decides)."""
  return setup.task.batch_spec(setup.config.train.batch_size, setup.source)


def example_batch(setup: Setup) -> dict:
  """A zero batch with the global shapes of a real one (for init and abstract evaluation)."""
  return {name: jnp.zeros(s.shape, s.dtype) for name, s in batch_spec(setup).items()}


def init_state(setup: Setup, rng: jax.Array) -> TrainState:
  """Fresh state (not jitted; wrap with ``jax.jit`` to place it)."""
  init_rng, probe_rng, run_rng = jax.random.split(rng, 3)
  variables = setup.task.init(init_rng, example_batch(setup))
  params, batch_stats, extra = variables["params"], variables.get("batch_stats", {}), variables.get("extra", {})
  probe = None
  if setup.source.num_classes:
    num_features = setup.task.encoder.num_features
    probe = {
      "kernel": jax.random.normal(probe_rng, (num_features, setup.source.num_classes)) * 0.01,
      "bias": jnp.zeros((setup.source.num_classes,)),
    }
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    extra=extra,
    opt_state=setup.tx.init(params),
    probe=probe,
    probe_opt_state=setup.probe_tx.init(probe) if probe is not None else None,
    rng=jax.random.key_data(run_rng),
    skipped_steps=jnp.zeros((), jnp.int32),
  )


def abstract_state(setup: Setup) -> TrainState:
  """Shapes, dtypes and shardings of the state (replicated, or split over ``fsdp`` by
  ``config.parallel`` rules), without computing it."""
  shapes = jax.eval_shape(lambda: init_state(setup, jax.random.key(0)))
  shardings = parallel.state_shardings(shapes, setup.mesh, min_size=setup.config.parallel.fsdp_min_size)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, shardings)


def state_sharding(setup: Setup):
  """The shardings of ``abstract_state``."""
  return jax.tree.map(lambda x: x.sharding, abstract_state(setup))


def create_state(setup: Setup, seed: int) -> TrainState:
  """The initial state, placed on the mesh."""
  return jax.jit(lambda: init_state(setup, jax.random.key(seed)), out_shardings=state_sharding(setup))()


def to_host(tree):
  """Replicated arrays -> numpy from this process's first shard (``jax.device_get`` would
  fail on arrays that span other processes' devices)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def _probe_loss(probe, features, labels):
  logits = features @ probe["kernel"] + probe["bias"]
  valid = labels >= 0
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
  count = jnp.maximum(valid.sum(), 1)
  loss = jnp.sum(jnp.where(valid, losses, 0.0)) / count
  accuracy = jnp.sum(jnp.where(valid, jnp.argmax(logits, -1) == labels, False)) / count
  return loss, accuracy


def make_train_step(setup: Setup):
  """``step(state, batch) -> (state, metrics)``, jitted over the mesh with the state donated."""
  task, tx, probe_tx, schedule = setup.task, setup.tx, setup.probe_tx, setup.schedule

  def step(state: TrainState, batch: dict):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    (loss, (batch_stats, extra, metrics, features)), grads = task.loss_and_grads(
      state.params, state.batch_stats, state.extra, batch, rng, state.step
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    extra = task.after_update(params, extra, state.step)
    grad_norm = optax.tree.norm(grads)
    metrics = dict(metrics, loss=loss, lr=schedule(state.step), grad_norm=grad_norm)
    probe, probe_opt_state = state.probe, state.probe_opt_state
    if probe is not None:
      # The probe sees detached features: labels must never shape the encoder.
      (probe_loss, probe_acc), probe_grads = jax.value_and_grad(_probe_loss, has_aux=True)(
        probe, jax.lax.stop_gradient(features), batch["label"]
      )
      probe_updates, probe_opt_state = probe_tx.update(probe_grads, probe_opt_state, probe)
      probe = optax.apply_updates(probe, probe_updates)
      metrics.update(probe_loss=probe_loss, probe_top1=probe_acc)
    # A step with a non-finite loss or gradient changes nothing but the step counter (so the
    # next step reads the next batch); the loop stops after too many of them in a row.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def keep_if_finite(new, old):
      return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)

    new_state = state.replace(
      step=state.step + 1,
      params=keep_if_finite(params, state.params),
      batch_stats=keep_if_finite(batch_stats, state.batch_stats),
      extra=keep_if_finite(extra, state.extra),
      opt_state=keep_if_finite(opt_state, state.opt_state),
      probe=keep_if_finite(probe, state.probe),
      probe_opt_state=keep_if_finite(probe_opt_state, state.probe_opt_state),
      skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
    )
    metrics.update(finite=finite, skipped_steps=new_state.skipped_steps)
    return new_state, metrics

  states, batched = state_sharding(setup), parallel.batch_sharding(setup.mesh)
  return jax.jit(
    step, in_shardings=(states, batched), out_shardings=(states, parallel.replicated(setup.mesh)), donate_argnums=0
  )


def refresh(setup: Setup, state: TrainState) -> TrainState:
  """``state`` with the params, batch stats and extra ``task.refresh`` recomputes, placed like the
  state's, and a fresh optimizer state for the parameter groups it re-initialised
  (``task.refresh_resets``: their momentum or Adam moments restart from zero, as a new
  optimizer's would; the step count, shared by every parameter, goes on)."""
  params, batch_stats, extra = setup.task.refresh(state.params, state.batch_stats, state.extra, setup)
  shardings = state_sharding(setup)

  def place(x, sharding):
    if isinstance(x, jax.Array):  # global arrays (possibly split over fsdp) move by a jitted identity
      return x if x.sharding.is_equivalent_to(sharding, x.ndim) else jax.jit(lambda a: a, out_shardings=sharding)(x)
    x = np.asarray(x)  # host values, the same on every process
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  params = jax.tree.map(place, params, shardings.params)
  opt_state = state.opt_state
  if setup.task.refresh_resets:
    fresh = jax.jit(setup.tx.init, out_shardings=shardings.opt_state)(params)
    opt_state = optim.reset_groups(setup.tx, opt_state, fresh, params, setup.task.refresh_resets)
  return state.replace(
    params=params,
    batch_stats=jax.tree.map(place, batch_stats, shardings.batch_stats),
    extra=jax.tree.map(place, extra, shardings.extra),
    opt_state=opt_state,
  )


class NonFiniteError(RuntimeError):
  """Too many consecutive steps had a non-finite loss or gradient."""


def pretrain(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, mesh=None, restart: bool = False
) -> TrainState:
  """Trains ``config`` in ``workdir``, resuming from its latest checkpoint if there is one.

  Resuming is exact: the input pipeline is a pure function of the seed and the step
  (see ``jssl.data.pipeline``), the RNG of step s is ``fold_in(rng, s)``, and the
  checkpoint holds everything else. SIGTERM/SIGINT stop after the current step with a
  checkpoint. ``mesh`` defaults to all devices; a checkpoint restores onto any mesh.

  The run holds ``workdir``'s lock until it returns, and resumes only a run whose state
  ``config`` keeps (``jssl.workdir_guard``); ``restart`` first moves the run there into
  ``workdir/previous/<time>/``. A resume with changed settings keeps the config it replaces
  in ``workdir/config_history/``.

  Raises:
    ConfigError: ``workdir`` is in use by another run, cannot be a folder, or holds a run
      whose state ``config`` changes (nothing is written then).
    NonFiniteError: after ``train.max_consecutive_nonfinite`` non-finite steps in a row
      (a checkpoint of the last good state is written first).
  """
  config_lib.validate(config)  # before anything is read or written (the CLI has checked it too)
  workdir = pathlib.Path(workdir).resolve()
  with contextlib.ExitStack() as held:
    setup = _claim_workdir(config, workdir, mesh=mesh, restart=restart, held=held)
    return _train(setup, workdir)


def _claim_workdir(config, workdir: pathlib.Path, *, mesh, restart: bool, held: contextlib.ExitStack) -> Setup:
  """``make_setup``, then, on process 0 (the others do not write the workdir): the workdir
  made, its lock taken (held until ``held`` closes), and the old run moved aside (``restart``)
  or checked against ``config``. No process goes on unless every one got this far."""
  failure = None
  try:
    setup = make_setup(config, mesh=mesh)
    if jax.process_index() == 0:
      workdir_guard.prepare(workdir)
      held.enter_context(workdir_guard.lock(workdir))
      if restart:
        moved = workdir_guard.move_aside(workdir)
        if moved is not None:
          log.info("Moved the previous run in %s to %s; starting afresh", workdir, moved)
      else:
        changes = workdir_guard.check_resume(workdir, config, setup)
        if changes:
          log.info("resuming with changed settings: %s", workdir_guard.describe_changes(changes))
  except Exception as error:  # re-raised below, once the other processes know
    failure = error
  if jax.process_count() > 1:  # a process that stopped alone would leave the others waiting forever
    from jax.experimental import multihost_utils  # noqa: PLC0415

    started = multihost_utils.process_allgather(np.asarray(failure is None, np.int32))
    if failure is None and not np.all(started):
      failure = ConfigError(
        f"process(es) {', '.join(map(str, np.flatnonzero(started == 0)))} could not start the run in "
        f"{workdir}; their message says why."
      )
  if failure is not None:
    raise failure
  return setup


def _train(setup: Setup, workdir: pathlib.Path) -> TrainState:
  """``pretrain``'s loop, in a workdir this process may use."""
  from tqdm.auto import tqdm  # noqa: PLC0415

  from jssl import plots  # noqa: PLC0415  (matplotlib only when training)
  from jssl.evaluate import Holdout  # noqa: PLC0415  (jssl.evaluate imports this module)
  from jssl.preemption import PreemptionGuard  # noqa: PLC0415

  config = setup.config
  is_main = jax.process_index() == 0
  log.info(
    "%d devices (%s), global batch %d, %d steps (%d per epoch)",
    setup.mesh.devices.size,
    jax.default_backend(),
    config.train.batch_size,
    setup.total_steps,
    setup.steps_per_epoch,
  )

  checkpointer = Checkpointer(
    workdir, max_to_keep=config.train.keep_checkpoints, save_every=config.train.checkpoint_every_steps
  )
  state, start = checkpointer.resume(abstract_state(setup))  # damaged newer checkpoints are set aside
  if start is not None:
    log.info("Resuming from the checkpoint at step %d in %s", start, checkpointer.directory)
  else:
    start = 0
    state = create_state(setup, config.seed)
  if is_main:  # after the restore: a run that fails to resume leaves its config.json as it was
    workdir_lib.write_run_config(workdir, config, setup.source)
  writer = workdir_lib.MetricsWriter(workdir, resume_step=start, enabled=is_main)

  dataset = pipeline.pretrain_dataset(
    setup.source,
    split=config.data.train_split,
    batch_size=setup.local_batch_size,
    host_example=setup.task.host_example,
    seed=config.seed,
    grayscale_to_rgb=config.data.grayscale_to_rgb,
    shuffle_buffer=config.data.shuffle_buffer,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    start_step=start,
    with_index="index" in batch_spec(setup),
  )
  if is_main and start == 0:
    plots.save_augmentations(workdir / "augmentations.png", setup, seed=config.seed)

  train_step = make_train_step(setup)
  holdout = Holdout(setup) if setup.task.produces_images else None
  batches = dataset.as_numpy_iterator()
  log_every = max(1, config.train.log_every)
  eval_every = config.train.eval_every
  refresh_every = setup.task.refresh_every(setup.steps_per_epoch)
  window_start, window_wait, window_steps = time.perf_counter(), 0.0, 0
  pending, consecutive_nonfinite, last_saved, step = None, 0, start, start
  progress = tqdm(
    total=setup.total_steps, initial=start, disable=not is_main, unit="step", dynamic_ncols=True, desc="pretrain"
  )

  def settle(step_metrics) -> None:
    """Waits for a step and counts it if it was not finite."""
    nonlocal consecutive_nonfinite
    if bool(to_host(step_metrics["finite"])):
      consecutive_nonfinite = 0
      return
    consecutive_nonfinite += 1
    if consecutive_nonfinite >= config.train.max_consecutive_nonfinite:
      at = int(to_host(state.step))
      checkpointer.save(at, state, force=at != last_saved)
      checkpointer.wait()
      raise NonFiniteError(
        f"{consecutive_nonfinite} consecutive steps up to step {at} had a non-finite loss or "
        f"gradient (train.max_consecutive_nonfinite={config.train.max_consecutive_nonfinite}). The last good "
        f"state is saved at step {at} in {checkpointer.directory}. Lower optim.base_lr, raise "
        "the loss's temperature (e.g. simclr.temperature), or check the data."
      )

  with PreemptionGuard() as guard:
    for step in range(start + 1, setup.total_steps + 1):
      wait_start = time.perf_counter()
      batch = parallel.global_batch(next(batches), setup.mesh)
      window_wait += time.perf_counter() - wait_start
      if refresh_every and (step - 1) % refresh_every == 0:
        refresh_start = time.perf_counter()
        state = refresh(setup, state)
        window_start += time.perf_counter() - refresh_start  # not training time
      state, metrics = train_step(state, batch)
      # Settle the previous step, not this one: the host prepares the next batch while the
      # device works, and the progress bar still shows finished (not merely dispatched) steps.
      if pending is not None:
        settle(pending)
      pending = metrics
      window_steps += 1
      evaluate_now = holdout is not None and ((eval_every > 0 and step % eval_every == 0) or step == setup.total_steps)
      if step % log_every == 0 or step == setup.total_steps or evaluate_now:
        metrics = to_host(metrics)  # Blocks: the window's time is now real.
        elapsed = time.perf_counter() - window_start
        scalars = dict(
          metrics,
          images_per_s=window_steps * config.train.batch_size / elapsed,
          input_wait_fraction=window_wait / elapsed,
          epoch=step / setup.steps_per_epoch,
        )
        del scalars["finite"]
        if evaluate_now:  # After the window's timing, so held-out scoring does not count as training time.
          scalars.update(holdout.report(state, workdir / "samples.png", write=is_main))
        writer.write(step, scalars)
        progress.set_postfix(
          loss=f"{scalars['loss']:.4f}",
          lr=f"{scalars['lr']:.3g}",
          img_s=f"{scalars['images_per_s']:.0f}",
          **({"probe": f"{scalars['probe_top1']:.3f}"} if "probe_top1" in scalars else {}),
        )
        window_start, window_wait, window_steps = time.perf_counter(), 0.0, 0
      progress.update(1)
      if checkpointer.save(step, state):
        last_saved = step
      if guard.stop_requested():
        break
    if pending is not None:
      settle(pending)
  progress.close()
  if step != last_saved:
    checkpointer.save(step, state, force=True)
  checkpointer.wait()
  checkpointer.close()
  writer.close()
  if step < setup.total_steps:
    log.warning("Stopped at step %d of %d with a checkpoint; run the same command to resume.", step, setup.total_steps)
  elif is_main:
    plots.save_curves(workdir / "curves.png", workdir_lib.read_metrics(workdir))
  return state
