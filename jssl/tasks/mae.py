"""Masked image modeling with a masked autoencoder (MAE; He et al. 2021, "Masked Autoencoders
Are Scalable Vision Learners", arXiv:2111.06377).

Each image is cut into ``p x p`` patches (``model.patch_size``) and a random ``mae.mask_ratio``
of them (75%, the paper's) is hidden. The ViT encoder sees only the visible patches; a
light transformer decoder gets the encoded visible tokens plus a learned mask token for
every hidden patch and predicts every patch's pixels (``jssl.models.mae``). The loss is the
mean squared error on the hidden patches only, against each patch standardised by its own
mean and variance when ``mae.normalize_targets`` (the paper's ``norm_pix_loss``; see
``jssl.losses.mae``). The features for the online probe are the [CLS] output of the
visible-patch pass.

The host only crops and flips (``augment.crop_area``, ``crop_aspect``, ``flip_prob``; the
paper crops with area (0.2, 1)) and ships uint8, like the reconstruction tasks; the mask is
drawn inside the jit step per example from ``fold_in(rng, global index)``, so a step is the
same on any number of devices. The encoder's position embeddings are the paper's fixed 2-D
sine-cosine table (``mae.encoder_pos_embed``; its updates are zero, ``optimizer``); fine-tuning
trains them, as MAE's fine-tuning does. Only ViT encoders fit (the encoder must take any subset of
patch tokens); the encoder is ``params["encoder"]``, so export and evaluation take it as
they take a SimCLR ViT.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jssl import optim
from jssl.data import augment
from jssl.errors import ConfigError
from jssl.losses.mae import denormalize_patches, masked_patch_loss
from jssl.models import build_encoder, encoder_family
from jssl.models.mae import MAEDecoder, MAEModel
from jssl.models.vit import POS_EMBED_INITS
from jssl.ops.patches import num_kept, patchify, random_masking, unpatchify
from jssl.tasks.base import Task, global_indices

_HIDDEN_FILL = 0.5  # grey for hidden patches in pictures: black holes vanish in dark photos


class MAE(Task):
  """The MAE pretext task; see the module docstring.

  Batches hold ``image``: uint8 ``[B, S, S, C]`` (a random crop, maybe flipped) and ``label``.
  """

  name = "mae"
  reads = ("augment.crop_area", "augment.crop_aspect", "augment.flip_prob")
  produces_images = True

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.mask_ratio = 0.75  # fraction of patches hidden (the paper's best: 0.75)
    # The encoder's position embeddings: "sincos", the paper's fixed 2-D sine-cosine table
    # (requires_grad=False in the reference); "learned", trained from timm's initialisation.
    c.encoder_pos_embed = "sincos"
    c.normalize_targets = True  # standardise each target patch (the paper's norm_pix_loss)
    # The paper's decoder (512 wide, 8 blocks, 16 heads) is for ViT-B/L/H encoders of width
    # 768 and more; ViT-Tiny is 192 wide. 128 wide and 2 blocks keep it what the paper wants,
    # a decoder much narrower and shallower than the encoder (its head width, 32, is the paper's).
    c.decoder_dim = 128
    c.decoder_depth = 2
    c.decoder_heads = 4
    return c

  def __init__(self, config: ml_collections.ConfigDict, **kwargs):
    super().__init__(config, **kwargs)  # mesh=, source=: see Task
    if encoder_family(config.model.encoder) != "vit":
      raise ConfigError(
        f"task=mae encodes only the visible patches, which needs a ViT encoder; {config.model.encoder} "
        "is not one. Use vit_tiny, vit_small or vit_base."
      )
    self.settings = settings = config.mae
    self.image_size = config.data.image_size
    self.grayscale_to_rgb = config.data.grayscale_to_rgb
    self.crop_area, self.crop_aspect = tuple(config.augment.crop_area), tuple(config.augment.crop_aspect)
    self.flip_prob = config.augment.flip_prob
    if settings.encoder_pos_embed not in POS_EMBED_INITS:
      raise ConfigError(
        f"mae.encoder_pos_embed={settings.encoder_pos_embed!r}: choose one of {', '.join(POS_EMBED_INITS)}."
      )
    # build_encoder checks that model.patch_size divides data.image_size.
    encoder = build_encoder(config).clone(pos_embed_init=settings.encoder_pos_embed)
    self.patch_size = encoder.patch_size
    self.grid = (self.image_size // self.patch_size,) * 2
    self.num_patches = self.grid[0] * self.grid[1]
    self.num_kept = num_kept(self.num_patches, settings.mask_ratio)  # checks the ratio
    for key in ("decoder_dim", "decoder_depth", "decoder_heads"):
      if int(settings[key]) != settings[key] or settings[key] < 1:
        raise ConfigError(f"mae.{key} must be a positive integer, got {settings[key]}.")
    if settings.decoder_dim % settings.decoder_heads or settings.decoder_dim % 4:
      raise ConfigError(
        f"mae.decoder_dim={settings.decoder_dim} must be divisible by mae.decoder_heads="
        f"{settings.decoder_heads} and by 4 (for the sine-cosine position embeddings)."
      )
    decoder = MAEDecoder(
      patch_size=self.patch_size,
      dim=settings.decoder_dim,
      depth=settings.decoder_depth,
      num_heads=settings.decoder_heads,
      dtype=jnp.dtype(config.model.dtype),
    )
    self.model = MAEModel(encoder=encoder, decoder=decoder)

  def optimizer(self, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx``, with the encoder's sine-cosine position embeddings kept fixed (zero updates, so
    no weight decay either) when ``mae.encoder_pos_embed`` is ``sincos``."""
    if self.settings.encoder_pos_embed != "sincos":
      return tx
    fixed = ("encoder", "patch_embed", "pos_embed")
    groups = {"trained": tx, "fixed": optax.set_to_zero()}
    return optim.route(groups, lambda path: "fixed" if path == fixed else "trained")

  # --- host side

  def host_example(self, image, seed):
    """A random resized crop (``augment.crop_area``, ``crop_aspect``) and flip, as uint8."""
    return {
      "image": augment.crop_flip_uint8(
        image,
        seed,
        image_size=self.image_size,
        area_range=self.crop_area,
        aspect_range=self.crop_aspect,
        flip_prob=self.flip_prob,
      )
    }

  def batch_spec(self, batch_size: int, source) -> dict:
    channels = 3 if self.grayscale_to_rgb else source.channels
    image = (batch_size, self.image_size, self.image_size, channels)
    return {"image": jax.ShapeDtypeStruct(image, jnp.uint8), "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}

  # --- device side

  def masking(self, rng: jax.Array, batch_size: int):
    """``(keep [B, M], mask [B, N], restore [B, N])`` for a global batch; see ``random_masking``."""
    return random_masking(
      rng, global_indices(batch_size), num_patches=self.num_patches, mask_ratio=float(self.settings.mask_ratio)
    )

  def init(self, rng: jax.Array, batch: dict) -> dict:
    images = jnp.zeros(batch["image"].shape, jnp.float32)
    keep, _, restore = self.masking(rng, images.shape[0])
    return self.model.init(rng, images, keep, restore, train=False)

  @staticmethod
  def images_of(batch: dict) -> jax.Array:
    return batch["image"].astype(jnp.float32) / 255.0

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """``loss, (batch_stats, extra, metrics, features)``; features ``[B, F]``: [CLS] of the visible patches."""
    images = self.images_of(batch)
    keep, mask, restore = self.masking(rng, images.shape[0])
    features, pred = self.model.apply({"params": params}, images, keep, restore, train=True)
    loss = masked_patch_loss(
      pred, patchify(images, self.patch_size), mask, normalize_targets=self.settings.normalize_targets
    )
    return loss, (batch_stats, extra, {}, features)

  def hidden_input(self, images: jax.Array, mask: jax.Array) -> jax.Array:
    """``images [N, S, S, C]`` with the hidden patches (``mask [N, P]``) greyed out: what the encoder sees."""
    return self.paste(images, jnp.full_like(images, _HIDDEN_FILL), mask)

  def pixel_mask(self, mask: jax.Array) -> jax.Array:
    """Patch mask ``[N, P]`` -> pixel mask ``[N, S, S, 1]`` (1 in hidden patches)."""
    return unpatchify(jnp.broadcast_to(mask[..., None], (*mask.shape, self.patch_size**2)), self.patch_size, self.grid)

  def paste(self, images: jax.Array, fill: jax.Array, mask: jax.Array) -> jax.Array:
    """``images`` where ``mask [N, P]`` is 0, ``fill`` (same shape) in the hidden patches."""
    hidden = self.pixel_mask(mask)
    return images * (1.0 - hidden) + fill * hidden

  def reconstruct(self, params, batch_stats, images: jax.Array, rng: jax.Array):
    """Held-out ``images [N, S, S, C]`` in [0, 1] -> ``(rows, metrics)``.

    Rows: the visible patches, the prediction pasted into the hidden patches (in pixels:
    with ``normalize_targets`` scaled back by each target patch's own mean and standard
    deviation, as the paper's figures are) and the target. Metrics per image: ``masked_mse``
    of that composite on the hidden patches, and ``masked_mse_baseline``, the same for a
    prediction without structure: each hidden patch flat at its own mean (what a zero
    normalised prediction shows) with ``normalize_targets``, else flat at the mean colour of
    the image's visible pixels.
    """
    keep, mask, restore = self.masking(rng, images.shape[0])
    _, pred = self.model.apply({"params": params}, images, keep, restore, train=False)
    target = patchify(images, self.patch_size)
    if self.settings.normalize_targets:
      pixels, flat = denormalize_patches(pred, target), denormalize_patches(jnp.zeros_like(pred), target)
      baseline = unpatchify(flat, self.patch_size, self.grid)
    else:
      pixels = pred
      visible = 1.0 - self.pixel_mask(mask)
      mean = jnp.sum(images * visible, axis=(1, 2), keepdims=True) / jnp.sum(visible, axis=(1, 2), keepdims=True)
      baseline = jnp.broadcast_to(mean, images.shape)
    prediction = self.paste(images, jnp.clip(unpatchify(pixels, self.patch_size, self.grid), 0.0, 1.0), mask)
    baseline = self.paste(images, jnp.clip(baseline, 0.0, 1.0), mask)

    def masked_mse(composite):
      per_patch = jnp.mean(jnp.square(patchify(composite, self.patch_size) - target), axis=-1)
      return jnp.sum(per_patch * mask, axis=1) / jnp.sum(mask, axis=1)

    rows = {"input (visible)": self.hidden_input(images, mask), "prediction": prediction, "target": images}
    return rows, {"masked_mse": masked_mse(prediction), "masked_mse_baseline": masked_mse(baseline)}

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    images = self.images_of(batch)
    _, mask, _ = self.masking(rng, images.shape[0])
    return {"crop": images, "masked input": self.hidden_input(images, mask)}
