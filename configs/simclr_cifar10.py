"""SimCLR's CIFAR-10 recipe (Chen et al. 2020, appendix B.9): ResNet-18 CIFAR stem, batch 4096,
LARS with lr 0.075 * sqrt(B), temperature 0.5, 10 warm-up epochs, no blur, jitter strength 0.5.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/simclr_cifar10.py --workdir runs/cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0
  config.model.encoder = "resnet18"
  config.model.stem = "cifar"
  config.model.head_hidden_dim = 2048
  config.model.head_out_dim = 128
  config.loss.temperature = 0.5
  config.optim.name = "lars"
  config.optim.base_lr = 0.075
  config.optim.lr_scaling = "sqrt"
  config.optim.weight_decay = 1e-6
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 4096
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
