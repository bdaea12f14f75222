//! Entry points of the payload fuzz targets, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so that `cargo test` runs every saved input the same way.

use super::errors::ErrorReport;
use super::start::{parse_start, InstanceConfig};
use super::{cloudinit, commands, config, status};

/// Feeds `data` to the START parser and everything that consumes its result; panics only on
/// a broken invariant:
///
/// * the state file (`InstanceConfig` through serde_yaml) reads back equal;
/// * any string of the payload survives our emitter and decoder unchanged.
pub fn start_payload(data: &[u8]) {
    nesting_bound(data);
    match parse_start(data) {
        Err(e) => {
            let _ = e.failure().to_yaml();
            let _ = e.to_string();
        }
        Ok(cmd) => {
            let _ = cmd.check_image();
            let _ = cmd.check_networking();
            let _ = cmd.check_network_ids();
            let _ = cmd.meta_data_json();
            let _ = cloudinit::container_command(&cmd.user_data);
            let _ = cloudinit::container_hostname(&cmd.meta_data, &cmd.instance.instance_uuid);
            state_file_round_trip(&cmd.instance);
            for s in [
                &cmd.instance.image_uuid,
                &cmd.instance.docker_image,
                &cmd.instance.tenant_uuid,
            ] {
                emitter_round_trip(s);
            }
        }
    }
    // The same bytes through the other receive-side parsers.
    let _ = commands::parse_stop(data);
    let _ = commands::parse_restart(data);
    let _ = commands::parse_attach_volume(data);
    let _ = config::ClusterConfig::parse(data);
    if let Ok(stat) = status::Stat::parse(data) {
        let again = status::Stat::parse(stat.to_yaml().as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&stat),
            "STATS re-encoding changed the document"
        );
    }
}

/// The nesting pre-scan never panics, and nothing it takes for a scalar
/// (quote, comment, block scalar) can hide nesting on a new unindented line.
fn nesting_bound(data: &[u8]) {
    use super::depth::{check_depth, MAX_DEPTH};
    let _ = check_depth(data);
    let mut deep = data.to_vec();
    deep.extend_from_slice(b"\n\n");
    deep.resize(deep.len() + MAX_DEPTH + 1, b'[');
    assert!(
        check_depth(&deep).is_err(),
        "nesting hidden after {:?}",
        String::from_utf8_lossy(data)
    );
}

fn state_file_round_trip(cfg: &InstanceConfig) {
    let text = serde_yaml::to_string(cfg).expect("InstanceConfig always serialises");
    let back: InstanceConfig = serde_yaml::from_str(&text).expect("state file reads back");
    assert_eq!(
        &back, cfg,
        "state file round trip changed the configuration:\n{text}"
    );
}

fn emitter_round_trip(s: &str) {
    let report = ErrorReport {
        instance_uuid: s.to_owned(),
        reason: "x".into(),
    };
    let text = report.to_yaml();
    let back = ErrorReport::parse(text.as_bytes());
    assert_eq!(
        back.as_ref(),
        Ok(&report),
        "emitted text does not read back:\n{text}"
    );
}
