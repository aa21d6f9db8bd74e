"""Seconds-long Shuffle and Learn run (task=frame_order) on a tiny moving Fashion-MNIST. For tests.

  jssl pretrain --config configs/smoke_frame_order.py --workdir /tmp/jssl-frame-order
  jssl eval --workdir /tmp/jssl-frame-order   # probes on Fashion-MNIST images (eval.source)

Needs the Fashion-MNIST IDX files (data.dir, default /usr/share/datasets/fashion-mnist), for
both the moving objects and the evaluation images. It checks that everything runs, not that
the order is learnt: the only cue here is where the objects are, a few pixels apart between
a tuple's frames, which features pooled over the whole frame (the ResNet's) barely show.
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "frame_order"
  config.data.source = "moving_fashion_mnist"
  config.data.video_clips = 256
  config.data.clip_frames = 8
  config.data.clip_size = 48  # 20 pixels of room for the 28 x 28 objects to move in
  config.data.video_objects = 2
  config.data.image_size = 24
  config.data.shuffle_buffer = 256
  config.frame_order.head_hidden_dim = 64
  config.frame_order.crop_area = (0.6, 1.0)
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "resnet_tiny"
  config.optim.name = "adamw"
  config.optim.base_lr = 3e-3
  config.optim.lr_scaling = "none"
  config.optim.weight_decay = 1e-4
  config.optim.warmup_epochs = 0.0
  config.train.batch_size = 32
  config.train.steps = 16
  config.train.log_every = 1
  config.train.checkpoint_every_steps = 8
  # The encoder sees frames, but it is evaluated on images: Fashion-MNIST's own.
  config.eval.source = "fashion_mnist"
  config.eval.max_train_examples = 512
  config.eval.batch_size = 128
  config.eval.linear_l2_grid = (1e-4, 1e-2)
  config.eval.linear_max_iter = 200
  config.eval.knn_ks = (20,)
  return config
