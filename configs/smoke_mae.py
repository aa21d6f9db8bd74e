"""A seconds-long MAE run: a 2-block ViT-Tiny on 16 px crops of scikit-image's photos. For tests.

  jssl pretrain --config configs/smoke_mae.py --workdir /tmp/jssl-mae

16 px images in 4 px patches make 16 tokens, of which MAE's 75% mask leaves 4 visible.
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "mae"
  config.data.source = "sample_photos"
  config.data.photo_crop_size = 32
  config.data.photo_crops = 256
  config.data.image_size = 16
  config.data.shuffle_buffer = 256
  config.augment.crop_area = (0.5, 1.0)  # the paper's (0.2, 1) leaves too little of a 32 px crop
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "vit_tiny"
  config.model.depth = 2
  config.model.patch_size = 4
  config.optim.name = "adamw"
  config.optim.base_lr = 1.5e-3  # the paper's base lr; warm-up and batch scaling matter little over 16 steps
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 0.05  # the paper's
  config.optim.b2 = 0.95  # the paper's
  config.optim.warmup_epochs = 0.0
  config.train.batch_size = 32
  config.train.steps = 16
  config.train.log_every = 1
  config.train.eval_every = 8
  config.train.checkpoint_every_steps = 8
  config.eval.batch_size = 64
  config.eval.linear_l2_grid = (1e-4, 1e-2)
  config.eval.linear_max_iter = 200
  config.eval.knn_ks = (20,)
  config.eval.holdout_examples = 32
  return config
