//! `examples/kubernetes/` checked without a cluster: every manifest against the
//! Kubernetes API schemas (PyPI `kubernetes-validate`, strict: unknown fields
//! are errors; it ships its schemas and runs offline; scripts/test.sh installs
//! it), and what the schemas cannot see: the ConfigMap's whipstream.toml is a
//! valid configuration of a consumer group fed from S3, and the Deployment
//! checks /readyz, is scraped by Prometheus and runs several replicas.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use whipstream::config::{FileConfig, Flags, Io};
use whipstream::remote::{RemoteSource, WatchSource};

/// The validator's virtualenv: `$WHIPSTREAM_K8S_VENV` or ~/.cache/whipstream-k8s-venv.
fn venv() -> PathBuf {
    let dir = std::env::var("WHIPSTREAM_K8S_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/whipstream-k8s-venv"),
        PathBuf::from,
    );
    assert!(
        dir.join("bin/kubernetes-validate").exists(),
        "kubernetes-validate not found in {}: run scripts/test.sh (it installs it)",
        dir.display()
    );
    dir
}

fn manifests() -> Vec<PathBuf> {
    let dir = common::manifest_dir().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(venv().join("bin/kubernetes-validate"))
        .arg("--strict")
        .args(files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The manifests as JSON, by kind (PyYAML comes with the validator).
fn by_kind(kind: &str) -> Value {
    let script = "import sys, json, yaml\n\
                  docs = [d for f in sys.argv[2:] for d in yaml.safe_load_all(open(f)) if d]\n\
                  print(json.dumps([d for d in docs if d['kind'] == sys.argv[1]][0]))";
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", script, kind])
        .args(manifests())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let files = manifests();
    let kinds: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kinds, ["configmap", "deployment", "secret", "service"]);
    let (ok, report) = validate(&files);
    assert!(ok, "{report}");
    assert_eq!(report.matches("passed").count(), 4, "{report}");

    // The check can fail: a misspelt field is refused.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("deployment.yaml");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    std::fs::write(&bad, text.replace("readinessProbe:", "readinesProbe:")).unwrap();
    let (ok, report) = validate(&[bad]);
    assert!(!ok && report.contains("readinesProbe"), "{report}");
}

#[test]
fn the_deployment_runs_the_configmap_as_one_consumer_group_fed_from_s3() {
    let config = by_kind("ConfigMap");
    let toml = config["data"]["whipstream.toml"].as_str().unwrap();
    let settings = FileConfig::parse(Path::new("configmap.yaml"), toml)
        .unwrap()
        .resolve(&Flags::default())
        .unwrap();
    let Io::Kafka(kafka) = &settings.io else {
        panic!("not a Kafka flow")
    };
    assert_eq!(kafka.group_id, "whipstream");
    assert!(matches!(
        &settings.datasets[0].watch,
        Some(WatchSource::Remote(RemoteSource::S3 { .. }))
    ));
    let port = settings.listen.unwrap().port();

    let d = by_kind("Deployment");
    assert!(d["spec"]["replicas"].as_u64().unwrap() > 1);
    let pod = &d["spec"]["template"];
    let notes = &pod["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/scrape"], "true");
    assert_eq!(notes["prometheus.io/port"], port.to_string());
    assert_eq!(notes["prometheus.io/path"], "/metrics");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], port);
    assert_eq!(c["args"][2], "/etc/whipstream/whipstream.toml");
    assert_eq!(
        pod["spec"]["volumes"][0]["configMap"]["name"],
        config["metadata"]["name"]
    );
    let requests = &c["resources"]["requests"];
    assert!(requests["cpu"].is_string() && requests["memory"].is_string());
    // The store's directory (and its mirror beside it) is writable.
    let store = settings.datasets[0].store.clone();
    let data = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "data")
        .unwrap();
    assert!(store.starts_with(data["mountPath"].as_str().unwrap()));
}
