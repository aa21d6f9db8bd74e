"""Seconds-long SimCLR run on synthetic data with a tiny encoder; logs every step. For tests.

jssl pretrain --config configs/smoke.py --workdir /tmp/jssl-smoke
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.data.source = "synthetic"
  config.data.image_size = 16
  config.data.synthetic_shape = (16, 16, 3)
  config.data.synthetic_examples = 256
  config.data.shuffle_buffer = 256
  config.augment.blur_prob = 0.0
  # Mild views of 16 px images, so that 24 steps visibly lower the loss.
  config.augment.crop_area = (0.4, 1.0)
  config.augment.jitter_strength = 0.2
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "resnet_tiny"
  config.model.width_multiplier = 1.0
  config.model.head_hidden_dim = 32
  config.model.head_out_dim = 16
  config.optim.name = "adamw"
  config.optim.base_lr = 1e-2
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.0
  config.train.batch_size = 32
  config.train.steps = 24
  config.train.log_every = 1
  config.train.checkpoint_every_steps = 4
  config.eval.batch_size = 128
  config.eval.linear_l2_grid = (1e-4, 1e-2)
  config.eval.linear_max_iter = 200
  config.eval.knn_ks = (20,)
  return config
