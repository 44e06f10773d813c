//! The CPI's wire format, API version 2: one JSON request on stdin (`method`, `arguments`,
//! `context`, `api_version`), one JSON response on stdout (`result`, `error`, `log`). An error
//! is `{"type": "Bosh::Clouds::...", "message": ..., "ok_to_retry": ...}` with a null result.

use serde_json::{json, Value};

use super::CpiError;

/// The largest request read from stdin: a create_vm's env carries certificates, never megabytes.
pub const REQUEST_MAX: u64 = 4 << 20;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method's name.
    pub method: String,
    /// Its arguments, in order.
    pub arguments: Vec<Value>,
    /// The API version the caller speaks (1 when absent).
    pub api_version: u64,
}

/// Parses the request text.
pub fn parse(text: &str) -> Result<Request, CpiError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| CpiError::Request(format!("the request is not JSON: {e}")))?;
    let method = v["method"]
        .as_str()
        .ok_or_else(|| CpiError::Request("the request has no `method` string".into()))?
        .to_string();
    let arguments = match &v["arguments"] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => {
            return Err(CpiError::Request(format!(
                "`arguments` must be an array, not {other}"
            )))
        }
    };
    let api_version = match &v["api_version"] {
        Value::Null => 1,
        n => n
            .as_u64()
            .ok_or_else(|| CpiError::Request(format!("`api_version` must be a number, not {n}")))?,
    };
    Ok(Request {
        method,
        arguments,
        api_version,
    })
}

/// The response to a call that succeeded.
pub fn ok(result: Value, log: &str) -> Value {
    json!({"result": result, "error": null, "log": log})
}

/// The response to a call that failed.
pub fn error(e: &CpiError, log: &str) -> Value {
    json!({
        "result": null,
        "error": {"type": e.bosh_type(), "message": e.to_string(), "ok_to_retry": e.ok_to_retry()},
        "log": log,
    })
}

/// The arguments of one call, read by position with the method's name in every error.
pub struct Args<'a> {
    method: &'a str,
    args: &'a [Value],
}

impl<'a> Args<'a> {
    /// The arguments of `req`; `want` is how many the method takes (more are refused).
    pub fn of(req: &'a Request, want: usize) -> Result<Args<'a>, CpiError> {
        if req.arguments.len() > want {
            return Err(CpiError::Request(format!(
                "{} takes {want} arguments, not {}",
                req.method,
                req.arguments.len()
            )));
        }
        Ok(Args {
            method: &req.method,
            args: &req.arguments,
        })
    }

    fn get(&self, i: usize) -> &'a Value {
        self.args.get(i).unwrap_or(&Value::Null)
    }

    fn bad(&self, i: usize, name: &str, want: &str) -> CpiError {
        CpiError::Request(format!(
            "{}: argument {} ({name}) must be {want}, not {}",
            self.method,
            i + 1,
            self.get(i)
        ))
    }

    /// A string argument.
    pub fn string(&self, i: usize, name: &str) -> Result<&'a str, CpiError> {
        self.get(i)
            .as_str()
            .ok_or_else(|| self.bad(i, name, "a string"))
    }

    /// An object argument; null counts as empty.
    pub fn object(&self, i: usize, name: &str) -> Result<serde_json::Map<String, Value>, CpiError> {
        match self.get(i) {
            Value::Object(m) => Ok(m.clone()),
            Value::Null => Ok(Default::default()),
            _ => Err(self.bad(i, name, "an object")),
        }
    }

    /// A whole-number argument.
    pub fn number(&self, i: usize, name: &str) -> Result<u64, CpiError> {
        self.get(i)
            .as_u64()
            .ok_or_else(|| self.bad(i, name, "a whole number"))
    }

    /// A list of strings; null counts as empty.
    pub fn strings(&self, i: usize, name: &str) -> Result<Vec<String>, CpiError> {
        match self.get(i) {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.bad(i, name, "a list of strings")),
            _ => Err(self.bad(i, name, "a list of strings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_and_bad_ones_are_named() {
        let r = parse(r#"{"method":"has_vm","arguments":["vm-1"],"context":{"director_uuid":"x"},"api_version":2}"#).unwrap();
        assert_eq!((r.method.as_str(), r.api_version), ("has_vm", 2));
        let a = Args::of(&r, 1).unwrap();
        assert_eq!(a.string(0, "vm_cid").unwrap(), "vm-1");
        assert!(Args::of(&r, 0).is_err());
        let e = a.number(0, "size").unwrap_err().to_string();
        assert!(
            e.contains("has_vm: argument 1 (size) must be a whole number"),
            "{e}"
        );
        assert_eq!(parse(r#"{"method":"info"}"#).unwrap().api_version, 1);
        for bad in [
            "",
            "[]",
            r#"{"arguments":[]}"#,
            r#"{"method":"x","arguments":{}}"#,
        ] {
            assert!(matches!(parse(bad), Err(CpiError::Request(_))), "{bad}");
        }
    }
}
