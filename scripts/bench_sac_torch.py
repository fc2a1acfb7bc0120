#!/usr/bin/env python3
"""The SAC update of CleanRL's sac_continuous_action.py, timed in PyTorch on the CPU.

The same work as one `stackrl bench sac` SAC update: sample a minibatch from a replay buffer
of random transitions, twin soft-Q critic step (target from the actor's next action and the
Polyak target critics), actor step (reparameterised tanh-Gaussian, log-std clamped to
[-5, 2]), automatic temperature step, Polyak update of the targets. Prints one JSON object:
{"threads", "hidden", "batch", "median", "samples"} (updates per second).

Usage (in a throwaway venv with torch, outside the repository):
    python3 -m venv /tmp/torchbench && /tmp/torchbench/bin/pip install torch
    /tmp/torchbench/bin/python scripts/bench_sac_torch.py --threads 1 --hidden 256,256 --batch 256
or through `stackrl bench sac --torch-python /tmp/torchbench/bin/python`.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    def __init__(self, obs_dim, act_dim, hidden):
        super().__init__()
        self.net = mlp([obs_dim, *hidden, 2 * act_dim])
        self.act_dim = act_dim

    def sample(self, obs):
        out = self.net(obs)
        mean, log_std = out[:, : self.act_dim], out[:, self.act_dim :]
        log_std = torch.clamp(log_std, -5.0, 2.0)
        std = log_std.exp()
        normal = torch.distributions.Normal(mean, std)
        u = normal.rsample()
        a = torch.tanh(u)
        log_prob = normal.log_prob(u) - torch.log(1 - a.pow(2) + 1e-6)
        return a, log_prob.sum(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--act-dim", type=int, default=6)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden = [int(h) for h in args.hidden.split(",")]
    od, ad, bs = args.obs_dim, args.act_dim, args.batch

    actor = Actor(od, ad, hidden)
    q1, q2 = mlp([od + ad, *hidden, 1]), mlp([od + ad, *hidden, 1])
    q1_t, q2_t = mlp([od + ad, *hidden, 1]), mlp([od + ad, *hidden, 1])
    q1_t.load_state_dict(q1.state_dict())
    q2_t.load_state_dict(q2.state_dict())
    q_opt = torch.optim.Adam(list(q1.parameters()) + list(q2.parameters()), lr=3e-4)
    a_opt = torch.optim.Adam(actor.parameters(), lr=3e-4)
    log_alpha = torch.zeros(1, requires_grad=True)
    al_opt = torch.optim.Adam([log_alpha], lr=3e-4)
    target_entropy = -float(ad)
    gamma, tau = 0.99, 0.005

    n = 10_000
    obs_buf, next_buf = torch.randn(n, od), torch.randn(n, od)
    act_buf = torch.rand(n, ad) * 2 - 1
    rew_buf = torch.randn(n)
    done_buf = (torch.rand(n) < 0.01).float()

    def update():
        idx = torch.randint(0, n, (bs,))
        obs, act, rew, nxt, done = obs_buf[idx], act_buf[idx], rew_buf[idx], next_buf[idx], done_buf[idx]
        alpha = log_alpha.exp().item()
        with torch.no_grad():
            na, nlp = actor.sample(nxt)
            x = torch.cat([nxt, na], 1)
            qn = torch.min(q1_t(x), q2_t(x)).view(-1) - alpha * nlp
            y = rew + (1 - done) * gamma * qn
        x = torch.cat([obs, act], 1)
        q_loss = 0.5 * (F.mse_loss(q1(x).view(-1), y) + F.mse_loss(q2(x).view(-1), y))
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()

        pa, lp = actor.sample(obs)
        x = torch.cat([obs, pa], 1)
        a_loss = (alpha * lp - torch.min(q1(x), q2(x)).view(-1)).mean()
        a_opt.zero_grad()
        a_loss.backward()
        a_opt.step()

        al_loss = (-log_alpha.exp() * (lp.detach() + target_entropy)).mean()
        al_opt.zero_grad()
        al_loss.backward()
        al_opt.step()

        with torch.no_grad():
            for net, tgt in ((q1, q1_t), (q2, q2_t)):
                for p_, t_ in zip(net.parameters(), tgt.parameters()):
                    t_.data.mul_(1 - tau).add_(tau * p_.data)

    for _ in range(args.warmup):
        update()
    samples = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for _ in range(args.iters):
            update()
        samples.append(args.iters / (time.perf_counter() - t))
    med = sorted(samples)[len(samples) // 2]
    print(json.dumps({"threads": args.threads, "hidden": hidden, "batch": bs,
                      "torch": torch.__version__, "median": med, "samples": samples}))


if __name__ == "__main__":
    main()
