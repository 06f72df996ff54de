//! A nix descriptor type (TimerFd, Inotify: `AsFd` only) as tokio's
//! `AsyncFd` wants it (`AsRawFd`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// `T`, readable through its raw descriptor.
pub(crate) struct RawFdOf<T>(pub(crate) T);

impl<T: AsFd> AsRawFd for RawFdOf<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T: AsFd> AsFd for RawFdOf<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
