//! A TCP proxy between the application and PostgreSQL that delays every burst
//! the client sends and counts request/response turns: a turn begins each time
//! the client sends after having received something (or for the first time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct DelayProxy {
    pub port: u16,
    turns: Arc<AtomicUsize>,
    up: tokio::sync::watch::Sender<bool>,
}

impl DelayProxy {
    pub async fn start(upstream: &'static str, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let turns = Arc::new(AtomicUsize::new(0));
        let counter = turns.clone();
        let (up, up_watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*up_watch.borrow() {
                    // Down: refuse by closing at once, as a restarting server does.
                    drop(client);
                    continue;
                }
                let counter = counter.clone();
                let mut watch = up_watch.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = relay(client, server, delay, counter) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { port, turns, up }
    }

    /// Cuts every open connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    pub fn turns(&self) -> usize {
        self.turns.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, delay: Duration, turns: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // True once the server has answered since the client last sent.
    let answered = Arc::new(AtomicBool::new(true));
    let answered_upstream = answered.clone();
    let upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            if answered_upstream.swap(false, Ordering::SeqCst) {
                turns.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(delay).await;
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = server_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            answered.store(true, Ordering::SeqCst);
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
