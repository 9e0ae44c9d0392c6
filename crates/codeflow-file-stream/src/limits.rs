//! Size limits, per file and per project.

use crate::error::FileError;

/// Environment variable (and config key) for the per-file size limit, in bytes; `K`, `M`, `G`
/// suffixes (powers of 1024, optional trailing `B`) are accepted, e.g. `FILE_SIZE_LIMIT=10MB`.
pub const FILE_SIZE_LIMIT_ENV: &str = "FILE_SIZE_LIMIT";
/// Environment variable for the per-project file-count limit.
pub const PROJECT_FILE_LIMIT_ENV: &str = "PROJECT_FILE_LIMIT";
/// Environment variable for the per-project total-bytes limit (same suffixes as above).
pub const PROJECT_BYTES_LIMIT_ENV: &str = "PROJECT_BYTES_LIMIT";

/// Limits enforced on both sides: the relay refuses to serve or write beyond them and the
/// mirror refuses to fetch or store beyond them, each with its own [`FileError`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file served, fetched, written or mirrored (default 10 MiB).
    pub max_file_size: u64,
    /// Most files in one project (default 200,000).
    pub max_files: u64,
    /// Most bytes in one project (default 2 GiB).
    pub max_total_bytes: u64,
    /// Longest path in bytes (default 4096, Linux's `PATH_MAX`).
    pub max_path_len: usize,
    /// Longest path component in bytes (default 255, Linux's `NAME_MAX`).
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 10 * 1024 * 1024,
            max_files: 200_000,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_path_len: 4096,
            max_name_len: 255,
        }
    }
}

impl Limits {
    /// Defaults overridden by [`FILE_SIZE_LIMIT_ENV`], [`PROJECT_FILE_LIMIT_ENV`] and
    /// [`PROJECT_BYTES_LIMIT_ENV`] from the process environment.
    pub fn from_env() -> Result<Self, FileError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Like [`Limits::from_env`] with a custom lookup (for config layers and tests).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FileError> {
        let mut limits = Limits::default();
        if let Some(v) = lookup(FILE_SIZE_LIMIT_ENV) {
            limits.max_file_size = parse_size(FILE_SIZE_LIMIT_ENV, &v)?;
        }
        if let Some(v) = lookup(PROJECT_FILE_LIMIT_ENV) {
            limits.max_files = parse_size(PROJECT_FILE_LIMIT_ENV, &v)?;
        }
        if let Some(v) = lookup(PROJECT_BYTES_LIMIT_ENV) {
            limits.max_total_bytes = parse_size(PROJECT_BYTES_LIMIT_ENV, &v)?;
        }
        Ok(limits)
    }

    /// Refuses a file over the per-file size limit.
    pub fn check_file_size(&self, path: &str, size: u64) -> Result<(), FileError> {
        if size > self.max_file_size {
            return Err(FileError::FileTooLarge {
                path: path.to_owned(),
                size,
                limit: self.max_file_size,
            });
        }
        Ok(())
    }

    /// Refuses a project over the file-count or total-bytes limit.
    pub fn check_project(&self, files: u64, bytes: u64) -> Result<(), FileError> {
        if files > self.max_files {
            return Err(FileError::TooManyFiles {
                count: files,
                limit: self.max_files,
            });
        }
        if bytes > self.max_total_bytes {
            return Err(FileError::ProjectTooLarge {
                bytes,
                limit: self.max_total_bytes,
            });
        }
        Ok(())
    }
}

/// Parses `1234`, `64K`, `10M`, `10MB`, `1G`, `1GiB` (powers of 1024).
pub fn parse_size(name: &str, value: &str) -> Result<u64, FileError> {
    let v = value.trim();
    let upper = v.to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (num, unit) = upper.split_at(digits_end);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => {
            return Err(FileError::InvalidParams(format!(
                "{name}={value}: expected a size like 10485760, 10M or 10MB"
            )));
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            FileError::InvalidParams(format!(
                "{name}={value}: expected a size like 10485760, 10M or 10MB"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("x", "10MB").ok(), Some(10 << 20));
        assert_eq!(parse_size("x", "64k").ok(), Some(64 << 10));
        assert_eq!(parse_size("x", "123").ok(), Some(123));
        assert!(parse_size("x", "ten").is_err());
        let l = Limits::from_vars(|k| (k == FILE_SIZE_LIMIT_ENV).then(|| "1M".to_owned()));
        assert_eq!(l.map(|l| l.max_file_size).ok(), Some(1 << 20));
    }
}
