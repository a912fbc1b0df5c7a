"""`python -m bench`: predicted next to measured at every level, and --save-calibration (bench/predicted.py).

The run is the recorded inference-perf 0.7.0 log (vLLM CPU build, tiny model) read as if it came from the qwen-g6
stack: this checks the plumbing (every level compared, the calibration written for the plan's instance type and
read back by the performance model), not the prediction, whose error is measured in tests/sizing.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bench.__main__ import main
from sizing import catalog, performance

SAMPLE = Path(__file__).with_name("data") / "inference-perf-0.7.0.log"


def test_predicted_next_to_measured_and_calibration(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(performance, "CALIBRATION_PATH", tmp_path / "calibration.yaml")
    performance.calibrations.cache_clear()
    code = main(["qwen-g6", "--from-logs", str(SAMPLE), "--out", str(tmp_path / "out"), "--input-tokens", "64:4",
                 "--output-tokens", "32:4", "--concurrency", "1,2,4", "--requests-per-level", "6", "--no-plots",
                 "--save-calibration"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert "predicted (sizing, factors of nvidia) vs measured p50" in out
    for metric in ("TTFT ms", "ITL ms", "output tok/s"):
        assert out.count(metric) >= 3  # one row per level
    compared = json.loads((tmp_path / "out" / "predicted.json").read_text())["levels"]
    assert sorted({r["concurrency"] for r in compared}) == [1, 2, 4]
    assert all(r["measured"] > 0 and r["predicted"] > 0 for r in compared)
    doc = yaml.safe_load((tmp_path / "calibration.yaml").read_text())
    (instance_type, cal), = doc["calibrations"].items()
    assert [r["concurrency"] for r in cal["rows"]] == [1, 2, 4]  # one replica: the whole sweep's users
    assert cal["source"].endswith("results.json")
    inst = catalog.instance(instance_type)
    assert performance.efficiency(inst.accelerator, instance_type).fitted_on == f"calibration of {instance_type}"
    performance.calibrations.cache_clear()
