//! Data-parallel training across processes (one per machine, or several on one) over Burn's
//! `burn-collective`: every peer holds the whole model, computes its share of each step's batch,
//! and the gradients are summed across the peers (an all-reduce) before every peer takes the
//! same AdamW step. The peers therefore hold the same weights after every step.
//!
//! - Peer 0 hosts two orchestrators (burn-collective's global coordinator) on the port of
//!   [`PeersConfig::orchestrator`] and the next one; the others connect to them. The peers
//!   register with them in turn (see [`Peers::all_reduce`] for why).
//! - Each peer serves its share of the all-reduce at [`PeersConfig::listen`], an address the
//!   other peers can reach.
//! - Every collective call is bounded by [`PeersConfig::timeout`]: a peer that never comes, stops
//!   or cannot be reached is an error ([`DistillError::Peers`]) that names the peers that no
//!   longer answer, never a hang.
//! - At the start the peers compare their configuration, data and step, and refuse to train
//!   unless all agree.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn_collective::{CollectiveConfig, PeerId, ReduceOperation};

use crate::error::{DistillError, Result};

/// Where this process stands among the peers of a multi-process run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersConfig {
    /// How many processes train together (2 or more).
    pub count: u32,
    /// This process's index, `0..count`. Peer 0 hosts the orchestrator.
    pub id: u32,
    /// The orchestrators' `host:port`: peer 0 listens on this port and the next one, every peer
    /// connects to both.
    pub orchestrator: String,
    /// This peer's `host:port` for the all-reduce traffic: the host the other peers reach it at,
    /// and the port it listens on (all interfaces).
    pub listen: String,
    /// How long a collective call (joining, one step's all-reduce) may wait for the others.
    pub timeout: Duration,
}

impl PeersConfig {
    /// The default wait for the other peers.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// Checks the values (count, id, `host:port` forms).
    ///
    /// # Errors
    /// [`DistillError::Peers`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.count < 2 {
            return Err(self.error(format!("--peers {} (at least 2 processes)", self.count)));
        }
        if self.id >= self.count {
            return Err(self.error(format!(
                "--peer-id {} with {} peers (0 to {})",
                self.id,
                self.count,
                self.count - 1
            )));
        }
        if self.timeout.is_zero() {
            return Err(self.error("a timeout of 0 s".into()));
        }
        let orchestrator = host_port("orchestrator", &self.orchestrator).map_err(|m| self.error(m))?;
        if orchestrator == u16::MAX {
            return Err(self.error(format!(
                "orchestrator address `{}`: port {orchestrator} leaves no next port for the second orchestrator",
                self.orchestrator
            )));
        }
        let listen = host_port("listen", &self.listen).map_err(|m| self.error(m))?;
        let same_host = self.orchestrator.rsplit_once(':').map(|(h, _)| h)
            == self.listen.rsplit_once(':').map(|(h, _)| h);
        if self.id == 0 && same_host && (listen == orchestrator || listen == orchestrator + 1) {
            return Err(self.error(format!(
                "listen address `{}` takes one of the orchestrators' ports ({} and {})",
                self.listen,
                orchestrator,
                orchestrator + 1
            )));
        }
        Ok(())
    }

    /// Settings for `count` peers on this machine (127.0.0.1), on ports free when asked: the
    /// orchestrators' two neighbouring ports, then one listen port per peer, all different.
    /// Start the peers right after (another program could take a port in between). For trying
    /// the peers on one machine, and for tests.
    ///
    /// # Errors
    /// [`DistillError::Peers`] when no free port can be had.
    pub fn loopback(count: u32, timeout: Duration) -> Result<Vec<Self>> {
        let fail = |e: std::io::Error| DistillError::Peers {
            peer: 0,
            message: format!("no free port on 127.0.0.1: {e}"),
        };
        let bind = |port: u16| TcpListener::bind(("127.0.0.1", port));
        // Held until every port is chosen, so none is handed out twice.
        let mut held = Vec::new();
        let orchestrator = loop {
            let first = bind(0).map_err(fail)?;
            let port = first.local_addr().map_err(fail)?.port();
            held.push(first);
            if let Some(Ok(next)) = port.checked_add(1).map(bind) {
                held.push(next);
                break port;
            }
        };
        (0..count)
            .map(|id| {
                let listen = bind(0).map_err(fail)?;
                let port = listen.local_addr().map_err(fail)?.port();
                held.push(listen);
                Ok(Self {
                    count,
                    id,
                    orchestrator: format!("127.0.0.1:{orchestrator}"),
                    listen: format!("127.0.0.1:{port}"),
                    timeout,
                })
            })
            .collect()
    }

    fn error(&self, message: String) -> DistillError {
        DistillError::Peers {
            peer: self.id,
            message,
        }
    }
}

/// The port of a `host:port`, or what is wrong with it.
fn host_port(what: &str, addr: &str) -> std::result::Result<u16, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{what} address `{addr}`: expected host:port"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "{what} address `{addr}`: expected host:port (no scheme or path)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{what} address `{addr}`: bad port `{port}`")),
    }
}

/// The values every peer must share before training, and this peer's address. Exchanged as
/// one all-reduce in which each peer fills only its own row (adding zeros is exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// A hash of the training configuration.
    pub config: u64,
    /// The training data's fingerprint.
    pub data: u64,
    /// A hash of the starting weights.
    pub weights: u64,
    /// The optimizer step the peer starts (or resumes) at.
    pub step: u64,
}

const ADDR_BYTES: usize = 64;
/// 4 values of 16 bits per `u64` field, then the address bytes and their length.
const ROW: usize = 4 * 4 + ADDR_BYTES + 1;

/// A joined group of peers: this process registered with the orchestrator, ready for
/// all-reduces. `B` is the backend the gradients live on (the inner backend of training).
#[derive(Debug)]
pub struct Peers<B: Backend> {
    config: PeersConfig,
    device: B::Device,
    /// The two registrations, one per orchestrator, used in turn: one all-reduce each, then the
    /// next (see [`Peers::all_reduce`]).
    collective: [CollectiveConfig; 2],
    /// How many registrations this peer has made; the current one is with orchestrator
    /// `registrations % 2`.
    registrations: Mutex<u64>,
    /// Every peer's listen address, by peer id (known after [`Peers::agree`]).
    addresses: Mutex<Vec<String>>,
}

impl<B: Backend> Peers<B> {
    /// Joins the group: peer 0 starts the orchestrator, then every peer registers and waits for
    /// all `count` peers, within the timeout.
    ///
    /// # Errors
    /// An invalid config, a port already taken, or peers that did not all join in time.
    pub fn join(config: PeersConfig, device: B::Device) -> Result<Self> {
        config.validate()?;
        // burn-communication installs a tracing subscriber that prints every connection and
        // (with the re-registration of every step) each peer's configuration at INFO level on
        // stdout, unless the program has one. Install a silent one unless it has.
        let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
        let listen_port = host_port("listen", &config.listen).map_err(|m| config.error(m))?;
        let orchestrator_port =
            host_port("orchestrator", &config.orchestrator).map_err(|m| config.error(m))?;
        if config.id == 0 {
            for port in [orchestrator_port, orchestrator_port + 1] {
                start_orchestrator(port).map_err(|m| config.error(m))?;
            }
        }
        // The data service binds the listen port on every interface; a taken port would only
        // show as a silent hang later.
        TcpListener::bind(("0.0.0.0", listen_port)).map_err(|e| {
            config.error(format!(
                "cannot listen on port {listen_port} ({}): {e}",
                config.listen
            ))
        })?;
        let host = config
            .orchestrator
            .rsplit_once(':')
            .map_or(config.orchestrator.as_str(), |(h, _)| h);
        let collective = [orchestrator_port, orchestrator_port + 1].map(|port| {
            CollectiveConfig::default()
                .with_num_devices(1)
                .with_num_nodes(config.count)
                .with_global_address(ws(&format!("{host}:{port}")))
                .with_node_address(ws(&config.listen))
                .with_data_service_port(listen_port)
        });
        let peer = PeerId::from(config.id);
        let (dev, registration) = (device.clone(), collective[0].clone());
        let peers = Self {
            config,
            device,
            collective,
            registrations: Mutex::new(1),
            addresses: Mutex::new(Vec::new()),
        };
        peers.bounded("joining the other peers", move || {
            burn_collective::register::<B>(peer, dev, registration).map_err(|e| format!("{e:?}"))
        })?;
        Ok(peers)
    }

    /// This peer's configuration.
    pub fn config(&self) -> &PeersConfig {
        &self.config
    }

    /// Sums `x` over the peers (every peer gets the same sum).
    ///
    /// After the sum every peer leaves the group and joins it again, with the other
    /// orchestrator. burn-collective 0.21 can run only one all-reduce per registration across
    /// processes: its `SyncService::sync` (the barrier that ends every global all-reduce)
    /// clears a copy of its list of synced nodes instead of the list, so the next sync waits
    /// forever. A fresh registration has a fresh list.
    ///
    /// Why two orchestrators: leaving is not a barrier. With one orchestrator a fast peer
    /// could join again while a slow one had not yet left; the orchestrator then numbers the
    /// nodes by how many are registered, gives the fast peer the slow one's id and address,
    /// and answers it alone (a peer reading from a closed server, or summing alone). With two
    /// used in turn, a registration with one completes only once every peer has registered
    /// with it, which each does only after leaving the other; so every peer has left an
    /// orchestrator before any peer comes back to it. This costs about 40 ms per all-reduce
    /// on loopback; remove it once Burn is fixed.
    ///
    /// # Errors
    /// A peer that stops or does not answer within the timeout, named when it can be.
    pub fn all_reduce(&self, what: &str, x: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        let peer = PeerId::from(self.config.id);
        let prim = x.into_primitive().tensor();
        let mut registrations = self.registrations.lock().unwrap_or_else(PoisonError::into_inner);
        let next = self.collective[(*registrations % 2) as usize].clone();
        let dev = self.device.clone();
        let port = host_port("listen", &self.config.listen).map_err(|m| self.config.error(m))?;
        let out = self.bounded(what, move || {
            let sum = burn_collective::all_reduce::<B>(peer, prim, ReduceOperation::Sum)
                .map_err(|e| format!("{e:?}"))?;
            burn_collective::finish_collective::<B>(peer)
                .map_err(|e| format!("leaving the group after the sum: {e:?}"))?;
            // The old data service shuts down in the background; a new one started before the
            // port is free cannot listen, and the other peers would then download from nothing.
            while TcpListener::bind(("0.0.0.0", port)).is_err() {
                std::thread::sleep(Duration::from_millis(2));
            }
            burn_collective::register::<B>(peer, dev, next)
                .map_err(|e| format!("joining the group again after the sum: {e:?}"))?;
            Ok(sum)
        })?;
        *registrations += 1;
        Ok(Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(out)))
    }

    /// Exchanges `mine` with the other peers and checks that they all agree; learns their
    /// addresses (to name a peer that stops later).
    ///
    /// # Errors
    /// A peer whose configuration, data, starting weights or step differ, naming it and the
    /// value.
    pub fn agree(&self, mine: &Agreement) -> Result<()> {
        let n = self.config.count as usize;
        let mut rows = vec![0f32; n * ROW];
        let row = &mut rows[self.config.id as usize * ROW..][..ROW];
        for (k, v) in [mine.config, mine.data, mine.weights, mine.step]
            .into_iter()
            .enumerate()
        {
            for j in 0..4 {
                row[k * 4 + j] = ((v >> (16 * j)) & 0xffff) as f32;
            }
        }
        let addr = self.config.listen.as_bytes();
        let len = addr.len().min(ADDR_BYTES);
        for (dst, b) in row[16..16 + len].iter_mut().zip(addr) {
            *dst = f32::from(*b);
        }
        row[ROW - 1] = len as f32;
        let t = Tensor::<B, 1>::from_data(TensorData::new(rows, [n * ROW]), &self.device);
        let all = self.all_reduce("comparing the peers' configuration", t)?;
        let all = all
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| self.config.error(format!("reading the exchanged values: {e:?}")))?;
        let mut theirs = Vec::with_capacity(n);
        let mut addresses = Vec::with_capacity(n);
        for p in 0..n {
            let r = &all[p * ROW..][..ROW];
            let field = |k: usize| (0..4).fold(0u64, |acc, j| acc | ((r[k * 4 + j] as u64) << (16 * j)));
            theirs.push(Agreement {
                config: field(0),
                data: field(1),
                weights: field(2),
                step: field(3),
            });
            let len = (r[ROW - 1] as usize).min(ADDR_BYTES);
            addresses.push(
                r[16..16 + len]
                    .iter()
                    .map(|&b| b as u8 as char)
                    .collect::<String>(),
            );
        }
        *self.addresses.lock().unwrap_or_else(PoisonError::into_inner) = addresses.clone();
        for (p, t) in theirs.iter().enumerate() {
            let differ = if t.config != mine.config {
                Some("its training configuration differs (give every peer the same config and --set keys)")
            } else if t.data != mine.data {
                Some("its training faces or teacher targets differ")
            } else if t.step != mine.step {
                Some("it starts at another step (every peer resumes from the same checkpoint step, or none does)")
            } else if t.weights != mine.weights {
                Some("its starting weights differ (the same seed and student.init on every peer)")
            } else {
                None
            };
            if let Some(why) = differ {
                return Err(self.config.error(format!(
                    "peer {p} ({}) does not match this one: {why}; its step {}, this peer's {}",
                    addresses[p], t.step, mine.step
                )));
            }
        }
        Ok(())
    }

    /// Sums one step's gradients and loss terms over the peers, and takes peer 0's values of
    /// every parameter without a gradient (BatchNorm running statistics), all in one
    /// all-reduce: the gradients flattened in the module's parameter order (the same on every
    /// peer), then those values (peer 0's, zeros from the others), then the loss terms (summed
    /// in f32). Peer 0's statistics for every peer is PyTorch DDP's default
    /// (`broadcast_buffers`); it keeps the peers' models identical.
    ///
    /// # Errors
    /// As [`Peers::all_reduce`].
    pub fn all_reduce_step<AB, M, const T: usize>(
        &self,
        step: u64,
        module: &M,
        grads: GradientsParams,
        terms: [f64; T],
    ) -> Result<(GradientsParams, [f64; T], Buffers<B>)>
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        // Folds each thread's running-statistic updates into their values before reading them.
        let _ = module.valid();
        let mut gather = Flatten::<B> {
            grads,
            parts: Vec::new(),
            shapes: Vec::new(),
            buffers: Vec::new(),
            buffer_parts: Vec::new(),
            keep: self.config.id == 0,
        };
        module.visit(&mut gather);
        let Flatten {
            mut grads,
            mut parts,
            shapes,
            buffers,
            buffer_parts,
            ..
        } = gather;
        let n_grads: usize = parts.iter().map(|p| p.dims()[0]).sum();
        parts.extend(buffer_parts);
        parts.push(Tensor::from_data(
            TensorData::new(terms.map(|t| t as f32).to_vec(), [T]),
            &self.device,
        ));
        let flat = Tensor::cat(parts, 0);
        let n = flat.dims()[0];
        let sum = self.all_reduce(&format!("the gradients of step {step}"), flat)?;
        let summed = sum
            .clone()
            .slice(n - T..n)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| self.config.error(format!("reading the summed loss: {e:?}")))?;
        let terms: [f64; T] = std::array::from_fn(|i| f64::from(summed[i]));
        let mut offset = n_grads;
        let mut values = std::collections::HashMap::new();
        for (id, shape) in buffers {
            let len: usize = shape.iter().product();
            values.insert(id, (sum.clone().slice(offset..offset + len), shape));
            offset += len;
        }
        let mut scatter = Unflatten::<B> {
            grads: &mut grads,
            flat: sum,
            offset: 0,
            shapes: shapes.into_iter(),
        };
        module.visit(&mut scatter);
        Ok((grads, terms, Buffers { values }))
    }

    /// Runs a collective call on a helper thread and waits for it at most the timeout. A call
    /// that fails or times out becomes an error naming the peers that no longer answer.
    fn bounded<T: Send + 'static>(
        &self,
        what: &str,
        call: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("peer-{}-collective", self.config.id))
            .spawn(move || {
                // The receiver is gone only after a timeout; the result is moot then.
                let _ = tx.send(call());
            })
            .map_err(|e| self.config.error(format!("{what}: cannot start a thread: {e}")))?;
        let timeout = self.config.timeout;
        match rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self
                .config
                .error(format!("{what} failed: {e}{}", self.silent_peers()))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.config.error(format!(
                "{what} failed: the collective call panicked{}",
                self.silent_peers()
            ))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.config.error(format!(
                "{what}: no answer within {} s{}",
                timeout.as_secs_f64(),
                self.silent_peers()
            ))),
        }
    }

    /// `"; peer 1 (host:port) does not answer"` for every other peer whose address refuses a
    /// connection; before the addresses are known, which peers were expected.
    fn silent_peers(&self) -> String {
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if addresses.is_empty() {
            return format!(
                " (expected {} peers through the orchestrators at {} and the next port; is every peer started, and peer 0 first?)",
                self.config.count, self.config.orchestrator
            );
        }
        let silent: Vec<String> = addresses
            .iter()
            .enumerate()
            .filter(|(p, _)| *p != self.config.id as usize)
            .filter(|(_, a)| !reachable(a))
            .map(|(p, a)| format!("peer {p} ({a})"))
            .collect();
        if silent.is_empty() {
            "; every other peer still accepts connections (a slow or stuck peer?)".into()
        } else {
            format!("; {} stopped or cannot be reached", silent.join(", "))
        }
    }
}

/// Whether a `host:port` accepts a TCP connection within a second.
fn reachable(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// burn-communication's address form of a `host:port`.
fn ws(addr: &str) -> burn_communication::Address {
    // Address's FromStr accepts any text.
    format!("ws://{addr}")
        .parse()
        .unwrap_or_else(|never: String| unreachable!("{never}"))
}

/// Starts burn-collective's orchestrator on `port` on a thread of its own (for the life of the
/// process).
fn start_orchestrator(port: u16) -> std::result::Result<(), String> {
    // Fail now on a taken port: the orchestrator would only log it.
    TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| format!("cannot host the orchestrator on port {port}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the orchestrator's runtime: {e}"))?;
    std::thread::Builder::new()
        .name("collective-orchestrator".into())
        .spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)))
        .map_err(|e| format!("cannot start the orchestrator's thread: {e}"))?;
    Ok(())
}

/// Takes every parameter's gradient out of `grads`, flattened, in visiting order; and the
/// values of the parameters without one (zeros unless `keep`).
struct Flatten<B: Backend> {
    grads: GradientsParams,
    parts: Vec<Tensor<B, 1>>,
    shapes: Vec<(ParamId, Vec<usize>)>,
    buffers: Vec<(ParamId, Vec<usize>)>,
    buffer_parts: Vec<Tensor<B, 1>>,
    keep: bool,
}

impl<AB: AutodiffBackend<InnerBackend = B>, B: Backend> ModuleVisitor<AB> for Flatten<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if let Some(g) = self.grads.remove::<B, D>(param.id) {
            self.shapes.push((param.id, g.dims().to_vec()));
            self.parts.push(g.flatten::<1>(0, D - 1));
        } else {
            let v = param.val().inner();
            self.buffers.push((param.id, v.dims().to_vec()));
            let v = v.flatten::<1>(0, D - 1);
            self.buffer_parts.push(if self.keep { v } else { v.zeros_like() });
        }
    }
}

/// Peer 0's values of the parameters without a gradient, from [`Peers::all_reduce_step`].
#[derive(Debug)]
pub struct Buffers<B: Backend> {
    values: std::collections::HashMap<ParamId, (Tensor<B, 1>, Vec<usize>)>,
}

impl<B: Backend> Buffers<B> {
    /// Sets them in `module` (BatchNorm running statistics included).
    pub fn apply<AB: AutodiffBackend<InnerBackend = B>, M: AutodiffModule<AB>>(self, module: M) -> M {
        let mut set = SetBuffers { values: self.values };
        module.map(&mut set)
    }
}

struct SetBuffers<B: Backend> {
    values: std::collections::HashMap<ParamId, (Tensor<B, 1>, Vec<usize>)>,
}

impl<AB: AutodiffBackend<InnerBackend = B>, B: Backend> burn::module::ModuleMapper<AB> for SetBuffers<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let Some((v, shape)) = self.values.remove(&param.id) else {
            return param;
        };
        let dims: [usize; D] = std::array::from_fn(|i| shape[i]);
        param.map(|t| {
            let v = Tensor::<AB, D>::from_inner(v.reshape(dims)).to_device(&t.device());
            v.set_require_grad(t.is_require_grad())
        })
    }
}

/// Puts the summed gradients back, in the same order.
struct Unflatten<'a, B: Backend> {
    grads: &'a mut GradientsParams,
    flat: Tensor<B, 1>,
    offset: usize,
    shapes: std::vec::IntoIter<(ParamId, Vec<usize>)>,
}

impl<AB: AutodiffBackend<InnerBackend = B>, B: Backend> ModuleVisitor<AB> for Unflatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        let Some((id, shape)) = self.shapes.as_slice().first().cloned() else {
            return;
        };
        if id != param.id {
            return;
        }
        self.shapes.next();
        let n: usize = shape.iter().product();
        let g = self.flat.clone().slice(self.offset..self.offset + n);
        self.offset += n;
        let dims: [usize; D] = std::array::from_fn(|i| shape[i]);
        self.grads.register::<B, D>(id, g.reshape(dims));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PeersConfig {
        PeersConfig {
            count: 2,
            id: 1,
            orchestrator: "127.0.0.1:3000".into(),
            listen: "127.0.0.1:3005".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn loopback_peers_get_distinct_free_ports() {
        let peers = PeersConfig::loopback(3, Duration::from_secs(7)).unwrap();
        assert_eq!(peers.len(), 3);
        let port = |a: &str| host_port("", a).unwrap();
        let orchestrator = port(&peers[0].orchestrator);
        let mut ports = vec![orchestrator, orchestrator + 1];
        for (id, p) in peers.iter().enumerate() {
            assert_eq!((p.id, p.count, p.timeout), (id as u32, 3, Duration::from_secs(7)));
            assert_eq!(p.orchestrator, peers[0].orchestrator);
            assert!(p.validate().is_ok(), "{p:?}");
            ports.push(port(&p.listen));
        }
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "a port handed out twice: {peers:?}");
        // Free now that the call returned.
        for p in ports {
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

    #[test]
    fn bad_peer_settings_are_refused_by_name() {
        assert!(cfg().validate().is_ok());
        // Peer 1 may listen on the orchestrators' next port on another machine, or on its own.
        let mut other = cfg();
        other.listen = "10.0.0.2:3001".into();
        assert!(other.validate().is_ok());
        type Edit = fn(&mut PeersConfig);
        let cases: [(Edit, &str); 8] = [
            (|c| c.orchestrator = "h:65535".into(), "no next port"),
            (
                |c| {
                    c.id = 0;
                    c.listen = "127.0.0.1:3001".into();
                },
                "takes one of the orchestrators' ports (3000 and 3001)",
            ),
            (|c| c.count = 1, "--peers 1"),
            (|c| c.id = 2, "--peer-id 2"),
            (|c| c.orchestrator = "ws://h:1".into(), "no scheme"),
            (|c| c.listen = "host".into(), "expected host:port"),
            (|c| c.listen = "h:99999".into(), "bad port"),
            (|c| c.timeout = Duration::ZERO, "timeout"),
        ];
        for (edit, needle) in cases {
            let mut c = cfg();
            edit(&mut c);
            let e = c.validate().unwrap_err().to_string();
            // Named by this process's peer id.
            assert!(
                e.contains(needle) && e.starts_with(&format!("peer {}:", c.id)),
                "{e}"
            );
        }
    }
}
