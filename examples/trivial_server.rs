//! The endpoint benchmark's limit: a trivial hyper server on a tokio runtime
//! like the addon's, answering every request with `<bytes>` bytes, for the
//! same loopback setup and wrk load. `cargo run --release --example
//! trivial_server -- <port> <bytes>`; prints "ready" once listening.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> std::io::Result<()> {
  let mut args = std::env::args().skip(1);
  let port: u16 = args
    .next()
    .and_then(|port| port.parse().ok())
    .expect("usage: trivial_server <port> <bytes>");
  let size: usize = args
    .next()
    .and_then(|size| size.parse().ok())
    .expect("usage: trivial_server <port> <bytes>");
  let body = Bytes::from(vec![7u8; size]);
  let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
  println!("ready");
  loop {
    let (stream, _) = listener.accept().await?;
    let _ = stream.set_nodelay(true);
    let body = body.clone();
    tokio::spawn(async move {
      let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
        let body = body.clone();
        async move {
          let mut response = Response::new(Full::new(body));
          response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            "application/octet-stream".parse().expect("a header value"),
          );
          Ok::<_, Infallible>(response)
        }
      });
      let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    });
  }
}
