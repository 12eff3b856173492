"""What a plot draws of a curve: downsampled, smoothed (EMA); and the ETA from recent steps."""
from __future__ import annotations

from typing import Mapping, Sequence

from aakit.tui.model.rows import Series

def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> Series:
    """At most ``max_points`` points: consecutive points are averaged in equal buckets.

    Averaging (rather than striding) keeps the shape of a noisy per-step loss curve and
    smooths it a little, which is what one wants to see in a terminal-sized plot.
    """
    n = min(len(xs), len(ys))
    if n <= max_points:
        return tuple(float(x) for x in xs[:n]), tuple(float(y) for y in ys[:n])
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(max_points):
        lo, hi = b * n // max_points, (b + 1) * n // max_points
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return tuple(out_x), tuple(out_y)


#: Weight of the past in the smoothed loss curves (:func:`ema`), as TensorBoard's slider.
EMA_WEIGHT = 0.9


def ema(ys: Sequence[float], weight: float = EMA_WEIGHT) -> tuple[float, ...]:
    """The exponential moving average of ``ys`` (``weight`` of the past), debiased.

    Debiased as TensorBoard's smoothing (and Adam's moments): the average starts from zero
    and is divided by ``1 - weight ** (i + 1)``, so the first points are not pulled down.
    """
    out: list[float] = []
    acc = 0.0
    for i, y in enumerate(ys):
        acc = weight * acc + (1 - weight) * float(y)
        out.append(acc / (1 - weight ** (i + 1)))
    return tuple(out)


def smooth_series(series: Mapping[str, Series], weight: float = EMA_WEIGHT) -> dict[str, Series]:
    """Each ``(xs, ys)`` with its ``ys`` replaced by their :func:`ema`."""
    return {k: (xs, ema(ys, weight)) for k, (xs, ys) in series.items()}


def estimate_eta(
    points: Sequence[tuple[float, float]], steps_total: int | None, now: float | None = None
) -> float | None:
    """Seconds left, from the speed over the recent ``(step, time)`` points.

    The speed is measured over the last points only (up to 50), so a run that slowed down
    (another job on the GPU) is not judged by its early pace. Time elapsed since the last
    record is subtracted, clamped at zero.
    """
    if not steps_total or len(points) < 2:
        return None
    recent = points[-50:]
    (s0, t0), (s1, t1) = recent[0], recent[-1]
    if t1 <= t0 or s1 <= s0:
        return None
    rate = (s1 - s0) / (t1 - t0)
    left = max(0.0, steps_total - s1) / rate
    if now is not None:
        left -= max(0.0, now - t1)
    return max(0.0, left)
