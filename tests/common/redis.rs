//! Redis for tests: the shared server at 127.0.0.1:6379 (each test under its own key prefix),
//! or servers of a test's own, on free loopback ports, that it may freeze (SIGSTOP) or join
//! into a Cluster.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The machine's Redis, shared by every test.
pub const SHARED: &str = "redis://127.0.0.1:6379";

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    use sessiongate::clock::Random as _;
    let mut nonce = [0u8; 8];
    sessiongate::clock::OsRandom.fill(&mut nonce);
    format!(
        "sessiongate-test:{test}:{:016x}:",
        u64::from_le_bytes(nonce)
    )
}

/// `redis-cli -p <port> <args>`, its standard output as bytes.
pub fn cli(port: u16, args: &[&str]) -> Vec<u8> {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .arg("--raw")
        .args(args)
        .output()
        .expect("redis-cli runs");
    output.stdout
}

pub fn cli_text(port: u16, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli(port, args)).trim().to_string()
}

/// The keys under `prefix`.
pub fn keys(port: u16, prefix: &str) -> Vec<String> {
    let pattern = format!("{prefix}*");
    cli_text(port, &["KEYS", &pattern])
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A redis-server of the test's own; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        let server = Self {
            port,
            child,
            _dir: dir,
        };
        let mut attempts = 0;
        while cli_text(port, &["PING"]) != "PONG" {
            attempts += 1;
            assert!(attempts < 500, "redis-server on {port} never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Freezes the server: connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three masters, no replicas, every slot assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_with(&["--cluster-enabled", "yes"]))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "the cluster forms");
        for node in &nodes {
            let mut attempts = 0;
            while !cli_text(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                attempts += 1;
                assert!(attempts < 400, "the cluster never got ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        let first = self.nodes[0].port;
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", others.join("&"))
    }

    /// The keys under `prefix`, on every node.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|node| keys(node.port, prefix))
            .collect()
    }
}

/// One master and a Sentinel watching it as `mymaster`.
pub struct RedisSentinel {
    pub master: RedisServer,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    pub fn start() -> Self {
        let master = RedisServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n",
                dir.path().display(),
                master.port
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        let mut attempts = 0;
        while !cli_text(port, &["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .contains(&master.port.to_string())
        {
            attempts += 1;
            assert!(attempts < 500, "the sentinel never knew its master");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            master,
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=mymaster",
            self.port
        )
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
