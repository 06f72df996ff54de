//! The log's output, held back during a burst of work.
//!
//! A takeover of thousands of instances logs two lines for each
//! ("Entering MASTER STATE", "Sending/queueing gratuitous ARPs"), and
//! stderr is unbuffered: one `write` a line was 10-15% of the event loop's
//! time in a 4,000-instance takeover (perf). While a `Hold` lives (the
//! loop holds one while it handles a batch of timers or events), the
//! lines of every thread go into one buffer, in the order they were
//! logged, and leave in one `write` when it is dropped, before the loop
//! sleeps again, or when the buffer reaches `FLUSH_AT`. Each line's time
//! is taken when it is logged, not when it is written. Nothing is lost on
//! a panic (the drop runs while unwinding, and `main`'s panic hook
//! writes what is held first); a SIGKILL loses at most one batch's lines.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Written out at this size even while held.
const FLUSH_AT: usize = 64 * 1024;

struct Out {
    held: bool,
    buf: Vec<u8>,
}

static OUT: Mutex<Out> = Mutex::new(Out { held: false, buf: Vec::new() });

fn out() -> MutexGuard<'static, Out> {
    OUT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Write (and empty) what is held.
fn drain(o: &mut Out) {
    if !o.buf.is_empty() {
        // A log line that cannot be written has nowhere else to go.
        let _ = io::stderr().lock().write_all(&o.buf);
        o.buf.clear();
    }
    if o.buf.capacity() > FLUSH_AT {
        o.buf = Vec::new();
    }
}

/// The logger's target: stderr, through the buffer while held.
pub struct Sink;

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut o = out();
        if o.held {
            o.buf.extend_from_slice(data);
            if o.buf.len() >= FLUSH_AT {
                drain(&mut o);
            }
            Ok(data.len())
        } else {
            drain(&mut o);
            io::stderr().lock().write_all(data)?;
            Ok(data.len())
        }
    }

    /// The logger flushes after each line: held lines stay held.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lines logged while this lives leave together when it is dropped.
#[must_use = "the lines are held only while the guard lives"]
pub struct Hold(());

/// Hold the log's lines until the guard is dropped.
pub fn hold() -> Hold {
    out().held = true;
    Hold(())
}

/// Stop holding and write what is held.
fn release() {
    let mut o = out();
    o.held = false;
    drain(&mut o);
}

/// Write what is held now, unless a line is being written (`main`'s
/// panic hook: the panic may have come from within the log itself).
pub fn release_for_panic() {
    if let Ok(mut o) = OUT.try_lock() {
        o.held = false;
        drain(&mut o);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_lines_stay_in_order_and_leave_at_the_release() {
        let g = hold();
        writeln!(Sink, "one").expect("held");
        writeln!(Sink, "two").expect("held");
        Sink.flush().expect("a flush");
        assert_eq!(out().buf, b"one\ntwo\n");
        drop(g);
        assert!(out().buf.is_empty());
        assert!(!out().held);
    }
}
