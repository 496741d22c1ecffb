//! Facts only sysfs tells: whether a link is a wireless device.
//!
//! Why it matters: a wireless station interface cannot be a bridge port (the access point
//! drops frames from MACs that did not associate), so an external switch on it must be
//! refused (SPEC §4 rule 11). Note that sysfs shows the links of the namespace that mounted
//! it, not necessarily the caller's.

use std::path::Path;

/// Where the kernel lists network devices.
pub const SYSFS_NET: &str = "/sys/class/net";

/// True when `<root>/<ifname>/wireless` (wireless extensions) or `<root>/<ifname>/phy80211`
/// (cfg80211 devices) exists. A name that is not a plain file name is never wireless.
pub fn is_wireless(sysfs_net_root: &Path, ifname: &str) -> bool {
    if ifname.is_empty() || ifname == "." || ifname == ".." || ifname.contains('/') {
        return false;
    }
    let dev = sysfs_net_root.join(ifname);
    dev.join("wireless").exists() || dev.join("phy80211").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (dev, marker) in [
            ("eth0", None),
            ("wlan0", Some("wireless")),
            ("wlp2s0", Some("phy80211")),
        ] {
            let dir = root.path().join(dev);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("mtu"), "1500\n").unwrap();
            if let Some(marker) = marker {
                std::fs::create_dir(dir.join(marker)).unwrap();
            }
        }
        root
    }

    #[test]
    fn wireless_extensions_directory_marks_wireless() {
        let root = fake_sysfs();
        assert!(is_wireless(root.path(), "wlan0"));
    }

    #[test]
    fn phy80211_link_marks_wireless() {
        let root = fake_sysfs();
        // In real sysfs phy80211 is a symlink to the phy; a dangling one would not count.
        let target = root.path().join("ieee80211-phy0");
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(root.path().join("wlx0")).unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("wlx0/phy80211")).unwrap();
        assert!(is_wireless(root.path(), "wlp2s0"));
        assert!(is_wireless(root.path(), "wlx0"));
    }

    #[test]
    fn wired_missing_and_odd_names_are_not_wireless() {
        let root = fake_sysfs();
        assert!(!is_wireless(root.path(), "eth0"));
        assert!(!is_wireless(root.path(), "nosuchdev"));
        assert!(!is_wireless(root.path(), ""));
        assert!(!is_wireless(root.path(), "../wlan0"));
        assert!(!is_wireless(root.path(), ".."));
    }
}
