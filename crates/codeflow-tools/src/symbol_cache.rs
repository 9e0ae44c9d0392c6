//! A project's `documentSymbol` answers, per document content. Finding a symbol by name asks
//! for the file's symbols on every call; for an unchanged file the answer cannot change, and
//! pylsp spends about half of a `find_definition` computing it.

use std::collections::HashMap;
use std::sync::Arc;

use codeflow_file_stream::ContentHash;
use codeflow_lsp_pool::lsp_types::Url;
use parking_lot::Mutex;

use crate::lsp::symbols::FlatSymbol;

/// Documents remembered at most; past this the cache starts over (it refills on demand).
const MAX_DOCUMENTS: usize = 2048;

/// (server id, document URI).
type DocumentKey = (String, Url);
/// The content the symbols describe, and the symbols.
type CachedSymbols = (ContentHash, Arc<Vec<FlatSymbol>>);

/// Symbols by (server, document URI), valid for one content hash.
#[derive(Debug, Default)]
pub struct SymbolCache {
    entries: Mutex<HashMap<DocumentKey, CachedSymbols>>,
}

impl SymbolCache {
    /// The symbols cached for this document at this content, if any.
    pub fn get(&self, server: &str, uri: &Url, hash: &ContentHash) -> Option<Arc<Vec<FlatSymbol>>> {
        let entries = self.entries.lock();
        let (cached_hash, symbols) = entries.get(&(server.to_owned(), uri.clone()))?;
        (cached_hash == hash).then(|| symbols.clone())
    }

    /// Caches a document's symbols for its content.
    pub fn put(&self, server: &str, uri: &Url, hash: ContentHash, symbols: Arc<Vec<FlatSymbol>>) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_DOCUMENTS {
            entries.clear();
        }
        entries.insert((server.to_owned(), uri.clone()), (hash, symbols));
    }
}
