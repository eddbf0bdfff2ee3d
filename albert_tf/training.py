"""Training: strategies, the replicated train step and its loop call, checkpoints.

The generic pieces serve every task (pretraining here, GLUE / SQuAD / RACE fine-tuning):

- `configure_cpu_devices`, `create_strategy`, `set_mixed_precision`: where and how to run.
- `Trainer`: the replicated train step (forward, backward, optional gradient accumulation,
  cross-replica sum, the optimizer update), many steps per `tf.function` call (the
  original's `--iterations_per_loop`), XLA, and a replicated evaluation loop; any Keras
  model and loss function. `xla_train_step(trainer)` is one whole step under XLA.
- `TrainingCheckpoints`: `tf.train.CheckpointManager` state (model, optimizer, input
  position per worker) that a restarted run resumes from, at the same step.
- `peak_flops_per_second`: the peak FLOP/s of the devices a strategy runs on, that MFU is
  computed from (progress lines and TensorBoard scalars are `albert_tf.summaries`').

`albert_tf.training_loop` runs the training itself (input position, resume, checkpoints on
a schedule, progress, evaluation, the best checkpoint) for pretraining and fine-tuning alike.

Losses are normalised over the *global* batch. A task gives `batch_stats_fn(batch)` (sums
that depend only on the input, e.g. the number of examples or the total masked-LM weight) and
`loss_fn(model, batch, totals, training)`, where `totals` are those sums over every replica
and micro-batch of the step; each replica returns its share of the global loss, and the
shares add up to the loss of the whole batch. So the gradient is the same on one device, on
eight, or accumulated over micro-batches (up to float rounding), and equals the original's
single-device gradient.

`albert_tf.pretraining.run_pretraining` builds the original run_pretraining.py on these.
"""

import contextlib
import os
import re

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from albert_tf import files
from albert_tf.errors import UserError


# =========================================================================================
# Devices, strategies, precision
# =========================================================================================

class SettingsError(UserError, ValueError):
    """Settings (flags) that cannot work: found before any training starts."""


STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
# What `Trainer(jit_compile=True)` compiles (see `Trainer`'s `jit_scope`). The default is
# the faster on a CPU: benchmarks/pretraining.py's model (H 256, 4 layers, batch 8 x 128) ran
# 2.2-3.8 examples/s with the forward and backward pass compiled, 2.3-2.8 with the whole
# step, 3.3-6.0 without XLA (a shared 2-core CPU, two runs of two rounds each).
JIT_SCOPES = ("gradients", "step")
DEFAULT_JIT_SCOPE = "gradients"
PRECISION_POLICIES = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def configure_cpu_devices(count):
    """Splits the host CPU into `count` logical devices (to try replication without GPUs).

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        if len(tf.config.list_logical_devices("CPU")) == count:
            return
        raise RuntimeError(
            f"Cannot split the CPU into {count} logical devices: TensorFlow has already "
            "initialised its devices. Call configure_cpu_devices before anything else runs."
        ) from error


def create_strategy(distribution_strategy="one_device", num_gpus=None, tpu=None,
                    tpu_zone=None, gcp_project=None):
    """A `tf.distribute.Strategy` by name.

    Args:
      distribution_strategy: one of `STRATEGIES`:
        "one_device": the first GPU, else the CPU;
        "mirrored": all (or `num_gpus`) local GPUs, else every logical CPU device;
        "multi_worker_mirrored": the machines named by the `TF_CONFIG` environment variable;
        "tpu": the TPU named by `tpu` (a name or grpc:// address; "" for a local TPU VM).
      num_gpus: how many local GPUs to use (None: all; 0: none, run on the CPU).
      tpu, tpu_zone, gcp_project: TPU resolution, as the original's flags.
    """
    if distribution_strategy not in STRATEGIES:
        raise SettingsError(f"Unknown distribution strategy {distribution_strategy!r}; "
                            f"expected one of {STRATEGIES}.")
    # These two configure TensorFlow's runtime, so they come before anything lists devices.
    if distribution_strategy == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            logging.warning("multi_worker_mirrored without TF_CONFIG: running as one worker.")
        if num_gpus is not None:
            logging.warning("--num_gpus is ignored by multi_worker_mirrored (every local GPU "
                            "is used); restrict them with CUDA_VISIBLE_DEVICES.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution_strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=tpu or "", zone=tpu_zone, project=gcp_project)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise SettingsError(f"--num_gpus={num_gpus}, but TensorFlow sees {len(gpus)} GPU(s).")
        gpus = gpus[:num_gpus]
    if distribution_strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def set_mixed_precision(mixed_precision):
    """Sets the Keras global dtype policy: "none" (float32), "bf16" or "fp16".

    Call before building the model. Variables stay float32; fp16 also needs loss scaling,
    which `Trainer` does when its optimizer is a `keras.mixed_precision.LossScaleOptimizer`.
    """
    if mixed_precision not in PRECISION_POLICIES:
        raise SettingsError(f"Unknown mixed precision {mixed_precision!r}; expected one of "
                            f"{sorted(PRECISION_POLICIES)}.")
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[mixed_precision])


@contextlib.contextmanager
def mixed_precision_policy(mixed_precision):
    """`set_mixed_precision(mixed_precision)` while inside; the previous Keras global policy
    is restored on leaving (tests and benchmarks that compare precisions in one process)."""
    previous = keras.mixed_precision.global_policy()
    set_mixed_precision(mixed_precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def worker_info(strategy):
    """(worker index, number of workers, is chief) of this process in the strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 0, 1, True
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return 0, 1, True
    chiefs, workers = len(spec.get("chief", [])), len(spec.get("worker", []))
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not chiefs)
    index = task_id + (chiefs if task_type == "worker" else 0)
    return index, chiefs + workers, is_chief


# Dense peak FLOP/s per device: (16-bit mixed precision, float32 matmuls). The float32
# figure is TF32 where TensorFlow uses it by default (Ampere and later).
PEAK_FLOPS = {
    "H200": (989e12, 495e12),
    "H100": (989e12, 495e12),
    "A100": (312e12, 156e12),
    "L4": (121e12, 60e12),
    "A10": (125e12, 62.5e12),
    "V100": (125e12, 15.7e12),
    "T4": (65e12, 8.1e12),
}


def _cpu_peak_flops():
    """An estimate of the host CPU's float32 peak: cores x clock x FLOPs per cycle."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    mhz, flags = None, ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":")[1])
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        return None
    if not mhz:
        return None
    # Two FMA units of 8 (AVX2) or 16 (AVX-512) float32 lanes, 2 FLOPs per FMA.
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags else 8
    return cores * mhz * 1e6 * per_cycle


def peak_flops_per_second(strategy, mixed_precision="none", peak_tflops=None):
    """(total peak FLOP/s of the devices the strategy runs on, description) or (None, why).

    `peak_tflops` (per accelerator, or for the whole host CPU) overrides the table.
    """
    num_workers = worker_info(strategy)[1]
    gpus = tf.config.list_physical_devices("GPU")
    uses_gpus = gpus and any("GPU" in d.upper()
                             for d in strategy.extended.worker_devices)
    per_host_devices = strategy.num_replicas_in_sync // max(num_workers, 1)
    if peak_tflops:
        devices = per_host_devices * num_workers if uses_gpus else num_workers
        return peak_tflops * 1e12 * devices, f"{peak_tflops} TFLOP/s per device (flag)"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return None, "unknown TPU peak (pass --peak_tflops)"
    if uses_gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        for key, (half, single) in PEAK_FLOPS.items():
            if key in name.upper():
                peak = half if mixed_precision in ("bf16", "fp16") else single
                return peak * per_host_devices * num_workers, f"{name} x{per_host_devices}"
        return None, f"unknown GPU {name!r} (pass --peak_tflops)"
    peak = _cpu_peak_flops()
    if peak is None:
        return None, "unknown CPU peak (pass --peak_tflops)"
    return peak * num_workers, "CPU, estimated"


# =========================================================================================
# Checkpoints
# =========================================================================================

class CheckpointRestoreError(UserError, ValueError):
    """A training checkpoint that does not fit the model or optimizer being trained."""


def random_states(model):
    """The states of a Keras model's random generators (dropout), as `tf.Variable`s.

    Keras keeps them beside the weights (`model.variables` minus `model.weights`) where
    `tf.train.Checkpoint` does not see them; saving them makes a resumed run draw the same
    dropout masks as an uninterrupted one.
    """
    weights = {id(v) for v in model.weights}
    return [v.value if isinstance(v, keras.Variable) else v
            for v in model.variables if id(v) not in weights]


class TrainingCheckpoints:
    """Training state saved every few steps and restored on restart.

    The model (with its dropout generators' states), the optimizer (its step counter,
    moments, loss scale) and any other objects go to `<directory>/ckpt-<step>`, written by
    the chief; other workers write to a scratch directory that is removed, as tf.distribute
    requires every worker to save. Each worker's input position (its `tf.data` iterator)
    goes to `<directory>/input-worker-<i>/ckpt-<step>`, saved before the main checkpoint,
    which is written last and so marks a complete save.

    Args:
      directory: where the checkpoints live.
      strategy: the `tf.distribute.Strategy` of the run.
      max_to_keep: how many checkpoints to keep (`--keep_checkpoint_max`).
      **objects: the trackables to save, e.g. `model=model, optimizer=optimizer`.
    """

    def __init__(self, directory, strategy, max_to_keep=5, **objects):
        self.directory = os.fspath(directory)  # any tf.io.gfile filesystem
        self.worker_index, self.num_workers, self.is_chief = worker_info(strategy)
        for name, value in list(objects.items()):
            if isinstance(value, keras.layers.Layer) and random_states(value):
                objects[f"{name}_random_states"] = random_states(value)
        self._checkpoint = tf.train.Checkpoint(**objects)
        self._manager = None
        if self.is_chief:
            self._manager = tf.train.CheckpointManager(
                self._checkpoint, self.directory, max_to_keep=max_to_keep,
                checkpoint_name="ckpt")
        self._max_to_keep = max_to_keep
        self._input_checkpoint = None
        self._input_manager = None

    def track_iterator(self, iterator):
        """Saves and restores this worker's position in `iterator` with the state.

        `iterator` is a `tf.data` iterator (see `make_input_iterator`); the distributed
        iterators a TPU run needs cannot be saved, so there a restart re-reads the input
        from its beginning (with a warning).
        """
        if isinstance(iterator, tf.distribute.DistributedIterator):
            logging.warning("The input position of a distributed (TPU) iterator cannot be "
                            "checkpointed; a restarted run re-reads the input from the start.")
            return
        self._input_checkpoint = tf.train.Checkpoint(iterator=iterator)
        self._input_manager = tf.train.CheckpointManager(
            self._input_checkpoint,
            files.join(self.directory, f"input-worker-{self.worker_index}"),
            max_to_keep=self._max_to_keep, checkpoint_name="ckpt")

    @staticmethod
    def step_of(path):
        match = re.search(r"-(\d+)$", path or "")
        return int(match.group(1)) if match else None

    def latest(self):
        """The newest complete checkpoint prefix, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore(self, path=None):
        """Restores `path` (default: the latest); returns its step, or None if none exists."""
        path = path or self.latest()
        if path is None:
            return None
        try:
            self._checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointRestoreError(
                f"The training checkpoint {path} does not fit the model being trained: "
                f"{str(error).splitlines()[0][:500]}\nWas it written with another "
                "--albert_config_file, optimizer or precision? Use another --output_dir, or "
                "the settings it was written with.") from error
        step = self.step_of(path)
        if self._input_checkpoint is not None:
            input_path = files.join(self.directory, f"input-worker-{self.worker_index}",
                                    f"ckpt-{step}")
            if tf.io.gfile.exists(input_path + ".index"):
                self._input_checkpoint.restore(input_path).assert_existing_objects_matched()
            else:
                logging.warning("No saved input position for step %d of worker %d (%s): the "
                                "input restarts from the beginning.", step, self.worker_index,
                                input_path)
        return step

    def save(self, step):
        """Saves the state as step `step` (every worker must call this)."""
        if self._input_manager is not None:
            self._input_manager.save(checkpoint_number=step)
        if self.is_chief:
            path = self._manager.save(checkpoint_number=step)
        else:
            scratch = files.join(self.directory, f".scratch-worker-{self.worker_index}")
            self._checkpoint.write(files.join(scratch, "ckpt"))
            tf.io.gfile.rmtree(scratch)
            path = None
        return path


# =========================================================================================
# The replicated train and eval loops
# =========================================================================================

def _split_leading(t, parts):
    """[N, ...] -> [parts, N / parts, ...], static where the shape is known (for XLA)."""
    if t.shape.is_fully_defined():
        return tf.reshape(t, [parts, t.shape[0] // parts] + t.shape[1:].as_list())
    return tf.reshape(t, tf.concat([[parts, -1], tf.shape(t)[1:]], 0))


def make_input_iterator(strategy, dataset_fn, global_batch_size):
    """An iterator over this worker's share of the input, for `Trainer`.

    Args:
      strategy: the run's strategy.
      dataset_fn: `dataset_fn(batch_size, num_shards, shard_index) -> tf.data.Dataset` of
        batches of `batch_size` examples from input shard `shard_index` of `num_shards`.
      global_batch_size: examples per step over all replicas (divisible by their number).

    Returns a plain `tf.data` iterator of per-worker batches, which `Trainer` splits across
    the worker's replicas; unlike tf.distribute's own iterators it can be checkpointed, so a
    restarted run continues at the same input position. On TPUs, where the input must come
    through the strategy, a distributed iterator of per-replica batches.
    """
    index, workers, _ = worker_info(strategy)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        def per_pipeline(context):
            return dataset_fn(context.get_per_replica_batch_size(global_batch_size),
                              context.num_input_pipelines, context.input_pipeline_id)
        return iter(strategy.distribute_datasets_from_function(per_pipeline))
    return iter(dataset_fn(global_batch_size // workers, workers, index))


class NonFiniteLossError(UserError, RuntimeError):
    """Training produced a NaN or infinite loss."""


class Trainer:
    """Replicated training and evaluation of a Keras model with a global-batch loss.

    Args:
      strategy: the `tf.distribute.Strategy`; build the model and optimizer in its scope
        (and call `optimizer.build(model.trainable_variables)` there) before creating this.
      model: the Keras model.
      optimizer: a Keras optimizer that expects gradients already summed over replicas
        (`albert_tf.optimization` optimizers with `aggregate_gradients=False`), optionally
        wrapped in `keras.mixed_precision.LossScaleOptimizer` (fp16).
      loss_fn: `loss_fn(model, batch, totals, training) -> dict` of float32 scalars with a
        "loss" entry: this replica's (micro-)batch share of the global-batch loss; all entries
        must add up over replicas and micro-batches (they are summed for reporting).
      batch_stats_fn: `batch_stats_fn(batch) -> dict` of float32 sums over the batch that the
        normalisation needs (their global sums are `totals`).
      jit_compile: compile with XLA. Batches must have static shapes (drop the remainder).
      gradient_accumulation_steps: split each replica's batch into this many micro-batches
        and sum their gradients before one update (the per-replica batch must divide).
      jit_scope: what `jit_compile` compiles: "step", the whole per-replica step (forward,
        backward, accumulation, clipping, the optimizer update, loss scaling), or
        "gradients", the forward and backward pass only, the update running as plain
        TensorFlow ops. None: `DEFAULT_JIT_SCOPE`. With several replicas in sync (not on a
        TPU) the update's cross-replica sum cannot be compiled, and "step" falls back to
        "gradients".

    `jit_scope` tells what is compiled after construction ("step", "gradients" or None).
    """

    def __init__(self, strategy, model, optimizer, loss_fn, batch_stats_fn, jit_compile=False,
                 gradient_accumulation_steps=1, jit_scope=None):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batch_stats_fn = batch_stats_fn
        self.accumulation = int(gradient_accumulation_steps)
        if self.accumulation < 1:
            raise SettingsError(f"gradient_accumulation_steps must be >= 1, got "
                                f"{gradient_accumulation_steps}.")
        self.loss_scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
        scope = jit_scope or DEFAULT_JIT_SCOPE
        if scope not in JIT_SCOPES:
            raise SettingsError(f"Unknown jit_scope {jit_scope!r}; expected one of "
                                f"{JIT_SCOPES}.")
        if (jit_compile and scope == "step" and strategy.num_replicas_in_sync > 1
                and not isinstance(strategy, tf.distribute.TPUStrategy)):
            logging.info("XLA compiles the forward and backward pass only: the update's "
                         "sum over %d replicas cannot be compiled.",
                         strategy.num_replicas_in_sync)
            scope = "gradients"
        self.jit_scope = scope if jit_compile else None
        if self.jit_scope == "step":
            self._compute = self._compute_gradients
            self._replica_step = tf.function(self._replica_train_step, jit_compile=True)
        else:
            self._compute = tf.function(self._compute_gradients,
                                        jit_compile=self.jit_scope == "gradients")
            self._replica_step = self._replica_train_step
        self._train_step = tf.function(self._distributed_train_step)
        self._train_loop = tf.function(self._loop_train_steps)
        self._eval_fn = None

    # --- Per replica --------------------------------------------------------------------

    def _micro_step(self, batch, totals):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            metrics = self.loss_fn(self.model, batch, totals, True)
            loss = metrics["loss"]
            if self.loss_scaled:
                loss = self.optimizer.scale_loss(loss)
        return tape.gradient(loss, variables), metrics

    def _compute_gradients(self, batch, totals):
        """Gradients of this replica's loss share (summed over micro-batches) and metrics."""
        if self.accumulation == 1:
            return self._micro_step(batch, totals)
        k = self.accumulation
        micro = {name: _split_leading(t, k) for name, t in batch.items()}

        def micro_batch(i):
            return {name: t[i] for name, t in micro.items()}

        first, metrics = self._micro_step(micro_batch(0), totals)
        # Dense gradients are summed. A gathered table's IndexedSlices gradient keeps the rows
        # of every micro-batch, as one big batch's gradient would: the clip norm counts each
        # looked-up row (see albert_tf.optimization), so the update equals the big batch's.
        kinds = ["none" if g is None else "sparse" if isinstance(g, tf.IndexedSlices)
                 else "dense" for g in first]

        def pick(grads, kind):
            return [g for g, k_ in zip(grads, kinds) if k_ == kind]

        dense = pick(first, "dense")
        values = [tf.TensorArray(g.values.dtype, size=k, element_shape=g.values.shape)
                  .write(0, g.values) for g in pick(first, "sparse")]
        indices = [tf.TensorArray(g.indices.dtype, size=k, element_shape=g.indices.shape)
                   .write(0, g.indices) for g in pick(first, "sparse")]

        def body(i, dense, values, indices, metrics):
            grads, more = self._micro_step(micro_batch(i), totals)
            dense = [a + tf.convert_to_tensor(g) for a, g in zip(dense, pick(grads, "dense"))]
            sparse = pick(grads, "sparse")
            values = [ta.write(i, g.values) for ta, g in zip(values, sparse)]
            indices = [ta.write(i, g.indices) for ta, g in zip(indices, sparse)]
            metrics = {name: metrics[name] + more[name] for name in metrics}
            return i + 1, dense, values, indices, metrics

        _, dense, values, indices, metrics = tf.while_loop(
            lambda i, *_: i < k, body, (tf.constant(1), dense, values, indices, metrics))
        dense, sparse = iter(dense), iter(zip(values, indices, pick(first, "sparse")))
        grads = []
        for kind in kinds:
            if kind == "dense":
                grads.append(next(dense))
            elif kind == "sparse":
                v, i, g = next(sparse)
                grads.append(tf.IndexedSlices(v.concat(), i.concat(), g.dense_shape))
            else:
                grads.append(None)
        return grads, metrics

    def _replica_train_step(self, batch):
        context = tf.distribute.get_replica_context()
        totals = self.batch_stats_fn(batch)
        if context.num_replicas_in_sync > 1:
            totals = context.all_reduce(tf.distribute.ReduceOp.SUM, totals)
        grads, metrics = self._compute(batch, totals)
        variables = self.model.trainable_variables
        present = [i for i, g in enumerate(grads) if g is not None]
        if context.num_replicas_in_sync > 1:
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                        [grads[i] for i in present])
            grads = list(grads)
            for i, g in zip(present, summed):
                grads[i] = g
        self.optimizer.apply_gradients(
            [(grads[i], variables[i]) for i in present])
        return metrics

    # --- Across replicas ----------------------------------------------------------------

    def _next_per_replica(self, iterator):
        """The next batch, split into one part per local replica (inside tf.function)."""
        batch = next(iterator)
        local_replicas = len(self.strategy.extended.worker_devices)
        if isinstance(iterator, tf.distribute.DistributedIterator) or local_replicas == 1:
            return batch

        def part(context):
            # Replicas of this worker have consecutive ids in the sync group.
            index = context.replica_id_in_sync_group % local_replicas
            return {name: tf.split(t, local_replicas)[index] for name, t in batch.items()}

        return self.strategy.experimental_distribute_values_from_function(part)

    def _distributed_train_step(self, iterator):
        per_replica = self.strategy.run(self._replica_step,
                                        args=(self._next_per_replica(iterator),))
        return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()}

    def _loop_train_steps(self, iterator, num_steps):
        # All steps run inside this one tf.function call: one host round trip per loop
        # (the original's iterations_per_loop on TPUs). Each step's metrics are kept.
        first = self._train_step(iterator)
        arrays = {name: tf.TensorArray(value.dtype, size=num_steps).write(0, value)
                  for name, value in first.items()}
        for i in tf.range(1, num_steps):
            metrics = self._train_step(iterator)
            arrays = {name: arrays[name].write(i, metrics[name]) for name in arrays}
        return {name: array.stack() for name, array in arrays.items()}

    def train_steps(self, iterator, num_steps):
        """Runs `num_steps` (>= 1) steps in one call into the compiled loop.

        Returns {metric name: float64 array [num_steps]}, each step's value (summed over
        replicas). Raises NonFiniteLossError if any step's loss is NaN or infinite.
        """
        per_step = self._train_loop(iterator, tf.constant(num_steps, tf.int32))
        per_step = {name: np.asarray(value, np.float64) for name, value in per_step.items()}
        bad = np.flatnonzero(~np.isfinite(per_step["loss"]))
        if bad.size:
            raise NonFiniteLossError(
                f"The loss became {per_step['loss'][bad[0]]} at step {bad[0] + 1} of the "
                f"last {num_steps}.")
        return per_step

    def train(self, iterator, num_steps):
        """Runs `num_steps` (>= 1) steps; returns the metrics' means over them (floats).

        Raises NonFiniteLossError if any step's loss is NaN or infinite.
        """
        per_step = self.train_steps(iterator, num_steps)
        return {name: float(np.mean(values)) for name, values in per_step.items()}

    def evaluate(self, iterator, num_steps, eval_fn, step_fn=None):
        """Sums `eval_fn(model, batch)` (a dict of additive scalars) over replicas and steps.

        `step_fn(sums of one step) -> dict` adds per-step values (summed over steps too).
        Returns the sums as floats.
        """
        if self._eval_fn is None or self._eval_fn[0] is not eval_fn:
            def replica(batch):
                return eval_fn(self.model, batch)

            def one_step(it):
                per_replica = self.strategy.run(replica, args=(self._next_per_replica(it),))
                sums = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for name, v in per_replica.items()}
                if step_fn is not None:
                    sums.update(step_fn(sums))
                return sums

            step = tf.function(one_step)

            @tf.function
            def loop(it, n):
                sums = step(it)
                for _ in tf.range(n - 1):
                    more = step(it)
                    sums = {name: sums[name] + more[name] for name in sums}
                return sums

            self._eval_fn = (eval_fn, loop)
        sums = self._eval_fn[1](iterator, tf.constant(num_steps, tf.int32))
        return {name: float(value) for name, value in sums.items()}


def xla_train_step(trainer):
    """One complete train step of `trainer` compiled as one XLA computation.

    Returns `step(batch) -> metrics`, a `tf.function(jit_compile=True)` running the
    trainer's per-replica step on `batch` (a dict of tensors with static shapes, as one
    replica's input): forward, backward, gradient accumulation, global-norm clipping, the
    optimizer update (LAMB/AdamW) and loss scaling. It fails to compile if any op of the
    step cannot run inside XLA (a host-side op, a dynamic shape). For a one-replica
    strategy (`OneDeviceStrategy`); tests use it to check that a task's step compiles and
    updates the variables as the plain step does, and
    `step.experimental_get_compiler_ir(batch)(stage="hlo")` gives the compiled program.
    """
    strategy = trainer.strategy
    if strategy.num_replicas_in_sync != 1:
        raise SettingsError(f"xla_train_step needs one replica; the strategy has "
                            f"{strategy.num_replicas_in_sync}.")

    @tf.function(jit_compile=True)
    def step(batch):
        return strategy.run(trainer._replica_train_step, args=(batch,))

    return step


def learning_rate_at(optimizer, step):
    """The learning rate the optimizer uses at (pre-increment) step `step`, as a float."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = inner._learning_rate
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(schedule(tf.constant(step, tf.int64)))
    return float(inner.learning_rate)
