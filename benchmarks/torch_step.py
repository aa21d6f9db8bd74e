"""Eager PyTorch SimCLR train step on CPU, for comparison with jssl's JAX step.

An optional extra: torch is not a jssl dependency and neither jssl nor its tests
import this script. It imports neither jssl nor TensorFlow (torch and TensorFlow in
one process segfault here), so run it from its own virtual environment:

  python3.11 -m venv /tmp/torchvenv
  /tmp/torchvenv/bin/pip install torch torchvision numpy
  /tmp/torchvenv/bin/python benchmarks/torch_step.py --model resnet18 --image-size 32 --batch 64
  /tmp/torchvenv/bin/python benchmarks/torch_step.py --smoke   # tiny, just checks it runs

(Use a torchvision built for the torch you install: the PyPI torchvision wheels link
the CUDA torch build, so with a "+cpu" torch `import torchvision` fails.)

What one step is: zero_grad, forward of the two views of B images concatenated into
one batch of 2B (so BatchNorm sees 2B, as in jssl), SimCLR projection head, NT-Xent
(temperature 0.5), backward, SGD (momentum 0.9, lr 0.1) update, all in train mode.
Models: torchvision ResNet-18/50 (CIFAR stem at image size <= 64: 3x3 stride-1 conv1,
no max-pool) or a ViT-Tiny (12 layers, 3 heads, width 192, patch 4 at <= 64 px else
16, CLS token after the final LayerNorm), each with fc/heads removed and the head
Linear(F, 2048) -> BN -> ReLU -> Linear(2048, 128) -> BN, as jssl's. Input is one random
tensor made once (no data pipeline is measured). Each step is timed with
time.perf_counter; the median over --steps steps after --warmup steps is reported,
and likewise a forward-only pass (train mode, no grad: encoder, head and loss).

The last line of stdout is one JSON object; images_per_s counts source images
(each gives two views), i.e. batch / step_s.
"""

import argparse
import json
import platform
import statistics
import sys
import time

try:
  import torch
  import torch.nn.functional as F
  import torchvision
  from torch import nn
except ImportError as error:  # pragma: no cover - only without the optional extra
  sys.exit(f"torch_step.py needs torch and torchvision ({error}); see the docstring for a side venv.")

FEATURES = {"resnet18": 512, "resnet50": 2048, "vit_tiny": 192}


def encoder(name: str, image_size: int) -> nn.Module:
  """Backbone mapping [N, 3, S, S] images to [N, F] features."""
  if name == "vit_tiny":
    vit = torchvision.models.VisionTransformer(
      image_size=image_size,
      patch_size=4 if image_size <= 64 else 16,
      num_layers=12,
      num_heads=3,
      hidden_dim=192,
      mlp_dim=768,
    )
    vit.heads = nn.Identity()  # forward() returns the CLS token after the encoder's final LayerNorm
    return vit
  resnet = getattr(torchvision.models, name)()
  if image_size <= 64:  # CIFAR stem, as in SimCLR's CIFAR experiments
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    resnet.maxpool = nn.Identity()
  resnet.fc = nn.Identity()
  return resnet


def projection_head(features: int) -> nn.Module:
  """jssl's ProjectionHead: Linear -> BN -> ReLU -> Linear -> BN (no shift), bias-free Linears."""
  last_bn = nn.BatchNorm1d(128)
  last_bn.bias.requires_grad_(False)  # SimCLR v2's last BN has a scale but no shift
  return nn.Sequential(
    nn.Linear(features, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(), nn.Linear(2048, 128, bias=False), last_bn
  )


def ntxent(z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
  """Mean NT-Xent over 2B anchors; rows i and i + B of ``z`` are two views of one image."""
  n = z.shape[0]
  z = F.normalize(z, dim=1)
  logits = (z @ z.T) / temperature
  logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), -1e9)
  positives = (torch.arange(n, device=z.device) + n // 2) % n
  return F.cross_entropy(logits, positives)


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def timed(fn, steps: int, warmup: int) -> list[float]:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=sorted(FEATURES), default="resnet18")
  parser.add_argument("--image-size", type=int, default=32)
  parser.add_argument("--batch", type=int, default=64, help="source images per step (2x views go through)")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
  parser.add_argument("--channels-last", action="store_true", help="model and input in torch.channels_last")
  parser.add_argument("--smoke", action="store_true", help="resnet18, 16 px, batch 4, 2 steps, 1 warm-up")
  args = parser.parse_args()
  if args.smoke:
    args.model, args.image_size, args.batch, args.steps, args.warmup = "resnet18", 16, 4, 2, 1
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(0)

  model = nn.Sequential(encoder(args.model, args.image_size), projection_head(FEATURES[args.model])).train()
  images = torch.rand(2 * args.batch, 3, args.image_size, args.image_size)  # views a then views b
  if args.channels_last:
    model = model.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = ntxent(model(images))
    loss.backward()
    optimizer.step()

  def forward():
    with torch.no_grad():
      ntxent(model(images))

  step_times = timed(step, args.steps, args.warmup)
  forward_times = timed(forward, args.steps, args.warmup)
  step_s = statistics.median(step_times)
  print(
    json.dumps(
      {
        "framework": "torch",
        "torch_version": torch.__version__,
        "model": args.model,
        "image_size": args.image_size,
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "step_s": step_s,
        "step_s_all": [round(t, 4) for t in step_times],
        "images_per_s": args.batch / step_s,
        "forward_s": statistics.median(forward_times),
        "cpu": cpu_name(),
      }
    )
  )


if __name__ == "__main__":
  main()
