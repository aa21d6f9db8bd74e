"""BYOL on CIFAR-10 with solo-learn's ResNet-18 recipe (vturrisi/solo-learn
scripts/pretrain/cifar/byol.yaml with augmentations/asymmetric.yaml): projector 4096 / 256,
predictor 4096, target momentum 0.99 -> 1 (cosine), LARS with lr 1.0 x B / 256 at batch 256,
trust coefficient (eta) 0.02, weight decay 1e-5 (biases and batch norm excluded), 10 warm-up
epochs (solo-learn's default) then cosine, 1000 epochs. Views: crop area (0.08, 1), flip, colour
jitter with probability 0.8, grayscale 0.2, no blur (32 px), solarize 0 / 0.2 (view 1 / view 2).

Where jssl differs: the jitter's saturation is 0.4, not 0.2 (``jitter_strength`` 0.5 sets
brightness, contrast, saturation to 0.4 and hue to 0.1 together); LARS without solo-learn's
``clip_lr``; float32 instead of 16-bit mixed precision; the warm-up starts from 0, not 3e-5; the
crop's area is floored at 10% of the image (SimCLR's sampler). See jssl/tasks/byol.py.

Needs a prepared TFDS cifar10 (`tfds build cifar10 --data_dir DIR` on a machine with network):

  jssl pretrain --config configs/byol_cifar10.py --workdir runs/byol_cifar10 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()  # LARS, ResNet-18 CIFAR stem: see jssl/config.py
  config.task = "byol"
  config.data.source = "tfds:cifar10"
  config.data.image_size = 32
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.0
  config.augment.view2.solarize_prob = 0.2
  config.model.head_hidden_dim = 4096
  config.model.head_out_dim = 256
  config.model.head_layers = 2
  config.byol.predictor_hidden_dim = 4096
  config.byol.base_momentum = 0.99
  config.optim.name = "lars"
  config.optim.base_lr = 1.0
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-5
  config.optim.trust_coefficient = 0.02
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 256
  config.train.epochs = 1000.0
  config.train.log_every = 50
  config.train.checkpoint_every_steps = 1000
  return config
