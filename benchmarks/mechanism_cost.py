"""What the mechanism record (eval.mechanism, issue 28) costs against a training step.

On the embedded preset (experiments/synthetic/full.yaml: batch 8, 164 px, small backbone,
random weights — speed does not depend on them), every term on (the last epoch's objective):
a training step and one measure_mechanism on the probe batch, interleaved, timed in CPU
seconds of this process with one torch thread and the CRFs in process (pseudo.workers 0), so
that other work on a shared machine does not enter the figure. Needs data/synth.

    OMP_NUM_THREADS=1 python benchmarks/mechanism_cost.py [PROBE_IMAGES]    # about a minute

Nothing is written; the medians are printed as JSON.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time

import torch


def main(images: int = 4, pairs: int = 6) -> dict[str, float]:
    from aakit.config import load_config
    from aakit.engine.distributed import DistInfo
    from aakit.method.targets import make_labeler
    from aakit.engine.train import _build_data, build_optimizer
    from aakit.engine.trainer import Trainer
    from aakit.mechanism import measure_mechanism, probe_batch
    from aakit.models import build_model

    torch.set_num_threads(1)
    cfg = load_config("experiments/synthetic/full.yaml", {"model.pretrained": None, "data.max_images": 64,
                                                          "pseudo.workers": 0, "eval.mechanism_images": images})
    data = _build_data(cfg)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None))
    trainer = Trainer(cfg, model, build_optimizer(model, cfg), data.train, device=torch.device("cpu"), dist=DistInfo())
    trainer.labeler, trainer.epoch = make_labeler(cfg), cfg.train.epochs - 1  # every term on
    probe, cpu = probe_batch(data.train, images), torch.device("cpu")
    steps, probes = [], []
    try:
        for i, batch in enumerate(trainer.batches(trainer.epoch)):
            if i > pairs:
                break
            a = time.process_time()
            trainer.run_step(batch)
            b = time.process_time()
            measure_mechanism(model, probe, cfg, trainer.labeler, cpu)
            c = time.process_time()
            if i:  # the first pair warms up
                steps.append(b - a)
                probes.append(c - b)
    finally:
        trainer.labeler.close()
    step, measure = statistics.median(steps), statistics.median(probes)
    return {"batch": cfg.train.batch_size, "probe_images": images, "step_cpu_s": step, "mechanism_cpu_s": measure,
            "ratio": measure / step}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)))
