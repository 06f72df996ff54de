//! A CLOCK_MONOTONIC timerfd set to absolute deadlines in microseconds:
//! tokio's 1 ms wheel is too coarse to order takeovers by priority at 10 ms
//! adverts (DESIGN-NOTES: one priority step is 39 us of Skew_Time).

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::machine::Micros;

/// The monotonic clock in microseconds (the kernel's `bpf_ktime_get_ns`
/// clock, so peer last-seen times compare directly).
pub fn now() -> Micros {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Micros(t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000))
        .unwrap_or_default()
}

/// The monotonic clock in nanoseconds, for the takeover's steps
/// (`status::Takeover`), which compare with the kernel's own times.
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or_default()
}

/// The loop thread's scheduler statistics, read during a takeover to
/// tell its two ways of losing time apart: waiting for a CPU (run delay,
/// other work on the machine) and sleeping (e.g. on the kernel's RTNL
/// lock during the address add: a voluntary context switch).
pub struct SchedStat(Option<std::fs::File>);

impl SchedStat {
    /// Open `/proc/thread-self/schedstat` of the calling thread (the
    /// loop's); without it the readings are absent.
    pub fn open() -> SchedStat {
        SchedStat(std::fs::File::open("/proc/thread-self/schedstat").ok())
    }

    /// (run delay ns, voluntary context switches) of the thread so far.
    pub fn read(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        // One pread from the start: the file regenerates its text.
        let n = self.0.as_ref()?.read_at(&mut buf, 0).ok()?;
        // "<on-cpu ns> <run-delay ns> <timeslices>"
        let delay = std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: getrusage fills the zeroed struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut ru) } != 0 {
            return None;
        }
        Some((delay, ru.ru_nvcsw as u64))
    }
}

type Fd = crate::fd::RawFdOf<TimerFd>;

/// One deadline at a time.
pub struct Deadline {
    fd: AsyncFd<Fd>,
    armed: Option<Micros>,
}

impl Deadline {
    /// A disarmed timer.
    pub fn new() -> io::Result<Deadline> {
        let t = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(io::Error::from)?;
        // SAFETY: `Fd` owns the timerfd and the AsyncFd owns the `Fd`, so
        // the descriptor stays open and the same for the AsyncFd's life.
        let fd = unsafe { AsyncFd::register_with_interest(crate::fd::RawFdOf(t), Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Deadline { fd, armed: None })
    }

    /// Arm for `at` (absolute), or disarm.
    pub fn set(&mut self, at: Option<Micros>) -> io::Result<()> {
        if at == self.armed {
            return Ok(());
        }
        match at {
            Some(t) => {
                // 0 would disarm: a deadline in the past fires at once.
                let us = t.0.max(1);
                let ts = TimeSpec::new((us / 1_000_000) as i64, ((us % 1_000_000) * 1000) as i64);
                self.fd.get_ref().0.set(Expiration::OneShot(ts), TimerSetTimeFlags::TFD_TIMER_ABSTIME)
            }
            None => self.fd.get_ref().0.unset(),
        }
        .map_err(io::Error::from)?;
        self.armed = at;
        Ok(())
    }

    /// Wait until the armed deadline passes (forever if disarmed).
    pub async fn fired(&mut self) -> io::Result<()> {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                let mut buf = [0u8; 8];
                // SAFETY: reading 8 bytes into an 8-byte buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            }) {
                Ok(Ok(())) => {
                    // The read took every expiry: until the next one, the
                    // descriptor is not readable. Saying so saves a read
                    // that would only find that out (EAGAIN) on the next
                    // wait, one system call per advert of a master.
                    guard.clear_ready();
                    self.armed = None;
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}
