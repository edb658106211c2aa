//! One [`Publish`] to the hub for every aggregator that published in the same turn of the market thread.
//!
//! Aggregators close their bars on the same ticks (every symbol's 1s bar ends in the same instant) and a
//! hub message each woke the hub's thread thousands of times a second and cost it, and every actor it
//! forwards bar events to, one message each. Updates are appended here instead, and the first one of a turn
//! spawns a task that sends them all once every task ready in that turn has run: nothing waits for a timer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use crate::bars::BarUpdate;
use crate::messages::Publish;

/// See the module documentation. Shared by the aggregators of one market, which all run on its arbiter:
/// each one's updates stay in the order it appended them.
pub struct PublishBatch {
    hub: Recipient<Publish>,
    pending: Mutex<Vec<BarUpdate>>,
    /// A send is spawned and has not taken `pending` yet.
    scheduled: AtomicBool,
}

impl PublishBatch {
    pub fn new(hub: Recipient<Publish>) -> Arc<PublishBatch> {
        Arc::new(PublishBatch { hub, pending: Mutex::new(Vec::new()), scheduled: AtomicBool::new(false) })
    }

    /// Takes `updates` (leaving the caller's buffer empty, its capacity kept) to send with this turn's batch.
    /// Must run on an actix arbiter (where aggregators run).
    pub fn push(self: &Arc<Self>, updates: &mut Vec<BarUpdate>) {
        if updates.is_empty() {
            return;
        }
        // A panicking holder left a consistent Vec: appends are whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).append(updates);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let batch = self.clone();
            actix::spawn(async move {
                // Behind every task already woken in this turn (the other aggregators' ticks).
                tokio::task::yield_now().await;
                batch.send();
            });
        }
    }

    fn send(&self) {
        // Cleared before taking: an append after the take schedules the next send.
        self.scheduled.store(false, Ordering::Release);
        let updates = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !updates.is_empty() {
            self.hub.do_send(Publish { updates });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::UpdateKind;
    use crate::model::{Bar, Interval};

    /// Counts the messages and keeps the updates.
    #[derive(Default)]
    struct Sink {
        messages: usize,
        updates: Vec<BarUpdate>,
    }

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<Publish> for Sink {
        type Result = ();
        fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
            self.messages += 1;
            self.updates.extend(msg.updates);
        }
    }

    #[derive(Message)]
    #[rtype(result = "(usize, Vec<i64>)")]
    struct Read;

    impl Handler<Read> for Sink {
        type Result = MessageResult<Read>;
        fn handle(&mut self, _: Read, _: &mut Context<Self>) -> Self::Result {
            MessageResult((self.messages, self.updates.iter().map(|u| u.bar.open_time).collect()))
        }
    }

    fn update(symbol: &str, open_time: i64) -> BarUpdate {
        BarUpdate { kind: UpdateKind::Closed, bar: Bar::flat(symbol.into(), Interval::S1, open_time, 1.0) }
    }

    #[actix_rt::test]
    async fn what_is_pushed_in_one_turn_goes_in_one_message_in_order() {
        let sink = Sink::default().start();
        let batch = PublishBatch::new(sink.clone().recipient());
        // A thousand aggregators publishing in the same turn.
        for i in 0..1_000 {
            let mut out = vec![update(&format!("S{i}"), 2 * i), update(&format!("S{i}"), 2 * i + 1)];
            batch.push(&mut out);
            assert!(out.is_empty());
        }
        // The next turn's updates go in a message of their own.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        batch.push(&mut vec![update("S0", 2_000)]);
        let (messages, opens) = loop {
            let (messages, opens) = sink.send(Read).await.unwrap();
            if opens.len() == 2_001 {
                break (messages, opens);
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(messages, 2, "one message a turn, not one per push");
        assert_eq!(opens, (0..=2_000).collect::<Vec<i64>>(), "each push's updates in the order pushed");
    }
}
