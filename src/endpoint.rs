//! The default endpoint: a hyper HTTP/1 server on the addon's tokio runtime
//! with pixstore's routes and CORS headers, `HEAD` answered like `GET`,
//! `Cache-Control: no-store` and `nosniff` on every answer with a body, and
//! optional health and metrics routes. It answers 4xx to malformed requests,
//! bounds header size and header read time, and shuts down gracefully
//! (keep-alive connections included). It counts connections and responses
//! and feeds the request log when one is set. It knows nothing of its owner:
//! a [`Handler`] gives the routing, the payload of each request and the metrics.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::{
  HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL,
  CONTENT_LENGTH, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use percent_encoding::percent_decode_str;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::request_log::RequestLog;
use crate::stats::{Stats, PROMETHEUS_CONTENT_TYPE};
use crate::wire::WireState;

/// The routes and headers of the endpoint, as configured now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
  /// The image route prefix (`defaultEndpointRoute`).
  pub route: String,
  /// The `Access-Control-Allow-Origin` value.
  pub origin: String,
  /// The path answering `200 ok` (`defaultEndpointHealthRoute`), if any.
  pub health_route: Option<String>,
  /// The path answering the metrics (`defaultEndpointMetricsRoute`), if any.
  pub metrics_route: Option<String>,
}

/// What the endpoint asks of whoever runs it.
pub trait Handler: Send + Sync + 'static {
  /// The routes and origin, or `None` once the owner has closed (the
  /// endpoint then answers 503).
  fn routing(&self) -> Option<Routing>;

  /// The wire payload for a request for `id` (already percent-decoded and
  /// valid) with its client token and proof header. Never fails: failures
  /// are wire states.
  fn payload(
    &self,
    id: String,
    client_token: Option<f64>,
    proof: Option<String>,
  ) -> impl Future<Output = Vec<u8>> + Send;

  /// The counters the endpoint adds to (connections, responses) and its request log.
  fn stats(&self) -> &Stats;

  /// The body of the metrics route: Prometheus' text format.
  fn metrics(&self) -> String;
}

/// Time a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long open connections may take to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running endpoint.
pub struct Endpoint {
  listen: Listen,
  address: SocketAddr,
  stop: Option<oneshot::Sender<()>>,
  listener_closed: mpsc::Receiver<()>,
  task: JoinHandle<()>,
}

/// Where and how to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
  /// Host name or address.
  pub host: String,
  /// Port.
  pub port: u16,
  /// Bind with `SO_REUSEPORT`, so sibling processes can listen on the same
  /// port (Linux spreads connections over them; macOS accepts it but sends
  /// every connection to one; Windows has no such option and ignores it).
  pub reuse_port: bool,
}

/// Binds a listening socket for `listen`; the error says what to do about it.
fn bind(listen: &Listen) -> Result<StdTcpListener> {
  let Listen { host, port, reuse_port } = listen;
  let address = (host.as_str(), *port)
    .to_socket_addrs()
    .ok()
    .and_then(|mut addresses| addresses.next())
    .ok_or_else(|| Error::internal(format!("cannot resolve defaultEndpointListenHost {host:?}")))?;
  let bound = (|| -> std::io::Result<StdTcpListener> {
    let socket = socket2::Socket::new(
      socket2::Domain::for_address(address),
      socket2::Type::STREAM,
      Some(socket2::Protocol::TCP),
    )?;
    #[cfg(unix)]
    {
      socket.set_reuse_address(true)?;
      if *reuse_port {
        socket.set_reuse_port(true)?;
      }
    }
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
  })();
  bound.map_err(|err| {
    let advice = if err.kind() == std::io::ErrorKind::AddrInUse && !reuse_port {
      ". Another process holds the port: choose another defaultEndpointListenPort, or set defaultEndpointEnabled: false and serve images from your own route with customEndpointHelper(). Processes of one app (node:cluster, PM2) share the port by themselves; other process managers can set defaultEndpointReusePort: true (Linux)"
    } else if err.kind() == std::io::ErrorKind::AddrInUse {
      ". The port is held by a socket that was not opened with SO_REUSEPORT (another program, or the same app without it)"
    } else {
      ""
    };
    Error::internal(format!("Pixstore endpoint cannot listen on {host}:{port}: {err}{advice}"))
  })
}

impl Endpoint {
  /// Binds `listen` now (so errors surface to the caller) and serves on
  /// `runtime`, asking `handler` for every response.
  pub fn start<H: Handler>(runtime: &Handle, listen: &Listen, handler: Arc<H>) -> Result<Endpoint> {
    let listener = bind(listen)?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let listener = {
      let _entered = runtime.enter();
      tokio::net::TcpListener::from_std(listener)?
    };
    let (stop, stopped) = oneshot::channel();
    let (closed, listener_closed) = mpsc::channel();
    let task = runtime.spawn(serve(listener, handler, stopped, closed));
    Ok(Endpoint {
      listen: listen.clone(),
      address,
      stop: Some(stop),
      listener_closed,
      task,
    })
  }

  /// How this endpoint listens.
  pub fn listen(&self) -> &Listen {
    &self.listen
  }

  /// The bound address.
  pub fn address(&self) -> SocketAddr {
    self.address
  }

  /// Closes the listening socket (waiting until it is closed) and lets open
  /// connections finish in the background; returns the task to await for that.
  pub fn stop(mut self) -> JoinHandle<()> {
    if let Some(stop) = self.stop.take() {
      let _ = stop.send(());
      let _ = self.listener_closed.recv_timeout(Duration::from_secs(5));
    }
    self.task
  }
}

async fn serve<H: Handler>(
  listener: tokio::net::TcpListener,
  handler: Arc<H>,
  mut stopped: oneshot::Receiver<()>,
  closed: mpsc::Sender<()>,
) {
  let graceful = GracefulShutdown::new();
  let mut builder = http1::Builder::new();
  builder
    .timer(TokioTimer::new())
    .header_read_timeout(HEADER_READ_TIMEOUT)
    .max_buf_size(MAX_HEADER_BYTES);
  loop {
    tokio::select! {
      accepted = listener.accept() => match accepted {
        Ok((stream, peer)) => {
          let _ = stream.set_nodelay(true);
          let counted = Arc::clone(&handler);
          let handler = Arc::clone(&handler);
          let service = service_fn(move |request| respond(request, Arc::clone(&handler), peer));
          let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
          tokio::spawn(async move {
            let _open = counted.stats().connection_opened();
            let _ = connection.await;
          });
        }
        // Out of file descriptors or a connection reset before accept: wait a little and go on.
        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
      },
      _ = &mut stopped => break,
    }
  }
  drop(listener);
  let _ = closed.send(());
  let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// A response with `body`, its type and length.
fn body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
  let length = body.len();
  let mut response = Response::new(Full::new(body));
  *response.status_mut() = status;
  let headers = response.headers_mut();
  headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
  headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
  response
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
  body(status, "text/plain", Bytes::from_static(message.as_bytes()))
}

/// What a request turned out to be, for the request log (filled only when it is on).
#[derive(Default)]
struct Outcome {
  route: Option<String>,
  image_id: Option<String>,
  state: Option<WireState>,
}

async fn respond<H: Handler>(
  request: Request<Incoming>,
  handler: Arc<H>,
  peer: SocketAddr,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
  let stats = handler.stats();
  let started = stats.request_log.enabled().then(Instant::now);
  let (mut response, outcome) = match handler.routing() {
    Some(routing) => {
      let (mut response, outcome) = route_request(&request, &routing, &*handler, started.is_some()).await;
      let headers = response.headers_mut();
      headers.insert(
        ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_str(&routing.origin).unwrap_or(HeaderValue::from_static("*")),
      );
      headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET,OPTIONS"));
      headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, x-pixstore-proof, x-pixstore-token"),
      );
      (response, outcome)
    }
    None => (
      text(StatusCode::SERVICE_UNAVAILABLE, "Pixstore backend is closed"),
      Outcome::default(),
    ),
  };
  let status = response.status();
  if status != StatusCode::NO_CONTENT {
    // Payloads are proof-gated (no proxy may keep them; the frontend caches
    // them itself) and no answer is to be read as anything but its type.
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
  }
  stats.endpoint_response(status.as_u16());
  if let Some(started) = started {
    let sent = request.method() != Method::HEAD && status != StatusCode::NO_CONTENT;
    stats.request_log.push(RequestLog {
      method: request.method().as_str().to_string(),
      route: outcome.route,
      image_id: outcome.image_id,
      state: outcome.state,
      status: status.as_u16(),
      bytes: match sent {
        true => response.body().size_hint().exact().unwrap_or(0),
        false => 0,
      },
      duration: started.elapsed(),
      remote_address: Some(peer),
    });
  }
  Ok(response)
}

/// Which of the endpoint's routes a path is.
enum Target<'a> {
  Health,
  Metrics,
  /// The image route; the rest of the path below it (empty or starting with `/`).
  Image(&'a str),
  Other,
}

async fn route_request<H: Handler>(
  request: &Request<Incoming>,
  routing: &Routing,
  handler: &H,
  log: bool,
) -> (Response<Full<Bytes>>, Outcome) {
  let path = request.uri().path();
  let target = if routing.health_route.as_deref() == Some(path) {
    Target::Health
  } else if routing.metrics_route.as_deref() == Some(path) {
    Target::Metrics
  } else {
    path
      .strip_prefix(routing.route.as_str())
      .filter(|rest| rest.is_empty() || rest.starts_with('/'))
      .map_or(Target::Other, Target::Image)
  };
  let mut outcome = Outcome::default();
  if log {
    outcome.route = match target {
      Target::Health => routing.health_route.clone(),
      Target::Metrics => routing.metrics_route.clone(),
      Target::Image(_) => Some(routing.route.clone()),
      Target::Other => None,
    };
  }
  if request.method() == Method::OPTIONS {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    return (response, outcome);
  }
  if request.method() != Method::GET && request.method() != Method::HEAD {
    return (text(StatusCode::NOT_FOUND, "Not found"), outcome);
  }
  let rest = match target {
    Target::Health => return (text(StatusCode::OK, "ok"), outcome),
    Target::Metrics => {
      let metrics = Bytes::from(handler.metrics());
      return (body(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, metrics), outcome);
    }
    Target::Other => return (text(StatusCode::NOT_FOUND, "Not found"), outcome),
    Target::Image(rest) => rest,
  };
  if rest.is_empty() || rest == "/" {
    return (text(StatusCode::BAD_REQUEST, "Missing image id"), outcome);
  }
  let encoded_id = &rest[1..];
  let Some(id) = decode_uri_component(encoded_id) else {
    return (
      text(StatusCode::BAD_REQUEST, "Malformed percent-encoding in image id"),
      outcome,
    );
  };
  if !crate::id::is_valid(&id) {
    return (text(StatusCode::BAD_REQUEST, "Invalid image id"), outcome);
  }
  if log {
    outcome.image_id = Some(id.clone());
  }
  let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
  let proof = header("x-pixstore-proof")
    .filter(|proof| !proof.is_empty())
    .map(String::from);
  let client_token = header("x-pixstore-token").and_then(parse_js_number);
  let payload = handler.payload(id, client_token, proof).await;
  outcome.state = WireState::of_payload(&payload);
  let response = body(StatusCode::OK, "application/octet-stream", Bytes::from(payload));
  (response, outcome)
}

/// `decodeURIComponent`, but `None` where JavaScript would throw: a `%` not
/// followed by two hex digits, or escapes that do not decode to UTF-8.
pub fn decode_uri_component(text: &str) -> Option<String> {
  let bytes = text.as_bytes();
  let well_formed = bytes.iter().enumerate().filter(|(_, b)| **b == b'%').all(|(at, _)| {
    bytes
      .get(at + 1..at + 3)
      .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
  });
  if !well_formed {
    return None;
  }
  percent_decode_str(text)
    .decode_utf8()
    .ok()
    .map(|decoded| decoded.into_owned())
}

/// The header value as JavaScript's `Number()` would read a token; `None` if
/// it is not a finite number (which never matches a stored token).
fn parse_js_number(text: &str) -> Option<f64> {
  let trimmed = text.trim();
  if trimmed.is_empty() {
    return None;
  }
  trimmed.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  #[test]
  fn decodes_like_decode_uri_component() {
    assert_eq!(decode_uri_component("dir%3Aabc").as_deref(), Some("dir:abc"));
    assert_eq!(decode_uri_component("abc").as_deref(), Some("abc"));
    assert_eq!(decode_uri_component("%E2%82%AC").as_deref(), Some("€"));
    assert_eq!(decode_uri_component("%"), None);
    assert_eq!(decode_uri_component("%zz"), None);
    assert_eq!(decode_uri_component("%E2%82"), None);
    assert_eq!(decode_uri_component("%C0%AF"), None);
  }

  #[test]
  fn parses_tokens_like_number() {
    assert_eq!(parse_js_number("1700000000000"), Some(1_700_000_000_000.0));
    assert_eq!(parse_js_number(" 12 "), Some(12.0));
    assert_eq!(parse_js_number("abc"), None);
    assert_eq!(parse_js_number(""), None);
  }

  /// Method, route, status, bytes and state of a request log entry.
  type LogSummary<'a> = (&'a str, Option<&'a str>, u16, u64, Option<WireState>);

  /// A handler with a fixed payload and a switch for "closed".
  #[derive(Default)]
  struct Fake {
    closed: std::sync::atomic::AtomicBool,
    stats: Stats,
  }

  impl Handler for Fake {
    fn routing(&self) -> Option<Routing> {
      (!self.closed.load(std::sync::atomic::Ordering::SeqCst)).then(|| Routing {
        route: "/img".into(),
        origin: "https://app.example".into(),
        health_route: Some("/health".into()),
        metrics_route: Some("/metrics".into()),
      })
    }

    async fn payload(&self, _id: String, _client_token: Option<f64>, _proof: Option<String>) -> Vec<u8> {
      vec![WireState::Success as u8, 7, 7]
    }

    fn stats(&self) -> &Stats {
      &self.stats
    }

    fn metrics(&self) -> String {
      "fake_total 1\n".into()
    }
  }

  /// Sends one request (`Connection: close`) and returns the status line,
  /// the lower-cased headers and the body.
  fn exchange(address: SocketAddr, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
      stream,
      "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_string();
    let headers = lines
      .map(|line| {
        let (name, value) = line.split_once(": ").unwrap();
        (name.to_ascii_lowercase(), value.to_string())
      })
      .collect();
    (status, headers, body.to_string())
  }

  fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
  }

  #[test]
  fn head_health_metrics_headers_and_the_closed_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
      .worker_threads(1)
      .enable_all()
      .build()
      .unwrap();
    let handler = Arc::new(Fake::default());
    let listen = Listen {
      host: "127.0.0.1".into(),
      port: 0,
      reuse_port: false,
    };
    let endpoint = Endpoint::start(runtime.handle(), &listen, Arc::clone(&handler)).unwrap();
    let address = endpoint.address();
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&woken);
    handler.stats.request_log.set_listener(Some(Arc::new(move || {
      counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
      true
    })));

    let (status, headers, body) = exchange(address, "GET", "/img/abc");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "\u{0}\u{7}\u{7}");
    assert_eq!(header(&headers, "content-length"), Some("3"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
      header(&headers, "access-control-allow-origin"),
      Some("https://app.example")
    );
    let (status, head_headers, body) = exchange(address, "HEAD", "/img/abc");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "");
    let without_date = |headers: &[(String, String)]| -> Vec<(String, String)> {
      headers.iter().filter(|(name, _)| name != "date").cloned().collect()
    };
    assert_eq!(without_date(&head_headers), without_date(&headers));

    let (status, headers, body) = exchange(address, "GET", "/health");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));
    assert_eq!(header(&headers, "content-type"), Some("text/plain"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    let (status, headers, body) = exchange(address, "HEAD", "/health");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    assert_eq!(header(&headers, "content-length"), Some("2"));
    assert_eq!(exchange(address, "POST", "/health").0, "HTTP/1.1 404 Not Found");
    assert_eq!(exchange(address, "GET", "/health/").0, "HTTP/1.1 404 Not Found");

    let (status, headers, body) = exchange(address, "GET", "/metrics?x=1");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "fake_total 1\n"));
    assert_eq!(header(&headers, "content-type"), Some(PROMETHEUS_CONTENT_TYPE));

    let (status, headers, _) = exchange(address, "OPTIONS", "/img/abc");
    assert_eq!(status, "HTTP/1.1 204 No Content");
    assert_eq!(header(&headers, "cache-control"), None);

    handler.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, headers, body) = exchange(address, "GET", "/health");
    assert_eq!(
      (status.as_str(), body.as_str()),
      ("HTTP/1.1 503 Service Unavailable", "Pixstore backend is closed")
    );
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));

    // Every response was counted, and logged once the listener was set.
    let snapshot = handler.stats.snapshot(Default::default());
    assert_eq!(snapshot.endpoint_responses, [5, 1, 0, 2, 1]);
    let log = handler.stats.request_log.take();
    assert!(woken.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let summary: Vec<LogSummary> = log
      .iter()
      .map(|e| (e.method.as_str(), e.route.as_deref(), e.status, e.bytes, e.state))
      .collect();
    assert_eq!(
      summary,
      [
        ("GET", Some("/img"), 200, 3, Some(WireState::Success)),
        ("HEAD", Some("/img"), 200, 0, Some(WireState::Success)),
        ("GET", Some("/health"), 200, 2, None),
        ("HEAD", Some("/health"), 200, 0, None),
        ("POST", Some("/health"), 404, 9, None),
        ("GET", None, 404, 9, None),
        ("GET", Some("/metrics"), 200, 13, None),
        ("OPTIONS", Some("/img"), 204, 0, None),
        ("GET", None, 503, 26, None),
      ]
    );
    assert_eq!(log[0].image_id.as_deref(), Some("abc"));
    assert!(log
      .iter()
      .all(|e| e.remote_address.is_some_and(|a| a.ip().is_loopback())));
    runtime.block_on(endpoint.stop()).unwrap();
    assert_eq!(handler.stats.snapshot(Default::default()).open_connections, 0);
  }

  proptest! {
    #[test]
    fn decoding_never_panics(text in "\\PC{0,30}") {
      let _ = decode_uri_component(&text);
    }
  }
}
