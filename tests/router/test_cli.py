"""`raas router train` and `raas router eval` as a user runs them, on the small licensed sample
in tests/cases/routellm/: the JSON has every figure, the contaminated prompt is left out, and a
bad CSV stops with exit status 1 and a message naming the file, the column and the value."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from raas.cli.main import main

SAMPLE = Path(__file__).resolve().parents[1] / "cases" / "routellm"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
SHARES = ["10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("router") / "router.json"
    result = CliRunner().invoke(
        main,
        ["router", "train", "--data", str(SAMPLE), "--weak", WEAK, "--strong", STRONG,
         "--out", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 89  # 90 sample rows, one of them contaminated
    assert summary["contaminated_excluded"] == 1
    assert set(summary["tiers"]) == {WEAK, STRONG}
    return path


def test_eval_prints_every_figure(model: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["router", "eval", "--model", str(model), "--data", str(SAMPLE), "--weak", WEAK,
         "--strong", STRONG, "--decisions", "200"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 89
    assert report["contaminated_excluded"] == 1
    for name in ("router", "random", "oracle"):
        figures = report[name]
        assert list(figures["accuracy_at"]) == SHARES
        for key in ("apgr", "apgr_11_points", "cpt_50", "cpt_80"):
            assert key in figures
    assert report["random"]["apgr"] == pytest.approx(0.5)
    assert 0 <= report["weak_accuracy"] <= 1 and 0 <= report["strong_accuracy"] <= 1
    latency = report["latency"]
    assert latency["decisions"] == 200
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]


def test_eval_of_one_split(model: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["router", "eval", "--model", str(model), "--data", str(SAMPLE), "--weak", WEAK,
         "--strong", STRONG, "--split", "eval", "--decisions", "10"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 30  # astronomy is an evaluation subject


def write_csv(folder: Path, text: str) -> Path:
    path = folder / "mmlu_anatomy.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f'prompt,{WEAK}\n"What is 2+2?",True\n')
    result = CliRunner().invoke(
        main,
        ["router", "train", "--data", str(path), "--weak", WEAK, "--strong", STRONG,
         "--out", str(tmp_path / "m.json")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"no column '{STRONG}' (--strong)" in result.output
    assert "mmlu_anatomy.csv" in result.output


def test_value_that_is_not_a_boolean_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f'prompt,{WEAK},{STRONG}\n"Q1",True,1\n"Q2",maybe,0\n')
    result = CliRunner().invoke(
        main,
        ["router", "train", "--data", str(path), "--weak", WEAK, "--strong", STRONG,
         "--out", str(tmp_path / "m.json")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "mmlu_anatomy.csv:3: column" in result.output
    assert "'maybe'" in result.output and "expected True/False or 1/0" in result.output


def test_model_without_the_named_tier_is_refused(model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLE / "mmlu_anatomy.csv", data / "mmlu_anatomy.csv")
    text = (data / "mmlu_anatomy.csv").read_text(encoding="utf-8")
    (data / "mmlu_anatomy.csv").write_text(text.replace(STRONG, "other-model", 1))
    result = CliRunner().invoke(
        main,
        ["router", "eval", "--model", str(model), "--data", str(data), "--weak", WEAK,
         "--strong", "other-model"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the model has no tier 'other-model'" in result.output


def test_train_needs_one_source(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["router", "train", "--out", str(tmp_path / "m.json")])
    assert result.exit_code == 2
    assert "give either --data" in result.output


def test_cli_defaults_match_the_library() -> None:
    from raas.cli import router_commands
    from raas.router import routellm, train

    assert str(routellm.DEFAULT_DATA) == router_commands.DEFAULT_DATA
    assert router_commands.L2_DEFAULT == train.L2_DEFAULT


def test_raas_starts_without_numpy() -> None:
    # Only `raas router train/eval` need NumPy; every other command must start without it.
    program = "import sys, raas.cli.main; print('numpy' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"
