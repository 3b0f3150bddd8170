//! A config held in a string, loaded as the one file `tern.yaml` with no
//! environment variables set: the helpers the key and graph tests share.

// Each test file uses the part it needs.
#![allow(dead_code)]

use tern_config::{Config, ConfigErrors, load_sources};

/// Loads `text` as `tern.yaml`.
pub fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_sources(&[("tern.yaml".into(), text.into())], &|_| None)
}

/// The messages of a config that must not load.
pub fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}
