//! The seeded RNG: reproducibility, state save/restore, tensor helpers.
#![cfg(feature = "trainer")]

use candle_core::{DType, Device};
use stackrl::rng::Rng;

#[test]
fn same_seed_same_stream_different_seed_different_stream() {
    let draw = |seed| {
        let mut r = Rng::seed_from_u64(seed);
        (0..100).map(|_| r.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    let (a, b) = (draw(42), draw(43));
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
}

#[test]
fn state_restore_continues_the_stream() {
    let mut r = Rng::seed_from_u64(9);
    for _ in 0..37 {
        r.normal_f64();
    }
    let bytes = r.to_bytes();
    let json = serde_json::to_string(&r).unwrap();
    let expected: Vec<u64> = (0..50).map(|_| r.next_u64()).collect();

    let mut from_bytes = Rng::from_bytes(&bytes).unwrap();
    let mut from_json: Rng = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (0..50).map(|_| from_bytes.next_u64()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        (0..50).map(|_| from_json.next_u64()).collect::<Vec<_>>(),
        expected
    );
    // A clone is an independent copy of the state.
    let mut c = from_json.clone();
    assert_eq!(c.next_u64(), from_json.next_u64());
    assert!(Rng::from_bytes(b"{\"state\": \"nope\"}").is_err());
    assert!(Rng::from_bytes(b"").is_err());
}

#[test]
fn tensors_are_reproducible_and_dtype_consistent() {
    let dev = Device::Cpu;
    let t64 = Rng::seed_from_u64(1)
        .normal_tensor((4, 5), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    let t32 = Rng::seed_from_u64(1)
        .normal_tensor((4, 5), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    assert_eq!(t32.dims(), &[4, 5]);
    let a: Vec<Vec<f64>> = t64.to_vec2().unwrap();
    let b: Vec<Vec<f32>> = t32.to_vec2().unwrap();
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            assert_eq!(*x as f32, *y);
        }
    }
    let again = Rng::seed_from_u64(1)
        .normal_tensor((4, 5), 0.0, 1.0, DType::F64, &dev)
        .unwrap();
    assert_eq!(again.to_vec2::<f64>().unwrap(), a);
}

#[test]
fn uniform_and_normal_moments() {
    let dev = Device::Cpu;
    let mut r = Rng::seed_from_u64(3);
    let n = 200_000;
    let u: Vec<f64> = r
        .uniform_tensor(n, -2.0, 3.0, DType::F64, &dev)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(u.iter().all(|x| (-2.0..3.0).contains(x)));
    let mean = u.iter().sum::<f64>() / n as f64;
    let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    // U(-2, 3): mean 0.5 (std error 0.0032), variance 25/12.
    assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    assert!((var - 25.0 / 12.0).abs() < 0.03, "var {var}");

    let z: Vec<f64> = r
        .normal_tensor(n, 1.5, 2.0, DType::F64, &dev)
        .unwrap()
        .to_vec1()
        .unwrap();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean - 1.5).abs() < 0.02, "mean {mean}");
    assert!((var - 4.0).abs() < 0.06, "var {var}");
}

#[test]
fn bad_arguments_are_errors() {
    let dev = Device::Cpu;
    let mut r = Rng::seed_from_u64(0);
    assert!(r.below(0).is_err());
    assert!(r.uniform_range(1.0, 1.0).is_err());
    assert!(r.uniform_tensor(3, 2.0, 1.0, DType::F32, &dev).is_err());
    assert!(r.normal_tensor(3, 0.0, -1.0, DType::F32, &dev).is_err());
    assert!(r.normal_tensor(3, 0.0, 1.0, DType::U32, &dev).is_err());
    let k = r.below(7).unwrap();
    assert!(k < 7);
}
