"""The settings of every run, each declared once: its name, type, default and help.

`PretrainingSettings` (run_pretraining.py), `FinetuningSettings` (the loop of every
fine-tuning script), `ClassifierSettings` (run_classifier.py's task), `SquadSettings`
(run_squad*.py's) and `RaceSettings` (run_race.py's). Library code takes these objects;
`albert_tf.cli` turns every field into the command-line flag of the same name (or of the
name in its `flag` metadata), with the field's default and help, and builds the objects back
from the parsed flags. So an option is one line here: the field.

Field names and defaults are the original google-research/ALBERT scripts' flags. A field
declared with `option(..., flag=None)` is not a flag (the scripts derive it, e.g.
`use_one_hot_embeddings` from `--use_tpu`).
"""

import dataclasses

from albert_tf import bucketing
from albert_tf import training


def option(default=dataclasses.MISSING, help="", *, flag="", choices=None):  # noqa: A002
    """A settings field with its flag's help.

    Args:
      default: the field's and the flag's default (missing: a required field).
      help: the flag's help: what the option does and why one would change it.
      flag: the flag's name if it differs from the field's; None: no flag.
      choices: the allowed values (an enum flag).
    Returns:
      A `dataclasses.field` whose metadata holds `help`, `flag` and `choices`.
    """
    return dataclasses.field(default=default,
                             metadata={"help": help, "flag": flag, "choices": choices})


def flag_name(field):
    """The command-line name of a settings field (None: it is not a flag)."""
    flag = field.metadata.get("flag", "")
    return field.name if flag == "" else flag


# Fields that pretraining and fine-tuning (or several fine-tuning tasks) share: declared
# here once, used as `shared("name")` in each class.
SHARED = {
    "output_dir": (dataclasses.MISSING,
                   "Where checkpoints, summaries and results are written."),
    "init_checkpoint": (None, "Initial checkpoint in the original format, usually from a "
                        "pretrained ALBERT (weights only; optimizer moments and the step "
                        "start afresh)."),
    "iterations_per_loop": (1000, "Train steps per call into the compiled loop (fewer host "
                            "round trips; on TPUs, steps per execution). A due checkpoint or "
                            "export ends a loop early; every step's losses are still logged "
                            "per --log_steps."),
    "use_one_hot_embeddings": (False, "Look embeddings up with one-hot matmuls (the "
                               "original ties it to --use_tpu)."),
    "mixed_precision": ("none", "Compute in bfloat16 (bf16) or float16 (fp16, with dynamic "
                        "loss scaling); variables, losses and the optimizer stay float32."),
    "jit_compile": (False, "Compile the forward and backward pass with XLA (see --jit_scope "
                    "where a script has it). Needs static shapes (the input drops the last "
                    "partial batch)."),
    "gradient_accumulation_steps": (1, "Split each step's batch into this many micro-batches "
                                    "per replica and sum their gradients before one update: "
                                    "the same update with less memory."),
    "bias_correction": (False, "Use Adam's bias-corrected moments in AdamW/LAMB (the original "
                        "has none)."),
    "log_steps": (100, "Log progress (losses, learning rate, examples/s, MFU, ETA) every N "
                  "steps."),
    "seed": (None, "Seed for the initial weights, dropout and the input order (default: "
             "random)."),
    "peak_tflops": (None, "Peak TFLOP/s per accelerator (or of the whole CPU) for the MFU "
                    "figure; default from a table of known GPUs, or an estimate for the CPU."),
    "spm_model_file": (None, "The SentencePiece model of the ALBERT vocabulary."),
    "vocab_file": (None, "A WordPiece vocabulary file (used when no SentencePiece model is "
                   "given)."),
    "do_lower_case": (True, "Lower-case the input (True for the uncased released models)."),
    "length_buckets": ("default", "Lengths a batch is cut to when its longest example fits "
                       "(comma-separated, e.g. 64,128,256; 'default' is 64,128,256; 'none' "
                       "pads every batch to --max_seq_length as the original). The outputs "
                       "are the same at any padding; only the work done changes. See README, "
                       "Length buckets."),
}
_NOT_FLAGS = {"use_one_hot_embeddings"}
_CHOICES = {"mixed_precision": sorted(training.PRECISION_POLICIES)}


def shared(name):
    """The field `name` of `SHARED` (the same default and help in every class)."""
    default, help_ = SHARED[name]
    return option(default, help_, flag=None if name in _NOT_FLAGS else "",
                  choices=_CHOICES.get(name))


_OPTIMIZERS = ["adamw", "lamb"]
RACE_LEVELS = ("middle", "high")      # the original reads middle school first


@dataclasses.dataclass
class PretrainingSettings:
    """What run_pretraining.py's flags say; defaults are the original flags' defaults.

    New relative to the original: `mixed_precision`, `jit_compile`, `jit_scope` (see
    `training.Trainer`), `gradient_accumulation_steps`, `bias_correction`, `log_steps`,
    `export_original_every`, `seed`, `peak_tflops`, `use_one_hot_embeddings` and
    `eval_poll_seconds`.
    """

    input_file: str = option(help="Input TFRecord files: comma-separated globs (quote "
                             "them), e.g. 'tfrecords/train-*'.")
    output_dir: str = shared("output_dir")
    init_checkpoint: str = shared("init_checkpoint")
    max_seq_length: int = option(512, "Tokens per sequence; must match the data "
                                 "(create_pretraining_data's flag).")
    max_predictions_per_seq: int = option(20, "Masked-LM predictions per sequence; must "
                                          "match the data.")
    do_train: bool = option(True, "Whether to run training.")
    do_eval: bool = option(False, "Whether to evaluate (on the training files, as the "
                           "original).")
    train_batch_size: int = option(4096, "Global batch per update (over all replicas and "
                                   "accumulated micro-batches).")
    eval_batch_size: int = option(64, "Global batch for evaluation.")
    optimizer: str = option("lamb", "The optimizer.", choices=_OPTIMIZERS)
    learning_rate: float = option(0.00176, "The peak (initial) learning rate.")
    poly_power: float = option(1.0, "The power of the polynomial decay.")
    num_train_steps: int = option(125000, "Number of training steps.")
    num_warmup_steps: int = option(3125, "Number of warm-up steps.")
    start_warmup_step: int = option(0, "The step at which warm-up starts.")
    save_checkpoints_steps: int = option(5000, "Save a resumable checkpoint every N steps.")
    keep_checkpoint_max: int = option(5, "How many checkpoints to keep.")
    iterations_per_loop: int = shared("iterations_per_loop")
    max_eval_steps: int = option(100, "Batches of --eval_batch_size per evaluation, read "
                                 "from the start of the --input_file files in order and "
                                 "repeated if they hold fewer records (the original's "
                                 "meaning).")
    init_from_group0: bool = option(False, "Initialise every layer group's variables from "
                                    "group 0 of --init_checkpoint.")
    masked_lm_budget: float = option(0.0, "The original's online-masking ratio; only 0 "
                                     "(offline masking) is supported.")
    use_one_hot_embeddings: bool = shared("use_one_hot_embeddings")
    mixed_precision: str = shared("mixed_precision")
    jit_compile: bool = shared("jit_compile")
    jit_scope: str = option(training.DEFAULT_JIT_SCOPE, "What --jit_compile compiles: the "
                            "forward and backward pass (gradients; the faster on CPUs "
                            "measured), or the whole train step with clipping and the "
                            "optimizer update (step; one replica, else gradients).",
                            choices=list(training.JIT_SCOPES))
    gradient_accumulation_steps: int = shared("gradient_accumulation_steps")
    bias_correction: bool = shared("bias_correction")
    log_steps: int = shared("log_steps")
    export_original_every: int = option(0, "Also write an original-format "
                                        "model.ckpt-<step> every N steps (0: only at the "
                                        "end).")
    seed: int = shared("seed")
    peak_tflops: float = shared("peak_tflops")
    length_buckets: str = shared("length_buckets")
    eval_poll_seconds: float = option(60.0, "An evaluation-only run waits this long between "
                                      "looks for a new checkpoint.", flag=None)

    def __post_init__(self):
        # A bad --length_buckets stops the run before anything is read or written.
        bucketing.parse_buckets(self.length_buckets)


@dataclasses.dataclass
class FinetuningSettings:
    """The fine-tuning loop's flags; defaults are the original run_classifier.py's.

    New relative to the original: `use_one_hot_embeddings` (the original ties it to
    --use_tpu), `mixed_precision`, `jit_compile`, `gradient_accumulation_steps`,
    `bias_correction`, `log_steps`, `seed`, `peak_tflops` (for MFU) and `eval_wait_seconds`.
    `keep_checkpoint_max` is the original's flag, which it ignored; every evaluated
    checkpoint is still evaluated here.
    """

    output_dir: str = shared("output_dir")
    init_checkpoint: str = shared("init_checkpoint")
    max_seq_length: int = option(512, "Tokens per example after SentencePiece; longer inputs "
                                 "are truncated (the longer text of a pair first), shorter "
                                 "ones padded.")
    train_batch_size: int = option(32, "Total batch size for training.")
    eval_batch_size: int = option(8, "Total batch size for eval.")
    predict_batch_size: int = option(8, "Total batch size for predict.")
    learning_rate: float = option(5e-5, "The peak learning rate for AdamW/LAMB.")
    train_step: int = option(1000, "Total number of training steps (the learning rate "
                             "decays to 0 there).")
    warmup_step: int = option(0, "Number of steps of linear learning-rate warm-up.")
    save_checkpoints_steps: int = option(1000, "How often to save (and, with --do_eval, "
                                         "evaluate) a checkpoint.")
    keep_checkpoint_max: int = option(5, "How many resumable training checkpoints to keep "
                                      "(every checkpoint is still evaluated).")
    iterations_per_loop: int = shared("iterations_per_loop")
    optimizer: str = option("adamw", "Optimizer to use.", choices=_OPTIMIZERS)
    use_one_hot_embeddings: bool = shared("use_one_hot_embeddings")
    mixed_precision: str = shared("mixed_precision")
    jit_compile: bool = shared("jit_compile")
    gradient_accumulation_steps: int = shared("gradient_accumulation_steps")
    bias_correction: bool = shared("bias_correction")
    log_steps: int = shared("log_steps")
    seed: int = shared("seed")
    peak_tflops: float = shared("peak_tflops")
    eval_wait_seconds: float = option(0.0, "An evaluation-only run (no --do_train) waits this "
                                      "long for a training run in the same --output_dir to "
                                      "write a new checkpoint (the original waited "
                                      "forever).")
    length_buckets: str = shared("length_buckets")
    group_by_length: bool = option(True, "Form each training batch from examples of one "
                                   "length bucket (same expected gradient, other batch "
                                   "order); false keeps the original batch order exactly.")

    def __post_init__(self):
        # A bad --length_buckets stops the run before anything is read or written.
        bucketing.parse_buckets(self.length_buckets)


@dataclasses.dataclass
class ClassifierSettings:
    """run_classifier.py's task and data flags (the loop's are `FinetuningSettings`)."""

    task_name: str = option(help="The task: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, MisMNLI "
                            "(MNLI selected and predicted on its mismatched half), QNLI, RTE, "
                            "WNLI, AX (predict only, with an MNLI model), or tsv (your own "
                            "files). Case does not matter.")
    data_dir: str = option(help="The GLUE root: the folder holding MNLI/, QQP/, ... (and "
                           "diagnostic/), as download_glue_data.py writes it. For "
                           "--task_name=tsv, the folder of train.tsv, dev.tsv and test.tsv.")
    spm_model_file: str = shared("spm_model_file")
    vocab_file: str = shared("vocab_file")
    do_lower_case: bool = shared("do_lower_case")
    cached_dir: str = option(None, "Where the converted train/dev/test features are cached "
                             "as TFRecords (default: --output_dir). A cache is reused only "
                             "for the same task, split, data, --max_seq_length and "
                             "tokenizer.")
    do_train: bool = option(False, "Whether to run training.")
    do_eval: bool = option(False, "Whether to evaluate every checkpoint on dev and keep the "
                           "best as model.ckpt-best.")
    do_predict: bool = option(False, "Whether to predict the test set(s) with model.ckpt-best "
                              "and write the submission files.")
    export_dir: str = option(None, "Export model.ckpt-best there as a SavedModel that takes "
                             "raw text (text_a, and text_b for pair tasks) and returns "
                             "probabilities.")
    threshold_to_export: float = option(float("nan"), "If set, a constant 'threshold' output "
                                        "with this value is added to the exported model's "
                                        "signature.")
    text_a_column: str = option("0", "tsv task: column of the first text (0-based index, or "
                                "header name).")
    text_b_column: str = option(None, "tsv task: column of the second text, for pairs (index "
                                "or header name).")
    label_column: str = option("1", "tsv task: column of the label in train.tsv and dev.tsv "
                               "(index or header name).")
    labels: tuple = option(None, "tsv task: the class names in id order, comma-separated "
                           "(e.g. neg,pos). Empty: the label is a number and the task a "
                           "regression (scored like STS-B).")
    tsv_header: bool = option(True, "tsv task: whether each file starts with a header row.")


@dataclasses.dataclass
class SquadSettings:
    """run_squad's task and data flags (the loop's are `FinetuningSettings`)."""

    squad_version: str = option("1.1", "1.1: the span head of run_squad_v1.py (never answers "
                                "null). 2.0: the beam and answerability head of "
                                "run_squad_v2.py (null answers, threshold tuned on "
                                "--predict_file).", choices=["1.1", "2.0"])
    train_file: str = option(None, "SQuAD JSON for training, e.g. train-v1.1.json. Also read "
                             "for predict-only runs if given (for the step count).")
    predict_file: str = option(None, "SQuAD JSON to predict and score, e.g. dev-v1.1.json.")
    train_feature_file: str = option(None, "TFRecord cache of the training features: written "
                                     "if missing, else read.")
    predict_feature_file: str = option(None, "TFRecord cache of the prediction features: "
                                       "written if it (or the left file) is missing, else "
                                       "read.")
    predict_feature_left_file: str = option(None, "Cache of what post-processing needs of "
                                            "the prediction features (a pickle): written if "
                                            "missing, else read. The original's files are "
                                            "read too.")
    spm_model_file: str = shared("spm_model_file")
    do_lower_case: bool = shared("do_lower_case")
    doc_stride: int = option(128, "Pieces between the starts of consecutive windows over a "
                             "long context.")
    max_query_length: int = option(64, "Question pieces kept; longer questions are cut to "
                                   "their first pieces.")
    do_train: bool = option(False, "Whether to fine-tune.")
    do_predict: bool = option(False, "Whether to predict and score --predict_file (every "
                              "checkpoint; the best is kept).")
    num_train_epochs: float = option(3.0, "Epochs over the training questions (steps = "
                                     "questions / batch x epochs, counted in questions, not "
                                     "windows, as the original).")
    warmup_proportion: float = option(0.1, "Share of the steps with a linear learning-rate "
                                      "warm-up, e.g. 0.1 = 10%.")
    n_best_size: int = option(20, "Candidates per question in nbest_predictions.json (and "
                              "best starts/ends paired per window in v1.1).")
    max_answer_length: int = option(30, "Longest answer in pieces (start and end are "
                                    "predicted independently).")
    start_n_top: int = option(5, "v2.0: beam size for the start positions.")
    end_n_top: int = option(5, "v2.0: beam size for the end positions.")
    dropout_prob: float = option(0.1, "v2.0: dropout in the answerability layer (the "
                                 "encoder's dropouts come from --albert_config_file).")

    @property
    def is_v2(self):
        return self.squad_version == "2.0"


@dataclasses.dataclass
class RaceSettings:
    """run_race.py's task and data flags (the loop's are `FinetuningSettings`, whose
    `max_seq_length` is the length of each of the four sequences)."""

    data_dir: str = option(help="The folder holding RACE/ (RACE/train, RACE/dev, RACE/test, "
                           "each with middle/ and high/).")
    spm_model_file: str = shared("spm_model_file")
    vocab_file: str = shared("vocab_file")
    do_lower_case: bool = shared("do_lower_case")
    max_qa_length: int = option(128, "Pieces kept of question+option: its LAST ones (the end "
                                "holds the option).")
    dropout_prob: float = option(0.1, "Dropout on the pooled output in the head (the "
                                 "encoder's come from --albert_config_file).")
    high_only: bool = option(False, "Use the high-school questions only.")
    middle_only: bool = option(False, "Use the middle-school questions only.")
    do_train: bool = option(True, "Whether to run training.")
    do_eval: bool = option(True, "Whether to score every checkpoint on dev and keep the best.")
    do_predict: bool = option(False, "Whether to score model.ckpt-best on test and write "
                              "test_predictions.tsv.")
    train_file: str = option(None, "TFRecord cache of the training features: built if "
                             "missing, else reused (default: a file in --output_dir named "
                             "after the settings and data).")
    eval_file: str = option(None, "TFRecord cache of the dev features: built if missing, "
                            "else reused.")
    predict_file: str = option(None, "TFRecord cache of the test features: built if missing, "
                               "else reused (the original ignored this flag and always "
                               "rebuilt output_dir/predict.tf_record).")
    cache_dir: str = option(None, "Where the keyed feature files go when --train_file etc. "
                            "are unset (default: --output_dir); share it between runs to "
                            "convert once.", flag="cached_dir")
    skip_bad_examples: bool = option(False, "Skip (and count in the log) articles that are "
                                     "not valid JSON and questions without 4 options or an "
                                     "A-D answer, instead of stopping at the first one.")

    @property
    def levels(self):
        """The levels read: ("high",), ("middle",) or both, middle school first."""
        if self.high_only:
            return ("high",)
        if self.middle_only:
            return ("middle",)
        return RACE_LEVELS
