//! `weir dlq list|show|replay`: the dead-letter queue from the command line.
//!
//! Like `weir ingest` and `weir status`, a command talks to the running weir over HTTP when
//! one answers (at `--server`, else at weir.toml's `[server] listen`; with `--token` or
//! `WEIR_TOKEN` when `[server.auth]` is on), and otherwise opens the project's log itself —
//! a running weir holds the log's lock, so the two never write at once. Both paths run the
//! same code (`weir_server::dlq`), so they print the same. A replay through the server uses
//! the settings the server was started with: restart it after fixing weir.toml.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use weir_connectors::dlq::replay::Filter;
use weir_orchestrator::{Project, Weir};
use weir_server::dlq::{DlqEntry, DlqList, ReplayReport, ReplayRequest};

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
    /// URL of the running weir (default: http://<[server] listen>). Without it, a stopped
    /// weir's log is read directly.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// API token when weir runs with [server.auth] (replay needs the operator role).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Dead letters (the newest N, oldest first) with counts per source and reason.
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// Only this reason (not_utf8, line_too_large, ...).
        #[arg(long)]
        reason: Option<String>,
        /// Most entries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print the JSON answer of GET /v1/dlq.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full, its payload as text (or as hex when it is not UTF-8).
    Show {
        /// The dead letter's id (its offset in the dead-letter topic).
        id: u64,
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters through their source's checks again (after fixing weir.toml):
    /// those that pass go into the source's log, the others become new dead letters. Each
    /// dead letter is replayed at most once.
    Replay {
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        /// Only these ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ids: Vec<u64>,
        /// Show what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Where the dead letters are read: a running weir's API, or the project's log.
enum Backend {
    Server { base: String, token: Option<String> },
    Local(Arc<Weir>),
}

impl Backend {
    fn connect(
        project: &Project,
        server: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let explicit = server.is_some();
        let base = server
            .unwrap_or_else(|| format!("http://{}", project.config.server.listen))
            .trim_end_matches('/')
            .to_owned();
        let up = ureq::get(&format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok();
        if up {
            return Ok(Backend::Server { base, token });
        }
        if explicit {
            bail!("no weir answers at {base} (GET /health failed)");
        }
        let weir = Weir::open(project.clone()).map_err(|e| {
            anyhow::anyhow!(
                "no weir answers at {base}, and opening the project directly failed: {e} (if weir runs elsewhere, pass --server URL)"
            )
        })?;
        Ok(Backend::Local(weir))
    }

    fn list(&self, filter: &Filter, limit: usize) -> anyhow::Result<DlqList> {
        match self {
            Backend::Local(weir) => Ok(weir_server::dlq::list(weir, filter, limit)?),
            Backend::Server { base, token } => {
                let mut req =
                    ureq::get(&format!("{base}/v1/dlq")).query("limit", &limit.to_string());
                if let Some(s) = &filter.source {
                    req = req.query("source", s);
                }
                if let Some(r) = &filter.reason {
                    req = req.query("reason", r);
                }
                if let Some(id) = filter.ids.first() {
                    req = req.query("id", &id.to_string());
                }
                answer(with_token(req, token).call(), base)
            }
        }
    }

    fn replay(&self, req: &ReplayRequest) -> anyhow::Result<ReplayReport> {
        match self {
            Backend::Local(weir) => Ok(weir_server::dlq::replay(weir, req)?),
            Backend::Server { base, token } => {
                let r = with_token(ureq::post(&format!("{base}/v1/dlq/replay")), token);
                answer(r.send_json(serde_json::to_value(req)?), base)
            }
        }
    }
}

fn with_token(req: ureq::Request, token: &Option<String>) -> ureq::Request {
    match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    }
}

/// The JSON answer of the server, or its error message.
fn answer<T: serde::de::DeserializeOwned>(
    r: Result<ureq::Response, ureq::Error>,
    base: &str,
) -> anyhow::Result<T> {
    match r {
        Ok(r) => r.into_json().context("reading the server's answer"),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            if code == 401 || code == 403 {
                bail!("{msg} (pass --token or set WEIR_TOKEN)");
            }
            bail!("{msg}");
        }
        Err(e) => bail!("calling weir at {base}: {e}"),
    }
}

pub fn run(project: &Project, args: DlqArgs) -> anyhow::Result<ExitCode> {
    let backend = Backend::connect(project, args.server, args.token)?;
    match args.command {
        DlqCommand::List {
            source,
            reason,
            limit,
            json,
        } => {
            let filter = Filter {
                source,
                reason,
                ids: Vec::new(),
            };
            let list = backend.list(&filter, limit.max(1))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list, &filter);
            }
        }
        DlqCommand::Show { id, json } => {
            let filter = Filter {
                ids: vec![id],
                ..Filter::default()
            };
            let list = backend.list(&filter, 1)?;
            let Some(e) = list.entries.into_iter().next() else {
                bail!("no dead letter with id {id}");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print_entry(&e)?;
            }
        }
        DlqCommand::Replay {
            source,
            reason,
            ids,
            dry_run,
            json,
        } => {
            let req = ReplayRequest {
                source,
                reason,
                ids: (!ids.is_empty()).then_some(ids),
                dry_run: Some(dry_run),
            };
            let report = backend.replay(&req)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
        }
    }
    if let Backend::Local(weir) = backend {
        weir.stop();
    }
    Ok(ExitCode::SUCCESS)
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// At most `n` characters of `s` on one line.
fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let mut c: String = one_line.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

fn replay_state(e: &DlqEntry) -> String {
    match &e.replayed {
        None => "-".into(),
        Some(o) if o.outcome == "accepted" => format!(
            "→ {}/{}@{}",
            o.topic.as_deref().unwrap_or("?"),
            o.partition.unwrap_or(0),
            o.offset.unwrap_or(0)
        ),
        Some(o) => format!("refused → #{}", o.dead_letter.unwrap_or(0)),
    }
}

fn print_list(list: &DlqList, filter: &Filter) {
    if list.entries.is_empty() {
        if filter.source.is_none() && filter.reason.is_none() {
            println!("the dead-letter queue is empty");
        } else {
            println!(
                "no dead letter matches {} ({} in the queue)",
                filter.describe(),
                list.total
            );
        }
        return;
    }
    let rows: Vec<[String; 7]> = list
        .entries
        .iter()
        .map(|e| {
            [
                e.id.to_string(),
                time(e.ts),
                e.source.clone(),
                e.reason.clone(),
                e.size.to_string(),
                replay_state(e),
                clip(&e.detail, 70),
            ]
        })
        .collect();
    let head = [
        "ID",
        "TIME (UTC)",
        "SOURCE",
        "REASON",
        "SIZE",
        "REPLAYED",
        "DETAIL",
    ];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&head.map(String::from));
    for r in &rows {
        line(r);
    }
    println!();
    let shown = if list.matched as usize > list.entries.len() {
        format!(" (the newest {} shown)", list.entries.len())
    } else {
        String::new()
    };
    println!(
        "{} of {} dead letters match{shown}:",
        list.matched, list.total
    );
    for c in &list.counts {
        println!(
            "  {:<16} {:<20} {:>6}  ({} not replayed)",
            c.source, c.reason, c.entries, c.not_replayed
        );
    }
}

fn print_entry(e: &DlqEntry) -> anyhow::Result<()> {
    println!("dead letter {}", e.id);
    println!("  time       {} UTC", time(e.ts));
    println!("  source     {}", e.source);
    if let Some(o) = &e.offset {
        println!("  position   {o}");
    }
    println!("  reason     {}", e.reason);
    println!("  detail     {}", e.detail);
    println!("  size       {} bytes", e.size);
    if let Some(p) = e.replay_of {
        println!("  replay of  dead letter {p}");
    }
    let replayed = match &e.replayed {
        None => "no".to_string(),
        Some(o) if o.outcome == "accepted" => format!(
            "accepted into `{}` partition {} offset {} at {} UTC",
            o.topic.as_deref().unwrap_or("?"),
            o.partition.unwrap_or(0),
            o.offset.unwrap_or(0),
            time(o.at)
        ),
        Some(o) => format!(
            "refused again ({}) as dead letter {} at {} UTC",
            o.reason.as_deref().unwrap_or("?"),
            o.dead_letter.unwrap_or(0),
            time(o.at)
        ),
    };
    println!("  replayed   {replayed}");
    if e.raw_encoding == "hex" {
        println!("payload (hex, not UTF-8):");
        let bytes = hex_bytes(&e.raw).context("the payload's hex is damaged")?;
        print!("{}", hex_dump(&bytes));
    } else {
        println!("payload (text):");
        println!("{}", e.raw);
    }
    Ok(())
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// 16 bytes a line: offset, hex, and the printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (n, chunk) in bytes.chunks(16).enumerate() {
        // As `hexdump -C`: two groups of eight bytes.
        let mut hex = String::new();
        for (i, b) in chunk.iter().enumerate() {
            if i > 0 {
                hex.push(' ');
            }
            if i == 8 {
                hex.push(' ');
            }
            hex.push_str(&format!("{b:02x}"));
        }
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {hex:<48}  |{text}|\n", n * 16));
    }
    out
}

fn print_report(r: &ReplayReport) {
    for i in &r.items {
        let what = match i.action.as_str() {
            "accepted" | "would_accept" => format!(
                "{} into `{}` partition {}{}",
                if r.dry_run {
                    "would be accepted"
                } else {
                    "accepted"
                },
                i.topic.as_deref().unwrap_or("?"),
                i.partition.unwrap_or(0),
                i.offset.map_or(String::new(), |o| format!(" offset {o}"))
            ),
            "rejected" | "would_reject" => format!(
                "{} ({}){}: {}",
                if r.dry_run {
                    "would be refused again"
                } else {
                    "refused again"
                },
                i.new_reason.as_deref().unwrap_or("?"),
                i.dead_letter
                    .map_or(String::new(), |d| format!(" as dead letter {d}")),
                i.detail.as_deref().unwrap_or("")
            ),
            _ => format!("skipped: {}", i.detail.as_deref().unwrap_or("")),
        };
        println!("#{} {} {}: {what}", i.id, i.source, i.reason);
    }
    let left = if r.already_replayed > 0 {
        format!("; {} replayed before, left alone", r.already_replayed)
    } else {
        String::new()
    };
    if r.dry_run {
        println!(
            "dry run, nothing written: of {} matching dead letters, {} would be accepted, {} refused again, {} skipped{left}",
            r.matched, r.accepted, r.rejected, r.skipped
        );
    } else {
        println!(
            "replayed {} of {} matching dead letters: {} accepted, {} refused again, {} skipped{left}",
            r.accepted + r.rejected,
            r.matched,
            r.accepted,
            r.rejected,
            r.skipped
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_payloads_are_dumped_with_offsets_and_ascii() {
        let d = hex_dump(&hex_bytes("7b2261223aff7d").unwrap());
        assert_eq!(
            d,
            "00000000  7b 22 61 22 3a ff 7d                              |{\"a\":.}|\n"
        );
        // Byte for byte what `hexdump -C` prints, over two lines.
        let bytes: Vec<u8> = (0x41..0x41 + 20).collect();
        assert_eq!(
            hex_dump(&bytes),
            "00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|\n\
             00000010  51 52 53 54                                       |QRST|\n"
        );
        assert_eq!(hex_bytes("zz"), None);
        assert_eq!(clip("a\nbcdef", 4), "a b…");
    }
}
