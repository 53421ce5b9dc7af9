//! Sessions: what one is and when it ends ([`model`]), its bytes ([`codec`]) and their
//! encryption ([`seal`]).
//!
//! The session layer knows nothing of HTTP routing or OIDC: it never decides whether a
//! request may pass, never talks to the IdP, and reads no clock or random source itself.
//! Callers pass `now` and a [`Random`](crate::clock::Random).

pub mod codec;
pub mod model;
pub mod seal;

pub use codec::DecodeError;
pub use model::{
    Claims, Session, SessionId, SessionPolicy, Validity, absolute_deadline, check, idle_deadline,
    touch,
};
pub use seal::{KeyRing, KeyRingError, OpenError, Purpose};
