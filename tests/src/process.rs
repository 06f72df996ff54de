//! Child processes (agents, keepalived) that are stopped on drop, with
//! their output relayed line by line and kept for assertions.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running child; SIGTERM on drop, SIGKILL if it lingers.
pub struct Process {
    label: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Start `cmd`, relaying its stdout and stderr as `[label] line` when
    /// `echo` is set, and keeping every line.
    pub fn spawn(label: &str, cmd: &mut Command, echo: bool) -> Result<Process> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let outs: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for out in outs.into_iter().flatten() {
            let lines = Arc::clone(&lines);
            let label = label.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if echo {
                        println!("[{label}] {line}");
                    }
                    if let Ok(mut l) = lines.lock() {
                        l.push(line);
                    }
                }
            });
        }
        Ok(Process { label: label.to_owned(), child, lines })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many printed lines contain `needle` (without copying them).
    pub fn count(&self, needle: &str) -> usize {
        self.lines.lock().map(|l| l.iter().filter(|l| l.contains(needle)).count()).unwrap_or(0)
    }

    /// Wait until a printed line contains `needle`; fail if the process
    /// exits first or `limit` passes.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Result<String> {
        let child = &mut self.child;
        await_line(&self.label, &self.lines, needle, limit, || Ok(child.try_wait()?))
    }

    /// Like `wait_for_line`, through a shared reference (the output is
    /// collected by background threads either way), without the exit check.
    pub fn wait_for_line_once(&self, needle: &str, limit: Duration) -> Result<String> {
        await_line(&self.label, &self.lines, needle, limit, || Ok(None))
    }

    /// Send `sig`.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), sig).with_context(|| format!("signalling {}", self.label))
    }

    /// SIGTERM, then wait up to `limit` for the exit status.
    pub fn stop(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        if let Some(s) = self.child.try_wait()? {
            return Ok(s);
        }
        self.signal(Signal::SIGTERM)?;
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                bail!("{} ignored SIGTERM for {limit:?}; killed", self.label);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.stop(Duration::from_secs(5)) {
            eprintln!("cleanup: {e:#}");
        }
    }
}

/// Poll the collected `lines` for `needle` until `limit`, failing early if
/// `exited` reports an exit status.
fn await_line(
    label: &str,
    lines: &Mutex<Vec<String>>,
    needle: &str,
    limit: Duration,
    mut exited: impl FnMut() -> Result<Option<std::process::ExitStatus>>,
) -> Result<String> {
    let start = Instant::now();
    let all = || lines.lock().map(|l| l.clone()).unwrap_or_default();
    loop {
        if let Some(l) = all().into_iter().find(|l| l.contains(needle)) {
            return Ok(l);
        }
        if let Some(status) = exited()? {
            bail!("{label} exited ({status}) before printing {needle:?}:\n{}", all().join("\n"));
        }
        if start.elapsed() > limit {
            bail!("{label} did not print {needle:?} within {limit:?}:\n{}", all().join("\n"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Poll `f` until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if f()? {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("condition not met within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Process {
    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }
}
