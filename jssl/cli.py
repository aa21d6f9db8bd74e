"""``jssl pretrain | eval``: a thin shell over jssl.train and jssl.evaluate."""

import argparse
import logging
import sys


def _setup_logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                      datefmt="%H:%M:%S")
  for noisy in ("absl", "orbax", "jax._src", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="jssl", description="Self-supervised pretraining in JAX.")
  commands = parser.add_subparsers(dest="command", required=True)
  pretrain = commands.add_parser("pretrain", help="pretrain an encoder",
                                 epilog="Override any config field with --config.section.key=value.")
  pretrain.add_argument("--config", required=True, help="a Python config file with get_config()")
  pretrain.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here")
  evaluate = commands.add_parser("eval", help="linear probe and kNN of a pretrained encoder")
  evaluate.add_argument("--workdir", required=True)
  evaluate.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  args, rest = parser.parse_known_args(argv)
  _setup_logging()

  # Imported here so that `jssl --help` answers without loading JAX and TensorFlow.
  from jssl import config as config_lib  # noqa: PLC0415

  try:
    if args.command == "pretrain":
      from jssl.train import pretrain as run_pretrain  # noqa: PLC0415
      config = config_lib.apply_overrides(config_lib.load_config(args.config), rest)
      run_pretrain(config, args.workdir)
    else:
      if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
      from jssl.evaluate import evaluate as run_eval  # noqa: PLC0415
      run_eval(args.workdir, step=args.step)
  except (ValueError, KeyError, FileNotFoundError) as error:
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"jssl {args.command}: error: {message}", file=sys.stderr)
    return 2
  except RuntimeError as error:
    if type(error).__name__ != "NonFiniteError":
      raise
    print(f"jssl {args.command}: error: {error}", file=sys.stderr)
    return 3
  return 0


if __name__ == "__main__":
  sys.exit(main())
