//! The daemon's stats outputs (the `--stats` table on stdout, the
//! `--stats-json` lines in a file or on stdout) and what happens when one of
//! them cannot be written.
//!
//! An output exists for people and harnesses watching the scheduler; losing
//! it is no reason to stop scheduling and hand the machine back to the
//! kernel's default scheduler. A reader that went away (`--stats 1 | head`),
//! a full disk, a log collector restarting: the first failed write is
//! reported once on stderr, the output is closed for good (no retry that
//! could block or flood the log), and the daemon goes on. [`Output::lost`]
//! tells the summary line at exit which output was lost and why.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use log::warn;

/// One stats output. Writing never fails: see the module doc.
pub struct Output {
    /// How the user named it, for messages ("--stats-json /var/log/x").
    what: String,
    /// None once the output is lost.
    dest: Option<Box<dyn Write + Send>>,
    lost: Option<String>,
}

impl Output {
    /// Writes to `dest`; `what` names the output in messages.
    pub fn new(what: impl Into<String>, dest: Box<dyn Write + Send>) -> Self {
        Self {
            what: what.into(),
            dest: Some(dest),
            lost: None,
        }
    }

    /// The process's stdout.
    pub fn stdout(what: impl Into<String>) -> Self {
        Self::new(what, Box::new(io::stdout()))
    }

    /// `--stats-json PATH`: appends to PATH, or writes to stdout for "-".
    /// Failing to open it is an error: that is a bad command line, caught
    /// before anything is loaded.
    pub fn open_json(path: &str) -> Result<Self> {
        let what = format!("--stats-json {path}");
        if path == "-" {
            return Ok(Self::stdout(what));
        }
        let f = File::options()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening --stats-json file {path}"))?;
        Ok(Self::new(what, Box::new(BufWriter::new(f))))
    }

    /// Writes `text` and flushes it, so that a reader sees every line when
    /// it is written. On the first error the output is dropped (see the
    /// module doc); later calls do nothing.
    pub fn write(&mut self, text: &str) {
        let Some(dest) = self.dest.as_mut() else {
            return;
        };
        if let Err(e) = dest.write_all(text.as_bytes()).and_then(|()| dest.flush()) {
            let why = format!("{}: {e}", self.what);
            warn!("cannot write the stats ({why}); no more stats there, scheduling goes on");
            self.lost = Some(why);
            // Dropping a BufWriter flushes it once more; whatever that
            // returns is ignored, which is what we want.
            self.dest = None;
        }
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: &str) {
        self.write(&format!("{text}\n"));
    }

    /// Why the output was lost ("--stats-json /x: No space left on
    /// device"), if it was.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that accepts `room` bytes, then fails like a full disk,
    /// and counts every write it is asked for.
    struct Limited {
        room: usize,
        seen: Arc<Mutex<(Vec<u8>, usize)>>,
    }

    impl Write for Limited {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut seen = self.seen.lock().unwrap();
            seen.1 += 1;
            if seen.0.len() + buf.len() > self.room {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            seen.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_output_is_dropped_once_and_reported() {
        let seen = Arc::new(Mutex::new((Vec::new(), 0)));
        let mut out = Output::new(
            "--stats-json /x",
            Box::new(Limited {
                room: 8,
                seen: seen.clone(),
            }),
        );
        out.line("first");
        assert_eq!(out.lost(), None);
        out.line("second");
        let why = out.lost().expect("the second line did not fit");
        assert!(why.starts_with("--stats-json /x: "), "{why}");
        assert!(why.contains("No space left"), "{why}");
        let writes = seen.lock().unwrap().1;
        for _ in 0..5 {
            out.line("more");
        }
        // Nothing is tried again once the output is lost.
        assert_eq!(seen.lock().unwrap().1, writes);
        assert_eq!(seen.lock().unwrap().0, b"first\n");
    }

    #[test]
    fn a_closed_pipe_is_lost_not_fatal() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both are open descriptors that we own from here on.
        let (reader, writer) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        drop(reader);
        // Rust programs (test harness included) ignore SIGPIPE, as the
        // daemon does: the write returns EPIPE.
        let mut out = Output::new("--stats (stdout)", Box::new(writer));
        out.write("table\n");
        assert!(
            out.lost().is_some_and(|w| w.contains("Broken pipe")),
            "{:?}",
            out.lost()
        );
        out.write("table\n");
    }

    #[test]
    fn json_outputs_open_or_say_which_file() {
        let err = Output::open_json("/nonexistent-dir/stats.jsonl")
            .err()
            .expect("opened a file in a missing folder");
        assert!(format!("{err:#}").contains("/nonexistent-dir/stats.jsonl"));
        let out = Output::open_json("-").expect("stdout");
        assert_eq!(out.lost(), None);
    }

    #[test]
    fn dev_full_is_lost_on_the_first_line() {
        let mut out = Output::open_json("/dev/full").expect("/dev/full opens");
        out.line("{}");
        assert!(
            out.lost()
                .is_some_and(|w| w.starts_with("--stats-json /dev/full: ")),
            "{:?}",
            out.lost()
        );
    }
}
