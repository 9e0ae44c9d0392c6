//! The tree's git state for the server's `git` channel: a streamed mirror holds no `.git`, so
//! the relay reads `git status --porcelain=v2 --branch` in its root every [`POLL_EVERY`] and
//! hands over the output when it changes (the server parses it and publishes branch, HEAD and
//! dirty files). A root that is not a git repository, or a machine without `git`, is found on
//! the first read and never asked again.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

/// How often the state is read.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// Longest one `git status` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Output beyond this is cut (the server lists at most 200 dirty files anyway).
const MAX_OUTPUT: usize = 256 * 1024;

/// Starts reading `root`'s git state; the receiver holds the latest output (`None` until the
/// first read, and for good when `root` is not a repository). The task ends with the receiver.
pub fn watch(root: PathBuf) -> watch::Receiver<Option<String>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut first = true;
        loop {
            match read(&root).await {
                Some(output) => {
                    tx.send_if_modified(|last| {
                        if last.as_deref() == Some(output.as_str()) {
                            false
                        } else {
                            *last = Some(output);
                            true
                        }
                    });
                }
                None if first => return,
                // A transient failure (a lock held by a running git): try again next time.
                None => {}
            }
            first = false;
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    });
    rx
}

/// `git status --porcelain=v2 --branch` in `root`, without taking git's optional locks (an
/// editor's or the agent's own git commands are not disturbed).
async fn read(root: &std::path::Path) -> Option<String> {
    let child = tokio::process::Command::new("git")
        .args(["status", "--porcelain=v2", "--branch"])
        .current_dir(root)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(GIT_TIMEOUT, child).await.ok()?.ok()?;
    if !output.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if text.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        // Whole lines only.
        if let Some(end) = text.rfind('\n') {
            text.truncate(end + 1);
        }
    }
    Some(text)
}
