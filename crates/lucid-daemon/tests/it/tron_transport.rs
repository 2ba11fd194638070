//! The reqwest TRON transport against a raw loopback HTTP server that answers canned bytes:
//! well-formed replies, HTTP errors, oversized bodies (announced or not), bodies that are not
//! JSON, broken connections and silence.

use std::time::Duration;

use lucid_daemon::tron_transport::{ReqwestTronTransport, TronTransportConfig};
use lucid_payouts::tron::transport::{Endpoint, TransportError, TronTransport};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads the request, then writes `reply` (or nothing if `None`, holding
/// the connection open), and returns the request text.
async fn serve_once(reply: Option<Vec<u8>>) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read headers and the (small) body: until the announced length has arrived.
        loop {
            let read = socket.read(&mut buffer).await.unwrap();
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if read == 0 {
                break;
            }
        }
        match reply {
            Some(bytes) => socket.write_all(&bytes).await.unwrap(),
            None => std::future::pending::<()>().await,
        }
        String::from_utf8_lossy(&request).to_string()
    });
    (url, task)
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut reply = format!("HTTP/1.1 {status}\r\n{headers}connection: close\r\n\r\n").into_bytes();
    reply.extend_from_slice(body);
    reply
}

fn with_length(status: &str, body: &[u8]) -> Vec<u8> {
    http(status, &format!("content-length: {}\r\n", body.len()), body)
}

fn transport(url: &str, api_key: Option<&str>) -> ReqwestTronTransport {
    ReqwestTronTransport::new(&TronTransportConfig {
        api_key: api_key.map(str::to_owned),
        request_timeout: Duration::from_millis(500),
        max_response_bytes: 1024,
        ..TronTransportConfig::new(url)
    })
    .unwrap()
}

async fn call(reply: Option<Vec<u8>>) -> Result<serde_json::Value, TransportError> {
    let (url, _server) = serve_once(reply).await;
    let result =
        transport(&url, None).post(Endpoint::FullNode, "/wallet/getnowblock", &json!({})).await;
    result.map(|response| response.body)
}

#[tokio::test]
async fn a_json_reply_is_returned_and_the_request_is_json_with_the_api_key() {
    let (url, server) = serve_once(Some(with_length("200 OK", br#"{"blockID":"00"}"#))).await;
    let transport = transport(&url, Some("secret-key"));
    let reply = transport
        .post(
            Endpoint::SolidityNode,
            "/walletsolidity/gettransactionbyid",
            &json!({ "value": "ab" }),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, json!({ "blockID": "00" }));
    let request = server.await.unwrap();
    assert!(
        request.starts_with("POST /walletsolidity/gettransactionbyid HTTP/1.1\r\n"),
        "{request}"
    );
    let lower = request.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"));
    assert!(lower.contains("tron-pro-api-key: secret-key"));
    assert!(request.ends_with(r#"{"value":"ab"}"#));
    // The key never shows in Debug.
    assert!(!format!("{transport:?}").contains("secret-key"));
}

#[tokio::test]
async fn http_errors_are_typed_with_their_status() {
    let result = call(Some(with_length("503 Service Unavailable", b"{}"))).await;
    assert_eq!(result, Err(TransportError::Status { endpoint: "full_node", status: 503 }));
    let result = call(Some(with_length("404 Not Found", b"nope"))).await;
    assert_eq!(result, Err(TransportError::Status { endpoint: "full_node", status: 404 }));
}

#[tokio::test]
async fn oversized_bodies_are_refused_whether_announced_or_not() {
    let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(2_000));
    let announced = call(Some(with_length("200 OK", big.as_bytes()))).await;
    let too_large = TransportError::BodyTooLarge { endpoint: "full_node", limit: 1024 };
    assert_eq!(announced, Err(too_large.clone()));
    // No length announced: the body is read until the cap, then refused.
    let streamed = call(Some(http("200 OK", "", big.as_bytes()))).await;
    assert_eq!(streamed, Err(too_large));
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused() {
    for body in [&b"<html>busy</html>"[..], b"", b"{\"unterminated\":", b"\xff\xfe"] {
        let result = call(Some(with_length("200 OK", body))).await;
        assert_eq!(result, Err(TransportError::NotJson { endpoint: "full_node" }), "{body:?}");
    }
}

#[tokio::test]
async fn broken_connections_and_silence_are_typed() {
    // The body is cut short of its announced length.
    let cut = http("200 OK", "content-length: 100\r\n", b"{\"a\":");
    assert!(matches!(call(Some(cut)).await, Err(TransportError::Connection { .. })));
    // Garbage instead of HTTP.
    assert!(matches!(
        call(Some(b"hello\r\n\r\n".to_vec())).await,
        Err(TransportError::Connection { .. })
    ));
    // Nothing listens.
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let result =
        transport(&url, None).post(Endpoint::FullNode, "/wallet/getnowblock", &json!({})).await;
    assert!(matches!(result, Err(TransportError::Connection { .. })), "{result:?}");
    // No answer at all: the request timeout ends the call.
    assert_eq!(call(None).await, Err(TransportError::Timeout { endpoint: "full_node" }));
}

#[test]
fn an_api_key_that_is_not_a_header_value_is_refused() {
    let config = TronTransportConfig {
        api_key: Some("bad\nkey".to_owned()),
        ..TronTransportConfig::new("http://127.0.0.1:1")
    };
    assert!(ReqwestTronTransport::new(&config).is_err());
    assert!(!format!("{config:?}").contains("bad"));
}
