"""The errors jssl raises when what it was asked to do cannot work as asked.

Each says what is wrong and how to fix it; the CLI prints the message alone and exits with
status 2. Any other exception is a bug or an environment problem and keeps its traceback
(``jssl --debug`` keeps the traceback for these too). Each subclasses the built-in error it
refines, so ``except ValueError`` and friends keep catching them.
"""


class JsslError(Exception):
  """Base of every error about the user's request: config, paths, data, checkpoints."""


class ConfigError(JsslError, ValueError):
  """A config field, argument or file content that cannot work (names the field and a fix)."""


class UnknownKeyError(JsslError, KeyError):
  """A config key that does not exist (names the valid keys)."""

  def __str__(self):  # KeyError's own str() quotes the message.
    return str(self.args[0]) if self.args else ""


class MissingError(JsslError, FileNotFoundError):
  """A file, folder, dataset or checkpoint that is not where it was looked for."""


class CheckpointError(JsslError, OSError):
  """A checkpoint that cannot be written, or read back (names the step and the path)."""
