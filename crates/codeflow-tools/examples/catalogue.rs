//! Lists the MCP tool catalogue as an agent sees it in `tools/list`: name and description.
//!
//! `cargo run -p codeflow-tools --example catalogue`

fn main() {
    let catalogue = codeflow_tools::Catalogue::standard();
    for tool in catalogue.iter() {
        println!("{:<36} {}", tool.name(), tool.description());
    }
}
