//! `socket-probe PATH`: connects to an fkq-credd socket, sends a greeting
//! and a `get` as the real client would, and reports on stdout how many
//! bytes came back before the daemon closed the connection.
//!
//! Tests run it as another user (through `setpriv`) to show that a peer
//! the daemon refuses gets not a single byte. Exit status: 0 when it
//! connected and read to the end, 2 when it could not connect, 3 when the
//! connection stayed open past the deadline.

use std::process::ExitCode;

#[cfg(unix)]
fn main() -> ExitCode {
    use std::io::{Read, Write};

    use fkq_cred_tests::wire;

    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: socket-probe SOCKET");
        return ExitCode::from(2);
    };
    let mut stream = match wire::connect(path.as_ref()) {
        Ok(stream) => stream,
        Err(e) => {
            println!("connect failed: {e}");
            return ExitCode::from(2);
        }
    };
    // The daemon may already have closed: a failed write is part of what
    // is being observed, not a reason to stop.
    let _ = stream.write_all(&wire::greeting_and_request(&wire::get_request()));
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                println!("received {} bytes, then: {e}", received.len());
                return ExitCode::from(3);
            }
        }
    }
    println!("received {} bytes", received.len());
    ExitCode::SUCCESS
}

#[cfg(not(unix))]
fn main() -> ExitCode {
    eprintln!("socket-probe speaks to Unix sockets only");
    ExitCode::from(2)
}
