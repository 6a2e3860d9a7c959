//! A test server run as a child process on a free port of `127.0.0.1`: its stdout and stderr go to
//! a log in a temporary folder, shown when it fails to start, and it is killed when dropped. The
//! emulators the object-storage tests start (`s3_server`, `azurite`, `fake_gcs`) are each one.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`ServerProcess::wait_until`] waits for a server to be ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A port of `127.0.0.1` nobody listens on right now (the OS's pick; another process could take
/// it before the server binds it, which is unlikely enough for tests).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free local port");
    listener.local_addr().expect("local address").port()
}

/// A running server process and its log.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    port: u16,
    /// Holds `server.log`, and whatever the server keeps on disk (its working folder).
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Spawns `program` with `args`, which make it serve on `port`, in a fresh temporary folder
    /// (where it may keep its data), its output to the log. `name` names it in panics.
    pub fn spawn(name: &str, program: &Path, args: &[String], port: u16) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir for a test server");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("create the log");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        ServerProcess {
            name: name.to_string(),
            child,
            port,
            dir,
        }
    }

    /// Polls `ready` until it holds; panics with the log if the process exits first or it does not
    /// hold within a minute. `what` says what is awaited, for that panic.
    pub fn wait_until(&mut self, what: &str, ready: impl Fn(&ServerProcess) -> bool) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !ready(self) {
            if let Some(status) = self.child.try_wait().expect("poll a test server") {
                panic!("{} exited ({status}); its log:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not {what} on port {} within {STARTUP_TIMEOUT:?}; its log:\n{}",
                self.name,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the server accepts connections on its port.
    pub fn wait_until_listening(&mut self) {
        self.wait_until("accept connections", |server| {
            TcpStream::connect(server.addr()).is_ok()
        });
    }

    /// What the server has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors mean it is already gone; nothing to report from a destructor.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
