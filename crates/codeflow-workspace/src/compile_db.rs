//! A project's compilation database, for the language servers that take one (clangd).
//!
//! A tree's `compile_commands.json` (written by CMake, Meson, Bear…) names the client's
//! absolute paths — its source files, its `-I` directories — which the mirror does not have:
//! given as is, clangd finds no command for a mirror file and falls back to guessing. So a
//! copy with the mirror's paths is kept *outside* the mirror (the mirror holds the client's
//! bytes), in `<data_dir>/compile-db/<project>/compile_commands.json`, and every server whose
//! table entry has a `compilation_database_arg` is started pointing at that directory.
//!
//! The directory exists only while the project has a database: clangd ignores a
//! `--compile-commands-dir` that does not exist and then looks for `compile_flags.txt` beside
//! the files as usual. It decides once, at start, so when the database appears or goes the
//! servers that take one are restarted; a changed database is rewritten in place, which clangd
//! notices by itself.

use std::path::{Path, PathBuf};

use codeflow_types::ProjectId;

/// Where a tree keeps its database, first found wins: the root (often a link to the build
/// directory's, as clangd's documentation suggests), then CMake's and Meson's usual build
/// directories. The file filter streams these even when `.gitignore` leaves them out.
pub const SOURCES: [&str; 3] = [
    "compile_commands.json",
    "build/compile_commands.json",
    "builddir/compile_commands.json",
];

/// The file name clangd looks for in its `--compile-commands-dir`.
const FILE: &str = "compile_commands.json";

/// One project's rebased copy of its compilation database.
#[derive(Debug, Clone)]
pub struct CompilationDatabase {
    dir: PathBuf,
}

/// What [`CompilationDatabase::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Nothing to do: no database before or after, or the copy already current.
    Unchanged,
    /// The copy was rewritten; servers reading it notice by themselves.
    Updated,
    /// The database appeared or went: servers that take one must restart to see it.
    AppearedOrWent,
}

impl CompilationDatabase {
    /// The copy for `project` under the server's `data_dir`.
    pub fn new(data_dir: &Path, project: &ProjectId) -> Self {
        Self {
            dir: data_dir.join("compile-db").join(project.as_str()),
        }
    }

    /// The directory the servers are pointed at (it may not exist).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a project-relative path is one of the places a database is read from.
    pub fn is_source(rel: &str) -> bool {
        SOURCES.contains(&rel)
    }

    /// Brings the copy up to date with the database in `mirror_root` (as written by the tree
    /// rooted at `client_root` on its machine), or removes it when the mirror has none.
    ///
    /// # Errors
    /// Reading the mirror's database or writing the copy failed.
    pub fn refresh(&self, mirror_root: &Path, client_root: &str) -> std::io::Result<Refreshed> {
        let target = self.dir.join(FILE);
        let had = target.is_file();
        let source = SOURCES
            .iter()
            .map(|rel| mirror_root.join(rel))
            .find(|p| p.is_file());
        let Some(source) = source else {
            if !had {
                return Ok(Refreshed::Unchanged);
            }
            std::fs::remove_dir_all(&self.dir)?;
            return Ok(Refreshed::AppearedOrWent);
        };
        let text = String::from_utf8_lossy(&std::fs::read(&source)?).into_owned();
        let rebased = rebase(&text, client_root, &mirror_root.to_string_lossy());
        if had && std::fs::read(&target).is_ok_and(|old| old == rebased.as_bytes()) {
            return Ok(Refreshed::Unchanged);
        }
        std::fs::create_dir_all(&self.dir)?;
        // Written whole then renamed: a server never reads half a database.
        let temp = self.dir.join(format!(".{FILE}.tmp"));
        std::fs::write(&temp, rebased.as_bytes())?;
        std::fs::rename(&temp, &target)?;
        Ok(if had {
            Refreshed::Updated
        } else {
            Refreshed::AppearedOrWent
        })
    }
}

/// `text`, a `compile_commands.json`, with every path under `from` moved under `to`: the root
/// is replaced where it starts a path (alone in its word, or after a flag such as `-I`) and
/// stands as a whole path or its directory (followed by `/`, the end of a JSON string, or a
/// space or quote inside a command line), in its JSON-escaped form.
pub fn rebase(text: &str, from: &str, to: &str) -> String {
    let from = json_inner(from.trim_end_matches('/'));
    let to = json_inner(to.trim_end_matches('/'));
    if from.is_empty() || from == to {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&from) {
        let after = &rest[at + from.len()..];
        // The root starts a path: what stands before it in its word (`-I`, `-isystem`) holds
        // no `/` (which would make it the tail of another path, `/opt/home/u/app`).
        let word = rest[..at]
            .rsplit(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ',' | '['))
            .next()
            .unwrap_or_default();
        let before_ok =
            (word.is_empty() || word.starts_with('-') || word == "@") && !word.contains('/');
        let after_ok = after
            .chars()
            .next()
            .is_none_or(|c| matches!(c, '/' | '"' | '\\' | ' ' | '\'' | ':' | ';'));
        out.push_str(&rest[..at]);
        out.push_str(if before_ok && after_ok { &to } else { &from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `s` as it appears between the quotes of a JSON string.
fn json_inner(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_client_root_move_under_the_mirror() {
        let db = r#"[{"directory": "/home/u/app/build", "file": "/home/u/app/src/a.c",
            "command": "cc -I/home/u/app/include -I\"/home/u/app/quoted dir\" -c /home/u/app/src/a.c",
            "arguments": ["cc", "-I/home/u/app"]}]"#;
        let out = rebase(db, "/home/u/app", "/srv/mirrors/app");
        assert!(
            out.contains(r#""directory": "/srv/mirrors/app/build""#),
            "{out}"
        );
        assert!(
            out.contains(r#""file": "/srv/mirrors/app/src/a.c""#),
            "{out}"
        );
        assert!(out.contains("-I/srv/mirrors/app/include"), "{out}");
        assert!(
            out.contains(r#"-I\"/srv/mirrors/app/quoted dir\""#),
            "{out}"
        );
        assert!(out.contains("-c /srv/mirrors/app/src/a.c"), "{out}");
        assert!(out.contains(r#""-I/srv/mirrors/app""#), "{out}");
        assert!(!out.contains("/home/u/app"), "{out}");
    }

    #[test]
    fn a_longer_name_that_starts_with_the_root_is_left_alone() {
        let db = r#"{"file": "/home/u/app2/a.c", "directory": "/opt/home/u/app/x",
            "command": "cc -I/opt/home/u/app/x"}"#;
        assert_eq!(rebase(db, "/home/u/app", "/m"), db);
        // A trailing slash on either root changes nothing.
        assert_eq!(
            rebase(r#""/home/u/app/a.c""#, "/home/u/app/", "/m/"),
            r#""/m/a.c""#
        );
    }

    #[test]
    fn the_copy_follows_the_mirror_and_says_when_servers_must_restart() {
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mirror = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let project = ProjectId::parse("p").unwrap_or_else(|e| panic!("{e}"));
        let db = CompilationDatabase::new(data.path(), &project);
        let refresh = || {
            db.refresh(mirror.path(), "/client/p")
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let copy = || std::fs::read_to_string(db.dir().join(FILE)).ok();

        assert_eq!(refresh(), Refreshed::Unchanged);
        assert!(!db.dir().exists(), "no database: no directory");

        std::fs::create_dir_all(mirror.path().join("build")).unwrap_or_else(|e| panic!("{e}"));
        let build = mirror.path().join("build/compile_commands.json");
        std::fs::write(&build, r#"[{"file": "/client/p/a.c"}]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refresh(), Refreshed::AppearedOrWent);
        let mirror_root = mirror.path().to_string_lossy();
        assert_eq!(
            copy(),
            Some(format!(r#"[{{"file": "{mirror_root}/a.c"}}]"#))
        );
        assert_eq!(refresh(), Refreshed::Unchanged);

        // The root's database comes first.
        std::fs::write(
            mirror.path().join("compile_commands.json"),
            r#"[{"file": "/client/p/b.c"}]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refresh(), Refreshed::Updated);
        assert_eq!(
            copy(),
            Some(format!(r#"[{{"file": "{mirror_root}/b.c"}}]"#))
        );

        std::fs::remove_file(mirror.path().join("compile_commands.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(&build).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(refresh(), Refreshed::AppearedOrWent);
        assert!(!db.dir().exists(), "gone with the database");
    }
}
