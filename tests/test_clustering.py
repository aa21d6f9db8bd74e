"""Clustering SSL: k-means and Sinkhorn against float64 NumPy, SwAV's loss, 1 vs 8 devices for
swav and deepcluster, and both smoke runs (the loss falls; DeepCluster's pseudo-labels across reclusterings and
checkpoints). Export and eval of every task: tests/test_task_runs.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO
from jax.sharding import PartitionSpec as P

from jssl import cli, kmeans, nmi, parallel, train
from jssl.config import load_config
from jssl.data import augment, pipeline
from jssl.errors import ConfigError
from jssl.losses.swav import sinkhorn, swapped_prediction_loss
from jssl.models.swav import Prototypes
from jssl.tasks import TASKS
from jssl.workdir import read_metrics, read_run_config, restore_run

SMOKE = str(REPO / "configs" / "smoke.py")
CLUSTERING_TASKS = ("swav", "deepcluster")


def _config(task):
  return load_config(f"{SMOKE}:{task}")


def _blobs(seed=0, per_cluster=(41, 40, 39, 42, 41), dim=6, spread=0.6):
  """Gaussian blobs around well separated centres: ``(x [N, dim], true labels [N])``, N = 203."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(len(per_cluster), dim)) * 4
  x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, per_cluster)])
  return x.astype(np.float32), np.repeat(np.arange(len(per_cluster)), per_cluster)


def _nearest64(x, centroids):
  """Float64 nearest-centroid assignment and squared distances."""
  d = ((np.asarray(x, np.float64)[:, None, :] - np.asarray(centroids, np.float64)[None]) ** 2).sum(-1)
  return d.argmin(1), d


# --------------------------------------------------------------------------- k-means


def test_kmeans_lowers_inertia_matches_numpy_and_recovers_known_clusters():
  x, truth = _blobs()
  k, iterations = 5, 6
  centroids, assignments, inertia = kmeans.kmeans(x, k, key=jax.random.key(1), iterations=iterations)
  assert centroids.shape == (k, 6) and assignments.shape == (len(x),) and assignments.dtype == np.int32
  assert inertia.shape == (iterations + 1,)
  assert np.all(np.diff(inertia) <= 1e-5 * inertia[:-1]), inertia  # Lloyd never raises it
  assert inertia[-1] < inertia[0]
  nearest, distances = _nearest64(x, centroids)
  np.testing.assert_array_equal(assignments, nearest)
  np.testing.assert_allclose(inertia[-1], distances.min(1).sum(), rtol=1e-5)
  # Each returned centroid is the float64 mean of its rows or one Lloyd step away from it:
  # at convergence (here) exactly the mean.
  for c in range(k):
    np.testing.assert_allclose(centroids[c], x[assignments == c].astype(np.float64).mean(0), atol=1e-4)
  # The clustering is the true one up to renaming: a bijection between the labelings.
  pairs = set(zip(truth.tolist(), assignments.tolist()))
  assert len(pairs) == k and len({a for _, a in pairs}) == k
  assert nmi.normalized_mutual_info(truth, assignments) == pytest.approx(1.0)
  assert nmi.normalized_mutual_info(truth, (assignments + 2) % k) == pytest.approx(1.0)
  assert nmi.normalized_mutual_info(truth, np.arange(len(x)) % 2) < 0.05


def _pca_l2_reference(x, dim):
  """Float64 PCA-whitening to ``dim`` dimensions, then L2 normalisation."""
  x = np.asarray(x, np.float64)
  centred = x - x.mean(0)
  values, vectors = np.linalg.eigh(centred.T @ centred / len(x))
  order = np.argsort(values)[::-1][:dim]
  white = centred @ vectors[:, order] / np.sqrt(values[order])
  return white / np.linalg.norm(white, axis=1, keepdims=True)


@pytest.mark.slow
def test_kmeans_on_eight_devices_equals_one_device():
  """203 rows (not a multiple of 8: padded rows must not count), PCA-whitening and L2
  normalisation on the mesh, 4-row assignment blocks, random init."""
  x, _ = _blobs(seed=3)
  results = {}
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    results[len(devices)] = kmeans.kmeans(
      x, 7, key=jax.random.key(5), iterations=5, mesh=mesh, init="random", pca_dim=4, l2_normalize=True, block_rows=4
    )
  (c1, a1, i1), (c8, a8, i8) = results[1], results[8]
  processed = kmeans.preprocess(x, pca_dim=4, l2_normalize=True, mesh=mesh)
  # Eigenvector signs are arbitrary; the Gram matrix of the processed rows is not.
  reference = _pca_l2_reference(x, 4)
  np.testing.assert_allclose(processed @ processed.T, reference @ reference.T, atol=2e-4)
  np.testing.assert_array_equal(a8, _nearest64(processed, c8)[0])
  np.testing.assert_array_equal(a8, a1)
  np.testing.assert_allclose(c8, c1, atol=1e-5)
  np.testing.assert_allclose(i8, i1, rtol=1e-5)
  assert len(np.unique(a1)) == 7


def test_empty_clusters_are_split_from_the_biggest():
  centroids = jnp.asarray([[1.0, 2.0, 3.0], [9.0, 9.0, 9.0], [-1.0, 0.5, 2.0], [7.0, 7.0, 7.0]])
  split, counts = kmeans.split_empty_clusters(centroids, jnp.asarray([10.0, 0.0, 3.0, 0.0]), jax.random.key(0))
  split, counts = np.asarray(split), np.asarray(counts)
  # Cluster 1 takes half of cluster 0 (10 -> 5 + 5); cluster 3 then half of cluster 0 again
  # (the first of the biggest, 5 -> 3 + 2). Mass is conserved; cluster 0 and 2 keep their centroids.
  np.testing.assert_array_equal(counts, [3, 5, 3, 2])
  np.testing.assert_array_equal(split[[0, 2]], np.asarray(centroids)[[0, 2]])
  for empty in (1, 3):
    ratio = split[empty] / split[0]
    np.testing.assert_allclose(np.abs(ratio - 1), kmeans.SPLIT_EPSILON, rtol=1e-3)
  assert not np.array_equal(split[1], split[3]), "two copies of one centroid must differ"

  # In k-means: one starting centroid far from every row gets no row, is split off the
  # biggest cluster, and in the end every cluster has rows.
  x, _ = _blobs(seed=1, per_cluster=(60, 30, 30))
  start = np.stack([x[0], x[60], x[90], np.full(6, 100.0, np.float32)])
  assert 3 not in _nearest64(x, start)[0], "the far centroid starts empty"
  _, assignments, inertia = kmeans.kmeans(x, 4, key=jax.random.key(0), iterations=4, init_centroids=start)
  assert np.all(np.bincount(assignments, minlength=4) > 0), np.bincount(assignments, minlength=4)
  assert np.all(np.diff(inertia) <= 1e-5 * inertia[:-1]), inertia


def test_kmeans_rejects_bad_settings():
  x, _ = _blobs()
  with pytest.raises(ValueError, match="between 1 and the number of examples"):
    kmeans.kmeans(x[:3], 4, key=jax.random.key(0), iterations=1)
  with pytest.raises(ValueError, match="pca_dim"):
    kmeans.kmeans(x, 2, key=jax.random.key(0), iterations=1, pca_dim=7)
  with pytest.raises(ValueError, match="init"):
    kmeans.kmeans(x, 2, key=jax.random.key(0), iterations=1, init="farthest")


# --------------------------------------------------------------------------- Sinkhorn and SwAV's loss


def _sinkhorn64(scores, epsilon, iterations):
  """SwAV's distributed_sinkhorn (main_swav.py), one process, in float64."""
  q = np.exp(np.asarray(scores, np.float64) / epsilon).T  # [K, B]
  num_prototypes, batch = q.shape
  q /= q.sum()
  for _ in range(iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= num_prototypes
    q /= q.sum(axis=0, keepdims=True)
    q /= batch
  return (q * batch).T


def test_sinkhorn_matches_numpy_and_equipartitions():
  rng = np.random.default_rng(0)
  scores = rng.uniform(-1, 1, size=(24, 6)).astype(np.float32)
  for epsilon, iterations in ((0.05, 3), (0.5, 1), (0.05, 300)):
    q = np.asarray(sinkhorn(jnp.asarray(scores), epsilon=epsilon, iterations=iterations))
    np.testing.assert_allclose(q, _sinkhorn64(scores, epsilon, iterations), rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-5)
  assert np.abs(q.sum(0) - 24 / 6).max() < 1e-3 * 24 / 6, q.sum(0)  # equipartition after enough iterations
  # Global column sums: a batch sharded over 8 devices under jit, and shard_map with axis_name.
  mesh = parallel.make_mesh(jax.devices())
  sharded = jax.device_put(jnp.asarray(scores), parallel.batch_sharding(mesh))
  under_jit = jax.jit(lambda s: sinkhorn(s, epsilon=0.05, iterations=3))(sharded)
  local = jax.shard_map(
    lambda s: sinkhorn(s, epsilon=0.05, iterations=3, axis_name=parallel.BATCH_AXES),
    mesh=mesh,
    in_specs=P(parallel.BATCH_AXES),
    out_specs=P(parallel.BATCH_AXES),
  )
  by_axis = jax.jit(local)(sharded)
  reference = _sinkhorn64(scores, 0.05, 3)
  np.testing.assert_allclose(under_jit, reference, rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(by_axis, reference, rtol=2e-4, atol=1e-6)


def _swav_loss64(scores, temperature, epsilon, iterations):
  """SwAV's loss (main_swav.py's train loop) in float64: views [V, B, K], codes from views 0, 1."""
  total = 0.0
  for i in range(2):
    q = _sinkhorn64(scores[i], epsilon, iterations)
    sub = 0.0
    for v in range(len(scores)):
      if v != i:
        x = np.asarray(scores[v], np.float64) / temperature
        log_p = x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
        sub -= np.mean(np.sum(q * log_p, axis=1))
    total += sub / (len(scores) - 1)
  return total / 2


def test_swav_loss_and_prototypes_match_numpy():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(4, 8, 5))  # 2 large + 2 small views, B = 8, D = 5
  z /= np.linalg.norm(z, axis=-1, keepdims=True)
  kernel = rng.normal(size=(5, 7)) * 3  # K = 7 prototypes, deliberately not unit length
  scores64 = z @ (kernel / np.linalg.norm(kernel, axis=0))
  prototypes = Prototypes(num_prototypes=7)
  scores = prototypes.apply(
    {"params": {"kernel": jnp.asarray(kernel, jnp.float32)}}, jnp.asarray(z.reshape(-1, 5), jnp.float32)
  ).reshape(4, 8, 7)
  np.testing.assert_allclose(scores, scores64, atol=1e-5)
  loss, codes = jax.jit(lambda s: swapped_prediction_loss(s, temperature=0.1, epsilon=0.05, iterations=3))(scores)
  np.testing.assert_allclose(loss, _swav_loss64(scores64, 0.1, 0.05, 3), rtol=1e-4)
  np.testing.assert_allclose(codes[1], _sinkhorn64(scores64[1], 0.05, 3), rtol=2e-4, atol=1e-6)
  # Normalising the kernel in the loss: its gradient is tangent to each column (no radial part).
  grad = jax.jit(
    jax.grad(
      lambda k: swapped_prediction_loss(
        prototypes.apply({"params": {"kernel": k}}, jnp.asarray(z.reshape(-1, 5), jnp.float32)).reshape(4, 8, 7),
        temperature=0.1,
        epsilon=0.05,
        iterations=3,
      )[0]
    )
  )(jnp.asarray(kernel, jnp.float32))
  np.testing.assert_allclose(np.sum(np.asarray(grad) * kernel, axis=0), 0.0, atol=1e-5)
  assert np.abs(grad).max() > 1e-3


# --------------------------------------------------------------------------- tasks on 1 and 8 devices


def test_swav_head_is_the_references_and_runs_once_on_every_crop():
  """SwAV's resnet50.py: the encoder per resolution, then one projection head (Linear -> BN ->
  ReLU -> Linear with a bias, no batch norm after it) on the features of all crops together,
  L2 normalisation and the prototypes. The task's loss equals that computed module by module,
  with the swapped prediction in float64 (a head run per resolution gives other BN statistics)."""
  config = _config("swav")  # 2 small crops of 8 px
  config.model.head_hidden_dim = 0  # the default: as wide as the encoder's features
  setup = train.make_setup(config)
  task, state = setup.task, train.create_state(setup, seed=0)
  params, stats = jax.device_get(state.params), jax.device_get(state.batch_stats)
  head = params["head"]
  assert sorted(head) == ["bn0", "dense0", "dense1"]
  assert "bias" not in head["dense0"] and head["dense1"]["bias"].shape == (config.model.head_out_dim,)
  width = head["dense0"]["kernel"].shape[0]
  assert head["dense0"]["kernel"].shape == (width, width), "hidden layer as wide as the encoder (hidden_mlp)"

  batch = jax.tree.map(jnp.asarray, _batch(setup, 0))
  rng, step = jax.random.key(3), jnp.asarray(5, jnp.int32)
  loss, _ = jax.jit(task.loss)(state.params, state.batch_stats, state.extra, batch, rng, step)

  encoder, projector = task.model.encoder, task.model.head
  mutable = {"train": True, "mutable": ["batch_stats"]}

  @jax.jit  # one compile rather than every layer's ops one by one
  def by_hand(batch):
    large, small = task.resolutions(batch, rng)
    f_large, enc = encoder.apply({"params": params["encoder"], "batch_stats": stats["encoder"]}, large, **mutable)
    f_small, _ = encoder.apply({"params": params["encoder"], "batch_stats": enc["batch_stats"]}, small, **mutable)
    every = jnp.concatenate([f_large, f_small])
    return projector.apply({"params": head, "batch_stats": stats["head"]}, every, **mutable)[0]

  z = np.asarray(by_hand(batch), np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  kernel = np.asarray(params["prototypes"]["kernel"], np.float64)
  scores = z @ (kernel / np.linalg.norm(kernel, axis=0))
  b = batch["label"].shape[0]
  views = np.concatenate(
    [np.swapaxes(scores[: 2 * b].reshape(b, 2, -1), 0, 1), np.swapaxes(scores[2 * b :].reshape(b, 2, -1), 0, 1)]
  )
  s = config.swav
  np.testing.assert_allclose(loss, _swav_loss64(views, s.temperature, s.epsilon, s.sinkhorn_iterations), rtol=1e-4)


# sgd slow: adamw runs the same reset (its moments), fast
@pytest.mark.parametrize("optimizer", [pytest.param("sgd", marks=pytest.mark.slow), "adamw"])
def test_deepcluster_refresh_gives_the_new_classifier_a_new_optimizer_state(optimizer):
  """After a clustering the classifier is new, and so is its optimizer state (the reference
  makes a new optimizer for its new top layer): its momentum / Adam moments restart at zero,
  while the encoder's and the step count go on."""
  config = _config("deepcluster")
  config.optim.name = optimizer
  setup = train.make_setup(config)
  state = train.create_state(setup, seed=0)
  # The optimizer state as after some training: every float leaf 1.5, every count 7.
  worn = jax.tree.map(lambda x: jnp.full_like(x, 1.5 if jnp.issubdtype(x.dtype, jnp.floating) else 7), state.opt_state)
  refreshed = train.refresh(setup, state.replace(opt_state=worn))
  before = dict(jax.tree_util.tree_leaves_with_path(jax.device_get(worn)))
  reset, kept = 0, 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(refreshed.opt_state)):
    if "'classifier'" in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
      reset += 1
    else:
      np.testing.assert_array_equal(leaf, before[path])
      kept += 1
  assert reset == {"sgd": 2, "adamw": 4}[optimizer] and kept > reset  # kernel and bias: momentum, or mu and nu
  assert not np.array_equal(refreshed.params["classifier"]["kernel"], state.params["classifier"]["kernel"])


def test_tasks_are_registered_with_their_sections():
  for name in CLUSTERING_TASKS:
    assert TASKS[name].__module__ == f"jssl.tasks.{name}"
    assert name in _config(name)


def test_swav_takes_small_crops_with_a_vit():
  """A ViT (2 blocks) under SwAV's multi-crop: 16 px large views (4x4 patches of 4 px) and
  8 px small crops, for which its position embeddings are resampled to 2x2 patches. The full
  train step traces (``jax.eval_shape``) with the state's shapes kept and a scalar loss."""
  config = _config("swav")
  config.model.encoder, config.model.depth = "vit_tiny", 2
  setup = train.make_setup(config)
  state = train.abstract_state(setup)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), train.example_batch(setup))
  assert batch["view1"].shape[1:3] == (16, 16) and batch["local"].shape[1:4] == (2, 8, 8)  # 2 crops of 8 px
  new_state, metrics = jax.eval_shape(train.make_train_step(setup), state, batch)
  assert state.params["encoder"]["patch_embed"]["pos_embed"].shape == (1, 16, 192)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), new_state) == jax.tree.map(lambda a: (a.shape, a.dtype), state)
  assert metrics["loss"].shape == () and metrics["loss"].dtype == np.float32


def test_swav_makes_its_two_views_in_the_step_with_augment_on_device():
  """Without small crops SwAV takes uint8 images and makes both views inside the step (as
  every view task); small crops are made on the host, so asking for them on device is refused."""
  config = _config("swav")
  config.augment.local_crops, config.augment.on = 0, "device"
  setup = train.make_setup(config)
  batch = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), train.example_batch(setup))
  assert set(batch) == {"image", "label"} and batch["image"].dtype == np.uint8
  state = train.abstract_state(setup)
  new_state, metrics = jax.eval_shape(train.make_train_step(setup), state, batch)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), new_state) == jax.tree.map(lambda a: (a.shape, a.dtype), state)
  assert metrics["loss"].shape == ()
  config.augment.local_crops = 2
  with pytest.raises(ConfigError, match="local crops are made on the host"):
    train.make_setup(config)


def test_swav_refuses_local_crops_that_do_not_split_into_vit_patches():
  config = _config("swav")
  config.model.encoder, config.model.depth = "vit_tiny", 2
  config.augment.local_crop_size = 6  # 16 px views in 4 px patches; 6 px crops do not split
  with pytest.raises(ConfigError, match="local_crop_size=6 px .* multiple of 4"):
    train.make_setup(config)


def test_bad_settings_fail_clearly():
  config = _config("deepcluster")
  config.deepcluster.pca_dim = 500
  with pytest.raises(ValueError, match="pca_dim"):
    train.make_setup(config)


def _batch(setup, seed):
  """Random host batch with the task's shapes (images, views, indices into the train split)."""
  rng = np.random.default_rng(seed)
  batch = {}
  for name, spec in train.batch_spec(setup).items():
    if name == "index":
      batch[name] = rng.permutation(setup.source.num_examples("train"))[: spec.shape[0]].astype(np.int32)
    elif spec.dtype == jnp.uint8:
      batch[name] = rng.integers(0, 256, spec.shape, dtype=np.uint8)
    elif spec.dtype == jnp.int32:
      batch[name] = rng.integers(0, 10, spec.shape).astype(np.int32)
    else:
      batch[name] = rng.random(spec.shape, dtype=np.float32)
  return batch


@pytest.mark.slow
@pytest.mark.parametrize("task", CLUSTERING_TASKS)
def test_eight_devices_match_one_device(task):
  """Same global batches on 1 and 8 devices: same state after a step and same losses. SwAV:
  its prototypes stay frozen for 2 steps, then move (multi-crop, which doubles the compile
  time, runs in the smoke test). DeepCluster: the clustering (features on the mesh's
  devices, k-means) gives the same pseudo-labels."""
  config = _config(task)
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  config.augment.local_crops = 0
  results, initial = {}, None
  for devices in (jax.devices()[:1], jax.devices()):
    setup = train.make_setup(config, mesh=parallel.make_mesh(devices))
    if initial is None:
      initial = jax.device_get(train.create_state(setup, seed=0))
    # The same initial state placed on this mesh (compiling create_state again would only cost time).
    state = jax.device_put(initial, train.state_sharding(setup))
    if task == "deepcluster":
      state = train.refresh(setup, state)
    step = train.make_train_step(setup)
    losses, history = [], []
    for seed in range(3 if task == "swav" else 2):
      state, metrics = step(state, parallel.global_batch(_batch(setup, seed), setup.mesh))
      losses.append(float(metrics["loss"]))
      history.append(jax.device_get(state.params))
      if seed == 0:
        after_one = jax.device_get(state)
    results[len(devices)] = (after_one, losses, metrics)
    if task == "swav":
      start = initial.params
      frozen = [np.array_equal(h["prototypes"]["kernel"], start["prototypes"]["kernel"]) for h in history]
      assert frozen == [True, True, False], frozen
      assert not np.array_equal(history[0]["encoder"]["conv1"]["kernel"], start["encoder"]["conv1"]["kernel"])
  (one, losses_one, metrics_one), (eight, losses_eight, _) = results[1], results[8]
  if task == "deepcluster":
    labels = one.extra["labels"]
    np.testing.assert_array_equal(eight.extra["labels"], labels)
    assert len(labels) == 256 and len(np.unique(labels)) == 20, "every cluster holds images"
    assert int(one.extra["clusterings"]) == 1
  else:
    assert 1 <= float(metrics_one["prototypes_used"]) <= 30
    assert 0 < float(metrics_one["code_entropy"]) <= np.log(30) + 1e-5
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)


# --------------------------------------------------------------------------- end to end


_RUNS = {}


def _smoke(task, tmp_path_factory):
  """The smoke run of ``task``, made once per module for every fixture that needs it."""
  if task not in _RUNS:
    workdir = tmp_path_factory.mktemp(task)
    assert cli.main(["pretrain", "--config", f"{SMOKE}:{task}", "--workdir", str(workdir)]) == 0
    config = read_run_config(workdir)
    setup = train.make_setup(config)
    # The run's initial state (compiling it is slow: once per task).
    _RUNS[task] = task, workdir, config, setup, train.create_state(setup, config.seed)
  return _RUNS[task]


@pytest.fixture(scope="module", params=CLUSTERING_TASKS)
def smoke_run(request, tmp_path_factory):
  return _smoke(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def deepcluster_run(tmp_path_factory):
  return _smoke("deepcluster", tmp_path_factory)


def _fixed_batch(task, setup):
  """One fixed batch of 32 images the run never trained on as they are: SwAV's views of
  eval-split images (fixed seeds); for DeepCluster whole training images and their indices."""
  config = setup.config
  if task == "swav":
    examples = setup.source.dataset(config.data.eval_split).take(32)
    rows = [
      setup.task.host_example(augment.to_float_rgb(e["image"]), np.asarray([7, i], np.int64))
      for i, e in enumerate(examples)
    ]
    batch = {k: jnp.asarray(np.stack([r[k].numpy() for r in rows])) for k in rows[0]}
  else:
    images = next(
      pipeline.eval_dataset(
        setup.source, split=config.data.train_split, batch_size=32, image_size=config.data.image_size
      ).as_numpy_iterator()
    )["image"]
    batch = {"image": jnp.asarray(np.round(images * 255).astype(np.uint8)), "index": jnp.arange(32, dtype=jnp.int32)}
  return {**batch, "label": jnp.zeros(32, jnp.int32)}


@pytest.mark.slow
def test_smoke_run_logs_and_lowers_the_loss(smoke_run):
  task, workdir, config, setup, initial = smoke_run
  metrics = read_metrics(workdir)
  assert [m["step"] for m in metrics] == list(range(1, config.train.steps + 1))
  keys = {
    "swav": ("code_entropy", "prototypes_used"),
    "deepcluster": ("pseudo_label_top1", "clusters_nmi", "kmeans_inertia", "clusters_used"),
  }[task]
  for key in (*keys, "loss", "probe_top1"):
    assert all(np.isfinite(m[key]) for m in metrics), key
  trained, _ = restore_run(setup, workdir)
  extra = trained.extra  # deepcluster: the same (final) pseudo-labels for both
  batch, loss = _fixed_batch(task, setup), jax.jit(setup.task.loss)
  step = jnp.int32(0)
  before = float(loss(initial.params, initial.batch_stats, extra, batch, jax.random.key(0), step)[0])
  after = float(loss(trained.params, trained.batch_stats, extra, batch, jax.random.key(0), step)[0])
  assert after < before, (before, after)
  if task == "deepcluster":
    _check_deepcluster_loss(setup, trained, batch, after)
  for name in ("augmentations.png", "curves.png"):
    assert (workdir / name).stat().st_size > 1000, name


def _check_deepcluster_loss(setup, state, batch, loss):
  """``loss`` (the task's on ``batch``, ``uniform_sampling`` on: the default) against float64
  cross-entropy of the model's logits and the pseudo-labels of the batch's indices, each
  weighed by 1 / its cluster's size; then the plain mean with ``uniform_sampling`` off."""
  assert setup.task.settings.uniform_sampling, "the reference samples uniformly over clusters"
  apply = jax.jit(
    lambda p, s, x: setup.task.model.apply({"params": p, "batch_stats": s}, x, train=True, mutable=["batch_stats"])[0][
      1
    ]
  )
  logits = np.asarray(
    apply(state.params, {"encoder": state.batch_stats["encoder"]}, batch["image"].astype(jnp.float32) / 255), np.float64
  )
  clusters = jax.device_get(state.extra)
  np.testing.assert_array_equal(clusters["cluster_sizes"], np.bincount(clusters["labels"], minlength=20))
  targets = clusters["labels"][np.asarray(batch["index"])]
  top = logits.max(1)
  losses = top + np.log(np.exp(logits - top[:, None]).sum(1)) - logits[np.arange(len(targets)), targets]
  weights = 1 / clusters["cluster_sizes"][targets]
  np.testing.assert_allclose(loss, np.sum(weights * losses) / np.sum(weights), rtol=1e-4)
  settings = setup.task.settings
  settings.uniform_sampling = False
  try:
    # A new function for jit: a bound method would hit the trace made with the old setting.
    plain = jax.jit(lambda *args: setup.task.loss(*args)[0])(
      state.params, state.batch_stats, state.extra, batch, jax.random.key(0), jnp.int32(0)
    )
  finally:
    settings.uniform_sampling = True
  np.testing.assert_allclose(plain, losses.mean(), rtol=1e-4)


@pytest.mark.slow
def test_deepcluster_labels_change_between_clusterings_and_checkpoints_hold_them(deepcluster_run):
  """Clustering 1 (before step 1) is in the step-8 checkpoint, clustering 2 (before step 9) in
  the step-16 one; each is what re-clustering the state before it gives, so a run resumed
  from a checkpoint trains on exactly the labels it would have had."""
  _, workdir, config, setup, initial = deepcluster_run
  middle, _ = restore_run(setup, workdir, step=8)
  final, _ = restore_run(setup, workdir, step=16)
  first, second = (jax.device_get(s.extra) for s in (middle, final))
  assert (int(first["clusterings"]), int(second["clusterings"])) == (1, 2)
  assert not np.array_equal(first["labels"], second["labels"]), "pseudo-labels changed"
  assert 0.0 < float(second["nmi"]) < 1.0
  np.testing.assert_allclose(
    float(second["nmi"]), nmi.normalized_mutual_info(first["labels"], second["labels"]), rtol=1e-5
  )
  metrics = {m["step"]: m for m in read_metrics(workdir)}
  assert metrics[8]["clusterings"] == 1 and metrics[9]["clusterings"] == 2
  redone = jax.device_get(train.refresh(setup, middle).extra)
  np.testing.assert_array_equal(redone["labels"], second["labels"])
  fresh = jax.device_get(train.refresh(setup, initial).extra)
  np.testing.assert_array_equal(fresh["labels"], first["labels"])
