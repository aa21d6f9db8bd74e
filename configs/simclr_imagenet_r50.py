"""SimCLR's ImageNet recipe (Chen et al. 2020): ResNet-50 (ImageNet stem) at 224 px, batch 4096,
LARS with lr 0.3 * B / 256, weight decay 1e-6, temperature 0.1, 10 warm-up epochs, 100 epochs,
jitter strength 1.0 and Gaussian blur.

Needs a prepared TFDS imagenet2012 in DIR:

  jssl pretrain --config configs/simclr_imagenet_r50.py --workdir gs://BUCKET/simclr_r50 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem, head 2048-128, tau 0.5: see jssl/config.py
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  config.augment.jitter_strength = 1.0
  config.augment.blur_prob = 0.5
  config.model.encoder = "resnet50"
  config.model.stem = "imagenet"
  config.simclr.temperature = 0.1
  config.optim.base_lr = 0.3
  config.train.batch_size = 4096
  config.train.epochs = 100.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024
  return config
