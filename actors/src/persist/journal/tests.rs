use super::*;
use crate::model::{Bar, Interval};

const CAP: u64 = 1 << 30;

fn batch(from: i64, n: i64) -> Vec<StoredBar> {
    (from..from + n)
        .map(|i| StoredBar {
            bar: Bar::from_trade("BTCUSDT".into(), Interval::S1, i * 1000, 1.0 + i as f64, 0.5),
            source: "simulated".into(),
            revised: i,
        })
        .collect()
}

fn drain(j: &mut Journal) -> Vec<StoredBar> {
    let mut out = Vec::new();
    while let Some(head) = j.head().unwrap() {
        out.extend(head.iter().cloned());
        j.pop().unwrap();
    }
    out
}

/// Offsets of the records of a file, from their magic.
fn record_starts(data: &[u8]) -> Vec<usize> {
    data.windows(4).enumerate().filter(|(_, w)| *w == MAGIC).map(|(i, _)| i).collect()
}

#[test]
fn batches_come_back_in_order_across_reopening_and_the_file_empties() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/j");
    {
        let (mut j, rec) = Journal::open(&path, CAP).unwrap();
        assert_eq!(rec, Recovered::default());
        assert_eq!(j.oldest(), None);
        j.append(&batch(0, 5), 2).unwrap();
        j.append(&batch(5, 3), 10).unwrap();
        assert_eq!((j.bars(), j.records), (8, 4));
    }
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!((rec.records, rec.bars, rec.torn_bytes, rec.damaged_bytes), (4, 8, 0, 0));
    assert_eq!(j.oldest(), Some(0), "the arrival of the oldest bar, known without reading it");
    assert_eq!(drain(&mut j), batch(0, 8));
    assert!(j.is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied once drained");
    j.append(&batch(20, 1), 10).unwrap();
    assert_eq!(drain(&mut j), batch(20, 1), "usable again after emptying");
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let (mut j, _) = Journal::open(&path, CAP).unwrap();
        j.append(&batch(0, 3), 3).unwrap();
        j.append(&batch(3, 3), 3).unwrap();
    }
    let whole = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of the second record's payload.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(whole - 7).unwrap();
    drop(file);
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!((rec.records, rec.bars, rec.damaged_bytes), (1, 3, 0));
    assert!(rec.torn_bytes > 0);
    // New appends follow the last whole record, not the torn bytes.
    j.append(&batch(10, 2), 5).unwrap();
    drop(j);
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!((rec.records, rec.torn_bytes), (2, 0));
    let mut expected = batch(0, 3);
    expected.extend(batch(10, 2));
    assert_eq!(drain(&mut j), expected);
}

/// One flipped byte in the middle record: the records before and after it replay, it alone is lost.
#[test]
fn damage_in_the_middle_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let (mut j, _) = Journal::open(&path, CAP).unwrap();
        for i in 0..5 {
            j.append(&batch(i * 10, 3), 3).unwrap();
        }
    }
    let mut data = std::fs::read(&path).unwrap();
    let starts = record_starts(&data);
    assert_eq!(starts.len(), 5);
    data[starts[2] + HEADER + 5] ^= 0x20;
    std::fs::write(&path, &data).unwrap();
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!((rec.records, rec.bars, rec.torn_bytes), (4, 12, 0));
    assert_eq!(rec.damaged_bytes, (starts[3] - starts[2]) as u64);
    let expected: Vec<StoredBar> = [0, 1, 3, 4].iter().flat_map(|i| batch(i * 10, 3)).collect();
    assert_eq!(drain(&mut j), expected);
}

/// A run of zeroes over a header and the start of the next record (a bad sector): reading resumes at
/// the first record whose magic and checksum hold.
#[test]
fn a_wiped_region_is_skipped_up_to_the_next_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let (mut j, _) = Journal::open(&path, CAP).unwrap();
        for i in 0..4 {
            j.append(&batch(i * 10, 2), 2).unwrap();
        }
    }
    let mut data = std::fs::read(&path).unwrap();
    let starts = record_starts(&data);
    data[starts[0]..starts[1] + 10].fill(0);
    std::fs::write(&path, &data).unwrap();
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!((rec.records, rec.bars), (2, 4), "the first two records are gone, the last two are not");
    let expected: Vec<StoredBar> = [2, 3].iter().flat_map(|i| batch(i * 10, 2)).collect();
    assert_eq!(drain(&mut j), expected);
}

/// Bars in a record whose checksum holds but that cannot be written back go to the dead letters alone.
#[test]
fn a_bar_that_cannot_be_written_back_is_handed_over_and_its_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let mut bars = batch(0, 3);
    // What an older version wrote for a volume of inf.
    let mut json: Vec<serde_json::Value> = bars.iter().map(|b| serde_json::to_value(b).unwrap()).collect();
    json[1]["bar"]["volume"] = serde_json::Value::Null;
    let payload = serde_json::to_vec(&json).unwrap();
    let mut file = Vec::new();
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(&0i64.to_le_bytes());
    file.extend_from_slice(&checksum(payload.len() as u32, 3, 0, &payload).to_le_bytes());
    file.extend_from_slice(&payload);
    std::fs::write(&path, &file).unwrap();
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert_eq!(rec.bars, 3);
    bars.remove(1);
    assert_eq!(drain(&mut j), bars);
    let damaged = j.take_damaged();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].bar["bar"]["open_time"], 1000);
    assert!(damaged[0].reason.contains("null"), "{}", damaged[0].reason);
}

/// The journal never writes what it could not read back.
#[test]
fn a_non_finite_bar_is_refused_by_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(&dir.path().join("j"), CAP).unwrap();
    let mut bars = batch(0, 2);
    bars[1].bar.volume = f64::INFINITY;
    let err = j.append(&bars, 10).unwrap_err().to_string();
    assert!(err.contains("volume"), "{err}");
    assert!(j.is_empty() && j.bytes() == 0);
}

/// At the cap an append is refused whole and what is there stays; once drained, appends work again.
#[test]
fn the_cap_refuses_appends_and_keeps_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let (mut j, _) = Journal::open(&path, CAP).unwrap();
    j.append(&batch(0, 4), 4).unwrap();
    let one = j.bytes();
    drop(j);
    let (mut j, _) = Journal::open(&path, one * 2 + one / 2).unwrap();
    j.append(&batch(10, 4), 4).unwrap();
    let two = j.bytes();
    let err = j.append(&batch(20, 4), 4).unwrap_err();
    assert!(matches!(err, JournalError::Full { .. }), "{err}");
    assert!(err.to_string().contains("store.journal_max_bytes"), "{err}");
    assert_eq!((j.bars(), j.bytes()), (8, two));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), two, "nothing of the refused batch on disk");
    let mut expected = batch(0, 4);
    expected.extend(batch(10, 4));
    assert_eq!(drain(&mut j), expected);
    j.append(&batch(20, 4), 4).unwrap();
    assert_eq!(drain(&mut j), batch(20, 4));
}

/// Writes records the way the first format did.
fn v1_file(batches: &[Vec<StoredBar>]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in batches {
        let payload = serde_json::to_vec(b).unwrap();
        let oldest = b.iter().map(|b| b.revised).min().unwrap();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&(b.len() as u32).to_le_bytes());
        hasher.update(&oldest.to_le_bytes());
        hasher.update(&payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&oldest.to_le_bytes());
        out.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// A journal left by the first format is rewritten in this one, and its bars all replay.
#[test]
fn a_first_format_journal_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    std::fs::write(&path, v1_file(&[batch(0, 2), batch(2, 3)])).unwrap();
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert!(rec.migrated);
    assert_eq!((rec.records, rec.bars, rec.torn_bytes), (2, 5, 0));
    assert_eq!(std::fs::read(&path).unwrap()[..4], MAGIC, "rewritten");
    assert_eq!(drain(&mut j), batch(0, 5));
    drop(j);
    let (_, rec) = Journal::open(&path, CAP).unwrap();
    assert!(!rec.migrated && rec.records == 0);
}

/// The first format cannot resynchronise: from its first bad record on, the bytes are kept aside.
#[test]
fn a_damaged_first_format_journal_keeps_its_unreadable_rest_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let mut data = v1_file(&[batch(0, 2), batch(2, 2), batch(4, 2)]);
    let second = v1_file(&[batch(0, 2)]).len();
    data[second + V1_HEADER + 3] ^= 0x01;
    std::fs::write(&path, &data).unwrap();
    let (mut j, rec) = Journal::open(&path, CAP).unwrap();
    assert!(rec.migrated);
    assert_eq!(drain(&mut j), batch(0, 2));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("j.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::metadata(aside[0].path()).unwrap().len(), (data.len() - second) as u64);
}
