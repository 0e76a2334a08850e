//! The simulator's state and its journal: every change is one JSON line appended to a file before it is answered,
//! and the state is rebuilt from the file at start, so a restart (or a kill) loses nothing that was answered.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A saved card. `behaviour` is the test card's behaviour (`ok` or a decline code), kept with the method as a real
/// gateway keeps the card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    /// `billing_details[name]` (journals written before it was kept read as empty).
    #[serde(default)]
    pub billing_name: String,
    pub behaviour: String,
    pub created: i64,
}

/// Why a payment intent's confirmation failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentError {
    pub code: String,
    pub decline_code: String,
    pub message: String,
}

/// A payment intent, confirmed when created: `succeeded` or `requires_payment_method` (declined).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub status: String,
    pub latest_charge: String,
    pub last_payment_error: Option<PaymentError>,
    pub metadata: BTreeMap<String, String>,
    /// Refunded so far, in minor units.
    pub amount_refunded: i64,
    pub created: i64,
}

/// A refund of (part of) a succeeded payment intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: String,
    pub charge: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
}

/// An answer kept for an `Idempotency-Key`: the same key gives the same answer, byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
}

/// An event to deliver to the webhook endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub body: Value,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    PaymentMethod(PaymentMethod),
    PaymentIntent(PaymentIntent),
    Refund(Refund),
    Idempotent { key: String, stored: Stored },
    Event(Event),
    Delivered { id: String },
}

/// Everything the simulator knows.
#[derive(Debug, Default)]
pub struct State {
    pub payment_methods: HashMap<String, PaymentMethod>,
    pub intents: HashMap<String, PaymentIntent>,
    pub refunds: HashMap<String, Refund>,
    pub idempotency: HashMap<String, Stored>,
    /// Events not yet acknowledged by the endpoint, oldest first.
    pub pending_events: BTreeMap<String, Event>,
}

impl State {
    fn apply(&mut self, record: Record) {
        match record {
            Record::PaymentMethod(pm) => {
                self.payment_methods.insert(pm.id.clone(), pm);
            }
            Record::PaymentIntent(pi) => {
                self.intents.insert(pi.id.clone(), pi);
            }
            Record::Refund(re) => {
                self.refunds.insert(re.id.clone(), re);
            }
            Record::Idempotent { key, stored } => {
                self.idempotency.insert(key, stored);
            }
            Record::Event(event) => {
                self.pending_events.insert(event.id.clone(), event);
            }
            Record::Delivered { id } => {
                self.pending_events.remove(&id);
            }
        }
    }
}

/// The state behind a lock, and the journal it is written to.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<(State, File)>,
}

/// The state, locked; [`Txn::record`] applies a change and writes it to the journal.
pub struct Txn<'a> {
    guard: MutexGuard<'a, (State, File)>,
}

impl Txn<'_> {
    /// What is known now.
    pub fn state(&self) -> &State {
        &self.guard.0
    }

    /// Applies `records` and appends them to the journal (written to the file before the lock is released, so an
    /// answer given after this survives a restart of the process).
    pub fn record(&mut self, records: Vec<Record>) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut lines, record)?;
            lines.push(b'\n');
        }
        let (state, file) = &mut *self.guard;
        file.write_all(&lines)?;
        file.flush()?;
        for record in records {
            state.apply(record);
        }
        Ok(())
    }
}

impl Store {
    /// Opens (or creates) the journal at `path` and replays it. A torn last line (a crash mid-write) is skipped.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut state = State::default();
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines() {
                let line = line?;
                match serde_json::from_str::<Record>(&line) {
                    Ok(record) => state.apply(record),
                    Err(err) if !line.trim().is_empty() => {
                        tracing::warn!(error = %err, "skipping an unreadable journal line");
                    }
                    Err(_) => {}
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { inner: Mutex::new((state, file)) })
    }

    /// Locks the state for reading or a change.
    pub fn begin(&self) -> Txn<'_> {
        Txn { guard: self.inner.lock().unwrap_or_else(PoisonError::into_inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_rebuilds_the_state_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("gateway.journal");
        {
            let store = Store::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let mut txn = store.begin();
            let event = Event { id: "evt_1".into(), body: serde_json::json!({"id": "evt_1"}) };
            let stored = Stored { fingerprint: "f".into(), status: 200, body: serde_json::json!({"ok": true}) };
            txn.record(vec![Record::Event(event), Record::Idempotent { key: "k".into(), stored }])
                .unwrap_or_else(|e| panic!("{e}"));
            txn.record(vec![Record::Delivered { id: "evt_1".into() }]).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"record\":\"event\",\"id\":"))
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let txn = store.begin();
        assert!(txn.state().pending_events.is_empty(), "the delivered event stays delivered");
        assert_eq!(txn.state().idempotency.get("k").map(|s| s.status), Some(200));
    }
}
