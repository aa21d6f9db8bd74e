"""Tests for jssl.ops.masks: coverage, shape of the centre square, determinism, sharding invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from skimage.measure import label

from jssl.ops.masks import MASK_KINDS, batch_masks, center_side

KEY = jax.random.key(0)
RANDOM_KINDS = ("rectangles", "blobs")


# Tests share a few (size, batch) shapes: each new shape of a random kind is a ~1 s compile.
def _masks(kind, indices=tuple(range(16)), *, key=KEY, size=32, **kwargs):
  return np.asarray(batch_masks(key, jnp.asarray(indices), image_size=size, kind=kind, **kwargs))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_are_binary_float32_of_the_right_shape(kind):
  masks = _masks(kind)
  assert masks.shape == (16, 32, 32, 1) and masks.dtype == np.float32
  assert set(np.unique(masks)) == {0.0, 1.0}


@pytest.mark.parametrize("area", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("size", [31, 32])
def test_center_square_is_centred_symmetric_and_of_the_requested_area(area, size):
  masks = _masks("center", np.arange(3), size=size, area_fraction=area)
  mask = masks[0, ..., 0]
  assert all(np.array_equal(m[..., 0], mask) for m in masks)  # the same for every example
  # Symmetric under both flips and the transpose: centred, and square.
  assert np.array_equal(mask, mask[::-1]) and np.array_equal(mask, mask[:, ::-1])
  assert np.array_equal(mask, mask.T)
  rows = np.flatnonzero(mask.any(axis=1))
  side = center_side(size, area)
  assert len(rows) == side and rows[0] == size - 1 - rows[-1]  # equal margins
  assert mask.sum() == side * side  # a filled square: no holes
  # Exact up to rounding the side (kept to the parity of S for symmetry): within a pixel.
  assert abs(side - size * np.sqrt(area)) <= 1.0
  assert abs(mask.mean() - area) <= (2 * size * np.sqrt(area) + 1) / size**2


def test_center_is_pathaks_quarter_by_default():
  mask = _masks("center", [0], size=128)[0, ..., 0]
  assert mask.mean() == 0.25 and mask[32:96, 32:96].all()  # the central 64x64 of 128x128


@pytest.mark.parametrize("area", [0.1, 0.25, 0.5])
def test_blobs_cover_the_area_fraction_per_example(area):
  masks = _masks("blobs", area_fraction=area)
  coverage = masks.mean(axis=(1, 2, 3))
  np.testing.assert_allclose(coverage, area, atol=0.03)


def test_blobs_are_a_few_connected_regions():
  masks = _masks("blobs", size=64)
  components = [label(m[..., 0], connectivity=2).max() for m in masks]
  # Smooth blobs, not salt and pepper: a handful of regions, each many pixels.
  assert np.mean(components) <= 8 and max(components) <= 12
  assert all(m.sum() / c >= 50 for m, c in zip(masks, components))


@pytest.mark.parametrize("area", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("max_rectangles", [1, 4])
def test_rectangles_cover_roughly_the_area_fraction(area, max_rectangles):
  masks = _masks("rectangles", np.arange(64), size=32, area_fraction=area, max_rectangles=max_rectangles)
  mean = masks.mean()
  assert 0.5 * area <= mean <= 1.2 * area, mean
  assert (masks.mean(axis=(1, 2, 3)) > 0).all()  # never an empty mask


def test_rectangles_vary_in_count_and_are_unions_of_rectangles():
  masks = _masks("rectangles", np.arange(64), size=32, max_rectangles=4)[..., 0]
  components = [label(m, connectivity=1).max() for m in masks]
  assert min(components) == 1 and max(components) >= 3 and max(components) <= 4
  # With one rectangle, the mask is its own bounding box.
  for m in _masks("rectangles", np.arange(64), max_rectangles=1)[..., 0]:
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    assert m.sum() == len(rows) * len(cols) == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_masks_depend_on_key_and_index_only(kind):
  a = _masks(kind)
  np.testing.assert_array_equal(a, _masks(kind))
  # Example i's mask is the same whatever the rest of the batch: it depends on (key, i) alone.
  order = np.random.default_rng(0).permutation(16)
  np.testing.assert_array_equal(_masks(kind, order), a[order])
  np.testing.assert_array_equal(_masks(kind, [3]), a[3:4])
  others = _masks(kind, np.arange(16, 32))
  assert all(not np.array_equal(x, y) for x in a for y in others)
  assert len({m.tobytes() for m in a}) == len(a)  # distinct indices, distinct masks
  assert not np.array_equal(a, _masks(kind, key=jax.random.key(1)))


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_do_not_depend_on_sharding(kind):
  assert jax.device_count() == 8  # tests/conftest.py forces 8 CPU devices
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  indices = jnp.arange(16, dtype=jnp.int32)
  make = jax.jit(lambda key, idx: batch_masks(key, idx, image_size=32, kind=kind), out_shardings=sharding)
  sharded = make(KEY, jax.device_put(indices, sharding))
  assert sharded.sharding.is_equivalent_to(sharding, 4)
  # Each device computed its 2 examples alone, yet they are those of the unsharded batch.
  np.testing.assert_array_equal(np.asarray(sharded), _masks(kind, indices))


def test_raw_uint32_keys_give_the_masks_of_the_typed_key():
  raw = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(_masks("rectangles", key=raw), _masks("rectangles", key=jax.random.wrap_key_data(raw)))


def test_bad_arguments_are_clear_errors():
  with pytest.raises(ValueError, match=r"Unknown mask kind 'square'.*'center', 'rectangles', 'blobs'"):
    batch_masks(KEY, jnp.arange(2), image_size=8, kind="square")
  for area in (0.0, 1.0, -0.1, 1.5):
    with pytest.raises(ValueError, match=r"area_fraction must be in \(0, 1\)"):
      batch_masks(KEY, jnp.arange(2), image_size=8, kind="center", area_fraction=area)
  with pytest.raises(ValueError, match="max_rectangles"):
    batch_masks(KEY, jnp.arange(2), image_size=8, kind="rectangles", max_rectangles=0)
  with pytest.raises(ValueError, match="indices"):
    batch_masks(KEY, jnp.zeros((2, 2), jnp.int32), image_size=8, kind="blobs")
