//! Request ids: what makes a state-changing call safe to deliver twice.
//!
//! A reply can be lost with its connection after Redis ran the call; the client then sends the
//! call again (fred re-sends in-flight commands after a reconnect, and workers retry until a
//! call is recorded). Each state-changing script remembers its answer under the call's request
//! id for a while (see `lua/prelude.lua`), so a second delivery changes nothing and gets the
//! first answer.
use std::fmt;

/// Identifies one logical state-changing call across every delivery of it: 32 hex digits.
///
/// ```
/// use queue_core::RequestId;
/// assert_ne!(RequestId::new(), RequestId::new());
/// assert_eq!(RequestId::derived(&[b"complete", b"42"]), RequestId::derived(&[b"complete", b"42"]));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id, for a call that is made once (a push, a fetch).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        RequestId(format!("{:032x}", rand::random::<u128>()))
    }

    /// An id derived from what makes the call unique, so that every retry of it, by whoever
    /// makes it, is recognised (settling a lease: its token is unique, and so is the call).
    pub fn derived(parts: &[&[u8]]) -> Self {
        let mut hash = sha1_smol::Sha1::new();
        for part in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            hash.update(&(part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        RequestId(hash.digest().to_string()[..32].to_owned())
    }

    /// The id as the scripts receive it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}
