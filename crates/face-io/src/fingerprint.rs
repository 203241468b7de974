//! A stable fingerprint (64-bit FNV-1a, the same on every platform and run) of the data a run
//! trains on, stored in its checkpoints so a run is never resumed on other data.

/// FNV-1a over everything written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// The empty fingerprint (FNV's offset basis).
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The value.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The value as 16 hex digits.
    ///
    /// # Examples
    /// ```
    /// // FNV-1a of "a" (a published test vector).
    /// assert_eq!(face_io::Fingerprint::new().write(b"a").hex(), "af63dc4c8601ec8c");
    /// ```
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
