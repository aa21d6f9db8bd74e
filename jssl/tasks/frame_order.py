"""Frame-order prediction: Shuffle and Learn (Misra, Zitnick and Hebert, "Shuffle and Learn:
Unsupervised Learning using Temporal Order Verification", ECCV 2016).

A tuple of ``n`` frames from one clip is shown either in its temporal order or shuffled,
and the network tells which. Every frame goes through the same (shared) per-frame image
encoder; the frames' features are concatenated in the order shown (the paper concatenates
fc7 features) and a small MLP classifies them. The features the head reads keep the frame's
spatial layout (``spatial_channels``: the encoder's last feature map, squeezed by a 1x1
convolution; ``jssl.models.frame_order``), as fc7 does: globally pooled features keep little
of where an object is, and where it is, frame after frame, is what an order is about.

**Where jssl differs from the paper, and why.** The head reads the *differences* of
consecutive shown frames' features (``head_input=differences``, as the pairwise feature
differences of Lee et al. 2017's order prediction network) rather than the concatenated
features (``concat``, the paper's). On moving Fashion-MNIST at the CPU table's budget
(``configs/pretext_cpu.py:frame_order``, 300 steps) the concatenating head stayed at chance
(training loss ln 2 throughout, held-out order accuracy 0.499), while with differences the
training accuracy passed 0.85 by step 75 and the held-out order accuracy reached 0.89: the
differences cancel what the frames share (which garment, its texture) and leave what
moved, which the concatenating head has to learn to subtract before it sees any signal. To
solve this the encoder has to notice what moves and how, so its features describe objects
and pose rather than pixels; the exported encoder is a plain image encoder, evaluated on
images like every other.

Two targets (``frame_order.mode``):

* ``binary``: the paper's order verification. A tuple counts as in order when shown in its
  temporal order or reversed (a motion played backwards is as plausible, and the paper
  labels both positive); ``positive_fraction`` of the tuples are shown so (either way
  round with equal probability). The negatives (``negatives``): ``outside``, the paper's,
  from five frames a < b < c < d < e the tuples (b, a, d) and (b, e, d) (or reversed), whose
  middle frame lies outside the span of the other two; ``shuffle``, one of the other orders
  of the same ``n`` frames, uniformly, so that no frame's appearance gives the answer away.
* ``permutation``: which permutation was applied, with each permutation merged with its
  reverse into one of ``n!/2`` classes, as in Lee et al., "Unsupervised Representation
  Learning by Sorting Sequences" (ICCV 2017); uniform over all ``n!`` permutations.

Host side (``host_example``): the tuple's frames (five, a < b < c < d < e, for the paper's
negatives) are evenly spaced, ``frame_gap`` apart (0: as far apart as the clip allows),
from a random start. The paper samples its tuples from high-motion windows (by the
magnitude of optical flow); ``window=motion`` (the default) draws the start with
probability proportional to the window's motion, the mean absolute difference between
consecutive frames summed over the frames it spans (a cheap stand-in for flow magnitude:
static stretches of a real video, where no order can be seen, are then rarely drawn, and
a clip with no motion at all falls back to uniform). ``uniform``: every start equally
likely (moving Fashion-MNIST moves everywhere all the time, so the CPU recipe uses it).
One random resized crop and flip is shared by all frames of a tuple, so that the order is
the only thing that differs between the classes. Frames are shipped as uint8 in temporal
order.

Device side (``loss``): each example's permutation is drawn from ``fold_in(rng, global
index)`` (the same on any number of devices), the frames are permuted, and all ``B * n``
frames pass the encoder in one batch, so batch norm sees them all; softmax cross-entropy
on the head's logits, ``order_accuracy`` in the metrics. The online probe gets the
encoder features of each tuple's first frame in time.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jssl.data import augment
from jssl.data.tf_host import tf
from jssl.data.video import is_video
from jssl.errors import ConfigError
from jssl.models import build_encoder, encoder_family
from jssl.models.frame_order import FrameOrderModel, OrderHead
from jssl.tasks.base import Task, global_indices

MODES = ("binary", "permutation")
NEGATIVES = ("outside", "shuffle")
HEAD_INPUTS = ("concat", "differences")
WINDOWS = ("motion", "uniform")
# negatives=outside: the rows of the 5 host frames (a, b, c, d, e) shown, and their labels:
# (b, c, d) either way round is in order; (b, a, d), (b, e, d) either way round are not.
OUTSIDE_ORDERS = np.asarray([[1, 2, 3], [3, 2, 1], [1, 0, 3], [3, 0, 1], [1, 4, 3], [3, 4, 1]], np.int32)
OUTSIDE_LABELS = np.asarray([1, 1, 0, 0, 0, 0], np.int32)
MAX_TUPLE_FRAMES = 6  # permutation mode: 6!/2 = 360 classes already


def permutations(n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
  """Every order of ``n`` frames and its class.

  Returns:
    ``(perms int32 [n!, n], labels int32 [n!])``: ``perms[p, j]`` is the temporal index of
    the frame shown at position ``j`` (lexicographic order, identity first). ``binary``:
    label 1 for the identity and its reverse, 0 otherwise. ``permutation``: a class in
    ``[0, n!/2)`` per permutation, the same for a permutation and its reverse (classes
    numbered in the order of their lexicographically smaller member).
  """
  if mode not in MODES:
    raise ConfigError(f"frame_order.mode={mode!r}: choose one of {', '.join(MODES)}.")
  if not 3 <= n <= MAX_TUPLE_FRAMES:
    raise ConfigError(
      f"frame_order.tuple_frames={n}: use 3 to {MAX_TUPLE_FRAMES} frames (with 2, every order is "
      "the identity or its reverse, so there is nothing to tell apart)."
    )
  perms = list(itertools.permutations(range(n)))
  if mode == "binary":
    labels = [int(p == tuple(range(n)) or p == tuple(reversed(range(n)))) for p in perms]
  else:
    canonical = [min(p, p[::-1]) for p in perms]
    index = {c: i for i, c in enumerate(sorted(set(canonical)))}
    labels = [index[c] for c in canonical]
  return np.asarray(perms, np.int32), np.asarray(labels, np.int32)


def num_classes(n: int, mode: str) -> int:
  """Classes the head predicts: 2 (``binary``) or ``n!/2`` (``permutation``)."""
  return 2 if mode == "binary" else math.factorial(n) // 2


class FrameOrder(Task):
  """Shuffle and Learn on a video source (see the module docstring).

  Batches hold ``frames``: uint8 ``[B, n, S, S, C]`` in temporal order, and ``label``
  ``[B]`` int32 (the clip's class, used only by the online probe).
  """

  name = "frame_order"

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.tuple_frames = 3  # n frames per tuple (Shuffle and Learn: 3)
    c.mode = "binary"  # binary: in order (or reversed) vs shuffled | permutation: which of n!/2
    c.positive_fraction = 0.5  # binary: share of tuples shown in order
    c.frame_gap = 0  # frames between a tuple's frames; 0: as far apart as the clip allows
    # motion: starts drawn in proportion to the window's motion (the paper's high-motion windows) | uniform
    c.window = "motion"
    c.crop_area = (0.5, 1.0)  # one random resized crop (and flip) for all frames of a tuple
    c.crop_aspect = (3 / 4, 4 / 3)
    c.flip_prob = 0.5
    c.head_hidden_dim = 512  # MLP on the concatenated per-frame features
    c.negatives = "outside"  # binary: outside (the paper's (b, a, d), (b, e, d)) | shuffle (needs any tuple_frames)
    # > 0: the head reads each frame's last feature map squeezed to this many channels (keeps
    # where things are); 0: the pooled features. ResNet encoders only.
    c.spatial_channels = 16
    # differences: the head reads the differences of consecutive shown frames' features (Lee et
    # al. 2017's pairwise differences; the default, see the module docstring) | concat: the
    # features side by side (the paper's fc7 concatenation)
    c.head_input = "differences"
    return c

  def __init__(self, config: ml_collections.ConfigDict, **kwargs):
    super().__init__(config, **kwargs)
    settings = config.frame_order
    self.tuple_frames, self.mode = int(settings.tuple_frames), settings.mode
    self.perms, self.labels = permutations(self.tuple_frames, self.mode)  # checks mode and tuple_frames
    self.positive_fraction = float(settings.positive_fraction)
    if self.mode == "binary" and not 0.0 < self.positive_fraction < 1.0:
      raise ConfigError(
        f"frame_order.positive_fraction={settings.positive_fraction}: need a fraction strictly "
        "between 0 and 1 (with only one class shown there is nothing to learn)."
      )
    self.frame_gap = int(settings.frame_gap)
    if self.frame_gap < 0:
      raise ConfigError(f"frame_order.frame_gap={settings.frame_gap}: use 0 (widest) or a positive frame count.")
    self.window = settings.window
    if self.window not in WINDOWS:
      raise ConfigError(f"frame_order.window={self.window!r}: choose one of {', '.join(WINDOWS)}.")
    self.crop_area, self.crop_aspect = tuple(settings.crop_area), tuple(settings.crop_aspect)
    if not (len(self.crop_area) == 2 and 0.0 < self.crop_area[0] <= self.crop_area[1] <= 1.0):
      raise ConfigError(f"frame_order.crop_area={settings.crop_area}: need 0 < low <= high <= 1.")
    if not (len(self.crop_aspect) == 2 and 0.0 < self.crop_aspect[0] <= self.crop_aspect[1]):
      raise ConfigError(f"frame_order.crop_aspect={settings.crop_aspect}: need 0 < low <= high.")
    self.flip_prob = float(settings.flip_prob)
    if not 0.0 <= self.flip_prob <= 1.0:
      raise ConfigError(f"frame_order.flip_prob={settings.flip_prob}: need a probability in [0, 1].")
    if settings.head_hidden_dim < 1:
      raise ConfigError(f"frame_order.head_hidden_dim={settings.head_hidden_dim}: need a positive width.")
    self.negatives = settings.negatives
    if self.negatives not in NEGATIVES:
      raise ConfigError(f"frame_order.negatives={self.negatives!r}: choose one of {', '.join(NEGATIVES)}.")
    self.outside = self.mode == "binary" and self.negatives == "outside"
    if self.outside:
      if self.tuple_frames != 3:
        raise ConfigError(
          f"frame_order.negatives=outside makes tuples of 3 frames from 5 (the paper's); got "
          f"tuple_frames={self.tuple_frames}. Use 3, or negatives=shuffle."
        )
      self.perms, self.labels = OUTSIDE_ORDERS, OUTSIDE_LABELS
    self.spatial_channels = int(settings.spatial_channels)
    if self.spatial_channels < 0:
      raise ConfigError(f"frame_order.spatial_channels={settings.spatial_channels}: use 0 (pooled) or more.")
    if self.spatial_channels and encoder_family(config.model.encoder) != "resnet":
      raise ConfigError(
        f"frame_order.spatial_channels={self.spatial_channels} reads a ResNet's last feature map; "
        f"{config.model.encoder} has none. Use frame_order.spatial_channels=0 (pooled features)."
      )
    if settings.head_input not in HEAD_INPUTS:
      raise ConfigError(f"frame_order.head_input={settings.head_input!r}: choose one of {', '.join(HEAD_INPUTS)}.")
    self.image_size, self.grayscale_to_rgb = config.data.image_size, config.data.grayscale_to_rgb
    head = OrderHead(
      hidden_dim=int(settings.head_hidden_dim),
      num_classes=num_classes(self.tuple_frames, self.mode),
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = FrameOrderModel(
      encoder=build_encoder(config),
      head=head,
      spatial_channels=self.spatial_channels,
      differences=settings.head_input == "differences",
      dtype=jnp.dtype(config.model.dtype),
    )

  # --- host side

  @property
  def host_frames(self) -> int:
    """Frames per example the host ships: 5 for the paper's negatives (a < b < c < d < e), else ``n``."""
    return 5 if self.outside else self.tuple_frames

  def gap(self, clip_frames):
    """Frames between consecutive shipped frames in a clip of ``clip_frames`` (int or tensor)."""
    return self.frame_gap or (clip_frames - 1) // (self.host_frames - 1)

  def host_example(self, clip, seed):
    """float32 clip ``[T, H, W, C]`` in [0, 1] and an int64 ``[2]`` seed -> ``{"frames": uint8
    [n, S, S, C]}``: evenly spaced frames from a random start, in temporal order, all
    cropped and flipped alike."""
    start_seed, crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    n, length = self.host_frames, tf.shape(clip)[0]
    gap = self.gap(length)
    starts = length - gap * (n - 1)
    if self.window == "uniform":
      start = tf.random.stateless_uniform([], start_seed, minval=0, maxval=starts, dtype=tf.int32)
    else:
      start = self.motion_weighted_start(clip, gap * (n - 1), start_seed)
    frames = tf.gather(clip, start + gap * tf.range(n))
    begin, size = augment.sample_crop_box(
      tf.shape(frames)[1:], crop_seed, area_range=self.crop_area, aspect_range=self.crop_aspect
    )
    frames = tf.slice(frames, tf.concat([[0], begin], 0), tf.concat([[-1], size], 0))
    frames.set_shape([n, None, None, clip.shape[-1]])
    # Bicubic overshoots near edges, hence the clip (as augment.random_resized_crop does).
    frames = tf.clip_by_value(tf.image.resize(frames, [self.image_size] * 2, method="bicubic"), 0.0, 1.0)
    if self.flip_prob > 0:
      flip = tf.random.stateless_uniform([], flip_seed) < self.flip_prob
      frames = tf.cond(flip, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    return {"frames": tf.image.convert_image_dtype(frames, tf.uint8, saturate=True)}

  @staticmethod
  def window_motion(clip, span):
    """float32 ``[T - span]``: for each start ``s``, the motion of frames ``s .. s + span`` of
    the clip ``[T, H, W, C]``, the sum of the mean absolute differences of consecutive frames."""
    steps = tf.reduce_mean(tf.abs(clip[1:] - clip[:-1]), axis=[1, 2, 3])  # [T - 1]
    totals = tf.concat([[0.0], tf.cumsum(steps)], 0)  # totals[t]: motion of frames 0 .. t
    return totals[span:] - totals[: tf.shape(totals)[0] - span]

  @classmethod
  def motion_weighted_start(cls, clip, span, seed):
    """A start ``s`` in ``[0, T - span)`` drawn with probability proportional to
    ``window_motion`` (uniform when the clip never changes)."""
    # log(0 + tiny) for static windows: drawn only when the whole clip is static (all equal).
    logits = tf.math.log(cls.window_motion(clip, span) + 1e-12)[None]
    return tf.cast(tf.random.stateless_categorical(logits, 1, seed)[0, 0], tf.int32)

  def batch_spec(self, batch_size: int, source) -> dict:
    """Global shapes of the batches; checks that the source is a video source with clips
    long enough for a tuple."""
    if not is_video(source):
      raise ConfigError(
        f"task=frame_order needs clips: data.source={source.name!r} yields images. Use "
        "moving_fashion_mnist or video_folder:PATH (and eval.source for the probes' images)."
      )
    length, n = source.clip_frames, self.host_frames
    if length < n or self.gap(length) * (n - 1) > length - 1:
      raise ConfigError(
        f"frame_order: {n} frames {self.gap(length)} apart (frame_gap={self.frame_gap}) "
        f"do not fit in clips of data.clip_frames={length}; use longer clips, fewer tuple_frames "
        "or a smaller frame_gap."
      )
    channels = 3 if self.grayscale_to_rgb else source.channels
    frames = (batch_size, n, self.image_size, self.image_size, channels)
    return {"frames": jax.ShapeDtypeStruct(frames, jnp.uint8), "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}

  # --- device side

  def init(self, rng: jax.Array, batch: dict) -> dict:
    shown = batch["frames"].shape[:1] + (self.tuple_frames,) + batch["frames"].shape[2:]
    return self.model.init(rng, jnp.zeros(shown, jnp.float32), train=False)

  def shuffle(self, frames: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Shows each tuple in an order drawn from ``fold_in(rng, global index)``.

    Args:
      frames: ``[B, n, ...]`` in temporal order (``[B, 5, ...]`` for the paper's negatives).

    Returns:
      ``(shown [B, n, ...], order int32 [B, n], label int32 [B])``: ``shown[b, j] =
      frames[b, order[b, j]]``, and ``label[b]`` is the class of ``order[b]``.
    """
    perms, labels = jnp.asarray(self.perms), jnp.asarray(self.labels)
    # One uniform draw per example picks both the class and the order within it: fewer random
    # ops than a coin and a pick (random ops are what compiles slowest on CPU).
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(rng, i)))(global_indices(frames.shape[0]))

    def pick(rows, fraction):  # rows[floor(fraction * len(rows))] for fraction in [0, 1)
      index = jnp.clip(jnp.floor(fraction * len(rows)).astype(jnp.int32), 0, len(rows) - 1)
      return jnp.asarray(rows)[index]

    if self.mode == "permutation":
      rows = pick(np.arange(len(self.perms)), u)
    else:
      p = self.positive_fraction
      rows = jnp.where(
        u < p, pick(np.flatnonzero(self.labels == 1), u / p), pick(np.flatnonzero(self.labels == 0), (u - p) / (1 - p))
      )
    order = perms[rows]
    shown = jnp.take_along_axis(frames, order.reshape(order.shape + (1,) * (frames.ndim - 2)), axis=1)
    return shown, order, labels[rows]

  @staticmethod
  def frames_of(batch: dict) -> jax.Array:
    return batch["frames"].astype(jnp.float32) / 255.0

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``; features ``[B, F]`` of each tuple's first frame in time."""
    shown, order, labels = self.shuffle(self.frames_of(batch), rng)
    (features, logits), updates = self.model.apply(
      {"params": params, "batch_stats": batch_stats}, shown, train=True, mutable=["batch_stats"]
    )
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    first = jnp.argmin(order, axis=1)  # where the earliest frame is shown
    first_features = jnp.take_along_axis(features, first[:, None, None], axis=1)[:, 0]
    return loss, ({**batch_stats, **updates["batch_stats"]}, extra, {"order_accuracy": accuracy}, first_features)

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    """The tuples in temporal order, then as the model is shown them."""
    frames = self.frames_of(batch)
    shown, _, _ = self.shuffle(frames, rng)
    rows = {f"frame {j + 1} in time": frames[:, j] for j in range(frames.shape[1])}
    return {**rows, **{f"shown {j + 1}": shown[:, j] for j in range(self.tuple_frames)}}
