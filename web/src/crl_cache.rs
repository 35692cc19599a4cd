//! A one-entry cache of the signed CRL, keyed by CRL number: the CRL's
//! content only changes when its number does, so it is signed once per
//! change rather than once per request.

use std::sync::Mutex;

/// The last signed CRL (DER) and its number.
#[derive(Debug, Default)]
pub struct CrlCache(Mutex<Option<(u64, Vec<u8>)>>);

impl CrlCache {
    /// The CRL for `number`, building (and caching) it if needed.
    pub fn get_or_build<E>(
        &self,
        number: u64,
        build: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        if let Some((n, der)) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *n == number
        {
            return Ok(der.clone());
        }
        let der = build()?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((number, der.clone()));
        Ok(der)
    }
}
