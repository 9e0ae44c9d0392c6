//! Typed per-project slots for the layers above the workspace (a tool catalogue's caches), so
//! their state lives and dies with the project without this crate naming their types.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// One value per type, created on first use.
#[derive(Default)]
pub struct Extensions {
    slots: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("slots", &self.slots.lock().len())
            .finish()
    }
}

impl Extensions {
    /// The project's `T`, made with `T::default()` the first time it is asked for.
    pub fn get<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let mut slots = self.slots.lock();
        let slot = slots
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        match Arc::clone(slot).downcast::<T>() {
            Ok(value) => value,
            // Unreachable: the slot of `TypeId::of::<T>()` only ever holds a `T`.
            Err(_) => Arc::new(T::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let ext = Extensions::default();
        let a = ext.get::<Mutex<Vec<u32>>>();
        a.lock().push(7);
        assert_eq!(*ext.get::<Mutex<Vec<u32>>>().lock(), vec![7]);
        assert_eq!(*ext.get::<Mutex<String>>().lock(), "");
    }
}
