//! [`Runtime`]: the embedded entry point. Load the models once, start (or
//! reach) the answerer, then run sessions and get their transcripts and
//! payload bits, configured in code or from the same TOML as the CLI
//! (which uses this type too).
//!
//! ```no_run
//! use tenbits_agents::{DeploymentConfig, Runtime};
//!
//! # fn main() -> Result<(), tenbits_agents::AgentError> {
//! // Everything in this process (the answerer behind in-process channels).
//! let mut cfg = DeploymentConfig::default();
//! cfg.asker.model = "qwen2.5-coder-0.5b".into();
//! cfg.answerer.model = "qwen2.5-coder-1.5b".into();
//! let mut runtime = Runtime::builder().config(cfg).build()?;
//! for problem in ["What is 17 + 25?", "What is 6 x 7?"] {
//!     let report = runtime.ask(problem)?;
//!     println!("{} -> {} ({} answer bits)", problem, report.transcript.answer(),
//!              report.wire.payload_bits_received);
//! }
//! runtime.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! A remote answerer is the same code with `transport.kind = "tcp"` (and
//! `[security]` for its token and TLS); an answerer behind an
//! OpenAI-compatible endpoint is `answerer.backend = "openai"`.

use std::path::Path;

use tenbits_messaging::WireStats;
use tenbits_qa::{run, run_remote, Problem, QaError, Setting};

use crate::config::{DeploymentConfig, TransportKind};
use crate::deploy::{
    reconnect_attempts, reference_for, serve_with, start_answerer, tcp_endpoint, AskReport,
};
use crate::model::{BoxedModel, ModelFactory};
use crate::remote::{NoAnswerer, RemoteAnswerer};
use crate::server::{Endpoint, ServerHandle, ServerStats};
use crate::AgentError;

/// Builds a [`Runtime`]: a configuration and, optionally, how models are
/// made (default: the registry's ONNX models).
pub struct RuntimeBuilder {
    cfg: DeploymentConfig,
    factory: Option<ModelFactory>,
}

/// Loaded models and a reachable answerer, ready for sessions.
pub struct Runtime {
    cfg: DeploymentConfig,
    tokio: tokio::runtime::Runtime,
    small: BoxedModel,
    /// QA+ in one process: the large model is here.
    large: Option<BoxedModel>,
    /// The in-process answerer (`transport.kind = "channel"`).
    server: Option<ServerHandle>,
    /// Where sessions reach the answerer (QA).
    endpoint: Option<Endpoint>,
    next_session: u64,
}

impl RuntimeBuilder {
    /// Uses `cfg` (defaults everywhere else).
    pub fn config(mut self, cfg: DeploymentConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Reads a deployment file, with `TENBITS_<SECTION>__<KEY>` overrides.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, AgentError> {
        self.cfg = DeploymentConfig::load(path)?;
        Ok(self)
    }

    /// Makes models with `factory` (fakes in tests, your own models).
    pub fn factory(mut self, factory: ModelFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Loads the small model (and, for QA+ in one process, the large one),
    /// and starts the answerer in this process or prepares its endpoint.
    pub fn build(self) -> Result<Runtime, AgentError> {
        let cfg = self.cfg;
        cfg.validate()?;
        let factory = match self.factory {
            Some(f) => f,
            #[cfg(feature = "onnx")]
            None => crate::onnx_factory(),
            #[cfg(not(feature = "onnx"))]
            None => {
                return Err(AgentError::Config(
                    "no model factory: build with the `onnx` feature or pass one".into(),
                ))
            }
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let small = factory(&cfg.asker.model, cfg.asker.threads)?;
        let local = cfg.transport.kind == TransportKind::Channel;
        let (mut large, mut server, mut endpoint) = (None, None, None);
        match cfg.protocol.setting.into() {
            Setting::Blc => {}
            Setting::QaPlus if local => {
                large = Some(factory(&cfg.answerer.model, cfg.answerer.threads)?);
            }
            Setting::QaPlus => {
                return Err(
                    QaError::Invalid("QA+ runs only with transport.kind = \"channel\"").into(),
                )
            }
            Setting::Qa if local => {
                // In-process channels: serve_with applies the limits and token.
                let handle = tokio.block_on(async {
                    serve_with(&cfg, start_answerer(&cfg, &factory, &[]).await?).await
                })?;
                endpoint = Some(handle.endpoint());
                server = Some(handle);
            }
            Setting::Qa => endpoint = Some(tcp_endpoint(&cfg)?),
        }
        Ok(Runtime {
            cfg,
            tokio,
            small,
            large,
            server,
            endpoint,
            next_session: 0,
        })
    }
}

impl Runtime {
    /// A builder with the default configuration.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            cfg: DeploymentConfig::default(),
            factory: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DeploymentConfig {
        &self.cfg
    }

    /// Where sessions reach the answerer (`None` for BLC and QA+).
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// Plays one problem: draft, questions, one bit each from the answerer,
    /// revision. Blocking; call it from outside any async runtime.
    pub fn ask(&mut self, problem: &str) -> Result<AskReport, AgentError> {
        let cfg = &self.cfg;
        let setting: Setting = cfg.protocol.setting.into();
        let config = cfg.qa_config();
        let mut problem = Problem::new(cfg.protocol.task.into(), problem);
        let session = self.next_session;
        self.next_session += 1;
        let unwired = |transcript, answerer: &str| AskReport {
            transcript,
            answerer: answerer.to_string(),
            wire: WireStats::default(),
            latencies: Vec::new(),
        };
        if let Some(large) = self.large.as_mut() {
            // QA+ with both models here: the reference from
            // `answerer.tasks`, else the large model's own solution.
            let mut config = config;
            problem.reference = reference_for(cfg, &problem.text)?;
            if problem.reference.is_none() {
                config.view.knowledge = tenbits_qa::Knowledge::OwnSolution;
            }
            let t = run(setting, &config, &mut *self.small, &mut **large, &problem)?;
            return Ok(unwired(t, &cfg.answerer.model));
        }
        let Some(endpoint) = &self.endpoint else {
            let t = run_remote(
                setting,
                &config,
                &mut *self.small,
                &mut NoAnswerer,
                &problem,
            )?;
            return Ok(unwired(t, &cfg.asker.model));
        };
        let asker_id = self.small.model_id();
        let mut remote = self
            .tokio
            .block_on(RemoteAnswerer::open(
                endpoint,
                asker_id,
                session,
                cfg.answerer.expected_id()?,
                Some(cfg.answerer_name()),
            ))?
            .with_reconnect(reconnect_attempts(cfg));
        let transcript = run_remote(setting, &config, &mut *self.small, &mut remote, &problem);
        let wire = remote.close();
        let transcript = transcript?;
        Ok(AskReport {
            transcript,
            answerer: remote.peer().name.clone(),
            wire: wire.unwrap_or_else(|_| remote.wire_stats()),
            latencies: remote.latencies().to_vec(),
        })
    }

    /// Stops the in-process answerer (if any); its final counters.
    pub fn shutdown(self) -> Option<ServerStats> {
        let grace = self.cfg.limits.shutdown_timeout();
        let stats = self
            .server
            .map(|s| self.tokio.block_on(s.shutdown_within(grace)));
        self.tokio.shutdown_timeout(grace);
        stats
    }
}
