//! The series both Prometheus exporters keep: the latest value of every
//! series, with delta points accumulated into cumulative series (the
//! Collector drops those; Tern does not), a cap on the number of series
//! (new ones over `max_series` are dropped and counted per metric), and
//! expiry of series not updated within `metric_expiration`. Sharded by
//! metric name, so rendering a scrape locks one shard at a time and
//! ingestion into the other shards goes on.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::translate::{Exemplar, ExpBuckets, Kind, Observation, Value};

const SHARDS: usize = 16;

/// Why a point was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The series would pass `max_series`.
    SeriesLimit,
    /// The name is already used by a metric of another type.
    TypeConflict,
    /// Nothing but underscores is left of the metric's name once escaped
    /// (found by the translation, before the store).
    InvalidName,
}

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Sorted labels.
    pub labels: Vec<(String, String)>,
    /// Cumulative value.
    pub value: Value,
    /// Time of the latest point, in milliseconds.
    pub timestamp_ms: i64,
    /// When it was last updated.
    pub updated: Instant,
    /// The latest exemplar, if any.
    pub exemplar: Option<Exemplar>,
}

/// All series of one metric name.
#[derive(Debug, Clone)]
pub struct Family {
    /// Type.
    pub kind: Kind,
    /// Description.
    pub help: String,
    /// Series by their rendered label set.
    pub series: HashMap<String, Series>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Store {
    shards: Vec<Mutex<HashMap<String, Family>>>,
    max_series: usize,
    count: AtomicUsize,
    expiration: Duration,
}

/// `k="v",...` with Prometheus escaping: a series' key in its family.
pub fn label_text(labels: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        super::escaping::write_escaped(&mut s, v);
        s.push('"');
    }
    s
}

fn add_exp(into: &mut ExpBuckets, from: &ExpBuckets) {
    if from.counts.is_empty() {
        return;
    }
    if into.counts.is_empty() {
        *into = from.clone();
        return;
    }
    let start = into.offset.min(from.offset);
    let end = (into.offset + into.counts.len() as i32).max(from.offset + from.counts.len() as i32);
    let mut merged = vec![0u64; (end - start) as usize];
    for (i, c) in into.counts.iter().enumerate() {
        merged[(into.offset - start) as usize + i] += c;
    }
    for (i, c) in from.counts.iter().enumerate() {
        merged[(from.offset - start) as usize + i] += c;
    }
    *into = ExpBuckets {
        offset: start,
        counts: merged,
    };
}

/// Adds delta `d` onto cumulative `v` when their shapes match; otherwise
/// the delta starts a new cumulative series.
fn accumulate(v: &mut Value, d: &Value) {
    match (v, d) {
        (Value::Number(a), Value::Number(b)) => *a += *b,
        (
            Value::Histogram {
                count,
                sum,
                bounds,
                counts,
            },
            Value::Histogram {
                count: c2,
                sum: s2,
                bounds: b2,
                counts: n2,
            },
        ) if bounds == b2 => {
            *count += c2;
            *sum += s2;
            for (a, b) in counts.iter_mut().zip(n2) {
                *a += b;
            }
        }
        (
            Value::Exponential {
                count,
                sum,
                scale,
                zero_count,
                positive,
                negative,
                ..
            },
            Value::Exponential {
                count: c2,
                sum: s2,
                scale: sc2,
                zero_count: z2,
                positive: p2,
                negative: n2,
                ..
            },
        ) if scale == sc2 => {
            *count += c2;
            *sum += s2;
            *zero_count += z2;
            add_exp(positive, p2);
            add_exp(negative, n2);
        }
        (v, d) => v.clone_from(d),
    }
}

impl Store {
    /// A store holding at most `max_series` series, each forgotten
    /// `expiration` after its last update.
    pub fn new(max_series: usize, expiration: Duration) -> Self {
        Store {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max_series,
            count: AtomicUsize::new(0),
            expiration,
        }
    }

    fn shard(&self, name: &str) -> std::sync::MutexGuard<'_, HashMap<String, Family>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        self.shards[(h.finish() as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Series currently held.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when no series are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `obs` and returns the series' cumulative value after it.
    pub fn apply(&self, obs: &Observation) -> Result<Value, Dropped> {
        let mut shard = self.shard(&obs.name);
        // Look up first: the name is copied only for a new family.
        if let Some(family) = shard.get_mut(&obs.name) {
            return self.update(family, obs);
        }
        let family = shard.entry(obs.name.clone()).or_insert_with(|| Family {
            kind: obs.kind,
            help: obs.help.clone(),
            series: HashMap::new(),
        });
        self.update(family, obs)
    }

    fn update(&self, family: &mut Family, obs: &Observation) -> Result<Value, Dropped> {
        if family.kind != obs.kind {
            return Err(Dropped::TypeConflict);
        }
        let key = label_text(&obs.labels);
        let exemplar = obs.exemplars.last().cloned();
        match family.series.get_mut(&key) {
            Some(s) => {
                if obs.delta {
                    accumulate(&mut s.value, &obs.value);
                } else {
                    s.value.clone_from(&obs.value);
                }
                s.timestamp_ms = s.timestamp_ms.max(obs.timestamp_ms);
                s.updated = Instant::now();
                if exemplar.is_some() {
                    s.exemplar = exemplar;
                }
                Ok(s.value.clone())
            }
            None => {
                let claimed = self
                    .count
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.max_series).then_some(n + 1)
                    });
                if claimed.is_err() {
                    return Err(Dropped::SeriesLimit);
                }
                let value = obs.value.clone();
                family.series.insert(
                    key,
                    Series {
                        labels: obs.labels.clone(),
                        value: obs.value.clone(),
                        timestamp_ms: obs.timestamp_ms,
                        updated: Instant::now(),
                        exemplar,
                    },
                );
                Ok(value)
            }
        }
    }

    /// Removes series not updated for `metric_expiration` and returns them
    /// as (name, kind, series).
    pub fn expire(&self, now: Instant) -> Vec<(String, Kind, Series)> {
        let mut gone = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (name, family) in shard.iter_mut() {
                let kind = family.kind;
                let expired: Vec<String> = family
                    .series
                    .iter()
                    .filter(|(_, s)| now.saturating_duration_since(s.updated) >= self.expiration)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    if let Some(s) = family.series.remove(&key) {
                        gone.push((name.clone(), kind, s));
                    }
                }
            }
            shard.retain(|_, f| !f.series.is_empty());
        }
        self.count.fetch_sub(gone.len(), Ordering::AcqRel);
        gone
    }

    /// Calls `f` with each family, one shard locked at a time, names sorted
    /// within a shard.
    pub fn for_each_family(&self, mut f: impl FnMut(&str, &Family)) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let mut names: Vec<&String> = shard.keys().collect();
            names.sort();
            for name in names {
                f(name, &shard[name]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(
        name: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: Value,
        delta: bool,
    ) -> Observation {
        Observation {
            name: name.into(),
            help: String::new(),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp_ms: 1,
            value,
            delta,
            exemplars: Vec::new(),
            target_info: false,
            truncated_labels: 0,
        }
    }

    #[test]
    fn deltas_accumulate_and_cumulatives_replace() {
        let s = Store::new(10, Duration::from_secs(60));
        let c = |v: f64, delta| {
            obs(
                "x_total",
                Kind::Counter,
                &[("a", "1")],
                Value::Number(v),
                delta,
            )
        };
        assert_eq!(s.apply(&c(2.0, true)), Ok(Value::Number(2.0)));
        assert_eq!(s.apply(&c(3.0, true)), Ok(Value::Number(5.0)));
        assert_eq!(s.apply(&c(10.0, false)), Ok(Value::Number(10.0)));
        let h = |counts: Vec<u64>| Value::Histogram {
            count: counts.iter().sum(),
            sum: 1.0,
            bounds: vec![1.0],
            counts,
        };
        s.apply(&obs("h", Kind::Histogram, &[], h(vec![1, 2]), true))
            .unwrap();
        let v = s
            .apply(&obs("h", Kind::Histogram, &[], h(vec![3, 4]), true))
            .unwrap();
        assert_eq!(
            v,
            Value::Histogram {
                count: 10,
                sum: 2.0,
                bounds: vec![1.0],
                counts: vec![4, 6]
            }
        );
    }

    #[test]
    fn exponential_deltas_merge_bucket_ranges() {
        let mut a = ExpBuckets {
            offset: 2,
            counts: vec![1, 1],
        };
        add_exp(
            &mut a,
            &ExpBuckets {
                offset: 0,
                counts: vec![5, 0, 1],
            },
        );
        assert_eq!(
            a,
            ExpBuckets {
                offset: 0,
                counts: vec![5, 0, 2, 1]
            }
        );
    }

    #[test]
    fn the_series_cap_drops_only_new_series_and_type_conflicts_are_refused() {
        let s = Store::new(2, Duration::from_secs(60));
        let g = |l: &str| obs("g", Kind::Gauge, &[("l", l)], Value::Number(1.0), false);
        s.apply(&g("a")).unwrap();
        s.apply(&g("b")).unwrap();
        assert_eq!(s.apply(&g("c")), Err(Dropped::SeriesLimit));
        assert!(s.apply(&g("a")).is_ok(), "existing series keep flowing");
        assert_eq!(s.len(), 2);
        let wrong = obs("g", Kind::Counter, &[("l", "a")], Value::Number(1.0), false);
        assert_eq!(s.apply(&wrong), Err(Dropped::TypeConflict));
    }

    #[test]
    fn series_expire_after_the_expiration() {
        let s = Store::new(10, Duration::from_millis(50));
        s.apply(&obs(
            "g",
            Kind::Gauge,
            &[("l", "a")],
            Value::Number(1.0),
            false,
        ))
        .unwrap();
        assert!(s.expire(Instant::now()).is_empty());
        let gone = s.expire(Instant::now() + Duration::from_millis(60));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, "g");
        assert!(s.is_empty());
        let mut families = 0;
        s.for_each_family(|_, _| families += 1);
        assert_eq!(families, 0);
    }

    #[test]
    fn labels_are_escaped() {
        let l = vec![("a".to_string(), "x\"y\\z\nw".to_string())];
        assert_eq!(label_text(&l), r#"a="x\"y\\z\nw""#);
    }
}
