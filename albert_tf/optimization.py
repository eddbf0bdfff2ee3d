"""The original ALBERT optimizers and learning-rate schedule, as Keras 3 objects.

The original release trains with its own `AdamWeightDecayOptimizer` (optimization.py) and
`LAMBOptimizer` (lamb_optimizer.py), wrapped by `create_optimizer`, whose rules no library
follows exactly:

- gradients are clipped to a global norm of 1.0 over the full gradient list, before the update
  (with `tf.clip_by_global_norm` itself: a gathered embedding's IndexedSlices gradient counts
  each looked-up row separately in the norm, as in the original off TPU);
- Adam moments **without** bias correction, epsilon 1e-6 outside the square root;
- decoupled weight decay 0.01 added to the update *before* the learning-rate multiply, skipped
  for every variable whose name contains "LayerNorm", "layer_norm" or "bias" (`re.search`);
- LAMB: one trust ratio ||theta|| / ||update|| per variable tensor (1 when either norm is 0),
  skipped for the same variables, no clamp;
- learning rate: linear warm-up from 0, then polynomial decay on the global step, with the
  original's jump at the end of warm-up (see `WarmupPolynomialDecay`).

`create_optimizer` returns a `keras.optimizers.Optimizer` that does all of this inside
`apply_gradients`, so one `optimizer.apply_gradients(zip(grads, variables))` is the original
train op. Under a `tf.distribute` strategy the per-replica gradients are summed across replicas
(Keras's convention) *before* the global-norm clip, so the clip sees the gradient of the whole
batch, as the original does on one device. The variable counter `optimizer.iterations` is the
original global step: the learning rate is read from its value before the increment.

Example:

    optimizer = create_optimizer(init_lr=0.00176, num_train_steps=125000,
                                 num_warmup_steps=3125, optimizer="lamb")
    with tf.GradientTape() as tape:
        loss = ...
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
"""

import re

import keras
import tensorflow as tf

# The exclusion list `create_optimizer` hard-codes in the original, for weight decay and (as
# LAMB falls back to it) for the trust ratio.
ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")

_SERIALIZATION_PACKAGE = "albert_tf"


def variable_name(variable):
    """The name the exclusion patterns are matched against.

    A Keras variable's `path` (which our models make equal to the original TF1 name, e.g.
    `bert/embeddings/LayerNorm/gamma`), else a `tf.Variable`'s name without its `:0` suffix,
    as the original strips it (`^(.*):\\d+$`).
    """
    path = getattr(variable, "path", None)
    if path:
        return path
    name = variable.name
    match = re.match(r"^(.*):\d+$", name)
    return match.group(1) if match else name


def _matches_any(name, patterns):
    return any(re.search(pattern, name) is not None for pattern in patterns or ())


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The original learning-rate schedule: linear warm-up, then polynomial decay.

    With g the (pre-increment) step, N `decay_steps`, W `warmup_steps`, s0
    `start_warmup_step`, p `power` and lr0 `initial_learning_rate`, in float32 and in the
    original's order of operations:

        decay(g) = lr0 * (1 - min(g, N) / N) ** p          # on the raw g, not g - s0
        if W:  k = int32(g) - s0
               lr = decay(g)                 if k >= W
                    lr0 * float(k) / float(W) otherwise
        else:  lr = decay(g)

    Quirks kept on purpose (they are how the released models were trained): the rate is
    exactly 0 at the first step (k = 0); the last warm-up value is lr0 * (W - 1) / W and the
    next step jumps to decay(W), so lr0 itself is never used; for g < s0 the rate is negative
    (s0 is meant for resuming a run already past s0: warm-up restarts while decay goes on).

    Args:
      initial_learning_rate: lr0 (`--learning_rate`).
      decay_steps: N (`--num_train_steps`), > 0; the rate reaches 0 at step N and stays there.
      warmup_steps: W (`--num_warmup_steps`); 0 means no warm-up.
      power: p (`--poly_power`).
      start_warmup_step: s0 (`--start_warmup_step`).
      name: name scope of the ops.

    Call with a scalar integer step tensor; returns a float32 scalar.
    """

    def __init__(self, initial_learning_rate, decay_steps, warmup_steps=0, power=1.0,
                 start_warmup_step=0, name="WarmupPolynomialDecay"):
        super().__init__()
        if decay_steps <= 0:
            raise ValueError(
                f"decay_steps (num_train_steps) must be > 0, got {decay_steps}: the "
                "polynomial decay divides by it.")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps (num_warmup_steps) must be >= 0, got {warmup_steps}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.start_warmup_step = int(start_warmup_step)
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "WarmupPolynomialDecay"):
            step = tf.convert_to_tensor(step)
            lr0 = tf.constant(self.initial_learning_rate, tf.float32)
            # tf.compat.v1.train.polynomial_decay(end_learning_rate=0, cycle=False).
            global_step = tf.cast(step, tf.float32)
            decay_steps = tf.constant(self.decay_steps, tf.float32)
            fraction = tf.minimum(global_step, decay_steps) / decay_steps
            learning_rate = (lr0 - 0.0) * tf.pow(1.0 - fraction, self.power) + 0.0
            if self.warmup_steps:
                # The original compares int32 steps, then mixes the two rates with a float mask.
                steps_into_warmup = tf.cast(step, tf.int32) - self.start_warmup_step
                warmup_steps = tf.constant(self.warmup_steps, tf.int32)
                done = (tf.cast(steps_into_warmup, tf.float32)
                        / tf.cast(warmup_steps, tf.float32))
                warmup_learning_rate = self.initial_learning_rate * done
                is_warmup = tf.cast(steps_into_warmup < warmup_steps, tf.float32)
                learning_rate = ((1.0 - is_warmup) * learning_rate
                                 + is_warmup * warmup_learning_rate)
            return learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "start_warmup_step": self.start_warmup_step,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay, as the original `AdamWeightDecayOptimizer`.

    For each variable theta with (aggregated, clipped) gradient g, learning rate lr:

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        u = m / (sqrt(v) + epsilon)                  # no bias correction (original)
        u += weight_decay_rate * theta               # unless the name is excluded
        theta -= lr * u

    With `bias_correction=True`, m and v in `u` are divided by (1 - beta**t), t the 1-based
    update count (the textbook Adam / LAMB paper); the stored moments stay uncorrected.

    Args:
      learning_rate: float or a `LearningRateSchedule` called with the step before increment.
      weight_decay_rate: decoupled decay coefficient (0 disables it).
      beta_1, beta_2, epsilon: Adam constants; epsilon is added outside the square root.
      exclude_from_weight_decay: regular expressions; a variable whose name (see
        `variable_name`) matches any of them (`re.search`) gets no weight decay.
      bias_correction: use Adam's bias-corrected moments (not the original's rule).
      global_clipnorm: if set, clip the gradient list to this global norm as
        `tf.clip_by_global_norm` does, after summing across replicas.
      aggregate_gradients: sum gradients across replicas inside `apply_gradients` (Keras's
        convention). Set False when the caller already all-reduced them.
      name: name of the optimizer (and of its variables' scope).
      **kwargs: other `keras.optimizers.Optimizer` arguments (`use_ema`, `loss_scale_factor`).

    Slots: `adam_m` and `adam_v` per variable (float32, variable shape), as the original's
    `<name>/adam_m` and `<name>/adam_v` (see `original_slot_variables`).
    """

    def __init__(self, learning_rate=0.001, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None, bias_correction=False,
                 global_clipnorm=None, aggregate_gradients=True, name="AdamWeightDecay",
                 **kwargs):
        for unsupported, why in (
                ("clipnorm", "per-variable clipping is not the original's rule; use "
                             "global_clipnorm"),
                ("clipvalue", "value clipping is not the original's rule; use global_clipnorm"),
                ("weight_decay", "Keras's decay is applied outside the update; use "
                                 "weight_decay_rate"),
                ("gradient_accumulation_steps",
                 "Keras would step the learning-rate schedule on micro-batches; accumulate "
                 "in the training loop (albert_tf.training, --gradient_accumulation_steps)")):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f"{type(self).__name__} does not take {unsupported}="
                    f"{kwargs[unsupported]!r}: {why}.")
            kwargs.pop(unsupported, None)
        super().__init__(learning_rate=learning_rate, global_clipnorm=global_clipnorm,
                         name=name, **kwargs)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.exclude_from_weight_decay = (
            list(exclude_from_weight_decay) if exclude_from_weight_decay else None)
        self.bias_correction = bool(bias_correction)
        self.aggregate_gradients = bool(aggregate_gradients)

    # --- Which rule applies to which variable -------------------------------------------

    def _uses_weight_decay(self, name):
        if not self.weight_decay_rate:
            return False
        return not _matches_any(name, self.exclude_from_weight_decay)

    def _uses_layer_adaptation(self, name):
        del name
        return False

    # --- State ---------------------------------------------------------------------------

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._adam_m = self.add_optimizer_variables(variables, "adam_m")
        self._adam_v = self.add_optimizer_variables(variables, "adam_v")
        names = [variable_name(v) for v in variables]
        self._variable_names = tuple(names)
        self._decay_flags = tuple(self._uses_weight_decay(n) for n in names)
        self._adaptation_flags = tuple(self._uses_layer_adaptation(n) for n in names)

    def original_slot_variables(self):
        """`{"<original variable name>/adam_m" | "/adam_v": slot variable}` for export."""
        slots = {}
        for name, m, v in zip(self._variable_names, self._adam_m, self._adam_v):
            slots[f"{name}/adam_m"] = m
            slots[f"{name}/adam_v"] = v
        return slots

    # --- Update --------------------------------------------------------------------------

    def _clip_gradients(self, grads):
        # Keras would clip here, per replica and before the cross-replica sum; the original
        # clips the gradient of the whole batch, so `_backend_update_step` does it instead.
        return grads

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        replica_context = tf.distribute.get_replica_context()
        if (self.aggregate_gradients and replica_context is not None
                and replica_context.num_replicas_in_sync > 1):
            grads = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.global_clipnorm:
            # tf.clip_by_global_norm itself, on the gradients as they come: an embedding
            # looked up with a gather has an IndexedSlices gradient whose norm is taken over
            # its un-merged rows (a row looked up twice counts twice). The original does the
            # same (it gathers unless use_one_hot_embeddings, i.e. off TPU), so the clip
            # scale, and hence every update, matches it bit for bit.
            grads, _ = tf.clip_by_global_norm(grads, self.global_clipnorm)
        # The moment arithmetic densifies IndexedSlices (as the original's tf.multiply does).
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]
        tf_variables = [v.value if isinstance(v, keras.Variable) else v
                        for v in trainable_variables]
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy,
            list(zip(grads, tf_variables)), learning_rate)

    def _step_size(self, index, variable, update, learning_rate):
        """lr times any per-variable factor (LAMB's trust ratio)."""
        del index, variable, update
        return learning_rate

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m = self._adam_m[index]
        v = self._adam_v[index]
        dtype = variable.dtype
        grad = tf.cast(gradient, dtype)
        learning_rate = tf.cast(learning_rate, dtype)

        next_m = tf.multiply(self.beta_1, m) + tf.multiply(1.0 - self.beta_1, grad)
        next_v = tf.multiply(self.beta_2, v) + tf.multiply(1.0 - self.beta_2, tf.square(grad))
        if self.bias_correction:
            step = tf.cast(self.iterations + 1, dtype)
            m_hat = next_m / (1.0 - tf.pow(tf.constant(self.beta_1, dtype), step))
            v_hat = next_v / (1.0 - tf.pow(tf.constant(self.beta_2, dtype), step))
            update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        else:
            update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self._decay_flags[index]:
            update += self.weight_decay_rate * variable
        step_size = self._step_size(index, variable, update, learning_rate)
        next_variable = variable - step_size * update

        self.assign(variable, next_variable)
        self.assign(m, next_m)
        self.assign(v, next_v)

    def get_config(self):
        config = super().get_config()
        for unsupported in ("clipnorm", "clipvalue", "weight_decay",
                            "gradient_accumulation_steps"):
            config.pop(unsupported, None)
        config.update({
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "exclude_from_weight_decay": self.exclude_from_weight_decay,
            "bias_correction": self.bias_correction,
            "aggregate_gradients": self.aggregate_gradients,
        })
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class Lamb(AdamWeightDecay):
    """LAMB as the original `LAMBOptimizer`: `AdamWeightDecay`'s update times a trust ratio.

    For each variable not excluded from layer adaptation:

        r = ||theta|| / ||u||   if both norms are > 0, else 1    # whole tensor, pre-update
        theta -= r * lr * u                                       # u includes the decay term

    One scalar ratio per variable tensor, no clamp. A shared (grouped) ALBERT layer gets one
    ratio from its gradient summed over all the layers that reuse it.

    Args:
      exclude_from_layer_adaptation: regular expressions of variables without a trust ratio;
        when empty or None the weight-decay exclusions are used (the original's fallback).
      Other arguments as `AdamWeightDecay`.
    """

    def __init__(self, learning_rate=0.001, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None,
                 exclude_from_layer_adaptation=None, bias_correction=False,
                 global_clipnorm=None, aggregate_gradients=True, name="Lamb", **kwargs):
        super().__init__(
            learning_rate=learning_rate, weight_decay_rate=weight_decay_rate, beta_1=beta_1,
            beta_2=beta_2, epsilon=epsilon, exclude_from_weight_decay=exclude_from_weight_decay,
            bias_correction=bias_correction, global_clipnorm=global_clipnorm,
            aggregate_gradients=aggregate_gradients, name=name, **kwargs)
        self._explicit_layer_adaptation_exclusions = (
            list(exclude_from_layer_adaptation) if exclude_from_layer_adaptation else None)
        self.exclude_from_layer_adaptation = (
            self._explicit_layer_adaptation_exclusions or self.exclude_from_weight_decay)

    def _uses_layer_adaptation(self, name):
        # Not gated on weight_decay_rate, unlike the decay itself (original behaviour).
        return not _matches_any(name, self.exclude_from_layer_adaptation)

    def _step_size(self, index, variable, update, learning_rate):
        if not self._adaptation_flags[index]:
            return learning_rate
        w_norm = tf.norm(variable)
        u_norm = tf.norm(update)
        ratio = tf.where(w_norm > 0.0, tf.where(u_norm > 0.0, w_norm / u_norm, 1.0), 1.0)
        return ratio * learning_rate

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = self._explicit_layer_adaptation_exclusions
        return config


OPTIMIZERS = {"adamw": AdamWeightDecay, "lamb": Lamb}


def create_optimizer(init_lr, num_train_steps, num_warmup_steps, optimizer="adamw",
                     poly_power=1.0, start_warmup_step=0, bias_correction=False,
                     weight_decay_rate=0.01, clip_norm=1.0, beta_1=0.9, beta_2=0.999,
                     epsilon=1e-6, exclude_from_weight_decay=ORIGINAL_EXCLUDE_FROM_WEIGHT_DECAY,
                     **kwargs):
    """The optimizer of the original `optimization.create_optimizer`, as a Keras optimizer.

    Its `apply_gradients` is the original train op: clip to global norm `clip_norm`, the
    AdamW or LAMB update with the original constants at the `WarmupPolynomialDecay` rate,
    and the step (`optimizer.iterations`) + 1.

    Args:
      init_lr: peak learning rate lr0 (`--learning_rate`).
      num_train_steps: N, where the polynomial decay reaches 0.
      num_warmup_steps: W; 0 disables warm-up.
      optimizer: "adamw" (the original function's default, used by the fine-tuning
        scripts) or "lamb" (run_pretraining.py's `--optimizer` default).
      poly_power: decay power p.
      start_warmup_step: s0, the step at which warm-up (re)starts.
      bias_correction: Adam bias correction (off in the original).
      weight_decay_rate, clip_norm, beta_1, beta_2, epsilon, exclude_from_weight_decay:
        the constants the original hard-codes (0.01, 1.0, 0.9, 0.999, 1e-6,
        LayerNorm/layer_norm/bias). `clip_norm=None` disables clipping.
      **kwargs: passed to the optimizer class (e.g. `aggregate_gradients`, `name`).

    Returns:
      An `AdamWeightDecay` or `Lamb` instance.

    Raises:
      ValueError: unknown `optimizer` name or a non-positive `num_train_steps`.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {optimizer!r}; expected one of {sorted(OPTIMIZERS)}.")
    schedule = WarmupPolynomialDecay(
        initial_learning_rate=init_lr, decay_steps=num_train_steps,
        warmup_steps=num_warmup_steps, power=poly_power, start_warmup_step=start_warmup_step)
    return OPTIMIZERS[optimizer](
        learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=beta_1,
        beta_2=beta_2, epsilon=epsilon, exclude_from_weight_decay=exclude_from_weight_decay,
        bias_correction=bias_correction, global_clipnorm=clip_norm, **kwargs)
