//! Smoke timing (ignored by default): forward + backward of a 2x256 MLP on a batch of 256,
//! per activation, with Candle's default detached backprop and with second-order gradients
//! enabled, plus one Hessian-vector product. Run with
//! `cargo test --release --test nn_timing -- --ignored --nocapture`.
//!
//! Candle 0.11.1's CPU backend runs element-wise ops on a spin-waiting barrier pool of
//! `CANDLE_NUM_THREADS - 1` workers (default: physical cores); on a busy machine the spinning
//! dominates, so compare with `CANDLE_NUM_THREADS=1`.
#![cfg(feature = "trainer")]

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use stackrl::autodiff::{self, GradGraph};
use stackrl::nn::{Activation, Mlp, MlpConfig};
use stackrl::rng::Rng;

const BATCH: usize = 256;
const IN: usize = 23; // HalfCheetah: 17 obs + 6 actions (a Q critic input)

/// (median, minimum) wall time in ms.
fn time_ms(mut f: impl FnMut(), reps: usize) -> (f64, f64) {
    for _ in 0..5 {
        f();
    }
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    (t[reps / 2], t[0])
}

fn setup(act: Activation) -> (Mlp, Tensor, Tensor) {
    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(0);
    let net = Mlp::new(
        &MlpConfig::new(IN, &[256, 256], 1, act),
        &VarMap::new(),
        "q",
        DType::F32,
        &dev,
        &mut rng,
    )
    .unwrap();
    let x = rng
        .normal_tensor((BATCH, IN), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let y = rng
        .normal_tensor((BATCH, 1), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    (net, x, y)
}

fn time_fwd_bwd(label: &str) {
    for act in [Activation::Relu, Activation::Tanh, Activation::FastTanh] {
        let (net, x, y) = setup(act);
        let (med, min) = time_ms(
            || {
                let loss = (net.forward(&x).unwrap() - &y)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .mean_all()
                    .unwrap();
                let g = loss.backward().unwrap();
                assert!(g.get(net.vars()[0].as_tensor()).is_some());
            },
            200,
        );
        eprintln!(
            "[{label}] 2x256 MLP fwd+bwd, batch {BATCH}, {act:?}: median {med:.3} ms, min {min:.3} ms"
        );
    }
}

#[test]
#[ignore]
fn mlp_forward_backward_timing() {
    eprintln!(
        "rayon threads: {}, CANDLE_NUM_THREADS={:?}",
        rayon::current_num_threads(),
        std::env::var("CANDLE_NUM_THREADS").ok()
    );
    // Default (detached) mode in a thread that never enables second order ...
    std::thread::spawn(|| time_fwd_bwd("detached"))
        .join()
        .unwrap();
    // ... then with CANDLE_GRAD_DO_NOT_DETACH in a fresh thread.
    std::thread::spawn(|| {
        autodiff::enable_second_order().unwrap();
        time_fwd_bwd("second-order enabled");
        for act in [Activation::Relu, Activation::FastTanh] {
            let (net, x, y) = setup(act);
            let n = net.num_params();
            let v = Rng::seed_from_u64(1)
                .normal_tensor(n, 0.0, 1.0, DType::F32, &Device::Cpu)
                .unwrap();
            let (med, min) = time_ms(
                || {
                    let loss = (net.forward(&x).unwrap() - &y)
                        .unwrap()
                        .sqr()
                        .unwrap()
                        .mean_all()
                        .unwrap();
                    let gg = GradGraph::new(&loss, net.vars()).unwrap();
                    gg.hvp(&v).unwrap();
                },
                50,
            );
            eprintln!(
                "2x256 MLP ({n} params) fwd + grad graph + one HVP, {act:?}: median {med:.3} ms, \
                 min {min:.3} ms"
            );
        }
    })
    .join()
    .unwrap();
}
