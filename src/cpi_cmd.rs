//! `pistemcell cpi --config FILE`: reads one request from stdin, writes the response to
//! stdout and the log to stderr. A failed call is a CPI error in the response, and the exit
//! status is still success: BOSH reads the error from the JSON.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Runs one CPI call.
pub fn command(config: &Path) -> Result<ExitCode> {
    let mut request = Vec::new();
    std::io::stdin()
        .take(pistemcell::cpi::protocol::REQUEST_MAX + 1)
        .read_to_end(&mut request)
        .context("reading the CPI request from stdin")?;
    let response = if request.len() as u64 > pistemcell::cpi::protocol::REQUEST_MAX {
        let e = pistemcell::cpi::CpiError::Request(format!(
            "the request is over {} bytes",
            pistemcell::cpi::protocol::REQUEST_MAX
        ));
        pistemcell::cpi::protocol::error(&e, "")
    } else {
        let text = String::from_utf8_lossy(&request);
        pistemcell::cpi::call(config, &text, &mut |l| eprintln!("pistemcell cpi: {l}"))
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &response).context("writing the CPI response")?;
    out.write_all(b"\n").context("writing the CPI response")?;
    Ok(ExitCode::SUCCESS)
}
