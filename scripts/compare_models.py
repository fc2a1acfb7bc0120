#!/usr/bin/env python3
"""Check stackrl's MJCF models against Gymnasium's assets, field by field.

For each of the five Gymnasium MuJoCo environments, both XML files are
compiled with ``mujoco.MjModel.from_xml_path`` and EVERY numeric attribute of
the compiled ``MjModel`` is compared generically: all numpy arrays and
scalars found by ``dir(model)``, plus every field of ``model.opt`` and
``model.stat``. Float arrays are compared bit for bit; a field that is not
bit-identical is printed with its maximum absolute difference, and the
script fails (exit 1) if any difference exceeds ``--tol`` (default 1e-12).
Shape differences (a different number or order of bodies, geoms, ...) always
fail.

Fields that only affect rendering (names, textures, materials, cameras,
lights, colours, ``model.vis``) and the size of the model's own memory
buffer are allowed to differ; they are listed in a one-line note.

It then checks ``pendulum.xml`` (Pendulum-v1 as a MuJoCo model): from
random (theta, theta_dot, u), one ``mj_step`` must give

    theta_dot' = theta_dot + (15 sin(theta) + 3 u) * 0.05
    theta'     = theta + theta_dot' * 0.05

to ~1e-12 (velocity clipping to +-8 is left to the environment code).

Usage:  python scripts/compare_models.py [--models DIR] [--gym-assets DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import mujoco

REPO = Path(__file__).resolve().parent.parent

# (ours, Gymnasium's) file names.
PAIRS = [
    ("hopper.xml", "hopper.xml"),
    ("walker2d.xml", "walker2d_v5.xml"),
    ("half_cheetah.xml", "half_cheetah.xml"),
    ("reacher.xml", "reacher.xml"),
    ("inverted_pendulum.xml", "inverted_pendulum.xml"),
]

# Attributes that only matter for rendering or bookkeeping. Everything else
# (including geoms that exist only for looks, since they shape the arrays)
# must match.
VISUAL_ONLY = [
    r"^vis\.",                                   # <visual> settings
    r"^(names|names_map|paths|text_data)$",      # name strings / hash map
    r"^n(names|names_map|paths|text|textdata)$",
    r"^name_\w+adr$",
    r"^(tex|mat|cam|light)_\w+$",               # textures, materials, cameras, lights
    r"^n(tex|texdata|mat|cam|light)$",
    r"^nuser_cam$",
    r"^(geom|site|tendon|flex|skin)_(rgba|matid)$",
    r"^nbuffer$",                                # byte size of the model buffer (names, textures)
    r"^signature$",                              # hash of object counts; includes ncam/nlight/nmat/ntex
]
_VISUAL_RE = [re.compile(p) for p in VISUAL_ONLY]


def is_visual(name: str) -> bool:
    return any(r.search(name) for r in _VISUAL_RE)


def _numeric(v):
    """Return v as a numpy array if it is a numeric array/scalar, else None."""
    if isinstance(v, np.ndarray):
        return v if v.dtype.kind in "biuf" else None
    if isinstance(v, (bool, int, float, np.number, np.bool_)):
        return np.asarray(v)
    return None


def _struct_fields(prefix: str, obj, out: dict, depth: int = 0):
    for f in dir(obj):
        if f.startswith("_"):
            continue
        try:
            v = getattr(obj, f)
        except Exception:  # pragma: no cover - defensive
            continue
        if callable(v):
            continue
        arr = _numeric(v)
        if arr is not None:
            out[f"{prefix}.{f}"] = arr
        elif depth < 2 and hasattr(v, "__class__") and type(v).__module__.startswith("mujoco"):
            _struct_fields(f"{prefix}.{f}", v, out, depth + 1)


def collect(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    """Every numeric attribute of an MjModel, flattened into name -> array."""
    out: dict[str, np.ndarray] = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        v = getattr(model, name)
        if callable(v):
            continue
        if name in ("opt", "stat", "vis"):
            _struct_fields(name, v, out)
            continue
        arr = _numeric(v)
        if arr is not None:
            out[name] = arr
    return out


def compare(ours_path: Path, gym_path: Path, tol: float, exact: bool = False) -> tuple[bool, list[str]]:
    lines: list[str] = []
    mo = mujoco.MjModel.from_xml_path(str(ours_path))
    mg = mujoco.MjModel.from_xml_path(str(gym_path))
    fo, fg = collect(mo), collect(mg)
    ok = True
    n_checked = 0
    n_bitexact = 0
    close_only: list[str] = []
    visual_diff: list[str] = []
    for name in sorted(set(fo) | set(fg)):
        a, b = fo.get(name), fg.get(name)
        if a is None or b is None:
            (visual_diff if is_visual(name) else lines).append(
                f"  {name}: present only in {'ours' if b is None else 'gymnasium'}")
            if not is_visual(name):
                ok = False
            continue
        same_shape = a.shape == b.shape
        bitexact = same_shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
        if is_visual(name):
            if not bitexact:
                visual_diff.append(name)
            continue
        n_checked += 1
        if bitexact:
            n_bitexact += 1
            continue
        if not same_shape:
            lines.append(f"  {name}: SHAPE ours {a.shape} vs gymnasium {b.shape}")
            ok = False
            continue
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            af, bf = a.astype(np.float64), b.astype(np.float64)
            both_nan = np.isnan(af) & np.isnan(bf)
            diff = np.where(both_nan, 0.0, np.abs(af - bf))
            maxd = float(np.max(diff)) if diff.size else 0.0
            if maxd == 0.0:
                close_only.append(f"{name} (signed zeros only)")
                continue
            if maxd <= tol and not exact:
                close_only.append(f"{name} (max |diff| {maxd:.3g})")
                continue
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
            lines.append(f"  {name}: max |diff| {maxd:.6g} at {idx}: ours {float(af[idx])!r} gym {float(bf[idx])!r}")
        else:
            ndiff = int(np.sum(a != b))
            idx = tuple(int(i) for i in np.argwhere(a != b)[0])
            lines.append(f"  {name}: {ndiff} integer entries differ, first at {idx}: "
                         f"ours {a[idx]} gym {b[idx]}")
        ok = False
    head = (f"{ours_path.name} vs gymnasium {gym_path.name}: {n_checked} numeric fields checked, "
            f"{n_bitexact} bit-identical")
    if close_only:
        head += f", {len(close_only)} only close (<= {tol:g}): " + ", ".join(close_only)
    lines.insert(0, head + ("  -> OK" if ok else "  -> DIFFERENT"))
    if visual_diff:
        lines.append(f"  (visual-only fields that differ, ignored: {', '.join(visual_diff)})")
    return ok, lines


def check_pendulum(path: Path, n: int = 2000, seed: int = 0) -> tuple[bool, list[str]]:
    """pendulum.xml must integrate theta_ddot = 15 sin(theta) + 3 u with semi-implicit Euler."""
    m = mujoco.MjModel.from_xml_path(str(path))
    d = mujoco.MjData(m)
    lines = []
    ok = True

    def req(cond, msg):
        nonlocal ok
        if not cond:
            ok = False
            lines.append(f"  FAIL: {msg}")

    req((m.nq, m.nv, m.nu, m.njnt) == (1, 1, 1, 1), f"nq/nv/nu/njnt = {(m.nq, m.nv, m.nu, m.njnt)}")
    req(m.jnt_type[0] == mujoco.mjtJoint.mjJNT_HINGE, "joint is not a hinge")
    req(np.array_equal(m.jnt_axis[0], [0, 1, 0]), f"hinge axis {m.jnt_axis[0]}")
    req(m.opt.timestep == 0.05, f"timestep {m.opt.timestep}")
    req(m.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER, f"integrator {m.opt.integrator}")
    req(np.array_equal(m.opt.gravity, [0, 0, -10]), f"gravity {m.opt.gravity}")
    req(m.dof_armature[0] == 0 and m.dof_damping[0] == 0 and m.dof_frictionloss[0] == 0,
        "armature/damping/frictionloss not zero")
    req(m.jnt_stiffness[0] == 0 and m.jnt_limited[0] == 0, "stiffness or joint limit present")
    req(np.all(m.geom_contype == 0) and np.all(m.geom_conaffinity == 0), "a geom can collide")
    req(m.actuator_ctrllimited[0] == 1 and np.array_equal(m.actuator_ctrlrange[0], [-2, 2]),
        f"ctrlrange {m.actuator_ctrlrange[0]}")
    req(m.actuator_gear[0, 0] == 1, f"gear {m.actuator_gear[0, 0]}")
    req(abs(m.body_mass[1] - 1.0) == 0, f"mass {m.body_mass[1]}")
    req(m.qpos0[0] == 0, f"qpos0 {m.qpos0}")
    # Upright at theta = 0, tip toward +x for theta > 0.
    d.qpos[0] = 0.3
    mujoco.mj_forward(m, d)
    req(abs(d.xipos[1][0] - 0.5 * math.sin(0.3)) < 1e-15 and abs(d.xipos[1][2] - 0.5 * math.cos(0.3)) < 1e-15,
        f"COM at theta=0.3 is {d.xipos[1]}")
    full_m = np.zeros((1, 1))
    mujoco.mj_fullM(m, d, full_m)
    req(abs(full_m[0, 0] - 1.0 / 3.0) < 1e-15, f"inertia about the hinge {full_m[0, 0]!r}")

    rng = np.random.default_rng(seed)
    dt = 0.05
    max_dv = max_dq = 0.0
    for _ in range(n):
        th = rng.uniform(-3 * math.pi, 3 * math.pi)
        thdot = rng.uniform(-8, 8)
        u = rng.uniform(-2, 2)
        mujoco.mj_resetData(m, d)
        d.qpos[0], d.qvel[0], d.ctrl[0] = th, thdot, u
        mujoco.mj_step(m, d)
        v_ref = thdot + (15.0 * math.sin(th) + 3.0 * u) * dt
        q_ref = th + v_ref * dt
        max_dv = max(max_dv, abs(d.qvel[0] - v_ref))
        max_dq = max(max_dq, abs(d.qpos[0] - q_ref))
    # ctrl outside the range is clamped by MuJoCo
    mujoco.mj_resetData(m, d)
    d.qpos[0], d.qvel[0], d.ctrl[0] = 0.7, 0.1, 5.0
    mujoco.mj_step(m, d)
    v_ref = 0.1 + (15.0 * math.sin(0.7) + 3.0 * 2.0) * dt
    req(abs(d.qvel[0] - v_ref) < 1e-12, f"ctrl clamping: {d.qvel[0]!r} vs {v_ref!r}")
    req(max_dv < 1e-12 and max_dq < 1e-12, f"one-step error dv {max_dv:.3g}, dq {max_dq:.3g}")
    lines.insert(0, f"pendulum.xml: {n} random one-step checks, max |dtheta_dot| {max_dv:.3g}, "
                    f"max |dtheta| {max_dq:.3g}" + ("  -> OK" if ok else "  -> FAIL"))
    return ok, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--gym-assets", type=Path, default=None,
                    help="default: gymnasium/envs/mujoco/assets of the installed gymnasium")
    ap.add_argument("--tol", type=float, default=1e-12)
    ap.add_argument("--exact", action="store_true", help="fail on any field that is not bit-identical")
    args = ap.parse_args()
    if args.gym_assets is None:
        import gymnasium
        args.gym_assets = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets"
        print(f"gymnasium {gymnasium.__version__}, mujoco {mujoco.__version__}")
    all_ok = True
    for ours, theirs in PAIRS:
        ok, lines = compare(args.models / ours, args.gym_assets / theirs, args.tol, args.exact)
        all_ok &= ok
        print("\n".join(lines))
    ok, lines = check_pendulum(args.models / "pendulum.xml")
    all_ok &= ok
    print("\n".join(lines))
    print("ALL OK" if all_ok else "DIFFERENCES FOUND")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
