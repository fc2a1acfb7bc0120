//! The fused layer `nn::linear` (one op for `act(x Wᵀ + b)`) against Candle's own
//! `matmul` + `broadcast_add` + activation: values, first derivatives (also with frozen
//! weights), and second derivatives (Hessian-vector products through ReLU networks, as
//! Stack-SAC takes them); and the raw first-order tape `nn::MlpTape` / `nn::frozen_mlp`
//! against Candle's autograd.
#![cfg(feature = "trainer")]

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use stackrl::autodiff::{self, GradGraph};
use stackrl::nn::{Activation, Mlp, MlpConfig, MlpTape, frozen_mlp, frozen_mlps, linear};
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

/// An MLP `sizes[0] -> ... -> sizes[last]` with random weights from `rng`.
fn mlp(rng: &mut Rng, sizes: &[usize], act: Activation, dtype: DType) -> Mlp {
    let varmap = VarMap::new();
    Mlp::new(
        &MlpConfig::new(
            sizes[0],
            &sizes[1..sizes.len() - 1],
            sizes[sizes.len() - 1],
            act,
        ),
        &varmap,
        "net",
        dtype,
        &Device::Cpu,
        rng,
    )
    .unwrap()
}

#[test]
fn tape_output_is_the_forward_pass_and_its_gradients_are_autograds() {
    let mut rng = Rng::seed_from_u64(4);
    for dtype in [DType::F32, DType::F64] {
        for (sizes, act) in [
            (&[7usize, 16, 12, 1][..], Activation::Relu),
            (&[5, 9, 3][..], Activation::Identity),
            (&[23, 256, 256, 1][..], Activation::Relu),
        ] {
            let net = mlp(&mut rng, sizes, act, dtype);
            let batch = 33;
            let x = var(&mut rng, &[batch, sizes[0]], dtype);
            let out_dim = sizes[sizes.len() - 1];
            let y = rng
                .normal_tensor((batch, out_dim), 0.0, 1.0, dtype, &Device::Cpu)
                .unwrap();
            let tape = MlpTape::forward(&net, x.as_tensor()).unwrap();
            let f = net.forward(x.as_tensor()).unwrap();
            assert_eq!(vals(tape.output()), vals(&f), "{dtype:?} {sizes:?} output");
            // L = ½ mean (f − y)², so ∂L/∂f = (f − y) / numel.
            let loss = ((&f - &y).unwrap().sqr().unwrap().mean_all().unwrap() * 0.5).unwrap();
            let auto = loss.backward().unwrap();
            let g_out = ((tape.output() - &y).unwrap() / (batch * out_dim) as f64).unwrap();
            let (g_w, g_x) = tape.backward(&net, &g_out, true).unwrap();
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            for (i, v) in net.vars().iter().enumerate() {
                let e = max_rel(&vals(&g_w[i]), &vals(auto.get(v.as_tensor()).unwrap()));
                assert!(e < tol, "{dtype:?} {sizes:?} var {i}: {e}");
            }
            let e = max_rel(
                &vals(&g_x.unwrap()),
                &vals(auto.get(x.as_tensor()).unwrap()),
            );
            assert!(e < tol, "{dtype:?} {sizes:?} input: {e}");
            // Without the input gradient: same weight gradients, no input gradient.
            let (g_w2, none) = tape.backward(&net, &g_out, false).unwrap();
            assert!(none.is_none());
            assert_eq!(vals(&g_w2[0]), vals(&g_w[0]));
        }
    }
}

#[test]
fn tape_rejects_what_it_does_not_handle() {
    let mut rng = Rng::seed_from_u64(5);
    let net = mlp(&mut rng, &[4, 8, 1], Activation::Tanh, DType::F64);
    let x = var(&mut rng, &[3, 4], DType::F64);
    let err = MlpTape::forward(&net, x.as_tensor())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not supported"), "{err}");
    let net = mlp(&mut rng, &[4, 8, 1], Activation::Relu, DType::F64);
    let tape = MlpTape::forward(&net, x.as_tensor()).unwrap();
    let bad = Tensor::zeros((3, 2), DType::F64, &Device::Cpu).unwrap();
    assert!(
        tape.backward(&net, &bad, false).is_err(),
        "wrong gradient shape"
    );
    let other = mlp(&mut rng, &[4, 6, 1], Activation::Relu, DType::F64);
    let g = Tensor::zeros((3, 1), DType::F64, &Device::Cpu).unwrap();
    assert!(
        tape.backward(&other, &g, false).is_err(),
        "weights of another shape"
    );
}

/// `Σ (f(x) ⊙ c)²` through `frozen_mlp` and through fused layers on detached weights.
fn frozen_pair(net: &Mlp, act: Activation, x: &Tensor, c: &Tensor) -> (Tensor, Tensor) {
    let weights: Vec<Tensor> = net.vars().iter().map(|v| v.as_tensor().clone()).collect();
    let f = frozen_mlp(&weights, act, x).unwrap();
    let layers = weights.len() / 2;
    let mut h = x.clone();
    for i in 0..layers {
        let a = if i + 1 < layers {
            act
        } else {
            Activation::Identity
        };
        h = linear(
            &h,
            &weights[2 * i].detach(),
            &weights[2 * i + 1].detach(),
            a,
        )
        .unwrap();
    }
    let loss = |y: &Tensor| (y * c).unwrap().sqr().unwrap().sum_all().unwrap();
    (loss(&f), loss(&h))
}

#[test]
fn frozen_mlp_back_propagates_to_its_input_only() {
    let mut rng = Rng::seed_from_u64(6);
    for act in [Activation::Relu, Activation::Identity, Activation::Tanh] {
        let net = mlp(&mut rng, &[6, 32, 32, 2], act, DType::F64);
        let x = var(&mut rng, &[11, 6], DType::F64);
        let c = rng
            .normal_tensor((11, 2), 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap();
        let (lf, lr) = frozen_pair(&net, act, x.as_tensor(), &c);
        assert_eq!(vals(&lf), vals(&lr), "{act:?} value");
        let (gf, gr) = (lf.backward().unwrap(), lr.backward().unwrap());
        for v in net.vars() {
            assert!(
                gf.get(v.as_tensor()).is_none(),
                "{act:?}: frozen weight got a gradient"
            );
        }
        let e = max_rel(
            &vals(gf.get(x.as_tensor()).unwrap()),
            &vals(gr.get(x.as_tensor()).unwrap()),
        );
        assert!(e < 1e-12, "{act:?} input gradient: {e}");
    }
}

#[test]
fn frozen_mlp_second_derivatives_match_candle_ops() {
    // In second-order mode the op's backward is built from differentiable ops: the mixed
    // derivative ∂/∂c of ‖∂L/∂x‖² must match the one through plain fused layers.
    autodiff::enable_second_order().unwrap();
    let mut rng = Rng::seed_from_u64(7);
    let net = mlp(&mut rng, &[5, 16, 16, 3], Activation::Relu, DType::F64);
    let x = var(&mut rng, &[9, 5], DType::F64);
    let c = var(&mut rng, &[9, 3], DType::F64);
    let (lf, lr) = frozen_pair(&net, Activation::Relu, x.as_tensor(), c.as_tensor());
    let second = |l: &Tensor| {
        let gx = l.backward().unwrap().get(x.as_tensor()).unwrap().clone();
        let m = gx.sqr().unwrap().sum_all().unwrap();
        vals(m.backward().unwrap().get(c.as_tensor()).unwrap())
    };
    let (sf, sr) = (second(&lf), second(&lr));
    assert!(
        sr.iter().any(|v| v.abs() > 1e-6),
        "a non-trivial second derivative"
    );
    let e = max_rel(&sf, &sr);
    assert!(
        e < 1e-12,
        "second derivative frozen_mlp vs fused layers: {e}"
    );
}

#[test]
fn frozen_mlps_side_by_side_equal_the_single_networks() {
    let mut rng = Rng::seed_from_u64(8);
    for dtype in [DType::F32, DType::F64] {
        let a = mlp(&mut rng, &[6, 32, 32, 1], Activation::Relu, dtype);
        let b = mlp(&mut rng, &[6, 32, 32, 1], Activation::Relu, dtype);
        let ws =
            |m: &Mlp| -> Vec<Tensor> { m.vars().iter().map(|v| v.as_tensor().clone()).collect() };
        let x = var(&mut rng, &[13, 6], dtype);
        let both = frozen_mlps(&[ws(&a), ws(&b)], Activation::Relu, x.as_tensor()).unwrap();
        assert_eq!(both.dims(), &[13, 2]);
        let fa = frozen_mlp(&ws(&a), Activation::Relu, x.as_tensor()).unwrap();
        let fb = frozen_mlp(&ws(&b), Activation::Relu, x.as_tensor()).unwrap();
        let single = Tensor::cat(&[&fa, &fb], 1).unwrap();
        assert_eq!(vals(&both), vals(&single), "{dtype:?} values");
        // min of the two heads, as SAC's actor loss takes it.
        let min = |t: &Tensor| {
            t.narrow(1, 0, 1)
                .unwrap()
                .minimum(&t.narrow(1, 1, 1).unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let g_both = min(&both).backward().unwrap();
        let g_single = min(&single).backward().unwrap();
        let e = max_rel(
            &vals(g_both.get(x.as_tensor()).unwrap()),
            &vals(g_single.get(x.as_tensor()).unwrap()),
        );
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
        assert!(e < tol, "{dtype:?} input gradient: {e}");
    }
}
