//! Names of rotated files (`<stem>-<UTC timestamp><ext>`, the Collector's
//! lumberjack naming) and the pruning of old ones by count and age.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tern_config::RotationConfig;

/// `dir/name.ext` -> `dir/name-2026-11-28T21-03-30.123.ext` (UTC).
pub fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let stamp = format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}.{:03}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    );
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{stamp}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{stamp}"),
    };
    path.with_file_name(name)
}

/// The time a backup name made by [`backup_name`] encodes, from the part
/// after `<stem>-`; `None` for anything else.
fn backup_time(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let number = |from: usize, len: usize| -> Option<u64> {
        let digits = stamp.get(from..from + len)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b'-'),
        (16, b'-'),
        (19, b'.'),
    ];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let (y, m, d) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (h, min, sec, ms) = (
        number(11, 2)?,
        number(14, 2)?,
        number(17, 2)?,
        number(20, 3)?,
    );
    let days = days_from_civil(y as i64, m as u32, d as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + min * 60 + sec;
    UNIX_EPOCH.checked_add(std::time::Duration::from_millis(secs * 1000 + ms))
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Removes the backups of `path` older than `max_days` (0: no age limit),
/// then the oldest beyond `max_backups` (0 keeps all). A backup is a file
/// named as [`backup_name`] names them; other files sharing the stem (such
/// as the file of another `group_by` value, `out-eu.jsonl` beside
/// `out.jsonl`) are never touched.
pub fn prune_backups(
    path: &Path,
    rotation: &RotationConfig,
    now: SystemTime,
) -> std::io::Result<()> {
    if rotation.max_backups == 0 && rotation.max_days == 0 {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!("{stem}-");
    let own = path.file_name().map(|n| n.to_os_string());
    // (time in the name, path), oldest first.
    let mut backups: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name() != own.as_deref())
        .filter_map(|p| {
            let time = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(backup_time)?;
            Some((time, p))
        })
        .collect();
    backups.sort();
    if rotation.max_days > 0 {
        let max_age = std::time::Duration::from_secs(rotation.max_days.saturating_mul(86_400));
        let cutoff = now.checked_sub(max_age).unwrap_or(UNIX_EPOCH);
        let (old, kept): (Vec<_>, Vec<_>) = backups.into_iter().partition(|(t, _)| *t < cutoff);
        for (_, p) in &old {
            std::fs::remove_file(p)?;
        }
        backups = kept;
    }
    if rotation.max_backups > 0 {
        let excess = backups.len().saturating_sub(rotation.max_backups as usize);
        for (_, old) in &backups[..excess] {
            std::fs::remove_file(old)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_use_utc_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_906_410_123);
        let name = backup_name(Path::new("/tmp/out.jsonl"), t);
        assert_eq!(
            name,
            PathBuf::from("/tmp/out-2026-11-28T22-53-30.123.jsonl")
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(backup_time("2026-11-28T22-53-30.123.jsonl"), Some(t));
        assert_eq!(backup_time("2026-11-28.jsonl"), None);
    }

    #[test]
    fn max_days_removes_backups_older_than_that_by_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(20_000 * 86_400);
        let day = std::time::Duration::from_secs(86_400);
        let old = backup_name(&path, now - 3 * day);
        let recent = backup_name(&path, now - day / 2);
        let unrelated = dir.path().join("out-notes.jsonl");
        for p in [&path, &old, &recent, &unrelated] {
            std::fs::write(p, b"x").unwrap();
        }
        let rotation = RotationConfig {
            max_days: 2,
            max_backups: 0,
            ..RotationConfig::default()
        };
        prune_backups(&path, &rotation, now).unwrap();
        assert!(!old.exists());
        assert!(recent.exists() && path.exists() && unrelated.exists());
    }

    #[test]
    fn max_backups_counts_only_backups_not_files_sharing_the_stem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(20_000 * 86_400);
        let day = std::time::Duration::from_secs(86_400);
        let older = backup_name(&path, now - 2 * day);
        let newer = backup_name(&path, now - day);
        // Another group's file, and that group's own backup.
        let other = dir.path().join("out-eu.jsonl");
        let other_backup = backup_name(&other, now - 3 * day);
        for p in [&path, &older, &newer, &other, &other_backup] {
            std::fs::write(p, b"x").unwrap();
        }
        let rotation = RotationConfig {
            max_backups: 1,
            ..RotationConfig::default()
        };
        prune_backups(&path, &rotation, now).unwrap();
        assert!(!older.exists());
        assert!(newer.exists() && path.exists() && other.exists() && other_backup.exists());
    }
}
