"""DeepCluster (Caron et al. 2018): classify images into the clusters of their own features.

How do clustering methods get labels? DeepCluster's are made offline, for the whole
training set at once (SwAV's, in ``jssl.tasks.swav``, are made online within each batch).
Every epoch (or every ``deepcluster.recluster_every_steps`` steps):

1. the encoder, in inference mode (batch-norm running statistics), embeds every training
   image, whole and unaugmented (as ``jssl.evaluate`` does);
2. the features are PCA-whitened to ``pca_dim`` dimensions and L2-normalised, and k-means
   (``jssl.kmeans.kmeans``: ``num_clusters`` clusters, ``kmeans_iterations`` Lloyd
   iterations, empty clusters re-seeded by splitting the biggest) assigns each image a
   cluster;
3. the assignments become pseudo-labels, and until the next clustering the encoder and a
   linear classifier on its features train with cross-entropy against them, on augmented
   crops (random resized crop and flip: ``augment.crop_area``, ``crop_aspect``, ``flip_prob``).

Cluster indices mean nothing from one clustering to the next, so the classifier is
re-initialised after each (weights N(0, 0.01), zero bias, as the paper), and so is its
optimizer state (``refresh_resets``: momentum restarts from zero, as the reference's
fresh optimizer for the new top layer; the step count and the encoder's momentum go on).
``uniform_sampling`` (on by default: the reference always samples uniformly over clusters)
weighs each example by 1 / (size of its cluster) in the batch, the expectation of the
paper's sampler that draws images uniformly over clusters (our input pipeline is a fixed
function of the seed and step, so we reweight instead of resampling).

The pseudo-labels live in the train state as ``extra["labels"]`` (the task's state that is not trained)
(int32 ``[N]``, one per training image, looked up by the batch's ``index``), so a
checkpoint holds them and a resumed run continues with the same labels until its next
clustering. Next to them: how many clusterings were made (which also keys their
randomness), the NMI between the last two (the paper's measure of how the clusters
settle), the mean k-means inertia and the cluster sizes, all logged as metrics.

Multi-process runs: every process extracts the features of the whole training split on
its own devices and runs the same deterministic k-means, duplicating the work so that no
features need to travel between processes; all get identical labels.

Not included: the paper's Sobel input filtering and its MLP between features and classifier.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jssl import parallel
from jssl.data import augment, pipeline
from jssl.errors import ConfigError
from jssl.kmeans import kmeans
from jssl.models import build_encoder
from jssl.models.deepcluster import DeepClusterModel
from jssl.nmi import normalized_mutual_info
from jssl.tasks.base import Task


def _host_values(tree, mesh):
  """Whole arrays as numpy, read from this process (gathered first if split over ``fsdp``)."""

  def get(x):
    if not isinstance(x, jax.Array):
      return np.asarray(x)
    if not x.is_fully_replicated:
      x = jax.jit(lambda a: a, out_shardings=parallel.replicated(mesh))(x)
    return np.asarray(x.addressable_data(0))

  return jax.tree.map(get, tree)


class DeepCluster(Task):
  """The DeepCluster pretext task.

  Batches hold ``image``: uint8 ``[B, S, S, C]`` crops, ``index``: int32 ``[B]`` positions
  in the training split, and ``label``: int32 ``[B]`` (only for the online probe).
  """

  name = "deepcluster"
  refresh_resets = ("classifier",)  # a new classifier after each clustering, with a new optimizer state
  reads = ("augment.crop_area", "augment.crop_aspect", "augment.flip_prob")

  @classmethod
  def defaults(cls):
    c = ml_collections.ConfigDict()
    c.num_clusters = 10_000  # k (the paper's best on ImageNet)
    c.kmeans_iterations = 20  # Lloyd iterations per clustering (faiss's default, as the paper)
    c.kmeans_init = "random"  # random (k distinct images, as faiss) | kmeans++
    c.recluster_every_steps = 0  # 0: once per epoch
    c.pca_dim = 256  # PCA-whitening to this many dimensions before k-means; 0: none
    c.uniform_sampling = True  # weigh examples by 1 / cluster size (the reference samples uniformly)
    return c

  def __init__(self, config: ml_collections.ConfigDict, *, mesh=None, source=None):
    super().__init__(config, mesh=mesh, source=source)
    s = self.settings = config.deepcluster
    if s.num_clusters < 2:
      raise ConfigError(f"deepcluster.num_clusters={s.num_clusters}: need at least 2 clusters.")
    if s.kmeans_iterations < 1:
      raise ConfigError(f"deepcluster.kmeans_iterations={s.kmeans_iterations} must be >= 1.")
    if s.kmeans_init not in ("random", "kmeans++"):
      raise ConfigError(f"deepcluster.kmeans_init={s.kmeans_init!r}: expected 'random' or 'kmeans++'.")
    if s.recluster_every_steps < 0:
      raise ConfigError(
        f"deepcluster.recluster_every_steps={s.recluster_every_steps} must be >= 0 (0: once per epoch)."
      )
    self.image_size, self.grayscale_to_rgb = config.data.image_size, config.data.grayscale_to_rgb
    self.crop_area, self.crop_aspect = tuple(config.augment.crop_area), tuple(config.augment.crop_aspect)
    self.flip_prob = config.augment.flip_prob
    self.model = DeepClusterModel(encoder=build_encoder(config), num_clusters=int(s.num_clusters))
    num_features = self.model.encoder.num_features
    if not 0 <= s.pca_dim <= num_features:
      raise ConfigError(
        f"deepcluster.pca_dim={s.pca_dim}: {config.model.encoder} has {num_features} features; "
        f"use at most {num_features}, or 0 for no PCA."
      )
    self._forward = {}  # jitted feature extraction per mesh

  @property
  def num_examples(self) -> int:
    if self.source is None:
      raise ConfigError("deepcluster needs the run's data source (one pseudo-label per training image).")
    return self.source.num_examples(self.config.data.train_split)

  # --- host side

  def host_example(self, image, seed):
    """A random resized crop and flip, as uint8 (the pipeline adds ``index`` and ``label``)."""
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
    return {
      "image": jax.ShapeDtypeStruct((batch_size, self.image_size, self.image_size, channels), jnp.uint8),
      "index": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
      "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
    }

  # --- device side

  def init(self, rng: jax.Array, batch: dict) -> dict:
    """Model variables, plus ``extra``: all-zero pseudo-labels ``[N]``
    (the first ``refresh`` runs before the first step) and zeroed statistics."""
    variables = self.model.init(rng, jnp.zeros(batch["image"].shape, jnp.float32), train=False)
    k = self.settings.num_clusters
    state = {
      "labels": jnp.zeros((self.num_examples,), jnp.int32),
      "clusterings": jnp.zeros((), jnp.int32),
      "nmi": jnp.zeros((), jnp.float32),
      "inertia": jnp.zeros((), jnp.float32),
      "cluster_sizes": jnp.zeros((k,), jnp.float32),
    }
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {}), "extra": state}

  def refresh_every(self, steps_per_epoch: int) -> int:
    return int(self.settings.recluster_every_steps) or steps_per_epoch

  def augmentation_rows(self, batch: dict, rng: jax.Array) -> dict:
    return {"crop": batch["image"].astype(jnp.float32) / 255.0}

  def loss(self, params, batch_stats, extra, batch: dict, rng: jax.Array, step: jax.Array):
    """Cross-entropy against the pseudo-labels: ``loss, (batch_stats, extra, metrics, features)``."""
    images = batch["image"].astype(jnp.float32) / 255.0
    (features, logits), updates = self.model.apply(
      {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
    )
    targets = jnp.take(extra["labels"], batch["index"])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    if self.settings.uniform_sampling:
      weights = 1.0 / jnp.maximum(jnp.take(extra["cluster_sizes"], targets), 1.0)
      loss = jnp.sum(weights * losses) / jnp.sum(weights)
    else:
      loss = jnp.mean(losses)
    metrics = {
      "pseudo_label_top1": jnp.mean(jnp.argmax(logits, axis=-1) == targets),
      "clusters_nmi": extra["nmi"],
      "kmeans_inertia": extra["inertia"],
      "clusters_used": jnp.sum(extra["cluster_sizes"] > 0).astype(jnp.float32),
      "clusterings": extra["clusterings"].astype(jnp.float32),
    }
    return loss, (updates.get("batch_stats", batch_stats), extra, metrics, features)

  # --- the clustering, outside the step

  def extract_features(self, encoder_variables, mesh) -> np.ndarray:
    """Features ``[N, F]`` float32 of the whole training split in its order (whole images
    resized, batch norm in inference mode), computed on ``mesh``'s devices."""
    devices = mesh.devices.size
    batch_size = -(-self.config.eval.batch_size // devices) * devices
    if mesh not in self._forward:
      encoder = self.model.encoder
      self._forward[mesh] = jax.jit(
        lambda v, x: encoder.apply(v, x, train=False),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
        out_shardings=parallel.replicated(mesh),
      )
    forward = self._forward[mesh]
    variables = jax.device_put(encoder_variables, parallel.replicated(mesh))
    dataset = pipeline.eval_dataset(
      self.source,
      split=self.config.data.train_split,
      batch_size=batch_size,
      image_size=self.image_size,
      grayscale_to_rgb=self.grayscale_to_rgb,
    )
    features = []
    for batch in dataset.as_numpy_iterator():
      images, n = batch["image"], len(batch["image"])
      images = np.pad(images, [(0, batch_size - n)] + [(0, 0)] * 3)  # one compiled shape
      out = forward(variables, jax.device_put(images, parallel.batch_sharding(mesh)))
      features.append(np.asarray(out.addressable_data(0))[:n])
    features = np.concatenate(features)
    if len(features) != self.num_examples:
      raise ConfigError(f"Read {len(features)} training images for clustering, expected {self.num_examples}.")
    return features

  def refresh(self, params, batch_stats, extra, setup):
    """Re-clusters: features of the training split -> k-means -> new pseudo-labels and a
    fresh classifier. Returns ``(params, batch_stats, extra)``; the same on every process."""
    local = [d for d in setup.mesh.devices.flat if d.process_index == jax.process_index()]
    mesh = parallel.make_mesh(local)
    host_params, host_stats = _host_values(params, setup.mesh), _host_values(batch_stats, setup.mesh)
    features = self.extract_features(self.encoder_variables(host_params, host_stats), mesh)
    previous = _host_values(extra, setup.mesh)
    count = int(previous["clusterings"])
    s = self.settings
    kmeans_key, classifier_key = jax.random.split(jax.random.fold_in(jax.random.key(self.config.seed), count))
    _, labels, inertia = kmeans(
      features,
      int(s.num_clusters),
      key=kmeans_key,
      iterations=int(s.kmeans_iterations),
      mesh=mesh,
      init=s.kmeans_init,
      pca_dim=int(s.pca_dim),
      l2_normalize=True,
    )
    nmi = normalized_mutual_info(previous["labels"], labels) if count > 0 else 0.0
    state = {
      "labels": labels.astype(np.int32),
      "clusterings": np.asarray(count + 1, np.int32),
      "nmi": np.asarray(nmi, np.float32),
      "inertia": np.asarray(inertia[-1] / len(labels), np.float32),
      "cluster_sizes": np.bincount(labels, minlength=s.num_clusters).astype(np.float32),
    }
    old = host_params["classifier"]
    classifier = {
      "kernel": np.asarray(0.01 * jax.random.normal(classifier_key, old["kernel"].shape), old["kernel"].dtype),
      "bias": np.zeros_like(old["bias"]),
    }
    return {**params, "classifier": classifier}, batch_stats, state
