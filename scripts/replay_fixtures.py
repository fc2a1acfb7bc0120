#!/usr/bin/env python3
"""Replay tests/fixtures/*.json in Python to check the fixtures and our models.

MuJoCo environments (Hopper, Walker2d, HalfCheetah, Reacher,
InvertedPendulum): for every segment, ``gymnasium.make(env_id,
xml_file=<model>)`` is reset, ``mj_resetData`` + ``set_state(qpos, qvel)``
puts it in the segment's recorded start state (exactly what
``MujocoEnv.reset`` does after drawing its noise), and the recorded actions
are replayed. Observations, rewards, infos and terminated/truncated flags
are compared with the fixture. This is done twice: with Gymnasium's own
asset (checks that a segment is fully determined by its start state) and
with OUR model from models/ (checks that our MJCF reproduces Gymnasium's
trajectories, contacts included).

Pendulum-v1: replayed on models/pendulum.xml with MuJoCo, the way the Rust
environment does it: u = clip(a, -2, 2); ctrl = float32(3 u) / 3 (Gymnasium
computes the torque term 3u in float32); one mj_step; theta_dot' clipped to
+-8 and, if the clip was active, theta' = theta + 0.05 * theta_dot'. The
"naive" variant (ctrl = u) is reported too, to show the size of the float32
effect.

CartPole-v1 (and Pendulum-v1 on Gymnasium itself): the recorded start
state is written into ``env.unwrapped.state`` and the actions replayed.

Exit 1 if any observation differs by more than --tol (default 1e-9) or any
flag differs.
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
MODEL_FILES = {
    "Hopper-v5": "hopper.xml",
    "Walker2d-v5": "walker2d.xml",
    "HalfCheetah-v5": "half_cheetah.xml",
    "Reacher-v5": "reacher.xml",
    "InvertedPendulum-v5": "inverted_pendulum.xml",
}


class Diff:
    def __init__(self):
        self.obs = self.reward = self.info = 0.0
        self.flag_mismatch = 0
        self.steps = 0
        self.contact_steps = 0

    def upd(self, name, a, b):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        if a.shape != b.shape or not np.isfinite(d):
            d = float("inf")
        setattr(self, name, max(getattr(self, name), d))

    def info_upd(self, got: dict, want: dict):
        if set(got) != set(want):
            self.info = float("inf")
            return
        for k in want:
            self.upd("info", float(got[k]), want[k])

    def __str__(self):
        s = (f"max |d obs| {self.obs:.3g}, |d reward| {self.reward:.3g}, |d info| {self.info:.3g}, "
             f"flag mismatches {self.flag_mismatch} ({self.steps} steps")
        if self.contact_steps:
            s += f", {self.contact_steps} with contacts"
        return s + ")"


def replay_mujoco(fx: dict, xml_file: str | None) -> Diff:
    env_id = fx["env_id"]
    kwargs = {} if xml_file is None else {"xml_file": xml_file}
    env = gymnasium.make(env_id, **kwargs)
    env.reset(seed=fx["seed"])
    u = env.unwrapped
    diff = Diff()
    for seg in fx["segments"]:
        env.reset()  # restarts the TimeLimit counter
        mujoco.mj_resetData(u.model, u.data)
        u.set_state(np.array(seg["qpos"]), np.array(seg["qvel"]))
        diff.upd("obs", u._get_obs(), seg["reset_obs"])
        diff.info_upd(u._get_reset_info(), seg["reset_info"])
        for st in seg["steps"]:
            obs, r, term, trunc, info = env.step(np.array(st["action"], dtype=np.float32))
            diff.steps += 1
            diff.contact_steps += int(u.data.ncon > 0)
            diff.upd("obs", obs, st["obs"])
            diff.upd("reward", r, st["reward"])
            diff.info_upd(info, st["info"])
            diff.flag_mismatch += int(bool(term) != st["terminated"]) + int(bool(trunc) != st["truncated"])
    env.close()
    return diff


def replay_gym_classic(fx: dict) -> Diff:
    env = gymnasium.make(fx["env_id"])
    env.reset(seed=fx["seed"])
    u = env.unwrapped
    diff = Diff()
    for seg in fx["segments"]:
        env.reset()
        if "state" in seg:
            u.state = np.array(seg["state"], dtype=np.float64)
            u.steps_beyond_terminated = None
            obs0 = np.array(u.state, dtype=np.float32)
        else:
            u.state = np.array([seg["qpos"][0], seg["qvel"][0]])
            obs0 = u._get_obs()
        diff.upd("obs", obs0, seg["reset_obs"])
        for st in seg["steps"]:
            a = st["action"]
            a = a if isinstance(a, int) else np.array(a, dtype=np.float32)
            obs, r, term, trunc, info = env.step(a)
            diff.steps += 1
            diff.upd("obs", obs, st["obs"])
            diff.upd("reward", r, st["reward"])
            diff.info_upd(info, st["info"])
            diff.flag_mismatch += int(bool(term) != st["terminated"]) + int(bool(trunc) != st["truncated"])
    env.close()
    return diff


def replay_pendulum_mujoco(fx: dict, model_path: Path, float32_torque: bool) -> tuple[Diff, float]:
    """Pendulum-v1 on pendulum.xml, as the Rust env does it. Also returns the max state error."""
    m = mujoco.MjModel.from_xml_path(str(model_path))
    d = mujoco.MjData(m)
    dt = m.opt.timestep
    diff = Diff()
    max_state = 0.0
    # Gymnasium's own state trajectory, to measure the state error too.
    genv = gymnasium.make("Pendulum-v1").unwrapped
    genv.reset(seed=0)
    for seg in fx["segments"]:
        th, thdot = seg["qpos"][0], seg["qvel"][0]
        genv.state = np.array([th, thdot])
        obs0 = np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32)
        diff.upd("obs", obs0, seg["reset_obs"])
        for n, st in enumerate(seg["steps"]):
            a = np.float32(st["action"][0])
            u = np.clip(a, np.float32(-2.0), np.float32(2.0))
            norm_th = ((th + np.pi) % (2 * np.pi)) - np.pi
            cost = norm_th**2 + 0.1 * thdot**2 + float(np.float32(0.001) * (u * u))
            mujoco.mj_resetData(m, d)
            d.qpos[0], d.qvel[0] = th, thdot
            d.ctrl[0] = float(np.float32(3.0) * u) / 3.0 if float32_torque else float(u)
            mujoco.mj_step(m, d)
            new_thdot = float(np.clip(d.qvel[0], -8.0, 8.0))
            new_th = float(d.qpos[0]) if new_thdot == d.qvel[0] else th + new_thdot * dt
            th, thdot = new_th, new_thdot
            obs = np.array([np.cos(th), np.sin(th), thdot], dtype=np.float32)
            genv.step(np.array([a]))
            max_state = max(max_state, abs(th - genv.state[0]), abs(thdot - genv.state[1]))
            diff.steps += 1
            diff.upd("obs", obs, st["obs"])
            diff.upd("reward", -cost, st["reward"])
            trunc = (n + 1) == 200
            diff.flag_mismatch += int(st["terminated"]) + int(trunc != st["truncated"])
    return diff, max_state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=REPO / "tests" / "fixtures")
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args()
    ok = True

    def verdict(diff: Diff, tol: float) -> str:
        nonlocal ok
        good = diff.obs <= tol and diff.reward <= tol and diff.info <= tol and diff.flag_mismatch == 0
        ok &= good
        return "OK" if good else "FAIL"

    for path in sorted(args.fixtures.glob("*.json")):
        fx = json.loads(path.read_text())
        env_id = fx["env_id"]
        if env_id in MODEL_FILES:
            d_gym = replay_mujoco(fx, None)
            print(f"{env_id:20s} gymnasium asset : {d_gym}  {verdict(d_gym, args.tol)}")
            d_ours = replay_mujoco(fx, str((args.models / MODEL_FILES[env_id]).resolve()))
            print(f"{env_id:20s} our model       : {d_ours}  {verdict(d_ours, args.tol)}")
        elif env_id in ("Pendulum-v1", "CartPole-v1"):
            d = replay_gym_classic(fx)
            print(f"{env_id:20s} gymnasium       : {d}  {verdict(d, args.tol)}")
            if env_id == "Pendulum-v1":
                # float32 observations: 1e-6 is a few float32 ulps.
                d, st = replay_pendulum_mujoco(fx, args.models / "pendulum.xml", True)
                print(f"{env_id:20s} pendulum.xml    : {d}, max |d state| {st:.3g}  {verdict(d, 1e-6)}")
                d, st = replay_pendulum_mujoco(fx, args.models / "pendulum.xml", False)
                print(f"{env_id:20s} (naive ctrl=u)  : {d}, max |d state| {st:.3g}  (informative)")
        else:
            print(f"{env_id}: no replay defined")
    print("ALL OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
