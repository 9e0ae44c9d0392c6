//! The lexical rules every path from the network passes, before any disk is touched: a length
//! limit, no control characters, no backslashes, no percent-encoded separators or dots, no
//! `..` component. The relay's jail, the mirror's path types and the handshake's project root
//! all apply these same rules, so a root the handshake accepts is one every path type accepts.

/// The components of `raw` (empty and `.` components dropped), or why it is refused.
pub fn components(
    raw: &str,
    max_path_len: usize,
    max_name_len: usize,
) -> Result<Vec<&str>, String> {
    if raw.len() > max_path_len {
        return Err(format!(
            "path is {} bytes, over the limit of {max_path_len}",
            raw.len()
        ));
    }
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(format!(
            "path contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if raw.contains('\\') {
        return Err("path contains a backslash; use `/` as the separator".to_owned());
    }
    // (Most paths have no `%`: no lower-cased copy and seven searches for them; a walk checks
    // every file name of a tree.)
    if raw.contains('%') {
        let lower = raw.to_ascii_lowercase();
        for bad in ["%2e", "%2f", "%5c", "%00", "%25", "%c0", "%c1"] {
            if lower.contains(bad) {
                return Err(format!(
                    "path contains the percent-encoded sequence `{bad}`"
                ));
            }
        }
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path contains a `..` component".to_owned()),
            name if name.len() > max_name_len => {
                return Err(format!(
                    "a path component is {} bytes, over the limit of {max_name_len}",
                    name.len()
                ));
            }
            name => parts.push(name),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_could_escape_or_confuse() {
        for bad in ["/a/../b", "/a\\b", "/a/%2e%2e/b", "/a\u{7}b", "/x%2Fy"] {
            assert!(components(bad, 4096, 255).is_err(), "{bad}");
        }
        assert!(components(&"a".repeat(300), 4096, 255).is_err());
        assert_eq!(components("/a//./b/", 4096, 255), Ok(vec!["a", "b"]));
        assert_eq!(components("/é/ü", 4096, 255), Ok(vec!["é", "ü"]));
    }
}
