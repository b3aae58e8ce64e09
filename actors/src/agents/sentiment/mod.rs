//! The sentiment and news agent (`[[agents.sentiment]]`): polls the configured news
//! sources, scores each new headline per symbol with a model, keeps a per-symbol sentiment
//! index with exponential decay, and publishes a `sentiment` signal when the index crosses
//! its thresholds or moves far.
//!
//! One run ([`SentimentAgent`], run by the agent runtime like every agent):
//! 1. every source whose `poll_interval` has passed is fetched at once, each on its own
//!    deadline ([`fetch`]: conditional GET, or a `file://` file); a source that fails is
//!    counted and logged, and never stops the others;
//! 2. its items ([`parse`]) not seen before ([`state`]'s seen-set, by id/guid, else link)
//!    and not older than `max_item_age` that mention a configured symbol become pending;
//! 3. pending headlines are scored: from the cache (by headline hash) or by the model in
//!    batches of `batch_size` ([`score`]; answers parsed strictly — an unreadable answer is
//!    an error, counted and journaled, and its headlines stay pending for the next run);
//! 4. each score feeds the symbol's index ([`index`]), every symbol's index is exported
//!    and checked, and a signal due goes to the bus with the newest headlines as evidence;
//! 5. the run is journaled: each scoring request (exact prompt, answer, scores or error)
//!    and a summary (new headlines, index per symbol, signals).
//!
//! Owns: the sentiment tree `sentiment/<name>` and the metrics `orrery_news_*` and
//! `orrery_sentiment_*`. Never: trades, or calls another agent (it only publishes on the
//! bus; a trading agent with `signal_kinds = ["sentiment"]` reads the signals in its
//! prompt).

pub mod config;
pub mod fetch;
pub mod index;
pub mod parse;
pub mod report;
pub mod score;
pub mod state;

pub use config::{SentimentAgentConfig, SourceConfig, SourceKind};
pub use state::SentimentState;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::LocalBoxFuture;
use rust_decimal::Decimal;

use super::journal::{
    self, Abstention, DecisionJournal, DecisionRecord, JournalReceipt, MemberAnswer,
};
use super::runtime::{AgentKind, Kind, RunCtx, RunOutcome, Schedule};
use crate::clock::{Millis, SharedClock};
use crate::models::{
    HeadlineBatch, HeadlineToScore, ModelClient, ModelRequest, Purpose, StructuredContext,
};
use crate::signals::{self, Direction, SignalBus, SignalInput, SignalKind};
use crate::store::StoreError;
use crate::supervisor::Slot;
use fetch::Fetched;
use index::LastSignal;
use state::{CachedScores, Pending, ScoredHeadline};

/// Metric names of the sentiment agent.
pub mod names {
    /// New items taken from a source (after dedup), by source.
    pub const NEWS_ITEMS: &str = "orrery_news_items_total";
    /// Failed fetches, by source and kind.
    pub const NEWS_FETCH_ERRORS: &str = "orrery_news_fetch_errors_total";
    /// Polls answered "not modified" (HTTP 304, or an unchanged file), by source.
    pub const NEWS_NOT_MODIFIED: &str = "orrery_news_not_modified_total";
    /// The sentiment index, by symbol (and agent).
    pub const SENTIMENT_INDEX: &str = "orrery_sentiment_index";
    /// Headlines scored, by agent and how (`model`, `cache`).
    pub const SENTIMENT_SCORED: &str = "orrery_sentiment_headlines_scored_total";
    /// Scoring requests that gave no usable scores, by agent and kind.
    pub const SENTIMENT_SCORE_ERRORS: &str = "orrery_sentiment_score_errors_total";
}

/// HELP texts of the metrics in [`names`].
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        names::NEWS_ITEMS,
        "New news items taken from a source (not seen before), by source."
    );
    describe_counter!(
        names::NEWS_FETCH_ERRORS,
        "Failed news fetches by source and kind (timeout, transport, http_status, too_large, file, parse)."
    );
    describe_counter!(
        names::NEWS_NOT_MODIFIED,
        "News polls the source answered not modified (HTTP 304, or an unchanged file), by source."
    );
    describe_gauge!(
        names::SENTIMENT_INDEX,
        "Sentiment index per symbol, -1 (bearish) to 1 (bullish): the decayed mean of headline scores."
    );
    describe_counter!(
        names::SENTIMENT_SCORED,
        "Headlines scored by a sentiment agent, by how (model: asked, cache: a cached answer)."
    );
    describe_counter!(
        names::SENTIMENT_SCORE_ERRORS,
        "Scoring requests that gave no usable scores, by agent and kind (model: the call failed; not_json, bad_entry, duplicate, missing: the answer was refused)."
    );
}

/// Headlines quoted in a signal's evidence.
const EVIDENCE_HEADLINES: usize = 3;

/// What a sentiment agent needs, cloneable into a run's future.
#[derive(Clone)]
pub struct SentimentDeps {
    pub models: ModelClient,
    pub signals: Slot<SignalBus>,
    pub journal: DecisionJournal,
    pub state: SentimentState,
    pub clock: SharedClock,
}

/// Finds the configured symbols a headline mentions.
#[derive(Debug, Clone)]
pub struct SymbolMatcher {
    /// Per symbol, its keywords as lower-case word sequences.
    keywords: Vec<(String, Vec<Vec<String>>)>,
}

fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl SymbolMatcher {
    pub fn new(symbols: &BTreeMap<String, Vec<String>>) -> Self {
        Self {
            keywords: symbols
                .iter()
                .map(|(symbol, aliases)| {
                    let mut kw: Vec<Vec<String>> = aliases.iter().map(|a| words(a)).collect();
                    kw.push(words(symbol));
                    kw.retain(|k| !k.is_empty());
                    (symbol.to_ascii_uppercase(), kw)
                })
                .collect(),
        }
    }

    /// The symbols `title` mentions (whole words, case-insensitive), in config order.
    pub fn symbols_in(&self, title: &str) -> Vec<String> {
        let w = words(title);
        self.keywords
            .iter()
            .filter(|(_, kws)| {
                kws.iter()
                    .any(|k| w.windows(k.len()).any(|win| win == k.as_slice()))
            })
            .map(|(s, _)| s.clone())
            .collect()
    }
}

/// The sentiment agent as the runtime runs it.
pub struct SentimentAgent {
    config: Arc<SentimentAgentConfig>,
    deps: SentimentDeps,
    matcher: Arc<SymbolMatcher>,
    client: reqwest::Client,
}

impl SentimentAgent {
    pub fn new(config: SentimentAgentConfig, deps: SentimentDeps) -> Result<Self, reqwest::Error> {
        Ok(Self {
            matcher: Arc::new(SymbolMatcher::new(&config.symbols)),
            config: Arc::new(config),
            deps,
            client: fetch::client()?,
        })
    }
}

impl AgentKind for SentimentAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn kind(&self) -> Kind {
        Kind::Sentiment
    }
    fn schedule(&self) -> Schedule {
        self.config.schedule()
    }
    fn started(&self) {
        // Every series exists from start, so an alert on an increase works from the first
        // failure.
        for s in &self.config.sources {
            metrics::counter!(names::NEWS_ITEMS, "source" => s.name.clone()).increment(0);
            metrics::counter!(names::NEWS_NOT_MODIFIED, "source" => s.name.clone()).increment(0);
            for kind in fetch::FetchError::KINDS {
                metrics::counter!(names::NEWS_FETCH_ERRORS, "source" => s.name.clone(), "kind" => *kind)
                    .increment(0);
            }
        }
    }
    fn run(&self, _ctx: RunCtx) -> LocalBoxFuture<'static, RunOutcome> {
        let (config, deps, matcher, client) = (
            self.config.clone(),
            self.deps.clone(),
            self.matcher.clone(),
            self.client.clone(),
        );
        Box::pin(async move {
            match run_once(&config, &deps, &matcher, &client).await {
                Ok(report) if report.failures.is_empty() => RunOutcome::Ok,
                Ok(report) => RunOutcome::Error(report.failures.join("; ")),
                Err(e) => RunOutcome::Error(format!("sentiment state in the data dir: {e}")),
            }
        })
    }
}

/// What one run did (for tests and the run's outcome).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Sources fetched this run.
    pub polled: Vec<String>,
    /// Sources that answered "not modified".
    pub not_modified: Vec<String>,
    /// New headlines (not seen before, recent, naming a symbol).
    pub new_headlines: usize,
    /// Headlines scored this run (from the model or the cache).
    pub scored: usize,
    /// Index per symbol after the run.
    pub index: BTreeMap<String, f64>,
    /// Signals handed to the bus: (symbol, direction).
    pub signals: Vec<(String, Direction)>,
    /// What failed (a source, a scoring request), one line each.
    pub failures: Vec<String>,
}

/// One run (see the module docs). `Err` only when the agent's own state cannot be read
/// or written; everything else that fails is in [`RunReport::failures`].
pub async fn run_once(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    matcher: &SymbolMatcher,
    client: &reqwest::Client,
) -> Result<RunReport, StoreError> {
    let mut report = RunReport::default();
    let mut receipts = Vec::new();
    let now = deps.clock.now_ms();
    poll_sources(config, deps, matcher, client, now, &mut report).await?;
    let scored = score_pending(config, deps, now, &mut report, &mut receipts).await?;
    update_index(config, deps, now, &scored, &mut report)?;
    let ttl_ms = i64::try_from(config.seen_ttl.as_millis()).unwrap_or(i64::MAX);
    deps.state.prune_seen(now, ttl_ms, config.max_seen)?;
    receipts.push(journal_summary(config, deps, now, &report));
    // The run ends once its journal is on disk (one group-committed flush); a journal
    // that cannot write was logged and counted by its writer, and is this run's failure.
    for r in journal::wait_all(receipts).await {
        if let Err(e) = r {
            report.failures.push(format!("journal: {e}"));
        }
    }
    Ok(report)
}

async fn poll_sources(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    matcher: &SymbolMatcher,
    client: &reqwest::Client,
    now: Millis,
    report: &mut RunReport,
) -> Result<(), StoreError> {
    let mut due = Vec::new();
    for source in &config.sources {
        let st = deps.state.source(&source.name)?;
        let interval = i64::try_from(source.poll_interval.as_millis()).unwrap_or(i64::MAX);
        if st.last_poll_ms.is_none_or(|t| now - t >= interval) {
            due.push((source, st));
        }
    }
    let fetches = due
        .iter()
        .map(|(source, st)| fetch::fetch(client, source, &st.validators));
    let results = futures::future::join_all(fetches).await;
    let max_age = i64::try_from(config.max_item_age.as_millis()).unwrap_or(i64::MAX);
    for ((source, mut st), result) in due.into_iter().zip(results) {
        report.polled.push(source.name.clone());
        st.last_poll_ms = Some(now);
        let parsed = result.and_then(|f| match f {
            Fetched::NotModified => Ok(None),
            Fetched::Body { bytes, validators } => {
                parse::items(source, &bytes).map(|items| Some((items, validators)))
            }
        });
        match parsed {
            Ok(None) => {
                st.not_modified += 1;
                st.last_ok_ms = Some(now);
                st.last_error = None;
                metrics::counter!(names::NEWS_NOT_MODIFIED, "source" => source.name.clone())
                    .increment(1);
                report.not_modified.push(source.name.clone());
                tracing::info!(agent = %config.name, source = %source.name, not_modified = true, new_items = 0, "news source polled");
            }
            Ok(Some((mut items, validators))) => {
                // Newest first, so the per-poll bound keeps the latest news.
                items.sort_by_key(|i| std::cmp::Reverse(i.published_ms.unwrap_or(Millis::MAX)));
                let fetched = items.len();
                let (mut new, mut stale, mut unmatched) = (0usize, 0usize, 0usize);
                for item in items {
                    if new + stale + unmatched >= source.max_items_per_poll {
                        break;
                    }
                    if deps.state.is_seen(&item.id)? {
                        continue;
                    }
                    deps.state.mark_seen(&item.id, now)?;
                    let time_ms = item.published_ms.unwrap_or(now).min(now);
                    if now - time_ms > max_age {
                        stale += 1;
                        continue;
                    }
                    let symbols = matcher.symbols_in(&item.title);
                    if symbols.is_empty() {
                        unmatched += 1;
                        continue;
                    }
                    deps.state.add_pending(
                        &Pending {
                            source: source.name.clone(),
                            id: item.id,
                            title: item.title,
                            link: item.link,
                            time_ms,
                            symbols,
                        },
                        now,
                        new,
                    )?;
                    new += 1;
                }
                // The validators are kept only now that the body was read: a feed that
                // failed to parse is fetched whole again.
                st.validators = validators;
                st.items += (new + stale + unmatched) as u64;
                st.last_ok_ms = Some(now);
                st.last_error = None;
                metrics::counter!(names::NEWS_ITEMS, "source" => source.name.clone())
                    .increment((new + stale + unmatched) as u64);
                report.new_headlines += new;
                tracing::info!(
                    agent = %config.name,
                    source = %source.name,
                    not_modified = false,
                    items = fetched,
                    new_items = new + stale + unmatched,
                    to_score = new,
                    too_old = stale,
                    no_symbol = unmatched,
                    "news source polled"
                );
            }
            Err(e) => {
                st.errors += 1;
                st.last_error = Some(e.to_string());
                metrics::counter!(names::NEWS_FETCH_ERRORS, "source" => source.name.clone(), "kind" => e.kind())
                    .increment(1);
                tracing::warn!(agent = %config.name, source = %source.name, kind = e.kind(), error = %e, "news source failed");
                report.failures.push(e.to_string());
            }
        }
        deps.state.set_source(&source.name, &st)?;
    }
    Ok(())
}

/// Scores every pending headline it can (cache first, then the model in batches); returns
/// the headlines scored this run.
async fn score_pending(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    now: Millis,
    report: &mut RunReport,
    receipts: &mut Vec<JournalReceipt>,
) -> Result<Vec<ScoredHeadline>, StoreError> {
    let max_age = i64::try_from(config.max_item_age.as_millis()).unwrap_or(i64::MAX);
    let mut scored = Vec::new();
    let mut to_ask: Vec<(String, Pending)> = Vec::new();
    for (key, p) in deps.state.pending()? {
        if now - p.time_ms > max_age {
            tracing::warn!(agent = %config.name, source = %p.source, title = %p.title, "headline dropped unscored: older than max_item_age");
            deps.state.remove(&key)?;
            continue;
        }
        let ck = score::cache_key(&config.model, &p.title, &p.symbols);
        if let Some(cached) = deps.state.cached_scores(&ck)? {
            metrics::counter!(names::SENTIMENT_SCORED, "agent" => config.name.clone(), "how" => "cache")
                .increment(1);
            scored.push(headline(&p, cached.scores, true));
            deps.state.remove(&key)?;
        } else {
            to_ask.push((key, p));
        }
    }
    for chunk in to_ask
        .chunks(config.batch_size)
        .take(config.max_batches_per_run())
    {
        let batch = HeadlineBatch {
            headlines: chunk
                .iter()
                .enumerate()
                .map(|(i, (_, p))| HeadlineToScore {
                    n: i + 1,
                    title: p.title.clone(),
                    symbols: p.symbols.clone(),
                })
                .collect(),
        };
        let (answer, receipt) = ask_batch(config, deps, now, &batch).await;
        receipts.push(receipt);
        match answer {
            Ok(scores) => {
                for (i, (key, p)) in chunk.iter().enumerate() {
                    let mine: BTreeMap<String, f64> = p
                        .symbols
                        .iter()
                        .filter_map(|s| scores.get(&(i + 1, s.clone())).map(|v| (s.clone(), *v)))
                        .collect();
                    deps.state.cache_scores(
                        &score::cache_key(&config.model, &p.title, &p.symbols),
                        &CachedScores {
                            scores: mine.clone(),
                            time_ms: now,
                        },
                    )?;
                    metrics::counter!(names::SENTIMENT_SCORED, "agent" => config.name.clone(), "how" => "model")
                        .increment(1);
                    scored.push(headline(p, mine, false));
                    deps.state.remove(key)?;
                }
            }
            Err(failure) => report.failures.push(failure),
        }
    }
    for (i, h) in scored.iter().enumerate() {
        deps.state.add_headline(h, config.headlines_kept, now, i)?;
    }
    report.scored = scored.len();
    Ok(scored)
}

fn headline(p: &Pending, scores: BTreeMap<String, f64>, cached: bool) -> ScoredHeadline {
    ScoredHeadline {
        time_ms: p.time_ms,
        source: p.source.clone(),
        title: p.title.clone(),
        link: p.link.clone(),
        scores,
        cached,
    }
}

/// Scores of one batch, keyed by (headline number, symbol).
type BatchScores = BTreeMap<(usize, String), f64>;

/// Asks the model to score `batch` and journals the request; `Err` is the failure line
/// (already counted and journaled).
async fn ask_batch(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    now: Millis,
    batch: &HeadlineBatch,
) -> (Result<BatchScores, String>, JournalReceipt) {
    let mut symbols: Vec<String> = batch
        .headlines
        .iter()
        .flat_map(|h| h.symbols.iter().cloned())
        .collect();
    symbols.sort();
    symbols.dedup();
    let mut record =
        DecisionRecord::begin(now, &config.name, "", &symbols.join(","), &config.model);
    let prompt = score::prompt(batch);
    record.set_prompt(score::SYSTEM, &prompt);
    record.context = Some(StructuredContext::Headlines(batch.clone()));
    let mut request = ModelRequest::new(config.model.clone(), Purpose::SentimentScore, prompt);
    request.system = score::SYSTEM.to_string();
    request.context = record.context.clone();
    request.timeout = config.score_timeout;
    request.max_tokens = (64 + 32 * batch.headlines.len() * symbols.len().max(1)).min(8192) as u32;
    // The agent keeps its own cache by headline; the router's would only repeat a
    // batch that failed to parse.
    request.cacheable = false;
    let started = std::time::Instant::now();
    let answer = deps.models.ask(request).await;
    let latency = started.elapsed().as_millis() as u64;
    record.latency_ms = Some(latency);
    let mut member = MemberAnswer::asked(&config.model, Some(latency));
    let result = match answer {
        Ok(resp) => {
            member.answered(&resp);
            record.deployment = Some(resp.deployment.clone());
            record.raw_answer = Some(resp.text.clone());
            score::parse_scores(batch, &resp.text).map_err(|e| {
                member.abstained(Abstention::Unparseable, &e);
                (
                    e.kind(),
                    format!("unreadable scores from model `{}`: {e}", config.model),
                )
            })
        }
        Err(e) => {
            member.abstained(Abstention::of_model_error(&e), &e);
            Err((
                "model",
                format!("scoring request to model `{}` failed: {e}", config.model),
            ))
        }
    };
    record.members.push(member);
    let outcome = match result {
        Ok(scores) => {
            record.action = Some("SCORED".into());
            record.reason = Some(
                scores
                    .iter()
                    .map(|((n, s), v)| format!("{n}:{s} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            record.outcome = format!("scored {} headlines", batch.headlines.len());
            Ok(scores)
        }
        Err((kind, message)) => {
            metrics::counter!(names::SENTIMENT_SCORE_ERRORS, "agent" => config.name.clone(), "kind" => kind)
                .increment(1);
            tracing::warn!(agent = %config.name, kind, error = %message, headlines = batch.headlines.len(), "headlines not scored; they stay pending for the next run");
            record.error = Some(message.clone());
            record.outcome = "not_scored".into();
            Err(message)
        }
    };
    record.log();
    (outcome, deps.journal.append(record))
}

fn update_index(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    now: Millis,
    scored: &[ScoredHeadline],
    report: &mut RunReport,
) -> Result<(), StoreError> {
    let half_life = u64::try_from(config.half_life.as_millis()).unwrap_or(u64::MAX);
    for symbol in config.symbols.keys() {
        let symbol = symbol.to_ascii_uppercase();
        let mut idx = deps.state.index(&symbol)?;
        let mine: Vec<&ScoredHeadline> = scored
            .iter()
            .filter(|h| h.scores.contains_key(&symbol))
            .collect();
        for h in &mine {
            idx.add(h.scores[&symbol], h.time_ms, now, half_life);
        }
        let value = idx.value_at(now, half_life);
        metrics::gauge!(names::SENTIMENT_INDEX, "symbol" => symbol.clone(), "agent" => config.name.clone())
            .set(value);
        report.index.insert(symbol.clone(), value);
        let mut changed = !mine.is_empty();
        if let Some(direction) = index::signal_due(
            idx.last_signal.as_ref(),
            value,
            config.threshold,
            config.min_move,
        ) {
            let input = signal_input(config, deps, &symbol, value, direction)?;
            if signals::offer(&deps.signals, input) {
                tracing::info!(agent = %config.name, symbol = %symbol, index = value, direction = %direction, "sentiment signal published");
                idx.last_signal = Some(LastSignal {
                    direction,
                    index: value,
                    time_ms: now,
                });
                report.signals.push((symbol.clone(), direction));
                changed = true;
            }
        }
        // Without news or a signal the stored sums stay as they are: decay is applied
        // on read, from `updated_ms`.
        if changed {
            deps.state.set_index(&symbol, &idx)?;
        }
    }
    Ok(())
}

fn signal_input(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    symbol: &str,
    value: f64,
    direction: Direction,
) -> Result<SignalInput, StoreError> {
    let recent: Vec<String> = deps
        .state
        .headlines(config.headlines_kept)?
        .into_iter()
        .filter_map(|h| {
            h.scores
                .get(symbol)
                .map(|s| format!("{} ({s:+.2})", h.title))
        })
        .take(EVIDENCE_HEADLINES)
        .collect();
    let evidence = format!("sentiment index {value:+.2}: {}", recent.join(" | "));
    Ok(SignalInput {
        source: config.name.clone(),
        symbol: symbol.to_string(),
        kind: SignalKind::Sentiment.to_string(),
        value: Decimal::try_from(value).unwrap_or_default().round_dp(4),
        direction: direction.to_string(),
        confidence: index::confidence(value, direction, config.threshold),
        evidence: evidence
            .chars()
            .take(signals::signal::MAX_EVIDENCE_CHARS)
            .collect(),
        ttl: Some(config.signal_ttl),
    })
}

/// The run's summary in the journal: the new headlines in, the index and signals out.
fn journal_summary(
    config: &SentimentAgentConfig,
    deps: &SentimentDeps,
    now: Millis,
    report: &RunReport,
) -> JournalReceipt {
    let symbols: Vec<String> = config
        .symbols
        .keys()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let mut record =
        DecisionRecord::begin(now, &config.name, "", &symbols.join(","), &config.model);
    record.action = Some("INDEX".into());
    record.reason = Some(
        report
            .index
            .iter()
            .map(|(s, v)| format!("{s} {v:+.3}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let signals: Vec<String> = report
        .signals
        .iter()
        .map(|(s, d)| format!("{s} {d}"))
        .collect();
    record.outcome = format!(
        "polled {} (not modified {}); {} new headlines, {} scored; signals: {}",
        report.polled.len(),
        report.not_modified.len(),
        report.new_headlines,
        report.scored,
        if signals.is_empty() {
            "none".to_string()
        } else {
            signals.join(", ")
        }
    );
    if !report.failures.is_empty() {
        record.error = Some(report.failures.join("; "));
    }
    record.log();
    deps.journal.append(record)
}

#[cfg(test)]
mod tests;
