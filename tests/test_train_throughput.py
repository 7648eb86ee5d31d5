"""benchmarks/train_throughput.py: the FLOPs it counts and the rates it derives from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def throughput(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # benchmarks import their helpers bare
    import train_throughput

    return train_throughput


def test_counts_flops_per_sample_and_derives_rates_from_the_median(throughput, tmp_path):
    def run(batch: int, name: str) -> list[dict]:
        argv = [
            "--device=cpu", "--steps=2", "--warmup=0", "--peak-tflops=0.5",
            f"--set=train.batch_size={batch}", f"--out={tmp_path / name}",
        ]  # fmt: skip
        return throughput.main(argv)

    small, large, again = run(2, "b2.json"), run(4, "b4.json"), run(2, "b2_again.json")
    assert [r["phase"] for r in small] == ["pretrain", "dynamics"]
    # The counted step's masks are seeded by step: the same run counts the same FLOPs.
    assert [r["flops_per_step"] for r in again] == [r["flops_per_step"] for r in small]
    # Phase 1 keeps every row's context at the batch's smallest, so its FLOPs grow with the
    # batch but not exactly with it; Phase 2's ops are all per sample: exactly twice.
    assert large[0]["flops_per_step"] > small[0]["flops_per_step"] > 0
    assert large[1]["flops_per_step"] == 2 * small[1]["flops_per_step"] > 0
    for b in large:
        assert len(b["step_s_all"]) == 2 and b["step_s_median"] == pytest.approx(
            sum(b["step_s_all"]) / 2
        )
        assert b["samples_per_s"] == pytest.approx(4 / b["step_s_median"])
        achieved = b["flops_per_step"] / b["step_s_median"] / 1e12
        assert b["achieved_tflops"] == pytest.approx(achieved)
        assert b["mfu"] == pytest.approx(achieved / 0.5)
        assert 0 < b["trainable_params"] < b["params"]  # the EMA target / frozen encoder
    assert json.loads((tmp_path / "b4.json").read_text()) == large


def test_only_known_accelerators_in_bf16_get_a_peak(throughput, tmp_path):
    cpu = torch.device("cpu")
    assert throughput.peak_tflops(cpu, torch.bfloat16) is None
    # pusht_small trains on frameskip-5 windows (10-d actions); the synthetic ones are 2-d.
    (row,) = throughput.main(
        ["--device=cpu", "--steps=1", "--warmup=0", "--pretrain-preset=none",
         "--dynamics-preset=pusht_small", "--set=train.batch_size=2",
         f"--out={tmp_path / 'x.json'}"]
    )  # fmt: skip
    assert row["phase"] == "dynamics" and row["preset"] == "pusht_small"
    assert row["peak_tflops"] is None and row["mfu"] is None and row["flops_per_step"] > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--pretrain-preset=none", "--dynamics-preset=none"],
        ["--steps=0"],
        ["--peak-tflops=0"],
    ],
)
def test_rejects_a_run_with_nothing_to_measure(throughput, argv, tmp_path):
    with pytest.raises(SystemExit):
        throughput.main([*argv, f"--out={tmp_path / 'x.json'}"])
    assert not (tmp_path / "x.json").exists()
