//! Trains AC or STAC with [`stackrl::algos::run_epochs`] and prints one line per epoch
//! (or, with `--csv`, a CSV row per epoch: the format `docs/stac.md`'s tables are built from).
//!
//! ```text
//! cargo run --release --example stac_run -- --algo stac --env CartPole-v1 --critic-steps 80 \
//!     --actor-lr 0.01 --critic-lr 0.01 --lambda 0 --epochs 50 --steps 4000 --seed 0
//! ```
//!
//! Until `stackrl train --algo ac|stac` exists, this is the command-line entry point.

use stackrl::algos::{OnPolicyAlgo, OnPolicyConfig, OptimizerKind, Precision, run_epochs};

// As the `stackrl` binary: glibc's allocator returns and re-maps the large temporaries of
// every backward pass (page faults dominate otherwise).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ! {
    eprintln!(
        "usage: stac_run [--algo ac|stac] [--env ID] [--epochs N] [--steps N] [--seed S] \
         [--critic-steps K] [--actor-lr A] [--critic-lr C] [--lambda L] [--lambda-decay D] \
         [--cg-iters I] [--optimizer sgd|adam] [--gae-lambda G] [--gamma G] [--f64] \
         [--gauss-newton] [--csv]"
    );
    std::process::exit(2)
}

fn main() {
    let mut config = OnPolicyConfig::default();
    let (mut env, mut epochs, mut seed, mut csv) = ("CartPole-v1".to_string(), 50, 0u64, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        let num = |s: String| -> f64 { s.parse().unwrap_or_else(|_| usage()) };
        match a.as_str() {
            "--algo" => {
                config.algo = match val().as_str() {
                    "ac" => OnPolicyAlgo::Ac,
                    "stac" => OnPolicyAlgo::Stac,
                    _ => usage(),
                }
            }
            "--env" => env = val(),
            "--epochs" => epochs = num(val()) as usize,
            "--steps" => config.steps_per_epoch = num(val()) as usize,
            "--seed" => seed = num(val()) as u64,
            "--critic-steps" => config.critic_steps = num(val()) as usize,
            "--actor-lr" => config.actor_lr = num(val()),
            "--critic-lr" => config.critic_lr = num(val()),
            "--lambda" => config.stac.lambda = num(val()),
            "--lambda-decay" => config.stac.lambda_decay = num(val()),
            "--cg-iters" => config.stac.cg_iters = num(val()) as usize,
            "--gae-lambda" => config.gae_lambda = num(val()),
            "--gamma" => config.gamma = num(val()),
            "--optimizer" => {
                config.optimizer = match val().as_str() {
                    "sgd" => OptimizerKind::Sgd,
                    "adam" => OptimizerKind::Adam,
                    _ => usage(),
                }
            }
            "--f64" => config.precision = Precision::F64,
            "--gauss-newton" => config.stac.hessian = stackrl::algos::CriticHessian::GaussNewton,
            "--csv" => csv = true,
            _ => usage(),
        }
    }
    let records = match run_epochs(&env, &config, seed, epochs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if csv {
        println!(
            "epoch,env_steps,mean_return,episodes,critic_loss,entropy,direct_norm,\
             implicit_norm,cg_iters,cg_residual,collect_s,update_s"
        );
    }
    let mut steps = 0;
    for r in &records {
        let s = &r.stats;
        steps += s.env_steps;
        let ret = s
            .mean_return
            .map_or("nan".to_string(), |x| format!("{x:.2}"));
        if csv {
            println!(
                "{},{},{},{},{:.4},{:.4},{:.4e},{:.4e},{},{:.3e},{:.4},{:.4}",
                s.epoch,
                steps,
                ret,
                s.episodes,
                s.critic_loss,
                s.entropy,
                s.direct_grad_norm,
                s.implicit_grad_norm,
                s.cg_iterations,
                s.cg_residual,
                r.timing.collect_s,
                r.timing.update_s
            );
        } else {
            println!(
                "epoch {:3} steps {:7} return {:>8} eps {:3} Lv {:9.3} -> {:9.3} H {:.3} \
                 |dJ| {:.3e} |imp| {:.3e} cg {:2} res {:.2e} {:?} | collect {:.3}s update {:.3}s",
                s.epoch,
                steps,
                ret,
                s.episodes,
                s.critic_loss,
                s.critic_loss_after,
                s.entropy,
                s.direct_grad_norm,
                s.implicit_grad_norm,
                s.cg_iterations,
                s.cg_residual,
                s.cg_stop,
                r.timing.collect_s,
                r.timing.update_s
            );
        }
    }
}
