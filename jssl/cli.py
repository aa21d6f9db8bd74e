"""``jssl pretrain | eval | export | finetune | compile-check``: a thin shell over the modules that do the work."""

import argparse
import logging
import sys


def _setup_logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
  for noisy in ("absl", "orbax", "jax._src", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="jssl", description="Self-supervised pretraining in JAX.")
  commands = parser.add_subparsers(dest="command", required=True)
  pretrain = commands.add_parser(
    "pretrain", help="pretrain an encoder", epilog="Override any config field with --config.section.key=value."
  )
  pretrain.add_argument("--config", required=True, help="a Python config file with get_config()")
  pretrain.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here")
  pretrain.add_argument(
    "--restart",
    action="store_true",
    help="start afresh: first move the run in WORKDIR into WORKDIR/previous/<time>/ (nothing is deleted)",
  )
  pretrain.add_argument(
    "--coordinator", default=None, help="multi-process: HOST:PORT of process 0 (TPU pods and Slurm are detected)"
  )
  pretrain.add_argument("--num-processes", type=int, default=None)
  pretrain.add_argument("--process-id", type=int, default=None)
  evaluate = commands.add_parser(
    "eval",
    help="linear probe and kNN of a pretrained encoder",
    epilog="Change the run's eval settings with --config.eval.key=value; --config.data.dir=DIR says where the "
    "probes' data is now (the encoder needs only the workdir).",
  )
  evaluate.add_argument("--workdir", required=True)
  evaluate.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  export = commands.add_parser("export", help="write the encoder alone, for transfer")
  export.add_argument("--workdir", required=True)
  export.add_argument("--out", required=True, help="directory to write (must be new or empty)")
  export.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  export.add_argument(
    "--format",
    choices=("orbax", "npz", "torch"),
    default="orbax",
    help="orbax/npz: for jssl.load_encoder; torch: safetensors with torchvision (ResNet) or timm (ViT) names",
  )
  export.add_argument("--overwrite", action="store_true", help="replace an existing export in --out")
  export.add_argument(
    "--network",
    default=None,
    help="which encoder, for tasks with two (byol: online | target, moco_v3: base | momentum, "
    "dino: teacher | student); default: the one the paper evaluates",
  )
  finetune = commands.add_parser(
    "finetune",
    help="train a classifier on an exported encoder",
    epilog="Override any config field with --config.section.key=value.",
  )
  finetune.add_argument("--encoder", required=True, help="a `jssl export` directory")
  finetune.add_argument("--config", required=True, help="e.g. configs/finetune_fashion_mnist.py")
  finetune.add_argument("--workdir", default=None, help="default: ENCODER/finetune_<mode>")
  check = commands.add_parser(
    "compile-check",
    help="compile the train step for a device count you lack",
    epilog="Override any config field with --config.section.key=value.",
  )
  check.add_argument("--config", required=True)
  check.add_argument("--topology", default=None, help="TPU slice, e.g. v4-64, v5e-16 (sets the device count)")
  check.add_argument("--devices", type=int, default=None, help="device count, instead of --topology")
  for command in commands.choices.values():
    command.add_argument("--debug", action="store_true", help="show the traceback of every error")
  args, rest = parser.parse_known_args(argv)
  _setup_logging()

  # Imported here so that `jssl --help` answers without loading JAX and TensorFlow.
  from jssl import config as config_lib  # noqa: PLC0415
  from jssl.errors import JsslError  # noqa: PLC0415

  try:
    if args.command == "compile-check":
      from jssl.compile_check import run as run_check  # noqa: PLC0415

      run_check(args.config, rest, topology=args.topology, devices=args.devices)
      return 0
    if args.command in ("pretrain", "finetune"):
      config = config_lib.apply_overrides(config_lib.load_config(args.config), rest)
      config_lib.validate(config)  # before any data is read or file written
    elif rest and args.command != "eval":
      parser.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.command == "pretrain":
      from jssl import parallel  # noqa: PLC0415
      from jssl.train import pretrain as run_pretrain  # noqa: PLC0415

      parallel.initialize_distributed(
        coordinator=args.coordinator, num_processes=args.num_processes, process_id=args.process_id
      )
      run_pretrain(config, args.workdir, restart=args.restart)
    elif args.command == "eval":
      from jssl.evaluate import evaluate as run_eval  # noqa: PLC0415

      run_eval(args.workdir, step=args.step, overrides=rest)
    elif args.command == "export":
      from jssl.export import export_main  # noqa: PLC0415

      export_main(
        args.workdir, args.out, step=args.step, format=args.format, overwrite=args.overwrite, network=args.network
      )
    else:
      import pathlib  # noqa: PLC0415

      from jssl.finetune import finetune as run_finetune  # noqa: PLC0415

      workdir = args.workdir or pathlib.Path(args.encoder) / f"finetune_{config.finetune.mode}"
      run_finetune(config, encoder_dir=args.encoder, workdir=workdir)
  except Exception as error:
    # A request that cannot work as asked (JsslError) is one line; a run stopped by a
    # non-finite loss says so; anything else is a bug and keeps its traceback.
    if args.debug or not isinstance(error, JsslError) and type(error).__name__ != "NonFiniteError":
      raise
    print(f"jssl {args.command}: error: {error}", file=sys.stderr)
    return 2 if isinstance(error, JsslError) else 3
  return 0


if __name__ == "__main__":
  sys.exit(main())
