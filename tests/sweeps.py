"""A sweep and a comparison shared by the executor tests (test_executors.py, test_ray.py)."""

TIMINGS = ("seconds", "train_seconds", "latency_b1_ratio", "latency_b256_ratio")


def comparable(points):
    """Sweep points without their timings (which differ from run to run)."""
    return [{k: v for k, v in p.items() if k not in TIMINGS} for p in points]


def stored_points(folder):
    """``{file name: bytes}`` of the finished point files in ``folder`` (a sweep's ``points/``). A writer's
    temporary (``.NAME.XXXX.tmp.json``, renamed into place when complete) is not a point: it may vanish
    while being listed, or stay behind a killed worker."""
    finished = {}
    for path in folder.iterdir():
        if not path.name.startswith("."):
            finished[path.name] = path.read_bytes()
    return finished


def _executor_sweep():
    from prunekit.schedules import Recovery
    from prunekit.study import SweepConfig
    from prunekit.training import TrainConfig

    tiny = TrainConfig(epochs=0.05, batch_size=256, lr=0.02, lr_schedule="cosine")
    return SweepConfig(model="lenet300", methods=("weight", "unit"), sparsities=(50, 90),
                       schedules=("oneshot@random", "iterative"), recovery=Recovery(iterative=tiny))


EXECUTOR_SWEEP = _executor_sweep()
"""The sweep the executor tests run everywhere: random masks (seeded per level) and a chain, both methods."""


