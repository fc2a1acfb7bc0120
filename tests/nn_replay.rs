//! Replay buffer: ring wrap-around, uniform and reproducible sampling, save/load.
#![cfg(feature = "trainer")]

use candle_core::Device;
use stackrl::replay::{Batch, ReplayBuffer, ReplayError};
use stackrl::rng::Rng;

/// Transition `k`: obs = [k, k + 0.5], action = [-k], reward = 10 k, next_obs = obs + 1,
/// terminated every 7th.
fn push_k(buf: &mut ReplayBuffer, k: usize) {
    let o = [k as f32, k as f32 + 0.5];
    let n = [o[0] + 1.0, o[1] + 1.0];
    buf.push(&o, &[-(k as f32)], 10.0 * k as f32, &n, k.is_multiple_of(7))
        .unwrap();
}

fn check_row_is_k(buf: &ReplayBuffer, row: usize, k: usize) {
    let t = buf.get(row).unwrap();
    assert_eq!(t.obs, &[k as f32, k as f32 + 0.5]);
    assert_eq!(t.action, &[-(k as f32)]);
    assert_eq!(t.reward, 10.0 * k as f32);
    assert_eq!(t.next_obs, &[k as f32 + 1.0, k as f32 + 1.5]);
    assert_eq!(t.terminated, k.is_multiple_of(7));
}

#[test]
fn ring_wraps_around_overwriting_the_oldest() {
    let mut buf = ReplayBuffer::new(5, 2, 1).unwrap();
    assert!(buf.is_empty());
    for k in 0..3 {
        push_k(&mut buf, k);
    }
    assert_eq!((buf.len(), buf.position()), (3, 3));
    assert!(buf.get(3).is_none());
    for k in 3..12 {
        push_k(&mut buf, k);
    }
    // 12 pushes into 5 slots: rows hold k = 10, 11, 7, 8, 9 and the next write goes to row 2.
    assert_eq!((buf.len(), buf.position()), (5, 2));
    for (row, k) in [(0, 10), (1, 11), (2, 7), (3, 8), (4, 9)] {
        check_row_is_k(&buf, row, k);
    }
    // Width mismatches are errors and leave the buffer untouched.
    let err = buf.push(&[1.0], &[0.0], 0.0, &[1.0, 2.0], false);
    assert!(matches!(err, Err(ReplayError::Dim(_))));
    assert!(
        buf.push(&[1.0, 2.0], &[0.0, 1.0], 0.0, &[1.0, 2.0], false)
            .is_err()
    );
    assert_eq!(buf.position(), 2);
    assert!(ReplayBuffer::new(0, 2, 1).is_err());
    assert!(ReplayBuffer::new(4, 0, 1).is_err());
}

#[test]
fn sampling_is_uniform_consistent_and_reproducible() {
    let cap = 10;
    let mut buf = ReplayBuffer::new(cap, 2, 1).unwrap();
    let mut batch = Batch::new(64, 2, 1);
    assert!(matches!(
        buf.sample_into(&mut Rng::seed_from_u64(0), &mut batch),
        Err(ReplayError::Empty)
    ));
    for k in 0..25 {
        push_k(&mut buf, k);
    }
    // Same seed, same batch; different seed, different batch.
    let mut b1 = Batch::new(64, 2, 1);
    let mut b2 = Batch::new(64, 2, 1);
    buf.sample_into(&mut Rng::seed_from_u64(5), &mut b1)
        .unwrap();
    buf.sample_into(&mut Rng::seed_from_u64(5), &mut b2)
        .unwrap();
    assert_eq!(b1, b2);
    buf.sample_into(&mut Rng::seed_from_u64(6), &mut b2)
        .unwrap();
    assert_ne!(b1.indices, b2.indices);
    // Each sampled row is copied intact (obs, action, reward, next_obs, flag belong together).
    for i in 0..64 {
        let k = b1.obs[2 * i] as usize;
        assert!(
            (15..25).contains(&k),
            "only the newest 10 transitions remain, got {k}"
        );
        assert_eq!(b1.obs[2 * i + 1], k as f32 + 0.5);
        assert_eq!(b1.actions[i], -(k as f32));
        assert_eq!(b1.rewards[i], 10.0 * k as f32);
        assert_eq!(b1.next_obs[2 * i], k as f32 + 1.0);
        assert_eq!(
            b1.terminated[i],
            if k.is_multiple_of(7) { 1.0 } else { 0.0 }
        );
        assert_eq!(buf.get(b1.indices[i]).unwrap().obs[0], k as f32);
    }
    // Uniformity: chi-square over 10 rows with 100k draws (df = 9; 99.99% quantile ~ 33.7).
    let mut rng = Rng::seed_from_u64(7);
    let mut counts = [0usize; 10];
    let mut big = Batch::new(1000, 2, 1);
    for _ in 0..100 {
        buf.sample_into(&mut rng, &mut big).unwrap();
        for &i in &big.indices {
            counts[i] += 1;
        }
    }
    let expected = 100_000.0 / cap as f64;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    eprintln!("replay sampling chi² (df 9) = {chi2:.2}, counts {counts:?}");
    assert!(chi2 < 33.7);
    // A partially filled buffer only samples filled rows.
    let mut part = ReplayBuffer::new(100, 2, 1).unwrap();
    for k in 0..3 {
        push_k(&mut part, k);
    }
    part.sample_into(&mut rng, &mut big).unwrap();
    assert!(big.indices.iter().all(|&i| i < 3));
    // Mismatched batch buffers are errors.
    let mut wrong = Batch::new(4, 3, 1);
    assert!(buf.sample_into(&mut rng, &mut wrong).is_err());
    // Tensor conversion keeps the layout.
    let t = b1.to_tensors(&Device::Cpu).unwrap();
    assert_eq!(t.obs.dims(), &[64, 2]);
    assert_eq!(t.rewards.to_vec1::<f32>().unwrap(), b1.rewards);
}

#[test]
fn save_and_load_round_trip() {
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    for (pushes, name) in [(3usize, "partial"), (13, "wrapped")] {
        let mut buf = ReplayBuffer::new(5, 2, 1).unwrap();
        for k in 0..pushes {
            push_k(&mut buf, k);
        }
        let path = dir.join(format!("stackrl_replay_{name}_{pid}.safetensors"));
        buf.save(&path).unwrap();
        let mut loaded = ReplayBuffer::load(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(loaded, buf);
        // The restored ring continues identically.
        push_k(&mut buf, 100);
        push_k(&mut loaded, 100);
        assert_eq!(loaded, buf);
        let (mut a, mut b) = (Batch::new(8, 2, 1), Batch::new(8, 2, 1));
        buf.sample_into(&mut Rng::seed_from_u64(1), &mut a).unwrap();
        loaded
            .sample_into(&mut Rng::seed_from_u64(1), &mut b)
            .unwrap();
        assert_eq!(a, b);
    }
    // Garbage and missing files are errors.
    let bad = dir.join(format!("stackrl_replay_bad_{pid}.safetensors"));
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    assert!(ReplayBuffer::load(&bad).is_err());
    std::fs::remove_file(&bad).ok();
    assert!(matches!(ReplayBuffer::load(&bad), Err(ReplayError::Io(_))));
}
