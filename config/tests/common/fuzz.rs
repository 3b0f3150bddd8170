//! The check behind the `config` fuzz target (`fuzz/`), replayed over its
//! committed corpus by `tests/fuzz_corpus.rs`: any text loaded as a config
//! file (YAML parsing, `${env:…}` expansion, typing, validation) never
//! panics, and every problem it reports, error or warning, points at a
//! line and column of that file.

use tern_config::{ConfigError, load_sources};

/// The file name problems must carry.
const FILE: &str = "fuzz.yaml";

/// The environment the text's `${env:…}` references see.
fn env(name: &str) -> Option<String> {
    match name {
        "PORT" => Some("4317".into()),
        "HOST" => Some("127.0.0.1".into()),
        "EMPTY" => Some(String::new()),
        "YAML" => Some("{a: [1, 2], b: ${env:PORT}}".into()),
        _ => None,
    }
}

/// See the module docs.
pub fn check(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    // Lines as YAML counts them: CR LF, CR and LF each end one.
    let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
    let at_a_line = |e: &ConfigError| {
        let Some(loc) = &e.loc else {
            panic!("no file:line for `{e}`");
        };
        assert_eq!(&*loc.file, FILE, "`{e}` names another file");
        assert!(
            (1..=lines).contains(&loc.line) && loc.col >= 1,
            "`{e}` points outside the file's {lines} lines"
        );
        assert!(!e.message.is_empty(), "`{e}` says nothing");
    };
    match load_sources(&[(FILE.into(), text.into())], &env) {
        Ok(config) => config.warnings.iter().for_each(at_a_line),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without a reason");
            errors.0.iter().for_each(at_a_line);
        }
    }
}
