"""Is this machine's CPU shared? Two probes behind the notes in docs/performance.md.

1. Free cores: the same pure-Python busy loop in 1 process, then in N processes at once
   (N = cpu_count). On N idle cores the N copies take as long as one; if other programs hold
   cores, they take longer (wall time ratio ~ N / free cores).
2. torch intra-op threads: the AA loss (about a thousand small tensor ops) forward + backward
   at the embedded preset's size, with 1 thread and with cpu_count threads, interleaved. When a
   core is busy elsewhere, every parallel op waits for a descheduled thread.

    python benchmarks/oversubscription.py     # about a minute

Nothing is written; the figures are printed.
"""
from __future__ import annotations

import multiprocessing
import os
import statistics
import time


def _busy(n: int) -> float:
    """CPU-bound loop; returns its own wall time."""
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i % 7
    return time.perf_counter() - t


def free_core_probe(n_loop: int = 6_000_000) -> tuple[float, float]:
    """(wall time of 1 copy, wall time of cpu_count copies at once)."""
    one = _busy(n_loop)
    cores = os.cpu_count() or 1
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        pool.map(_busy, [1000] * cores)  # start the workers first
        t = time.perf_counter()
        pool.map(_busy, [n_loop] * cores)
        many = time.perf_counter() - t
    return one, many


def thread_probe(repeats: int = 5) -> dict[int, float]:
    """Median seconds of the AA loss forward + backward per torch thread count."""
    import torch

    from aakit.method import losses

    g = torch.Generator().manual_seed(0)
    prob = torch.randn(8, 11, 41, 41, generator=g).softmax(1).requires_grad_(True)
    label = torch.randint(0, 11, (8, 41, 41), generator=g)
    label[torch.rand(8, 41, 41, generator=g) < 0.6] = 255
    conf = torch.rand(8, 41, 41, generator=g)

    def aa() -> None:
        losses.affinity_loss(prob, label, dilations=(4, 8, 12, 24), margin=3.0, confidence=conf).backward()

    counts = sorted({1, os.cpu_count() or 1})
    times: dict[int, list[float]] = {n: [] for n in counts}
    before = torch.get_num_threads()
    try:
        for _ in range(repeats):
            for n in counts:
                torch.set_num_threads(n)
                aa()  # warm-up at this thread count
                t = time.perf_counter()
                aa()
                times[n].append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    return {n: statistics.median(v) for n, v in times.items()}


def main() -> None:
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    one, many = free_core_probe()
    print(f"busy loop: 1 process {one:.2f} s, {os.cpu_count()} processes at once {many:.2f} s "
          f"(ratio {many / one:.2f}; 1.0 = every core free)")
    for n, s in thread_probe().items():
        print(f"AA loss fwd + bwd (8 x 11 x 41 x 41), {n} torch thread(s): {s:.3f} s")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
