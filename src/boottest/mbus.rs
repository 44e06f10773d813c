//! The agent's HTTPS mbus, spoken as `bosh create-env` speaks it: `POST /agent` with basic
//! auth and `{"protocol":3,"method":…,"arguments":[…],"reply_to":…}`, over TLS that trusts
//! only the boot test's freshly made CA (the certificate must name 127.0.0.1, where the port
//! is forwarded). [`Mbus`] is also the deploy proof's [`AgentCall`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use crate::deploy::director::{AgentCall, CallError};

/// A client for one agent.
#[derive(Clone)]
pub struct Mbus {
    agent: ureq::Agent,
    url: String,
    auth: String,
    timeout: Duration,
}

impl Mbus {
    /// A client for `https://127.0.0.1:PORT/agent` trusting only `ca_pem`.
    pub fn new(port: u16, user: &str, password: &str, ca_pem: &str) -> Result<Mbus, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let c = c.map_err(|e| format!("the mbus CA: {e}"))?;
            roots.add(c).map_err(|e| format!("the mbus CA: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Mbus {
            agent,
            url: format!("https://127.0.0.1:{port}/agent"),
            auth: format!("Basic {auth}"),
            timeout: Duration::from_secs(20),
        })
    }

    /// The same client allowing each call `timeout` (20 s by default). Synchronous actions
    /// can take longer under emulation: `start` rewrites monit's config and restarts monit.
    pub fn with_timeout(mut self, timeout: Duration) -> Mbus {
        self.timeout = timeout;
        self
    }

    /// Sends `method` with no arguments and returns the reply's `value`; an error says what
    /// came back instead.
    pub fn call(&self, method: &str) -> Result<serde_json::Value, String> {
        self.call_args(method, serde_json::json!([]))
    }

    /// Sends `method` with `args` (a JSON array) and returns the reply's `value`; an error
    /// says what came back instead.
    pub fn call_args(
        &self,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.request(method, args).map_err(|e| match e {
            CallError::Exception(m) => format!("the agent answered with an exception: {m}"),
            CallError::Transport(m) => m,
        })
    }

    /// One round trip, telling the agent's exceptions from transport failures.
    fn request(
        &self,
        method: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        // `protocol` 3 is what current directors send: `stop` then waits for the jobs.
        let body = serde_json::json!({
            "protocol": 3,
            "method": method,
            "arguments": args,
            "reply_to": "pistemcell-boot-test",
        });
        let resp = self
            .agent
            .post(&self.url)
            .timeout(self.timeout)
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        let transport = CallError::Transport;
        let text = match resp {
            Ok(r) => r.into_string().map_err(|e| transport(e.to_string()))?,
            Err(ureq::Error::Status(code, r)) => {
                let t = r.into_string().unwrap_or_default();
                return Err(transport(format!("HTTP {code}: {}", t.trim())));
            }
            Err(e) => return Err(transport(e.to_string())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| transport(format!("not JSON ({e}): {text}")))?;
        if let Some(ex) = v.get("exception") {
            let msg = match ex.get("message").and_then(|m| m.as_str()) {
                Some(m) => m.to_string(),
                None => ex.to_string(),
            };
            return Err(CallError::Exception(msg));
        }
        v.get("value")
            .cloned()
            .ok_or_else(|| transport(format!("no `value` in the reply: {text}")))
    }
}

impl AgentCall for Mbus {
    fn call(&self, method: &str, args: serde_json::Value) -> Result<serde_json::Value, CallError> {
        self.request(method, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::director::Director;
    use crate::deploy::http;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use serde_json::{json, Value};
    use std::io::{BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// A stand-in agent on 127.0.0.1 speaking HTTPS with the boot test's certificate:
    /// answers as `answer` says and records each request body.
    fn fake_agent(answer: fn(&Value) -> Value) -> (u16, String, Arc<Mutex<Vec<Value>>>) {
        let cert = crate::boottest::guest::mbus_cert().unwrap();
        let certs: Vec<CertificateDer> =
            CertificateDer::pem_slice_iter(cert.certificate.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(cert.private_key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (cfg, rec) = (cfg.clone(), rec.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(cfg).unwrap();
                    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                    while let Ok(Some(head)) = http::read_head(&mut tls) {
                        let mut body = Vec::new();
                        if http::copy_body(&head, &mut tls, &mut body, 1 << 20).is_err() {
                            return;
                        }
                        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let (status, reply) =
                            if head.header("authorization") != Some("Basic bWJ1czpzZWNyZXQ=") {
                                (401, json!({}))
                            } else {
                                (200, answer(&req))
                            };
                        rec.lock().unwrap().push(req);
                        let text = reply.to_string();
                        let s = tls.get_mut();
                        let _ = http::write_head(s, status, "X", text.len() as u64, true, &[]);
                        let _ = s.write_all(text.as_bytes());
                        let _ = s.flush();
                    }
                });
            }
        });
        (port, cert.ca, seen)
    }

    fn agent_answer(req: &Value) -> Value {
        match req["method"].as_str().unwrap_or("") {
            "ping" => json!({"value": "pong"}),
            "apply" => json!({"value": {"agent_task_id": "t1", "state": "running"}}),
            "get_task" => json!({"exception": {"message": "Task t1 result: Applying: boom"}}),
            _ => json!({"exception": {"message": "unknown message"}}),
        }
    }

    #[test]
    fn calls_carry_the_protocol_and_arguments_and_exceptions_keep_the_agents_message() {
        let (port, ca, seen) = fake_agent(agent_answer);
        let m = Mbus::new(port, "mbus", "secret", &ca)
            .unwrap()
            .with_timeout(Duration::from_secs(60));
        assert_eq!(m.call("ping").unwrap(), json!("pong"));
        let e = m.call_args("nope", json!([1, "a"])).unwrap_err();
        assert_eq!(e, "the agent answered with an exception: unknown message");
        let got = AgentCall::call(&m, "nope", json!([])).unwrap_err();
        assert_eq!(got, CallError::Exception("unknown message".into()));
        let e = Director::new(&m)
            .with_polling(Duration::ZERO, Duration::from_secs(30))
            .apply(&json!({"deployment": "d"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`apply`") && e.contains("Task t1 result: Applying: boom"),
            "{e}"
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen[0],
            json!({"protocol": 3, "method": "ping", "arguments": [], "reply_to": "pistemcell-boot-test"})
        );
        assert_eq!(seen[1]["arguments"], json!([1, "a"]));
        assert_eq!(seen[3]["arguments"], json!([{"deployment": "d"}]));
        assert_eq!(
            (seen[4]["method"].as_str(), &seen[4]["arguments"]),
            (Some("get_task"), &json!(["t1"]))
        );
    }

    #[test]
    fn a_refused_password_is_a_transport_error() {
        let (port, ca, _) = fake_agent(agent_answer);
        let m = Mbus::new(port, "mbus", "wrong", &ca).unwrap();
        match AgentCall::call(&m, "ping", json!([])) {
            Err(CallError::Transport(t)) => assert!(t.starts_with("HTTP 401"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
