//! `group_by`: one output file per value of a resource attribute, as the
//! Collector's grouping file exporter does. The value replaces the `*` of
//! `path` (kept inside the part before the `*`: `..` cannot climb out);
//! resources without the attribute, or with a non-string value, are
//! dropped, logged and counted. At most `max_open_files` files stay open;
//! the least recently written one is closed to make room, and reopened for
//! appending when its value comes back.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tern_config::{FileConfig, Signal};
use tern_core::component::{Delivered, ExportError};
use tern_core::pdata::Batch;
use tern_core::wire::{self, WireError};

use super::writer::{Writer, create_directory};

/// Files by attribute value, with what is needed to open more.
#[derive(Debug)]
pub struct Groups {
    id: String,
    config: FileConfig,
    template: PathTemplate,
    attribute: String,
    max_open: usize,
    /// Open files by path, each with when it was last written.
    open: HashMap<PathBuf, (u64, Writer)>,
    /// Paths opened before in this run: reopened for appending.
    seen: HashSet<PathBuf>,
    clock: u64,
}

impl Groups {
    /// Groups for exporter `id` (validation made sure `path` has one `*`).
    pub fn new(id: &str, config: &FileConfig) -> Groups {
        Groups {
            id: id.to_string(),
            template: PathTemplate::new(&config.path),
            attribute: config.group_by.resource_attribute.clone(),
            max_open: usize::try_from(config.group_by.max_open_files)
                .unwrap_or(usize::MAX)
                .max(1),
            config: config.clone(),
            open: HashMap::new(),
            seen: HashSet::new(),
            clock: 0,
        }
    }

    /// Writes each resource of `batch` to the file of its attribute value.
    /// A file that cannot be written costs its own items; the error is
    /// returned only when nothing was written.
    pub fn write(&mut self, batch: &Batch) -> Result<Delivered, ExportError> {
        let signal = batch.signal();
        let split = split_by_attribute(signal, batch.chunks(), &self.attribute)
            .map_err(|e| ExportError::Encode(e.to_string()))?;
        let mut rejected = 0;
        if split.dropped > 0 {
            tracing::warn!(
                exporter = %self.id,
                %signal,
                items = split.dropped,
                attribute = %self.attribute,
                "dropped resources without a string resource attribute for group_by"
            );
            rejected += split.dropped as u64;
        }
        let mut first_error = None;
        let mut written = false;
        for (value, request) in split.groups {
            let group = Batch::from_wire(signal, request.freeze(), batch.context().clone())
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            let path = self.template.path(&value);
            let outcome = self
                .writer(path.clone())
                .map_err(ExportError::from)
                .and_then(|w| w.write(&group));
            match outcome {
                Ok(delivered) => {
                    written = true;
                    rejected += delivered.rejected;
                }
                Err(error) => {
                    tracing::warn!(
                        exporter = %self.id,
                        %signal,
                        items = group.items(),
                        path = %path.display(),
                        %error,
                        "could not write one group_by file"
                    );
                    rejected += group.items() as u64;
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(e) if !written => Err(e),
            _ => Ok(Delivered { rejected }),
        }
    }

    /// Flushes and syncs every open file.
    pub fn sync(&mut self) -> Result<(), ExportError> {
        for (_, writer) in self.open.values_mut() {
            writer.sync()?;
        }
        Ok(())
    }

    /// The open file for `path`, opening it (and its directories) when
    /// needed and closing the least recently written one if that makes
    /// more than `max_open_files`.
    fn writer(&mut self, path: PathBuf) -> std::io::Result<&mut Writer> {
        self.clock += 1;
        let now = self.clock;
        if !self.open.contains_key(&path) {
            if self.open.len() >= self.max_open
                && let Some(oldest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(p, _)| p.clone())
            {
                // Written through on every batch: closing loses nothing.
                self.open.remove(&oldest);
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_directory(dir, self.config.directory_mode().unwrap_or(0o755))?;
            }
            let append = self.config.append || self.seen.contains(&path);
            let writer = Writer::open(&self.id, path.clone(), append, &self.config)?;
            self.seen.insert(path.clone());
            self.open.insert(path.clone(), (now, writer));
        }
        let entry = self
            .open
            .get_mut(&path)
            .ok_or_else(|| std::io::Error::other("group_by file vanished"))?;
        entry.0 = now;
        Ok(&mut entry.1)
    }

    /// Files open now.
    #[cfg(test)]
    fn open_files(&self) -> usize {
        self.open.len()
    }
}

/// A batch cut by attribute value.
#[derive(Debug, Default)]
struct Split {
    /// (value, export request of the resources with it), in first-seen order.
    groups: Vec<(String, BytesMut)>,
    /// Items of resources without the attribute as a string.
    dropped: usize,
}

/// Cuts the requests of a batch into one request per value of resource
/// attribute `attribute`; resource messages are copied as they are.
fn split_by_attribute(
    signal: Signal,
    requests: &[Bytes],
    attribute: &str,
) -> Result<Split, WireError> {
    let mut split = Split::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    for request in requests {
        for field in wire::fields(request) {
            let field = field?;
            // Field 1 of every export request: resource_spans / _metrics / _logs.
            if field.number != 1 || field.wire_type != 2 {
                continue;
            }
            match resource_attribute(field.payload, attribute)? {
                Some(value) => {
                    let slot = *index.entry(value.to_string()).or_insert_with(|| {
                        split.groups.push((value.to_string(), BytesMut::new()));
                        split.groups.len() - 1
                    });
                    split.groups[slot].1.extend_from_slice(field.raw);
                }
                None => split.dropped += wire::count_items(signal, field.raw)?,
            }
        }
    }
    Ok(split)
}

/// The string value of attribute `key` of the resource in a
/// `Resource{Spans,Metrics,Logs}` message (the first one with that key, as
/// pdata's lookup); `None` when absent or not a string.
fn resource_attribute<'a>(resource_x: &'a [u8], key: &str) -> Result<Option<&'a str>, WireError> {
    // ResourceX.resource(1) -> Resource.attributes(1) -> KeyValue{key(1), value(2)}
    // -> AnyValue.string_value(1).
    for resource in wire::fields(resource_x) {
        let resource = resource?;
        if resource.number != 1 || resource.wire_type != 2 {
            continue;
        }
        for kv in wire::fields(resource.payload) {
            let kv = kv?;
            if kv.number != 1 || kv.wire_type != 2 {
                continue;
            }
            let (mut name, mut value) = (None, None);
            for part in wire::fields(kv.payload) {
                let part = part?;
                match (part.number, part.wire_type) {
                    (1, 2) => name = Some(part.payload),
                    (2, 2) => value = Some(part.payload),
                    _ => {}
                }
            }
            if name != Some(key.as_bytes()) {
                continue;
            }
            let mut text = None;
            for any in wire::fields(value.unwrap_or_default()) {
                let any = any?;
                // The last value field set wins (a oneof).
                text = (any.number == 1 && any.wire_type == 2)
                    .then(|| std::str::from_utf8(any.payload).ok())
                    .flatten();
            }
            return Ok(text);
        }
        return Ok(None);
    }
    Ok(None)
}

/// `path` split at its `*`, and the Collector's rules for putting a value
/// there.
#[derive(Debug, Clone)]
struct PathTemplate {
    /// Before the `*`, cleaned (a trailing `/` kept).
    prefix: String,
    /// After the `*`.
    suffix: String,
}

impl PathTemplate {
    fn new(path: &str) -> PathTemplate {
        let (prefix, suffix) = path.split_once('*').unwrap_or((path, ""));
        let mut cleaned = clean(prefix);
        if prefix.ends_with('/') && !cleaned.ends_with('/') {
            cleaned.push('/');
        }
        PathTemplate {
            prefix: cleaned,
            suffix: suffix.to_string(),
        }
    }

    /// The file for `value`: the `*` replaced and the path cleaned; a value
    /// that would lead outside the prefix is rooted under it instead
    /// (`../../etc/x` -> `<prefix>/etc/x<suffix>`).
    fn path(&self, value: &str) -> PathBuf {
        let value = if value.starts_with("./") {
            &value[1..]
        } else if value.starts_with("../") {
            &value[2..]
        } else {
            value
        };
        let full = clean(&format!("{}{value}{}", self.prefix, self.suffix));
        if full.starts_with(&self.prefix) {
            return PathBuf::from(full);
        }
        let rooted = clean(&format!("/{value}{}", self.suffix));
        PathBuf::from(clean(&format!("{}/{rooted}", self.prefix)))
    }
}

/// Lexical path cleaning as Go's `path.Clean`: no empty or `.` elements,
/// `..` resolved against what precedes it (and dropped at the root).
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    use std::sync::Arc;
    use tern_config::{FileGroupBy, Protocol, RotationConfig};
    use tern_core::pdata::RequestContext;

    #[test]
    fn values_replace_the_star_and_cannot_leave_the_prefix() {
        // (prefix, value, suffix, file), as the Collector's fullPath.
        let cases = [
            ("/", "filename", ".json", "/filename.json"),
            ("/", "/dir/filename", ".json", "/dir/filename.json"),
            (
                "/dir",
                "dirsuffix/filename",
                ".json",
                "/dirdirsuffix/filename.json",
            ),
            (
                "/dir",
                "/subdir/filename",
                ".json",
                "/dir/subdir/filename.json",
            ),
            ("/dir", "./filename", ".json", "/dir/filename.json"),
            (
                "/dir",
                "/subdir/",
                "filename.json",
                "/dir/subdir/filename.json",
            ),
            (
                "/dir/",
                "subdir",
                "/filename.json",
                "/dir/subdir/filename.json",
            ),
            ("/dir", "", "filename.json", "/dirfilename.json"),
            ("/dir/", "", "filename.json", "/dir/filename.json"),
            ("/dir/", "sub/odd/../", "f.json", "/dir/sub/f.json"),
            ("/dir", "../etc/attack", ".json", "/dir/etc/attack.json"),
            ("/dir", "../etc/attack", "/f.json", "/dir/etc/attack/f.json"),
            ("/dir", "x/../etc/attack", ".json", "/dir/etc/attack.json"),
            (
                "/dir",
                "x/../../etc/attack",
                ".json",
                "/dir/etc/attack.json",
            ),
            ("out/", "../../a", ".jsonl", "out/a.jsonl"),
            ("./out/", "a", ".jsonl", "out/a.jsonl"),
        ];
        for (prefix, value, suffix, want) in cases {
            let template = PathTemplate::new(&format!("{prefix}*{suffix}"));
            assert_eq!(
                template.path(value),
                PathBuf::from(want),
                "{prefix} + {value} + {suffix}"
            );
        }
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean(""), ".");
    }

    fn resource(attrs: Vec<KeyValue>, records: usize) -> ResourceLogs {
        ResourceLogs {
            resource: Some(Resource {
                attributes: attrs,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); records],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn segment(value: &str) -> KeyValue {
        kv(
            "fileexporter.path_segment",
            any_value::Value::StringValue(value.into()),
        )
    }

    fn batch(resources: Vec<ResourceLogs>) -> Batch {
        let req = ExportLogsServiceRequest {
            resource_logs: resources,
        };
        Batch::from_wire(
            Signal::Logs,
            Bytes::from(req.encode_to_vec()),
            Arc::new(RequestContext::default()),
        )
        .unwrap()
    }

    fn read(path: &std::path::Path) -> Vec<ExportLogsServiceRequest> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn config(dir: &std::path::Path, max_open_files: u64) -> FileConfig {
        FileConfig {
            path: format!("{}/*/out.jsonl", dir.display()),
            group_by: FileGroupBy {
                enabled: true,
                max_open_files,
                ..FileGroupBy::default()
            },
            ..FileConfig::default()
        }
    }

    #[test]
    fn resources_go_to_the_file_of_their_value_and_the_rest_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut groups = Groups::new("file", &config(dir.path(), 100));
        let a1 = resource(
            vec![kv("x", any_value::Value::IntValue(1)), segment("a")],
            2,
        );
        let b = resource(vec![segment("b")], 1);
        let a2 = resource(vec![segment("a"), segment("ignored")], 3);
        let none = resource(vec![], 4);
        let not_string = resource(
            vec![kv(
                "fileexporter.path_segment",
                any_value::Value::IntValue(7),
            )],
            5,
        );
        let delivered = groups
            .write(&batch(vec![
                a1.clone(),
                none,
                b.clone(),
                not_string,
                a2.clone(),
            ]))
            .unwrap();
        groups.sync().unwrap();
        assert_eq!(delivered.rejected, 9);
        let got = read(&dir.path().join("a/out.jsonl"));
        assert_eq!(
            got,
            vec![ExportLogsServiceRequest {
                resource_logs: vec![a1, a2]
            }]
        );
        let got = read(&dir.path().join("b/out.jsonl"));
        assert_eq!(
            got,
            vec![ExportLogsServiceRequest {
                resource_logs: vec![b]
            }]
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn at_most_max_open_files_stay_open_and_a_closed_file_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let mut groups = Groups::new("file", &config(dir.path(), 2));
        let values = ["a", "b", "c", "a", "b", "c", "a"];
        for value in values {
            groups
                .write(&batch(vec![resource(vec![segment(value)], 1)]))
                .unwrap();
            assert!(groups.open_files() <= 2);
        }
        groups.sync().unwrap();
        for (value, lines) in [("a", 3), ("b", 2), ("c", 2)] {
            assert_eq!(read(&dir.path().join(value).join("out.jsonl")).len(), lines);
        }
    }

    #[test]
    fn each_file_rotates_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), 10);
        cfg.path = format!("{}/out-*.jsonl", dir.path().display());
        cfg.rotation = Protocol::On(RotationConfig {
            max_megabytes: 1,
            max_backups: 1,
            ..RotationConfig::default()
        });
        let big = || {
            let mut r = resource(vec![segment("big")], 1);
            r.scope_logs[0].log_records[0].body = Some(AnyValue {
                value: Some(any_value::Value::StringValue("z".repeat(700 * 1024))),
            });
            r
        };
        let mut groups = Groups::new("file", &cfg);
        for _ in 0..3 {
            groups.write(&batch(vec![big()])).unwrap();
            groups
                .write(&batch(vec![resource(vec![segment("small")], 1)]))
                .unwrap();
            // Distinct millisecond timestamps for backup names.
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        groups.sync().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // big: its file and one backup; small: one file, never rotated.
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"out-big.jsonl".to_string()));
        assert!(names.contains(&"out-small.jsonl".to_string()));
        assert_eq!(read(&dir.path().join("out-small.jsonl")).len(), 3);
    }
}
