//! Shared by the TLS examples: runs a number of client handshakes over a number of threads with
//! a progress line on stderr, then prints the rate and the resumption ratio.

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Makes `handshakes` calls of `connect`, spread over `threads` threads (each first runs
/// `thread_init`); `connect` returns whether the handshake resumed a session.
pub fn run_phase<C>(
    label: &str,
    handshakes: usize,
    threads: usize,
    thread_init: fn(),
    connect: C,
) -> Res<()>
where
    C: Fn() -> Res<bool> + Clone + Send + 'static,
{
    let done = Arc::new(AtomicUsize::new(0));
    let resumed = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let progress = {
        let (done, resumed, finished) = (done.clone(), resumed.clone(), finished.clone());
        let label = label.to_string();
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                eprint!(
                    "\r  {label}: {}/{handshakes} handshakes, {} resumed ",
                    done.load(Ordering::Relaxed),
                    resumed.load(Ordering::Relaxed)
                );
            }
            eprint!("\r{:60}\r", "");
        })
    };

    let clients: Vec<_> = (0..threads)
        .map(|i| {
            let share = handshakes / threads + usize::from(i < handshakes % threads);
            let (connect, done, resumed) = (connect.clone(), done.clone(), resumed.clone());
            std::thread::spawn(move || -> Res<()> {
                thread_init();
                for _ in 0..share {
                    if connect()? {
                        resumed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let mut result = Ok(());
    for c in clients {
        let r = c.join().map_err(|_| "client thread panicked")?;
        if result.is_ok() {
            result = r;
        }
    }
    let elapsed = start.elapsed();
    finished.store(true, Ordering::Relaxed);
    progress.join().map_err(|_| "progress thread panicked")?;
    result?;

    let (n, r) = (
        done.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed),
    );
    println!(
        "{label}: {n} handshakes in {:.2} s = {:.0} handshakes/s, resumed {r}/{n} ({:.1} %)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        (1000.0 * r as f64 / n.max(1) as f64).floor() / 10.0
    );
    Ok(())
}
