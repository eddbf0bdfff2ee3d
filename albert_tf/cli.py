"""Command-line flags shared by the run_*.py entry scripts, and turning them into objects.

Nothing here runs on import: each script calls the `define_*_flags()` functions it needs
(inside `if __name__ == "__main__"`), then passes `absl.flags.FLAGS` to the `*_from_flags`
helpers. The library itself never reads flags.

Original flags keep their names, meanings and defaults. New ones:

    --distribution_strategy  one_device | mirrored | multi_worker_mirrored | tpu
    --num_gpus               local GPUs to use (default: all; 0: the CPU)
    --num_cpu_devices        split the CPU into N logical devices (try replication on a CPU)
    --mixed_precision        none | bf16 | fp16 (fp16 with dynamic loss scaling)
    --jit_compile            XLA-compile the forward and backward pass (run_pretraining's
                             --jit_scope=step: the whole one-replica train step)
    --gradient_accumulation_steps, --bias_correction, --log_steps, --seed, --peak_tflops
"""

import contextlib
import re
import sys

from absl import app
from absl import flags
from absl import logging

from albert_tf import files
from albert_tf import training


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


def define_common_flags():
    """`albert_config_file`, `init_checkpoint`, `output_dir` (every original script has them)."""
    define_flag(flags.DEFINE_string, "albert_config_file", None,
            "The config JSON of the ALBERT model (its architecture).")
    define_flag(flags.DEFINE_string, "init_checkpoint", None,
            "Initial checkpoint in the original format, usually from a pretrained ALBERT "
            "(weights only; optimizer moments and the step start afresh).")
    define_flag(flags.DEFINE_string, "output_dir", None,
            "Where checkpoints, summaries and results are written.")


def define_tokenizer_flags():
    """`spm_model_file`, `vocab_file`, `do_lower_case` (the fine-tuning scripts')."""
    define_flag(flags.DEFINE_string, "spm_model_file", None,
            "The SentencePiece model of the ALBERT vocabulary.")
    define_flag(flags.DEFINE_string, "vocab_file", None,
            "A WordPiece vocabulary file (used when no SentencePiece model is given).")
    define_flag(flags.DEFINE_bool, "do_lower_case", True,
            "Lower-case the input (True for the uncased released models).")


def define_tpu_flags():
    """The original's TPU flags: use_tpu, tpu_name, tpu_zone, gcp_project, master,
    num_tpu_cores, iterations_per_loop."""
    define_flag(flags.DEFINE_bool, "use_tpu", False,
            "Train on a TPU (same as --distribution_strategy=tpu); also looks embeddings up "
            "with one-hot matmuls, as the original does on TPUs.")
    define_flag(flags.DEFINE_string, "tpu_name", None,
            "The Cloud TPU: a name, or a grpc://ip.address.of.tpu:8470 URL.")
    define_flag(flags.DEFINE_string, "tpu_zone", None,
            "[Optional] GCE zone of the Cloud TPU (detected from metadata if unset).")
    define_flag(flags.DEFINE_string, "gcp_project", None,
            "[Optional] GCP project of the Cloud TPU (detected from metadata if unset).")
    define_flag(flags.DEFINE_string, "master", None,
            "[Optional] TensorFlow master URL (a TPU address, used if --tpu_name is unset).")
    define_flag(flags.DEFINE_integer, "num_tpu_cores", 8,
            "TPU cores to use; TPUStrategy uses every core of the TPU it connects to, so "
            "this is only checked against it.")
    define_flag(flags.DEFINE_integer, "iterations_per_loop", 1000,
            "Train steps per call into the compiled loop (fewer host round trips; on TPUs, "
            "steps per execution). A due checkpoint or export ends a loop early; every "
            "step's losses are still logged per --log_steps.")


def define_runtime_flags():
    """Where and how to run: strategy, devices, precision, XLA."""
    define_flag(flags.DEFINE_enum, "distribution_strategy", "one_device", list(training.STRATEGIES),
            "one_device: the first GPU, else the CPU. mirrored: all local GPUs (or every "
            "--num_cpu_devices CPU device). multi_worker_mirrored: the machines in the "
            "TF_CONFIG environment variable. tpu: the TPU of --tpu_name.")
    define_flag(flags.DEFINE_integer, "num_gpus", None,
            "Local GPUs to use (default: all visible; 0: run on the CPU).")
    define_flag(flags.DEFINE_integer, "num_cpu_devices", 1,
            "Split the CPU into this many logical devices, e.g. to try "
            "--distribution_strategy=mirrored without GPUs.")
    define_flag(flags.DEFINE_enum, "mixed_precision", "none", sorted(training.PRECISION_POLICIES),
            "Compute in bfloat16 (bf16) or float16 (fp16, with dynamic loss scaling); "
            "variables, losses and the optimizer stay float32.")
    define_flag(flags.DEFINE_bool, "jit_compile", False,
            "Compile the forward and backward pass with XLA (see --jit_scope where a script "
            "has it). Needs static shapes (the input drops the last partial batch).")


def define_training_flags():
    """Training-loop options shared by pretraining and fine-tuning."""
    define_flag(flags.DEFINE_integer, "gradient_accumulation_steps", 1,
            "Split each step's batch into this many micro-batches per replica and sum their "
            "gradients before one update: the same update with less memory.")
    define_flag(flags.DEFINE_bool, "bias_correction", False,
            "Use Adam's bias-corrected moments in AdamW/LAMB (the original has none).")
    define_flag(flags.DEFINE_integer, "log_steps", 100,
            "Log progress (losses, learning rate, examples/s, MFU, ETA) every N steps.")
    define_flag(flags.DEFINE_integer, "seed", None,
            "Seed for the initial weights, dropout and the input order (default: random).")
    define_flag(flags.DEFINE_float, "peak_tflops", None,
            "Peak TFLOP/s per accelerator (or of the whole CPU) for the MFU figure; default "
            "from a table of known GPUs, or an estimate for the CPU.")


def define_pretraining_flags():
    """All flags of run_pretraining.py (the original's plus the new ones)."""
    define_common_flags()
    define_tpu_flags()
    define_runtime_flags()
    define_training_flags()
    f = flags
    define_flag(f.DEFINE_string, "input_file", None,
            "Input TFRecord files: comma-separated globs (quote them), e.g. "
            "'tfrecords/train-*'.")
    define_flag(f.DEFINE_integer, "max_seq_length", 512,
            "Tokens per sequence; must match the data (create_pretraining_data's flag).")
    define_flag(f.DEFINE_integer, "max_predictions_per_seq", 20,
            "Masked-LM predictions per sequence; must match the data.")
    define_flag(f.DEFINE_bool, "do_train", True, "Whether to run training.")
    define_flag(f.DEFINE_bool, "do_eval", False,
            "Whether to evaluate (on the training files, as the original).")
    define_flag(f.DEFINE_integer, "train_batch_size", 4096,
            "Global batch per update (over all replicas and accumulated micro-batches).")
    define_flag(f.DEFINE_integer, "eval_batch_size", 64, "Global batch for evaluation.")
    define_flag(f.DEFINE_enum, "optimizer", "lamb", ["adamw", "lamb"], "The optimizer.")
    define_flag(f.DEFINE_float, "learning_rate", 0.00176, "The peak (initial) learning rate.")
    define_flag(f.DEFINE_float, "poly_power", 1.0, "The power of the polynomial decay.")
    define_flag(f.DEFINE_integer, "num_train_steps", 125000, "Number of training steps.")
    define_flag(f.DEFINE_integer, "num_warmup_steps", 3125, "Number of warm-up steps.")
    define_flag(f.DEFINE_integer, "start_warmup_step", 0, "The step at which warm-up starts.")
    define_flag(f.DEFINE_integer, "save_checkpoints_steps", 5000,
            "Save a resumable checkpoint every N steps.")
    define_flag(f.DEFINE_integer, "keep_checkpoint_max", 5, "How many checkpoints to keep.")
    define_flag(f.DEFINE_integer, "max_eval_steps", 100,
            "Batches of --eval_batch_size per evaluation, read from the start of the "
            "--input_file files in order and repeated if they hold fewer records (the "
            "original's meaning).")
    define_flag(f.DEFINE_bool, "init_from_group0", False,
            "Initialise every layer group's variables from group 0 of --init_checkpoint.")
    define_flag(f.DEFINE_float, "masked_lm_budget", 0,
            "The original's online-masking ratio; only 0 (offline masking) is supported.")
    define_flag(f.DEFINE_enum, "jit_scope", "gradients", ["gradients", "step"],
            "What --jit_compile compiles: the forward and backward pass (gradients; the "
            "faster on CPUs measured), or the whole train step with clipping and the "
            "optimizer update (step; one replica, else gradients).")
    define_flag(f.DEFINE_integer, "export_original_every", 0,
            "Also write an original-format model.ckpt-<step> every N steps (0: only at the "
            "end).")


def define_finetuning_flags():
    """The flags every fine-tuning script (run_classifier, run_squad, run_race) has besides
    its task's: the common, tokenizer, TPU, runtime and training ones, the TF-Hub module,
    the prediction batch and the evaluation-only wait."""
    define_common_flags()
    define_tokenizer_flags()
    define_tpu_flags()
    define_runtime_flags()
    define_training_flags()
    define_flag(flags.DEFINE_string, "albert_hub_module_handle", None,
                "Folder of a downloaded ALBERT TF-Hub module to start from: its weights "
                "(unless --init_checkpoint is set), its SentencePiece model (as the "
                "original, it replaces --spm_model_file) and its config (unless "
                "--albert_config_file is set).")
    define_flag(flags.DEFINE_integer, "predict_batch_size", 8, "Total batch size for predict.")
    define_flag(flags.DEFINE_float, "eval_wait_seconds", 0.0,
                "An evaluation-only run (no --do_train) waits this long for a training run "
                "in the same --output_dir to write a new checkpoint (the original waited "
                "forever).")


def on_tpu(values):
    """Whether the flags ask for a TPU (`--use_tpu` or `--distribution_strategy=tpu`)."""
    return getattr(values, "use_tpu", False) or values.distribution_strategy == "tpu"


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


def finetuning_settings_from_flags(values, init_checkpoint, **task_values):
    """`FinetuningSettings` from the shared flags; `task_values` are the fields whose flags
    differ between the scripts (batch sizes, steps, optimizer, ...)."""
    from albert_tf.finetuning import FinetuningSettings
    return FinetuningSettings(
        output_dir=values.output_dir, init_checkpoint=init_checkpoint,
        max_seq_length=values.max_seq_length, train_batch_size=values.train_batch_size,
        predict_batch_size=values.predict_batch_size, learning_rate=values.learning_rate,
        save_checkpoints_steps=values.save_checkpoints_steps,
        use_one_hot_embeddings=on_tpu(values), mixed_precision=values.mixed_precision,
        jit_compile=values.jit_compile,
        gradient_accumulation_steps=values.gradient_accumulation_steps,
        bias_correction=values.bias_correction, log_steps=values.log_steps,
        seed=values.seed, peak_tflops=values.peak_tflops,
        eval_wait_seconds=values.eval_wait_seconds, **task_values)


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


def pretraining_settings_from_flags(values):
    """`PretrainingSettings` from run_pretraining.py's flag values."""
    from albert_tf.pretraining import PretrainingSettings
    return PretrainingSettings(
        input_file=values.input_file, output_dir=values.output_dir,
        init_checkpoint=values.init_checkpoint, max_seq_length=values.max_seq_length,
        max_predictions_per_seq=values.max_predictions_per_seq, do_train=values.do_train,
        do_eval=values.do_eval, train_batch_size=values.train_batch_size,
        eval_batch_size=values.eval_batch_size, optimizer=values.optimizer,
        learning_rate=values.learning_rate, poly_power=values.poly_power,
        num_train_steps=values.num_train_steps, num_warmup_steps=values.num_warmup_steps,
        start_warmup_step=values.start_warmup_step,
        save_checkpoints_steps=values.save_checkpoints_steps,
        keep_checkpoint_max=values.keep_checkpoint_max,
        iterations_per_loop=values.iterations_per_loop, max_eval_steps=values.max_eval_steps,
        init_from_group0=values.init_from_group0, masked_lm_budget=values.masked_lm_budget,
        use_one_hot_embeddings=on_tpu(values), mixed_precision=values.mixed_precision,
        jit_compile=values.jit_compile, jit_scope=values.jit_scope,
        gradient_accumulation_steps=values.gradient_accumulation_steps,
        bias_correction=values.bias_correction, log_steps=values.log_steps,
        export_original_every=values.export_original_every, seed=values.seed,
        peak_tflops=values.peak_tflops)


def define_debug_flag():
    """`--debug`: show the traceback of user errors too (every entry point has it)."""
    define_flag(flags.DEFINE_bool, "debug", False,
                "Show the Python traceback of input errors too (they are one line otherwise).")


def run(main, define_flags=None, required=()):
    """The `if __name__ == "__main__":` of every entry point (scripts and `python -m
    albert_tf.<module>`): defines the flags (`define_flags()`, then `--debug`), marks the
    `required` ones and runs `main(argv)` under absl, whose flag errors are one usage line."""
    if define_flags is not None:
        define_flags()
    define_debug_flag()
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
