"""Agreement and time per image of the torch dense CRF against pydensecrf (issue 15).

Prints the rows of the table under "Dense CRF in PyTorch" in docs/performance.md: for each
structured scene (tests/test_crf_torch.py's ``scene``) and RRM's training and test CRF
parameters, the argmax agreement in %, mean and max |delta Q|, and the best of 3 times in ms
(pydensecrf, torch one image, torch per image in a batch of 4, ratio torch / pydensecrf); then
RRM's pseudo-label rule with either back-end at 321 px. One torch thread, like pydensecrf.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/crf_torch_agreement.py
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test scenes
import numpy as np, torch
from aakit.config import CRFParams, PseudoConfig, _test_crf
from aakit.method.crf import dense_crf, dense_crf_batch
from aakit.method.pseudo import pseudo_label_single
from test_crf_torch import scene, _blur
torch.set_num_threads(1)

def best(fn, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return out, min(ts)

rows = []
for size, labels, seed in [(321, 2, 21), (321, 3, 22), (321, 4, 23), (321, 21, 24), (164, 3, 25), (164, 21, 26)]:
    img, _, prob = scene(size, labels, seed)
    for which, p in (("train", CRFParams()), ("test", _test_crf())):
        ref, t_ref = best(lambda: dense_crf(img, prob, p, backend="pydensecrf"))
        got, t_t = best(lambda: dense_crf(img, prob, p, backend="torch"))
        imgs = torch.from_numpy(np.stack([img] * 4)).permute(0, 3, 1, 2).contiguous()
        probs = torch.from_numpy(np.stack([prob] * 4))
        _, t_b = best(lambda: dense_crf_batch(imgs, probs, p), reps=2)
        agree = np.mean(ref.argmax(0) == got.argmax(0))
        d = np.abs(ref - got)
        print(f"| {size} | {labels} | {which} | {100*agree:.3f} | {d.mean():.1e} | {d.max():.1e} | {t_ref*1000:.0f} | {t_t*1000:.0f} | {t_b/4*1000:.0f} | {t_t/t_ref:.1f} |", flush=True)

# RRM's pseudo-label rule at 321 px, 20 object classes, 1-3 present
for seed, present in [(31, [4]), (32, [2, 7]), (33, [2, 7, 14])]:
    img, mask, _ = scene(321, len(present) + 1, seed)
    rng = np.random.default_rng(seed)
    cam = np.zeros((20, 321, 321), np.float32)
    for i, c in enumerate(present):
        cam[c] = np.clip(_blur((mask == i + 1).astype(np.float32), 8) * 2 + rng.normal(0, 0.1, (321, 321)), 0, None)
    lab = np.zeros(20, np.float32); lab[present] = 1
    sc = np.where(lab > 0, 0.9, 0.01).astype(np.float32)
    out = {b: pseudo_label_single(img, cam, lab, sc, params=PseudoConfig(), crf=CRFParams(), crf_backend=b)
           for b in ("pydensecrf", "torch")}
    (l0, c0), (l1, c1) = out["pydensecrf"], out["torch"]
    print(f"pseudo {len(present)} present: label agreement {100*np.mean(l0 == l1):.3f} %, mean |dV| {np.abs(c0-c1).mean():.1e}, labelled {100*np.mean(l0 != 255):.1f} %")
