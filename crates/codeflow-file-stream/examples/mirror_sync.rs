//! Mirrors a directory into a temporary data dir through the in-process client, then prints
//! what a re-sync would fetch. Usage: `cargo run -p codeflow-file-stream --example mirror_sync -- DIR`

use codeflow_file_stream::{ExcludeConfig, FileFilter, FileServer, Limits, Manifest, Mirror};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let root = std::fs::canonicalize(&dir)?;
    let root_str = root.to_str().ok_or("root is not UTF-8")?.to_owned();
    let limits = Limits::from_env()?;
    let filter = FileFilter::new(&root, ExcludeConfig::default())?;
    let manifest = Manifest::scan(&root, &filter, &limits)?;
    println!("{} files, {} bytes", manifest.len(), manifest.total_bytes());

    let client = FileServer::new(&root, limits)?;
    let data = tempfile::tempdir()?;
    let mirror = Mirror::open(
        data.path(),
        &codeflow_types::ProjectId::parse("example").expect("project id"),
        &root_str,
    )
    .await?;
    let report = mirror
        .sync(&manifest, &client, &|p| {
            if p.done_files % 100 == 0 || p.done_files == p.total_files {
                eprintln!("{}/{} files", p.done_files, p.total_files);
            }
        })
        .await?;
    println!(
        "fetched {} files ({} bytes) into {}; skipped {}",
        report.fetched.len(),
        report.fetched_bytes,
        mirror.root().display(),
        report.skipped.len()
    );
    let again = mirror.plan(&Manifest::scan(&root, &filter, &limits)?);
    println!("a re-sync would fetch {} files", again.needed.len());
    Ok(())
}
