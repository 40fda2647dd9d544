"""Where and how TensorFlow computes: precision, XLA and the device strategy, one vocabulary
for train, export and detect, and the chosen settings as a record.

--mixed_precision takes `auto`, `off`, `bfloat16` or `float16` everywhere; `auto` is bfloat16
on CPUs with AVX512_BF16 or AMX and GPUs from Ampere on, float16 on older GPUs, float32
elsewhere. --xla takes `auto`, `on` or `off`; `auto` is on with a GPU and off on a CPU, where
it measured 2-4x slower for this model. The Keras dtype policy is global state, so it is only
ever set inside `policy_scope`, which puts the previous one back whatever happens.
"""

import contextlib
import dataclasses
import json
import os
import socket

import keras
import tensorflow as tf

from faceswap_tf.errors import UserError

PRECISIONS = ("auto", "off", "bfloat16", "float16")
XLA_CHOICES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """What a run computed with: the Keras policy (`float32`, `mixed_bfloat16` or
    `mixed_float16`), XLA, and the strategy with its number of replicas."""

    policy: str
    xla: bool
    strategy: str = "default"
    replicas: int = 1

    @property
    def label(self) -> str:
        return f"{self.policy}, xla {'on' if self.xla else 'off'}" + (
            f", {self.strategy} over {self.replicas} replicas" if self.replicas > 1 else "")


def check_choices(mixed_precision: str, xla: str = "auto") -> None:
    """UserError for a --mixed_precision or --xla outside the vocabulary."""
    if mixed_precision not in PRECISIONS:
        raise UserError(f"--mixed_precision={mixed_precision}: choose {', '.join(PRECISIONS)}")
    if xla not in XLA_CHOICES:
        raise UserError(f"--xla={xla}: choose {', '.join(XLA_CHOICES)}")


def resolve_precision(choice: str) -> str:
    """The Keras dtype policy for a --mixed_precision choice."""
    check_choices(choice)
    if choice == "off":
        return "float32"
    if choice in ("float16", "bfloat16"):
        return f"mixed_{choice}"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        major = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def resolve_xla(choice: str) -> bool:
    check_choices("auto", choice)
    if choice == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return choice == "on"


def compute_dtype(policy: str) -> str:
    """`float32`, `bfloat16` or `float16`: what a policy computes in."""
    return policy.removeprefix("mixed_")


@contextlib.contextmanager
def policy_scope(policy: str):
    """Layers built inside compute in `policy`; the previous global policy is restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def resolve_strategy(worker_timeout: float = 30.0) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster, MirroredStrategy over
    all local GPUs when there are several, else the default strategy (one device). In a
    cluster, a worker silent for `worker_timeout` seconds (killed, crashed, cut off) counts
    as gone: the collective ops of the others then fail, and they exit, instead of waiting
    for it forever."""
    if os.environ.get("TF_CONFIG"):
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"TF_CONFIG: not a JSON object with a 'cluster' ({error})") from None
        if sum(len(tasks) for tasks in cluster.values()) > 1:
            _configure_coordination(cluster, worker_timeout)
            return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy, policy: str, xla: bool) -> Runtime:
    name = type(strategy).__name__
    name = "default" if name == "_DefaultDistributionStrategy" else name
    return Runtime(policy=policy, xla=xla, strategy=name, replicas=strategy.num_replicas_in_sync)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the checkpoints, summaries and previews."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    first_worker = resolver.task_type == "worker" and resolver.task_id == 0
    return first_worker and "chief" not in resolver.cluster_spec().jobs


def unreachable_tasks(strategy: tf.distribute.Strategy, timeout: float = 1.0) -> list[str]:
    """The other tasks of `strategy`'s cluster that no longer accept a connection at their
    address (a killed worker's port is closed), named as TensorFlow names devices
    (`/job:worker/replica:0/task:1`). Empty outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return []
    gone = []
    for job, tasks in resolver.cluster_spec().as_dict().items():
        if job == "evaluator":  # not part of the training's collectives
            continue
        tasks = tasks if isinstance(tasks, dict) else dict(enumerate(tasks))
        for index, address in sorted(tasks.items()):
            if (job, index) == (resolver.task_type, resolver.task_id):
                continue
            host, _, port = address.rpartition(":")
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            except (OSError, ValueError, OverflowError):
                gone.append(f"/job:{job}/replica:0/task:{index}")
    return gone


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as info:
            return any("avx512_bf16" in line or "amx_bf16" in line for line in info if line.startswith("flags"))
    except OSError:
        return False


def _configure_coordination(cluster: dict, timeout: float) -> None:
    """Configures TensorFlow's coordination service as MultiWorkerMirroredStrategy would (it
    keeps this configuration when one exists), with `timeout` for heartbeats and for the
    barrier at exit. Through TensorFlow's internals: where they moved, TF's defaults stay."""
    try:
        from tensorflow.python.distribute import collective_all_reduce_strategy as mwms
        from tensorflow.python.eager import context

        jobs = [mwms.coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
                for job in ("chief", "worker") if job in cluster]
        leader = "/job:chief/replica:0/task:0" if "chief" in cluster else "/job:worker/replica:0/task:0"
        context.context().configure_coordination_service(
            service_type="standalone", service_leader=leader, coordinated_jobs=jobs,
            heartbeat_timeout_in_ms=int(timeout * 1000), shutdown_barrier_timeout_in_ms=int(timeout * 1000))
    except (ImportError, AttributeError, TypeError):
        pass
