//! YAML through serde-saphyr (pure Rust, no `unsafe`; what kube-rs moved to).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One YAML document.
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).expect("edgenet's own models always serialise")
}

/// Several documents in one file, `---`-separated.
pub fn to_yaml_documents(docs: &[String]) -> String {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Parses one document.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}

/// Splits a multi-document file into its documents, each as generic JSON (to look at `kind`).
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, String> {
    serde_saphyr::from_multiple(text).map_err(|e| e.to_string())
}

/// Parses every document of a multi-document file with one typed model.
pub fn from_yaml_documents<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    serde_saphyr::from_multiple(text).map_err(|e| e.to_string())
}
