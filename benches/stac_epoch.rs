//! `cargo bench --bench stac_epoch [-- ENV STEPS REPEATS]`: the time of a STAC epoch against
//! an AC epoch on the same environment, data and `k`, and the share of the STAC epoch spent in
//! the conjugate-gradient solve (10 iterations). Defaults: CartPole-v1, 4000 steps per epoch
//! (the paper's code), 7 repeats; the paper's 64x64 tanh networks in f32; k = 1 and 80.
//!
//! Run it with `CANDLE_NUM_THREADS=1`: Candle's CPU pool spin-waits, which on a shared machine
//! measures the other processes more than ours. With one Candle thread all the work runs in
//! the timing thread, so besides wall-clock time the bench reports that thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which other processes on a busy machine disturb much less.
//!
//! * An epoch is one collection (`steps` environment steps with the acting policy) plus one
//!   update (advantages and returns, the actor step, `k` critic steps); both algorithms
//!   collect with the same code, so the collection is timed once. The updates are timed on
//!   the same epoch of data, each repeat stepping the agent on it again.
//! * Two curvature engines: "fast" (`CurvatureEngine::Fast`, the default: R-operator
//!   Hessian-vector products on cached activations, mixed term by one first-order backward
//!   pass) and "autodiff" (Candle's double backward, the reference).
//! * AC and fast STAC run in a thread that never turns on second-order gradients (Candle's
//!   default detached backward: neither needs more); autodiff STAC in a fresh thread after
//!   `enable_second_order()`. "AC, 2nd on" is AC in that second thread: the price every
//!   backward pass pays for recording its graph (autodiff STAC's critic steps pay it too).
//! * STAC uses λ = 500 and a CG tolerance of 0 so that CG runs exactly its 10 iterations (with
//!   λ = 0 the indefinite Hessian usually stops it after 1-4). "CG solve" is the Hessian
//!   setup (autodiff: `GradGraph::new` on the critic loss; fast: `MlpCurvature::new`) plus the
//!   10 Hessian-vector products, timed alone on the same batch; its share is relative to the
//!   STAC epoch of the same engine.
//! * Medians over the repeats; every figure is `wall / thread-CPU` in milliseconds.

use std::time::Instant;

use stackrl::algos::{
    CriticHessian, EpochData, OnPolicyAgent, OnPolicyAlgo, OnPolicyConfig, StacConfig, stac,
};
use stackrl::autodiff::{self, CgOptions, CurvatureEngine, GradGraph, conjugate_gradient};
use stackrl::envs;
use stackrl::nn::{CurvatureBlocks, MlpCurvature, Residual};
use stackrl::rng::Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEED: u64 = 0;
const LAMBDA: f64 = 500.0;
const CG_ITERS: usize = 10;
const KS: [usize; 2] = [1, 80];

/// CPU seconds used by the calling thread.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_THREAD_CPUTIME_ID is valid
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `(wall, cpu)` seconds of `f`.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (w, c) = (Instant::now(), thread_cpu_s());
    f();
    (w.elapsed().as_secs_f64(), thread_cpu_s() - c)
}

/// Medians of wall and CPU seconds.
fn medians(v: Vec<(f64, f64)>) -> (f64, f64) {
    let med = |mut x: Vec<f64>| {
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    (
        med(v.iter().map(|t| t.0).collect()),
        med(v.iter().map(|t| t.1).collect()),
    )
}

fn config(algo: OnPolicyAlgo, k: usize, steps: usize, engine: CurvatureEngine) -> OnPolicyConfig {
    OnPolicyConfig {
        algo,
        steps_per_epoch: steps,
        critic_steps: k,
        stac: StacConfig {
            lambda: LAMBDA,
            cg_iters: CG_ITERS,
            cg_rel_tol: 0.0,
            curvature: engine,
            ..StacConfig::default()
        },
        ..OnPolicyConfig::default()
    }
}

fn agent(cfg: OnPolicyConfig, env_id: &str) -> (OnPolicyAgent, Box<dyn envs::Env>, Rng) {
    let env = envs::make(env_id).expect("environment");
    let mut rng = Rng::seed_from_u64(SEED);
    let a = OnPolicyAgent::new(cfg, env.observation_space(), env.action_space(), &mut rng)
        .expect("agent");
    (a, env, rng)
}

/// Collection times and one epoch of data.
fn time_collect(env_id: &str, steps: usize, repeats: usize) -> ((f64, f64), EpochData) {
    let (mut a, mut env, mut rng) = agent(
        config(OnPolicyAlgo::Ac, 1, steps, CurvatureEngine::Fast),
        env_id,
    );
    let data = a.collect_epoch(env.as_mut(), &mut rng).expect("collect");
    let t = (0..repeats)
        .map(|_| {
            timed(|| {
                a.collect_epoch(env.as_mut(), &mut rng).expect("collect");
            })
        })
        .collect();
    (medians(t), data)
}

/// Update times on `data` (after one warm-up update) and the last update's CG report.
fn time_update(
    algo: OnPolicyAlgo,
    engine: CurvatureEngine,
    k: usize,
    env_id: &str,
    data: &EpochData,
    repeats: usize,
) -> ((f64, f64), String) {
    let (mut a, _, _) = agent(config(algo, k, data.len(), engine), env_id);
    a.update(data).expect("update");
    let mut cg = String::new();
    let t = (0..repeats)
        .map(|_| {
            timed(|| {
                let s = a.update(data).expect("update");
                cg = format!("{} iterations, {:?}", s.cg_iterations, s.cg_stop);
            })
        })
        .collect();
    (medians(t), cg)
}

/// The CG solve alone (Hessian setup + 10 HVPs) on `data`.
fn time_cg(env_id: &str, data: &EpochData, repeats: usize, engine: CurvatureEngine) -> (f64, f64) {
    let (a, _, _) = agent(config(OnPolicyAlgo::Stac, 1, data.len(), engine), env_id);
    let batch = a.prepare(data).expect("prepare");
    let cfg = a.config();
    let options = CgOptions {
        max_iters: CG_ITERS,
        rel_tol: 0.0,
        true_residual: false,
    };
    let t = (0..repeats + 1)
        .map(|_| {
            let l = stac::losses(
                a.policy(),
                a.critic(),
                &batch,
                cfg.gamma,
                cfg.gae_lambda,
                cfg.stac.hessian,
                stackrl::algos::StacEstimator::Exact,
            )
            .expect("losses");
            let g = autodiff::grads(&l.objective, a.critic().vars()).expect("∂J/∂w");
            let b = autodiff::flatten(&g).expect("flatten");
            timed(|| {
                let r = match engine {
                    CurvatureEngine::Autodiff => {
                        let hess =
                            GradGraph::new(&l.hessian_loss, a.critic().vars()).expect("graph");
                        conjugate_gradient(|v| hess.hvp(v)? + (v * LAMBDA)?, &b, &options, None)
                    }
                    CurvatureEngine::Fast => {
                        assert_eq!(cfg.stac.hessian, CriticHessian::Exact);
                        let x = batch.critic_inputs.narrow(0, 0, batch.n).expect("rows");
                        let net = MlpCurvature::new(
                            a.critic().mlp(),
                            &x,
                            &batch.returns_tensor,
                            2.0 / batch.n as f64,
                            Residual::Exact,
                        )
                        .expect("curvature");
                        let hess = CurvatureBlocks::new(vec![net]).expect("blocks");
                        conjugate_gradient(|v| hess.hvp(v)? + (v * LAMBDA)?, &b, &options, None)
                    }
                }
                .expect("cg");
                assert_eq!(r.iterations, CG_ITERS);
            })
        })
        .skip(1)
        .collect();
    medians(t)
}

fn ms((wall, cpu): (f64, f64)) -> String {
    format!("{:7.1} / {:7.1}", wall * 1e3, cpu * 1e3)
}

fn add(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 + b.0, a.1 + b.1)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let env_id = args
        .first()
        .cloned()
        .unwrap_or_else(|| "CartPole-v1".into());
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4000);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    println!(
        "STAC vs AC epoch on {env_id}: {steps} steps/epoch, 64x64 tanh f32, STAC λ = {LAMBDA} \
         with {CG_ITERS} CG iterations; CANDLE_NUM_THREADS={}; medians of {repeats}, \
         wall / thread-CPU ms",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    const FAST: CurvatureEngine = CurvatureEngine::Fast;
    const AUTO: CurvatureEngine = CurvatureEngine::Autodiff;
    // AC and fast STAC, detached (never turns on second order in this thread).
    let env2 = env_id.clone();
    let (collect, data, ac, fast, cg_fast, fast_info) = std::thread::spawn(move || {
        let (collect, data) = time_collect(&env2, steps, repeats);
        let (mut ac, mut fast, mut info) = (Vec::new(), Vec::new(), String::new());
        for &k in &KS {
            ac.push(time_update(OnPolicyAlgo::Ac, FAST, k, &env2, &data, repeats).0);
            let (t, i) = time_update(OnPolicyAlgo::Stac, FAST, k, &env2, &data, repeats);
            fast.push(t);
            info = i;
        }
        let cg = time_cg(&env2, &data, repeats, FAST);
        (collect, data, ac, fast, cg, info)
    })
    .join()
    .expect("AC thread");
    // Autodiff STAC (and AC again) with second-order gradients on.
    let (env3, data3) = (env_id.clone(), data.clone());
    let (st, ac_on, cg, cg_info) = std::thread::spawn(move || {
        autodiff::enable_second_order().expect("second order");
        let (mut st, mut ac_on, mut info) = (Vec::new(), Vec::new(), String::new());
        for &k in &KS {
            let (t, i) = time_update(OnPolicyAlgo::Stac, AUTO, k, &env3, &data3, repeats);
            st.push(t);
            info = i;
            ac_on.push(time_update(OnPolicyAlgo::Ac, AUTO, k, &env3, &data3, repeats).0);
        }
        (st, ac_on, time_cg(&env3, &data3, repeats, AUTO), info)
    })
    .join()
    .expect("STAC thread");

    println!(
        "collection ({} episode pieces): {} | CG solve (setup + {CG_ITERS} HVPs): autodiff {}, \
         fast {} | last CG: autodiff {cg_info}, fast {fast_info}",
        data.segments.len(),
        ms(collect),
        ms(cg),
        ms(cg_fast)
    );
    println!(
        "| k | AC update | AC, 2nd on | STAC update, autodiff | STAC update, fast | AC epoch | \
         STAC epoch, autodiff | STAC epoch, fast | STAC/AC autodiff | STAC/AC fast | \
         CG share autodiff | CG share fast |"
    );
    println!("|{}", " --- |".repeat(12));
    for (i, k) in KS.iter().enumerate() {
        let ac_e = add(collect, ac[i]);
        let (st_e, fa_e) = (add(collect, st[i]), add(collect, fast[i]));
        println!(
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {:.2}x / {:.2}x | {:.2}x / {:.2}x | \
             {:.0}% / {:.0}% | {:.0}% / {:.0}% |",
            ms(ac[i]),
            ms(ac_on[i]),
            ms(st[i]),
            ms(fast[i]),
            ms(ac_e),
            ms(st_e),
            ms(fa_e),
            st_e.0 / ac_e.0,
            st_e.1 / ac_e.1,
            fa_e.0 / ac_e.0,
            fa_e.1 / ac_e.1,
            100.0 * cg.0 / st_e.0,
            100.0 * cg.1 / st_e.1,
            100.0 * cg_fast.0 / fa_e.0,
            100.0 * cg_fast.1 / fa_e.1
        );
    }
}
