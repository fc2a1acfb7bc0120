//! TensorBoard event files: the TFRecord framing and the `Event` encoding are read back
//! with an independent decoder, and a resumed writer truncates like the CSV does.

use std::path::PathBuf;

use stackrl::train::metrics::{MetricsPositions, MetricsWriter, Row};
use stackrl::train::tensorboard::{EVENTS_FILE, masked_crc32c};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stackrl-tb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One decoded `Event`: wall time, step, file version, scalar (tag, value) pairs.
#[derive(Debug, Default)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
}

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// Walks the protobuf fields of `b`, calling `f(field, wire_type, payload)`; varints are
/// passed as their 8 little-endian bytes.
fn fields(b: &[u8], mut f: impl FnMut(u64, u64, &[u8])) {
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = read_varint(b, &mut i).to_le_bytes();
                f(field, wire, &v);
            }
            1 => {
                f(field, wire, &b[i..i + 8]);
                i += 8;
            }
            2 => {
                let len = read_varint(b, &mut i) as usize;
                f(field, wire, &b[i..i + len]);
                i += len;
            }
            5 => {
                f(field, wire, &b[i..i + 4]);
                i += 4;
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
}

fn decode_event(b: &[u8]) -> Event {
    let mut e = Event::default();
    fields(b, |field, _, p| match field {
        1 => e.wall_time = f64::from_le_bytes(p.try_into().unwrap()),
        2 => e.step = i64::from_le_bytes(p.try_into().unwrap()),
        3 => e.file_version = Some(String::from_utf8(p.to_vec()).unwrap()),
        5 => fields(p, |vf, _, value| {
            assert_eq!(vf, 1, "Summary has only `value` entries");
            let (mut tag, mut x) = (String::new(), f32::NAN);
            fields(value, |f, wire, q| match (f, wire) {
                (1, 2) => tag = String::from_utf8(q.to_vec()).unwrap(),
                (2, 5) => x = f32::from_le_bytes(q.try_into().unwrap()),
                other => panic!("unexpected Summary.Value field {other:?}"),
            });
            e.scalars.push((tag, x));
        }),
        other => panic!("unexpected Event field {other}"),
    });
    e
}

/// Splits a file into records, checking both checksums of each.
fn read_records(bytes: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let len_bytes = &bytes[i..i + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap());
        assert_eq!(len_crc, masked_crc32c(len_bytes), "length checksum");
        let data = &bytes[i + 12..i + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked_crc32c(data), "data checksum");
        out.push(decode_event(data));
        i += 16 + len;
    }
    assert_eq!(i, bytes.len(), "no partial record at the end");
    out
}

const COLUMNS: &[&str] = &["step", "event", "episode_return", "loss", "note"];

#[test]
fn rows_become_tagged_scalars_at_their_step() {
    let dir = temp_dir("rows");
    let mut w = MetricsWriter::create(&dir, COLUMNS).unwrap();
    w.write(
        &Row::new()
            .int("step", 200)
            .text("event", "episode")
            .num("episode_return", -1234.5)
            .text("note", "text is not a scalar"),
    )
    .unwrap();
    w.write(
        &Row::new()
            .int("step", 1_000)
            .text("event", "train")
            .num("loss", 0.25),
    )
    .unwrap();
    // No step: CSV only.
    w.write(&Row::new().num("loss", 1.0)).unwrap();

    let events = read_records(&std::fs::read(dir.join(EVENTS_FILE)).unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(
        events[0].wall_time > 1.6e9,
        "wall time is seconds since 1970"
    );
    assert_eq!(events[1].step, 200);
    assert_eq!(
        events[1].scalars,
        vec![("episode/episode_return".to_string(), -1234.5)]
    );
    assert_eq!(events[2].step, 1_000);
    assert_eq!(events[2].scalars, vec![("train/loss".to_string(), 0.25)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_truncates_the_event_file_to_the_checkpoint() {
    let dir = temp_dir("resume");
    let row = |step: u64| {
        Row::new()
            .int("step", step)
            .text("event", "train")
            .num("loss", step as f64)
    };
    let mut w = MetricsWriter::create(&dir, COLUMNS).unwrap();
    w.write(&row(1)).unwrap();
    let at_checkpoint = w.positions();
    w.write(&row(2)).unwrap();
    w.write(&row(3)).unwrap();
    drop(w);

    let mut w = MetricsWriter::resume(&dir, COLUMNS, at_checkpoint.clone()).unwrap();
    w.write(&row(4)).unwrap();
    let steps: Vec<i64> = read_records(&std::fs::read(dir.join(EVENTS_FILE)).unwrap())
        .iter()
        .skip(1)
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, vec![1, 4]);

    // A checkpoint that recorded more bytes than the file holds is an error, not a silent
    // continuation.
    let too_long = MetricsPositions {
        tfevents: 1 << 20,
        ..w.positions()
    };
    drop(w);
    let err = MetricsWriter::resume(&dir, COLUMNS, too_long).unwrap_err();
    assert!(err.to_string().contains("event file"), "{err}");

    // A checkpoint that recorded no event file (tfevents = 0) starts a new one.
    let old = MetricsPositions {
        tfevents: 0,
        ..at_checkpoint
    };
    let mut w = MetricsWriter::resume(&dir, COLUMNS, old).unwrap();
    w.write(&row(5)).unwrap();
    let events = read_records(&std::fs::read(dir.join(EVENTS_FILE)).unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].step, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}
