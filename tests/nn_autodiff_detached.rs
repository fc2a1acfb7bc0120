//! Candle's default (gradients detached during backprop): second derivatives are silently
//! wrong, and the guards in `stackrl::autodiff` catch it. A separate test binary (= process)
//! that never calls `enable_second_order`.
#![cfg(feature = "trainer")]

use candle_core::{Device, Var};
use stackrl::autodiff::{self, DO_NOT_DETACH_ENV, GradGraph};

#[test]
fn detached_backprop_gives_wrong_second_derivative_and_is_rejected() {
    if std::env::var(DO_NOT_DETACH_ENV).is_ok_and(|s| !s.is_empty() && s != "0") {
        eprintln!("{DO_NOT_DETACH_ENV} set in the environment; nothing to check");
        return;
    }
    // d²(x³)/dx² at 1 is 6; with detached intermediate gradients Candle returns 4.
    let probe = autodiff::second_order_probe().unwrap();
    assert_eq!(probe, 4.0, "probe {probe}");
    assert!(autodiff::check_second_order().is_err());
    let x = Var::new(&[1f64, 2.0], &Device::Cpu).unwrap();
    let loss = x.as_tensor().powf(3.0).unwrap().sum_all().unwrap();
    assert!(GradGraph::new(&loss, std::slice::from_ref(&x)).is_err());

    // The flag is cached per thread at its first backward pass: setting the variable now does
    // not help this thread (enable_second_order reports the error) ...
    assert!(autodiff::enable_second_order().is_err());
    // ... but a new thread reads it at its own first backward pass.
    let ok = std::thread::spawn(|| autodiff::enable_second_order().is_ok())
        .join()
        .unwrap();
    assert!(ok);
}
