"""The reconstruction demos on 2 CPU cores: the SimCLR demo's resnet_tiny encoder and AdamW
(configs/simclr_fashion_mnist_cpu.py), 300 steps of batch 256 (128 for colorization,
whose per-pixel 261-way loss makes a step ~3x dearer). The README's table compares them
with SimCLR run for the same steps and batch.

  jssl pretrain --config configs/reconstruction_cpu.py:superres --workdir runs/superres
  jssl pretrain --config configs/reconstruction_cpu.py:inpainting --workdir runs/inpainting
  jssl pretrain --config configs/reconstruction_cpu.py:colorization --workdir runs/colorization
  jssl eval --workdir runs/superres      (and the others)

Super-resolution (x2) and inpainting train on Fashion-MNIST at 28 px; colorization needs
colour, so it trains on the sample_photos demo set (crops of scikit-image's photographs) at
32 px, with the rebalanced classification loss.

Inpainting has two recipes. ``inpainting`` learns features as the context encoder's paper
does: random-region masks (``blobs``, the nearest jssl has to the paper's random segmentation
shapes), the bottleneck decoder (no skip connections), L2 on [-1, 1] with a context ring
weighted 10 (1 px here: the paper's 4 px ring is for 128 px images) and the adversary at
0.999 / 0.001. ``inpainting_quality`` fills a central square as well as it can: the U-Net
decoder with skip connections and no ring (jssl's recipe before the paper's was followed).

  jssl pretrain --config configs/reconstruction_cpu.py:inpainting_quality --workdir runs/inpainting_quality
"""

from jssl.config import default_config


def get_config(task="superres"):
  config = default_config()
  recipe, task = task, "inpainting" if task == "inpainting_quality" else task
  config.task = task
  if task == "colorization":
    config.data.source = "sample_photos"
    config.data.image_size = 32
    config.train.batch_size = 128
  else:
    config.data.source = "fashion_mnist"
    config.data.image_size = 28
    config.train.batch_size = 256
  config.augment.crop_area = (0.5, 1.0)  # mild: the target should stay a whole natural image
  config.model.encoder = "resnet_tiny"
  if task == "colorization":
    config.colorization.loss = "classification"
  if recipe == "inpainting":
    config.inpainting.mask = "blobs"
    config.inpainting.decoder = "bottleneck"
    config.inpainting.overlap_pixels = 1
  if recipe == "inpainting_quality":
    config.inpainting.mask = "center"
    config.inpainting.decoder = "unet"
    config.inpainting.overlap_pixels = 0
  config.optim.name = "adamw"
  config.optim.base_lr = 3e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.1
  config.train.steps = 300
  config.train.log_every = 25
  config.train.eval_every = 100
  config.train.checkpoint_every_steps = 100
  config.eval.batch_size = 1000
  config.eval.holdout_examples = 512
  return config
