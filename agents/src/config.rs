//! Deployment configuration: TOML files plus environment overrides.
//!
//! Every field has a default, so a file names only what it changes. An
//! environment variable `TENBITS_<SECTION>__<KEY>` overrides `[section]
//! key` (e.g. `TENBITS_ANSWERER__MODEL=qwen2.5-coder-1.5b`,
//! `TENBITS_SWARM__ASKERS=8`). Relative paths are taken from the current
//! directory; [`DeploymentConfig::resolve_paths`] rebases them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenbits_messaging::{Timeouts, TlsClient, TlsServer, Token};
use tenbits_qa::{AnswererView, Config, Knowledge, Sampling, Setting, Task};

pub use crate::cluster::ClusterConfig;
use crate::server::ServiceLimits;
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
    /// What one peer may cost the answerer: timeouts, caps, lengths.
    pub limits: LimitsConfig,
    /// Who may connect: token and TLS.
    pub security: SecurityConfig,
    /// The endpoint of `answerer.backend = "openai"`.
    pub openai: OpenAiSection,
    /// This process as a node of an answerer cluster.
    pub cluster: ClusterConfig,
}

/// `backend = "onnx" | "openai" | "cluster"`: where the answerer's model
/// runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// A registered model, here (`answerer.model`).
    #[default]
    Onnx,
    /// Any OpenAI-compatible chat-completions endpoint (`[openai]`).
    Openai,
    /// The replicas of `answerer.model` in an answerer cluster
    /// (`[cluster]`), least loaded first.
    Cluster,
}

/// `[openai]`: an OpenAI-compatible endpoint the answerer asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiSection {
    /// Base URL up to `/v1`.
    pub base_url: String,
    /// The model's name there; the answerer announces it.
    pub model: String,
    /// The variable holding the API key (never logged); unset or empty
    /// sends none.
    pub api_key_env: Option<String>,
    /// Longest wait for one response.
    pub timeout_ms: u64,
    /// Attempts after a failure of transport, 429 or 5xx.
    pub retries: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for OpenAiSection {
    fn default() -> Self {
        let d = tenbits_openai::OpenAiConfig::default();
        Self {
            base_url: d.base_url,
            model: d.model,
            api_key_env: d.api_key_env,
            timeout_ms: d.timeout.as_millis() as u64,
            retries: d.retries,
            concurrency: d.concurrency,
        }
    }
}

impl OpenAiSection {
    /// The client's configuration.
    pub fn client_config(&self) -> tenbits_openai::OpenAiConfig {
        tenbits_openai::OpenAiConfig {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            concurrency: self.concurrency.max(1),
            ..tenbits_openai::OpenAiConfig::default()
        }
    }
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
    /// The P(yes) at or above which a bit from the model is yes (0.5;
    /// calibrate another on a tuning split with `tenbits eval --methods
    /// probe` and `scripts/probe_threshold.py`).
    pub yes_threshold: f64,
    /// A task file (JSON lines) whose gold answers are the references, keyed
    /// by problem text. [`simulate`](crate::simulate) adds the swarm's tasks.
    pub tasks: Option<PathBuf>,
    /// Where the model runs: `"onnx"` (`model`, here) or `"openai"` (the
    /// endpoint of `[openai]`, whose model name is announced instead).
    pub backend: Backend,
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
            yes_threshold: tenbits_qa::DEFAULT_YES_THRESHOLD,
            tasks: None,
            backend: Backend::Onnx,
        }
    }
}

impl AnswererConfig {
    /// [`Self::id`] parsed.
    pub fn expected_id(&self) -> Result<Option<[u8; 16]>, AgentError> {
        self.id.as_deref().map(parse_model_id).transpose()
    }
}

impl DeploymentConfig {
    /// The model name the answerer announces (and an asker expects):
    /// `answerer.model`, or `openai.model` for the `openai` backend.
    pub fn answerer_name(&self) -> &str {
        match self.answerer.backend {
            Backend::Onnx | Backend::Cluster => &self.answerer.model,
            Backend::Openai => &self.openai.model,
        }
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
    /// Whether an asker whose connection drops connects again (with
    /// back-off, up to `reconnect_attempts` times) and resends the request
    /// in flight: answers are a function of the request, so the transcript
    /// is the one an unbroken connection gives. `false`: the session fails
    /// with the connection's error.
    pub reconnect: bool,
    /// Connection attempts after a drop, with `reconnect`.
    pub reconnect_attempts: u32,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            kind: TransportKind::Channel,
            listen: "127.0.0.1:7410".into(),
            connect: "127.0.0.1:7410".into(),
            reconnect: false,
            reconnect_attempts: 8,
        }
    }
}

/// `[limits]`: what one connection may cost the answerer. Times in
/// milliseconds; 0 turns a timeout off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections served at once; more get a `BUSY` error and are closed.
    pub max_connections: usize,
    /// Longest TLS handshake, token check and hello exchange.
    pub handshake_timeout_ms: u64,
    /// Longest silence between frames (an asker drafting with a slow small
    /// model is silent meanwhile, hence minutes).
    pub idle_timeout_ms: u64,
    /// Longest time from a frame's first byte to its last, and longest send.
    pub frame_timeout_ms: u64,
    /// Longest frame, in bytes.
    pub max_frame_bytes: usize,
    /// Most tokens of problem, draft and one question together; 0: the
    /// model's context less 1,024 (for the prompt and its own solution).
    pub max_prompt_tokens: usize,
    /// How long shutdown waits for open connections and the answerer.
    pub shutdown_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 600_000,
            frame_timeout_ms: 30_000,
            max_frame_bytes: tenbits_messaging::MAX_FRAME_BYTES,
            max_prompt_tokens: 0,
            shutdown_timeout_ms: 2_000,
        }
    }
}

impl LimitsConfig {
    fn ms(ms: u64) -> Option<Duration> {
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// How long shutdown waits.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// The connection timeouts.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: Self::ms(self.idle_timeout_ms),
            frame: Self::ms(self.frame_timeout_ms),
        }
    }

    /// The server's [`ServiceLimits`] with `token`.
    pub fn service_limits(&self, token: Option<Token>) -> ServiceLimits {
        ServiceLimits {
            handshake: Self::ms(self.handshake_timeout_ms),
            timeouts: self.timeouts(),
            max_frame_bytes: self.max_frame_bytes,
            max_prompt_tokens: (self.max_prompt_tokens > 0).then_some(self.max_prompt_tokens),
            token,
        }
    }
}

/// `[security]`: the shared token and TLS, for both sides.
///
/// The token is read from `token_file` or the environment variable named
/// by `token_env`, never from this file, and is never logged. A server
/// that listens beyond loopback without a token is refused unless
/// `allow_remote_without_token` says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// A file holding the token (surrounding whitespace ignored).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token (used if set and
    /// `token_file` is not).
    pub token_env: Option<String>,
    /// Serve (or connect) without a token on a non-loopback address.
    pub allow_remote_without_token: bool,
    /// Server: its certificate chain (PEM); with `tls_key`, turns TLS on.
    pub tls_cert: Option<PathBuf>,
    /// Server: its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Server: accept only clients with a certificate signed by this CA.
    pub tls_client_ca: Option<PathBuf>,
    /// Client: the CA (PEM) to trust; turns TLS on for the asker.
    pub tls_ca: Option<PathBuf>,
    /// Client: the name the server's certificate must carry (default: the
    /// host of `transport.connect`).
    pub tls_server_name: Option<String>,
    /// Client: its certificate chain (PEM), for servers that ask for one.
    pub tls_client_cert: Option<PathBuf>,
    /// Client: its private key (PEM).
    pub tls_client_key: Option<PathBuf>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            token_file: None,
            token_env: Some("TENBITS_TOKEN".into()),
            allow_remote_without_token: false,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_ca: None,
            tls_server_name: None,
            tls_client_cert: None,
            tls_client_key: None,
        }
    }
}

impl SecurityConfig {
    /// The token, from `token_file` or else `token_env`; an error for an
    /// unreadable or empty token file.
    pub fn token(&self) -> Result<Option<Token>, AgentError> {
        Ok(read_secret(
            self.token_file.as_deref(),
            self.token_env.as_deref(),
            "token",
        )?
        .map(Token::new))
    }

    /// The token a server listening on `listen` requires; an error when
    /// there is none and `listen` reaches beyond loopback, unless
    /// `allow_remote_without_token` says so.
    pub fn server_token(&self, listen: &str) -> Result<Option<Token>, AgentError> {
        let token = self.token()?;
        if token.is_none() && !is_loopback(listen) && !self.allow_remote_without_token {
            return Err(AgentError::Config(format!(
                "refusing to listen on {listen} without a token: anyone who can reach it would get answers. \
                 Set [security] token_file (or the TENBITS_TOKEN variable), listen on 127.0.0.1, \
                 or set [security] allow_remote_without_token = true"
            )));
        }
        Ok(token)
    }

    /// The server's TLS, if `tls_cert` and `tls_key` are set.
    pub fn tls_server(&self) -> Result<Option<TlsServer>, AgentError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(TlsServer::from_pem_files(
                cert,
                key,
                self.tls_client_ca.as_deref(),
            )?)),
            (None, None) => Ok(None),
            _ => Err(AgentError::Config(
                "security.tls_cert and security.tls_key go together".into(),
            )),
        }
    }

    /// The asker's TLS, if `tls_ca` is set, for a server at `connect`.
    pub fn tls_client(&self, connect: &str) -> Result<Option<TlsClient>, AgentError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let host = match &self.tls_server_name {
            Some(name) => name.clone(),
            None => host_of(connect).to_string(),
        };
        let identity = match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(AgentError::Config(
                    "security.tls_client_cert and security.tls_client_key go together".into(),
                ))
            }
        };
        Ok(Some(TlsClient::from_pem_files(ca, &host, identity)?))
    }
}

/// The host part of `host:port` (`[v6]:port` unbracketed).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A secret (token, cookie) from `file`, else from the variable `env`,
/// without surrounding whitespace; `None` when neither gives one. An
/// unreadable or empty file is an error naming `what` it should hold.
pub(crate) fn read_secret(
    file: Option<&Path>,
    env: Option<&str>,
    what: &str,
) -> Result<Option<String>, AgentError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AgentError::Config(format!(
                "cannot read the {what} file {}: {e}",
                path.display()
            ))
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(AgentError::Config(format!(
                "the {what} file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(secret.to_string()));
    }
    Ok(env
        .and_then(|name| std::env::var(name).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Whether a listen address is loopback only (`127.0.0.0/8`, `::1`,
/// `localhost`).
pub fn is_loopback(addr: &str) -> bool {
    let host = host_of(addr);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
            // TENBITS_CLUSTER__SEEDS=host:port,host:port
            .list_separator(",")
            .with_list_parse_key("cluster.seeds")
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
        if !tenbits_qa::valid_yes_threshold(self.answerer.yes_threshold) {
            return bad("answerer.yes_threshold must be between 0 and 1 (0.5 by default)");
        }
        if self.asker.count == 0 || self.swarm.askers == 0 {
            return bad("asker.count and swarm.askers must be at least 1");
        }
        if self.protocol.questions == 0 || self.protocol.questions > MAX_QUESTIONS {
            return bad("protocol.questions must be between 1 and 1024");
        }
        self.answerer.expected_id()?;
        let l = &self.limits;
        if l.max_connections == 0 {
            return bad("limits.max_connections must be at least 1");
        }
        if l.max_frame_bytes < 1024 {
            return bad("limits.max_frame_bytes must be at least 1024");
        }
        Ok(())
    }

    /// Makes relative paths (task files) relative to `base` instead of the
    /// current directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.swarm.tasks.is_relative() {
            self.swarm.tasks = base.join(&self.swarm.tasks);
        }
        let s = &mut self.security;
        for path in [
            &mut self.answerer.tasks,
            &mut s.token_file,
            &mut s.tls_cert,
            &mut s.tls_key,
            &mut s.tls_client_ca,
            &mut s.tls_ca,
            &mut s.tls_client_cert,
            &mut s.tls_client_key,
        ] {
            if let Some(p) = path.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
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
                yes_threshold: self.answerer.yes_threshold,
            },
            code_answers: p.coded,
            answer_sampling: sampling.clone(),
            question_sampling: sampling,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_trimmed_from_its_file_else_its_variable() {
        let dir = std::env::temp_dir().join(format!("tenbits-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        // The variable is this test's own.
        std::env::set_var("TENBITS_TEST_SECRET", " from-env ");
        let env = Some("TENBITS_TEST_SECRET");
        assert_eq!(
            read_secret(Some(&file), env, "token").unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            read_secret(None, env, "token").unwrap().as_deref(),
            Some("from-env")
        );
        assert_eq!(read_secret(None, None, "token").unwrap(), None);

        std::fs::write(&file, " \n").unwrap();
        let err = read_secret(Some(&file), env, "cluster cookie")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the cluster cookie file") && err.contains("is empty"),
            "{err}"
        );
        let gone = dir.join("missing");
        let err = read_secret(Some(&gone), env, "token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read the token file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
