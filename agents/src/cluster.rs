//! An answerer cluster on `ractor_cluster`: answerer nodes register in a
//! process group per model, and routers spread sessions over them.
//!
//! ```text
//!  asker side (router node)                       answerer nodes
//!  ────────────────────────                       ──────────────
//!  Service ─▶ AnswererHandle ─▶ ClusterRouter ─┬─▶ NodeAnswerer ─▶ Service ─▶ AnswererActor
//!             (AnswererMsg, as for a            ├─▶ NodeAnswerer ─▶ ...        (node 2)
//!              local answerer)                  └─▶ NodeAnswerer ─▶ ...        (node 3)
//!                    least pending questions;   process group "tenbits/answerer/<model>"
//!                    a lost node's requests go   synchronized by ractor_cluster
//!                    to another replica
//! ```
//!
//! - [`ClusterNode`] is this process's `ractor_cluster` node: a
//!   [`NodeServer`] with the shared cookie, listening on `[cluster] listen`,
//!   connected to the `seeds` (and, transitively, to their peers), and
//!   reconnecting to a seed that went away.
//! - [`ClusterNode::serve_answerer`] puts a [`NodeAnswerer`] in front of a
//!   local [`Service`]: it joins the model's group and answers requests
//!   from any node with the same checks and answerer as a TCP session.
//! - [`ClusterNode::router`] returns an [`AnswererHandle`] whose actor is a
//!   [`ClusterRouter`], so a [`Service`] (TCP, or in-process for askers
//!   that are cluster nodes themselves) serves cluster answers exactly as
//!   it serves a local model's.
//! - [`cluster_status`] joins briefly and lists nodes, models and load
//!   (`tenbits cluster status`).
//!
//! Answers are a function of the request and the model, so a request whose
//! replica vanished (its node session closed, or no reply within
//! `request_timeout_ms`) is sent again to another replica of the same model
//! id, and the session's transcript is the one an unbroken run gives.
//!
//! Architecture Invariant: the cluster is a transport for
//! [`AnswerRequest`]s; it runs no protocol logic. Everything a session
//! sees comes from a [`Service`] on the node that answers.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage, RactorClusterMessage};
use serde::{Deserialize, Serialize};
use tenbits_qa::{Answer, AnswerRequest};

use crate::answerer::{AnswerFailure, AnswererHandle, AnswererMsg, AnswererStats};
use crate::config::SecurityConfig;
use crate::server::Service;
use crate::AgentError;

/// Process groups of answerers are named this, then the model's name.
pub const GROUP_PREFIX: &str = "tenbits/answerer/";

/// The process group of answerers of `model`.
pub fn group_of(model: &str) -> String {
    format!("{GROUP_PREFIX}{model}")
}

/// `[cluster]`: this process as a node of an answerer cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Join a cluster: `serve` registers its answerer there (an answerer
    /// node). Implied by `answerer.backend = "cluster"` (a router node).
    pub enabled: bool,
    /// This node's name; unset: `tenbits-<process id>`.
    pub node_name: Option<String>,
    /// Where this node listens for other nodes (an IP address and a
    /// non-zero port).
    pub listen: String,
    /// The host other nodes reach this one at; unset: `listen`'s.
    pub advertise: Option<String>,
    /// Nodes to join (`host:port`); this node connects to each, and to
    /// their peers, and reconnects to any that goes away.
    pub seeds: Vec<String>,
    /// The variable holding the shared cookie (never logged).
    pub cookie_env: Option<String>,
    /// A file holding the shared cookie; wins over `cookie_env`.
    pub cookie_file: Option<PathBuf>,
    /// TLS between nodes, with `[security]`'s certificate, key and CA.
    /// ractor_cluster opens transitive connections without TLS, so with
    /// TLS a node joins only the nodes in its `seeds`.
    pub tls: bool,
    /// Longest wait for one replica's answers before the request goes to
    /// another (answering includes writing own solutions: minutes on a
    /// large model).
    pub request_timeout_ms: u64,
    /// How long a router waits for a first answerer of its model.
    pub join_timeout_ms: u64,
    /// How long a request waits for a replica when none is reachable.
    pub failover_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_name: None,
            listen: "127.0.0.1:7420".into(),
            advertise: None,
            seeds: Vec::new(),
            cookie_env: Some("TENBITS_CLUSTER_COOKIE".into()),
            cookie_file: None,
            tls: false,
            request_timeout_ms: 300_000,
            join_timeout_ms: 10_000,
            failover_timeout_ms: 30_000,
        }
    }
}

impl ClusterConfig {
    /// The shared cookie, from `cookie_file` or `cookie_env`; a cluster
    /// without one is refused (anyone reaching a node could join).
    pub fn cookie(&self) -> Result<String, AgentError> {
        crate::config::read_secret(
            self.cookie_file.as_deref(),
            self.cookie_env.as_deref(),
            "cluster cookie",
        )?
        .ok_or_else(|| {
            AgentError::Config(format!(
                "a cluster needs a shared cookie: set {} (the same on every node) or [cluster] cookie_file",
                self.cookie_env.as_deref().unwrap_or("[cluster] cookie_env")
            ))
        })
    }

    /// This node's name.
    pub fn name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(|| format!("tenbits-{}", std::process::id()))
    }

    fn listen_addr(&self) -> Result<SocketAddr, AgentError> {
        let addr: SocketAddr = self.listen.parse().map_err(|_| {
            AgentError::Config(format!(
                "[cluster] listen = {:?} is not an IP address and port (like 127.0.0.1:7420)",
                self.listen
            ))
        })?;
        if addr.port() == 0 {
            return Err(AgentError::Config(
                "[cluster] listen needs a port other than 0: peers connect to the port it names"
                    .into(),
            ));
        }
        Ok(addr)
    }
}

/// Messages of a [`NodeAnswerer`]; serialized between nodes (JSON inside,
/// so a malformed message is an error reply, not a panic).
#[derive(RactorClusterMessage)]
pub enum NodeAnswererMsg {
    /// An [`AnswerRequest`] as JSON; the reply is a [`RemoteReply`] as JSON.
    #[rpc]
    Answer(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// The replica's [`ReplicaStatus`] as JSON.
    #[rpc]
    Describe(RpcReplyPort<Vec<u8>>),
}

/// What a replica answers: the answers, or why it could not (a model
/// error, a refused request); not retried elsewhere.
type RemoteReply = Result<Vec<Answer>, String>;

/// What a replica says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its node's name.
    pub node: String,
    /// Its model's name.
    pub model: String,
    /// Its model's id, 32 hex digits.
    pub model_id: String,
    /// Questions received and not yet answered, from every router.
    pub pending_questions: u64,
    /// Requests answered since it started.
    pub requests: u64,
    /// Questions answered since it started.
    pub questions: u64,
    /// The model's `p_yes` calls.
    pub batches: u64,
    /// Requests that failed.
    pub failed_requests: u64,
}

/// Serves a [`Service`]'s answerer to the cluster (one per answerer node).
pub struct NodeAnswerer;

/// A [`NodeAnswerer`]'s state.
pub struct NodeAnswererState {
    service: Service,
    node: String,
    pending: Arc<AtomicU64>,
}

impl Actor for NodeAnswerer {
    type Msg = NodeAnswererMsg;
    type State = NodeAnswererState;
    type Arguments = (Service, String);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (service, node): (Service, String),
    ) -> Result<Self::State, ActorProcessingErr> {
        let group = group_of(service.answerer().model_name());
        ractor::pg::join(group, vec![myself.get_cell()]);
        Ok(NodeAnswererState {
            service,
            node,
            pending: Arc::new(AtomicU64::new(0)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Each request on its own task: requests of many routers wait in
        // the answerer's queue together and share its batches.
        let service = state.service.clone();
        let pending = state.pending.clone();
        match message {
            NodeAnswererMsg::Answer(bytes, reply) => {
                tokio::spawn(async move {
                    let out: RemoteReply = match serde_json::from_slice::<AnswerRequest>(&bytes) {
                        Err(e) => Err(format!("malformed request from the cluster: {e}")),
                        Ok(request) => {
                            let n = request.questions.len() as u64;
                            pending.fetch_add(n, Relaxed);
                            let out = match service.check_length(&request).await {
                                Err(e) => Err(e),
                                Ok(()) => service
                                    .answerer()
                                    .answer(request)
                                    .await
                                    .map_err(|e| e.to_string()),
                            };
                            pending.fetch_sub(n, Relaxed);
                            out
                        }
                    };
                    let _ = reply.send(serde_json::to_vec(&out).unwrap_or_default());
                });
            }
            NodeAnswererMsg::Describe(reply) => {
                let node = state.node.clone();
                tokio::spawn(async move {
                    let answerer = service.answerer();
                    // The answerer replies between batches; a long batch
                    // leaves the counters at zero rather than stall status.
                    let stats = answerer
                        .stats_within(Some(Duration::from_secs(2)))
                        .await
                        .unwrap_or_default();
                    let status = ReplicaStatus {
                        node,
                        model: answerer.model_name().to_string(),
                        model_id: hex(&answerer.model_id()),
                        pending_questions: pending.load(Relaxed),
                        requests: stats.requests,
                        questions: stats.questions,
                        batches: stats.batches,
                        failed_requests: stats.failed_requests,
                    };
                    let _ = reply.send(serde_json::to_vec(&status).unwrap_or_default());
                });
            }
        }
        Ok(())
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A replica's status by RPC, within `limit`.
async fn describe(actor: &ActorRef<NodeAnswererMsg>, limit: Duration) -> Option<ReplicaStatus> {
    match actor.call(NodeAnswererMsg::Describe, Some(limit)).await {
        Ok(CallResult::Success(bytes)) => serde_json::from_slice(&bytes).ok(),
        _ => None,
    }
}

/// This process as a node of the cluster.
pub struct ClusterNode {
    server: ActorRef<NodeServerMessage>,
    name: String,
    config: ClusterConfig,
    reconnect: tokio::task::JoinHandle<()>,
    answerer: Mutex<Option<ActorRef<NodeAnswererMsg>>>,
}

impl ClusterNode {
    /// Starts the node: listens, joins the seeds, and keeps rejoining any
    /// seed that goes away.
    pub async fn start(
        config: &ClusterConfig,
        security: &SecurityConfig,
    ) -> Result<Arc<Self>, AgentError> {
        let cookie = config.cookie()?;
        let listen = config.listen_addr()?;
        let name = config.name();
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| listen.ip().to_string());
        let (encryption, mode) = match config.tls {
            false => (None, ractor_cluster::node::NodeConnectionMode::Transitive),
            true => {
                let tls = security.tls_server()?.ok_or_else(|| {
                    AgentError::Config(
                        "[cluster] tls = true needs [security] tls_cert and tls_key".into(),
                    )
                })?;
                (
                    Some(IncomingEncryptionMode::Tls(tls.acceptor().clone())),
                    ractor_cluster::node::NodeConnectionMode::Isolated,
                )
            }
        };
        // Bind first, so a taken port is this error, not a dead listener
        // actor later.
        drop(std::net::TcpListener::bind(listen).map_err(|e| {
            AgentError::Config(format!("[cluster] cannot listen on {listen}: {e}"))
        })?);
        let node = NodeServer::new(
            listen.port(),
            cookie,
            name.clone(),
            advertise,
            encryption,
            Some(mode),
        )
        .with_listen_addr(listen.ip());
        let (server, _join) = Actor::spawn(None, node, ())
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the cluster node: {e}")))?;
        let seeds = resolve_seeds(&config.seeds, listen, security, config.tls)?;
        let reconnect = tokio::spawn(keep_joined(server.clone(), seeds));
        tracing::info!(
            "cluster node {name} listening on {listen} ({}), seeds: {}",
            if config.tls { "TLS" } else { "plain TCP" },
            if config.seeds.is_empty() {
                "none".to_string()
            } else {
                config.seeds.join(", ")
            }
        );
        Ok(Arc::new(Self {
            server,
            name,
            config: config.clone(),
            reconnect,
            answerer: Mutex::new(None),
        }))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Serves `service`'s answerer to the cluster, in the group of its
    /// model.
    pub async fn serve_answerer(&self, service: Service) -> Result<(), AgentError> {
        let model = service.answerer().model_name().to_string();
        let (actor, _join) = Actor::spawn(None, NodeAnswerer, (service, self.name.clone()))
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the cluster answerer: {e}")))?;
        tracing::info!("cluster node {} answers for {model}", self.name);
        *self.answerer.lock().unwrap() = Some(actor);
        Ok(())
    }

    /// An answerer that routes to the cluster's replicas of `model`, once
    /// one has joined (within `join_timeout_ms`). With `expect_id`, only
    /// replicas of that exact model are used.
    pub async fn router(
        self: &Arc<Self>,
        model: &str,
        expect_id: Option<[u8; 16]>,
    ) -> Result<AnswererHandle, AgentError> {
        let group = group_of(model);
        let join_timeout = Duration::from_millis(self.config.join_timeout_ms);
        let start = Instant::now();
        let first = loop {
            let mut found = None;
            for cell in ractor::pg::get_members(&group) {
                let actor = ActorRef::<NodeAnswererMsg>::from(cell);
                if let Some(s) = describe(&actor, Duration::from_secs(2)).await {
                    if expect_id.is_none_or(|id| hex(&id) == s.model_id) {
                        found = Some(s);
                        break;
                    }
                }
            }
            if let Some(s) = found {
                break s;
            }
            if start.elapsed() > join_timeout {
                return Err(AgentError::Handshake(format!(
                    "no answerer of {model} joined the cluster within {:.0} s: start one with \
                     `tenbits serve` and [cluster] enabled = true, and check [cluster] seeds and \
                     the cookie (both sides must use the same)",
                    join_timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Let the other replicas join too (nodes found through the seeds
        // connect a moment later), so the first sessions spread as well:
        // until the group has not grown for half a second.
        let (mut members, mut since) = (0, Instant::now());
        while start.elapsed() < join_timeout && since.elapsed() < Duration::from_millis(500) {
            let now = ractor::pg::get_members(&group).len();
            if now != members {
                (members, since) = (now, Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let model_id = crate::config::parse_model_id(&first.model_id)?;
        let shared = Arc::new(RouterShared {
            group,
            model: model.to_string(),
            model_id: first.model_id.clone(),
            replicas: Mutex::new(HashMap::new()),
            silent: Mutex::new(HashMap::new()),
            turn: AtomicU64::new(0),
            request_timeout: Duration::from_millis(self.config.request_timeout_ms.max(1)),
            failover_timeout: Duration::from_millis(self.config.failover_timeout_ms),
            stats: Mutex::new(AnswererStats::default()),
        });
        let (actor, _join) = Actor::spawn(None, ClusterRouter, (shared, self.clone()))
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the cluster router: {e}")))?;
        tracing::info!(
            "routing {model} to the cluster (first replica on {})",
            first.node
        );
        Ok(AnswererHandle::from_actor(
            actor,
            model_id,
            model.to_string(),
            None,
        ))
    }

    /// The nodes this one is connected to: name and address.
    pub async fn peers(&self) -> Vec<(String, String)> {
        let sessions =
            ractor::call_t!(self.server, NodeServerMessage::GetSessions, 2_000).unwrap_or_default();
        let mut peers: Vec<(String, String)> = sessions
            .into_values()
            .filter_map(|s| {
                let name = s.peer_name?;
                Some((name.name, name.connection_string))
            })
            .collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// Leaves the cluster: the answerer leaves its group and every
    /// connection closes, so routers elsewhere move on.
    pub fn stop(&self) {
        self.reconnect.abort();
        if let Some(a) = self.answerer.lock().unwrap().take() {
            a.stop(None);
        }
        self.server.stop(None);
        // The other nodes' actors stay in this process's groups until
        // their sessions notice; a node stopping leaves none behind (one
        // node per process: they are all its peers').
        for group in ractor::pg::which_groups() {
            let remote: Vec<ractor::ActorCell> = ractor::pg::get_members(&group)
                .into_iter()
                .filter(|c| !c.get_id().is_local())
                .collect();
            for cell in &remote {
                cell.stop(None);
            }
            if !remote.is_empty() {
                ractor::pg::leave(group, remote);
            }
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A seed and how to connect to it.
struct Seed {
    text: String,
    addrs: Vec<SocketAddr>,
    tls: Option<tenbits_messaging::TlsClient>,
}

fn resolve_seeds(
    seeds: &[String],
    own: SocketAddr,
    security: &SecurityConfig,
    tls: bool,
) -> Result<Vec<Seed>, AgentError> {
    let mut out = Vec::new();
    for text in seeds.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let addrs: Vec<SocketAddr> = text
            .to_socket_addrs()
            .map_err(|e| AgentError::Config(format!("[cluster] seed {text:?}: {e}")))?
            .collect();
        if addrs.contains(&own) {
            continue;
        }
        let tls = match tls {
            false => None,
            true => Some(security.tls_client(text)?.ok_or_else(|| {
                AgentError::Config("[cluster] tls = true needs [security] tls_ca".into())
            })?),
        };
        out.push(Seed {
            text: text.to_string(),
            addrs,
            tls,
        });
    }
    Ok(out)
}

/// Connects to every seed this node has no session with, again and again
/// with back-off (0.2 s doubling to 5 s), so a seed that restarts is
/// rejoined.
async fn keep_joined(server: ActorRef<NodeServerMessage>, seeds: Vec<Seed>) {
    let mut wait: Vec<Duration> = vec![Duration::ZERO; seeds.len()];
    let mut next: Vec<Instant> = vec![Instant::now(); seeds.len()];
    loop {
        let sessions = match ractor::call_t!(server, NodeServerMessage::GetSessions, 2_000) {
            Ok(s) => s,
            Err(_) => return, // the node stopped
        };
        let connected: HashSet<String> = sessions
            .values()
            .flat_map(|s| {
                let mut names = vec![s.peer_addr.clone()];
                if let Some(n) = &s.peer_name {
                    names.push(n.connection_string.clone());
                }
                names
            })
            .collect();
        for (i, seed) in seeds.iter().enumerate() {
            let joined = connected.contains(&seed.text)
                || seed
                    .addrs
                    .iter()
                    .any(|a| connected.contains(&a.to_string()));
            if joined {
                wait[i] = Duration::ZERO;
                continue;
            }
            if Instant::now() < next[i] {
                continue;
            }
            let result = match &seed.tls {
                None => ractor_cluster::client_connect(&server, seed.addrs.as_slice())
                    .await
                    .map_err(|e| e.to_string()),
                Some(tls) => ractor_cluster::client_connect_enc(
                    &server,
                    seed.addrs.as_slice(),
                    tls.connector().clone(),
                    tls.server_name().clone(),
                )
                .await
                .map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                tracing::debug!("cluster seed {} unreachable: {e}", seed.text);
            }
            wait[i] = (wait[i] * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
            next[i] = Instant::now() + wait[i];
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a router knows of a replica.
struct Replica {
    actor: ActorRef<NodeAnswererMsg>,
    node: String,
    /// Its model id matches the router's.
    usable: bool,
    /// Questions this router sent it that are not answered yet.
    in_flight: usize,
}

/// State a [`ClusterRouter`] shares with its requests' tasks.
pub struct RouterShared {
    group: String,
    model: String,
    model_id: String,
    replicas: Mutex<HashMap<ActorId, Replica>>,
    /// Members that did not answer a `Describe`, and when: asked again
    /// after a second, not on every request.
    silent: Mutex<HashMap<ActorId, Instant>>,
    turn: AtomicU64,
    request_timeout: Duration,
    failover_timeout: Duration,
    stats: Mutex<AnswererStats>,
}

impl RouterShared {
    /// The group's members now, each described once (a replica of another
    /// model id is kept out, with a warning).
    async fn refresh(&self) {
        let members: Vec<ActorRef<NodeAnswererMsg>> = ractor::pg::get_members(&self.group)
            .into_iter()
            .map(ActorRef::from)
            .collect();
        let ids: HashSet<ActorId> = members.iter().map(|m| m.get_id()).collect();
        let unknown: Vec<ActorRef<NodeAnswererMsg>> = {
            let mut replicas = self.replicas.lock().unwrap();
            replicas.retain(|id, _| ids.contains(id));
            let mut silent = self.silent.lock().unwrap();
            silent.retain(|id, since| ids.contains(id) && since.elapsed() < Duration::from_secs(1));
            members
                .into_iter()
                .filter(|m| {
                    !replicas.contains_key(&m.get_id()) && !silent.contains_key(&m.get_id())
                })
                .collect()
        };
        for actor in unknown {
            let Some(status) = describe(&actor, Duration::from_secs(2)).await else {
                // Not reachable now (its node may be leaving).
                self.silent
                    .lock()
                    .unwrap()
                    .insert(actor.get_id(), Instant::now());
                continue;
            };
            let usable = status.model_id == self.model_id;
            if !usable {
                tracing::warn!(
                    "cluster replica on {} runs {} id {}, not id {}: not used",
                    status.node,
                    status.model,
                    status.model_id,
                    self.model_id
                );
            }
            self.replicas.lock().unwrap().insert(
                actor.get_id(),
                Replica {
                    actor,
                    node: status.node,
                    usable,
                    in_flight: 0,
                },
            );
        }
    }

    /// The usable replica with the fewest questions in flight, not in
    /// `skip`; ties go round the replicas in turn. Its count grows by
    /// `questions`.
    fn pick(
        &self,
        skip: &HashSet<ActorId>,
        questions: usize,
    ) -> Option<(ActorRef<NodeAnswererMsg>, String)> {
        let mut replicas = self.replicas.lock().unwrap();
        let mut candidates: Vec<(&ActorId, &Replica)> = replicas
            .iter()
            .filter(|(id, r)| r.usable && !skip.contains(id))
            .collect();
        candidates.sort_by_key(|(id, _)| **id);
        let least = candidates.iter().map(|(_, r)| r.in_flight).min()?;
        let tied: Vec<ActorId> = candidates
            .iter()
            .filter(|(_, r)| r.in_flight == least)
            .map(|(id, _)| **id)
            .collect();
        let turn = self.turn.fetch_add(1, Relaxed) as usize;
        let chosen = replicas.get_mut(&tied[turn % tied.len()])?;
        chosen.in_flight += questions;
        Some((chosen.actor.clone(), chosen.node.clone()))
    }

    fn done(&self, id: ActorId, questions: usize) {
        if let Some(r) = self.replicas.lock().unwrap().get_mut(&id) {
            r.in_flight = r.in_flight.saturating_sub(questions);
        }
    }

    /// Sends `request` to replicas until one answers: a replica that
    /// vanishes or times out is skipped, and when every replica has been
    /// tried the request waits for one (up to `failover_timeout`).
    async fn route(&self, mut request: AnswerRequest) -> Result<Vec<Answer>, AnswerFailure> {
        // As on a wire: the answerer has its own references.
        request.problem.reference = None;
        let questions = request.questions.len();
        let payload = serde_json::to_vec(&request)
            .map_err(|e| AnswerFailure::Cluster(format!("cannot encode the request: {e}")))?;
        let mut skip: HashSet<ActorId> = HashSet::new();
        let mut failures: Vec<String> = Vec::new();
        let mut waiting_since: Option<Instant> = None;
        loop {
            self.refresh().await;
            let Some((actor, node)) = self.pick(&skip, questions) else {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() > self.failover_timeout {
                    return Err(AnswerFailure::Cluster(format!(
                        "no replica of {} answered within {:.0} s ({})",
                        self.model,
                        self.failover_timeout.as_secs_f64(),
                        if failures.is_empty() {
                            "none in the cluster".to_string()
                        } else {
                            failures.join("; ")
                        }
                    )));
                }
                // Every replica was tried: try them all again shortly (a
                // timed-out one may answer now, a restarted one rejoins).
                skip.clear();
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let id = actor.get_id();
            let sent = payload.clone();
            let result = actor
                .call(
                    move |port| NodeAnswererMsg::Answer(sent, port),
                    Some(self.request_timeout),
                )
                .await;
            self.done(id, questions);
            let failure = match result {
                Ok(CallResult::Success(bytes)) => {
                    let reply: RemoteReply = serde_json::from_slice(&bytes).map_err(|e| {
                        AnswerFailure::Cluster(format!("malformed reply from {node}: {e}"))
                    })?;
                    let answers = reply.map_err(|e| {
                        AnswerFailure::Cluster(format!("the replica on {node}: {e}"))
                    })?;
                    if !failures.is_empty() {
                        self.stats.lock().unwrap().retried += 1;
                        tracing::info!("a request went to {node} after: {}", failures.join("; "));
                    }
                    return Ok(answers);
                }
                Ok(CallResult::Timeout) => format!(
                    "{node} gave no answer within {:.0} s",
                    self.request_timeout.as_secs_f64()
                ),
                Ok(CallResult::SenderError) => format!("{node} left the cluster"),
                Err(e) => format!("{node} is unreachable: {e}"),
            };
            tracing::warn!("cluster replica failed a request: {failure}; trying another");
            failures.push(failure);
            skip.insert(id);
            waiting_since = None;
        }
    }
}

/// Routes [`AnswererMsg`]s to the cluster's replicas of one model, as an
/// [`AnswererActor`](crate::AnswererActor) answers them locally.
pub struct ClusterRouter;

impl Actor for ClusterRouter {
    type Msg = AnswererMsg;
    /// The shared state, and the node (kept up while the router runs).
    type State = (Arc<RouterShared>, Arc<ClusterNode>);
    type Arguments = (Arc<RouterShared>, Arc<ClusterNode>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        (shared, _node): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AnswererMsg::Answer(request, reply) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let questions = request.questions.len() as u64;
                    let out = shared.route(request).await;
                    {
                        let mut s = shared.stats.lock().unwrap();
                        s.requests += 1;
                        match &out {
                            Ok(_) => s.questions += questions,
                            Err(_) => s.failed_requests += 1,
                        }
                    }
                    let _ = reply.send(out);
                });
            }
            AnswererMsg::Flush(_) => {}
            AnswererMsg::Stats(reply) => {
                let _ = reply.send(shared.stats.lock().unwrap().clone());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        (_, node): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        node.stop();
        Ok(())
    }
}

/// What [`cluster_status`] found.
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus {
    /// The seeds it was given.
    pub seeds: Vec<String>,
    /// Connected nodes: name and address.
    pub nodes: Vec<(String, String)>,
    /// Replicas by model, each with its status (`None`: it did not answer).
    pub models: Vec<(String, Vec<ReplicaStatus>)>,
}

/// Joins the cluster as a short-lived node (on `listen`), waits `settle`
/// for the seeds' sessions and groups, and asks every replica for its
/// status.
pub async fn cluster_status(
    config: &ClusterConfig,
    security: &SecurityConfig,
    settle: Duration,
) -> Result<ClusterStatus, AgentError> {
    let node = ClusterNode::start(config, security).await?;
    let start = Instant::now();
    // Settle: the seeds and the peers they introduce connected, and the
    // groups synchronized, i.e. nothing changed for a while.
    let wanted = config.seeds.len();
    let mut last = (usize::MAX, usize::MAX);
    let mut stable_since = Instant::now();
    while start.elapsed() < settle {
        let seen = (node.peers().await.len(), replica_count());
        if seen != last {
            (last, stable_since) = (seen, Instant::now());
        } else if seen.0 >= wanted && stable_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut status = ClusterStatus {
        seeds: config.seeds.clone(),
        nodes: node.peers().await,
        models: Vec::new(),
    };
    let mut groups: Vec<String> = ractor::pg::which_groups()
        .into_iter()
        .filter(|g| g.starts_with(GROUP_PREFIX))
        .collect();
    groups.sort();
    for group in groups {
        let mut replicas = Vec::new();
        for cell in ractor::pg::get_members(&group) {
            if let Some(s) = describe(&ActorRef::from(cell), Duration::from_secs(3)).await {
                replicas.push(s);
            }
        }
        replicas.sort_by(|a, b| a.node.cmp(&b.node));
        status
            .models
            .push((group[GROUP_PREFIX.len()..].to_string(), replicas));
    }
    node.stop();
    Ok(status)
}

/// Members of every answerer group this process knows.
fn replica_count() -> usize {
    ractor::pg::which_groups()
        .iter()
        .filter(|g| g.starts_with(GROUP_PREFIX))
        .map(|g| ractor::pg::get_members(g).len())
        .sum()
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nodes: {}", self.nodes.len())?;
        if self.nodes.is_empty() && !self.seeds.is_empty() {
            write!(
                f,
                " (no seed of {} accepted this node: check that they run, and that the cookie is theirs)",
                self.seeds.join(", ")
            )?;
        }
        writeln!(f)?;
        for (name, addr) in &self.nodes {
            writeln!(f, "  {name:<32} {addr}")?;
        }
        if self.models.is_empty() {
            write!(f, "models: none (no answerer node has joined)")?;
            return Ok(());
        }
        write!(f, "models: {}", self.models.len())?;
        for (model, replicas) in &self.models {
            write!(f, "\n  {model}: {} replicas", replicas.len())?;
            for r in replicas {
                write!(
                    f,
                    "\n    {:<28} pending {:>4} questions; {} requests, {} questions in {} batches, {} failed (id {})",
                    r.node,
                    r.pending_questions,
                    r.requests,
                    r.questions,
                    r.batches,
                    r.failed_requests,
                    &r.model_id[..8.min(r.model_id.len())]
                )?;
            }
        }
        Ok(())
    }
}
