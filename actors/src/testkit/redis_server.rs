//! A real `redis-server` process on a free loopback port, for cluster tests and benches.
//!
//! Started with no persistence (`--save ""`, no AOF) in its own temp dir, killed on drop.
//! [`RedisServer::pause`] / [`RedisServer::resume`] send SIGSTOP / SIGCONT (a Redis that
//! hangs), [`RedisServer::kill`] and [`RedisServer::restart`] take it away and bring it
//! back on the same port (a Redis that crashes and returns empty).
//!
//! Without `redis-server` on the PATH, [`RedisServer::start`] fails with a message that
//! says how to install it (`scripts/test` does).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One redis-server process.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    password: Option<String>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// As [`RedisServer::start`], requiring `password` (`requirepass`).
    pub fn start_with(password: Option<&str>) -> Result<Self, String> {
        // A free port can be taken by another test's server between our probe and the
        // child's bind: then the child exits and we try another port.
        let mut last = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let dir =
                std::env::temp_dir().join(format!("orrery-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mut server = Self {
                port,
                dir,
                child: None,
                password: password.map(str::to_string),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&self.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd.spawn().map_err(|e| {
            format!("cannot start redis-server ({e}); install it (apt-get install -y redis-server) or run scripts/test, which does")
        })?;
        let pid = child.id();
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited at start ({status}); is the port taken?",
                    self.port
                ));
            }
            if self.answering_pid() == Some(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!(
            "redis-server on port {} did not answer within 10s",
            self.port
        ))
    }

    /// The process id of the Redis answering on the port (`INFO server`, after `AUTH`
    /// with the password when one is set): this child's, not another test's server that
    /// took the port.
    fn answering_pid(&self) -> Option<u32> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let mut ask = Vec::new();
        if let Some(pw) = &self.password {
            ask.extend_from_slice(format!("AUTH {pw}\r\n").as_bytes());
        }
        ask.extend_from_slice(b"INFO server\r\n");
        s.write_all(&ask).ok()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 64 * 1024 {
            let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            let line = text
                .split_once("process_id:")
                .and_then(|(_, r)| r.split_once("\r\n"));
            if let Some((pid, _)) = line {
                return pid.trim().parse().ok();
            }
        }
        None
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's pid; no memory is touched.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    /// SIGSTOP: the server hangs (connections stay open, nothing answers).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGKILL, and waits for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose port another server holds is not taken for ready because somebody
    /// answers there.
    #[test]
    fn a_server_on_a_taken_port_is_refused_not_mistaken_for_the_other() {
        let first = RedisServer::start().unwrap();
        assert_eq!(first.answering_pid(), first.pid());
        let mut second = RedisServer {
            port: first.port(),
            dir: std::env::temp_dir().join(format!("orrery-redis-taken-{}", std::process::id())),
            child: None,
            password: None,
        };
        let e = second.spawn().unwrap_err();
        assert!(e.contains("exited at start"), "{e}");
        assert_eq!(first.answering_pid(), first.pid());
    }
}
