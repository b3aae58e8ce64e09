//! Arguments and output of the operator commands `cancel`, `close`, `kill-switch`,
//! `trades`, `orders` and `paper reset` (registered in `main.rs`), and the strict `--side`
//! parser every command shares.
//!
//! Owns: clap definitions, exit codes and printing (text, `--json`, `--csv`). Never: talks
//! to the engine or the store itself ([`crate::operate`] and [`crate::history`] do).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use orrery_actors::exchanges::Side;

use crate::config::Config;
use crate::history::{self, Format, HistoryFilter};
use crate::operate::{self, CancelRequest, CliError, CloseRequest};

/// Exit codes: 0 success, 1 runtime failure (or a partial one), 2 bad usage.
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// `--side`: `buy` or `sell`. `long`/`short` are refused rather than guessed: `sell` on a
/// long position reduces it, so "short" would be ambiguous between closing and opening.
pub fn parse_cli_side(s: &str) -> Result<Side, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        "long" | "short" => Err(format!(
            "`{s}` is not an order side; use `buy` (opens or adds to a long, or reduces a short) or `sell` (reduces a long, or opens a short)"
        )),
        _ => Err(format!("`{s}` is not an order side; use `buy` or `sell`")),
    }
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Venue of the orders (a name under `[exchanges.venues]`).
    #[arg(long)]
    pub venue: String,
    /// Cancel this one order (its client id, as `orrery orders` lists it).
    #[arg(long, group = "which")]
    pub client_id: Option<String>,
    /// Cancel every open order of this symbol.
    #[arg(long, group = "which")]
    pub symbol: Option<String>,
    /// Cancel every open order of the venue, including orders placed elsewhere.
    #[arg(long, group = "which")]
    pub all: bool,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub venue: String,
    #[arg(long)]
    pub symbol: String,
    /// Share of the position to close, 1-100, in reduce-only market orders of at most
    /// `risk.close_chunk_usd` each.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub percent: u32,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").required(true))]
pub struct KillSwitchArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Halt trading, cancel every open order on every venue, then close every position.
    #[arg(long, group = "action", requires = "reason")]
    pub engage: bool,
    /// Lift the halt (back to normal trading).
    #[arg(long, group = "action")]
    pub release: bool,
    /// Why; recorded with the trading mode and shown by `orrery status`.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the result as JSON (errors as {"error":{"code","message"}}).
    #[arg(long)]
    pub json: bool,
}

/// What `trades` and `orders` share: where to look, how far back, how to print.
#[derive(Debug, Args)]
pub struct ListingArgs {
    #[arg(long, env = "ORRERY_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub venue: Option<String>,
    #[arg(long)]
    pub symbol: Option<String>,
    /// Only rows at or after this (a fill's time, an order's creation): a date
    /// (2026-01-31), an RFC 3339 time, or a duration back from now (24h, 90m).
    #[arg(long)]
    pub since: Option<String>,
    /// Print the rows as a JSON array.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV with a header line.
    #[arg(long)]
    pub csv: bool,
}

impl ListingArgs {
    fn filter(&self, status: Option<String>) -> HistoryFilter {
        HistoryFilter {
            venue: self.venue.clone(),
            symbol: self.symbol.clone(),
            status,
            since: self.since.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct TradesArgs {
    #[command(flatten)]
    pub listing: ListingArgs,
}

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    pub listing: ListingArgs,
    /// Only orders in this status: open (not final), intent, submitted, acked,
    /// partially_filled, filled, cancelled, rejected, unknown.
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PaperCommand {
    /// Start a paper account afresh: starting balance, no positions, no open orders. The
    /// order and fill history stays. Refused while the engine runs (stop it first).
    Reset {
        #[arg(long, env = "ORRERY_CONFIG")]
        config: Option<PathBuf>,
        /// The paper venue to reset.
        #[arg(long, default_value = "paper")]
        venue: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Print the result as JSON (errors as {"error":{"code","message"}}).
        #[arg(long)]
        json: bool,
    },
}

impl PaperCommand {
    pub fn config(&self) -> Option<PathBuf> {
        match self {
            PaperCommand::Reset { config, .. } => config.clone(),
        }
    }
}

fn finish<T: serde::Serialize>(
    result: Result<T, CliError>,
    json: bool,
    what: &str,
    render: impl Fn(&T) -> String,
    ok: impl Fn(&T) -> bool,
) -> ExitCode {
    match result {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", render(&r));
            }
            if ok(&r) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => {
            e.print(json, what);
            ExitCode::from(if e.code == "bad_request" {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            })
        }
    }
}

pub fn cancel(config: Config, a: CancelArgs) -> ExitCode {
    if a.client_id.is_none() && a.symbol.is_none() && !a.all {
        eprintln!("orrery: cancel needs one of --client-id ID, --symbol S or --all");
        return ExitCode::from(EXIT_USAGE);
    }
    let request = CancelRequest {
        venue: a.venue,
        client_id: a.client_id,
        symbol: a.symbol,
        all: a.all,
    };
    finish(
        operate::cancel(config, request),
        a.json,
        "cancel",
        operate::render_cancel,
        |r| r.failed.is_empty(),
    )
}

pub fn close(config: Config, a: CloseArgs) -> ExitCode {
    let request = CloseRequest {
        venue: a.venue,
        symbol: a.symbol,
        percent: a.percent,
    };
    finish(
        operate::close(config, request),
        a.json,
        "close",
        operate::render_close,
        |_| true,
    )
}

pub fn kill_switch(config: Config, a: KillSwitchArgs) -> ExitCode {
    let reason = a.reason.unwrap_or_else(|| "operator release".into());
    finish(
        operate::kill_switch(config, a.engage, reason),
        a.json,
        "kill switch",
        operate::render_kill_switch,
        |r| r.failed.is_empty(),
    )
}

fn format(json: bool, csv: bool) -> Format {
    match (json, csv) {
        (true, _) => Format::Json,
        (_, true) => Format::Csv,
        _ => Format::Table,
    }
}

fn listing<T: serde::Serialize>(
    rows: Result<Vec<T>, CliError>,
    fmt: Format,
    table: impl Fn(&[T]) -> String,
) -> ExitCode {
    match rows.and_then(|r| history::print(&r, fmt, table).map_err(CliError::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.print(fmt == Format::Json, "listing");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

pub fn trades(config: Config, a: TradesArgs) -> ExitCode {
    let l = a.listing;
    listing(
        history::trades_cmd(&config, &l.filter(None)),
        format(l.json, l.csv),
        history::trades_table,
    )
}

pub fn orders(config: Config, a: OrdersArgs) -> ExitCode {
    let l = a.listing;
    listing(
        history::orders_cmd(&config, &l.filter(a.status)),
        format(l.json, l.csv),
        history::orders_table,
    )
}

pub fn paper(config: Config, cmd: PaperCommand) -> ExitCode {
    match cmd {
        PaperCommand::Reset {
            venue, yes, json, ..
        } => finish(
            operate::paper_reset(config, &venue, yes),
            json,
            "paper reset",
            operate::render_paper_reset,
            |_| true,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_is_buy_or_sell_and_long_short_are_refused_with_the_way_out() {
        assert_eq!(parse_cli_side("buy"), Ok(Side::Buy));
        assert_eq!(parse_cli_side("SELL"), Ok(Side::Sell));
        let e = parse_cli_side("long").unwrap_err();
        assert!(e.contains("use `buy`") && e.contains("`sell`"), "{e}");
        assert!(parse_cli_side("short").is_err());
        assert!(parse_cli_side("b").is_err());
    }
}
