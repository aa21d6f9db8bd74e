"""Seconds-long runs of the reconstruction tasks on crops of scikit-image's photos. For tests.

jssl pretrain --config configs/smoke_reconstruction.py:inpainting --workdir /tmp/jssl-inpaint
(or :colorization, :superres)
"""

from jssl.config import default_config


def get_config(task="superres"):
  config = default_config()
  config.task = task
  config.data.source = "sample_photos"
  config.data.photo_crop_size = 32
  config.data.photo_crops = 256
  config.data.image_size = 16
  config.data.shuffle_buffer = 256
  config.augment.crop_area = (0.5, 1.0)
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "resnet_tiny"
  config.colorization.loss = "classification"  # the richer path; the demo uses it too
  config.optim.name = "adamw"
  config.optim.base_lr = 3e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
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
  if task == "superres":
    # It starts at the bicubic baseline, a strong one: beating it takes ~75 steps (measured).
    config.train.steps, config.train.eval_every = 96, 48
  return config
