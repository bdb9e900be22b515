//! A TCP proxy that adds a fixed delay to every byte in each direction, to
//! put a network between the function and PostgreSQL (between a Vercel
//! region and its database a round trip takes 0.5 to 2 ms, across regions
//! more). Latency only: bandwidth and ordering are untouched, so a pipelined
//! transaction pays one added round trip and a chatty one pays each of its.
//!
//! Plain threads, not tokio: `std::thread::sleep` wakes within tens of µs,
//! tokio's timer only to the millisecond, which would distort a 0.5 ms delay.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running proxy; connections already open keep running after it is dropped
/// (the benchmark stops the function that holds them first).
pub struct DelayProxy {
    pub port: u16,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards to `target` with
    /// `round_trip / 2` added each way.
    pub fn start(target: &str, round_trip: Duration) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("Failed to bind the delay proxy")?;
        let port = listener.local_addr()?.port();
        let target = target.to_string();
        let one_way = round_trip / 2;
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone())
                {
                    forward(client_read, server, one_way);
                    forward(server_read, client, one_way);
                }
            }
        });
        Ok(Self { port })
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (sender, receiver) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    if sender
                        .send((Instant::now() + delay, buffer[..read].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping the sender ends the writer once it has sent what was read.
    });
    thread::spawn(move || {
        for (due, chunk) in receiver {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: every answer takes at least the round
    /// trip, and the bytes come back whole and in order.
    #[test]
    fn a_round_trip_takes_at_least_the_delay_and_keeps_the_bytes() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_address = echo.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for stream in echo.incoming() {
                let mut stream = stream.unwrap();
                thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(read) = stream.read(&mut buffer) {
                        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let round_trip = Duration::from_millis(20);
        let proxy = DelayProxy::start(&echo_address, round_trip).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        for message in [&b"first"[..], b"second message", b"3"] {
            let sent = Instant::now();
            client.write_all(message).unwrap();
            let mut answer = vec![0u8; message.len()];
            client.read_exact(&mut answer).unwrap();
            assert_eq!(answer, message);
            assert!(sent.elapsed() >= round_trip, "{:?}", sent.elapsed());
        }
    }
}
