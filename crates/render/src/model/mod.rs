//! Serde models of the files that no maintained crate types: K3s's config file, kubeadm v1beta4,
//! KubeletConfiguration, Calico's `Installation`, MetalLB's pool and advertisement. Every struct
//! refuses unknown fields, so a parse-back test catches a key we invented.

pub mod calico;
pub mod k3s;
pub mod kubeadm;
pub mod metallb;
