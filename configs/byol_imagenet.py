"""BYOL's ImageNet recipe (Grill et al. 2020, Sec. 3.2 and appendix B/C): ResNet-50 (ImageNet
stem) at 224 px, projector 4096 / 256, predictor 4096, target momentum 0.996 -> 1 (cosine), LARS
(trust coefficient 1e-3, momentum 0.9) with lr 0.2 x B / 256 at batch 4096, weight decay 1.5e-6
(biases and batch norm excluded from it and from the trust ratio), 10 warm-up epochs then
cosine, 1000 epochs. Views: crop area (0.08, 1), flip, colour jitter with probability 0.8,
grayscale 0.2, Gaussian blur (sigma 0.1-2, kernel ~10% of the side) with probability 1.0 / 0.1
and solarize 0 / 0.2 (view 1 / view 2).

Where jssl differs: the jitter's saturation is 0.4, not 0.2 (``jitter_strength`` 0.5); the
crop's area is floored at 10% of the image (SimCLR's sampler). See jssl/tasks/byol.py. The
paper's 300-epoch run uses lr 0.3 and weight decay 1e-6:
--config.train.epochs=300 --config.optim.base_lr=0.3 --config.optim.weight_decay=1e-6.

Needs a prepared TFDS imagenet2012 in DIR:

  jssl pretrain --config configs/byol_imagenet.py --workdir gs://BUCKET/byol_r50 --config.data.dir=DIR
"""

from jssl.config import default_config


def get_config():
  config = default_config()
  config.task = "byol"
  config.data.source = "tfds:imagenet2012"
  config.data.eval_split = "validation"
  config.data.image_size = 224
  config.data.grayscale_to_rgb = False
  config.augment.crop_area = (0.08, 1.0)
  config.augment.jitter_strength = 0.5
  config.augment.view1.blur_prob = 1.0
  config.augment.view2.blur_prob = 0.1
  config.augment.view2.solarize_prob = 0.2
  config.model.encoder = "resnet50"
  config.model.stem = "imagenet"
  config.model.head_hidden_dim = 4096
  config.model.head_out_dim = 256
  config.model.head_layers = 2
  config.byol.predictor_hidden_dim = 4096
  config.byol.base_momentum = 0.996
  config.optim.name = "lars"
  config.optim.base_lr = 0.2
  config.optim.lr_scaling = "linear"
  config.optim.weight_decay = 1.5e-6
  config.optim.trust_coefficient = 1e-3
  config.optim.momentum = 0.9
  config.optim.warmup_epochs = 10.0
  config.train.batch_size = 4096
  config.train.epochs = 1000.0
  config.train.log_every = 100
  config.train.checkpoint_every_steps = 2500
  config.eval.batch_size = 1024
  return config
