//! Ask the pool for a definition, as an embedding service would.
//!
//! ```sh
//! cargo run -p codeflow-lsp-pool --example definition -- PROJECT_DIR FILE LINE CHARACTER
//! ```
//! `FILE` is relative to `PROJECT_DIR`; `LINE` and `CHARACTER` are 0-based (LSP).

use std::path::PathBuf;

use codeflow_lsp_pool::lsp_types::request::GotoDefinition;
use codeflow_lsp_pool::lsp_types::{
    GotoDefinitionParams, Position, TextDocumentIdentifier, TextDocumentPositionParams,
};
use codeflow_lsp_pool::{LspPool, PoolConfig, ProjectKey};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: definition PROJECT_DIR FILE LINE CHARACTER";
    let root = PathBuf::from(args.next().ok_or(usage)?);
    let file = args.next().ok_or(usage)?;
    let line: u32 = args.next().ok_or(usage)?.parse()?;
    let character: u32 = args.next().ok_or(usage)?.parse()?;

    let pool = LspPool::new(PoolConfig::default());
    let lease = pool.lease(ProjectKey::new(
        codeflow_types::ProjectId::parse("example").expect("project id"),
        &root,
    ));
    let server = lease.server_for_file(&file).await?;
    server.sync_document(&file, std::fs::read_to_string(root.join(&file))?)?;
    let answer = server
        .request::<GotoDefinition>(GotoDefinitionParams {
            text_document_position_params: TextDocumentPositionParams::new(
                TextDocumentIdentifier::new(server.uri_for(&file)?),
                Position::new(line, character),
            ),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    for status in pool.status() {
        println!("{status:?}");
    }
    pool.shutdown().await;
    Ok(())
}
