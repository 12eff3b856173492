"""Every spelling of a float a user writes is a float, everywhere a value is written (issue 27);
values no key can take (inf, nan, a seed the RNGs refuse) are refused in the config check."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, run_cli

SPELLINGS = [("1e-3", 1e-3), ("1E-3", 1e-3), ("1e-2", 1e-2), (".5", 0.5), ("5.", 5.0), ("1e308", 1e308),
             ("+2.5E+1", 25.0), ("-0.5", -0.5), ("0.01", 0.01)]


@pytest.mark.parametrize("text,value", SPELLINGS)
def test_set_takes_every_float_spelling(text: str, value: float) -> None:
    from aakit.config import load_config

    cfg = load_config(REPO / "experiments/synthetic/full.yaml", [f"optim.weight_decay={text.lstrip('-')}"])
    assert cfg.optim.weight_decay == abs(value)


def test_ints_stay_ints_and_strings_stay_strings() -> None:
    from aakit.yamlio import safe_load

    assert safe_load("3") == 3 and isinstance(safe_load("3"), int)
    assert safe_load("0x1F") == 31 and safe_load("-3") == -3
    assert safe_load("1e") == "1e" and safe_load("e3") == "e3" and safe_load("abc") == "abc"
    assert safe_load("[1e-3, 2, .5]") == [1e-3, 2, 0.5]


def test_config_set_file_and_grid_files_read_exponents(tmp_path: Path) -> None:
    from aakit.config import load_config, read_set_file
    from aakit.experiment.grid import load_grid

    (tmp_path / "c.yaml").write_text("_base_: " + str(REPO / "experiments/synthetic/full.yaml") +
                                     "\noptim:\n  lr: 1e-3\nloss:\n  lambda_aa: 5E-2\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg.optim.lr, cfg.loss.lambda_aa) == (1e-3, 5e-2)
    (tmp_path / "s.yaml").write_text("optim.lr: 1e-2\nloss:\n  gamma: .5\n")
    assert load_config(tmp_path / "c.yaml", read_set_file(tmp_path / "s.yaml")).optim.lr == 1e-2
    (tmp_path / "g.yaml").write_text(f"name: g\nbase: {REPO / 'experiments/synthetic/full.yaml'}\n"
                                     "preset: synthetic\nseeds: [0]\ntable: 4\nrow: 'lr={optim.lr}'\n"
                                     "axes:\n  optim.lr: [1e-3, 1E-4]\n")
    points = load_grid(tmp_path / "g.yaml").points
    assert sorted(p.config.optim.lr for p in points) == [1e-4, 1e-3]


@pytest.mark.parametrize("item", ["loss.lambda_aa=.inf", "loss.lambda_aa=-.inf", "optim.lr=.nan",
                                  "optim.lr=1e400"])
def test_non_finite_values_are_refused(item: str) -> None:
    from aakit.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"should be a finite number"):
        load_config(REPO / "experiments/synthetic/full.yaml", [item])


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-1", "4294967296"])
def test_a_seed_the_rngs_refuse_is_one_line_exit_2(seed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["train", "synthetic/full", "--results", str(tmp_path), "--set", f"train.seed={seed}"],
                             monkeypatch, capsys)
    assert code == 2, (out, err)
    assert "train.seed" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_cli_takes_lr_1e_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["train", "synthetic/full", "--results", str(tmp_path), "--print-config",
                              "--set", "optim.lr=1e-3", "--set", "loss.lambda_lr=1E-2"], monkeypatch, capsys)
    assert code == 0, err
    assert "lr: 0.001" in out and "lambda_lr: 0.01" in out


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_config_file_is_refused_not_taken_as_the_defaults(text: str, tmp_path: Path) -> None:
    from aakit.config import ConfigError, load_config

    (tmp_path / "empty.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"empty\.yaml: empty config"):
        load_config(tmp_path / "empty.yaml")
