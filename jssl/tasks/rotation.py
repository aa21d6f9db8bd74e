"""Rotation prediction (RotNet, Gidaris et al. 2018): which of 0/90/180/270 degrees was an image turned by?

To say how an image was rotated the network has to know where objects' tops and bottoms
are, which takes recognising them; the label costs nothing. The host ships mildly
cropped and flipped uint8 images (as the reconstruction tasks do); the step rotates them
and classifies the rotation with a small head on the encoder's features, cross-entropy.

``rotation.rotations``:

* ``"all"`` (the paper's choice, its best): every image appears four times in the step,
  once per rotation, so a global batch of B images trains on 4B; batch norm sees all 4B.
* ``"random"``: one rotation per image, drawn from ``fold_in(rng, global index)`` (the
  same on any number of devices); a quarter of the compute per image.

The online probe sees the encoder's features of the unrotated copy (``"all"``) or of the
rotated image (``"random"``; only a monitor either way).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl.data import augment
from jssl.errors import ConfigError
from jssl.models import EncoderWithHead, ProjectionHead, build_encoder
from jssl.tasks.base import Task, global_indices

NUM_ROTATIONS = 4


def rotate(images: jax.Array, quarter_turns: jax.Array) -> jax.Array:
  """``images [B, S, S, C]`` each turned counter-clockwise by ``quarter_turns [B]`` x 90 degrees."""
  turned = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)])  # [4, B, S, S, C]
  return turned[quarter_turns, jnp.arange(images.shape[0])]


class Rotation(Task):
  """RotNet; batches are ``image`` uint8 ``[B, S, S, C]`` and ``label`` int32 ``[B]`` (probe only)."""

  name = "rotation"
  reads = ("augment.crop_area", "augment.crop_aspect", "augment.flip_prob")

  @classmethod
  def defaults(cls) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.rotations = "all"  # all: 4 rotated copies of every image | random: one rotation per image
    c.head_hidden_dim = 256  # the classifier's MLP width; head_layers=1 makes it linear
    c.head_layers = 2
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    settings = config.rotation
    if settings.rotations not in ("all", "random"):
      raise ConfigError(
        f"rotation.rotations={settings.rotations!r}: expected 'all' (four rotated copies of every "
        "image) or 'random' (one rotation per image)."
      )
    self.rotations = settings.rotations
    self.image_size, self.grayscale_to_rgb = config.data.image_size, config.data.grayscale_to_rgb
    self.crop = dict(
      image_size=self.image_size,
      area_range=tuple(config.augment.crop_area),
      aspect_range=tuple(config.augment.crop_aspect),
      flip_prob=config.augment.flip_prob,
    )
    # The head ends in BN, as SimCLR's: logits then start well scaled whatever the encoder.
    head = ProjectionHead(
      hidden_dim=settings.head_hidden_dim,
      out_dim=NUM_ROTATIONS,
      num_layers=settings.head_layers,
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = EncoderWithHead(encoder=build_encoder(config), head=head)

  def host_example(self, image, seed):
    """A random resized crop (``augment.crop_area``, ``crop_aspect``) and flip, as uint8 (no
    colour changes: rotation is the only thing the model has to find)."""
    return {"image": augment.crop_flip_uint8(image, seed, **self.crop)}

  def batch_spec(self, batch_size: int, source) -> dict:
    channels = 3 if self.grayscale_to_rgb else source.channels
    image = (batch_size, self.image_size, self.image_size, channels)
    return {"image": jax.ShapeDtypeStruct(image, jnp.uint8), "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}

  def init(self, rng: jax.Array, batch: dict) -> dict:
    return self.model.init(rng, jnp.zeros(batch["image"].shape, jnp.float32), train=False)

  def rotated(self, batch: dict, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(images [R, S, S, C], quarter_turns [R])``: R = 4B (``all``, rotation-major) or B."""
    images = batch["image"].astype(jnp.float32) / 255.0
    count = images.shape[0]
    if self.rotations == "all":
      turns = jnp.repeat(jnp.arange(NUM_ROTATIONS), count)
      return jnp.concatenate([jnp.rot90(images, k, axes=(1, 2)) for k in range(NUM_ROTATIONS)]), turns
    keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(global_indices(count))
    turns = jax.vmap(lambda key: jax.random.randint(key, (), 0, NUM_ROTATIONS))(keys)
    return rotate(images, turns), turns

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, {"rotation_accuracy"}, features [B, F])``."""
    images, turns = self.rotated(batch, rng)
    (features, logits), updates = self.model.apply(
      {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, turns).mean()
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == turns)
    features = features[: batch["image"].shape[0]]  # "all": the unrotated copies come first
    return loss, (updates["batch_stats"], extra, {"rotation_accuracy": accuracy}, features)

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    images, turns = self.rotated(batch, rng)
    count = batch["image"].shape[0]
    if self.rotations == "all":
      return {f"{90 * k} degrees": images[k * count : (k + 1) * count] for k in range(NUM_ROTATIONS)}
    return {"crop": batch["image"].astype(jnp.float32) / 255.0, "rotated": images}
