//! Deployment configuration: TOML files plus environment overrides.
//!
//! Every field has a default, so a file names only what it changes. An
//! environment variable `TENBITS_<SECTION>__<KEY>` overrides `[section]
//! key` (e.g. `TENBITS_ANSWERER__MODEL=qwen2.5-coder-1.5b`,
//! `TENBITS_SWARM__ASKERS=8`). Relative paths are taken from the current
//! directory; [`DeploymentConfig::resolve_paths`] rebases them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tenbits_qa::{AnswererView, Config, Knowledge, Sampling, Setting, Task};

use crate::AgentError;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "TENBITS";
/// Separator of sections and keys in environment overrides.
pub const ENV_SEPARATOR: &str = "__";

/// A whole deployment: the asker, the answerer, the protocol between them,
/// the transport, and (for [`simulate`](crate::simulate)) the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploymentConfig {
    /// The small model's side.
    pub asker: AskerConfig,
    /// The large model's side.
    pub answerer: AnswererConfig,
    /// The session.
    pub protocol: ProtocolConfig,
    /// How the sides talk.
    pub transport: TransportConfig,
    /// Many askers against one answerer.
    pub swarm: SwarmConfig,
}

/// `[asker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AskerConfig {
    /// Registry name of the small model (`crates/inference/models.toml`).
    pub model: String,
    /// Intra-op threads per loaded copy.
    pub threads: usize,
    /// Loaded copies of the small model; sessions share them round-robin,
    /// one call at a time per copy (see [`SharedModel`](crate::SharedModel)).
    pub count: usize,
}

impl Default for AskerConfig {
    fn default() -> Self {
        Self {
            model: "smollm2-135m".into(),
            threads: 2,
            count: 1,
        }
    }
}

/// `[answerer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswererConfig {
    /// Registry name of the large model. The server announces it in its
    /// hello; an asker refuses a server that runs another.
    pub model: String,
    /// The large model's [`model_id`](tenbits_qa::ChatModel::model_id) as 32
    /// hex digits, if the asker should insist on the exact model (checked in
    /// the handshake); unset accepts any model of that name.
    pub id: Option<String>,
    /// Intra-op threads.
    pub threads: usize,
    /// Questions that trigger a batch at once.
    pub max_batch: usize,
    /// Longest wait (ms) of a pending question before its batch runs.
    pub max_wait_ms: u64,
    /// What the answerer knows: `"reference"` (a problem without one is
    /// refused), `"own-solution"`, or `"reference-else-own"` (the
    /// reference where the task file has one, else its own solution).
    pub knowledge: Knowledge,
    /// Decide claims about the final answer ("Is the answer 39?") by
    /// comparing them with the final answer it knows, not by P(yes).
    pub checks_claims: bool,
    /// A task file (JSON lines) whose gold answers are the references, keyed
    /// by problem text. [`simulate`](crate::simulate) adds the swarm's tasks.
    pub tasks: Option<PathBuf>,
}

impl Default for AnswererConfig {
    fn default() -> Self {
        Self {
            model: "qwen2.5-coder-0.5b".into(),
            id: None,
            threads: 2,
            max_batch: 32,
            max_wait_ms: 20,
            knowledge: Knowledge::ReferenceElseOwn,
            checks_claims: false,
            tasks: None,
        }
    }
}

impl AnswererConfig {
    /// [`Self::id`] parsed.
    pub fn expected_id(&self) -> Result<Option<[u8; 16]>, AgentError> {
        self.id.as_deref().map(parse_model_id).transpose()
    }
}

/// Parses 32 hex digits into a model id.
pub fn parse_model_id(hex: &str) -> Result<[u8; 16], AgentError> {
    let bad = || AgentError::Config(format!("model id `{hex}` is not 32 hex digits"));
    let hex = hex.trim();
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(id)
}

/// `setting = "qa" | "blc" | "qa+"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingName {
    /// The small model asks, the large one answers.
    #[serde(rename = "qa")]
    Qa,
    /// The small model asks and answers itself (no answerer consulted).
    #[serde(rename = "blc")]
    Blc,
    /// The large model writes the questions too: needs both models in one
    /// process ([`tenbits_qa::run`]); refused across a wire.
    #[serde(rename = "qa+")]
    QaPlus,
}

impl From<SettingName> for Setting {
    fn from(s: SettingName) -> Self {
        match s {
            SettingName::Qa => Setting::Qa,
            SettingName::Blc => Setting::Blc,
            SettingName::QaPlus => Setting::QaPlus,
        }
    }
}

/// `task = "short" | "mc" | "code"` (also in task files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskName {
    /// A number, word or short phrase.
    #[serde(alias = "short-answer")]
    Short,
    /// One lettered option.
    #[serde(alias = "multiple-choice")]
    Mc,
    /// A program.
    Code,
}

impl From<TaskName> for Task {
    fn from(t: TaskName) -> Self {
        match t {
            TaskName::Short => Task::ShortAnswer,
            TaskName::Mc => Task::MultipleChoice,
            TaskName::Code => Task::Code,
        }
    }
}

/// `[protocol]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Who plays which part.
    pub setting: SettingName,
    /// Questions per round.
    pub questions: usize,
    /// Rounds, at most.
    pub rounds: usize,
    /// Accept/reject verdict before each round.
    pub iterative: bool,
    /// Whether the answerer sees the asker's current answer.
    pub sees_answer: bool,
    /// Whether the asker predicts the bits and the transcript's payload is
    /// range-coded under the predictions (the wire still carries one bit
    /// per question; see the crate docs).
    pub coded: bool,
    /// Token limit of drafts, revisions, own solutions and question lists.
    pub max_tokens: usize,
    /// Kind of the problems given to [`ask`](crate::ask).
    pub task: TaskName,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            setting: SettingName::Qa,
            questions: 10,
            rounds: 1,
            iterative: false,
            sees_answer: true,
            coded: true,
            max_tokens: 512,
            task: TaskName::Short,
        }
    }
}

/// `kind = "channel" | "tcp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// Everything in one process, over in-process channels.
    Channel,
    /// TCP.
    Tcp,
}

/// `[transport]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Channels (one process) or TCP.
    pub kind: TransportKind,
    /// Where a server listens (port 0: any free port).
    pub listen: String,
    /// Where an asker connects.
    pub connect: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            kind: TransportKind::Channel,
            listen: "127.0.0.1:7410".into(),
            connect: "127.0.0.1:7410".into(),
        }
    }
}

/// `[swarm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Sessions running at once.
    pub askers: usize,
    /// The task file (JSON lines, see [`TaskSpec`]).
    pub tasks: PathBuf,
    /// How many times the task list is played.
    pub repeat: usize,
    /// Whether [`simulate`](crate::simulate) starts the answerer itself (on
    /// `transport.listen` for TCP); `false` connects to `transport.connect`.
    pub spawn_answerer: bool,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            askers: 32,
            tasks: PathBuf::from("config/tasks/arith.jsonl"),
            repeat: 1,
            spawn_answerer: true,
        }
    }
}

impl DeploymentConfig {
    /// Reads `path` (TOML) and applies the process's `TENBITS_*`
    /// environment overrides.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AgentError> {
        Self::load_with_env(path, None)
    }

    /// As [`Self::load`], with the overrides taken from `env` instead of the
    /// process environment when given (keys as environment variable names).
    /// Only variables of the form `TENBITS_<SECTION>__<KEY>` count.
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, AgentError> {
        let path = path.as_ref();
        // Only `TENBITS_<SECTION>__<KEY>`: other TENBITS_ variables (the
        // model cache, logging) are not deployment settings.
        let prefix = format!("{ENV_PREFIX}_");
        let vars: HashMap<String, String> = env
            .unwrap_or_else(|| std::env::vars().collect())
            .into_iter()
            .filter(|(k, _)| {
                k.to_ascii_uppercase()
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
            })
            .collect();
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(vars));
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(env)
            .build()
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        let cfg: Self = built
            .try_deserialize()
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (no environment).
    pub fn from_toml(text: &str) -> Result<Self, AgentError> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let cfg: Self = built
            .try_deserialize()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), AgentError> {
        let bad = |m: &str| Err(AgentError::Config(m.to_string()));
        if self.answerer.max_batch == 0 {
            return bad("answerer.max_batch must be at least 1");
        }
        if self.asker.count == 0 || self.swarm.askers == 0 {
            return bad("asker.count and swarm.askers must be at least 1");
        }
        if self.protocol.questions == 0 || self.protocol.questions > MAX_QUESTIONS {
            return bad("protocol.questions must be between 1 and 1024");
        }
        self.answerer.expected_id()?;
        Ok(())
    }

    /// Makes relative paths (task files) relative to `base` instead of the
    /// current directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.swarm.tasks.is_relative() {
            self.swarm.tasks = base.join(&self.swarm.tasks);
        }
        if let Some(t) = self.answerer.tasks.as_mut().filter(|t| t.is_relative()) {
            *t = base.join(&*t);
        }
    }

    /// The protocol's [`Config`]: questions, rounds, verdicts, view, coding
    /// and token limits (greedy sampling).
    pub fn qa_config(&self) -> Config {
        let p = &self.protocol;
        let sampling = Sampling {
            max_tokens: p.max_tokens,
            ..Sampling::default()
        };
        Config {
            questions: p.questions,
            rounds: p.rounds,
            iterative: p.iterative,
            view: AnswererView {
                knowledge: self.answerer.knowledge,
                sees_answer: p.sees_answer,
                checks_claims: self.answerer.checks_claims,
            },
            code_answers: p.coded,
            answer_sampling: sampling.clone(),
            question_sampling: sampling,
        }
    }

    /// Sampling of the answerer's own solutions.
    pub fn solution_sampling(&self) -> Sampling {
        self.qa_config().answer_sampling
    }
}

/// Most questions one request may carry.
pub const MAX_QUESTIONS: usize = 1024;

/// One line of a task file:
/// `{"task":"short","problem":"What is 6 x 7?","answer":"42"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Kind of problem.
    pub task: TaskName,
    /// The problem statement.
    pub problem: String,
    /// The gold answer, if known: the answerer's reference and the grader's.
    #[serde(default)]
    pub answer: Option<String>,
}

/// Reads a task file: one JSON object per line; blank lines and lines
/// starting with `#` or `//` are skipped.
pub fn load_tasks(path: &Path) -> Result<Vec<TaskSpec>, AgentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AgentError::Config(format!("cannot read {}: {e}", path.display())))?;
    parse_tasks(&text).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))
}

/// Parses task file text (see [`load_tasks`]).
pub fn parse_tasks(text: &str) -> Result<Vec<TaskSpec>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !(l.is_empty() || l.starts_with('#') || l.starts_with("//"))
        })
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
