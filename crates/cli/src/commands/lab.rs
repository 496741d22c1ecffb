//! `edgenet lab up|status|down`: the sandbox of SPEC §6.3, with the normal `deploy` run inside
//! each lab machine (a child `edgenet` that switched only its network namespace, with the
//! machine's own state directory and resolv.conf).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Output;

use edgenet_deploy::names;
use edgenet_deploy::node::files;
use edgenet_deploy::state::StateDir;
use edgenet_lab::{CallbackError, Expectations, Lab, LabMachine, LabSpec, NodeInfo, Undeploy};

use crate::cli::{Cli, LabArgs, LabDownArgs, LabUpArgs, Output as Format};
use crate::envelope;
use crate::exit::{CliError, Exit};

/// The adapter of every lab machine.
const LAB_ADAPTER: &str = "eth0";

/// `edgenet deploy` runs at once during `lab up`. A deploy spends most of its ~0.45 s
/// waiting (its ARP probe, the RTNL lock), so many must overlap to keep the two cores busy;
/// past 32–64 more only queue on RTNL (measured at 255 machines: 4 at once 34 s, 8 15 s,
/// 16 8.9 s, 32 6.6 s, 64 6.0 s, 128 6.2 s, all 255 6.3 s). Measured again once a probe's
/// socket took in only its own targets' ARP (2026-12-01): 128 was faster in 8 of 14
/// interleaved pairs but had the worse tail under other load (up to 5.6 s against 3.9 s);
/// 96, 192 and 255 were no better.
const DEPLOY_WORKERS: usize = 64;

fn lab_dir(args: &LabArgs) -> PathBuf {
    args.lab_dir.join(&args.name)
}

/// Refuses a name the lab cannot use before anything runs (it names namespaces and files,
/// and is echoed in hints).
fn check_lab_name(args: &LabArgs) -> Result<(), CliError> {
    edgenet_lab::check_name(&args.name).map_err(|e| {
        CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!("--name: {e}"),
        )
        .hint("a lab name is 1 to 32 characters of a-z and 0-9, e.g. --name lab1")
    })
}

fn lab_error(e: impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Host, "lab", e.to_string())
}

fn progress(cli: &Cli, message: &str) {
    if cli.output == Format::Text && std::io::stderr().is_terminal() && !crate::logging::quiet() {
        eprintln!("edgenet: {message}");
    }
}

/// Runs this same `edgenet` inside a lab machine; `name` names the machine when the config
/// does not (a lab machine shares the host's host name).
fn edgenet_in(
    m: &LabMachine,
    name: Option<&str>,
    args: &[&std::ffi::OsStr],
) -> Result<Output, CliError> {
    edgenet_cmd(m, name)?.args(args).output().map_err(lab_error)
}

/// `-v` as often as this run was given it, for the child edgenet runs of the lab.
fn verbosity_args(verbose: u8) -> Vec<std::ffi::OsString> {
    (0..verbose.min(3)).map(|_| "-v".into()).collect()
}

/// `edgenet` in the lab machine's network namespace, with its state directory and resolv.conf.
/// The run enters the namespace itself and dies with the lab (see `lab_child`), so the lab
/// spawns it without forking itself.
fn edgenet_cmd(m: &LabMachine, name: Option<&str>) -> Result<std::process::Command, CliError> {
    let exe = std::env::current_exe().map_err(lab_error)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--state-dir")
        .arg(&m.state_dir)
        .arg("--resolv-conf")
        .arg(&m.resolv_conf);
    if let Some(name) = name {
        cmd.arg("--machine-name").arg(name);
    }
    cmd.env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_STATE_DIR")
        .env_remove("EDGENET_RESOLV_CONF");
    // A lab run killed half-way takes its edgenet runs with it: left running, they would go on
    // making objects while the next `lab down` takes the machines apart (a killed deploy is
    // one the next remove cleans). The thread that starts a run waits for it, so the signal
    // comes only when the lab process itself is gone.
    cmd.envs(crate::lab_child::handover_env(
        &m.netns_path,
        std::process::id(),
    ));
    Ok(cmd)
}

fn failed(what: &str, m: &LabMachine, out: &Output) -> String {
    format!(
        "{what} on lab machine {} failed ({}): {}{}",
        m.name,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

/// A config that fails `check` is refused before any namespace exists (offline: the lab
/// machine's host is the lab's, not this one).
fn refuse_failing(loaded: &edgenet_core::config::Loaded, source: &str) -> Result<(), CliError> {
    let ctx = edgenet_core::validate::Context::offline("a lab machine", "lab");
    let mut findings = edgenet_core::validate::check(loaded, &ctx);
    // `vm` nodes without an image run edgenet's test guest, which `with_test_guest` fills in
    // (and the filled-in config is checked again).
    if needs_test_guest(loaded) {
        findings.retain(|f| f.path != "Edgenet.VmImage");
    }
    super::refuse_errors_from(source, &findings, "the lab was not built")
}

fn needs_test_guest(loaded: &edgenet_core::config::Loaded) -> bool {
    loaded.config.any_vm() && loaded.config.edgenet.vm_image.is_none()
}

/// A config with `vm` nodes that names no image runs edgenet's test guest: built (or found
/// cached) now, and named in a copy of the config beside the lab directory, which the lab's
/// machines then deploy. `None`: the config is used as it is.
fn with_test_guest(
    cli: &Cli,
    args: &LabUpArgs,
    loaded: &edgenet_core::config::Loaded,
) -> Result<Option<PathBuf>, CliError> {
    if !needs_test_guest(loaded) {
        return Ok(None);
    }
    let dir = edgenet_host::guest_image::default_dir();
    progress(
        cli,
        &format!(
            "building the test guest for vm nodes in {} …",
            dir.display()
        ),
    );
    let image = edgenet_host::guest_image::ensure(&dir).map_err(|e| {
        CliError::new(Exit::Host, "guest-image", e.to_string())
            .hint("scripts/deps.sh installs what scripts/build-guest-image.sh needs")
    })?;
    let mut v = edgenet_core::config::with_canonical_keys(&loaded.source);
    let p = |p: &std::path::Path| serde_json::Value::String(p.display().to_string());
    v["Edgenet"]["VmImage"] = p(&image.disk);
    v["Edgenet"]["VmKernel"] = p(&image.kernel);
    v["Edgenet"]["VmInitrd"] = p(&image.initrd);
    std::fs::create_dir_all(&args.lab.lab_dir).map_err(lab_error)?;
    let path = args.lab.lab_dir.join(format!("{}-vm.json", args.lab.name));
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("serializes"))
        .map_err(lab_error)?;
    Ok(Some(path))
}

pub fn up(cli: &Cli, args: &LabUpArgs) -> Result<Exit, CliError> {
    check_lab_name(&args.lab)?;
    // The config is checked here first (offline: the lab machine's host facts are its own),
    // so a bad one is refused before any namespace exists.
    let dir = lab_dir(&args.lab);
    // CONFIG, else -c / EDGENET_CONFIG (given before or after `lab up`).
    let given = match args.scalable {
        Some(_) => None,
        None => args.lab_config.as_ref().or(cli.config.as_ref()),
    };
    let mut config: Option<PathBuf> = match (given, args.scalable) {
        (Some(p), _) if super::is_stdin(p) => {
            // The lab's machines read the config from a file: keep standard input's beside
            // the lab directory, as a generated one.
            let loaded = super::load_config_at(Some(p))?;
            refuse_failing(&loaded, "standard input")?;
            std::fs::create_dir_all(&args.lab.lab_dir).map_err(lab_error)?;
            let path = args
                .lab
                .lab_dir
                .join(format!("{}-stdin.json", args.lab.name));
            std::fs::write(&path, loaded.source.to_string()).map_err(lab_error)?;
            Some(path)
        }
        (Some(p), _) => Some(std::fs::canonicalize(p).map_err(|e| {
            CliError::new(
                Exit::Unreadable,
                "unreadable-config",
                format!("cannot read {}: {e}", p.display()),
            )
        })?),
        (None, Some(n)) => {
            // Beside the lab directory: the lab refuses a directory it did not make.
            std::fs::create_dir_all(&args.lab.lab_dir).map_err(lab_error)?;
            let path = args
                .lab
                .lab_dir
                .join(format!("{}-scalable-{n}.json", args.lab.name));
            let generated = edgenet_lab::lab_scalable_config(&args.lab.name, n, false);
            let text = serde_json::to_string_pretty(&generated).expect("serializes");
            std::fs::write(&path, text).map_err(lab_error)?;
            Some(path)
        }
        (None, None) => None,
    };
    let mut loaded = super::load_config_at(config.as_deref())?;
    refuse_failing(&loaded, &super::source_name_of(config.as_deref()))?;
    if let Some(path) = with_test_guest(cli, args, &loaded)? {
        loaded = super::load_config_at(Some(&path))?;
        refuse_failing(&loaded, &path.display().to_string())?;
        config = Some(path);
    }
    let scalable = loaded.config.is_scalable();
    let mut spec = LabSpec::new(&args.lab.name, &dir);
    // VM nodes keep their disk overlays in the machine's state directory: on disk, not in
    // memory.
    spec.machine_files_in_memory = !loaded.config.any_vm();
    if scalable {
        check_lab_lan(&loaded.config)?;
        spec.machines = u8::try_from(loaded.config.machines.len()).map_err(|_| {
            CliError::new(
                Exit::Findings,
                "lab-too-large",
                "a lab has at most 255 machines",
            )
        })?;
    }
    progress(
        cli,
        &format!("building lab {} in {} …", args.lab.name, dir.display()),
    );
    // Machines deploy side by side, each as soon as its network answers; the lab's pool
    // bounds how many deploys run at once (DEPLOY_WORKERS: more only queue on the RTNL lock
    // and the two cores while costing memory and scheduling).
    let failures = std::sync::Mutex::new(Vec::new());
    let deploy = |m: &LabMachine| -> Result<(), CallbackError> {
        progress(
            cli,
            &format!("deploying on lab machine {} ({}) …", m.name, m.address),
        );
        let mut a: Vec<std::ffi::OsString> = vec!["deploy".into()];
        // The deploy's own log lines follow this run's verbosity (EDGENET_LOG is inherited).
        a.extend(verbosity_args(cli.verbose));
        if let Some(c) = &config {
            a.extend(["-c".into(), c.clone().into_os_string()]);
        }
        if scalable {
            a.extend(["--machine".into(), (m.index - 1).to_string().into()]);
        }
        let index = usize::from(m.index - 1);
        let named = loaded.config.edgenet.machine_name.is_some()
            || loaded
                .config
                .machines
                .get(index)
                .is_some_and(|c| c.machine_name.is_some());
        // A machine the config does not name is named by the lab, with the lab's name in it
        // (so are its nodes and their namespaces).
        let lab_named =
            (!named).then(|| edgenet_lab::topology::deployed_machine_name(&args.lab.name, &m.name));
        let mut cmd = edgenet_cmd(m, lab_named.as_deref()).map_err(|e| e.message)?;
        let out = cmd.args(&a).output();
        let failure = match out {
            Ok(out) if out.status.success() => {
                if cli.verbose > 0 || std::env::var_os("EDGENET_LOG").is_some() {
                    for line in String::from_utf8_lossy(&out.stderr).lines() {
                        eprintln!("[{}] {line}", m.name);
                    }
                }
                return Ok(());
            }
            Ok(out) => format!(
                "deploy on lab machine {} failed ({}): {}",
                m.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => format!("deploy on lab machine {}: {e}", m.name),
        };
        failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((m.index, failure.clone()));
        Err(failure.into())
    };
    let started = std::time::Instant::now();
    let up = Lab::up_with(&spec, DEPLOY_WORKERS, deploy);
    tracing::debug!(took = ?started.elapsed(), "deploys finished");
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort();
    if !failures.is_empty() {
        let dir = match up {
            Ok(lab) => lab.detach(),
            Err(e) => e.lab.map(|l| l.detach()).unwrap_or(dir),
        };
        let failures: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
        return Err(lab_error(failures.join("\n")).hint(format!(
            "`{}` removes what was built (lab files in {})",
            args.lab.down_command(),
            dir.display()
        )));
    }
    match up {
        Ok(lab) => {
            let dir = lab.detach();
            if args.no_status {
                if cli.output == Format::Json {
                    envelope::print(
                        &envelope::LAB_STATUS,
                        &serde_json::json!({"lab": args.lab.name, "up": true}),
                    );
                } else {
                    crate::output::outln!(
                        "Lab {} is up; `{}` measures it.",
                        args.lab.name,
                        args.lab.command("status")
                    );
                }
                return Ok(Exit::Ok);
            }
            progress(cli, "lab is up; measuring reachability …");
            let lab = Lab::open(&dir).map_err(lab_error)?;
            report_matrix(cli, &lab, &args.lab, Some(true))
        }
        Err(e) => {
            let message = e.error.to_string();
            let hint = match &e.error {
                edgenet_lab::LabError::NamespaceTaken {
                    netns,
                    before_build,
                    ..
                } => format!(
                    "{}give the lab another name (--name), or delete {netns} (`ip netns del {netns}`) if it is a leftover of yours; edgenet never deletes a namespace it did not make",
                    if *before_build {
                        String::new()
                    } else {
                        format!("`{}` removes what was built; then ", args.lab.down_command())
                    }
                ),
                _ => format!("`{}` removes what was built", args.lab.down_command()),
            };
            if let Some(lab) = e.lab {
                lab.detach();
            } else if matches!(
                e.error,
                edgenet_lab::LabError::NamespaceTaken {
                    before_build: true,
                    ..
                }
            ) {
                // Refused before anything was recorded: the config this run generated beside
                // the lab directory goes too (the lab took its own lock file and directory).
                forget_generated_configs(&args.lab);
            }
            Err(lab_error(format!("lab up failed: {message}")).hint(hint))
        }
    }
}

/// A scalable config runs in the lab only on the lab's LAN, with the lab machines' adapter.
fn check_lab_lan(config: &edgenet_core::config::Config) -> Result<(), CliError> {
    let lab_lan = edgenet_lab::topology::LAN_SUBNET;
    let lan = edgenet_core::addressing::lan_subnet(config);
    if lan.is_some_and(|l| !edgenet_core::addressing::overlaps(l, lab_lan)) {
        return Err(CliError::new(
            Exit::Findings,
            "lab-lan",
            format!(
                "the config's LAN is {}, but the lab's LAN is {lab_lan} (gateway {})",
                lan.unwrap(),
                edgenet_lab::topology::LAN_ROUTER
            ),
        )
        .hint("start from examples/lab-scalable-3.json, or use `edgenet lab up --scalable N`"));
    }
    for (i, m) in config.machines.iter().enumerate() {
        if let Some(adapter) = m.adapter_name.as_deref().filter(|a| *a != LAB_ADAPTER) {
            return Err(CliError::new(
                Exit::Findings,
                "lab-adapter",
                format!("Machines[{i}].NetworkConnection.AdapterName is {adapter:?}; lab machines have {LAB_ADAPTER:?}"),
            ));
        }
    }
    Ok(())
}

/// The nodes each lab machine's deployment made, read from the machine's state.
/// Also the lab machines that have no finished deployment (a `lab up` killed or failed
/// before their deploy finished): their nodes cannot be measured, which the report must say.
fn lab_nodes(lab: &Lab) -> Result<(Vec<NodeInfo>, Expectations, Vec<String>), CliError> {
    let mut nodes = Vec::new();
    let mut expect = Expectations::NAT;
    let mut undeployed = Vec::new();
    for m in lab.machines() {
        let state = StateDir::new(&m.state_dir)
            .peek_records()
            .map_err(lab_error)?;
        let Some((state, plan)) = state.and_then(|s| s.applied_plan.clone().map(|plan| (s, plan)))
        else {
            undeployed.push(m.name.clone());
            continue;
        };
        // One lab, one deployment type: any machine's plan says what the matrix expects.
        expect = Expectations::of(plan.switch.kind, plan.switch.outbound);
        for n in &plan.nodes {
            let guest = names::node_netns(&n.name, &state.deployment_id);
            // A VM node is probed inside its guest, through its agent.
            let guest_agent =
                (plan.node_runtime == edgenet_core::config::NodeRuntime::Vm).then(|| {
                    edgenet_host::qemu::VmFiles::new(edgenet_deploy::node::vm::vm_dir(
                        &m.state_dir,
                        &guest,
                    ))
                    .agent()
                });
            nodes.push(NodeInfo {
                name: n.name.clone(),
                machine: m.name.clone(),
                netns: guest,
                address: n.address.addr(),
                host: plan.switch.gateway,
                kind: n.kind,
                resolv_conf: Some(files::node_dir(&m.state_dir, &n.name).join(files::RESOLV_CONF)),
                guest_agent,
            });
        }
    }
    Ok((nodes, expect, undeployed))
}

/// Every lab machine with the plan its deployment applied, for the picture.
fn lab_views(lab: &Lab) -> Result<Vec<edgenet_viz::LabMachineView>, CliError> {
    lab.machines()
        .into_iter()
        .map(|m| {
            let state = StateDir::new(&m.state_dir)
                .peek_records()
                .map_err(lab_error)?;
            let plan = state.as_ref().and_then(|s| s.applied_plan.clone());
            let (macs, missing_nodes) = match (&state, &plan) {
                (Some(state), Some(plan)) => (
                    state
                        .macs
                        .iter()
                        .map(|(n, m)| (n.clone(), m.to_string()))
                        .collect(),
                    plan.nodes
                        .iter()
                        .filter(|n| {
                            !edgenet_host::netns::exists(&names::node_netns(
                                &n.name,
                                &state.deployment_id,
                            ))
                        })
                        .map(|n| n.name.clone())
                        .collect(),
                ),
                _ => Default::default(),
            };
            Ok(edgenet_viz::LabMachineView {
                name: m.name.clone(),
                address: m.address.addr(),
                plan,
                macs,
                missing_nodes,
            })
        })
        .collect()
}

/// `up`: `Some(true)` after `lab up`, `None` for `lab status` (JSON `null`).
fn report_matrix(cli: &Cli, lab: &Lab, args: &LabArgs, up: Option<bool>) -> Result<Exit, CliError> {
    let (nodes, expect, mut undeployed) = lab_nodes(lab)?;
    // Machines a killed `lab up` never got to record are as undeployed as recorded ones.
    let recorded: Vec<u8> = lab.machines().iter().map(|m| m.index).collect();
    let wanted = usize::from(lab.machines_wanted()).max(recorded.len());
    undeployed.extend(
        (1..=lab.machines_wanted())
            .filter(|i| !recorded.contains(i))
            .map(edgenet_lab::topology::machine_name),
    );
    let mut matrix = lab.status(&nodes, &expect).map_err(lab_error)?;
    if !undeployed.is_empty() {
        matrix.notes.push(format!(
            "DOWN: nothing deployed on {} of {} machines ({}); their nodes are not measured — \
             `{}` and `lab up` again",
            undeployed.len(),
            wanted,
            undeployed.join(", "),
            args.down_command()
        ));
    }
    let doctor = super::doctor::lab_doctor(lab, |m, args| edgenet_in(m, None, args));
    let doctor_failed = doctor.iter().any(|(_, r)| r["fail"].as_u64() != Some(0));
    let exit = if matrix.all_ok() && undeployed.is_empty() && !doctor_failed {
        Exit::Ok
    } else {
        Exit::Findings
    };
    match cli.output {
        Format::Json => {
            let mut report = serde_json::to_value(&matrix).expect("serializes");
            report["up"] = serde_json::json!(up);
            report["doctor"] = serde_json::Value::Object(doctor.into_iter().collect());
            let result = match exit {
                Exit::Ok => Ok(()),
                _ if !undeployed.is_empty() => Err(CliError::new(
                    exit,
                    "not-deployed",
                    format!(
                        "nothing deployed on {} of {} lab machines: {}",
                        undeployed.len(),
                        wanted,
                        undeployed.join(", ")
                    ),
                )),
                _ if !matrix.all_ok() => Err(CliError::new(
                    exit,
                    "unexpected-reachability",
                    format!(
                        "{} of {} cells are not as expected",
                        matrix.cells.iter().filter(|c| !c.ok).count(),
                        matrix.cells.len()
                    ),
                )),
                _ => Err(CliError::new(
                    exit,
                    "doctor-failed",
                    "doctor found a FAIL inside a lab machine (see `doctor`)".to_string(),
                )),
            };
            envelope::print_result(&envelope::LAB_STATUS, result, &report)
        }
        Format::Text => {
            crate::output::out!("{}", matrix.render_report(undeployed.len(), wanted));
            crate::output::out!("{}", super::doctor::lab_doctor_text(&doctor));
        }
        Format::Svg | Format::Dot | Format::Html => {
            let topo = edgenet_viz::from_lab(lab.name(), &lab_views(lab)?, &matrix);
            if cli.output == Format::Html {
                let svg = super::picture::svg(&topo)?;
                crate::output::out!("{}", edgenet_viz::html::lab_page(&topo, &matrix, &svg));
            } else {
                super::picture::print(cli, &topo)?;
            }
        }
    }
    Ok(exit)
}

pub fn status(cli: &Cli, args: &LabArgs) -> Result<Exit, CliError> {
    check_lab_name(args)?;
    let lab = open(&lab_dir(args), args)?;
    report_matrix(cli, &lab, args, None)
}

fn open(dir: &Path, args: &LabArgs) -> Result<Lab, CliError> {
    Lab::open(dir).map_err(|e| lab_error(e).hint(format!("`{}` builds it", args.command("up"))))
}

pub fn down(cli: &Cli, down_args: &LabDownArgs) -> Result<Exit, CliError> {
    let args = &down_args.lab;
    check_lab_name(args)?;
    let dir = lab_dir(args);
    if !dir.join("lab.json").exists() {
        if cli.output == Format::Json {
            envelope::print(
                &envelope::LAB_DOWN,
                &serde_json::json!({"lab": args.name, "removed": false, "remove_runs": 0}),
            );
        } else {
            crate::output::outln!("No lab {} in {}.", args.name, dir.display());
        }
        return Ok(Exit::Ok);
    }
    let lab = open(&dir, args)?;
    progress(cli, &format!("removing lab {} …", args.name));
    // A deployment of netns nodes lives in its machine's namespace, its node namespaces and
    // its state directory, all of which the lab deletes anyway: it goes with them, and the
    // kernel dismantles every namespace in one batch, where `edgenet remove` on each machine
    // deletes one bridge after another under RTNL (each waits for an rcu_barrier). VM nodes
    // have QEMU processes outside the namespaces: their machines (and all with
    // --remove-each) run `edgenet remove`, side by side on the lab's pool.
    let started = std::time::Instant::now();
    let remove_runs = std::sync::atomic::AtomicUsize::new(0);
    let undeploy = |m: &LabMachine| -> Result<Undeploy, CallbackError> {
        if !m.state_dir.join("state.json").exists() {
            return Ok(Undeploy::Removed);
        }
        if !down_args.remove_each {
            if let Some(namespaces) = discardable(m) {
                return Ok(Undeploy::Discarded { namespaces });
            }
        }
        let out = edgenet_in(m, None, &["remove".as_ref()]).map_err(|e| e.message)?;
        remove_runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if out.status.success() {
            Ok(Undeploy::Removed)
        } else {
            Err(failed("remove", m, &out).into())
        }
    };
    let down = lab.down_with(undeploy);
    tracing::debug!(took = ?started.elapsed(), "lab down");
    match down {
        Ok(()) => {
            // The lab keeps its logs for a post-mortem of a failed run; a clean down leaves
            // nothing.
            let _ = std::fs::remove_dir_all(&dir);
            forget_generated_configs(args);
            if cli.output == Format::Json {
                envelope::print(
                    &envelope::LAB_DOWN,
                    &serde_json::json!({
                        "lab": args.name,
                        "removed": true,
                        "remove_runs": remove_runs.into_inner(),
                    }),
                );
            } else {
                crate::output::outln!("Lab {} removed.", args.name);
            }
            Ok(Exit::Ok)
        }
        Err(e) => Err(lab_error(format!("lab down: {e}"))
            .hint("run `edgenet lab down` again; it carries on from what is left")),
    }
}

/// Removes the configs `lab up` generated beside the lab directory (`--scalable`, standard
/// input, the test guest's), then that directory when it is left empty.
fn forget_generated_configs(args: &LabArgs) {
    if let Ok(entries) = std::fs::read_dir(&args.lab_dir) {
        let generated = format!("{}-scalable-", args.name);
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with(&generated)
                || file == format!("{}-stdin.json", args.name)
                || file == format!("{}-vm.json", args.name)
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(&args.lab_dir);
}

/// The named namespaces of the deployment on lab machine `m` when it can go with the
/// machine's namespace: everything it recorded is in that namespace or in namespaces it made
/// (which still carry its marks), and none of its nodes is a VM. `None`: `edgenet remove`
/// must run (VM nodes, an unreadable state, a namespace that is not the deployment's).
fn discardable(m: &LabMachine) -> Option<Vec<String>> {
    use edgenet_deploy::state::ObjectKind;
    let state = StateDir::new(&m.state_dir).peek_records().ok()??;
    let vm = edgenet_core::config::NodeRuntime::Vm;
    let plans = [&state.applied_plan, &state.pending_plan];
    if plans
        .iter()
        .any(|p| p.as_ref().is_some_and(|p| p.node_runtime == vm))
        || state.objects.iter().any(|o| o.kind == ObjectKind::Vm)
    {
        return None;
    }
    let namespaces: Vec<String> = state
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Netns)
        .map(|o| o.name.clone())
        .collect();
    if state
        .objects
        .iter()
        .any(|o| o.netns.as_ref().is_some_and(|n| !namespaces.contains(n)))
    {
        return None;
    }
    let own = edgenet_deploy::journal::Ownership {
        alias: names::alias(&state.deployment_id),
        group: names::link_group(&state.deployment_id),
    };
    // A deploy killed while it made a namespace (after the file under /run/netns, before the
    // mount) leaves an empty placeholder under a name it recorded: deleted with the rest, as
    // `edgenet remove` would (B17b D9); it holds nothing to check.
    let (live, placeholders): (Vec<String>, Vec<String>) = namespaces
        .into_iter()
        .filter(|n| edgenet_host::netns::exists(n) || edgenet_host::netns::is_placeholder(n))
        .partition(|n| edgenet_host::netns::exists(n));
    live.iter()
        .all(|n| netns_is_deployments(n, &own))
        .then(|| live.into_iter().chain(placeholders).collect())
}

/// Whether the node namespace `name` carries the deployment's marks as `edgenet remove`
/// checks them (`edgenet_deploy::node::netns_links_are_ours`): an `eth0` with the alias,
/// whatever else the node made inside; else only `lo` beside an `eth0` in the link group, or
/// a marked `lo` alone.
fn netns_is_deployments(name: &str, own: &edgenet_deploy::journal::Ownership) -> bool {
    edgenet_host::netns::NetNs::open(name)
        .and_then(|ns| edgenet_host::netlink::Netlink::open_in(&ns))
        .and_then(|mut nl| nl.links())
        .is_ok_and(|links| edgenet_deploy::node::netns_links_are_ours(&links, own))
}

#[cfg(test)]
mod verbosity_tests {
    #[test]
    fn the_lab_passes_its_verbosity_to_the_deploy() {
        assert!(super::verbosity_args(0).is_empty());
        assert_eq!(super::verbosity_args(2), vec!["-v", "-v"]);
        assert_eq!(super::verbosity_args(9).len(), 3);
    }
}
