"""Sharded k-means for DeepCluster (Caron et al. 2018, "Deep Clustering for Unsupervised
Learning of Visual Features"), which clusters the features of the whole training set offline,
once per epoch; the assignments are pseudo-labels for the next epoch. Empty clusters are
re-seeded by splitting the biggest one, as faiss (which DeepCluster uses) does.
(SwAV's online assignment, Sinkhorn-Knopp, is ``jssl.losses.swav``; the agreement of two
clusterings, NMI, is ``jssl.nmi``.)

``kmeans`` runs Lloyd's algorithm on a mesh: the (padded) features are split over every
device of the mesh along the batch axes (``jssl.parallel.BATCH_AXES``) and each device
assigns its own rows; the per-cluster sums and counts are the only global quantities
(``psum`` of ``[k, d]`` and ``[k]``). We write it with ``jax.shard_map`` rather than letting
``jit`` partition global array code: the assignment then runs over row blocks of a size we
choose, so no device ever holds more than ``[block_rows, k]`` distances (DeepCluster's
ImageNet setting, 1.28M images x 10k clusters, would otherwise be 51 GB), and the
reductions are explicit. Sums are one-hot matmuls, not scatter-adds, so that they are
deterministic on GPUs too: in a multi-process run every process clusters the same features
on its own devices and must get the same labels.

Features can be preprocessed first as DeepCluster does: PCA-whitening to ``pca_dim``
dimensions (eigenvectors of the feature covariance, scaled by 1/sqrt(eigenvalue)) and L2
normalisation, after which Euclidean k-means ranks neighbours by cosine similarity. The
padding rows that make the row count divide the device count carry a validity mask and
never count in a mean, covariance, sum or inertia.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jssl import parallel

_AXES = parallel.BATCH_AXES
_HIGHEST = jax.lax.Precision.HIGHEST  # f32 matmuls on TPU too: these are sums of features, not activations
# faiss's relative perturbation of a split centroid (clustering/Clustering.cpp, EPS = 1 / 1024).
SPLIT_EPSILON = 1.0 / 1024


def split_empty_clusters(
  centroids: jax.Array, counts: jax.Array, key: jax.Array, *, epsilon: float = SPLIT_EPSILON
) -> tuple[jax.Array, jax.Array]:
  """Re-seeds every empty cluster by splitting the biggest one (faiss, as DeepCluster uses).

  Empty clusters are handled in index order. Each takes a copy of the centroid of the
  cluster that is currently biggest (the first on ties), with every coordinate scaled by
  ``1 + epsilon * s`` for random signs ``s`` (drawn from ``fold_in(key, index)``, so two
  copies of one centroid differ), and the two share the biggest cluster's count. The next
  assignment step then splits that cluster between the two nearby centroids. Unlike faiss we
  leave the split cluster's own centroid where it is: moving a centroid with no points
  cannot raise the inertia, so Lloyd's inertia stays non-increasing. Deterministic.

  Args:
    centroids: ``[k, d]``.
    counts: ``[k]`` points per cluster (float or int).
    key: PRNG key of the perturbations.
    epsilon: relative size of the perturbation.

  Returns:
    ``(centroids [k, d], counts [k])`` with no zero count unless every cluster has fewer
    than two points to give.
  """
  k = centroids.shape[0]
  index = jnp.arange(k)

  def next_empty(last, counts):
    empty = (counts == 0) & (index > last)
    return jnp.any(empty), jnp.argmax(empty)

  def cond(carry):
    _, counts, last = carry
    return next_empty(last, counts)[0]

  def body(carry):
    centroids, counts, last = carry
    _, empty = next_empty(last, counts)
    biggest = jnp.argmax(counts)
    signs = jax.random.rademacher(jax.random.fold_in(key, empty), centroids.shape[1:], centroids.dtype)
    centroids = centroids.at[empty].set(centroids[biggest] * (1 + epsilon * signs))
    half = jnp.floor(counts[biggest] / 2).astype(counts.dtype)
    counts = counts.at[empty].set(half).at[biggest].add(-half)
    return centroids, counts, empty

  centroids, counts, _ = jax.lax.while_loop(cond, body, (centroids, counts, jnp.asarray(-1, index.dtype)))
  return centroids, counts


def _preprocess_local(x, valid, *, num_valid: int, pca_dim: int, l2_normalize: bool):
  """Inside ``shard_map``: PCA-whitening and/or L2 normalisation of local rows ``x [n, F]``.

  The mean and covariance are global (``psum``) over valid rows; each eigenvector's sign is
  fixed so that its largest-magnitude entry is positive (as scikit-learn's ``svd_flip``),
  which makes the projection the same on any number of devices. Padding rows come out zero.
  """
  weight = valid.astype(x.dtype)[:, None]
  if pca_dim:
    mean = jax.lax.psum(jnp.sum(x * weight, axis=0), _AXES) / num_valid
    centred = (x - mean) * weight
    covariance = jax.lax.psum(jnp.dot(centred.T, centred, precision=_HIGHEST), _AXES) / num_valid
    values, vectors = jnp.linalg.eigh(covariance)  # ascending
    values, vectors = values[::-1][:pca_dim], vectors[:, ::-1][:, :pca_dim]
    pivot = jnp.argmax(jnp.abs(vectors), axis=0)
    vectors = vectors * jnp.sign(vectors[pivot, jnp.arange(pca_dim)])
    # Directions with (numerically) no variance would be blown up into noise: floor them.
    scale = jax.lax.rsqrt(jnp.maximum(values, 1e-6 * jnp.maximum(values[0], 1e-30)))
    x = jnp.dot(x - mean, vectors, precision=_HIGHEST) * scale
  if l2_normalize:
    x = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))
  return x * weight


def _init_centroids(x, valid, key, *, k: int, num_valid: int, init: str):
  """On the global (sharded) array: ``k`` centroids ``[k, d]`` from the valid rows.

  ``random``: ``k`` distinct rows, as faiss (DeepCluster's k-means) picks. ``kmeans++``:
  each next centroid is a row drawn with probability proportional to its squared distance to
  the nearest centroid so far (Arthur and Vassilvitskii 2007). Random draws have the shape
  of the valid rows, not the padded array, so they do not depend on the device count.
  """
  if init == "random":
    return x[jax.random.choice(key, num_valid, (k,), replace=False)]
  first_key, key = jax.random.split(key)
  first = x[jax.random.randint(first_key, (), 0, num_valid)]
  centroids = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
  min_sq = jnp.sum(jnp.square(x - first), axis=-1)
  padding = x.shape[0] - num_valid

  def body(t, carry):
    centroids, min_sq = carry
    noise = jnp.pad(jax.random.gumbel(jax.random.fold_in(key, t), (num_valid,)), (0, padding), constant_values=-jnp.inf)
    logits = jnp.where(valid & (min_sq > 0), jnp.log(jnp.maximum(min_sq, 1e-30)), -jnp.inf) + noise
    chosen = x[jnp.argmax(logits)]
    return centroids.at[t].set(chosen), jnp.minimum(min_sq, jnp.sum(jnp.square(x - chosen), axis=-1))

  return jax.lax.fori_loop(1, k, body, (centroids, min_sq))[0]


def _lloyd_local(x, valid, centroids, key, *, iterations: int, block: int, epsilon: float):
  """Inside ``shard_map``: Lloyd's iterations on local rows ``x [n, d]`` (n a multiple of ``block``).

  Returns ``(centroids [k, d], assignments int32 [n], inertia [iterations + 1])``; entry t of
  the inertia is that of the assignment to the centroids after t updates (the last entry:
  the returned assignment to the returned centroids).
  """
  k, dim = centroids.shape
  blocks = x.shape[0] // block
  rows = x.reshape(blocks, block, dim)
  weights = valid.astype(x.dtype).reshape(blocks, block)
  row_sq = jnp.sum(rows * rows, axis=-1)

  def statistics(centroids):
    centroid_sq = jnp.sum(centroids * centroids, axis=-1)

    def block_step(carry, inputs):
      sums, counts, inertia = carry
      block_rows, block_weights, block_sq = inputs
      # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; the first term does not change the argmin.
      distances = centroid_sq[None, :] - 2 * jnp.dot(block_rows, centroids.T, precision=_HIGHEST)
      nearest = jnp.argmin(distances, axis=-1).astype(jnp.int32)
      squared = jnp.maximum(jnp.take_along_axis(distances, nearest[:, None], axis=-1)[:, 0] + block_sq, 0.0)
      one_hot = jax.nn.one_hot(nearest, k, dtype=x.dtype) * block_weights[:, None]
      sums = sums + jnp.dot(one_hot.T, block_rows, precision=_HIGHEST)
      return (sums, counts + jnp.sum(one_hot, axis=0), inertia + jnp.sum(squared * block_weights)), nearest

    zeros = jax.lax.pcast(
      (jnp.zeros((k, dim), x.dtype), jnp.zeros((k,), x.dtype), jnp.zeros((), x.dtype)), _AXES, to="varying"
    )
    (sums, counts, inertia), nearest = jax.lax.scan(block_step, zeros, (rows, weights, row_sq))
    sums, counts, inertia = jax.lax.psum((sums, counts, inertia), _AXES)
    return sums, counts, inertia, nearest.reshape(-1)

  def iterate(t, carry):
    centroids, history = carry
    sums, counts, inertia, _ = statistics(centroids)
    means = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centroids)
    means, _ = split_empty_clusters(means, counts, jax.random.fold_in(key, t), epsilon=epsilon)
    return means, history.at[t].set(inertia)

  history = jnp.zeros((iterations + 1,), x.dtype)
  centroids, history = jax.lax.fori_loop(0, iterations, iterate, (centroids, history))
  _, _, inertia, assignments = statistics(centroids)
  return centroids, assignments, history.at[iterations].set(inertia)


def _layout(num_rows: int, devices: int, block_rows: int) -> tuple[int, int]:
  """``(block, padded rows)``: per-device rows split into equal blocks of at most ``block_rows``."""
  per_device = -(-num_rows // devices)
  blocks = -(-per_device // block_rows)
  block = -(-per_device // blocks)
  return block, devices * blocks * block


@functools.lru_cache(maxsize=32)
def _program(
  mesh,
  *,
  k: int,
  iterations: int,
  num_valid: int,
  block: int,
  pca_dim: int,
  l2_normalize: bool,
  init: str | None,
  epsilon: float,
):
  """The jitted ``(x, valid, key, centroids?) -> (centroids, assignments, inertia)``, cached per shape."""
  batch, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)
  preprocess = jax.shard_map(
    functools.partial(_preprocess_local, num_valid=num_valid, pca_dim=pca_dim, l2_normalize=l2_normalize),
    mesh=mesh,
    in_specs=(P(_AXES), P(_AXES)),
    out_specs=P(_AXES),
  )
  lloyd = jax.shard_map(
    functools.partial(_lloyd_local, iterations=iterations, block=block, epsilon=epsilon),
    mesh=mesh,
    in_specs=(P(_AXES), P(_AXES), P(), P()),
    out_specs=(P(), P(_AXES), P()),
  )

  def run(x, valid, key, centroids):
    init_key, split_key = jax.random.split(key)
    if pca_dim or l2_normalize:
      x = preprocess(x, valid)
    if init is not None:
      centroids = _init_centroids(x, valid, init_key, k=k, num_valid=num_valid, init=init)
    return lloyd(x, valid, centroids, split_key)

  def features(x, valid):
    return preprocess(x, valid)

  return (
    jax.jit(run, in_shardings=(batch, batch, replicated, replicated), out_shardings=replicated),
    jax.jit(features, in_shardings=(batch, batch), out_shardings=replicated),
  )


def _checked(features) -> np.ndarray:
  """``features`` as float32 numpy ``[N, F]``, or a ValueError saying what is wrong."""
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
    raise ValueError(f"features must be [N, F] with N, F >= 1, got shape {features.shape}.")
  if not np.all(np.isfinite(features)):
    raise ValueError("features contain NaN or infinite values; the encoder diverged?")
  return features


def _placed(features: np.ndarray, mesh, block_rows: int):
  """Checked features padded to the mesh's layout and placed on it: ``(x, valid, block)``."""
  if block_rows < 1:
    raise ValueError(f"block_rows must be >= 1, got {block_rows}.")
  num_rows = features.shape[0]
  block, padded = _layout(num_rows, mesh.devices.size, block_rows)
  x = np.zeros((padded, features.shape[1]), np.float32)
  x[:num_rows] = features
  valid = np.arange(padded) < num_rows
  sharding = parallel.batch_sharding(mesh)
  place = functools.partial(jax.make_array_from_callback, sharding=sharding)
  return (place(x.shape, data_callback=lambda i: x[i]), place(valid.shape, data_callback=lambda i: valid[i]), block)


def _mesh_or_default(mesh):
  return parallel.make_mesh(jax.local_devices()[:1]) if mesh is None else mesh


def _to_numpy(x) -> np.ndarray:
  """A replicated result as numpy (from this process's copy, so any mesh works)."""
  return np.asarray(x.addressable_data(0))


def _check_pca(pca_dim: int, num_features: int) -> None:
  if not 0 <= pca_dim <= num_features:
    raise ValueError(f"pca_dim={pca_dim}: must be between 0 (no PCA) and the feature dimension {num_features}.")


def preprocess(
  features, *, pca_dim: int = 0, l2_normalize: bool = True, mesh=None, block_rows: int = 4096
) -> np.ndarray:
  """DeepCluster's preprocessing, as ``kmeans`` applies it: ``[N, F]`` -> ``[N, pca_dim or F]``.

  PCA-whitening to ``pca_dim`` dimensions (0: none), then L2 normalisation (if asked),
  computed over ``mesh`` (default: one local device) like ``kmeans``.
  """
  features = _checked(features)
  _check_pca(pca_dim, features.shape[1])
  mesh = _mesh_or_default(mesh)
  x, valid, block = _placed(features, mesh, block_rows)
  _, program = _program(
    mesh,
    k=1,
    iterations=0,
    num_valid=len(features),
    block=block,
    pca_dim=pca_dim,
    l2_normalize=l2_normalize,
    init=None,
    epsilon=SPLIT_EPSILON,
  )
  return _to_numpy(program(x, valid))[: len(features)]


def kmeans(
  features,
  k: int,
  *,
  key: jax.Array,
  iterations: int,
  mesh=None,
  init: str = "kmeans++",
  init_centroids=None,
  pca_dim: int = 0,
  l2_normalize: bool = False,
  block_rows: int = 4096,
  split_epsilon: float = SPLIT_EPSILON,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Lloyd's k-means of ``features`` over ``mesh``, with DeepCluster's empty-cluster splitting.

  Each iteration assigns every row to its nearest centroid (squared Euclidean), moves each
  centroid to the mean of its rows, and re-seeds empty clusters (``split_empty_clusters``).
  The result is a pure function of ``(features, k, key, settings)``: the same on every
  process; on another number of devices the same up to float32 summation order.

  Args:
    features: ``[N, F]`` array-like (numpy: every process passes the whole set).
    k: number of clusters, ``1 <= k <= N``.
    key: PRNG key of the initialisation and of the split perturbations.
    iterations: Lloyd updates (faiss, DeepCluster: 20); 0 only assigns to the initial centroids.
    mesh: devices to run on; rows are padded to a multiple of its size and split over its
      batch axes. Default: one local device. Pass a mesh of local devices in multi-process runs.
    init: ``"kmeans++"`` or ``"random"`` (k distinct rows, as faiss).
    init_centroids: ``[k, d]`` starting centroids instead (in the preprocessed space).
    pca_dim: > 0 PCA-whitens the features to this many dimensions first (DeepCluster: 256).
    l2_normalize: L2-normalise the (whitened) features first (DeepCluster: yes).
    block_rows: rows per assignment block per device; memory is ``O(block_rows * k)``.
    split_epsilon: relative perturbation of split centroids.

  Returns:
    ``(centroids float32 [k, d], assignments int32 [N], inertia float32 [iterations + 1])``
    as numpy, where ``d`` is ``pca_dim or F`` and ``inertia[t]`` is the sum of squared
    distances of the rows to their centroids after ``t`` updates: non-increasing, and its
    last entry belongs to the returned assignment and centroids.
  """
  features = _checked(features)
  num_rows = features.shape[0]
  if not 1 <= k <= num_rows:
    raise ValueError(f"k-means: k={k} clusters must be between 1 and the number of examples ({num_rows}).")
  if iterations < 0:
    raise ValueError(f"k-means: iterations must be >= 0, got {iterations}.")
  if init not in ("kmeans++", "random"):
    raise ValueError(f"k-means: init must be 'kmeans++' or 'random', got {init!r}.")
  _check_pca(pca_dim, features.shape[1])
  dim = pca_dim or features.shape[1]
  mesh = _mesh_or_default(mesh)
  x, valid, block = _placed(features, mesh, block_rows)
  if init_centroids is None:
    centroids = np.zeros((k, dim), np.float32)
  else:
    centroids = np.asarray(init_centroids, np.float32)
    if centroids.shape != (k, dim):
      raise ValueError(f"k-means: init_centroids must be [{k}, {dim}], got {centroids.shape}.")
  run, _ = _program(
    mesh,
    k=k,
    iterations=iterations,
    num_valid=num_rows,
    block=block,
    pca_dim=pca_dim,
    l2_normalize=l2_normalize,
    init=init if init_centroids is None else None,
    epsilon=float(split_epsilon),
  )
  replicated = parallel.replicated(mesh)
  centroids = jax.make_array_from_callback(centroids.shape, replicated, lambda i: centroids[i])
  centroids, assignments, inertia = run(x, valid, key, centroids)
  return _to_numpy(centroids), _to_numpy(assignments)[:num_rows].astype(np.int32), _to_numpy(inertia)


__all__ = ["SPLIT_EPSILON", "kmeans", "preprocess", "split_empty_clusters"]
