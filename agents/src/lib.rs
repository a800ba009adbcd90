//! Asker and answerer agents: the question-asking protocol of `tenbits-qa`
//! deployed as `ractor` actors talking through `tenbits-messaging`.
//!
//! # How the pieces connect
//!
//! ```text
//!  asker side                                   answerer side
//!  ──────────                                   ─────────────
//!  SwarmSupervisor                              ServerHandle (serve)
//!   └─ AskerSession (one child actor per         ├─ TCP Listener / in-process channels
//!      session)                                  ├─ Service: per connection, handshake,
//!       run_remote(small, RemoteAnswerer) ──────▶│   Questions ─▶ AnswererActor ─▶ PackedBits
//!       SharedModel (small model, shared) ◀──────│
//!                                                └─ AnswererActor: one large model,
//!                                                   many sessions' questions per p_yes call
//! ```
//!
//! - [`Runtime`] is the entry point for applications: build it from a
//!   [`DeploymentConfig`] (code or TOML), then [`Runtime::ask`] problem by
//!   problem with the models loaded once.
//! - [`AnswererActor`] hosts the large model and batches the questions of
//!   all pending requests into one `p_yes` call ([`AnswererHandle`] to use
//!   it). It knows the reference answers of the deployment's task file, or
//!   writes its own solution once per problem.
//! - [`Service`] serves [`Connection`](tenbits_messaging::Connection)s for
//!   it: the handshake (protocol version, model ids, prompt version), then
//!   `Questions` frames answered by `PackedBits`, `Error` frames for bad
//!   requests, `Bye` to end, every wait bounded by [`ServiceLimits`] (and
//!   the token checked first). [`ServerHandle`] adds a TCP listener (TLS,
//!   connection cap, accept back-off: [`ListenOptions`]); [`Endpoint`] says
//!   where an asker connects.
//! - [`RemoteAnswerer`] is the asker's end: a [`tenbits_qa::Answerer`] over
//!   a connection (TCP or channels, one code path), so the synchronous
//!   session loop [`tenbits_qa::run_remote`] runs across the wire (it
//!   blocks on the runtime's handle; see its docs).
//! - [`SharedModel`] lets many sessions share one loaded small model: their
//!   concurrent `generate` and `p_yes` calls are merged into one batched
//!   call each time the model is free.
//! - [`SwarmSupervisor`] runs each session as a child actor
//!   ([`AskerSession`]): a failing, panicking or cancelled session ends
//!   alone and is reported as a [`SessionOutcome::Failed`].
//! - [`DeploymentConfig`] (TOML + `TENBITS_SECTION__KEY` environment
//!   overrides) and the runners [`serve`], [`ask`] and [`simulate`] with
//!   their reports ([`AskReport`], [`SimReport`]). Models come from a
//!   [`ModelFactory`], so tests use the fakes of `testing` (the `testing`
//!   feature).
//!
//! Accounting: [`SessionReport`] has each session's answer bits against its
//! wire bytes ([`WireStats`](tenbits_messaging::WireStats)) and per-request
//! latencies; [`AnswererStats`] counts questions, batches and batch sizes.
//! The wire carries one bit per question even when `coded = true`: the
//! range-coded payload in the transcript is what the one-way mode would
//! send, reported beside it.
//!
//! # Example
//!
//! ```no_run
//! use tenbits_agents::{ask, serve, DeploymentConfig, testing::FakeWorld};
//!
//! # fn main() -> Result<(), tenbits_agents::AgentError> {
//! // One process, channels: the answerer runs in-process.
//! let cfg = DeploymentConfig::load("config/local.toml")?;
//! let factory = FakeWorld::default().factory(); // or onnx_factory()
//! let report = ask(&cfg, factory.clone(), "What is 6 x 7?")?;
//! println!("{report}");
//!
//! // Two processes: the answerer serves TCP ...
//! let rt = tokio::runtime::Runtime::new()?;
//! let server = rt.block_on(serve(&DeploymentConfig::load("config/answerer.toml")?, factory.clone()))?;
//! println!("listening on {:?}", server.local_addr());
//! // ... and the asker (another process) connects.
//! let report = ask(&DeploymentConfig::load("config/asker.toml")?, factory, "What is 6 x 7?")?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod answerer;
pub mod cluster;
pub mod config;
mod deploy;
mod error;
mod model;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod remote;
mod runtime;
pub mod server;
pub mod swarm;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use answerer::{AnswererActor, AnswererArgs, AnswererHandle, AnswererMsg, AnswererStats};
pub use cluster::{cluster_status, ClusterConfig, ClusterNode, ClusterStatus};
pub use config::{load_tasks, DeploymentConfig, TaskSpec};
pub use deploy::{
    ask, quantile, serve, simulate, simulate_with, swarm_sessions, tcp_endpoint, AskReport,
    SimReport,
};
pub use error::AgentError;
#[cfg(feature = "onnx")]
pub use model::onnx_factory;
pub use model::{BoxedModel, ModelFactory, SharedModel};
pub use remote::RemoteAnswerer;
pub use runtime::{Runtime, RuntimeBuilder};
pub use server::{
    Endpoint, ListenOptions, ServerHandle, ServerStats, Service, ServiceLimits, TcpEndpoint,
    PROMPT_RESERVE_TOKENS,
};
pub use swarm::{
    AskerSession, SessionOutcome, SessionReport, SessionSpec, SwarmContext, SwarmHandle,
    SwarmSupervisor,
};
