"""Figures people would rather look at than read: success bars, executed plans, cos-sim."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless; no display on workers or CI
    import matplotlib.pyplot as plt

    return plt


def success_bars(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Success rate per agent with its 95% interval as error bars."""
    plt = _pyplot()
    names = [r["agent"] for r in rows]
    rate = np.array([r["success_rate"] for r in rows])
    err = np.array(
        [[r["success_rate"] - r["ci95_low"], r["ci95_high"] - r["success_rate"]] for r in rows]
    ).T
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 1.5, 3.2))
    ax.bar(names, rate * 100, yerr=err * 100, capsize=4, color="#4c72b0")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title or f"planning success, {rows[0]['episodes']} episodes, 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plan_strip(
    frames: list[np.ndarray], goal: np.ndarray, path: str | Path, title: str = "", max_frames=10
) -> Path:
    """Evenly spaced frames of an executed trajectory, then the goal frame."""
    plt = _pyplot()
    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int))
    fig, axes = plt.subplots(1, len(idx) + 1, figsize=(1.3 * (len(idx) + 1), 1.7))
    for ax, i in zip(axes[:-1], idx, strict=True):
        ax.imshow(frames[i])
        ax.set_title(f"t={i}", fontsize=7)
    axes[-1].imshow(goal)
    axes[-1].set_title("goal", fontsize=7, color="#c44e52")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def cosine_vs_horizon(cos: dict[str, dict[int, float]], path: str | Path) -> Path:
    """Rolled-out vs copy-baseline cosine similarity against the horizon."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    for key, label in (("model", "world model"), ("copy", "copy baseline")):
        ks = sorted(int(k) for k in cos[key])
        ax.plot(ks, [cos[key][k] for k in ks], marker="o", label=label)
    ax.set_xlabel("rollout steps")
    ax.set_ylabel("cosine similarity")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def ablation_curves(rows: list[dict], path: str | Path) -> Path:
    """Per ablation: rollout error relative to the copy baseline against the horizon (left;
    below 1 = predicts the change; bars: the standard deviation over training seeds) and CEM
    planning success with its 95% interval (right)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for r in rows:
        err = r["rollout_cosine"]["error_vs_copy"]
        ks = sorted(int(k) for k in err)
        # Rows trained at several seeds carry the spread of their runs (ablation_table).
        sd = (r.get("rollout_sd") or {}).get("error_vs_copy") or {}
        left.errorbar(ks, [err[k] if k in err else err[str(k)] for k in ks],
                      yerr=[sd.get(k, sd.get(str(k), 0.0)) for k in ks] if sd else None,
                      marker="o", capsize=3, label=r["ablation"])  # fmt: skip
    left.axhline(1.0, color="grey", lw=0.8, ls="--")
    left.set_xlabel("rollout steps")
    left.set_ylabel("squared error / copy baseline's")
    left.legend(fontsize=7)
    planned = [r for r in rows if r["planning"]]  # rows run with --episodes 0 have none
    s = [r["planning"] for r in planned]
    if planned:
        rate = np.array([x["success_rate"] for x in s])
        err_bars = np.array([[x["success_rate"] - x["ci95_low"],
                              x["ci95_high"] - x["success_rate"]] for x in s]).T  # fmt: skip
        right.bar([r["ablation"] for r in planned], rate * 100, yerr=err_bars * 100, capsize=4,
                  color="#4c72b0")  # fmt: skip
        right.tick_params(axis="x", labelrotation=30, labelsize=7)
        runs = s[0].get("runs", 1)  # trainings pooled per row (ablation_table)
        each = f"{runs} trainings x {s[0]['episodes'] // runs}" if runs > 1 else s[0]["episodes"]
        title = f"ablations ({each} episodes per row, 95% CI)"
    else:
        right.text(0.5, 0.5, "planning not run", ha="center", va="center",
                   transform=right.transAxes)  # fmt: skip
        title = "ablations (rollouts only)"
    right.set_ylim(0, 105)
    right.set_ylabel("planning success (%)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plan_audit_scatter(outcomes: list, path: str | Path) -> Path | None:
    """Each audited plan: the model's cost against the replayed one, both as a share of the
    cost of standing still, one panel per planning agent, red where the episode failed.
    Points above the line over-promised. None when no plan was audited."""
    from vjepa2.planning.audit import over_promise_threshold

    agents = list(dict.fromkeys(o.agent for o in outcomes if o.plan_audits))
    if not agents:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(agents), figsize=(4.2 * len(agents), 3.8), squeeze=False)
    for ax, name in zip(axes[0], agents, strict=True):
        for ok, color, label in (
            (True, "#4c72b0", "episode succeeded"),
            (False, "#c44e52", "episode failed"),
        ):
            plans = [
                a for o in outcomes if o.agent == name and o.success == ok for a in o.plan_audits
            ]
            if plans:
                still = np.array([max(a.still, 1e-12) for a in plans])
                x = np.array([a.predicted for a in plans]) / still
                y = np.array([a.replayed for a in plans]) / still
                ax.scatter(x, y, s=10, alpha=0.6, color=color, label=f"{label} ({len(plans)})")
        line = np.logspace(-4, 1, 50)
        ax.plot(line, over_promise_threshold(line, 1.0), "k--", lw=1, label="over-promised above")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted cost / standing still")
        ax.set_ylabel("replayed cost / standing still")
        ax.set_title(f"{name}: plans replayed in the environment", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def smooth_curve(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with the start-up bias removed (the first points are not
    pulled towards zero); ``weight`` 0 returns the values unchanged."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out = np.empty(len(values))
    avg = 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * v
        out[i] = avg / (1 - weight ** (i + 1))
    return out


def training_curves(
    runs: dict[str, list[dict]], keys: list[str], path: str | Path, smooth: float = 0.9
) -> Path:
    """One panel per logged loss (``loss``, then each part of the state), one colour per
    run: the rows faint, their moving average solid, on a log scale."""
    plt = _pyplot()
    cols = min(3, len(keys))
    nrows = -(-len(keys) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.1 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes.flat, keys, strict=False):
        for i, (label, rows) in enumerate(runs.items()):
            have = [r for r in rows if key in r and np.isfinite(r[key])]
            if not have:
                continue
            step = np.array([r["step"] for r in have])
            value = np.array([r[key] for r in have], dtype=float)
            color = colors[i % len(colors)]
            ax.plot(step, value, color=color, alpha=0.2, lw=0.8)
            ax.plot(step, smooth_curve(value, smooth), color=color, lw=1.5, label=label)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        logged = [r[key] for rows in runs.values() for r in rows if key in r]
        if logged and min(logged) > 0:  # losses; a log scale shows late progress too
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
