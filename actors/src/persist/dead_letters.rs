//! The dead letters: bars that will never be written, kept for a human beside the journal.
//!
//! A bar lands here when the store refuses it for what it holds (found by bisection of its batch, so the
//! rest of the batch is written), when it breaks the OHLCV invariants on its way in, or when a journal
//! record holding it cannot be read back. One JSON object a line:
//! `{"time_ms":..,"reason":"..","bar":{..}}` (`bar` is the bar as stored, or the unreadable record's text).
//! The file stops growing at `max_bytes`; beyond, dead letters are only counted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One bar given up, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub bar: serde_json::Value,
    pub reason: String,
}

/// The dead-letter file could not take a dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead letters {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("dead letters {path} reached store.dead_letter_max_bytes ({max}); {bars} bars only counted")]
    Full { path: PathBuf, max: u64, bars: usize },
}

/// See the module documentation. The file is opened on the first dead letter only.
pub struct DeadLetters {
    path: PathBuf,
    file: Option<File>,
    bytes: Option<u64>,
    max_bytes: u64,
}

impl DeadLetters {
    pub fn new(path: &Path, max_bytes: u64) -> DeadLetters {
        DeadLetters { path: path.to_owned(), file: None, bytes: None, max_bytes }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `letters` (fsynced), all or none.
    pub fn write(&mut self, letters: &[DeadLetter], now_ms: i64) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let io = |e: std::io::Error| DeadLetterError::Io { path: self.path.clone(), message: e.to_string() };
        let mut buf = Vec::new();
        for l in letters {
            let line = serde_json::json!({ "time_ms": now_ms, "reason": l.reason, "bar": l.bar });
            // A Value always serialises.
            serde_json::to_writer(&mut buf, &line).map_err(|e| io(e.into()))?;
            buf.push(b'\n');
        }
        if self.file.is_none() {
            let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
            self.bytes = Some(file.metadata().map_err(io)?.len());
            self.file = Some(file);
        }
        let bytes = self.bytes.unwrap_or(0);
        if bytes + buf.len() as u64 > self.max_bytes {
            return Err(DeadLetterError::Full { path: self.path.clone(), max: self.max_bytes, bars: letters.len() });
        }
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        file.write_all(&buf).and_then(|()| file.sync_data()).map_err(io)?;
        self.bytes = Some(bytes + buf.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_are_json_lines_and_the_file_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut d = DeadLetters::new(&path, 200);
        let letter = DeadLetter { bar: serde_json::json!({"open_time": 60000}), reason: "field type conflict".into() };
        d.write(std::slice::from_ref(&letter), 7).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"time_ms": 7, "reason": "field type conflict", "bar": {"open_time": 60000}})
        );
        let err = d.write(&[letter.clone(), letter.clone(), letter], 8).unwrap_err();
        assert!(matches!(err, DeadLetterError::Full { bars: 3, .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "all or none");
    }
}
