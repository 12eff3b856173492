"""results/published.csv holds every number of the paper's Tables 1-6, exactly as printed.

The expected numbers below are typed from the paper's tables independently of the CSV.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from aakit.experiment.published import (
    VOC_CLASSES,
    PublishedError,
    default_published_path,
    load_published,
    published_rows,
    published_value,
)

CSV = Path(__file__).resolve().parents[1] / "results" / "published.csv"

# Tables 1-4: row -> (IoU (train), IoU (val))
TABLE1 = {"CLS+CE": (63.7, 60.0), "CLS+CE+AA": (66.7, 63.2), "CLS+CE+AA+LR": (67.4, 63.9),
          "CLS+CE+AA+LR+rfpc": (68.2, 65.8)}
TABLE2 = {"SA 4-8-12-24-36": (65.3, 61.6), "SA 4-8-12-24": (66.0, 62.3), "SA 4-8-12": (65.9, 61.9),
          "SA 12-24-36": (65.6, 62.0), "AA 4-8-12-24": (66.7, 63.2), "AA 4-8-12": (66.2, 62.4)}
TABLE3 = {"max": (66.7, 63.2), "min": (66.1, 62.5), "mean": (66.4, 62.7)}
TABLE4 = {"gamma=0": (66.9, 63.5), "gamma=0.5": (67.1, 63.6), "gamma=1": (67.2, 63.7), "gamma=2": (67.4, 63.9),
          "gamma=5": (67.0, 63.4)}
# Table 5: 21 classes (bkg ... tv) then mIoU
TABLE5 = {
    "RRM": [87.9, 75.9, 31.7, 78.3, 54.6, 62.2, 80.5, 73.7, 71.2, 30.5, 67.4, 40.9, 71.8, 66.2, 70.3, 72.6, 49.0,
            70.7, 38.4, 62.7, 58.4, 62.6],
    "SSSS": [88.7, 70.4, 35.1, 75.7, 51.9, 65.8, 71.9, 64.2, 81.1, 30.8, 73.3, 28.1, 81.6, 69.1, 62.6, 74.8, 48.6,
             71.0, 40.1, 68.5, 64.3, 62.7],
    "Ours": [88.4, 76.3, 33.8, 79.9, 34.2, 68.2, 75.8, 74.8, 82.0, 31.8, 68.7, 47.4, 79.1, 68.5, 71.4, 80.0, 50.3,
             76.5, 43.0, 55.5, 58.5, 63.9],
}
# Table 6: method -> (stage, backbone, supervision, val, test)
TABLE6 = {
    "SEC": ("multi-stage", "VGG16", "I", 50.7, 51.1),
    "STC": ("multi-stage", "VGG16", "I+S", 49.8, 51.2),
    "AffinityNet": ("multi-stage", "WideResNet38", "I", 61.7, 63.7),
    "MCOF": ("multi-stage", "ResNet101", "I+S", 60.3, 61.2),
    "DSRG": ("multi-stage", "ResNet101", "I+S", 61.4, 63.2),
    "CIAN": ("multi-stage", "ResNet101", "I", 64.1, 64.7),
    "SeeNet": ("multi-stage", "ResNet101", "I+S", 63.1, 62.8),
    "FickleNet": ("multi-stage", "ResNet101", "S", 64.9, 65.3),
    "OAA": ("multi-stage", "ResNet101", "I", 63.9, 65.6),
    "ScE": ("multi-stage", "ResNet101", "I", 66.1, 65.9),
    "SEAM": ("multi-stage", "ResNet101", "I", 64.5, 65.7),
    "MCIS": ("multi-stage", "ResNet101", "I", 66.2, 66.9),
    "ICD": ("multi-stage", "ResNet101", "I", 64.1, 64.3),
    "CONTA": ("multi-stage", "ResNet101", "I", 66.1, 66.7),
    "GWSM": ("multi-stage", "ResNet101", "I+S", 68.2, 68.5),
    "NSROM": ("multi-stage", "ResNet101", "I+S", 68.3, 68.5),
    "EM": ("single-stage", "VGG16", "I", 38.2, 39.6),
    "MIL-LSE": ("single-stage", "overfeat", "I", 42.0, 40.6),
    "CRF-RNN": ("single-stage", "VGG16", "I", 52.8, 53.7),
    "TransferNet": ("single-stage", "VGG16", "A", 52.1, 51.2),
    "WebCrawl": ("single-stage", "VGG16", "A", 58.1, 58.7),
    "RRM": ("single-stage", "WideResNet38", "I", 62.6, 62.9),
    "SSSS": ("single-stage", "WideResNet38", "I", 62.7, 64.3),
    "Ours": ("single-stage", "WideResNet38", "I", 63.9, 64.8),
}


def expected_cells() -> dict[tuple[int, str, str], float]:
    cells: dict[tuple[int, str, str], float] = {}
    for n, table in ((1, TABLE1), (2, TABLE2), (3, TABLE3), (4, TABLE4)):
        for row, (train, val) in table.items():
            cells[(n, row, "train")] = train
            cells[(n, row, "val")] = val
    for row, values in TABLE5.items():
        for col, v in zip([*VOC_CLASSES, "mIoU"], values, strict=True):
            cells[(5, row, col)] = v
    for row, (_, _, _, val, test) in TABLE6.items():
        cells[(6, row, "val")] = val
        cells[(6, row, "test")] = test
    return cells


def test_every_published_number_matches_the_paper() -> None:
    df = load_published(CSV)
    got = {(int(r.table), r.row, r.column): float(r.value) for r in df.itertuples()}
    assert got == expected_cells()  # no number missing, none extra, every value equal
    assert len(df) == 36 + 3 * 22 + 24 * 2


def test_rows_keep_the_papers_order_and_metadata() -> None:
    df = load_published(CSV)
    assert published_rows(df, 1) == list(TABLE1)
    assert published_rows(df, 2) == list(TABLE2)
    assert published_rows(df, 4) == list(TABLE4)
    assert published_rows(df, 6) == list(TABLE6)
    for row, (stage, backbone, sup, _, _) in TABLE6.items():
        hit = df[(df["table"] == 6) & (df["row"] == row)]
        assert set(hit["stage"]) == {stage} and set(hit["backbone"]) == {backbone} and set(hit["supervision"]) == {sup}
    # the protocol is stated only where the paper states it: rfpc in Table 1's last row
    stated = df[df["protocol"] != ""]
    assert set(zip(stated["table"], stated["row"])) == {(1, "CLS+CE+AA+LR+rfpc")}
    assert set(stated["protocol"]) == {"rfpc"}
    assert published_value(df, 4, "gamma=2", "val") == 63.9
    assert published_value(df, 2, "AA 12-24-36", "val") is None


def test_table5_rows_are_consistent_with_their_miou() -> None:
    """A check of the transcription: each row's class mean is its printed mIoU (to rounding)."""
    df = load_published(CSV)
    for row in TABLE5:
        classes = [published_value(df, 5, row, c) for c in VOC_CLASSES]
        assert sum(classes) / 21 == pytest.approx(published_value(df, 5, row, "mIoU"), abs=0.15)


def test_default_path_and_bad_files(tmp_path: Path) -> None:
    assert default_published_path().resolve() == CSV.resolve()
    (tmp_path / "published.csv").write_text(CSV.read_text())
    assert default_published_path(tmp_path) == tmp_path / "published.csv"
    with pytest.raises(PublishedError, match="not found"):
        load_published(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    header = "table,row,column,value,protocol,stage,backbone,supervision,note\n"
    for body, match in (
        ("1,CLS+CE,val,sixty,,,,,\n", "line 2: value 'sixty' is not a number"),
        ("7,CLS+CE,val,60.0,,,,,\n", "line 2: table '7'"),
        ("1,CLS+CE,val,60.0,,,,,\n1,CLS+CE,val,61.0,,,,,\n", "appears twice"),
    ):
        bad.write_text(header + body)
        with pytest.raises(PublishedError, match=match):
            load_published(bad)
    bad.write_text("table,row,value\n1,a,2\n")
    with pytest.raises(PublishedError, match="missing column"):
        load_published(bad)
