#!/usr/bin/env python3
"""Generate reference trajectories from Gymnasium into tests/fixtures/<EnvId>.json.

For every environment id below, with ``gymnasium.make(env_id)`` (default
wrappers, so TimeLimit is active):

* ``env.reset(seed=SEED)``; a separate ``numpy.random.default_rng(SEED)``
  draws the actions: continuous spaces uniformly in
  [1.2 * low, 1.2 * high] cast to float32 (so some actions leave the box:
  this exercises MuJoCo's ctrl clamping and the control cost on the
  unclipped action), discrete spaces as integers in [0, n).
* ``N_STEPS`` steps. Whenever a step returns terminated or truncated (and
  steps remain), ``env.reset()`` is called without a seed and a new
  segment starts.

Each segment records the state right after the reset that starts it
(MuJoCo envs: ``data.qpos``/``data.qvel``; Pendulum-v1: qpos=[theta],
qvel=[theta_dot]; CartPole-v1: ``state`` = [x, x_dot, theta, theta_dot]),
the reset observation and info, and every step's action, observation,
reward, terminated, truncated and info. Floats are written with Python's
shortest round-trip repr, so they parse back to the exact same binary64
values (float32 observations/actions are widened exactly).

Usage:  python scripts/gen_fixtures.py [--out tests/fixtures] [--only Hopper-v5 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import gymnasium
import mujoco

REPO = Path(__file__).resolve().parent.parent
EXPECTED_VERSIONS = {"gymnasium": "1.4.0", "mujoco": "3.17.0"}

# env_id -> (seed, number of steps). Seeds are 0; every run was checked to
# contain at least one termination where the env can terminate (see the
# summary printed at the end). Pendulum-v1 gets 250 steps so that the run
# crosses its 200-step TimeLimit truncation and the following reset.
CONFIG = {
    "Hopper-v5": (0, 200),
    "Walker2d-v5": (0, 200),
    "HalfCheetah-v5": (0, 200),
    "Reacher-v5": (0, 200),
    "InvertedPendulum-v5": (0, 200),
    "Pendulum-v1": (0, 250),
    "CartPole-v1": (0, 200),
}
ACTION_SCALE = 1.2

MUJOCO_IDS = {"Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Reacher-v5", "InvertedPendulum-v5"}


def floats(x) -> list[float]:
    return [float(v) for v in np.asarray(x).ravel()]


def info_dict(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        out[str(k)] = float(v)
    return out


def segment_start(env, env_id: str, obs, info) -> dict:
    u = env.unwrapped
    seg: dict = {}
    if env_id in MUJOCO_IDS:
        seg["qpos"] = floats(u.data.qpos)
        seg["qvel"] = floats(u.data.qvel)
    elif env_id == "Pendulum-v1":
        seg["qpos"] = [float(u.state[0])]
        seg["qvel"] = [float(u.state[1])]
    elif env_id == "CartPole-v1":
        seg["state"] = floats(u.state)
    else:  # pragma: no cover
        raise ValueError(env_id)
    seg["reset_obs"] = floats(obs)
    seg["reset_info"] = info_dict(info)
    seg["steps"] = []
    return seg


def draw_action(space, rng: np.random.Generator):
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    low = ACTION_SCALE * space.low.astype(np.float64)
    high = ACTION_SCALE * space.high.astype(np.float64)
    return rng.uniform(low, high).astype(np.float32)


def generate(env_id: str, seed: int, n_steps: int) -> dict:
    env = gymnasium.make(env_id)
    act_rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    segments = [segment_start(env, env_id, obs, info)]
    for t in range(n_steps):
        action = draw_action(env.action_space, act_rng)
        obs, reward, terminated, truncated, info = env.step(action)
        segments[-1]["steps"].append({
            "action": action if isinstance(action, int) else floats(action),
            "obs": floats(obs),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": info_dict(info),
        })
        if (terminated or truncated) and t + 1 < n_steps:
            obs, info = env.reset()
            segments.append(segment_start(env, env_id, obs, info))
    env.close()
    return {
        "env_id": env_id,
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "seed": seed,
        "generator": "scripts/gen_fixtures.py",
        "segments": segments,
    }


def dumps(fixture: dict) -> str:
    """JSON with one step per line (readable diffs, small files)."""
    d = lambda x: json.dumps(x, allow_nan=False)  # noqa: E731
    head = ", ".join(f"{d(k)}: {d(fixture[k])}" for k in
                     ("env_id", "gymnasium", "mujoco", "seed", "generator"))
    segs = []
    for seg in fixture["segments"]:
        start = ", ".join(f"{d(k)}: {d(v)}" for k, v in seg.items() if k != "steps")
        steps = ",\n   ".join(d(s) for s in seg["steps"])
        segs.append(f'  {{{start},\n   "steps": [\n   {steps}]}}')
    text = "{" + head + ',\n "segments": [\n' + ",\n".join(segs) + "\n ]}\n"
    assert json.loads(text) == fixture  # round-trip sanity
    return text


def summary(fx: dict) -> str:
    segs = fx["segments"]
    steps = [s for seg in segs for s in seg["steps"]]
    n_term = sum(s["terminated"] for s in steps)
    n_trunc = sum(s["truncated"] for s in steps)
    lens = [len(seg["steps"]) for seg in segs]
    return (f"{fx['env_id']}: seed {fx['seed']}, {len(steps)} steps, {len(segs)} segments "
            f"(lengths {lens}), {n_term} terminations, {n_trunc} truncations")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    ap.add_argument("--only", nargs="*", default=None, help="env ids to generate (default: all)")
    args = ap.parse_args()
    versions = {"gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__}
    if versions != EXPECTED_VERSIONS:
        print(f"error: need {EXPECTED_VERSIONS}, found {versions}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id, (seed, n_steps) in CONFIG.items():
        if args.only and env_id not in args.only:
            continue
        fx = generate(env_id, seed, n_steps)
        text = dumps(fx)
        path = args.out / f"{env_id}.json"
        path.write_text(text)
        print(f"{summary(fx)} -> {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
              f"({len(text) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
