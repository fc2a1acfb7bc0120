//! The fused layer `nn::linear` (one op for `act(x Wᵀ + b)`) against Candle's own
//! `matmul` + `broadcast_add` + activation: values, first derivatives (also with frozen
//! weights), and second derivatives (Hessian-vector products through ReLU networks, as
//! Stack-SAC takes them).
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Tensor, Var};
use stackrl::autodiff::{self, GradGraph};
use stackrl::nn::{Activation, linear};
use stackrl::rng::Rng;

fn reference(x: &Tensor, w: &Tensor, b: &Tensor, act: Activation) -> Tensor {
    act.apply(&x.matmul(&w.t().unwrap()).unwrap().broadcast_add(b).unwrap())
        .unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn var(rng: &mut Rng, shape: &[usize], dtype: DType) -> Var {
    Var::from_tensor(
        &rng.normal_tensor(shape.to_vec(), 0.0, 1.0, dtype, &Device::Cpu)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn fused_layer_matches_candle_ops_values_and_gradients() {
    let mut rng = Rng::seed_from_u64(1);
    for dtype in [DType::F32, DType::F64] {
        for act in [Activation::Relu, Activation::Identity] {
            let (x, w, b) = (
                var(&mut rng, &[9, 7], dtype),
                var(&mut rng, &[5, 7], dtype),
                var(&mut rng, &[5], dtype),
            );
            let fused = linear(x.as_tensor(), w.as_tensor(), b.as_tensor(), act).unwrap();
            let refv = reference(x.as_tensor(), w.as_tensor(), b.as_tensor(), act);
            // Same products and the same single rounding of the bias add: bit-identical.
            assert_eq!(vals(&fused), vals(&refv), "{dtype:?} {act:?} values");
            // A strided input (a transposed view) gives the same values too.
            let xt = var(&mut rng, &[7, 9], dtype);
            let strided = xt.as_tensor().t().unwrap();
            assert_eq!(
                vals(&linear(&strided, w.as_tensor(), b.as_tensor(), act).unwrap()),
                vals(&reference(&strided, w.as_tensor(), b.as_tensor(), act))
            );
            // Gradients of a non-trivial scalar.
            let c = rng
                .normal_tensor((9, 5), 0.0, 1.0, dtype, &Device::Cpu)
                .unwrap();
            let loss = |y: &Tensor| (y * &c).unwrap().sqr().unwrap().sum_all().unwrap();
            let gf = loss(&fused).backward().unwrap();
            let gr = loss(&refv).backward().unwrap();
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
                let e = max_rel(
                    &vals(gf.get(v.as_tensor()).unwrap()),
                    &vals(gr.get(v.as_tensor()).unwrap()),
                );
                assert!(e < tol, "{dtype:?} {act:?} d/d{name}: {e}");
            }
        }
    }
}

#[test]
fn frozen_weights_get_no_gradient_but_inputs_do() {
    let mut rng = Rng::seed_from_u64(2);
    let (x, w, b) = (
        var(&mut rng, &[6, 4], DType::F64),
        var(&mut rng, &[3, 4], DType::F64),
        var(&mut rng, &[3], DType::F64),
    );
    let y = linear(
        x.as_tensor(),
        &w.as_tensor().detach(),
        &b.as_tensor().detach(),
        Activation::Relu,
    )
    .unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(w.as_tensor()).is_none() && g.get(b.as_tensor()).is_none());
    let r = reference(
        x.as_tensor(),
        w.as_tensor(),
        b.as_tensor(),
        Activation::Relu,
    )
    .sum_all()
    .unwrap()
    .backward()
    .unwrap();
    assert!(
        max_rel(
            &vals(g.get(x.as_tensor()).unwrap()),
            &vals(r.get(x.as_tensor()).unwrap())
        ) < 1e-14
    );
}

/// A two-layer ReLU network's squared-error loss with either implementation.
fn net_loss(vars: &[Var], x: &Tensor, y: &Tensor, fused: bool) -> Tensor {
    let layer = |h: &Tensor, i: usize, act| {
        let (w, b) = (vars[2 * i].as_tensor(), vars[2 * i + 1].as_tensor());
        if fused {
            linear(h, w, b, act).unwrap()
        } else {
            reference(h, w, b, act)
        }
    };
    let h = layer(x, 0, Activation::Relu);
    let h = layer(&h, 1, Activation::Relu);
    let out = layer(&h, 2, Activation::Identity);
    (out - y).unwrap().sqr().unwrap().mean_all().unwrap()
}

#[test]
fn hessian_vector_products_through_fused_relu_layers_match() {
    autodiff::enable_second_order().unwrap();
    let mut rng = Rng::seed_from_u64(3);
    let shapes: [&[usize]; 6] = [&[6, 4], &[6], &[5, 6], &[5], &[2, 5], &[2]];
    let vars: Vec<Var> = shapes
        .iter()
        .map(|s| var(&mut rng, s, DType::F64))
        .collect();
    let x = rng
        .normal_tensor((8, 4), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let y = rng
        .normal_tensor((8, 2), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let n = autodiff::numel(&vars);
    let v = rng
        .normal_tensor(n, 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let hf = GradGraph::new(&net_loss(&vars, &x, &y, true), &vars)
        .unwrap()
        .hvp(&v)
        .unwrap();
    let hr = GradGraph::new(&net_loss(&vars, &x, &y, false), &vars)
        .unwrap()
        .hvp(&v)
        .unwrap();
    let (hf, hr) = (vals(&hf), vals(&hr));
    assert!(hr.iter().any(|h| h.abs() > 1e-3), "a non-trivial Hessian");
    let e = max_rel(&hf, &hr);
    assert!(e < 1e-12, "HVP fused vs Candle ops: {e}");
}
