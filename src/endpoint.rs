//! The default endpoint: a hyper HTTP/1 server on the addon's tokio runtime
//! with pixstore's routes and CORS headers. It answers 4xx to malformed
//! requests, bounds header size and header read time, and shuts down
//! gracefully (keep-alive connections included). It knows nothing of its
//! owner: a [`Handler`] gives the routing and the payload of each request.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
  HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE,
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

/// What the endpoint asks of whoever runs it.
pub trait Handler: Send + Sync + 'static {
  /// The route prefix and the `Access-Control-Allow-Origin` value, or `None`
  /// once the owner has closed (the endpoint then answers 503).
  fn routing(&self) -> Option<(String, String)>;

  /// The wire payload for a request for `id` (already percent-decoded and
  /// valid) with its client token and proof header. Never fails: failures
  /// are wire states.
  fn payload(
    &self,
    id: String,
    client_token: Option<f64>,
    proof: Option<String>,
  ) -> impl Future<Output = Vec<u8>> + Send;
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
        Ok((stream, _)) => {
          let _ = stream.set_nodelay(true);
          let handler = Arc::clone(&handler);
          let service = service_fn(move |request| respond(request, Arc::clone(&handler)));
          let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
          tokio::spawn(async move {
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

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
  let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
  *response.status_mut() = status;
  response
    .headers_mut()
    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
  response
}

async fn respond<H: Handler>(
  request: Request<Incoming>,
  handler: Arc<H>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
  let Some((route, origin)) = handler.routing() else {
    return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "Pixstore backend is closed"));
  };
  let mut response = route_request(&request, &route, &*handler).await;
  let headers = response.headers_mut();
  headers.insert(
    ACCESS_CONTROL_ALLOW_ORIGIN,
    HeaderValue::from_str(&origin).unwrap_or(HeaderValue::from_static("*")),
  );
  headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET,OPTIONS"));
  headers.insert(
    ACCESS_CONTROL_ALLOW_HEADERS,
    HeaderValue::from_static("Content-Type, Authorization, x-pixstore-proof, x-pixstore-token"),
  );
  Ok(response)
}

async fn route_request<H: Handler>(request: &Request<Incoming>, route: &str, handler: &H) -> Response<Full<Bytes>> {
  if request.method() == Method::OPTIONS {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    return response;
  }
  if request.method() != Method::GET {
    return text(StatusCode::NOT_FOUND, "Not found");
  }
  let path = request.uri().path();
  let Some(rest) = path.strip_prefix(route) else {
    return text(StatusCode::NOT_FOUND, "Not found");
  };
  if rest.is_empty() || rest == "/" {
    return text(StatusCode::BAD_REQUEST, "Missing image id");
  }
  let Some(encoded_id) = rest.strip_prefix('/') else {
    return text(StatusCode::NOT_FOUND, "Not found");
  };
  let Some(id) = decode_uri_component(encoded_id) else {
    return text(StatusCode::BAD_REQUEST, "Malformed percent-encoding in image id");
  };
  if !crate::id::is_valid(&id) {
    return text(StatusCode::BAD_REQUEST, "Invalid image id");
  }
  let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
  let proof = header("x-pixstore-proof")
    .filter(|proof| !proof.is_empty())
    .map(String::from);
  let client_token = header("x-pixstore-token").and_then(parse_js_number);
  let payload = handler.payload(id, client_token, proof).await;
  let length = payload.len();
  let mut response = Response::new(Full::new(Bytes::from(payload)));
  let headers = response.headers_mut();
  headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
  headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
  response
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

  proptest! {
    #[test]
    fn decoding_never_panics(text in "\\PC{0,30}") {
      let _ = decode_uri_component(&text);
    }
  }
}
