//! A pseudo-terminal for end-to-end tests of what happens on a terminal:
//! prompts, and colour that must appear only there.
//!
//! The child gets the terminal's far end as stdin, stdout and stderr; the
//! test reads what it prints and types answers on the near end.

#![cfg(unix)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child running on a pseudo-terminal.
pub struct PtyChild {
    /// The child process.
    pub child: Child,
    writer: File,
    output_rx: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl PtyChild {
    /// Starts `command` with a new terminal as its stdin, stdout and
    /// stderr.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        let (master, slave) = open_pty()?;
        command
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        let child = command.spawn()?;
        // Closes this process's copies of the far end, so that reads end
        // once the child has exited.
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut reader = File::from(master.try_clone()?);
        let (output_tx, output_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // Linux reports the end of a terminal whose far end closed as
            // EIO rather than as a read of zero bytes.
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                if output_tx.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            writer: File::from(master),
            output_rx,
            seen: Vec::new(),
        })
    }

    /// Waits until the output contains `text`, at most `limit`, and
    /// returns everything seen so far.
    pub fn expect(&mut self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let seen = String::from_utf8_lossy(&self.seen).into_owned();
            if seen.contains(text) {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output_rx.recv_timeout(left) {
                Ok(bytes) => self.seen.extend_from_slice(&bytes),
                Err(_) => panic!("no {text:?} within {limit:?}; seen:\n{seen}"),
            }
        }
    }

    /// Types `text` on the terminal.
    pub fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("write to the terminal");
    }

    /// Waits for the child to exit, then returns everything it printed.
    pub fn finish(
        mut self,
        limit: Duration,
    ) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the child did not exit within {limit:?}");
            }
            let wait = Duration::from_millis(20);
            if let Ok(bytes) = self.output_rx.recv_timeout(wait) {
                self.seen.extend_from_slice(&bytes);
            }
        };
        drop(self.writer);
        while let Ok(bytes) =
            self.output_rx.recv_timeout(Duration::from_millis(200))
        {
            self.seen.extend_from_slice(&bytes);
        }
        (status, String::from_utf8_lossy(&self.seen).into_owned())
    }
}

fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two descriptors into the given integers; the
    // name, termios and window size pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}
