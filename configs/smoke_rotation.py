"""Seconds-long RotNet run on synthetic images with a tiny encoder. For tests.

jssl pretrain --config configs/smoke_rotation.py --workdir /tmp/jssl-rotation
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "rotation"
  # Synthetic images are noisy class templates: which way up a template is shows in 16 steps
  # (rotation accuracy 0.28 -> 0.40, measured); 16 px crops of photos stay near chance that long.
  config.data.source = "synthetic"
  config.data.synthetic_shape = (16, 16, 3)
  config.data.synthetic_examples = 256
  config.data.image_size = 16
  config.data.shuffle_buffer = 256
  config.augment.crop_area = (0.5, 1.0)
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "resnet_tiny"
  config.rotation.head_hidden_dim = 32
  config.optim.name = "adamw"
  config.optim.base_lr = 3e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.0
  config.train.batch_size = 32
  config.train.steps = 16
  config.train.log_every = 1
  config.train.checkpoint_every_steps = 8
  config.eval.batch_size = 64
  config.eval.linear_l2_grid = (1e-4, 1e-2)
  config.eval.linear_max_iter = 200
  config.eval.knn_ks = (20,)
  return config
