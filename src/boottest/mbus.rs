//! The agent's HTTPS mbus, spoken as `bosh create-env` speaks it: `POST /agent` with basic
//! auth and `{"protocol":3,"method":…,"arguments":[…],"reply_to":…}`, over TLS that trusts
//! only the boot test's freshly made CA (the certificate must name 127.0.0.1, where the port
//! is forwarded). [`Mbus`] is also the deploy proof's [`AgentCall`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use crate::deploy::director::{AgentCall, CallError};

/// A client for one agent.
pub struct Mbus {
    agent: ureq::Agent,
    url: String,
    auth: String,
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
        })
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
