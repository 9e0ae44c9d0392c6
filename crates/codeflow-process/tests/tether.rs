//! A child started by `codeflow_process::spawn` dies with the process that started it, even
//! when that process is killed with SIGKILL and runs no code of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "CODEFLOW_PROCESS_TEST_HELPER";

/// Not a test on its own: run by the test below in a separate process, which starts a
/// long `sleep` through `spawn`, prints its pid, and then kills itself with SIGKILL.
#[test]
#[ignore = "run as a subprocess by a_child_dies_when_the_process_that_started_it_is_killed"]
fn helper_starts_a_child_then_is_killed() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Started from a blocking-pool thread, the worst case for a parent-death signal.
        let child = tokio::task::spawn_blocking(|| {
            codeflow_process::spawn("sleep".as_ref(), |c| {
                c.arg("300").stdin(Stdio::null()).stdout(Stdio::null());
            })
            .unwrap()
        })
        .await
        .unwrap();
        println!("child {}", child.id().unwrap());
        // Kill this whole process the way an OOM killer or `kill -9` would.
        Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_secs(30));
        drop(child);
    });
}

fn alive(pid: u32) -> bool {
    // A zombie (state Z) waiting for a reaper that is not ours counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[test]
fn a_child_dies_when_the_process_that_started_it_is_killed() {
    assert!(
        codeflow_process::tethered(),
        "setpriv with --pdeathsig (util-linux) is needed on this machine"
    );
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_a_child_then_is_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(helper.stdout.take().unwrap());
    let child: u32 = stdout
        .lines()
        .map_while(Result::ok)
        // libtest may print `test <name> ... ` on the same line first.
        .find_map(|line| {
            line.split_once("child ")
                .map(|(_, pid)| pid.trim().parse().unwrap())
        })
        .expect("the helper printed its child's pid");
    let status = helper.wait().unwrap();
    assert!(!status.success(), "the helper was killed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(child),
        "the child {child} outlived the killed process"
    );
}

#[tokio::test]
async fn a_child_gets_its_arguments_and_leads_its_own_process_group() {
    let dir = std::env::temp_dir();
    let mut child = codeflow_process::spawn("sh".as_ref(), move |c| {
        c.args([
            "-c",
            "echo \"$0 $1 $(pwd)\"; exec sleep 300",
            "first",
            "second",
        ])
        .current_dir(dir)
        .stdout(Stdio::piped());
    })
    .unwrap();
    let pid = child.id().unwrap();
    let mut out = String::new();
    let stdout = child.stdout().take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    if let Some(line) = lines.next_line().await.unwrap() {
        out = line;
    }
    let cwd = std::env::temp_dir().canonicalize().unwrap();
    assert_eq!(out, format!("first second {}", cwd.display()));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[2], pid.to_string(), "process group id: {stat}");
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "dropping the handle kills the child");
}

/// The tether is armed by `setpriv` after the fork; `spawn` returns only once it has executed
/// the program (so the signal is set), never while the child is still `setpriv`.
#[tokio::test]
async fn spawn_returns_once_the_child_runs_its_program() {
    for _ in 0..20 {
        let child = codeflow_process::spawn("sleep".as_ref(), |c| {
            c.arg("300").stdin(Stdio::null());
        })
        .unwrap();
        let pid = child.id().unwrap();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            exe.file_name().and_then(|n| n.to_str()),
            Some("sleep"),
            "{exe:?}"
        );
    }
}
