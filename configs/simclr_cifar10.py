"""SimCLR's CIFAR-10 recipe (Chen et al. 2020, appendix B.9): ResNet-18 CIFAR stem, batch 4096,
LARS with lr 0.075 * sqrt(B), temperature 0.5, 10 warm-up epochs, no blur, jitter strength 0.5.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/simclr_cifar10.py --workdir runs/cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem, head 2048-128, tau 0.5: see jssl/config.py
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.optim.base_lr = 0.075
  config.optim.lr_scaling = "sqrt"
  config.train.batch_size = 4096
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
