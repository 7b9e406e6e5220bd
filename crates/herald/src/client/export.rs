//! `herald inbox export`: streams an inbox's export to a file or stdout, with a progress bar on
//! stderr when stderr is a terminal. The server says how many entries follow
//! (`X-Herald-Entry-Count`); records are counted as they stream by (a newline ends a JSON entry
//! line; in CSV, a newline outside quotes ends a record).

use std::io::{IsTerminal, Write};
use std::path::Path;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;

use super::{Api, ClientError, ClientResult, explain, segment};
use crate::api::inbox::entries::ENTRY_COUNT_HEADER;
use crate::cli::{ExportFormat, ServerArgs};

/// Counts the records of an export as its bytes go by.
#[derive(Debug, Default)]
pub struct RecordCounter {
    csv: bool,
    in_quotes: bool,
    newlines: u64,
}

impl RecordCounter {
    pub fn new(format: ExportFormat) -> Self {
        Self {
            csv: format == ExportFormat::Csv,
            ..Self::default()
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                // Quotes inside a CSV field are doubled, so parity tells inside from outside.
                b'"' if self.csv => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.newlines += 1,
                _ => {}
            }
        }
    }

    /// Records seen so far: CSV lines after the header; JSON entries begun (each starts on a
    /// new line; the closing `]` line is cut off by the caller's clamp to the total).
    pub fn records(&self) -> u64 {
        if self.csv {
            self.newlines.saturating_sub(1)
        } else {
            self.newlines
        }
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} entries ({per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub async fn run(
    server: &ServerArgs,
    inbox: &str,
    format: ExportFormat,
    out: Option<&Path>,
    path: Option<&str>,
) -> ClientResult {
    let api = Api::new(server)?;
    let mut url = api.url(&format!("/api/v1/inbox/{}/export", segment(inbox)))?;
    url.query_pairs_mut().append_pair(
        "format",
        match format {
            ExportFormat::Json => "json",
            ExportFormat::Csv => "csv",
            ExportFormat::Tree => "tree",
        },
    );
    if let Some(path) = path {
        url.query_pairs_mut().append_pair("path", path);
    }
    let response = api
        .request(Method::GET, url)
        .send()
        .await
        .map_err(|e| api.unreachable(e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        return Err(ClientError::Failure(explain(status, &body)));
    }
    let total: u64 = response
        .headers()
        .get(ENTRY_COUNT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut sink: Box<dyn Write> = match out {
        Some(file) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).map_err(|e| {
                ClientError::Failure(format!("cannot create {}: {e}", file.display()))
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let bar = progress_bar(total);
    let mut counter = RecordCounter::new(format);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ClientError::Failure(format!("the export was cut off: {e}")))?;
        counter.feed(&chunk);
        bar.set_position(counter.records().min(total));
        sink.write_all(&chunk)
            .map_err(|e| ClientError::Failure(format!("writing the export failed: {e}")))?;
    }
    sink.flush()
        .map_err(|e| ClientError::Failure(format!("writing the export failed: {e}")))?;
    bar.finish_and_clear();
    match out {
        Some(file) if format == ExportFormat::Tree => {
            eprintln!("herald: exported the tree to {}", file.display());
        }
        Some(file) => eprintln!("herald: exported {total} entries to {}", file.display()),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_across_chunks() {
        let mut csv = RecordCounter::new(ExportFormat::Csv);
        for chunk in ["key,path\n", "a,\"line one\nline \"\"two", "\"\"\"\nb,c\n"] {
            csv.feed(chunk.as_bytes());
        }
        assert_eq!(csv.records(), 2);
        let mut json = RecordCounter::new(ExportFormat::Json);
        json.feed(b"[\n{\"a\":\"q\\\"\"},\n{\"b\":1}");
        assert_eq!(json.records(), 2);
    }
}
