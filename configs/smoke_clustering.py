"""Seconds-long runs of the clustering tasks on synthetic data with a tiny encoder. For tests.

jssl pretrain --config configs/smoke_clustering.py:swav --workdir /tmp/jssl-swav
jssl pretrain --config configs/smoke_clustering.py:deepcluster --workdir /tmp/jssl-deepcluster
"""

from jssl.config import default_config


def get_config(task="swav"):
  if task not in ("swav", "deepcluster"):
    raise ValueError(f"configs/smoke_clustering.py:{task}: choose swav or deepcluster.")
  config = default_config()
  config.task = task
  config.data.source = "synthetic"
  config.data.image_size = 16
  config.data.synthetic_shape = (16, 16, 3)
  config.data.synthetic_examples = 256
  config.data.shuffle_buffer = 256
  config.augment.blur_prob = 0.0
  config.augment.crop_area = (0.4, 1.0)
  config.augment.jitter_strength = 0.2
  # One device: end-to-end tests run fast; the sharding tests build their own 1- and 8-device meshes.
  config.parallel.devices = 1
  config.model.encoder = "resnet_tiny"
  config.model.head_hidden_dim = 32
  config.model.head_out_dim = 16
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
  # SwAV: a few prototypes per class, two 8 px small crops (multi-crop on), prototypes frozen
  # for the first 2 steps.
  config.swav.num_prototypes = 30
  config.swav.freeze_prototypes_steps = 2
  if task == "swav":
    config.augment.local_crops = 2
    config.augment.local_crop_size = 8
  # DeepCluster: k-means of the 256 training images into 20 clusters every 8 steps (twice);
  # a higher learning rate so that the new classifier visibly learns in 8 steps.
  config.deepcluster.num_clusters = 20
  config.deepcluster.kmeans_iterations = 10
  config.deepcluster.recluster_every_steps = 8
  config.deepcluster.pca_dim = 32
  if task == "deepcluster":
    config.optim.base_lr = 1e-2
  return config
