"""Confusion matrix, IoU, mIoU and rfpc against small examples computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aakit.errors import AakitError
from aakit.metrics import (
    ConfusionMeter,
    LabelValueError,
    confusion_matrix,
    iou_from_confusion,
    keep_classes_by_score,
    mean_iou,
    pixel_accuracy,
    remove_false_positive_classes,
)

# Six pixels, one ignored. Valid (gt, pred) pairs: (0,0) (1,1) (2,1) (2,2) (0,0).
PRED = np.array([[0, 1, 1], [2, 2, 0]])
GT = np.array([[0, 1, 2], [2, 255, 0]])
CM = np.array([[2, 0, 0],
               [0, 1, 0],
               [0, 1, 1]])


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(PRED, GT, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)


def test_ignore_index_is_skipped_whatever_the_prediction() -> None:
    pred = PRED.copy()
    pred[1, 1] = 0  # was 2 under the ignored GT pixel
    np.testing.assert_array_equal(confusion_matrix(pred, GT, 3), CM)
    # A different ignore value works the same way.
    gt = np.where(GT == 255, 9, GT)
    np.testing.assert_array_equal(confusion_matrix(PRED, gt, 3, ignore_index=9), CM)


def test_torch_input_gives_the_same_matrix() -> None:
    cm = confusion_matrix(torch.from_numpy(PRED), torch.from_numpy(GT), 3)
    np.testing.assert_array_equal(cm, CM)


def test_iou_and_miou_by_hand() -> None:
    # class 0: TP 2, FP 0, FN 0 -> 1; class 1: TP 1, FP 1 -> 1/2; class 2: TP 1, FN 1 -> 1/2.
    np.testing.assert_allclose(iou_from_confusion(CM), [1.0, 0.5, 0.5])
    assert mean_iou(CM) == pytest.approx(2 / 3)  # a fraction, not a percentage
    assert pixel_accuracy(CM) == pytest.approx(4 / 5)


def test_class_absent_from_gt_and_prediction_is_nan_and_skipped() -> None:
    cm = confusion_matrix(PRED, GT, 4)
    iou = iou_from_confusion(cm)
    assert math.isnan(iou[3])
    assert mean_iou(cm) == pytest.approx(2 / 3)


def test_class_only_predicted_counts_as_zero() -> None:
    pred = np.array([3, 0, 1])
    gt = np.array([0, 0, 1])
    iou = iou_from_confusion(confusion_matrix(pred, gt, 4))
    # class 0: TP 1, FN 1 -> 1/2; class 1: 1; class 2: NaN; class 3: TP 0, FP 1 -> 0.
    np.testing.assert_allclose(iou, [0.5, 1.0, np.nan, 0.0])
    assert mean_iou(confusion_matrix(pred, gt, 4)) == pytest.approx(0.5)


def test_empty_matrix() -> None:
    cm = np.zeros((3, 3), dtype=np.int64)
    assert np.isnan(iou_from_confusion(cm)).all()
    assert math.isnan(mean_iou(cm)) and math.isnan(pixel_accuracy(cm))


def test_bad_values_and_shapes_raise() -> None:
    with pytest.raises(LabelValueError, match="pred"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(LabelValueError, match="gt"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 3)
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    assert issubclass(LabelValueError, AakitError)


def test_meter_accumulates_and_resets() -> None:
    meter = ConfusionMeter(3)
    meter.update(PRED, GT)
    meter.update(torch.tensor([[2, 2]]), torch.tensor([[2, 1]]))  # a batch-shaped update
    np.testing.assert_array_equal(meter.matrix, CM + np.array([[0, 0, 0], [0, 0, 1], [0, 0, 1]]))
    out = meter.compute()
    # class 0: 1; class 1: TP 1, FP 1, FN 1 -> 1/3; class 2: TP 2, FP 1, FN 1 -> 1/2.
    assert out["iou"] == pytest.approx([1.0, 1 / 3, 0.5])
    assert out["miou"] == pytest.approx((1 + 1 / 3 + 0.5) / 3)
    assert out["pixel_accuracy"] == pytest.approx(5 / 7)
    meter.reset()
    assert meter.matrix.sum() == 0
    meter.update(np.array([0]), np.array([0]))
    assert meter.compute()["iou"] == [1.0, None, None]


def test_rfpc_on_scores_moves_pixels_to_the_best_remaining_class() -> None:
    # Channels: background, object 1 (label 1), object 2 (label 2); three pixels.
    scores = np.array([[[0.30, 0.10, 0.20]],
                       [[0.10, 0.35, 0.70]],
                       [[0.60, 0.55, 0.10]]], dtype=np.float32)
    assert scores.argmax(0).tolist() == [[2, 2, 1]]
    out = remove_false_positive_classes(scores, np.array([1, 0]))  # object 2 not in the image
    assert out.dtype == np.float32 and out.shape == scores.shape
    assert out.argmax(0).tolist() == [[0, 1, 1]]  # background for the first, object 1 next
    np.testing.assert_array_equal(out[:2], scores[:2])  # kept channels untouched
    assert np.all(out[2] == 0)
    # The input is not modified; torch and batched inputs give the same.
    assert scores.argmax(0).tolist() == [[2, 2, 1]]
    batch = torch.from_numpy(np.stack([scores, scores]))
    out_t = remove_false_positive_classes(batch, torch.tensor([[1, 0], [1, 1]]))
    assert out_t.argmax(1).tolist() == [[[0, 1, 1]], [[2, 2, 1]]]


def test_rfpc_on_label_maps_sends_removed_classes_to_background() -> None:
    labels = np.array([[0, 1, 2], [3, 255, 2]], dtype=np.uint8)
    out = remove_false_positive_classes(labels, np.array([True, False, True]))
    assert out.tolist() == [[0, 1, 0], [3, 255, 0]]
    assert out.dtype == np.uint8
    batch = torch.from_numpy(np.stack([labels, labels]).astype(np.int64))
    out_t = remove_false_positive_classes(batch, np.array([[1, 1, 1], [0, 0, 1]]))
    assert out_t.tolist() == [labels.tolist(), [[0, 0, 0], [3, 255, 0]]]


def test_rfpc_channel_count_must_match() -> None:
    with pytest.raises(ValueError, match="channels"):
        remove_false_positive_classes(np.zeros((3, 2, 2), np.float32), np.array([1, 1, 1]))


def test_keep_classes_by_score_is_strict() -> None:
    scores = np.array([0.05, 0.1, 0.11, 0.9])
    assert keep_classes_by_score(scores, 0.1).tolist() == [False, False, True, True]
    kept_t = keep_classes_by_score(torch.tensor([[0.2, 0.01]]), 0.1)
    assert isinstance(kept_t, torch.Tensor) and kept_t.tolist() == [[True, False]]


def test_uint8_fast_path_equals_general_path_and_refuses_bad_values() -> None:
    from aakit.metrics import LabelValueError, confusion_matrix

    rng = np.random.default_rng(5)
    for c, ignore in ((3, 255), (11, 255), (21, 0), (5, 2)):
        p = rng.integers(0, c, size=(30, 20)).astype(np.uint8)
        g = rng.integers(0, c, size=(30, 20)).astype(np.uint8)
        g[rng.random(g.shape) < 0.25] = ignore
        fast = confusion_matrix(p, g, c, ignore)
        slow = confusion_matrix(p.astype(np.int64), g.astype(np.int64), c, ignore)
        assert np.array_equal(fast, slow) and fast.dtype == np.int64
    p = np.array([[1, 30]], dtype=np.uint8)
    with pytest.raises(LabelValueError, match="pred label values \\[30\\]"):
        confusion_matrix(p, np.array([[1, 2]], dtype=np.uint8), 21)
    with pytest.raises(LabelValueError, match="gt label values \\[40\\]"):
        confusion_matrix(np.array([[1, 2]], dtype=np.uint8), np.array([[1, 40]], dtype=np.uint8), 21)
    # a wrong prediction under an ignored ground-truth pixel is not counted, nor refused
    cm = confusion_matrix(np.array([[1, 200]], dtype=np.uint8), np.array([[1, 255]], dtype=np.uint8), 21)
    assert cm.sum() == 1 and cm[1, 1] == 1
