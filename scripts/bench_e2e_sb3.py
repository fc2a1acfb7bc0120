#!/usr/bin/env python3
"""End-to-end SAC training throughput of Stable-Baselines3, the reference for `stackrl train`.

Runs SB3's SAC with its defaults (MLP 256x256 ReLU, batch 256, one gradient step per
environment step, buffer 1e6) on one environment for --steps steps after --learning-starts
random steps, with torch limited to --threads threads, and prints one JSON object:
{"env", "threads", "steps", "wall_s", "cpu_s", "sps_wall", "sps_cpu"} where the rates count
only the steps after the warm-up (as `stackrl train`'s train rows do).

Usage (throwaway venv outside the repository):
    python3 -m venv /tmp/torchbench
    /tmp/torchbench/bin/pip install torch stable-baselines3 "gymnasium[mujoco]==1.4.0" mujoco==3.17.0
    /tmp/torchbench/bin/python scripts/bench_e2e_sb3.py --env Pendulum-v1 --steps 3000
scripts/bench_e2e.sh runs it and `stackrl train` alternately and prints both side by side.
"""
import argparse
import json
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback


class Clock(BaseCallback):
    """Records wall and process CPU time when the warm-up ends and at the end."""

    def __init__(self, learning_starts):
        super().__init__()
        self.learning_starts = learning_starts
        self.start = None

    def _on_step(self):
        if self.start is None and self.num_timesteps >= self.learning_starts:
            self.start = (time.perf_counter(), time.process_time(), self.num_timesteps)
        return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=3000, help="timed steps after the warm-up")
    p.add_argument("--learning-starts", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make(args.env)
    model = SAC("MlpPolicy", env, learning_starts=args.learning_starts, seed=args.seed,
                device="cpu", verbose=0)
    clock = Clock(args.learning_starts)
    model.learn(total_timesteps=args.learning_starts + args.steps, callback=clock)
    wall = time.perf_counter() - clock.start[0]
    cpu = time.process_time() - clock.start[1]
    steps = model.num_timesteps - clock.start[2]
    print(json.dumps({"env": args.env, "threads": args.threads, "steps": steps,
                      "wall_s": wall, "cpu_s": cpu, "sps_wall": steps / wall,
                      "sps_cpu": steps / cpu}))


if __name__ == "__main__":
    main()
