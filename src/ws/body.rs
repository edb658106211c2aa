//! The response body of a `/ws` connection: it runs the session actor and streams the client's outbox to
//! the socket.
//!
//! The connection is one task, woken both by the actor's sources (the client's frames, the mailbox, its
//! timers) and by the hub queueing updates in the outbox. A dashboard's connection is woken ten times a
//! second by the hub and rarely by anything else, so the actor is polled only when one of its own sources
//! woke the task: it polls under a waker of its own ([`ActorWake`]) that marks it due, and an update
//! costs one pop from the outbox instead of a pass over the actor's mailbox, timers and payload too.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use actix_web::Error;
use bytes::Bytes;
use candlecast_actors::outbox::{CloseReason, Outbox};
use candlecast_actors::protocol::frame;
use candlecast_actors::telemetry::{add, COUNTERS};
use futures_util::task::AtomicWaker;
use futures_util::Stream;

/// The session actor's context, as a stream (it writes nothing through it: see [`SessionBody::poll_next`]).
pub(super) type Driver = Pin<Box<dyn Stream<Item = Result<Bytes, Error>>>>;

/// The waker the actor is polled with: whoever wakes it (a client frame, a message, a timer) marks the
/// actor due and wakes the connection's task.
#[derive(Default)]
struct ActorWake {
    due: AtomicBool,
    task: AtomicWaker,
}

impl Wake for ActorWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Polls the session actor (the `driver`) when it is due and streams the outbox. It ends when the outbox
/// is closed and drained; dropping it stops the actor.
pub(super) struct SessionBody {
    driver: Option<Driver>,
    outbox: Arc<Outbox>,
    wake: Arc<ActorWake>,
    /// `wake` as a `Waker`, made once.
    actor_waker: Waker,
}

impl SessionBody {
    pub(super) fn new(driver: Driver, outbox: Arc<Outbox>) -> SessionBody {
        let wake = Arc::new(ActorWake::default());
        // Due at first: the actor has not been polled yet, so nothing of its would wake it.
        wake.due.store(true, Ordering::Relaxed);
        SessionBody { driver: Some(driver), outbox, actor_waker: Waker::from(wake.clone()), wake }
    }

    /// Polls the actor while it makes progress. `Some` is an item for the socket; the actor is then still
    /// due (it returned before it could register a wake), so it is polled again next time.
    fn poll_actor(&mut self) -> Option<Result<Bytes, Error>> {
        let driver = self.driver.as_mut()?;
        if !self.wake.due.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut cx = Context::from_waker(&self.actor_waker);
        loop {
            match driver.as_mut().poll_next(&mut cx) {
                // Nothing is written through the context; pass anything through all the same.
                Poll::Ready(Some(Ok(bytes))) if bytes.is_empty() => continue,
                Poll::Ready(Some(item)) => {
                    self.wake.due.store(true, Ordering::Relaxed);
                    return Some(item);
                }
                Poll::Ready(None) => {
                    // The actor stopped; its `stopping` queued the close frame.
                    self.driver = None;
                    self.outbox.close(&CloseReason::Normal);
                    return None;
                }
                Poll::Pending => return None,
            }
        }
    }
}

impl Stream for SessionBody {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Registered before `due` is read: a wake of the actor from here on wakes this poll's task.
        this.wake.task.register(cx.waker());
        if let Some(item) = this.poll_actor() {
            return Poll::Ready(Some(item));
        }
        match this.outbox.poll_pop(cx) {
            Poll::Ready(Some(buffer)) => {
                // One entry is one buffer for the socket, holding one frame or, from the hub, every frame
                // due to this client in one flush.
                add(&COUNTERS.ws_writes, 1);
                add(&COUNTERS.ws_frames, frame::count(&buffer) as u64);
                add(&COUNTERS.ws_bytes_written, buffer.len() as u64);
                Poll::Ready(Some(Ok(buffer)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    /// An actor stand-in: counts its polls, keeps the last waker it was given, ends once `done` is set.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        waker: Mutex<Option<Waker>>,
        done: AtomicBool,
    }

    struct ProbeStream(Arc<Probe>);

    impl Stream for ProbeStream {
        type Item = Result<Bytes, Error>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.polls.fetch_add(1, Ordering::Relaxed);
            if self.0.done.load(Ordering::Relaxed) {
                return Poll::Ready(None);
            }
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Counts the wakes of the connection's task.
    #[derive(Default)]
    struct TaskWakes(AtomicUsize);

    impl Wake for TaskWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A body around a probe actor, and the task it is polled by.
    struct Fixture {
        body: SessionBody,
        probe: Arc<Probe>,
        outbox: Arc<Outbox>,
        wakes: Arc<TaskWakes>,
        task: Waker,
    }

    impl Fixture {
        fn new() -> Fixture {
            let probe = Arc::new(Probe::default());
            let outbox = Arc::new(Outbox::new(1 << 16));
            let body = SessionBody::new(Box::pin(ProbeStream(probe.clone())), outbox.clone());
            let wakes = Arc::new(TaskWakes::default());
            Fixture { body, probe, outbox, task: Waker::from(wakes.clone()), wakes }
        }

        fn poll(&mut self) -> Poll<Option<Result<Bytes, Error>>> {
            Pin::new(&mut self.body).poll_next(&mut Context::from_waker(&self.task))
        }

        fn actor_polls(&self) -> usize {
            self.probe.polls.load(Ordering::Relaxed)
        }

        /// Wakes the actor the way its sources do: through the last waker it was polled with.
        fn wake_actor(&self) {
            self.probe.waker.lock().unwrap().take().expect("the actor registered a waker").wake();
        }
    }

    #[test]
    fn updates_from_the_hub_do_not_poll_the_actor() {
        let mut f = Fixture::new();
        assert!(f.poll().is_pending());
        assert_eq!(f.actor_polls(), 1, "polled once at first");
        for n in 0..3u8 {
            f.outbox.push(Bytes::from(vec![0x81, 1, n])).unwrap();
            match f.poll() {
                Poll::Ready(Some(Ok(b))) => assert_eq!(&b[..], &[0x81, 1, n]),
                other => panic!("{other:?}"),
            }
            assert!(f.poll().is_pending());
        }
        assert_eq!(f.actor_polls(), 1, "three updates written, the actor not polled again");
        assert_eq!(f.wakes.0.load(Ordering::Relaxed), 3, "each update woke the task");
    }

    #[test]
    fn a_wake_from_the_actors_sources_polls_it_once_more() {
        let mut f = Fixture::new();
        assert!(f.poll().is_pending());
        f.wake_actor();
        assert_eq!(f.wakes.0.load(Ordering::Relaxed), 1, "the actor's wake woke the task");
        assert!(f.poll().is_pending());
        assert_eq!(f.actor_polls(), 2);
        assert!(f.poll().is_pending());
        assert_eq!(f.actor_polls(), 2, "not due again until woken again");
    }

    #[test]
    fn the_actor_stopping_closes_the_outbox_and_ends_the_body() {
        let mut f = Fixture::new();
        f.outbox.push(Bytes::from_static(&[0x81, 1, b'a'])).unwrap();
        assert!(f.poll().is_ready(), "the queued update");
        f.probe.done.store(true, Ordering::Relaxed);
        f.wake_actor();
        match f.poll() {
            Poll::Ready(Some(Ok(close))) => {
                assert_eq!((close[0], u16::from_be_bytes([close[2], close[3]])), (0x88, 1000))
            }
            other => panic!("a normal close frame, then the end: {other:?}"),
        }
        assert!(matches!(f.poll(), Poll::Ready(None)));
    }
}
