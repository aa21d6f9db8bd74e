"""Tests for jssl.probes: standardize, the linear probe and the weighted kNN."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jssl import probes
from jssl.config import default_config
from jssl.data import sources
from jssl.data.sources import make_source
from jssl.probes import fit_linear, knn_predict, knn_top1, knn_top1s, linear_probe, standardize


def _clusters(rng, *, n, num_classes, dim, spread, noise=1.0):
  """Gaussian clusters: labels uniform, features = centre[label] + noise."""
  centres = spread * rng.standard_normal((num_classes, dim))
  y = rng.integers(0, num_classes, n)
  x = centres[y] + noise * rng.standard_normal((n, dim))
  return x.astype(np.float32), y


def _split(rng, *, n_train, n_test, **kw):
  x, y = _clusters(rng, n=n_train + n_test, **kw)
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# ----------------------------------------------------------------------------------
# standardize


def test_standardize_uses_train_statistics_only():
  rng = np.random.default_rng(0)
  scales = np.array([0.01, 1.0, 50.0, 3.0])
  train = (3.0 + scales * rng.standard_normal((500, 4))).astype(np.float32)
  # A test split with a very different mean and spread: z-scoring it with its own
  # statistics would give mean 0 / std 1, which the reference below does not.
  test = (-5.0 + 10 * scales * rng.standard_normal((200, 4))).astype(np.float32)

  train_z, test_z = standardize(train, test, eps=1e-6)

  t64 = train.astype(np.float64)
  mean, std = t64.mean(axis=0), t64.std(axis=0)
  ref_train = (t64 - mean) / (std + 1e-6)
  ref_test = (test.astype(np.float64) - mean) / (std + 1e-6)
  assert train_z.dtype == np.float32 and test_z.dtype == np.float32
  assert train_z.shape == train.shape and test_z.shape == test.shape
  np.testing.assert_allclose(train_z, ref_train, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(test_z, ref_test, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(train_z.mean(axis=0), 0.0, atol=1e-4)
  np.testing.assert_allclose(train_z.std(axis=0), 1.0, atol=1e-3)
  assert np.all(test_z.std(axis=0) > 5.0)  # ~10: not rescaled by the test statistics


def test_standardize_constant_feature_stays_finite_and_accepts_jax_arrays():
  train = jnp.asarray([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]])
  test = jnp.asarray([[1.0, 4.0]])
  train_z, test_z = standardize(train, test)
  assert isinstance(train_z, np.ndarray)
  np.testing.assert_array_equal(train_z[:, 0], 0.0)
  np.testing.assert_allclose(test_z, [[0.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize(
  "train, test, match",
  [
    (np.zeros((0, 3)), np.zeros((2, 3)), "train_x is empty"),
    (np.zeros((4, 3)), np.zeros((2, 5)), "3 features but test_x has 5"),
    (np.zeros(4), np.zeros((2, 3)), r"\[N, F\]"),
    (np.array([[np.nan, 1.0]]), np.zeros((1, 2)), "NaN"),
  ],
)
def test_standardize_rejects_bad_input(train, test, match):
  with pytest.raises(ValueError, match=match):
    standardize(train, test)


# ----------------------------------------------------------------------------------
# knn


def _knn_reference(train_x, train_y, test_x, *, num_classes, k, temperature):
  """Plain float64 NumPy weighted kNN over the full similarity matrix."""
  tr = train_x.astype(np.float64)
  te = test_x.astype(np.float64)
  tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
  te = te / np.linalg.norm(te, axis=1, keepdims=True)
  sims = te @ tr.T
  k = min(k, len(tr))
  pred = np.empty(len(te), np.int64)
  for i, row in enumerate(sims):
    nearest = np.argsort(-row, kind="stable")[:k]
    votes = np.zeros(num_classes)
    np.add.at(votes, train_y[nearest], np.exp(row[nearest] / temperature))
    pred[i] = np.argmax(votes)
  return pred


@pytest.fixture(scope="module")
def knn_data():
  # Overlapping clusters (spread ~ noise), so predictions are neither all right nor
  # all wrong and neighbours from several classes take part in each vote.
  rng = np.random.default_rng(1)
  return _split(rng, n_train=300, n_test=103, num_classes=5, dim=16, spread=0.6)


@pytest.mark.parametrize(
  "k, temperature, chunk_size",
  [
    (1, 0.1, 1024),  # nearest neighbour, one chunk larger than N_test
    (20, 0.07, 32),  # 32 does not divide 103: padded last chunk
    (50, 1.0, 1),  # one test point per chunk
    (500, 0.5, 50),  # k > N_train = 300: clipped, every train point votes
  ],
)
def test_knn_matches_float64_reference(knn_data, k, temperature, chunk_size):
  train_x, train_y, test_x, test_y = knn_data
  expected = _knn_reference(train_x, train_y, test_x, num_classes=5, k=k, temperature=temperature)
  pred = knn_predict(train_x, train_y, test_x, num_classes=5, k=k, temperature=temperature, chunk_size=chunk_size)
  assert pred.shape == (103,) and pred.dtype == np.int32
  np.testing.assert_array_equal(pred, expected)
  top1 = knn_top1(train_x, train_y, test_x, test_y, num_classes=5, k=k, temperature=temperature, chunk_size=chunk_size)
  assert isinstance(top1, float)
  assert top1 == pytest.approx(np.mean(expected == test_y), abs=1e-12)
  assert 0.3 < top1 < 1.0  # the data make the comparison non-trivial


def test_several_ks_in_one_pass_match_the_reference_for_each_k(knn_data):
  # One top-max(ks) pass serves every k: each k's votes stop at its own k-th neighbour.
  train_x, train_y, test_x, test_y = knn_data
  ks = (200, 3, 20, 500)  # unsorted, and 500 > N_train = 300 (clipped)
  top1 = knn_top1s(train_x, train_y, test_x, test_y, num_classes=5, ks=ks, temperature=0.2, chunk_size=40)
  assert list(top1) == list(ks)
  for k in ks:
    expected = _knn_reference(train_x, train_y, test_x, num_classes=5, k=k, temperature=0.2)
    assert top1[k] == pytest.approx(np.mean(expected == test_y), abs=1e-12), k
  assert len({top1[k] for k in ks}) > 1  # the ks disagree on these data: no k borrows another's votes


def test_knn_is_invariant_to_rescaling_features(knn_data):
  train_x, train_y, test_x, test_y = knn_data
  rng = np.random.default_rng(2)
  row_scales = rng.uniform(0.01, 100.0, (len(test_x), 1)).astype(np.float32)
  kw = dict(num_classes=5, k=20, temperature=0.1, chunk_size=40)
  base = knn_predict(train_x, train_y, test_x, **kw)
  scaled = knn_predict(3.7 * train_x, train_y, row_scales * test_x, **kw)
  np.testing.assert_array_equal(base, scaled)


def test_knn_vote_weighting_beats_majority():
  # Query along +x. One class-0 neighbour is almost identical (cos ~ 0.999); two
  # class-1 neighbours sit at 60 degrees (cos 0.5); the rest are far away and
  # fall outside k = 3. The unweighted majority of the 3 neighbours is class 1, but at
  # T = 0.1 the votes are exp(9.99) ~ 2e4 for class 0 against 2 * exp(5) ~ 300.
  # At T = 10 the weights are nearly equal and the majority wins again.
  s60 = math.sin(math.radians(60))
  train_x = np.array([[1.0, 0.05], [0.5, s60], [0.5, -s60], [-1.0, 0.1], [-1.0, -0.1]], np.float32)
  train_y = np.array([0, 1, 1, 2, 2])
  test_x = np.array([[1.0, 0.0]], np.float32)

  sims = (train_x / np.linalg.norm(train_x, axis=1, keepdims=True)) @ [1.0, 0.0]
  nearest = np.argsort(-sims)[:3]
  assert np.bincount(train_y[nearest], minlength=3).argmax() == 1  # majority says 1

  for temperature, expected in [(0.1, 0), (10.0, 1)]:
    ref = _knn_reference(train_x, train_y, test_x, num_classes=3, k=3, temperature=temperature)
    pred = knn_predict(train_x, train_y, test_x, num_classes=3, k=3, temperature=temperature)
    assert ref[0] == expected and pred[0] == expected
    assert knn_top1(train_x, train_y, test_x, np.array([expected]), num_classes=3, k=3, temperature=temperature) == 1.0


def test_knn_k_above_train_size_uses_every_train_point():
  # Near-uniform weights (T = 10): with all 3 train points voting class 1 wins 2 to 1;
  # dropping the least similar point (an off-by-one clip) would hand it to class 0.
  angles = np.radians([10.0, 20.0, 30.0])
  train_x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
  train_y = np.array([0, 1, 1])
  test_x = np.array([[1.0, 0.0]], np.float32)
  for k in (3, 1000):
    pred = knn_predict(train_x, train_y, test_x, num_classes=2, k=k, temperature=10.0)
    assert pred[0] == 1
  assert knn_predict(train_x, train_y, test_x, num_classes=2, k=2, temperature=10.0)[0] == 0


def test_knn_small_temperature_does_not_overflow(knn_data):
  # exp(1 / 0.005) = exp(200) overflows float32; the per-row max shift must keep
  # the votes finite and the ranking intact (compare with the float64 reference).
  train_x, train_y, test_x, _ = knn_data
  expected = _knn_reference(train_x, train_y, test_x, num_classes=5, k=10, temperature=0.005)
  pred = knn_predict(train_x, train_y, test_x, num_classes=5, k=10, temperature=0.005)
  np.testing.assert_array_equal(pred, expected)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks an XLA:CPU lowering")
def test_knn_top_k_is_not_lowered_to_a_full_sort():
  # On XLA:CPU, slicing the top_k output makes XLA sort every [chunk, N_train] row
  # (~25x slower at 60k train points). Guard the fast TopK lowering.
  args = (jnp.zeros((64, 8)), jnp.zeros((64,), jnp.int32), jnp.zeros((32, 8)), 0.1)
  hlo = probes._knn_predict.lower(*args, num_classes=3, ks=(5, 2), chunk_size=16).compile().as_text()
  assert " sort(" not in hlo


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(k=0), "k must be a positive integer"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(chunk_size=0), "chunk_size must be a positive integer"),
    (dict(train_y=np.array([0, 1, 5])), r"train_y must lie in \[0, 3\)"),
    (dict(test_y=np.array([-1, 0])), r"test_y must lie in \[0, 3\)"),
    (dict(train_y=np.array([0, 1])), "train_y has 2 labels but the features have 3 rows"),
    (dict(test_y=np.array([0.0, 1.0])), "test_y must be integer class ids"),
    (dict(train_x=np.zeros((0, 2)), train_y=np.zeros(0, int)), "train_x is empty"),
    (dict(test_x=np.zeros((0, 2)), test_y=np.zeros(0, int)), "test_x is empty"),
    (dict(test_x=np.ones((2, 4))), "train_x has 2 features but test_x has 4"),
  ],
)
def test_knn_rejects_bad_input(kwargs, match):
  args = dict(
    train_x=np.ones((3, 2)), train_y=np.array([0, 1, 2]), test_x=np.ones((2, 2)), test_y=np.array([0, 1]), num_classes=3
  )
  args.update(kwargs)
  with pytest.raises(ValueError, match=f"knn_top1: {match}"):
    knn_top1(**args)


# ----------------------------------------------------------------------------------
# linear probe


def _objective64(w, b, x, y, l2):
  """The probe's objective in float64 NumPy: mean CE + l2 * ||w||^2 / 2 (bias free)."""
  z = x.astype(np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
  z -= z.max(axis=1, keepdims=True)
  ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
  return ce.mean() + 0.5 * l2 * np.sum(np.asarray(w, np.float64) ** 2)


def _sklearn_fit(x, y, l2):
  """scikit-learn's converged multinomial logistic regression with the same objective."""
  from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (test-only dependency)

  # scikit-learn minimises C * sum_i CE_i + ||w||^2 / 2, i.e. N * C * (mean CE + ||w||^2 / (2 N C)).
  model = LogisticRegression(C=1.0 / (l2 * len(y)), tol=1e-6, max_iter=5000)
  model.fit(x.astype(np.float64), y)
  return model.coef_.T, model.intercept_


def _assert_matches_sklearn(train_x, train_y, test_x, test_y, *, num_classes, l2_grid=probes.DEFAULT_L2_GRID):
  fit, _ = fit_linear(train_x, train_y, num_classes=num_classes, l2_grid=l2_grid)
  assert fit.converged and fit.iterations > 1
  w, b = _sklearn_fit(train_x, train_y, fit.l2)
  ours = _objective64(fit.w, fit.b, train_x, train_y, fit.l2)
  theirs = _objective64(w, b, train_x, train_y, fit.l2)
  # The solver's own report of its objective agrees with the float64 reference.
  assert fit.loss == pytest.approx(ours, rel=1e-5)
  assert ours == pytest.approx(theirs, rel=1e-3)
  top1 = np.mean(np.argmax(test_x @ fit.w + fit.b, axis=1) == test_y)
  sk_top1 = np.mean(np.argmax(test_x @ w + b, axis=1) == test_y)
  assert abs(top1 - sk_top1) <= 0.005, (top1, sk_top1)
  return fit


def test_linear_probe_matches_sklearn_on_gaussian_clusters():
  # Overlapping clusters, so the optimum is finite and the classes are not all separable.
  rng = np.random.default_rng(3)
  train_x, train_y, test_x, test_y = _split(rng, n_train=1500, n_test=1000, num_classes=5, dim=30, spread=0.4)
  train_x, test_x = standardize(train_x, test_x)
  fit = _assert_matches_sklearn(train_x, train_y, test_x, test_y, num_classes=5)
  assert fit.l2 in probes.DEFAULT_L2_GRID


@pytest.mark.slow  # its fast twin: test_linear_probe_matches_sklearn_on_gaussian_clusters
@pytest.mark.skipif(
  not os.path.isdir(sources.DEFAULT_FASHION_MNIST_DIR),
  reason="dataset-fashion-mnist not installed (make test installs it)",
)
def test_linear_probe_matches_sklearn_on_raw_fashion_mnist(monkeypatch):
  monkeypatch.delenv("JSSL_DATA_DIR", raising=False)
  source = make_source("fashion_mnist")
  images, labels = source.arrays("test")  # the small split: 2000 images to fit, 2000 to test
  x = images.reshape(len(images), -1).astype(np.float32) / 255
  train_x, test_x = standardize(x[:2000], x[2000:4000])
  # Learned features are better conditioned than pixels; this is the hard case for the solver.
  _assert_matches_sklearn(train_x, labels[:2000], test_x, labels[2000:4000], num_classes=10)


def test_linear_probe_separates_gaussian_clusters():
  rng = np.random.default_rng(3)
  train_x, train_y, test_x, test_y = _split(rng, n_train=2000, n_test=500, num_classes=4, dim=20, spread=2.0)
  train_x, test_x = standardize(train_x, test_x)
  result = linear_probe(train_x, train_y, test_x, test_y, num_classes=4)  # defaults
  assert set(result) == {"top1", "train_top1", "l2", "val_top1", "loss", "grad_norm", "iterations", "converged"}
  assert result["converged"] and result["grad_norm"] <= 1e-5
  assert result["top1"] > 0.95
  assert result["train_top1"] > 0.95 and result["val_top1"] > 0.95
  assert result["loss"] < 0.75 * math.log(4)  # below the zero-weight loss log(C)


def test_l2_choice_never_reads_the_test_split():
  rng = np.random.default_rng(8)
  train_x, train_y, test_x, test_y = _split(rng, n_train=600, n_test=300, num_classes=3, dim=40, spread=0.3)
  clean = linear_probe(train_x, train_y, test_x, test_y, num_classes=3)
  # Poisoned test split: labels shifted by one class, features replaced by noise of another scale.
  poisoned = linear_probe(train_x, train_y, 5 * rng.standard_normal(test_x.shape), (test_y + 1) % 3, num_classes=3)
  assert clean["top1"] != poisoned["top1"]  # the test split did change ...
  # ... and nothing chosen or fitted did.
  for key in ("l2", "val_top1", "train_top1", "loss", "grad_norm", "iterations"):
    assert clean[key] == poisoned[key], key


def test_l2_is_chosen_on_held_out_train_rows():
  # 40 informative-looking noise features on 120 points: weak regularisation memorises the
  # train labels and does worse on held-out rows than a strong one, so the choice is not the weakest.
  rng = np.random.default_rng(9)
  train_x, train_y, test_x, test_y = _split(rng, n_train=120, n_test=500, num_classes=2, dim=60, spread=0.15)
  grid = (1e-5, 1e-1)
  fit, scores = fit_linear(train_x, train_y, num_classes=2, l2_grid=grid, val_fraction=0.25)
  assert set(scores) == set(grid)
  assert fit.l2 == max(scores, key=lambda l2: (scores[l2], l2))  # the best held-out top-1; ties to the stronger
  # The held-out top-1 comes from 30 of the 120 rows: a multiple of 1/30.
  assert all(round(v * 30) == pytest.approx(v * 30, abs=1e-4) for v in scores.values())


def test_linear_probe_on_random_labels_stays_at_chance():
  # Test labels are drawn independently of everything the probe sees, so for any
  # trained classifier each test prediction is right with probability exactly 1/4:
  # top1 ~ Binomial(2000, 0.25) / 2000, mean 0.25, sd ~0.01, so 0.5 is ~25 sd away.
  # The train labels are random too, yet 260 parameters on 200 points can memorise
  # much of them: train accuracy far above test shows the probe did fit.
  rng = np.random.default_rng(4)
  train_x = rng.standard_normal((200, 64)).astype(np.float32)
  test_x = rng.standard_normal((2000, 64)).astype(np.float32)
  train_y, test_y = rng.integers(0, 4, 200), rng.integers(0, 4, 2000)
  result = linear_probe(train_x, train_y, test_x, test_y, num_classes=4, l2_grid=(1e-3,), val_fraction=0.0)
  assert 0.15 < result["top1"] < 0.5
  assert result["train_top1"] > 0.6
  assert "val_top1" not in result


def test_linear_probe_is_deterministic():
  rng = np.random.default_rng(5)
  train_x, train_y, test_x, test_y = _split(rng, n_train=700, n_test=100, num_classes=3, dim=8, spread=0.5)
  # jax arrays accepted as well as numpy
  a = linear_probe(jnp.asarray(train_x), jnp.asarray(train_y), test_x, test_y, num_classes=3)
  b = linear_probe(train_x, train_y, test_x, test_y, num_classes=3)
  assert a == b
  w1 = fit_linear(train_x, train_y, num_classes=3)[0].w
  np.testing.assert_array_equal(w1, fit_linear(train_x, train_y, num_classes=3)[0].w)
  # The seed picks the held-out rows, so another seed may see other validation scores.
  other = fit_linear(train_x, train_y, num_classes=3, seed=1)[1]
  assert other != fit_linear(train_x, train_y, num_classes=3)[1]


@pytest.mark.slow
def test_linear_probe_same_on_one_and_eight_devices():
  assert len(jax.local_devices()) == 8  # tests/conftest.py forces 8 CPU devices
  rng = np.random.default_rng(10)
  # 1003 rows: not a multiple of 8, so the zero-weight padding rows are exercised.
  train_x, train_y, _, _ = _split(rng, n_train=1003, n_test=1, num_classes=4, dim=12, spread=0.3)
  one, scores_one = fit_linear(train_x, train_y, num_classes=4, devices=jax.local_devices()[:1])
  eight, scores_eight = fit_linear(train_x, train_y, num_classes=4, devices=jax.local_devices())
  assert one.l2 == eight.l2 and scores_one == scores_eight
  np.testing.assert_allclose(eight.w, one.w, rtol=1e-3, atol=1e-4)
  assert eight.loss == pytest.approx(one.loss, rel=1e-5)


@pytest.mark.parametrize("max_size", [30, 10], ids=["gram", "none"])
def test_every_preconditioner_reaches_the_same_optimum(monkeypatch, max_size):
  # 25 rows x 60 features: with the size limit at 30 the rows are first reduced to their span (a 25 x 25
  # Gram matrix: wide features), at 10 nothing is reduced or preconditioned; the optimum is the same.
  rng = np.random.default_rng(11)
  train_x, train_y, _, _ = _split(rng, n_train=25, n_test=1, num_classes=3, dim=60, spread=0.3)
  train_x = standardize(train_x, train_x[:1])[0]
  kw = dict(num_classes=3, l2_grid=(1e-2,), val_fraction=0.0)
  reference_fit = fit_linear(train_x, train_y, **kw)[0]  # the F x F decomposition
  monkeypatch.setattr(probes, "_PRECONDITION_MAX_SIZE", max_size)
  gram, calls = probes._row_span_basis, []

  def counting_gram(*args):
    calls.append(1)
    return gram(*args)

  monkeypatch.setattr(probes, "_row_span_basis", counting_gram)
  fit = fit_linear(train_x, train_y, **kw)[0]
  assert len(calls) == (1 if max_size == 30 else 0)  # the path the test means to take
  assert fit.converged and reference_fit.converged
  reference = _objective64(reference_fit.w, reference_fit.b, train_x, train_y, 1e-2)
  assert _objective64(fit.w, fit.b, train_x, train_y, 1e-2) == pytest.approx(reference, rel=1e-5)


def test_small_feature_sets_stay_on_one_device():
  rows = probes._DeviceRows(np.ones((16, 3), np.float32), np.zeros(16, np.int32))
  assert len(rows.x.sharding.device_set) == 1  # of the 8 forced ones


def test_l2_shrinks_weights_but_not_bias():
  rng = np.random.default_rng(6)
  x, _ = _clusters(rng, n=600, num_classes=2, dim=10, spread=1.0)
  # Labels independent of x with priors ~0.8 / 0.2: with w ~ 0 the loss is minimised
  # by the bias gap log(p0 / p1) of the empirical priors.
  y = (rng.uniform(size=600) < 0.2).astype(np.int64)
  p1 = y.mean()
  free = fit_linear(x, y, num_classes=2, l2_grid=(0.0,), val_fraction=0.0)[0]
  decayed = fit_linear(x, y, num_classes=2, l2_grid=(10.0,), val_fraction=0.0)[0]
  assert free.w.shape == (10, 2) and free.w.dtype == np.float32
  assert free.b.shape == (2,)
  assert np.linalg.norm(decayed.w) < 0.05 * np.linalg.norm(free.w)
  # An unpenalised bias still learns the priors under strong decay; a penalised
  # one would be pulled towards 0 as well.
  gap = decayed.b[0] - decayed.b[1]
  assert gap == pytest.approx(math.log((1 - p1) / p1), abs=0.02)


def test_linear_probe_handles_a_tiny_train_set():
  x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32)
  y = np.array([0, 1, 2])
  result = linear_probe(x, y, x, y, num_classes=3, l2_grid=(1e-3,), val_fraction=0.0)
  assert result["train_top1"] == 1.0


def test_default_config_uses_the_probe_default_grid():
  assert tuple(default_config().eval.linear_l2_grid) == probes.DEFAULT_L2_GRID


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(train_y=np.array([0, 1, 4])), r"train_y must lie in \[0, 3\)"),
    (dict(test_y=np.array([3, 0])), r"test_y must lie in \[0, 3\)"),
    (dict(train_y=np.array([0, 1])), "train_y has 2 labels but the features have 3 rows"),
    (dict(train_y=np.array([[0, 1, 2]])), r"train_y must be a \[N\] label vector"),
    (dict(train_x=np.zeros((0, 2)), train_y=np.zeros(0, int)), "train_x is empty"),
    (dict(test_x=np.ones((2, 4))), "train_x has 2 features but test_x has 4"),
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(l2_grid=(-1e-4,)), "l2_grid must hold finite values >= 0"),
    (dict(l2_grid=()), "l2_grid must hold finite values >= 0"),
    (dict(val_fraction=1.0), r"val_fraction must be in \[0, 1\)"),
    (dict(l2_grid=(1e-3, 1e-2), val_fraction=0.0), "choosing among 2 l2 values needs a validation part"),
    (dict(l2_grid=(1e-3, 1e-2), val_fraction=0.1), "choosing among 2.*leaves none"),  # 10% of 3 rows is 0
    (dict(max_iter=0), "max_iter must be a positive integer"),
    (dict(tol=0.0), "tol must be > 0"),
    (dict(train_x=np.array([[np.inf, 0.0]] * 3)), "train_x contains NaN or infinite"),
  ],
)
def test_linear_probe_rejects_bad_input(kwargs, match):
  args = dict(
    train_x=np.ones((3, 2)),
    train_y=np.array([0, 1, 2]),
    test_x=np.ones((2, 2)),
    test_y=np.array([0, 1]),
    num_classes=3,
    l2_grid=(1e-3,),
    val_fraction=0.0,
  )
  args.update(kwargs)
  with pytest.raises(ValueError, match=f"linear_probe: {match}"):
    linear_probe(**args)
