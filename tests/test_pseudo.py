"""RRM's online pseudo labels on hand-made images whose answer is known."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aakit.config import CRFParams, PseudoConfig
from aakit.method.pseudo import (
    PseudoLabeler,
    cam_sure_region,
    downsample_labels,
    multiscale_cam,
    present_classes,
    pseudo_label_single,
)

H = W = 40
K = 3  # object classes; the square is object class index 1 -> label 2
YY, XX = np.mgrid[:H, :W]


def square_scene(cam_centre: tuple[float, float] = (19.5, 19.5)) -> tuple[np.ndarray, np.ndarray]:
    """A red 16x16 square (rows/cols 12..27) on a blue background, a cone-shaped CAM on it.

    The CAM is 1 at ``cam_centre`` and falls linearly to 0 at distance 14 (ReLU-like: exactly
    0 far from the object, as real CAMs are).
    """
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[...] = (20, 30, 200)
    image[12:28, 12:28] = (220, 20, 20)
    cam = np.zeros((K, H, W), dtype=np.float32)
    dist = np.hypot(YY - cam_centre[0], XX - cam_centre[1])
    cam[1] = 3.0 * np.maximum(0.0, 1.0 - dist / 14.0)  # raw scale: normalisation must undo it
    return image, cam


def label(image: np.ndarray, cam: np.ndarray, labels: list[int], scores: list[float], **kw):
    params = kw.pop("params", PseudoConfig())
    return pseudo_label_single(
        image, cam, np.array(labels), np.array(scores, dtype=np.float32), params=params, crf=CRFParams(), **kw
    )


def test_square_interior_is_the_class_far_background_is_0_boundary_is_ignored() -> None:
    image, cam = square_scene()
    lab, conf = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02])
    assert lab.shape == (H, W) and lab.dtype == np.uint8
    assert conf.shape == (H, W) and conf.dtype == np.float32
    dist = np.hypot(YY - 19.5, XX - 19.5)
    assert np.all(lab[dist < 6] == 2)  # object interior
    assert np.all(lab[dist > 15] == 0)  # far background
    assert np.all(lab[(dist > 9) & (dist < 13)] == 255)  # band around the square's edge
    assert set(np.unique(lab)) == {0, 2, 255}
    # The uncertain band separates object from background: no 4-neighbours labelled 2 and 0.
    obj, bg = lab == 2, lab == 0
    assert not ((obj[1:] & bg[:-1]) | (obj[:-1] & bg[1:])).any()
    assert not ((obj[:, 1:] & bg[:, :-1]) | (obj[:, :-1] & bg[:, 1:])).any()


def test_confidence_is_the_crf_probability_of_kept_labels_and_0_on_ignored() -> None:
    image, cam = square_scene()
    lab, conf = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02])
    assert np.all((conf >= 0) & (conf <= 1))
    assert np.all(conf[lab == 255] == 0)
    assert np.all(conf[lab != 255] >= PseudoConfig().min_crf_prob)


def test_crf_cuts_the_object_at_the_colour_edge() -> None:
    # CAM shifted right: its core sticks out of the square, the CRF keeps the label inside.
    image, cam = square_scene(cam_centre=(19.5, 25.0))
    lab, _ = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02])
    core = np.hypot(YY - 19.5, XX - 25.0) < 7
    outside_square = XX >= 28
    assert (core & outside_square).sum() > 20  # the CAM does claim those pixels
    assert not np.any((lab == 2) & outside_square)
    assert np.any(lab == 2)


def test_thresholds_only_remove_labels() -> None:
    image, cam = square_scene()
    strict, _ = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02])
    loose_params = dataclasses.replace(
        PseudoConfig(), min_crf_prob=0.0, sure_fg_top=1.0, sure_fg_min=0.0, sure_bg=0.0
    )
    loose, loose_conf = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02], params=loose_params)
    kept = strict != 255
    assert np.array_equal(loose[kept], strict[kept])  # same decision where both label
    assert (loose != 255).sum() > kept.sum()  # the thresholds really ignore pixels
    assert np.all(loose_conf[loose != 255] > 0)


def two_object_scene() -> tuple[np.ndarray, np.ndarray]:
    """The square (class index 1) plus a green 8x8 patch (class index 2) in the top-left corner."""
    image, cam = square_scene()
    image[1:9, 1:9] = (30, 200, 40)
    cam[2] = np.maximum(0.0, 1.0 - np.hypot(YY - 4.5, XX - 4.5) / 7.0)
    return image, cam


def test_low_score_class_is_dropped() -> None:
    image, cam = two_object_scene()
    both, _ = label(image, cam, [0, 1, 1], [0.0, 0.9, 0.9])
    assert np.any(both == 3) and np.any(both == 2)
    dropped, _ = label(image, cam, [0, 1, 1], [0.0, 0.9, 0.05])
    assert not np.any(dropped == 3)
    assert np.any(dropped == 2)
    # An unlabelled class never appears, however strong its CAM.
    unlabelled, _ = label(image, cam, [0, 1, 0], [0.0, 0.9, 0.9])
    assert not np.any(unlabelled == 3)


def test_all_classes_below_score_are_all_kept() -> None:
    image, cam = two_object_scene()
    both, both_conf = label(image, cam, [0, 1, 1], [0.0, 0.9, 0.9])
    all_low, all_low_conf = label(image, cam, [0, 1, 1], [0.0, 0.05, 0.02])
    np.testing.assert_array_equal(all_low, both)
    np.testing.assert_array_equal(all_low_conf, both_conf)


def test_present_classes_rule() -> None:
    assert present_classes(np.array([1, 0, 1, 1]), np.array([0.5, 0.9, 0.05, 0.2]), 0.1).tolist() == [0, 3]
    assert present_classes(np.array([1, 0, 1]), np.array([0.01, 0.9, 0.05]), 0.1).tolist() == [0, 2]
    assert present_classes(np.array([0, 0]), np.array([0.9, 0.9]), 0.1).tolist() == []


def test_image_without_labels_is_sure_background() -> None:
    image, cam = square_scene()
    lab, conf = label(image, cam, [0, 0, 0], [0.9, 0.9, 0.9])
    assert np.all(lab == 0) and np.all(conf == 1)


def test_padding_is_ignored() -> None:
    image, cam = square_scene()
    valid = np.ones((H, W), dtype=bool)
    valid[:, 34:] = False
    image[:, 34:] = 0  # zero padding of the crop
    lab, conf = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02], valid=valid)
    assert np.all(lab[:, 34:] == 255) and np.all(conf[:, 34:] == 0)
    assert np.any(lab[:, :34] == 0) and np.any(lab[:, :34] == 2)


def test_cam_sure_region_top_fraction() -> None:
    # One class, CAM values 0.05, 0.15, ..., 0.95 on a 1x10 strip: 9 values > 0.1; the cut is
    # the value at int(9 * 0.6) = 5 of the sorted ones (0.65): sure where CAM > 0.65 -> 3 pixels.
    cam = (np.arange(10, dtype=np.float32) / 10 + 0.05).reshape(1, 1, 10)
    sure = cam_sure_region(cam, np.array([1]), PseudoConfig())
    assert sure[0].tolist() == [False] * 7 + [True] * 3
    # Background is sure where it wins and its score (1 - cam)^32 > 0.8: only CAM 0 pixels.
    cam0 = np.array([[[0.0, 0.001, 0.5, 1.0]]], dtype=np.float32)
    sure_bg = cam_sure_region(cam0, np.array([0]), PseudoConfig())
    assert sure_bg[0].tolist() == [True, True, False, False]
    # A class with no CAM value above sure_fg_min has no sure pixel (no crash).
    assert not cam_sure_region(np.full((1, 2, 2), 0.05, np.float32), np.array([1]), PseudoConfig()).any()


def test_bad_inputs_raise() -> None:
    image, cam = square_scene()
    with pytest.raises(ValueError, match="uint8"):
        label(image.astype(np.float32), cam, [0, 1, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="does not match"):
        label(image, cam[:, :-1], [0, 1, 0], [0, 1, 0])
    with pytest.raises(ValueError, match="shape"):
        label(image, cam, [0, 1], [0, 1])


def test_labeler_matches_single_image_in_process_and_with_workers() -> None:
    image_a, cam_a = square_scene()
    image_b, cam_b = two_object_scene()
    images = torch.from_numpy(np.stack([image_a, image_b]))
    cams = torch.from_numpy(np.stack([cam_a, cam_b])).requires_grad_(True)  # as from the model
    labels = torch.tensor([[0, 1, 0], [0, 1, 1]], dtype=torch.float32)
    scores = torch.tensor([[0.0, 0.9, 0.0], [0.0, 0.9, 0.05]])
    valid = torch.ones(2, H, W, dtype=torch.bool)
    valid[1, :3] = False
    expected = [
        pseudo_label_single(
            images[i].numpy(), cams[i].detach().numpy(), labels[i].numpy(), scores[i].numpy(),
            params=PseudoConfig(), crf=CRFParams(), valid=valid[i].numpy(),
        )
        for i in range(2)
    ]
    for workers in (0, 2):
        with PseudoLabeler(PseudoConfig(), CRFParams(), workers=workers) as labeler:
            out_labels, out_conf = labeler(images, cams, labels, scores, valid=valid)
        assert out_labels.dtype == torch.int64 and out_conf.dtype == torch.float32
        assert out_labels.shape == (2, H, W) and out_conf.shape == (2, H, W)
        for i in range(2):
            np.testing.assert_array_equal(out_labels[i].numpy(), expected[i][0].astype(np.int64))
            np.testing.assert_array_equal(out_conf[i].numpy(), expected[i][1])
        assert torch.all(out_labels[1, :3] == 255)


def test_downsample_picks_stride_8_pixels_of_a_321_crop() -> None:
    lab = torch.arange(321 * 321).reshape(1, 321, 321)
    conf = lab.float() / lab.numel()
    small_lab, small_conf = downsample_labels(lab, conf, 41)
    assert small_lab.shape == (1, 41, 41) and small_lab.dtype == lab.dtype
    idx = torch.arange(41) * 8
    assert torch.equal(small_lab[0], lab[0][idx][:, idx])
    assert torch.equal(small_conf[0], conf[0][idx][:, idx])


def test_downsample_nearest_numpy_by_hand() -> None:
    lab = np.array([[0, 1, 2, 3, 4],
                    [5, 6, 7, 8, 9],
                    [10, 11, 12, 13, 14]], dtype=np.uint8)
    conf = lab.astype(np.float32) / 10
    small, small_conf = downsample_labels(lab, conf, (2, 3))
    assert small.tolist() == [[0, 2, 4], [10, 12, 14]]  # rows 0, 2; cols 0, 2, 4
    np.testing.assert_array_equal(small_conf, small.astype(np.float32) / 10)
    assert small.dtype == np.uint8
    with pytest.raises(ValueError, match="confidence"):  # shapes must agree
        downsample_labels(lab, conf[:, :-1], 2)


def test_multiscale_cam_averages_scales_without_grad() -> None:
    """RRM's order: each scale's CAM to the scale-1 CAM's size, mean there, then upsampled."""
    conv = torch.nn.Conv2d(3, 2, 1)

    def cam_fn(x: torch.Tensor) -> torch.Tensor:  # stride-2 "network"
        return F.relu(conv(F.avg_pool2d(x, 2)))

    def up(x: torch.Tensor, size: int) -> torch.Tensor:
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    images = torch.randn(2, 3, 16, 16, requires_grad=True)
    out = multiscale_cam(cam_fn, images, (1.0, 1.5), out_size=16)
    assert out.shape == (2, 2, 16, 16)
    assert not out.requires_grad
    with torch.no_grad():
        c1 = cam_fn(images)  # 8x8: the scale-1 feature map
        c15 = cam_fn(up(images, 24))  # 12x12
        rrm = up((c1 + up(c15, 8)) / 2, 16)
        old = (up(c1, 16) + up(c15, 16)) / 2  # upsample each scale first: not RRM
    torch.testing.assert_close(out, rrm)
    assert (out - old).abs().max() > 1e-3
    single = multiscale_cam(cam_fn, images, (1.0,), out_size=(16, 16))
    torch.testing.assert_close(single, up(c1, 16))


def test_multiscale_cam_by_hand() -> None:
    """4x4 image, stride-2 CAM: scales 1 and 0.5 averaged at 2x2, then upsampled to 4x4."""
    x = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [8, 8, 0, 0], [8, 8, 0, 0]], dtype=torch.float32)
    images = x.expand(1, 3, 4, 4)

    def cam_fn(im: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(im, 2)[:, :1]

    # scale 1: [[0, 4], [8, 0]]; scale 0.5: the 2x2 image pools to its mean, 3 -> mean at 2x2
    # [[1.5, 3.5], [5.5, 1.5]]; upsampling (align_corners=False) samples rows/cols at
    # -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    want = torch.tensor([
        [1.5, 2.0, 3.0, 3.5],
        [2.5, 2.625, 2.875, 3.0],
        [4.5, 3.875, 2.625, 2.0],
        [5.5, 4.5, 2.5, 1.5],
    ])
    out = multiscale_cam(cam_fn, images, (1.0, 0.5), out_size=4)
    torch.testing.assert_close(out[0, 0], want)
    # the size the scales are averaged at can be given (training passes the step's CAM's size)
    torch.testing.assert_close(multiscale_cam(cam_fn, images, (0.5, 1.0), 4, feature_size=(2, 2)), out)


def test_cam_confidence_keeps_the_labels_and_takes_v_from_the_cam() -> None:
    """loss.aa_confidence: cam (issue 14): same labels; V = the normalised CAM of an object
    label's class, and RRM's background score (1 - max CAM)^alpha_high for background."""
    from aakit.method.pseudo import normalise_cam

    image, cam = square_scene()
    lab, conf = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02])
    lab_c, conf_c = label(image, cam, [0, 1, 0], [0.01, 0.9, 0.02], confidence="cam")
    assert np.array_equal(lab, lab_c) and not np.allclose(conf, conf_c)
    norm = normalise_cam(cam[[1]])[0]
    obj, bg = lab == 2, lab == 0
    assert np.allclose(conf_c[obj], norm[obj], atol=1e-6)
    assert np.allclose(conf_c[bg], (1 - norm[bg]) ** PseudoConfig().alpha_high, atol=1e-6)
    assert np.all(conf_c[lab == 255] == 0)
