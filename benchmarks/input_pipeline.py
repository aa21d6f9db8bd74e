"""Images/s of the SimCLR input pipeline on this host, per host and per CPU core.

Runs jssl's own tf.data pipeline (``jssl.data.pipeline.pretrain_dataset`` with the
SimCLR task's ``host_example``): read/decode, shuffle, the two augmented views (with
``augment.on=host``) or only decode-and-batch (with ``augment.on=device``), batch,
prefetch. Nothing is sent to a device. With ``augment.on=device`` it also times the
jit-compiled on-device augmentation (``jssl.data.augment_jax.batch_views``) on this
machine's default device, so both halves of that mode are measured.

Sources: at <= 32 px, Fashion-MNIST when its IDX files are present, else synthetic
in-memory images; above (224 px), a folder of JPEGs (written once to a temporary
directory, 320x400, smooth random colour fields) so that JPEG decoding is measured.

  python benchmarks/input_pipeline.py                       # 32 and 224 px, host and device
  python benchmarks/input_pipeline.py --image-size 224 --batch 128 --batches 20
  python benchmarks/input_pipeline.py --smoke               # seconds; used by the test suite

One JSON object per measurement on stdout; the last line is a summary of them all.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--image-size", default="32,224", help="comma-separated view sizes")
  p.add_argument("--augment-on", default="host,device", help="comma-separated: host, device")
  p.add_argument("--batch", type=int, default=256, help="batch per host")
  p.add_argument("--batches", type=int, default=20, help="timed batches")
  p.add_argument("--warmup", type=int, default=3, help="untimed batches (fills buffers)")
  p.add_argument("--jpegs", type=int, default=512, help="JPEG files in the 224 px folder")
  p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
  args = p.parse_args(argv)
  if args.smoke:
    args.image_size, args.batch, args.batches, args.warmup, args.jpegs = "16,48", 8, 2, 1, 16
  return args


def cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def write_jpegs(folder: pathlib.Path, count: int, *, size=(320, 400)) -> None:
  """``count`` smooth random colour JPEGs in two class subfolders (an image_folder source)."""
  import tensorflow as tf  # noqa: PLC0415

  for i in range(count):
    low = tf.random.stateless_uniform((5, 6, 3), seed=(i, 0))
    image = tf.image.resize(low, size, method="bicubic")
    jpeg = tf.io.encode_jpeg(tf.image.convert_image_dtype(tf.clip_by_value(image, 0, 1), tf.uint8), quality=90)
    path = folder / f"class{i % 2}" / f"{i:05d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg.numpy())


def measure(source_spec: str, data_dir: str, image_size: int, augment_on: str, args) -> dict:
  import jax  # noqa: PLC0415

  from jssl.config import default_config  # noqa: PLC0415
  from jssl.data import pipeline  # noqa: PLC0415
  from jssl.data.sources import source_from_config  # noqa: PLC0415
  from jssl.tasks import make_task  # noqa: PLC0415

  config = default_config()
  config.data.source, config.data.dir, config.data.image_size = source_spec, data_dir, image_size
  config.data.synthetic_shape = (image_size, image_size, 3)
  config.data.synthetic_examples = 4096 if not args.smoke else 64
  config.augment.on = augment_on
  config.augment.blur_prob = 0.5 if image_size > 64 else 0.0  # SimCLR: blur for ImageNet-size views only
  source = source_from_config(config.data, seed=0)
  task = make_task(config)
  ds = pipeline.pretrain_dataset(
    source,
    split="train",
    batch_size=args.batch,
    host_example=task.host_example,
    seed=0,
    shuffle_buffer=min(10_000, 4 * args.batch),
  )
  batches = iter(ds.as_numpy_iterator())
  for _ in range(args.warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(args.batches):
    batch = next(batches)
  elapsed = time.perf_counter() - start
  host_rate = args.batch * args.batches / elapsed
  result = {
    "source": source.name,
    "image_size": image_size,
    "augment_on": augment_on,
    "batch": args.batch,
    "host_images_per_s": host_rate,
    "cores": cores(),
    "host_images_per_s_per_core": host_rate / cores(),
    "host_batch_shapes": {k: list(v.shape) for k, v in batch.items()},
  }
  if augment_on == "device":
    # The other half of device mode: the views made inside jit, timed on the default device.
    from jssl.data import augment_jax  # noqa: PLC0415

    images = jax.device_put(batch["image"])
    views = jax.jit(lambda images, key: augment_jax.batch_views(images, key, config=task.crops.global_configs))
    jax.block_until_ready(views(images, jax.random.key(0)))
    times = []
    for i in range(max(3, args.batches // 4)):
      start = time.perf_counter()
      jax.block_until_ready(views(images, jax.random.key(i + 1)))
      times.append(time.perf_counter() - start)
    result.update(
      device_augment_images_per_s=args.batch / statistics.median(times), device_backend=jax.default_backend()
    )
  return result


def main(argv=None) -> list:
  args = parse_args(argv)
  results = []
  with tempfile.TemporaryDirectory(prefix="jssl-jpegs-") as tmp:
    jpeg_dir = pathlib.Path(tmp)
    for size in [int(s) for s in args.image_size.split(",")]:
      if size <= 32:
        have_fmnist = any(FASHION_MNIST.glob("train-images-idx3-ubyte*")) and not args.smoke
        spec, data_dir = ("fashion_mnist", str(FASHION_MNIST)) if have_fmnist else ("synthetic", "")
      else:
        if not any(jpeg_dir.iterdir()):
          write_jpegs(jpeg_dir, args.jpegs, size=(80, 100) if args.smoke else (320, 400))
        spec, data_dir = f"image_folder:{jpeg_dir}", ""
      for augment_on in args.augment_on.split(","):
        result = measure(spec, data_dir, size, augment_on, args)
        print(json.dumps(result), flush=True)
        print(f"{size}px {augment_on}: {result['host_images_per_s']:.0f} img/s on the host", file=sys.stderr)
        results.append(result)
  print(
    json.dumps(
      {
        "summary": [
          {
            k: r[k]
            for k in ("source", "image_size", "augment_on", "host_images_per_s", "host_images_per_s_per_core", "cores")
          }
          | (
            {"device_augment_images_per_s": r["device_augment_images_per_s"]}
            if "device_augment_images_per_s" in r
            else {}
          )
          for r in results
        ]
      }
    )
  )
  return results


if __name__ == "__main__":
  main()
