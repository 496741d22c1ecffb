//! Port forwards reached from the nodes themselves (hairpin), as Docker and NAT routers allow:
//! a node connecting to one of the host's addresses and a forwarded port reaches the forward's
//! node — another node, or itself — with a real HTTP server in the node's namespace, on a
//! deployed machine with `bridge-nf-call-iptables` at 1 (Docker and Kubernetes hosts; the
//! kernel then bridges the DNAT back out of the port it came in, which needs the port's hairpin
//! mode) and at 0.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::*;

const CONFIG: &str = r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}], "Edgenet": {"PortForwards": [{"Protocol": "tcp", "HostPort": 8080, "Node": "linux", "NodePort": 80}]}}"#;

const HTTP_SERVER: &str = "import http.server,sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b=self.client_address[0].encode(); self.send_response(200)
        self.send_header('Content-Length',str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self,*a): pass
s=http.server.ThreadingHTTPServer(('0.0.0.0',int(sys.argv[1])),H); print('ready',flush=True)
s.serve_forever()";

const HTTP_GET: &str = "import urllib.request,sys
try:
    print(urllib.request.urlopen('http://%s:%s/' % (sys.argv[1],sys.argv[2]),timeout=2).read().decode())
except Exception as e:
    print(e); sys.exit(1)";

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(ns: &str, addr: &str, port: u16) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", HTTP_GET, addr])
        .arg(port.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn addr_of(v: &Value) -> String {
    v.as_str().unwrap().split('/').next().unwrap().to_string()
}

/// The node namespace holding `address`.
fn namespace_with(m: &Machine, address: &str) -> String {
    m.node_namespaces()
        .into_iter()
        .find(|ns| {
            let addrs = Machine::ip_json_in(ns, "addr show");
            addrs.to_string().contains(&format!("\"{address}\""))
        })
        .unwrap_or_else(|| panic!("no node namespace holds {address}"))
}

/// Whether bridge port `port` is in hairpin mode, as the kernel says (`ip -d link`).
fn hairpin(m: &Machine, port: &str) -> bool {
    let links = m.ip_json(&format!("-d link show dev {port}"));
    links[0]["linkinfo"]["info_slave_data"]["hairpin"] == Value::Bool(true)
}

#[test]
fn a_node_reaches_a_port_forward_at_the_hosts_address_to_another_node_and_to_itself() {
    let Some(m) = machine("d14hp") else { return };
    if Command::new("python3").arg("-V").output().is_err() {
        eprintln!("skipped: python3 is needed for the HTTP server");
        return;
    }
    let config = m.write_config("hairpin.json", &serde_json::from_str(CONFIG).unwrap());
    let plan = m.deploy(Some(&config))["plan"].clone();
    let node = |kind: &str| {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} node in {plan}"))
            .clone()
    };
    let (linux, windows) = (node("linux"), node("windows"));
    let linux_ns = namespace_with(&m, &addr_of(&linux["address"]));
    let windows_ns = namespace_with(&m, &addr_of(&windows["address"]));
    let host = plan["switch"]["host_address"]
        .as_str()
        .map(|a| a.split('/').next().unwrap().to_string())
        .unwrap_or_else(|| plan["switch"]["gateway"].as_str().unwrap().to_string());

    // With a port forward on a NAT switch, every node port is in hairpin mode.
    let ports: Vec<String> = m
        .ip_json("link show")
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["master"] == plan["switch"]["name"])
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    for p in &ports {
        assert!(hairpin(&m, p), "{p} is not in hairpin mode");
    }

    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &linux_ns,
            "python3",
            "-c",
            HTTP_SERVER,
            "80",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Server(child);
    assert_eq!(line.trim(), "ready");

    let br_nf = Command::new("ip")
        .args([
            "netns",
            "exec",
            &m.ns,
            "sysctl",
            "-qw",
            "net.bridge.bridge-nf-call-iptables=1",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for sysctl in if br_nf { vec![1, 0] } else { vec![0] } {
        if br_nf {
            sh(&format!(
                "ip netns exec {} sysctl -qw net.bridge.bridge-nf-call-iptables={sysctl}",
                m.ns
            ));
        }
        for (from, who) in [
            (&windows_ns, "windows → linux"),
            (&linux_ns, "linux → itself"),
        ] {
            assert_eq!(
                get(from, &host, 8080),
                Ok(host.clone()),
                "bridge-nf-call-iptables={sysctl}: {who} through {host}:8080"
            );
        }
        // Node to node directly: its own address, not translated.
        assert_eq!(
            get(&windows_ns, &addr_of(&linux["address"]), 80),
            Ok(addr_of(&windows["address"])),
            "bridge-nf-call-iptables={sysctl}"
        );
    }

    // A port whose hairpin mode was switched off by hand is repaired by the next deploy.
    sh(&format!(
        "ip netns exec {} bridge link set dev {} hairpin off",
        m.ns, ports[0]
    ));
    assert!(!hairpin(&m, &ports[0]));
    let status = m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        v["drift"]
            .to_string()
            .contains(&format!("{} is not in hairpin mode", ports[0])),
        "{v}"
    );
    let out = m.ok(&["deploy", "-c", &config]);
    assert!(out.contains("hairpin"), "{out}");
    assert!(hairpin(&m, &ports[0]));
    let again = m.ok(&["deploy", "-c", &config]);
    assert!(!again.contains("hairpin"), "{again}");
    let status = m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(!v["drift"].to_string().contains("hairpin"), "{v}");

    // Without port forwards the ports are left as the kernel makes them (a hairpin port gets
    // its own floods back): a deploy that drops the forwards switches hairpin off.
    let mut without: Value = serde_json::from_str(CONFIG).unwrap();
    without["Edgenet"]
        .as_object_mut()
        .unwrap()
        .remove("PortForwards");
    let config = m.write_config("plain.json", &without);
    let out = m.ok(&["deploy", "-c", &config]);
    assert!(out.contains("hairpin off"), "{out}");
    for p in &ports {
        assert!(!hairpin(&m, p), "{p} is still in hairpin mode");
    }
}
