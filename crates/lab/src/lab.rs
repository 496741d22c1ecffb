//! [`Lab`]: building the sandbox (`up`), re-opening it from its directory (`open`), and
//! removing it (`down`, or `Drop` as a safety net).

use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use edgenet_core::mac::MacAddr;
use edgenet_host::netlink::{BridgeSpec, Netlink, RouteSpec, VethSpec};
use edgenet_host::netns::{self, NetNs, NETNS_RUN_DIR};
use edgenet_host::sysctl;

use crate::error::{CallbackError, DownError, LabError};
pub use crate::machine::LabMachine;
use crate::process;
use crate::services::{self, ServiceSpec};
use crate::state::{LabDir, LabState, MachineRecord, ServiceRecord, STATE_FILE};
use crate::topology::*;

/// tinyproxy's config, in the lab directory.
const PROXY_CONFIG: &str = "tinyproxy.conf";

/// Default bound for each wait of `up` (a service answering, …).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Machines set up (namespaces, adapters, readiness checks) at once.
const MACHINE_WORKERS: usize = 16;

/// Undeploy callbacks of [`Lab::down_with`] run at once: enough to overlap an undeploy's
/// process start and file reads with the others' kernel work, which the RTNL lock
/// serialises anyway.
const UNDEPLOY_WORKERS: usize = 32;

/// How long `down` waits for a child of `edgenet remove` that finishes a link deletion (the
/// kernel's final wait, tens of milliseconds; seconds only on a machine under heavy load).
const DELETING_CHILD_GRACE: Duration = Duration::from_secs(5);

/// What became of one machine's deployment, as the callback of [`Lab::down_with`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undeploy {
    /// Undeployed (by `edgenet remove`), or nothing was deployed.
    Removed,
    /// Left to go with the machine: everything the deployment made lives in the machine's
    /// namespace, in its files, and in these named namespaces of its own, which `down`
    /// deletes together with the lab's. The kernel then dismantles all of them in one
    /// batch (cleanup_net), instead of one bridge deletion after another under RTNL.
    Discarded { namespaces: Vec<String> },
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// Unique among labs on the host (see [`check_name`]); every namespace is `enl-<name>-…`.
    pub name: String,
    /// The lab directory: state, machine files, service logs and pid files.
    pub dir: PathBuf,
    /// Number of machines, 1 ..= [`MAX_MACHINES`].
    pub machines: u8,
    /// Run the HTTP proxy (tinyproxy) on the LAN router.
    pub proxy: bool,
    /// Bound of each wait during `up` (a service or a machine's network answering).
    pub timeout: Duration,
    /// Keep the machines' files (`<dir>/machines`: resolv.conf, the deployments' state
    /// directories) on a tmpfs the lab mounts there: what they describe lives in the lab's
    /// namespaces, which do not outlive a reboot either, and on a disk filesystem the
    /// deployments' fsyncs and, on `down`, deleting thousands of small files (seconds on a
    /// filesystem mounted with `discard`) dominate a large lab. Off for deployments whose
    /// state directory holds large files (VM disk overlays), which would then use memory.
    pub machine_files_in_memory: bool,
}

impl LabSpec {
    /// One machine, with the proxy, [`DEFAULT_TIMEOUT`].
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        LabSpec {
            name: name.into(),
            dir: dir.into(),
            machines: 1,
            proxy: true,
            timeout: DEFAULT_TIMEOUT,
            machine_files_in_memory: true,
        }
    }
}

/// `up` failed. `lab` is what was built so far (when anything was): drop it to tear it down
/// without undeploy, call [`Lab::down`] to undeploy too, or
/// [`Lab::detach`] it to inspect it and `down` it later from its directory.
#[derive(Debug, thiserror::Error)]
#[error("lab up failed: {error}")]
pub struct UpError {
    #[source]
    pub error: LabError,
    pub lab: Option<Box<Lab>>,
}

/// A lab: everything it created is recorded in `<dir>/lab.json`, and the directory is
/// locked while this value lives.
///
/// Dropping a `Lab` that [`up`](Lab::up) built and that was neither brought
/// [`down`](Lab::down) nor [`detach`](Lab::detach)ed tears it down (services stopped,
/// namespaces deleted) *without* undeploy, so a failing test does not leak daemons; what a
/// deploy made in namespaces of its own is then left, with a warning. A lab re-opened with
/// [`open`](Lab::open) (`lab status` in another process) is left as it is on drop.
#[derive(Debug)]
pub struct Lab {
    pub(crate) dir: LabDir,
    pub(crate) state: LabState,
    /// Built by this value, not detached, not brought down: `Drop` tears it down.
    teardown_on_drop: bool,
}

impl Lab {
    /// Builds the lab — internet, LAN with router, DNS and proxy, machines — waits until
    /// every service answers, then calls `deploy` once per machine in order.
    ///
    /// On failure the partly built lab is in [`UpError::lab`] (unless nothing was built).
    pub fn up<E>(
        spec: &LabSpec,
        mut deploy: impl FnMut(&LabMachine) -> Result<(), E>,
    ) -> Result<Lab, Box<UpError>>
    where
        E: Into<CallbackError>,
    {
        let mut lab = Lab::prepare(spec)?;
        match lab
            .build(spec.machine_files_in_memory)
            .and_then(|()| lab.wait_machines())
            .and_then(|()| lab.deploy_all(&mut deploy))
        {
            Ok(()) => Ok(lab),
            Err(error) => Err(Box::new(UpError {
                error,
                lab: Some(Box::new(lab)),
            })),
        }
    }

    /// As [`Lab::up`], with the deploys side by side: `deploy` (which returns once the
    /// machine's deploy has finished) is called on `workers` threads, each machine's as soon
    /// as that machine's network answers, so the deploys of the first machines overlap the
    /// readiness checks of the last. Every machine's deploy is tried; the error is the first
    /// machine's (in machine order) that failed.
    pub fn up_with<E>(
        spec: &LabSpec,
        workers: usize,
        deploy: impl Fn(&LabMachine) -> Result<(), E> + Sync,
    ) -> Result<Lab, Box<UpError>>
    where
        E: Into<CallbackError>,
    {
        let mut lab = Lab::prepare(spec)?;
        match lab
            .build(spec.machine_files_in_memory)
            .and_then(|()| lab.deploy_all_side_by_side(workers, &deploy))
        {
            Ok(()) => Ok(lab),
            Err(error) => Err(Box::new(UpError {
                error,
                lab: Some(Box::new(lab)),
            })),
        }
    }

    /// Checks the spec and records the new lab in its directory (locked), before anything
    /// is built.
    fn prepare(spec: &LabSpec) -> Result<Lab, Box<UpError>> {
        let early = |error| Box::new(UpError { error, lab: None });
        check_name(&spec.name).map_err(early)?;
        if spec.machines == 0 {
            return Err(early(LabError::InvalidSpec {
                lab: spec.name.clone(),
                reason: format!("machines must be 1..={MAX_MACHINES}, not {}", spec.machines),
            }));
        }
        if spec.timeout.is_zero() {
            return Err(early(LabError::InvalidSpec {
                lab: spec.name.clone(),
                reason: "timeout must not be zero".into(),
            }));
        }
        // A refused up leaves nothing it made: the lock file (and the directory) it created.
        let made_dir = !spec.dir.exists();
        let dir = LabDir::lock(&spec.dir).map_err(early)?;
        if let Some(existing) = dir.read().map_err(early)? {
            return Err(early(LabError::Exists {
                dir: spec.dir.clone(),
                name: existing.name,
            }));
        }
        // Every name the lab will give a namespace of its own is free: one that exists is
        // somebody else's (a lab only records names it is about to create, and `down` deletes
        // what it recorded), so the lab refuses before recording or building anything.
        let roles = ["inet", "lan", "peer"].map(String::from);
        let machines = (1..=spec.machines).map(machine_name);
        if let Some(netns) = roles
            .into_iter()
            .chain(machines)
            .map(|role| format!("{}{role}", prefix(&spec.name)))
            .find(|name| netns::exists(name))
        {
            dir.discard(made_dir);
            return Err(early(LabError::NamespaceTaken {
                lab: spec.name.clone(),
                netns,
                before_build: true,
            }));
        }
        let timeout_ms = u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX);
        let state = LabState::new(&spec.name, spec.machines, spec.proxy, timeout_ms);
        dir.write(&state).map_err(early)?;
        Ok(Lab {
            dir,
            state,
            teardown_on_drop: true,
        })
    }

    /// Re-opens a lab from its directory (another process's `up`, or one that crashed), to
    /// query or to bring down.
    pub fn open(dir: &Path) -> Result<Lab, LabError> {
        // Checked before locking, which would create the directory.
        if !dir.join(STATE_FILE).exists() {
            return Err(LabError::NotFound {
                dir: dir.to_path_buf(),
            });
        }
        let lab_dir = LabDir::lock(dir)?;
        let state = lab_dir.read()?.ok_or_else(|| LabError::NotFound {
            dir: dir.to_path_buf(),
        })?;
        Ok(Lab {
            dir: lab_dir,
            state,
            teardown_on_drop: false,
        })
    }

    /// Calls `undeploy` for every machine whose deploy was started (last machine first),
    /// stops the services the lab started (by recorded PID only) and deletes every
    /// namespace it created. Carries on past every failure and reports them all; on failure
    /// the state file keeps what is left, for another `down`. Logs are kept.
    ///
    /// What the undeploys did is recorded in one state write after the last of them: a
    /// crash before it only makes the next `down` call `undeploy` again for machines whose
    /// deployment is gone already, which an undeploy must accept anyway (a remove after a
    /// partial deploy).
    pub fn down<E>(
        self,
        mut undeploy: impl FnMut(&LabMachine) -> Result<(), E>,
    ) -> Result<(), DownError>
    where
        E: Into<CallbackError>,
    {
        let mut outcomes = Vec::new();
        for i in (0..self.state.machines.len()).rev() {
            if self.state.machines[i].deploy_started {
                let outcome = undeploy(&self.state.machines[i].machine)
                    .map(|()| Undeploy::Removed)
                    .map_err(Into::into);
                outcomes.push((i, outcome));
            }
        }
        self.finish_down(outcomes)
    }

    /// As [`Lab::down`], with the undeploy callbacks run side by side (at most
    /// `UNDEPLOY_WORKERS` at once, in no particular order), and each may leave its
    /// machine's deployment to go with the machine ([`Undeploy::Discarded`]): its named
    /// namespaces are recorded in the state, then deleted with the lab's own.
    pub fn down_with<E>(
        self,
        undeploy: impl Fn(&LabMachine) -> Result<Undeploy, E> + Sync,
    ) -> Result<(), DownError>
    where
        E: Into<CallbackError>,
    {
        let started = Instant::now();
        let deployed: Vec<usize> = (0..self.state.machines.len())
            .rev()
            .filter(|&i| self.state.machines[i].deploy_started)
            .collect();
        let results = crate::pool::map(deployed.clone(), UNDEPLOY_WORKERS, |i| {
            undeploy(&self.state.machines[i].machine).map_err(Into::into)
        });
        tracing::debug!(lab = %self.state.name, machines = deployed.len(), took = ?started.elapsed(), "machines undeployed");
        self.finish_down(deployed.into_iter().zip(results).collect())
    }

    /// Records what the undeploys did (one state write), then tears the lab down.
    fn finish_down(
        mut self,
        outcomes: Vec<(usize, Result<Undeploy, CallbackError>)>,
    ) -> Result<(), DownError> {
        self.teardown_on_drop = false;
        let mut errors = Vec::new();
        for (i, outcome) in outcomes {
            let record = &mut self.state.machines[i];
            match outcome {
                Ok(Undeploy::Removed) => record.deploy_started = false,
                Ok(Undeploy::Discarded { namespaces }) => {
                    record.deploy_started = false;
                    for name in namespaces {
                        if !self.state.namespaces.contains(&name) {
                            self.state.namespaces.push(name);
                        }
                    }
                }
                Err(source) => errors.push(LabError::Undeploy {
                    machine: record.machine.name.clone(),
                    netns: record.machine.netns.clone(),
                    source,
                }),
            }
        }
        self.save_into(&mut errors);
        self.teardown(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DownError { errors })
        }
    }

    /// Leaves the lab running (services, namespaces, state) and releases its directory, for
    /// a later [`Lab::open`]; this is how a `lab up` command ends. Returns the directory.
    pub fn detach(mut self) -> PathBuf {
        self.teardown_on_drop = false;
        self.dir.path().to_path_buf()
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `enl-<lab>-`: every namespace of this lab starts with it.
    pub fn prefix(&self) -> String {
        prefix(&self.state.name)
    }

    pub fn machines(&self) -> Vec<LabMachine> {
        self.state
            .machines
            .iter()
            .map(|m| m.machine.clone())
            .collect()
    }

    /// How many machines the lab is to have (its `lab up`'s count), recorded before any
    /// of them is made: more than [`machines`](Lab::machines) has when that up was killed
    /// or failed before it recorded them.
    pub fn machines_wanted(&self) -> u8 {
        self.state.machines_wanted
    }

    /// Namespaces the lab created and has not deleted yet, in creation order.
    pub fn namespaces(&self) -> &[String] {
        &self.state.namespaces
    }

    /// Services the lab started and has not stopped yet.
    pub fn services(&self) -> &[ServiceRecord] {
        &self.state.services
    }

    /// The "internet" namespace (HTTP server, upstream DNS).
    pub fn inet_netns(&self) -> String {
        self.ns_name("inet")
    }

    /// The LAN namespace (bridge, router, LAN DNS, proxy).
    pub fn lan_netns(&self) -> String {
        self.ns_name("lan")
    }

    /// The LAN host that probes inbound reachability.
    pub fn peer_netns(&self) -> String {
        self.ns_name("peer")
    }

    /// Log of a service: `http` (one line per request, client address first),
    /// `dns-upstream`, `dns-lan` (every query with its client), `proxy`.
    pub fn log(&self, service: &str) -> PathBuf {
        services::log_path(self.dir.path(), service)
    }

    /// The page the lab's HTTP server serves.
    pub fn http_page(&self) -> String {
        services::page(&self.state.name)
    }

    fn ns_name(&self, role: &str) -> String {
        format!("{}{role}", prefix(&self.state.name))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.state.timeout_ms)
    }

    fn save(&self) -> Result<(), LabError> {
        self.dir.write(&self.state)
    }

    fn save_into(&self, errors: &mut Vec<LabError>) {
        if let Err(e) = self.save() {
            errors.push(e);
        }
    }

    fn host<T>(&self, r: Result<T, edgenet_host::netlink::HostError>) -> Result<T, LabError> {
        r.map_err(|e| LabError::host(&format!("lab {}", self.state.name), e))
    }

    // ---- up ----

    fn build(&mut self, machine_files_in_memory: bool) -> Result<(), LabError> {
        let started = Instant::now();
        let root = self.dir.path().to_path_buf();
        for sub in ["logs", "run", "www", "machines"] {
            let path = root.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| LabError::io("create", path, e))?;
        }
        if machine_files_in_memory {
            self.state.machines_tmpfs = true;
            self.save()?;
            mount_tmpfs(&root.join("machines"))?;
        }
        let inet = self.create_netns("inet")?;
        let lan = self.create_netns("lan")?;
        let peer = self.create_netns("peer")?;
        self.wire_lan(&lan, &inet)?;
        self.wire_inet(&inet)?;
        self.attach(&lan, &peer, PEER_PORT, LAN_PEER)?;

        let www = root.join("www");
        let index = www.join("index.html");
        std::fs::write(&index, services::page(&self.state.name))
            .map_err(|e| LabError::io("write", index, e))?;
        let inet_name = inet.label().to_string();
        let lan_name = lan.label().to_string();
        // All services start at once (the LAN DNS and the proxy need their upstream only to
        // answer, not to start), the machines are built while they come up, and then each
        // service is waited for, upstream first, from the LAN.
        self.start(&inet_name, services::dns_upstream(&root))?;
        self.start(&inet_name, services::http(&root, &www))?;
        self.start(&lan_name, services::dns_lan(&root))?;
        let mut ready = vec![
            services::DNS_UPSTREAM_SVC,
            services::HTTP,
            services::DNS_LAN_SVC,
        ];
        if self.state.proxy {
            let log = services::log_path(&root, services::PROXY);
            let config = root.join(PROXY_CONFIG);
            std::fs::write(&config, services::proxy_config(&log))
                .map_err(|e| LabError::io("write", config.clone(), e))?;
            let resolv = root.join("lan-resolv.conf");
            std::fs::write(&resolv, services::lan_resolv_conf())
                .map_err(|e| LabError::io("write", resolv.clone(), e))?;
            self.start(&lan_name, services::proxy(&root, &config, &resolv))?;
            ready.push(services::PROXY);
        }
        self.add_machines(&lan)?;
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "machines built");
        self.wait_ready(&lan, &ready)?;
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "services ready");
        Ok(())
    }

    /// Waits for every machine's network at once (bounded pool), so many machines take
    /// about as long as one.
    fn wait_machines(&self) -> Result<(), LabError> {
        let started = Instant::now();
        let machines = self.machines();
        let ready = crate::pool::map(machines.iter().collect(), MACHINE_WORKERS, |m| {
            self.wait_machine(m)
        })
        .into_iter()
        .collect();
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "machines ready");
        ready
    }

    /// Waits (bounded) until `machine`'s own wiring works (see [`services::check_machine`]:
    /// its DNS through the router, its way out through the router), so a deploy starts on a
    /// machine whose network works.
    fn wait_machine(&self, machine: &LabMachine) -> Result<(), LabError> {
        let timeout = self.timeout();
        let ns = self.host(NetNs::open(&machine.netns))?;
        let outcome =
            self.host(ns.run(|| services::wait_ready(timeout, services::check_machine, || None)))?;
        match outcome {
            Ok(()) => Ok(()),
            Err(services::NotReady::Exited(e)) => Err(*e),
            Err(services::NotReady::TimedOut(last)) => Err(LabError::NotReady {
                service: format!("the network of machine {}", machine.name),
                netns: machine.netns.clone(),
                timeout,
                // Only a DNS failure is in the LAN DNS's log; an ICMP echo that got no
                // answer is in no log of the lab.
                log: last
                    .starts_with(services::MACHINE_DNS_FAILURE)
                    .then(|| self.log(services::DNS_LAN_SVC)),
                last,
            }),
        }
    }

    /// Records the namespace, then creates it with loopback up; a namespace it could not
    /// create (one of that name exists: somebody else's) is not the lab's and is taken out of
    /// the record again, so `down` never deletes it.
    fn create_netns(&mut self, role: &str) -> Result<NetNs, LabError> {
        let name = self.ns_name(role);
        self.state.namespaces.push(name.clone());
        self.save()?;
        match make_netns(&name) {
            Ok(ns) => Ok(ns),
            Err(Made::Not(e)) => Err(self.not_made(&[name], e)),
            Err(Made::Partly(e)) => Err(LabError::host(&format!("lab {}", self.state.name), e)),
        }
    }

    /// Takes `names` (whose creation failed) out of the lab's record again (best effort: the
    /// error to report is the creation's); the error for the first.
    fn not_made(&mut self, names: &[String], e: edgenet_host::netlink::HostError) -> LabError {
        self.state.namespaces.retain(|n| !names.contains(n));
        let _ = self.save();
        if e.is_exists() {
            LabError::NamespaceTaken {
                lab: self.state.name.clone(),
                netns: names[0].clone(),
                before_build: false,
            }
        } else {
            LabError::host(&format!("lab {}", self.state.name), e)
        }
    }

    /// The LAN: bridge `lan0` with the router address, uplink `wan0` ↔ the internet's `eth0`,
    /// forwarding on (the router).
    fn wire_lan(&self, lan: &NetNs, inet: &NetNs) -> Result<(), LabError> {
        // The LAN is an IPv4 switch and router: its bridge and ports do no IPv6 of their own
        // (no link-local address, DAD, MLD or router solicitation on each of up to 256 ports,
        // each DAD completion under RTNL while the machines deploy). The machines' own IPv6
        // crosses it as on any switch.
        self.host(self.host(lan.run(|| sysctl::write("net.ipv6.conf.all.disable_ipv6", "1")))?)?;
        let mut nl = self.host(Netlink::open_in(lan))?;
        // A MAC of its own, set at creation (the kernel then keeps it): a bridge without one
        // takes its lowest port's, so a machine leaving the LAN changed the router's MAC under
        // every other machine's ARP cache, cutting their way out for up to a minute.
        let mut bridge = BridgeSpec::new(LAN_BRIDGE);
        bridge.mac = Some(LAN_ROUTER_MAC);
        self.host(nl.create_bridge(&bridge))?;
        self.host(nl.add_address(LAN_BRIDGE, with_prefix(LAN_ROUTER, LAN_SUBNET)))?;
        self.host(nl.set_up(LAN_BRIDGE, true))?;
        let mut veth = VethSpec::new(LAN_UPLINK, ADAPTER);
        veth.peer_netns = Some(std::os::fd::AsFd::as_fd(inet));
        self.host(nl.create_veth(&veth))?;
        self.host(nl.add_address(LAN_UPLINK, with_prefix(INET_ROUTER, INET_SUBNET)))?;
        self.host(nl.set_up(LAN_UPLINK, true))?;
        self.host(self.host(lan.run(|| sysctl::write("net.ipv4.ip_forward", "1")))?)?;
        self.host(self.host(lan.run(plain_switch))?)?;
        self.host(lan.run(mld_snooping_switch))?
            .map_err(|source| LabError::Firewall {
                context: format!("lab {}: the LAN switch's table", self.state.name),
                source,
            })?;
        Ok(())
    }

    /// The internet: the DNS and HTTP addresses on `eth0`, default route back via the router
    /// (no NAT at the router, so servers see the machines' LAN addresses).
    fn wire_inet(&self, inet: &NetNs) -> Result<(), LabError> {
        let mut nl = self.host(Netlink::open_in(inet))?;
        for a in [DNS_UPSTREAM, HTTP_SERVER] {
            self.host(nl.add_address(ADAPTER, with_prefix(a, INET_SUBNET)))?;
        }
        self.host(nl.set_up(ADAPTER, true))?;
        self.host(nl.add_route(&default_via(INET_ROUTER)))?;
        Ok(())
    }

    /// Plugs `host` into the LAN bridge: port `port` in the LAN, `eth0` with `address` and a
    /// default route via the router inside `host`.
    fn attach(
        &self,
        lan: &NetNs,
        host: &NetNs,
        port: &str,
        address: Ipv4Addr,
    ) -> Result<(), LabError> {
        let mut lan_nl = self.host(Netlink::open_in(lan))?;
        self.plug(&mut lan_nl, host, port, None)?;
        self.configure_adapter(host, address).map(drop)
    }

    /// The LAN side of a host's adapter: a veth whose end `port` is a port of the LAN
    /// bridge, up, and whose peer `eth0` (with `mac`, else one the kernel picks) is created
    /// directly in `host`.
    fn plug(
        &self,
        lan_nl: &mut Netlink,
        host: &NetNs,
        port: &str,
        mac: Option<MacAddr>,
    ) -> Result<(), LabError> {
        let mut veth = VethSpec::new(port, ADAPTER);
        veth.peer_netns = Some(std::os::fd::AsFd::as_fd(host));
        veth.peer_mac = mac;
        self.host(lan_nl.create_veth(&veth))?;
        self.host(lan_nl.set_master(port, Some(LAN_BRIDGE)))?;
        self.host(lan_nl.set_up(port, true))
    }

    /// The host side of its adapter: `eth0` with `address` on the LAN, up, default route via
    /// the router. Returns the handle on `host`.
    fn configure_adapter(&self, host: &NetNs, address: Ipv4Addr) -> Result<Netlink, LabError> {
        // A lab machine stands for one that booted long before its deploy: its adapter's
        // link-local address is settled, not still in duplicate address detection (which a
        // machine made a moment ago would be when its deploy takes the adapter over: then the
        // switch could not take that address and checked its own, a second solicitation
        // flooded to every machine). The lab's MACs are unique, so are their link-locals.
        let settled = format!("net.ipv6.conf.{ADAPTER}.accept_dad");
        // One visit of the namespace for both: the sysctl, and the netlink handle (bound to
        // the namespace it was made in) that does the rest.
        let mut nl = self.host(self.host(host.run(|| {
            sysctl::write(&settled, "0")?;
            Netlink::open()
        }))?)?;
        self.host(nl.add_address(ADAPTER, with_prefix(address, LAN_SUBNET)))?;
        self.host(nl.set_up(ADAPTER, true))?;
        self.host(nl.add_route(&default_via(LAN_ROUTER)))?;
        Ok(nl)
    }

    /// The machines, in O(N) kernel work and without waits: the intent for all of them is
    /// recorded in one state write, their namespaces are made on a bounded pool, each
    /// adapter is a veth made from the LAN side (one netlink handle) with its peer created
    /// directly in the machine's namespace, and each machine's own side (loopback, address,
    /// default route) is configured on the pool again, one netlink handle per machine.
    fn add_machines(&mut self, lan: &NetNs) -> Result<(), LabError> {
        let machines: Vec<LabMachine> = (1..=self.state.machines_wanted)
            .map(|index| self.machine_files(index))
            .collect::<Result<_, _>>()?;
        for machine in &machines {
            self.state.namespaces.push(machine.netns.clone());
            self.state.machines.push(MachineRecord {
                machine: machine.clone(),
                deploy_started: false,
            });
        }
        self.save()?;
        let made = crate::pool::map(machines.iter().collect(), MACHINE_WORKERS, |m| {
            make_bare_netns(&m.netns)
        });
        let (mut namespaces, mut not_made, mut failed) = (Vec::new(), Vec::new(), None);
        for (machine, outcome) in machines.iter().zip(made) {
            match outcome {
                Ok(ns) => namespaces.push(ns),
                Err(Made::Not(e)) => {
                    not_made.push(machine.netns.clone());
                    failed.get_or_insert(Made::Not(e));
                }
                Err(Made::Partly(e)) => {
                    failed.get_or_insert(Made::Partly(e));
                }
            }
        }
        match failed {
            None => {}
            Some(Made::Not(e)) => return Err(self.not_made(&not_made, e)),
            Some(Made::Partly(e)) => {
                if !not_made.is_empty() {
                    self.state.namespaces.retain(|n| !not_made.contains(n));
                    self.save()?;
                }
                return Err(LabError::host(&format!("lab {}", self.state.name), e));
            }
        }
        let mut lan_nl = self.host(Netlink::open_in(lan))?;
        for (machine, ns) in machines.iter().zip(&namespaces) {
            let mac = machine_mac(machine.index);
            self.plug(&mut lan_nl, ns, &machine.name, Some(mac))?;
            self.host(lan_nl.learn_neighbour(LAN_BRIDGE, machine.address.addr(), mac))?;
        }
        crate::pool::map(
            machines.iter().zip(&namespaces).collect(),
            MACHINE_WORKERS,
            |(machine, ns)| {
                let mut nl = self.configure_adapter(ns, machine.address.addr())?;
                self.host(nl.set_up("lo", true))?;
                self.host(nl.learn_neighbour(ADAPTER, LAN_ROUTER, LAN_ROUTER_MAC))
            },
        )
        .into_iter()
        .collect()
    }

    /// A machine's record and files (directory, state directory, resolv.conf).
    fn machine_files(&self, index: u8) -> Result<LabMachine, LabError> {
        let name = machine_name(index);
        let netns_name = self.ns_name(&name);
        let dir = self.dir.path().join("machines").join(&name);
        let machine = LabMachine {
            name: name.clone(),
            index,
            netns_path: Path::new(NETNS_RUN_DIR).join(&netns_name),
            netns: netns_name,
            adapter: ADAPTER.to_string(),
            address: with_prefix(machine_address(index), LAN_SUBNET),
            gateway: LAN_ROUTER,
            dns: LAN_ROUTER,
            proxy: self.state.proxy.then(proxy_url),
            resolv_conf: dir.join("resolv.conf"),
            state_dir: dir.join("state"),
            dir,
        };
        // The deployment's state directory holds its id and generated MACs: 0700, as
        // `edgenet deploy` makes it (it keeps the mode of a directory that exists).
        std::fs::create_dir_all(&machine.dir)
            .map_err(|e| LabError::io("create", machine.dir.clone(), e))?;
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&machine.state_dir)
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
        .map_err(|e| LabError::io("create", machine.state_dir.clone(), e))?;
        let resolv = format!(
            "# lab {} machine {name}: the LAN DNS (a forwarder on the LAN router)\nnameserver {LAN_ROUTER}\n",
            self.state.name
        );
        std::fs::write(&machine.resolv_conf, resolv)
            .map_err(|e| LabError::io("write", machine.resolv_conf.clone(), e))?;
        Ok(machine)
    }

    /// Calls `deploy` for each machine in order, stopping at the first failure. The intent
    /// for every machine is recorded in one state write before the first call (one write
    /// per machine costs O(N²) bytes for a large lab); the machines after a failure are
    /// unmarked again, so only a crash during the deploys leaves machines marked whose
    /// deploy never began, and `down` then calls `undeploy` for them too.
    fn deploy_all<E: Into<CallbackError>>(
        &mut self,
        deploy: &mut impl FnMut(&LabMachine) -> Result<(), E>,
    ) -> Result<(), LabError> {
        for record in &mut self.state.machines {
            record.deploy_started = true;
        }
        self.save()?;
        for i in 0..self.state.machines.len() {
            let machine = self.state.machines[i].machine.clone();
            if let Err(e) = deploy(&machine) {
                for record in &mut self.state.machines[i + 1..] {
                    record.deploy_started = false;
                }
                // Best effort: the error to report is the deploy's.
                let _ = self.save();
                return Err(LabError::Deploy {
                    machine: machine.name.clone(),
                    netns: machine.netns.clone(),
                    source: e.into(),
                });
            }
        }
        Ok(())
    }

    /// Waits for each machine's network and then deploys on it, `workers` machines at once;
    /// every machine is tried. The intent for every machine is recorded in one state write
    /// before the first deploy; machines whose deploy never began (their network did not
    /// answer) are unmarked again.
    fn deploy_all_side_by_side<E: Into<CallbackError>>(
        &mut self,
        workers: usize,
        deploy: &(impl Fn(&LabMachine) -> Result<(), E> + Sync),
    ) -> Result<(), LabError> {
        for record in &mut self.state.machines {
            record.deploy_started = true;
        }
        self.save()?;
        let started = Instant::now();
        let machines = self.machines();
        let outcomes = crate::pool::map(machines.iter().collect(), workers, |m| {
            self.wait_machine(m)?;
            deploy(m).map_err(|e| LabError::Deploy {
                machine: m.name.clone(),
                netns: m.netns.clone(),
                source: e.into(),
            })
        });
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "machines deployed");
        let mut first = None;
        for (record, outcome) in self.state.machines.iter_mut().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(e) => {
                    if !matches!(e, LabError::Deploy { .. }) {
                        record.deploy_started = false;
                    }
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) => {
                // Best effort: the error to report is the first machine's.
                let _ = self.save();
                Err(e)
            }
        }
    }

    /// Starts a service and records it in the state. Its pid file is written by the child
    /// before it execs the daemon, so a kill between the spawn and this record leaves the
    /// daemon named in a file `down` reads (see [`process::recover_unrecorded`]).
    fn start(&mut self, netns: &str, spec: ServiceSpec) -> Result<(), LabError> {
        let record = process::spawn_service(
            spec.name,
            netns,
            &spec.argv,
            &spec.log,
            spec.resolv_conf.as_deref(),
            &self.pid_file(spec.name),
        )?;
        crate::failpoint::hit("lab-service-spawned");
        self.state.services.push(record);
        self.save()
    }

    /// Services whose pid file exists but which the state does not record (a `lab up`
    /// killed right after their spawn), when provably ours and running.
    fn unrecorded_services(&self) -> Vec<ServiceRecord> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("run")) else {
            return Vec::new();
        };
        let logs = self.dir.path().join("logs");
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
            else {
                continue;
            };
            if self.state.services.iter().any(|s| s.name == name) {
                continue;
            }
            if let Some(record) = process::recover_unrecorded(name, &path, &logs) {
                found.push(record);
            }
        }
        found
    }

    fn pid_file(&self, service: &str) -> PathBuf {
        self.dir.path().join("run").join(format!("{service}.pid"))
    }

    /// Waits until each service gives the right answer to a client in `from` (bounded by
    /// the lab's timeout each); a service that exits meanwhile fails at once with its log.
    fn wait_ready(&self, from: &NetNs, names: &[&str]) -> Result<(), LabError> {
        let timeout = self.timeout();
        for name in names {
            let record = self
                .state
                .services
                .iter()
                .find(|s| s.name == *name)
                .expect("services are waited for after they were started");
            let lab = &self.state.name;
            let outcome = self.host(from.run(|| {
                services::wait_ready(
                    timeout,
                    |t| services::check(name, lab, t),
                    || {
                        process::exit_status(record).map(|status| LabError::ServiceExited {
                            service: record.name.clone(),
                            netns: record.netns.clone(),
                            pid: record.pid,
                            status,
                            log: record.log.clone(),
                            tail: process::log_tail(&record.log),
                        })
                    },
                )
            }))?;
            match outcome {
                Ok(()) => {}
                Err(services::NotReady::Exited(exited)) => return Err(*exited),
                Err(services::NotReady::TimedOut(last)) => {
                    return Err(LabError::NotReady {
                        service: record.name.clone(),
                        netns: record.netns.clone(),
                        timeout,
                        last,
                        log: Some(record.log.clone()),
                    })
                }
            }
        }
        Ok(())
    }

    // ---- down ----

    /// Stops services (all at once) and deletes namespaces (side by side on the pool),
    /// keeping in the state those it could not delete; on full success removes the state,
    /// pid files and machine files (unmounting their tmpfs). Processes still in a lab
    /// namespace are found in one pass over `/proc` and reported (the kernel keeps such a
    /// namespace alive until they exit).
    fn teardown(&mut self, errors: &mut Vec<LabError>) {
        let started = Instant::now();
        let mut records = std::mem::take(&mut self.state.services);
        records.extend(self.unrecorded_services());
        let stopped = crate::pool::map(records.iter().collect(), records.len(), |record| {
            process::stop_service(record)
        });
        let mut still_running = Vec::new();
        for (record, outcome) in records.into_iter().zip(stopped) {
            match outcome {
                Ok(()) => {
                    let _ = std::fs::remove_file(self.pid_file(&record.name));
                }
                Err(e) => {
                    errors.push(e);
                    // Kept recorded for the next `down`.
                    still_running.push(record);
                }
            }
        }
        self.state.services = still_running;
        self.save_into(errors);
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "services stopped");
        // Deleting a namespace only drops its mount (the kernel dismantles it later, in one
        // batch with the others), so they go side by side, in no particular order.
        let by_netns = process::processes_by_netns();
        let ours: Vec<u32> = self.state.services.iter().map(|s| s.pid).collect();
        let namespaces = std::mem::take(&mut self.state.namespaces);
        let outcomes = crate::pool::map(namespaces.iter().collect(), MACHINE_WORKERS, |name| {
            let id = NetNs::open(name).ok().and_then(|ns| ns.id().ok());
            // What a deploy on a machine noted about its namespace in /run/edgenet (forwarding
            // evidence) goes with it: the inode may be the next namespace's.
            if let Some((dev, ino)) = id {
                edgenet_host::lock::forget_namespace_notes(dev, ino);
            }
            let users: Vec<u32> = id
                .and_then(|id| by_netns.get(&id))
                .cloned()
                .unwrap_or_default();
            // An `edgenet remove` of `--remove-each` returns before the child that finishes its
            // link deletion has exited: that one is waited for, not reported.
            let users = users
                .into_iter()
                .filter(|&pid| !process::wait_for_deleting_child(pid, DELETING_CHILD_GRACE))
                .collect::<Vec<_>>();
            // A service of ours that could not be stopped keeps its namespace's name (and the
            // state its record) for the next `down`: deleting the name would leave it running
            // in a namespace nothing names any more.
            if users.iter().any(|pid| ours.contains(pid)) {
                return (users, None);
            }
            (users, Some(netns::delete(name)))
        });
        for (name, (users, deleted)) in namespaces.into_iter().zip(outcomes) {
            let Some(deleted) = deleted else {
                self.state.namespaces.push(name);
                continue;
            };
            for pid in users {
                errors.push(LabError::ForeignProcess {
                    netns: name.clone(),
                    pid,
                    command: process::command_name(pid),
                });
            }
            if let Err(e) = deleted {
                errors.push(LabError::host(&self.state.name, e));
                self.state.namespaces.push(name);
            }
        }
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "namespaces deleted");
        if !errors.is_empty() || !self.state.services.is_empty() {
            self.save_into(errors);
            return;
        }
        let root = self.dir.path().to_path_buf();
        if self.state.machines_tmpfs {
            // Every machine file goes at once, without touching a disk.
            let machines = root.join("machines");
            if let Err(e) = unmount(&machines) {
                errors.push(e);
                self.save_into(errors);
                return;
            }
            self.state.machines_tmpfs = false;
        }
        for sub in ["run", "machines", "www"] {
            let path = root.join(sub);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors.push(LabError::io("remove", path, e)),
            }
        }
        let _ = std::fs::remove_file(root.join(PROXY_CONFIG));
        if let Err(e) = self.dir.remove_state() {
            errors.push(e);
        }
        tracing::debug!(lab = %self.state.name, took = ?started.elapsed(), "lab files removed");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.teardown_on_drop {
            return;
        }
        for m in self.state.machines.iter().filter(|m| m.deploy_started) {
            tracing::warn!(
                lab = %self.state.name,
                machine = %m.machine.name,
                "lab dropped without down: undeploy not run; namespaces of that deployment may remain"
            );
        }
        let mut errors = Vec::new();
        self.teardown(&mut errors);
        for e in errors {
            tracing::warn!(lab = %self.state.name, "lab drop: {e}");
        }
    }
}

/// Mounts a tmpfs of the lab's on `path`.
fn mount_tmpfs(path: &Path) -> Result<(), LabError> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("edgenet-lab"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| LabError::io("mount a tmpfs on", path, e.into()))
}

/// Unmounts the lab's tmpfs from `path`; nothing mounted there (a crash before the mount)
/// is fine.
fn unmount(path: &Path) -> Result<(), LabError> {
    use nix::mount::{umount2, MntFlags};
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(LabError::io("unmount the tmpfs on", path, e.into())),
    }
}

/// The LAN is a plain switch, as a site's is: the frames it bridges do not go through the
/// LAN namespace's IP firewall (it has none). With `br_netfilter` loaded every new namespace
/// starts with these on, and then each broadcast and multicast frame of a machine (ARP, IPv6
/// neighbour discovery, MLD reports) passed the netfilter hooks once for every port it was
/// flooded to. Machines keep theirs: they are the hosts, whose settings the product meets.
/// Without `br_netfilter` there is nothing to turn off.
fn plain_switch() -> Result<(), edgenet_host::netlink::HostError> {
    for family in ["iptables", "ip6tables", "arptables"] {
        match sysctl::write(&format!("net.bridge.bridge-nf-call-{family}"), "0") {
            Err(e) if e.is_not_found() => {}
            r => r?,
        }
    }
    Ok(())
}

/// The LAN stands for a site's managed switch, which snoops MLD: with no multicast router
/// on the LAN, a listener report goes to no port. A bridge without a querier floods every
/// report to every port instead, and each of the machines' interfaces (bridge, node, port)
/// reports its groups as it comes up: at 255 machines ~1,700 reports, each delivered ~255
/// times and handled again in every machine's switch and node — about a third of the
/// flooded frames' softirq time of a `lab up` (~0.6 s of CPU). Such a switch also delivers
/// a router solicitation (to all-routers, ff02::2) only where a router listens: the LAN has
/// no IPv6 router, so the ~270 solicitations the machines' adapters and switches send as they
/// come up reach no machine either. Queries, neighbour discovery and everything else cross
/// as before.
fn mld_snooping_switch() -> Result<(), edgenet_host::nft::NftError> {
    let reports = [
        "mld-listener-report",
        "mld2-listener-report",
        "mld-listener-done",
        "nd-router-solicit",
    ];
    let document = serde_json::json!({"nftables": [
        {"table": {"family": "bridge", "name": LAN_MLD_TABLE}},
        {"chain": {"family": "bridge", "table": LAN_MLD_TABLE, "name": "prerouting",
            "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
        {"rule": {"family": "bridge", "table": LAN_MLD_TABLE, "chain": "prerouting", "expr": [
            {"match": {"op": "==",
                "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                "right": {"set": reports}}},
            {"drop": null}
        ]}}
    ]});
    edgenet_host::nft::Nft::new().apply(&document)
}

/// Why [`make_netns`] failed: the namespace was not created (`EEXIST`: one of that name is
/// there, somebody else's), or it was and setting it up failed.
enum Made {
    Not(edgenet_host::netlink::HostError),
    Partly(edgenet_host::netlink::HostError),
}

/// Creates the named namespace and brings its loopback up.
fn make_netns(name: &str) -> Result<NetNs, Made> {
    let ns = make_bare_netns(name)?;
    Netlink::open_in(&ns)
        .and_then(|mut nl| nl.set_up("lo", true))
        .map_err(Made::Partly)?;
    Ok(ns)
}

/// Creates the named namespace, loopback still down (a machine's comes up with its adapter,
/// on the one netlink handle that configures both).
fn make_bare_netns(name: &str) -> Result<NetNs, Made> {
    netns::create(name).map_err(Made::Not)?;
    NetNs::open(name).map_err(Made::Partly)
}

fn with_prefix(address: Ipv4Addr, subnet: Ipv4Net) -> Ipv4Net {
    Ipv4Net::new(address, subnet.prefix_len()).expect("lab prefixes are valid")
}

fn default_via(gateway: Ipv4Addr) -> RouteSpec<'static> {
    RouteSpec {
        destination: Ipv4Net::default(),
        gateway: Some(gateway),
        link: Some(ADAPTER),
    }
}
