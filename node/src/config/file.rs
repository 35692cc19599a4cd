//! The optional TOML configuration file, layered under flags and `KEEL_*`
//! variables. Its keys are the fields of [`ServerArgs`] (the flag names
//! with underscores: `node_id`, `data_dir`, `peers`, ...), so a setting is
//! declared once; unknown keys are an error, so a typo is caught at start
//! rather than silently ignored.

use std::path::Path;

use clap::CommandFactory;
use clap::builder::ValueParser;
use serde_json::{Map, Value};

use super::{ConfigError, err};
use crate::cli::{Cli, ServerArgs};

/// Reads and parses a TOML file. Relative paths inside it are taken
/// relative to the file's directory.
pub fn read(path: &Path) -> Result<ServerArgs, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("--config {}: {e}", path.display())))?;
    let file: ServerArgs =
        toml::from_str(&text).map_err(|e| err(format!("--config {}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut map = to_map(&file)?;
    for key in path_settings() {
        if let Some(Value::String(p)) = map.get_mut(&key)
            && Path::new(p.as_str()).is_relative()
        {
            *p = base.join(&*p).display().to_string();
        }
    }
    from_map(map)
}

/// `flags` with every setting they leave unset taken from `file`. A flag
/// that is off (`--dev`, `--audit-required`) counts as unset: a switch
/// can be turned on by either layer.
pub fn layered(file: ServerArgs, flags: ServerArgs) -> Result<ServerArgs, ConfigError> {
    let config = flags.config.clone();
    let peer_max_message_bytes = flags.peer_max_message_bytes;
    let mut merged = to_map(&flags)?;
    for (key, value) in to_map(&file)? {
        let unset = matches!(
            merged.get(&key),
            None | Some(Value::Null) | Some(Value::Bool(false))
        );
        if unset {
            merged.insert(key, value);
        }
    }
    let mut merged = from_map(merged)?;
    merged.config = config;
    merged.peer_max_message_bytes = peer_max_message_bytes;
    Ok(merged)
}

/// The keys of the settings that name files or directories (read from
/// the flags' declarations: every setting parsed as a path).
fn path_settings() -> Vec<String> {
    let cli = Cli::command();
    let Some(server) = cli.find_subcommand("server") else {
        return Vec::new();
    };
    let path = ValueParser::path_buf().type_id();
    server
        .get_arguments()
        .filter(|a| a.get_value_parser().type_id() == path)
        .map(|a| a.get_id().as_str().to_string())
        .collect()
}

fn to_map(args: &ServerArgs) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::to_value(args) {
        Ok(Value::Object(map)) => Ok(map),
        other => Err(err(format!(
            "settings did not serialize as a map: {other:?}"
        ))),
    }
}

fn from_map(map: Map<String, Value>) -> Result<ServerArgs, ConfigError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| err(format!("settings: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_paths_in_it_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.toml");
        std::fs::write(
            &path,
            "node_id = 2\ndata_dir = \"data\"\npeers = \"1=a:1\"\ndev = true\naudit_keep = 3\n",
        )
        .unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.data_dir, Some(dir.path().join("data")));
        let flags = ServerArgs {
            node_id: Some(5),
            audit_max_bytes: Some(8192),
            config: Some(path.clone()),
            ..ServerArgs::default()
        };
        let merged = layered(file, flags).unwrap();
        assert_eq!(merged.node_id, Some(5));
        assert_eq!(merged.peers.as_deref(), Some("1=a:1"));
        assert!(merged.dev, "a switch turned on in the file stays on");
        assert_eq!(
            (merged.audit_keep, merged.audit_max_bytes),
            (Some(3), Some(8192))
        );
        assert_eq!(merged.config, Some(path));
    }

    #[test]
    fn unknown_keys_and_the_config_key_itself_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.toml");
        for text in ["node_idd = 1\n", "config = \"other.toml\"\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(read(&path).is_err(), "{text}");
        }
    }

    #[test]
    fn every_path_setting_is_known() {
        let keys = path_settings();
        for key in [
            "data_dir",
            "admin_token_file",
            "cluster_secret_file",
            "pki_ca_cert_file",
            "pki_ca_key_file",
            "tls_cert_file",
            "tls_key_file",
            "tls_ca_file",
            "audit_file",
        ] {
            assert!(keys.contains(&key.to_string()), "{key} in {keys:?}");
        }
    }

    /// The README's configuration table lists exactly the server's flags.
    #[test]
    fn the_readme_table_matches_the_flags() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("a Configuration section");
        let mut documented: Vec<String> = section
            .lines()
            .filter(|l| l.starts_with("| `--"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(|cell| {
                cell.split(',')
                    .map(|f| f.trim().trim_matches('`').to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let cli = Cli::command();
        let server = cli.find_subcommand("server").unwrap();
        let mut flags: Vec<String> = server
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "config")
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        flags.sort();
        assert_eq!(
            documented, flags,
            "README configuration table vs `keel server` flags"
        );
    }
}
