//! An S3-compatible HTTP server and a fault-injecting proxy for end-to-end tests of reading from and
//! writing to object storage, with std alone.
//!
//! [`S3Server`] runs moto's server (`.venv/bin/moto_server`, from `moto[server]` in the project venv)
//! on a free local port, for the lifetime of the value. [`S3Server::env`] gives the environment a
//! client configured by `object_store`'s `AmazonS3Builder::from_env()` needs to reach it.
//!
//! [`FaultProxy`] sits between a client and that server: it forwards HTTP/1.1 requests one by one
//! (keep-alive included), counts them, records the `Range` of each GET, and injects faults per
//! request ([`Faults`]): `503 Slow Down` answers, connections dropped halfway through a response body,
//! and delays. Point the client at [`FaultProxy::endpoint`] (or use [`FaultProxy::env`]) and the
//! proxy at [`S3Server::addr`].
//!
//! What moto 5.2.6 needs from plain HTTP requests (checked by the tests at the bottom):
//! - It never checks signatures. Bucket creation, listing and object PUTs work unsigned, but a GET of
//!   a private object without an `Authorization` header is refused with 403 (moto treats it as
//!   anonymous). Its dispatcher picks the service from the credential scope of that header and
//!   fails with 500 on anything it cannot split, so the smallest header that works is
//!   [`AUTHORIZATION`]: a SigV4 credential scope with no signature. [`request`] always sends it.
//! - An unsigned PUT of binary data with `Content-Type: application/x-www-form-urlencoded` (what
//!   `curl -d` sends) hangs: moto's dispatcher reads such a body as UTF-8 form text to find the
//!   service. Send `application/octet-stream`, no type, or the `Authorization` header.
//! - Its server (werkzeug's) closes the connection after every response (`Connection: close`). The
//!   proxy keeps the client's connection alive anyway, as real S3 does, and opens a fresh upstream
//!   connection per request, so clients' connection pools get exercised.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::server_process::{ServerProcess, free_port};
use crate::util::repo;

/// The `Authorization` header value [`request`] sends: moto never checks signatures, but it reads
/// the service (and region) out of this credential scope and treats requests without the header as
/// anonymous (403 on private objects).
pub const AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request";

/// Read and write timeout of the harness's own requests and of the proxy's upstream connections,
/// so that a wedged server fails a test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// The most bytes a request or response head may take (the proxy's guard against garbage).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The body of the proxy's injected `503 Slow Down` answers, as S3 words it.
const SLOW_DOWN_BODY: &str = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";

/// A moto S3 server on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct S3Server {
    process: ServerProcess,
}

impl S3Server {
    /// Starts `.venv/bin/moto_server` on a free port and waits until it answers HTTP.
    pub fn start() -> S3Server {
        let moto = repo().join(".venv/bin/moto_server");
        assert!(
            moto.is_file(),
            "{} is missing: run `bash tests/python/setup-venv.sh` (it creates .venv/ with the Python packages the tests use, moto[server] among them)",
            moto.display()
        );
        let port = free_port();
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from);
        let mut process = ServerProcess::spawn("moto_server", &moto, &args, port);
        process.wait_until("answer GET /", |server| {
            try_request(&server.addr(), "GET", "/", &[], b"").is_ok_and(|r| r.status == 200)
        });
        S3Server { process }
    }

    /// What moto has printed so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// `127.0.0.1:PORT`, the address to give [`FaultProxy::start`].
    pub fn addr(&self) -> String {
        self.process.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The environment variables that make `AmazonS3Builder::from_env()` reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        client_env(&self.endpoint())
    }

    /// Creates bucket `name` (in us-east-1, where creating an existing bucket of yours succeeds
    /// too); panics with the response unless moto answers 200.
    pub fn create_bucket(&self, name: &str) {
        let response = request(&self.addr(), "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(
            response.status,
            200,
            "create bucket {name}: {}",
            response.describe()
        );
    }

    /// Every object of `bucket` with its size, in key order (ListObjectsV2, all pages).
    pub fn list_keys(&self, bucket: &str) -> Vec<(String, u64)> {
        self.list_keys_in_pages(bucket, None)
    }

    /// [`Self::list_keys`] with at most `max_keys` keys a page (to test the paging).
    fn list_keys_in_pages(&self, bucket: &str, max_keys: Option<u32>) -> Vec<(String, u64)> {
        let mut keys = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut path = format!("/{bucket}?list-type=2");
            if let Some(max) = max_keys {
                path.push_str(&format!("&max-keys={max}"));
            }
            if let Some(token) = &continuation {
                path.push_str(&format!("&continuation-token={}", percent_encode(token)));
            }
            let response = request(&self.addr(), "GET", &path, &[], b"");
            let xml = String::from_utf8_lossy(&response.body);
            assert_eq!(
                response.status,
                200,
                "list {bucket}: {}",
                response.describe()
            );
            for contents in xml_elements(&xml, "Contents") {
                let key = xml_elements(contents, "Key").next();
                let size = xml_elements(contents, "Size").next();
                let (Some(key), Some(Ok(size))) = (key, size.map(str::parse::<u64>)) else {
                    panic!("list {bucket}: a <Contents> without a <Key> or <Size>:\n{xml}");
                };
                keys.push((xml_unescape(key), size));
            }
            if xml_elements(&xml, "IsTruncated").next() != Some("true") {
                return keys;
            }
            let token = xml_elements(&xml, "NextContinuationToken").next();
            let Some(token) = token else {
                panic!("list {bucket}: truncated without a NextContinuationToken:\n{xml}");
            };
            continuation = Some(xml_unescape(token));
        }
    }
}

/// The environment variables that make `AmazonS3Builder::from_env()` reach an S3 endpoint with
/// moto's test credentials. (`object_store` does not read `AWS_EC2_METADATA_DISABLED`; it is there
/// for the AWS SDKs and CLIs, and static credentials keep `object_store` off instance metadata.)
pub fn client_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Which faults a [`FaultProxy`] injects; the default injects none. Requests are numbered from 1
/// across all connections, in the order the proxy finishes reading them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Requests N, 2N, ... are answered by the proxy itself with `503 Slow Down` (and an S3 error
    /// body) without reaching the server.
    pub status_503_every: Option<u64>,
    /// Requests N, 2N, ... are forwarded, but the client gets the response head (with the full
    /// `Content-Length`) and only the first half of the body before the proxy closes the connection.
    /// (A response without a body, such as a PUT's, thus arrives whole before the close.)
    pub drop_every: Option<u64>,
    /// Sleep this long before sending each response (injected ones included) to the client.
    pub delay: Option<Duration>,
}

/// What a [`FaultProxy`] has seen, shared with its connection threads.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    faults_injected: AtomicU64,
    response_body_bytes: AtomicU64,
    ranges: Mutex<Vec<(String, String)>>,
}

/// An HTTP/1.1 proxy on `127.0.0.1` that forwards to one upstream and injects [`Faults`].
///
/// Each client connection gets its own thread, which reads requests one after another (keep-alive)
/// and forwards each over a fresh upstream connection. Bodies are buffered whole, in both
/// directions, and chunked ones are passed on decoded with a `Content-Length`, which keeps fault
/// injection exact; test objects are small enough for that. `Expect: 100-continue` is answered by
/// the proxy. When dropped it stops accepting; open connections end when their client closes them.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    stats: Arc<Stats>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free local port and forwards every connection to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("fault proxy address").port();
        let stats = Arc::new(Stats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (stats, stopping) = (Arc::clone(&stats), Arc::clone(&stopping));
            let upstream = upstream.to_owned();
            let faults = Arc::new(faults);
            thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || {
                    for client in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        // A failed accept (the client gave up already) concerns that client only.
                        let Ok(client) = client else { continue };
                        let (upstream, faults, stats) =
                            (upstream.clone(), Arc::clone(&faults), Arc::clone(&stats));
                        thread::spawn(move || {
                            // An I/O error ends this connection, which is what its client sees too.
                            let _ = serve_connection(client, &upstream, &faults, &stats);
                        });
                    }
                })
                .expect("spawn the fault proxy's accept thread")
        };
        FaultProxy {
            port,
            stats,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// [`S3Server::env`] with this proxy as the endpoint.
    pub fn env(&self) -> Vec<(String, String)> {
        client_env(&self.endpoint())
    }

    /// Requests received so far (injected answers included).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Faults injected so far (503 answers and dropped connections).
    pub fn faults_injected(&self) -> u64 {
        self.stats.faults_injected.load(Ordering::SeqCst)
    }

    /// Response body bytes sent to clients so far (half bodies of dropped connections included).
    pub fn response_body_bytes(&self) -> u64 {
        self.stats.response_body_bytes.load(Ordering::SeqCst)
    }

    /// The `Range` header of every GET received that had one, in the order they arrived.
    pub fn ranges(&self) -> Vec<String> {
        let gets = self.stats.ranges.lock().expect("ranges lock");
        gets.iter().map(|(_, range)| range.clone()).collect()
    }

    /// Every ranged GET received, as (request target, `Range` header), in the order they arrived.
    pub fn ranged_gets(&self) -> Vec<(String, String)> {
        self.stats.ranges.lock().expect("ranges lock").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag; if the connection fails it is not
        // listening anyway.
        let _ = TcpStream::connect(self.addr());
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves one client connection: reads its requests in turn and answers each, injecting faults.
fn serve_connection(
    client: TcpStream,
    upstream: &str,
    faults: &Faults,
    stats: &Stats,
) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    while let Some(mut head) = read_head(&mut reader)? {
        if head.has_token("expect", "100-continue") {
            // The client waits for this before it sends the body; the upstream never sees it.
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            head.remove("expect");
        }
        let body = read_body(&mut reader, request_framing(&head))?;
        let method = head.first_word().to_owned();
        let keep_alive = !head.has_token("connection", "close");

        let n = stats.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if method == "GET"
            && let Some(range) = head.get("range")
        {
            stats
                .ranges
                .lock()
                .expect("ranges lock")
                .push((head.target().to_owned(), range.to_owned()));
        }
        // `checked_rem` makes `Some(0)` mean "never" instead of a division by zero.
        let every = |period: Option<u64>| period.and_then(|p| n.checked_rem(p)) == Some(0);

        let (mut response, body, drop_connection) = if every(faults.status_503_every) {
            stats.faults_injected.fetch_add(1, Ordering::SeqCst);
            (slow_down_head(), SLOW_DOWN_BODY.as_bytes().to_vec(), false)
        } else {
            let (response, body) = forward(upstream, head, body, &method)?;
            let drop_connection = every(faults.drop_every);
            if drop_connection {
                stats.faults_injected.fetch_add(1, Ordering::SeqCst);
            }
            (response, body, drop_connection)
        };

        // The upstream's `Connection: close` describes its connection to the proxy, not this one.
        response.remove("connection");
        if !keep_alive {
            response.set("Connection", "close");
        }
        if let Some(delay) = faults.delay {
            thread::sleep(delay);
        }
        let sent = if drop_connection {
            &body[..body.len() / 2]
        } else {
            &body[..]
        };
        writer.write_all(&response.to_bytes())?;
        writer.write_all(sent)?;
        writer.flush()?;
        stats
            .response_body_bytes
            .fetch_add(sent.len() as u64, Ordering::SeqCst);
        if drop_connection || !keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// Sends one request to `upstream` over a fresh connection and reads the whole response. The body
/// comes back decoded, and the head framed for it by `Content-Length` (unless the response has no
/// body, as for HEAD, whose `Content-Length` is the object's and is kept).
fn forward(
    upstream: &str,
    mut head: Head,
    body: Vec<u8>,
    method: &str,
) -> io::Result<(Head, Vec<u8>)> {
    let stream = TcpStream::connect(upstream)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    head.set("Connection", "close");
    if head.get("content-length").is_some() || head.get("transfer-encoding").is_some() {
        head.remove("transfer-encoding");
        head.set("Content-Length", &body.len().to_string());
    }
    let mut writer = stream.try_clone()?;
    writer.write_all(&head.to_bytes())?;
    writer.write_all(&body)?;
    writer.flush()?;

    let mut reader = BufReader::new(stream);
    let mut response = loop {
        let response = read_head(&mut reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed without a response",
            )
        })?;
        // Skip interim responses (1xx); the client gets the final one.
        if !(100..200).contains(&response.status()) {
            break response;
        }
    };
    let framing = response_framing(&response, method);
    let body = read_body(&mut reader, framing)?;
    if framing != Framing::Empty {
        response.remove("transfer-encoding");
        response.set("Content-Length", &body.len().to_string());
    }
    Ok((response, body))
}

/// The head of the proxy's own `503 Slow Down` answer.
fn slow_down_head() -> Head {
    Head {
        start_line: "HTTP/1.1 503 Slow Down".to_owned(),
        headers: vec![
            ("Content-Type".to_owned(), "application/xml".to_owned()),
            (
                "Content-Length".to_owned(),
                SLOW_DOWN_BODY.len().to_string(),
            ),
        ],
    }
}

/// The start line and headers of an HTTP/1.1 request or response.
#[derive(Debug, Clone)]
struct Head {
    start_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The method of a request line.
    fn first_word(&self) -> &str {
        self.start_line.split(' ').next().unwrap_or("")
    }

    /// The request target of a request line (`/bucket/key`).
    fn target(&self) -> &str {
        self.start_line.split(' ').nth(1).unwrap_or("")
    }

    /// The status code of a status line (0 when it has none).
    fn status(&self) -> u16 {
        let code = self.start_line.split(' ').nth(1).unwrap_or("");
        code.parse().unwrap_or(0)
    }

    /// The first header named `name` (case-insensitively).
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` lists `token` among its comma-separated values (case-insensitively).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Replaces every header named `name` with one of value `value`.
    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start_line);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads a head up to its blank line; `None` when the stream ends cleanly before one starts.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        total += n;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(invalid("the stream ended inside a message head"))
            };
        }
        if total > MAX_HEAD_BYTES {
            return Err(invalid("message head too large"));
        }
        let line = String::from_utf8(line).map_err(|_| invalid("message head is not UTF-8"))?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            // Blank lines before a start line are allowed (RFC 9112, 2.2); one after ends the head.
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }
    let mut lines = lines.into_iter();
    let start_line = lines.next().expect("at least the start line");
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid("a header line without a colon"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<io::Result<_>>()?;
    Ok(Some(Head {
        start_line,
        headers,
    }))
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (a request without one; a response to HEAD, or 204 or 304).
    Empty,
    Length(u64),
    Chunked,
    /// A response without a length: the body runs until the server closes the connection.
    UntilEof,
}

fn request_framing(head: &Head) -> Framing {
    if head.has_token("transfer-encoding", "chunked") {
        Framing::Chunked
    } else {
        match head.get("content-length").and_then(|v| v.parse().ok()) {
            Some(length) => Framing::Length(length),
            None => Framing::Empty,
        }
    }
}

fn response_framing(head: &Head, request_method: &str) -> Framing {
    if request_method == "HEAD" || matches!(head.status(), 100..=199 | 204 | 304) {
        Framing::Empty
    } else if head.has_token("transfer-encoding", "chunked") {
        Framing::Chunked
    } else {
        match head.get("content-length").and_then(|v| v.parse().ok()) {
            Some(length) => Framing::Length(length),
            None => Framing::UntilEof,
        }
    }
}

/// Reads a whole body, decoding chunked transfer encoding (trailers are dropped).
fn read_body(reader: &mut impl BufRead, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::Empty => {}
        Framing::Length(length) => {
            reader.take(length).read_to_end(&mut body)?;
            if body.len() as u64 != length {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {length} bytes", body.len()),
                ));
            }
        }
        Framing::UntilEof => {
            reader.read_to_end(&mut body)?;
        }
        Framing::Chunked => loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            // `SIZE[;extensions]`, in hex.
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| invalid(&format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailer fields, then the blank line that ends the body.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            reader.take(size).read_to_end(&mut body)?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
            if (body.len() - start) as u64 != size || &crlf != b"\r\n" {
                return Err(invalid("a chunk shorter than its size"));
            }
        },
    }
    Ok(body)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// A response read by [`request`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names as the server wrote them.
    pub headers: Vec<(String, String)>,
    /// The bytes that came before the server closed the connection (decoded when chunked): shorter
    /// than `Content-Length` when the connection was dropped mid-body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The status and body, for assertion messages.
    fn describe(&self) -> String {
        format!(
            "HTTP {}\n{}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Sends one plain HTTP/1.1 request to `addr` (`127.0.0.1:PORT`) with `Host`, `Content-Length`,
/// `Connection: close` and the [`AUTHORIZATION`] header, plus `headers`, and reads the response
/// until the server closes the connection. Panics when the exchange fails.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: {AUTHORIZATION}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let response = read_head(&mut reader)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without a response"))?;
    let mut rest = Vec::new();
    // A connection reset after a partial body still leaves what arrived in `rest`.
    if let Err(e) = reader.read_to_end(&mut rest)
        && e.kind() != io::ErrorKind::ConnectionReset
    {
        return Err(e);
    }
    let body = match response_framing(&response, method) {
        Framing::Empty => Vec::new(),
        Framing::Chunked => read_body(&mut &rest[..], Framing::Chunked)?,
        Framing::Length(length) => {
            rest.truncate(usize::try_from(length).unwrap_or(usize::MAX));
            rest
        }
        Framing::UntilEof => rest,
    };
    Ok(HttpResponse {
        status: response.status(),
        headers: response.headers,
        body,
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a query value, or an object
/// name as one segment of a path).
pub fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text inside each `<tag>...</tag>` of `xml`, in order (no nesting of the same tag, as in S3
/// listings).
fn xml_elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find(&close)?;
        let inner = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(inner)
    })
}

/// Undoes XML's five predefined entities (`&amp;` last, so that `&amp;lt;` stays `&lt;`).
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `len` bytes of a fixed pattern, distinct at every offset within a 251-byte period.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A server with bucket `bucket` holding `key` = `body`, PUT directly.
fn server_with_object(bucket: &str, key: &str, body: &[u8]) -> S3Server {
    let server = S3Server::start();
    server.create_bucket(bucket);
    let put = request(
        &server.addr(),
        "PUT",
        &format!("/{bucket}/{key}"),
        &[],
        body,
    );
    assert_eq!(put.status, 200, "PUT {key}: {}", put.describe());
    server
}

#[test]
fn proxy_forwards_a_put_and_a_ranged_get_to_moto() {
    let server = S3Server::start();
    server.create_bucket("data");
    let proxy = FaultProxy::start(&server.addr(), Faults::default());
    let object = pattern(100_000);

    let put = request(&proxy.addr(), "PUT", "/data/shards/a.bin", &[], &object);
    assert_eq!(put.status, 200, "PUT through the proxy: {}", put.describe());
    let get = request(
        &proxy.addr(),
        "GET",
        "/data/shards/a.bin",
        &[("Range", "bytes=10-19")],
        b"",
    );
    assert_eq!(get.status, 206, "ranged GET: {}", get.describe());
    assert_eq!(get.body, object[10..20]);
    assert_eq!(get.header("content-range"), Some("bytes 10-19/100000"));

    let head = request(&proxy.addr(), "HEAD", "/data/shards/a.bin", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100000"));

    assert_eq!(proxy.requests(), 3);
    assert_eq!(proxy.faults_injected(), 0);
    assert_eq!(proxy.ranges(), ["bytes=10-19"]);
    assert_eq!(proxy.response_body_bytes(), 10);
    assert_eq!(
        server.list_keys("data"),
        [("shards/a.bin".to_owned(), 100_000)]
    );
}

#[test]
fn every_second_request_gets_an_injected_503_slow_down() {
    let server = server_with_object("data", "a.bin", &pattern(1000));
    let proxy = FaultProxy::start(
        &server.addr(),
        Faults {
            status_503_every: Some(2),
            ..Faults::default()
        },
    );
    let first = request(&proxy.addr(), "GET", "/data/a.bin", &[], b"");
    assert_eq!(first.status, 200, "first GET: {}", first.describe());
    let second = request(&proxy.addr(), "GET", "/data/a.bin", &[], b"");
    assert_eq!(second.status, 503);
    assert_eq!(second.header("content-type"), Some("application/xml"));
    assert_eq!(second.body, SLOW_DOWN_BODY.as_bytes());
    assert_eq!(proxy.faults_injected(), 1);

    let next: Vec<u16> = (0..3)
        .map(|_| request(&proxy.addr(), "GET", "/data/a.bin", &[], b"").status)
        .collect();
    assert_eq!(next, [200, 503, 200], "requests 3, 4 and 5");
    assert_eq!(proxy.requests(), 5);
    assert_eq!(proxy.faults_injected(), 2);
}

#[test]
fn a_dropped_connection_delivers_half_the_body_then_closes() {
    let object = pattern(100_000);
    let server = server_with_object("data", "a.bin", &object);
    let proxy = FaultProxy::start(
        &server.addr(),
        Faults {
            drop_every: Some(1),
            ..Faults::default()
        },
    );
    let get = request(&proxy.addr(), "GET", "/data/a.bin", &[], b"");
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-length"), Some("100000"));
    assert_eq!(get.body, object[..50_000], "the first half, then EOF");
    assert_eq!(proxy.faults_injected(), 1);
    assert_eq!(proxy.response_body_bytes(), 50_000);
}

#[test]
fn a_keep_alive_connection_carries_many_requests_with_faults_applied_per_request() {
    let object = pattern(5000);
    let server = server_with_object("data", "a.bin", &object);
    let proxy = FaultProxy::start(
        &server.addr(),
        Faults {
            status_503_every: Some(3),
            delay: Some(Duration::from_millis(10)),
            ..Faults::default()
        },
    );
    let stream = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let range = format!("bytes={}-{}", i * 100, i * 100 + 99);
        let head = format!(
            "GET /data/a.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: {AUTHORIZATION}\r\nRange: {range}\r\n\r\n",
            proxy.addr()
        );
        writer.write_all(head.as_bytes()).unwrap();
        let response = read_head(&mut reader)
            .unwrap()
            .expect("a response on the same connection");
        assert_eq!(response.get("connection"), None, "the proxy keeps it open");
        let body = read_body(&mut reader, response_framing(&response, "GET")).unwrap();
        if response.status() == 206 {
            assert_eq!(body, object[i * 100..i * 100 + 100]);
        }
        statuses.push(response.status());
    }
    assert_eq!(statuses, [206, 206, 503, 206]);
    assert_eq!(
        proxy.ranges(),
        [
            "bytes=0-99",
            "bytes=100-199",
            "bytes=200-299",
            "bytes=300-399"
        ]
    );
    assert_eq!(proxy.faults_injected(), 1);
}

#[test]
fn list_keys_lists_every_object_with_its_size_across_pages() {
    let server = server_with_object("data", "b/two.bin", &pattern(2));
    for (key, len) in [("a/one.bin", 1), ("c/three & more.bin", 3)] {
        let path = format!("/data/{}", percent_encode(key).replace("%2F", "/"));
        let put = request(&server.addr(), "PUT", &path, &[], &pattern(len));
        assert_eq!(put.status, 200, "PUT {key}: {}", put.describe());
    }
    let expected = [
        ("a/one.bin".to_owned(), 1),
        ("b/two.bin".to_owned(), 2),
        ("c/three & more.bin".to_owned(), 3),
    ];
    assert_eq!(server.list_keys("data"), expected);
    assert_eq!(server.list_keys_in_pages("data", Some(2)), expected);
}
