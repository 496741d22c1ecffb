//! A bounded pool of scoped threads: many machines or probes handled at once without one
//! thread (or process) per item at the same time.

use std::sync::Mutex;

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
}
