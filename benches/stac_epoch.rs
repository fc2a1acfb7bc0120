//! `cargo bench --bench stac_epoch [-- ENV STEPS REPEATS]`: the time of a STAC epoch against
//! an AC epoch on the same environment, data and `k`, and the share of the STAC epoch spent in
//! the conjugate-gradient solve (10 iterations). Defaults: CartPole-v1, 4000 steps per epoch
//! (the paper's code), 7 repeats; the paper's 64x64 tanh networks in f32; k = 1 and 80.
//!
//! Run it with `CANDLE_NUM_THREADS=1`: Candle's CPU pool spin-waits, which on a shared machine
//! measures the other processes more than ours.
//!
//! * An epoch is one collection (`steps` environment steps with the acting policy) plus one
//!   update (advantages and returns, the actor step, `k` critic steps); both algorithms
//!   collect with the same code, so the collection is timed once. The updates are timed on
//!   the same epoch of data, each repeat stepping the agent on it again.
//! * AC runs in a thread that never turns on second-order gradients (Candle's default
//!   detached backward, what `--algo ac` needs); STAC in a fresh thread after
//!   `enable_second_order()`. "AC (2nd-order on)" is AC in that second thread: the price every
//!   backward pass pays for recording its graph.
//! * STAC uses λ = 500 and a CG tolerance of 0 so that CG runs exactly its 10 iterations (with
//!   λ = 0 the indefinite Hessian usually stops it after 1-4). The CG row is the Hessian graph
//!   (`GradGraph::new` on the critic loss) plus the 10 Hessian-vector products, timed on the
//!   same batch.
//! * Medians over the repeats (minimum in brackets).

use std::time::Instant;

use stackrl::algos::{Algo, EpochData, OnPolicyAgent, OnPolicyConfig, StacConfig, stac};
use stackrl::autodiff::{self, CgOptions, GradGraph, conjugate_gradient};
use stackrl::envs;
use stackrl::rng::Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEED: u64 = 0;
const LAMBDA: f64 = 500.0;
const CG_ITERS: usize = 10;

fn median_min(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0])
}

fn config(algo: Algo, k: usize, steps: usize) -> OnPolicyConfig {
    OnPolicyConfig {
        algo,
        steps_per_epoch: steps,
        critic_steps: k,
        stac: StacConfig {
            lambda: LAMBDA,
            cg_iters: CG_ITERS,
            cg_rel_tol: 0.0,
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

/// Median and minimum seconds of `repeats` collections, and one epoch of data.
fn time_collect(env_id: &str, steps: usize, repeats: usize) -> ((f64, f64), EpochData) {
    let (mut a, mut env, mut rng) = agent(config(Algo::Ac, 1, steps), env_id);
    let data = a.collect_epoch(env.as_mut(), &mut rng).expect("collect");
    let t = (0..repeats)
        .map(|_| {
            a.collect_epoch(env.as_mut(), &mut rng).expect("collect");
            a.last_timing().collect_s
        })
        .collect();
    (median_min(t), data)
}

/// Median and minimum seconds of `repeats` updates on `data` (after one warm-up update), and
/// the CG iterations / stop reason of the last one.
fn time_update(
    algo: Algo,
    k: usize,
    env_id: &str,
    data: &EpochData,
    repeats: usize,
) -> ((f64, f64), String) {
    let (mut a, _, _) = agent(config(algo, k, data.len()), env_id);
    a.update(data).expect("update");
    let mut cg = String::new();
    let t = (0..repeats)
        .map(|_| {
            let s = a.update(data).expect("update");
            cg = format!("{} its, {:?}", s.cg_iterations, s.cg_stop);
            a.last_timing().update_s
        })
        .collect();
    (median_min(t), cg)
}

/// Median and minimum seconds of the CG solve alone (Hessian graph + 10 HVPs) on `data`.
fn time_cg(env_id: &str, data: &EpochData, repeats: usize) -> (f64, f64) {
    let (a, _, _) = agent(config(Algo::Stac, 1, data.len()), env_id);
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
            )
            .expect("losses");
            let g = autodiff::grads(&l.objective, a.critic().vars()).expect("∂J/∂w");
            let b = autodiff::flatten(&g).expect("flatten");
            let start = Instant::now();
            let hess = GradGraph::new(&l.hessian_loss, a.critic().vars()).expect("graph");
            let r = conjugate_gradient(|v| hess.hvp(v)? + (v * LAMBDA)?, &b, &options, None)
                .expect("cg");
            assert_eq!(r.iterations, CG_ITERS);
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    median_min(t)
}

fn ms((med, min): (f64, f64)) -> String {
    format!("{:8.1} [{:7.1}]", med * 1e3, min * 1e3)
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
         with {CG_ITERS} CG iterations; CANDLE_NUM_THREADS={}; medians of {repeats} [min], ms",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    let ks = [1usize, 80];
    // AC, detached (never turns on second order in this thread).
    let (env2, steps2) = (env_id.clone(), steps);
    let (collect, data, ac) = std::thread::spawn(move || {
        let (collect, data) = time_collect(&env2, steps2, repeats);
        let ac: Vec<_> = ks
            .iter()
            .map(|&k| time_update(Algo::Ac, k, &env2, &data, repeats).0)
            .collect();
        (collect, data, ac)
    })
    .join()
    .expect("AC thread");
    // STAC (and AC again) with second-order gradients on.
    let env3 = env_id.clone();
    let data3 = data.clone();
    let (stac_t, ac_flag, cg, cg_info) = std::thread::spawn(move || {
        autodiff::enable_second_order().expect("second order");
        let mut stac_t = Vec::new();
        let mut ac_flag = Vec::new();
        let mut info = String::new();
        for &k in &ks {
            let (t, i) = time_update(Algo::Stac, k, &env3, &data3, repeats);
            stac_t.push(t);
            info = i;
            ac_flag.push(time_update(Algo::Ac, k, &env3, &data3, repeats).0);
        }
        let cg = time_cg(&env3, &data3, repeats);
        (stac_t, ac_flag, cg, info)
    })
    .join()
    .expect("STAC thread");

    println!(
        "collection ({} episodes in the timed data): {}",
        data.segments.len(),
        ms(collect)
    );
    println!("CG solve (Hessian graph + {CG_ITERS} HVPs): {}", ms(cg));
    println!("STAC's CG in the last update: {cg_info}");
    println!(
        "{:>3} | {:>18} | {:>18} | {:>18} | {:>18} | {:>18} | {:>10} | {:>9}",
        "k",
        "AC update",
        "AC upd (2nd on)",
        "STAC update",
        "AC epoch",
        "STAC epoch",
        "STAC / AC",
        "CG share"
    );
    for (i, k) in ks.iter().enumerate() {
        let ac_epoch = (collect.0 + ac[i].0, collect.1 + ac[i].1);
        let st_epoch = (collect.0 + stac_t[i].0, collect.1 + stac_t[i].1);
        println!(
            "{:>3} | {} | {} | {} | {} | {} | {:>9.2}x | {:>8.0}%",
            k,
            ms(ac[i]),
            ms(ac_flag[i]),
            ms(stac_t[i]),
            ms(ac_epoch),
            ms(st_epoch),
            st_epoch.0 / ac_epoch.0,
            100.0 * cg.0 / st_epoch.0
        );
    }
}
