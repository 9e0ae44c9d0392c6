//! A byte-budgeted content cache. Entries are dropped by their owner exactly when the file
//! changes (no TTL); when the budget is exceeded the oldest insertions go first.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

use crate::paths::RelPath;

#[derive(Debug)]
pub(crate) struct ContentCache {
    budget: usize,
    used: usize,
    entries: HashMap<RelPath, Bytes>,
    order: VecDeque<RelPath>,
}

impl ContentCache {
    pub(crate) fn new(budget: usize) -> Self {
        ContentCache {
            budget,
            used: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether the cache is below its budget (more can go in without evicting anything).
    pub(crate) fn has_room(&self) -> bool {
        self.used < self.budget
    }

    pub(crate) fn get(&self, rel: &RelPath) -> Option<Bytes> {
        self.entries.get(rel).cloned()
    }

    pub(crate) fn insert(&mut self, rel: RelPath, bytes: Bytes) {
        self.remove(&rel);
        if bytes.len() > self.budget {
            return;
        }
        self.used += bytes.len();
        self.order.push_back(rel.clone());
        self.entries.insert(rel, bytes);
        while self.used > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.entries.remove(&old) {
                self.used -= b.len();
            }
        }
    }

    pub(crate) fn remove(&mut self, rel: &RelPath) {
        if let Some(b) = self.entries.remove(rel) {
            self.used -= b.len();
            // Keys left in `order` are skipped when popped; bound them by compacting.
            if self.order.len() > 2 * self.entries.len() + 64 {
                let entries = &self.entries;
                self.order.retain(|k| entries.contains_key(k));
            }
        }
    }
}
