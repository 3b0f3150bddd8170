//! YAML to a located tree ([`Node`]): every scalar, sequence and mapping keeps
//! the file, line and column it came from, so later errors can point at it.
//! Also merges several files (later wins) and expands `${env:VAR}` references.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::ConfigError;

/// Where a node starts: file, 1-based line and 1-based column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// The file the node was read from (or `<embedded>`).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A YAML value with its location.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where it starts.
    pub loc: Loc,
}

/// The shape of a YAML value.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// `~`, `null` or nothing at all.
    Null,
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar { value: String, plain: bool },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string form of a scalar key or value, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Looks up `key` in a mapping, or the item at index `key` of a sequence.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            NodeKind::Seq(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    }

    /// Where a problem with the value at `path` is reported: the value's
    /// own position for a scalar, the key's for a mapping or sequence (whose
    /// position is that of its first entry, inside it), and the deepest
    /// node found on the way when the path stops early.
    pub fn locate(&self, path: &[&str]) -> &Loc {
        let mut node = self;
        let mut key_loc = None;
        for key in path {
            let entry = match &node.kind {
                NodeKind::Map(entries) => entries
                    .iter()
                    .rev()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(k, v)| (Some(&k.loc), v)),
                _ => node.get(key).map(|v| (None, v)),
            };
            match entry {
                Some((k, v)) => {
                    key_loc = k;
                    node = v;
                }
                None => return &node.loc,
            }
        }
        match (&node.kind, key_loc) {
            (NodeKind::Map(_) | NodeKind::Seq(_), Some(k)) => k,
            _ => &node.loc,
        }
    }

    /// Looks up a chain of keys; returns the deepest node found on the way.
    pub fn deepest<'a>(&'a self, path: &[&str]) -> &'a Node {
        let mut node = self;
        for key in path {
            match node.get(key) {
                Some(next) => node = next,
                None => break,
            }
        }
        node
    }

    /// The items of a list: a sequence's, none for null, and for a scalar its
    /// comma-separated parts (the Collector's decoder turns a string into a
    /// list that way; `""` is an empty list). `None` for a mapping.
    pub fn list_items(&self) -> Option<Cow<'_, [Node]>> {
        match &self.kind {
            NodeKind::Seq(items) => Some(Cow::Borrowed(items)),
            NodeKind::Null => Some(Cow::Borrowed(&[])),
            NodeKind::Scalar { value, .. } if value.is_empty() => Some(Cow::Borrowed(&[])),
            NodeKind::Scalar { value, plain } => Some(Cow::Owned(
                value
                    .split(',')
                    .map(|part| Node {
                        kind: NodeKind::Scalar {
                            value: part.to_string(),
                            plain: *plain,
                        },
                        loc: self.loc.clone(),
                    })
                    .collect(),
            )),
            NodeKind::Map(_) => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// A short name of the node's shape, for messages.
    pub fn shape(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a sequence",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. An empty document is an empty mapping. A key
/// written twice in one mapping is an error, as in the Collector's YAML
/// parser; every such key is reported. Merge keys (`<<: *anchor`) work as
/// there: the mapping gets the anchored mapping's entries it does not have.
pub fn parse(file: &str, text: &str) -> Result<Node, Vec<ConfigError>> {
    let file: Arc<str> = Arc::from(file);
    Ok(parse_document(&file, text)?.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        loc: Loc {
            file,
            line: 1,
            col: 1,
        },
    }))
}

/// Parses one YAML document; `None` when it holds no value at all.
fn parse_document(file: &Arc<str>, text: &str) -> Result<Option<Node>, Vec<ConfigError>> {
    let mut builder = TreeBuilder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        problems: Vec::new(),
        end: end_of(text),
    };
    let end = builder.end;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            vec![ConfigError {
                loc: Some({
                    let (line, col) = within(end, e.marker().line(), e.marker().col() + 1);
                    Loc {
                        file: file.clone(),
                        line,
                        col,
                    }
                }),
                key: String::new(),
                message: format!("invalid YAML: {}", e.info()),
            }]
        })?;
        builder.event(event, span).map_err(|e| vec![e])?;
    }
    if !builder.problems.is_empty() {
        return Err(builder.problems);
    }
    Ok(builder.root)
}

/// The last line of `text` and the column after its end, as YAML counts
/// lines (CR LF, CR and LF each end one).
fn end_of(text: &str) -> (usize, usize) {
    let text = text.replace("\r\n", "\n");
    let last = text.rsplit(['\n', '\r']).next().unwrap_or_default();
    (text.split(['\n', '\r']).count(), last.chars().count() + 1)
}

/// `line:col`, or `end` where the parser points past the text's last line
/// (it puts the end of input, and nodes that end there, at the start of
/// the line after the last; found by fuzzing).
fn within(end: (usize, usize), line: usize, col: usize) -> (usize, usize) {
    if line > end.0 { end } else { (line, col) }
}

enum Frame {
    Seq(Node, usize),
    /// A mapping, its anchor, a key waiting for its value, and the entries
    /// its merge keys (`<<`) brought in, added at its end unless written out.
    Map(Node, usize, Option<Node>, Vec<(Node, Node)>),
}

struct TreeBuilder {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    /// Keys written twice in one mapping, merge keys with a wrong value.
    problems: Vec<ConfigError>,
    /// Where the text ends ([`end_of`]).
    end: (usize, usize),
}

impl TreeBuilder {
    fn loc(&self, span: Span) -> Loc {
        let (line, col) = within(self.end, span.start.line(), span.start.col() + 1);
        Loc {
            file: self.file.clone(),
            line,
            col,
        }
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ConfigError> {
        match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let kind = if plain && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar {
                        value: value.into_owned(),
                        plain,
                    }
                };
                let node = Node {
                    kind,
                    loc: self.loc(span),
                };
                self.push_value(node, anchor);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| ConfigError {
                    loc: Some(self.loc(span)),
                    key: String::new(),
                    message: "alias refers to an unknown anchor".into(),
                })?;
                self.push_value(node, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let node = Node {
                    kind: NodeKind::Seq(Vec::new()),
                    loc: self.loc(span),
                };
                self.stack.push(Frame::Seq(node, anchor));
            }
            Event::MappingStart(anchor, _) => {
                let node = Node {
                    kind: NodeKind::Map(Vec::new()),
                    loc: self.loc(span),
                };
                self.stack.push(Frame::Map(node, anchor, None, Vec::new()));
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(node, anchor)) => self.push_value(node, anchor),
                Some(Frame::Map(mut node, anchor, _, merged)) => {
                    if let NodeKind::Map(entries) = &mut node.kind {
                        for (key, value) in merged {
                            if !entries.iter().any(|(k, _)| k.as_str() == key.as_str()) {
                                entries.push((key, value));
                            }
                        }
                    }
                    self.push_value(node, anchor);
                }
                None => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq, _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending, merged)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) if is_merge_key(&key) => {
                    if let Err(message) = merge_sources(&node, merged) {
                        self.problems.push(ConfigError {
                            loc: Some(node.loc),
                            key: String::new(),
                            message,
                        });
                    }
                }
                Some(key) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        let earlier = entries
                            .iter()
                            .find(|(k, _)| k.as_str().is_some() && k.as_str() == key.as_str());
                        match earlier {
                            Some((first, _)) => self.problems.push(ConfigError {
                                message: format!(
                                    "mapping key `{}` already defined at line {}",
                                    key.as_str().unwrap_or_default(),
                                    first.loc.line
                                ),
                                loc: Some(key.loc),
                                key: String::new(),
                            }),
                            None => entries.push((key, node)),
                        }
                    }
                }
            },
        }
    }
}

/// The YAML merge key: a plain `<<` (a quoted one is an ordinary key).
fn is_merge_key(key: &Node) -> bool {
    matches!(&key.kind, NodeKind::Scalar { value, plain: true } if value == "<<")
}

/// Adds the entries a merge key's value brings (a mapping, or a list of
/// mappings where an earlier one wins) to `merged`, where an entry already
/// there wins. The mapping's own keys win over all of them (at its end).
fn merge_sources(value: &Node, merged: &mut Vec<(Node, Node)>) -> Result<(), String> {
    let sources: Vec<&Node> = match &value.kind {
        NodeKind::Map(_) => vec![value],
        NodeKind::Seq(items) => items.iter().collect(),
        _ => Vec::new(),
    };
    if sources.is_empty() || sources.iter().any(|n| !matches!(n.kind, NodeKind::Map(_))) {
        return Err(
            "the merge key `<<` needs a mapping or a list of mappings (an alias such as `*name`)"
                .into(),
        );
    }
    for source in sources {
        if let NodeKind::Map(entries) = &source.kind {
            for (key, v) in entries {
                if !merged.iter().any(|(k, _)| k.as_str() == key.as_str()) {
                    merged.push((key.clone(), v.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Deep-merges `over` into `base`: mappings merge key by key, anything else
/// is replaced (the OpenTelemetry Collector's rule for several `--config`).
pub fn merge(base: &mut Node, over: Node) {
    match (&mut base.kind, over.kind) {
        (NodeKind::Map(entries), NodeKind::Map(over_entries)) => {
            for (key, value) in over_entries {
                let existing = entries
                    .iter_mut()
                    .find(|(k, _)| k.as_str().is_some() && k.as_str() == key.as_str());
                match existing {
                    Some((_, slot)) => merge(slot, value),
                    None => entries.push((key, value)),
                }
            }
        }
        (_, kind) => {
            base.kind = kind;
            base.loc = over.loc;
        }
    }
}

/// An environment variable that a value used without a default and that was
/// unset or empty: a later problem with that value names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNote {
    /// Where the value is written.
    pub loc: Loc,
    /// The variable.
    pub var: String,
    /// True when unset, false when set to the empty string.
    pub unset: bool,
}

impl EnvNote {
    /// `` `${env:VAR}` is unset `` or `` ... is empty ``.
    pub fn describe(&self) -> String {
        let state = if self.unset { "unset" } else { "empty" };
        format!("`${{env:{}}}` is {state}", self.var)
    }
}

/// Expands `${env:VAR}`, `${env:VAR:-default}` and `${VAR}` in every scalar
/// value (not keys) and turns `$$` into `$`. A value that is one whole
/// reference to YAML for a list or a mapping becomes that list or mapping. `lookup` supplies the variables,
/// so this stays pure and testable. Unknown providers and invalid variable
/// names are errors. Returns the variables that were unset or empty.
pub fn expand_env(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<EnvNote> {
    let mut notes = Vec::new();
    expand_node(node, lookup, errors, &mut notes);
    notes
}

fn expand_node(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    notes: &mut Vec<EnvNote>,
) {
    match &mut node.kind {
        NodeKind::Scalar { value, .. } => {
            if value.contains('$') {
                let mut missing = Vec::new();
                let whole = is_one_reference(value);
                match expand(value, lookup, &mut missing) {
                    Ok(expanded) => match whole.then(|| structured(&expanded, &node.loc)) {
                        Some(Some(tree)) => node.kind = tree,
                        _ => *value = expanded,
                    },
                    Err(message) => errors.push(ConfigError {
                        loc: Some(node.loc.clone()),
                        key: String::new(),
                        message,
                    }),
                }
                notes.extend(missing.into_iter().map(|(var, unset)| EnvNote {
                    loc: node.loc.clone(),
                    var,
                    unset,
                }));
            }
        }
        NodeKind::Seq(items) => {
            for item in items {
                expand_node(item, lookup, errors, notes);
            }
        }
        NodeKind::Map(entries) => {
            for (_, value) in entries {
                expand_node(value, lookup, errors, notes);
            }
        }
        NodeKind::Null => {}
    }
}

/// True when `value` is one `${...}` reference and nothing else.
fn is_one_reference(value: &str) -> bool {
    value.starts_with("${") && value.find('}') == Some(value.len() - 1)
}

/// A variable's value that is YAML for a list or a mapping, as a tree placed
/// at the value that referenced it: like the Collector, a value that is one
/// whole `${...}` reference is read as YAML (scalars stay as they are).
fn structured(text: &str, at: &Loc) -> Option<NodeKind> {
    let mut tree = parse_document(&at.file, text).ok()??;
    if !matches!(tree.kind, NodeKind::Seq(_) | NodeKind::Map(_)) {
        return None;
    }
    relocate(&mut tree, at);
    Some(tree.kind)
}

/// Places `node` and everything in it at `at`.
fn relocate(node: &mut Node, at: &Loc) {
    node.loc = at.clone();
    match &mut node.kind {
        NodeKind::Seq(items) => items.iter_mut().for_each(|n| relocate(n, at)),
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                relocate(key, at);
                relocate(value, at);
            }
        }
        NodeKind::Null | NodeKind::Scalar { .. } => {}
    }
}

/// Expands one string; see [`expand_env`].
pub fn expand_str(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    expand(input, lookup, &mut Vec::new())
}

/// A variable name the Collector accepts: `^[a-zA-Z_][a-zA-Z0-9_]*$`.
fn valid_var_name(var: &str) -> bool {
    var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `input`; variables used without a default that are unset
/// (`true`) or empty (`false`) go to `missing`.
fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<(String, bool)>,
) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {input:?}"))?;
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            let var = match name.split_once(':') {
                Some(("env", var)) => var,
                Some((scheme, _)) => {
                    return Err(format!(
                        "unsupported config provider `{scheme}` in `${{{reference}}}` (Tern supports `env`)"
                    ));
                }
                None => name,
            };
            if !valid_var_name(var) {
                return Err(format!(
                    "environment variable `{var}` in `${{{reference}}}` has an invalid name: it must match ^[a-zA-Z_][a-zA-Z0-9_]*$"
                ));
            }
            match (lookup(var), default) {
                (Some(value), _) => {
                    if value.is_empty() {
                        missing.push((var.to_string(), false));
                    }
                    out.push_str(&value);
                }
                (None, Some(default)) => out.push_str(default),
                (None, None) => missing.push((var.to_string(), true)),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// Found by fuzzing: an unclosed flow mapping on the last line was
    /// reported on the line after it.
    #[test]
    fn unexpected_end_points_inside_the_file() {
        let errors = parse("c.yaml", "{eceivers: {otlp:://").unwrap_err();
        let loc = errors[0].loc.as_ref().unwrap();
        assert_eq!((loc.line, loc.col), (1, 21), "{}", errors[0]);
        let errors = parse("c.yaml", "a: 1\r\nb: [\r\n").unwrap_err();
        let loc = errors[0].loc.as_ref().unwrap();
        assert!(loc.line <= 3, "{}", errors[0]);
        // An empty explicit key at the end: its node too.
        let root = parse("c.yaml", "?      ").unwrap();
        let NodeKind::Map(entries) = &root.kind else {
            panic!("a mapping");
        };
        assert_eq!((entries[0].0.loc.line, entries[0].0.loc.col), (1, 8));
    }

    #[test]
    fn expands_every_form() {
        assert_eq!(
            expand_str("${env:HOST}:4317", &env).unwrap(),
            "example.com:4317"
        );
        assert_eq!(expand_str("${HOST}", &env).unwrap(), "example.com");
        assert_eq!(
            expand_str("${env:MISSING:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(
            expand_str("${env:HOST:-fallback}", &env).unwrap(),
            "example.com"
        );
        assert_eq!(expand_str("${env:MISSING}", &env).unwrap(), "");
        assert_eq!(expand_str("$${env:HOST}", &env).unwrap(), "${env:HOST}");
        assert_eq!(expand_str("price $5", &env).unwrap(), "price $5");
        assert_eq!(expand_str("a$$b", &env).unwrap(), "a$b");
    }

    #[test]
    fn rejects_bad_references() {
        assert!(
            expand_str("${env:HOST", &env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand_str("${file:/x}", &env)
                .unwrap_err()
                .contains("provider `file`")
        );
        assert!(
            expand_str("${env:A B}", &env)
                .unwrap_err()
                .contains("invalid")
        );
        for bad in ["${env:1BAD}", "${1BAD}", "${env:}", "${env:A-B}"] {
            assert!(
                expand_str(bad, &env).unwrap_err().contains("invalid name"),
                "{bad}"
            );
        }
        assert_eq!(expand_str("${env:_OK1}", &env).unwrap(), "");
    }

    #[test]
    fn notes_unset_and_empty_variables_at_their_value() {
        let mut root = parse(
            "f",
            "a: ${env:MISSING}\nb: x${env:EMPTY}\nc: ${env:MISSING:-d}\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let notes = expand_env(&mut root, &env, &mut errors);
        assert!(errors.is_empty());
        let described: Vec<(usize, String)> =
            notes.iter().map(|n| (n.loc.line, n.describe())).collect();
        assert_eq!(
            described,
            [
                (1, "`${env:MISSING}` is unset".to_string()),
                (2, "`${env:EMPTY}` is empty".to_string())
            ]
        );
    }

    #[test]
    fn keeps_lines_and_columns() {
        let doc = "a:\n  b: 1\n  c:\n    - x\n    - y\n";
        let root = parse("f.yaml", doc).unwrap();
        let b = root.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.loc.line, b.loc.col), (2, 6));
        match &root.get("a").unwrap().get("c").unwrap().kind {
            NodeKind::Seq(items) => assert_eq!(items[1].loc.line, 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_syntax_errors_with_location() {
        let err = parse("bad.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err[0].to_string().starts_with("bad.yaml:"), "{err:?}");
    }

    #[test]
    fn merge_later_wins_and_maps_merge() {
        let mut a = parse("a", "x: {p: 1, q: 2}\nl: [1]\n").unwrap();
        let b = parse("b", "x: {q: 3}\nl: [2, 3]\n").unwrap();
        merge(&mut a, b);
        let x = a.get("x").unwrap();
        assert_eq!(x.get("p").unwrap().as_str(), Some("1"));
        assert_eq!(x.get("q").unwrap().as_str(), Some("3"));
        assert_eq!(x.get("q").unwrap().loc.file.as_ref(), "b");
        match &a.get("l").unwrap().kind {
            NodeKind::Seq(items) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anchors_and_nulls() {
        let root = parse("f", "a: &x {k: v}\nb: *x\nc:\nd: ~\n").unwrap();
        assert_eq!(root.get("b").unwrap().get("k").unwrap().as_str(), Some("v"));
        assert!(root.get("c").unwrap().is_null());
        assert!(root.get("d").unwrap().is_null());
    }
}
