"""Video sources and frame-order prediction (Shuffle and Learn): the moving Fashion-MNIST
generator, video folders, permutation labels, the host and device sides of the task, a
sharded step, and the smoke config end to end (pretrain, export, load_encoder, eval on images)."""

import gzip
import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO
from PIL import Image

import jssl
from jssl import cli, parallel, train
from jssl.config import load_config
from jssl.data import pipeline, video
from jssl.data.sources import make_source
from jssl.tasks.frame_order import FrameOrder, permutations
from jssl.workdir import read_metrics, read_run_config, restore_run

SMOKE = str(REPO / "configs" / "smoke.py:frame_order")
N_TRAIN, N_TEST = 160, 48  # fake Fashion-MNIST; unlike the clip counts (256, 64), so eval shows what it read


def _write_idx(path, array, magic):
  with gzip.open(path, "wb") as f:
    f.write(magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes() + array.tobytes())


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory):
  """Fake Fashion-MNIST IDX files: train objects have values in [1, 127], test objects in
  [128, 255] (every object pixel non-zero, so an object's extent is visible); label i % 10."""
  folder = tmp_path_factory.mktemp("fmnist")
  rng = np.random.default_rng(0)
  for prefix, n, low in (("train", N_TRAIN, 1), ("t10k", N_TEST, 128)):
    _write_idx(
      folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(low, low + 127, (n, 28, 28), dtype=np.uint8), 2051
    )
    _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), 2049)
  return str(folder)


def _objects(count, size, seed=0):
  return np.random.default_rng(seed).integers(1, 256, (count, size, size), dtype=np.uint8)


# ----------------------------------------------------------------------------- generator


def test_generator_is_deterministic_by_seed():
  objects = _objects(5, 8)
  a, b, c = (
    video.moving_fashion_mnist(objects, num_clips=6, frames=5, canvas=20, objects=2, seed=s) for s in (3, 3, 4)
  )
  assert a.shape == (6, 5, 20, 20, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_generator_pastes_whole_objects_with_max_inside_the_canvas():
  objects = _objects(7, 8)
  clips, ids, positions = video.moving_fashion_mnist(
    objects, num_clips=12, frames=6, canvas=20, objects=2, seed=1, return_tracks=True
  )
  assert ids.shape == (12, 2) and positions.shape == (12, 6, 2, 2)
  assert positions.min() >= 0 and positions.max() <= 20 - 8
  for i, f in itertools.product(range(12), range(6)):  # an independent max composite
    expected = np.zeros((20, 20))
    for k in range(2):
      y, x = positions[i, f, k]
      expected[y : y + 8, x : x + 8] = np.maximum(expected[y : y + 8, x : x + 8], objects[ids[i, k]])
    np.testing.assert_array_equal(clips[i, f, ..., 0], expected)
  # One object per clip: every frame holds all of it, nothing cut off at an edge.
  single, ids = video.moving_fashion_mnist(
    objects, num_clips=12, frames=6, canvas=20, objects=1, seed=2, return_tracks=True
  )[:2]
  totals = single.reshape(12, 6, -1).sum(-1, dtype=np.int64)
  np.testing.assert_array_equal(totals, np.repeat(objects[ids[:, 0]].reshape(12, -1).sum(-1)[:, None], 6, 1))


def test_objects_grow_or_shrink_steadily_when_scaled():
  """With ``scale``, each object's drawn side goes linearly from s0 to s1 of its size (nearest
  neighbour, centred where the whole object would be); positions and ids are those of the
  unscaled clips of the same seed, and (1, 1) draws the objects whole."""
  objects = np.full((1, 20, 20), 200, np.uint8)  # a solid square: its drawn side is easy to read
  kwargs = {"num_clips": 40, "frames": 6, "canvas": 30, "objects": 1, "seed": 5, "return_tracks": True}
  clips, ids, positions = video.moving_fashion_mnist(objects, scale=(0.4, 1.0), **kwargs)
  plain, plain_ids, plain_positions = video.moving_fashion_mnist(objects, **kwargs)
  np.testing.assert_array_equal(positions, plain_positions)
  np.testing.assert_array_equal(ids, plain_ids)
  drawn = np.sqrt((clips[..., 0] > 0).sum(axis=(2, 3)))  # [N, T] side of the square in each frame
  steps = np.diff(drawn, axis=1)
  assert np.all(drawn >= 7) and np.all(drawn <= 20)  # 0.4 * 20 = 8, give or take rounding
  assert np.all(np.all(steps >= 0, 1) | np.all(steps <= 0, 1)), "each object only grows or only shrinks"
  assert (steps.sum(1) > 2).sum() > 5 and (steps.sum(1) < -2).sum() > 5, "some grow, some shrink"
  row, col = positions[0, 0, 0] + 10  # the centre of the whole object stays drawn
  assert clips[0, 0, row, col, 0] == 200
  whole, _, _ = video.moving_fashion_mnist(objects, scale=(1.0, 1.0), **kwargs)
  np.testing.assert_array_equal(whole, plain)


def test_objects_move_in_straight_lines_and_bounce_off_the_walls():
  room, speed = 36, (2.0, 4.0)
  _, _, positions = video.moving_fashion_mnist(
    _objects(3, 4), num_clips=32, frames=20, canvas=40, objects=1, seed=0, speed=speed, return_tracks=True
  )
  p = positions[:, :, 0].astype(np.int64)  # [N, T, 2]
  step = np.diff(p, axis=1)
  assert np.all(np.abs(step) <= speed[1] + 1), "at most the speed per frame (plus rounding)"
  assert np.all(np.abs(step).sum(-1).sum(-1) > 0), "every object moves"
  # Away from the walls the velocity is constant: second differences are rounding only.
  inside = np.all((p > speed[1] + 1) & (p < room - speed[1] - 1), axis=-1)
  steady = inside[:, :-2] & inside[:, 1:-1] & inside[:, 2:]
  assert steady.sum() > 100 and np.all(np.abs(np.diff(step, axis=1))[steady] <= 1)
  # A turn (the step's sign flips along an axis) only happens at a wall.
  turns = np.sign(step[:, :-1]) * np.sign(step[:, 1:]) < 0  # [N, T-2, 2]
  assert turns.sum() >= 5
  at_turn = p[:, 1:-1][turns]
  assert np.all((at_turn <= speed[1] + 1) | (at_turn >= room - speed[1] - 1)), at_turn


def test_moving_fashion_mnist_source(fmnist_dir):
  options = {"clip_frames": 4, "clip_size": 40, "video_objects": 1, "video_clips": 12}
  source = make_source("moving_fashion_mnist", data_dir=fmnist_dir, video_options=options, seed=0)
  assert video.is_video(source) and not video.is_video(make_source("synthetic"))
  assert (source.clip_frames, source.image_shape, source.num_classes) == (4, (40, 40, 1), 10)
  assert source.num_examples("train") == 12 and source.num_examples("test") == 3
  objects = {
    split: make_source("fashion_mnist", data_dir=fmnist_dir).arrays(split)[0][..., 0] for split in ("train", "test")
  }
  for split in ("train", "test"):
    elements = list(source.dataset(split).as_numpy_iterator())
    assert len(elements) == source.num_examples(split)
    for e in elements:
      clip, label = e["image"], e["label"]
      assert clip.shape == (4, 40, 40, 1) and clip.dtype == np.uint8 and label.dtype == np.int32
      # The object in frame 0 is one of the split's own images, and the label is its class.
      rows, cols = np.nonzero(clip[0, ..., 0])
      patch = clip[0, rows.min() : rows.min() + 28, cols.min() : cols.min() + 28, 0]
      match = np.flatnonzero((objects[split] == patch).all(axis=(1, 2)))
      assert len(match) >= 1 and label in match % 10
      assert not np.array_equal(clip[0], clip[-1]), "it moves"
  shard = [e["label"] for e in source.dataset("train", process_index=1, process_count=2).as_numpy_iterator()]
  assert shard == [e["label"] for e in source.dataset("train").as_numpy_iterator()][1::2]


def _frames_png(folder, values, size=(20, 30)):
  folder.mkdir(parents=True)
  for t, value in enumerate(values):
    frame = np.full((*size, 3), value, np.uint8)
    margin = abs(size[0] - size[1]) // 2  # outside the central square: must be cropped away
    if size[1] > size[0]:
      frame[:, :margin] = frame[:, -margin:] = 255
    else:
      frame[:margin] = frame[-margin:] = 255
    Image.fromarray(frame).save(folder / f"frame{t + 1}.png")  # unpadded: frame10 sorts after frame9


def _gif(path, values):
  path.parent.mkdir(parents=True, exist_ok=True)
  frames = [Image.fromarray(np.full((16, 16), v, np.uint8), "L") for v in values]
  frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)


def test_video_folder_reads_frame_folders_and_gifs(tmp_path):
  _frames_png(tmp_path / "train" / "walk" / "clip_a", [20 * t for t in range(1, 11)])
  _gif(tmp_path / "train" / "run" / "b.gif", [0, 40, 80, 120, 160])
  (tmp_path / "train" / "run" / "broken.gif").write_bytes(b"GIF89a not really")
  _gif(tmp_path / "test" / "walk" / "c.gif", [10, 20, 30])
  _frames_png(tmp_path / "test" / "run" / "clip_d", [50, 60], size=(30, 20))
  source = make_source(f"video_folder:{tmp_path}", video_options={"clip_frames": 4, "clip_size": 12})
  assert video.is_video(source) and source.splits == ("train", "test")
  assert (source.num_classes, source.channels, source.clip_frames) == (2, 3, 4)
  assert source.num_examples("train") == 3
  # Sorted by path: run/b.gif, run/broken.gif (skipped), walk/clip_a; classes run=0, walk=1.
  # Frames evenly resampled: 10 -> indices 0, 3, 6, 9; 5 -> 0, 1, 3, 4; 3 -> 0, 1, 1, 2; 2 -> 0, 0, 1, 1.
  expected = {
    "train": [(0, [0, 40, 120, 160]), (1, [20, 80, 140, 200])],
    "test": [(0, [50, 50, 60, 60]), (1, [10, 20, 20, 30])],
  }
  for split, clips in expected.items():
    got = list(source.dataset(split).as_numpy_iterator())
    assert [int(e["label"]) for e in got] == [label for label, _ in clips]
    for e, (_, values) in zip(got, clips):
      assert e["image"].shape == (4, 12, 12, 3) and e["image"].dtype == np.uint8
      np.testing.assert_array_equal(
        e["image"], np.broadcast_to(np.array(values, np.uint8)[:, None, None, None], (4, 12, 12, 3))
      )
  assert len(source.skipped_files()) == 1 and source.skipped_files()[0].endswith("broken.gif")


# ----------------------------------------------------------------------------- the task


def test_permutation_labels():
  for n in (3, 4, 5):
    everything = set(itertools.permutations(range(n)))
    perms, labels = permutations(n, "binary")
    assert perms.shape == (math.factorial(n), n) and {tuple(p) for p in perms} == everything
    for p, label in zip(perms.tolist(), labels.tolist()):
      monotone = all(a < b for a, b in zip(p, p[1:])) or all(a > b for a, b in zip(p, p[1:]))
      assert label == int(monotone), p
    perms, labels = permutations(n, "permutation")
    assert {tuple(p) for p in perms} == everything
    assert set(labels.tolist()) == set(range(math.factorial(n) // 2)), "in range, and every class reachable"
    label_of = {tuple(p): label for p, label in zip(perms.tolist(), labels.tolist())}
    for p, q in itertools.product(label_of, repeat=2):
      assert (label_of[p] == label_of[q]) == (q in (p, p[::-1])), (p, q)
  for n, mode in ((2, "binary"), (7, "permutation"), (3, "sorting")):
    with pytest.raises(ValueError, match="frame_order"):
      permutations(n, mode)


def _task(**settings):
  config = load_config(SMOKE)
  for key, value in settings.items():
    config.frame_order[key] = value
  return FrameOrder(config)


def test_host_example_keeps_temporal_order_and_one_crop_per_tuple():
  task = _task(negatives="shuffle")
  # Frame t is flat grey t / 10: any crop of it is too, so the output shows which frames were taken.
  ramp = tf.constant(np.broadcast_to((np.arange(8) / 10)[:, None, None, None], (8, 40, 40, 3)), tf.float32)
  pattern = tf.constant(np.repeat(np.random.default_rng(0).random((1, 40, 40, 3)), 8, axis=0), tf.float32)
  starts, crops = set(), []
  for seed in range(12):
    seed = tf.constant([seed, 5], tf.int64)
    frames = task.host_example(ramp, seed)["frames"].numpy()
    assert frames.shape == (3, 24, 24, 3) and frames.dtype == np.uint8
    taken = frames.reshape(3, -1).astype(np.float64) / 255 * 10
    assert np.all(np.ptp(taken, axis=1) == 0), "each frame stays flat"
    start = round(taken[0, 0])
    np.testing.assert_allclose(taken[:, 0], [start, start + 3, start + 6], atol=0.05)  # gap (8 - 1) // 2 = 3
    starts.add(start)
    same = task.host_example(pattern, seed)["frames"].numpy()
    assert np.array_equal(same[0], same[1]) and np.array_equal(same[0], same[2]), "one crop and flip for the tuple"
    crops.append(same[0])
  assert starts == {0, 1} and len({c.tobytes() for c in crops}) > 6
  close = _task(frame_gap=1, negatives="shuffle").host_example(ramp, tf.constant([0, 0], tf.int64))["frames"].numpy()
  np.testing.assert_allclose(np.diff(close[:, 0, 0, 0].astype(np.float64) / 255 * 10), [1, 1], atol=0.05)
  # The paper's negatives need five frames a < b < c < d < e: (8 - 1) // 4 = 1 apart.
  five = _task().host_example(ramp, tf.constant([3, 5], tf.int64))["frames"].numpy()
  assert five.shape == (5, 24, 24, 3)
  np.testing.assert_allclose(np.diff(five[:, 0, 0, 0].astype(np.float64) / 255 * 10), [1, 1, 1, 1], atol=0.05)


def test_motion_windows_skip_the_static_part_of_a_clip():
  """Frames 0-4 identical, 5-7 changing: with window=motion a 3-frame tuple 1 apart starts at
  3, 4 or 5 (windows that hold a change, in proportion to how much); uniform also starts at
  0-2 (all-static tuples)."""
  values = np.array([0, 0, 0, 0, 0, 0.3, 0.6, 0.9], np.float32)
  clip = tf.constant(np.broadcast_to(values[:, None, None, None], (8, 40, 40, 3)), tf.float32)
  seen = {}
  for window in ("motion", "uniform"):
    task = _task(negatives="shuffle", frame_gap=1, window=window, flip_prob=0.0)
    firsts = []
    for seed in range(60):
      frames = task.host_example(clip, tf.constant([seed, 1], tf.int64))["frames"].numpy()
      firsts.append(tuple(np.round(frames[:, 0, 0, 0] / 255 * 10).astype(int)))
    seen[window] = firsts
  static = (0, 0, 0)
  assert static not in seen["motion"] and seen["uniform"].count(static) > 15
  assert set(seen["motion"]) == {(0, 0, 3), (0, 3, 6), (3, 6, 9)}
  # The weights: each start's window motion, against a float64 NumPy reference.
  frames = np.random.default_rng(3).random((9, 5, 5, 2))
  steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
  expected = [steps[s : s + 4].sum() for s in range(9 - 4)]
  np.testing.assert_allclose(FrameOrder.window_motion(tf.constant(frames, tf.float32), 4), expected, rtol=1e-5)
  np.testing.assert_allclose(FrameOrder.window_motion(clip, 2), [0, 0, 0, 0.3, 0.6, 0.6], atol=1e-6)


@pytest.mark.parametrize("mode", ["binary", "permutation"])
def test_shuffle_permutes_each_tuple_by_its_global_index(mode):
  task = _task(mode=mode, negatives="shuffle")
  batch = 3000
  frames = jnp.broadcast_to(jnp.arange(3.0)[None, :, None, None, None], (batch, 3, 2, 2, 1))
  shown, order, labels = (np.asarray(x) for x in task.shuffle(frames, jax.random.key(1)))
  np.testing.assert_array_equal(shown[:, :, 0, 0, 0], order)  # frame t has value t
  perms = np.array(list(itertools.permutations(range(3))))  # 012, 021, 102, 120, 201, 210
  which = np.argmax((order[:, None, :] == perms[None]).all(-1), axis=1)
  counts = np.bincount(which, minlength=6)
  assert counts.sum() == batch and np.all((order[:, None, :] == perms[None]).all(-1).sum(1) == 1)
  if mode == "binary":  # half in order (either way round), the rest spread over the 4 shuffles
    monotone = np.all(np.diff(order) > 0, axis=1) | np.all(np.diff(order) < 0, axis=1)
    np.testing.assert_array_equal(labels, monotone)
    assert abs(labels.mean() - 0.5) < 0.04 and abs(counts[0] - counts[5]) < 150
    assert np.all(np.abs(counts[1:5] - batch / 8) < 100), counts
  else:  # a permutation and its reverse share a class: {012, 210}, {021, 120}, {102, 201}
    classes = [set(labels[(which == a) | (which == b)].tolist()) for a, b in ((0, 5), (1, 3), (2, 4))]
    assert all(len(c) == 1 for c in classes) and set.union(*classes) == {0, 1, 2}, classes
    assert np.all(np.abs(counts - batch / 6) < 100), counts
  # Keyed by position in the global batch: a prefix of the batch is shuffled the same way.
  np.testing.assert_array_equal(np.asarray(task.shuffle(frames[:16], jax.random.key(1))[1]), order[:16])


def test_the_papers_negatives_put_a_frame_from_outside_the_span_in_the_middle():
  """From frames a < b < c < d < e (values 0..4): positives (b, c, d) either way round, negatives
  (b, a, d) and (b, e, d) either way round, each negative as often as the other."""
  task = _task()
  assert task.negatives == "outside" and task.host_frames == 5
  batch = 3000
  frames = jnp.broadcast_to(jnp.arange(5.0)[None, :, None, None, None], (batch, 5, 2, 2, 1))
  shown, order, labels = (np.asarray(x) for x in task.shuffle(frames, jax.random.key(2)))
  assert shown.shape == (batch, 3, 2, 2, 1)
  np.testing.assert_array_equal(shown[:, :, 0, 0, 0], order)
  seen = {tuple(o): set() for o in order.tolist()}
  for o, label in zip(order.tolist(), labels.tolist()):
    seen[tuple(o)].add(label)
  assert seen == {(1, 2, 3): {1}, (3, 2, 1): {1}, (1, 0, 3): {0}, (3, 0, 1): {0}, (1, 4, 3): {0}, (3, 4, 1): {0}}
  assert abs(labels.mean() - 0.5) < 0.04
  middle = order[labels == 0, 1]
  assert abs(np.mean(middle == 0) - 0.5) < 0.05, "a and e equally often"
  with pytest.raises(ValueError, match="tuple_frames=4"):
    _task(tuple_frames=4)


def test_the_head_reads_the_frames_feature_maps_unless_told_otherwise():
  spatial, pooled = _task(), _task(spatial_channels=0)
  example = {"frames": jnp.zeros((2, 5, 24, 24, 3), jnp.uint8)}
  shapes = {
    n: jax.eval_shape(lambda t=t: t.init(jax.random.key(0), example))["params"]
    for n, t in (("s", spatial), ("p", pooled))
  }
  assert set(shapes["s"]) == {"encoder", "head", "squeeze", "squeeze_bn"} and set(shapes["p"]) == {"encoder", "head"}
  features = spatial.model.encoder.num_features
  # resnet_tiny at 24 px (CIFAR stem): a 3 x 3 last map; 16 channels each, 3 frames.
  # The default head reads the 2 differences of consecutive shown frames.
  assert shapes["s"]["head"]["hidden"]["kernel"].shape[0] == 2 * 3 * 3 * 16
  assert shapes["p"]["head"]["hidden"]["kernel"].shape[0] == 2 * features
  concat = _task(head_input="concat")
  hidden = jax.eval_shape(lambda: concat.init(jax.random.key(0), example))["params"]["head"]["hidden"]["kernel"]
  assert hidden.shape[0] == 3 * 3 * 3 * 16
  config = load_config(SMOKE)
  config.model.encoder, config.model.patch_size = "vit_tiny", 4
  with pytest.raises(ValueError, match="spatial_channels"):
    FrameOrder(config)


@pytest.mark.parametrize("head_input", ["differences", "concat"])
def test_the_difference_head_sees_only_what_changed_between_frames(head_input):
  """With differences, a tuple of three identical frames gives the head zeros whatever the
  frame shows (the logits are the same for any still picture); the concatenating head sees
  the picture itself."""
  task = _task(head_input=head_input, spatial_channels=0)
  variables = jax.jit(task.init)(jax.random.key(0), {"frames": jnp.zeros((2, 5, 16, 16, 3), jnp.uint8)})
  logits_of = jax.jit(lambda frames: task.model.apply(variables, frames, train=False)[1])
  pictures = jax.random.uniform(jax.random.key(1), (4, 1, 16, 16, 3))
  still = jnp.broadcast_to(pictures, (4, 3, 16, 16, 3))
  logits = logits_of(still)
  spread = float(jnp.max(jnp.abs(logits - logits[:1])))
  if head_input == "differences":
    assert spread == 0.0
  else:
    assert spread > 1e-3
  moving = still.at[:, 2].set(jnp.roll(still[:, 2], 3, axis=1))
  logits = logits_of(moving)
  assert float(jnp.max(jnp.abs(logits - logits[:1]))) > 1e-4, "what moves does reach the head"


def test_config_errors_are_clear(fmnist_dir):
  config = load_config(SMOKE)
  config.data.dir = fmnist_dir
  config.data.source = "synthetic"
  with pytest.raises(ValueError, match="needs clips"):
    train.make_setup(config)
  config = load_config(SMOKE)
  config.data.dir, config.data.clip_frames, config.frame_order.frame_gap = fmnist_dir, 4, 2
  with pytest.raises(ValueError, match="do not fit"):
    train.make_setup(config)
  for key, value in (
    ("mode", "sorting"),
    ("positive_fraction", 1.0),
    ("frame_gap", -1),
    ("crop_area", (0.0, 1.0)),
    ("head_input", "sum"),
  ):
    with pytest.raises(ValueError, match=f"frame_order.{key}"):
      _task(**{key: value})


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, fmnist_dir):
  workdir = tmp_path_factory.mktemp("frame_order")
  assert cli.main(["pretrain", "--config", SMOKE, "--workdir", str(workdir), f"--config.data.dir={fmnist_dir}"]) == 0
  return workdir


@pytest.mark.slow
def test_smoke_run_writes_metrics(smoke_run):
  metrics = read_metrics(smoke_run)
  assert [m["step"] for m in metrics] == list(range(1, 17))
  for m in metrics:
    assert np.isfinite(m["loss"]) and 0.0 <= m["order_accuracy"] <= 1.0 and "probe_top1" in m
  for name in ("augmentations.png", "curves.png"):
    assert (smoke_run / name).stat().st_size > 1000, name


@pytest.mark.slow
def test_exported_encoder_is_the_per_frame_encoder(smoke_run, tmp_path):
  out = tmp_path / "export"
  assert cli.main(["export", "--workdir", str(smoke_run), "--out", str(out)]) == 0
  encoder = jssl.load_encoder(out)
  images = np.random.default_rng(0).integers(0, 256, (5, 24, 24, 1), dtype=np.uint8)  # grey, as Fashion-MNIST
  setup = train.make_setup(read_run_config(smoke_run))
  state, _ = restore_run(setup, smoke_run)
  rgb = np.repeat(images, 3, axis=-1).astype(np.float32) / 255
  expected = setup.task.model.encoder.apply(
    setup.task.encoder_variables(state.params, state.batch_stats), rgb, train=False
  )
  np.testing.assert_allclose(encoder(images), np.asarray(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_eval_probes_on_the_image_source(smoke_run, capsys):
  assert cli.main(["eval", "--workdir", str(smoke_run)]) == 0
  results = json.loads((smoke_run / "eval.json").read_text())
  assert (results["num_train"], results["num_test"]) == (N_TRAIN, N_TEST), "Fashion-MNIST images, not clips"
  for key in ("linear_top1", "knn_k20_top1", "random_init_linear_top1", "raw_pixels_knn_k20_top1"):
    assert 0.0 <= results[key] <= 1.0, key
  path = smoke_run / "config.json"
  saved = path.read_text()
  try:  # without eval.source there are no images to probe, and eval says so
    path.write_text(saved.replace('"source": "fashion_mnist"', '"source": ""'))
    assert cli.main(["eval", "--workdir", str(smoke_run)]) == 2
    assert "yields clips, not images: set eval.source" in capsys.readouterr().err
  finally:
    path.write_text(saved)


# ----------------------------------------------------------------------------- sharded step


def _batch(task, config, seed):
  """Frames made by the task's own host_example from generated clips (RGB, as the pipeline gives them)."""
  objects = _objects(20, 28, seed)
  clips = video.moving_fashion_mnist(
    objects,
    num_clips=config.train.batch_size,
    frames=config.data.clip_frames,
    canvas=config.data.clip_size,
    objects=2,
    seed=seed,
  )
  clips = np.repeat(clips, 3, axis=-1).astype(np.float32) / 255
  frames = [
    task.host_example(tf.constant(c), tf.constant([seed, i], tf.int64))["frames"].numpy() for i, c in enumerate(clips)
  ]
  return {"frames": np.stack(frames), "label": np.arange(len(frames), dtype=np.int32) % 10}


@pytest.fixture(scope="module")
def sharded(smoke_run, fmnist_dir):
  """The smoke model with plain SGD and a global batch of 16, set up (its step compiled once)
  on 1 and on 8 devices, an initial state on the host, and two batches.

  The initial state is the smoke run's, with a fresh SGD optimizer state: initialising the
  model again would compile its random initialisers, the slowest compile here.
  """
  config = load_config(SMOKE)
  config.data.dir, config.train.batch_size = fmnist_dir, 16
  config.optim.name, config.optim.base_lr, config.optim.weight_decay = "sgd", 0.05, 0.0
  setups = {n: train.make_setup(config, mesh=parallel.make_mesh(jax.devices()[:n])) for n in (1, 8)}
  steps = {n: train.make_train_step(setup) for n, setup in setups.items()}
  trained, _ = restore_run(train.make_setup(read_run_config(smoke_run)), smoke_run)
  trained = jax.device_get(trained)
  initial = trained.replace(
    step=np.zeros((), np.int32),
    opt_state=setups[1].tx.init(trained.params),
    probe_opt_state=setups[1].probe_tx.init(trained.probe),
  )
  batches = [_batch(setups[1].task, config, seed) for seed in range(2)]
  return setups, steps, jax.device_get(initial), batches


def _place(setup, host_state):
  return jax.device_put(host_state, train.state_sharding(setup))


@pytest.mark.slow
def test_eight_devices_match_one_device_and_the_loss_is_cross_entropy(sharded):
  setups, steps, initial, batches = sharded
  results = {}
  for n in (1, 8):
    state = _place(setups[n], initial)
    if n == 1:  # the loss of step 0 recomputed by hand: frames shown in the step's order, float64 cross-entropy
      task = setups[1].task
      rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), 0)
      shown, _, labels = task.shuffle(task.frames_of(jax.tree.map(jnp.asarray, batches[0])), rng)
      (_, logits), _ = jax.jit(lambda v, x, task=task: task.model.apply(v, x, train=True, mutable=["batch_stats"]))(
        {"params": state.params, "batch_stats": state.batch_stats}, shown
      )
      logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
      log_softmax = logits - logits.max(1, keepdims=True)
      log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
      expected_loss = -log_softmax[np.arange(len(labels)), labels].mean()
      expected_accuracy = np.mean(logits.argmax(1) == labels)
    losses = []
    for seed, batch in enumerate(batches):
      state, metrics = steps[n](state, parallel.global_batch(batch, setups[n].mesh))
      losses.append(float(metrics["loss"]))
      if seed == 0:
        after_one = jax.device_get(state)
        first = {k: float(metrics[k]) for k in ("loss", "order_accuracy")}
    results[n] = after_one, losses, first
  (one, losses_one, first), (eight, losses_eight, _) = results[1], results[8]
  np.testing.assert_allclose(first["loss"], expected_loss, rtol=1e-5)
  assert first["order_accuracy"] == pytest.approx(expected_accuracy)
  assert set(one.params) == {"encoder", "head", "squeeze", "squeeze_bn"} and one.probe is not None
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)


@pytest.mark.slow
def test_training_on_a_fixed_batch_lowers_the_loss(sharded):
  """The same batch shown in the same orders every step (the step's randomness is keyed by
  ``state.step``, held at 0 here): the model must fit it."""
  setups, steps, initial, batches = sharded
  state, batch = _place(setups[1], initial), parallel.global_batch(batches[0], setups[1].mesh)
  losses = []
  for _ in range(12):
    state, metrics = steps[1](state.replace(step=jnp.zeros_like(state.step)), batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.6 * losses[0], losses


def test_grayscale_clips_become_rgb_frames_in_the_pipeline(fmnist_dir):
  config = load_config(SMOKE)
  config.data.dir, config.data.video_clips = fmnist_dir, 8
  setup = train.make_setup(config)
  dataset = pipeline.pretrain_dataset(
    setup.source, split="train", batch_size=4, host_example=setup.task.host_example, seed=0, shuffle_buffer=8
  )
  batch = next(dataset.as_numpy_iterator())
  assert batch["frames"].shape == (4, 5, 24, 24, 3) and batch["label"].shape == (4,)  # a < b < c < d < e
  np.testing.assert_array_equal(batch["frames"][..., 0], batch["frames"][..., 2])
