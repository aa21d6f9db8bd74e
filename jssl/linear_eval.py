"""The papers' linear evaluation (``--config.eval.protocol=paper``): a linear classifier on a
frozen encoder, trained by SGD on augmented training images, as SimCLR, MoCo v3, BYOL and MAE
report ImageNet linear top-1.

Training, ``eval.paper_epochs`` epochs (90: SimCLR's, MoCo v3's and MAE's ImageNet protocol) of
the training split, in batches of ``eval.batch_size``:

* each image a random resized crop (area (0.08, 1), aspect (3/4, 4/3)) and a horizontal flip
  with probability 1/2 (``jssl.data.augment.crop_flip_uint8``), made by the host pipeline;
* the frozen encoder's features (batch norm in inference mode), then a batch norm without
  affine parameters (MAE's linear probing, which makes the learning rate indifferent to the
  features' scale; running statistics at test time) and a Dense layer; softmax cross-entropy;
* SGD with Nesterov momentum 0.9 and no weight decay, learning rate ``eval.paper_lr`` x B / 256
  decayed to 0 by a cosine over the run; LARS (trust coefficient 0.001, SimCLR's and MAE's
  large-batch linear probing) when the batch is 4096 or more.

Testing: the whole image resized to the run's size, or for runs of 128 px and more the central
``PAPER_CROP_FRACTION`` (0.875) of its shorter side resized (the ImageNet evaluation transform:
resize to S / 0.875, centre crop S).

Where jssl differs: one recipe for every method (the papers tune the learning rate per method:
MoCo's 30 on unnormalised features, BYOL's sweep), made workable by the batch norm; the test
transform is the same for every image size below 128 px (no crop: a 28 px image has no
margin to crop).
"""

from __future__ import annotations

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jssl.data import augment, pipeline

log = logging.getLogger("jssl")

PAPER_CROP_FRACTION = 0.875
CROP_FROM_SIZE = 128  # runs of this many pixels and more are tested on the centre crop
LARS_FROM_BATCH = 4096
CROP_AREA, CROP_ASPECT = (0.08, 1.0), (3 / 4, 4 / 3)


class LinearHead(nn.Module):
  """Batch norm without scale or shift, then a Dense layer: features ``[N, F]`` -> logits ``[N, K]``."""

  num_classes: int

  @nn.compact
  def __call__(self, features, *, train: bool):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-6, use_scale=False, use_bias=False)(
      features
    )
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)(x)


def eval_crop_fraction(image_size: int) -> float:
  """The share of the shorter side kept at test time: 0.875 from 128 px up, else the whole image."""
  return PAPER_CROP_FRACTION if image_size >= CROP_FROM_SIZE else 1.0


def optimizer(*, lr: float, batch_size: int, steps: int) -> tuple[optax.GradientTransformation, str]:
  """SGD (Nesterov momentum 0.9) or, from batch 4096, LARS; ``lr x B / 256`` with a cosine to 0."""
  schedule = optax.cosine_decay_schedule(lr * batch_size / 256, max(steps, 1))
  if batch_size >= LARS_FROM_BATCH:
    return optax.lars(schedule, weight_decay=0.0, trust_coefficient=0.001, momentum=0.9), "lars"
  return optax.sgd(schedule, momentum=0.9, nesterov=True), "sgd_nesterov"


def paper_linear_probe(
  forward,
  source,
  *,
  train_split: str,
  test_split: str,
  image_size: int,
  grayscale_to_rgb: bool,
  num_classes: int,
  batch_size: int,
  epochs: float,
  lr: float,
  seed: int,
  desc: str = "linear (paper)",
) -> dict:
  """Trains and tests the papers' linear classifier on ``forward``'s features.

  Args:
    forward: jitted ``images float32 [B, S, S, C] in [0, 1] -> features [B, F]`` (the frozen
      encoder, or a flattening for raw pixels).
    source: labelled images; ``train_split`` trains, ``test_split`` tests.
    epochs: passes over the training split (a fraction is allowed).
    lr: the learning rate for a batch of 256 (scaled linearly with ``batch_size``).

  Returns:
    ``{"linear_top1", "linear_train_top1" (the last epoch's batches, augmented),
    "linear_epochs", "linear_steps", "linear_lr", "linear_optimizer", "linear_test_crop"}``.
  """
  examples = source.num_examples(train_split)
  steps = max(1, int(round(epochs * max(examples // batch_size, 1))))
  tx, name = optimizer(lr=lr, batch_size=batch_size, steps=steps)

  def host_example(image, example_seed):
    flipped = augment.crop_flip_uint8(
      image, example_seed, image_size=image_size, area_range=CROP_AREA, aspect_range=CROP_ASPECT, flip_prob=0.5
    )
    return {"image": flipped}

  data = pipeline.pretrain_dataset(
    source,
    split=train_split,
    batch_size=batch_size,
    host_example=host_example,
    seed=seed,
    grayscale_to_rgb=grayscale_to_rgb,
  )
  batches = data.as_numpy_iterator()
  first = next(batches)
  head = LinearHead(num_classes)
  features = forward(jnp.asarray(first["image"], jnp.float32) / 255)
  variables = head.init(jax.random.key(seed), features, train=False)
  params, stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)

  @jax.jit
  def step(params, stats, opt_state, images, labels):
    features = jax.lax.stop_gradient(forward(images.astype(jnp.float32) / 255))

    def loss_fn(params):
      logits, updates = head.apply(
        {"params": params, "batch_stats": stats}, features, train=True, mutable=["batch_stats"]
      )
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, (updates["batch_stats"], jnp.mean(jnp.argmax(logits, -1) == labels))

    (loss, (stats, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss, accuracy

  last_epoch = max(1, steps - max(examples // batch_size, 1))
  correct = []
  batch = first
  for i in tqdm(range(steps), desc=desc, unit="step", leave=False):
    if i:
      batch = next(batches)
    params, stats, opt_state, _, accuracy = step(params, stats, opt_state, batch["image"], batch["label"])
    if i >= last_epoch - 1:
      correct.append(float(accuracy))

  test = pipeline.eval_dataset(
    source,
    split=test_split,
    batch_size=batch_size,
    image_size=image_size,
    grayscale_to_rgb=grayscale_to_rgb,
    crop_fraction=eval_crop_fraction(image_size),
  )
  predict = jax.jit(
    lambda p, s, x: jnp.argmax(head.apply({"params": p, "batch_stats": s}, forward(x), train=False), -1)
  )
  hits, count = 0, 0
  for batch in test.as_numpy_iterator():
    hits += int(np.sum(np.asarray(predict(params, stats, batch["image"])) == batch["label"]))
    count += len(batch["label"])
  return {
    "linear_top1": hits / max(count, 1),
    "linear_train_top1": float(np.mean(correct)),
    "linear_epochs": float(epochs),
    "linear_steps": steps,
    "linear_lr": lr * batch_size / 256,
    "linear_optimizer": name,
    "linear_test_crop": eval_crop_fraction(image_size),
  }
