"""PAR, AFA's pixel-adaptive refinement (aakit.method.pseudo.par, issue 29).

The agreement with AFA's own code (rulixiang/afa, wetr/PAR.py) is checked against the outputs
it gave on the cases of tests/_par_cases.py, stored in tests/fixtures/par_afa.npz by
benchmarks/par_agreement.py (AFA's code is not needed here). The rest tests what PAR does.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _par_cases import CASES, Case, case_inputs, checksum  # noqa: E402

from aakit.method.pseudo.par import (  # noqa: E402
    DILATIONS, ITERATIONS, W1, W2, neighbour_offsets, par_affinity, par_refine, par_refine_batched,
    position_kernel,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "par_afa.npz"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def afa() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_agrees_with_afas_par_to_1e_4(case: Case, afa: dict[str, np.ndarray]) -> None:
    images, probs = case_inputs(case)
    np.testing.assert_allclose(checksum(images, probs), afa[f"{case.name}/checksum"], rtol=1e-12,
                               err_msg="the case's inputs are not the ones the fixture was made from")
    got = par_refine(images, probs, case.dilations, case.iterations)
    ref = torch.from_numpy(afa[f"{case.name}/afa"])
    assert got.shape == ref.shape == (case.batch, case.classes) + case.size
    assert (got - ref).abs().max().item() <= 1e-4


def test_the_fixture_covers_what_the_issue_asks(afa: dict[str, np.ndarray]) -> None:
    """Several shapes, B > 1, C of 2 and 21, odd sizes, h, w != H, W, structured and random
    images, and a measured difference stored with it (at most 1e-4)."""
    assert {c.classes for c in CASES} >= {2, 21} and max(c.batch for c in CASES) > 1
    assert any(c.size[0] % 2 and c.size[1] % 2 for c in CASES)
    assert any(c.size != c.prob_size for c in CASES) and any(c.size == c.prob_size for c in CASES)
    assert {"structured", "noise", "float"} <= {c.kind for c in CASES}
    assert 0 < float(afa["max_abs_diff_float32"]) <= 1e-4
    assert FIXTURE.stat().st_size < 300_000


@pytest.mark.parametrize("case", CASES[:3], ids=[c.name for c in CASES[:3]])
def test_each_pixel_sums_to_1_plus_w2_to_the_iterations_as_afas(case: Case, afa: dict[str, np.ndarray]) -> None:
    """Each pixel's weights sum to 1 + w2, so probabilities summing to 1 sum to (1 + w2)^n
    after n iterations; AFA's outputs do the same (they are not renormalised)."""
    images, probs = case_inputs(case)
    expected = (1 + W2) ** case.iterations
    ours = par_refine(images.double(), probs.double(), case.dilations, case.iterations).sum(1)
    theirs = torch.from_numpy(afa[f"{case.name}/afa"]).double().sum(1)
    assert torch.allclose(ours, torch.full_like(ours, expected), atol=1e-12)
    assert torch.allclose(theirs, torch.full_like(theirs, expected), atol=1e-5)


def test_output_shape_dtype_and_the_upsampling_of_probs() -> None:
    images = torch.rand(3, 3, 21, 34) * 255
    probs = torch.softmax(torch.randn(3, 4, 6, 9), dim=1)
    out = par_refine(images, probs)
    assert out.shape == (3, 4, 21, 34) and out.dtype == torch.float32
    # no iterations: just the bilinear, corner-aligned upsampling
    up = torch.nn.functional.interpolate(probs, size=(21, 34), mode="bilinear", align_corners=True)
    assert torch.equal(par_refine(images, probs, iterations=0), up)
    assert par_refine(images.double(), probs.double()).dtype == torch.float64


def test_a_batch_is_refined_image_by_image() -> None:
    """The batched computation (what a GPU runs) gives each image what it gives it alone (what
    par_refine runs on the CPU)."""
    g = torch.Generator().manual_seed(3)
    images = torch.rand(4, 3, 19, 23, generator=g) * 255
    probs = torch.softmax(torch.randn(4, 3, 19, 23, generator=g), dim=1)
    batched = par_refine_batched(images, probs, DILATIONS, ITERATIONS, W1, W2)
    alone = torch.cat([par_refine(images[i: i + 1], probs[i: i + 1]) for i in range(4)])
    assert torch.allclose(batched, alone, atol=1e-6)
    assert torch.allclose(par_refine(images, probs), batched, atol=1e-6)


def test_a_uniform_image_gives_colour_blind_weights_and_keeps_constant_probs() -> None:
    """On a uniform image every neighbour has the same colour weight (1/K), whatever the
    colour; a spatially constant probability map then stays constant (times (1+w2)^n)."""
    probs = torch.softmax(torch.randn(1, 5, 30, 30, dtype=torch.float64), dim=1)
    grey = par_refine(torch.full((1, 3, 30, 30), 128.0, dtype=torch.float64), probs)
    red = par_refine(torch.zeros(1, 3, 30, 30, dtype=torch.float64).index_fill_(1, torch.tensor([0]), 250.0), probs)
    assert torch.equal(grey, red)
    constant = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)[None, :, None, None].expand(2, 4, 17, 25)
    out = par_refine(torch.full((2, 3, 17, 25), 77.0, dtype=torch.float64), constant.contiguous())
    assert torch.allclose(out, constant * (1 + W2) ** 10, atol=1e-12)


def _step_probs(h: int, w: int, column: int) -> torch.Tensor:
    """Two classes: A = 0.8 left of ``column``, 0.2 from it on (B the rest)."""
    a = torch.where(torch.arange(w) < column, 0.8, 0.2).expand(h, w)
    return torch.stack([a, 1 - a])[None]


def test_an_image_edge_stops_the_spread_and_the_labels_snap_to_it() -> None:
    """The CAM's boundary at column 28, the image's edge (black | white) at column 32: PAR moves
    the labels to the edge, and A does not leak across it; on a flat image the boundary stays."""
    h = w = 64
    probs = _step_probs(h, w, 28)
    edge = torch.zeros(1, 3, h, w)
    edge[..., 32:] = 255.0
    out = par_refine(edge, probs)
    share = out[0, 0] / out[0].sum(0)
    assert (out.argmax(1)[0, :, :32] == 0).all() and (out.argmax(1)[0, :, 32:] == 1).all()
    assert share[:, 32:].max().item() < 0.25 and share[:, 28:32].min().item() > 0.7
    flat = par_refine(torch.full((1, 3, h, w), 128.0), probs)
    assert (flat.argmax(1)[0, :, 28:32] == 1).all()


def test_float32_agrees_with_float64() -> None:
    images, probs = case_inputs(CASES[1])
    single = par_refine(images, probs)
    double = par_refine(images.double(), probs.double())
    assert (single.double() - double).abs().max().item() < 1e-5


def test_gradient_free_and_leaves_its_inputs_alone() -> None:
    images = (torch.rand(2, 3, 16, 20) * 255).requires_grad_()
    probs = torch.softmax(torch.randn(2, 3, 8, 10), dim=1).requires_grad_()
    before = (images.detach().clone(), probs.detach().clone())
    out = par_refine(images, probs)
    assert not out.requires_grad and out.grad_fn is None
    assert torch.equal(images.detach(), before[0]) and torch.equal(probs.detach(), before[1])
    with torch.no_grad():
        assert torch.equal(par_refine(images, probs), out)


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_inputs_device(device: str) -> None:
    images, probs = case_inputs(CASES[0])
    out = par_refine(images.to(device), probs.to(device))
    assert out.device.type == device
    assert (out.cpu() - par_refine(images, probs)).abs().max().item() < 1e-4


def test_weights_prefer_near_and_similar_neighbours() -> None:
    """The position weights fall with the distance (d, d sqrt 2); the colour weights with the
    colour difference; each pixel's weights sum to 1 + w2."""
    offsets = neighbour_offsets(DILATIONS)
    assert len(offsets) == len(set(offsets)) == 48 and (0, 0) not in offsets
    dist = torch.tensor([np.hypot(*o) for o in offsets])
    kappa = position_kernel(offsets, dtype=torch.float64)
    order = torch.argsort(dist)
    assert (kappa[order].diff() <= 0).all() and kappa[order[0]] > kappa[order[-1]]
    kappa_rgb = torch.zeros(1, 48, 1, 1, dtype=torch.float64)
    kappa_rgb[0, 5] = -3.0
    alpha = par_affinity(kappa_rgb, kappa, W2)
    assert torch.allclose(alpha.sum(1), torch.tensor(1 + W2, dtype=torch.float64))
    assert alpha[0, 5] < alpha[0, 4]


@pytest.mark.parametrize(("images", "probs", "kwargs", "message"), [
    ((2, 1, 8, 8), (2, 2, 8, 8), {}, "images must be (B, 3, H, W)"),
    ((2, 3, 8, 8), (3, 2, 8, 8), {}, "probs must be (B, C, h, w) with B = 2"),
    ((2, 3, 8, 8), (2, 2, 8), {}, "probs must be (B, C, h, w)"),
    ((1, 3, 8, 8), (1, 2, 8, 8), {"dilations": (1, 0)}, "dilations must be positive integers"),
    ((1, 3, 8, 8), (1, 2, 8, 8), {"dilations": ()}, "dilations must be positive integers"),
    ((1, 3, 8, 8), (1, 2, 8, 8), {"iterations": -1}, "iterations must be >= 0"),
])
def test_bad_input_is_one_line_naming_the_argument(images, probs, kwargs, message) -> None:
    with pytest.raises(ValueError) as err:
        par_refine(torch.rand(images), torch.rand(probs), **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
