"""Pooling an evaluation's shards and pairing two evaluations by seed (jobs.compare_evals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import compare_evals, evaluate
from vjepa2.eval.compare import load_evaluation, mcnemar_exact, paired_comparison
from vjepa2.eval.episode_log import EpisodeLog
from vjepa2.planning import EpisodeOutcome


def _config(**changes) -> dict:
    cfg = {
        "env": "pusht",
        "env_kwargs": {"render_size": 64},
        "episodes": 2,
        "seed": 100,
        "goal_offset": 25,
        "budget": 50,
        "agents": ["cem"],
        "cem": {"num_candidates": 300, "horizon": 5, "hold": 1},
    }
    for k, v in changes.items():
        if "." in k:
            section, name = k.split(".")
            cfg[section] = {**cfg[section], name: v}
        else:
            cfg[k] = v
    return cfg


def _shard(folder: Path, wins: dict[int, bool], key="k", config=None, checkpoint="/m.pt"):
    """An evaluation folder as jobs.evaluate leaves it: the episode log, results.json."""
    log = EpisodeLog(folder / "episodes.jsonl", key)
    for seed, success in wins.items():
        log.append([EpisodeOutcome(seed, "cem", success, 3 if success else None, 50, [1.0])])
    if config is not None:
        results = {"checkpoint": checkpoint, "config": config}
        (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_mcnemar_exact_is_the_two_sided_binomial_tail_of_the_discordant_pairs():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 3) == pytest.approx(2 * (1 + 8 + 28 + 56) / 256)
    assert mcnemar_exact(3, 5) == mcnemar_exact(5, 3)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(4, 4) == 1.0  # capped: both tails overlap at the middle
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_shards_pool_and_pair_on_the_seeds_both_planned(tmp_path):
    a0 = _shard(tmp_path / "a0", {100: True, 101: False}, "a0", _config())
    # An older shard: written before cem.hold existed, which then planned as hold=1.
    old = _config(seed=102)
    del old["cem"]["hold"]
    a1 = _shard(tmp_path / "a1", {102: True, 103: True}, "a1", old)
    b = _shard(tmp_path / "b", {100: False, 101: True, 102: True, 104: True}, "b", _config())

    ev_a = load_evaluation([a0, a1 / "episodes.jsonl"], "new")
    assert [o.seed for o in ev_a.outcomes] == [100, 101, 102, 103]
    assert ev_a.checkpoint == "/m.pt" and len(ev_a.shards) == 2
    (row,) = paired_comparison(ev_a, load_evaluation([b], "old"))
    # Seeds 103 and 104 are in one evaluation only, so they are left out of the pairing.
    assert row["seeds"] == 3 and (row["successes_a"], row["successes_b"]) == (2, 2)
    assert row["only_a"] == [100] and row["only_b"] == [101]
    assert row["p_value"] == 1.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda d: [_shard(d / "x", {1: True}), _shard(d / "y", {1: False})], "disjoint seeds"),
        (
            lambda d: [
                _shard(d / "x", {1: True}, config=_config()),
                _shard(d / "y", {2: True}, config=_config(**{"cem.horizon": 3})),
            ],
            "other settings than .*: cem.horizon",
        ),
        (
            lambda d: [
                _shard(d / "x", {1: True}, config=_config()),
                _shard(d / "y", {2: True}, config=_config(), checkpoint="/other.pt"),
            ],
            "evaluated /other.pt",
        ),
        (lambda d: [d / "missing"], "no episodes.jsonl there"),
    ],
)
def test_shards_that_are_not_one_evaluation_are_refused(tmp_path, build, message):
    with pytest.raises(ValueError, match=message):
        load_evaluation(build(tmp_path))


def test_a_log_that_mixes_two_models_is_refused(tmp_path):
    folder = _shard(tmp_path / "x", {1: True}, key="first")
    EpisodeLog(folder / "episodes.jsonl", "second").append(
        [EpisodeOutcome(2, "cem", False, None, 50, [1.0])]
    )
    with pytest.raises(ValueError, match="mixes episodes of 2 models"):
        load_evaluation([folder])


def test_evaluations_of_different_episodes_are_not_paired(tmp_path):
    a = load_evaluation([_shard(tmp_path / "a", {1: True}, config=_config())])
    b = load_evaluation([_shard(tmp_path / "b", {1: True}, config=_config(goal_offset=10))])
    with pytest.raises(ValueError, match="goal_offset differ"):
        paired_comparison(a, b)
    c = load_evaluation([_shard(tmp_path / "c", {2: True}, config=_config())])
    with pytest.raises(ValueError, match="share no"):
        paired_comparison(a, c)


@pytest.mark.slow
def test_two_evaluate_shards_pool_into_the_one_run_evaluation(tiny_world_model, tmp_path, capsys):
    """Real jobs.evaluate outputs: two shards of two seeds each read back as the four-seed
    run, and pair with it on every seed with no difference."""
    common = [
        f"--checkpoint={tiny_world_model}",
        "--local",
        "--no-mlflow",
        "--set=agents=[cem,do_nothing]",
        "--set=budget=4",
        "--set=cem.num_candidates=8",
        "--set=cem.iterations=1",
    ]
    for name, seed in (("s0", 0), ("s1", 2)):
        evaluate.main([*common, "--episodes=2", f"--set=seed={seed}", f"--out={tmp_path / name}"])
    whole = evaluate.main([*common, "--episodes=4", "--set=seed=0", f"--out={tmp_path / 'all'}"])
    assert json.loads((tmp_path / "s0" / "results.json").read_text())["checkpoint"] == str(
        Path(tiny_world_model).resolve()
    )
    capsys.readouterr()

    out = tmp_path / "cmp" / "shards_vs_whole.json"
    result = compare_evals.main(
        [
            str(tmp_path / "s0"),
            str(tmp_path / "s1"),
            "--against",
            str(tmp_path / "all"),
            "--labels",
            "shards",
            "whole",
            f"--out={out}",
        ]
    )
    printed = capsys.readouterr().out
    assert "Paired on shared seeds" in printed and "| cem | 4 |" in printed
    pooled = {r["agent"]: r for r in result["shards"]["planning"]}
    for r in whole["planning"]:
        assert pooled[r["agent"]]["episodes"] == 4
        assert pooled[r["agent"]]["success_rate"] == r["success_rate"]
        assert pooled[r["agent"]]["audit"] == r["audit"]
    assert {r["agent"] for r in result["paired"]} == {"cem", "do_nothing"}
    for r in result["paired"]:  # the same model and seeds: the same outcome on every one
        assert r["seeds"] == 4 and r["only_a"] == r["only_b"] == [] and r["p_value"] == 1.0
    assert json.loads(out.read_text())["paired"] == result["paired"]
    assert "McNemar p" in out.with_suffix(".md").read_text()

    with pytest.raises(SystemExit, match="error: .*disjoint seeds"):
        compare_evals.main([str(tmp_path / "s0"), str(tmp_path / "all")])


def test_the_two_evaluations_need_different_labels(tmp_path):
    a = _shard(tmp_path / "a", {1: True})
    b = _shard(tmp_path / "b", {1: False})
    with pytest.raises(SystemExit):
        compare_evals.main([str(a), "--against", str(b), "--labels", "x", "x"])
    result = compare_evals.main([str(a), "--against", str(b), "--labels", "x", "y"])
    assert result["paired"][0]["only_a"] == [1]
