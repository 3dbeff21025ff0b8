//! A few threads that decode blocks for `strand diode-rx`, so the receiver
//! goes on taking frames while a block is rebuilt.
//!
//! With loss, every block of a group reaches `k` symbols in the last moments
//! of a pass (the blocks are interleaved so that a burst of loss costs each
//! only its share), and decoding them one after another on the receiving
//! thread was most of the time between the last datagram and the file
//! (issue 12). Here they are decoded side by side, each worker with its own
//! codec, while the receiving thread keeps up with the line.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use strand_link::diode::Codec;

/// A job: runs on a worker with the worker's codec.
pub type Job<R> = Box<dyn FnOnce(&mut Codec) -> R + Send>;

/// Worker threads running jobs tagged `T` that produce `R`.
pub struct Workers<T, R> {
    jobs: Option<Sender<(T, Job<R>)>>,
    done: Receiver<(T, Result<R, String>)>,
    threads: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl<T: Send + 'static, R: Send + 'static> Workers<T, R> {
    /// `threads` workers (at least one).
    pub fn new(threads: usize) -> std::io::Result<Workers<T, R>> {
        let (jobs, queue) = mpsc::channel::<(T, Job<R>)>();
        let (done_tx, done) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (queue, done_tx) = (queue.clone(), done_tx.clone());
            handles.push(std::thread::Builder::new().name(format!("diode-rx-decode-{i}")).spawn(
                move || {
                    let mut codec = Codec::default();
                    loop {
                        // The lock is held only to take a job, not to run it.
                        let next = queue.lock().map_err(|_| ()).and_then(|q| q.recv().map_err(|_| ()));
                        let Ok((tag, job)) = next else { return };
                        // A job that panics is reported, not lost: whoever waits for it would wait forever.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut codec)))
                            .map_err(|_| "a decoding thread panicked".to_string());
                        if done_tx.send((tag, r)).is_err() {
                            return;
                        }
                    }
                },
            )?);
        }
        Ok(Workers { jobs: Some(jobs), done, threads: handles, in_flight: 0 })
    }

    /// Queues a job.
    pub fn submit(&mut self, tag: T, job: Job<R>) {
        if let Some(jobs) = &self.jobs {
            if jobs.send((tag, job)).is_ok() {
                self.in_flight += 1;
            }
        }
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Jobs queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A finished job's result, if one is ready.
    pub fn try_done(&mut self) -> Option<(T, Result<R, String>)> {
        let r = self.done.try_recv().ok()?;
        self.in_flight -= 1;
        Some(r)
    }

    /// The next finished job's result, waiting for it; `None` if none is in flight.
    pub fn wait_done(&mut self) -> Option<(T, Result<R, String>)> {
        if self.in_flight == 0 {
            return None;
        }
        let r = self.done.recv().ok()?;
        self.in_flight -= 1;
        Some(r)
    }
}

impl<T, R> std::fmt::Debug for Workers<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<T, R> Drop for Workers<T, R> {
    fn drop(&mut self) {
        // Closing the queue ends the workers once they finish what they hold.
        drop(self.jobs.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_side_by_side_and_a_panic_is_reported() {
        let mut w: Workers<u32, u32> = Workers::new(2).unwrap();
        for i in 0..10 {
            w.submit(i, Box::new(move |_| i * i));
        }
        w.submit(99, Box::new(|_| panic!("hostile input")));
        let mut got = Vec::new();
        while let Some((tag, r)) = w.wait_done() {
            got.push((tag, r));
        }
        got.sort_by_key(|g| g.0);
        assert_eq!(got.len(), 11);
        assert!(got[..10].iter().all(|(t, r)| r.as_ref().ok() == Some(&(t * t))));
        assert!(got[10].1.is_err());
        assert_eq!((w.in_flight(), w.try_done().is_none()), (0, true));
    }
}
