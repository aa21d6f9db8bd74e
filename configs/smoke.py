"""Seconds-long runs of every task on tiny data with a tiny encoder, logging every step. For tests.

  jssl pretrain --config configs/smoke.py --workdir /tmp/jssl-smoke             # SimCLR
  jssl pretrain --config configs/smoke.py:swav --workdir /tmp/jssl-swav         # any task by name

Every task gets the same tiny run (``tiny_run``: 256 synthetic 16 px images, a ResNet-tiny on
one device, AdamW, 16 steps of 32); the few that need other data or settings change them in
``get_config``. A task with no entry here runs with the tiny run alone.
"""

from jssl.config import default_config


def tiny_run(config):
  """What every smoke run shares: tiny data, model, optimizer, run and evaluation."""
  config.data.source = "synthetic"
  config.data.image_size = 16
  config.data.synthetic_shape = (16, 16, 3)
  config.data.synthetic_examples = 256
  config.data.shuffle_buffer = 256
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
  config.eval.batch_size = 64
  config.eval.linear_l2_grid = (1e-4, 1e-2)
  config.eval.linear_max_iter = 200
  config.eval.knn_ks = (20,)
  config.eval.pictures = False  # seconds each, in every test that evaluates; tested on their own
  return config


def _views(config):
  """Mild two-view augmentation of 16 px images and a small projection head (simclr, swav)."""
  config.augment.crop_area = (0.4, 1.0)
  config.augment.jitter_strength = 0.2
  config.model.head_hidden_dim = 32
  config.model.head_out_dim = 16


def _photos(config):
  """16 px crops of scikit-image's photos, scored on held-out images every 8 steps."""
  config.data.source = "sample_photos"
  config.data.photo_crop_size = 32
  config.data.photo_crops = 256
  config.augment.crop_area = (0.5, 1.0)
  config.train.eval_every = 8
  config.eval.holdout_examples = 32


def get_config(task="simclr"):
  config = tiny_run(default_config())
  config.task = task
  if task == "simclr":
    _views(config)
    # 24 steps at a higher rate, so that the loss visibly falls; checkpoints every 4 for resume tests.
    config.optim.base_lr = 1e-2
    config.train.steps = 24
    config.train.checkpoint_every_steps = 4
    config.eval.batch_size = 128
  elif task == "swav":
    _views(config)
    # A few prototypes per class, two 8 px small crops (multi-crop on), prototypes frozen for 2 steps.
    config.swav.num_prototypes = 30
    config.swav.freeze_prototypes_steps = 2
    config.augment.local_crops = 2
    config.augment.local_crop_size = 8
  elif task == "byol":
    _views(config)
    # The paper's asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2) and a 32-wide predictor.
    config.augment.view1.blur_prob = 1.0
    config.augment.view2.blur_prob = 0.1
    config.augment.view2.solarize_prob = 0.2
    config.byol.predictor_hidden_dim = 32
  elif task == "simsiam":
    _views(config)
    # The paper's 3-layer projector (hidden = out, here 16) and an 8-wide predictor bottleneck.
    config.model.head_hidden_dim = 16
    config.model.head_layers = 3
    config.simsiam.predictor_hidden_dim = 8
  elif task == "moco_v3":
    _views(config)
    config.moco_v3.predictor_hidden_dim = 32
    config.moco_v3.temperature = 0.2  # (ResNet-18 on CIFAR, solo-learn's; the paper's ResNet-50: 1.0)
  elif task in ("barlow_twins", "vicreg"):
    _views(config)
    config.model.head_layers = 3  # the papers' 3-layer projector, here 32-32-16
  elif task == "dino":
    # A tiny DINO head (32 -> 16, 64 outputs) and two 8 px local crops. An epoch is 8 steps: the
    # last layer is frozen for the first 2, the teacher temperature warms up over the first 8.
    config.augment.crop_area = (0.4, 1.0)
    config.augment.jitter_strength = 0.2
    config.augment.local_crops = 2
    config.augment.local_crop_size = 8
    config.dino.head_hidden_dim = 32
    config.dino.bottleneck_dim = 16
    config.dino.out_dim = 64
    config.dino.freeze_last_layer_epochs = 0.25
    config.dino.warmup_teacher_temperature_epochs = 1.0
  elif task == "deepcluster":
    # k-means of the 256 training images into 20 clusters every 8 steps (twice); a higher
    # learning rate so that the new classifier visibly learns in 8 steps.
    config.deepcluster.num_clusters = 20
    config.deepcluster.kmeans_iterations = 10
    config.deepcluster.recluster_every_steps = 8
    config.deepcluster.pca_dim = 32
    config.augment.crop_area = (0.4, 1.0)
    config.optim.base_lr = 1e-2
  elif task == "rotation":
    # Synthetic images are noisy class templates: which way up a template is shows in 16 steps
    # (rotation accuracy 0.28 -> 0.40, measured); 16 px crops of photos stay near chance that long.
    config.augment.crop_area = (0.5, 1.0)
    config.rotation.head_hidden_dim = 32
  elif task == "mae":
    # 16 px images in 4 px patches make 16 tokens, of which MAE's 75% mask leaves 4 visible.
    _photos(config)
    config.model.encoder = "vit_tiny"
    config.model.depth = 2
    config.model.patch_size = 4
    config.optim.base_lr = 1.5e-3  # the paper's base lr; warm-up and batch scaling matter little over 16 steps
    config.optim.weight_decay = 0.05  # the paper's
    config.optim.b2 = 0.95  # the paper's
  elif task in ("colorization", "superres", "inpainting"):
    _photos(config)
    if task == "colorization":
      config.colorization.loss = "classification"  # the richer path; the demo uses it too
    if task == "inpainting":
      config.inpainting.overlap_pixels = 1  # the paper's 4 px ring is for 128 px images
    if task == "superres":
      # It starts at the bicubic baseline, a strong one: beating it takes ~75 steps (measured).
      config.train.steps, config.train.eval_every = 96, 48
  elif task == "frame_order":
    # A tiny moving Fashion-MNIST (needs the IDX files in data.dir, default
    # /usr/share/datasets/fashion-mnist). It checks that everything runs, not that the order is
    # learnt: the only cue is where the objects are, a few pixels apart between a tuple's frames.
    config.data.source = "moving_fashion_mnist"
    config.data.video_clips = 256
    config.data.clip_frames = 8
    config.data.clip_size = 48  # 20 pixels of room for the 28 x 28 objects to move in
    config.data.video_objects = 2
    config.data.image_size = 24
    config.frame_order.head_hidden_dim = 64
    config.frame_order.crop_area = (0.6, 1.0)
    # The encoder sees frames, but it is evaluated on images: Fashion-MNIST's own.
    config.eval.source = "fashion_mnist"
    config.eval.max_train_examples = 512
    config.eval.batch_size = 128
  return config
