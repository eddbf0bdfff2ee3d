"""Progress and TensorBoard summaries of training runs: the one place that writes them.

- `SummaryWriters`: the `tf.summary` writers of a run (`<output_dir>/summaries/train` and
  `.../eval`, written by the chief only); `file_writer`, `write_scalars`.
- `ProgressMeter`: step, losses, learning rate, examples/s, tokens/s, MFU and ETA of a
  training run, as log lines and scalars of the train writer.
- `log_evaluation`: an evaluation's results as a log line and scalars of the eval writer.
- The FLOP formulas (`encoder_flops_per_example`, `pretraining_flops_per_example`) that MFU
  is computed from, with the devices' peak FLOP/s (`training.peak_flops_per_second`).
"""

import time

from absl import logging
import tensorflow as tf

from albert_tf import files


# =========================================================================================
# Writers
# =========================================================================================


def file_writer(directory):
    """A `tf.summary` writer of TensorBoard event files in `directory` (any filesystem)."""
    return tf.summary.create_file_writer(str(directory))


def write_scalars(writer, step, scalars):
    """Writes {name: float} at `step` to a `tf.summary` writer (None: nothing) and flushes."""
    if writer is None:
        return
    with writer.as_default(step=step):
        for name, value in scalars.items():
            tf.summary.scalar(name, value)
    writer.flush()


class SummaryWriters:
    """The TensorBoard writers of a run in `output_dir/summaries/{train,eval}`.

    Only the chief writes (`write=False` elsewhere: every method does nothing); each writer
    is created on first use.
    """

    def __init__(self, output_dir, write=True):
        self.directory = files.join(output_dir, "summaries")
        self.write = write
        self._writers = {}

    def writer(self, kind):
        """The writer of `kind` ("train" or "eval"), or None when this process does not write."""
        if not self.write:
            return None
        if kind not in self._writers:
            self._writers[kind] = file_writer(files.join(self.directory, kind))
        return self._writers[kind]

    def eval_scalars(self, step, results):
        """Writes the eval results of checkpoint `step` (all but `global_step`)."""
        write_scalars(self.writer("eval"), step,
                      {k: v for k, v in results.items() if k != "global_step"})


def log_evaluation(summaries, step, results, seconds=None):
    """Logs `results` (the evaluation of checkpoint `step`) and writes them to TensorBoard."""
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    logging.info("Eval at step %d%s: %s", step, took, ", ".join(
        f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in sorted(results.items())))
    summaries.eval_scalars(step, results)


# =========================================================================================
# FLOPs and MFU
# =========================================================================================


def encoder_flops_per_example(config, seq_length):
    """Matmul FLOPs of one training example through the encoder and pooler (3 x forward).

    Counts 2 FLOPs per multiply-add in the embedding projection, every layer application
    (L x K sub-blocks: Q/K/V/output projections, the two attention products, the FFN) and
    the pooler. Lookups, softmaxes, norms and activations are not counted.
    """
    return 3 * _encoder_forward_flops(config, seq_length)


def _encoder_forward_flops(config, seq_length):
    c = config
    S, H, E, I = seq_length, c.hidden_size, c.embedding_size, c.intermediate_size
    forward = 2 * S * E * H if E != H else 0
    forward += c.num_hidden_layers * c.inner_group_num * (8 * S * H * H + 4 * S * S * H
                                                           + 4 * S * H * I)
    return forward + 2 * H * H


def pretraining_flops_per_example(config, seq_length, max_predictions_per_seq):
    """Matmul FLOPs of one pretraining example, forward + backward (3 x forward).

    The encoder's (`encoder_flops_per_example`), plus the masked-LM transform and output
    layer over the predicted positions and the sentence-order layer.
    """
    H, E, V, P = (config.hidden_size, config.embedding_size, config.vocab_size,
                  max_predictions_per_seq)
    forward = _encoder_forward_flops(config, seq_length)
    forward += P * (2 * H * E + 2 * E * V) + 4 * H
    return 3 * forward


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressMeter:
    """Progress lines and TensorBoard scalars for a training run.

    Args:
      total_steps: the step training ends at.
      examples_per_step: global batch (including accumulated micro-batches).
      tokens_per_example: sequence length (padding counts: it is computed on).
      flops_per_example: training FLOPs per example (for MFU), or None.
      peak_flops: total peak FLOP/s of the devices, or None (MFU is then not shown).
      summary_writer: a `tf.summary` writer, or None.
    """

    def __init__(self, total_steps, examples_per_step, tokens_per_example,
                 flops_per_example=None, peak_flops=None, summary_writer=None):
        self.total_steps = total_steps
        self.examples_per_step = examples_per_step
        self.tokens_per_example = tokens_per_example
        self.flops_per_example = flops_per_example
        self.peak_flops = peak_flops
        self.summary_writer = summary_writer
        self._last_time = None
        self._last_step = None

    def start(self, step):
        self._last_time, self._last_step = time.perf_counter(), step

    def log(self, step, metrics, learning_rate, now=None):
        """Logs the window since the last call; `metrics` are means over its steps.

        `now` (a `time.perf_counter()` value) dates the end of the window when it ended
        inside a loop of several steps (see `Trainer.train_steps`); default: now.
        """
        now = time.perf_counter() if now is None else now
        steps = step - self._last_step
        seconds = max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        examples_per_second = steps * self.examples_per_step / seconds
        scalars = dict(metrics)
        scalars["learning_rate"] = learning_rate
        scalars["examples_per_second"] = examples_per_second
        scalars["tokens_per_second"] = examples_per_second * self.tokens_per_example
        parts = [f"step {step}/{self.total_steps}"]
        losses = [f"{k} {v:.4f}" for k, v in metrics.items() if k != "loss"]
        if "loss" in metrics:
            parts.append(f"loss {metrics['loss']:.4f}" + (f" ({', '.join(losses)})"
                                                          if losses else ""))
        parts.append(f"lr {learning_rate:.3e}")
        parts.append(f"{examples_per_second:,.1f} ex/s, "
                     f"{scalars['tokens_per_second']:,.0f} tok/s")
        if self.flops_per_example and self.peak_flops:
            scalars["mfu"] = examples_per_second * self.flops_per_example / self.peak_flops
            parts.append(f"MFU {100 * scalars['mfu']:.1f}%")
        if steps and step < self.total_steps:
            parts.append(f"ETA {_clock((self.total_steps - step) * seconds / steps)}")
        logging.info(" | ".join(parts))
        write_scalars(self.summary_writer, step, scalars)
        return scalars


