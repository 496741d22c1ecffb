//! A bounded pool of scoped threads — many machines or probes handled at once without one
//! thread (or process) per item at the same time — and a [`Gate`] that bounds how many
//! threads use one resource at once.

use std::sync::{Condvar, Mutex};

/// A counting semaphore: at most `N` holders of a [`Slot`] at once, the others wait.
pub(crate) struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A place in a [`Gate`], given back on drop.
pub(crate) struct Slot<'a>(&'a Gate);

impl Gate {
    pub const fn new(places: usize) -> Self {
        Gate {
            free: Mutex::new(places),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free place.
    pub fn enter(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// Calls `f` on every item using at most `workers` threads and returns the results in the
/// order of `items`. A panic in `f` is propagated once all threads have stopped.
pub(crate) fn map<T, R, F>(items: Vec<T>, workers: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let count = items.len();
    if count <= 1 || workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..workers.min(count) {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((index, item)) = next else {
                    break;
                };
                let result = f(item);
                done.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((index, result));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_unstable_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn results_keep_their_order_and_concurrency_stays_bounded() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = map((0..40).collect(), 4, |i: u32| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=4).contains(&peak), "{peak}");
        assert_eq!(map(Vec::<u32>::new(), 4, |i| i), Vec::<u32>::new());
    }

    #[test]
    fn a_gate_admits_at_most_its_places() {
        let gate = Gate::new(3);
        let inside = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        map((0..30).collect(), 10, |_: u32| {
            let _slot = gate.enter();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            inside.fetch_sub(1, Ordering::SeqCst);
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
