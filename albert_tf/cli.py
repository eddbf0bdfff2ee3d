"""The command-line layer: every option of the entry points as an absl flag, declared once.

The library never reads flags; this module and the entry points (run_*.py, `python -m
albert_tf.<tool>`) do. An option is declared in one place:

- a field of a settings dataclass in `albert_tf.settings` is the flag of its name, default
  and help; `settings_options(SettingsClass)` lists them and `settings_from_flags` builds the
  dataclass back from the parsed flags by name;
- an option that is not a setting (the model files, the strategy and TPU flags, `--debug`) is
  a row of `OPTIONS` below, picked by name with `options(...)`;
- a tool's own options (export, convert, ...) are a table of `Option`s in its module.

An entry point lists its options, `define`s them and runs under `run`, which adds `--debug`,
marks the required flags, lists the flags in `--help`/`--helpshort` and turns flag errors
into one `ERROR:` line. The original scripts' flags keep their names, meanings and defaults.
New ones:

    --distribution_strategy  one_device | mirrored | multi_worker_mirrored | tpu
    --num_gpus               local GPUs to use (default: all; 0: the CPU)
    --num_cpu_devices        split the CPU into N logical devices (try replication on a CPU)
    --mixed_precision        none | bf16 | fp16 (fp16 with dynamic loss scaling)
    --jit_compile            XLA-compile the forward and backward pass (run_pretraining's
                             --jit_scope=step: the whole one-replica train step)
    --gradient_accumulation_steps, --bias_correction, --log_steps, --seed, --peak_tflops
"""

import contextlib
import dataclasses
import re
import sys

from absl import app
from absl import flags
from absl import logging

from albert_tf import files
from albert_tf import settings as settings_lib
from albert_tf import training


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option.

    Attributes:
      name: the flag's name.
      default: its default (None: unset).
      help: what it does and why one would change it (`--help`).
      kind: the value's type: str, int, float, bool, or list/tuple (comma-separated).
      choices: the allowed values (an enum flag), or None.
      owner: the settings dataclass whose field `field` the flag fills, or None.
      field: that field's name (it may differ from `name`, e.g. run_race's
        --num_keep_checkpoint fills `keep_checkpoint_max`).
    """

    name: str
    default: object
    help: str
    kind: type = str
    choices: tuple = None
    owner: type = None
    field: str = None

    def changed(self, **changes):
        """This option with some of `name`, `default`, `help` changed (a script whose flag
        of the same meaning has another default or name, e.g. run_squad's
        --max_seq_length=384)."""
        return dataclasses.replace(self, **changes)


def _shared(name, kind):
    default, help_ = settings_lib.SHARED[name]
    return Option(name, None if default is dataclasses.MISSING else default, help_, kind)


# The options that are not settings, each declared once; entry points pick them by name.
OPTIONS = {option.name: option for option in (
    Option("albert_config_file", None,
           "The config JSON of the ALBERT model (its architecture)."),
    Option("albert_hub_module_handle", None,
           "Folder of a downloaded ALBERT TF-Hub module to start from: its weights (unless "
           "--init_checkpoint is set), its SentencePiece model (as the original, it replaces "
           "--spm_model_file) and its config (unless --albert_config_file is set)."),
    _shared("init_checkpoint", str), _shared("output_dir", str),
    _shared("spm_model_file", str), _shared("vocab_file", str),
    _shared("do_lower_case", bool),
    Option("use_einsum", True,
           "Original flag (einsum or matmul in dense layers, for TFLite); accepted for "
           "compatibility: our layers give the same numbers either way.", bool),
    # The original's TPU flags.
    Option("use_tpu", False,
           "Train on a TPU (same as --distribution_strategy=tpu); also looks embeddings up "
           "with one-hot matmuls, as the original does on TPUs.", bool),
    Option("tpu_name", None, "The Cloud TPU: a name, or a grpc://ip.address.of.tpu:8470 URL."),
    Option("tpu_zone", None,
           "[Optional] GCE zone of the Cloud TPU (detected from metadata if unset)."),
    Option("gcp_project", None,
           "[Optional] GCP project of the Cloud TPU (detected from metadata if unset)."),
    Option("master", None,
           "[Optional] TensorFlow master URL (a TPU address, used if --tpu_name is unset)."),
    Option("num_tpu_cores", 8,
           "TPU cores to use; TPUStrategy uses every core of the TPU it connects to, so this "
           "is only checked against it.", int),
    # Where to run.
    Option("distribution_strategy", "one_device",
           "one_device: the first GPU, else the CPU. mirrored: all local GPUs (or every "
           "--num_cpu_devices CPU device). multi_worker_mirrored: the machines in the "
           "TF_CONFIG environment variable. tpu: the TPU of --tpu_name.",
           choices=training.STRATEGIES),
    Option("num_gpus", None, "Local GPUs to use (default: all visible; 0: run on the CPU).",
           int),
    Option("num_cpu_devices", 1,
           "Split the CPU into this many logical devices, e.g. to try "
           "--distribution_strategy=mirrored without GPUs.", int),
    Option("debug", False,
           "Show the Python traceback of input errors too (they are one line otherwise).",
           bool),
)}
TPU = ("use_tpu", "tpu_name", "tpu_zone", "gcp_project", "master", "num_tpu_cores")
RUNTIME = ("distribution_strategy", "num_gpus", "num_cpu_devices")


def options(*names):
    """The rows `names` of `OPTIONS`."""
    return [OPTIONS[name] for name in names]


def option(name, **changes):
    """The row `name` of `OPTIONS`, with `changes` (e.g. a tool's own help for
    --albert_config_file)."""
    return OPTIONS[name].changed(**changes)


def settings_options(settings_class, skip=(), **changes):
    """The options of a settings dataclass: one per field that is a flag (`settings.option`),
    less the fields in `skip`; `changes` maps a field to a dict of changed attributes
    (`name`, `default`, `help`) for a script whose flag differs."""
    fields = [f for f in dataclasses.fields(settings_class)
              if settings_lib.flag_name(f) and f.name not in skip]
    unknown = set(changes) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{settings_class.__name__} has no flag field {sorted(unknown)}.")
    return [Option(settings_lib.flag_name(f),
                   None if f.default is dataclasses.MISSING else f.default,
                   f.metadata["help"], f.type, f.metadata.get("choices"),
                   settings_class, f.name).changed(**changes.get(f.name, {}))
            for f in fields]


_DEFINERS = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
             bool: flags.DEFINE_bool, list: flags.DEFINE_list, tuple: flags.DEFINE_list}
_DEFINED = []   # the names `define` defined, listed by `run` in the entry point's --help


def define(option_list):
    """Defines the absl flag of every `Option` (see `define_flag` for one defined twice)."""
    for o in option_list:
        if o.choices is not None:
            define_flag(flags.DEFINE_enum, o.name, o.default, list(o.choices), o.help)
        else:
            define_flag(_DEFINERS[o.kind], o.name, o.default, o.help)
        _DEFINED.append(o.name)


def define_flag(definer, name, *args, **kwargs):
    """`definer(name, default, ...)`; if the flag exists (entry points sharing a process,
    e.g. to work on `ram://`), its default becomes this one: the last entry point to define
    its flags runs with its own defaults (run_classifier's `--learning_rate`, not
    run_pretraining's). A value given on the command line is kept."""
    if name not in flags.FLAGS:
        definer(name, *args, **kwargs)
        return
    if flags.FLAGS[name].present:
        return
    default = args[0] if args else kwargs.get("default")
    try:
        flags.FLAGS.set_default(name, default)
    except (flags.Error, ValueError) as error:
        raise ValueError(f"--{name} is defined twice with incompatible defaults: {error}") from None


def values_of(option_list, values, owner=None):
    """{field or flag name: parsed value} of the options (of `owner` only, if given); a
    list flag of a tuple field becomes a tuple (empty when unset)."""
    result = {}
    for o in option_list:
        if owner is not None and o.owner is not owner:
            continue
        value = getattr(values, o.name)
        result[o.field or o.name] = tuple(value or ()) if o.kind is tuple else value
    return result


def settings_from_flags(settings_class, option_list, values, **given):
    """`settings_class` from the parsed flags of its options in `option_list`, by name;
    `given` sets the fields a script derives (e.g. `use_one_hot_embeddings`)."""
    return settings_class(**{**values_of(option_list, values, settings_class), **given})


def on_tpu(values):
    """Whether the flags ask for a TPU (`--use_tpu` or `--distribution_strategy=tpu`)."""
    return getattr(values, "use_tpu", False) or values.distribution_strategy == "tpu"


def _tpu_shapes(values):
    """On a TPU every batch keeps the static --max_seq_length unless --length_buckets is
    given: a training batch cut to its bucket has a length known only at run time, and TPU
    compilation needs static shapes."""
    given = "length_buckets" in flags.FLAGS and flags.FLAGS["length_buckets"].present
    if on_tpu(values) and not given:
        logging.info("On a TPU: --length_buckets=none (every batch padded to "
                     "--max_seq_length) unless --length_buckets is given.")
        return {"length_buckets": "none"}
    return {}


# === Pretraining ========================================================================

PRETRAINING_OPTIONS = (options("albert_config_file", *TPU, *RUNTIME)
                       + settings_options(settings_lib.PretrainingSettings))


def define_pretraining_flags():
    """All flags of run_pretraining.py (the original's plus the new ones)."""
    define(PRETRAINING_OPTIONS)


def pretraining_settings_from_flags(values):
    """`PretrainingSettings` from run_pretraining.py's flag values."""
    return settings_from_flags(settings_lib.PretrainingSettings, PRETRAINING_OPTIONS, values,
                               use_one_hot_embeddings=on_tpu(values), **_tpu_shapes(values))


# === Fine-tuning ========================================================================

def finetuning_options(task_class, skip=(), **changes):
    """The options of a fine-tuning script: the model files, TPU and runtime ones, the
    loop's (`FinetuningSettings`, less `skip`, with `changes`) and the task's
    (`task_class`, changes too)."""
    loop = {name: change for name, change in changes.items()
            if name in settings_lib.FinetuningSettings.__dataclass_fields__}
    task = {name: change for name, change in changes.items() if name not in loop}
    return (options("albert_config_file", "albert_hub_module_handle", *TPU, *RUNTIME)
            + settings_options(settings_lib.FinetuningSettings, skip, **loop)
            + settings_options(task_class, **task))


def finetuning_from_flags(task_class, option_list, values, **loop_values):
    """(FinetuningSettings, task settings, config file) of a fine-tuning script's flags.

    The model files come from `model_files_from_flags`; `loop_values` set the loop's fields
    a script derives (e.g. run_squad's `eval_batch_size` is --predict_batch_size).
    Raises `training.SettingsError` if no config file is given or found.
    """
    init_checkpoint, spm_model_file, config_file = model_files_from_flags(values)
    settings = settings_from_flags(
        settings_lib.FinetuningSettings, option_list, values, init_checkpoint=init_checkpoint,
        use_one_hot_embeddings=on_tpu(values), **{**_tpu_shapes(values), **loop_values})
    task = settings_from_flags(task_class, option_list, values, spm_model_file=spm_model_file)
    if not config_file:
        raise training.SettingsError("Set --albert_config_file, or --albert_hub_module_handle "
                                     "to a module with assets/albert_config.json.")
    return settings, task, config_file


def model_files_from_flags(values):
    """(init checkpoint, SentencePiece model, config file) of the flags, a TF-Hub module
    (`--albert_hub_module_handle`) filling in the checkpoint and config left unset and
    giving its SentencePiece model, as the original's `create_vocab` does."""
    from albert_tf.convert import init_checkpoint_of
    # A Hugging Face folder, keras-hub preset or albert_tf export is converted first.
    init_checkpoint = init_checkpoint_of(values.init_checkpoint) or None
    spm_model_file, config_file = values.spm_model_file, values.albert_config_file
    if init_checkpoint != (values.init_checkpoint or None) and not config_file:
        config_file = files.join(files.dirname(init_checkpoint), "albert_config.json")
    if values.albert_hub_module_handle:
        from albert_tf.finetuning import resolve_hub_module
        prefix, hub_spm, hub_config = resolve_hub_module(values.albert_hub_module_handle)
        init_checkpoint = init_checkpoint or prefix
        spm_model_file = hub_spm or spm_model_file
        config_file = config_file or hub_config
    return init_checkpoint, spm_model_file, config_file


def strategy_from_flags(values):
    """The `tf.distribute.Strategy` the runtime and TPU flags ask for."""
    name = values.distribution_strategy
    if getattr(values, "use_tpu", False):
        if name not in ("one_device", "tpu"):
            raise training.SettingsError(
                f"--use_tpu contradicts --distribution_strategy={name}; drop one of them.")
        name = "tpu"
    if values.num_cpu_devices > 1:
        training.configure_cpu_devices(values.num_cpu_devices)
    strategy = training.create_strategy(
        name, num_gpus=values.num_gpus,
        tpu=getattr(values, "tpu_name", None) or getattr(values, "master", None),
        tpu_zone=getattr(values, "tpu_zone", None),
        gcp_project=getattr(values, "gcp_project", None))
    if name == "tpu" and strategy.num_replicas_in_sync != values.num_tpu_cores:
        logging.warning("The TPU has %d cores; --num_tpu_cores=%d is ignored.",
                        strategy.num_replicas_in_sync, values.num_tpu_cores)
    logging.info("Strategy %s with %d replica(s).", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy


# === The frame of every entry point =====================================================

def define_debug_flag():
    """`--debug`: show the traceback of user errors too (every entry point has it)."""
    define(options("debug"))


def run(main, define_flags=None, required=()):
    """The `if __name__ == "__main__":` of every entry point (scripts and `python -m
    albert_tf.<module>`): defines the flags (`define_flags()`, then `--debug`), lists them in
    the entry point's `--help`/`--helpshort`, marks the `required` ones and runs `main(argv)`
    under absl, whose flag errors are one usage line."""
    if define_flags is not None:
        define_flags()
    define_debug_flag()
    for name in dict.fromkeys(_DEFINED):
        # absl's --helpshort lists the key flags of the module run as sys.argv[0].
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    if required:
        flags.mark_flags_as_required(list(required))
    app.run(main, flags_parser=_parse_flags)


def _parse_flags(argv):
    """absl's flag parsing, with a flag error (a missing required flag, a bad value) as one
    `ERROR:` line and exit status 1."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        message = " ".join(str(error).split())
        missing = re.findall(r"Flag --(\w+) must have a value other than None", message)
        if missing:
            message = "missing required flag(s): " + ", ".join(f"--{name}" for name in missing)
        print(f"ERROR: {message} (see --helpshort)", file=sys.stderr)
        sys.exit(1)


@contextlib.contextmanager
def script_main(argv):
    """The frame of every entry point's `main`: stray arguments are a usage error, logging
    is at INFO, user errors become one line (`user_errors`). Yields the flag values."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    with user_errors():
        yield flags.FLAGS


@contextlib.contextmanager
def user_errors():
    """Turns errors caused by the user's input into one line on stderr and exit status 1.

    User errors are every `albert_tf.errors.UserError` (each module's input errors derive
    from it) and a missing or unreadable file (`FileNotFoundError`, `PermissionError`,
    TensorFlow's `NotFoundError` and `PermissionDeniedError`, which name the path), and a
    storage that cannot be reached or has no filesystem (`_is_storage_error`). With
    `--debug` they propagate with their traceback. Ctrl-C exits with status 130, no traceback.
    Any other exception is an internal error and keeps its traceback.
    """
    import tensorflow as tf

    from albert_tf.errors import UserError
    try:
        yield
    except (UserError, FileNotFoundError, PermissionError, tf.errors.OpError) as error:
        if isinstance(error, tf.errors.OpError) and not _is_storage_error(error):
            raise  # an internal error: keep its traceback
        if "debug" in flags.FLAGS and flags.FLAGS.is_parsed() and flags.FLAGS.debug:
            raise
        from albert_tf.files import describe
        message = (describe(error) if isinstance(error, tf.errors.OpError)
                   else " ".join(str(error).split()) or type(error).__name__)
        print(f"ERROR: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)


def _is_storage_error(error):
    """Whether a TensorFlow error is about the user's files or storage rather than a bug:
    a missing file or no permission, or a `gs://`-style store that cannot be reached, refuses
    the credentials or has no filesystem plugin (TensorFlow names the path or scheme)."""
    import tensorflow as tf
    if isinstance(error, (tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
                          tf.errors.UnauthenticatedError)):
        return True
    if isinstance(error, (tf.errors.FailedPreconditionError, tf.errors.UnavailableError,
                          tf.errors.UnimplementedError, tf.errors.AbortedError)):
        return "://" in error.message or "File system scheme" in error.message
    return False
