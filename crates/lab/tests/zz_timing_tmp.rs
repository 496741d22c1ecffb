use edgenet_lab::{Expectations, Lab, LabSpec};
use std::time::Instant;
#[test]
#[ignore]
fn timing() {
    let counts: Vec<u8> = std::env::var("N")
        .unwrap_or("1,10,50".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for n in counts {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = LabSpec::new(format!("tm{n}"), dir.path().join("lab"));
        spec.machines = n;
        let t = Instant::now();
        let lab = Lab::up(&spec, |_| Ok::<(), String>(()))
            .map_err(|e| e.to_string())
            .unwrap();
        let up = t.elapsed();
        let t = Instant::now();
        let m = lab.status(&[], &Expectations::NAT).unwrap();
        let st = t.elapsed();
        assert!(m.all_ok());
        let t = Instant::now();
        lab.down(|_| Ok::<(), String>(())).unwrap();
        eprintln!("n={n} up {up:?} status {st:?} down {:?}", t.elapsed());
    }
}
