"""Transfer: train a classifier on top of an exported encoder (``jssl export``).

``mode="linear"``: the encoder is frozen (batch norm in inference mode) and only a
linear layer on its features is trained: linear evaluation. ``mode="full"``: the
encoder is trained too, with its learning rate scaled by ``encoder_lr_multiplier``
(0.1 by default: the pretrained weights should move less than the fresh head), and
batch norm in training mode; ``layer_decay`` < 1 scales a ViT's rates down block by block
from the top (MAE's fine-tuning recipe). Training views are a random resized crop and a flip;
the test split is resized whole. ``head_init="linear_probe"`` starts the head from the
converged linear probe of the starting encoder's features instead of zeros (LP-FT). The
result goes to ``WORKDIR/eval.json``.

LP-FT measured with ``configs/finetune_fashion_mnist.py:full`` (one epoch, AdamW 3e-3;
2026-12-04, the README table's exports): SimCLR's ``resnet_tiny`` 0.8555 (0.8174 from a zero
head), the same architecture from random init 0.5497 (0.7784 from a zero head; its probe of
random features, large weights at l2 1e-6, steers it badly). At 1e-3 both drop: 0.8385 and
0.4517. The table's column uses zero heads.

``init="random"`` trains the export's architecture from a fresh random initialisation
(seeded by ``config.seed``) instead of its weights: the baseline a pretrained encoder's
fine-tuning has to beat, under the same recipe.
"""

import json
import logging
import pathlib
import re
import time

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from jssl import parallel, probes
from jssl.data import augment, pipeline
from jssl.data.sources import source_from_config
from jssl.errors import ConfigError
from jssl.evaluate import extract_features
from jssl.export import load_encoder
from jssl.models import random_init
from jssl.workdir import MetricsWriter

log = logging.getLogger("jssl")


@flax.struct.dataclass
class FinetuneState:
  params: dict  # {"encoder": ..., "head": {"kernel": [F, K], "bias": [K]}}
  batch_stats: dict  # the encoder's
  opt_state: optax.OptState


def learning_rate(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """The head's rate by step: ``lr`` with a linear warm-up from 0 over ``warmup_fraction`` of
  the steps, then a cosine decay to 0 at ``total_steps``."""
  warmup = min(int(round(config.warmup_fraction * total_steps)), total_steps - 1)
  if warmup > 0:  # linear from 0, then cosine to 0 over the rest
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, max(total_steps, 1))
  else:
    schedule = optax.cosine_decay_schedule(config.lr, max(total_steps, 1))
  return schedule


_BLOCK = re.compile(r"blocks_(\d+)$")


def layer_decay_scales(encoder_params: dict, decay: float) -> dict:
  """Per-parameter learning-rate factors for layer-wise decay (BEiT's, as MAE fine-tunes):
  a ViT's ``blocks_i`` gets ``decay ** (depth - i)``, the patch embedding and [CLS] token
  (layer 0) ``decay ** (depth + 1)``, the final norm 1 (the head is never scaled). ``decay`` 1
  gives all ones for any encoder; below 1 it needs a ViT's ``blocks_i`` parameters."""
  if decay == 1.0:
    return jax.tree.map(lambda _: 1.0, encoder_params)
  depth = sum(1 for name in encoder_params if _BLOCK.match(name))
  if not depth:
    raise ConfigError(
      f"finetune.layer_decay={decay} needs a ViT encoder (blocks_0 ... blocks_N); this one has "
      f"{sorted(encoder_params)}. Use finetune.layer_decay=1."
    )

  def layer(name: str) -> int:
    block = _BLOCK.match(name)
    if block:
      return int(block.group(1)) + 1
    return 0 if name in ("patch_embed", "cls_token") else depth + 1

  return {
    name: jax.tree.map(lambda _, n=name: decay ** (depth + 1 - layer(n)), tree) for name, tree in encoder_params.items()
  }


def _scale_by_tree(scales: dict) -> optax.GradientTransformation:
  """Multiplies each update by its fixed factor in ``scales`` (same tree structure)."""
  return optax.stateless(lambda updates, params: jax.tree.map(lambda u, s: u * s, updates, scales))


def _optimizer(
  config: ml_collections.ConfigDict, total_steps: int, encoder_params: dict
) -> optax.GradientTransformation:
  schedule = learning_rate(config, total_steps)

  def scaled(step):
    return schedule(step) * config.encoder_lr_multiplier

  encoder_tx = optax.set_to_zero() if config.mode == "linear" else optax.adamw(scaled, weight_decay=config.weight_decay)
  by_part = optax.multi_transform(
    {"encoder": encoder_tx, "head": optax.adamw(schedule, weight_decay=config.weight_decay)},
    {"encoder": "encoder", "head": "head"},
  )
  if config.layer_decay == 1.0:
    return by_part
  # AdamW's whole update (rate and decay) scaled per layer, as timm's per-group lr_scale does.
  scales = {"encoder": layer_decay_scales(encoder_params, config.layer_decay), "head": {"kernel": 1.0, "bias": 1.0}}
  return optax.chain(by_part, _scale_by_tree(scales))


INITS = ("pretrained", "random")


def probe_head(model, variables, dataset, *, num_classes: int, batch_size: int, examples: int, seed: int) -> dict:
  """The head that LP-FT starts from (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
  Features"): the converged linear probe (``probes.fit_linear``) of the starting encoder's
  features of the first ``examples`` images of ``dataset`` (0: all), fit on standardised
  features and folded back to raw ones: ``z = (x - m) * s``, ``z @ w + b = x @ (s * w) + (b - (m * s) @ w)``.
  Returns ``{"kernel": [F, C], "bias": [C]}`` float32."""
  features, labels = extract_features(
    model, variables, dataset, batch_size=batch_size, limit=examples, desc="probe head"
  )
  mean, scale = probes.standardization(features)
  standardised = ((features - mean) * scale).astype(np.float32)
  fit, _ = probes.fit_linear(standardised, labels, num_classes=num_classes, seed=seed)
  kernel = scale[:, None] * fit.w.astype(np.float64)
  bias = fit.b.astype(np.float64) - (mean * scale) @ fit.w.astype(np.float64)
  log.info("Head from a linear probe: l2 %g, train top-1 %.4f", fit.l2, _top1(features, labels, kernel, bias))
  return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}


def _top1(features, labels, kernel, bias) -> float:
  return float(np.mean(np.argmax(features @ kernel + bias, axis=-1) == labels))


def starting_variables(encoder, init: str, seed: int) -> tuple[dict, dict]:
  """The encoder's ``(params, batch_stats)`` to start from: the export's (``pretrained``) or
  the same architecture's initialisation from ``jax.random.key(seed)`` (``random``)."""
  if init not in INITS:
    raise ConfigError(f"finetune.init must be one of {', '.join(INITS)}, got {init!r}.")
  if init == "pretrained":
    return encoder.params, encoder.batch_stats
  size, channels = (int(encoder.metadata["input"][key]) for key in ("image_size", "channels"))
  variables = random_init(encoder.model, image_size=size, channels=channels, seed=seed)
  return variables["params"], variables.get("batch_stats", {})


def finetune(
  config: ml_collections.ConfigDict, *, encoder_dir: str | pathlib.Path, workdir: str | pathlib.Path
) -> dict:
  """Trains ``config.finetune.mode`` on ``config.data`` from the export in ``encoder_dir``."""
  ft = config.finetune
  if ft.mode not in ("linear", "full"):
    raise ConfigError(f"finetune.mode must be 'linear' or 'full', got {ft.mode!r}.")
  encoder = load_encoder(encoder_dir)
  encoder_params, encoder_stats = starting_variables(encoder, ft.init, config.seed)
  workdir = pathlib.Path(workdir).resolve()
  workdir.mkdir(parents=True, exist_ok=True)
  size = int(encoder.metadata["input"]["image_size"])
  grayscale_to_rgb = bool(encoder.metadata["input"]["grayscale_to_rgb"])
  source = source_from_config(config.data, seed=config.seed)
  if not source.num_classes:
    raise ConfigError(f"Source {config.data.source!r} has no labels; fine-tuning needs them.")
  mesh = parallel.make_mesh()
  local_batch = parallel.check_global_batch(ft.batch_size, mesh)
  steps_per_epoch = max(1, source.num_examples(config.data.train_split) // ft.batch_size)
  total_steps = max(1, round(ft.epochs * steps_per_epoch))
  tx = _optimizer(ft, total_steps, encoder_params)
  model, num_classes = encoder.model, source.num_classes

  if ft.head_init == "linear_probe":
    head = probe_head(
      model,
      {"params": encoder_params, "batch_stats": encoder_stats},
      pipeline.eval_dataset(
        source,
        split=config.data.train_split,
        batch_size=ft.eval_batch_size,
        image_size=size,
        grayscale_to_rgb=grayscale_to_rgb,
      ),
      num_classes=num_classes,
      batch_size=ft.eval_batch_size,
      examples=ft.probe_examples,
      seed=config.seed,
    )
  else:
    head = {"kernel": jnp.zeros((encoder.num_features, num_classes)), "bias": jnp.zeros((num_classes,))}
  params = {"encoder": encoder_params, "head": head}
  state = FinetuneState(params=params, batch_stats=encoder_stats, opt_state=tx.init(params))
  state = jax.device_put(state, parallel.replicated(mesh))

  def logits_fn(params, batch_stats, images, *, train: bool):
    variables = {"params": params["encoder"], "batch_stats": batch_stats}
    if train:
      features, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
      batch_stats = updates["batch_stats"]
    else:
      features = model.apply(variables, images, train=False)
    return features @ params["head"]["kernel"] + params["head"]["bias"], batch_stats

  train_bn = ft.mode == "full"

  def step(state: FinetuneState, batch):
    def loss_fn(params):
      logits, batch_stats = logits_fn(params, state.batch_stats, batch["image"], train=train_bn)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (batch_stats, jnp.mean(jnp.argmax(logits, -1) == batch["label"]))

    (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return (
      FinetuneState(params=optax.apply_updates(state.params, updates), batch_stats=batch_stats, opt_state=opt_state),
      {"loss": loss, "train_top1": accuracy},
    )

  replicated, batched = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  step = jax.jit(step, in_shardings=(replicated, batched), out_shardings=(replicated, replicated), donate_argnums=0)
  predict = jax.jit(
    lambda state, images: jnp.argmax(logits_fn(state.params, state.batch_stats, images, train=False)[0], -1)
  )

  views = augment.AugmentConfig(
    image_size=size, crop_area=tuple(ft.crop_area), jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0
  )

  def host_example(image, seed):
    return {"image": augment.simclr_view(image, seed, config=views)}

  dataset = pipeline.pretrain_dataset(
    source,
    split=config.data.train_split,
    batch_size=local_batch,
    host_example=host_example,
    seed=config.seed,
    grayscale_to_rgb=grayscale_to_rgb,
    shuffle_buffer=config.data.shuffle_buffer,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  writer = MetricsWriter(workdir, resume_step=0, enabled=jax.process_index() == 0)
  started = time.perf_counter()
  batches = dataset.as_numpy_iterator()
  # miniters=1: the bar redraws on time, not on a step count learned from the first steps.
  pending = None
  for i in tqdm(range(1, total_steps + 1), desc=f"finetune ({ft.mode})", unit="step", miniters=1):
    state, metrics = step(state, parallel.global_batch(next(batches), mesh))
    # Wait for the step before, as the trainer does: the bar counts finished steps while one
    # step stays queued behind the running one (dispatch otherwise races ahead of the bar).
    if pending is not None:
      jax.block_until_ready(pending)
    pending = metrics["loss"]
    if i % ft.log_every == 0 or i == total_steps:
      writer.write(i, jax.device_get(metrics))
  writer.close()

  correct = total = 0
  test = pipeline.eval_dataset(
    source,
    split=config.data.eval_split,
    batch_size=ft.eval_batch_size,
    image_size=size,
    grayscale_to_rgb=grayscale_to_rgb,
  )
  for batch in test.as_numpy_iterator():
    correct += int(np.sum(np.asarray(predict(state, batch["image"])) == batch["label"]))
    total += len(batch["label"])
  results = {
    "mode": ft.mode,
    "init": ft.init,
    "top1": correct / total,
    "num_test": total,
    "steps": total_steps,
    "encoder": str(pathlib.Path(encoder_dir).resolve()),
    "source_run_step": encoder.metadata["source_run"]["step"],
    "seconds": round(time.perf_counter() - started, 1),
  }
  (workdir / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
  start = " from random init" if ft.init == "random" else ""
  print(
    f"{ft.mode} fine-tuning of {encoder_dir}{start}: top-1 {results['top1']:.4f} on {total} test examples "
    f"after {total_steps} steps"
  )
  return results
