"""SimSiam's ImageNet recipe (Chen & He 2021, Sec. 3 "Baseline settings"; facebookresearch/simsiam):
ResNet-50 (ImageNet stem) at 224 px, projector 2048 / 2048 in 3 layers ending in batch norm
without affine, predictor bottleneck 512, SGD (momentum 0.9) with lr 0.05 x B / 256 at batch 512,
weight decay 1e-4, cosine decay without warm-up, 100 epochs; the predictor's learning rate fixed
(the reference README's ``--fix-pred-lr``: ``simsiam.fix_predictor_lr``; the paper's Table 1(d),
68.1% vs 67.7% with it decayed). Views (MoCo v2's): crop area (0.2, 1), flip, colour jitter
(0.4, 0.4, 0.4, 0.1) with probability 0.8, grayscale 0.2, Gaussian blur (sigma 0.1-2) with
probability 0.5.

Where jssl differs: weight decay only on kernels (the reference decays every parameter). See
jssl/tasks/simsiam.py.

Needs a prepared TFDS imagenet2012 in DIR:

  jssl pretrain --config configs/simsiam_imagenet.py --workdir gs://BUCKET/simsiam_r50 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "simsiam"
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.2, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.blur_prob = 0.5
  config.model.encoder = "resnet50"
  config.model.stem = "imagenet"
  config.model.head_hidden_dim = 2048
  config.model.head_out_dim = 2048
  config.model.head_layers = 3
  config.simsiam.predictor_hidden_dim = 512
  config.simsiam.fix_predictor_lr = True
  config.optim.name = "sgd"
  config.optim.base_lr = 0.05
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1e-4
  config.optim.momentum = 0.9
  config.optim.warmup_epochs = 0.0
  config.train.batch_size = 512
  config.train.epochs = 100.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024
  return config
