//! What the journal keeps of one pipeline run ([`PipelineTrace`], the `pipeline` field of
//! its [`crate::agents::DecisionRecord`]): every stage's input and output, in order.
//!
//! Owns: the stage names and outcomes (also the labels of the stage metrics). Never:
//! decides anything; the run fills it in.

use serde::{Deserialize, Serialize};

use super::plan::Plan;

/// The five roles, in the order they run (the analysts side by side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Collector,
    LongAnalyst,
    ShortAnalyst,
    StrategyGenerator,
    Executor,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Collector,
        Stage::LongAnalyst,
        Stage::ShortAnalyst,
        Stage::StrategyGenerator,
        Stage::Executor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Collector => "collector",
            Stage::LongAnalyst => "long_analyst",
            Stage::ShortAnalyst => "short_analyst",
            Stage::StrategyGenerator => "strategy_generator",
            Stage::Executor => "executor",
        }
    }
}

/// How one stage ended (the `outcome` label of `orrery_pipeline_stages_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    /// It produced its output.
    Ok,
    /// It did not finish within its `timeout`; it was cut.
    Timeout,
    /// It failed (model error, market data read failed, order failed).
    Error,
    /// Its model answered something that is not a valid output (unreadable, wrong
    /// shape, a plan that fails its checks).
    Invalid,
}

impl StageOutcome {
    pub const ALL: [StageOutcome; 4] = [
        StageOutcome::Ok,
        StageOutcome::Timeout,
        StageOutcome::Error,
        StageOutcome::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Ok => "ok",
            StageOutcome::Timeout => "timeout",
            StageOutcome::Error => "error",
            StageOutcome::Invalid => "invalid",
        }
    }
}

/// One stage of one run, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTrace {
    pub stage: Stage,
    pub outcome: StageOutcome,
    /// Wall time the stage took, in ms.
    pub duration_ms: u64,
    /// The logical model asked (model stages).
    #[serde(default)]
    pub model: Option<String>,
    /// The deployment that answered.
    #[serde(default)]
    pub deployment: Option<String>,
    /// The exact system prompt and prompt sent (model stages), and their hash.
    #[serde(default)]
    pub system: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub prompt_sha256: String,
    /// The stage's input other than the prompt (collector: what it read; executor: the
    /// plan it acted on), as JSON.
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    /// The model's answer, byte for byte.
    #[serde(default)]
    pub raw_answer: Option<String>,
    /// What the stage produced (collector: the market context; analysts: their case;
    /// strategy generator: the plan; executor: the orders), as JSON.
    #[serde(default)]
    pub output: Option<serde_json::Value>,
    /// Why it did not produce its output.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl StageTrace {
    pub fn new(stage: Stage) -> Self {
        Self {
            stage,
            outcome: StageOutcome::Ok,
            duration_ms: 0,
            model: None,
            deployment: None,
            system: String::new(),
            prompt: String::new(),
            prompt_sha256: String::new(),
            input: None,
            raw_answer: None,
            output: None,
            error: None,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }
}

/// Everything one pipeline run did, kept in its journal record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineTrace {
    /// The stages that ran, in order (long before short; they ran side by side).
    pub stages: Vec<StageTrace>,
    /// The validated plan, once the strategy generator produced one.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// The stage that ended the run without an order, if one did.
    #[serde(default)]
    pub stopped_at: Option<Stage>,
}

impl PipelineTrace {
    pub fn stage(&self, stage: Stage) -> Option<&StageTrace> {
        self.stages.iter().find(|s| s.stage == stage)
    }
}
