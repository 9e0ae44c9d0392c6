//! Document sync: the open-document table (`documents.rs`) is the truth; each change is sent
//! to the current instance, and a new instance gets every open document before any request.

use super::*;

impl ManagedServer {
    pub(super) fn uri_for(&self, path: &Path) -> Result<Url, LspError> {
        document_uri(&self.root, path)
    }

    /// Open (or, if already open, replace the text of) a document. Returns its version.
    pub(crate) fn open(self: &Arc<Self>, path: &Path, text: String) -> Result<i32, LspError> {
        self.sync(path, text, true)
    }

    pub(crate) fn change(self: &Arc<Self>, path: &Path, text: String) -> Result<i32, LspError> {
        self.sync(path, text, false)
    }

    pub(super) fn sync(
        self: &Arc<Self>,
        path: &Path,
        text: String,
        may_open: bool,
    ) -> Result<i32, LspError> {
        let uri = self.uri_for(path)?;
        self.ensure_started();
        // The table update and the send happen under one lock, and a new instance re-opens
        // the table under the same lock before it is published: every change reaches every
        // instance exactly once, in order.
        let mut docs = self.documents.lock();
        let conn = self.current_connection();
        let synced_at = self.diagnostics.current_seq();
        if let Some(doc) = docs.open.get_mut(&uri) {
            if *doc.text == *text {
                return Ok(doc.version);
            }
            doc.version += 1;
            doc.text = Arc::from(text);
            doc.synced_at = synced_at;
            if let Some(conn) = conn {
                let _gone = conn.notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
                    text_document: VersionedTextDocumentIdentifier::new(uri, doc.version),
                    // Full text: valid for both full and incremental sync servers.
                    content_changes: vec![TextDocumentContentChangeEvent {
                        range: None,
                        range_length: None,
                        text: doc.text.to_string(),
                    }],
                });
            }
            return Ok(doc.version);
        }
        if !may_open {
            return Err(LspError::DocumentNotOpen {
                server: self.server_id.clone(),
                uri: uri.to_string(),
            });
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy())
            .unwrap_or_default();
        let doc = OpenDocument {
            language_id: self.config.language_id_for(&ext),
            version: 1,
            text: Arc::from(text),
            synced_at,
        };
        if let Some(conn) = conn {
            let _gone = conn.notify::<DidOpenTextDocument>(did_open(&uri, &doc));
        }
        docs.open.insert(uri, doc);
        Ok(1)
    }

    pub(crate) fn close(&self, path: &Path) -> Result<(), LspError> {
        let uri = self.uri_for(path)?;
        let mut docs = self.documents.lock();
        if docs.open.remove(&uri).is_none() {
            return Err(LspError::DocumentNotOpen {
                server: self.server_id.clone(),
                uri: uri.to_string(),
            });
        }
        if let Some(conn) = self.current_connection() {
            let _gone = conn.notify::<DidCloseTextDocument>(DidCloseTextDocumentParams {
                text_document: TextDocumentIdentifier::new(uri),
            });
        }
        Ok(())
    }

    pub(crate) async fn diagnostics(
        self: &Arc<Self>,
        path: &Path,
    ) -> Result<DiagnosticsReport, LspError> {
        let uri = self.uri_for(path)?;
        let conn = self.connection(None).await?;
        let doc = self.documents.lock().open.get(&uri).cloned();
        if conn.supports_pull_diagnostics() {
            let params = DocumentDiagnosticParams {
                text_document: TextDocumentIdentifier::new(uri.clone()),
                identifier: None,
                previous_result_id: None,
                work_done_progress_params: Default::default(),
                partial_result_params: Default::default(),
            };
            let params = serde_json::to_value(params).map_err(|e| LspError::InvalidParams {
                method: DocumentDiagnosticRequest::METHOD.to_owned(),
                reason: e.to_string(),
            })?;
            let value = self
                .request_value(
                    DocumentDiagnosticRequest::METHOD,
                    raw_sender::<DocumentDiagnosticRequest>(),
                    params,
                )
                .await?;
            if let Ok(DocumentDiagnosticReportResult::Report(DocumentDiagnosticReport::Full(
                full,
            ))) = serde_json::from_value::<DocumentDiagnosticReportResult>(value)
            {
                return Ok(DiagnosticsReport {
                    uri,
                    version: doc.as_ref().map(|d| d.version),
                    fresh: true,
                    source: DiagnosticsSource::Pull,
                    diagnostics: full.full_document_diagnostic_report.items,
                });
            }
            // "Unchanged" or partial: the pushed set is what we have.
        }
        Ok(self.fresh_push(&uri, doc.as_ref()).await)
    }

    /// Waits (bounded by `diagnostics_timeout`) for pushed diagnostics about `doc`'s version;
    /// returns the freshest report held when they come or the time is up.
    async fn fresh_push(&self, uri: &Url, doc: Option<&OpenDocument>) -> DiagnosticsReport {
        let mut rx = self.diagnostics.subscribe();
        let deadline = tokio::time::Instant::now() + self.timing().diagnostics_timeout;
        loop {
            let report = self.diagnostics.report(uri, doc);
            if report.fresh {
                return report;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return report,
            }
        }
    }

    /// For servers that parse a document after `didOpen`/`didChange` returns and answer empty
    /// until then (`ready_after_diagnostics`): waits, bounded, until the server has published
    /// diagnostics for the open version of the document a request names. Requests about no
    /// open document, and servers without the key, pass at once.
    pub(super) async fn wait_parsed(&self, params: &Value) {
        if !self.config.ready_after_diagnostics {
            return;
        }
        let Some(uri) = params
            .pointer("/textDocument/uri")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
        else {
            return;
        };
        let doc = self.documents.lock().open.get(&uri).cloned();
        if doc.is_some() {
            self.fresh_push(&uri, doc.as_ref()).await;
        }
    }

    /// The pushed diagnostics held for the document now, without waiting (`fresh` says whether
    /// they describe its current version).
    pub(crate) fn pushed_diagnostics(&self, path: &Path) -> Result<DiagnosticsReport, LspError> {
        let uri = self.uri_for(path)?;
        let doc = self.documents.lock().open.get(&uri).cloned();
        Ok(self.diagnostics.report(&uri, doc.as_ref()))
    }

    /// [`Self::diagnostics`], then — for pushed diagnostics — the later pushes for the same
    /// document until none comes for `quiet` (the server's `diagnostics_settle` when it has
    /// one; bounded by `diagnostics_timeout`): servers that publish a version's diagnostics in
    /// phases (tsserver: syntax, then semantics) are heard to the end.
    pub(crate) async fn diagnostics_settled(
        self: &Arc<Self>,
        path: &Path,
        quiet: Duration,
    ) -> Result<DiagnosticsReport, LspError> {
        let quiet = self.config.diagnostics_settle.unwrap_or(quiet);
        let mut report = self.diagnostics(path).await?;
        if report.source != DiagnosticsSource::Push || !report.fresh {
            return Ok(report);
        }
        let uri = report.uri.clone();
        let mut rx = self.diagnostics.subscribe();
        let mut seen = self.diagnostics.seq_of(&uri);
        let deadline = tokio::time::Instant::now() + self.timing().diagnostics_timeout;
        loop {
            let until = (tokio::time::Instant::now() + quiet).min(deadline);
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => {
                    let now = self.diagnostics.seq_of(&uri);
                    if now != seen {
                        seen = now;
                        let doc = self.documents.lock().open.get(&uri).cloned();
                        let newer = self.diagnostics.report(&uri, doc.as_ref());
                        if newer.fresh {
                            report = newer;
                        }
                    } else if tokio::time::Instant::now() >= deadline {
                        return Ok(report);
                    }
                    // A push for another document: keep waiting for this one's quiet.
                }
                Ok(Err(_)) | Err(_) => return Ok(report),
            }
        }
    }

    // ---- lifecycle ------------------------------------------------------------------------
}

pub(super) fn did_open(uri: &Url, doc: &OpenDocument) -> DidOpenTextDocumentParams {
    DidOpenTextDocumentParams {
        text_document: TextDocumentItem {
            uri: uri.clone(),
            language_id: doc.language_id.clone(),
            version: doc.version,
            text: doc.text.to_string(),
        },
    }
}

/// The `file://` URI of `path`, taken relative to `root` when it is relative. `..` is refused
/// so a caller cannot name files outside the project by accident.
pub(crate) fn document_uri(root: &Path, path: &Path) -> Result<Url, LspError> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(LspError::InvalidPath {
            path: path.to_path_buf(),
            reason: "`..` is not allowed".to_owned(),
        });
    }
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    Url::from_file_path(&full).map_err(|()| LspError::InvalidPath {
        path: path.to_path_buf(),
        reason: "not representable as a file URI".to_owned(),
    })
}
